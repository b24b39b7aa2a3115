"""ControllerSync and ControllerAsync expose the same public API (awaitable where SPEC says)."""

from __future__ import annotations

import inspect

import pytest

from restate import ControllerAsync, ControllerSync

STATE_METHODS = {
    "get_state",
    "set_state",
    "del_state",
    "update",
    "ping",
    "derive",
    "derive_many",
    "track",
    "set_backend",
    "run_deferred",
}
PLAIN_METHODS = {
    "subscribe",
    "unsubscribe",
    "register_callback",
    "subscribe_by_id",
    "unsubscribe_by_id",
    "remove_callback",
    "underive",
    "untrack",
    "atom",
    "on_changes",
    "derivations",
    "trackers",
    "close",
}


def public(cls: type) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_")}


def test_both_controllers_expose_the_same_public_names() -> None:
    assert public(ControllerSync) == public(ControllerAsync)
    properties = {"backend", "writer_name"}
    assert STATE_METHODS | PLAIN_METHODS | {"batch", "deferring"} | properties == public(
        ControllerSync
    )


@pytest.mark.parametrize("name", sorted(STATE_METHODS | PLAIN_METHODS | {"batch", "deferring"}))
def test_both_controllers_take_the_same_parameters(name: str) -> None:
    sync_sig = inspect.signature(getattr(ControllerSync, name))
    async_sig = inspect.signature(getattr(ControllerAsync, name))
    assert list(sync_sig.parameters) == list(async_sig.parameters)
    for p in sync_sig.parameters:
        assert sync_sig.parameters[p].default == async_sig.parameters[p].default, p


@pytest.mark.parametrize("name", sorted(STATE_METHODS))
def test_state_methods_are_awaitable_on_the_async_controller_only(name: str) -> None:
    assert "Awaitable" in str(
        inspect.signature(getattr(ControllerAsync, name)).return_annotation
    ) or inspect.iscoroutinefunction(getattr(ControllerAsync, name))
    assert not inspect.iscoroutinefunction(getattr(ControllerSync, name))


@pytest.mark.parametrize("name", sorted(PLAIN_METHODS))
def test_registration_methods_stay_plain_calls_on_both(name: str) -> None:
    assert not inspect.iscoroutinefunction(getattr(ControllerAsync, name))
    assert not inspect.iscoroutinefunction(getattr(ControllerSync, name))


def test_the_async_batch_is_an_async_context_manager() -> None:
    import asyncio

    async def main() -> None:
        c = ControllerAsync()
        async with c.batch():
            await c.set_state("/a", 1)
        assert await c.get_state("/a") == 1

    asyncio.run(main())
