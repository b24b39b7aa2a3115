"""``RedisBackend`` and ``RedisAsyncBackend``: one state shared by many processes through Redis.

Key layout (``prefix`` defaults to ``"restate"``):

- ``<prefix>:n:<dir>``: a hash per directory (interior node); the root is ``<prefix>:n:/``,
  ``/users/1`` is ``<prefix>:n:/users/1``. Field ``name`` holds the JSON text of the leaf
  ``<dir>/name``, or a NUL byte when ``<dir>/name`` is a directory. A directory's hash exists
  only while it has children, so any node is one ``HGET`` on its parent: a leaf read is
  O(depth), a subtree read or delete walks only that subtree's hashes (O(size of the
  subtree)); nothing ever runs KEYS or SCAN.
- ``<prefix>:changes``: a Stream; every committed write, delete or transaction appends one
  entry ``{o: origin id, s: sequence number, c: JSON [{"p": path, "o": prev, "n": new},
  ...]}`` (``o``/``n`` absent for a missing node) in the same Lua script that changes the
  data; ``<prefix>:seq`` counts the entries. The stream is trimmed with ``XADD MAXLEN ~
  stream_maxlen`` (default 10,000 entries, approximate: Redis trims whole nodes of ~100).
  A follower that was away for longer than that many commits (or whose server restarted
  without its data) sees a jump in the sequence numbers and gets, instead of the entries it
  missed, one change ``("/", MISSING, <whole tree>)`` (a warning is logged), then follows
  on from there.
- ``<prefix>:lock``: the transaction lock (``SET NX PX`` with a random token).

Values are JSON (``json_serializer``): a value it rejects raises ``SerializationError``
before anything is sent; tuples come back as lists; dict key order is kept for small dicts
only. Every write and delete is one Lua script: conflict check, data, stream entry, all or
nothing.

Transactions (``transaction()``, used by the controller for batches and ``update()``): a
pessimistic lock. Entering takes ``<prefix>:lock`` (waiting up to ``lock_wait`` seconds for
other clients); writes are buffered in memory (reads inside see them, other clients do not);
leaving applies the buffer, appends one stream entry and releases the lock in one script,
or, on an exception, discards the buffer. Plain writes of other clients wait while a
transaction holds the lock, so ``update()`` is atomic across processes. The lock expires
after ``lock_timeout`` seconds (it is refreshed by every operation in the transaction); a
transaction that outlives it fails at commit and writes nothing.

Notifications: ``watch(on_changes)`` follows the stream from its current end in a daemon
thread (a task on the async twin) with its own connection, and calls
``on_changes([(path, prev, new), ...])`` once per entry written by another backend instance.
When the connection drops or the server restarts, it reconnects with exponential back-off
(50 ms to 2 s) and resumes after the last entry it saw: nothing missed, nothing twice.

Limits: keys are computed inside the scripts, so Redis Cluster is not supported; a process
that dies inside a transaction blocks other writers until its lock expires (lock_timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import PurePosixPath
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio as aredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from ...errors import BackendError
from ...missing import MISSING
from ...paths import to_parts
from ..base import AsyncBackend, Backend
from . import scripts
from .core import Exchange, RedisCore, StreamCursor

__all__ = ["RedisAsyncBackend", "RedisBackend"]

log = logging.getLogger("restate.redis")
T = TypeVar("T")

OnChanges = Callable[[list[tuple[str, Any, Any]]], Any]
_SCRIPTS = {
    "read": scripts.READ,
    "probe": scripts.PROBE,
    "occupied": scripts.OCCUPIED,
    "apply": scripts.APPLY,
    "refresh": scripts.REFRESH,
    "release": scripts.RELEASE,
    "resync": scripts.RESYNC,
}
_BLOCK_MS = 2000


def _safe_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def _client_options(connect_timeout: float, socket_timeout: float | None) -> dict[str, Any]:
    return {
        "decode_responses": True,
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": socket_timeout,
        # one quick retry reconnects a pooled connection the server closed (restart, kill)
        "retry": Retry(ExponentialBackoff(cap=0.05, base=0.01), 1),
    }


class _Shell:
    """What both twins share: settings, the core, error translation."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        prefix: str = "restate",
        *,
        stream_maxlen: int = 10_000,
        connect_timeout: float = 1.0,
        socket_timeout: float = 5.0,
        lock_timeout: float = 10.0,
        lock_wait: float = 30.0,
    ) -> None:
        self.url = url
        self._core = RedisCore(prefix, stream_maxlen, lock_timeout, lock_wait)
        self._timeouts = (connect_timeout, socket_timeout)
        self._followers: list[_Follower] = []
        self._check_reachable()
        self._client = self._make_client(socket_timeout)
        self._scripts = {name: self._client.register_script(s) for name, s in _SCRIPTS.items()}

    def _make_client(self, socket_timeout: float) -> Any:
        raise NotImplementedError

    @property
    def prefix(self) -> str:
        return self._core.prefix

    @property
    def origin(self) -> str:
        """The id written with this instance's changes (its followers skip them)."""
        return self._core.origin

    def _error(self, exc: Exception) -> BackendError:
        return BackendError(f"Redis at {_safe_url(self.url)} failed: {exc}")

    def _sync_client(self, socket_timeout: float | None, name: str | None = None) -> redis.Redis:
        try:
            return redis.Redis.from_url(
                self.url, client_name=name, **_client_options(self._timeouts[0], socket_timeout)
            )
        except ValueError as exc:
            raise ValueError(f"invalid Redis URL {_safe_url(self.url)!r}: {exc}") from exc

    def _check_reachable(self) -> None:
        client = self._sync_client(self._timeouts[0])
        try:
            client.ping()
        except redis.RedisError as exc:
            raise BackendError(
                f"cannot reach Redis at {_safe_url(self.url)}: {exc}; is redis-server running?"
            ) from exc
        finally:
            client.close()

    def watch(self, on_changes: OnChanges) -> Callable[[], None]:
        """Call ``on_changes(changes)`` for every commit of another client; returns unwatch.

        It runs in a daemon thread with its own connection, from the stream's current end
        (read before returning: no later change is missed). When ``on_changes`` returns an
        awaitable and ``watch`` was called inside a running event loop, the awaitable runs
        on that loop (the follower waits for it, keeping the order).
        """
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        follower = _Follower(self, on_changes, self._stream_end(), loop)
        self._followers.append(follower)
        follower.start()
        return follower.stop

    def _stop_followers(self) -> None:
        for follower in list(self._followers):
            follower.stop()

    def _stream_end(self) -> StreamCursor:
        """A cursor after the last stream entry: followers start there."""
        client = self._sync_client(self._timeouts[1])
        try:
            entries = client.xrevrange(self._core.stream, count=1)
        except redis.RedisError as exc:
            raise self._error(exc) from exc
        finally:
            client.close()
        if not entries:
            return StreamCursor(self.origin, "0-0", None)
        entry_id, fields = entries[0]
        # decode_responses=True and XREVRANGE entries carry their fields: redis-py's types
        # (bytes | str, fields | None) cover every client option
        assert isinstance(entry_id, str) and fields is not None
        return StreamCursor(self.origin, entry_id, int(fields.get("s", 0)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({_safe_url(self.url)!r}, prefix={self.prefix!r})"


class RedisBackend(_Shell, Backend):
    """State on a Redis server, shared by every process that uses the same URL and prefix.

    Args:
        url: ``redis://host:port/db`` (``rediss://`` and passwords work too).
        prefix: the first part of every key name; different prefixes are separate states.
        stream_maxlen: approximate bound of the change stream.
        connect_timeout: seconds to wait for a connection.
        socket_timeout: seconds to wait for a reply.
        lock_timeout: seconds a transaction may hold the lock without touching the backend.
        lock_wait: seconds to wait for another client's transaction before failing.

    Raises:
        BackendError: the server cannot be reached (the message names the URL).
        ValueError: ``url`` is not a Redis URL.
    """

    def _make_client(self, socket_timeout: float) -> Any:
        return self._sync_client(socket_timeout)

    def read(self, path: PurePosixPath | str, default: Any = None) -> Any:
        value = self._run(self._core.read(to_parts(path)))
        return default if value is MISSING else value

    def exists(self, path: PurePosixPath | str) -> bool:
        """Whether ``read(path, MISSING)`` finds a node: one ``HEXISTS`` on the parent's hash
        (inside a transaction its buffered writes answer first)."""
        return self._run(self._core.exists(to_parts(path)))

    def _occupied(self, path: PurePosixPath | str, ignore: frozenset[str] = frozenset()) -> bool:
        return self._run(self._core.occupied(to_parts(path), ignore))

    def write(self, path: PurePosixPath | str, value: Any) -> None:
        self._run(self._core.write(to_parts(path), value))

    def delete(self, path: PurePosixPath | str) -> None:
        self._run(self._core.delete(to_parts(path)))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Make everything inside atomic and isolated across processes (nested ones join)."""
        if self._core.txn.get() is not None:
            yield
            return
        reset = self._core.txn.set(self._run(self._core.begin()))
        try:
            yield
        except BaseException as exc:
            self._run(self._core.finish(reset, exc))
            raise
        self._run(self._core.finish(reset, None))

    def close(self) -> None:
        self._stop_followers()
        self._client.close()

    def _run(self, op: Exchange[T]) -> T:
        reply, error = None, None
        while True:
            try:
                command = op.send(reply) if error is None else op.throw(error)
            except StopIteration as stop:
                return cast(T, stop.value)  # what the generator returned: its Exchange[T]
            try:
                reply, error = self._execute(command), None
            except BaseException as exc:
                reply, error = None, exc

    def _execute(self, command: tuple[Any, ...]) -> Any:
        kind = command[0]
        if kind == "sleep":
            time.sleep(command[1])
            return None
        try:
            if kind == "eval":
                return self._scripts[command[1]](args=command[2])
            if kind == "hexists":
                return self._client.hexists(command[1], command[2])
            return self._client.set(self._core.lock_key, command[1], nx=True, px=command[2])
        except redis.RedisError as exc:
            raise self._error(exc) from exc


class _Follower(threading.Thread):
    """Follows the change stream with its own connection and calls ``on_changes``."""

    def __init__(
        self,
        backend: _Shell,
        on_changes: OnChanges,
        cursor: StreamCursor,
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        super().__init__(daemon=True, name=f"restate-redis-follower-{backend.origin[:8]}")
        self._backend = backend
        self._on_changes = on_changes
        self._loop = loop
        self.cursor = cursor
        self._stopped = threading.Event()
        self._client = backend._sync_client(
            _BLOCK_MS / 1000 + 5, name=f"restate-follower-{backend.origin}"
        )

    def run(self) -> None:
        stream = self._backend._core.stream
        while not self._stopped.is_set():
            try:
                self._follow(stream)
            except Exception as exc:  # also socket errors of a stop() racing the read
                if self._stopped.is_set():
                    break
                log.warning("restate: lost the Redis change stream (%s); reconnecting", exc)
                self._client.connection_pool.disconnect()
                self._stopped.wait(self.cursor.backoff())

    def _follow(self, stream: str) -> None:
        reply = self._client.xread({stream: self.cursor.last_id}, 1000, _BLOCK_MS)
        self.cursor.connected()
        for changes in self.cursor.take(reply):
            if self._stopped.is_set():
                return
            self._deliver(self._resync() if changes is StreamCursor.RESYNC else changes)

    def _resync(self) -> list[tuple[str, Any, Any]]:
        log.warning(
            "restate: changes of %r were trimmed from the stream or lost before this client "
            "read them; delivering the whole tree as one change",
            self._backend.prefix,
        )
        script = self._client.register_script(scripts.RESYNC)
        return self.cursor.restart(script(args=[self._backend.prefix]))

    def _deliver(self, changes: list[tuple[str, Any, Any]]) -> None:
        try:
            result = self._on_changes(changes)
            if inspect.isawaitable(result):
                if self._loop is None or self._loop.is_closed():
                    raise TypeError(
                        "on_changes returned an awaitable, but watch() ran outside a loop"
                    )
                asyncio.run_coroutine_threadsafe(_awaited(result), self._loop).result()
        except Exception:
            log.exception("restate: a Redis change handler raised")

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        deadline = time.monotonic() + 5
        while threading.current_thread() is not self and time.monotonic() < deadline:
            # the thread may be inside XREAD on a connection it just opened: close it again
            self._client.connection_pool.disconnect()
            self.join(timeout=0.05)
            if not self.is_alive():
                break
        self._client.close()
        with contextlib.suppress(ValueError):
            self._backend._followers.remove(self)


class RedisAsyncBackend(_Shell, AsyncBackend):
    """The async twin of ``RedisBackend`` (``redis.asyncio``): same layout, scripts, options.

    The constructor checks that the server answers (a short blocking PING), so an unreachable
    URL fails at once with ``BackendError``.
    """

    def _make_client(self, socket_timeout: float) -> Any:
        return self._async_client(socket_timeout)

    def _async_client(self, socket_timeout: float | None, name: str | None = None) -> Any:
        options = _client_options(self._timeouts[0], socket_timeout)
        options["retry"] = AsyncRetry(ExponentialBackoff(cap=0.05, base=0.01), 1)
        return aredis.Redis.from_url(self.url, client_name=name, **options)

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

    async def delete(self, path: PurePosixPath | str) -> None:
        await self._run(self._core.delete(to_parts(path)))

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Make everything inside atomic and isolated across processes (nested ones join)."""
        if self._core.txn.get() is not None:
            yield
            return
        reset = self._core.txn.set(await self._run(self._core.begin()))
        try:
            yield
        except BaseException as exc:
            await self._run(self._core.finish(reset, exc))
            raise
        await self._run(self._core.finish(reset, None))

    async def close(self) -> None:
        self._stop_followers()
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
        if kind == "sleep":
            await asyncio.sleep(command[1])
            return None
        try:
            if kind == "eval":
                return await self._scripts[command[1]](args=command[2])
            if kind == "hexists":
                return await self._client.hexists(command[1], command[2])
            lock = self._core.lock_key
            return await self._client.set(lock, command[1], nx=True, px=command[2])
        except redis.RedisError as exc:
            raise self._error(exc) from exc


async def _awaited(awaitable: Any) -> Any:
    return await awaitable
