"""A follower that lost its connection or its server catches up: nothing missed or twice."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

import pytest
import redis

from restate.backends.base import MISSING
from restate.backends.redis import RESYNCED, RedisBackend
from restate.errors import BackendError
from tests.redis_fixture import start_redis_server

pytestmark = pytest.mark.redis


def follower_ids(raw: redis.Redis, backend: RedisBackend) -> list[int]:
    name = f"restate-follower-{backend.origin}"
    return [int(c["id"]) for c in raw.client_list() if c["name"] == name]


def drain(got: queue.Queue, n: int) -> list:
    return [got.get(timeout=30) for _ in range(n)]


def chain(got: queue.Queue, path: str, start, end) -> list:
    """The deliveries of ``path`` from ``start`` to ``end``: a burst may arrive merged into
    fewer calls, but every ``prev`` is the ``new`` before it (nothing missed or twice)."""
    seen, value = [], start
    while value != end:
        [(where, prev, new)] = got.get(timeout=30)
        assert (where, prev) == (path, value), (seen, where, prev, new)
        seen.append(new)
        value = new
    return seen


def test_a_killed_follower_connection_reconnects_and_resumes_after_its_last_entry(
    backend, other, raw
):
    got: queue.Queue = queue.Queue()
    unwatch = backend.watch(got.put)
    other.write("/n", 1)
    assert drain(got, 1) == [[("/n", MISSING, 1)]]
    [before] = follower_ids(raw, backend)
    raw.client_kill_filter(_id=before)
    for i in range(2, 6):  # written while the follower is away
        other.write("/n", i)
    assert chain(got, "/n", 1, 5)[-1] == 5
    time.sleep(0.2)
    assert got.empty()
    [after] = follower_ids(raw, backend)
    assert after != before
    other.write("/n", 6)
    assert drain(got, 1) == [[("/n", 5, 6)]]
    unwatch()


def test_a_follower_catches_up_after_the_server_restarts_with_its_data(tmp_path):
    server = start_redis_server(tmp_path, persistent=True)
    try:
        with RedisBackend(server.url) as follower, RedisBackend(server.url) as writer:
            got: queue.Queue = queue.Queue()
            unwatch = follower.watch(got.put)
            writer.write("/n", 1)
            assert drain(got, 1) == [[("/n", MISSING, 1)]]
            server.stop()
            with pytest.raises(BackendError, match=f"127.0.0.1:{server.port}"):
                writer.write("/n", 99)
            time.sleep(0.3)  # the follower is now backing off
            server.start()
            writer.write("/n", 2)
            writer.write("/n", 3)
            assert chain(got, "/n", 1, 3)[-1] == 3
            time.sleep(0.2)
            assert got.empty()
            assert follower.read("/n") == 3
            unwatch()
    finally:
        server.stop()


def slow_follower(
    backend: RedisBackend, hold: threading.Event | None = None
) -> tuple[queue.Queue, threading.Event, Callable[[], None]]:
    """Watch ``backend`` with a handler that, after each delivery (once ``hold`` is set, if
    given), waits until ``busy`` is set: the follower reads nothing while its handler runs,
    so writes meanwhile can be trimmed from the stream. Returns (got, busy, unwatch)."""
    got: queue.Queue = queue.Queue()
    busy = threading.Event()

    def slow_handler(changes):
        got.put(changes)
        if hold is None or hold.is_set():
            busy.wait(5)

    return got, busy, backend.watch(slow_handler)


def test_a_follower_that_missed_trimmed_entries_gets_what_changed_since_once(url, prefix, backend):
    hold = threading.Event()
    got, busy, unwatch = slow_follower(backend, hold)
    with RedisBackend(url, prefix, stream_maxlen=10) as writer:
        writer.write("/kept", {"a": 1})
        assert drain(got, 1) == [[("/kept", MISSING, {"a": 1})]]
        hold.set()
        writer.write("/n", 0)
        assert drain(got, 1) == [[("/n", MISSING, 0)]]
        with writer.transaction():
            writer.write("/other", "x")
            writer.write("/other2", {"deep": 1})
        for i in range(1, 400):
            writer.write("/n", i)
        writer.write("/other2/deep", 2)  # under a path already changed: delivered with it
        busy.set()
        [resync] = drain(got, 1)
        assert sorted(resync) == [  # marked: their prev values are not known any more
            ("/n", MISSING, 399, RESYNCED),
            ("/other", MISSING, "x", RESYNCED),
            ("/other2", MISSING, {"deep": 2}, RESYNCED),
        ]
        writer.write("/n", 400)
        assert drain(got, 1) == [[("/n", 399, 400)]]
    time.sleep(0.1)
    assert got.empty()
    unwatch()


def test_a_follower_behind_what_the_change_index_remembers_gets_the_whole_tree_once(
    url, prefix, backend, raw
):
    got, busy, unwatch = slow_follower(backend)
    with RedisBackend(url, prefix, stream_maxlen=1) as writer:  # remembers ~10 paths
        writer.write("/n", 0)
        assert drain(got, 1) == [[("/n", MISSING, 0)]]
        for i in range(150):  # past sequence number 100: the oldest paths are dropped
            writer.write(f"/p{i}", i)
        assert raw.zcard(f"{{{prefix}}}:since") < 151
        assert int(raw.get(f"{{{prefix}}}:floor")) > 1  # the follower's last: 1
        busy.set()
        [[(path, prev, tree, payload)]] = drain(got, 1)
        assert (path, prev, len(tree), payload) == ("/", MISSING, 151, RESYNCED)
    unwatch()


def test_a_server_restarted_without_its_data_makes_followers_start_over(tmp_path):
    server = start_redis_server(tmp_path, persistent=False)
    try:
        with RedisBackend(server.url) as follower, RedisBackend(server.url) as writer:
            got: queue.Queue = queue.Queue()
            unwatch = follower.watch(got.put)
            writer.write("/n", 1)
            writer.write("/n", 2)
            assert drain(got, 2) == [[("/n", MISSING, 1)], [("/n", 1, 2)]]
            server.restart()
            writer.write("/m", 1)
            assert drain(got, 1) == [[("/", MISSING, {"m": 1}, RESYNCED)]]
            writer.write("/m", 2)
            assert drain(got, 1) == [[("/m", 1, 2)]]
            unwatch()
    finally:
        server.stop()


def test_a_follower_resyncs_the_whole_tree_when_the_change_index_began_after_its_last_entry(
    url, prefix, backend, raw
):
    got, busy, unwatch = slow_follower(backend)
    with RedisBackend(url, prefix, stream_maxlen=1) as writer:
        writer.write("/n", 0)
        assert drain(got, 1) == [[("/n", MISSING, 0)]]
        writer.write("/gone", 1)
        raw.delete(f"{{{prefix}}}:since")  # evicted, or a tree written before it existed
        for i in range(1, 300):  # (the stream is trimmed by whole nodes of ~100 entries)
            writer.write("/n", i)
        busy.set()
        [[(path, prev, tree, payload)]] = drain(got, 1)  # not just /n: /gone is unknown
        assert (path, prev, tree, payload) == ("/", MISSING, {"n": 299, "gone": 1}, RESYNCED)
    unwatch()
