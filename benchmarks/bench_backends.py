"""Persistent backends side by side with the raw work they wrap.

Run: ``.venv/bin/python benchmarks/bench_backends.py [--runs N]``. Prints one table:

* FS leaf write (``FileSystemSyncBackend.write("/bench/k", value)``) vs the same JSON
  written by hand with a temporary file + ``os.replace`` in the same directory (target <= 1.1x);
* reading a tree of 2,000 leaf files (20 directories x 100) with ``read("/")`` (target <= 20 ms),
  next to a raw ``os.walk`` + ``open`` + ``json.loads`` of the same files;
* SQLite leaf write (one transaction each), vs a raw ``INSERT OR REPLACE`` + commit;
* 1,000 writes in one batch: ``ControllerSync.batch()`` over SQLite and over files, and the raw
  ``transaction()`` of SQLite;
* a file batch of 10 leaf writes (``FileSystemSyncBackend.transaction()``, the journaled
  path) vs 10 raw tmp+``os.replace`` writes;
* a ``ControllerSync.set_state`` nobody observes on files vs the raw backend ``write`` (target
  <= 1.15x: the controller adds little to a file write).

The file rows print wall time and CPU time (``time.process_time``, this process only) per
operation. Each figure is the median of ``--runs`` repetitions (default 7).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from restate import ControllerSync
from restate.backends import FileSystemSyncBackend, SQLiteBackend

VALUE = {"name": "Alice", "age": 30, "tags": ["a", "b"], "score": 1.5}
LEAF_WRITES = 2000


def median_time(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def median_times(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median wall time and median CPU time of ``runs`` calls."""
    walls, cpus = [], []
    for _ in range(runs):
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - start)
    return statistics.median(walls), statistics.median(cpus)


