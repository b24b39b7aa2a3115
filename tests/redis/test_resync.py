"""A follower that missed trimmed entries re-reads only the paths changed since its last entry:
subscriptions of unrelated paths do not fire, related ones fire exactly once."""

from __future__ import annotations

import collections
import threading
import time

import pytest

from restate import ControllerSync
from restate.backends.redis import RESYNCED, RedisBackend

pytestmark = pytest.mark.redis


def test_a_resync_fires_the_subscriptions_of_changed_paths_once_and_no_others(url, prefix):
    fired: dict[str, list] = collections.defaultdict(list)
    payloads: list = []
    gate, inside, resynced = threading.Event(), threading.Event(), threading.Event()
    with RedisBackend(url, prefix, stream_maxlen=10) as writer:
        writer.write("/", {"a": {"x": 1, "y": 1}, "b": {"y": 1}, "c": 1, "e": 1, "gate": 0})
        with RedisBackend(url, prefix) as store:
            state = ControllerSync(store)

            def record(name):
                def callback(e):
                    fired[name].append((str(e.emitting_path), e.prev_value, e.new_value))
                    payloads.append((name, e.payload))
                    if name == "d":
                        resynced.set()

                return callback

            for path in ("/a/x", "/a/y", "/a", "/b/y", "/b", "/c", "/d", "/e", "/"):
                state.subscribe(path, record(path.strip("/") or "root"))

            def hold(e):
                inside.set()
                assert gate.wait(10), "the test never opened the gate"

            state.subscribe("/gate", hold)
            writer.write("/gate", 1)
            assert inside.wait(10), "the follower never delivered /gate"
            for i in range(2, 200):  # far past stream_maxlen: the entries are trimmed
                writer.write("/a/x", i)
            writer.write("/d", "new")
            writer.delete("/e")
            gate.set()
            assert resynced.wait(10), "no resync arrived"
            time.sleep(0.2)  # (nothing else is due; a second delivery would show here)
            state.close()
    assert fired["a/x"] == [("/a/x", None, 199)]
    assert fired["a"] == [("/a/x", None, 199)]  # an ancestor hears it once, by bubbling
    assert fired["d"] == [("/d", None, "new")]
    assert fired["e"] == [("/e", None, None)]  # deleted: new None (the prev is not known)
    # the root hears the gate, then the resync's three changes as one event about itself
    # (as for a local batch), its prev rebuilt from theirs: "/a/x" and "/e" from missing
    gate_event, resync_event = fired["root"]
    assert gate_event == ("/gate", 0, 1)
    assert resync_event[0] == "/" and resync_event[2]["a"]["x"] == 199
    assert "e" not in resync_event[2] and "x" not in resync_event[1]["a"]
    assert not fired["a/y"] and not fired["b/y"] and not fired["b"] and not fired["c"]
    # a resync's events say so: their prev_value (None) is not what the value was
    assert payloads[0] == ("root", None)  # the gate: a plain remote write
    assert {payload for _name, payload in payloads[1:]} == {RESYNCED}
