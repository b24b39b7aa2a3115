"""Who hears a write: the remembered answer always equals a brute-force check over every
registration, through any sequence of registrations and removals."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from restate import ControllerSync

SEGS = st.sampled_from(["a", "b", "c"])
PATHS = st.lists(SEGS, min_size=0, max_size=3).map(tuple)
SUB_PATHS = st.lists(st.sampled_from(["a", "b", "*"]), min_size=0, max_size=3).map(tuple)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("subscribe"), SUB_PATHS),
        st.tuples(st.just("unsubscribe"), SUB_PATHS),
        st.tuples(st.just("derive"), st.lists(SEGS, min_size=1, max_size=3).map(tuple)),
        st.tuples(st.just("underive"), st.just(())),
        st.tuples(st.just("ask"), PATHS),
    ),
    max_size=40,
)


def touches(sub: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    return all(s in ("*", p) for s, p in zip(sub, parts, strict=False))


def noop(event: Any) -> None:
    pass


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_the_remembered_audience_matches_a_brute_force_check(ops: list) -> None:
    c = ControllerSync()
    engine = c._engine
    subs: set[tuple[str, ...]] = set()
    sources: dict[str, tuple[str, ...]] = {}
    for op, parts in ops:
        path = "/" + "/".join(parts)
        if op == "subscribe":
            c.subscribe(path, noop)
            subs.add(parts)
        elif op == "unsubscribe":
            c.unsubscribe(path, noop)
            subs.discard(parts)
        elif op == "derive":
            dest = f"/out{len(sources)}"
            c.derive(dest, path, lambda v: 0)
            sources[dest] = parts
        elif op == "underive" and sources:
            dest = next(iter(sources))
            c.underive(dest)
            del sources[dest]
        else:
            expected = any(touches(s, parts) for s in subs) or any(
                touches(s, parts) for s in sources.values()
            )
            expected = expected or any(touches(parts, s) for s in subs)
            assert engine.audience.hears(parts) == expected
            assert engine.audience.hears(parts) == expected  # the remembered answer too


def test_a_write_nobody_hears_is_not_planned(monkeypatch: pytest.MonkeyPatch) -> None:
    c = ControllerSync()
    for i in range(100):
        c.subscribe(f"/items/{i}/value", noop)
        c.derive(f"/out/{i}", f"/in/{i}", lambda v: v)
    c.subscribe("/groups/*/value", noop)
    c.set_state("/items/3/other", 0)

    def planned(*args: Any) -> Any:
        raise AssertionError("a write nobody hears went through planning")

    monkeypatch.setattr(c._engine, "_after", planned)
    c.set_state("/a/b", 1)
    c.set_state("/items/3/other", 1)
    assert c.get_state("/a/b") == 1


def test_a_registration_after_a_write_is_heard_on_the_next_write() -> None:
    c = ControllerSync()
    c.set_state("/a/b", 1)  # remembered: nobody hears /a/b
    events: list[Any] = []
    c.subscribe("/a", events.append)
    c.set_state("/a/b", 2)
    c.derive("/twice", "/a/b", lambda v: v * 2)
    c.set_state("/a/b", 3)
    assert [e.new_value for e in events] == [2, 3]
    assert c.get_state("/twice") == 6
    c.unsubscribe("/a", events.append)
    c.underive("/twice")
    c.set_state("/a/b", 4)
    assert len(events) == 2
    assert c.get_state("/twice") == 6


def test_a_tracked_function_is_heard_at_the_paths_it_read_last() -> None:
    c = ControllerSync()
    runs: list[Any] = []

    def read(event: Any) -> None:
        runs.append(c.get_state("/flag") and c.get_state("/x"))

    c.set_state("/x", 1)  # remembered: nobody hears /x
    c.track(read)
    c.set_state("/flag", True)  # now it reads /x too
    c.set_state("/x", 2)
    assert runs == [None, 1, 2]
