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
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import PurePosixPath
from typing import Any

from ..errors import BackendError, StateError
from ..paths import Parts, parts_to_path, parts_to_str, to_parts
from ..tree import copy_in, copy_out, delete_in, set_in
from ._interrupts import finish
from .base import MISSING, AsyncBackend, Backend
from .memory import InMemoryBackend
from .probe import holds

__all__ = ["CachingAsyncBackend", "CachingSyncBackend"]

PendingOp = tuple[Parts, str, Any]  # (path, "write" | "delete", value)


class _Queue:
    """Pending operations keyed by path, in order; an op supersedes those at or below it."""

    def __init__(self) -> None:
        self.ops: dict[Parts, tuple[str, Any]] = {}
        self._below: dict[Parts, int] = {}  # strict ancestor -> number of queued paths below

    def record(self, parts: Parts, kind: str, value: Any) -> None:
        if parts in self.ops or parts in self._below:
            for queued in [p for p in self.ops if p[: len(parts)] == parts]:
                self._remove(queued)
        for i in range(len(parts) - 1, -1, -1):
            above = self.ops.get(parts[:i])
            if above is None:
                continue
            if above[0] == "write":  # fold into the pending write above: same outcome
                if kind == "write":
                    set_in(above[1], parts[i:], value)
                else:
                    delete_in(above[1], parts[i:])
                return
            break
        self.ops[parts] = (kind, value)
        for i in range(len(parts)):
            self._below[parts[:i]] = self._below.get(parts[:i], 0) + 1

    def _remove(self, parts: Parts) -> None:
        del self.ops[parts]
        for i in range(len(parts)):
            left = self._below[parts[:i]] - 1
            if left:
                self._below[parts[:i]] = left
            else:
                del self._below[parts[:i]]

    def copy(self) -> _Queue:
        twin = _Queue()
        twin.ops = {p: (k, copy_out(v)) for p, (k, v) in self.ops.items()}
        twin._below = dict(self._below)
        return twin

    def take(self) -> list[PendingOp]:
        ops = [(parts, kind, value) for parts, (kind, value) in self.ops.items()]
        self.ops.clear()
        self._below.clear()
        return ops

    def restore(self, failed: list[PendingOp]) -> None:
        """Put back ``failed`` (not applied) before what was queued meanwhile."""
        newer = self.take()
        for parts, kind, value in failed + newer:
            self.record(parts, kind, value)


class _Cache:
    """Everything but I/O: the memory tree, the queue, the flush clock. Shared by both shells."""

    def __init__(self, inner: Any, interval: float, on: dict[str, bool]) -> None:
        self.inner = inner
        self.interval = interval
        self.on = on
        self.tree: InMemoryBackend | None = None
        self.queue = _Queue()
        self.last_flush = time.monotonic()
        self.lock = threading.RLock()
        self.undo: list[tuple[Parts, Any]] = []  # (path, what it held) while in a transaction
        self.levels: list[tuple[int, _Queue]] = []  # per open transaction: undo mark, queue

    def load(self, root: Any) -> None:
        if self.tree is None:
            self.tree = InMemoryBackend(root if type(root) is dict else {})

    def read(self, parts: Parts, default: Any) -> Any:
        assert self.tree is not None
        value = self.tree._get(parts)
        return default if value is MISSING else copy_out(value)

    def node(self, parts: Parts) -> Any:
        """The stored object at ``parts`` (not a copy), or MISSING."""
        assert self.tree is not None
        return self.tree._get(parts)

    def write(self, parts: Parts, value: Any) -> None:
        assert self.tree is not None
        value = copy_in(value, parts)
        check = getattr(self.inner, "check_value", None)
        if check is not None:
            check(parts_to_path(parts), value)
        self.tree._check(parts)
        self._remember(parts)
        self.tree._set(parts, value)
        self.queue.record(parts, "write", copy_out(value))

    def delete(self, parts: Parts) -> None:
        assert self.tree is not None
        if self.tree._get(parts) is not MISSING:  # missing here means missing below too
            self._remember(parts)
            self.tree._del(parts)
            self.queue.record(parts, "delete", None)

    def _remember(self, parts: Parts) -> None:
        if not self.levels:
            return
        assert self.tree is not None
        prev = self.tree._get(parts)
        if prev is MISSING:  # undo must also remove the dicts this write creates
            for depth in range(1, len(parts)):
                if self.tree._get(parts[:depth]) is MISSING:
                    self.undo.append((parts[:depth], MISSING))
                    break
        self.undo.append((parts, prev))

    def begin(self) -> None:
        self.levels.append((len(self.undo), self.queue.copy()))

    def end(self, depth: int, rollback: bool) -> None:
        """End level ``depth`` (and any above it); nothing if it already ended."""
        if len(self.levels) <= depth:
            return
        if rollback:
            finish(lambda: self._roll_back(depth))
        else:
            del self.levels[depth:]
            if not self.levels:
                self.undo.clear()

    def _roll_back(self, depth: int) -> None:
        """Undo level ``depth``; resumable (an entry is dropped only once undone)."""
        if len(self.levels) <= depth:
            return
        mark, queue = self.levels[depth]
        assert self.tree is not None
        while len(self.undo) > mark:
            parts, prev = self.undo[-1]
            if prev is MISSING:
                if self.tree._get(parts) is not MISSING:
                    self.tree._del(parts)
            else:
                self.tree._set(parts, prev)
            self.undo.pop()
        self.queue = queue
        del self.levels[depth:]

    def show(self, parts: Parts, value: Any) -> None:
        """Make the cache hold ``value`` (MISSING: nothing) at ``parts``, as the store does."""
        assert self.tree is not None
        if value is MISSING:
            self.tree._del(parts)
        else:
            self.tree._set(parts, copy_in(value, parts))

    def is_due(self, trigger: str) -> bool:
        return (
            not self.levels
            and self.on[trigger]
            and time.monotonic() - self.last_flush >= self.interval
        )

    def flushed(self) -> None:
        self.last_flush = time.monotonic()


