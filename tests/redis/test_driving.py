"""The sync and async drivers of the sans-IO operations behave the same (driving.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from restate.backends.redis.driving import adrive, call, drive


def operation(log: list[Any]):
    """Asks twice; the second command fails, and the operation recovers from it."""
    first = yield ("get", "a")
    log.append(first)
    try:
        yield ("get", "boom")
    except KeyError as exc:
        log.append(f"caught {exc}")
    return "done"


def run(command):
    if command[1] == "boom":
        raise KeyError("boom")
    return f"value of {command[1]}"


async def arun(command):
    await asyncio.sleep(0)
    return run(command)


def test_both_drivers_feed_replies_and_throw_errors_into_the_operation_alike():
    sync_log: list[Any] = []
    async_log: list[Any] = []
    assert drive(operation(sync_log), run) == "done"
    assert asyncio.run(adrive(operation(async_log), arun)) == "done"
    assert sync_log == async_log == ["value of a", "caught 'boom'"]


def test_an_error_the_operation_does_not_handle_reaches_the_caller_of_either_driver():
    def op():
        yield ("get", "boom")

    with pytest.raises(KeyError):
        drive(op(), run)
    with pytest.raises(KeyError):
        asyncio.run(adrive(op(), arun))


def test_an_unknown_command_is_refused_by_name():
    with pytest.raises(ValueError, match="'nope'"):
        call(object(), {}, [], ("nope",))
