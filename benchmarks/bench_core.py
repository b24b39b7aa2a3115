"""Core engine timings, side by side with the floor, psygnal and reaktiv (issue 3, issue 4).

Run: ``.venv/bin/python benchmarks/bench_core.py`` (``--quick`` for fewer repeats). Prints a
table: the median of several repeats per operation, and the ratio to the reference that the
target names. Numbers are per operation, on whatever machine runs it; compare ratios.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import bench_scale  # beside this file (the script's directory is on sys.path)
import bench_targets
from _cli import options

from restate import ControllerAsync, ControllerSync

REPEATS = 3 if options(__doc__, {"quick": "fewer repeats"}).quick else 7


def per_op(fn: Callable[[], Any], number: int) -> float:
    """Median seconds per call of ``fn`` over REPEATS runs of ``number`` calls."""
    runs = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter() - start) / number)
    return statistics.median(runs)


def per_op_async(make: Callable[[], Any], number: int) -> float:
    async def loop() -> float:
        runs = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            for _ in range(number):
                await make()
            runs.append((time.perf_counter() - start) / number)
        return statistics.median(runs)

    return asyncio.run(loop())


def bench_floor() -> float:
    store: dict[str, int] = {}
    seen = []
    cb = seen.append
    i = [0]

    def op() -> None:
        i[0] += 1
        store["a"] = i[0]
        cb(i[0])
        seen.clear()

    return per_op(op, 200_000)


def bench_psygnal() -> float:
    from psygnal import Signal

    class Emitter:
        changed = Signal(int)

    e = Emitter()
    store: dict[str, int] = {}
    e.changed.connect(lambda v: None)
    i = [0]

    def op() -> None:
        i[0] += 1
        store["a"] = i[0]
        e.changed.emit(i[0])

    return per_op(op, 100_000)


def bench_reaktiv() -> float:
    from reaktiv import Effect, Signal

    s = Signal(0)
    effect = Effect(lambda: s())  # kept alive: the effect runs on every set
    i = [0]

    def op() -> None:
        i[0] += 1
        s.set(i[0])

    result = per_op(op, 50_000)
    del effect
    return result


def counter_writer(c: ControllerSync, path: str) -> Callable[[], None]:
    i = [0]

    def op() -> None:
        i[0] += 1
        c.set_state(path, i[0])

    return op


def bench_write_one_subscriber() -> float:
    c = ControllerSync()
    c.subscribe("/a/b", lambda e: None)
    return per_op(counter_writer(c, "/a/b"), 50_000)


def bench_write_no_subscriber() -> float:
    c = ControllerSync()
    return per_op(counter_writer(c, "/a/b"), 50_000)


def bench_read_leaf() -> float:
    c = ControllerSync()
    c.set_state("/a/b", 1)
    return per_op(lambda: c.get_state("/a/b"), 200_000)


def bench_depth6_every_ancestor() -> float:
    c = ControllerSync()
    path = "/l1/l2/l3/l4/l5/l6"
    parts = path.strip("/").split("/")
    for d in range(len(parts) + 1):
        c.subscribe("/" + "/".join(parts[:d]), lambda e: None)
    return per_op(counter_writer(c, path), 20_000)


def bench_many_subscriptions() -> float:
    c = ControllerSync()
    for i in range(10_000):
        c.subscribe(f"/items/{i}/value", lambda e: None)
    for i in range(200):
        c.subscribe(f"/groups/{i}/*/value", lambda e: None)
    c.subscribe("/a/b", lambda e: None)
    return per_op(counter_writer(c, "/a/b"), 50_000)


def bench_diamond() -> tuple[float, int]:
    c = ControllerSync()
    c.set_state("/a", 0)
    c.derive("/b", "/a", lambda a: a + 1)
    c.derive("/c", "/a", lambda a: a * 2)
    recomputes = [0]

    def join(data: Any) -> int:
        recomputes[0] += 1
        return data.b + data.c

    c.derive_many("/d", ["/b", "/c"], join)
    recomputes[0] = 0
    c.set_state("/a", -1)
    once = recomputes[0]
    return per_op(counter_writer(c, "/a"), 10_000), once


def bench_chain50() -> float:
    c = ControllerSync()
    c.set_state("/n0", 0)
    for i in range(50):
        c.derive(f"/n{i + 1}", f"/n{i}", lambda v: v + 1)
    return per_op(counter_writer(c, "/n0"), 1_000)


def bench_read_10k_tree() -> float:
    c = ControllerSync()
    c.set_state("/", {f"g{i}": {f"k{j}": j for j in range(100)} for i in range(100)})
    return per_op(lambda: c.get_state("/"), 100)


def bench_batch_1000() -> float:
    c = ControllerSync()
    c.subscribe("/batch", lambda e: None)

    def op() -> None:
        with c.batch():
            for i in range(1000):
                c.set_state(f"/batch/k{i}", i)
        c.del_state("/batch")

    return per_op(op, 20)


def bench_async_write_one_subscriber() -> float:
    c = ControllerAsync()
    c.subscribe("/a/b", lambda e: None)
    i = [0]

    def make() -> Any:
        i[0] += 1
        return c.set_state("/a/b", i[0])

    return per_op_async(make, 20_000)


def us(seconds: float) -> str:
    return f"{seconds * 1e6:9.2f} µs"


def main() -> None:
    floor, psy, rea = bench_floor(), bench_psygnal(), bench_reaktiv()
    one = bench_write_one_subscriber()
    diamond, recomputes = bench_diamond()
    rows = [
        ("floor: dict write + direct call", floor, None, ""),
        ("psygnal: dict write + Signal.emit (1 slot)", psy, None, ""),
        ("reaktiv: Signal.set + 1 Effect", rea, None, ""),
        ("restate: leaf write, 1 exact subscriber", one, psy, "≤ 1.0× psygnal"),
        ("restate: leaf write, no subscriber", bench_write_no_subscriber(), None, "≤ 1 µs"),
        ("restate: leaf read", bench_read_leaf(), None, "≤ 0.3 µs"),
        (
            "restate: depth-6 write, subscriber at every ancestor",
            bench_depth6_every_ancestor(),
            None,
            "≤ 4 µs",
        ),
        (
            "restate: write among 10,000 exact + 200 wildcard subs",
            bench_many_subscriptions(),
            one,
            "≤ 1.5× 1-subscriber write",
        ),
        (f"restate: diamond write ({recomputes} recompute of d)", diamond, None, "≤ 20 µs"),
        ("restate: chain of 50 derivations, one write", bench_chain50(), None, "≤ 150 µs"),
        ("restate: read a 10,000-leaf tree (copy)", bench_read_10k_tree(), None, "≤ 3 ms"),
        ("restate: batch of 1,000 new keys + delete", bench_batch_1000(), None, ""),
        (
            "restate async: leaf write, 1 subscriber",
            bench_async_write_one_subscriber(),
            one,
            "≤ 2× sync write",
        ),
    ]
    print(f"{'operation':58} {'time':>12}  {'ratio':>8}  target")
    for name, t, ref, target in rows:
        ratio = f"{t / ref:7.2f}×" if ref else ""
        print(f"{name:58} {us(t)}  {ratio:>8}  {target}")
    print()
    bench_scale.main()  # registration at scale, unheard writes, isolation (side by side)
    print()
    bench_targets.main()  # issue 15's targets: CPU-time ratios, interleaved rounds


if __name__ == "__main__":
    main()
