"""docs/semantics.md §5: batches, callback error isolation, thread and task safety."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from restate import ControllerAsync, ControllerSync, PathConflictError, StateError


def test_a_batch_applies_at_once_and_notifies_once_at_the_end(controller: Any) -> None:
    events: list = []
    controller.set_state("/a", 0)
    controller.subscribe("/a", events.append)
    with controller.batch():
        controller.set_state("/a", 1)
        assert controller.get_state("/a") == 1  # reads inside see the writes
        controller.set_state("/a", 2)
        assert events == []
    assert [(e.prev_value, e.new_value) for e in events] == [(0, 2)]


def test_a_batch_coalesces_to_one_event_per_subscription(controller: Any) -> None:
    log: list = []
    controller.set_state("/users/0", "z")
    controller.subscribe(
        "/users", lambda e: log.append(("users", str(e.emitting_path), e.prev_value, e.new_value))
    )
    controller.subscribe("/users/1", lambda e: log.append(("one", e.prev_value, e.new_value)))
    with controller.batch():
        controller.set_state("/users/1", "a")
        controller.set_state("/users/2", "b")
        controller.set_state("/users/1", "c")
    # /users was reached by two written paths: its one event is about its own value
    assert log == [
        ("one", None, "c"),
        ("users", "/users", {"0": "z"}, {"0": "z", "1": "c", "2": "b"}),
    ]
    log.clear()
    with controller.batch():
        controller.set_state("/users/2", "B")
    # one written path below: the event is the write's own, as outside a batch
    assert log == [("users", "/users/2", "b", "B")]


def test_a_subscription_whose_value_ends_where_it_started_is_not_notified(
    controller: Any,
) -> None:
    events: list = []
    controller.set_state("/a", 1)
    controller.subscribe("/a", events.append)
    with controller.batch():
        controller.set_state("/a", 2)
        controller.set_state("/a", 1)
    with controller.batch():
        controller.set_state("/b/c", 1)
        controller.del_state("/b")
    assert events == []
    assert controller.get_state("/") == {"a": 1}


def test_derivations_run_once_at_the_end_of_a_batch(controller: Any) -> None:
    calls: list = []
    controller.set_state("/a", 0)
    controller.derive("/b", "/a", lambda a: calls.append(a) or a * 2)
    with controller.batch():
        for i in range(10):
            controller.set_state("/a", i)
    assert calls == [0, 9] and controller.get_state("/b") == 18


def test_nested_batches_join_the_outer_one(controller: Any) -> None:
    events: list = []
    controller.subscribe("/x", events.append)
    with controller.batch():
        with controller.batch():
            controller.set_state("/x", 1)
        assert events == []
        controller.set_state("/x", 2)
    assert [e.new_value for e in events] == [2]


def test_an_exception_in_a_batch_rolls_back_notifies_no_one_and_propagates(
    controller: Any,
) -> None:
    events: list = []
    controller.set_state("/keep", {"a": 1, "b": [1, 2]})
    controller.subscribe("/", events.append)
    before = controller.get_state("/")
    with pytest.raises(KeyError), controller.batch():
        controller.set_state("/keep/a", 2)
        controller.del_state("/keep/b")
        controller.set_state("/new/deep/path", 1)
        controller.set_state("/keep", "replaced")
        controller.set_state("/keep/x/y", 1) if False else None
        raise KeyError("boom")
    assert controller.get_state("/") == before
    assert events == []


def test_a_failed_write_inside_a_batch_rolls_back_the_earlier_ones(controller: Any) -> None:
    controller.set_state("/leaf", 1)
    with pytest.raises(PathConflictError), controller.batch():
        controller.set_state("/a", 1)
        controller.set_state("/leaf/below", 2)
    assert controller.get_state("/") == {"leaf": 1}


def test_an_inner_batch_error_caught_inside_the_outer_rolls_back_only_the_inner(
    controller: Any,
) -> None:
    with controller.batch():
        controller.set_state("/outer", 1)
        try:
            with controller.batch():
                controller.set_state("/inner", 1)
                raise ValueError
        except ValueError:
            pass
    assert controller.get_state("/") == {"outer": 1}


def test_a_raising_callback_does_not_stop_the_others_and_is_reraised_as_is(
    controller: Any,
) -> None:
    calls: list = []

    def bad(e: Any) -> None:
        raise RuntimeError("callback failed")

    controller.subscribe("/a", bad)
    controller.subscribe("/a", lambda e: calls.append("after"))
    controller.subscribe("/", lambda e: calls.append("root"))
    with pytest.raises(RuntimeError, match="callback failed"):
        controller.set_state("/a", 1)
    assert calls == ["after", "root"]
    assert controller.get_state("/a") == 1  # the write stays


def test_several_raising_callbacks_raise_an_exception_group(controller: Any) -> None:
    controller.subscribe("/a", lambda e: 1 / 0)
    controller.subscribe("/", lambda e: [][1])
    with pytest.raises(ExceptionGroup) as info:
        controller.set_state("/a", 1)
    assert {type(e) for e in info.value.exceptions} == {ZeroDivisionError, IndexError}


def test_writes_inside_callbacks_are_applied_and_delivered_next_round(controller: Any) -> None:
    log: list = []
    controller.subscribe("/a", lambda e: e.set_state("/b", e.new_value * 2))
    controller.subscribe("/b", lambda e: log.append(("b", e.new_value)))
    controller.subscribe("/a", lambda e: log.append(("a2", e.new_value)))
    controller.set_state("/a", 3)
    assert log == [("a2", 3), ("b", 6)]
    assert controller.get_state("/b") == 6


def test_update_from_8_threads_times_1000_loses_nothing() -> None:
    c = ControllerSync()

    def work() -> None:
        for _ in range(1000):
            c.update("/n", lambda v: v + 1, default=0)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert c.get_state("/n") == 8000


def test_concurrent_writers_and_batches_from_threads_keep_the_tree_consistent() -> None:
    c = ControllerSync()
    seen: list = []
    c.subscribe("/t/*", lambda e: seen.append(1))

    def writer(i: int) -> None:
        for j in range(200):
            if j % 10 == 0:
                with c.batch():
                    c.set_state(f"/t/{i}", j)
                    c.set_state(f"/u/{i}", j)
            else:
                c.set_state(f"/t/{i}", j)
            c.del_state(f"/gone/{i}")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert c.get_state("/t") == {str(i): 199 for i in range(6)}
    assert len(seen) == 6 * 200


def test_gather_of_1000_async_updates_ends_at_1000() -> None:
    async def main() -> int:
        c = ControllerAsync()

        async def slow_inc(v: int) -> int:
            await asyncio.sleep(0)
            return v + 1

        await asyncio.gather(*(c.update("/n", slow_inc, default=0) for _ in range(1000)))
        return await c.get_state("/n")

    assert asyncio.run(main()) == 1000


def test_a_cancelled_task_in_the_middle_of_a_batch_rolls_it_back() -> None:
    async def main() -> dict:
        c = ControllerAsync()
        await c.set_state("/a", 1)
        started = asyncio.Event()

        async def job() -> None:
            async with c.batch():
                await c.set_state("/a", 2)
                await c.set_state("/b", 3)
                started.set()
                await asyncio.sleep(10)

        task = asyncio.create_task(job())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await c.get_state("/")

    assert asyncio.run(main()) == {"a": 1}


def test_coroutine_callbacks_run_on_both_controllers(controller: Any) -> None:
    seen: list = []

    async def on_change(event: Any) -> None:
        await asyncio.sleep(0)
        seen.append(event.new_value)

    controller.subscribe("/a", on_change)
    controller.set_state("/a", 1)
    assert seen == [1]


def test_a_coroutine_callback_on_the_sync_controller_inside_a_running_loop_is_a_clear_error() -> (
    None
):
    c = ControllerSync()

    async def on_change(event: Any) -> None: ...

    c.subscribe("/a", on_change)

    async def main() -> None:
        c.set_state("/a", 1)

    with pytest.raises(StateError, match="use ControllerAsync"):
        asyncio.run(main())
    assert c.get_state("/a") == 1


def test_the_sync_controller_refuses_an_async_backend() -> None:
    from restate import AsyncBackend

    class B(AsyncBackend):
        async def read(self, path: Any, default: Any = None) -> Any: ...
        async def write(self, path: Any, value: Any) -> None: ...
        async def delete(self, path: Any) -> None: ...

    with pytest.raises(TypeError, match="use ControllerAsync"):
        ControllerSync(B())


def test_what_a_batch_learned_about_existing_dicts_does_not_outlive_it(controller: Any) -> None:
    controller.derive("/count", "/a", lambda a: len(a or {}))
    with controller.batch():
        controller.set_state("/a/b", 1)
    controller.del_state("/a")
    got: list = []
    controller.subscribe("/", lambda e: got.append((e.prev_value, e.new_value)))
    controller.set_state("/a/x", 1)  # creates /a again; /count follows
    assert got == [({"count": 0}, {"a": {"x": 1}, "count": 1})]
