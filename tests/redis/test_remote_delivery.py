"""A remote commit of one change heard only by plain subscriptions skips the engine's round
(``_engine/direct.py: deliver_external``); everything any subscriber, listener, derivation or
tracked function sees must be what the full round delivers. No server: a watching in-memory
store plays the other process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from restate import ControllerSync
from restate.backends.memory import InMemoryBackend
from restate.missing import MISSING


class Watched(InMemoryBackend):
    """An in-memory store whose ``remote`` writes arrive as a follower's would."""

    def watch(self, on_changes: Callable[[list[Any]], Any]) -> Callable[[], None]:
        self.on_changes = on_changes
        return lambda: None

    def remote(self, path: str, value: Any) -> None:
        prev = self.read(path, MISSING)
        if value is MISSING:
            self.delete(path)
        else:
            self.write(path, value)
        self.on_changes([(path, prev, value)])


def scenario(direct: bool) -> list[Any]:
    store = Watched({"a": {"b": 1, "c": {"d": 1}}, "other": 0})
    state = ControllerSync(store)
    state._engine.direct_writes = direct
    log: list[Any] = []

    def sub(name: str, stop: bool = False) -> Callable[[Any], None]:
        def callback(e: Any) -> None:
            log.append((name, str(e.emitting_path), str(e.current_path), e.prev_value, e.new_value))
            if stop:
                e.stop_bubbling()

        return callback

    state.subscribe("/a/b", sub("b"))
    state.subscribe("/a", sub("a"))
    state.subscribe("/", sub("root"))
    state.subscribe("/a/c/d", sub("d", stop=True))
    state.subscribe("/a/c", sub("c-never-after-stop"))
    state.on_changes(lambda changes: log.append(("listener", [tuple(c) for c in changes])))

    def echo(e: Any) -> None:  # a callback that writes: its round comes after this one
        if e.new_value == 5:
            e.set_state("/echo", "from b")

    state.subscribe("/a/b", echo)
    state.subscribe("/echo", sub("echo"))
    state.derive("/double", "/other", lambda v: (v or 0) * 2)
    state.subscribe("/double", sub("double"))
    store.remote("/a/b", 2)  # a route of plain subscriptions (ancestors included)
    store.remote("/a/c/d", 7)  # stop_bubbling on the route
    store.remote("/a/b", 5)  # a callback writes during the delivery
    store.remote("/a", {"b": 6, "x": 1})  # a dict where subscriptions lie below: the planner
    store.remote("/other", 4)  # a derivation source: the planner
    store.remote("/nobody/here", 1)  # heard only by the listener
    store.remote("/a/b", MISSING)
    return log


def test_a_remote_change_delivered_from_its_route_is_what_the_full_round_delivers() -> None:
    direct = scenario(direct=True)
    assert direct == scenario(direct=False)
    assert ("b", "/a/b", "/a/b", 1, 2) in direct
    assert ("echo", "/echo", "/echo", None, "from b") in direct
    assert ("double", "/double", "/double", 0, 8) in direct
    assert not [entry for entry in direct if entry[0] == "c-never-after-stop"]


def test_a_remote_change_heard_by_nobody_changes_nothing_and_calls_nothing() -> None:
    store = Watched({"x": 1})
    state = ControllerSync(store)
    seen: list[Any] = []
    state.subscribe("/y", seen.append)
    store.remote("/x", 2)
    assert seen == []
    assert state.get_state("/x") == 2


@pytest.mark.parametrize("direct", [True, False])
def test_a_failing_subscriber_of_a_remote_change_does_not_stop_the_others(
    direct: bool, caplog: pytest.LogCaptureFixture
) -> None:
    store = Watched({"x": 1})
    state = ControllerSync(store)
    state._engine.direct_writes = direct
    seen: list[Any] = []

    def boom(e: Any) -> None:
        raise RuntimeError("boom")

    state.subscribe("/x", boom)
    state.subscribe("/", lambda e: seen.append(e.new_value))
    store.remote("/x", 2)
    assert seen == [2]  # an ancestor hears the written value, as for a local write
    assert "boom" in caplog.text
