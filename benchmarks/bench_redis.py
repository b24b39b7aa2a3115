"""Redis scale-out on loopback: fan-out to N subscriber processes, writer scaling, the cost of a
controller write against a raw HSET, and the longest server-blocking command of a
100,000-leaf read. Starts its own redis-server (stopped by pid).

Run: ``.venv/bin/python benchmarks/bench_redis.py [--quick] [--writers | --scaling | --fanout]``
(``--writers``: only the writer rows -- write cost, writer scaling, big writes; ``--scaling``:
only writer scaling; ``--fanout``: only the fan-out rows; ``--wakeup``: one subscriber
wake-up taken apart; each row shows the load average it ran under, the fan-out rows also the
cores other work used meanwhile)
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

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from restate import ControllerSync  # noqa: E402
from restate.backends.redis import RedisBackend  # noqa: E402
from restate.backends.redis.xread import HIREDIS  # noqa: E402
from tests.redis_fixture import start_redis_server  # noqa: E402

# A subscriber process as a kernel or service is one: its main thread blocks (here in
# ``readline``, in a kernel in its zmq poll) and holds no GIL, so the follower thread wakes on
# each write without waiting for it. The handler notes the moment it is called first (the
# delivery), then reads the value once. Both sides use CLOCK_MONOTONIC (one clock for every
# process on the machine); the writer's stamp is taken before its ``set_state``, so a delay
# includes the write's own round trip.
SUBSCRIBER = """
import json, sys, time
from restate import ControllerSync
from restate.backends.redis import RedisBackend
got = []
controller = ControllerSync(RedisBackend(sys.argv[1], sys.argv[2]))
def on_ping(e):
    now = time.monotonic()
    value = e.new_value
    got.append((value["i"], value["t"], now))
controller.subscribe("/ping", on_ping)
cpu = time.process_time()
print("ready", flush=True)
sys.stdin.readline()
print(json.dumps({"got": got, "cpu": time.process_time() - cpu}), flush=True)
"""
# One subscriber wake-up taken apart (``--wakeup``): processes that each do part of what a
# subscriber does run side by side on the same paced writes, and the differences of their CPU
# per write are what each part costs. "bare" is a Python thread doing only the follower's
# socket work (a pre-packed XREAD, recv, hiredis); "json" adds the entry's decoding;
# "watch" is RedisBackend.watch() with a handler that counts; "subscribe: no-op" a
# controller with one subscription that does nothing; "subscribe" the fan-out rows' handler.
WAKE = """
import json, socket, sys, threading, time
import hiredis, redis
from restate import ControllerSync
from restate.backends.redis import RedisBackend
from restate.backends.redis.codec import _scan
part, url, prefix = sys.argv[1:4]
count = [0]
if part in ("bare", "json"):
    stream = "{%s}:changes" % prefix
    raw = redis.Redis.from_url(url, decode_responses=True)
    last = [(raw.xrevrange(stream, count=1) or [("0-0", 0)])[0][0]]
    sock = socket.create_connection((url.split(":")[1][2:], int(url.split(":")[2][:-2])))
    head = b"".join(b"$%d\\r\\n%b\\r\\n" % (len(w), w) for w in (
        b"XREAD", b"COUNT", b"1000", b"BLOCK", b"2000", b"STREAMS", stream.encode()))
    def loop():
        reader, buffer = hiredis.Reader(encoding="utf-8"), bytearray(65536)
        while True:
            entry = last[0].encode()
            sock.sendall(b"*8\\r\\n" + head + b"$%d\\r\\n%b\\r\\n" % (len(entry), entry))
            reply = False
            while reply is False:
                reader.feed(buffer, 0, sock.recv_into(buffer))
                reply = reader.gets()
            for entry_id, fields in reply[0][1]:
                last[0] = entry_id
                if part == "json":
                    _scan(fields[5], 0)
                count[0] += 1
    threading.Thread(target=loop, daemon=True).start()
elif part == "watch":
    backend = RedisBackend(url, prefix)
    backend.watch(lambda changes: count.__setitem__(0, count[0] + 1))
else:
    controller = ControllerSync(RedisBackend(url, prefix))
    got = []
    def on_ping(e):
        now = time.monotonic()
        value = e.new_value
        got.append((value["i"], value["t"], now))
    controller.subscribe("/ping", on_ping if part == "subscribe" else lambda e: None)
