"""The direct write path (restate/_engine/direct.py) has the engine's semantics exactly.

A differential property test drives the same random sequence of operations -- writes,
deletes, updates, pings, batches (some rolled back), subscriptions exact, wildcard and
bubbling with stop_bubbling, callbacks that write, derivations, tracked functions,
on_changes listeners, unsubscriptions -- through two controllers, one with the direct path
and the per-path routes, the other with both switched off (the engine's generator and the
planner for everything heard, batch ends included), and compares every state and every
event, in order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from restate import ControllerSync, CycleError
from restate._engine import direct
from restate._engine.audience import Audience, Heard
from restate.backends import FileSystemSyncBackend, SQLiteBackend

SEGS = st.sampled_from(["a", "b", "c"])
PATHS = st.lists(st.sampled_from(["a", "b", "a", "b", "c"]), min_size=1, max_size=3).map(
    lambda p: "/" + "/".join(p)
)
SUB_PATHS = st.lists(st.sampled_from(["a", "b"] * 4 + ["c", "*"]), max_size=3).map(
    lambda p: "/" + "/".join(p)
)
VALUES = st.one_of(
    st.integers(-2, 2),
    st.none(),
    st.dictionaries(SEGS, st.integers(0, 2), max_size=2),
    st.dictionaries(SEGS, st.dictionaries(SEGS, st.integers(0, 1), max_size=2), max_size=2),
)
SUBSCRIBE = st.tuples(
    st.just("subscribe"), SUB_PATHS, st.sampled_from(["log", "log", "stop", "echo"])
)
WRITE = st.tuples(st.just("set"), PATHS, VALUES)
# few paths: a batch often rewrites one, or writes beside and under another
BATCH_WRITE = st.tuples(st.just("set"), st.sampled_from(["/a", "/a/b", "/a/c", "/b"]), VALUES)
SETS = st.tuples(
    st.sampled_from(["set", "set", "set", "set_default", "set_eq", "set_quiet"]), PATHS, VALUES
)
OTHERS = st.one_of(
    st.tuples(st.just("del"), PATHS),
    st.tuples(st.just("update"), PATHS),
    st.tuples(st.just("ping"), PATHS),
    st.tuples(st.just("batch"), st.lists(BATCH_WRITE, max_size=5), st.booleans()),
    st.tuples(st.just("unsubscribe"), SUB_PATHS),
    st.tuples(st.just("listen")),
)
RARE = st.one_of(st.tuples(st.just("derive"), PATHS), st.tuples(st.just("track"), PATHS))
# writes and subscriptions most often: a derivation or tracked function sends the paths it
# reads (and everything at or under them) to the engine, leaving the direct path less to do
OP = st.sampled_from([SETS] * 6 + [SUBSCRIBE] * 3 + [OTHERS] * 3 + [RARE]).flatmap(lambda s: s)
OPS = st.lists(OP, min_size=4, max_size=40)


class Rollback(Exception):
    pass


class PlannerOnly(Audience):
    """The reference: every heard path goes to the planner (no Route shortcut anywhere)."""

    __slots__ = ()

    def _work_out(self, parts: tuple[str, ...]) -> Heard:
        return super()._work_out(parts) is not False


class Run:
    """One controller and the log of everything its callbacks saw. ``direct_writes=False``
    is the reference: the engine's generator path and the planner for everything heard."""

    def __init__(self, c: ControllerSync, direct_writes: bool) -> None:
        c._engine.direct_writes = direct_writes
        if not direct_writes:
            engine = c._engine
            engine.audience = PlannerOnly(engine.subs, engine.graph)
        # on persistent stores an unobserved write does not compare (it returns True)
        self.returns = c._engine.aliasing
        self.c = c
        self.log: list[tuple[Any, ...]] = []
        self.callbacks: dict[str, Callable[[Any], None]] = {}
        self.derived = 0

    def callback(self, kind: str, where: str) -> Callable[[Any], None]:
        key = f"{kind}@{where}"
        if key not in self.callbacks:

            def cb(e: Any) -> None:
                self.log.append(
                    (key, str(e.emitting_path), str(e.current_path), e.prev_value, e.new_value)
                )
                if kind == "stop":
                    e.stop_bubbling()
                elif kind == "echo" and type(e.new_value) is int and e.new_value < 2:
                    e.set_state("/c/echo", e.new_value + 1)  # a write from a callback

            self.callbacks[key] = cb
        return self.callbacks[key]

    def apply(self, op: tuple[Any, ...]) -> None:
        c, name = self.c, op[0]
        try:
            self._apply(c, name, op)
        except Exception as exc:  # both sides must fail alike
            self.log.append(("raised", type(exc).__name__))

    def _apply(self, c: ControllerSync, name: str, op: tuple[Any, ...]) -> None:
        if name == "set":
            wrote = c.set_state(op[1], op[2], payload=len(self.log))
            self.log.append(("->", wrote if self.returns else None))
        elif name == "set_default":
            self.log.append(("->", c.set_state(op[1], op[2], default=1)))
        elif name == "set_eq":
            self.log.append(("->", c.set_state(op[1], op[2], eq_func=lambda a, b: a is None)))
        elif name == "set_quiet":
            wrote = c.set_state(op[1], op[2], skip_notify=True)
            self.log.append(("->", wrote if self.returns else None))
        elif name == "del":
            self.log.append(("->", c.del_state(op[1])))
        elif name == "update":
            c.update(op[1], lambda v: (v + 1) if type(v) is int else 0)
        elif name == "ping":
            c.ping(op[1])
        elif name == "batch":
            try:
                with c.batch():
                    for _, path, value in op[1]:
                        c.set_state(path, value)
                    if op[2]:
                        raise Rollback
            except Rollback:
                self.log.append(("rolled back",))
        elif name == "subscribe":
            c.subscribe(op[1], self.callback(op[2], op[1]))
        elif name == "unsubscribe":
            for key, cb in self.callbacks.items():
                if key.endswith("@" + op[1]):
                    c.unsubscribe(op[1], cb)
        elif name == "derive":
            self.derived += 1
            c.derive(f"/d{self.derived}", op[1], lambda v: repr(v)[:8])
        elif name == "track":
            path = op[1]
            c.track(lambda e: self.log.append(("tracked", path, repr(c.get_state(path)))))
        elif name == "listen":
            c.on_changes(lambda changes: self.log.append(("changes", repr(changes))))


