"""A tracked cell over Redis re-runs when another controller (another process's view of the
same server) writes: the write arrives on the backend's follower thread."""

from __future__ import annotations

import time
import uuid

import pytest

from restate import ControllerSync, RedisBackend

from .conftest import Shell, seen

pytestmark = pytest.mark.redis


def wait_until(check, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


def test_write_by_another_controller_on_redis_reruns_a_tracked_cell(
    shell: Shell, redis_server
) -> None:  # type: ignore[no-untyped-def]
    url = redis_server.url
    prefix = f"nb-{uuid.uuid4().hex[:8]}"
    # (a prefix keeps this test's keys apart on the shared server; the magic takes a URL only)
    mine = RedisBackend(url, prefix=prefix)
    shell.controller.set_backend(mine)
    cell = shell.tracked('print("remote says", state.get("/msg"))')
    other = ControllerSync(RedisBackend(url, prefix=prefix))
    try:
        other.set_state("/msg", "hello")
        assert wait_until(lambda: seen(cell) == "remote says hello\n"), seen(cell)
    finally:
        other.close()
        other.backend.close()
        shell.run("%restate backend memory")
        mine.close()


def test_backend_magic_accepts_a_redis_url(shell: Shell, redis_server) -> None:  # type: ignore[no-untyped-def]
    shell.run(f"%restate backend redis {redis_server.url}")
    assert type(shell.controller.backend).__name__ == "RedisBackend"
    shell.run('state["/nb-magic-check"] = 1')
    assert shell.controller.backend.read("/nb-magic-check") == 1
    shell.run('del state["/nb-magic-check"]')
    shell.run("%restate backend memory")
