"""Mending what an interrupt cut short: a ``batch()`` whose end never ran, an engine batch
count with no ``batch()`` behind it, a backend transaction left open (``SyncBatches`` for
``ControllerSync``, ``AsyncBatches`` for ``ControllerAsync``)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
from collections.abc import AsyncIterator, Hashable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from typing import Any, Generic, Protocol, TypeVar

from ._calling import _maybe_await
from ._engine.engine import Engine
from ._engine.requests import Steps
from .backends.base import AsyncBackend, Backend
from .errors import StateError

__all__ = ["AsyncBatches", "SyncBatches", "abandon_engine_batch", "is_open"]

log = logging.getLogger("restate")
T = TypeVar("T")


class SyncHolder(Protocol):
    """What ``SyncBatches`` uses of the ``ControllerSync`` that holds it."""

    @property
    def _engine(self) -> Engine: ...
    @property
    def _lock(self) -> Any: ...
    @property
    def _soon(self) -> dict[Hashable, list[Hashable]]: ...
    @property
    def _backend(self) -> Backend: ...
    def _drive(self, gen: Steps[T]) -> T: ...
    def _run_soon(self, error: Exception | None) -> None: ...


class AsyncHolder(Protocol):
    """What ``AsyncBatches`` uses of the ``ControllerAsync`` that holds it."""

    @property
    def _engine(self) -> Engine: ...
    @property
    def _lock(self) -> Any: ...
    @property
    def _backend(self) -> Backend | AsyncBackend: ...
    async def _drive(self, gen: Steps[T]) -> T: ...


S = TypeVar("S", bound=SyncHolder)
A = TypeVar("A", bound=AsyncHolder)


class SyncBatches(Generic[S]):
    """The ``batch()`` contexts and backend transactions of one ``ControllerSync``, kept
    consistent through interrupts (the controller's lock is held by the caller)."""

    def __init__(self, controller: S) -> None:
        self._controller = controller
        self._engine = controller._engine
        self._lock = controller._lock
        self._soon = controller._soon
        self.txns: list[Any] = []
        # the batch() contexts open, innermost last: token -> (its generator, the frame of its
        # with statement); their number is the engine's batch depth when all is well
        self.owners: dict[int, tuple[Any, Any]] = {}
        # the last set_state caller found running inside the innermost batch's with statement
        # (forgotten before owners changes: a later write from that frame needs no walk)
        self.inside: Any = None

    def check_batch(self, caller: Any) -> None:
        """Before an operation from ``caller``'s frame: heal a batch whose with statement is
        no longer running (not on the caller's stack), or a transaction left open."""
        if self.owners:
            frame = next(reversed(self.owners.values()))[1]
            f: Any = caller
            while f is not None and f is not frame:
                f = f.f_back
            if f is None:
                self.heal()
        elif self.txns:
            self.heal()

    def enter_check(self, caller: Any) -> None:
        """``check_batch`` for set_state, remembering a caller found inside the batch."""
        self.check_batch(caller)
        if self.owners:
            self.inside = caller

    def heal(self) -> None:
        if self.owners:
            self.close_left_batches()
        if self._is_abandoned():
            self._abandon_batch()

    # ----- the backend's transaction (an optional capability, backends/base.py) -------------
    # KeyboardInterrupt can land between any two bytecodes. A transaction is recorded in
    # _txns *before* it opens, leaves it only once closed, and one left open by a batch an
    # interrupt cut short is rolled back when the drive ends or the next batch begins -- so a
    # store is never left inside a transaction that later writes silently join.

    def open_txn(self, optimistic: bool = False) -> None:
        self._drop_orphans()
        if optimistic:  # update() on a backend that offers it (backends/base.py)
            txn = self._controller._backend.transaction(optimistic=True)  # type: ignore[attr-defined]
        else:
            txn = self._controller._backend.transaction()  # type: ignore[attr-defined]
        self.txns.append(txn)
        try:
            txn.__enter__()
        except BaseException:
            if not is_open(txn):
                self.txns.remove(txn)
            raise

    def close_txn(self, exc: BaseException | None) -> None:
        txn = self.txns[-1]
        try:
            if exc is None:
                txn.__exit__(None, None, None)
            else:
                txn.__exit__(type(exc), exc, exc.__traceback__)
        except BaseException as failed:
            if is_open(txn):  # interrupted before the backend could finish: roll back
                _roll_back(txn, failed)
            raise
        finally:
            if self.txns and self.txns[-1] is txn:
                self.txns.pop()

    def _abandon_batch(self) -> None:
        """An interrupt landed inside the engine's batch bookkeeping (no batch() of ours is
        open, yet the engine counts one): roll back the transaction it left open and reset
        the count, so later writes commit instead of joining a batch that never ends."""
        if self.owners:
            return  # the open batch() ends it, committing or rolling back
        self._drop_orphans()
        abandon_engine_batch(self._engine)

    def _is_abandoned(self) -> bool:
        """Whether the engine's batch count or an open transaction has no batch() behind it."""
        depth = self._engine.batches.depth
        return depth != len(self.owners) or (depth == 0 and bool(self.txns))

    def _drop_orphans(self) -> None:
        while self.txns:
            txn = self.txns[-1]
            _roll_back(txn, StateError("a batch was interrupted before it could end"))
            self.txns.pop()

    def batch(self) -> AbstractContextManager[S]:
        """Apply the writes inside at once; notify once at the end; roll back on exception."""
        gen: list[Any] = []
        cm = self._batch(gen)
        gen.append(cm.gen)
        return cm

    @contextmanager
    def _batch(self, gen: list[Any]) -> Iterator[S]:
        try:
            with self._lock:
                owner = next(_tokens)
                # one statement, no call: counted with the engine's batch (ControllerSync._drive)
                self.inside = None
                self.owners[owner] = (gen.pop(), sys._getframe(2))
                try:
                    self._controller._drive(self._engine.begin_batch())
                except BaseException:
                    self.inside = None
                    self.owners.pop(owner, None)
                    if self._is_abandoned():
                        self._abandon_batch()
                    raise
                try:
                    yield self._controller
                except BaseException as exc:
                    self._end_batch(exc, owner)
                    raise
                self._end_batch(None, owner)
        except Exception as exc:
            if self._soon:
                self._controller._run_soon(exc)
            raise
        if self._soon:  # the "now" functions its end reached, after the lock is released
            self._controller._run_soon(None)

    def _end_batch(self, exc: BaseException | None, owner: int) -> None:
        if owner not in self.owners:
            return  # already ended by close_left_batches
        try:
            self._controller._drive(self._engine.end_batch(exc))
        finally:
            self.inside = None
            self.owners.pop(owner, None)
            if self._is_abandoned():
                self._abandon_batch()

    # An interrupt that lands on the first bytecode of contextlib's __exit__ skips our end of
    # the batch; the suspended generator then lives as long as anything holds it (IPython
    # keeps the last traceback), with the batch -- and the store's transaction -- open. So
    # _owners holds each batch's generator and the frame of its with statement; an operation
    # that finds a suspended batch whose frame is gone from its own stack closes the
    # generator, which rolls the batch back.

    def close_left_batches(self) -> None:
        while self.owners:
            owner = next(reversed(self.owners))
            gen, frame = self.owners[owner]
            if gen.gi_running:
                return  # ending itself right now
            if gen.gi_frame is not None:  # suspended at its yield
                if _on_stack(frame):
                    return
                gen.close()  # GeneratorExit at its yield: the batch ends, rolled back
            self.inside = None
            if self.owners.pop(owner, None) is not None:  # its end was cut short
                self._abandon_batch()


def abandon_engine_batch(engine: Any) -> None:
    """Reset the engine's batch count and log after an interrupt cut its bookkeeping short
    (the backend's transaction, if any, was rolled back by the caller)."""
    batches = engine.batches
    batches.depth = 0
    batches.log = []
    batches._marks.clear()
    batches._existing.clear()


_tokens = itertools.count()


def _on_stack(frame: Any) -> bool:
    """Whether ``frame`` is running in the current thread."""
    f: Any = sys._getframe(2)
    while f is not None:
        if f is frame:
            return True
        f = f.f_back
    return False


def is_open(txn: Any) -> bool:
    """Whether a ``@contextmanager`` / ``@asynccontextmanager`` transaction has not finished
    (its generator still has a frame); one of another kind counts as closed once exited."""
    gen = getattr(txn, "gen", None)
    frame = getattr(gen, "gi_frame", None) or getattr(gen, "ag_frame", None)
    return frame is not None


def _roll_back(txn: Any, exc: BaseException) -> None:
    """Exit ``txn`` with ``exc`` (rolling it back), retrying through KeyboardInterrupt."""
    while is_open(txn) or getattr(txn, "gen", None) is None:
        try:
            txn.__exit__(type(exc), exc, exc.__traceback__)
        except KeyboardInterrupt:
            continue
        except BaseException as raised:
            if raised is not exc:
                log.error("rolling back an interrupted batch failed", exc_info=raised)
        return


class AsyncBatches(Generic[A]):
    """The ``batch()`` contexts (counted) and backend transactions of one ``ControllerAsync``,
    kept consistent through cancellations and interrupts (the caller holds its lock)."""

    def __init__(self, controller: A) -> None:
        self._controller = controller
        self._engine = controller._engine
        self._lock = controller._lock
        self.txns: list[Any] = []
        self.count = 0  # batch() contexts open on this controller

    async def abandon_batch(self) -> None:
        """See ``SyncBatches._abandon_batch``."""
        if self.count:
            return
        await self._drop_orphans()
        abandon_engine_batch(self._engine)

    # ----- the backend's transaction: recorded before it opens, rolled back if orphaned by a
    # cancellation or KeyboardInterrupt (see SyncBatches.open_txn) ----------------------------

    async def open_txn(self, optimistic: bool = False) -> None:
        await self._drop_orphans()
        if optimistic:  # update() on a backend that offers it (backends/base.py)
            txn = self._controller._backend.transaction(optimistic=True)  # type: ignore[union-attr]
        else:
            txn = self._controller._backend.transaction()  # type: ignore[union-attr]
        self.txns.append(txn)
        enter = txn.__aenter__ if hasattr(txn, "__aenter__") else txn.__enter__
        try:
            await _maybe_await(enter())
        except BaseException:
            if not is_open(txn):
                self.txns.remove(txn)
            raise

    async def close_txn(self, exc: BaseException | None) -> None:
        txn = self.txns[-1]
        args = (type(exc), exc, exc.__traceback__) if exc is not None else (None, None, None)
        exit_ = txn.__aexit__ if hasattr(txn, "__aexit__") else txn.__exit__
        try:
            await _maybe_await(exit_(*args))
        except BaseException as failed:
            if is_open(txn):  # cancelled before the backend could finish: roll back
                await _roll_back_async(txn, failed)
            raise
        finally:
            if self.txns and self.txns[-1] is txn:
                self.txns.pop()

    def is_abandoned(self) -> bool:
        """Whether the engine's batch count or an open transaction has no batch() behind it."""
        depth = self._engine.batches.depth
        return depth != self.count or (depth == 0 and bool(self.txns))

    async def _drop_orphans(self) -> None:
        while self.txns:
            error = StateError("a batch was cancelled or interrupted before it could end")
            await _roll_back_async(self.txns[-1], error)
            self.txns.pop()

    @asynccontextmanager
    async def batch_locked(self) -> AsyncIterator[A]:
        async with self._lock.held():
            self.count += 1  # counted before the engine counts it (see ControllerAsync._drive)
            try:
                await self._controller._drive(self._engine.begin_batch())
            except BaseException:
                self.count -= 1
                if self.is_abandoned():
                    await self.abandon_batch()
                raise
            try:
                yield self._controller
            except BaseException as exc:
                await self._end_batch(exc)
                raise
            await self._end_batch(None)

    async def _end_batch(self, exc: BaseException | None) -> None:
        try:
            await self._controller._drive(self._engine.end_batch(exc))
        finally:
            self.count -= 1
            if self.is_abandoned():
                await self.abandon_batch()


async def _roll_back_async(txn: Any, exc: BaseException) -> None:
    """Exit ``txn`` with ``exc`` (rolling it back) to the end, through KeyboardInterrupt and
    cancellation (re-raised afterwards)."""
    exit_ = txn.__aexit__ if hasattr(txn, "__aexit__") else txn.__exit__
    stopped: BaseException | None = None
    while is_open(txn) or getattr(txn, "gen", None) is None:
        try:
            await _maybe_await(exit_(type(exc), exc, exc.__traceback__))
        except (KeyboardInterrupt, asyncio.CancelledError) as again:
            if again is exc:
                break
            stopped = again
            continue
        except BaseException as raised:
            if raised is not exc:
                log.error("rolling back an interrupted batch failed", exc_info=raised)
        break
    if stopped is not None:
        raise stopped
