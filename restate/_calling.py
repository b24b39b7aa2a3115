"""Calling a user's callback: from sync code a coroutine function's result is run to the end
(``asyncio.run``), or refused inside a running event loop; from async code it is awaited."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from .errors import StateError
from .tree import IMMUTABLE

__all__ = ["_call", "_maybe_await", "_settle"]


def _call(fn: Callable[[Any], Any], arg: Any) -> Any:
    result = fn(arg)
    if result is None or type(result) in _PLAIN:  # (inspect.isawaitable is slow for these)
        return result
    return _run_awaitable(result, fn) if inspect.isawaitable(result) else result


def _settle(result: Any, fn: Callable[[Any], Any]) -> Any:
    """What ``_call`` does with a result that is not None (``DirectIO.settle``)."""
    if type(result) in _PLAIN:
        return result
    return _run_awaitable(result, fn) if inspect.isawaitable(result) else result


_PLAIN = IMMUTABLE | {dict, list, tuple, set}  # results that are never awaitable


def _run_awaitable(awaitable: Any, fn: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_wrap(awaitable))
    if inspect.iscoroutine(awaitable):
        awaitable.close()
    name = getattr(fn, "__qualname__", repr(fn))
    raise StateError(
        f"{name} is a coroutine function, and ControllerSync cannot run it inside a running "
        f"event loop (this thread has one, as Jupyter does); use ControllerAsync, or make "
        f"the callback a plain function"
    )


async def _wrap(awaitable: Any) -> Any:
    return await awaitable


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value
