"""Redis backend timings on loopback: leaf write/read, a 1,000-write batch, update(), and the
latency of a notification from one process to another. Starts its own redis-server.

Run: ``.venv/bin/python benchmarks/bench_redis.py``
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from restate import ControllerSync  # noqa: E402
from restate.backends.redis import RedisBackend  # noqa: E402
from tests.redis_fixture import start_redis_server  # noqa: E402

FOLLOWER = """
import json, sys, time
from restate import ControllerSync
from restate.backends.redis import RedisBackend
delays = []
controller = ControllerSync(RedisBackend(sys.argv[1], sys.argv[2]))
controller.subscribe("/ping", lambda e: delays.append(time.time() - e.new_value["t"]))
print("ready", flush=True)
sys.stdin.readline()
print(json.dumps(delays), flush=True)
"""


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def timed(fn: Callable[[int], object], n: int) -> list[float]:
    out = []
    for i in range(n):
        started = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - started)
    return out


def notification_delays(url: str, prefix: str, n: int) -> list[float]:
    child = subprocess.Popen(
        [sys.executable, "-c", FOLLOWER, url, prefix],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout.readline().strip() == "ready"
        with RedisBackend(url, prefix) as backend:
            controller = ControllerSync(backend)
            for i in range(n):
                controller.set_state("/ping", {"i": i, "t": time.time()})
                time.sleep(0.005)
            time.sleep(0.3)
        child.stdin.write("done\n")
        child.stdin.flush()
        return json.loads(child.stdout.readline())
    finally:
        child.stdin.close()
        child.wait(10)


def main() -> None:
    server = start_redis_server(Path(tempfile.mkdtemp(prefix="bench-redis-")))
    rows: list[tuple[str, str, str]] = []
    try:
        with RedisBackend(server.url, "bench") as backend:
            controller = ControllerSync(backend)
            backend.write("/leaf", 0)
            p50, p99 = percentiles(timed(lambda i: backend.write("/leaf", i), 3000))
            rows.append(("backend.write leaf", f"{p50 * 1e6:.0f} µs", f"{p99 * 1e6:.0f} µs"))
            p50, p99 = percentiles(timed(lambda i: backend.read("/leaf"), 3000))
            rows.append(("backend.read leaf", f"{p50 * 1e6:.0f} µs", f"{p99 * 1e6:.0f} µs"))
            p50, p99 = percentiles(timed(lambda i: controller.set_state("/leaf", -i - 1), 3000))
            rows.append(("controller.set_state leaf", f"{p50 * 1e6:.0f} µs", f"{p99 * 1e6:.0f} µs"))
            p50, p99 = percentiles(
                timed(lambda i: controller.update("/n", lambda v: v + 1, default=0), 1000)
            )
            rows.append(("controller.update (lock+read+commit)", f"{p50 * 1e6:.0f} µs",
                         f"{p99 * 1e6:.0f} µs"))  # fmt: skip

            def batch(round_: int) -> None:
                with controller.batch():
                    for i in range(1000):
                        controller.set_state(f"/batch/k{i}", round_ * 1000 + i)

            p50, p99 = percentiles(timed(batch, 10))
            rows.append(("controller.batch of 1,000 writes", f"{p50 * 1e3:.1f} ms",
                         f"{p99 * 1e3:.1f} ms"))  # fmt: skip

            def txn(round_: int) -> None:
                with backend.transaction():
                    for i in range(1000):
                        backend.write(f"/txn/k{i}", round_ * 1000 + i)

            p50, p99 = percentiles(timed(txn, 10))
            rows.append(("backend.transaction of 1,000 writes", f"{p50 * 1e3:.1f} ms",
                         f"{p99 * 1e3:.1f} ms"))  # fmt: skip
            controller.close()
        p50, p99 = percentiles(notification_delays(server.url, "bench-notify", 300))
        rows.append(("notification A.set_state -> B subscriber", f"{p50 * 1e3:.2f} ms",
                     f"{p99 * 1e3:.2f} ms"))  # fmt: skip
    finally:
        server.stop()
    width = max(len(r[0]) for r in rows)
    print(f"{'Redis on loopback (redis-server ' + server.dir.name + ')':<{width}}")
    print(f"{'operation':<{width}}  {'p50':>10}  {'p99':>10}")
    for name, p50_text, p99_text in rows:
        print(f"{name:<{width}}  {p50_text:>10}  {p99_text:>10}")


if __name__ == "__main__":
    main()
