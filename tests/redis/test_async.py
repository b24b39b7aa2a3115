"""RedisAsyncBackend: the same store, transactions and notifications, awaited."""

from __future__ import annotations

import asyncio
import gc
import threading

import pytest
import redis
import redis.asyncio as aredis

from restate import ControllerAsync
from restate.backends.base import MISSING
from restate.backends.redis import RedisAsyncBackend, RedisBackend
from restate.backends.redis.async_clients import sync_settings
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


def names_on_server(raw, name: str) -> int:
    return sum(1 for c in raw.client_list() if c["name"] == name)


async def until_gone(raw, name: str, seconds: float = 5) -> int:
    """How many connections named ``name`` remain once they are gone or ``seconds`` passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while names_on_server(raw, name) and loop.time() < deadline:
        await asyncio.sleep(0.01)  # the server lists a closed connection a moment longer
    return names_on_server(raw, name)


def test_a_ready_async_client_is_used_and_left_open_by_close(url, prefix, other, raw):
    async def main():
        client = aredis.Redis.from_url(url, decode_responses=True, client_name="mine")
        got: asyncio.Queue = asyncio.Queue()
        store = RedisAsyncBackend(client=client, prefix=prefix)
        assert "redis://127.0.0.1:" in repr(store)
        await store.write("/a", {"b": 1})
        assert other.read("/a/b") == 1
        store.watch(got.put)  # the follower runs on a blocking twin of the client
        await asyncio.to_thread(other.write, "/c", 2)
        assert await asyncio.wait_for(got.get(), 5) == [("/c", MISSING, 2)]
        follower = f"restate-follower-{store.origin}"
        assert names_on_server(raw, follower) == 1
        async with store.transaction():
            await store.write("/a/b", await store.read("/a/b") + 1)
        await store.close()
        assert await until_gone(raw, follower) == 0, "close() left the follower's connection"
        assert await client.get("nothing") is None  # the client passed in is still open
        assert names_on_server(raw, "mine") == 1
        await client.aclose()

    run(main())
    assert other.read("/a") == {"b": 2}


def test_a_wrong_client_or_a_client_and_a_url_are_refused(url, prefix):
    with pytest.raises(TypeError, match=r"redis\.asyncio\.Redis"):
        RedisAsyncBackend(client=redis.Redis.from_url(url, decode_responses=True))
    with pytest.raises(ValueError, match="decode_responses"):
        RedisAsyncBackend(client=aredis.Redis.from_url(url))
    with pytest.raises(ValueError, match="url or a client"):
        RedisAsyncBackend(url, client=aredis.Redis.from_url(url, decode_responses=True))


def test_the_blocking_twin_of_an_async_client_keeps_its_credentials_and_tls():
    client = aredis.Redis(
        host="db.example", port=6390, db=3, username="u", password="pw", ssl=True,
        ssl_ca_certs="/ca.pem", decode_responses=True,
    )  # fmt: skip
    settings = sync_settings(client)
    assert settings["host"] == "db.example" and settings["port"] == 6390 and settings["db"] == 3
    assert settings["username"] == "u" and settings["password"] == "pw"
    assert settings["ssl"] is True and settings["ssl_ca_certs"] == "/ca.pem"
    twin = redis.Redis(**settings)  # what the follower and the renewer are made from
    assert twin.connection_pool.connection_kwargs["password"] == "pw"
    plain = sync_settings(aredis.Redis(unix_socket_path="/tmp/r.sock", decode_responses=True))
    assert plain == {"unix_socket_path": "/tmp/r.sock", "db": 0}


def test_an_async_backend_dropped_without_close_closes_its_connections_and_threads(
    url, prefix, raw
):
    async def main():
        store = RedisAsyncBackend(url, prefix)
        origin = store.origin
        store.watch(lambda changes: None)
        async with store.transaction():  # starts the lease renewer and its blocking client
            await store.write("/n", 1)
        threads = [t for t in threading.enumerate() if origin[:8] in t.name]
        assert len(threads) == 2 and names_on_server(raw, f"restate-{origin}") >= 1
        # dropped in another thread (as when a collection runs in one): redis-py's and asyncio's
        # __del__ would close the sockets from the wrong thread, which debug mode refuses
        asyncio.get_running_loop().set_debug(True)
        holder = [store]
        del store
        await asyncio.to_thread(lambda: (holder.clear(), gc.collect()))
        assert await until_gone(raw, f"restate-{origin}") == 0, "the async connections stayed"
        assert await until_gone(raw, f"restate-follower-{origin}") == 0
        for thread in threads:
            await asyncio.to_thread(thread.join, 5)
            assert not thread.is_alive(), f"{thread.name} outlived its backend"

    run(main())
