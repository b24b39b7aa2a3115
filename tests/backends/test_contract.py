"""The backend contract (docs/semantics.md §6): one suite run against every backend.

``store`` runs a test on every backend; ``tree_store`` only on hierarchical ones.
"""

from __future__ import annotations

import asyncio
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from restate import ControllerAsync, ControllerSync
from restate.backends import MISSING, AsyncBackend
from restate.errors import InvalidPathError, PathConflictError, SerializationError

from .conftest import BackendFactory, Store, snapshot

UNUSUAL_KEYS = [
    "v1.2",
    "v1.3",
    "50%",
    "%41",
    "x.json",
    "x.json.json",
    "CON",
    "nul.txt",
    ".hidden",
    "..x",
    "end.",
    "space ",
    "tab\there",
    "new\nline",
    "bell\x07",
    "back\\slash",
    'q"uote<>|:?',
    "ünïcødé ✓ 漢字",
    "emoji 🎉",
    "L" * 300,
    "é" * 150,
    "%~",
]


def test_a_written_leaf_reads_back(store: Store) -> None:
    store.write("/x", 42)
    assert store.read("/x") == 42


def test_reading_a_missing_path_returns_the_default(store: Store) -> None:
    assert store.read("/nothing/here") is None
    assert store.read("/nothing", MISSING) is MISSING
    assert store.read("/nothing", "fallback") == "fallback"


def test_str_and_pure_posix_path_name_the_same_node(store: Store) -> None:
    store.write(PurePosixPath("/users/1"), {"name": "Alice"})
    assert store.read("/users/1") == {"name": "Alice"}


def test_the_leading_slash_is_optional(tree_store: Store) -> None:
    tree_store.write("users/1", "Alice")
    assert tree_store.read("/users/1") == "Alice"
    assert tree_store.read(PurePosixPath("users") / "1") == "Alice"


def test_a_stored_none_is_a_value_not_a_missing_node(store: Store) -> None:
    store.write("/n", None)
    assert store.read("/n", MISSING) is None


@pytest.mark.parametrize(
    "value",
    [0, -7, 3.25, True, False, "", "text ✓", [1, [2, "three"], {"k": None}], {"deep": {"er": [1]}}],
    ids=repr,
)
def test_json_values_round_trip(store: Store, value: Any) -> None:
    store.write("/v", value)
    assert store.read("/v") == value


def test_reading_the_root_of_an_empty_store_is_an_empty_dict(tree_store: Store) -> None:
    assert tree_store.read("/", MISSING) in ({}, MISSING)
    assert tree_store.read("/") in ({}, None)


def test_a_written_dict_reads_back_and_its_children_are_nodes(tree_store: Store) -> None:
    tree_store.write("/a", {"theme": "dark", "colors": {"primary": 1}, "empty": {}})
    assert tree_store.read("/a") == {"theme": "dark", "colors": {"primary": 1}, "empty": {}}
    assert tree_store.read("/a/colors/primary") == 1
    assert tree_store.read("/a/empty") == {}


def test_writing_below_a_missing_node_creates_the_dicts_on_the_way(tree_store: Store) -> None:
    tree_store.write("/a/theme", "dark")
    tree_store.write("/a/colors/primary", "#f00")
    assert tree_store.read("/a") == {"theme": "dark", "colors": {"primary": "#f00"}}
    assert tree_store.read("/")["a"] == {"theme": "dark", "colors": {"primary": "#f00"}}


def test_writing_below_a_stored_dict_updates_it(tree_store: Store) -> None:
    tree_store.write("/a", {"x": 1, "sub": {"y": 2}})
    tree_store.write("/a/sub/z", 3)
    tree_store.write("/a/new/deep", 4)
    assert tree_store.read("/a") == {"x": 1, "sub": {"y": 2, "z": 3}, "new": {"deep": 4}}


def test_a_write_replaces_the_whole_subtree(tree_store: Store) -> None:
    tree_store.write("/a/b/c", 1)
    tree_store.write("/a/b/d", 2)
    tree_store.write("/a/b", {"e": 3})
    assert tree_store.read("/a/b") == {"e": 3}
    tree_store.write("/a/b", "leaf")
    assert tree_store.read("/a") == {"b": "leaf"}
    assert tree_store.read("/a/b/e", MISSING) is MISSING


@pytest.mark.parametrize("below", ["/x/y", "/x/y/z"])
def test_writing_below_a_leaf_raises_path_conflict_and_changes_nothing(
    tree_store: Store, factory: BackendFactory, below: str
) -> None:
    tree_store.write("/x", 5)
    tree_store.write("/a/doc", {"leaf": "v"})
    before = snapshot(factory, tree_store)
    with pytest.raises(PathConflictError):
        tree_store.write(below, 1)
    with pytest.raises(PathConflictError):
        tree_store.write("/a/doc/leaf/deeper", 1)
    assert snapshot(factory, tree_store) == before
    assert tree_store.read("/x") == 5


