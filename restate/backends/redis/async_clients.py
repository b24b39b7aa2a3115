"""The async twin's clients: checking a ``redis.asyncio`` client passed in, making the blocking
clients its threads need from that client's settings, and closing its own async client when a
backend is dropped without ``close()``."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import redis
import redis.asyncio as aredis
from redis.asyncio.connection import SSLConnection as AsyncSSLConnection
from redis.asyncio.connection import UnixDomainSocketConnection
from redis.cluster import ClusterNode, RedisCluster

__all__ = ["check_async_client", "describe_async", "drop_async_client", "sync_settings"]

# the settings a blocking twin copies: who to reach and how to authenticate (never the async
# retry, encoder or callbacks, which only fit redis.asyncio)
_AUTH = ("username", "password", "credential_provider")
_TLS = (
    "ssl_keyfile",
    "ssl_certfile",
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_ca_data",
    "ssl_check_hostname",
    "ssl_min_version",
    "ssl_ciphers",
)

_closing: set[asyncio.Future[Any]] = set()  # keeps a dropped client's aclose() from being collected


def check_async_client(client: Any) -> None:
    if not isinstance(client, aredis.Redis | aredis.RedisCluster):
        raise TypeError(
            f"client must be a redis.asyncio.Redis or redis.asyncio.RedisCluster, not "
            f"{type(client).__name__}"
        )
    if not client.get_encoder().decode_responses:
        raise ValueError("the client must be made with decode_responses=True")


def _kwargs_and_class(client: Any) -> tuple[dict[str, Any], type]:
    if isinstance(client, aredis.RedisCluster):
        kwargs = client.connection_kwargs
        return kwargs, kwargs.get("connection_class", object)
    pool = client.connection_pool
    return pool.connection_kwargs, pool.connection_class


def sync_settings(client: Any) -> dict[str, Any]:
    """Keyword arguments for a blocking ``redis.Redis`` / ``RedisCluster`` that reaches the same
    server(s) as the async ``client`` with the same credentials and TLS settings."""
    kwargs, connection_class = _kwargs_and_class(client)
    settings = {k: kwargs[k] for k in _AUTH if kwargs.get(k) is not None}
    if issubclass(connection_class, AsyncSSLConnection):
        settings["ssl"] = True
        settings.update({k: kwargs[k] for k in _TLS if k in kwargs})
    if isinstance(client, aredis.RedisCluster):
        nodes = client.nodes_manager.startup_nodes.values()
        settings["startup_nodes"] = [ClusterNode(n.host, n.port) for n in nodes]  # type: ignore[no-untyped-call]
    elif issubclass(connection_class, UnixDomainSocketConnection):
        settings.update(unix_socket_path=kwargs["path"], db=kwargs.get("db", 0))
    else:
        settings.update(host=kwargs.get("host"), port=kwargs.get("port"), db=kwargs.get("db", 0))
    return settings


def make_sync(settings: dict[str, Any], **options: Any) -> Any:
    """A blocking client from ``sync_settings`` (a cluster one when it names startup nodes)."""
    if "startup_nodes" in settings:
        return RedisCluster(**settings, **options)
    return redis.Redis(**settings, **options)


def describe_async(client: Any) -> str:
    """A password-free URL-like name of the server(s) ``client`` talks to, for messages."""
    settings = sync_settings(client)
    if "startup_nodes" in settings:
        node = settings["startup_nodes"][0]
        return f"redis-cluster://{node.host}:{node.port}"
    if "unix_socket_path" in settings:
        return f"unix://{settings['unix_socket_path']}?db={settings['db']}"
    return f"redis://{settings['host']}:{settings['port']}/{settings['db']}"


def drop_async_client(client: Any, home: list[asyncio.AbstractEventLoop]) -> None:
    """Close a dropped backend's own async client on the loop its connections belong to.

    Runs from a finaliser (any thread, maybe inside that loop). While the loop runs, its
    selector holds the connections' transports, so nothing else would ever close them: this
    schedules ``aclose()`` there. Once the loop is closed its transports are collected with it
    and their sockets closed, so there is nothing left to do.
    """
    loop = home[0] if home else None
    if loop is None or loop.is_closed():
        return

    def start() -> None:
        task = asyncio.ensure_future(client.aclose(), loop=loop)
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: see above
        loop.call_soon_threadsafe(start)
