"""The scripts as a Redis Functions library, and the EVALSHA fallback where there are none."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from restate import ControllerSync
from restate.backends.redis import RedisAsyncBackend, RedisBackend
from restate.backends.redis.scripts import LIBRARY_NAME
from tests.redis_fixture import RedisServer

pytestmark = pytest.mark.redis


def calls(raw: redis.Redis) -> dict[str, int]:
    stats = raw.info("commandstats")
    return {k[len("cmdstat_") :]: v["calls"] for k, v in stats.items()}


def exercise(backend: RedisBackend) -> None:
    """Every kind of script: writes, swaps, reads, a transaction, a delete."""
    controller = ControllerSync(backend)
    controller.set_state("/n", 1)
    controller.update("/n", lambda n: n + 1)
    with controller.batch():
        controller.set_state("/d/a", 1)
        controller.set_state("/d/b", 2)
    assert backend.read("/") == {"n": 2, "d": {"a": 1, "b": 2}}
    assert backend._occupied("/d", frozenset({"a"})) is True
    backend.delete("/d/a")
    assert backend.read("/d") == {"b": 2}
    controller.close()


@pytest.fixture
def old_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server without Functions, as Redis 6 is (the commands renamed away)."""
    extra = ("--rename-command", "FCALL", "", "--rename-command", "FUNCTION", "")
    server = RedisServer(tmp_path, extra=extra).start()
    try:
        yield server
    finally:
        server.stop()


def test_the_library_is_loaded_once_and_every_call_is_an_fcall(backend, raw):
    exercise(backend)
    listed = [dict(zip(lib[::2], lib[1::2], strict=True)) for lib in raw.function_list()]
    libraries = [lib["library_name"] for lib in listed]
    assert LIBRARY_NAME in libraries
    raw.config_resetstat()
    exercise(backend)
    stats = calls(raw)
    assert stats["fcall"] > 5
    assert not {"evalsha", "eval", "function|load"} & stats.keys()


def test_a_flushed_library_is_loaded_again_by_the_next_call_which_then_succeeds(backend, raw):
    backend.write("/n", 1)
    raw.function_flush()
    assert backend.swap("/n", 2) == 1
    assert backend.read("/n") == 2
    assert raw.function_list(LIBRARY_NAME)


def test_a_server_without_functions_gets_the_same_scripts_by_evalsha(old_server):
    client = redis.Redis.from_url(old_server.url, decode_responses=True)
    try:
        with pytest.raises(redis.ResponseError, match="unknown command"):
            client.function_list()
        with RedisBackend(old_server.url, "old") as backend:
            exercise(backend)
            assert backend._library.functions is False
        assert calls(client)["evalsha"] > 5
    finally:
        client.close()


def test_a_user_whose_acl_refuses_functions_gets_the_same_scripts_by_evalsha(url, raw, prefix):
    user = f"nofn{prefix}"
    raw.acl_setuser(
        user, enabled=True, passwords=["+pw"], keys=["*"], channels=["*"],
        commands=["+@all", "-function", "-fcall", "-fcall_ro"],
    )  # fmt: skip
    try:
        limited = url.replace("redis://", f"redis://{user}:pw@")
        with RedisBackend(limited, prefix) as backend:
            exercise(backend)
            assert backend._library.functions is False
    finally:
        raw.acl_deluser(user)


def test_a_user_allowed_fcall_but_not_function_load_falls_back_when_the_library_is_missing(
    tmp_path,
):
    server = RedisServer(tmp_path).start()  # its own server: no library loaded yet
    try:
        admin = redis.Redis.from_url(server.url, decode_responses=True)
        admin.acl_setuser(
            "app", enabled=True, passwords=["+pw"], keys=["*"], channels=["*"],
            commands=["+@all", "-function"],
        )  # fmt: skip
        limited = server.url.replace("redis://", "redis://app:pw@")
        with RedisBackend(limited, "acl") as backend:
            exercise(backend)
            assert backend._library.functions is False
        assert admin.function_list() == []
        admin.close()
    finally:
        server.stop()


def test_the_async_twin_calls_functions_and_falls_back_on_an_old_server(url, prefix, old_server):
    asyncio.run(asyncio.wait_for(both_async(url, prefix, old_server), 20))


async def both_async(url: str, prefix: str, old_server: RedisServer) -> None:
    backend = RedisAsyncBackend(url, prefix)
    await backend.write("/n", 1)
    assert await backend.swap("/n", 2) == 1
    assert backend._library.functions is True
    await backend.close()
    old = RedisAsyncBackend(old_server.url, "old")
    await old.write("/n", 1)
    assert await old.swap("/n", 2) == 1
    async with old.transaction():
        await old.write("/m", await old.read("/n"))
    assert await old.read("/") == {"n": 2, "m": 2}
    assert old._library.functions is False
    await old.close()
