"""What the scheduler of tracked functions costs (issue 13), next to the writes it rides on.

Run: ``.venv/bin/python benchmarks/bench_scheduler.py [--quick]``. Times are CPU time
(``time.process_time``, so a busy machine inflates them less), the minimum of several
repeats, per operation:

* a leaf write with nothing listening, and with one subscriber (the fast path: the
  scheduler must add nothing here);
* a leaf write that re-runs one tracked function (footprint recorded, why made, loop search
  skipped because the footprint did not change);
* a leaf write inside ``deferring()`` that only marks a tracked function due;
* 1,000 writes inside ``deferring()`` then the one run at the end (latest wins);
* two tracked functions whose footprints close a loop: the refusal (first pass + search).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from _cli import options  # beside this file (the script's directory is on sys.path)

from restate import ControllerSync, CycleError

REPEATS = 3 if options(__doc__, {"quick": "fewer repeats"}).quick else 7


def per_op(fn: Callable[[], Any], number: int) -> float:
    """Minimum CPU seconds per call of ``fn`` over REPEATS runs of ``number`` calls."""
    best = float("inf")
    for _ in range(REPEATS):
        start = time.process_time()
        for _ in range(number):
            fn()
        best = min(best, (time.process_time() - start) / number)
    return best


def writer(c: ControllerSync, path: str) -> Callable[[], None]:
    count = [0]

    def op() -> None:
        count[0] += 1
        c.set_state(path, count[0])

    return op


def bench_plain() -> float:
    return per_op(writer(ControllerSync(), "/x"), 20_000)


def bench_subscriber() -> float:
    c = ControllerSync()
    c.subscribe("/x", lambda e: None)
    return per_op(writer(c, "/x"), 20_000)


def bench_tracked() -> float:
    c = ControllerSync()
    c.track(lambda e: e.get_state("/x"))
    return per_op(writer(c, "/x"), 20_000)


def bench_marked_due() -> float:
    c = ControllerSync()
    c.track(lambda e: e.get_state("/x"), policy="deferred")
    return per_op(writer(c, "/x"), 20_000)


def bench_burst_then_one_run() -> tuple[float, int]:
    c = ControllerSync()
    runs = [0]

    def fn(e: Any) -> None:
        runs[0] += 1
        e.get_state("/x")

    c.track(fn)
    write = writer(c, "/x")

    def op() -> None:
        with c.deferring():
            for _ in range(1000):
                write()

    before = runs[0]
    seconds = per_op(op, 20)
    return seconds, (runs[0] - before) // (20 * REPEATS)


def bench_loop_refused() -> float:
    def op() -> None:
        c = ControllerSync()
        c.track(lambda e: e.set_state("/y", (e.get_state("/x") or 0) + 1))
        try:
            c.track(lambda e: e.set_state("/x", (e.get_state("/y") or 0) + 1))
        except CycleError:
            pass

    return per_op(op, 500)


def us(seconds: float) -> str:
    return f"{seconds * 1e6:10.2f} µs"


def main() -> None:
    burst, runs = bench_burst_then_one_run()
    rows = [
        ("leaf write, nothing listening", us(bench_plain())),
        ("leaf write, 1 subscriber", us(bench_subscriber())),
        ("leaf write re-running 1 tracked function", us(bench_tracked())),
        ("leaf write marking 1 deferred function due", us(bench_marked_due())),
        (f"1,000 writes in deferring(), then {runs} run", us(burst)),
        ("two functions closing a loop: register + refuse", us(bench_loop_refused())),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
