"""A follower's ``XREAD``: one command on a connection it keeps, without redis-py's layers.

A subscriber at 100 writes/s wakes once per write, so the fixed cost of one ``XREAD`` is most
of what a delivery costs it (profiled with a CPU timer: redis-py's ``read_response`` and
``send_packed_command`` layers were ~70 % of a follower's CPU per wake-up). Here the command
is packed once (only the last entry id changes) and, when ``hiredis`` is installed, the reply
is read straight from the socket into a ``hiredis.Reader`` of our own; without it, the
connection's own parser reads it. Either way the result is the list of ``(entry id, fields)``
of the one stream read, ``fields`` a flat list (RESP2) or a dict (RESP3).

The connection is a normal one of the client's pool (so AUTH, SELECT, TLS and the client
name are redis-py's), checked out for good; closing the pool closes it and wakes a read.
After an error the follower disconnects it; the next read reconnects it.
"""

from __future__ import annotations

import socket
from typing import Any

import redis

try:  # optional: cheaper reply parsing (the ``redis`` extra installs it)
    import hiredis

    HIREDIS = True
except ImportError:  # pragma: no cover - depends on the environment
    HIREDIS = False

__all__ = ["HIREDIS", "StreamReads"]


def bulk(word: str | int) -> bytes:
    data = str(word).encode()
    return b"$%d\r\n%b\r\n" % (len(data), data)


class StreamReads:
    """``XREAD COUNT count BLOCK block_ms STREAMS stream <last id>`` on one kept connection."""

    def __init__(self, client: redis.Redis, stream: str, count: int, block_ms: int) -> None:
        self._conn: Any = client.connection_pool.get_connection()
        words = ("XREAD", "COUNT", count, "BLOCK", block_ms, "STREAMS", stream)
        self._head = b"*8\r\n" + b"".join(bulk(w) for w in words)
        self._sock: Any = None
        self._reader: Any = None
        self._buffer = bytearray(65536)
        self._raw = HIREDIS and not isinstance(self._conn, redis.SSLConnection)
        self._dead_after = block_ms // 1000 + 5  # seconds of silence: the server is gone

    def read(self, last_id: str) -> list[tuple[str, Any]]:
        """The entries after ``last_id`` (none when the block timed out)."""
        entry = last_id.encode()
        command = self._head + b"$%d\r\n%b\r\n" % (len(entry), entry)
        if not self._raw:
            return _entries(self._parsed(command))
        sock = self._conn._sock
        if sock is None:  # disconnected after an error, or never connected
            self._conn.connect()
            sock = self._conn._sock
        if sock is not self._sock:  # a new socket: a new reader, nothing half-read
            self._sock, self._reader = sock, hiredis.Reader(encoding="utf-8")
            _blocking(sock, self._dead_after)
        reader, buffer = self._reader, self._buffer
        try:
            sock.sendall(command)
            reply: Any = False  # (the reader is empty: each reply is read whole before the next)
            while reply is False:  # hiredis: not enough data yet
                size = sock.recv_into(buffer)
                if not size:
                    raise redis.ConnectionError("the server closed the connection")
                reader.feed(buffer, 0, size)
                reply = reader.gets()
        except OSError as exc:  # (TimeoutError is one: no timeout is set, see _blocking)
            raise redis.ConnectionError(f"reading the change stream: {exc}") from exc
        if type(reply) is dict:  # RESP3: {stream: entries}; the one stream read, inline
            for entries in reply.values():
                return entries  # type: ignore[no-any-return]
        if type(reply) is list:  # RESP2: [[stream, entries]]
            return reply[0][1]  # type: ignore[no-any-return]
        if isinstance(reply, Exception):
            raise redis.ResponseError(str(reply))
        return _entries(reply)

    def _parsed(self, command: bytes) -> Any:
        conn = self._conn
        conn.send_packed_command([command], check_health=False)
        return conn.read_response()


def _blocking(sock: socket.socket, dead_after: int) -> None:
    """Make a follower's socket blocking: a socket timeout costs a ``poll`` before every
    ``send`` and ``recv`` (measured: ~20 us of a ~100 us wake-up). A blocking read still
    ends: the server answers every ``XREAD BLOCK`` within ``block_ms``; ``stop()`` shuts
    the socket down; and a server that vanished without closing it (power cut, network
    partition) is detected by TCP keepalive after ``dead_after`` seconds of silence and
    three unanswered probes a second apart (where the platform has those options)."""
    sock.settimeout(None)
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return  # a Unix socket: its server cannot vanish without closing it
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", dead_after), ("TCP_KEEPINTVL", 1), ("TCP_KEEPCNT", 3)):
        option = getattr(socket, name, None)
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


def _entries(reply: Any) -> list[tuple[str, Any]]:
    if not reply:
        return []
    if isinstance(reply, dict):  # RESP3: {stream: entries}
        return [entry for entries in reply.values() for entry in entries]
    return [entry for _stream, entries in reply for entry in entries]
