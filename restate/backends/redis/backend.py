"""``RedisBackend`` and ``RedisAsyncBackend``: one state shared by many processes through Redis.

Key layout: every key of a tree starts with its keyspace ``{prefix}`` (one Redis Cluster hash
tag, so a tree lives in one slot and several trees spread over a cluster's shards):

- ``{prefix}:n:<dir>``: a hash per directory (interior node); the root is ``{prefix}:n:/``.
  Field ``name`` holds the JSON text of the leaf ``<dir>/name``, or a NUL byte when it is a
  directory. A directory's hash exists only while it has children, so any node is one
  ``HGET`` on its parent; nothing ever runs KEYS or SCAN.
- ``{prefix}:changes``: a Stream; every committed write, delete or transaction appends one
  entry ``{o: origin id, s: sequence number, c: JSON [{"p": path, "o": prev, "n": new}, ...],
  w: write id}`` in the same Lua script that changes the data; ``{prefix}:seq`` counts the
  entries. The stream is trimmed with ``XADD MAXLEN ~ stream_maxlen``. A write resent after a
  lost reply looks for its write id there before applying (applied once; scripts.py).
- ``{prefix}:leases`` and ``{prefix}:lease:<token>``: the leases of open transactions
  (``leases.py``).

Values are JSON: a value the serializer rejects raises ``SerializationError`` before anything
is sent; tuples come back as lists. Every write and delete is one Lua script: conflict check,
data, stream entry, all or nothing, and it returns the value it replaced (``swap``).

Transactions (``transaction()``, used by the controller for batches and ``update()``): short
leases on the paths touched, renewed while the transaction lives; ``update()`` first tries an
optimistic one (``transaction(optimistic=True)``: a small leaf nobody leases is read without a
lease, the commit applies only if it is unchanged, else ``StaleReadError`` and the controller
runs the function again under a lease). See ``leases.py`` and docs/backends.md for the
isolation level.

Notifications: ``watch(on_changes)`` follows the stream in a thread (``follower.py``) and
calls ``on_changes([(path, prev, new), ...])`` for entries written by other backend
instances, a burst of entries merged into as few calls as their meaning allows
(``cursor.py``). After a connection loss it resumes after the last entry it saw; a follower
that fell behind the trimmed stream gets one change ``("/", MISSING, <whole tree>)``.
"""

from __future__ import annotations

import contextlib
from pathlib import PurePosixPath
from typing import Any, TypeVar

import redis

from ...missing import MISSING
from ...paths import to_parts
from ..base import Backend
from .core import Exchange
from .driving import call, drive
from .follower import disconnect
from .shell import Shell

__all__ = ["RedisBackend"]

T = TypeVar("T")


class RedisBackend(Shell, Backend):
    """State on a Redis server or cluster, shared by every process that uses the same prefix.

    Args:
        url: ``redis://host:port/db`` (``rediss://`` and passwords work too); the URL of any
            node of a Redis Cluster works as well (detected). Default: the local server.
        prefix: names the tree; every key starts with ``{prefix}`` (a cluster hash tag).
        client: a ready ``redis.Redis`` or ``redis.cluster.RedisCluster`` (with
            ``decode_responses=True``) instead of ``url``; ``close()`` leaves it open.
        stream_maxlen: bound of the change stream, in entries (approximate, unless
            ``stream_maxbytes`` is given).
        stream_maxbytes: bound of the change stream, in bytes of its entries (at least
            1024; default: none); with it both bounds are kept exactly (docs/backends.md,
            "Sizing the stream").
        connect_timeout: seconds to wait for a connection.
        socket_timeout: seconds to wait for a reply.
        lease_timeout: seconds a transaction's leases live without renewal (they are renewed
            while it is open); what a process killed inside a transaction stalls others.
        lock_wait: seconds a write or transaction waits for other clients' leases.

    Raises:
        BackendError: the server cannot be reached (the message names the URL).
        ValueError: ``url`` is not a Redis URL, or an argument is out of range.
    """

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

    def swap(self, path: PurePosixPath | str, value: Any) -> Any:
        """Write ``value`` and return the value it replaced (``MISSING`` when there was none),
        in one round trip: the controller's single-write path uses it (backends/base.py)."""
        return self._run(self._core.write(to_parts(path), value, want_prev=True))

    def delete(self, path: PurePosixPath | str) -> None:
        self._run(self._core.delete(to_parts(path)))

    optimistic_transactions = True  # transaction(optimistic=True): backends/base.py

    @contextlib.contextmanager
    def transaction(self, optimistic: bool = False) -> Any:
        """Make everything inside atomic and serializable across processes (nested ones join).

        Entering sends nothing; each path read or written inside takes a lease (in the same
        round trip); leaving commits and drops the leases in one script, or on an exception
        drops them. See ``leases.py``.

        With ``optimistic=True`` a small leaf that nobody leases or waits for is read
        without a lease, and the commit applies only if it is unchanged; else it raises
        ``StaleReadError`` and writes nothing (``update()`` then runs again, leased).
        """
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
            self._run(core.finish(txn, exc))
            raise
        else:
            core.leave(txn)
            self._run(core.finish(txn, None))
        finally:
            core.leave(txn)  # unrenewed, any lease it could not drop expires soon

    def close(self) -> None:
        """Stop the followers and the lease renewer; close the connections this backend made
        (a client passed in stays open)."""
        self._finalizer()

    def _sync_commands(self) -> Any:
        return self._client

    def _run(self, op: Exchange[T]) -> T:
        return drive(op, self._execute)

    def _execute(self, command: tuple[Any, ...]) -> Any:
        if command[0] == "renew":
            return self._start_renewer()
        try:
            if self._calls is not None and command[0] == "eval":
                return self._calls.call(command[1], command[2])
            return call(self._client, self._scripts, self._keys, command)
        except redis.RedisError as exc:
            raise self._error(exc) from exc
        except BaseException:
            # interrupted (KeyboardInterrupt) between sending and reading: the reply is still
            # on its way and would answer the next command of that pooled connection
            disconnect(self._client)
            raise
