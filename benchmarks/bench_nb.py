"""Overhead of re-running a trivial tracked cell, its body excluded (target: <= 2 ms).

Run: ``.venv/bin/python benchmarks/bench_nb.py [--runs N]``. Measures in an in-process
IPython shell and inside a real ipykernel (where every output change is a comm message
on a real zmq socket), and prints a table:

* ``cell.run``: one re-run (capture, execute, publish to the Output widget) minus the body;
* ``write -> re-run``: ``controller.set_state`` from another thread with one tracked cell
  reading the path, minus the same write with nothing tracked, minus the body;
* ``cell write -> deferred re-run`` (in-process only): a cell execution that writes the path,
  minus the same cell with nothing tracked, minus the body (the re-run is queued and done
  after the cell, with untrack + track).

Two bodies: ``silent`` (reads the path, shows nothing: no widget message) and ``print``
(prints the value and a counter, so each run changes the Output widget and sends a comm
message). Body
times are measured alone, with stdout going to a StringIO.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BODIES = {"silent": 'x = state["/a"]', "print": 'tick += 1\nprint(state["/a"], tick)'}
TARGET_MS = 2.0
HERE = Path(__file__).resolve()


def _per_call(fn: Callable[[], Any], runs: int) -> float:
    """Median seconds per call over 5 repeats of ``runs`` calls."""
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(runs):
            fn()
        samples.append((time.perf_counter() - start) / runs)
    return statistics.median(samples)


def _in_thread(fn: Callable[[], Any]) -> Any:
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(fn()))
    worker.start()
    worker.join()
    return result[0]


def measure(shell: Any, runs: int, deferred: bool) -> dict[str, float]:
    """Overheads in ms for each body, measured in ``shell`` (the extension gets loaded)."""
    import restate_nb

    shell.run_cell("%load_ext restate_nb")
    session = restate_nb._sessions[id(shell)]
    controller = restate_nb.get_controller()
    counter = iter(range(10**9))
    controller.set_state("/a", 0)
    shell.user_ns["tick"] = 0
    results: dict[str, float] = {}
    for name, source in BODIES.items():
        with contextlib.redirect_stdout(io.StringIO()):
            cell = session.cells.track(source)
        body = _body_time(shell, cell, runs)

        def write() -> None:
            controller.set_state("/a", next(counter))

        results[f"cell.run [{name}]"] = _per_call(cell.run, runs) - body
        tracked = _in_thread(lambda: _per_call(write, runs))
        session.cells.untrack(cell)
        bare = _in_thread(lambda: _per_call(write, runs))
        results[f"write -> re-run [{name}]"] = tracked - bare - body
        if deferred:
            results[f"cell write -> deferred re-run [{name}]"] = _deferred(
                shell, session, source, runs, body
            )
    session.cells.untrack_all()
    return {k: v * 1000 for k, v in results.items()}


def _body_time(shell: Any, cell: Any, runs: int) -> float:
    g, ns = shell.user_global_ns, shell.user_ns
    code = cell.body.statements

    def body() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(code, g, ns)

    return _per_call(body, runs)


def _deferred(shell: Any, session: Any, source: str, runs: int, body: float) -> float:
    writer = 'state["/a"] = state["/a"] + 1'
    bare = _per_call(lambda: shell.run_cell(writer), runs)
    with contextlib.redirect_stdout(io.StringIO()):
        cell = session.cells.track(source)
    tracked = _per_call(lambda: shell.run_cell(writer), runs)
    session.cells.untrack(cell)
    return tracked - bare - body


def in_process(runs: int) -> dict[str, float]:
    from IPython.core.interactiveshell import InteractiveShell

    return measure(InteractiveShell.instance(), runs, deferred=True)


def in_kernel(runs: int) -> dict[str, float]:
    """Run ``measure`` inside a real ipykernel started from this interpreter."""
    from jupyter_client.manager import start_new_kernel

    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "kernels" / "bench"
        spec.mkdir(parents=True)
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        env = {"PYTHONPATH": str(HERE.parents[1])}
        kernel = {"argv": argv, "env": env, "language": "python", "display_name": "bench"}
        (spec / "kernel.json").write_text(json.dumps(kernel))
        os.environ["JUPYTER_PATH"] = tmp
        km, kc = start_new_kernel(kernel_name="bench")
        try:
            code = (
                f"import runpy, json; bench = runpy.run_path({str(HERE)!r})\n"
                f"print(json.dumps(bench['measure'](get_ipython(), {runs}, False)))"
            )
            return json.loads(_execute(kc, code))
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)


def _execute(kc: Any, code: str) -> str:
    msg_id = kc.execute(code)
    text = []
    while True:
        msg = kc.get_iopub_msg(timeout=300)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
            text.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            raise RuntimeError("\n".join(msg["content"]["traceback"]))
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return "".join(text).strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    rows = [("in-process shell", k, v) for k, v in in_process(args.runs).items()]
    rows += [("real ipykernel", k, v) for k, v in in_kernel(args.runs).items()]
    width = max(len(r[1]) for r in rows)
    print(f"{'where':<18} {'measure (body excluded)':<{width}}  {'ms':>7}  target <= {TARGET_MS}")
    for where, what, ms in rows:
        verdict = "ok" if ms <= TARGET_MS else "OVER"
        print(f"{where:<18} {what:<{width}}  {ms:7.3f}  {verdict}")


if __name__ == "__main__":
    main()
