"""Running the sans-IO operations of ``core.py``: one implementation, two thin drivers.

An operation is a generator that yields commands (``("eval", name, args)``, ``("get",
key)``, ...) and receives their replies; ``advance`` feeds it one reply or error, ``call``
turns one command into the client call that runs it. On a blocking client that call returns
the reply; on a ``redis.asyncio`` client it returns an awaitable. ``drive`` and ``adrive``
are the two drivers: the same loop, the async one awaiting each call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from .core import Exchange

__all__ = ["adrive", "advance", "call", "drive"]

T = TypeVar("T")
Command = tuple[Any, ...]


def call(client: Any, scripts: Any, keys: list[str], command: Command) -> Any:
    """The client call that runs one command (awaitable on an async client)."""
    kind = command[0]
    if kind == "eval":
        return scripts[command[1]](keys=keys, args=command[2])
    if kind == "blpop":
        return client.blpop([command[1]], timeout=max(command[2], 0.001))
    if kind == "get":
        return client.get(command[1])
    if kind == "hget":
        return client.hget(command[1], command[2])
    if kind == "hscan":
        return client.hscan(command[1], command[2], count=command[3])
    if kind == "zrangebyscore":
        return client.zrangebyscore(command[1], command[2], command[3])
    if kind == "hexists":
        return client.hexists(command[1], command[2])
    raise ValueError(f"unknown command {kind!r}")


def advance(op: Exchange[Any], reply: Any, error: BaseException | None) -> tuple[bool, Any]:
    """Feed ``op`` a reply (or raise ``error`` in it): ``(False, next command)`` or
    ``(True, its result)``."""
    try:
        return False, (op.send(reply) if error is None else op.throw(error))
    except StopIteration as stop:
        return True, stop.value


def drive(op: Exchange[T], run: Callable[[Command], Any]) -> T:
    """Run ``op`` to its end, ``run`` executing each command."""
    done, out = advance(op, None, None)
    while not done:
        try:
            reply = run(out)
        except BaseException as exc:  # the operation decides (cleans up, retries, raises)
            done, out = advance(op, None, exc)
        else:
            done, out = advance(op, reply, None)
    return cast(T, out)  # what the generator returned: its Exchange[T]


async def adrive(op: Exchange[T], run: Callable[[Command], Awaitable[Any]]) -> T:
    """``drive`` with ``run`` awaited."""
    done, out = advance(op, None, None)
    while not done:
        try:
            reply = await run(out)
        except BaseException as exc:
            done, out = advance(op, None, exc)
        else:
            done, out = advance(op, reply, None)
    return cast(T, out)
