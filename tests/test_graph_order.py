"""Incremental derivation registration: the kept topological order, cycle checks and indexes
agree with a from-scratch computation after any sequence of derive/underive."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from restate import ControllerSync, CycleError
from restate._engine import topology
from restate._engine.graph import Derivation, DerivationGraph
from restate.paths import related

SEGS = st.sampled_from(["a", "b", "c"])
PATHS = st.lists(SEGS, min_size=1, max_size=3).map(tuple)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("derive"), PATHS, st.lists(PATHS, min_size=1, max_size=3)),
        st.tuples(st.just("underive"), PATHS, st.just([])),
    ),
    max_size=40,
)


def edges(ds: list[Derivation]) -> set[tuple[Any, Any]]:
    """From scratch: d1 -> d2 when d1's dest overlaps a source of d2."""
    return {
        (a.id, b.id)
        for a in ds
        for b in ds
        if a is not b and any(related(a.dest, s) for s in b.sources)
    }


def has_cycle(ds: list[Derivation]) -> bool:
    if any(related(s, d.dest) for d in ds for s in d.sources):
        return True
    succ: dict[Any, list[Any]] = {d.id: [] for d in ds}
    for a, b in edges(ds):
        succ[a].append(b)
    state: dict[Any, int] = {}

    def visit(n: Any) -> bool:
        state[n] = 1
        for m in succ[n]:
            if state.get(m) == 1 or (m not in state and visit(m)):
                return True
        state[n] = 2
        return False

    return any(n not in state and visit(n) for n in succ)


def assert_consistent(g: DerivationGraph) -> None:
    ds = list(g.by_dest.values())
    assert set(g.rank) == {d.id for d in ds}
    assert len(set(g.rank.values())) == len(ds), "ranks are distinct"
    for a, b in edges(ds):
        assert g.rank[a] < g.rank[b], "every edge goes forward in the kept order"
    order = [d.id for d in g]
    position = {i: n for n, i in enumerate(order)}
    assert all(position[a] < position[b] for a, b in edges(ds))


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_incremental_order_is_a_topological_order_of_the_from_scratch_graph(ops: list) -> None:
    g = DerivationGraph()
    ids = itertools.count()
    for op, dest, sources in ops:
        if op == "underive":
            g.remove(dest)
        else:
            new = Derivation(next(ids), dest, tuple(dict.fromkeys(sources)), lambda v: v, True)
            after = [d for d in g.by_dest.values() if d.dest != dest] + [new]
            before = dict(g.by_dest)
            try:
                g.check(new)
            except CycleError:
                assert has_cycle(after), "a cycle is reported only when there is one"
                assert g.by_dest == before, "a refused derivation registers nothing"
                continue
            assert not has_cycle(after), "every cycle is found"
            g.add(new)
        assert_consistent(g)


@settings(max_examples=100, deadline=None)
@given(OPS)
def test_incremental_order_survives_exhausted_rank_gaps(ops: list) -> None:
    saved = topology.GAP
    topology.GAP = 2  # every insertion between two nodes renumbers
    try:
        test_incremental_order_is_a_topological_order_of_the_from_scratch_graph.hypothesis.inner_test(  # type: ignore[attr-defined]
            ops
        )
    finally:
        topology.GAP = saved


def test_a_chain_registered_backwards_recomputes_in_source_order() -> None:
    c = ControllerSync()
    c.set_state("/n0", 0)
    for i in range(30, 0, -1):
        c.derive(f"/n{i}", f"/n{i - 1}", lambda v: (v or 0) + 1)
    c.set_state("/n0", 100)
    assert [c.get_state(f"/n{i}") for i in range(31)] == list(range(100, 131))
    assert [str(d.dest) for d in c.derivations()] == [f"/n{i}" for i in range(1, 31)]


def test_a_node_inserted_between_two_chains_reorders_only_what_it_must() -> None:
    c = ControllerSync()
    c.set_state("/x0", 1)
    for i in range(1, 6):  # x0 -> x1 ... x5 and, separately, y1 -> ... y5
        c.derive(f"/x{i}", f"/x{i - 1}", lambda v: (v or 0) + 1)
        c.derive(f"/y{i + 1}", f"/y{i}", lambda v: (v or 0) * 10)
    c.derive("/y1", "/x5", lambda v: v)  # now y1 must come after x5
    c.set_state("/x0", 2)
    assert c.get_state("/y6") == 7 * 10**5


