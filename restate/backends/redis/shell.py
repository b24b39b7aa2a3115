"""What both Redis twins share: settings, clients, scripts, followers, the lease renewer and the
finaliser that releases them when a backend is dropped without ``close()``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import SSLConnection, parse_url
from redis.retry import Retry

from ...errors import BackendError
from .._interrupts import deferred_interrupts
from .async_clients import make_sync
from .calls import ScriptCalls
from .core import RedisCore
from .cursor import StreamCursor
from .follower import Follower, OnChanges
from .library import ClientScripts, Library

__all__ = ["OnChanges", "Shell"]

log = logging.getLogger("restate.redis")

BLOCK_MS = 2000  # a follower's XREAD on its own connection (stop() closes it to wake it)
SHARED_BLOCK_MS = 300  # on a client passed in, which stop() cannot interrupt


def safe_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def client_options(connect_timeout: float, socket_timeout: float | None) -> dict[str, Any]:
    return {
        "decode_responses": True,
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": socket_timeout,
    }


class Renewer(threading.Thread):
    """Renews the leases of the open transactions of one backend every third of their life.

    Holds the core and a client, never the backend, so a dropped backend is collected."""

    def __init__(self, core: RedisCore, client: Any) -> None:
        super().__init__(daemon=True, name=f"restate-redis-leases-{core.origin[:8]}")
        self._core, self._client = core, client
        self.stopped = threading.Event()

    def run(self) -> None:
        core = self._core
        while not self.stopped.wait(core.lease_ms / 3000):
            for txn in list(core.open):
                if not txn.leased or txn.lost:
                    continue
                key = f"{core.keyspace}:lease:{txn.token}"
                try:
                    alive = self._client.set(key, "1", xx=True, px=core.lease_ms)
                except Exception as exc:  # the next round retries; the commit will tell
                    log.debug("restate: renewing a lease failed: %s", exc)
                    continue
                if not alive and txn in core.open:
                    txn.lost = True


def _launch(renewer: Renewer) -> None:
    """Start ``renewer``. Its own function: CPython 3.11 runs no enclosing handler -- here the
    ``with`` that releases the renewer lock -- for an exception raised at the line of a
    ``try:`` (a trace function's interrupt, tests/redis), which left the lock held forever."""
    try:
        renewer.start()
    except RuntimeError as exc:
        # CPython: a KeyboardInterrupt inside Thread.start()'s wait can surface as "release
        # unlocked lock"; the caller must see the interrupt (a thread that did not start is
        # replaced by the next transaction).
        if isinstance(exc.__context__, KeyboardInterrupt):
            raise exc.__context__ from None
        raise


def _release(
    followers: list[Follower], renewer: list[Renewer], calls: ScriptCalls | None, own: Any
) -> None:
    for follower in list(followers):
        follower.stop()
    for thread in renewer:
        thread.stopped.set()
    if calls is not None:
        calls.close()
    if own is not None:
        with contextlib.suppress(Exception):
            own.close()


class Shell:
    """Settings, clients and background threads of one backend instance."""

    _client: Any
    _ASYNC = False

    def __init__(
        self,
        url: str | None = None,
        prefix: str = "restate",
        *,
        client: Any = None,
        stream_maxlen: int = 10_000,
        stream_maxbytes: int | None = None,
        connect_timeout: float = 1.0,
        socket_timeout: float = 5.0,
        lease_timeout: float = 1.0,
        lock_wait: float = 30.0,
    ) -> None:
        if url is not None and client is not None:
            raise ValueError("pass a url or a client, not both")
        self._core = RedisCore(prefix, stream_maxlen, lease_timeout, lock_wait, stream_maxbytes)
        self._timeouts = (connect_timeout, socket_timeout)
        self._followers: list[Follower] = []
        self._renewer: list[Renewer] = []
        self._renewer_lock = threading.Lock()
        if client is None:
            self.url = url or "redis://127.0.0.1:6379/0"
            self._cluster = self._check_reachable()
            self._client = self._make_client(socket_timeout)
        else:
            self._check_client(client)
            self._client = client
            self._cluster, self.url = self._adopt(client)
        self._owns_client = client is None
        self._keys = [self._core.stream]
        self._library = Library()  # Functions until the server refuses them (library.py)
        self._scripts = self._script_runner()
        self._calls: ScriptCalls | None = None
        if not self._ASYNC and not self._cluster:  # the fast path of every read and write
            self._calls = ScriptCalls(self._client, self._library, self._core.stream)
        own = self._client if client is None and not self._ASYNC else None
        self._finalizer = weakref.finalize(
            self, _release, self._followers, self._renewer, self._calls, own
        )

    def _make_client(self, socket_timeout: float) -> Any:
        return self._sync_client(socket_timeout)

    def _script_runner(self) -> Any:
        """``runner[name](keys=..., args=...)`` on the client (a cluster's, or the async one)."""
        return ClientScripts(self._client, self._library)

    def _adopt(self, client: Any) -> tuple[bool, str]:
        """Whether a client passed in talks to a cluster, and a name for it in messages."""
        return isinstance(client, RedisCluster), _describe(client)

    def _twin_settings(self) -> dict[str, Any] | None:
        """How to make blocking clients when there is no URL (the async twin's client=)."""
        return None

    def _check_client(self, client: Any) -> None:
        if not isinstance(client, redis.Redis | RedisCluster):
            raise TypeError(
                f"client must be a redis.Redis or redis.cluster.RedisCluster, not "
                f"{type(client).__name__}"
            )
        if not client.get_encoder().decode_responses:
            raise ValueError("the client must be made with decode_responses=True")

    @property
    def prefix(self) -> str:
        return self._core.prefix

    @property
    def keyspace(self) -> str:
        """The hash tag every key of this tree starts with: ``{prefix}``."""
        return self._core.keyspace

    @property
    def origin(self) -> str:
        """The id written with this instance's changes (its followers skip them)."""
        return self._core.origin

    def _error(self, exc: Exception) -> BackendError:
        return BackendError(f"Redis at {safe_url(self.url)} failed: {exc}")

    def _sync_client(self, socket_timeout: float | None, name: str | None = None) -> Any:
        options = client_options(self._timeouts[0], socket_timeout)
        settings = self._twin_settings()
        if settings is not None:
            if not self._cluster:
                options["retry"] = Retry(ExponentialBackoff(cap=0.05, base=0.01), 1)
            return make_sync(settings, client_name=name, **options)
        try:
            if self._cluster:
                return RedisCluster.from_url(self.url, client_name=name, **options)
            # one quick retry reconnects a pooled connection the server closed (restart, kill)
            options["retry"] = Retry(ExponentialBackoff(cap=0.05, base=0.01), 1)
            return redis.Redis.from_url(self.url, client_name=name, **options)
        except ValueError as exc:
            raise ValueError(f"invalid Redis URL {safe_url(self.url)!r}: {exc}") from exc

    def _check_reachable(self) -> bool:
        """PING the server; whether it is a node of a Redis Cluster."""
        self._cluster = False
        client = self._sync_client(self._timeouts[0])
        try:
            client.ping()
            return bool(client.info("cluster").get("cluster_enabled"))
        except redis.RedisError as exc:
            raise BackendError(
                f"cannot reach Redis at {safe_url(self.url)}: {exc}; is redis-server running?"
            ) from exc
        finally:
            client.close()

    def _sync_commands(self) -> Any:
        """A sync client for the renewer and the start of the stream."""
        raise NotImplementedError

    def _start_renewer(self) -> None:
        if self._renewer and self._renewer[0].is_alive():
            return
        # Ctrl-C held back while the lock is held: CPython 3.11 can raise an interrupt at the
        # ``with`` line's exit event, before the lock's release, and the next transaction of
        # this process then waited for that lock for ever (tests/redis/test_optimistic_interrupts)
        with deferred_interrupts(), self._renewer_lock:
            if self._renewer and self._renewer[0].is_alive():
                return
            renewer = Renewer(self._core, self._sync_commands())
            self._renewer[:] = [renewer]  # recorded first: close() stops it whatever happens
            _launch(renewer)  # a call, not a try: in this with (see _launch)

    def watch(self, on_changes: OnChanges) -> Callable[[], None]:
        """Call ``on_changes(changes)`` for the commits of other clients; returns unwatch.

        It runs in a daemon thread, from the stream's current end (read before returning: no
        later change is missed). When ``on_changes`` returns an awaitable and ``watch`` was
        called inside a running event loop, the awaitable runs on that loop (the follower
        waits for it, keeping the order). A bound method is held weakly: when its object is
        collected the follower ends.
        """
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        cursor = self._stream_end()
        if self._owns_client or self._ASYNC:  # an async client cannot serve a thread
            name = f"restate-follower-{self.origin}"
            client, owns, block = self._sync_client(BLOCK_MS / 1000 + 5, name), True, BLOCK_MS
        else:
            client, owns, block = self._client, False, SHARED_BLOCK_MS
        rebuild = self._rediscover if owns and self._cluster else None
        follower = Follower(
            client, owns, self._core, on_changes, cursor, loop, block, self._followers, rebuild
        )
        self._followers.append(follower)
        follower.start()
        return follower.stop

    def _rediscover(self, old: RedisCluster) -> RedisCluster:
        """A new cluster client for a follower, discovering the slots from the nodes ``old``
        knew (the URL's node may be the one that died)."""
        known = old.get_nodes()  # type: ignore[no-untyped-call]
        nodes = [ClusterNode(n.host, n.port) for n in known]  # type: ignore[no-untyped-call]
        options = client_options(self._timeouts[0], BLOCK_MS / 1000 + 5)
        settings = self._twin_settings()
        if settings is not None:
            options.update({k: v for k, v in settings.items() if k != "startup_nodes"})
        else:
            parsed = parse_url(self.url)  # type: ignore[no-untyped-call]
            options.update({k: parsed[k] for k in ("username", "password") if k in parsed})
            if parsed.get("connection_class") is SSLConnection:
                options["ssl"] = True
        return RedisCluster(
            startup_nodes=nodes, client_name=f"restate-follower-{self.origin}", **options
        )

    def _stream_end(self) -> StreamCursor:
        """A cursor after the last stream entry: followers start there."""
        try:
            entries = self._sync_commands().xrevrange(self._core.stream, count=1)
        except redis.RedisError as exc:
            raise self._error(exc) from exc
        if not entries:
            return StreamCursor(self.origin, "0-0", None)
        entry_id, fields = entries[0]
        return StreamCursor(self.origin, entry_id, int(fields.get("s", 0)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({safe_url(self.url)!r}, prefix={self.prefix!r})"


def _describe(client: Any) -> str:
    if isinstance(client, RedisCluster):
        node = client.get_default_node()  # type: ignore[no-untyped-call]
        return f"redis-cluster://{node.host}:{node.port}"
    kwargs = client.connection_pool.connection_kwargs
    return f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"
