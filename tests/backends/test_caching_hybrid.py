"""Caching (read-your-writes, flush triggers, coalescing, failures, exit) and hybrid (mounts)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import os
import random
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from restate import ControllerAsync, ControllerSync
from restate.backends import (
    MISSING,
    CachingAsyncBackend,
    CachingSyncBackend,
    FileSystemAsyncBackend,
    FileSystemSyncBackend,
    HybridAsyncBackend,
    HybridSyncBackend,
    InMemoryBackend,
    SQLiteBackend,
)
from restate.errors import BackendError, PathConflictError, SerializationError

from .conftest import files_of, rows_of

ROOT = Path(__file__).resolve().parents[2]


class CountingBackend(InMemoryBackend):
    """Memory that records every call and can be told to fail."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []
        self.fail_on: str | None = None

    def write(self, path: Any, value: Any) -> None:
        if self.fail_on == str(path):
            raise OSError(f"disk full writing {path}")
        self.calls.append(("write", str(path)))
        super().write(path, value)

    def delete(self, path: Any) -> None:
        self.calls.append(("delete", str(path)))
        super().delete(path)


@pytest.fixture
def inner() -> CountingBackend:
    return CountingBackend()


def test_reads_see_earlier_writes_and_deletes_parents_included(inner: CountingBackend) -> None:
    inner.write("/a", {"old": 1, "gone": 2})
    cache = CachingSyncBackend(inner, flush_interval=3600)
    cache.write("/a/b", 1)
    cache.delete("/a/gone")
    assert cache.read("/a") == {"old": 1, "b": 1}
    assert cache.read("/") == {"a": {"old": 1, "b": 1}}
    assert inner.read("/a") == {"old": 1, "gone": 2}  # nothing flushed yet
    with pytest.raises(PathConflictError):
        cache.write("/a/old/x", 1)


def test_flush_applies_pending_work_in_order_coalesced_per_path(inner: CountingBackend) -> None:
    cache = CachingSyncBackend(inner, flush_interval=3600)
    for i in range(100):
        cache.write("/n", i)
    cache.write("/a", {"x": 1})
    cache.write("/a/y", 2)
    cache.write("/b/c", 1)
    cache.delete("/b/c")
    cache.write("/b", 4)
    assert [(str(p), k) for p, k, _ in cache.pending] == [
        ("/n", "write"),
        ("/a", "write"),
        ("/b", "write"),
    ]
    cache.flush()
    assert inner.calls == [("write", "/n"), ("write", "/a"), ("write", "/b")]
    assert inner.read("/") == {"n": 99, "a": {"x": 1, "y": 2}, "b": 4}
    assert cache.pending == []


def test_a_trigger_flushes_only_when_the_interval_has_passed(inner: CountingBackend) -> None:
    cache = CachingSyncBackend(inner, flush_interval=0.2, flush_on_read=True)
    cache.write("/a", 1)
    cache.read("/a")
    assert inner.calls == []
    cache._cache.last_flush -= 0.2  # as if the interval had passed
    cache.read("/a")
    assert inner.calls == [("write", "/a")]


ACTIONS = {
    "write": lambda cache: cache.write("/a", 1),
    "delete": lambda cache: cache.delete("/keep"),
    "read": lambda cache: cache.read("/keep"),
}


@pytest.mark.parametrize("trigger", ["write", "delete", "read"])
def test_a_switched_off_trigger_does_not_flush(inner: CountingBackend, trigger: str) -> None:
    switches = {f"flush_on_{t}": t != trigger for t in ACTIONS}
    cache = CachingSyncBackend(inner, flush_interval=3600, **switches)
    cache.write("/keep", 1)
    cache._cache.last_flush -= 3600  # as if the interval had passed
    ACTIONS[trigger](cache)
    assert inner.calls == []
    other = next(t for t in ACTIONS if t != trigger)
    ACTIONS[other](cache)
    assert inner.calls != []


