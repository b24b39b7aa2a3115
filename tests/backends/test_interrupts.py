"""KeyboardInterrupt (Ctrl-C, Jupyter's "interrupt kernel") at random moments of batches on
SQLite, files and memory, a real SIGINT at random moments of batches on a hybrid of three
stores and on a cache, and task cancellation of async file batches: the store is never left
inside a transaction, the controller stays usable, another process can write, every batch is
whole or absent -- in every store of a hybrid -- and a cache agrees with its store."""

from __future__ import annotations

import asyncio
import fcntl
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from restate import ControllerAsync, ControllerSync
from restate.backends import (
    CachingSyncBackend,
    FileSystemAsyncBackend,
    FileSystemSyncBackend,
    HybridSyncBackend,
    InMemoryBackend,
    SQLiteBackend,
)
from restate.backends.filesystem.lock import LOCK_NAME

ROOT = Path(__file__).resolve().parents[2]
KEYS = 5
WANT_CANCELLED = 10


class Timer:
    """SIGALRM after a random delay raises KeyboardInterrupt in the main thread, while armed;
    ``sigint=True``: sends a real SIGINT instead (Ctrl-C), which the SIGINT handler in place
    turns into KeyboardInterrupt -- at once, or after a ``deferred_interrupts()`` section."""

    def __init__(self, sigint: bool = False) -> None:
        self.armed = False
        self.fired = 0
        self.sigint = sigint

    def _handler(self, signum: int, frame: Any) -> None:
        if self.armed:
            self.armed = False
            self.fired += 1
            if self.sigint:
                signal.raise_signal(signal.SIGINT)
                return
            raise KeyboardInterrupt

    @contextmanager
    def installed(self) -> Iterator[Timer]:
        old = signal.signal(signal.SIGALRM, self._handler)
        try:
            yield self
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)

    def arm(self, delay: float) -> None:
        self.armed = True
        signal.setitimer(signal.ITIMER_REAL, max(delay, 1e-6))

    def disarm(self) -> None:
        self.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)


def one_batch(c: ControllerSync, i: int) -> None:
    with c.batch():
        for j in range(KEYS):
            c.set_state(f"/a/k{j}", i)
        c.set_state("/doc", {"n": i, "list": list(range(i % 7))})
        c.del_state(f"/flip{(i + 1) % 2}")
        c.set_state(f"/flip{i % 2}", i)


def check_whole(state: dict[str, Any]) -> int:
    n = state["doc"]["n"]
    assert state["a"] == {f"k{j}": n for j in range(KEYS)}, state
    assert state["doc"]["list"] == list(range(n % 7))
    assert state.get(f"flip{n % 2}") == n and f"flip{(n + 1) % 2}" not in state
    return int(n)


DEADLINE = 600.0  # seconds: generous, for a loaded machine; the usual run takes a few


def hammer(
    c: ControllerSync, not_wedged: Callable[[], None], want: int, seed: int, sigint: bool = False
) -> int:
    """Batches, each with a KeyboardInterrupt at a random moment of it (or just after), until
    ``want`` interrupts landed inside one (at least ``4 * want`` batches); after each the
    state is whole and the store takes writes. Returns how many landed.

    The delay is drawn from the time an uninterrupted batch takes, re-measured as the run
    goes (a median of recent ones), so a machine that slows down under load still gets
    interrupts inside batches; the run keeps going until enough landed, within ``DEADLINE``.
    """
    rng = random.Random(seed)
    one_batch(c, 0)
    durations = [_timed(lambda: one_batch(c, 1))]
    committed, landed, i = 1, 0, 1
    start = time.monotonic()
    with Timer(sigint).installed() as timer:
        while landed < want or i < 4 * want:
            i += 1
            assert time.monotonic() - start < DEADLINE, (
                f"only {landed} of {want} interrupts landed inside a batch in {i - 2} batches "
                f"within {DEADLINE:.0f} s"
            )
            duration = statistics.median(durations[-9:])
            began = time.perf_counter()
            try:
                timer.arm(rng.uniform(0, duration * 1.3))
                one_batch(c, i)
                timer.disarm()
                committed = i
                durations.append(time.perf_counter() - began)
            except KeyboardInterrupt:
                landed += 1
            finally:
                timer.disarm()
            n = check_whole(c.get_state("/"))
            assert n >= committed
            not_wedged()
            c.set_state("/probe", i)  # the controller still writes, and it commits
            assert c.get_state("/probe") == i
    return landed


def _timed(fn: Callable[[], object]) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


@pytest.mark.slow
def test_random_interrupts_during_memory_batches_leave_every_batch_whole() -> None:
    c = ControllerSync()
    assert hammer(c, lambda: None, 30, seed=1) >= 30


