"""Writers waiting for one lease take turns: first come, first served, woken by the release,
and a waiter that dies in line holds nobody back for long."""

from __future__ import annotations

import signal
import threading
import time

import pytest
import redis

from restate import ControllerSync
from restate.backends.redis import RedisBackend
from restate.errors import BackendError
from tests.children import RedisProcs as spawn

pytestmark = pytest.mark.redis


def in_line(raw: redis.Redis, prefix: str, path: str) -> int:
    return int(raw.zcard(f"{{{prefix}}}:q:{path}"))


def wait_for(condition, what: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {seconds} s")
        time.sleep(0.005)


def test_writers_waiting_for_one_key_get_it_in_the_order_they_came(url, prefix, backend, raw):
    backend.write("/log", [])
    stores = [RedisBackend(url, prefix) for _ in range(4)]
    failures: list[BaseException] = []

    def append(store: RedisBackend, me: int) -> None:
        try:
            ControllerSync(store).update("/log", lambda log: [*log, me])
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = []
    with backend.transaction():
        backend.read("/log")  # holds the key's lease
        for me, store in enumerate(stores):
            threads.append(threading.Thread(target=append, args=(store, me)))
            threads[-1].start()
            wait_for(lambda n=me: in_line(raw, prefix, "/log") == n + 1, f"waiter {me} in line")
    for thread in threads:
        thread.join(20)
    for store in stores:
        store.close()
    assert not failures
    assert backend.read("/log") == [0, 1, 2, 3]
    assert in_line(raw, prefix, "/log") == 0


def test_a_newcomer_does_not_go_ahead_of_writers_already_waiting(url, prefix, backend, raw):
    backend.write("/log", [])
    lease = backend._scripts["lease"]
    keys = [f"{{{prefix}}}:changes"]
    start = f"{time.time():.6f}"

    def ask(waited: str) -> list:  # a waiter driven by hand: it asks only when told to
        return lease(keys=keys, args=["slow", "1000", start, "1", waited, "none", "/log"])

    with RedisBackend(url, prefix) as newcomer:
        with backend.transaction():
            backend.read("/log")
            assert ask("")[0] == "busy"  # first in line
            backend.write("/log", ["holder"])
        # the lease is free, but "slow" is first in line and has not asked again yet
        late = threading.Thread(
            target=lambda: ControllerSync(newcomer).update("/log", lambda v: [*v, "newcomer"])
        )
        late.start()
        wait_for(lambda: in_line(raw, prefix, "/log") == 2, "the newcomer in line")
        assert ask("/log") == ["ok"]  # its turn: it takes the lease and leaves the line
        assert backend.read("/log") == ["holder"]  # the newcomer still waits
        backend._scripts["release"](keys=keys, args=["slow"])  # wakes the newcomer
        late.join(10)
    assert backend.read("/log") == ["holder", "newcomer"]
    assert in_line(raw, prefix, "/log") == 0


def test_a_waiter_killed_in_line_loses_its_place_and_the_next_one_gets_the_key(
    url, prefix, backend, raw
):
    backend.write("/n", 0)
    child = spawn("increment", url, prefix, "1")
    second = RedisBackend(url, prefix, lock_wait=3.0)
    outcome: list[object] = []

    def add_one() -> None:
        try:
            ControllerSync(second).update("/n", lambda n: n + 1)
            outcome.append("done")
        except BackendError as exc:  # waited 3 s: the dead child's place never lapsed
            outcome.append(exc)

    behind = threading.Thread(target=add_one)
    try:
        with backend.transaction():
            backend.read("/n")
            wait_for(lambda: in_line(raw, prefix, "/n") == 1, "the child in line")
            child.send_signal(signal.SIGKILL)
            child.wait(10)
            behind.start()
            wait_for(lambda: in_line(raw, prefix, "/n") == 2, "the second one in line")
            backend.write("/n", 10)
        behind.join(10)
        assert outcome == ["done"]
        assert backend.read("/n") == 11
    finally:
        second.close()
        if child.poll() is None:
            child.kill()
            child.wait(10)


def test_a_plain_write_held_back_by_a_lease_is_woken_by_its_release(url, prefix, backend, raw):
    written = threading.Event()
    with RedisBackend(url, prefix) as other:
        with backend.transaction():
            backend.read("/k")
            writer = threading.Thread(target=lambda: (other.write("/k", 2), written.set()))
            writer.start()
            wait_for(lambda: in_line(raw, prefix, "/k") == 1, "the plain write in line")
            backend.write("/k", 1)
        assert written.wait(10)
        writer.join(10)
    assert backend.read("/k") == 2
    assert in_line(raw, prefix, "/k") == 0  # it left the line when it wrote


def test_a_transaction_that_gives_up_waiting_leaves_the_key_to_the_others(url, prefix, backend):
    with RedisBackend(url, prefix, lock_wait=0.2) as impatient, backend.transaction():
        backend.read("/k")
        with pytest.raises(BackendError, match="waited"), impatient.transaction():
            impatient.read("/k")
        backend.write("/k", 1)
    with RedisBackend(url, prefix, lock_wait=3.0) as later:
        ControllerSync(later).update("/k", lambda n: n + 1)
    assert backend.read("/k") == 2
