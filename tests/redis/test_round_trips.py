"""One round trip per controller write and a controller dropped without close() releasing its
connections and thread (resent writes: test_resend.py)."""

from __future__ import annotations

import gc
import threading
import time

import pytest
import redis

from restate import ControllerSync
from restate.backends.base import MISSING
from restate.backends.redis import RedisBackend
from restate.errors import PathConflictError

pytestmark = pytest.mark.redis


def script_calls(raw: redis.Redis) -> int:
    stats = raw.info("commandstats")
    return sum(
        stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("fcall", "evalsha", "eval")
    )


def test_a_controller_write_is_one_script_call_that_returns_the_previous_value(backend, raw):
    controller = ControllerSync(backend)
    seen = []
    controller.subscribe("/n", lambda e: seen.append((e.prev_value, e.new_value)))
    controller.set_state("/n", 1)
    before = script_calls(raw)
    assert controller.set_state("/n", 2) is True
    assert script_calls(raw) - before == 1
    assert seen == [(None, 1), (1, 2)]
    controller.close()


def test_swap_returns_missing_for_a_new_node_and_an_identical_value_appends_no_entry(
    backend, raw, prefix
):
    assert backend.swap("/a", {"x": 1}) is MISSING
    assert backend.swap("/a/x", 2) == 1
    entries = raw.xlen(f"{{{prefix}}}:changes")
    assert backend.swap("/a/x", 2) == 2
    assert raw.xlen(f"{{{prefix}}}:changes") == entries
    controller = ControllerSync(backend)
    assert controller.set_state("/a/x", 2) is False
    assert raw.xlen(f"{{{prefix}}}:changes") == entries
    controller.close()


def follower_connections(raw: redis.Redis, origin: str) -> int:
    return sum(1 for c in raw.client_list() if c["name"] == f"restate-follower-{origin}")


def test_a_controller_dropped_without_close_releases_its_connections_and_thread(url, prefix, raw):
    controller = ControllerSync(RedisBackend(url, prefix))
    controller.subscribe("/n", lambda event: None)  # starts the follower (lazily, at need)
    controller.update("/n", lambda n: 1, default=0)  # starts the lease renewer too
    origin = controller.backend.origin
    threads = [t for t in threading.enumerate() if origin[:8] in t.name]
    assert len(threads) == 2 and follower_connections(raw, origin) == 1
    del controller
    gc.collect()
    for thread in threads:
        thread.join(5)
        assert not thread.is_alive(), f"{thread.name} outlived its controller"
    deadline = time.monotonic() + 5
    while follower_connections(raw, origin) and time.monotonic() < deadline:
        time.sleep(0.01)  # the server drops a closed connection from CLIENT LIST soon after
    assert follower_connections(raw, origin) == 0


def test_an_update_is_two_script_calls_a_leased_read_and_the_commit(backend, raw):
    controller = ControllerSync(backend)
    controller.update("/n", lambda n: n + 1, default=0)
    controller.update("/deep/er/n", lambda n: n + 1, default=0)
    for path in ("/n", "/deep/er/n"):
        before = script_calls(raw)
        controller.update(path, lambda n: n + 1, default=0)
        assert script_calls(raw) - before == 2, path  # no second read, no probe
        assert backend.read(path) == 2
    controller.close()


def test_a_path_read_as_missing_in_a_transaction_is_still_probed_before_it_is_written(
    backend, other
):
    other.write("/a", 1)  # a leaf: /a/b/c cannot be created below it
    with pytest.raises(PathConflictError), backend.transaction():
        assert backend.read("/a/b", MISSING) is MISSING
        backend.write("/a/b", {"c": 1})
    assert backend.read("/") == {"a": 1}
