"""``RedisAsyncBackend``: the async twin of ``RedisBackend`` (``redis.asyncio``)."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import AsyncIterator
from pathlib import PurePosixPath
from typing import Any, TypeVar, cast

import redis
import redis.asyncio as aredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff

from ...missing import MISSING
from ...paths import to_parts
from ..base import AsyncBackend
from .core import Exchange
from .shell import Shell, client_options

__all__ = ["RedisAsyncBackend"]

T = TypeVar("T")


class RedisAsyncBackend(Shell, AsyncBackend):
    """The async twin of ``RedisBackend``: same layout, scripts, options, from a ``url``.

    The constructor checks that the server answers (a short blocking PING), so an unreachable
    URL fails at once with ``BackendError``. The follower and the lease renewer are threads
    with their own blocking connections, so a busy event loop delays neither. A ready client
    (``client=``) is accepted by ``RedisBackend`` only.
    """

    _ASYNC = True

    def __init__(self, url: str | None = None, prefix: str = "restate", **options: Any) -> None:
        if options.get("client") is not None:
            raise TypeError("RedisAsyncBackend takes a url; pass a ready client to RedisBackend")
        super().__init__(url, prefix, **options)
        self._commands: Any = None

    def _make_client(self, socket_timeout: float) -> Any:
        options = client_options(self._timeouts[0], socket_timeout)
        if self._cluster:
            return aredis.RedisCluster.from_url(self.url, **options)
        options["retry"] = AsyncRetry(ExponentialBackoff(cap=0.05, base=0.01), 1)
        return aredis.Redis.from_url(self.url, **options)

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

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """See ``RedisBackend.transaction``."""
        core = self._core
        if core.txn.get() is not None:
            yield
            return
        txn = core.begin()
        try:  # a cancellation anywhere in here still ends in the finally
            core.enter(txn)
            self._start_renewer()
            try:
                yield
            except BaseException as exc:
                core.leave(txn)
                await self._run(core.finish(txn, exc))
                raise
            core.leave(txn)
            await self._run(core.finish(txn, None))
        finally:
            core.leave(txn)

    async def close(self) -> None:
        self._finalizer()
        if self._commands is not None:
            self._commands.close()
        await self._client.aclose()

    async def _run(self, op: Exchange[T]) -> T:
        reply, error = None, None
        while True:
            try:
                command = op.send(reply) if error is None else op.throw(error)
            except StopIteration as stop:
                return cast(T, stop.value)  # what the generator returned: its Exchange[T]
            try:
                reply, error = await self._execute(command), None
            except BaseException as exc:
                reply, error = None, exc

    async def _execute(self, command: tuple[Any, ...]) -> Any:
        kind = command[0]
        try:
            client = self._client
            if kind == "eval":
                return await self._scripts[command[1]](keys=self._keys, args=command[2])
            if kind == "blpop":
                return await client.blpop([command[1]], timeout=max(command[2], 0.001))
            if kind == "get":
                return await client.get(command[1])
            if kind == "hget":
                return await client.hget(command[1], command[2])
            if kind == "hscan":
                return await client.hscan(command[1], command[2], count=command[3])
            return await client.hexists(command[1], command[2])
        except redis.RedisError as exc:
            raise self._error(exc) from exc
        except BaseException:
            # cancelled between sending and reading: drop the connection, whose reply is due
            pool = getattr(self._client, "connection_pool", None)  # none on a cluster client
            if pool is not None:
                await pool.disconnect()
            raise
