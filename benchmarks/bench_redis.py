"""Redis scale-out on loopback: fan-out to N subscriber processes, writer scaling, the cost of a
controller write against a raw HSET, and the longest server-blocking command of a
100,000-leaf read. Starts its own redis-server (stopped by pid).

Run: ``.venv/bin/python benchmarks/bench_redis.py [--quick] [--writers | --scaling | --fanout]``
(``--writers``: only the writer rows -- write cost, writer scaling, big writes; ``--scaling``:
only writer scaling; ``--fanout``: only the fan-out rows; each row shows the load average it
ran under)
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

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from restate import ControllerSync  # noqa: E402
from restate.backends.redis import RedisBackend  # noqa: E402
from restate.backends.redis.xread import HIREDIS  # noqa: E402
from tests.redis_fixture import start_redis_server  # noqa: E402

SUBSCRIBER = """
import json, sys, time
from restate import ControllerSync
from restate.backends.redis import RedisBackend
got = []
controller = ControllerSync(RedisBackend(sys.argv[1], sys.argv[2]))
def on_ping(e):
    got.append((e.new_value["i"], e.new_value["t"], time.time()))
controller.subscribe("/ping", on_ping)
cpu = time.process_time()
print("ready", flush=True)
sys.stdin.readline()
print(json.dumps({"got": got, "cpu": time.process_time() - cpu}), flush=True)
"""

WRITER = """
import json, sys, time
from restate import ControllerSync
from restate.backends.redis import RedisBackend
controller = ControllerSync(RedisBackend(sys.argv[1], sys.argv[2]))
key, seconds = sys.argv[3], float(sys.argv[4])
print("ready", flush=True)
sys.stdin.readline()
runs = 0
def bump(n):
    global runs
    runs += 1
    return n + 1
lat, end, cpu = [], time.monotonic() + seconds, time.process_time()
while time.monotonic() < end:
    t = time.perf_counter()
    controller.update(key, bump, default=0)
    lat.append(time.perf_counter() - t)
