"""The hybrid backends' open transactions: per level the stores' own transactions entered
and an undo log for stores without one, and how a store's transaction is exited again.
"""

from __future__ import annotations

import inspect
from typing import Any

from ..paths import Parts

__all__ = ["_Levels", "_close", "_commit_all", "_has_txn"]


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
