"""A ``"now"`` re-run runs outside the write's lock, before the write call returns
(docs/semantics.md, "Scheduling"; docs/decisions.md, "Tracked functions run outside the
lock").

A body that starts a thread (or a task) which writes state and then joins it would wait for
ever if it ran under the lock of the write that re-ran it: every such test runs the write in
a thread (or under ``asyncio.wait_for``) and fails after a deadline instead of hanging.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from restate import ControllerAsync, ControllerSync, CycleError
from tests.conftest import settle

DEADLINE = 10  # seconds: far more than any of these needs, far less than a hung test run


def within_deadline(action: Callable[[], Any], what: str) -> Any:
    """Run ``action`` in a thread; fail (instead of hanging) if it is still blocked after
    DEADLINE seconds; return its result or re-raise its error."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = action()
        except BaseException as exc:  # handed back to the test
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True, name=f"test: {what}")
    thread.start()
    thread.join(DEADLINE)
    assert not thread.is_alive(), f"{what} still blocked after {DEADLINE} s (a deadlock?)"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def joins_a_writer(c: ControllerSync, seen: list[Any]) -> Callable[[Any], None]:
    """A tracked body that reads /x, then has another thread write /w = x and joins it."""

    def body(event: Any) -> None:
        x = event.get_state("/x")
        writer = threading.Thread(target=lambda: c.set_state("/w", x), name="writer")
        writer.start()
        writer.join(DEADLINE)
        seen.append((x, not writer.is_alive()))

    return body


# ----- sync: every kind of write -------------------------------------------------------------


WRITES: dict[str, Callable[[ControllerSync], Any]] = {
    "set_state": lambda c: c.set_state("/x", 1),
    "update": lambda c: c.update("/x", lambda v: (v or 0) + 1),
    "del_state": lambda c: c.del_state("/x"),
    "ping": lambda c: c.ping("/x"),
    "get_state(write_default=True)": lambda c: c.get_state("/x", 1, write_default=True),
}


@pytest.mark.parametrize("write", list(WRITES), ids=list(WRITES))
def test_a_rerun_caused_by_a_write_may_join_a_thread_that_writes_state(write: str) -> None:
    c = ControllerSync()
    if write in ("del_state", "ping"):
        c.set_state("/x", 0)
    seen: list[Any] = []
    c.track(joins_a_writer(c, seen))
    within_deadline(lambda: WRITES[write](c), write)
    # the re-run finished before the write call returned: its writer's write is there
    assert len(seen) == 2 and seen[-1][1], seen
    assert c.get_state("/w") == c.get_state("/x")


def test_a_rerun_caused_by_a_batch_runs_after_the_batch_with_its_lock_released() -> None:
    c = ControllerSync()
    seen: list[Any] = []
    c.track(joins_a_writer(c, seen))

    def batch() -> None:
        with c.batch():
            c.set_state("/x", 1)
            c.set_state("/x", 2)
            assert len(seen) == 1  # nothing runs inside the batch
        assert seen == [(None, True), (2, True)]  # its end re-ran it, before the with ended

    within_deadline(batch, "the batch")
    assert c.get_state("/w") == 2


def test_a_rerun_caused_by_a_derivation_the_write_settled_may_join_a_writer_thread() -> None:
    c = ControllerSync()
    c.derive("/double", "/x", lambda x: (x or 0) * 2)
    seen: list[Any] = []

    def body(event: Any) -> None:
        double = event.get_state("/double")
        writer = threading.Thread(target=lambda: c.set_state("/w", double))
        writer.start()
        writer.join(DEADLINE)
        seen.append(double)

    c.track(body)
    within_deadline(lambda: c.set_state("/x", 4), "set_state")
    assert (seen, c.get_state("/w")) == ([0, 8], 8)


def test_a_rerun_caused_by_a_subscribers_write_runs_once_the_outer_write_released_the_lock() -> (
    None
):
    c = ControllerSync()
    c.subscribe("/a", lambda e: c.set_state("/x", e.new_value))  # a write under the lock
    seen: list[Any] = []
    c.track(joins_a_writer(c, seen))
    within_deadline(lambda: c.set_state("/a", 3), "set_state")
    assert seen == [(None, True), (3, True)] and c.get_state("/w") == 3


def test_a_rerun_caused_by_another_process_runs_in_the_follower_thread_outside_the_lock() -> None:
    c = ControllerSync()
    seen: list[Any] = []
    c.track(joins_a_writer(c, seen))
    c._engine.io.write(("x",), 5)  # as if another process wrote it; then its follower reports:
    within_deadline(lambda: c._on_external([("/x", None, 5)]), "the follower's delivery")
    assert seen == [(None, True), (5, True)] and c.get_state("/w") == 5