def test_deleting_removes_the_subtree(tree_store: Store) -> None:
    tree_store.write("/a", {"b": {"c": 1}, "d": 2})
    tree_store.delete("/a/b")
    assert tree_store.read("/a/b", MISSING) is MISSING
    assert tree_store.read("/a/b/c", MISSING) is MISSING
    assert tree_store.read("/a") == {"d": 2}


def test_deleting_a_written_path_removes_it(store: Store) -> None:
    store.write("/x", 1)
    store.delete("/x")
    assert store.read("/x", MISSING) is MISSING


def test_deleting_a_missing_path_is_a_no_op(store: Store, factory: BackendFactory) -> None:
    store.write("/x", 1)
    before = snapshot(factory, store)
    store.delete("/nothing")
    store.delete("/nothing/deeper")
    store.delete("/x/below/a/leaf")
    assert snapshot(factory, store) == before


def test_deleting_the_last_child_leaves_the_parent_as_the_backend_documents(
    tree_store: Store, factory: BackendFactory
) -> None:
    tree_store.write("/a/b", 1)
    tree_store.delete("/a/b")
    expected = {} if factory.empty_parent == "{}" else MISSING
    assert tree_store.read("/a", MISSING) == expected


def test_deleting_inside_a_stored_dict_updates_it(tree_store: Store) -> None:
    tree_store.write("/a", {"b": {"c": 1, "d": 2}})
    tree_store.delete("/a/b/c")
    assert tree_store.read("/a") == {"b": {"d": 2}}


def test_writing_the_root_replaces_the_whole_tree(tree_store: Store) -> None:
    tree_store.write("/old", 1)
    tree_store.write("/a/old", 2)
    tree_store.write("/", {"a": {"new": 3}, "b": {"c": {"d": 4}}, "top": 5})
    assert tree_store.read("/") == {"a": {"new": 3}, "b": {"c": {"d": 4}}, "top": 5}
    assert tree_store.read("/old", MISSING) is MISSING


def test_deleting_the_root_empties_the_store(tree_store: Store) -> None:
    tree_store.write("/", {"a": {"x": 1}, "b": {"c": {"d": 4}}, "top": 5})
    tree_store.delete("/")
    assert tree_store.read("/") in ({}, None)
    assert tree_store.read("/a/x", MISSING) is MISSING


def test_dotted_keys_stay_distinct(tree_store: Store) -> None:
    tree_store.write("/a/v1.2", "two")
    tree_store.write("/a/v1.3", "three")
    tree_store.write("/a/v1", "one")
    assert tree_store.read("/a") == {"v1.2": "two", "v1.3": "three", "v1": "one"}


@pytest.mark.parametrize("key", UNUSUAL_KEYS, ids=lambda k: repr(k)[:24])
def test_unusual_keys_round_trip_as_paths_and_as_dict_keys(tree_store: Store, key: str) -> None:
    tree_store.write(f"/a/{key}", {"leaf": key})
    tree_store.write("/b", {key: {key: 1}})
    assert tree_store.read(f"/a/{key}/leaf") == key
    assert tree_store.read("/a") == {key: {"leaf": key}}
    assert tree_store.read("/b") == {key: {key: 1}}
    tree_store.delete(f"/a/{key}")
    assert tree_store.read(f"/a/{key}", MISSING) is MISSING


@pytest.mark.parametrize("path", ["/a/../b", "/a/\0", "/a/*/b", "/.."])
def test_invalid_paths_raise_and_change_nothing(
    tree_store: Store, factory: BackendFactory, path: str
) -> None:
    tree_store.write("/x", 1)
    before = snapshot(factory, tree_store)
    for attempt in (
        lambda: tree_store.write(path, 1),
        lambda: tree_store.read(path),
        lambda: tree_store.delete(path),
    ):
        with pytest.raises(InvalidPathError):
            attempt()
    assert snapshot(factory, tree_store) == before


@pytest.mark.parametrize(
    "value",
    [{"": 1}, {"a/b": 1}, {1: 2}, {"..": 1}, {".": 1}, {"*": 1}, {"ok": {"n\0ul": 1}}, [{"x/": 1}]],
    ids=repr,
)
def test_invalid_dict_keys_raise_and_change_nothing(
    tree_store: Store, factory: BackendFactory, value: Any
) -> None:
    tree_store.write("/a/x", 1)
    before = snapshot(factory, tree_store)
    with pytest.raises(InvalidPathError):
        tree_store.write("/a/bad", value)
    with pytest.raises(InvalidPathError):
        tree_store.write("/a", value)
    assert snapshot(factory, tree_store) == before


