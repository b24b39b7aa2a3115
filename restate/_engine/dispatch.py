"""Dispatch: calling subscribers, tracked functions and listeners, round after round.

A tracked function a round reaches is handed to the scheduler (``Scheduler.reached``): an
``"eager"`` one runs in the round; the others are marked due (a ``"now"`` one runs after the
write call released the controller's lock).

Writes made by callbacks are applied at once, but their deliveries are queued for the next
round; after ``max_rounds`` rounds a ``CycleError`` names the paths still changing. Errors
are collected and raised after the last round: one as is, several as an ``ExceptionGroup``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

from ..errors import CycleError
from ..events import StateChange, StateEvent
from ..missing import MISSING
from ..paths import parts_to_path, parts_to_str
from ..tree import copy_out
from .batching import value_before
from .requests import CALL, READ, DirectIO, Gen, raise_collected
from .scheduler import Scheduler
from .subscriptions import Change, Delivery
from .tracking import Tracker, Why, start_recording, stop_recording

__all__ = ["Dispatcher", "Plan"]

_NONE: list[Exception] = []  # what ``collected`` is between dispatches (never extended)


class Plan(NamedTuple):
    deliveries: list[Delivery]
    trackers: dict[Hashable, Change]
    changes: list[Change]
    widen: tuple[int, ...] = ()  # deliveries reached by several changes: own values
    origin: str | None = None  # who wrote, for a plan queued to a later round


class Dispatcher:
    """Calls the planned deliveries, round after round, and collects their errors.

    It reads the engine's registries (passed in, shared, never copied) and asks the
    ``scheduler`` whether a tracked function runs now or is marked due, and to record each run.
    """

    def __init__(
        self,
        controller: Any,
        max_rounds: int,
        io: DirectIO,
        callbacks: dict[Hashable, Callable[..., Any]],
        trackers: dict[Hashable, Tracker],
        listeners: dict[int, Callable[[list[StateChange]], Any]],
        scheduler: Scheduler,
    ) -> None:
        self.controller = controller
        self.max_rounds = max_rounds
        self.io = io
        self.callbacks = callbacks
        self.trackers = trackers
        self.listeners = listeners
        self.scheduler = scheduler
        self.active = False  # a dispatch is running: new plans wait for the next round
        self.queue: list[Plan] = []
        self.collected: list[Exception] = []

    def enqueue(self, plan: Plan, errors: list[Exception]) -> None:
        """A plan made while dispatching (a callback wrote): delivered in the next round."""
        if plan.trackers:  # the writer is known now, not in the next round
            plan = plan._replace(origin=self.scheduler.origin())
        self.queue.append(plan)
        self.collected.extend(errors)

    def widen(self, plan: Plan) -> Gen:
        """A subscription reached by several changes of one batch (or a write and the
        derivations it caused) gets one event about its own path: emitting_path ==
        current_path, and its own values before and after all of them."""
        changes = [c for c in plan.changes if not c.ping]
        for index in plan.widen:
            cid, node, _, current, _, _, payload, bubble = plan.deliveries[index]
            now = yield (READ, current)
            new = copy_out(now) if now is not MISSING else MISSING
            old = value_before(current, new, changes)
            plan.deliveries[index] = (cid, node, current, current, old, new, payload, bubble)

    def dispatch(self, plan: Plan, errors: list[Exception]) -> Gen:
        self.start(errors)
        try:
            yield from self._deliver(plan, errors)
            yield from self.more_rounds(errors)
        finally:
            self.stop()
        if errors:
            raise_collected(errors)

    # the steps of ``dispatch``, for the direct write path (direct.py): start (or set
    # ``active`` and ``collected`` inline), the first round delivered by the caller,
    # ``more_rounds`` while ``queue`` holds plans, stop

    def start(self, errors: list[Exception]) -> None:
        self.active = True
        self.collected = errors

    def stop(self) -> None:
        self.active = False
        if self.queue:
            self.queue = []
        self.collected = _NONE  # extended only while active: never by a stopped dispatch

    def more_rounds(self, errors: list[Exception]) -> Gen:
        """The rounds after the first: the plans callbacks queued, until none are left."""
        rounds = 1
        while self.queue:
            if rounds >= self.max_rounds:
                raise CycleError(self._loop_message(self.queue))
            pending, self.queue = self.queue, []
            rounds += 1
            for p in pending:
                yield from self._deliver(p, errors)

    def call_listeners(self, changes: list[Change], errors: list[Exception]) -> None:
        """The ``on_changes`` listeners, called directly (``io.call`` is set)."""
        public = [StateChange(parts_to_path(c.parts), c.prev, c.new) for c in changes]
        call = self.io.call
        assert call is not None
        for listener in list(self.listeners.values()):
            try:
                call(listener, public)
            except Exception as exc:
                errors.append(exc)

    def _deliver(self, plan: Plan, errors: list[Exception]) -> Gen:
        ctl, call, callbacks = self.controller, self.io.call, self.callbacks
        for cid, node, emitting, current, prev, new, payload, bubble in plan.deliveries:
            if len(current) < bubble[0] or cid not in node.entries:
                continue
            callback = callbacks.get(cid)
            if callback is None:
                continue
            event = StateEvent(ctl, emitting, current, prev, new, payload, bubble)
            try:
                if call is not None:
                    call(callback, event)
                else:
                    yield (CALL, callback, event)
            except Exception as exc:
                errors.append(exc)
        if plan.trackers:
            yield from self._run_trackers(plan.trackers, errors, plan.origin)
        if self.listeners and plan.changes:
            public = [StateChange(parts_to_path(c.parts), c.prev, c.new) for c in plan.changes]
            for listener in list(self.listeners.values()):
                try:
                    yield (CALL, listener, public)
                except Exception as exc:
                    errors.append(exc)

    def _run_trackers(
        self, due: dict[Hashable, Change], errors: list[Exception], origin: str | None
    ) -> Gen:
        scheduler = self.scheduler
        for tid, ch in due.items():
            tracker = self.trackers.get(tid)
            if tracker is None or tracker.status.refused is not None:
                continue
            try:
                if scheduler.reached(tracker, ch, origin):  # "eager": inside the write
                    yield from self.run_tracker(tracker, ch, scheduler.why(ch, origin))
            except Exception as exc:
                errors.append(exc)

    def run_tracker(self, tracker: Tracker, change: Change, why: Why) -> Gen:
        """One run of ``tracker`` with its footprint recorded; raises what the run's caller
        should get (its error, or the CycleError its footprint revealed)."""
        event = self.scheduler.start(tracker, change, why)
        if event is None:
            return
        error: Exception | None = None
        footprint, token = start_recording(self.controller, tracker.name)
        call = self.io.call
        try:
            if call is not None:  # a sync driver: no round trip through it
                call(tracker.callback, event)
            else:
                yield (CALL, tracker.callback, event)
        except Exception as exc:
            error = exc
        except BaseException:  # interrupted: the run did not finish, keep its old paths
            tracker.running = False
            raise
        finally:
            stop_recording(token)
        error = self.scheduler.finish(tracker, footprint, error)
        if error is not None:
            raise error

    def _loop_message(self, pending: list[Plan]) -> str:
        paths = sorted({parts_to_str(c.parts) for p in pending for c in p.changes})
        names = sorted(
            {_name(self.callbacks.get(d[0])) for p in pending for d in p.deliveries}
            | {
                _name(self.trackers[t].callback)
                for p in pending
                for t in p.trackers
                if t in self.trackers
            }
        )
        return (
            f"callbacks kept writing state after {self.max_rounds} rounds (a feedback loop); "
            f"paths still changing: {', '.join(paths) or '?'}; callbacks involved: "
            f"{', '.join(names) or '?'}. Make the callback stop writing when the value is "
            f"already right, or raise max_rounds."
        )


def _name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)