def test_a_failed_flush_keeps_what_it_could_not_write_writes_the_rest_and_raises_naming_it(
    inner: CountingBackend,
) -> None:
    cache = CachingSyncBackend(inner, flush_interval=3600)
    cache.write("/a", 1)
    cache.write("/b", 2)
    cache.write("/c", 3)
    inner.fail_on = "/b"
    with pytest.raises(BackendError, match=r"write '/b' .kept pending.*disk full") as info:
        cache.flush()
    assert isinstance(info.value.__cause__, OSError)
    assert inner.read("/") == {"a": 1, "c": 3}
    assert [(str(p), v) for p, _, v in cache.pending] == [("/b", 2)]
    cache.write("/b", 20)  # newer work queued after the failure keeps its place
    inner.fail_on = None
    cache.flush()
    assert inner.read("/") == {"a": 1, "b": 20, "c": 3}


def test_close_and_context_exit_flush(tmp_path: Path) -> None:
    with CachingSyncBackend(FileSystemSyncBackend(tmp_path), flush_interval=3600) as cache:
        cache.write("/a", 1)
        assert files_of(tmp_path) == {}
    assert files_of(tmp_path) == {"a.json": b"1"}


def test_a_forgotten_cache_is_flushed_when_collected(tmp_path: Path) -> None:
    cache = CachingSyncBackend(FileSystemSyncBackend(tmp_path), flush_interval=3600)
    cache.write("/a", 1)
    del cache
    gc.collect()
    assert files_of(tmp_path) == {"a.json": b"1"}


