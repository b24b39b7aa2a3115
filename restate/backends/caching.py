"""``CachingSyncBackend`` / ``CachingAsyncBackend``: an in-memory copy in front of a slower store.

The wrapped store is read once, on first use, into an in-memory tree; after that reads are
served from memory and always see earlier writes and deletes (parents included). Writes and
deletes change the memory tree at once and are queued; ``flush()`` replays the queue on the
wrapped store in order, coalesced per path::

    write /a = {"x": 1}; write /a/y = 2; delete /b/c; write /b/c = 3; write /b = 4
    -> queue: write /a = {"x": 1, "y": 2}   (merged into the pending write above it)
              write /b = 4                   (supersedes everything queued at or below /b)

A write, delete or read (``flush_on_write`` / ``flush_on_delete`` / ``flush_on_read``) flushes
when ``flush_interval`` seconds have passed since the last flush (``0`` = every time). Pending
work is also flushed by ``close()``, on context-manager exit, when the cache is garbage
collected and at interpreter exit (``weakref.finalize``, which holds the queue, not the cache).
A flush applies every pending operation it can and then raises one ``BackendError`` naming
each path that failed: one the store refused (a ``StateError`` such as SerializationError) is
dropped and the cache goes back to what the store holds there; one that could not reach the
store (``BackendError``, ``OSError``) stays pending for the next flush. So one bad value never
blocks the writes after it.

Values the wrapped store would reject (``check_value`` on file and SQLite backends) raise at
``write`` time, before anything changes. The cache does not see writes other processes make
to the wrapped store; use it for a store this process owns.

This module holds the two shells (sync and async I/O); the memory tree, the queue and the
flush logic they share are in ``_cache_core.py``.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import PurePosixPath
from typing import Any

from ..paths import parts_to_path, to_parts
from ..tree import copy_out
from ._cache_core import _Cache, _flush_async, _flush_at_exit, _flush_sync
from .base import MISSING, AsyncBackend, Backend
from .probe import holds

__all__ = ["CachingAsyncBackend", "CachingSyncBackend"]


class _Options:
    def __init__(
        self,
        backend: Any,
        flush_interval: float = 5.0,
        flush_on_read: bool = False,
        flush_on_write: bool = True,
        flush_on_delete: bool = True,
    ) -> None:
        if flush_interval < 0:
            raise ValueError(f"flush_interval must be >= 0 seconds, not {flush_interval!r}")
        on = {"read": flush_on_read, "write": flush_on_write, "delete": flush_on_delete}
        self._cache = _Cache(backend, flush_interval, on)
        self._finalizer = weakref.finalize(self, _flush_at_exit, self._cache)

    @property
    def backend(self) -> Any:
        """The wrapped store."""
        return self._cache.inner

    @property
    def pending(self) -> list[tuple[PurePosixPath, str, Any]]:
        """The queued operations, oldest first: ``(path, "write" | "delete", value)``."""
        with self._cache.lock:
            return [
                (parts_to_path(p), k, copy_out(v)) for p, (k, v) in self._cache.queue.ops.items()
            ]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._cache.inner!r}, {len(self._cache.queue.ops)} pending)"


class CachingSyncBackend(_Options, Backend):
    """An in-memory cache in front of ``backend`` (a sync ``Backend``); see the module doc.

    Args:
        backend: the store to cache.
        flush_interval: seconds between flushes made by triggers (0: flush on every trigger).
        flush_on_read / flush_on_write / flush_on_delete: which operations trigger a flush.
    """

    def __init__(self, backend: Backend, *args: Any, **kwargs: Any) -> None:
        if isinstance(backend, AsyncBackend):
            raise TypeError("CachingSyncBackend wraps a sync Backend; use CachingAsyncBackend")
        super().__init__(backend, *args, **kwargs)

    def read(self, path: PurePosixPath | str, default: Any = None) -> Any:
        parts = to_parts(path)
        with self._cache.lock:
            self._ensure_loaded()
            value = self._cache.read(parts, default)
            self._maybe_flush("read")
        return value

    def exists(self, path: PurePosixPath | str) -> bool:
        """Whether ``read(path, MISSING)`` finds a node: a lookup in the memory tree (never
        flushes)."""
        parts = to_parts(path)
        with self._cache.lock:
            self._ensure_loaded()
            return self._cache.node(parts) is not MISSING

    def _occupied(self, path: PurePosixPath | str, ignore: frozenset[str] = frozenset()) -> bool:
        parts = to_parts(path)
        with self._cache.lock:
            self._ensure_loaded()
            return holds(self._cache.node(parts), ignore)

    def write(self, path: PurePosixPath | str, value: Any) -> None:
        parts = to_parts(path)
        with self._cache.lock:
            self._ensure_loaded()
            self._cache.write(parts, value)
            self._maybe_flush("write")

    def delete(self, path: PurePosixPath | str) -> None:
        parts = to_parts(path)
        with self._cache.lock:
            self._ensure_loaded()
            self._cache.delete(parts)
            self._maybe_flush("delete")

    def flush(self) -> None:
        """Apply the pending operations to the wrapped store, in order. On an error the
        operations not applied stay pending and the error propagates."""
        _flush_sync(self._cache, self._cache.inner)

    @contextmanager
    def transaction(self) -> Iterator[CachingSyncBackend]:
        """Group writes and deletes: nothing is flushed until the outermost one commits, and
        an exception puts the cache and its queue back as they were. Nestable."""
        with self._cache.lock:
            self._ensure_loaded()
            depth = len(self._cache.levels)
            try:
                self._cache.begin()
                yield self
                self._cache.end(depth, rollback=False)
            except BaseException:
                self._cache.end(depth, rollback=True)
                raise
            self._maybe_flush("write")

    def close(self) -> None:
        """Flush, then close the wrapped store."""
        self.flush()
        self._finalizer.detach()
        self._cache.inner.close()

    def _ensure_loaded(self) -> None:
        """Load the store on first use; roll back a transaction an interrupt left open
        (``_Cache.heal``). Every operation calls it holding the lock."""
        if self._cache.tree is None:
            self._cache.load(self._cache.inner.read(parts_to_path(()), {}))
        self._cache.heal()

    def _maybe_flush(self, trigger: str) -> None:
        if self._cache.queue.ops and self._cache.is_due(trigger):
            self.flush()


class CachingAsyncBackend(_Options, AsyncBackend):
    """The async twin of ``CachingSyncBackend``; ``backend`` may be sync or async."""

    def __init__(self, backend: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(backend, *args, **kwargs)
        self._flushing: asyncio.Lock | None = None

    async def read(self, path: PurePosixPath | str, default: Any = None) -> Any:
        parts = to_parts(path)
        await self._ensure_loaded()
        value = self._cache.read(parts, default)
        await self._maybe_flush("read")
        return value

    async def exists(self, path: PurePosixPath | str) -> bool:
        """See ``CachingSyncBackend.exists``."""
        parts = to_parts(path)
        await self._ensure_loaded()
        return self._cache.node(parts) is not MISSING

    async def _occupied(
        self, path: PurePosixPath | str, ignore: frozenset[str] = frozenset()
    ) -> bool:
        parts = to_parts(path)
        await self._ensure_loaded()
        return holds(self._cache.node(parts), ignore)

    async def write(self, path: PurePosixPath | str, value: Any) -> None:
        parts = to_parts(path)
        await self._ensure_loaded()
        self._cache.write(parts, value)
        await self._maybe_flush("write")

    async def delete(self, path: PurePosixPath | str) -> None:
        parts = to_parts(path)
        await self._ensure_loaded()
        self._cache.delete(parts)
        await self._maybe_flush("delete")

    async def flush(self) -> None:
        """Apply the pending operations to the wrapped store, in order (see the sync twin)."""
        if self._flushing is None:
            self._flushing = asyncio.Lock()
        async with self._flushing:
            await _flush_async(self._cache, self._cache.inner)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[CachingAsyncBackend]:
        """See ``CachingSyncBackend.transaction``."""
        await self._ensure_loaded()
        depth = len(self._cache.levels)
        try:
            self._cache.begin()
            yield self
            self._cache.end(depth, rollback=False)
        except BaseException:
            self._cache.end(depth, rollback=True)
            raise
        await self._maybe_flush("write")

    async def close(self) -> None:
        """Flush, then close the wrapped store."""
        await self.flush()
        self._finalizer.detach()
        result = self._cache.inner.close()
        if asyncio.iscoroutine(result):
            await result

    async def _ensure_loaded(self) -> None:
        if self._cache.tree is None:
            root = self._cache.inner.read(parts_to_path(()), {})
            self._cache.load(await root if asyncio.iscoroutine(root) else root)

    async def _maybe_flush(self, trigger: str) -> None:
        if self._cache.queue.ops and self._cache.is_due(trigger):
            await self.flush()