@pytest.mark.parametrize("value", [object(), {1, 2}, float("nan"), {"a": b"bytes"}], ids=repr)
def test_a_value_the_serializer_rejects_raises_and_changes_nothing(
    tree_store: Store, factory: BackendFactory, value: Any
) -> None:
    if not factory.serializes:
        pytest.skip(f"{factory.name} stores any Python object")
    tree_store.write("/a/x", 1)
    before = snapshot(factory, tree_store)
    with pytest.raises(SerializationError):
        tree_store.write("/a/x", value)
    with pytest.raises(SerializationError):
        tree_store.write("/a/new/deep", value)
    assert snapshot(factory, tree_store) == before


def test_values_read_are_isolated_from_the_store(tree_store: Store) -> None:
    tree_store.write("/a", {"list": [1, 2], "sub": {"k": "v"}})
    got = tree_store.read("/a")
    got["list"].append(3)
    got["sub"]["k"] = "changed"
    assert tree_store.read("/a") == {"list": [1, 2], "sub": {"k": "v"}}


def test_values_written_are_isolated_from_the_caller(store: Store) -> None:
    value = {"list": [1, 2], "sub": {"k": "v"}}
    store.write("/a", value)
    value["list"].append(3)
    value["sub"]["k"] = "changed"
    assert store.read("/a") == {"list": [1, 2], "sub": {"k": "v"}}


def test_values_survive_reopening_the_store(
    tree_store: Store, factory: BackendFactory, tmp_path: Path
) -> None:
    if factory.reopen is None:
        pytest.skip(f"{factory.name} does not outlive its object")
    tree_store.write("/a", {"b": [1, "two"], "v1.2": None})
    tree_store.write("/top", "level")
    again = Store(factory.reopen(tree_store.backend, tmp_path))
    try:
        assert again.read("/a") == {"b": [1, "two"], "v1.2": None}
        assert again.read("/top") == "level"
    finally:
        again.close()


def test_async_backends_return_values_not_coroutines(store: Store) -> None:
    if not store.is_async:
        pytest.skip("a sync backend")
    store.write("/x", {"a": 1})
    result = store.backend.read("/x")
    assert asyncio.iscoroutine(result)
    assert store.run(result) == {"a": 1}


# ----- through the controllers ---------------------------------------------------------------


class _Boom(Exception):
    pass


def _controller(store: Store) -> Any:
    if isinstance(store.backend, AsyncBackend):
        return ControllerAsync(store.backend)
    return ControllerSync(store.backend)


def _through(store: Store, controller: Any, name: str, *args: Any) -> Any:
    result = getattr(controller, name)(*args)
    return store.run(result) if isinstance(controller, ControllerAsync) else result


def _failed_batch(store: Store, controller: Any, writes: list[tuple[str, Any]]) -> None:
    async def run_async() -> None:
        async with controller.batch():
            for path, value in writes:
                if value is MISSING:
                    await controller.del_state(path)
                else:
                    await controller.set_state(path, value)
                    assert await controller.get_state(path) == value
            raise _Boom

    if isinstance(controller, ControllerAsync):
        with pytest.raises(_Boom):
            store.run(run_async())
        return
    with pytest.raises(_Boom), controller.batch():
        for path, value in writes:
            if value is MISSING:
                controller.del_state(path)
            else:
                controller.set_state(path, value)
                assert controller.get_state(path) == value
        raise _Boom


def test_the_controller_reads_and_writes_through_the_backend(store: Store) -> None:
    controller = _controller(store)
    _through(store, controller, "set_state", "/x", {"k": [1, 2]})
    assert store.read("/x") == {"k": [1, 2]}
    assert _through(store, controller, "get_state", "/x") == {"k": [1, 2]}
    assert _through(store, controller, "update", "/n", lambda v: (v or 0) + 1) == 1
    assert store.read("/n") == 1


def test_a_failed_batch_leaves_the_backend_exactly_as_before(
    tree_store: Store, factory: BackendFactory
) -> None:
    controller = _controller(tree_store)
    _through(tree_store, controller, "set_state", "/a", {"keep": 1, "sub": {"s": 2}})
    _through(tree_store, controller, "set_state", "/x", "leaf")
    _through(tree_store, controller, "set_state", "/b/c/d", [1, 2])
    before = snapshot(factory, tree_store)
    writes = [
        ("/a/keep", 10),
        ("/a/sub", MISSING),
        ("/a/new/deep/er", {"z": 1}),
        ("/x", MISSING),
        ("/b/c", {"d": "replaced"}),
        ("/fresh/path", 5),
        ("/", {"everything": "replaced"}),
        ("/a/after/root", 1),
    ]
    _failed_batch(tree_store, controller, writes)
    assert snapshot(factory, tree_store) == before
    assert _through(tree_store, controller, "get_state", "/a") == {"keep": 1, "sub": {"s": 2}}


def test_a_failed_batch_on_a_flat_backend_restores_the_exact_paths(store: Store) -> None:
    controller = _controller(store)
    _through(store, controller, "set_state", "/x", 1)
    _failed_batch(store, controller, [("/x", 2), ("/y", 3), ("/x", MISSING)])
    assert store.read("/x") == 1
    assert store.read("/y", MISSING) is MISSING