def test_pending_work_is_flushed_at_interpreter_exit(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from restate.backends import CachingSyncBackend, CachingAsyncBackend,"
        " FileSystemSyncBackend, FileSystemAsyncBackend\n"
        "import asyncio\n"
        "cache = CachingSyncBackend(FileSystemSyncBackend(sys.argv[1]), flush_interval=3600)\n"
        "cache.write('/sync', 1)\n"
        "acache = CachingAsyncBackend(FileSystemAsyncBackend(sys.argv[1]), flush_interval=3600)\n"
        "asyncio.run(acache.write('/async', 2))\n"
        "keep = [cache, acache]\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, env=env)
    assert files_of(tmp_path) == {"sync.json": b"1", "async.json": b"2"}


def test_a_value_the_wrapped_store_rejects_raises_at_write_time(tmp_path: Path) -> None:
    cache = CachingSyncBackend(FileSystemSyncBackend(tmp_path), flush_interval=3600)
    with pytest.raises(SerializationError):
        cache.write("/a", {"bad": object()})
    assert cache.read("/a", MISSING) is MISSING
    assert cache.pending == []


def test_the_async_cache_flushes_through_an_async_store(tmp_path: Path) -> None:
    async def main() -> None:
        cache = CachingAsyncBackend(FileSystemAsyncBackend(tmp_path), flush_interval=3600)
        controller = ControllerAsync(cache)
        await controller.set_state("/a/b", 1)
        assert await controller.get_state("/a") == {"b": 1}
        assert files_of(tmp_path) == {}
        await cache.flush()
        assert files_of(tmp_path) == {"a/": None, "a/b.json": b"1"}
        await cache.close()

    asyncio.run(main())


def test_a_cache_transaction_defers_flushing_and_rolls_back_cache_and_queue(
    inner: CountingBackend,
) -> None:
    cache = CachingSyncBackend(inner, flush_interval=0)
    cache.write("/a", {"x": 1})
    inner.calls.clear()
    with pytest.raises(KeyError), cache.transaction():
        cache.write("/a/y", 2)
        cache.write("/new/deep", 3)
        assert inner.calls == []
        raise KeyError
    assert cache.read("/") == {"a": {"x": 1}}
    assert cache.pending == []
    with cache.transaction():
        cache.write("/a/y", 2)
    assert inner.calls == [("write", "/a/y")]


# ----- hybrid ----------------------------------------------------------------------------------


@pytest.fixture
def hybrid(tmp_path: Path) -> HybridSyncBackend:
    h = HybridSyncBackend(InMemoryBackend())
    h.mount("/disk", FileSystemSyncBackend(tmp_path / "disk"))
    h.mount("/disk/db", SQLiteBackend(str(tmp_path / "db.sqlite")))
    return h


def test_the_longest_mount_prefix_owns_a_path(hybrid: HybridSyncBackend, tmp_path: Path) -> None:
    controller = ControllerSync(hybrid)
    controller.set_state("/temporary", "volatile")
    controller.set_state("/disk/important", "saved")
    controller.set_state("/disk/db/row", {"id": 1})
    controller.set_state("/disk/dbx", "not the db mount")
    assert hybrid.root_backend.read("/") == {"temporary": "volatile"}
    assert files_of(tmp_path / "disk") == {
        "important.json": b'"saved"',
        "dbx.json": b'"not the db mount"',
    }
    assert rows_of(str(tmp_path / "db.sqlite")) == [("/row/id", "1")]


def test_reading_a_subtree_merges_every_mount_below_it(hybrid: HybridSyncBackend) -> None:
    hybrid.write("/disk/db/row", 1)
    hybrid.write("/disk/file", 2)
    hybrid.write("/mem", 3)
    assert hybrid.read("/") == {"mem": 3, "disk": {"file": 2, "db": {"row": 1}}}
    assert hybrid.read("/disk") == {"file": 2, "db": {"row": 1}}
    assert hybrid.read("/disk/db/row") == 1


def test_writing_a_dict_that_spans_mounts_splits_it(hybrid: HybridSyncBackend, tmp_path) -> None:
    hybrid.write("/", {"mem": 1, "disk": {"file": 2, "db": {"row": 3}}})
    assert hybrid.root_backend.read("/") == {"mem": 1}
    assert files_of(tmp_path / "disk") == {"file.json": b"2"}
    assert rows_of(str(tmp_path / "db.sqlite")) == [("/row", "3")]
    hybrid.write("/disk", {"only": "this"})
    assert hybrid.read("/") == {"mem": 1, "disk": {"only": "this"}}
    assert rows_of(str(tmp_path / "db.sqlite")) == []


def test_deleting_a_subtree_deletes_in_every_mount_below(hybrid, tmp_path: Path) -> None:
    hybrid.write("/", {"mem": 1, "disk": {"file": 2, "db": {"row": 3}}})
    hybrid.delete("/disk")
    assert hybrid.read("/") == {"mem": 1}
    assert files_of(tmp_path / "disk") == {}
    assert rows_of(str(tmp_path / "db.sqlite")) == []


def test_a_leaf_at_a_mount_point_is_refused_before_anything_changes(hybrid) -> None:
    hybrid.write("/", {"mem": 1, "disk": {"file": 2}})
    with pytest.raises(PathConflictError, match="mount point"):
        hybrid.write("/", {"disk": {"db": "leaf"}})
    with pytest.raises(PathConflictError):
        hybrid.write("/disk/db", 5)
    assert hybrid.read("/") == {"mem": 1, "disk": {"file": 2}}


def test_a_leaf_above_a_mount_point_blocks_writes_below_it(tmp_path: Path) -> None:
    h = HybridSyncBackend(InMemoryBackend())
    h.mount("/a/b", InMemoryBackend())
    h.write("/a", "leaf")
    with pytest.raises(PathConflictError, match="'/a'"):
        h.write("/a/b/c", 1)
    assert h.read("/") == {"a": "leaf"}


def test_mount_and_unmount(tmp_path: Path) -> None:
    h = HybridSyncBackend(InMemoryBackend())
    h.write("/x/shadowed", 1)
    disk = FileSystemSyncBackend(tmp_path)
    h.mount("/x", disk)
    assert h.read("/x", MISSING) is MISSING  # the root's data under /x is hidden
    h.write("/x/y", 2)
    assert h.mounts == {PurePosixPath("/x"): disk}
    with pytest.raises(ValueError, match="already mounted"):
        h.mount("/x", InMemoryBackend())
    with pytest.raises(ValueError):
        h.mount("/", InMemoryBackend())
    assert h.unmount("/x") is disk
    assert h.read("/x") == {"shadowed": 1}
    with pytest.raises(KeyError):
        h.unmount("/x")
    with pytest.raises(TypeError, match="HybridAsyncBackend"):
        h.mount("/y", FileSystemAsyncBackend(tmp_path))


def test_the_async_hybrid_mixes_sync_and_async_stores(tmp_path: Path) -> None:
    async def main() -> None:
        h = HybridAsyncBackend(InMemoryBackend())
        h.mount("/disk", FileSystemAsyncBackend(tmp_path))
        h.mount("/sql", SQLiteBackend())
        controller = ControllerAsync(h)
        await controller.set_state("/", {"m": 1, "disk": {"f": 2}, "sql": {"r": 3}})
        assert await controller.get_state("/") == {"m": 1, "disk": {"f": 2}, "sql": {"r": 3}}
        assert files_of(tmp_path) == {"f.json": b"2"}
        with pytest.raises(ZeroDivisionError):
            async with controller.batch():
                await controller.set_state("/disk/f", 20)
                await controller.set_state("/sql/r", 30)
                await controller.del_state("/m")
                1 / 0  # noqa: B018
        assert await h.read("/") == {"m": 1, "disk": {"f": 2}, "sql": {"r": 3}}
        assert files_of(tmp_path) == {"f.json": b"2"}
        await h.close()

    asyncio.run(main())


def _exists_paths() -> list[str]:
    keys = ("a", "b", "c")
    paths = ["/"]
    for n in (1, 2, 3):
        paths += ["/" + "/".join(p) for p in itertools.product(keys, repeat=n)]
    return paths


@pytest.mark.parametrize("async_", [False, True], ids=["sync", "async"])
def test_hybrid_exists_matches_read_with_nested_mounts_and_data_hidden_below_them(
    tmp_path: Path, async_: bool
) -> None:
    """Random writes through the hybrid and straight into its stores (data the mounts hide)."""
    files = (FileSystemAsyncBackend if async_ else FileSystemSyncBackend)(tmp_path)
    stores = {"/a": files, "/a/b": InMemoryBackend(), "/b/c": SQLiteBackend()}
    hybrid: Any = (HybridAsyncBackend if async_ else HybridSyncBackend)(InMemoryBackend())
    for at, store in stores.items():
        hybrid.mount(at, store)
    targets = [hybrid, hybrid.root_backend, *stores.values()]
    loop = asyncio.new_event_loop()

    def ask(result: Any) -> Any:
        return loop.run_until_complete(result) if asyncio.iscoroutine(result) else result

    rng = random.Random(7)
    paths = _exists_paths()
    hidden = [(hybrid.root_backend, "/b/c/a", 1), (hybrid.root_backend, "/a/c", {"a": 1})]
    for step in range(60):
        target, path, value = hidden[step] if step < len(hidden) else (
            rng.choice(targets),
            rng.choice(paths[1:]),
            rng.choice([MISSING, MISSING, 1, {}, {"c": 2}, {"a": {"b": 3}}]),
        )  # fmt: skip
        try:
            ask(target.delete(path) if value is MISSING else target.write(path, value))
        except PathConflictError:
            pass
        found = {p: ask(hybrid.exists(p)) for p in paths}
        assert found == {p: ask(hybrid.read(p, MISSING)) is not MISSING for p in paths}, step
    loop.close()


class _CancelSafeCommit:
    """A flat async store whose transaction's commit waits on ``gate`` and, like the file
    backend's, finishes even when the awaiting task is cancelled meanwhile."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.data: dict[str, Any] = {}
        self.gate = gate
        self.in_commit = asyncio.Event()
        self.committed = 0

    async def read(self, path: Any, default: Any = None) -> Any:
        return self.data.get(str(path), default)

    async def write(self, path: Any, value: Any) -> None:
        self.data[str(path)] = value

    async def delete(self, path: Any) -> None:
        self.data.pop(str(path), None)

    async def close(self) -> None:
        pass

    @contextlib.asynccontextmanager
    async def transaction(self) -> Any:
        yield self
        self.in_commit.set()
        try:
            if self.gate is not None:
                await self.gate.wait()
        finally:
            self.committed += 1


def test_an_async_hybrid_batch_cancelled_during_one_store_s_commit_still_commits_the_others() -> (
    None
):
    async def main() -> None:
        gate = asyncio.Event()
        root, mounted = _CancelSafeCommit(), _CancelSafeCommit(gate)  # mounted commits first
        hybrid = HybridAsyncBackend(root)
        hybrid.mount("/m", mounted)

        async def batch() -> None:
            async with hybrid.transaction():
                await hybrid.write("/x", 1)
                await hybrid.write("/m/y", 2)

        task = asyncio.create_task(batch())
        await asyncio.wait_for(mounted.in_commit.wait(), 30)
        task.cancel()  # lands inside the mounted store's commit
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (mounted.committed, root.committed) == (1, 1)  # none left uncommitted

    asyncio.run(main())
