"""Issue 15's targets as ratios measured in one run (CPU time, interleaved rounds).

Run: ``.venv/bin/python benchmarks/bench_targets.py [--quick]`` (bench_core.py prints it too).
Each pair of operations is timed in alternating rounds (A, B, A, B, ...) with
``time.process_time``; the figure is the median per operation, the ratio restate ÷ reference.

With the compiled build installed (``RESTATE_COMPILE=1 pip install .``, docs/development.md)
it reports both builds: each row runs here (compiled) and in a subprocess that imports the
pure sources of this checkout, one after the other. Two gains: ``by ratio`` is the pure
ratio ÷ the compiled ratio (each against the same reference timed in its own process, so the
machine's load between the two runs cancels out; meaningless for the batch rows, whose
reference is restate itself), ``by time`` restate's time in the pure build ÷ in the compiled
one (compare the reference columns to see how much the load moved).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _cli import options  # beside this file (the script's directory is on sys.path)

from restate import ControllerSync
from restate.backends import FileSystemSyncBackend, SQLiteBackend

ARGS = options(__doc__, {
    "quick": "fewer rounds",
    "row=N": "measure row N alone, print it as JSON (for the comparison of builds)",
})  # fmt: skip
ROUNDS = 3 if ARGS.quick else 9
Op = Callable[[], Any]


def paired(a: Op, b: Op, number: int) -> tuple[float, float]:
    """Median CPU seconds per call of ``a`` and of ``b``, timed in interleaved rounds."""
    ta: list[float] = []
    tb: list[float] = []
    for _ in range(ROUNDS):
        for fn, out in ((a, ta), (b, tb)):
            start = time.process_time()
            for _ in range(number):
                fn()
            out.append((time.process_time() - start) / number)
    return statistics.median(ta), statistics.median(tb)


def counter(fn: Callable[[int], Any]) -> Op:
    i = [0]

    def op() -> None:
        i[0] += 1
        fn(i[0])

    return op


def psygnal_emit(slots: int, signals: int) -> Op:
    from psygnal import Signal

    class Emitter:
        s0 = Signal(int)
        s1 = Signal(int)
        s2 = Signal(int)
        s3 = Signal(int)
        s4 = Signal(int)
        s5 = Signal(int)
        s6 = Signal(int)

    e = Emitter()
    sigs = [getattr(e, f"s{k}") for k in range(signals)]
    for sig in sigs[: slots and signals]:
        sig.connect(lambda v: None)
    store: dict[str, int] = {}

    def write(v: int) -> None:
        store["a"] = v
        for sig in sigs:
            sig.emit(v)

    return counter(write)


def writer(c: ControllerSync, path: str) -> Op:
    return counter(lambda v: c.set_state(path, v))


def leaf_one_subscriber() -> tuple[float, float]:
    c = ControllerSync()
    c.subscribe("/a/b", lambda e: None)
    return paired(writer(c, "/a/b"), psygnal_emit(1, 1), 50_000)


def depth6_seven_events() -> tuple[float, float]:
    c = ControllerSync()
    parts = ["l1", "l2", "l3", "l4", "l5", "l6"]
    for d in range(7):
        c.subscribe("/" + "/".join(parts[:d]), lambda e: None)
    return paired(writer(c, "/" + "/".join(parts)), psygnal_emit(1, 7), 20_000)


def unheard() -> tuple[float, float]:
    c = ControllerSync()
    c.subscribe("/elsewhere", lambda e: None)
    return paired(writer(c, "/a/b"), psygnal_emit(0, 1), 50_000)


def leaf_read() -> tuple[float, float]:
    from reaktiv import Signal

    c = ControllerSync()
    c.set_state("/a/b", 1)
    s = Signal(1)
    return paired(lambda: c.get_state("/a/b"), lambda: s(), 100_000)


def batches(listening: bool) -> tuple[float, float]:
    c = ControllerSync()
    if listening:
        c.subscribe("/batch", lambda e: None)
    keys = [f"/batch/k{i}" for i in range(1000)]
    n = [0]

    def batched() -> None:
        n[0] += 1
        with c.batch():
            for k in keys:
                c.set_state(k, n[0])

    def singles() -> None:
        n[0] += 1
        for k in keys:
            c.set_state(k, n[0])

    return paired(batched, singles, 20)


def store_write(kind: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "files":
            raw, ctl = (
                FileSystemSyncBackend(Path(tmp) / "raw"),
                FileSystemSyncBackend(Path(tmp) / "c"),
            )
        else:
            raw, ctl = (
                SQLiteBackend(str(Path(tmp) / "raw.db")),
                SQLiteBackend(str(Path(tmp) / "c.db")),
            )
        c = ControllerSync(ctl)
        c.subscribe("/elsewhere", lambda e: None)  # a registration, not on the written path
        return paired(writer(c, "/bench/k"), counter(lambda v: raw.write("/bench/k", v)), 500)


ROWS: list[tuple[str, Callable[[], tuple[float, float]], str, float]] = [
    ("leaf write, 1 exact subscriber ÷ psygnal emit (1 slot)", leaf_one_subscriber, "≤ 1.0", 1.0),
    ("depth-6 write, 7 events ÷ psygnal emitting 7 signals", depth6_seven_events, "≤ 0.5", 0.5),
    ("write nobody hears ÷ psygnal unconnected emit", unheard, "≤ 1.1", 1.1),
    ("leaf read ÷ reaktiv Signal() read", leaf_read, "≤ 0.6", 0.6),
    ("batch of 1,000 (subscriber at root) ÷ 1,000 writes", lambda: batches(True), "≤ 1.0", 1.0),
    ("batch of 1,000 (nobody listening) ÷ 1,000 writes", lambda: batches(False), "≤ 0.5", 0.5),
    ("files: unobserved leaf write ÷ backend.write", lambda: store_write("files"), "≤ 1.15", 1.15),
    ("SQLite: unobserved leaf write ÷ backend.write", lambda: store_write("sqlite"), "≤ 1.5", 1.5),
]  # fmt: skip


def compiled() -> bool:
    """Whether the restate imported here is the compiled build (its engine an extension)."""
    import restate._engine.engine as engine

    return not engine.__file__.endswith(".py")


def pure_row(index: int) -> tuple[float, float]:
    """Row ``index`` measured in a subprocess that imports this checkout's pure sources."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    args = [sys.executable, __file__, "--row", str(index), *sys.argv[1:]]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    ours, ref, was_compiled = json.loads(done.stdout)
    if was_compiled:
        raise SystemExit(f"the subprocess imported a compiled restate, not {root}'s sources")
    return ours, ref


