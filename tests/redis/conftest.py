"""Fixtures for the Redis tests: a fresh key prefix per test on the session redis-server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from restate.backends.redis import RedisBackend
from tests.redis_fixture import RedisServer


@pytest.fixture
def prefix(redis_server: RedisServer) -> str:
    return redis_server.unique_prefix()


@pytest.fixture
def url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def backend(url: str, prefix: str) -> Iterator[RedisBackend]:
    with RedisBackend(url, prefix) as store:
        yield store


@pytest.fixture
def other(url: str, prefix: str) -> Iterator[RedisBackend]:
    """A second client of the same state (another process, as far as Redis can tell)."""
    with RedisBackend(url, prefix) as store:
        yield store


@pytest.fixture
def raw(url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(url, decode_responses=True)
    yield client
    client.close()


def keys_of(raw: redis.Redis, prefix: str) -> set[str]:
    """Every key of one test's state (SCAN is fine in a test, never in the backend)."""
    return set(raw.scan_iter(match=f"{{{prefix}}}:*", count=1000))