def run_both(ops: list[tuple[Any, ...]], make: Callable[[], ControllerSync]) -> None:
    fast, engine = Run(make(), True), Run(make(), False)
    for step, op in enumerate(ops):
        fast.apply(op)
        engine.apply(op)
        assert fast.c.get_state("/") == engine.c.get_state("/"), (step, op)
        assert fast.log == engine.log, (step, op)


@settings(max_examples=400, deadline=None)
@given(OPS)
def test_the_direct_path_and_the_engine_path_give_the_same_states_and_events(
    ops: list[tuple[Any, ...]],
) -> None:
    run_both(ops, ControllerSync)


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(OPS)
def test_the_direct_path_matches_the_engine_over_a_file_store(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[Any, ...]]
) -> None:
    run_both(ops, lambda: ControllerSync(FileSystemSyncBackend(tmp_path_factory.mktemp("fs"))))


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(OPS)
def test_the_direct_path_matches_the_engine_over_sqlite(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[Any, ...]]
) -> None:
    def make() -> ControllerSync:
        return ControllerSync(SQLiteBackend(str(tmp_path_factory.mktemp("db") / "s.db")))

    run_both(ops, make)


def test_a_write_heard_by_one_plain_subscriber_takes_the_direct_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    c = ControllerSync()
    seen: list[Any] = []
    c.subscribe("/a/b", lambda e: seen.append(e.new_value))

    def no_generator(*args: Any) -> Any:
        raise AssertionError("the engine's generator was used")

    monkeypatch.setattr(c._engine, "set_state", no_generator)
    monkeypatch.setattr(c, "_drive", no_generator)
    assert c.set_state("/a/b", 1)
    assert c.set_state("/x", 1)  # nobody hears it
    assert seen == [1]


