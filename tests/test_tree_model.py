"""A hypothesis property test: the state tree behaves like a model nested dict."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from restate import ControllerSync, PathConflictError

KEYS = st.sampled_from(["a", "b", "c", "v1.2", "ü"])
PATHS = st.lists(KEYS, min_size=0, max_size=3).map(tuple)
LEAVES = st.one_of(
    st.none(), st.integers(-3, 3), st.text(max_size=2), st.lists(st.integers(), max_size=2)
)
VALUES = st.recursive(LEAVES, lambda inner: st.dictionaries(KEYS, inner, max_size=3), max_leaves=6)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), PATHS, VALUES),
        st.tuples(st.just("del"), PATHS, st.none()),
        st.tuples(st.just("get"), PATHS, st.none()),
    ),
    max_size=25,
)

MISSING = object()


def model_get(tree: Any, parts: tuple) -> Any:
    node = tree
    for seg in parts:
        if not isinstance(node, dict) or seg not in node:
            return MISSING
        node = node[seg]
    return node


def model_set(tree: dict, parts: tuple, value: Any) -> None:
    node = tree
    for seg in parts[:-1]:
        nxt = node.get(seg, MISSING)
        if nxt is MISSING:
            nxt = node[seg] = {}
        elif not isinstance(nxt, dict):
            raise PathConflictError(seg)
        node = nxt
    node[parts[-1]] = copy.deepcopy(value)


@settings(max_examples=200, deadline=None)
@given(OPS)
def test_random_sets_deletes_and_gets_match_a_model_dict(ops: list) -> None:
    c = ControllerSync()
    model: dict = {}
    for op, parts, value in ops:
        path = "/" + "/".join(parts)
        if op == "set":
            if not parts:
                if isinstance(value, dict):
                    c.set_state(path, value)
                    model = copy.deepcopy(value)
                continue
            try:
                trial = copy.deepcopy(model)
                model_set(trial, parts, value)
            except PathConflictError:
                before = c.get_state("/")
                try:
                    c.set_state(path, value)
                except PathConflictError:
                    assert c.get_state("/") == before
                    continue
                raise AssertionError(f"expected a conflict writing {path}") from None
            c.set_state(path, value)
            model = trial
        elif op == "del":
            existed = model_get(model, parts) is not MISSING
            if not parts:
                assert c.del_state(path) == bool(model)
                model = {}
                continue
            assert c.del_state(path) == existed
            if existed:
                del model_get(model, parts[:-1])[parts[-1]]
        else:
            expected = model_get(model, parts)
            assert c.get_state(path) == (None if expected is MISSING else expected)
        assert c.get_state("/") == model


SUB_PATHS = st.lists(PATHS, min_size=1, max_size=4, unique=True)
BATCH_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), PATHS.filter(bool), VALUES),
        st.tuples(st.just("del"), PATHS.filter(bool), st.none()),
    ),
    min_size=1,
    max_size=12,
)


def apply_ops(c: ControllerSync, ops: list) -> None:
    """Apply set/del operations; writes below a leaf fail (and change nothing), as allowed."""
    for op, parts, value in ops:
        try:
            if op == "set":
                c.set_state("/" + "/".join(parts), value)
            else:
                c.del_state("/" + "/".join(parts))
        except PathConflictError:
            pass


def _backend(kind: str) -> Any:
    from restate import InMemoryBackend, SQLiteBackend

    return InMemoryBackend() if kind == "memory" else SQLiteBackend(":memory:")


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@settings(max_examples=120, deadline=None)
@given(initial=VALUES.filter(lambda v: isinstance(v, dict)), ops=BATCH_OPS, subs=SUB_PATHS)
def test_a_batch_notifies_exactly_the_paths_whose_value_changed(
    kind: str, initial: dict, ops: list, subs: list
) -> None:
    c = ControllerSync(_backend(kind))
    c.set_state("/", initial)
    events: dict[str, list] = {}
    for parts in subs:
        path = "/" + "/".join(parts)
        c.subscribe(path, lambda e, path=path: events.setdefault(path, []).append(e))
    before = c.get_state("/")
    with c.batch():
        apply_ops(c, ops)
    after = c.get_state("/")
    for parts in subs:
        path = "/" + "/".join(parts)
        old, new = model_get(before, parts), model_get(after, parts)
        got = events.get(path, [])
        if old == new:
            assert got == [], f"{path} did not change but was notified"
            continue
        assert len(got) == 1, f"{path} changed and must be notified once"
        e = got[0]
        at = (
            tuple(str(e.emitting_path).strip("/").split("/")) if str(e.emitting_path) != "/" else ()
        )
        was, now = model_get(before, at), model_get(after, at)
        assert (e.prev_value, e.new_value) == (
            None if was is MISSING else was,
            None if now is MISSING else now,
        )


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@settings(max_examples=120, deadline=None)
@given(initial=VALUES.filter(lambda v: isinstance(v, dict)), ops=BATCH_OPS)
def test_a_failed_batch_leaves_exactly_the_state_it_found(
    kind: str, initial: dict, ops: list
) -> None:
    c = ControllerSync(_backend(kind))
    c.set_state("/", initial)
    before = c.get_state("/")
    with pytest.raises(KeyError), c.batch():
        apply_ops(c, ops)
        raise KeyError("abort")
    assert c.get_state("/") == before
