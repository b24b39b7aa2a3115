"""The direct write path: ``set_state`` as a plain function for the writes most programs make.

The sans-IO engine (engine.py) stays the single source of truth; this module is a shortcut
through the same steps for a driver whose I/O needs no awaiting (``DirectIO.drive`` set: the
sync controller). A write takes it when the path's audience (audience.py, one dict lookup)
is nobody or a ``Route`` of plain subscriptions and tracked functions:

1. read, compare, write -- the same steps, in the same order, as ``Engine.set_state``; on
   the memory store an immutable value over an existing node takes one walk for all three
   (``DirectIO.replace``: ``InMemoryBackend._replace``, which writes nothing when the node
   holds an equal object of the same type; an equal one of another type, ``1`` where
   ``True`` is, is written and put back, so the stored object stays as a read first keeps it);
2. deliver straight from the route: one ``StateEvent`` per subscription, innermost first,
   ``stop_bubbling`` honoured, then the tracked functions (``Scheduler.reached``: a
   ``"now"`` one is only marked, and runs once the write has released the lock; an
   ``"eager"`` one runs here), then the ``on_changes`` listeners. A delivery made while a
   dispatch runs (a callback wrote) is queued as a ``Plan``, like the engine's; later rounds
   go through ``Dispatcher.more_rounds`` driven by ``DirectIO.drive``.

Everything else goes to the engine's generator, driven by ``DirectIO.drive``: a path a
derivation or ``*`` subscription may hear, a dict written where
subscriptions lie below (only the planner diffs dicts), and every write outside a batch to
a store with ``swap()`` (the engine writes and gets the previous value in one round trip).

Inside a batch the write is applied and logged as ``Engine.set_state`` does (the undo log
is what rollback and the batch's end need), without a generator, and nothing is delivered
(the audience is not even asked: the batch's end does that for its roots). A write to a
persistent store that nothing can observe skips the read of the previous value
(``_write_blind``).
``Engine.direct_writes = False`` switches the path off (the differential tests compare
both).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..events import StateEvent
from ..missing import MISSING
from ..paths import Parts
from ..tree import IMMUTABLE, copy_in, copy_out, values_equal
from .audience import Heard, Route
from .batching import Entry, new_entry
from .dispatch import Plan
from .requests import NO_DEFAULT, raise_collected, user_value
from .subscriptions import Change
from .tracking import Footprint, record_write

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["deliver_external", "set_direct"]


def set_direct(
    engine: Engine,
    parts: Parts,
    value: Any,
    eq_func: Callable[[Any, Any], Any] | None,
    default: Any,
    payload: Any,
    skip_notify: bool,
) -> bool:
    """``Engine.set_state`` for a sync driver; same arguments, same result and events."""
    if Footprint.active:  # also when the value is unchanged: the function writes there
        record_write(engine.controller, parts)
    io, batches = engine.io, engine.batches
    heard: Heard = False  # in a batch nobody hears the write before the batch ends
    if not batches.depth:
        known = engine.audience.known.get(parts)  # (not into heard: mypyc checks its type)
        heard = known if known is not None else engine.audience.route(parts)
        if heard is True or io.swap is not None:  # the planner's, or the backend's swap()
            gen = engine.set_state(parts, value, eq_func, default, payload, skip_notify)
            return bool(io.drive(gen))  # type: ignore[misc]
        if (
            heard is False
            and not engine.aliasing
            and eq_func is None
            and default is NO_DEFAULT
            and not engine.listeners
        ):
            return _write_blind(engine, parts, value)
    replace = io.replace
    if replace is not None and eq_func is None and type(value) in IMMUTABLE and parts:
        prev = replace(parts, value)  # the memory store: read, compared and written in one walk
        if prev is not MISSING:
            if type(prev) is type(value):  # written unless equal (a plain == for these types)
                if prev is value or prev == value:
                    return False
            elif values_equal(value, prev):  # equal, yet written (1 over True): put back
                io.write(parts, prev)  # type: ignore[misc]
                return False
            if heard is False:  # _written's first steps, inline (the frequent cases)
                if batches.depth:
                    entry = (parts, prev, payload, not skip_notify, False, value)
                    batches.log.append(new_entry(Entry, entry))
                    return True
                if not engine.listeners:
                    return True
            elif not (skip_notify or heard.below):  # type: ignore[union-attr]
                _deliver(engine, heard, parts, prev, value, payload)  # type: ignore[arg-type]
                return True
            return _written(engine, heard, parts, prev, prev, value, payload, skip_notify)
    prev = io.read(parts)  # type: ignore[misc]
    if prev is not MISSING and eq_func is None:  # the usual case, inline
        if value is prev or values_equal(value, prev):
            return False
        old = prev
    else:
        old = prev if prev is not MISSING else default if default is not NO_DEFAULT else MISSING
        if _unchanged(value, old, eq_func):
            return False
    stored = value if type(value) in IMMUTABLE and parts else _stored(engine, parts, value)
    created = None
    if prev is MISSING and batches.depth:  # rollback removes what the write creates
        created = batches.highest_missing(parts, io.exists)  # type: ignore[arg-type]
    io.write(parts, stored)  # type: ignore[misc]
    return _written(engine, heard, parts, prev, old, stored, payload, skip_notify, created)


def _written(
    engine: Engine,
    heard: Heard,
    parts: Parts,
    prev: Any,
    old: Any,
    stored: Any,
    payload: Any,
    skip_notify: bool,
    created: Parts | None = None,
) -> bool:
    """After the write: logged in a batch (what rollback and the batch's end need), else
    delivered. ``prev``: what the store held; ``old``: what events report (``default``)."""
    batches = engine.batches
    if batches.depth:
        if prev is MISSING:
            batches.record(parts, prev, payload, not skip_notify, created, stored)
        else:  # BatchLog.record, inline: the node existed, so did its ancestors
            batches.log.append(
                new_entry(Entry, (parts, prev, payload, not skip_notify, False, stored))
            )
        return True
    if skip_notify or not (heard or engine.listeners):
        return True
    new = copy_out(stored) if engine.aliasing and type(stored) not in IMMUTABLE else stored
    if heard is False:  # only listeners
        _deliver(engine, None, parts, old, new, payload)
        return True
    assert heard is not True
    if heard.below and (type(old) is dict or type(new) is dict):
        engine.io.drive(engine._after([Change(parts, old, new, payload)], False))  # type: ignore[misc]
        return True
    _deliver(engine, heard, parts, old, new, payload)
    return True


def deliver_external(engine: Engine, parts: Parts, old: Any, new: Any, payload: Any) -> bool:
    """``Engine.external`` for one change another process made, when only plain
    subscriptions (a ``Route``) or nobody hear its path: delivered from the route as a
    local write's would be, without planning. False (nothing done): take the engine's round.

    A watching backend's follower calls this once per remote commit, so its cost is most of
    what a subscriber process spends per delivery (docs/backends.md, "Delivery").
    """
    if engine.batches.depth or not engine.direct_writes:
        return False
    heard = engine.audience.known.get(parts)
    if heard is None:
        heard = engine.audience.route(parts)
    if heard is True or (heard is not False and heard.below and _dicts(old, new)):
        return False
    if heard is False and not engine.listeners:
        return True
    scheduler = engine.scheduler
    scheduler.external = True  # what a tracked function a callback wakes reports as its cause
    try:
        _deliver(engine, heard or None, parts, old, new, payload)
    finally:
        scheduler.external = False
    return True


def _dicts(old: Any, new: Any) -> bool:
    return type(old) is dict or type(new) is dict


def _write_blind(engine: Engine, parts: Parts, value: Any) -> bool:
    """A write to a persistent store that nothing can observe (no subscription, derivation,
    tracked read or listener reaches the path; no ``eq_func`` or ``default``): no read of the
    previous value, which nobody would see -- the write is the store's own cost. It returns
    True even when the value was already there (no comparison was made)."""
    stored = value if type(value) in IMMUTABLE and parts else _stored(engine, parts, value)
    engine.io.write(parts, stored)  # type: ignore[misc]
    return True


def _unchanged(value: Any, old: Any, eq_func: Callable[[Any, Any], Any] | None) -> bool:
    if old is not MISSING:
        if eq_func is None:
            return values_equal(value, old)
        return bool(eq_func(value, user_value(old)))
    return eq_func is not None and bool(eq_func(value, None))


def _stored(engine: Engine, parts: Parts, value: Any) -> Any:
    """The object to store (checked and isolated)."""
    if not parts and type(value) is not dict:
        raise TypeError(f"the root '/' holds a dict, not {type(value).__name__}")
    return value if type(value) in IMMUTABLE else copy_in(value, parts)


def _deliver(
    engine: Engine, route: Route | None, parts: Parts, old: Any, new: Any, payload: Any
) -> None:
    """Call the route's subscriptions and the listeners (a dispatch of one change)."""
    dispatcher = engine.dispatcher
    bubble = [0]
    if dispatcher.active:  # a callback wrote: delivered in the next round, as planned ones
        subs = route.subs if route is not None else ()
        out = [(cid, node, parts, cur, old, new, payload, bubble) for cid, node, cur in subs]
        change = Change(parts, old, new, payload)
        reached = {tid: change for tid in route.trackers} if route is not None else {}
        dispatcher.enqueue(Plan(out, reached, [change]), [])
        return
    errors: list[Exception] = []
    dispatcher.active, dispatcher.collected = True, errors  # dispatcher.start, inline
    try:  # the first round, as Dispatcher._deliver makes it
        if route is not None:
            ctl, settle, callbacks = engine.controller, engine.io.settle, engine.callbacks
            for cid, node, current in route.subs:
                if len(current) < bubble[0] or cid not in node.entries:
                    continue  # stopped by stop_bubbling, or unsubscribed by an earlier callback
                callback = callbacks.get(cid)
                if callback is None:
                    continue
                event = StateEvent(ctl, parts, current, old, new, payload, bubble)
                try:  # io.call(callback, event), inline: most callbacks return None
                    result = callback(event)
                    if result is not None:
                        settle(result, callback)  # type: ignore[misc]
                except Exception as exc:
                    errors.append(exc)
            if route.trackers:
                _reach(engine, route.trackers, Change(parts, old, new, payload), errors)
        if engine.listeners:
            dispatcher.call_listeners([Change(parts, old, new, payload)], errors)
        if dispatcher.queue:  # callbacks wrote: their rounds, as the engine runs them
            engine.io.drive(dispatcher.more_rounds(errors))  # type: ignore[misc]
    finally:
        dispatcher.active = False  # dispatcher.stop, inline when there is nothing to drop
        if dispatcher.queue or errors:
            dispatcher.stop()
    if errors:
        raise_collected(errors)


def _reach(engine: Engine, ids: tuple[Any, ...], change: Change, errors: list[Exception]) -> None:
    """The tracked functions a write reached (``Dispatcher._run_trackers``, for a route): each
    marked due -- a ``"now"`` one runs once the write released the lock -- or, ``"eager"``,
    run here."""
    scheduler, trackers = engine.scheduler, engine.trackers
    for tid in ids:
        tracker = trackers.get(tid)
        if tracker is None or tracker.status.refused is not None:
            continue
        try:
            if scheduler.reached(tracker, change, None):
                run = engine.dispatcher.run_tracker(tracker, change, scheduler.why(change))
                engine.io.drive(run)  # type: ignore[misc]
        except Exception as exc:
            errors.append(exc)
