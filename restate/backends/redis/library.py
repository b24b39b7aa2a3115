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

__all__ = ["Library", "pack", "resend"]

_SHAS = {name: hashlib.sha1(source.encode()).hexdigest() for name, source in SOURCES.items()}
_FUNCTIONS = {name: function_name(name) for name in SOURCES}

# Where the write scripts take their ``retry`` argument (scripts.py, ``replayed``): a resend
# of a write whose reply was lost says so there, with the milliseconds in which the first
# sending may have been applied, and the script looks for its write id in the stream
_RETRY_AT = {"apply": 5, "put": 4, "swap": 5, "commit": 5}
_WRITES = {
    called: _RETRY_AT[name] for name in _RETRY_AT for called in (_FUNCTIONS[name], _SHAS[name])
}
NO_TIMEOUT_SLACK = 60.0  # seconds a resend may wait in the server when no socket timeout bounds it


def pack(words: list[Any]) -> bytes:
    """The RESP encoding of a command (its words are ``str``, or numbers): built as one text
    and encoded once. When the text is ASCII, a word's byte length is its length (the usual
    case: one check for the whole command); else each word's is counted."""
    try:
        body = "".join([f"${len(word)}\r\n{word}\r\n" for word in words])
    except TypeError:  # a number among the words
        body = "\x80"
    if body.isascii():
        return f"*{len(words)}\r\n{body}".encode()
    out = [f"*{len(words)}\r\n"]
    for word in words:
        text = word if type(word) is str else str(word)
        out.append(f"${len(text.encode())}\r\n{text}\r\n")
    return "".join(out).encode()


def resend(words: Words, elapsed: float, timeout: float | None) -> Words:
    """``words`` to send again after the connection failed ``elapsed`` seconds after they were
    first sent: a write script's resend carries its window (the time since the first sending,
    plus how long the resend itself may take to run: the socket timeout and a second) so that
    the script applies it only if the first sending was not; anything else is sent as is."""
    at = _WRITES.get(words[1]) if len(words) > 4 else None
    if at is None:
        return words
    window = elapsed + (NO_TIMEOUT_SLACK if timeout is None else timeout) + 1.0
    marked = list(words)
    marked[4 + at] = str(int(window * 1000))
    return marked


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


def socket_timeout_of(client: Any) -> float | None:
    """The socket timeout of ``client``'s connections (None: none, or not known)."""
    try:
        if isinstance(client, RedisCluster | AsyncRedisCluster):
            kwargs = client.get_connection_kwargs()
        else:
            kwargs = client.connection_pool.connection_kwargs
        timeout = kwargs.get("socket_timeout")
    except Exception:  # a client of another make: the resend scans a longer window
        return None
    return None if timeout is None else float(timeout)


class ClientScripts:
    """``scripts[name](keys=[key], args=[...])`` on a blocking redis-py client (a cluster
    client included), as ``driving.call`` runs them."""

    def __init__(self, client: Any, library: Library) -> None:
        self._client, self.library = client, library
        self._cluster = isinstance(client, RedisCluster | AsyncRedisCluster)
        self._timeout = socket_timeout_of(client)

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
        sent, again = time.monotonic(), words
        for attempt in range(CLUSTER_ATTEMPTS):
            try:  # a node given, redis-py does not retry: after a failure it rediscovers
                return self._client.execute_command(*client_words(again), **self._route(again))
            except CLUSTER_RETRY:  # the slots (a failover): retried like redis-py would
                if attempt == CLUSTER_ATTEMPTS - 1:
                    raise
                time.sleep(CLUSTER_PAUSE)
                again = resend(words, time.monotonic() - sent, self._timeout)
        raise AssertionError("unreachable")  # pragma: no cover

    def __getitem__(self, name: str) -> Callable[..., Any]:
        def run(keys: list[str], args: list[Any]) -> Any:
            return self.library.call(self._send, name, keys[0], args)

        return run


class AsyncClientScripts(ClientScripts):
    """The same on a ``redis.asyncio`` client: ``await scripts[name](keys=..., args=...)``.

    On a single server the script calls bypass redis-py's retry (whose resend of a write could
    not say that it is one): a connection of the client's pool, one resend of our own -- also
    for a client made with ``single_connection_client=True`` (its one connection retries
    inside redis-py), whose other commands keep that connection."""

    async def _asend(self, words: Words) -> Any:
        if not self._cluster:
            return await self._asend_plain(words)
        sent, again = time.monotonic(), words
        for attempt in range(CLUSTER_ATTEMPTS):
            try:
                if self._client._initialize:  # its slots are learnt on first use
                    await self._client.initialize()
                return await self._client.execute_command(
                    *client_words(again), **self._route(again)
                )
            except CLUSTER_RETRY:
                if attempt == CLUSTER_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(CLUSTER_PAUSE)
                again = resend(words, time.monotonic() - sent, self._timeout)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _asend_plain(self, words: Words) -> Any:
        client = self._client
        if words[0] not in ("FCALL", "EVALSHA"):
            return await client.execute_command(*client_words(words))
        pool = client.connection_pool
        conn = await pool.get_connection()
        try:
            sent = time.monotonic()
            try:
                return await _roundtrip(conn, words)
            except (redis.ConnectionError, redis.TimeoutError):
                await conn.disconnect()  # the server restarted or dropped us: reconnect once
                await asyncio.sleep(CLUSTER_PAUSE / 5)
                return await _roundtrip(conn, resend(words, time.monotonic() - sent, self._timeout))
        except redis.ResponseError:  # the whole reply was read: the connection is fine
            raise
        except BaseException:
            await conn.disconnect()  # a reply may still be due (cancelled): never reuse it
            raise
        finally:
            await pool.release(conn)

    def __getitem__(self, name: str) -> Callable[..., Any]:
        async def run(keys: list[str], args: list[Any]) -> Any:
            return await self.library.acall(self._asend, name, keys[0], args)

        return run


async def _roundtrip(conn: Any, words: Words) -> Any:
    await conn.send_packed_command(pack(words), check_health=False)
    return await conn.read_response()
