"""docs/semantics.md §1–§2: the data model, reads, writes, deletes, defaults, isolation, bad input.

Every test runs on ControllerSync and ControllerAsync (the ``controller`` fixture).
"""

from __future__ import annotations

from typing import Any

import pytest

from restate import InvalidPathError, PathConflictError


def test_a_dict_value_is_an_interior_node(controller: Any) -> None:
    controller.set_state("/config", {"theme": "dark"})
    assert controller.get_state("/config/theme") == "dark"
    controller.set_state("/config/colors/primary", 1)
    assert controller.get_state("/config") == {"theme": "dark", "colors": {"primary": 1}}


def test_hierarchical_read_returns_the_nested_structure(controller: Any) -> None:
    controller.set_state("/config/theme", "dark")
    controller.set_state("/config/colors/primary", "#FF0000")
    controller.set_state("/config/colors/secondary", "#00FF00")
    assert controller.get_state("/config") == {
        "theme": "dark",
        "colors": {"primary": "#FF0000", "secondary": "#00FF00"},
    }


def test_the_root_is_the_whole_tree_and_empty_dict_when_empty(controller: Any) -> None:
    assert controller.get_state("/") == {}
    controller.set_state("/a", 1)
    assert controller.get_state("/") == {"a": 1}


def test_a_missing_node_reads_as_default(controller: Any) -> None:
    assert controller.get_state("/nope") is None
    assert controller.get_state("/nope", default=50) == 50
    assert controller.get_state("/") == {}


def test_write_default_writes_a_missing_node_and_notifies(controller: Any) -> None:
    seen = []
    controller.subscribe("/settings", lambda e: seen.append(e.new_value))
    assert controller.get_state("/settings/volume", default=50, write_default=True) == 50
    assert controller.get_state("/settings/volume") == 50
    assert seen == [50]  # a bubbled event carries the value of the written path
    assert controller.get_state("/settings/volume", default=7, write_default=True) == 50


def test_a_stored_none_is_a_value_not_a_missing_node(controller: Any) -> None:
    assert controller.set_state("/x", None) is True
    assert controller.get_state("/") == {"x": None}
    assert controller.get_state("/x", default=5) is None


def test_set_state_returns_false_and_does_nothing_when_equal(controller: Any) -> None:
    seen = []
    controller.subscribe("/a", seen.append)
    assert controller.set_state("/a", 1) is True
    assert controller.set_state("/a", 1) is False
    assert len(seen) == 1


def test_default_is_the_previous_value_assumed_for_a_missing_node(controller: Any) -> None:
    assert controller.set_state("/n", 0, default=0) is False
    assert controller.get_state("/n") is None
    events = []
    controller.subscribe("/m", events.append)
    controller.set_state("/m", 1, default=0)
    assert events[0].prev_value == 0


def test_eq_func_decides_equality(controller: Any) -> None:
    def compare_users(old: Any, new: Any) -> bool:
        if not (old and new):
            return False
        return old["id"] == new["id"]

    controller.set_state("/current_user", {"id": 1, "last_seen": "then"})
    changed = controller.set_state(
        "/current_user", {"id": 1, "last_seen": "now"}, eq_func=compare_users
    )
    assert changed is False
    assert controller.get_state("/current_user/last_seen") == "then"
    assert controller.set_state("/current_user", {"id": 2}, eq_func=compare_users) is True


def test_del_state_removes_the_subtree_and_returns_false_when_missing(controller: Any) -> None:
    controller.set_state("/users/1", {"name": "Alice"})
    controller.set_state("/users/2", {"name": "Bob"})
    assert controller.del_state("/users/1") is True
    assert controller.get_state("/users") == {"2": {"name": "Bob"}}
    assert controller.del_state("/users/1") is False
    assert controller.del_state("/nothing/here") is False


def test_deleting_the_root_empties_the_tree(controller: Any) -> None:
    controller.set_state("/a/b", 1)
    assert controller.del_state("/") is True
    assert controller.get_state("/") == {}
    assert controller.del_state("/") is False


