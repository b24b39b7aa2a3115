"""A write whose reply was lost is sent again once, and applied once: the resend says it is
one, and the script looks for the write's id in the stream before applying it (no per-write
bookkeeping). When it cannot tell, it refuses with BackendError instead of applying twice."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from restate import ControllerSync
from restate.backends.base import MISSING
from restate.backends.redis import RedisAsyncBackend, RedisBackend
from restate.backends.redis import library as library_module
from restate.backends.redis.library import _FUNCTIONS, resend
from restate.errors import BackendError

pytestmark = pytest.mark.redis


def stream_len(raw: redis.Redis, prefix: str) -> int:
    return raw.xlen(f"{{{prefix}}}:changes")


def lose_next_reply(backend: RedisBackend, applied: bool, sent: list[list[str]]) -> None:
    """The next script call on ``backend`` loses its reply: after the server ran it
    (``applied``) or before it reached the server. ``sent`` records every FCALL sent."""
    calls = backend._calls
    assert calls is not None
    conn = calls._checkout()
    real_send, real_read = conn.send_packed_command, conn.read_response
    state = {"armed": True}

    def send(packed, check_health=True):
        sent.append(packed[0].decode().split("\r\n")[2::2])
        if state["armed"] and not applied:
            state["armed"] = False
            raise redis.ConnectionError("connection reset before the command went out")
        return real_send(packed, check_health=check_health)

    def read(*args, **kwargs):
        reply = real_read(*args, **kwargs)
        if state["armed"]:
            state["armed"] = False
            raise redis.ConnectionError("connection reset before the reply came back")
        return reply

    conn.send_packed_command, conn.read_response = send, read
    calls._idle.append(conn)


def test_a_leaf_write_whose_reply_was_lost_is_resent_and_applied_once(backend, raw, prefix):
    backend.write("/n", 0)
    entries = stream_len(raw, prefix)
    sent: list[list[str]] = []
    lose_next_reply(backend, applied=True, sent=sent)
    assert backend.swap("/n", 1) == 0  # the previous value, from the entry the resend found
    assert backend.read("/n") == 1
    assert stream_len(raw, prefix) == entries + 1
    first, again = sent[:2]  # (then the read)
    assert first[1] == again[1] == _FUNCTIONS["put"]
    assert first[4 + 4] == "" and int(again[4 + 4]) >= 6000  # the resend carries its window


def test_a_write_that_never_reached_the_server_is_applied_by_its_resend(backend, raw, prefix):
    backend.write("/n", 0)
    entries = stream_len(raw, prefix)
    lose_next_reply(backend, applied=False, sent=[])
    assert backend.swap("/n", 1) == 0
    assert backend.read("/n") == 1
    assert stream_len(raw, prefix) == entries + 1


def test_a_dict_write_and_a_delete_whose_replies_were_lost_are_applied_once(backend, raw, prefix):
    backend.write("/d", {"a": 1})
    entries = stream_len(raw, prefix)
    lose_next_reply(backend, applied=True, sent=[])
    assert backend.swap("/d", {"b": 2}) == {"a": 1}
    lose_next_reply(backend, applied=True, sent=[])
    backend.delete("/d/b")
    assert backend.read("/d") == {}
    assert stream_len(raw, prefix) == entries + 2


def test_a_commit_whose_reply_was_lost_is_applied_once(backend, raw, prefix):
    controller = ControllerSync(backend)
    controller.update("/c", lambda n: n + 1, default=0)
    entries = stream_len(raw, prefix)
    real_commit = type(backend)._run
    done = {"armed": True}

    def run(self, op):
        # the commit is the call that releases: lose its reply once, after it was applied
        if done["armed"] and op.gi_code.co_name == "finish":
            done["armed"] = False
            lose_next_reply(self, applied=True, sent=[])
        return real_commit(self, op)

    type(backend)._run = run
    try:
        controller.update("/c", lambda n: n + 1, default=0)
    finally:
        type(backend)._run = real_commit
    assert not done["armed"]
    assert backend.read("/c") == 2
    assert stream_len(raw, prefix) == entries + 1
    assert raw.hlen(f"{{{prefix}}}:leases") == 0
    controller.close()


def test_a_resend_that_cannot_tell_refuses_and_applies_nothing(url, prefix, raw):
    with RedisBackend(url, prefix, stream_maxbytes=1024) as backend:
        for i in range(40):  # the byte budget drops the first entries: the stream is trimmed
            backend.write("/n", i)
        assert raw.xrange(f"{{{prefix}}}:changes", count=1)[0][1]["s"] != "1"
        entries = stream_len(raw, prefix)
        lose_next_reply(backend, applied=False, sent=[])
        with pytest.raises(BackendError, match="cannot tell whether it was applied"):
            backend.write("/n", "never")
        assert backend.read("/n") == 39
        assert stream_len(raw, prefix) == entries
        backend.write("/n", 40)  # the next write is not affected
        assert backend.read("/n") == 40


def test_a_resend_looks_for_its_write_id_within_its_window_only(url, prefix, raw):
    stream = f"{{{prefix}}}:changes"
    with RedisBackend(url, prefix, stream_maxbytes=1024) as backend:
        for i in range(40):  # trimmed: the stream no longer starts at its first commit
            backend.write("/n", i)
        put = backend._scripts["put"]
        args = [backend.origin, "10000", "1024", "x1", "", "0", "", "/n", "/", "n", "41"]
        assert put(keys=[stream], args=args)[0] == "ok"
        args[4] = "60000"  # a minute back: found, although the stream was trimmed
        assert put(keys=[stream], args=args) == ["done", '[{"p":"\\/n","o":39,"n":41}]']
        args[3] = "x2"  # never applied, and the minute reaches before the trimmed stream
        assert put(keys=[stream], args=args) == ["unsure"]
        first_ms = int(raw.xrange(stream, count=1)[0][0].split("-")[0])
        deadline = time.monotonic() + 10
        while int(raw.time()[0]) * 1000 + int(raw.time()[1]) // 1000 <= first_ms + 1:
            assert time.monotonic() < deadline, "the server clock did not move"
        args[4] = "1"  # a window after the stream's first entry: it covers it, not there
        assert put(keys=[stream], args=args)[0] == "ok"
        assert backend.read("/n") == 41


def test_a_resend_on_a_stream_never_trimmed_is_definite(backend, raw, prefix):
    put = backend._scripts["put"]
    key = [f"{{{prefix}}}:changes"]
    backend.write("/n", 0)
    args = [backend.origin, "10000", "", "w1", "600000", "1", "", "/n", "/", "n", "1"]
    # a resend of a write never applied, on a stream holding its first commit: applied
    first = put(keys=key, args=args)
    assert first[0] == "ok" and first[2] == "0"
    assert put(keys=key, args=args) == ["done", '[{"p":"\\/n","o":0,"n":1}]']
    assert backend.read("/n") == 1
    assert stream_len(raw, prefix) == 2


def test_only_write_scripts_are_marked_when_resent():
    words = ["FCALL", _FUNCTIONS["put"], "1", "k", "o", "1", "", "w1", "", "0"]
    marked = resend(words, 0.25, 5.0)
    assert marked[8] == "6250" and words[8] == ""  # elapsed + timeout + 1 s, a copy
    assert resend(words, 0.25, None)[8] == "61250"
    read = ["FCALL", _FUNCTIONS["read"], "1", "k", "/a", "2000"]
    assert resend(read, 1.0, 5.0) is read


@pytest.mark.parametrize("client", ["made by the backend", "single_connection_client"])
def test_an_async_write_whose_reply_was_lost_is_applied_once(url, prefix, raw, monkeypatch, client):
    real = library_module._roundtrip
    lost = {"armed": False}

    async def roundtrip(conn, words):
        reply = await real(conn, words)
        if lost["armed"] and words[1] == _FUNCTIONS["put"]:
            lost["armed"] = False
            raise redis.ConnectionError("connection reset before the reply came back")
        return reply

    monkeypatch.setattr(library_module, "_roundtrip", roundtrip)

    async def main() -> None:
        given = None
        if client == "single_connection_client":  # redis-py's own retry would resend unmarked
            given = redis.asyncio.Redis.from_url(
                url, single_connection_client=True, decode_responses=True
            )
        backend = (
            RedisAsyncBackend(url, prefix)
            if given is None
            else RedisAsyncBackend(prefix=prefix, client=given)
        )
        await backend.write("/n", 0)
        entries = stream_len(raw, prefix)
        lost["armed"] = True
        assert await backend.swap("/n", 1) == 0
        assert not lost["armed"]
        assert await backend.read("/n") == 1
        assert await backend.read("/m", MISSING) is MISSING
        assert stream_len(raw, prefix) == entries + 1
        await backend.close()
        if given is not None:
            await given.aclose()

    asyncio.run(main())


def test_a_cluster_resend_after_a_failover_says_it_is_one():
    """ClientScripts on a cluster client: its own retry (redis-py does not retry a call sent
    to a given node) marks the write it sends again; a read goes again as it was."""
    from restate.backends.redis.library import ClientScripts, Library

    sent: list[tuple[str, ...]] = []

    class Cluster:
        def get_node_from_key(self, key):
            return "node"

        def execute_command(self, *words, target_nodes=None):
            sent.append(words)
            if len(sent) % 2 == 1:
                raise redis.ConnectionError("the master went away")
            return ["ok", "1-1", False]

    scripts = ClientScripts(Cluster(), Library())
    scripts._cluster = True
    args = ["o", "10000", "", "w1", "", "0", "", "/n", "/", "n", "1"]
    assert scripts["put"](keys=["{t}:changes"], args=args) == ["ok", "1-1", False]
    first, again = sent
    assert first[4 + 4] == "" and int(again[4 + 4]) >= 61_000  # no timeout known: a minute
    assert scripts["read"](keys=["{t}:changes"], args=["/n", "2000"])
    assert sent[2] == sent[3]


def test_a_big_write_whose_last_script_lost_its_reply_is_applied_once(backend, raw, prefix):
    from restate.backends.redis.big import BIG

    old = {f"k{i}": i for i in range(BIG + 10)}
    new = {f"k{i}": -i for i in range(BIG + 10)}
    backend.write("/t", old)
    entries = stream_len(raw, prefix)
    calls = backend._calls
    conn = calls._checkout()  # the one connection this thread's calls use
    calls._idle.append(conn)
    real_send, real_read = conn.send_packed_command, conn.read_response
    state = {"last": "", "lost": 0}

    def send(packed, check_health=True):
        state["last"] = packed[0].decode(errors="replace")[:200]
        return real_send(packed, check_health=check_health)

    def read(*args, **kwargs):
        reply = real_read(*args, **kwargs)
        if _FUNCTIONS["swap"] in state["last"] and not state["lost"]:
            state["lost"] += 1
            raise redis.ConnectionError("connection reset before the reply came back")
        return reply

    conn.send_packed_command, conn.read_response = send, read
    assert backend.swap("/t", new) == old
    assert state["lost"] == 1
    assert backend.read("/t") == new
    assert stream_len(raw, prefix) == entries + 1
    assert raw.hlen(f"{{{prefix}}}:leases") == 0