def _flush_sync(cache: _Cache, inner: Backend) -> None:
    with cache.lock:
        if cache.levels:
            return  # inside a transaction: flushed after it commits
        ops = cache.queue.take()
        failed: list[tuple[PendingOp, Exception]] = []
        for i, op in enumerate(ops):
            parts, kind, value = op
            try:
                path = parts_to_path(parts)
                inner.write(path, value) if kind == "write" else inner.delete(path)
            except Exception as exc:
                failed.append((op, exc))
                if _is_rejection(exc):
                    cache.show(parts, _read_or_missing(inner, parts))
            except BaseException:  # interrupted, not refused: retried by the next flush
                cache.queue.restore(ops[i:] + _kept(failed))
                raise
        _settle(cache, failed, inner)


def _is_rejection(exc: Exception) -> bool:
    """The store refused the value or path itself (it never will take it), as opposed to
    failing to be reached (BackendError, OSError: worth retrying)."""
    return isinstance(exc, StateError) and not isinstance(exc, BackendError)


def _kept(failed: list[tuple[PendingOp, Exception]]) -> list[PendingOp]:
    return [op for op, exc in failed if not _is_rejection(exc)]


def _read_or_missing(inner: Any, parts: Parts) -> Any:
    try:
        return inner.read(parts_to_path(parts), MISSING)
    except Exception:
        return MISSING


def _settle(cache: _Cache, failed: list[tuple[PendingOp, Exception]], inner: Any) -> None:
    """After a flush: keep what failed to reach the store pending, and raise one error that
    names every path that failed. Everything else reached the store."""
    cache.queue.restore(_kept(failed))
    cache.flushed()
    if not failed:
        return
    lines = []
    for (parts, kind, _), exc in failed:
        fate = (
            "dropped: the cache shows what the store holds there"
            if _is_rejection(exc)
            else "kept pending: retried by the next flush"
        )
        lines.append(f"{kind} {parts_to_str(parts)!r} ({fate}): {exc}")
    raise BackendError(
        f"flushing the cache to {inner!r} failed for {len(failed)} of the pending operations; "
        f"every other one reached the store:\n  " + "\n  ".join(lines)
    ) from failed[0][1]


def _flush_at_exit(cache: _Cache) -> None:
    """Finalizer: flush what is pending; runs at garbage collection or interpreter exit."""
    if not cache.queue.ops:
        return
    inner = getattr(cache.inner, "sync", cache.inner)  # a sync twin avoids a new event loop
    try:
        if isinstance(inner, AsyncBackend):
            asyncio.run(_flush_async(cache, inner))
        else:
            _flush_sync(cache, inner)
    except Exception as exc:  # nobody to raise to any more
        print(f"restate: flushing a cache at exit failed: {exc!r}", file=sys.stderr)


async def _flush_async(cache: _Cache, inner: Any) -> None:
    if cache.levels:
        return
    ops = cache.queue.take()
    failed: list[tuple[PendingOp, Exception]] = []
    for i, op in enumerate(ops):
        parts, kind, value = op
        try:
            path = parts_to_path(parts)
            result = inner.write(path, value) if kind == "write" else inner.delete(path)
            if asyncio.iscoroutine(result):
                await result
        except Exception as exc:
            failed.append((op, exc))
            if _is_rejection(exc):
                cache.show(parts, await _read_or_missing_async(inner, parts))
        except BaseException:  # interrupted or cancelled: retried by the next flush
            cache.queue.restore(ops[i:] + _kept(failed))
            raise
    _settle(cache, failed, inner)


async def _read_or_missing_async(inner: Any, parts: Parts) -> Any:
    try:
        result = inner.read(parts_to_path(parts), MISSING)
        return await result if asyncio.iscoroutine(result) else result
    except Exception:
        return MISSING


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
        if self._cache.tree is None:
            self._cache.load(self._cache.inner.read(parts_to_path(()), {}))

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