print(json.dumps({"lat": lat, "cpu": time.process_time() - cpu, "runs": runs}), flush=True)
"""


def server_cpu(url: str) -> float:
    """CPU seconds the redis-server has used (the benchmark's own server: nothing else runs)."""
    client = redis.Redis.from_url(url, decode_responses=True)
    info = client.info("cpu")
    client.close()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def spawn(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def collect(procs: list[subprocess.Popen[str]]) -> list[object]:
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    out = [json.loads(proc.stdout.readline()) for proc in procs]
    for proc in procs:
        proc.stdin.close()
        proc.wait(30)
    return out


def fan_out(url: str, n: int, writes: int, pace: float | None) -> str:
    prefix = f"fan{n}-{pace}"
    subs = [spawn(SUBSCRIBER, url, prefix) for _ in range(n)]
    for sub in subs:
        assert sub.stdout.readline().strip() == "ready"
    with RedisBackend(url, prefix) as backend:
        controller = ControllerSync(backend)
        started = time.perf_counter()
        for i in range(writes):
            controller.set_state("/ping", {"i": i, "t": time.time()})
            if pace:
                time.sleep(pace)
        wrote = time.perf_counter() - started
        time.sleep(1.0)
        controller.close()
    reports = collect(subs)
    got = [r["got"] for r in reports]  # type: ignore[index]
    sub_cpu = sum(r["cpu"] for r in reports)  # type: ignore[index]
    delays = [recv - sent for events in got for _i, sent, recv in events]
    complete = sum(1 for events in got if events and events[-1][0] == writes - 1)
    calls = sum(len(events) for events in got)
    per_core = writes * n / sub_cpu  # writes delivered per CPU-second of the subscribers
    cpu = f"subscriber CPU {sub_cpu / (writes * n) * 1e6:.0f} µs/write = {per_core:,.0f}/core-s"
    if pace:
        return (f"N={n:>2} paced 100/s: {complete}/{n} saw the last write, {calls / n:.0f} "
                f"deliveries each of {writes}; delay p50 {statistics.median(delays) * 1e3:.2f} ms "
                f"p99 {pct(delays, 0.99) * 1e3:.2f} ms; {cpu}")  # fmt: skip
    spans = [events[-1][2] - events[0][1] for events in got if events]
    rate = writes * n / max(spans)
    return (f"N={n:>2} unpaced: writer {writes / wrote:.0f} writes/s; {complete}/{n} saw the last;"
            f" {calls / n:.0f} calls each; entries consumed {rate:.0f}/s over all subscribers; "
            f"delay p99 {pct(delays, 0.99) * 1e3:.1f} ms; {cpu}")  # fmt: skip


def writers(url: str, w: int, distinct: bool, seconds: float) -> str:
    prefix = f"w{w}-{distinct}"
    procs = [spawn(WRITER, url, prefix, f"/c{i}" if distinct else "/c", str(seconds))
             for i in range(w)]  # fmt: skip
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    before = server_cpu(url)
    reports = collect(procs)
    server = server_cpu(url) - before
    lats = [r["lat"] for r in reports]  # type: ignore[index]
    cpu = sum(r["cpu"] for r in reports)  # type: ignore[index]
    total = sum(len(lat) for lat in lats)
    with RedisBackend(url, prefix) as backend:
        stored = sum((backend.read("/", {}) or {}).values())
    flat = [x for lat in lats for x in lat]
    kind = "distinct keys" if distinct else "one key"
    runs = sum(r.get("runs", total) for r in reports) / total  # type: ignore[attr-defined]
    return (
        f"W={w} {kind:<13}: {total / seconds:>6.0f} updates/s, stored total "
        f"{'exact' if stored == total else f'{stored} != {total}'}, p50 "
        f"{statistics.median(flat) * 1e3:.2f} ms p99 {pct(flat, 0.99) * 1e3:.2f} ms; CPU per "
        f"update: writers {cpu / total * 1e6:.0f} µs, server {server / total * 1e6:.0f} µs; "
        f"{total / cpu:.0f} updates per writer CPU-second, {total / (cpu + server):.0f} per "
        f"CPU-second of writers + server; fn runs per update {runs:.3f}"
    )


def cpu_per_call(url: str, call: Callable[[int], object], n: int) -> tuple[float, float]:
    """(client, server) CPU seconds per call of ``call(i)``, over ``n`` calls."""
    server, client = server_cpu(url), time.process_time()
    for i in range(n):
        call(i)
    return (time.process_time() - client) / n, (server_cpu(url) - server) / n


def write_cost(url: str, n: int, rounds: int = 11) -> str:
    """Controller write against raw HSET in CPU time (this process and the server), medians
    of interleaved rounds so that a busy machine slows both alike."""
    raw = redis.Redis.from_url(url, decode_responses=True)
    with RedisBackend(url, "cost") as backend:
        controller = ControllerSync(backend)
        controller.set_state("/leaf", -1)
        cases = {
            "hset": lambda i: raw.hset("rawbench", "leaf", str(i)),
            "write": lambda i: controller.set_state("/leaf", i),
        }
        samples: dict[str, list[tuple[float, float]]] = {k: [] for k in cases}
        for _ in range(rounds):
            for name, call in cases.items():
                samples[name].append(cpu_per_call(url, call, n // rounds))
        controller.close()
    raw.close()
    (hc, hs), (wc, ws) = (
        (statistics.median(c for c, _ in v), statistics.median(s for _, s in v))
        for v in samples.values()
    )
    return (
        f"CPU per write: controller.set_state client {wc * 1e6:.0f} + server {ws * 1e6:.0f} µs"
        f" / raw HSET client {hc * 1e6:.0f} + server {hs * 1e6:.0f} µs = "
        f"{(wc + ws) / (hc + hs):.2f}x (client {wc / hc:.2f}x, server {ws / hs:.2f}x)"
    )


def big_read(url: str, leaves: int) -> str:
    raw = redis.Redis.from_url(url, decode_responses=True)
    with RedisBackend(url, "big") as backend:
        for start in range(0, leaves, 10_000):
            backend.write(f"/d{start // 10_000}", {f"k{i}": i for i in range(10_000)})
        raw.config_set("slowlog-max-len", 10_000)
        raw.config_set("slowlog-log-slower-than", 0)
        raw.slowlog_reset()
        started = time.perf_counter()
        tree = backend.read("/")
        took = time.perf_counter() - started
        log = raw.slowlog_get(10_000)
        raw.config_set("slowlog-log-slower-than", 10_000)
    raw.close()
    assert sum(len(d) for d in tree.values()) == leaves
    top = max(log, key=lambda entry: entry["duration"])
    command = top["command"]
    name = (command.decode() if isinstance(command, bytes) else command).split()[0]
    return (
        f"read of {leaves:,} leaves: {took * 1e3:.0f} ms; longest server command "
        f"{top['duration'] / 1e3:.1f} ms ({name}; {len(log)} commands)"
    )


def big_write(url: str, leaves: int) -> str:
    """The longest server command while one write replaces, then one delete removes, a
    subtree of ``leaves`` leaves (10 directories)."""
    raw = redis.Redis.from_url(url, decode_responses=True)
    tree = {f"d{d}": {f"k{i}": i for i in range(leaves // 10)} for d in range(10)}
    out = []
    with RedisBackend(url, "bigw") as backend:
        backend.write("/t", {"old": 1})
        for name, step in (("rewrite", lambda: backend.write("/t", tree)),
                           ("delete", lambda: backend.delete("/t"))):  # fmt: skip
            raw.config_set("slowlog-log-slower-than", 0)
            raw.slowlog_reset()
            started = time.perf_counter()
            step()
            took = time.perf_counter() - started
            log = raw.slowlog_get(1000)
            raw.config_set("slowlog-log-slower-than", 10_000)
            top = max(log, key=lambda entry: entry["duration"])
            out.append(
                f"{name} {took * 1e3:.0f} ms, longest command {top['duration'] / 1e3:.1f} ms"
            )
    raw.close()
    return f"one write of {leaves:,} leaves: " + "; ".join(out)


def main() -> None:
    quick = "--quick" in sys.argv
    server = start_redis_server(Path(tempfile.mkdtemp(prefix="bench-redis-")))
    lines: list[str] = []
    try:
        url = server.url
        fanout_only = "--fanout" in sys.argv
        scaling_only = "--scaling" in sys.argv  # the writer-scaling rows alone
        if not fanout_only and not scaling_only:
            lines.append(write_cost(url, 2000 if quick else 5000))
        sizes = (
            () if "--writers" in sys.argv or scaling_only else (1, 4) if quick else (1, 4, 16, 32)
        )
        # paced rows first: an unpaced row's N busy processes linger in the load average
        for pace in (0.01, None):
            for n in sizes:
                before = load()  # (the 1-minute load average, read before the row)
                lines.append(f"{fan_out(url, n, 300 if pace else 2000, pace)}; load {before}")
        if fanout_only:
            return
        for w in (1, 4, 8):
            for distinct in (False, True):
                before = load()
                lines.append(f"{writers(url, w, distinct, 1.0 if quick else 2.0)}; load {before}")
        if scaling_only:
            return
        lines.append(big_read(url, 100_000))
        lines.append(big_write(url, 100_000))
    finally:
        server.stop()
        parser = "with hiredis" if HIREDIS else "without hiredis"
        print(f"Redis on loopback (one local redis-server; writers and subscribers are processes;"
              f" redis-py {redis.__version__} {parser})")  # fmt: skip
        for line in lines:
            print(" ", line)


def load() -> str:
    """The 1-minute load average: how much else the two cores were doing."""
    return Path("/proc/loadavg").read_text().split()[0]


if __name__ == "__main__":
    main()