def test_backend_delete_with_a_string_path_works(controller: Any) -> None:
    controller.set_state("/users/1", {"name": "Alice"})
    controller.backend.delete("/users/1")
    assert controller.get_state("/users/1") is None


def test_writing_below_a_leaf_raises_and_changes_nothing(controller: Any) -> None:
    controller.set_state("/a", 1)
    before = controller.get_state("/")
    with pytest.raises(PathConflictError, match="'/a' holds a int leaf"):
        controller.set_state("/a/b/c", 2)
    assert controller.get_state("/") == before


def test_writing_below_a_missing_node_creates_the_dicts_on_the_way(controller: Any) -> None:
    controller.set_state("/a/b/c", 1)
    assert controller.get_state("/") == {"a": {"b": {"c": 1}}}


def test_overwriting_a_dict_with_a_leaf_replaces_the_subtree(controller: Any) -> None:
    controller.set_state("/a", {"b": {"c": 1}})
    controller.set_state("/a", 5)
    assert controller.get_state("/") == {"a": 5}


class Key(str):
    """A str subclass is not a state key (keys are plain str)."""


@pytest.mark.parametrize(
    "value",
    [
        {"": 1},
        {"a/b": 1},
        {".": 1},
        {"..": 1},
        {"*": 1},
        {1: "int key"},
        {"ok": {"deep": {"bad/key": 1}}},
        {"ok": [{"x": 1}], "nested": {None: 2}},
        {"nul\0": 1, "fine": 2},
        {Key("subclass"): 1},
        {**{f"k{i}": i for i in range(50)}, "x/y": 50},  # one bad key among many fine ones
        {"list": [1, 2, {"deep": {"": 1}}]},
        {"tuple": (1, {"*": 2})},
    ],
)
def test_invalid_dict_keys_raise_and_nothing_is_written(controller: Any, value: Any) -> None:
    controller.set_state("/keep", {"x": 1})
    before = controller.get_state("/")
    with pytest.raises(InvalidPathError):
        controller.set_state("/target", value)
    assert controller.get_state("/") == before


@pytest.mark.parametrize("path", ["/a/../b", "/a/*/b", "bad\0path"])
def test_invalid_write_paths_raise_and_change_nothing(controller: Any, path: str) -> None:
    controller.set_state("/a", 1)
    with pytest.raises(InvalidPathError):
        controller.set_state(path, 2)
    assert controller.get_state("/") == {"a": 1}


@pytest.mark.parametrize("path", [1, None, 3.5, b"/x"])
def test_non_path_types_raise_type_error(controller: Any, path: Any) -> None:
    with pytest.raises(TypeError):
        controller.set_state(path, 1)
    assert controller.get_state("/") == {}


def test_the_root_can_only_hold_a_dict(controller: Any) -> None:
    with pytest.raises(TypeError, match="root"):
        controller.set_state("/", 5)
    controller.set_state("/", {"a": 1})
    assert controller.get_state("/") == {"a": 1}


def test_mutating_a_returned_value_never_changes_the_state(controller: Any) -> None:
    controller.set_state("/x", {"items": [1, 2]})
    d = controller.get_state("/x")
    d["items"].append(3)
    d["k"] = 1
    assert controller.get_state("/x") == {"items": [1, 2]}


@pytest.mark.parametrize(
    "value",
    [
        {f"k{i}": i for i in range(100)},  # flat: copied in one C-level pass
        [1, "two", 3.0, None, b"4"],
        {"rows": [[1, 2], [3, 4]], "meta": {"n": 2}, "pair": (1, [2])},
        {"t": (1, 2), "s": frozenset({1})},
    ],
)
def test_no_container_is_shared_between_the_caller_the_store_and_readers(
    controller: Any, value: Any
) -> None:
    import copy

    expected = copy.deepcopy(value)
    events: list[Any] = []
    controller.subscribe("/v", events.append)
    controller.set_state("/v", value)
    got, again = controller.get_state("/v"), controller.get_state("/v")
    for mine in (value, got, events[0].new_value):
        _mutate_every_container(mine)
    assert controller.get_state("/v") == expected
    assert again == expected


