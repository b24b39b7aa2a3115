"""Two versions of restate side by side: the writes that tracked functions and subscribers
hear, in CPU time, interleaved.

Run: ``.venv/bin/python benchmarks/bench_checkouts.py BEFORE AFTER [ROUNDS]``, where BEFORE
and AFTER are directories holding a ``restate/`` package, e.g. exported with
``git archive REV restate | tar -x -C DIR``. Each round runs each side in its own
subprocess (the order alternating between rounds), which imports that side's ``restate``
and times every row with ``time.process_time`` (the minimum of 5 repeats, per write); the
table shows the medians over the rounds, their ratio (after ÷ before) and the load average
at the start of each round (a shared machine: compare ratios, not times).

Rows: a leaf write that re-runs one tracked function reading the path, one that also
writes another path, the same with ``ControllerAsync``; a write with one plain subscriber,
with nobody listening, and with a ``*`` subscriber (the planner's path).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import asyncio, json, sys, time
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path.insert(0, ROOT)
import restate
assert restate.__file__.startswith(ROOT), restate.__file__
from restate import ControllerAsync, ControllerSync

def per_write(c, path, n):
    best, count = float("inf"), 0
    for _ in range(5):
        start = time.process_time()
        for _ in range(n):
            count += 1
            c.set_state(path, count)
        best = min(best, (time.process_time() - start) / n)
    return best

def made(*register):
    c = ControllerSync()
    for step in register:
        step(c)
    return c

async def async_tracked():
    c = ControllerAsync()
    async def fn(e):
        await e.get_state("/x")
    await c.track(fn)
    best, count = float("inf"), 0
    for _ in range(5):
        start = time.process_time()
        for _ in range(2000):
            count += 1
            await c.set_state("/x", count)
        best = min(best, (time.process_time() - start) / 2000)
    return best

out = {
    "write re-running 1 tracked function": per_write(
        made(lambda c: c.track(lambda e: e.get_state("/x"))), "/x", 3000),
    "the same, the function writing /y": per_write(
        made(lambda c: c.track(lambda e: e.set_state("/y", e.get_state("/x")))), "/x", 3000),
    "the same on ControllerAsync": asyncio.run(async_tracked()),
    "write, 1 subscriber": per_write(
        made(lambda c: c.subscribe("/x", lambda e: None)), "/x", 20000),
    "write nobody hears": per_write(made(), "/x", 20000),
    "write, 1 * subscriber (planner)": per_write(
        made(lambda c: c.subscribe("/*", lambda e: None)), "/x", 5000),
}
print(json.dumps(out))
"""


def run_side(root: Path) -> dict[str, float]:
    code = CHILD.replace("ROOT", repr(str(root.resolve())))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{root}: {done.stderr.strip()}")
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    before, after = Path(sys.argv[1]), Path(sys.argv[2])
    for root in (before, after):
        if not (root / "restate" / "__init__.py").is_file():
            raise SystemExit(f"{root} holds no restate/ package (see the docstring)")
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    times: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    loads = []
    for index in range(rounds):
        loads.append(Path("/proc/loadavg").read_text().split()[0])
        sides = [("before", before), ("after", after)]
        for name, root in sides if index % 2 == 0 else sides[::-1]:
            times[name].append(run_side(root))
    width = max(len(row) for row in times["before"][0])
    print(f"{'':<{width}}  {'before':>10}  {'after':>10}  ratio")
    for row in times["before"][0]:
        b = statistics.median(t[row] for t in times["before"])
        a = statistics.median(t[row] for t in times["after"])
        print(f"{row:<{width}}  {b * 1e6:7.2f} µs  {a * 1e6:7.2f} µs  {a / b:5.2f}")
    print("load average (1 min) at each round:", " ".join(loads))


if __name__ == "__main__":
    main()
