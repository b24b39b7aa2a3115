"""The sans-IO engine: every state operation as a generator of I/O requests.

Both controllers drive the same generators; the engine never touches a backend or calls a
callback itself. It yields requests (``requests.py``: READ, EXISTS, WRITE, DELETE, CALL, and the
backend transaction's BEGIN / COMMIT / ROLLBACK) and receives their results.
A failed request is thrown back into the generator at its ``yield``. A driver whose I/O
needs no awaiting may instead set ``engine.read`` / ``engine.write`` / ``engine.call`` to plain
functions: the hot paths (a write and its deliveries) then call them directly and skip the
round trip through the driver -- the same code either way.

What one write does, in order (a batch does the same once, at its end; batching.py):

1. apply the write (a batch logs the previous value for rollback and coalescing);
2. settle derivations: each affected one recomputed once, in topological order (glitch-free);
3. plan deliveries for every changed root (subscriptions.py gives the order);
4. dispatch (dispatch.py): call subscribers, then tracked functions (an ``"eager"`` one
   runs here; a ``"now"`` one is only marked due: the controller runs it once the write call
   has released its lock, scheduler.py), then ``on_changes`` listeners.
   Writes made by callbacks are applied at once (and settle their derivations at once), but
   their deliveries are queued for the next *round*; after ``max_rounds`` rounds a
   ``CycleError`` names the paths still changing. Errors are collected and raised after
   the last round: one as is, several as an ``ExceptionGroup``.

Example: a subscriber of ``/n`` that writes ``/n`` again runs in round 1, its write is
delivered in round 2, and so on until ``CycleError`` at round 101 (default).

A batch is coalesced into one change per written root (the highest written paths), from its
value before the batch to its value at the end; roots that ended where they started drop out.
Each subscription gets one event. One reached by a single root gets that root's event, as
outside a batch; one reached by several (``/users`` after writes to ``/users/1`` and
``/users/2``) gets an event about its own path and values::

    with c.batch():                     subscriber of /users sees, once:
        c.set_state("/users/1", "a")      emitting_path == current_path == /users
        c.set_state("/users/2", "b")      prev_value = /users before, new_value = /users after
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable
from typing import Any

from ..errors import StaleReadError
from ..events import StateChange
from ..missing import MISSING
from ..paths import Parts
from ..tree import IMMUTABLE, copy_in, copy_out, values_equal
from .audience import Audience, plan_route
from .batching import BatchLog
from .callbacks import CallbackRegistry
from .dispatch import Dispatcher, Plan
from .graph import Derivation, DerivationGraph
from .requests import (
    CALL,
    DELETE,
    NO_DEFAULT,
    READ,
    WRITE,
    DirectIO,
    Gen,
    Steps,
    raise_collected,
    user_value,
)
from .roots import nobody
from .scheduler import Scheduler
from .settling import Settling
from .subscriptions import Change, Delivery, Seen, SubscriptionIndex
from .tracking import Footprint, Tracker, record_write

__all__ = ["Engine"]


class Engine(Settling):  # Registries, then Settling (one chain: see Settling)
    """The operations over the registries, each a generator of I/O requests.

    Responsibilities:
        - own the registries: callbacks, subscriptions (``subs``), derivations (``graph``),
          tracked functions (``trackers``), ``on_changes`` listeners, ids;
        - run each operation: apply the write, log it in a batch (``batches``: a
          ``BatchLog``), settle derivations, plan deliveries, and hand the plan to
          ``dispatcher`` (a ``Dispatcher``) -- or queue it when a dispatch is running;
        - tell the ``scheduler`` (a ``Scheduler``: when tracked functions run, their marks)
          about derivations that failed, recovered or wrote their own sources.
    """

    def __init__(self, controller: Any, max_rounds: int = 100) -> None:
        if max_rounds < 1:
            raise ValueError(f"max_rounds must be at least 1, not {max_rounds}")
        self.controller = controller
        self.max_rounds = max_rounds
        self.aliasing = False  # the backend keeps our objects (memory): snapshot for events
        self.io = DirectIO()
        self.subs = SubscriptionIndex()
        self.registry = CallbackRegistry()
        self.callbacks = self.registry.by_id  # id -> callback (the same dict, kept)
        self.graph = DerivationGraph()
        self.audience = Audience(self.subs, self.graph)
        self.trackers: dict[Hashable, Tracker] = {}
        self.listeners: dict[int, Callable[[list[StateChange]], Any]] = {}
        self.batches = BatchLog()
        self.scheduler = Scheduler(
            controller, self.trackers, self.graph, self._retrack, self._subscribe
        )
        self.dispatcher = Dispatcher(
            controller,
            max_rounds,
            self.io,
            self.callbacks,
            self.trackers,
            self.listeners,
            self.scheduler,
        )
        self._ids = itertools.count(1)
        # the sync controller's set_state takes the direct path (direct.py) while this is
        # True; the differential tests switch it off to compare with the generator path
        self.direct_writes = True

    # ----- operations ----------------------------------------------------------------------

    def set_state(
        self,
        parts: Parts,
        value: Any,
        eq_func: Callable[[Any, Any], Any] | None = None,
        default: Any = NO_DEFAULT,
        payload: Any = None,
        skip_notify: bool = False,
    ) -> Steps[bool]:
        if Footprint.active:  # also when the value is unchanged: the function writes there
            record_write(self.controller, parts)
        swap = self.io.swap
        plain = eq_func is None and default is NO_DEFAULT and not self.batches.depth
        if swap is not None and plain and parts and not self.graph:  # no "before" reads needed
            return (yield from self._swap(swap, parts, value, payload, skip_notify))
        read = self.io.read
        prev = read(parts) if read is not None else (yield (READ, parts))
        old = prev if prev is not MISSING else default if default is not NO_DEFAULT else MISSING
        if old is not MISSING:
            if eq_func is None:
                if values_equal(value, old):
                    return False
            elif eq_func(value, user_value(old)):
                return False
        elif eq_func is not None and eq_func(value, None):
            return False
        if not parts and type(value) is not dict:
            raise TypeError(f"the root '/' holds a dict, not {type(value).__name__}")
        stored = value if type(value) in IMMUTABLE else copy_in(value, parts)
        batches = self.batches
        if batches.depth:
            created = (yield from batches.missing_ancestor(parts)) if prev is MISSING else None
            yield (WRITE, parts, stored)
            batches.record(parts, prev, payload, not skip_notify, created, stored)
            return True
        # with derivations one write may become several changes, and a subscription above two
        # of them needs its own "before" value: know which dicts this write creates
        created = None
        if prev is MISSING and self.graph and len(parts) > 1:
            created = yield from batches.missing_ancestor(parts)
        write = self.io.write
        if write is not None:
            write(parts, stored)
        else:
            yield (WRITE, parts, stored)
        heard = self.audience.known.get(parts)  # usually answers alone (audience.py)
        if heard is None:
            heard = self.audience.hears(parts)
        if heard or self.listeners:
            new = copy_out(stored) if self.aliasing and type(stored) not in IMMUTABLE else stored
            yield from self._after([Change(parts, old, new, payload, False, created)], skip_notify)
        return True

    def _swap(
        self, swap: Callable[[Any, Any], Any], parts: Parts, value: Any, payload: Any, skip: bool
    ) -> Steps[bool]:
        """``set_state`` in one backend call that writes and returns the replaced value; an
        equal value was rewritten (the backend skips an identical one) but notifies nothing."""
        stored = value if type(value) in IMMUTABLE else copy_in(value, parts)
        prev = swap(parts, stored)
        if prev is not MISSING and values_equal(value, prev):
            return False
        if self.subs.size or self.listeners:
            yield from self._after([Change(parts, prev, stored, payload, False, None)], skip)
        return True

    def del_state(
        self, parts: Parts, payload: Any = None, skip_notify: bool = False
    ) -> Steps[bool]:
        if Footprint.active:  # even when missing: the function writes there
            record_write(self.controller, parts)
        prev = yield (READ, parts)
        if prev is MISSING or (not parts and not prev):
            return False
        if self.batches.depth:
            yield (DELETE, parts)
            self.batches.record(parts, prev, payload, not skip_notify)
            self.batches.forget_existing()
            return True
        yield (DELETE, parts)
        yield from self._after(
            [Change(parts, prev, {} if not parts else MISSING, payload)], skip_notify
        )
        return True

    def ping(self, parts: Parts, default: Any = None, payload: Any = None) -> Steps[None]:
        value = yield (READ, parts)
        if value is MISSING:
            value = default
        elif self.aliasing and type(value) not in IMMUTABLE:
            value = copy_out(value)
        if self.batches.depth:
            self.batches.record_ping(parts, value, payload)
            return None
        yield from self._after([Change(parts, value, value, payload, True)], False)
        return None

    def begin_batch(self, optimistic: bool = False) -> Gen:
        yield from self.batches.begin(optimistic)

    def end_batch(self, exc: BaseException | None) -> Gen:
        heard = None if self.listeners else self.audience.route
        if heard is not None and not self.subs.size and not self.graph:
            heard = nobody  # nothing registered: nothing to coalesce
        # merging siblings into their parent changes the list of changes: not with
        # listeners (they get that list) or derivations (they settle from it)
        batches = self.batches
        changes = yield from batches.end(exc, heard, heard is not None and not self.graph)
        if changes:
            yield from self._after(changes, False, None, batches.merged)

    def update(
        self, parts: Parts, fn: Callable[[Any], Any], default: Any = None, payload: Any = None
    ) -> Gen:
        """Read, ``fn``, write, as one transaction. On a backend with optimistic transactions
        (Redis) it first runs in one that takes no lease; if another client changed the value
        before the commit (``StaleReadError``: nothing written, nothing delivered) ``fn`` runs
        again in an ordinary transaction, in turn: at most twice, one change delivered."""
        # one generator with a loop, not one delegating to another: compiled by mypyc, a bare
        # ``raise`` after a ``yield`` in an ``except`` lost its exception under ``yield from``
        optimistic = self.batches.has_optimistic and not self.batches.depth
        while True:
            yield from self.begin_batch(optimistic)
            try:
                prev = yield (READ, parts)
                new = yield (CALL, fn, default if prev is MISSING else user_value(prev))
                yield from self.set_state(parts, new, None, NO_DEFAULT, payload)
            except BaseException as exc:
                yield from self.end_batch(exc)
                raise
            if not optimistic:
                yield from self.end_batch(None)
                return new
            try:
                yield from self.end_batch(None)
            except StaleReadError:
                optimistic = False  # nothing was written: run fn again, under leases
                continue
            return new

    def derive(
        self,
        dest: Parts,
        sources: tuple[Parts, ...],
        transform: Callable[[Any], Any],
        many: bool,
        payload: Any = None,
    ) -> Steps[Hashable]:
        if not callable(transform):
            raise TypeError(f"transform must be callable, not {type(transform).__name__}")
        if not sources:
            raise ValueError("derive_many needs at least one source path")
        d = Derivation(self.new_id(), dest, sources, transform, many, payload)
        self.graph.check(d)
        value = yield from self._compute(d)
        replaced = self.graph.add(d)
        self.scheduler.topology += 1
        try:
            yield from self.set_state(dest, value, None, NO_DEFAULT, payload)
        except (ValueError, TypeError):
            self.graph.remove(dest)
            if replaced is not None:
                self.graph.add(replaced)
            raise
        return d.id

    def snapshot(self, parts: Parts) -> Gen:
        value = yield (READ, parts)
        return copy_out(value) if value is not MISSING else MISSING

    def external(self, changes: list[Change]) -> Steps[None]:
        """Changes another process made (a watching backend): react as if local."""
        self.scheduler.external = True
        try:
            yield from self._after(changes, False)
        finally:
            self.scheduler.external = False

    # ----- propagation ---------------------------------------------------------------------

    def _after(
        self,
        changes: list[Change],
        skip_notify: bool,
        planned: Plan | None = None,
        merged: frozenset[Parts] = frozenset(),
    ) -> Gen:
        """Settle derivations, plan, and dispatch -- or queue the plan when a dispatch is
        already running (a write made by a callback). ``planned``: a ready plan (track());
        ``merged``: the changes a batch merged from siblings (``BatchLog.merged``)."""
        errors: list[Exception] = []
        if self.graph and changes:
            yield from self._settle(changes, errors)
        if skip_notify:
            raise_collected(errors)
            return
        plan = self._plan(changes, merged) if planned is None else planned
        if plan.widen:
            yield from self.dispatcher.widen(plan)
        if self.dispatcher.active:
            self.dispatcher.enqueue(plan, errors)
        elif plan.deliveries or plan.trackers or self.listeners:
            yield from self.dispatcher.dispatch(plan, errors)
        else:
            raise_collected(errors)

    def _plan(self, changes: list[Change], merged: frozenset[Parts] = frozenset()) -> Plan:
        out: list[Delivery] = []
        trackers: dict[Hashable, Change] = {}
        subs = self.subs
        if not subs.size:
            pass
        elif len(changes) == 1 and not subs.wildcards and not merged:
            # one change without wildcards cannot reach a subscription twice: no ``seen``
            subs.plan_one(changes[0], out, None, trackers)
        else:
            seen: Seen = {}
            route = self.audience.route
            for ch in changes:  # (a batch's changes: often many siblings, each with a route)
                heard = route(ch.parts)
                if heard is False:
                    continue
                if heard is True or not plan_route(heard, ch, out, seen, trackers):
                    subs.plan(ch, out, seen, trackers)
                if ch.parts in merged:  # as if reached by each sibling: own path and values
                    depth = len(ch.parts)  # (the change's own values already are the parent's)
                    for cid, _, current in heard.subs:  # type: ignore[union-attr]
                        if len(current) < depth:
                            seen[(cid, current)][1] += 1
            widen = tuple(index for index, hits in seen.values() if hits > 1)
            return Plan(out, trackers, changes, widen)
        return Plan(out, trackers, changes)
