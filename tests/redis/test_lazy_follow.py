"""On Redis a controller follows the change stream only from its first registration that can
hear another process's write: a pure writer runs no follower thread and reads no stream, and a
write from another process landing right after ``subscribe()`` / during a derivation's first
read / during a tracked function's first run is still heard (the follower starts from the
stream's end as it was when ``watch()`` returned)."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from restate import ControllerAsync, ControllerSync
from restate.backends.redis import RedisAsyncBackend, RedisBackend
from tests.children import Child
from tests.redis_fixture import RedisServer, start_redis_server

pytestmark = pytest.mark.redis

DEADLINE = 30  # seconds a delivery may take on a loaded machine

# another process: writes /x = N on each "go N" line of its stdin, then says "wrote N"
WRITER = """
import sys
from restate.backends.redis import RedisBackend
store = RedisBackend(sys.argv[1], sys.argv[2])
print("ready", flush=True)
for line in sys.stdin:
    n = int(line.split()[1])
    store.write("/x", n)
    print(f"wrote {n}", flush=True)
"""


@pytest.fixture
def own_server(tmp_path) -> Iterator[RedisServer]:
    """A server of its own: its command counts are this test's alone."""
    server = start_redis_server(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def writer(url: str, prefix: str) -> Iterator[Child]:
    with Child.script(WRITER, url, prefix) as child:
        child.expect("ready")
        yield child


def stream_reads(raw: redis.Redis) -> int:
    stats = raw.info("commandstats")
    return sum(stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("xread", "xrange"))


def followers(origin: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"restate-redis-follower-{origin[:8]}"]


def follower_clients(raw: redis.Redis, origin: str) -> int:
    return sum(1 for c in raw.client_list() if c["name"] == f"restate-follower-{origin}")


def test_a_writer_with_no_registrations_runs_no_follower_and_reads_no_stream(own_server):
    raw = redis.Redis.from_url(own_server.url, decode_responses=True)
    store = RedisBackend(own_server.url, "w")
    controller = ControllerSync(store)
    before = stream_reads(raw)
    for i in range(20):
        controller.update("/n", lambda n: n + 1, default=0)
        controller.set_state(f"/k{i}", i)
    with controller.batch():
        controller.set_state("/b", 1)
    assert controller.get_state("/n") == 20
    assert not controller.following and not followers(store.origin)
    assert follower_clients(raw, store.origin) == 0 and not store._followers
    assert stream_reads(raw) == before, "a controller nobody listens to read the stream"

    heard: queue.Queue[Any] = queue.Queue()
    controller.subscribe("/n", lambda e: heard.put(e.new_value))
    assert controller.following and len(followers(store.origin)) == 1
    assert follower_clients(raw, store.origin) == 1
    with RedisBackend(own_server.url, "w") as other:
        other.write("/n", 100)
    assert heard.get(timeout=DEADLINE) == 100
    controller.close()
    store.close()
    raw.close()


def test_subscribe_unsubscribe_cycles_keep_the_one_follower_until_close(backend):
    controller = ControllerSync(backend)

    def heard(event: Any) -> None:
        pass

    controller.subscribe("/a", heard)
    thread = followers(backend.origin)
    for _ in range(10):
        controller.unsubscribe("/a", heard)
        controller.subscribe("/a", heard)
    assert followers(backend.origin) == thread and len(thread) == 1
    controller.close()
    thread[0].join(DEADLINE)
    assert not thread[0].is_alive(), "close() left the follower running"


def test_a_remote_write_right_after_subscribe_returns_is_delivered(url, prefix, writer):
    for n in range(1, 6):  # each round a fresh controller: the write races the follower's start
        with ControllerSync(RedisBackend(url, prefix)) as controller:
            heard: queue.Queue[Any] = queue.Queue()
            controller.subscribe("/x", lambda e, heard=heard: heard.put(e.new_value))
            writer.send(f"go {n}")
            writer.expect(f"wrote {n}")
            assert heard.get(timeout=DEADLINE) == n, f"round {n}: the write was not delivered"
            controller.backend.close()


def test_a_remote_write_during_a_derivations_first_read_is_recomputed(url, prefix, writer):
    with ControllerSync(RedisBackend(url, prefix)) as controller:
        controller.set_state("/x", 1)

        def double(value: Any) -> Any:
            if value == 1:  # after the first read: only a follower already started hears it
                writer.send("go 7")
                writer.expect("wrote 7")
            return value * 2

        controller.derive("/d", "/x", double)
        settled = threading.Event()
        controller.on_changes(lambda changes: settled.set())
        if controller.get_state("/d") != 14:
            assert settled.wait(DEADLINE), "the derivation never heard the write"
        assert controller.get_state("/d") == 14
        controller.backend.close()


def test_a_remote_write_during_a_tracked_functions_first_run_runs_it_again(url, prefix, writer):
    with ControllerSync(RedisBackend(url, prefix)) as controller:
        controller.set_state("/x", 1)
        seen: list[Any] = []
        again = threading.Event()

        def run(event: Any) -> None:
            seen.append(controller.get_state("/x"))
            if len(seen) == 1:
                writer.send("go 9")
                writer.expect("wrote 9")
            elif seen[-1] == 9:
                again.set()

        controller.track(run)
        assert again.wait(DEADLINE), f"the tracked function saw only {seen}"
        controller.backend.close()


def test_the_async_controller_follows_from_its_first_registration(url, prefix, other):
    async def main() -> None:
        store = RedisAsyncBackend(url, prefix)
        controller = ControllerAsync(store)
        await controller.set_state("/x", 1)
        await controller.update("/x", lambda n: n + 1)
        assert not controller.following and not followers(store.origin)
        heard: asyncio.Queue[Any] = asyncio.Queue()
        controller.subscribe("/x", heard.put_nowait)
        assert controller.following and len(followers(store.origin)) == 1
        await asyncio.to_thread(other.write, "/x", 5)
        event = await asyncio.wait_for(heard.get(), DEADLINE)
        assert event.new_value == 5
        controller.close()
        await store.close()

    asyncio.run(main())


def test_the_async_controllers_derive_hears_a_write_landing_during_its_first_read(
    url, prefix, other
):
    async def main() -> None:
        store = RedisAsyncBackend(url, prefix)
        controller = ControllerAsync(store)
        await controller.set_state("/x", 1)

        def double(value: Any) -> Any:
            if value == 1:  # another client's write, after the first read
                other.write("/x", 7)
            return value * 2

        await controller.derive("/d", "/x", double)
        settled = asyncio.Event()
        controller.on_changes(lambda changes: settled.set())
        if await controller.get_state("/d") != 14:
            await asyncio.wait_for(settled.wait(), DEADLINE)
        assert await controller.get_state("/d") == 14
        controller.close()
        await store.close()

    asyncio.run(main())
