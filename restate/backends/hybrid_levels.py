"""The hybrid backends' open transactions: per level the stores' own transactions entered
and an undo log for stores without one, and how a store's transaction is exited again.
"""

from __future__ import annotations

import inspect
from typing import Any

from ..paths import Parts, parts_to_path
from .base import MISSING

__all__ = ["_Levels", "_close", "_has_txn"]


def _has_txn(store: Any) -> bool:
    return callable(getattr(store, "transaction", None))


class _Levels:
    """Open transactions: per level the stores' own transactions entered, and an undo log
    (store, path, previous value) for stores that have none."""

    def __init__(self) -> None:
        self.stack: list[tuple[list[Any], int]] = []
        self.undo: list[tuple[Any, Parts, Any]] = []

    def wants_undo(self, store: Any) -> bool:
        return bool(self.stack) and not _has_txn(store)

    def pop(self) -> tuple[list[Any], list[tuple[Any, Parts, Any]]]:
        """The level's transactions, and its undo entries, newest first."""
        cms, mark = self.stack.pop()
        undo = self.undo[mark:][::-1]
        del self.undo[mark:]
        return cms, undo

    def commit(self, depth: int) -> None:
        """Commit level ``depth``'s stores, newest first, and forget the level. Resumable: a
        store leaves the list once committed and the level goes last, so an interrupted call
        can be repeated. An outer level may still roll back, undoing this level's undo
        entries too, so those go only with the outermost level."""
        if len(self.stack) <= depth:
            return
        cms, mark = self.stack[depth]
        _commit_all(cms)
        if not depth:
            del self.undo[mark:]
        del self.stack[depth:]

    def unwind(self, depth: int, exc: BaseException) -> None:
        """Roll back levels ``depth`` and above, newest first. Resumable: each step is
        removed only once done, so an interrupted call can be repeated."""
        while len(self.stack) > depth:
            cms, mark = self.stack[-1]
            while cms:
                _close(cms[-1], exc)
                cms.pop()
            while len(self.undo) > mark:
                store, rel, prev = self.undo[-1]
                if prev is MISSING:
                    store.delete(parts_to_path(rel))
                else:
                    store.write(parts_to_path(rel), prev)
                self.undo.pop()
            self.stack.pop()


def _commit_all(cms: list[Any]) -> None:
    """Commit the stores' transactions, newest first (resumable)."""
    while cms:
        _close(cms[-1], None)
        cms.pop()


def _close(cm: Any, exc: BaseException | None) -> None:
    """Exit a store's transaction (committing when ``exc`` is None) unless it never opened
    or has ended already: safe to repeat after an interruption."""
    gen = getattr(cm, "gen", None)
    if gen is not None:
        state = inspect.getgeneratorstate(gen)
        if state == inspect.GEN_CREATED:
            gen.close()
            return
        if state == inspect.GEN_CLOSED:
            return
    if exc is None:
        cm.__exit__(None, None, None)
        return
    try:
        cm.__exit__(type(exc), exc, exc.__traceback__)
    except BaseException as raised:
        if raised is not exc:
            raise
