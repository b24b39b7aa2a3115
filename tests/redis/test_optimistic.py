"""update() of a leaf on Redis is optimistic: a read without a lease, the function, a commit
that applies only if the value read is unchanged. On a conflict the function runs again, once,
under a lease (in turn); one change is written and delivered per update."""

from __future__ import annotations

import asyncio
import signal
import threading
from typing import Any

import pytest
import redis

from restate import ControllerAsync, ControllerSync
from restate.backends.redis import RedisAsyncBackend, RedisBackend
from restate.errors import StaleReadError
from tests.children import RedisProcs as spawn
from tests.children import read_line

pytestmark = pytest.mark.redis


def leases(raw: redis.Redis, prefix: str) -> dict[str, str]:
    return raw.hgetall(f"{{{prefix}}}:leases")


def lease_keys(raw: redis.Redis, prefix: str) -> list[str]:
    return list(raw.scan_iter(match=f"{{{prefix}}}:lease:*", count=1000))


def entries(raw: redis.Redis, prefix: str) -> int:
    return int(raw.xlen(f"{{{prefix}}}:changes"))


def test_an_uncontended_update_of_a_leaf_reads_and_commits_without_taking_a_lease(
    backend, raw, prefix
):
    controller = ControllerSync(backend)
    controller.set_state("/n", 1)
    held: list[dict[str, str]] = []

    def bump(n: int) -> int:
        held.append(leases(raw, prefix))  # while fn runs, between the read and the commit
        return n + 1

    assert controller.update("/n", bump) == 2
    assert held == [{}]
    assert backend.read("/n") == 2 and not lease_keys(raw, prefix)
    assert not backend._renewer  # no lease, so no renewer thread either
    controller.close()


def test_a_write_between_the_read_and_the_commit_reruns_fn_with_the_new_value(
    backend, other, raw, prefix
):
    controller = ControllerSync(backend)
    controller.set_state("/n", 0)
    seen: list[Any] = []
    heard: list[tuple[Any, Any]] = []
    computed: list[Any] = []
    controller.subscribe("/n", lambda e: heard.append((e.prev_value, e.new_value)))
    controller.derive("/double", "/n", lambda n: computed.append(n) or n * 2)

    def bump(n: int) -> int:
        seen.append(n)
        if len(seen) == 1:
            other.write("/n", 10)  # another client wins the race
        return n + 1

    before = entries(raw, prefix)
    assert controller.update("/n", bump) == 11
    assert seen == [0, 10]  # run again with what the other client wrote
    assert backend.read("/n") == 11 and backend.read("/double") == 22
    assert entries(raw, prefix) - before == 3  # other's write, the commit, /double: never /n = 1
    assert (0, 1) not in heard and heard.count((10, 11)) == 1
    assert 1 not in computed  # no derivation saw the attempt that did not commit
    controller.close()


def test_after_one_conflict_fn_runs_under_a_lease_so_it_cannot_conflict_again(
    backend, other, raw, prefix
):
    controller = ControllerSync(backend)
    controller.set_state("/n", 0)
    held: list[dict[str, str]] = []
    racer: list[threading.Thread] = []

    def bump(n: int) -> int:
        held.append(leases(raw, prefix))
        if len(held) == 1:
            other.write("/n", 10)
        elif len(held) == 2:  # a plain write now waits in line for the update's lease
            racer.append(threading.Thread(target=other.write, args=("/n", 100)))
            racer[0].start()
        return n + 1

    assert controller.update("/n", bump) == 11
    racer[0].join(10)
    assert [list(h) for h in held] == [[], ["/n"]]
    assert backend.read("/n") == 100  # the racing write came after the commit, nothing lost
    assert not lease_keys(raw, prefix)
    controller.close()


def test_a_value_leased_by_another_transaction_is_waited_for_in_turn_not_read_around(
    url, prefix, backend, raw
):
    backend.write("/n", 0)
    calls: list[int] = []
    done = threading.Event()

    def run(store: RedisBackend) -> None:
        ControllerSync(store).update("/n", lambda n: calls.append(n) or n + 1)
        done.set()

    with RedisBackend(url, prefix) as waiter:
        worker = threading.Thread(target=run, args=(waiter,))
        with backend.transaction():
            backend.read("/n")  # leased
            worker.start()
            deadline = threading.Event()
            for _ in range(1000):  # until the update is in line for /n
                if raw.zcard(f"{{{prefix}}}:q:/n"):
                    break
                deadline.wait(0.01)
            assert raw.zcard(f"{{{prefix}}}:q:/n") == 1, "the update did not wait in line"
            backend.write("/n", 5)
        worker.join(10)
    assert done.is_set() and calls == [5]  # fn ran once, after the holder's commit
    assert backend.read("/n") == 6


def test_a_directory_a_missing_node_or_a_big_leaf_is_updated_under_a_lease(backend, raw, prefix):
    controller = ControllerSync(backend)
    controller.set_state("/d", {"x": 1})
    controller.set_state("/big", "x" * 5000)
    held: list[list[str]] = []

    def grow(value: Any) -> Any:
        held.append(list(leases(raw, prefix)))
        return {"x": 2} if isinstance(value, dict) else (value or "") + "!"

    controller.update("/d", grow)
    controller.update("/missing", grow)
    controller.update("/big", grow)
    assert held == [["/d"], ["/missing"], ["/big"]]
    assert backend.read("/d") == {"x": 2} and backend.read("/missing") == "!"
    assert len(backend.read("/big")) == 5001
    controller.close()