def raw_json_write(directory: str, name: str, value: object) -> None:
    tmp = os.path.join(directory, f".tmp-{name}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(value, ensure_ascii=False))
    os.replace(tmp, os.path.join(directory, name + ".json"))


def bench_fs_write(root: Path, runs: int) -> Pair:
    fs = FileSystemSyncBackend(root / "fs")
    raw_dir = root / "raw" / "bench"
    raw_dir.mkdir(parents=True)

    chunk = 100

    def ours() -> None:
        for _ in range(chunk):
            fs.write("/bench/k", VALUE)

    def raw() -> None:
        for _ in range(chunk):
            raw_json_write(str(raw_dir), "k", VALUE)

    ours(), raw()  # warm up: directories exist, caches hot
    # interleave small chunks so that load from other processes hits both sides alike
    pairs = [
        (median_times(ours, 1), median_times(raw, 1)) for _ in range(runs * LEAF_WRITES // chunk)
    ]
    return (
        (
            statistics.median(p[0][0] for p in pairs) / chunk,
            statistics.median(p[0][1] for p in pairs) / chunk,
        ),
        (
            statistics.median(p[1][0] for p in pairs) / chunk,
            statistics.median(p[1][1] for p in pairs) / chunk,
        ),
    )


Pair = tuple[tuple[float, float], tuple[float, float]]  # ((wall, cpu) ours, (wall, cpu) base)


def interleaved(ours: Callable[[], object], base: Callable[[], object], runs: int) -> Pair:
    """Medians of many alternating short runs, so that load from other processes hits both
    sides alike."""
    ours(), base()  # warm up
    pairs = [(median_times(ours, 1), median_times(base, 1)) for _ in range(runs * 10)]
    return (
        (statistics.median(p[0][0] for p in pairs), statistics.median(p[0][1] for p in pairs)),
        (statistics.median(p[1][0] for p in pairs), statistics.median(p[1][1] for p in pairs)),
    )


def bench_fs_batch10(root: Path, runs: int) -> Pair:
    fs = FileSystemSyncBackend(root / "b10")
    raw_dir = root / "rawb10" / "bench"
    raw_dir.mkdir(parents=True)

    def ours() -> None:
        with fs.transaction():
            for i in range(10):
                fs.write(f"/bench/k{i}", VALUE)

    def raw() -> None:
        for i in range(10):
            raw_json_write(str(raw_dir), f"k{i}", VALUE)

    return interleaved(ours, raw, runs)


def bench_controller_write(root: Path, runs: int) -> Pair:
    fs = FileSystemSyncBackend(root / "ctl")
    controller = ControllerSync(fs)
    chunk = 20
    counter = iter(range(1 << 62))  # a new value each time: the controller skips equal writes

    def ours() -> None:
        for _ in range(chunk):
            controller.set_state("/bench/k", {**VALUE, "n": next(counter)})

    def raw() -> None:
        for _ in range(chunk):
            fs.write("/bench/k", {**VALUE, "n": next(counter)})

    (ow, oc), (rw, rc) = interleaved(ours, raw, runs * 3)
    return (ow / chunk, oc / chunk), (rw / chunk, rc / chunk)


def bench_fs_tree_read(root: Path, runs: int) -> tuple[float, float]:
    fs = FileSystemSyncBackend(root / "tree")
    for i in range(2000):
        fs.write(f"/d{i // 100}/k{i}", {"i": i})

    def raw() -> None:
        out = {}
        for dirpath, _dirs, files in os.walk(root / "tree"):
            for name in files:
                if name.startswith("."):
                    continue  # the backend's lock file
                with open(os.path.join(dirpath, name), encoding="utf-8") as f:
                    out[name] = json.loads(f.read())

    assert sum(len(v) for v in fs.read("/").values()) == 2000
    return median_time(lambda: fs.read("/"), runs), median_time(raw, runs)


def bench_sqlite(root: Path, runs: int) -> tuple[float, float, float, float, float]:
    db = SQLiteBackend(str(root / "bench.db"))
    n = 1000

    def leaf_writes() -> None:
        for i in range(n):
            db.write("/bench/k", i)

    raw_db = sqlite3.connect(str(root / "raw.db"), isolation_level=None)
    raw_db.execute("PRAGMA journal_mode=WAL")
    raw_db.execute("PRAGMA synchronous=NORMAL")
    raw_db.execute("CREATE TABLE t (path TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID")

    def raw_writes() -> None:
        for i in range(n):
            raw_db.execute("BEGIN IMMEDIATE")
            raw_db.execute("INSERT OR REPLACE INTO t VALUES (?, ?)", ("/bench/k", str(i)))
            raw_db.execute("COMMIT")

    controller = ControllerSync(db)

    def batch_sqlite() -> None:
        with controller.batch():
            for i in range(1000):
                controller.set_state(f"/batch/k{i}", i + time.perf_counter_ns() % 7)

    def txn_sqlite() -> None:
        with db.transaction():
            for i in range(1000):
                db.write(f"/txn/k{i}", i)

    fs_controller = ControllerSync(FileSystemSyncBackend(root / "batchfs"))

    def batch_fs() -> None:
        with fs_controller.batch():
            for i in range(1000):
                fs_controller.set_state(f"/batch/k{i}", i + time.perf_counter_ns() % 7)

    return (
        median_time(leaf_writes, runs) / n,
        median_time(raw_writes, runs) / n,
        median_time(batch_sqlite, runs),
        median_time(txn_sqlite, runs),
        median_time(batch_fs, runs),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (fs_w, fs_wc), (raw_w, raw_wc) = bench_fs_write(root, runs)
        (b10, b10c), (raw10, raw10c) = bench_fs_batch10(root, runs)
        (ctl, ctlc), (bw, bwc) = bench_controller_write(root, runs)
        tree, raw_tree = bench_fs_tree_read(root, runs)
        sq_w, sq_raw, sq_batch, sq_txn, fs_batch = bench_sqlite(root, runs)
    rows = [
        ("FS leaf write", fs_w * 1e6, "us", raw_w * 1e6, "raw tmp+os.replace", "<= 1.1x"),
        ("  (CPU time)", fs_wc * 1e6, "us", raw_wc * 1e6, "raw tmp+os.replace", ""),
        ("FS batch of 10", b10 * 1e6, "us", raw10 * 1e6, "10 raw tmp+os.replace", ""),
        ("  (CPU time)", b10c * 1e6, "us", raw10c * 1e6, "10 raw tmp+os.replace", ""),
        ("FS controller write", ctl * 1e6, "us", bw * 1e6, "backend write", "<= 1.15x"),
        ("  (CPU time)", ctlc * 1e6, "us", bwc * 1e6, "backend write", ""),
        (
            "FS read tree of 2,000 files",
            tree * 1e3,
            "ms",
            raw_tree * 1e3,
            "raw walk+open",
            "<= 20 ms",
        ),
        ("SQLite leaf write", sq_w * 1e6, "us", sq_raw * 1e6, "raw INSERT+COMMIT", ""),
        (
            "SQLite 1,000-write batch",
            sq_batch * 1e3,
            "ms",
            sq_txn * 1e3,
            "backend transaction()",
            "",
        ),
        (
            "FS 1,000-write batch",
            fs_batch * 1e3,
            "ms",
            fs_w * 1e3 * 1000,
            "1,000 FS leaf writes",
            "",
        ),
    ]
    print(f"{'measure':<30} {'restate':>12} {'baseline':>12} {'ratio':>7}  baseline is / target")
    for name, ours, unit, base, what, target in rows:
        print(
            f"{name:<30} {ours:>9.2f} {unit:<2} {base:>9.2f} {unit:<2} {ours / base:>6.2f}x"
            f"  {what}{' / ' + target if target else ''}"
        )
    print(f"(medians of {runs} runs; FS writes: {runs * LEAF_WRITES} per side, interleaved)")


if __name__ == "__main__":
    main()