def test_stop_bubbling_in_the_direct_path_skips_the_subscriptions_above() -> None:
    c = ControllerSync()
    seen: list[str] = []
    c.subscribe("/", lambda e: seen.append("/"))
    c.subscribe("/a", lambda e: seen.append("/a"))
    c.subscribe("/a/b", lambda e: (seen.append("/a/b"), e.stop_bubbling()))
    c.set_state("/a/b", 1)
    c.set_state("/a", {"b": 1, "x": 2})  # a dict write below the stopper's level
    assert seen == ["/a/b", "/a", "/"]


def test_a_path_a_derivation_reads_goes_through_the_engine() -> None:
    c = ControllerSync()
    c.derive("/double", "/n", lambda n: (n or 0) * 2)
    calls: list[Any] = []
    real = c._engine.set_state

    def counting(*args: Any) -> Any:
        calls.append(args[0])
        return real(*args)

    c._engine.set_state = counting  # type: ignore[method-assign]
    c.set_state("/n", 4)
    assert calls and calls[0] == ("n",)
    assert c.get_state("/double") == 8


def test_a_subscription_added_after_a_write_hears_the_next_one() -> None:
    # the remembered audience of /a/b was "nobody"; subscribing must forget it
    c = ControllerSync()
    c.set_state("/a/b", 1)
    seen: list[Any] = []
    c.subscribe("/a", lambda e: seen.append((str(e.emitting_path), e.new_value)))
    c.set_state("/a/b", 2)
    c.unsubscribe("/a", c._engine.callbacks[next(iter(c._engine.callbacks))])
    c.set_state("/a/b", 3)
    assert seen == [("/a/b", 2)]


def test_a_callback_that_unsubscribes_another_stops_its_delivery_in_the_same_write() -> None:
    c = ControllerSync()
    seen: list[str] = []

    def outer(e: Any) -> None:
        seen.append("outer")

    def inner(e: Any) -> None:
        seen.append("inner")
        c.unsubscribe("/a", outer)

    c.subscribe("/a", outer)
    c.subscribe("/a/b", inner)
    c.set_state("/a/b", 1)
    assert seen == ["inner"]


def test_errors_of_several_callbacks_are_raised_together_after_all_ran() -> None:
    c = ControllerSync()
    ran: list[str] = []

    def bad(name: str) -> Callable[[Any], None]:
        def cb(e: Any) -> None:
            ran.append(name)
            raise ValueError(name)

        return cb

    c.subscribe("/a/b", bad("b"))
    c.subscribe("/a", bad("a"))
    with pytest.raises(ExceptionGroup) as info:
        c.set_state("/a/b", 1)
    assert ran == ["b", "a"]
    assert [str(e) for e in info.value.exceptions] == ["b", "a"]
    assert c.get_state("/a/b") == 1


def test_a_keyboard_interrupt_in_a_callback_leaves_the_controller_usable() -> None:
    c = ControllerSync()
    fired = []

    def interrupted(e: Any) -> None:
        fired.append(e.new_value)
        if e.new_value == 1:
            raise KeyboardInterrupt

    c.subscribe("/a", interrupted)
    with pytest.raises(KeyboardInterrupt):
        c.set_state("/a", 1)
    assert not c._engine.dispatcher.active
    c.set_state("/a", 2)  # a new dispatch, not a queued round of a dead one
    assert fired == [1, 2]


def test_a_feedback_loop_through_the_direct_path_is_stopped_by_max_rounds() -> None:
    c = ControllerSync(max_rounds=5)
    c.subscribe("/n", lambda e: e.set_state("/n", e.new_value + 1))
    with pytest.raises(CycleError):
        c.set_state("/n", 0)
    assert c.get_state("/n") == 5


def test_the_module_documents_the_switch() -> None:
    assert "direct_writes = False" in (direct.__doc__ or "")


class CountingReads(FileSystemSyncBackend):
    reads = 0

    def read(self, path: Any, default: Any = None) -> Any:
        CountingReads.reads += 1
        return super().read(path, default)


