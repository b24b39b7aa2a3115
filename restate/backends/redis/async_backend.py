"""``RedisAsyncBackend``: the async twin of ``RedisBackend`` (``redis.asyncio``)."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator
from pathlib import PurePosixPath
from typing import Any, TypeVar

import redis
import redis.asyncio as aredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff

from ...missing import MISSING
from ...paths import to_parts
from ..base import AsyncBackend
from .async_clients import check_async_client, describe_async, drop_async_client, sync_settings
from .core import Exchange
from .driving import adrive, call
from .library import AsyncClientScripts
from .shell import Shell, client_options

__all__ = ["RedisAsyncBackend"]

T = TypeVar("T")


class RedisAsyncBackend(Shell, AsyncBackend):
    """The async twin of ``RedisBackend``: same layout, scripts and options.

    Give it a ``url`` or a ready ``client=`` (a ``redis.asyncio.Redis`` or
    ``redis.asyncio.RedisCluster`` made with ``decode_responses=True``). With a URL the
    constructor checks that the server answers (a short blocking PING), so an unreachable URL
    fails at once with ``BackendError``; a client passed in is not contacted until first use.

    The follower and the lease renewer are threads with their own blocking connections (so a
    busy event loop delays neither); with ``client=`` they are made from that client's host,
    port, db, credentials and TLS settings. ``close()`` closes every connection this backend
    made and leaves a client passed in open. Dropped without ``close()``, the backend's
    finaliser stops its threads, closes their connections and schedules ``aclose()`` of its
    own async client on the event loop that used it (a closed loop took them with it).
    """

    _ASYNC = True

    def __init__(self, url: str | None = None, prefix: str = "restate", **options: Any) -> None:
        self._settings: dict[str, Any] | None = None
        super().__init__(url, prefix, **options)
        self._commands: Any = None
        self._home: list[asyncio.AbstractEventLoop] = []  # the loop our connections live on
        self._drop: weakref.finalize[Any, Any] | None = None
        if self._owns_client:
            self._drop = weakref.finalize(self, drop_async_client, self._client, self._home)

    def _make_client(self, socket_timeout: float) -> Any:
        options = client_options(self._timeouts[0], socket_timeout)
        options["client_name"] = f"restate-{self.origin}"
        if self._cluster:
            return aredis.RedisCluster.from_url(self.url, **options)
        options["retry"] = AsyncRetry(ExponentialBackoff(cap=0.05, base=0.01), 1)
        return aredis.Redis.from_url(self.url, **options)

    def _script_runner(self) -> Any:
        return AsyncClientScripts(self._client, self._library)

    def _check_client(self, client: Any) -> None:
        check_async_client(client)

    def _adopt(self, client: Any) -> tuple[bool, str]:
        self._settings = sync_settings(client)
        return isinstance(client, aredis.RedisCluster), describe_async(client)

    def _twin_settings(self) -> dict[str, Any] | None:
        return self._settings

    def _sync_commands(self) -> Any:
        if self._commands is None:
            self._commands = self._sync_client(self._timeouts[1])
            weakref.finalize(self, self._commands.close)
        return self._commands

    async def read(self, path: PurePosixPath | str, default: Any = None) -> Any:
        value = await self._run(self._core.read(to_parts(path)))
        return default if value is MISSING else value

    async def exists(self, path: PurePosixPath | str) -> bool:
        """See ``RedisBackend.exists``."""
        return await self._run(self._core.exists(to_parts(path)))

    async def _occupied(
        self, path: PurePosixPath | str, ignore: frozenset[str] = frozenset()
    ) -> bool:
        return await self._run(self._core.occupied(to_parts(path), ignore))

    async def write(self, path: PurePosixPath | str, value: Any) -> None:
        await self._run(self._core.write(to_parts(path), value))

    async def swap(self, path: PurePosixPath | str, value: Any) -> Any:
        """See ``RedisBackend.swap``."""
        return await self._run(self._core.write(to_parts(path), value, want_prev=True))

    async def delete(self, path: PurePosixPath | str) -> None:
        await self._run(self._core.delete(to_parts(path)))

    optimistic_transactions = True  # transaction(optimistic=True): backends/base.py

    @contextlib.asynccontextmanager
    async def transaction(self, optimistic: bool = False) -> AsyncIterator[None]:
        """See ``RedisBackend.transaction``."""
        core = self._core
        if core.txn.get() is not None:
            yield
            return
        txn = core.begin(optimistic)
        # one try, not two nested: CPython 3.11 runs no outer handler for an exception raised
        # at the line of an inner ``try:`` (a trace function's interrupt, tests/redis)
        try:  # an interrupt or cancellation anywhere in here still ends in the finally
            core.enter(txn)
            if not optimistic:  # an optimistic one starts it at its first lease (leases.py)
                self._start_renewer()
            yield
        except BaseException as exc:
            core.leave(txn)
            await self._run(core.finish(txn, exc))
            raise
        else:
            core.leave(txn)
            await self._run(core.finish(txn, None))
        finally:
            core.leave(txn)

    async def close(self) -> None:
        """Stop the followers and the lease renewer; close the connections this backend made
        (a client passed in stays open)."""
        self._finalizer()
        if self._commands is not None:
            self._commands.close()
        if self._drop is not None and self._drop.detach() is not None:
            await self._client.aclose()

    async def _run(self, op: Exchange[T]) -> T:
        if not self._home:
            self._home.append(asyncio.get_running_loop())
        return await adrive(op, self._execute)

    async def _execute(self, command: tuple[Any, ...]) -> Any:
        if command[0] == "renew":
            return self._start_renewer()
        try:
            return await call(self._client, self._scripts, self._keys, command)
        except redis.RedisError as exc:
            raise self._error(exc) from exc
        except BaseException:
            # cancelled between sending and reading: drop the connection, whose reply is due
            pool = getattr(self._client, "connection_pool", None)  # none on a cluster client
            if pool is not None:
                await pool.disconnect()
            raise
