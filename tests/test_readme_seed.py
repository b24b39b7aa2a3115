"""The original README's examples, pasted as a user would (SPEC: names and examples are kept)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from restate import ControllerAsync, ControllerSync, DeriveData, InMemoryBackend, StateEvent


def test_quick_start_runs_as_pasted(capsys: Any) -> None:
    controller = ControllerSync()

    def on_users_change(event: StateEvent[ControllerSync]):  # the typing is optional
        new_users = event.get_state("/users")
        print(f"Users changed! New value: {new_users}")

    controller.subscribe("/users", on_users_change)
    controller.set_state("/users/1", {"name": "Alice", "role": "admin"})
    controller.set_state("/users/2", {"name": "Bob", "role": "user"})
    print(controller.get_state("/users/1"))
    controller.derive(
        dest="/stats/admin_count",
        source="/users",
        transform=lambda users: sum(u["role"] == "admin" for u in users.values()),
    )
    print("Admin count", controller.get_state("/stats/admin_count"))
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "Users changed! New value: {'1': {'name': 'Alice', 'role': 'admin'}}",
        "Users changed! New value: {'1': {'name': 'Alice', 'role': 'admin'}, "
        "'2': {'name': 'Bob', 'role': 'user'}}",
        "{'name': 'Alice', 'role': 'admin'}",
        "Admin count 1",
    ]


def test_the_readme_flat_redis_sketch_works_for_exact_paths_over_a_dict() -> None:
    from restate import Backend

    class FakeRedis:  # the sketch's redis.Redis(), as a dict: only exact keys
        def __init__(self) -> None:
            self.data: dict[str, bytes] = {}

        def get(self, key: str) -> bytes | None:
            return self.data.get(key)

        def set(self, key: str, value: str) -> None:
            self.data[key] = value.encode()

        def delete(self, key: str) -> None:
            self.data.pop(key, None)

    class RedisBackend(Backend):
        def __init__(self):
            self.redis = FakeRedis()

        def read(self, path, default=None):
            value = self.redis.get(str(path))
            return json.loads(value) if value else default

        def write(self, path, value):
            self.redis.set(str(path), json.dumps(value))

        def delete(self, path):
            self.redis.delete(str(path))

    controller = ControllerSync(RedisBackend())
    seen: list = []
    controller.subscribe("/users/1", lambda e: seen.append((e.prev_value, e.new_value)))
    controller.set_state("/users/1", {"name": "Alice"})
    assert controller.get_state("/users/1") == {"name": "Alice"}
    controller.set_state("/users/1", {"name": "Alicia"})
    controller.backend.delete("/users/1")
    assert controller.get_state("/users/1") is None
    assert seen == [(None, {"name": "Alice"}), ({"name": "Alice"}, {"name": "Alicia"})]
    with controller.batch():
        controller.set_state("/k", 1)
    assert controller.get_state("/k") == 1


def test_the_async_example_runs_as_pasted() -> None:
    controller = ControllerAsync(InMemoryBackend())

    async def main():
        # Basic operations
        await controller.set_state("/counter", 0)
        value = await controller.get_state("/counter")

        async def on_counter_change(event):
            value = event.new_value
            await controller.set_state("/doubled", value * 2)

        controller.subscribe("/counter", on_counter_change)
        # Derived state
        await controller.derive(
            dest="/counter_squared", source="/counter", transform=lambda x: x**2
        )
        current = await controller.get_state("/counter", 0)
        await controller.set_state("/counter", current + 3)
        return value

    assert asyncio.run(main()) == 0

    async def read() -> tuple:
        return (
            await controller.get_state("/doubled"),
            await controller.get_state("/counter_squared"),
        )

    assert asyncio.run(read()) == (6, 9)


def test_the_readme_event_properties_handler_runs() -> None:
    controller = ControllerSync()
    out: list = []

    def handler(event):
        out.append(f"Emitting path: {event.emitting_path}")
        out.append(f"Current path: {event.current_path}")
        out.append(f"Previous value: {event.prev_value}")
        out.append(f"New value: {event.new_value}")
        event.get_state("/config")
        event.set_state("/call_counter", 10)
        assert event.controller is controller

    controller.subscribe("/users", handler)
    controller.set_state("/users/1", "x")
    assert out == [
        "Emitting path: /users/1",
        "Current path: /users",
        "Previous value: None",
        "New value: x",
    ]
    assert controller.get_state("/call_counter") == 10


def test_the_readme_dynamic_dependency_tracker_runs() -> None:
    controller = ControllerSync(InMemoryBackend())
    details: list = []

    def dynamic_computation(event):
        base_path = event.get_state("/config/data_path")
        if not base_path:
            return
        data = event.get_state(base_path)
        for item in data:
            details.append(event.get_state(f"{base_path}/{item}/details"))

    controller.track(dynamic_computation)
    controller.set_state("/data", {"a": {"details": 1}})
    controller.set_state("/config/data_path", "/data")
    controller.set_state("/data/a/details", 2)
    assert details == [1, 2]


def test_derive_data_get_with_relative_names_as_in_the_readme() -> None:
    data = DeriveData({("users",): [1], ("posts",): [], ("comments",): [1, 2]})
    assert data.get("users") == [1] and data.get("posts") == [] and data.comments == [1, 2]


def test_the_async_example_as_pasted_reports_its_derivation_cycle_clearly() -> None:
    """The 0.11 README derives /counter/squared from /counter: semantics §4 makes that a cycle
    (the destination lies under its own source); it is refused with a message, not a hang."""
    import pytest

    from restate import CycleError

    controller = ControllerAsync(InMemoryBackend())

    async def main():
        await controller.set_state("/counter", 0)
        await controller.derive(
            dest="/counter/squared", source="/counter", transform=lambda x: x**2
        )

    with pytest.raises(CycleError, match="'/counter/squared' from '/counter'"):
        asyncio.run(main())
    assert controller.derivations() == []