@pytest.mark.parametrize(
    "observer",
    ["subscription", "subscription above", "derivation", "tracked read", "listener", "eq_func",
     "default"],
)  # fmt: skip
def test_a_persistent_write_reads_the_previous_value_only_when_something_can_observe_it(
    tmp_path: Any, observer: str
) -> None:
    c = ControllerSync(CountingReads(tmp_path))
    c.set_state("/k", 1)
    CountingReads.reads = 0
    assert c.set_state("/k", 1)  # unobserved: no read, no comparison, written
    assert CountingReads.reads == 0
    kwargs: dict[str, Any] = {}
    if observer == "subscription":
        c.subscribe("/k", lambda e: None)
    elif observer == "subscription above":
        c.subscribe("/", lambda e: None)
    elif observer == "derivation":
        c.derive("/d", "/k", lambda v: v)
    elif observer == "tracked read":
        c.track(lambda e: c.get_state("/k"))
    elif observer == "listener":
        c.on_changes(lambda changes: None)
    elif observer == "eq_func":
        kwargs["eq_func"] = lambda a, b: a == b
    else:
        kwargs["default"] = 1
    CountingReads.reads = 0
    assert not c.set_state("/k", 1, **kwargs)  # observed: compared, unchanged, not written
    assert CountingReads.reads >= 1
    assert c.get_state("/k") == 1


def test_an_unobserved_persistent_write_is_still_checked_before_anything_changes(
    tmp_path: Any,
) -> None:
    c = ControllerSync(FileSystemSyncBackend(tmp_path))
    c.set_state("/leaf", 1)
    with pytest.raises(TypeError):
        c.set_state("/", 5)
    with pytest.raises(Exception, match="leaf"):
        c.set_state("/leaf/below", 2)
    assert c.get_state("/") == {"leaf": 1}


@pytest.mark.parametrize("store", ["memory", "files", "sqlite"])
def test_a_batch_of_direct_writes_rolls_back_exactly_when_interrupted(
    tmp_path: Any, store: str
) -> None:
    if store == "files":
        c = ControllerSync(FileSystemSyncBackend(tmp_path))
    elif store == "sqlite":
        c = ControllerSync(SQLiteBackend(str(tmp_path / "s.db")))
    else:
        c = ControllerSync()
    c.set_state("/", {"a": {"x": 1}, "b": 2})
    before = c.get_state("/")
    seen: list[Any] = []
    c.subscribe("/", seen.append)
    with pytest.raises(KeyboardInterrupt), c.batch():
        c.set_state("/a/x", 5)
        c.set_state("/a/new/deep", 6)  # creates /a/new
        c.set_state("/c", {"d": 1})
        c.set_state("/b", 3)
        raise KeyboardInterrupt
    assert c.get_state("/") == before
    assert seen == []


def test_a_batch_nobody_hears_coalesces_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from restate._engine import batching

    c = ControllerSync()
    c.subscribe("/elsewhere", lambda e: None)
    for i in range(10):
        c.set_state(f"/k/{i}", 0)

    def no_values(*args: Any) -> Any:
        raise AssertionError("a root nobody hears was coalesced")

    monkeypatch.setattr(batching, "_before_and_now", no_values)
    monkeypatch.setattr(batching, "_entries_by_root", no_values)
    with c.batch():
        for i in range(10):
            c.set_state(f"/k/{i}", {"v": i})
            c.set_state(f"/k/{i}/v", i + 1)
    assert c.get_state("/k/3") == {"v": 4}


@pytest.mark.parametrize("registration", ["track", "derive", "wildcard"])
def test_a_remembered_route_is_forgotten_when_a_registration_makes_the_path_need_the_planner(
    registration: str,
) -> None:
    c = ControllerSync()
    seen: list[Any] = []
    c.subscribe("/a", lambda e: seen.append(("sub", e.new_value)))
    c.set_state("/a", 1)  # remembers /a's route: one plain subscription
    if registration == "track":
        c.track(lambda e: seen.append(("tracked", c.get_state("/a"))))
    elif registration == "derive":
        c.derive("/double", "/a", lambda v: v * 2)
    else:
        c.subscribe("/*", lambda e: seen.append(("wild", e.new_value)))
    seen.clear()
    c.set_state("/a", 2)
    expected = {
        "track": [("sub", 2), ("tracked", 2)],
        "derive": [("sub", 2)],
        "wildcard": [("sub", 2), ("wild", 2)],
    }[registration]
    assert seen == expected
    if registration == "derive":
        assert c.get_state("/double") == 4
