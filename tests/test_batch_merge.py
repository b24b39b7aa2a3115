"""A batch's siblings heard only from above are merged into one change at their parent
(restate/_engine/roots.py) -- and every subscription still gets exactly the events it got
when each sibling was its own change: a differential test against the planner-only
reference of tests/test_direct_path.py, and the cases that once differed."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from restate import ControllerSync

from .test_direct_path import Run

KEYS = ["/a/b", "/a/c", "/a/d", "/a/e"]
VALUES = st.one_of(st.integers(0, 3), st.none(), st.just({"x": 1}))
WRITE = st.tuples(
    st.sampled_from(["set"] * 10 + ["del", "quiet", "ping"]),
    st.sampled_from(KEYS * 3 + ["/a/b/x", "/a/f/g", "/c", "/a"]),
    VALUES,
)
OP = st.one_of(
    st.tuples(
        st.just("subscribe"),
        st.sampled_from(["/", "/a", "/a", "/a/b", "/c", "/a/*", "/a/b/x"]),
        st.sampled_from(["log", "log", "stop", "echo"]),
    ),
    st.tuples(st.just("merge_batch"), st.lists(WRITE, min_size=2, max_size=6), st.booleans()),
    st.tuples(st.just("merge_batch"), st.lists(WRITE, min_size=2, max_size=6), st.just(False)),
    st.tuples(  # distinct siblings, plain values: the merged way, mostly
        st.just("merge_batch"),
        st.lists(st.sampled_from(KEYS), min_size=2, max_size=4, unique=True).flatmap(
            lambda keys: st.tuples(*[st.tuples(st.just("set"), st.just(k), VALUES) for k in keys])
        ),
        st.just(False),
    ),
    st.tuples(st.just("unsubscribe"), st.sampled_from(["/", "/a", "/a/b"])),
    st.tuples(st.just("listen")),
)
START = [("set", "/a", {"b": 0, "c": 1, "d": 2, "e": 3}), ("subscribe", "/a", "log")]


class Rollback(Exception):
    pass


class BatchRun(Run):
    """``Run`` with batches that also delete, write quietly and ping."""

    def _apply(self, c: ControllerSync, name: str, op: tuple[Any, ...]) -> None:
        if name != "merge_batch":
            return super()._apply(c, name, op)
        try:
            with c.batch():
                for kind, path, value in op[1]:
                    if kind == "set":
                        c.set_state(path, value, payload=len(self.log))
                    elif kind == "del":
                        c.del_state(path)
                    elif kind == "quiet":
                        c.set_state(path, value, skip_notify=True)
                    else:
                        c.ping(path)
                if op[2]:
                    raise Rollback
        except Rollback:
            self.log.append(("rolled back",))


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.lists(OP, min_size=1, max_size=15))
def test_merged_siblings_give_every_subscription_the_events_the_engine_gives(
    ops: list[tuple[Any, ...]],
) -> None:
    fast, engine = BatchRun(ControllerSync(), True), BatchRun(ControllerSync(), False)
    for step, op in enumerate(START + ops):
        fast.apply(op)
        engine.apply(op)
        assert fast.c.get_state("/") == engine.c.get_state("/"), (step, op)
        assert fast.log == engine.log, (step, op)


def test_the_differential_batches_do_merge_siblings() -> None:
    """(The test above compares something: its kind of batch takes the merged way.)"""
    fast = BatchRun(ControllerSync(), True)
    for op in [*START, ("merge_batch", [("set", "/a/b", 7), ("set", "/a/c", 8)], False)]:
        fast.apply(op)
    assert fast.c._engine.batches.merged == {("a",)}


def events_of(c: ControllerSync, path: str, log: list[tuple[Any, ...]]) -> None:
    def cb(e: Any) -> None:
        log.append((path, str(e.emitting_path), e.prev_value, e.new_value, e.payload))
        if path == "/batch" and e.payload == "stop":
            e.stop_bubbling()

    c.subscribe(path, cb)


def batch_of(c: ControllerSync, values: dict[str, Any], payload: Any = None) -> None:
    with c.batch():
        for key, value in values.items():
            c.set_state(f"/batch/{key}", value, payload=payload)


def test_siblings_heard_from_above_make_one_change_and_each_subscription_one_event() -> None:
    c = ControllerSync()
    batch_of(c, {"k0": 0, "k1": 0, "k2": 0})
    seen: list[tuple[Any, ...]] = []
    events_of(c, "/batch", seen)
    events_of(c, "/", seen)
    batch_of(c, {"k0": 1, "k1": 1, "k2": 1}, payload="p")
    assert c._engine.batches.merged == {("batch",)}
    old, new = {"k0": 0, "k1": 0, "k2": 0}, {"k0": 1, "k1": 1, "k2": 1}
    assert seen == [
        ("/batch", "/batch", old, new, "p"),
        ("/", "/", {"batch": old}, {"batch": new}, "p"),
    ]


def test_stop_bubbling_in_a_merged_change_stops_the_subscriptions_above() -> None:
    c = ControllerSync()
    batch_of(c, {"k0": 0, "k1": 0})
    seen: list[tuple[Any, ...]] = []
    events_of(c, "/batch", seen)
    events_of(c, "/", seen)
    batch_of(c, {"k0": 1, "k1": 1}, payload="stop")
    assert [s[0] for s in seen] == ["/batch"]


def test_a_sibling_that_ends_where_it_started_leaves_the_other_its_own_event() -> None:
    c = ControllerSync()
    batch_of(c, {"k0": 0, "k1": 0})
    seen: list[tuple[Any, ...]] = []
    events_of(c, "/", seen)
    with c.batch():
        c.set_state("/batch/k0", 5)
        c.set_state("/batch/k1", 7)
        c.set_state("/batch/k1", 0)  # back where it started: no change, not merged
    assert c._engine.batches.merged == frozenset()
    assert seen == [("/", "/batch/k0", 0, 5, None)]


def test_a_sibling_with_a_subscription_of_its_own_keeps_every_root_apart() -> None:
    c = ControllerSync()
    batch_of(c, {"k0": 0, "k1": 0, "k2": 0})
    seen: list[tuple[Any, ...]] = []
    events_of(c, "/batch/k1", seen)
    events_of(c, "/batch", seen)
    batch_of(c, {"k0": 1, "k1": 1, "k2": 1})
    assert c._engine.batches.merged == frozenset()
    old, new = {"k0": 0, "k1": 0, "k2": 0}, {"k0": 1, "k1": 1, "k2": 1}
    # (in planning order: /k0 reaches /batch first)
    assert seen == [("/batch", "/batch", old, new, None), ("/batch/k1", "/batch/k1", 0, 1, None)]


def test_listeners_still_get_every_root_of_a_batch() -> None:
    c = ControllerSync()
    batch_of(c, {"k0": 0, "k1": 0})
    c.subscribe("/batch", lambda e: None)
    got: list[Any] = []
    c.on_changes(lambda changes: got.append([str(ch.path) for ch in changes]))
    batch_of(c, {"k0": 1, "k1": 1})
    assert got == [["/batch/k0", "/batch/k1"]]


def test_a_batched_write_equal_but_for_its_type_changes_nothing_and_is_not_merged() -> None:
    c = ControllerSync()
    batch_of(c, {"k0": 1, "k1": 1, "k2": 1})
    seen: list[tuple[Any, ...]] = []
    events_of(c, "/batch", seen)
    with c.batch():
        assert c.set_state("/batch/k0", 1.0) is False
        assert c.set_state("/batch/k1", True) is False
        assert c.set_state("/batch/k2", 2) is True
    assert c.get_state("/batch") == {"k0": 1, "k1": 1, "k2": 2}
    assert type(c.get_state("/batch/k1")) is int
    assert seen == [("/batch", "/batch/k2", 1, 2, None)]
