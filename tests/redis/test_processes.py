"""Several OS processes on one Redis state: notifications between them, atomic update()."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from restate import ControllerSync
from restate.backends.redis import RedisBackend

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]


LINE_DEADLINE = 60  # seconds a child may take to print its next line on a busy machine


def spawn(*args: str) -> subprocess.Popen[str]:
    """A ``tests.redis.procs`` child (tests/redis/test_leases.py kills and signals it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.redis.procs", *args],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def read_line(proc: subprocess.Popen[str], timeout: float = LINE_DEADLINE) -> dict:
    """``proc``'s next JSON line; fails when none comes within ``timeout`` seconds."""
    assert proc.stdout is not None
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if reader.is_alive():
        pytest.fail(f"child {proc.args[3:]} printed nothing for {timeout} s")
    assert box[0], f"child exited with {proc.wait(10)}"
    return json.loads(box[0])


class Child:
    """A ``tests.redis.procs`` process whose stdout lines a thread queues as they come."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.redis.procs", *args],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put("")  # end of output

    def read_line(self, timeout: float = LINE_DEADLINE) -> dict:
        """The next JSON line; fails, naming the child, when none comes within ``timeout``."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"child {self.args[0]} printed nothing for {timeout} s")
        assert line, f"child {self.args[0]} exited with {self.proc.wait(10)}"
        return json.loads(line)

    def finish(self, timeout: float = LINE_DEADLINE) -> None:
        """Close its stdin (it then exits) and wait for it, killing it after ``timeout``."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"child {self.args[0]} did not exit within {timeout} s")


def writes_seen_by_another_process(url: str, prefix: str) -> list[tuple[dict, list[float]]]:
    """Three writes here; for each, what the follower process's subscriber and tracked
    function received (by kind) and how many seconds after the write they did."""
    follower = Child("follow", url, prefix)
    seen_all = []
    try:
        first = follower.read_line()
        assert (first["kind"], first["value"]) == ("track", None)
        assert follower.read_line()["kind"] == "ready"
        with RedisBackend(url, prefix) as backend:
            controller = ControllerSync(backend)
            for i in range(3):
                sent = time.time()
                controller.set_state("/msg", {"i": i})
                lines = [follower.read_line() for _ in range(2)]
                seen = {line["kind"]: line["value"] for line in lines}
                seen_all.append((seen, [line["at"] - sent for line in lines]))
            controller.close()
    finally:
        follower.finish()
    return seen_all


def test_a_write_in_one_process_reaches_subscribers_and_tracked_functions_of_another(url, prefix):
    seen = [values for values, _ in writes_seen_by_another_process(url, prefix)]
    assert seen == [{"sub": {"i": i}, "track": {"i": i}} for i in range(3)]


@pytest.mark.perf
def test_a_write_in_one_process_reaches_another_within_100_ms(url, prefix):
    delays = [d for _, ds in writes_seen_by_another_process(url, prefix) for d in ds]
    assert max(delays) < 0.1, f"notifications took {delays} s"


def test_update_from_four_processes_loses_no_increment(url, prefix):
    procs = [Child("increment", url, prefix, "1000") for _ in range(4)]
    try:
        for proc in procs:
            assert proc.read_line(timeout=240) == {"kind": "done"}
    finally:
        for proc in procs:
            proc.finish()
    with RedisBackend(url, prefix) as backend:
        assert backend.read("/n") == 4000


def test_a_burst_fans_out_to_four_processes_each_key_delivered_exactly_once(url, prefix):
    procs = [Child("fan", url, prefix, "300") for _ in range(4)]
    try:
        for proc in procs:
            assert proc.read_line() == {"kind": "ready"}
        with RedisBackend(url, prefix) as backend:
            for i in range(300):  # unpaced: followers get bursts, merged into few calls
                backend.write(f"/m/k{i}", i)
            backend.write("/last", True)
        for proc in procs:
            assert proc.read_line() == {"kind": "seen", "keys": 300, "events": 300,
                                        "expected": 300}  # fmt: skip
    finally:
        for proc in procs:
            proc.finish()
