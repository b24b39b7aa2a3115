"""RedisAsyncBackend: the same store, transactions and notifications, awaited."""

from __future__ import annotations

import asyncio

import pytest

from restate import ControllerAsync
from restate.backends.base import MISSING
from restate.backends.redis import RedisAsyncBackend, RedisBackend
from restate.errors import PathConflictError, SerializationError

pytestmark = pytest.mark.redis


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_the_async_twin_reads_writes_and_deletes_the_same_layout(url, prefix, backend):
    async def main():
        async with RedisAsyncBackend(url, prefix) as store:
            await store.write("/a", {"b": {"c": 1}, "d": [1]})
            assert await store.read("/a/b/c") == 1
            with pytest.raises(PathConflictError):
                await store.write("/a/d/x", 1)
            with pytest.raises(SerializationError):
                await store.write("/a", {"bad": object()})
            await store.delete("/a/b")
            assert await store.read("/a/b", MISSING) is MISSING

    run(main())
    assert backend.read("/") == {"a": {"d": [1]}}  # the sync twin sees the same keys


def test_an_async_transaction_is_buffered_and_rolled_back_on_error(url, prefix, other):
    async def main():
        async with RedisAsyncBackend(url, prefix) as store:
            async with store.transaction():
                await store.write("/x", 1)
                assert await store.read("/x") == 1
                assert other.read("/x") is None
            assert other.read("/x") == 1
            with pytest.raises(KeyError):
                async with store.transaction():
                    await store.write("/x", 2)
                    raise KeyError("x")
            assert await store.read("/x") == 1

    run(main())


def test_a_coroutine_handler_runs_on_the_loop_that_called_watch(url, prefix, other):
    async def main():
        got: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def handler(changes):
            assert asyncio.get_running_loop() is loop
            await got.put(changes)

        async with RedisAsyncBackend(url, prefix) as store:
            unwatch = store.watch(handler)
            await asyncio.to_thread(other.write, "/a", 1)
            assert await asyncio.wait_for(got.get(), 2) == [("/a", MISSING, 1)]
            unwatch()

    run(main())


def test_async_controllers_on_two_clients_share_updates_and_notifications(url, prefix):
    async def main():
        seen: asyncio.Queue = asyncio.Queue()
        async with RedisAsyncBackend(url, prefix) as one, RedisAsyncBackend(url, prefix) as two:
            first, second = ControllerAsync(one), ControllerAsync(two)
            second.subscribe("/n", lambda e: seen.put_nowait(e.new_value))

            async def bump(controller, times):
                for _ in range(times):
                    await controller.update("/n", lambda n: n + 1, default=0)

            await asyncio.gather(bump(first, 150), bump(second, 150))
            assert await one.read("/n") == 300
            values = []
            while 300 not in values:  # a burst of the other's updates may arrive merged
                values.append(await asyncio.wait_for(seen.get(), 2))
            assert len(set(values)) == len(values), "a value was notified twice"
            assert len(values) >= 150  # at least this controller's own updates
            first.close()
            second.close()

    run(main())


def test_a_sync_and_an_async_client_see_each_others_writes(url, prefix):
    async def main():
        async with RedisAsyncBackend(url, prefix) as store:
            with RedisBackend(url, prefix) as sync_store:
                await store.write("/from/async", 1)
                sync_store.write("/from/sync", 2)
                assert await store.read("/from") == {"async": 1, "sync": 2}

    run(main())
