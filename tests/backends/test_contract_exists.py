"""The optional ``exists(path)`` capability, on every backend of the contract registry that has
it: it agrees with ``read(path, MISSING) is not MISSING`` and never reads the subtree.

(A file of its own so that test_contract.py stays under ~400 lines; same registry, same
``store`` fixture.)
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import pytest

from restate.backends import (
    MISSING,
    CachingSyncBackend,
    FileSystemSyncBackend,
    HybridSyncBackend,
    InMemoryBackend,
    SQLiteBackend,
)
from restate.backends.filesystem.reading import FileReader
from restate.backends.probe import holds
from restate.errors import PathConflictError

from .conftest import Store

KEYS = ("a", "b", "c")
# every path up to depth 3 over a, b, c: across the hybrid's mounts /a and /b/c
PATHS = ["/"] + ["/" + "/".join(p) for n in (1, 2, 3) for p in itertools.product(KEYS, repeat=n)]
IGNORES = [frozenset(), frozenset({"a"}), frozenset({"a", "b", "c"})]


@pytest.fixture
def probing(tree_store: Store) -> Store:
    if not callable(getattr(tree_store.backend, "exists", None)):
        pytest.skip("no exists() capability")
    return tree_store


def exists(store: Store, path: str) -> bool:
    answer = store.run(store.backend.exists(path))
    assert type(answer) is bool
    return answer


def disagreements(store: Store, paths: list[str] = PATHS) -> list[str]:
    """Paths where exists() (and _occupied, when there is one) differ from a read."""
    occupied = getattr(store.backend, "_occupied", None)
    wrong = []
    for path in paths:
        value = store.read(path, MISSING)
        if exists(store, path) != (value is not MISSING):
            wrong.append(f"exists {path}: read {value!r}")
        for ignore in IGNORES if occupied is not None else ():
            if store.run(occupied(path, ignore)) != holds(value, ignore):
                wrong.append(f"_occupied {path} {sorted(ignore)}: read {value!r}")
    return wrong


def test_exists_agrees_with_read_on_leaves_dicts_empty_dicts_and_deleted_paths(
    probing: Store,
) -> None:
    assert disagreements(probing) == []  # an empty store: only the root exists
    probing.write("/a/a", 1)
    probing.write("/a/b", {"c": {"a": None}, "b": {}})
    probing.write("/a/c", {})
    probing.write("/c/a/b", "deep leaf")
    probing.write("/b/c/a", {"b": 2})
    probing.write("/b/a", [1, 2])
    assert disagreements(probing) == []
    probing.delete("/a/b/c/a")  # inside a stored dict: /a/b/c stays as {}
    probing.delete("/c/a/b")  # the only leaf of /c: files drop /c, memory keeps /c/a = {}
    probing.delete("/b/c/a")  # the hybrid's mount /b/c becomes empty
    assert disagreements(probing) == []
    probing.write("/", {"b": {"b": {}}, "c": 3})
    assert disagreements(probing) == []
    probing.delete("/")
    assert disagreements(probing) == []


def test_exists_agrees_with_read_after_every_step_of_random_writes_and_deletes(
    probing: Store,
) -> None:
    rng = random.Random(20240611)
    values = [0, "s", None, [1], {}, {"a": 1}, {"b": {"c": {}}}, {"a": {}, "c": [2]}]
    for step in range(40):
        path = "/" + "/".join(rng.choice(KEYS) for _ in range(rng.randint(1, 3)))
        if rng.random() < 0.3:
            probing.delete(path)
        else:
            try:
                probing.write(path, values[rng.randrange(len(values))])
            except PathConflictError:
                pass
        wrong = disagreements(probing, PATHS if step % 4 == 3 else PATHS[:13])
        assert wrong == [], f"after step {step} ({path}): {wrong}"


# ----- it does not read the subtree ----------------------------------------------------------

BIG = {f"k{i}": {"v": i, "w": [i]} for i in range(400)}


class CountingReader(FileReader):
    """A file store's reader counting the value files it parses and the names it decodes."""

    parsed = decoded = 0

    def load(self, parent: int, name: str) -> Any:
        self.parsed += 1
        return super().load(parent, name)

    def dec(self, parent: int, name: str) -> str | None:
        self.decoded += 1
        return super().dec(parent, name)


class CountingFiles(FileSystemSyncBackend):
    """A file store whose reader counts (``counts.parsed``, ``counts.decoded``)."""

    def __init__(self, base_dir: Path) -> None:
        super().__init__(base_dir)
        old = self._reader
        self.counts = CountingReader(
            old.base_dir, old.serializer, old.ext, old.fds, old.open_base, old.enc
        )
        self._reader = self.counts


