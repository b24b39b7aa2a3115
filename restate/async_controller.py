"""``ControllerAsync``: drives the same engine plans as ``ControllerSync``, awaiting I/O.

It takes ``AsyncBackend``s and sync ``Backend``s. Every method that touches state is a
coroutine; registration methods stay plain calls. Concurrent tasks are serialised by a
task-reentrant lock: a callback awaited during a write may write again (its notifications
run in the next round), while other tasks wait for the write to finish.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any, TypeVar, cast

from ._calling import _maybe_await
from ._engine.engine import Engine
from ._engine.requests import (
    BEGIN,
    CALL,
    COMMIT,
    DELETE,
    EXISTS,
    NO_DEFAULT,
    READ,
    ROLLBACK,
    WRITE,
    Steps,
    user_value,
)
from ._engine.subscriptions import Change
from ._engine.tracking import Footprint, record_read
from ._healing import AsyncBatches
from ._runs import AsyncRuns
from .backends.base import AsyncBackend, Backend
from .backends.memory import InMemoryBackend
from .controller_base import ControllerBase
from .errors import StateError
from .missing import MISSING
from .paths import Parts, PathLike, to_parts

__all__ = ["ControllerAsync"]

log = logging.getLogger("restate")
T = TypeVar("T")


class _TaskLock:
    """An asyncio lock the owning task may re-enter."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self._depth = 0

    def locked(self) -> bool:
        """Whether a task holds the lock (or is between acquiring it and its first step)."""
        return self._lock.locked()

    def owned_by(self, task: Any) -> bool:
        """Whether ``task`` (the current one) holds the lock."""
        return self._owner is not None and self._owner is task

    @asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        task = asyncio.current_task()
        if self._owner is task and task is not None:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        await self._lock.acquire()
        self._owner, self._depth = task, 1
        try:
            yield
        finally:
            self._owner, self._depth = None, 0
            self._lock.release()


def _current_task() -> Hashable:
    """Who writes, for the scheduler (``Scheduler.key``): the task (None outside one)."""
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop (a registration from plain code)
        return None


