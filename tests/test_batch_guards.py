"""The cheap paths of a write keep their promises: the memory store's one-walk write
(``InMemoryBackend._replace``) decides equality as a read first would, and the controller's
cheaper interrupt checks around batched writes still roll back a batch whose with
statement is gone before a later write from elsewhere."""

from __future__ import annotations

import math
from typing import Any

import pytest

from restate import ControllerSync
from restate.backends import InMemoryBackend
from restate.missing import MISSING


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize(("stored", "written"), [(1, True), (True, 1), (1, 1.0), (0.0, -0.0)])
def test_an_equal_value_of_another_type_changes_nothing_and_keeps_the_stored_object(
    batched: bool, stored: Any, written: Any
) -> None:
    c = ControllerSync()
    c.set_state("/a/x", stored)
    seen: list[Any] = []
    c.subscribe("/a", seen.append)
    if batched:
        with c.batch():
            assert c.set_state("/a/x", written) is False
    else:
        assert c.set_state("/a/x", written) is False
    got = c.get_state("/a/x")
    assert type(got) is type(stored) and math.copysign(1, got) == math.copysign(1, stored)
    assert seen == []


def test_the_one_walk_write_logs_what_it_replaced_for_the_store_s_own_rollback() -> None:
    store = InMemoryBackend({"a": {"x": 1, "y": "s"}})
    with pytest.raises(KeyError), store.transaction():
        assert store._replace(("a", "x"), 2) == 1
        assert store._replace(("a", "y"), "s") == "s"  # equal: nothing written or logged
        assert store._replace(("a", "z"), 3) is MISSING  # not there: nothing written
        assert store._replace(("a", "x", "deep"), 3) is MISSING  # a leaf in the way
        raise KeyError
    assert store.read("/") == {"a": {"x": 1, "y": "s"}}


def test_a_store_subclass_that_watches_writes_still_sees_every_write() -> None:
    class Watching(InMemoryBackend):
        def __init__(self) -> None:
            super().__init__()
            self.sets: list[tuple[str, ...]] = []

        def _set(self, parts: tuple[str, ...], value: Any) -> None:
            self.sets.append(parts)
            super()._set(parts, value)

    store = Watching()
    c = ControllerSync(store)
    c.set_state("/a", 1)
    c.set_state("/a", 2)
    with c.batch():
        c.set_state("/a", 3)
    assert store.sets == [("a",)] * 3


def leave_a_batch(c: ControllerSync, writes: bool = True) -> Any:
    """A batch whose with statement is gone without its end: what an interrupt landing on
    the first bytecode of contextlib's __exit__ leaves behind."""
    cm = c.batch()
    cm.__enter__()
    if writes:
        c.set_state("/a/x", 1)  # written again and again from this frame: the cheap check
        c.set_state("/a/y", 2)
    return cm


def test_a_write_after_a_batch_left_behind_rolls_it_back_first() -> None:
    c = ControllerSync()
    seen: list[Any] = []
    c.subscribe("/", lambda e: seen.append(str(e.emitting_path)))
    cm = leave_a_batch(c)
    c.set_state("/b", 3)  # from another frame: the left batch ends, rolled back, first
    assert c.get_state("/") == {"b": 3}
    assert seen == ["/b"]
    assert c._engine.batches.depth == 0 and not c._owners and not c._txns
    del cm


@pytest.mark.parametrize("writes", [True, False])
def test_a_nested_batch_left_behind_is_rolled_back_and_the_outer_one_commits(
    writes: bool,
) -> None:
    c = ControllerSync()
    seen: list[Any] = []
    c.subscribe("/", lambda e: seen.append(str(e.emitting_path)))
    with c.batch():
        c.set_state("/outer", 1)  # this frame is now known to be inside the batch...
        cm = leave_a_batch(c, writes)  # ...but not inside this one, left behind
        c.set_state("/outer", 2)  # so the inner batch is rolled back first
        assert c._engine.batches.depth == 1
    assert c.get_state("/") == {"outer": 2}
    assert seen == ["/outer"]
    del cm
