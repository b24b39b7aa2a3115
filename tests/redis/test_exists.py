"""RedisBackend.exists(): one HEXISTS, never a subtree read; buffered writes of a transaction
decide first (and ``_occupied``, the hybrid's probe, likewise)."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest
import redis

from restate.backends.base import MISSING
from restate.backends.probe import holds
from restate.backends.redis import RedisAsyncBackend, RedisBackend
from restate.errors import PathConflictError

pytestmark = pytest.mark.redis

KEYS = ("a", "b", "c")
PATHS = ["/"] + ["/" + "/".join(p) for n in (1, 2, 3) for p in itertools.product(KEYS, repeat=n)]
IGNORES = [frozenset(), frozenset({"b"}), frozenset(KEYS)]


def calls(raw: redis.Redis) -> dict[str, int]:
    """Calls per command since the last CONFIG RESETSTAT (CONFIG itself, and the handshake of
    a new pooled connection, left out)."""
    stats = raw.info("commandstats")
    found = {name[len("cmdstat_") :]: s["calls"] for name, s in stats.items()}
    handshake = ("config", "hello", "client")
    return {name: n for name, n in found.items() if not name.startswith(handshake)}


def test_exists_is_one_hexists_whatever_the_size_of_the_subtree(backend, raw):
    backend.write("/big", {str(i): {"v": i, "w": {"x": [i]}} for i in range(300)})
    backend.write("/leaf", 1)
    raw.config_resetstat()
    answers = [backend.exists(p) for p in ("/big", "/big/7/w", "/big/nope", "/leaf", "/x/y")]
    assert answers == [True, True, False, True, False]
    assert backend.exists("/") is True  # no command: the root always reads as a dict
    assert calls(raw) == {"hexists": 5}


def test_occupied_is_one_script_reading_no_subtree(backend, raw):
    backend.write("/big", {str(i): {"v": i} for i in range(300)})
    backend._occupied("/nothing")  # loads the script
    raw.config_resetstat()
    assert backend._occupied("/big", frozenset({"1", "2"})) is True
    assert backend._occupied("/", frozenset({"big"})) is False
    stats = calls(raw)
    assert stats["fcall"] == 2 and "eval" not in stats and "evalsha" not in stats
    assert "hgetall" not in stats and "hscan" not in stats and stats["hlen"] == 2


def disagreements(backend: RedisBackend) -> list[str]:
    wrong = []
    for path in PATHS:
        value = backend.read(path, MISSING)
        if backend.exists(path) != (value is not MISSING):
            wrong.append(f"exists {path}: {value!r}")
        for ignore in IGNORES:
            if backend._occupied(path, ignore) != holds(value, ignore):
                wrong.append(f"_occupied {path} {sorted(ignore)}: {value!r}")
    return wrong


def random_ops(backend: RedisBackend, rng: random.Random, count: int) -> None:
    for _ in range(count):
        path = "/" + "/".join(rng.choice(KEYS) for _ in range(rng.randint(0, 3)))
        value = rng.choice([MISSING, 1, {}, {"c": 2}, {"a": {"b": {}}}])
        try:
            if value is MISSING:
                backend.delete(path)
            elif path != "/" or type(value) is dict:
                backend.write(path, value)
        except PathConflictError:
            pass


def test_inside_a_transaction_exists_sees_the_buffered_writes_and_deletes(backend, other):
    backend.write("/a", {"a": 1, "b": {"c": 2}})
    with backend.transaction():
        backend.write("/b/c/a", 1)  # /b and /b/c created by the buffer only
        backend.delete("/a/a")
        backend.delete("/a/b/c")  # /a/b is {} in the buffer, /a has only b
        backend.write("/a/c/b", {})
        assert disagreements(backend) == []
    assert disagreements(backend) == []
    rng = random.Random(11)
    random_ops(backend, rng, 15)  # stored data the buffer patches over
    for _round in range(6):
        with backend.transaction():
            for _ in range(4):
                random_ops(backend, rng, 3)
                assert disagreements(backend) == []
            buffered = backend.read("/")
        assert other.read("/") == buffered
        assert disagreements(backend) == []


def test_the_async_twin_answers_the_same(url, prefix):
    async def main() -> list[bool]:
        async with RedisAsyncBackend(url, prefix) as store:
            await store.write("/a", {"b": {}})
            found = [await store.exists(p) for p in ("/", "/a", "/a/b", "/a/c")]
            async with store.transaction():
                await store.delete("/a/b")
                found.append(await store.exists("/a/b"))
                found.append(await store._occupied("/a"))
            return found

    assert asyncio.run(main()) == [True, True, True, False, False, False]
