"""The scheduler: when a tracked function runs, in which order, and which loops are refused.

A change reaches a tracked function (one of the paths its last run read changed). Then:

* policy ``"now"`` (the default): it is marked *due* inside the write, and runs in the
  writing thread (task) as soon as the outermost write call has released the controller's
  lock -- after the write's subscribers and listeners, before that call returns -- unless
  this thread is inside ``controller.deferring()`` or the function is running already (in
  another thread, or a run of ``run_deferred()``): then it only stays due (a run in another
  thread runs it again after it ends). So its body may start a thread that writes state and
  join it; code after ``set_state`` still sees its result;
* policy ``"eager"``: it runs inside the write, under the lock, even inside ``deferring()``
  (a function that acts as a derivation: the write's subscribers and listeners already see
  its result; like a derivation's transform, it must not wait for another thread that
  writes);
* policy ``"deferred"``: it is marked due, and runs at the next ``run_deferred()`` (the end of
  the outermost ``deferring()`` block calls it);
* policy ``"lazy"``: it is marked due and shown ``stale``; only ``run_deferred(lazy=True)``
  runs it.

A due function keeps its dependencies. Being marked due again replaces the reason (**latest
wins**): 1,000 writes while it waits, or while it runs, cause one more run, which reads the
latest state. ``run_deferred()`` runs every due function once per round, writers before
readers (from the footprints: what each read and wrote in its last run; ties in registration
order); writes made by those runs mark their readers due for the same or the next round, at
most ``max_rounds`` rounds. The ``"now"`` functions a write reached run the same way, in
rounds, at the end of the write call (``take_soon``: each writer -- a thread, or a task of
``ControllerAsync`` -- runs those its own writes reached; a write made by one of them, or
inside a callback or a batch, only adds to the rounds of the outermost write). Functions
run outside the controller's lock there, so writers are never held up by a slow function;
so does the first run, inside ``track()`` (held like a ``run_deferred()`` run: what it makes
due runs right after it). A run outside the lock is subscribed at each path as it first
reads it (``listen``), so a write landing after that read marks it due instead of being
missed; a write landing between the mark and the run replaces the reason, and the run reads
the latest state.

**Loops are refused from footprints.** After every run the footprint graph (tracked
functions and derivations; an edge where one writes what another reads) is searched for a
loop through the function that just ran. If there is one, every tracked function in it is
*refused*: it does not run again until tracked again, and the run's caller gets a
``CycleError`` naming the chain. Only the pass that revealed the loop ran; the state is what
it left. A derivation whose transform writes one of its own sources is refused the same way
(``CycleError``, never ``RecursionError``).

**Failures propagate as marks.** A run (or a derivation) that raises is marked ``failed``
with its error, which is raised to whoever caused the run, as any callback error is (a
function tracked with ``raise_errors=False`` only records it: the writer gets nothing). Every
function and derivation downstream of it is marked ``stale`` with the reason
(``/ratio failed in derive /ratio``); those marks clear by themselves as soon as the failed
one runs without error. ``controller.trackers()`` reports all of it.

Worked example (``a`` reads /x and writes /y, ``b`` reads /y and writes /total; the test
``test_the_worked_example_of_the_scheduler_docstring_holds`` runs it)::

    c.track(a); c.track(b)                  # both run once: a, then b
    c.set_state("/x", 5)                    # a due; the write releases the lock; a runs,
                                            # its write to /y makes b due; b runs; returns
    with c.deferring():
        c.set_state("/x", 1)                # a due      (reason: /x changed)
        c.set_state("/x", 2)                # a due      (reason replaced: latest wins)
    # the block ends -> run_deferred(): a runs once (reads x=2, writes /y) -> b runs once
    c.track(lambda e: e.set_state("/x", e.get_state("/total")))
    # CycleError: a loop: <lambda> → /x → a → /y → b → /total → <lambda>. Stopped before it
    # could repeat: <lambda> ran once and the state is what it left; <lambda>, a and b will
    # not run again until tracked again. ...
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Hashable
from typing import Any

from ..events import StateEvent
from ..missing import MISSING
from ..paths import Parts, parts_to_path
from .footprints import feeds
from .graph import DerivationGraph
from .statuses import Statuses, shown
from .subscriptions import Change
from .tracking import EAGER, LAZY, NOW, Footprint, Tracker, Why, running_name

__all__ = ["Scheduler"]

log = logging.getLogger("restate")


class Scheduler:
    """Decides when tracked functions run and keeps their marks.

    Responsibilities:
        - for each tracked function a change reaches: run now, or mark it due (its policy,
          a ``deferring()`` block in this thread, a run already in progress);
        - keep the due ones (the latest change wins) and hand them out writers first;
        - after every run: store its footprint, and have ``statuses`` (a ``Statuses``,
          statuses.py) refuse a loop the footprint closes, and record a failure
          (dependents become stale) or a recovery (their marks clear).

    The controllers run the functions it hands out (restate/_runs.py). It shares the
    engine's registries (``trackers``, ``graph``) and updates subscriptions through
    ``retrack(tracker, reads)``.
    """

    def __init__(
        self,
        controller: Any,
        trackers: dict[Hashable, Tracker],
        graph: DerivationGraph,
        retrack: Callable[[Tracker, set[Parts]], None],
        subscribe: Callable[[Tracker, Parts], None],
    ) -> None:
        self.controller = controller
        self.trackers = trackers
        self.graph = graph
        self.retrack = retrack
        self.subscribe = subscribe
        self.due: dict[Hashable, tuple[Change, Why]] = {}
        # failed / stale / refused marks (statuses.py); the engine asks the scheduler about
        # derivations, so those questions are the statuses' own bound methods, not wrappers
        self.statuses = statuses = Statuses(trackers, graph, self._unmark)
        self.is_refused = statuses.is_refused
        self.writes_own_source = statuses.writes_own_source
        self.derivation_failed = statuses.derivation_failed
        self.derivation_ok = statuses.derivation_ok
        self.derivation_status = statuses.derivation_status
        self.computing: set[Hashable] = set()  # derivations whose transform is running
        self.external = False  # reacting to another process's write
        # names the writer for "why" lines when no tracked function is running (the public
        # side: ControllerBase.writer_name); None or a None result: the thread's name
        self.writer_name: Callable[[], str | None] | None = None
        self._held: dict[int, int] = {}  # thread id -> depth of deferring()
        # "now" functions a write reached, per writer (``key()``: a thread, or a task in
        # ControllerAsync): run by that writer once its outermost write has released the lock
        self.soon: dict[Hashable, list[Hashable]] = {}
        self.draining: set[Hashable] = set()  # writers running their ``soon`` functions
        self.key: Callable[[], Hashable] = threading.get_ident
        self._marked_at: dict[Hashable, int] = {}  # due id -> when (a count of marks)
        self.topology = 0  # bumped when a derivation is added or removed
        self.marks = 0

    # ----- deciding ------------------------------------------------------------------------

    def hold(self) -> None:
        """Enter ``deferring()`` in this thread."""
        me = threading.get_ident()
        self._held[me] = self._held.get(me, 0) + 1

    def release(self) -> bool:
        """Leave ``deferring()``; True when this thread left its outermost block."""
        me = threading.get_ident()
        depth = self._held.get(me, 0) - 1
        if depth > 0:
            self._held[me] = depth
            return False
        self._held.pop(me, None)
        return True

    def defers(self, tracker: Tracker) -> bool:
        if tracker.running:
            return True
        if tracker.policy != NOW:
            return tracker.policy != EAGER
        return bool(self._held) and threading.get_ident() in self._held

    def reached(self, tracker: Tracker, change: Change, origin: str | None) -> bool:
        """A change reached ``tracker`` inside a write: True when it runs there and then
        (``"eager"``); otherwise it is marked due, and a ``"now"`` one is also queued to run
        in this writer once its outermost write has released the lock (``take_soon``)."""
        if self.defers(tracker):
            self.mark_due(tracker, change, origin)
            return False
        if tracker.policy != NOW:
            return True
        # (no on_mark: the mark lasts from the write to the end of the write call)
        self.due[tracker.id] = (change, self.why(change, origin))
        self.marks += 1
        self._marked_at[tracker.id] = self.marks
        self._queue_soon(tracker.id)
        return False

    def _queue_soon(self, tid: Hashable) -> None:
        key = self.key()
        queued = self.soon.get(key)
        if queued is None:
            self.soon[key] = [tid]
        else:
            queued.append(tid)

    def take_soon(self, key: Hashable) -> list[tuple[Tracker, Change, Why]]:
        """Unmark and return the ``"now"`` functions the writes of writer ``key`` (this one)
        made due, writers before readers; one running elsewhere is left due (that run is
        followed by another)."""
        ids = self.soon.pop(key, None)
        if ids is None:
            return []
        picked: list[Tracker] = []
        for tid in dict.fromkeys(ids) if len(ids) > 1 else ids:
            tracker = self.trackers.get(tid)
            if tracker is None or tid not in self.due or tracker.running:
                continue
            if tracker.status.refused is not None:
                self._unmark(tid)
            else:
                picked.append(tracker)
        taken = [(t, *self.due[t.id]) for t in (self.order(picked) if len(picked) > 1 else picked)]
        for tracker, _, _ in taken:
            self._unmark(tracker.id)
        return taken

    def origin(self) -> str:
        """Who is writing now, for the reason a function runs."""
        if self.external:
            return "another process"
        name = running_name(self.controller)
        if name is not None:
            return name
        if self.writer_name is not None:
            label = self._label()
            if label:
                return label
        return f"thread {threading.current_thread().name}"

    def _label(self) -> str | None:
        # typed to return object, not str | None: the compiled build checks a declared type
        # on the call's result (and a wrong one would then count as the namer raising)
        namer: Callable[[], object] | None = self.writer_name
        try:
            label = namer() if namer is not None else None
        except Exception:  # a label is not worth failing the write for
            log.exception("controller.writer_name raised; the thread's name is used")
            return None
        if label is None or isinstance(label, str):
            return label
        log.error("controller.writer_name returned %r, not a str or None", label)
        return None

    def why(self, change: Change, origin: str | None = None) -> Why:
        return Why(parts_to_path(change.parts), origin or self.origin())

    def mark_due(self, tracker: Tracker, change: Change, origin: str | None = None) -> None:
        """Mark ``tracker`` due for ``change`` (replacing an older reason: latest wins)."""
        self.due[tracker.id] = (change, self.why(change, origin))
        self.marks += 1
        self._marked_at[tracker.id] = self.marks
        if tracker.on_mark is not None:
            tracker.on_mark(tracker.id)

    def due_why(self, tid: Hashable) -> Why | None:
        entry = self.due.get(tid)
        return entry[1] if entry is not None else None

    def take(
        self, lazy: bool, only: Collection[Hashable] | None = None, since: int = 0
    ) -> list[tuple[Tracker, Change, Why]]:
        """Unmark and return the due functions to run now, writers before readers.

        Lazy ones only with ``lazy``; with ``only``, just those ids; with ``since``, just
        those marked after ``marks`` was ``since``."""
        picked: list[Tracker] = []
        for tid in list(self.due):
            tracker = self.trackers.get(tid)
            if tracker is None or tracker.status.refused is not None:
                self._unmark(tid)
            elif (
                not tracker.running  # (in another thread: it runs again there, next round)
                and (only is None or tid in only)
                and (lazy or tracker.policy != LAZY)
                and self._marked_at.get(tid, 0) > since
            ):
                picked.append(tracker)
        taken = [(t, *self.due[t.id]) for t in self.order(picked)]
        for tracker, _, _ in taken:
            self._unmark(tracker.id)
        return taken

    def _unmark(self, tid: Hashable) -> None:
        self.due.pop(tid, None)
        self._marked_at.pop(tid, None)

    def restore(self, batch: list[tuple[Tracker, Change, Why]]) -> None:
        """Put back what ``take`` handed out but did not run (an interrupted run_deferred);
        a newer reason, marked meanwhile, wins."""
        for tracker, change, why in batch:
            if tracker.id not in self.due:
                self.due[tracker.id] = (change, why)
                self.marks += 1
                self._marked_at[tracker.id] = self.marks

    def order(self, trackers: list[Tracker]) -> list[Tracker]:
        """Topological order of ``trackers`` by "writes what the other read" (Kahn), ties and
        any remaining loop broken by registration order."""
        position = {tid: i for i, tid in enumerate(self.trackers)}
        todo = sorted(trackers, key=lambda t: position.get(t.id, 0))
        readers = {t.id: [u for u in todo if u is not t and feeds(t.writes, u.paths)] for t in todo}
        waiting = {t.id: 0 for t in todo}
        for outs in readers.values():
            for u in outs:
                waiting[u.id] += 1
        ordered: list[Tracker] = []
        while todo:
            nxt = next((t for t in todo if waiting[t.id] == 0), todo[0])
            todo.remove(nxt)
            ordered.append(nxt)
            for u in readers[nxt.id]:
                waiting[u.id] -= 1
        return ordered

    # ----- running -------------------------------------------------------------------------

    def start(self, tracker: Tracker, change: Change, why: Why) -> StateEvent[Any] | None:
        """Prepare a run; None when it must not run (untracked or refused meanwhile)."""
        if self.trackers.get(tracker.id) is not tracker or tracker.status.refused is not None:
            return None
        self._unmark(tracker.id)
        tracker.running, tracker.why = True, why
        payload = change.payload if change.payload is not None else tracker.payload
        ch = change
        return StateEvent(self.controller, ch.parts, ch.parts, ch.prev, ch.new, payload)

    def first_run(self) -> tuple[Change, Why]:
        """The change and reason of the run at registration (whatever the policy)."""
        return Change((), MISSING, MISSING), Why(None, "registered")

    def listen(self, tracker: Tracker, footprint: Footprint) -> None:
        """Subscribe ``tracker`` at each path its run reads, as it first reads it.

        Runs outside the controller's lock (the first run, ``run_deferred()``) need it: the
        read and the subscription are one step under the lock, so a write from another
        thread after the read reaches the running function, which marks it due (it runs
        again, for the latest value) -- none falls between the read and ``finish``."""

        def heard(parts: Parts) -> None:
            if parts not in tracker.paths and self.trackers.get(tracker.id) is tracker:
                self.subscribe(tracker, parts)
                footprint.heard.add(parts)

        footprint.listen = heard

    def woken(self, since: int, outermost: bool) -> list[Hashable]:
        """After a first run (held like a ``run_deferred()`` run, from mark ``since``): the
        functions marked due meanwhile -- by its writes, or itself by a write from elsewhere
        -- whose policy runs them now (``"now"`` ones only when no ``deferring()`` block of
        this thread is still open)."""
        if self.marks == since:  # (the usual case: nothing marked meanwhile)
            return []
        runs_now = (NOW, EAGER) if outermost else (EAGER,)
        woken = []
        for tid, at in self._marked_at.items():
            tracker = self.trackers.get(tid)
            if at > since and tracker is not None and tracker.policy in runs_now:
                woken.append(tid)
        return woken

    def stopped(self, tracker: Tracker, footprint: Footprint) -> None:
        """An interrupted run: its old footprint stays, plus what it subscribed at."""
        tracker.running = False
        self._heard(tracker, footprint)

    def _heard(self, tracker: Tracker, footprint: Footprint) -> None:
        if footprint.heard and self.trackers.get(tracker.id) is tracker:
            tracker.paths = tracker.paths | footprint.heard
            footprint.heard = set()

    def finish(
        self, tracker: Tracker, footprint: Footprint, error: Exception | None
    ) -> Exception | None:
        """Record a finished run; returns the error for the run's caller (or None)."""
        tracker.running = False
        tracker.runs += 1
        if self.trackers.get(tracker.id) is not tracker:
            return error
        if self.draining and tracker.id in self.due and tracker.policy == NOW:
            key = self.key()  # a write reached it while it ran: this writer runs it again
            if key in self.draining:
                self._queue_soon(tracker.id)
        self._heard(tracker, footprint)
        self.retrack(tracker, footprint.reads)
        # a failed run may stop before its writes: it still stands for what it usually writes
        kept = tracker.writes if error is not None else frozenset()
        tracker.writes = kept | frozenset(footprint.writes)
        status, statuses = tracker.status, self.statuses
        if error is not None:
            status.error = error
            statuses.spread_stale(tracker.id, f"{shown(tracker.writes)} failed in {tracker.name}")
        else:
            status.stale = status.cause = None
            if status.error is not None:
                status.error = None
                statuses.recover(tracker.id)
        # a loop can only be new when this footprint or the derivations changed
        checked = (tracker.paths, tracker.writes, self.topology)
        if tracker.writes and checked != tracker.checked:
            tracker.checked = checked
            chain = statuses.find_cycle(tracker.id)
            if chain is not None:
                return statuses.refuse(chain)
        return error if tracker.raise_errors else None

    def forget(self, tid: Hashable) -> None:
        """An untracked function or removed derivation: drop its marks and those it caused."""
        self._unmark(tid)
        self.statuses.derived.pop(tid, None)
        self.statuses.recover(tid)
