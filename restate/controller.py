"""``ControllerSync``: drives the engine's plans with a sync ``Backend`` under one RLock.

Thread safety: every operation (a write with its whole dispatch, a batch from enter to exit,
a read) holds the controller's RLock, so writes from many threads never interleave. A
callback run inside a write (a subscriber, listener, transform or ``"eager"`` tracked
function) therefore must not wait for another thread that writes to the same controller.
Tracked functions of the other policies run outside the lock: a ``"now"`` one, re-run by a
write, runs in the writing thread once the write has released the lock (``_run_soon``),
before the write call returns.
The one exception, a leaf read of the memory store while nothing runs, reads without the
lock and checks that nothing ran meanwhile (a seqlock: see ``get_state``).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Hashable, Iterable
from contextlib import AbstractContextManager
from typing import Any, TypeVar, cast

from ._calling import _call, _settle
from ._engine.direct import deliver_external, set_direct
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
)
from ._engine.subscriptions import Change
from ._engine.tracking import Footprint, record_read
from ._healing import SyncBatches
from ._healing import abandon_engine_batch as abandon_engine_batch  # (imported from here)
from ._healing import is_open as is_open
from ._runs import SyncRuns
from .backends.base import AsyncBackend, Backend
from .backends.memory import InMemoryBackend
from .controller_base import ControllerBase
from .errors import StateError
from .missing import MISSING
from .paths import Parts, PathLike, parts_to_path, plain_cache, to_parts
from .tree import IMMUTABLE, copy_out

__all__ = ["ControllerSync"]

log = logging.getLogger("restate")
T = TypeVar("T")

# The lock-free read relies on the GIL running the reader's and the writer's steps one at a
# time, in program order; a free-threaded build (no GIL) always reads under the lock.
LOCK_FREE_READS: bool = getattr(sys, "_is_gil_enabled", lambda: True)()
_dict_get = dict.get


class ControllerSync(ControllerBase):
    """Reactive state over a synchronous backend (docs/semantics.md#controllers).

    Args:
        backend: where the state lives; ``InMemoryBackend()`` when omitted.
        max_rounds: how many rounds of callback-triggered writes one write may cause before
            ``CycleError`` stops a feedback loop.
    """

    _backend: Backend

    def __init__(self, backend: Backend | None = None, *, max_rounds: int = 100) -> None:
        self._lock = threading.RLock()
        self._guard = self._lock
        self._engine = Engine(self, max_rounds)
        # the lock-free read (see get_state): odd while an operation that may change the
        # state runs, and 2 more after it than before it
        self._version = 0
        self._memory: InMemoryBackend | None = None
        # the "now" functions each writer's writes reached, run after the lock is released
        self._soon = self._engine.scheduler.soon  # (the same dict, kept: a cheap check)
        # batch() contexts and backend transactions, mended after interrupts (_healing.py);
        # its containers are read here too (the same objects: cheap checks on the hot path)
        self._batching = SyncBatches(self)
        self._txns = self._batching.txns
        self._owners = self._batching.owners
        self._runs = SyncRuns(self)  # due tracked functions, run outside the lock (_runs.py)
        # after a write released the lock, the "now" functions it reached: the runs' own
        # method, so the hand-over costs a write no extra call
        self._run_soon = self._runs.run_soon
        self._attach(InMemoryBackend() if backend is None else backend)

    # ----- backend plumbing ----------------------------------------------------------------

    @property
    def backend(self) -> Backend:
        return self._backend

    def _attach(self, backend: Backend) -> None:
        if isinstance(backend, AsyncBackend):
            raise TypeError(
                f"{type(backend).__name__} is an AsyncBackend; use ControllerAsync with it, or a "
                f"sync Backend with ControllerSync"
            )
        self._bind_backend(backend)
        engine = self._engine
        io = engine.io
        io.read, io.write, io.call, io.settle = self._read_root, self._write, _call, _settle
        io.replace = None
        if isinstance(backend, InMemoryBackend):  # its root is a dict, never missing
            io.read = backend._get
            if type(backend)._set is InMemoryBackend._set:  # (a subclass may watch writes)
                io.replace = backend._replace
        # exactly the memory store: a subclass may read differently from its _root
        self._memory = backend if type(backend) is InMemoryBackend and LOCK_FREE_READS else None
        io.exists, io.drive = self._exists, self._drive
        swap = getattr(backend, "swap", None)  # an optional capability (backends/base.py)
        io.swap = (lambda p, v: swap(parts_to_path(p), v)) if callable(swap) else None

    def set_backend(self, backend: Backend) -> None:
        """Swap the store: its content becomes the state. Subscriptions, derivations and
        tracked functions stay; they react to the difference between the old and new state."""
        try:
            with self._lock:
                self._switch(backend)
        except Exception as exc:
            if self._soon:
                self._run_soon(exc)
            raise
        if self._soon:
            self._run_soon(None)

    def _switch(self, backend: Backend) -> None:
        if self._engine.batches.depth:
            raise StateError("cannot switch backends inside a batch")
        old = self._drive(self._engine.snapshot(()))
        version = self._version  # the swap and the reaction are one change for readers
        try:
            self._version = version | 1  # (marked inside the try: see get_state)
            self._stop_listening()
            self._closed = False  # follows the new store if anything listens
            self._attach(backend)
            new = self._drive(self._engine.snapshot(()))
            self._drive(self._engine.external([Change((), old, new)]))
        finally:
            self._version = version + 2

    def close(self) -> None:
        """Stop following the backend's changes (it stays open; close it yourself).

        A controller follows them (on a backend with ``watch()``, as Redis) from its first
        subscription, listener, derivation or tracked function until ``close()``, which also
        keeps a later registration from starting it again (``set_backend()`` does).
        """
        self._closed = True
        self._stop_listening()

    def __enter__(self) -> ControllerSync:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _on_external(self, raw: list[tuple[Any, ...]]) -> None:
        try:
            try:
                with self._lock:
                    self._react(raw)
            finally:  # (in the follower's thread, which has no caller to give errors to)
                if self._soon:
                    self._run_soon(None)
        except Exception:
            log.exception("a callback failed while reacting to another process's write")

    def _react(self, raw: list[tuple[Any, ...]]) -> None:
        if len(raw) == 1 and not (self._owners or self._txns):  # one remote commit
            path, prev, new, *payload = raw[0]  # heard by plain subscriptions only:
            parts, extra = to_parts(path), payload[0] if payload else None  # no round
            if deliver_external(self._engine, parts, prev, new, extra):
                return
        changes = [Change(to_parts(c[0]), *c[1:4]) for c in raw]
        self._drive(self._engine.external(changes))

    # ----- the driver ------------------------------------------------------------------------

    def _drive(self, gen: Steps[T]) -> T:
        version = self._version  # odd from before anything changes (see get_state)
        try:
            self._version = version | 1
            if self._owners or self._txns:
                self._batching.check_batch(sys._getframe(1))
            try:
                return self._steps(gen)
            finally:
                if self._engine.batches.depth != len(self._owners) or self._txns:
                    self._batching.heal()  # an interrupt may have cut a batch short (_healing.py)
        finally:
            self._version = version + 2

    def _steps(self, gen: Steps[T]) -> T:
        value: Any = None
        error: BaseException | None = None
        send, read, write = gen.send, self._read, self._write
        while True:
            try:
                op = send(value) if error is None else gen.throw(error)
            except StopIteration as stop:
                return cast(T, stop.value)  # what the engine's Steps[T] returned
            error = None
            try:  # the frequent requests inline, the rest in _execute
                kind = op[0]
                if kind == READ:
                    value = read(op[1])
                    if value is MISSING and not op[1]:
                        value = {}
                elif kind == WRITE:
                    value = write(op[1], op[2])
                elif kind == CALL:
                    value = _call(op[1], op[2])
                else:
                    value = self._execute(op)
            except BaseException as exc:
                value, error = None, exc

    def _execute(self, op: tuple[Any, ...]) -> Any:
        kind = op[0]
        if kind == EXISTS:
            return self._exists(op[1])
        if kind == DELETE:
            return self._delete(op[1])
        if kind == BEGIN:
            self._batching.open_txn(op[1])
        elif kind == COMMIT:
            self._batching.close_txn(None)
        elif kind == ROLLBACK:
            self._batching.close_txn(op[1])
        return None

    def _write_op(self, gen: Steps[T]) -> T:
        """Drive a write under the lock, then run the ``"now"`` functions it reached."""
        try:
            with self._lock:
                done = self._drive(gen)
        except Exception as exc:
            if self._soon:
                self._run_soon(exc)
            raise
        if self._soon:
            self._run_soon(None)
        return done

    # ----- state ---------------------------------------------------------------------------

    def get_state(self, path: PathLike, default: Any = None, write_default: bool = False) -> Any:
        """The value at ``path`` (an isolated copy), or ``default`` when missing.

        With ``write_default=True`` a missing node is written with ``default`` (notifying).

        A read never sees a write, its dispatch or a batch of another thread half done. On
        the memory store an immutable leaf is read without the lock when no operation or
        batch is running (checked before and after the read); anything else waits for the
        lock.
        """
        try:
            parts = plain_cache[path]  # type: ignore[index]  # a str seen before, else to_parts
        except (KeyError, TypeError):
            parts = to_parts(path)
        # The lock-free read, inline (the hot path): a seqlock. Everything that may change the
        # state (_drive, the direct write, set_backend) makes _version odd before its first
        # change and, after its last, sets it to 2 more than it found (a nested operation
        # found it odd and leaves it odd); a batch is in _owners from begin to end. A read
        # that finds _version even and no batch open before it, and _version unchanged after
        # it, overlapped no change: it saw a settled state. Otherwise it takes the lock, as
        # do tracked reads (Footprint.active) and dicts and lists (copied out). (The mark is
        # made inside the try whose finally unmarks it, so an interrupt cannot land between
        # them; one landing on the finally's first bytecode leaves _version odd: every later
        # read then takes the lock -- slower, never wrong.)
        seen = self._version
        store = self._memory
        if store is not None and not (seen & 1 or self._owners or Footprint.active):
            node: Any = store._root
            try:  # the store's containers are plain dicts (copy_in): dict.get walks them,
                for seg in parts:  # and raises TypeError on a leaf or MISSING
                    node = _dict_get(node, seg, MISSING)
            except TypeError:
                node = MISSING
            if type(node) in IMMUTABLE and self._version == seen:
                return node
        return self._locked_read(parts, default, write_default)

    def _locked_read(self, parts: Parts, default: Any, write_default: bool = False) -> Any:
        if write_default:
            return self._read_or_create(parts, default)
        with self._lock:
            if self._owners:
                self._batching.close_left_batches()
            if Footprint.active:  # (record_read's own first check, without the call)
                record_read(self, parts)
            value = self._read(parts)
            if value is MISSING:
                return default if parts else {}
            if type(value) in IMMUTABLE or not self._engine.aliasing:
                return value
            return copy_out(value)

    def _read_or_create(self, parts: Parts, default: Any) -> Any:
        """``get_state(path, default, write_default=True)``: the read and the write of a
        missing node in one locked step."""
        try:
            with self._lock:
                value = self._locked_read(parts, MISSING)
                if value is not MISSING:
                    return value
                self._drive(self._engine.set_state(parts, default))
        except Exception as exc:
            if self._soon:
                self._run_soon(exc)
            raise
        if self._soon:
            self._run_soon(None)
        return default

    def set_state(
        self,
        path: PathLike,
        value: Any,
        eq_func: Callable[[Any, Any], Any] | None = None,
        default: Any = NO_DEFAULT,
        payload: Any = None,
        skip_notify: bool = False,
    ) -> bool:
        """Write ``value`` at ``path``; False (and nothing done) when ``eq_func(value, prev)``
        (default ``==``) holds. ``default`` is the previous value assumed for a missing node;
        when omitted, a missing node never equals the new value (writing None creates it).

        Raises InvalidPathError (bad path or dict key), PathConflictError (a leaf above),
        SerializationError (the backend cannot store it) -- all before anything changes.

        On a persistent store (files, SQLite, ...) a write that nothing can observe -- no
        subscription, derivation, tracked read or ``on_changes`` listener reaches the path,
        and no ``eq_func`` or ``default`` is given -- does not read the previous value first:
        it is written, and True returned, even if the same value was there.
        """
        parts = to_parts(path)
        try:
            with self._lock:
                engine = self._engine
                # the engine's steps without a generator (_engine/direct.py), guarded as
                # _drive is (the differential tests switch direct_writes off)
                owners, quiet = self._owners, False
                version = self._version  # as in _drive: odd while it runs (see get_state)
                try:
                    self._version = version | 1
                    if owners or self._txns:
                        quiet = (
                            eq_func is None and engine.batches.depth > 0
                        )  # calls nothing of the user's
                        batching = self._batching
                        if not owners:
                            batching.heal()
                        elif sys._getframe(1) is not batching.inside:  # (written again and
                            batching.enter_check(sys._getframe(1))  # again from one frame)
                    try:
                        if engine.direct_writes:
                            done = set_direct(
                                engine, parts, value, eq_func, default, payload, skip_notify
                            )
                        else:
                            done = self._drive(
                                engine.set_state(
                                    parts, value, eq_func, default, payload, skip_notify
                                )
                            )
                    finally:
                        # a quiet write (batched: its delivery waits for the batch's end) runs no
                        # code that could leave a batch() of its own behind: only an interrupt can
                        # make the count and the open batch() contexts disagree
                        if engine.batches.depth != len(owners) or (self._txns and not quiet):
                            self._batching.heal()  # (_healing.py)
                finally:
                    self._version = version + 2
        except Exception as exc:
            if self._soon:
                self._run_soon(exc)
            raise
        if self._soon:  # "now" functions it reached run here, after the lock is released
            self._run_soon(None)
        return done

    def del_state(self, path: PathLike, payload: Any = None, skip_notify: bool = False) -> bool:
        """Delete the node at ``path`` and its subtree; False when it was missing."""
        return self._write_op(self._engine.del_state(to_parts(path), payload, skip_notify))

    def update(
        self, path: PathLike, fn: Callable[[Any], Any], default: Any = None, payload: Any = None
    ) -> Any:
        """Atomically write ``fn(current value or default)`` at ``path``; returns it.

        ``fn`` should be a pure function of its argument: on a backend shared by several
        processes (Redis) it may run twice -- once optimistically, and again with the new
        value when another process wrote ``path`` meanwhile. Only the committed result is
        written and notified (one change per update, never one per run)."""
        return self._write_op(self._engine.update(to_parts(path), fn, default, payload))

    def ping(self, path: PathLike, default: Any = None, payload: Any = None) -> None:
        """Notify ``path`` and its ancestors without writing (prev == new)."""
        self._write_op(self._engine.ping(to_parts(path), default, payload))

    def derive(
        self,
        dest: PathLike,
        source: PathLike,
        transform: Callable[[Any], Any],
        payload: Any = None,
    ) -> Hashable:
        """Keep ``dest`` equal to ``transform(value at source)``; returns its id
        (docs/semantics.md#derived-state).

        Raises CycleError (registering nothing) when ``dest`` feeds its own source.
        """
        dest_parts, sources = to_parts(dest), (to_parts(source),)
        with self._lock:
            self._listen()  # before its first read: a write landing after it is heard
        return self._write_op(self._engine.derive(dest_parts, sources, transform, False, payload))

    def derive_many(
        self,
        dest: PathLike,
        sources: Iterable[PathLike],
        transform: Callable[[Any], Any],
        payload: Any = None,
    ) -> Hashable:
        """Keep ``dest`` equal to ``transform(DeriveData)`` of several sources."""
        dest_parts, source_parts = to_parts(dest), self._sources(sources)
        with self._lock:
            self._listen()
        return self._write_op(
            self._engine.derive(dest_parts, source_parts, transform, True, payload)
        )

    def track(
        self,
        callback: Callable[..., Any],
        payload: Any = None,
        *,
        name: str | None = None,
        policy: str = "now",
        on_mark: Callable[[Hashable], Any] | None = None,
        raise_errors: bool = True,
    ) -> Hashable:
        """Run ``callback(event)`` now and again whenever a path it read changes
        (docs/semantics.md#tracking).

        Args:
            name: how loops, failures and ``trackers()`` name it (default: its qualname).
            policy: ``"now"`` (re-run by the write call once it released the lock, before
                it returns; marked due inside ``deferring()``), ``"eager"`` (re-run inside
                the write, under its lock, even in ``deferring()``), ``"deferred"`` (marked
                due, run by ``run_deferred()``) or ``"lazy"`` (marked stale, run only by
                ``run_deferred(lazy=True)``); see docs/semantics.md, "Scheduling", and
                restate/_engine/scheduler.py.
            on_mark: called with the id whenever it is marked due, stale or refused, or a
                stale mark clears (in the writer's thread, under the lock: keep it short).
                Not for the brief due mark of a ``"now"`` re-run, from the write to its run.
            raise_errors: False records a failed run (``trackers()`` status ``failed``, its
                readers ``stale``) without raising it to the writer.

        The first run happens at once, outside the controller's lock as every re-run of a
        ``"now"`` function and by ``run_deferred()`` does (it may join a thread that writes
        state). It is subscribed at
        each path as it reads it: a write from elsewhere that lands during the run makes it
        run again before ``track()`` returns (or marks it due, as its policy says).

        Raises:
            CycleError: its first run closed a loop (it stays registered, refused).
            Exception: whatever its first run raised (it stays tracked).
        """
        with self._lock:
            self._listen()  # before its first run: a write landing during it is heard
            tracker = self._engine.register_tracker(
                callback, payload, name, policy, on_mark, raise_errors
            )
            scheduler, since = self._engine.scheduler, self._engine.scheduler.marks
            scheduler.hold()  # its writes mark their readers due, as in run_deferred()
        return self._runs.first_run(tracker, since)

    def run_deferred(self, *, lazy: bool = False, only: Iterable[Hashable] | None = None) -> int:
        """Run the tracked functions marked due, each once per round, writers before readers;
        returns how many runs there were.

        The functions run outside the controller's lock: other threads keep writing, and a
        function they make due again runs once more afterwards, for the latest value.

        Args:
            lazy: run the stale ``"lazy"`` functions too.
            only: run just these ids (lazy ones included), e.g. one debounced function.

        Raises:
            CycleError: still due after ``max_rounds`` rounds, or a run closed a loop.
            Exception: what the runs raised (several: an ``ExceptionGroup``); all ran.
        """
        return self._runs.run_deferred(lazy=lazy, only=only)

    def deferring(self) -> AbstractContextManager[ControllerSync]:
        """Inside the block, writes from this thread only mark tracked functions due; the
        end of the outermost block runs them (``run_deferred()``), each once."""
        return self._runs.deferring()

    def batch(self) -> AbstractContextManager[ControllerSync]:
        """Apply the writes inside at once; notify once at the end; roll back on exception."""
        return self._batching.batch()
