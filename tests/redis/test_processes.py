"""Several OS processes on one Redis state: notifications between them, atomic update()."""

from __future__ import annotations

import time

import pytest

from restate import ControllerSync
from restate.backends.redis import RedisBackend
from tests.children import RedisProcs as Child

pytestmark = pytest.mark.redis


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
