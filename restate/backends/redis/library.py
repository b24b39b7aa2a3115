"""How a backend calls its Lua scripts: as Redis Functions, or EVALSHA where there are none.

The scripts of ``scripts.py`` are one Functions library (``FUNCTION LOAD REPLACE``, named
with a hash of its text), so the server defines their shared helpers once per load instead of
on every call (measured: the bulk of a write script's server CPU was that, not its work).
``FCALL <library>_<script> 1 <stream key> args...`` runs one. The library is loaded when a
call finds it missing -- the first call on a fresh server, after ``FUNCTION FLUSH``, a
restart without persistence, or on a cluster master that never had it (``FUNCTION LOAD``
goes to every master; a replica promoted by a failover already has them, functions
replicate) -- and the call is repeated once.

A server without Functions (Redis < 7, or the commands renamed away) or a user whose ACL
refuses ``FCALL`` or ``FUNCTION LOAD`` answers with an error that switches this backend, for
its lifetime, to ``EVALSHA`` of the same scripts (loaded with ``SCRIPT LOAD`` on
``NOSCRIPT``). Any other error reply is the caller's.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster
from redis.exceptions import ClusterDownError, NoPermissionError, NoScriptError, SlotNotCoveredError

from .scripts import LIBRARY, SOURCES, function_name

__all__ = ["Library"]

_SHAS = {name: hashlib.sha1(source.encode()).hexdigest() for name, source in SOURCES.items()}
_FUNCTIONS = {name: function_name(name) for name in SOURCES}

Words = list[Any]

# an FCALL sent to the master of its key is retried after these (redis-py rediscovers the
# cluster's slots when a node fails; a write carries a write id: applied once)
CLUSTER_RETRY = (redis.ConnectionError, redis.TimeoutError, ClusterDownError, SlotNotCoveredError)
CLUSTER_ATTEMPTS = 3
CLUSTER_PAUSE = 0.05


class Library:
    """The calling convention of one backend's scripts on its server; starts with Functions."""

    __slots__ = ("functions",)

    def __init__(self, functions: bool = True) -> None:
        self.functions = functions

    def words(self, name: str, key: str, args: list[Any]) -> Words:
        """The command that runs script ``name`` with ``key`` declared."""
        if self.functions:
            return ["FCALL", _FUNCTIONS[name], "1", key, *args]
        return ["EVALSHA", _SHAS[name], "1", key, *args]

    def repair(self, name: str, exc: redis.ResponseError) -> Words | None:
        """After ``exc`` answered ``words(name, ...)``: the command to send before calling
        again ([] for none: it switched to EVALSHA), or None when ``exc`` is the caller's."""
        if self.functions:
            if "function not found" in str(exc).lower():
                return ["FUNCTION", "LOAD", "REPLACE", LIBRARY]
            if self.refused(exc):
                return []
            return None
        if isinstance(exc, NoScriptError):
            return ["SCRIPT", "LOAD", SOURCES[name]]
        return None

    def refused(self, exc: redis.ResponseError) -> bool:
        """Whether ``exc`` says this server or user has no Functions; then switch to EVALSHA."""
        text = str(exc).lower()
        if self.functions and (
            isinstance(exc, NoPermissionError) or "noperm" in text or "unknown command" in text
        ):
            self.functions = False
            return True
        return False

    def call(self, send: Callable[[Words], Any], name: str, key: str, args: list[Any]) -> Any:
        """Run script ``name`` with ``send(words) -> reply``, loading what the server lacks."""
        for attempt in range(3):
            try:
                return send(self.words(name, key, args))
            except redis.ResponseError as exc:
                fix = self.repair(name, exc)
                if fix is None or attempt == 2:
                    raise
            if fix:
                try:
                    send(fix)
                except redis.ResponseError as exc:
                    if not self.refused(exc):
                        raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def acall(
        self, send: Callable[[Words], Awaitable[Any]], name: str, key: str, args: list[Any]
    ) -> Any:
        """``call`` with an async ``send``."""
        for attempt in range(3):
            try:
                return await send(self.words(name, key, args))
            except redis.ResponseError as exc:
                fix = self.repair(name, exc)
                if fix is None or attempt == 2:
                    raise
            if fix:
                try:
                    await send(fix)
                except redis.ResponseError as exc:
                    if not self.refused(exc):
                        raise
        raise AssertionError("unreachable")  # pragma: no cover


def client_words(words: Words) -> tuple[Any, ...]:
    """``words`` for a redis-py client's ``execute_command``: a two-word command name joined,
    so that a cluster client routes ``FUNCTION LOAD``/``SCRIPT LOAD`` to every master."""
    if words[0] in ("FUNCTION", "SCRIPT"):
        return (f"{words[0]} {words[1]}", *words[2:])
    return tuple(words)


class ClientScripts:
    """``scripts[name](keys=[key], args=[...])`` on a blocking redis-py client (a cluster
    client included), as ``driving.call`` runs them."""

    def __init__(self, client: Any, library: Library) -> None:
        self._client, self.library = client, library
        self._cluster = isinstance(client, RedisCluster | AsyncRedisCluster)

    def _route(self, words: Words) -> dict[str, Any]:
        """On a cluster, the master of an FCALL's key, found locally: for FCALL (whose keys
        it cannot parse) redis-py asks ``COMMAND GETKEYS`` of its default node on every call
        -- a round trip, and a dead end when that node is the one that died."""
        if self._cluster and words[0] == "FCALL":
            return {"target_nodes": self._client.get_node_from_key(words[3])}
        return {}

    def _send(self, words: Words) -> Any:
        if not self._cluster:
            return self._client.execute_command(*client_words(words))
        for attempt in range(CLUSTER_ATTEMPTS):
            try:  # a node given, redis-py does not retry: after a failure it rediscovers
                return self._client.execute_command(*client_words(words), **self._route(words))
            except CLUSTER_RETRY:  # the slots (a failover): retried like redis-py would
                if attempt == CLUSTER_ATTEMPTS - 1:
                    raise
                time.sleep(CLUSTER_PAUSE)
        raise AssertionError("unreachable")  # pragma: no cover

    def __getitem__(self, name: str) -> Callable[..., Any]:
        def run(keys: list[str], args: list[Any]) -> Any:
            return self.library.call(self._send, name, keys[0], args)

        return run


class AsyncClientScripts(ClientScripts):
    """The same on a ``redis.asyncio`` client: ``await scripts[name](keys=..., args=...)``."""

    async def _asend(self, words: Words) -> Any:
        if not self._cluster:
            return await self._client.execute_command(*client_words(words))
        for attempt in range(CLUSTER_ATTEMPTS):
            try:
                if self._client._initialize:  # its slots are learnt on first use
                    await self._client.initialize()
                return await self._client.execute_command(
                    *client_words(words), **self._route(words)
                )
            except CLUSTER_RETRY:
                if attempt == CLUSTER_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(CLUSTER_PAUSE)
        raise AssertionError("unreachable")  # pragma: no cover

    def __getitem__(self, name: str) -> Callable[..., Any]:
        async def run(keys: list[str], args: list[Any]) -> Any:
            return await self.library.acall(self._asend, name, keys[0], args)

        return run