def test_file_exists_parses_no_value_file_at_or_above_a_big_directory(tmp_path: Path) -> None:
    fs = CountingFiles(tmp_path)
    for key, value in list(BIG.items())[:100]:
        fs.write(f"/big/{key}", value)  # /big is a directory of 100 documents
    fs.write("/doc", {"x": {"y": 1}})
    for path in ["/", "/big", "/big/k7", "/big/k7/v", "/big/nope", "/doc", "/nope/deeper"]:
        fs.counts.parsed = fs.counts.decoded = 0
        found = fs.exists(path)
        assert fs.counts.parsed == (1 if path == "/big/k7/v" else 0), path  # k7.json parsed
        assert fs.counts.decoded <= 1, path  # the scan of /big stops at its first entry
        assert found == (fs.read(path, MISSING) is not MISSING)
    fs.counts.parsed = 0
    fs.read("/big")
    assert fs.counts.parsed > 100  # what exists() avoids


def test_file_exists_scans_past_empty_directories_and_foreign_files_only(tmp_path: Path) -> None:
    fs = CountingFiles(tmp_path)
    for name in ("a/empty1", "a/empty2/deeper", "b/x"):
        (tmp_path / name).mkdir(parents=True)
    (tmp_path / "a" / "notes.txt").write_text("foreign")
    (tmp_path / "a" / ".hidden.json").write_text("1")
    (tmp_path / "b" / "x" / "v.json").write_text("1")
    assert fs.exists("/a") is False and fs.read("/a", MISSING) is MISSING
    assert fs.exists("/b") is True and fs.read("/b") == {"x": {"v": 1}}
    assert fs.exists("/a/empty2") is False


def instructions(db: Any, call: Any) -> int:
    """SQLite virtual machine steps run by ``call()``: grows with the rows a query visits."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    db.set_progress_handler(count, 1)
    try:
        call()
    finally:
        db.set_progress_handler(None, 1)
    return steps[0]


def test_sqlite_exists_is_one_query_whatever_the_size_of_the_subtree() -> None:
    sqlite = SQLiteBackend()
    sqlite.write("/small", {"k0": BIG["k0"]})
    sqlite.write("/big", BIG)  # 800 rows
    statements: list[str] = []
    sqlite._db.set_trace_callback(statements.append)
    small = instructions(sqlite._db, lambda: sqlite.exists("/small"))
    big = instructions(sqlite._db, lambda: sqlite.exists("/big"))
    sqlite._db.set_trace_callback(None)
    assert len(statements) == 2 and all("LIMIT" not in s and "EXISTS" in s for s in statements)
    assert big == small
    assert instructions(sqlite._db, lambda: sqlite.read("/big")) > 50 * big  # what it avoids
    assert instructions(sqlite._db, lambda: sqlite._occupied("/big", frozenset({"k1"}))) < 2 * big


class NoSubtreeReads(InMemoryBackend):
    """Memory counting public reads, failing for a dict: probes must not read subtrees."""

    reads = 0
    strict = True

    def read(self, path: Any, default: Any = None) -> Any:
        self.reads += 1
        value = super().read(path, default)
        assert not self.strict or type(value) is not dict or str(path) == "/", path
        return value


def test_caching_exists_answers_from_memory_without_copying_or_reading_the_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import restate.backends._cache_core as core
    import restate.backends.caching as caching

    inner = NoSubtreeReads({"big": BIG})
    cache = CachingSyncBackend(inner, flush_interval=3600)
    copies = []
    for module in (caching, core):  # the shells and the core both copy values out
        monkeypatch.setattr(module, "copy_out", lambda v: copies.append(v) or v)
    assert cache.exists("/big/k3/w") and cache.exists("/big") and not cache.exists("/big/zz")
    assert not cache._occupied("/big/k3", frozenset({"v", "w"}))
    assert inner.reads == 1 and copies == []  # the one load at first use, nothing after


def test_hybrid_exists_asks_each_store_without_reading_a_subtree(tmp_path: Path) -> None:
    fs = CountingFiles(tmp_path / "fs")
    root = NoSubtreeReads({"m": {"hidden": 1}, "n": {"e": {"hidden": 1}}, "top": BIG})
    hybrid = HybridSyncBackend(root)
    hybrid.mount("/m/disk", fs)
    hybrid.mount("/m/db", SQLiteBackend())
    hybrid.mount("/n/e", NoSubtreeReads())
    for key in list(BIG)[:50]:
        fs.write(f"/big/{key}", BIG[key])
    fs.counts.parsed = 0
    paths = ["/", "/m", "/m/disk", "/m/disk/big", "/m/db", "/n", "/n/e", "/top", "/top/k1/v"]
    answers = {p: hybrid.exists(p) for p in paths}
    assert fs.counts.parsed == 0
    root.strict = False
    assert answers == {p: hybrid.read(p, MISSING) is not MISSING for p in paths}
    assert answers["/n"] is False  # only data hidden by the empty mount /n/e