def main() -> None:
    if ARGS.row is not None:  # one row for the comparison of builds: print it as JSON
        ours, ref = ROWS[ARGS.row][1]()
        print(json.dumps([ours, ref, compiled()]))
        return
    both = compiled()
    head = f"{'target (CPU time, interleaved)':58} {'restate':>10} {'reference':>10} {'ratio':>7}"
    extra = "       pure  pure ref  ratio  gain: by ratio, by time" if both else ""
    print(head + extra + "  target")
    for index, (name, bench, target, limit) in enumerate(ROWS):
        ours, ref = bench()
        ratio = ours / ref
        mark = "met" if ratio <= limit else "MISSED"
        line = f"{name:58} {ours * 1e6:8.2f}µs {ref * 1e6:8.2f}µs {ratio:6.2f}×"
        if both:
            pure_ours, pure_ref = pure_row(index)
            pure = pure_ours / pure_ref
            line += (
                f" {pure_ours * 1e6:8.2f}µs {pure_ref * 1e6:7.2f}µs {pure:5.2f}×"
                f"        {pure / ratio:5.2f}×  {pure_ours / ours:5.2f}×"
            )
        print(f"{line}  {target} {mark}")
    if both:
        print("restate, reference, ratio: the compiled build; pure, pure ref, ratio: this")
        print("checkout's sources in a subprocess; gains: see this script's docstring")


if __name__ == "__main__":
    main()