@pytest.mark.slow
def test_random_interrupts_during_sqlite_batches_never_wedge_the_database(tmp_path: Path) -> None:
    db = str(tmp_path / "state.db")
    backend = SQLiteBackend(db)
    c = ControllerSync(backend)

    def not_wedged() -> None:
        assert not backend._db.in_transaction
        other = sqlite3.connect(db, timeout=0.0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # fails at once if we still held the write lock
            other.execute("ROLLBACK")
        finally:
            other.close()

    assert hammer(c, not_wedged, 20, seed=2) >= 20
    write_from_another_process(
        f"from restate.backends import SQLiteBackend; SQLiteBackend({db!r}, timeout=5)"
        f".write('/other', 1)"
    )
    assert c.get_state("/other") == 1


@pytest.mark.slow
def test_random_interrupts_during_file_batches_never_wedge_the_directory(tmp_path: Path) -> None:
    base = tmp_path / "state"
    backend = FileSystemSyncBackend(base)
    c = ControllerSync(backend)

    def not_wedged() -> None:
        assert not backend._txns.journal.active and backend._txns.dirlock.depth == 0
        fd = os.open(base / LOCK_NAME, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if we still held it
        finally:
            os.close(fd)

    assert hammer(c, not_wedged, 15, seed=3) >= 15
    write_from_another_process(
        f"from restate.backends import FileSystemSyncBackend; "
        f"FileSystemSyncBackend({str(base)!r}).write('/other', 1)"
    )
    assert c.get_state("/other") == 1


def _files_not_wedged(backend: FileSystemSyncBackend) -> None:
    assert not backend._txns.journal.active and backend._txns.dirlock.depth == 0
    fd = os.open(backend.base_dir / LOCK_NAME, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if we still held it
    finally:
        os.close(fd)


@pytest.mark.slow
def test_random_ctrl_c_during_hybrid_batches_leaves_each_whole_in_all_three_stores(
    tmp_path: Path,
) -> None:
    # memory at the root (/flip*), files at /a, SQLite at /doc: every batch spans three
    # stores, and a Ctrl-C during the commits is delivered only once all have committed
    files = FileSystemSyncBackend(tmp_path / "fs")
    db = SQLiteBackend(str(tmp_path / "state.db"))
    hybrid = HybridSyncBackend(InMemoryBackend())
    hybrid.mount("/a", files)
    hybrid.mount("/doc", db)
    c = ControllerSync(hybrid)

    def not_wedged() -> None:
        _files_not_wedged(files)
        assert not db._db.in_transaction
        # what each store has committed, read behind the hybrid, is the same batch
        on_disk = FileSystemSyncBackend(tmp_path / "fs").read("/")
        other = SQLiteBackend(str(tmp_path / "state.db"))
        try:
            n = other.read("/")["n"]
        finally:
            other.close()
        assert on_disk == {f"k{j}": n for j in range(KEYS)}, (on_disk, n)

    assert hammer(c, not_wedged, 15, seed=4, sigint=True) >= 15


@pytest.mark.slow
def test_random_ctrl_c_during_batches_on_a_cache_leaves_the_cache_and_its_store_agreeing(
    tmp_path: Path,
) -> None:
    base = tmp_path / "state"
    inner = FileSystemSyncBackend(base)
    cache = CachingSyncBackend(inner, flush_interval=0)
    c = ControllerSync(cache)

    def agree() -> None:
        _files_not_wedged(inner)
        cache.flush()  # whatever the cache shows reaches the store, and nothing else
        assert FileSystemSyncBackend(base).read("/") == c.get_state("/")

    assert hammer(c, agree, 15, seed=6, sigint=True) >= 15


def write_from_another_process(code: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)


@pytest.mark.slow
def test_cancelling_async_file_batches_at_random_moments_leaves_every_batch_whole(
    tmp_path: Path,
) -> None:
    base = tmp_path / "state"

    async def batch(c: ControllerAsync, i: int) -> None:
        async with c.batch():
            for j in range(KEYS):
                await c.set_state(f"/a/k{j}", i)
            await c.set_state("/doc", {"n": i, "list": list(range(i % 7))})
            await c.del_state(f"/flip{(i + 1) % 2}")
            await c.set_state(f"/flip{i % 2}", i)

    async def main() -> int:
        c = ControllerAsync(FileSystemAsyncBackend(base))
        rng = random.Random(5)
        await batch(c, 0)
        start = time.perf_counter()
        await batch(c, 1)
        durations = [time.perf_counter() - start]
        cancelled, i, began = 0, 1, time.monotonic()
        # until enough cancellations landed inside a batch (a loaded machine makes fewer)
        while cancelled < WANT_CANCELLED or i < 4 * WANT_CANCELLED:
            i += 1
            assert time.monotonic() - began < DEADLINE, (
                f"only {cancelled} of {WANT_CANCELLED} cancellations landed inside a batch "
                f"in {i - 2} batches within {DEADLINE:.0f} s"
            )
            start = time.perf_counter()
            task = asyncio.create_task(batch(c, i))
            await asyncio.sleep(rng.uniform(0, statistics.median(durations[-9:])))
            task.cancel()
            try:
                await task
                durations.append(time.perf_counter() - start)
            except asyncio.CancelledError:
                cancelled += 1
            check_whole(await c.get_state("/"))
            # read directly, behind the controller: what is on disk is whole too
            check_whole(FileSystemSyncBackend(base).read("/"))
        return cancelled

    assert asyncio.run(main()) >= WANT_CANCELLED
