"""The script call fast path (calls.py): checked-out connections, a forgotten script loaded
again, an interrupted call never leaving its reply for the next one, a connection that died."""

from __future__ import annotations

import queue
import threading

import pytest
import redis

from restate.backends.base import MISSING
from restate.backends.redis import RedisBackend
from restate.errors import BackendError

pytestmark = pytest.mark.redis


def test_a_script_the_server_forgot_is_loaded_again(backend, raw):
    backend.write("/a", 1)
    raw.script_flush()  # what a restart without persistence of scripts does
    backend.write("/a", 2)
    assert backend.read("/a") == 2


def test_an_interrupt_between_sending_and_reading_leaves_no_reply_for_the_next_call(backend):
    backend.write("/a", 1)
    calls = backend._calls
    conn = calls._checkout()
    real = conn.read_response

    def interrupted(*args, **kwargs):
        conn.read_response = real
        raise KeyboardInterrupt  # Ctrl-C lands after the command went out

    conn.read_response = interrupted
    calls._idle.append(conn)
    with pytest.raises(KeyboardInterrupt):
        backend.write("/a", 2)
    # the same connection serves the next calls: its unread reply must not answer them
    assert backend.read("/a") == 2
    assert backend.swap("/a", 3) == 2
    assert backend.read("/b", MISSING) is MISSING


def test_a_connection_the_server_closed_is_reopened_once_and_the_write_applied_once(
    backend, raw, prefix
):
    backend.write("/n", 0)
    killed = 0
    for client in raw.client_list():
        if client["name"] == "" and client["cmd"] == "fcall":
            killed += raw.client_kill_filter(_id=client["id"])
    assert killed == 1
    entries = raw.xlen(f"{{{prefix}}}:changes")
    assert backend.swap("/n", 1) == 0
    assert backend.read("/n") == 1
    assert raw.xlen(f"{{{prefix}}}:changes") == entries + 1


def test_threads_writing_at_once_each_check_out_a_connection_and_all_writes_land(backend):
    def write(i: int) -> None:
        for j in range(100):
            backend.write(f"/t{i}", j)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert backend.read("/") == {f"t{i}": 99 for i in range(4)}
    assert 1 <= len(backend._calls._held) <= 4


def test_close_gives_the_connections_back_and_a_later_call_fails_clearly(url, prefix):
    client = redis.Redis.from_url(url, decode_responses=True)
    backend = RedisBackend(client=client, prefix=prefix)
    backend.write("/a", 1)
    in_use = len(client.connection_pool._in_use_connections)
    backend.close()
    assert len(client.connection_pool._in_use_connections) == in_use - 1
    with pytest.raises(BackendError, match="closed"):
        backend.write("/a", 2)
    assert client.ping()  # the client passed in stays usable
    client.close()


@pytest.mark.parametrize("protocol", [2, 3])
def test_a_follower_reads_the_stream_in_either_protocol(url, prefix, other, protocol):
    got: queue.Queue = queue.Queue()
    with RedisBackend(f"{url}?protocol={protocol}", prefix) as store:
        assert store._client.connection_pool.connection_kwargs["protocol"] == protocol
        store.watch(got.put)
        other.write("/a", {"b": 1})
        other.write("/a/b", 2)
        seen = [got.get(timeout=30)]
        while seen[-1][-1] != ("/a/b", 1, 2):
            seen.append(got.get(timeout=30))
        assert [c for call in seen for c in call] == [("/a", MISSING, {"b": 1}), ("/a/b", 1, 2)]


@pytest.mark.parametrize(
    "words",
    [
        ["FCALL", "f", "1", "{k}:changes", "", "é✓ naïve", 5, "/a/b", '{"x":"\\u00e9"}'],
        ["FCALL", "f", "1", "{k}:changes", "", "é✓ naïve", "/a/b"],  # unicode, no numbers
        ["FCALL", "f", "1", "{k}:changes", "", "/a/b", "12"],  # ASCII only: the fast path
    ],
)
def test_a_command_is_packed_byte_for_byte_as_redis_py_packs_it_unicode_and_numbers_included(
    words,
):
    from redis.connection import PythonRespSerializer

    from restate.backends.redis.calls import pack

    def encode(word: object) -> bytes:
        return word if isinstance(word, bytes) else str(word).encode()

    expected = b"".join(PythonRespSerializer(65536, encode).pack(*words))
    assert pack(words) == expected
