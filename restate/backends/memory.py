"""``InMemoryBackend``: the default store, a nested dict. Leaf reads are O(depth)."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from ..paths import Parts, to_parts
from ..tree import check_settable, copy_in, copy_out, delete_in, set_in
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
        if not parts:
            if type(value) is not dict:
                raise TypeError(f"the root must be a dict, not {type(value).__name__}")
            self._root = value
            return
        set_in(self._root, parts, value)

    def _del(self, parts: Parts) -> bool:
        if not parts:
            had = bool(self._root)
            self._root = {}
            return had
        return delete_in(self._root, parts)

    def _check(self, parts: Parts) -> None:
        check_settable(self._root, parts)

    def __repr__(self) -> str:
        return f"InMemoryBackend({len(self._root)} top-level keys)"
