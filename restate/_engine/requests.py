"""The I/O requests the engine yields to its drivers, and helpers every engine part shares.

A request is a tuple whose first item says what to do (see engine.py)::

    (READ, parts)            -> the stored value, or MISSING
    (EXISTS, parts)          -> whether a node is there (cheap where the backend can tell)
    (WRITE, parts, value)    -> None
    (DELETE, parts)          -> None
    (CALL, fn, arg)          -> fn(arg), awaited by the async controller
    (BEGIN, optimistic) / (COMMIT,) / (ROLLBACK, exc)   the backend's transaction(), when
                             it has one (optimistic: transaction(optimistic=True))
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypeVar

from ..missing import MISSING
from ..tree import IMMUTABLE, copy_out

__all__ = [
    "BEGIN",
    "CALL",
    "COMMIT",
    "DELETE",
    "EXISTS",
    "NO_DEFAULT",
    "READ",
    "ROLLBACK",
    "WRITE",
    "DirectIO",
    "Gen",
    "Steps",
    "raise_collected",
    "user_value",
]

READ, WRITE, DELETE, CALL, BEGIN, COMMIT, ROLLBACK, EXISTS = range(8)

T = TypeVar("T")

Request = tuple[Any, ...]
Steps = Generator[Request, Any, T]  # yields requests, receives replies, returns a T
Gen = Steps[Any]


class DirectIO:
    """Plain functions a driver whose I/O needs no awaiting lends the engine: the hot paths
    (a write and its deliveries) call them directly instead of yielding a request. ``None``:
    yield the request to the driver instead -- the same code either way.

    ``drive`` runs a whole generator of requests to its end (the sync driver): with it,
    ``read``, ``write``, ``exists`` and ``call``, the direct write path (direct.py) needs
    no generator for the common write and hands the rest -- a later round of deliveries, a
    dict write with subscriptions below -- to ``drive``.
    """

    __slots__ = ("call", "drive", "exists", "read", "replace", "settle", "swap", "write")

    def __init__(self) -> None:
        self.read: Callable[[Any], Any] | None = None
        self.write: Callable[[Any, Any], Any] | None = None
        self.call: Callable[[Callable[..., Any], Any], Any] | None = None
        # with ``call``: settle(result, fn) finishes a call made directly whose result is not
        # None (the sync controller runs an async callback's awaitable)
        self.settle: Callable[[Any, Callable[..., Any]], Any] | None = None
        self.exists: Callable[[Any], Any] | None = None
        self.drive: Callable[[Gen], Any] | None = None
        # the backend's optional swap(path, value) -> prev (backends/base.py): one round trip
        self.swap: Callable[[Any, Any], Any] | None = None
        # the memory store's _replace(parts, value) -> prev: a batched write in one walk
        self.replace: Callable[[Any, Any], Any] | None = None


class _NoDefault:
    def __repr__(self) -> str:
        return "<no default>"


NO_DEFAULT: Any = _NoDefault()


def user_value(value: Any) -> Any:
    """A stored value as handed to user code: an isolated copy, None for MISSING."""
    if value is MISSING:
        return None
    return value if type(value) in IMMUTABLE else copy_out(value)


def raise_collected(errors: list[Exception]) -> None:
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ExceptionGroup(f"{len(errors)} state callbacks raised", errors)
