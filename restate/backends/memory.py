"""``InMemoryBackend``: the default store, a nested dict. Leaf reads are O(depth).

``transaction()`` keeps an undo log of what each write replaced (the replaced object itself,
no copy: a write swaps objects, it never edits the one it replaces), so a rollback is
O(writes) and runs to its end through KeyboardInterrupt (``_interrupts.finish``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import Any

from ..paths import Parts, to_parts
from ..tree import check_settable, copy_in, copy_out, delete_in, set_in
from ._interrupts import finish
from .base import MISSING, Backend

__all__ = ["InMemoryBackend"]


class InMemoryBackend(Backend):
    """State in a nested dict; any Python object can be a leaf.

    Public ``read``/``write`` copy values in and out so that callers never share objects with
    the store. The controller uses the ``_get``/``_set``/``_del`` fast paths, which take
    normalised parts and do not copy (the controller copies once itself).
    """

    def __init__(self, initial: dict[str, Any] | None = None) -> None:
        self._root: dict[str, Any] = copy_in(initial) if initial else {}
        self._undo: list[tuple[Parts, Any]] | None = None  # (parts, replaced) in a transaction
        self._marks: list[int] = []

    @contextmanager
    def transaction(self) -> Iterator[InMemoryBackend]:
        """Group writes (nestable): on an exception, KeyboardInterrupt included, every write
        made inside is undone, newest first, then the exception propagates."""
        depth = len(self._marks)
        try:
            if self._undo is None:
                self._undo = []
            self._marks.append(len(self._undo))
            yield self
        except BaseException:
            finish(lambda: self._roll_back(depth))
            raise
        finally:  # inline, no calls: no interrupt can land between the body and this
            del self._marks[depth:]
            if not self._marks:
                self._undo = None

    def _roll_back(self, depth: int) -> None:
        """Undo the writes made since level ``depth`` began; resumable (an entry is dropped
        only once undone, and undoing one twice does nothing more)."""
        undo = self._undo if self._undo is not None else []
        mark = self._marks[depth] if len(self._marks) > depth else len(undo)
        while len(undo) > mark:
            parts, replaced = undo[-1]
            if not parts:
                self._root = replaced
            elif replaced is MISSING:
                delete_in(self._root, parts)
            else:
                set_in(self._root, parts, replaced)
            undo.pop()
        self._end(depth)

    def _end(self, depth: int) -> None:
        del self._marks[depth:]
        if not self._marks:
            self._undo = None

    def _record(self, parts: Parts) -> None:
        """Log what a write at ``parts`` replaces: the node there, or the highest missing
        node it creates (MISSING). A leaf in the way logs nothing (the write will raise)."""
        undo = self._undo
        assert undo is not None
        node: Any = self._root
        for i, seg in enumerate(parts):
            if type(node) is not dict:
                return
            child = node.get(seg, MISSING)
            if child is MISSING:
                undo.append((parts[: i + 1], MISSING))
                return
            node = child
        undo.append((parts, node))

    def read(self, path: PurePosixPath | str, default: Any = None) -> Any:
        value = self._get(to_parts(path))
        return default if value is MISSING else copy_out(value)

    def write(self, path: PurePosixPath | str, value: Any) -> None:
        parts = to_parts(path)
        self._set(parts, copy_in(value, parts))

    def delete(self, path: PurePosixPath | str) -> None:
        self._del(to_parts(path))

    # fast paths used by the controllers: parts in, stored objects out (no copies)
    def _get(self, parts: Parts) -> Any:
        node: Any = self._root
        for seg in parts:
            if type(node) is not dict:
                return MISSING
            node = node.get(seg, MISSING)
            if node is MISSING:
                return MISSING
        return node

    def _set(self, parts: Parts, value: Any) -> None:
        if self._undo is not None:
            self._record(parts)
        if not parts:
            if type(value) is not dict:
                raise TypeError(f"the root must be a dict, not {type(value).__name__}")
            self._root = value
            return
        set_in(self._root, parts, value)

    def _replace(self, parts: Parts, value: Any) -> Any:
        """The controller's batched write of an immutable leaf, in one walk: returns what the
        node at ``parts`` (not the root) holds and writes ``value`` over it, logged for
        ``transaction()`` as ``_set`` logs it. Nothing is written when no node is there
        (MISSING: the caller writes the usual way, which creates the missing dicts) or when
        it holds ``value`` or an equal object of the same type (the write would change
        nothing; an equal one of another type, ``1`` for ``True``, is written and the caller
        decides)."""
        parent: Any = None
        node: Any = self._root
        for seg in parts:
            if type(node) is not dict:
                return MISSING
            parent = node
            node = node.get(seg, MISSING)
            if node is MISSING:
                return MISSING
        if node is value or (type(node) is type(value) and node == value):
            return node
        if self._undo is not None:  # logged first: an interrupt between the two undoes nothing
            self._undo.append((parts, node))
        parent[parts[-1]] = value
        return node

    def _del(self, parts: Parts) -> bool:
        if self._undo is not None:
            self._record(parts)
        if not parts:
            had = bool(self._root)
            self._root = {}
            return had
        return delete_in(self._root, parts)

    def _check(self, parts: Parts) -> None:
        check_settable(self._root, parts)

    def __repr__(self) -> str:
        return f"InMemoryBackend({len(self._root)} top-level keys)"
