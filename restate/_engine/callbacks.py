"""Callback ids: id -> callback, and callback -> ids without scanning every callback.

``subscribe(path, cb)`` reuses the id of an equal callback (``==``: a bound method made again
from the same object counts as the same callback). A reverse map keyed by the callback finds
it in O(1); only callables that cannot be hashed are compared one by one, among themselves.

Ownership: an id made by ``register_callback`` is *kept* until ``remove_callback``; an id
made implicitly by ``subscribe`` lives only while it has a subscription, so that
``unsubscribe`` releases the callback and everything it references.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["CallbackRegistry"]

Callback = Callable[..., Any]


class CallbackRegistry:
    def __init__(self) -> None:
        self.by_id: dict[Hashable, Callback] = {}
        self.kept: set[Hashable] = set()
        self._ids: dict[Callback, dict[Hashable, None]] = {}  # insertion-ordered ids
        self._unhashable: dict[Hashable, Callback] = {}

    def __len__(self) -> int:
        return len(self.by_id)

    def ids_of(self, callback: Callback) -> list[Hashable]:
        """Every id under which a callback equal to ``callback`` is registered, oldest first."""
        try:
            return list(self._ids.get(callback, ()))
        except TypeError:  # unhashable: compare with the other unhashable ones only
            return [cid for cid, cb in self._unhashable.items() if cb == callback]

    def first_id(self, callback: Callback) -> Hashable | None:
        ids = self.ids_of(callback)
        return ids[0] if ids else None

    def put(self, cid: Hashable, callback: Callback) -> None:
        """Register ``callback`` as ``cid`` (replacing what ``cid`` held)."""
        self.pop(cid)
        self.by_id[cid] = callback
        try:
            self._ids.setdefault(callback, {})[cid] = None
        except TypeError:
            self._unhashable[cid] = callback

    def pop(self, cid: Hashable) -> Callback | None:
        """Forget ``cid``; returns the callback it held (None if unknown)."""
        callback = self.by_id.pop(cid, None)
        if callback is None:
            return None
        self.kept.discard(cid)
        if self._unhashable.pop(cid, None) is None:
            self._unmap(cid, callback)
        return callback

    def _unmap(self, cid: Hashable, callback: Callback) -> None:
        ids = self._ids.get(callback)
        if ids is None or cid not in ids:  # its hash changed since: find it the slow way
            key = next(k for k, v in self._ids.items() if cid in v)
            ids, callback = self._ids[key], key
        del ids[cid]
        if not ids:
            del self._ids[callback]