cpu = time.process_time()
print("ready", flush=True)
sys.stdin.readline()
print(json.dumps({"cpu": time.process_time() - cpu}), flush=True)
"""
WAKE_PARTS = ("bare", "json", "watch", "subscribe: no-op", "subscribe")

WARMUP = 20  # first writes of a row: delivered and counted, their delays left out (cold code)

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
        server, started = server_cpu(url), time.perf_counter()
        machine, mine = machine_busy(), time.process_time()
        due = time.monotonic()
        for i in range(writes):
            controller.set_state("/ping", {"i": i, "t": time.monotonic()})
            if pace:  # on a fixed schedule: a slow write does not stretch the period
                due += pace
                time.sleep(max(0.0, due - time.monotonic()))
        wrote = time.perf_counter() - started
        time.sleep(1.0)
        server = server_cpu(url) - server
        mine = time.process_time() - mine
        busy, wall = (now - then for now, then in zip(machine_busy(), machine, strict=True))
        controller.close()
    reports = collect(subs)
    got = [r["got"] for r in reports]  # type: ignore[index]
    sub_cpu = sum(r["cpu"] for r in reports)  # type: ignore[index]
    delays = [recv - sent for events in got for i, sent, recv in events if i >= WARMUP]
    complete = sum(1 for events in got if events and events[-1][0] == writes - 1)
    calls = sum(len(events) for events in got)
    per_core = writes * n / sub_cpu  # writes delivered per CPU-second of the subscribers
    others = max(0.0, busy - sub_cpu - server - mine) / wall  # cores busy with other work
    cpu = (f"CPU per write: subscriber {sub_cpu / (writes * n) * 1e6:.0f} µs = "
           f"{per_core:,.0f}/core-s, server {server / writes * 1e6:.0f} µs; other work "
           f"{others:.2f} of {CORES} cores")  # fmt: skip
    if pace:
        last = last_delays(got, writes)  # per write: when its last subscriber heard it
        return (f"N={n:>2} paced 100/s: {complete}/{n} saw the last write, {calls / n:.0f} "
                f"deliveries each of {writes}; delay p50 {statistics.median(delays) * 1e3:.2f} ms "
                f"p99 {pct(delays, 0.99) * 1e3:.2f} ms, last subscriber's p50 "
                f"{statistics.median(last) * 1e3:.2f} ms p99 {pct(last, 0.99) * 1e3:.2f} ms; "
                f"{cpu}")  # fmt: skip
    spans = [events[-1][2] - events[0][1] for events in got if events]
    rate = writes * n / max(spans)
    return (f"N={n:>2} unpaced: writer {writes / wrote:.0f} writes/s; {complete}/{n} saw the last;"
            f" {calls / n:.0f} calls each; entries consumed {rate:.0f}/s over all subscribers; "
            f"delay p99 {pct(delays, 0.99) * 1e3:.1f} ms; {cpu}")  # fmt: skip


CORES = os.cpu_count() or 1


def machine_busy() -> tuple[float, float]:
    """(CPU seconds every process on the machine has used, seconds of wall time), from
    /proc/stat: with this benchmark's own CPU subtracted, what other work took of the cores
    while a row ran (a load average lags by a minute and counts sleeping I/O)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / tick, time.monotonic()


def last_delays(got: list[list[list[float]]], writes: int) -> list[float]:
    """Per write after the warm-up, the delay of the subscriber that heard it last."""
    last: dict[int, float] = {}
    for events in got:
        for i, sent, recv in events:
            if i >= WARMUP:
                last[i] = max(last.get(i, 0.0), recv - sent)
    return list(last.values())


def wake_up(url: str, copies: int, writes: int) -> list[str]:
    """CPU per write of each part of a subscriber (``WAKE``), ``copies`` processes of each
    side by side; medians."""
    prefix = "wake"
    with RedisBackend(url, prefix) as backend:
        controller = ControllerSync(backend)
        controller.set_state("/ping", {"i": -1, "t": 0.0})
        procs = [
            (part, spawn(WAKE, part, url, prefix)) for _ in range(copies) for part in WAKE_PARTS
        ]
        for _part, proc in procs:
            assert proc.stdout.readline().strip() == "ready"
        before = load()
        due = time.monotonic()
        for i in range(writes):
            controller.set_state("/ping", {"i": i, "t": time.monotonic()})
            due += 0.01
            time.sleep(max(0.0, due - time.monotonic()))
        time.sleep(0.5)
        controller.close()
    reports = collect([proc for _part, proc in procs])
    cpu: dict[str, list[float]] = {}
    for (part, _proc), report in zip(procs, reports, strict=True):
        cpu.setdefault(part, []).append(report["cpu"] / writes * 1e6)  # type: ignore[index]
    out, floor = [], None
    for part in WAKE_PARTS:
        median = statistics.median(cpu[part])
        extra = "" if floor is None else f" (+{median - floor:.0f})"
        floor = median
        out.append(f"wake-up, {part}: {median:.0f} µs per write{extra}; load {before}")
    return out


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
        if "--wakeup" in sys.argv:
            lines += wake_up(url, 3, 300 if quick else 1000)
            return
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
