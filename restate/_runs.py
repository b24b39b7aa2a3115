"""Running due tracked functions outside the controller's lock: ``track()``'s first run,
``run_deferred()``, ``deferring()`` and the ``"now"`` re-runs a write reached
(``SyncRuns`` for ``ControllerSync``, ``AsyncRuns`` for ``ControllerAsync``)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Hashable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Generic, Protocol, TypeVar

from ._calling import _call
from ._engine.engine import Engine
from ._engine.requests import raise_collected
from ._engine.subscriptions import Change
from ._engine.tracking import Tracker, Why, start_recording, stop_recording
from .errors import CycleError

__all__ = ["AsyncRuns", "SyncRuns"]


class Holder(Protocol):
    """What the runs use of the controller that holds them (either controller)."""

    @property
    def _engine(self) -> Engine: ...
    @property
    def _lock(self) -> Any: ...  # an RLock (sync) or a _TaskLock (async)
    @property
    def _soon(self) -> dict[Hashable, list[Hashable]]: ...


C = TypeVar("C", bound=Holder)


class SyncRuns(Generic[C]):
    """Runs the due tracked functions of one ``ControllerSync``, each outside its lock."""

    def __init__(self, controller: C) -> None:
        self._controller = controller
        self._engine = controller._engine
        self._lock = controller._lock
        self._soon = controller._soon

    def first_run(self, tracker: Tracker, since: int) -> Hashable:
        """``track()``'s first run, outside the lock (the scheduler holds this thread since
        mark ``since``), then what it woke; raises what they raised."""
        scheduler = self._engine.scheduler
        errors: list[Exception] = []
        try:
            self._run_due(tracker, *scheduler.first_run(), errors)
        finally:
            with self._lock:
                woken = scheduler.woken(since, scheduler.release())
        note_still_tracked(tracker, errors)
        if woken:
            try:
                self.run_deferred(only=woken)
            except Exception as exc:
                errors.append(exc)
        raise_collected(errors)
        return tracker.id

    def run_deferred(self, *, lazy: bool = False, only: Iterable[Hashable] | None = None) -> int:
        """``ControllerSync.run_deferred``: rounds of ``take``, each run outside the lock."""
        engine, chosen = self._engine, None if only is None else set(only)
        # with ``only``: the first round runs those, later rounds what they made due
        since, later = 0, engine.scheduler.marks if only is not None else 0
        errors: list[Exception] = []
        runs = 0
        with self._lock:
            engine.scheduler.hold()
        try:
            for _ in range(engine.max_rounds):
                with self._lock:
                    batch = engine.scheduler.take(lazy or chosen is not None, chosen, since)
                if not batch:
                    break
                chosen, since = None, later
                runs += self._run_batch(batch, errors)
            else:
                with self._lock:
                    left = engine.scheduler.take(lazy)
                if left:
                    errors.append(CycleError(still_due(left, engine.max_rounds)))
        finally:
            with self._lock:
                engine.scheduler.release()
        raise_collected(errors)
        return runs

    def run_soon(self, error: Exception | None) -> None:
        """After a write released the lock: run the ``"now"`` functions it reached, in this
        thread, outside the lock (as ``run_deferred()`` runs functions), then what their
        writes reach, round after round -- unless this thread still holds the lock (a write
        made inside a callback or a batch: the outermost write runs them) or is running them
        already (a write made by one of them: its next round). Raises ``error`` (what the
        write raised) together with what the runs raised."""
        scheduler, soon = self._engine.scheduler, self._soon
        me = scheduler.key()
        if me not in soon or me in scheduler.draining or _owned(self._lock):
            return
        errors: list[Exception] = []
        rounds = self._engine.max_rounds
        scheduler.draining.add(me)
        try:
            while me in soon:  # (only this thread adds to its own entry: no lock to look)
                if not rounds:
                    with self._lock:
                        left = scheduler.take_soon(me)
                        scheduler.restore(left)  # still due, as the error says
                    if left:
                        errors.append(CycleError(still_due(left, self._engine.max_rounds)))
                    break
                rounds -= 1
                with self._lock:
                    batch = scheduler.take_soon(me)
                    if len(batch) == 1:  # (the usual case: started in the same locked step)
                        tracker, change, why = batch[0]
                        event = scheduler.start(tracker, change, why)
                if len(batch) == 1:
                    if event is not None:
                        self._run_started(tracker, event, errors)
                else:
                    self._run_batch(batch, errors)
        finally:
            scheduler.draining.discard(me)
        if errors:
            raise_collected([error, *errors] if error is not None else errors)

    def _run_batch(self, batch: list[Any], errors: list[Exception]) -> int:
        """Run the functions ``take`` handed out, in order; an interrupt leaves the rest due."""
        runs = 0
        for index, (tracker, change, why) in enumerate(batch):
            try:
                runs += self._run_due(tracker, change, why, errors)
            except BaseException:
                with self._lock:
                    self._engine.scheduler.restore(batch[index + 1 :])
                raise
        return runs

    def _run_due(self, tracker: Any, change: Change, why: Any, errors: list[Exception]) -> int:
        with self._lock:
            event = self._engine.scheduler.start(tracker, change, why)
        if event is None:
            return 0
        self._run_started(tracker, event, errors)
        return 1

    def _run_started(self, tracker: Any, event: Any, errors: list[Exception]) -> None:
        """One run outside the lock, subscribed as it reads (``Scheduler.listen``)."""
        scheduler = self._engine.scheduler
        error: Exception | None = None
        footprint, token = start_recording(self._controller, tracker.name)
        try:
            scheduler.listen(tracker, footprint)
            try:
                _call(tracker.callback, event)
            except Exception as exc:
                error = exc
            except BaseException:
                with self._lock:
                    scheduler.stopped(tracker, footprint)
                raise
        finally:
            stop_recording(token)
        with self._lock:
            error = scheduler.finish(tracker, footprint, error)
        if error is not None:
            errors.append(error)

    @contextmanager
    def deferring(self) -> Iterator[C]:
        """Inside the block, writes from this thread only mark tracked functions due; the
        end of the outermost block runs them (``run_deferred()``), each once."""
        with self._lock:
            self._engine.scheduler.hold()
        try:
            yield self._controller
        finally:
            with self._lock:
                outermost = self._engine.scheduler.release()
        if outermost:
            self.run_deferred()


def _owned(lock: Any) -> bool:
    """Whether this thread holds ``lock`` (an RLock: its own check, in CPython's C and
    Python implementations alike)."""
    return bool(lock._is_owned())


class AsyncRuns(Generic[C]):
    """Runs the due tracked functions of one ``ControllerAsync``, each awaited without its
    lock (the ``SyncRuns`` steps, awaited)."""

    def __init__(self, controller: C) -> None:
        self._controller = controller
        self._engine = controller._engine
        self._lock = controller._lock
        self._soon = controller._soon

    async def first_run(self, tracker: Tracker, since: int) -> Hashable:
        """``track()``'s first run, awaited without the lock (the scheduler holds this thread
        since mark ``since``), then what it woke; raises what they raised."""
        scheduler = self._engine.scheduler
        errors: list[Exception] = []
        try:
            await self._run_due(tracker, *scheduler.first_run(), errors)
        finally:
            woken = scheduler.woken(since, scheduler.release())
        note_still_tracked(tracker, errors)
        if woken:
            try:
                await self.run_deferred(only=woken)
            except Exception as exc:
                errors.append(exc)
        raise_collected(errors)
        return tracker.id

    async def run_deferred(
        self, *, lazy: bool = False, only: Iterable[Hashable] | None = None
    ) -> int:
        """``ControllerAsync.run_deferred``: the ``SyncRuns`` rounds, each run awaited."""
        engine, chosen = self._engine, None if only is None else set(only)
        # with ``only``: the first round runs those, later rounds what they made due
        since, later = 0, engine.scheduler.marks if only is not None else 0
        errors: list[Exception] = []
        runs = 0
        engine.scheduler.hold()
        try:
            for _ in range(engine.max_rounds):
                batch = engine.scheduler.take(lazy or chosen is not None, chosen, since)
                if not batch:
                    break
                chosen, since = None, later
                runs += await self._run_batch(batch, errors)
            else:
                left = engine.scheduler.take(lazy)
                if left:
                    errors.append(CycleError(still_due(left, engine.max_rounds)))
        finally:
            engine.scheduler.release()
        raise_collected(errors)
        return runs

    async def run_soon(self, error: Exception | None) -> None:
        """``SyncRuns.run_soon``: after a write released the lock, the ``"now"``
        functions it reached run in this task, outside the lock, round after round."""
        scheduler, soon = self._engine.scheduler, self._soon
        me = scheduler.key()
        if me not in soon or me in scheduler.draining or self._lock.owned_by(me):
            return
        errors: list[Exception] = []
        rounds = self._engine.max_rounds
        scheduler.draining.add(me)
        try:
            while me in soon:  # (only this task adds to its own entry)
                if not rounds:
                    left = scheduler.take_soon(me)
                    scheduler.restore(left)  # still due, as the error says
                    if left:
                        errors.append(CycleError(still_due(left, self._engine.max_rounds)))
                    break
                rounds -= 1
                await self._run_batch(scheduler.take_soon(me), errors)
        finally:
            scheduler.draining.discard(me)
        if errors:
            raise_collected([error, *errors] if error is not None else errors)

    async def _run_batch(self, batch: list[Any], errors: list[Exception]) -> int:
        """Run the functions ``take`` handed out, in order; a cancellation leaves the rest
        due."""
        runs = 0
        for index, (tracker, change, why) in enumerate(batch):
            try:
                runs += await self._run_due(tracker, change, why, errors)
            except BaseException:
                self._engine.scheduler.restore(batch[index + 1 :])
                raise
        return runs

    async def _run_due(
        self, tracker: Any, change: Change, why: Any, errors: list[Exception]
    ) -> int:
        scheduler = self._engine.scheduler
        event = scheduler.start(tracker, change, why)
        if event is None:
            return 0
        error: Exception | None = None
        footprint, token = start_recording(self._controller, tracker.name)
        try:
            scheduler.listen(tracker, footprint)
            try:
                result = tracker.callback(event)
                if result is not None and inspect.isawaitable(result):
                    await result
            except Exception as exc:
                error = exc
            except BaseException:  # cancelled: the run did not finish
                scheduler.stopped(tracker, footprint)
                raise
        finally:
            stop_recording(token)
        error = scheduler.finish(tracker, footprint, error)
        if error is not None:
            errors.append(error)
        return 1

    @asynccontextmanager
    async def deferring(self) -> AsyncIterator[C]:
        """``async with controller.deferring():`` writes from this thread's tasks only mark
        tracked functions due; the end of the outermost block awaits ``run_deferred()``."""
        self._engine.scheduler.hold()
        try:
            yield self._controller
        finally:
            outermost = self._engine.scheduler.release()
        if outermost:
            await self.run_deferred()


def note_still_tracked(tracker: Tracker, errors: list[Exception]) -> None:
    """Add to what the run at registration raised that the function stays tracked."""
    for error in errors:
        if not isinstance(error, CycleError):  # (a CycleError says what happened to it)
            error.add_note(f"(the function stays tracked as id {tracker.id!r}; untrack() it)")


def still_due(left: list[tuple[Tracker, Change, Why]], rounds: int) -> str:
    names = ", ".join(t.name for t, _, _ in left)
    return (
        f"tracked functions kept making each other due for {rounds} rounds of "
        f"run_deferred(): {names} (still due). Make them stop writing what they read, or "
        f"raise max_rounds."
    )
