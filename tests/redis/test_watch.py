"""RedisBackend.watch(): changes of other clients, delivered once, with prev and new values."""

from __future__ import annotations

import gc
import queue
import threading
import time

import pytest

from restate import ControllerSync
from restate.backends.base import MISSING
from restate.backends.redis import RedisBackend

pytestmark = pytest.mark.redis


def collect(store: RedisBackend):
    got: queue.Queue = queue.Queue()
    unwatch = store.watch(got.put)
    return got, unwatch


def test_a_write_of_another_client_arrives_with_its_prev_and_new_values(backend, other):
    other.write("/a", {"b": 1})
    got, unwatch = collect(backend)
    other.write("/a/b", 2)
    other.write("/a", {"c": [1]})
    other.delete("/a/c")
    assert got.get(timeout=30) == [("/a/b", 1, 2)]
    assert got.get(timeout=30) == [("/a", {"b": 2}, {"c": [1]})]
    assert got.get(timeout=30) == [("/a/c", [1], MISSING)]
    unwatch()


def test_own_writes_are_not_delivered_back(backend, other):
    got, unwatch = collect(backend)
    backend.write("/mine", 1)
    other.write("/theirs", 2)
    assert got.get(timeout=30) == [("/theirs", MISSING, 2)]
    time.sleep(0.1)
    assert got.empty()
    unwatch()


def test_a_transaction_of_another_client_arrives_as_one_list(backend, other):
    got, unwatch = collect(backend)
    with other.transaction():
        other.write("/x", 1)
        other.write("/y", 2)
    assert sorted(got.get(timeout=30)) == [("/x", MISSING, 1), ("/y", MISSING, 2)]
    unwatch()


def test_a_rolled_back_transaction_is_never_delivered(backend, other):
    got, unwatch = collect(backend)
    with pytest.raises(KeyError), other.transaction():
        other.write("/x", 1)
        raise KeyError("no")
    other.write("/after", 1)
    assert got.get(timeout=30) == [("/after", MISSING, 1)]
    unwatch()


def test_after_unwatch_nothing_is_delivered_and_the_thread_ends(backend, other):
    got, unwatch = collect(backend)
    other.write("/a", 1)
    assert got.get(timeout=30)
    threads = {t for t in threading.enumerate() if t.name.startswith("restate-redis-follower")}
    started = time.monotonic()
    unwatch()
    assert time.monotonic() - started < 10  # unwatch does not wait out a long block
    other.write("/a", 2)
    time.sleep(0.2)
    assert got.empty()
    assert not any(t.is_alive() for t in threads if backend.origin[:8] in t.name)


def test_a_handler_that_raises_does_not_stop_the_follower(backend, other, caplog):
    got: list = []

    def handler(changes):
        got.append(changes)
        if len(got) == 1:
            raise ValueError("handler bug")

    unwatch = backend.watch(handler)
    other.write("/a", 1)
    deadline = time.monotonic() + 30
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    other.write("/a", 2)  # after the first delivery (else the burst arrives merged)
    while len(got) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got == [[("/a", MISSING, 1)], [("/a", 1, 2)]]
    assert "handler bug" in caplog.text
    unwatch()


class Listener:
    def __init__(self) -> None:
        self.got: queue.Queue = queue.Queue()

    def on_changes(self, changes) -> None:
        self.got.put(changes)


def follower_threads(store: RedisBackend) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.endswith(store.origin[:8])]


@pytest.mark.parametrize("writes", [False, True], ids=["nothing written", "written"])
def test_a_follower_whose_listener_was_collected_ends_and_calls_nothing(
    backend, other, monkeypatch, writes
):
    """A bound method is held weakly: once its object is gone the follower ends -- at the
    next entry, or when its blocking read times out if nothing is written."""
    from restate.backends.redis import shell

    monkeypatch.setattr(shell, "BLOCK_MS", 200)  # the read's timeout: the quiet case's wait
    listener = Listener()
    backend.watch(listener.on_changes)
    other.write("/a", 1)
    assert listener.got.get(timeout=30) == [("/a", MISSING, 1)]
    [thread] = follower_threads(backend)
    got = listener.got
    del listener
    gc.collect()
    if writes:
        other.write("/a", 2)
    thread.join(10)
    assert not thread.is_alive(), "the follower outlived its listener"
    assert got.empty()
    assert not backend._followers  # it took itself off its backend's list


def test_a_controller_runs_subscribers_derivations_and_tracked_functions_for_other_writers(
    backend, other
):
    events: queue.Queue = queue.Queue()
    controller = ControllerSync(backend)
    controller.subscribe(
        "/users", lambda e: events.put(("sub", str(e.emitting_path), e.prev_value, e.new_value))
    )
    controller.derive("/count", "/users", lambda users: len(users or {}))
    controller.track(lambda e: events.put(("track", e.get_state("/count"))))
    assert events.get(timeout=30) == ("track", 0)
    other.write("/users/ann", {"age": 3})
    assert sorted([events.get(timeout=30), events.get(timeout=30)], key=str) == [
        ("sub", "/users/ann", None, {"age": 3}),
        ("track", 1),
    ]
    assert other.read("/count") == 1
    controller.close()


@pytest.mark.parametrize("parser", ["hiredis", "redis-py"])
def test_a_follower_reads_the_same_with_or_without_hiredis(url, prefix, other, monkeypatch, parser):
    from restate.backends.redis import xread

    if parser == "redis-py":
        monkeypatch.setattr(xread, "HIREDIS", False)
    elif not xread.HIREDIS:
        pytest.skip("hiredis is not installed")
    with RedisBackend(url, prefix) as store:
        got, unwatch = collect(store)
        other.write("/a", {"b": [1, "é"]})
        other.write("/a/c", None)
        assert got.get(timeout=30) == [("/a", MISSING, {"b": [1, "é"]})]
        assert got.get(timeout=30) == [("/a/c", MISSING, None)]
        started = time.monotonic()
        unwatch()  # the follower blocks in XREAD (no socket timeout): stop() wakes it
        assert time.monotonic() - started < 5


def test_a_follower_works_over_a_unix_socket(tmp_path):
    from tests.redis_fixture import RedisServer

    path = tmp_path / "redis.sock"
    server = RedisServer(tmp_path, extra=("--unixsocket", str(path), "--unixsocketperm", "700"))
    server.start()
    try:
        url = f"unix://{path}?db=0"
        with RedisBackend(url, "sock") as store, RedisBackend(url, "sock") as writer:
            got, unwatch = collect(store)
            writer.write("/a", 1)
            assert got.get(timeout=30) == [("/a", MISSING, 1)]
            unwatch()
    finally:
        server.stop()
