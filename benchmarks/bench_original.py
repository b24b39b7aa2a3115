"""restate now vs the original 0.11.6: a leaf write with one exact subscriber (target ≥ 25×).

The original cannot be imported on Python 3.11 (it uses 3.12's ``type X = ...`` statements),
and both are called ``restate``, so each runs in its own subprocess, on the same Python
3.12 interpreter, in interleaved rounds (original, now, original, now, ...); each round
reports CPU time per operation (``time.process_time``), and the medians are compared.

Setup (once; needs a Python 3.12)::

    python3.12 -m venv /tmp/orig && /tmp/orig/bin/pip download --no-deps restate==0.11.6 -d /tmp/w
    /tmp/orig/bin/pip install --no-deps /tmp/w/restate-0.11.6-py3-none-any.whl
    /tmp/orig/bin/pip install typing-extensions aiofiles   # its dependencies

Run: ``python benchmarks/bench_original.py --original /tmp/orig/bin/python
--python python3.12`` (``--python``: the interpreter that runs this repository's restate).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

ROUND = """
import time
from restate import ControllerSync
c = ControllerSync()
c.subscribe("/a/b", lambda e: None)
for i in range({warm}):
    c.set_state("/a/b", -i - 1)
start = time.process_time()
for i in range({number}):
    c.set_state("/a/b", i)
print((time.process_time() - start) / {number})
"""


def one_round(python: str, number: int, env: dict[str, str]) -> float:
    code = ROUND.format(number=number, warm=number // 10)
    # cwd: not the repository (``-c`` puts the working directory first on sys.path)
    out = subprocess.run(
        [python, "-c", code], env=env, capture_output=True, text=True, check=True, cwd="/"
    )
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--original", required=True, help="a python with restate 0.11.6")
    parser.add_argument("--python", default="python3.12", help="runs this repository's restate")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    ours_env = {**os.environ, "PYTHONPATH": str(REPO)}
    theirs_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    theirs, ours = [], []
    for _ in range(args.rounds):
        theirs.append(one_round(args.original, 2_000, theirs_env))
        ours.append(one_round(args.python, 50_000, ours_env))
    t, o = statistics.median(theirs), statistics.median(ours)
    print(f"leaf write + 1 subscriber: 0.11.6 {t * 1e6:.2f} µs, now {o * 1e6:.2f} µs, {t / o:.1f}×")
    check = "import restate, sys; sys.stdout.write(restate.__file__)"
    for python, env in ((args.original, theirs_env), (args.python, ours_env)):
        where = subprocess.run(
            [python, "-c", check], env=env, capture_output=True, text=True, cwd="/"
        )
        print(f"  {python}: {where.stdout}")


if __name__ == "__main__":
    main()