class ControllerAsync(ControllerBase):
    """Reactive state for asyncio code: the ``ControllerSync`` API, awaited
    (docs/semantics.md#controllers).

    Args:
        backend: an ``AsyncBackend`` or a sync ``Backend``; ``InMemoryBackend()`` when omitted.
        max_rounds: bound on rounds of callback-triggered writes (then ``CycleError``).
    """

    _backend: Backend | AsyncBackend

    def __init__(
        self, backend: Backend | AsyncBackend | None = None, *, max_rounds: int = 100
    ) -> None:
        self._lock = _TaskLock()
        self._guard = nullcontext()
        self._engine = Engine(self, max_rounds)
        # a write's "now" functions run in the writing task once it has released the lock
        self._engine.scheduler.key = _current_task
        self._soon = self._engine.scheduler.soon  # (the same dict, kept: a cheap check)
        self._runs = AsyncRuns(self)  # due tracked functions, awaited outside the lock
        self._run_soon = self._runs.run_soon  # (as ControllerSync's: no extra coroutine)
        # batch() contexts and backend transactions, mended after interrupts (_healing.py)
        self._batching = AsyncBatches(self)
        self._txns = self._batching.txns  # (the same list)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._early: list[list[Change]] = []
        self._sync_reads = False  # the store reads without awaiting (set by _attach)
        self._attach(InMemoryBackend() if backend is None else backend)

    @property
    def backend(self) -> Backend | AsyncBackend:
        return self._backend

    def _attach(self, backend: Backend | AsyncBackend) -> None:
        self._bind_backend(backend)
        engine = self._engine
        if isinstance(backend, AsyncBackend) or inspect.iscoroutinefunction(backend.read):
            engine.io.read = engine.io.write = None  # requests go through the awaiting driver
            self._sync_reads = False
        else:  # a sync store needs no awaiting: the hot path calls it directly
            engine.io.read, engine.io.write = self._read_root, self._write
            self._sync_reads = True
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None

    async def set_backend(self, backend: Backend | AsyncBackend) -> None:
        """Swap the store; registrations stay and react to the difference (see ControllerSync)."""
        try:
            async with self._lock.held():
                if self._engine.batches.depth:
                    raise StateError("cannot switch backends inside a batch")
                old = await self._drive(self._engine.snapshot(()))
                self._stop_listening()
                self._closed = False  # follows the new store if anything listens
                self._attach(backend)
                new = await self._drive(self._engine.snapshot(()))
                await self._drive(self._engine.external([Change((), old, new)]))
        except Exception as exc:
            if self._soon:
                await self._run_soon(exc)
            raise
        if self._soon:
            await self._run_soon(None)

    def close(self) -> None:
        """Stop following the backend's changes (the backend stays open). As with
        ``ControllerSync``, following starts at the first subscription, listener, derivation
        or tracked function and lasts until ``close()``."""
        self._closed = True
        self._stop_listening()

    def _on_external(self, raw: Iterable[tuple[Any, ...]]) -> None:
        """Called by a watching backend, possibly from another thread."""
        changes = [Change(to_parts(c[0]), *c[1:4]) for c in raw]  # (path, prev, new[, payload])
        loop = self._loop
        if loop is None:  # not yet used on a loop: react when it first is
            self._early.append(changes)
            return
        if not loop.is_closed():
            loop.call_soon_threadsafe(lambda: loop.create_task(self._react(changes)))

    async def _react(self, changes: list[Change]) -> None:
        try:
            await self._run(self._engine.external(changes))
        except Exception:
            log.exception("a callback failed while reacting to another process's write")

    # ----- the driver ------------------------------------------------------------------------

    async def _drive(self, gen: Steps[T]) -> T:
        batching = self._batching
        if batching.is_abandoned():
            await batching.abandon_batch()
        try:
            return await self._steps(gen)
        finally:
            if batching.is_abandoned():
                await batching.abandon_batch()  # an interrupt cut a batch short

    async def _steps(self, gen: Steps[T]) -> T:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            for changes in self._early:
                self._loop.create_task(self._react(changes))
            self._early.clear()
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                op = gen.send(value) if error is None else gen.throw(error)
            except StopIteration as stop:
                return cast(T, stop.value)  # what the engine's Steps[T] returned
            error = None
            try:
                value = await self._execute(op)
            except BaseException as exc:
                value, error = None, exc

    async def _execute(self, op: tuple[Any, ...]) -> Any:
        kind = op[0]
        if kind == READ:
            value = await _maybe_await(self._read(op[1]))
            return {} if value is MISSING and not op[1] else value
        if kind == CALL:
            return await _maybe_await(op[1](op[2]))
        if kind == EXISTS:
            return await _maybe_await(self._exists(op[1]))
        if kind == WRITE:
            return await _maybe_await(self._write(op[1], op[2]))
        if kind == DELETE:
            return await _maybe_await(self._delete(op[1]))
        if kind == BEGIN:
            await self._batching.open_txn(op[1])
        elif kind in (COMMIT, ROLLBACK):
            await self._batching.close_txn(op[1] if kind == ROLLBACK else None)
        return None

    async def _run(self, gen: Steps[T]) -> T:
        """Drive a write under the lock, then run the ``"now"`` functions it reached."""
        try:
            async with self._lock.held():
                done = await self._drive(gen)
        except Exception as exc:
            if self._soon:
                await self._run_soon(exc)
            raise
        if self._soon:
            await self._run_soon(None)
        return done

    # ----- state ---------------------------------------------------------------------------

    async def get_state(
        self, path: PathLike, default: Any = None, write_default: bool = False
    ) -> Any:
        """The value at ``path`` (an isolated copy), or ``default`` when missing.

        A read never sees another task's write or batch half done: it waits for the lock --
        except on a store that reads without awaiting (the memory store, a sync backend)
        while no task holds the lock, where nothing else can run until the read returns.
        """
        parts = to_parts(path)
        if self._sync_reads and not write_default and not self._lock.locked():
            if Footprint.active:  # (record_read's own first check, without the call)
                record_read(self, parts)
            value = self._read(parts)  # no await from the check to the return
            if value is MISSING:
                return default if parts else {}
            return user_value(value) if self._engine.aliasing else value
        if write_default:
            return await self._run(self._read_or_create(parts, default))
        async with self._lock.held():
            record_read(self, parts)
            value = await _maybe_await(self._read(parts))
            if value is MISSING:
                return default if parts else {}
            return user_value(value) if self._engine.aliasing else value

    def _read_or_create(self, parts: Parts, default: Any) -> Steps[Any]:
        """``get_state(path, default, write_default=True)`` as one write: the read and the
        write of a missing node in one locked step."""
        record_read(self, parts)
        value = yield (READ, parts)
        if value is not MISSING:
            return user_value(value) if self._engine.aliasing else value
        if not parts:
            return {}
        yield from self._engine.set_state(parts, default)
        return default

    def set_state(
        self,
        path: PathLike,
        value: Any,
        eq_func: Callable[[Any, Any], Any] | None = None,
        default: Any = NO_DEFAULT,
        payload: Any = None,
        skip_notify: bool = False,
    ) -> Awaitable[bool]:
        """Write ``value`` at ``path`` (see ``ControllerSync.set_state``)."""
        gen = self._engine.set_state(to_parts(path), value, eq_func, default, payload, skip_notify)
        return self._run(gen)

    def del_state(
        self, path: PathLike, payload: Any = None, skip_notify: bool = False
    ) -> Awaitable[bool]:
        """Delete the node at ``path`` and its subtree; False when it was missing."""
        return self._run(self._engine.del_state(to_parts(path), payload, skip_notify))

    def update(
        self, path: PathLike, fn: Callable[[Any], Any], default: Any = None, payload: Any = None
    ) -> Awaitable[Any]:
        """Atomically write ``fn(current value or default)`` (fn may be async); returns it.

        ``fn`` may run twice on a backend shared by several processes (Redis): see
        ``ControllerSync.update``. Only the committed result is written and notified."""
        return self._run(self._engine.update(to_parts(path), fn, default, payload))

    def ping(self, path: PathLike, default: Any = None, payload: Any = None) -> Awaitable[None]:
        """Notify ``path`` and its ancestors without writing."""
        return self._run(self._engine.ping(to_parts(path), default, payload))

    def derive(
        self,
        dest: PathLike,
        source: PathLike,
        transform: Callable[[Any], Any],
        payload: Any = None,
    ) -> Awaitable[Hashable]:
        """Keep ``dest`` equal to ``transform(value at source)``; returns its id."""
        self._listen()  # before its first read: a write landing after it is heard
        gen = self._engine.derive(to_parts(dest), (to_parts(source),), transform, False, payload)
        return self._run(gen)

    def derive_many(
        self,
        dest: PathLike,
        sources: Iterable[PathLike],
        transform: Callable[[Any], Any],
        payload: Any = None,
    ) -> Awaitable[Hashable]:
        """Keep ``dest`` equal to ``transform(DeriveData)`` of several sources."""
        self._listen()
        gen = self._engine.derive(to_parts(dest), self._sources(sources), transform, True, payload)
        return self._run(gen)

    async def track(
        self,
        callback: Callable[..., Any],
        payload: Any = None,
        *,
        name: str | None = None,
        policy: str = "now",
        on_mark: Callable[[Hashable], Any] | None = None,
        raise_errors: bool = True,
    ) -> Hashable:
        """Run ``callback(event)`` (awaited if async) now and whenever what it read changes;
        the options as in ``ControllerSync.track``. The first run is awaited without the
        controller's lock, as a re-run is (it may await a task that writes state); a write
        that reaches it meanwhile makes it run again (or due, as its policy says)."""
        self._listen()  # before its first run: a write landing during it is heard
        tracker = self._engine.register_tracker(
            callback, payload, name, policy, on_mark, raise_errors
        )
        scheduler, since = self._engine.scheduler, self._engine.scheduler.marks
        scheduler.hold()  # its writes mark their readers due, as in run_deferred()
        return await self._runs.first_run(tracker, since)

    async def run_deferred(
        self, *, lazy: bool = False, only: Iterable[Hashable] | None = None
    ) -> int:
        """Run the tracked functions marked due (see ``ControllerSync.run_deferred``).

        The functions are awaited without holding the controller's lock: other tasks keep
        writing, and a function they make due again runs once more, for the latest value."""
        return await self._runs.run_deferred(lazy=lazy, only=only)

    def deferring(self) -> AbstractAsyncContextManager[ControllerAsync]:
        """``async with controller.deferring():`` writes from this thread's tasks only mark
        tracked functions due; the end of the outermost block awaits ``run_deferred()``."""
        return self._runs.deferring()

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[ControllerAsync]:
        """``async with controller.batch():`` -- atomic, coalesced, rolled back on exception
        (cancellation included)."""
        try:
            async with self._batching.batch_locked():
                yield self
        except Exception as exc:
            if self._soon:
                await self._run_soon(exc)
            raise
        if self._soon:  # the "now" functions its end reached, after the lock is released
            await self._run_soon(None)
