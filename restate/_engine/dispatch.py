"""Dispatch: calling subscribers, tracked functions and listeners, round after round.

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
from ..paths import Parts, parts_to_path, parts_to_str
from ..tree import copy_out
from .batching import value_before
from .requests import CALL, READ, DirectIO, Gen, raise_collected
from .subscriptions import Change, Delivery
from .tracking import RECORDER, Tracker

__all__ = ["Dispatcher", "Plan"]


class Plan(NamedTuple):
    deliveries: list[Delivery]
    trackers: dict[Hashable, Change]
    changes: list[Change]
    widen: tuple[int, ...] = ()  # deliveries reached by several changes: own values


class Dispatcher:
    """Calls the planned deliveries, round after round, and collects their errors.

    It reads the engine's registries (passed in, shared, never copied) and calls
    ``retrack(tracker, read)`` after each tracked function's run.
    """

    def __init__(
        self,
        controller: Any,
        max_rounds: int,
        io: DirectIO,
        callbacks: dict[Hashable, Callable[..., Any]],
        trackers: dict[Hashable, Tracker],
        listeners: dict[int, Callable[[list[StateChange]], Any]],
        retrack: Callable[[Tracker, set[Parts]], None],
    ) -> None:
        self.controller = controller
        self.max_rounds = max_rounds
        self.io = io
        self.callbacks = callbacks
        self.trackers = trackers
        self.listeners = listeners
        self.retrack = retrack
        self.active = False  # a dispatch is running: new plans wait for the next round
        self._queue: list[Plan] = []
        self._errors: list[Exception] = []

    def enqueue(self, plan: Plan, errors: list[Exception]) -> None:
        """A plan made while dispatching (a callback wrote): delivered in the next round."""
        self._queue.append(plan)
        self._errors.extend(errors)

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
        self.active = True
        self._errors = errors
        try:
            yield from self._deliver(plan, errors)
            rounds = 1
            while self._queue:
                if rounds >= self.max_rounds:
                    raise CycleError(self._loop_message(self._queue))
                pending, self._queue = self._queue, []
                rounds += 1
                for p in pending:
                    yield from self._deliver(p, errors)
        finally:
            self.active = False
            self._queue = []
            self._errors = []
        if errors:
            raise_collected(errors)

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
            yield from self._run_trackers(plan.trackers, errors)
        if self.listeners and plan.changes:
            public = [StateChange(parts_to_path(c.parts), c.prev, c.new) for c in plan.changes]
            for listener in list(self.listeners.values()):
                try:
                    yield (CALL, listener, public)
                except Exception as exc:
                    errors.append(exc)

    def _run_trackers(self, due: dict[Hashable, Change], errors: list[Exception]) -> Gen:
        for tid, ch in due.items():
            tracker = self.trackers.get(tid)
            if tracker is None:
                continue
            payload = ch.payload if ch.payload is not None else tracker.payload
            event = StateEvent(self.controller, ch.parts, ch.parts, ch.prev, ch.new, payload)
            try:
                yield from self._run_tracker(tracker, event)
            except Exception as exc:
                errors.append(exc)

    def _run_tracker(self, tracker: Tracker, event: StateEvent[Any]) -> Gen:
        read: set[Parts] = set()
        token = RECORDER.set((self.controller, read))
        try:
            yield (CALL, tracker.callback, event)
        finally:
            RECORDER.reset(token)
            self.retrack(tracker, read)

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
