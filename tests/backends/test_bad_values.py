"""One bad value never poisons a store: it is refused before anything changes (cache
included) with an error naming the path and the limit, and later writes still reach disk."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from restate import ControllerSync
from restate.backends import (
    CachingSyncBackend,
    FileSystemSyncBackend,
    InMemoryBackend,
    SQLiteBackend,
)
from restate.errors import BackendError, InvalidPathError, SerializationError, StateError
from restate.tree import MAX_DEPTH

LONE = "caf\udce9"  # what os.fsdecode / surrogateescape make of a Latin-1 byte


def deep(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = {"d": value}
    return value


def cyclic() -> dict[str, Any]:
    value: dict[str, Any] = {"x": [1]}
    value["x"].append(value)
    return value


@pytest.fixture(params=["files", "sqlite"])
def cached(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[CachingSyncBackend, Any]:
    """A cache in front of a real store, and a function reading the store behind it."""
    if request.param == "files":
        inner: Any = FileSystemSyncBackend(tmp_path / "state")

        def on_disk() -> Any:
            return FileSystemSyncBackend(tmp_path / "state").read("/")
    else:
        inner = SQLiteBackend(str(tmp_path / "state.db"))

        def on_disk() -> Any:
            return SQLiteBackend(str(tmp_path / "state.db")).read("/")

    return CachingSyncBackend(inner, flush_interval=0), on_disk


@pytest.mark.parametrize("bad", [deep(MAX_DEPTH + 5), cyclic()], ids=["too deep", "cycle"])
def test_a_too_deep_or_cyclic_value_on_a_cache_is_refused_and_later_writes_reach_disk(
    cached: tuple[CachingSyncBackend, Any], bad: Any
) -> None:
    cache, on_disk = cached
    cache.write("/keep", 1)
    with pytest.raises(SerializationError, match=r"'/bad'.*(limit of 200|contains itself)"):
        cache.write("/bad", bad)
    assert cache.read("/") == {"keep": 1}  # the cache did not take it
    cache.write("/later", 2)
    assert on_disk() == {"keep": 1, "later": 2}
    assert cache.pending == []


def test_the_depth_limit_counts_the_path_and_is_named_in_the_error() -> None:
    c = ControllerSync()
    c.set_state("/a/b", deep(MAX_DEPTH - 2))  # exactly at the limit: fine
    with pytest.raises(SerializationError, match=f"limit of {MAX_DEPTH} levels") as info:
        c.set_state("/a/b/c", deep(MAX_DEPTH - 2))
    assert isinstance(info.value, StateError)
    assert c.get_state("/a/b/c") is None
    assert c.get_state("/")["a"]["b"] == deep(MAX_DEPTH - 2)  # reading it back does not recurse


@pytest.mark.parametrize("backend", ["memory", "controller"])
def test_a_cycle_is_a_serialization_error_not_a_recursion_error(backend: str) -> None:
    store = InMemoryBackend()
    with pytest.raises(SerializationError, match="contains itself"):
        if backend == "memory":
            store.write("/x", cyclic())
        else:
            ControllerSync(store).set_state("/x", cyclic())
    assert store.read("/") == {}


def test_shared_but_acyclic_parts_are_fine() -> None:
    shared = [1, 2]
    c = ControllerSync()
    c.set_state("/x", {"a": shared, "b": shared, "c": (shared, shared)})
    assert c.get_state("/x") == {"a": [1, 2], "b": [1, 2], "c": ([1, 2], [1, 2])}


def test_a_lone_surrogate_value_round_trips_on_files_and_sqlite(
    cached: tuple[CachingSyncBackend, Any],
) -> None:
    """json.loads can produce such strings; UTF-8 cannot hold them, so JSON keeps them as
    \\udce9 escapes instead of failing at flush time."""
    cache, on_disk = cached
    cache.write("/s", {"name": LONE, "list": [LONE]})
    cache.write("/later", 1)
    assert on_disk() == {"s": {"name": LONE, "list": [LONE]}, "later": 1}


def test_a_lone_surrogate_key_on_a_cache_over_sqlite_is_refused_naming_the_path(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "state.db")
    cache = CachingSyncBackend(SQLiteBackend(db), flush_interval=0)
    cache.write("/keep", 1)
    with pytest.raises(InvalidPathError, match=r"lone surrogate.*SQLite"):
        cache.write("/users", {LONE: 1})
    with pytest.raises(InvalidPathError, match=r"lone surrogate"):
        cache.write(f"/{LONE}", 1)
    assert cache.read("/") == {"keep": 1}
    cache.write("/later", 2)
    assert SQLiteBackend(db).read("/") == {"keep": 1, "later": 2}


def test_a_lone_surrogate_key_on_sqlite_never_raises_unicode_errors(tmp_path: Path) -> None:
    store = SQLiteBackend(str(tmp_path / "state.db"))
    for call in (
        lambda: store.read(f"/{LONE}"),
        lambda: store.write(f"/{LONE}", 1),
        lambda: store.delete(f"/{LONE}"),
        lambda: store.exists(f"/{LONE}"),
    ):
        with pytest.raises(InvalidPathError, match="lone surrogate"):
            call()
    assert not store._db.in_transaction


def test_a_lone_surrogate_key_on_files_is_stored_with_an_encoded_name(tmp_path: Path) -> None:
    store = FileSystemSyncBackend(tmp_path / "state")
    store.write(f"/{LONE}", 1)
    assert FileSystemSyncBackend(tmp_path / "state").read("/") == {LONE: 1}


def test_a_flush_that_fails_names_the_path_keeps_it_pending_and_writes_the_rest(
    tmp_path: Path,
) -> None:
    base = tmp_path / "state"
    (base / "x.json" / "planted").mkdir(parents=True)  # a directory where /x's file goes
    cache = CachingSyncBackend(FileSystemSyncBackend(base), flush_interval=3600)
    cache.write("/x", 1)
    cache.write("/y", 2)
    with pytest.raises(BackendError, match=r"write '/x'.*kept pending") as info:
        cache.flush()
    assert "/y" not in str(info.value)
    assert FileSystemSyncBackend(base).read("/") == {"y": 2}
    cache.write("/z", 3)
    with pytest.raises(BackendError, match="'/x'"):
        cache.flush()  # /x is still refused by the disk, /z is not held back by it
    assert FileSystemSyncBackend(base).read("/") == {"y": 2, "z": 3}
    (base / "x.json" / "planted").rmdir()
    (base / "x.json").rmdir()
    cache.flush()
    assert FileSystemSyncBackend(base).read("/") == {"x": 1, "y": 2, "z": 3}


def test_a_file_store_error_is_a_backend_error_naming_the_path(tmp_path: Path) -> None:
    base = tmp_path / "state"
    (base / "x.json" / "planted").mkdir(parents=True)
    store = FileSystemSyncBackend(base)
    with pytest.raises(BackendError, match=r"cannot write '/x'") as info:
        store.write("/x", 1)
    assert isinstance(info.value, StateError) and isinstance(info.value, OSError)


@pytest.mark.parametrize("kind", ["files", "sqlite"])
def test_tuples_come_back_as_lists_on_files_and_sqlite(tmp_path: Path, kind: str) -> None:
    store: Any = (
        FileSystemSyncBackend(tmp_path / "state")
        if kind == "files"
        else SQLiteBackend(str(tmp_path / "state.db"))
    )
    store.write("/t", {"pair": (1, 2), "nested": [(3, 4)]})
    assert store.read("/t") == {"pair": [1, 2], "nested": [[3, 4]]}
    assert InMemoryBackend({"t": (1, 2)}).read("/t") == (1, 2)  # memory keeps tuples


def test_a_value_sqlite_cannot_store_leaves_no_transaction_open(tmp_path: Path) -> None:
    db = str(tmp_path / "state.db")
    store = SQLiteBackend(db)
    with pytest.raises(SerializationError, match="'/x/bad'"):
        store.write("/x", {"bad": object()})
    assert not store._db.in_transaction
    other = sqlite3.connect(db, timeout=0)
    other.execute("BEGIN IMMEDIATE")
    other.execute("ROLLBACK")
    assert json.loads(json.dumps(store.read("/"))) == {}
