"""A hypothesis property test: the state tree behaves like a model nested dict."""

from __future__ import annotations

import copy
from typing import Any

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