def test_code_after_the_write_sees_what_the_rerun_wrote() -> None:
    c = ControllerSync()
    c.track(lambda e: e.set_state("/y", (e.get_state("/x") or 0) + 1))
    for value in range(5):
        c.set_state("/x", value)
        assert c.get_state("/y") == value + 1


def test_a_chain_of_reruns_runs_writers_before_readers_each_once_before_the_write_returns() -> None:
    c = ControllerSync()
    runs: list[str] = []

    def a(e: Any) -> None:
        runs.append("a")
        e.set_state("/y", (e.get_state("/x") or 0) + 1)

    def b(e: Any) -> None:
        runs.append("b")
        e.set_state("/z", (e.get_state("/y") or 0) * 10)

    def both(e: Any) -> None:
        runs.append("both")
        e.get_state("/x"), e.get_state("/z")

    c.track(both)
    c.track(b)
    c.track(a)
    runs.clear()
    c.set_state("/x", 1)
    assert c.get_state("/z") == 20
    # /x reaches both and a: a (a writer of what both reads, through b) first; b after a
    assert runs.index("a") < runs.index("b") < len(runs)
    assert runs.count("a") == 1 and runs.count("b") == 1
    assert runs[-1] == "both"


def test_an_eager_function_still_runs_inside_the_write_under_its_lock() -> None:
    c = ControllerSync()
    held: dict[str, bool] = {}

    def make(name: str) -> Callable[[Any], None]:
        def fn(e: Any) -> None:
            e.get_state("/x")
            held[name] = c._lock._is_owned()

        return fn

    c.track(make("eager"), policy="eager")
    c.track(make("now"))
    assert held == {"eager": False, "now": False}  # first runs: outside the lock, both
    c.set_state("/x", 1)
    assert held == {"eager": True, "now": False}


def test_a_write_landing_while_the_rerun_runs_makes_it_run_again_in_the_writing_thread() -> None:
    c = ControllerSync()
    seen: list[Any] = []
    has_read, written = threading.Event(), threading.Event()

    def body(event: Any) -> None:
        seen.append(event.get_state("/x"))
        if len(seen) == 2:  # the re-run: another thread writes after our read
            has_read.set()
            assert written.wait(DEADLINE), "the other thread never wrote"

    def other() -> None:
        assert has_read.wait(DEADLINE), "the re-run never read"
        c.set_state("/x", 2)  # under the old lock this waited for the re-run: a deadlock
        written.set()

    c.track(body, name="body")
    writer = threading.Thread(target=other, daemon=True)
    writer.start()
    within_deadline(lambda: c.set_state("/x", 1), "set_state")
    writer.join(DEADLINE)
    assert not writer.is_alive()
    assert seen == [None, 1, 2]  # not lost: the first writer's thread ran it again
    assert next(t for t in c.trackers()).status == "ok"


def test_a_write_landing_between_the_lock_release_and_the_rerun_is_not_lost() -> None:
    c = ControllerSync()
    seen: list[Any] = []
    c.track(lambda e: seen.append(e.get_state("/x")))
    run_soon = c._run_soon  # where the write hands over to its re-runs, lock released
    hooked: list[bool] = []

    def late_writer(error: Any) -> None:
        if not hooked:
            hooked.append(True)
            within_deadline(lambda: c.set_state("/x", 2), "the other thread's write")
        run_soon(error)

    c._run_soon = late_writer  # type: ignore[method-assign]
    c.set_state("/x", 1)
    assert seen[-1] == 2 and c.get_state("/x") == 2
    assert seen.count(2) == 1  # one run for the latest value, in whichever thread took it


def test_a_rerun_that_starts_a_loop_is_refused_at_the_write_that_started_it() -> None:
    c = ControllerSync()

    def grow(e: Any) -> None:
        x = e.get_state("/x") or 0
        if x > 0:  # only from now on does it write what it reads
            e.set_state("/x", x + 1)

    c.track(grow, name="grow")
    with pytest.raises(CycleError, match="grow"):
        c.set_state("/x", 1)
    assert c.get_state("/x") == 2  # one pass, then refused
    c.set_state("/x", 10)
    assert c.get_state("/x") == 10