def test_an_update_inside_a_batch_keeps_the_batch_s_leases(backend, raw, prefix):
    controller = ControllerSync(backend)
    controller.set_state("/n", 1)
    held: list[list[str]] = []
    with controller.batch():
        controller.update("/n", lambda n: held.append(list(leases(raw, prefix))) or n + 1)
    assert held == [["/n"]] and backend.read("/n") == 2
    controller.close()


def test_a_stale_commit_writes_nothing_and_raises_stale_read_error(backend, other, raw, prefix):
    backend.write("/n", 1)
    before = entries(raw, prefix)
    with pytest.raises(StaleReadError, match="/n"), backend.transaction(optimistic=True):
        assert backend.read("/n") == 1
        other.write("/n", 2)
        backend.write("/n", 3)
    assert backend.read("/n") == 2 and entries(raw, prefix) - before == 1
    assert backend._core.txn.get() is None and not lease_keys(raw, prefix)


def test_a_commit_resent_after_a_lost_reply_is_applied_once_not_seen_as_stale(backend, raw, prefix):
    backend.write("/n", 1)
    commit = backend._scripts["commit"]
    keys = [f"{{{prefix}}}:changes"]
    op = ["w", "/n", "2", "1", "/", "1", "n", "2"]

    def args(wid: str, retry: str) -> list[str]:  # origin, maxlen, maxbytes, token, wid, retry
        return [backend.origin, "100", "", "", wid, retry, "1", "/n", "1", *op]

    assert commit(keys=keys, args=args("optim-1", ""))[0] == "ok"
    # what calls.py sends again after a lost reply: the window it may have been applied in
    assert commit(keys=keys, args=args("optim-1", "60000"))[0] == "done"
    assert backend.read("/n") == 2 and entries(raw, prefix) == 2
    # a resend of a commit that was not applied is checked as usual: /n is 2 now, not 1
    assert commit(keys=keys, args=args("optim-2", "60000")) == ["stale", "/n"]
    assert backend.read("/n") == 2


@pytest.mark.slow
def test_processes_updating_one_counter_end_exact_and_run_fn_at_most_twice(url, prefix):
    procs = [spawn("count", url, prefix, "300", "/n") for _ in range(6)]
    try:
        reports = [read_line(proc, timeout=240) for proc in procs]
    finally:
        for proc in procs:
            proc.finish()
    with RedisBackend(url, prefix) as backend:
        assert backend.read("/n") == 1800
    calls = sum(r["calls"] for r in reports)
    assert 1800 <= calls <= 3600, reports


@pytest.mark.slow
def test_processes_updating_distinct_counters_never_conflict(url, prefix, raw):
    procs = [spawn("count", url, prefix, "300", f"/c{i}") for i in range(4)]
    try:
        reports = [read_line(proc, timeout=240) for proc in procs]
    finally:
        for proc in procs:
            proc.finish()
    with RedisBackend(url, prefix) as backend:
        assert backend.read("/") == {f"c{i}": 300 for i in range(4)}
    # the first update of each counter finds it missing (leased); every other one is
    # optimistic and nothing else writes that key: fn ran exactly once per update
    assert [r["calls"] for r in reports] == [300] * 4
    assert not lease_keys(raw, prefix)


@pytest.mark.slow
def test_a_writer_killed_inside_an_optimistic_update_holds_nobody_back(url, prefix):
    with RedisBackend(url, prefix) as store:
        store.write("/n", 1)
    child = spawn("inside_update", url, prefix)  # its lease_timeout is 5 s
    try:
        assert read_line(child) == {"kind": "inside", "n": 1}
        child.kill()
        child.wait(5)
    finally:
        child.kill()
    with RedisBackend(url, prefix, lock_wait=0.5) as store:  # no lease to wait for
        assert ControllerSync(store).update("/n", lambda n: n + 1) == 2


@pytest.mark.slow
def test_sigint_inside_an_optimistic_update_writes_nothing_and_later_writes_commit(url, prefix):
    with RedisBackend(url, prefix) as store:
        store.write("/n", 1)
    child = spawn("inside_update", url, prefix)
    try:
        assert read_line(child) == {"kind": "inside", "n": 1}
        child.send_signal(signal.SIGINT)
        assert read_line(child) == {"kind": "after", "n": 1, "after": 1}
        with RedisBackend(url, prefix, lock_wait=0.5) as store:  # no lease left behind
            store.write("/n", "free")
    finally:
        child.kill()
        child.wait(5)


def test_the_async_twin_reruns_an_async_fn_after_a_conflict(url, prefix, other, raw):
    other.write("/n", 0)
    seen: list[int] = []

    async def bump(n: int) -> int:
        seen.append(n)
        if len(seen) == 1:
            other.write("/n", 10)
        await asyncio.sleep(0)
        return n + 1

    async def main() -> Any:
        async with RedisAsyncBackend(url, prefix) as store:
            controller = ControllerAsync(store)
            heard: list[Any] = []
            controller.subscribe("/n", lambda e: heard.append(e.new_value))
            first = await controller.update("/n", bump)
            again = await controller.update("/n", bump)  # uncontended: once, no lease
            controller.close()
            return first, again, heard

    first, again, heard = asyncio.run(asyncio.wait_for(main(), 20))
    assert (first, again) == (11, 12) and seen == [0, 10, 11]
    assert 1 not in heard and heard.count(11) == 1
    assert other.read("/n") == 12 and not lease_keys(raw, prefix)
