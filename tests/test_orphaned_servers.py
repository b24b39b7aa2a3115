"""Servers the suite starts die with it (tests/orphans.py): a pytest run holding the
redis-server fixture is sent SIGTERM (a CI timeout) or SIGKILL, and the server's pid must be
gone within a deadline -- SIGTERM through the fixtures' teardown, SIGKILL through
PR_SET_PDEATHSIG."""

from __future__ import annotations

import os
import select
import signal
import sys
from pathlib import Path

import pytest

from tests.children import ROOT, Child
from tests.redis_fixture import REDIS_SERVER

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not os.path.exists(REDIS_SERVER), reason="redis-server is not installed"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pidfd and prctl: Linux"),
]

HOLDER = """
import signal

def test_holds_a_redis_server(redis_server):
    print("server-pid", redis_server.proc.pid, flush=True)
    signal.pause()  # until pytest itself is signalled
"""
DEADLINE = 30  # seconds for a server to go once pytest is gone (a busy machine)


def _pytest_holding_a_server(tmp_path: Path) -> tuple[Child, int]:
    """A child pytest (with this suite's conftest) inside a test that holds the
    redis-server fixture; and that server's pid."""
    test = tmp_path / "test_holder.py"
    test.write_text(HOLDER)
    config = str(ROOT / "pyproject.toml")
    child = Child.module("pytest", "-c", config, "-p", "tests.conftest", "-s", "-q", str(test))
    for _ in range(200):  # pytest's own lines come first
        line = child.read_line()
        if line.startswith("server-pid "):
            return child, int(line.split()[1])
    child.kill()
    pytest.fail("the child pytest never printed the server's pid")


def _ends_within(pid: int, timeout: float) -> bool:
    """Whether process ``pid`` (not our child) ends within ``timeout`` seconds."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True  # gone already
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(fd)


@pytest.mark.slow
def test_a_pytest_sent_sigterm_stops_the_redis_server_it_started(tmp_path: Path) -> None:
    child, server = _pytest_holding_a_server(tmp_path)
    with child:
        assert not _ends_within(server, 0), "the server must run while the test holds it"
        child.send_signal(signal.SIGTERM)
        assert child.wait() == 128 + signal.SIGTERM  # stopped through teardown, not killed
        assert _ends_within(server, DEADLINE), f"redis-server {server} outlived pytest"


@pytest.mark.slow
def test_a_pytest_killed_by_sigkill_takes_the_redis_server_it_started_with_it(
    tmp_path: Path,
) -> None:
    child, server = _pytest_holding_a_server(tmp_path)
    with child:
        assert not _ends_within(server, 0)
        child.kill()  # no handler, no teardown: only PR_SET_PDEATHSIG can stop the server
        assert _ends_within(server, DEADLINE), f"redis-server {server} outlived pytest"
