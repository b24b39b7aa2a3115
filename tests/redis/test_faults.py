"""Unreachable servers and servers that go away: clear BackendErrors, nothing half-written."""

from __future__ import annotations

import signal
import socket
import time

import pytest

from restate import ControllerSync
from restate.backends.redis import RedisAsyncBackend, RedisBackend
from restate.errors import BackendError
from tests.redis_fixture import start_redis_server

pytestmark = pytest.mark.redis


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("cls", [RedisBackend, RedisAsyncBackend])
def test_an_unreachable_url_fails_at_construction_naming_the_url(cls):
    url = f"redis://127.0.0.1:{closed_port()}/0"
    started = time.monotonic()
    with pytest.raises(BackendError, match=f"cannot reach Redis at {url}"):
        cls(url)
    assert time.monotonic() - started < 10  # no retry loop (a refused connect is instant)


def test_a_server_that_accepts_but_never_answers_fails_after_the_connect_timeout():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        started = time.monotonic()
        with pytest.raises(BackendError, match="cannot reach Redis at"):
            RedisBackend(url, connect_timeout=0.3)
        assert time.monotonic() - started < 10  # the 0.3 s timeout, not a retry loop


def test_a_password_in_the_url_is_not_shown_in_errors():
    url = f"redis://user:s3cret@127.0.0.1:{closed_port()}/0"
    with pytest.raises(BackendError) as info:
        RedisBackend(url)
    assert "s3cret" not in str(info.value) and "user:***@" in str(info.value)


def test_a_url_that_is_not_a_redis_url_raises_value_error():
    with pytest.raises(ValueError, match="invalid Redis URL 'http://x'"):
        RedisBackend("http://x")


def test_writes_and_reads_raise_backend_error_while_the_server_is_gone_and_work_after(tmp_path):
    server = start_redis_server(tmp_path, persistent=True)
    try:
        with RedisBackend(server.url) as backend:
            backend.write("/a", 1)
            server.stop()
            started = time.monotonic()
            for operation in (lambda: backend.write("/a", 2), lambda: backend.read("/a")):
                with pytest.raises(BackendError, match=f"Redis at {server.url} failed"):
                    operation()
            assert time.monotonic() - started < 20  # no retry loop per operation
            server.start()
            assert backend.read("/a") == 1
            backend.write("/a", 3)
            assert backend.read("/a") == 3
    finally:
        server.stop()


def test_a_batch_whose_server_dies_before_commit_raises_and_leaves_nothing_written(tmp_path):
    server = start_redis_server(tmp_path, persistent=True)
    try:
        with RedisBackend(server.url, lease_timeout=1) as backend:
            controller = ControllerSync(backend)
            controller.set_state("/keep", {"a": 1})
            with pytest.raises(BackendError), controller.batch():
                controller.set_state("/keep/a", 2)
                controller.set_state("/new", list(range(100)))
                server.stop(signal.SIGKILL)
            server.start()
            assert backend.read("/") == {"keep": {"a": 1}}
            time.sleep(1.1)  # the dead transaction's lock expires
            controller.set_state("/keep/a", 3)
            assert backend.read("/keep/a") == 3
            controller.close()
    finally:
        server.stop()
