"""Script calls on a plain ``redis.Redis`` without redis-py's per-command machinery.

Every read and write of the backend is one FCALL (or EVALSHA, see ``library.py``) of ~20
short string arguments. Through ``Script.__call__`` redis-py spends more client CPU around
that call than the call itself: it encodes each argument with a chain of isinstance checks,
checks a connection out of its pool (peeking at the socket for stale data) and back in, and
wraps it all in retry and metrics layers (profiled: ~45 % of a controller write's client
CPU). Here a backend keeps a few connections of the client's pool checked out, packs the
command itself (its arguments are always ``str``) and reads the reply with the connection's
own parser.

What redis-py did that still holds: one retry after a connection error (safe: a write's resend
says it is one, and the script looks for its write id in the stream before applying it:
``library.resend``), loading the library or a script
the server lacks (after a restart or a flush; ``library.py``), and a connection interrupted
between sending and reading (Ctrl-C) is dropped, never reused with a reply still due.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import redis

from .library import Library, pack, resend

__all__ = ["ScriptCalls", "pack"]

RETRY_PAUSE = 0.01  # seconds before the one retry (what the clients we make wait, too)


class ScriptCalls:
    """Script calls (``library.py``) on connections checked out of ``client``'s pool."""

    def __init__(self, client: redis.Redis, library: Library, key: str) -> None:
        self._pool = client.connection_pool
        self.library = library
        self._key = key
        self._idle: list[Any] = []  # list.pop/append are atomic: no lock on the hot path
        self._lock = threading.Lock()  # guards _held and closing only
        self._held: list[Any] = []
        self._closed = False

    def call(self, name: str, args: list[Any]) -> Any:
        conn = self._checkout()
        try:
            reply = self.library.call(
                lambda words: self._roundtrip(conn, words), name, self._key, args
            )
        except redis.ResponseError:  # the whole reply was read: the connection is fine
            self._idle.append(conn)
            raise
        except BaseException:
            conn.disconnect()  # a reply may still be due: never reuse it as is
            self._idle.append(conn)
            raise
        self._idle.append(conn)
        return reply

    def _roundtrip(self, conn: Any, words: list[Any]) -> Any:
        sent = time.monotonic()
        try:
            conn.send_packed_command([pack(words)], check_health=False)
            return conn.read_response()
        except (redis.ConnectionError, redis.TimeoutError):
            conn.disconnect()  # the server restarted or dropped us: reconnect once
            time.sleep(RETRY_PAUSE)
            again = resend(words, time.monotonic() - sent, conn.socket_timeout)
            conn.send_packed_command([pack(again)], check_health=False)
            return conn.read_response()

    def _checkout(self) -> Any:
        try:
            return self._idle.pop()
        except IndexError:
            pass
        with self._lock:
            if self._closed:
                raise redis.ConnectionError("the backend is closed")
            conn = self._pool.get_connection()
            self._held.append(conn)
            return conn

    def close(self) -> None:
        """Give the connections back to the client's pool (closing the pool closes them)."""
        with self._lock:
            self._closed = True
            held, self._held = self._held, []
            self._idle.clear()
        for conn in held:
            self._pool.release(conn)