def test_a_cycle_through_a_long_chain_is_named_and_nothing_is_registered() -> None:
    c = ControllerSync()
    for i in range(1, 8):
        c.derive(f"/p{i}", f"/p{i - 1}", lambda v: v)
    before = c.derivations()
    with pytest.raises(CycleError) as info:
        c.derive("/p0", "/p7", lambda v: v)
    chain = " -> ".join(f"/p{i}" for i in range(8))
    assert f"derivation cycle: {chain} -> /p0" in str(info.value)
    assert c.derivations() == before


def test_underive_then_derive_reverses_a_dependency() -> None:
    c = ControllerSync()
    c.set_state("/a", 1)
    c.derive("/b", "/a", lambda v: v + 1)
    c.underive("/b")
    c.set_state("/b", 5)
    c.derive("/a", "/b", lambda v: v * 2)
    c.set_state("/b", 6)
    assert c.get_state("/a") == 12
    assert c.get_state("/b") == 6


def test_registry_indexes_are_empty_after_every_derivation_is_removed() -> None:
    c = ControllerSync()
    for i in range(50):
        c.derive(f"/out/{i}", [f"/in/{i}/x", "/in/all"][i % 2], lambda v: v)
    for i in range(50):
        assert c.underive(f"/out/{i}")
    g = c._engine.graph
    assert (g.by_dest, g.rank, g._at, g._below, g._dests_below, g._by_id) == ({},) * 6
    assert len(g._ranks._taken) == 0


def test_registering_a_derivation_looks_only_at_its_own_neighbourhood(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import restate._engine.graph as graph_module

    c = ControllerSync()
    for i in range(500):  # 500 unrelated chains of two
        c.derive(f"/mid/{i}", f"/in/{i}", lambda v: v)
        c.derive(f"/out/{i}", f"/mid/{i}", lambda v: v)
    looked_at: list[Any] = []
    real_related = graph_module.related

    def counting(a: Any, b: Any) -> bool:
        looked_at.append((a, b))
        return real_related(a, b)

    monkeypatch.setattr(graph_module, "related", counting)
    c.derive("/mid/new", "/in/new", lambda v: v)
    c.derive("/in/new", "/seed", lambda v: v)  # goes before an existing node
    c.underive("/mid/new")
    assert len(looked_at) <= 4, "only the new derivation's own sources are compared"


CELLS = [f"x{i}" for i in range(7)]
FORMULAS = st.lists(
    st.tuples(st.sampled_from(CELLS), st.lists(st.sampled_from(CELLS), min_size=1, max_size=3)),
    max_size=12,
)
WRITES = st.lists(st.tuples(st.sampled_from(CELLS), st.integers(0, 9)), min_size=1, max_size=6)


def _spreadsheet(order: list[tuple[str, list[str]]], runs: list[str]) -> ControllerSync:
    c = ControllerSync()
    for cell in CELLS:
        c.set_state(f"/{cell}", 1)
    for dest, sources in order:

        def total(data: Any, dest: str = dest) -> int:
            runs.append(dest)
            return sum(v or 0 for v in data.values()) % 97

        c.derive_many(f"/{dest}", [f"/{s}" for s in sources], total)
    return c


@settings(max_examples=150, deadline=None)
@given(FORMULAS, WRITES)
def test_any_registration_order_settles_like_a_from_scratch_topological_one(
    formulas: list, writes: list
) -> None:
    accepted: dict[str, list[str]] = {}  # the formulas the incremental graph accepts, in order
    probe = ControllerSync()
    for dest, sources in formulas:
        try:
            probe.derive_many(f"/{dest}", [f"/{s}" for s in sources], lambda d: 0)
        except CycleError:
            continue
        accepted.pop(dest, None)
        accepted[dest] = sources
    # from scratch: Kahn's algorithm over the accepted formulas
    pending = dict(accepted)
    ordered = []
    while pending:
        ready = [d for d, srcs in pending.items() if not any(s in pending for s in srcs)]
        assert ready, "the accepted formulas are acyclic"
        for d in ready:
            ordered.append((d, pending.pop(d)))
    incremental_runs: list[str] = []
    scratch_runs: list[str] = []
    a = _spreadsheet(list(accepted.items()), incremental_runs)
    b = _spreadsheet(ordered, scratch_runs)
    assert a.get_state("/") == b.get_state("/")
    for cell, value in writes:
        incremental_runs.clear()
        scratch_runs.clear()
        a.set_state(f"/{cell}", value)
        b.set_state(f"/{cell}", value)
        assert a.get_state("/") == b.get_state("/")
        assert sorted(incremental_runs) == sorted(scratch_runs)
        assert len(incremental_runs) == len(set(incremental_runs)), "each recomputes once"
