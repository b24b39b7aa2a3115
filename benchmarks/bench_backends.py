"""Persistent backends side by side with the raw work they wrap.

Run: ``.venv/bin/python benchmarks/bench_backends.py [--runs N]``. Prints one table:

* FS leaf write (``FileSystemSyncBackend.write("/bench/k", value)``) vs the same JSON
  written by hand with a temporary file + ``os.replace`` in the same directory (target <= 1.1x);
* reading a tree of 2,000 leaf files (20 directories x 100) with ``read("/")`` (target <= 20 ms),
  next to a raw ``os.walk`` + ``open`` + ``json.loads`` of the same files;
* SQLite leaf write (one transaction each), vs a raw ``INSERT OR REPLACE`` + commit;
* 1,000 writes in one batch: ``ControllerSync.batch()`` over SQLite and over files, and the raw
  ``transaction()`` of SQLite.

Each figure is the median of ``--runs`` repetitions (default 7).
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


def raw_json_write(directory: str, name: str, value: object) -> None:
    tmp = os.path.join(directory, f".tmp-{name}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(value, ensure_ascii=False))
    os.replace(tmp, os.path.join(directory, name + ".json"))


def bench_fs_write(root: Path, runs: int) -> tuple[float, float]:
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
        (median_time(ours, 1), median_time(raw, 1)) for _ in range(runs * LEAF_WRITES // chunk)
    ]
    return (
        statistics.median(p[0] for p in pairs) / chunk,
        statistics.median(p[1] for p in pairs) / chunk,
    )


def bench_fs_tree_read(root: Path, runs: int) -> tuple[float, float]:
    fs = FileSystemSyncBackend(root / "tree")
    for i in range(2000):
        fs.write(f"/d{i // 100}/k{i}", {"i": i})

    def raw() -> None:
        out = {}
        for dirpath, _dirs, files in os.walk(root / "tree"):
            for name in files:
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
        fs_w, raw_w = bench_fs_write(root, runs)
        tree, raw_tree = bench_fs_tree_read(root, runs)
        sq_w, sq_raw, sq_batch, sq_txn, fs_batch = bench_sqlite(root, runs)
    rows = [
        ("FS leaf write", fs_w * 1e6, "us", raw_w * 1e6, "raw tmp+os.replace", "<= 1.1x"),
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