def _mutate_every_container(value: Any) -> None:
    if isinstance(value, dict):
        for v in list(value.values()):
            _mutate_every_container(v)
        value["added"] = 1
    elif isinstance(value, list):
        for v in value:
            _mutate_every_container(v)
        value.append("added")
    elif isinstance(value, tuple):
        for v in value:
            _mutate_every_container(v)


def test_mutating_a_value_after_writing_it_never_changes_the_state(controller: Any) -> None:
    value = {"items": [1, 2]}
    controller.set_state("/x", value)
    value["items"].append(3)
    assert controller.get_state("/x") == {"items": [1, 2]}


def test_read_modify_write_of_a_copy_notifies(controller: Any) -> None:
    seen = []
    controller.set_state("/x", {"a": 1})
    controller.subscribe("/x", seen.append)
    d = controller.get_state("/x")
    d["k"] = 1
    assert controller.set_state("/x", d) is True
    assert [e.new_value for e in seen] == [{"a": 1, "k": 1}]


def test_update_writes_fn_of_the_previous_value_and_returns_it(controller: Any) -> None:
    assert controller.update("/n", lambda v: v + 1, default=0) == 1
    assert controller.update("/n", lambda v: v * 10) == 10
    assert controller.get_state("/n") == 10


def test_update_that_raises_changes_nothing(controller: Any) -> None:
    controller.set_state("/n", 1)

    def boom(v: int) -> int:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        controller.update("/n", boom)
    assert controller.get_state("/n") == 1


def test_string_purepath_and_atom_paths_are_equivalent(controller: Any) -> None:
    from pathlib import PurePosixPath as Path

    from restate import ROOT_PATH

    controller.set_state("/users/1", "x")
    a = controller.atom("/users/1")
    for p in [
        "/users/1",
        ROOT_PATH / "users" / "1",
        Path("/") / "users" / "1",
        "users/1",
        Path("users") / "1",
        a,
    ]:
        assert controller.get_state(p) == "x"


def test_atoms_read_write_subscribe_and_derive(controller: Any) -> None:
    count = controller.atom("/counter", default=0)
    assert count.path.as_posix() == "/counter"
    assert controller.run(count.get()) == 0 if hasattr(controller, "run") else count.get() == 0
    seen: list[Any] = []
    count.on_change(seen.append)
    run = getattr(controller, "run", lambda v: v)
    run(count.set(3))
    doubled = controller.atom("/doubled")
    run(doubled.derive(count, lambda v: v * 2))
    run(count.update(lambda v: v + 1))
    assert run(doubled.get()) == 8
    assert seen == [3, 4]
    assert controller.atom(key="k").path.as_posix() == "/__atoms__/k"


def test_any_python_object_is_a_leaf_in_memory(controller: Any) -> None:
    class Thing:
        def __init__(self) -> None:
            self.items = [1]

    t = Thing()
    controller.set_state("/thing", t)
    got = controller.get_state("/thing")
    assert isinstance(got, Thing) and got is not t and got.items == [1]


def test_set_backend_swaps_the_store_and_keeps_registrations_working(
    make_controller: Any,
) -> None:
    from restate import InMemoryBackend

    c = make_controller()
    c.set_state("/a", 1)
    c.derive("/b", "/a", lambda a: (a or 0) * 2)
    seen: list = []
    c.subscribe("/a", lambda e: seen.append((e.prev_value, e.new_value)))
    new_store = InMemoryBackend({"a": 5})
    c.set_backend(new_store)
    assert c.get_state("/b") == 10
    assert seen == [(1, 5)]
    c.set_state("/a", 6)
    assert new_store.read("/") == {"a": 6, "b": 12}
