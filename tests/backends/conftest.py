"""The registry of backends the contract suite (test_contract.py) runs against, and its fixtures.

To add a backend, append ONE ``BackendFactory`` to ``BACKEND_FACTORIES``::

    BACKEND_FACTORIES.append(
        BackendFactory("redis", make=lambda tmp_path, request: RedisBackend(
            request.getfixturevalue("redis_url")), snapshot=..., marks=(pytest.mark.redis,))
    )

``make(tmp_path, request)`` returns a fresh, empty sync ``Backend`` or ``AsyncBackend``
(``request.getfixturevalue`` reaches any fixture, e.g. a server). The flags say which parts
of the contract the backend offers; tests that need a capability skip the others.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from restate.backends import (
    AsyncBackend,
    Backend,
    CachingAsyncBackend,
    CachingSyncBackend,
    FileSystemAsyncBackend,
    FileSystemSyncBackend,
    HybridAsyncBackend,
    HybridSyncBackend,
    InMemoryBackend,
    SQLiteBackend,
)


@dataclass(frozen=True)
class BackendFactory:
    """One backend under contract.

    name: the test id.
    make: ``(tmp_path, request) -> backend``, fresh and empty.
    hierarchical: paths form a tree (subtree reads and writes, leaf conflicts, key
        validation). False for a flat store of exact paths (the README's Redis sketch).
    empty_parent: what ``/a`` reads after deleting ``/a/b``, its only child: ``"{}"`` (like
        memory) or ``"missing"`` (the file backend removes empty directories).
    serializes: values must be JSON-like; others raise SerializationError.
    snapshot: ``backend -> raw storage`` (files, rows) to check that something changed
        nothing; the default reads ``/`` through the backend.
    reopen: ``(old backend, tmp_path) -> new backend on the same storage``; None when the
        storage does not outlive the backend.
    marks: pytest marks for every test on this backend (e.g. ``pytest.mark.redis``).
    """

    name: str
    make: Callable[[Path, pytest.FixtureRequest], Any]
    hierarchical: bool = True
    empty_parent: str = "{}"
    serializes: bool = True
    snapshot: Callable[[Any], Any] | None = None
    reopen: Callable[[Any, Path], Any] | None = None
    marks: tuple[Any, ...] = ()


class FlatDictBackend(Backend):
    """A user backend that ignores hierarchy: the README's Redis sketch, over a dict."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def read(self, path: PurePosixPath | str, default: Any = None) -> Any:
        raw = self.data.get(str(path))
        return json.loads(raw) if raw is not None else default

    def write(self, path: PurePosixPath | str, value: Any) -> None:
        self.data[str(path)] = json.dumps(value)

    def delete(self, path: PurePosixPath | str) -> None:
        self.data.pop(str(path), None)


def files_of(base: Path) -> dict[str, Any]:
    """Every file (bytes) and directory (None) below ``base``: the raw state of a file store
    (its lock file, which only exists to be locked, left out)."""
    found: dict[str, Any] = {}
    for root, dirs, files in os.walk(base):
        for name in dirs:
            found[os.path.relpath(os.path.join(root, name), base) + "/"] = None
        for name in files:
            if root == str(base) and name == ".restate.lock":
                continue
            found[os.path.relpath(os.path.join(root, name), base)] = Path(root, name).read_bytes()
    return found


def rows_of(db_file: str) -> list[tuple[str, str]]:
    """Every row of an SQLite store, read through a separate connection."""
    with sqlite3.connect(db_file) as db:
        return db.execute("SELECT path, value FROM leaves ORDER BY path").fetchall()


def _fs_dir(backend: Any) -> Path:
    return Path(backend.base_dir)


def _make_hybrid(tmp_path: Path, async_: bool) -> Any:
    """Memory at the root, files at ``/a`` (where most contract tests write), memory deeper."""
    if async_:
        hybrid: Any = HybridAsyncBackend(InMemoryBackend())
        hybrid.mount("/a", FileSystemAsyncBackend(tmp_path / "hybrid"))
    else:
        hybrid = HybridSyncBackend(InMemoryBackend())
        hybrid.mount("/a", FileSystemSyncBackend(tmp_path / "hybrid"))
    hybrid.mount("/b/c", InMemoryBackend())
    return hybrid


def _hybrid_snapshot(hybrid: Any) -> Any:
    mounts = hybrid.mounts
    return (
        copy.deepcopy(hybrid.root_backend._root),
        files_of(Path(mounts[PurePosixPath("/a")].base_dir)),
        copy.deepcopy(mounts[PurePosixPath("/b/c")]._root),
    )


def _caching_snapshot(cache: Any) -> Any:
    return (copy.deepcopy(cache._cache.tree._root), cache.pending, files_of(cache.backend.base_dir))


BACKEND_FACTORIES: list[BackendFactory] = [
    BackendFactory(
        "memory",
        lambda tmp_path, request: InMemoryBackend(),
        serializes=False,
        snapshot=lambda b: copy.deepcopy(b._root),
    ),
    BackendFactory(
        "fs",
        lambda tmp_path, request: FileSystemSyncBackend(tmp_path / "fs"),
        empty_parent="missing",
        snapshot=lambda b: files_of(_fs_dir(b)),
        reopen=lambda b, tmp_path: FileSystemSyncBackend(tmp_path / "fs"),
    ),
    BackendFactory(
        "fs-async",
        lambda tmp_path, request: FileSystemAsyncBackend(tmp_path / "fs"),
        empty_parent="missing",
        snapshot=lambda b: files_of(_fs_dir(b)),
        reopen=lambda b, tmp_path: FileSystemAsyncBackend(tmp_path / "fs"),
    ),
    BackendFactory(
        "caching-fs",
        lambda tmp_path, request: CachingSyncBackend(
            FileSystemSyncBackend(tmp_path / "fs"), flush_interval=0
        ),
        snapshot=_caching_snapshot,
        reopen=lambda b, tmp_path: (b.flush(), FileSystemSyncBackend(tmp_path / "fs"))[1],
    ),
    BackendFactory(
        "caching-async-fs",
        lambda tmp_path, request: CachingAsyncBackend(
            FileSystemAsyncBackend(tmp_path / "fs"), flush_interval=3600
        ),
        snapshot=_caching_snapshot,
    ),
    BackendFactory(
        "hybrid",
        lambda tmp_path, request: _make_hybrid(tmp_path, False),
        empty_parent="missing",
        snapshot=_hybrid_snapshot,
    ),
    BackendFactory(
        "hybrid-async",
        lambda tmp_path, request: _make_hybrid(tmp_path, True),
        empty_parent="missing",
        snapshot=_hybrid_snapshot,
    ),
    BackendFactory(
        "sqlite",
        lambda tmp_path, request: SQLiteBackend(str(tmp_path / "state.db")),
        snapshot=lambda b: rows_of(b.path),
        reopen=lambda b, tmp_path: SQLiteBackend(str(tmp_path / "state.db")),
    ),
    BackendFactory(
        "flat-user",
        lambda tmp_path, request: FlatDictBackend(),
        hierarchical=False,
        snapshot=lambda b: dict(b.data),
    ),
]

from tests.redis_fixture import redis_contract_factories  # noqa: E402 - the redis helper's hook

BACKEND_FACTORIES += redis_contract_factories(BackendFactory)


class Store:
    """Calls a sync or an async backend the same way. Async results are awaited on a private
    loop, after checking that the backend returned a coroutine (and its result is a value)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.is_async = isinstance(backend, AsyncBackend)
        self.loop = asyncio.new_event_loop() if self.is_async else None

    def run(self, result: Any) -> Any:
        if self.loop is None:
            return result
        assert inspect.iscoroutine(result), f"an async backend returned {result!r}"
        value = self.loop.run_until_complete(result)
        assert not inspect.isawaitable(value), "an awaited read returned an awaitable"
        return value

    def read(self, path: Any, default: Any = None) -> Any:
        return self.run(self.backend.read(path, default))

    def write(self, path: Any, value: Any) -> None:
        self.run(self.backend.write(path, value))

    def delete(self, path: Any) -> None:
        self.run(self.backend.delete(path))

    def close(self) -> None:
        self.run(self.backend.close())
        if self.loop is not None:
            self.loop.close()


@pytest.fixture(params=[pytest.param(f, id=f.name, marks=f.marks) for f in BACKEND_FACTORIES])
def factory(request: pytest.FixtureRequest) -> BackendFactory:
    return request.param


@pytest.fixture
def store(
    factory: BackendFactory, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Store]:
    s = Store(factory.make(tmp_path, request))
    yield s
    s.close()


@pytest.fixture
def tree_store(factory: BackendFactory, store: Store) -> Store:
    """``store`` for tests that need hierarchy; skips flat backends."""
    if not factory.hierarchical:
        pytest.skip(f"{factory.name} stores exact paths only")
    return store


def snapshot(factory: BackendFactory, store: Store) -> Any:
    if factory.snapshot is not None:
        return factory.snapshot(store.backend)
    return store.read("/")