def test_the_reruns_error_and_a_subscribers_error_reach_the_writer_together() -> None:
    c = ControllerSync()

    def failing_subscriber(e: Any) -> None:
        raise KeyError("subscriber")

    def failing_body(e: Any) -> None:
        if e.get_state("/x"):
            raise ValueError("body")

    c.subscribe("/x", failing_subscriber)
    c.track(failing_body)
    with pytest.raises(ExceptionGroup) as caught:
        c.set_state("/x", 1)
    kinds = sorted(type(e).__name__ for e in caught.value.exceptions)
    assert kinds == ["KeyError", "ValueError"]
    assert c.get_state("/x") == 1  # the write stays


def test_an_interrupted_rerun_leaves_the_function_tracked_and_the_controller_usable() -> None:
    c = ControllerSync()
    seen: list[Any] = []

    def body(e: Any) -> None:
        seen.append(e.get_state("/x"))
        if len(seen) == 2:
            raise KeyboardInterrupt

    c.track(body)
    with pytest.raises(KeyboardInterrupt):
        c.set_state("/x", 1)
    assert c.get_state("/x") == 1
    c.set_state("/x", 2)
    assert seen == [None, 1, 2]


def test_writes_from_many_threads_lose_no_rerun_of_the_latest_value() -> None:
    c = ControllerSync()
    seen: list[Any] = []
    lock = threading.Lock()

    def body(e: Any) -> None:
        value = e.get_state("/x")
        with lock:
            seen.append(value)

    c.track(body)

    def hammer(base: int) -> None:
        for i in range(200):
            c.set_state("/x", base + i)

    threads = [threading.Thread(target=hammer, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE * 3)
        assert not t.is_alive(), "a writer thread is still blocked"
    c.set_state("/x", -1)
    assert seen[-1] == -1
    assert next(t for t in c.trackers()).status == "ok"


# ----- async: the same for tasks -------------------------------------------------------------


def test_an_async_rerun_caused_by_a_write_may_await_a_task_that_writes_state() -> None:
    async def main() -> Any:
        c = ControllerAsync()
        seen: list[Any] = []

        async def body(event: Any) -> None:
            x = await event.get_state("/x")
            task = asyncio.create_task(c.set_state("/w", x))
            await asyncio.wait_for(task, DEADLINE)  # under the task lock: waited for ever
            seen.append(x)

        await c.track(body)
        await asyncio.wait_for(c.set_state("/x", 1), DEADLINE * 2)
        after_write = await c.get_state("/w")
        async with c.batch():
            await c.set_state("/x", 2)
        after_batch = await c.get_state("/w")
        await asyncio.wait_for(c.update("/x", lambda v: v + 1), DEADLINE * 2)
        return seen, after_write, after_batch, await c.get_state("/w")

    assert asyncio.run(main()) == ([None, 1, 2, 3], 1, 2, 3)


def test_an_async_write_landing_while_the_rerun_runs_makes_it_run_again() -> None:
    async def main() -> list[Any]:
        c = ControllerAsync()
        seen: list[Any] = []
        has_read, written = asyncio.Event(), asyncio.Event()

        async def body(event: Any) -> None:
            seen.append(await event.get_state("/x"))
            if len(seen) == 2:
                has_read.set()
                await asyncio.wait_for(written.wait(), DEADLINE)

        async def other() -> None:
            await asyncio.wait_for(has_read.wait(), DEADLINE)
            await c.set_state("/x", 2)
            written.set()

        await c.track(body)
        writer = asyncio.create_task(other())
        await asyncio.wait_for(c.set_state("/x", 1), DEADLINE * 2)
        await asyncio.wait_for(writer, DEADLINE)
        return seen

    assert asyncio.run(main()) == [None, 1, 2]


# ----- both controllers ---------------------------------------------------------------------


def test_subscribers_and_listeners_run_before_a_now_function_reruns(controller: Any) -> None:
    order: list[str] = []
    controller.subscribe("/x", lambda e: order.append("subscriber"))
    controller.on_changes(lambda changes: order.append("listener"))

    async def fn(e: Any) -> None:
        await settle(e.get_state("/x"))
        order.append("tracked")

    controller.track(fn)
    order.clear()
    controller.set_state("/x", 1)
    assert order == ["subscriber", "listener", "tracked"]


def test_a_now_function_inside_deferring_still_waits_for_the_blocks_end(controller: Any) -> None:
    seen: list[Any] = []

    async def fn(e: Any) -> None:
        seen.append(await settle(e.get_state("/x")))

    controller.track(fn)
    with controller.deferring():
        controller.set_state("/x", 1)
        controller.set_state("/x", 2)
        assert seen == [None]
    assert seen == [None, 2]
