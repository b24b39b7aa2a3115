"""Several OS processes on one Redis state: notifications between them, atomic update()."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from restate import ControllerSync
from restate.backends.redis import RedisBackend

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.redis.procs", *args],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def read_line(proc: subprocess.Popen[str]) -> dict:
    line = proc.stdout.readline()
    assert line, f"child exited with {proc.wait()}"
    return json.loads(line)


def test_a_write_in_one_process_reaches_subscribers_and_tracked_functions_of_another_within_100_ms(
    url, prefix
):
    follower = spawn("follow", url, prefix)
    try:
        first = read_line(follower)
        assert (first["kind"], first["value"]) == ("track", None)
        assert read_line(follower)["kind"] == "ready"
        with RedisBackend(url, prefix) as backend:
            controller = ControllerSync(backend)
            for i in range(3):
                sent = time.time()
                controller.set_state("/msg", {"i": i})
                seen = {}
                for _ in range(2):
                    line = read_line(follower)
                    seen[line["kind"]] = line
                assert {k: v["value"] for k, v in seen.items()} == {
                    "sub": {"i": i},
                    "track": {"i": i},
                }
                delays = [line["at"] - sent for line in seen.values()]
                assert max(delays) < 0.1, f"notifications took {delays} s"
            controller.close()
    finally:
        follower.stdin.close()
        follower.wait(10)


def test_update_from_four_processes_loses_no_increment(url, prefix):
    procs = [spawn("increment", url, prefix, "1000") for _ in range(4)]
    try:
        for proc in procs:
            assert read_line(proc) == {"kind": "done"}
    finally:
        for proc in procs:
            proc.stdin.close()
            proc.wait(60)
    with RedisBackend(url, prefix) as backend:
        assert backend.read("/n") == 4000


def test_a_burst_fans_out_to_four_processes_each_key_delivered_exactly_once(url, prefix):
    procs = [spawn("fan", url, prefix, "300") for _ in range(4)]
    try:
        for proc in procs:
            assert read_line(proc) == {"kind": "ready"}
        with RedisBackend(url, prefix) as backend:
            for i in range(300):  # unpaced: followers get bursts, merged into few calls
                backend.write(f"/m/k{i}", i)
            backend.write("/last", True)
        for proc in procs:
            assert read_line(proc) == {"kind": "seen", "keys": 300, "events": 300,
                                       "expected": 300}  # fmt: skip
    finally:
        for proc in procs:
            proc.stdin.close()
            proc.wait(30)
