"""The caching backends' core, without the sync/async shells (``caching.py``): the memory
tree, the queue of pending operations coalesced per path, the flush clock, and the flush
itself (apply what can be applied, put back what could not reach the store, show the store's
value again where it refused one).
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from typing import Any

from ..errors import BackendError, StateError
from ..paths import Parts, parts_to_path, parts_to_str
from ..tree import copy_in, copy_out, delete_in, set_in
from ._interrupts import deferred_interrupts, finish
from .base import MISSING, AsyncBackend, Backend
from .memory import InMemoryBackend

__all__ = ["PendingOp", "_Cache", "_flush_async", "_flush_at_exit", "_flush_sync"]

PendingOp = tuple[Parts, str, Any]  # (path, "write" | "delete", value)
_Change = tuple[Parts, str, Any, Any]  # (path, kind, value for the tree, value for the queue)


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

    def discard(self, parts: Parts) -> None:
        """Forget the operation queued at ``parts`` (applied, or refused by the store)."""
        if parts in self.ops:
            self._remove(parts)

    def _remove(self, parts: Parts) -> None:
        # The operation goes first: an interrupt between the two leaves counts too high,
        # which only makes record() look for queued paths below that are not there.
        del self.ops[parts]
        for i in range(len(parts)):
            left = self._below[parts[:i]] - 1
            if left:
                self._below[parts[:i]] = left
            else:
                del self._below[parts[:i]]

    def reindex(self) -> None:
        """Recount the queued paths below each path from ``ops`` itself."""
        self._below.clear()
        for parts in self.ops:
            for i in range(len(parts)):
                self._below[parts[:i]] = self._below.get(parts[:i], 0) + 1

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
        self.inflight: _Change | None = None  # a change under way (see _change)
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
        self._change((parts, "write", value, copy_out(value)))

    def delete(self, parts: Parts) -> None:
        assert self.tree is not None
        if self.tree._get(parts) is not MISSING:  # missing here means missing below too
            self._change((parts, "delete", MISSING, None))

    def _change(self, change: _Change) -> None:
        """Change the tree and queue the same change for the store. Noted first, forgotten
        last: an interrupt in between leaves it to ``heal()`` (or a rollback) to finish,
        so the cache never shows a change its queue will not write."""
        self.inflight = change
        self._remember(change[0])
        self._apply(change)
        self.inflight = None

    def _apply(self, change: _Change) -> None:
        """Idempotent: applying a change again has the same outcome."""
        assert self.tree is not None
        parts, kind, value, queued = change
        if kind == "write":
            self.tree._set(parts, value)
        else:
            self.tree._del(parts)
        self.queue.record(parts, kind, queued)

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

    def heal(self) -> None:
        """Finish what an interrupt cut short (call holding ``lock`` once).

        A KeyboardInterrupt between a change of the tree and its queued operation leaves
        ``inflight``: the change is finished now (it may have been half applied; each step
        is idempotent), undo entry first. One landing on the first bytecode of the
        transaction's ``except`` block skips its rollback: the level stays open, nothing is
        flushed again and the cache keeps the batch's writes. A sync transaction holds
        ``lock`` from start to end, so when this thread holds it only once -- the caller's
        hold -- none is running and an open level was lost: roll it back."""
        count = getattr(self.lock, "_recursion_count", None)
        if count is None or count() != 1:
            return
        change = self.inflight
        if change is not None:
            self.queue.reindex()  # an interrupted record() may have left the counts short
            self._remember(change[0])  # a duplicate entry undoes to the same value
            self._apply(change)
            self.inflight = None
        if self.levels:
            self.end(0, rollback=True)

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
        self.inflight = None  # a change cut short inside the level: undone with it
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
    """Apply the queue in order; an operation leaves the queue only once applied (or refused),
    so an interrupt at any point leaves the rest, and the one in flight, for the next flush
    (applying one again has the same outcome)."""
    with cache.lock:
        cache.heal()
        if cache.levels:
            return  # inside a transaction: flushed after it commits
        failed: list[tuple[PendingOp, Exception]] = []
        for parts, (kind, value) in list(cache.queue.ops.items()):
            try:
                path = parts_to_path(parts)
                inner.write(path, value) if kind == "write" else inner.delete(path)
            except Exception as exc:
                failed.append(((parts, kind, value), exc))
                if _is_rejection(exc):
                    shown = _read_or_missing(inner, parts)
                    with deferred_interrupts():
                        cache.queue.discard(parts)
                        cache.show(parts, shown)
                continue
            cache.queue.discard(parts)
        cache.flushed()
        _raise_failed(failed, inner)


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
    """After an async flush: keep what failed to reach the store pending, and raise one error
    that names every path that failed. Everything else reached the store."""
    cache.queue.restore(_kept(failed))
    cache.flushed()
    _raise_failed(failed, inner)


def _raise_failed(failed: list[tuple[PendingOp, Exception]], inner: Any) -> None:
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
