"""Sans-IO operations of the Redis backends, shared by the sync and the async twin.

Each operation is a generator that yields Redis commands and receives their replies, so
``RedisBackend`` drives it with blocking calls and ``RedisAsyncBackend`` with awaits; the
logic exists once. Commands:

- ``("eval", name, args)``: run the Lua script ``name`` (see ``scripts.py``), reply back;
- ``("lock", token, ttl_ms)``: ``SET <prefix>:lock token NX PX ttl_ms``, True when taken;
- ``("hexists", key, field)``: ``HEXISTS key field``;
- ``("sleep", seconds)``.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Generator
from contextvars import ContextVar, Token
from typing import Any, TypeVar

from ...errors import BackendError
from ...missing import MISSING
from ...paths import Parts, parts_to_str
from ...tree import copy_in, get_in
from ..probe import holds
from .codec import conflict_error, decode_changes, encode_delete, encode_write, loads
from .transaction import Known, Overlay, merge

__all__ = ["Exchange", "RedisCore", "StreamCursor", "Txn"]

T = TypeVar("T")

# An operation: yields commands, receives their replies, returns a T.
Exchange = Generator[tuple[Any, ...], Any, T]


class Txn:
    """One open transaction: the lock token and the buffered writes."""

    __slots__ = ("overlay", "refreshed", "token")

    def __init__(self, token: str) -> None:
        self.token = token
        self.overlay = Overlay()
        self.refreshed = time.monotonic()


class RedisCore:
    """Key names, lock settings and the operations of one backend instance."""

    def __init__(
        self, prefix: str, stream_maxlen: int, lock_timeout: float, lock_wait: float
    ) -> None:
        if not isinstance(prefix, str) or not prefix:
            raise ValueError(f"prefix must be a non-empty str, not {prefix!r}")
        self.prefix = prefix
        self.origin = uuid.uuid4().hex
        self.stream = f"{prefix}:changes"
        self.lock_key = f"{prefix}:lock"
        self.maxlen = str(int(stream_maxlen))
        self.lock_ms = max(1, int(lock_timeout * 1000))
        self.lock_wait = lock_wait
        self.txn: ContextVar[Txn | None] = ContextVar(f"restate-redis-{self.origin}", default=None)

    # -- reads and writes -------------------------------------------------------------------
    def read(self, parts: Parts) -> Exchange[Any]:
        txn = self.txn.get()
        if txn is None:
            return (yield from self._stored(parts))
        yield from self._refresh(txn)
        depth, node = txn.overlay.locate(parts)
        if type(node) is Known:
            return txn.overlay.read_known(node, parts, depth)
        if node.created:
            return MISSING if depth < len(parts) else merge({}, node)
        stored = yield from self._stored(parts)
        return stored if depth < len(parts) else merge(stored, node)

    def exists(self, parts: Parts) -> Exchange[bool]:
        """Like ``read(parts) is not MISSING``: one HEXISTS on the parent's hash (none for the
        root, or when the transaction's buffer decides)."""
        if not parts:
            return True
        txn = self.txn.get()
        if txn is not None:
            yield from self._refresh(txn)
            depth, node = txn.overlay.locate(parts)
            if type(node) is Known:
                return get_in(node.value, parts, depth) is not MISSING
            if node.created or depth == len(parts):
                return depth == len(parts)
        return bool((yield ("hexists", self._hash(parts[:-1]), parts[-1])))

    def occupied(self, parts: Parts, ignore: frozenset[str]) -> Exchange[bool]:
        """Whether the node is a leaf or a dict with a key outside ``ignore`` (see ../probe.py)."""
        txn = self.txn.get()
        if txn is not None:
            yield from self._refresh(txn)
            depth, node = txn.overlay.locate(parts)
            if type(node) is Known:
                return holds(get_in(node.value, parts, depth), ignore)
            if depth == len(parts):
                present = [
                    k for k, c in node.items() if type(c) is not Known or c.value is not MISSING
                ]
                if any(k not in ignore for k in present):
                    return True
                if node.created:
                    return False
                ignore = ignore | node.keys()  # the buffer decides these children
            elif node.created:
                return False
        args = [self.prefix, parts_to_str(parts), *ignore]
        return bool((yield ("eval", "occupied", args)))

    def _hash(self, parts: Parts) -> str:
        return f"{self.prefix}:n:{parts_to_str(parts)}"

    def write(self, parts: Parts, value: Any) -> Exchange[None]:
        op = encode_write(parts, value)  # validates before anything is sent
        txn = self.txn.get()
        if txn is None:
            yield from self._apply(op, "")
            return
        yield from self._refresh(txn)
        value = copy_in(value, parts)
        overlay = txn.overlay
        depth, node = overlay.locate(parts)
        if type(node) is Known:
            overlay.write_below_known(node, parts, depth, value)
            return
        created_from = None
        if depth < len(parts) - 1 and not node.created:
            kind, at = yield ("eval", "probe", [self.prefix, parts_to_str(parts)])
            if kind == "leaf":
                raise conflict_error(parts_to_str(parts), int(at))
            created_from = int(at) if kind == "missing" else None
        overlay.place(parts, depth, value, created_from)

    def delete(self, parts: Parts) -> Exchange[None]:
        txn = self.txn.get()
        if txn is None:
            yield from self._apply(encode_delete(parts), "")
            return
        yield from self._refresh(txn)
        overlay = txn.overlay
        depth, node = overlay.locate(parts)
        if type(node) is Known:
            overlay.delete_below_known(node, parts, depth)
            return
        if depth < len(parts) - 1:
            if node.created:
                return
            kind, _ = yield ("eval", "probe", [self.prefix, parts_to_str(parts)])
            if kind != "dir":
                return  # an ancestor is missing or a leaf: nothing to delete
        overlay.place(parts, depth, MISSING if parts else {}, None)

    def _stored(self, parts: Parts) -> Exchange[Any]:
        return loads((yield ("eval", "read", [self.prefix, parts_to_str(parts)])))

    def _apply(self, ops: list[str], token: str) -> Exchange[str]:
        deadline = time.monotonic() + self.lock_wait
        delay = 0.0002
        while True:
            reply = yield ("eval", "apply", [self.prefix, self.origin, self.maxlen, token, *ops])
            if reply[0] == "ok":
                entry_id: str = reply[1]  # the stream entry's id ("" when nothing changed)
                return entry_id
            if reply[0] == "conflict":
                raise conflict_error(reply[1], int(reply[2]))
            if reply[0] == "lostlock":
                raise BackendError(
                    f"the transaction lock {self.lock_key!r} expired before the commit "
                    f"(held longer than lock_timeout); nothing was written"
                )
            delay = yield from self._pause(deadline, delay)

    def _pause(self, deadline: float, delay: float) -> Exchange[float]:
        if time.monotonic() > deadline:
            raise BackendError(
                f"waited {self.lock_wait:g} s for the transaction of another client to release "
                f"{self.lock_key!r}; nothing was written"
            )
        yield ("sleep", delay * (0.5 + random.random()))
        return min(delay * 2, 0.01)

    # -- transactions -----------------------------------------------------------------------
    def begin(self) -> Exchange[Txn]:
        """Take the lock (waiting for other clients' transactions); return the Txn."""
        txn = Txn(uuid.uuid4().hex)
        deadline = time.monotonic() + self.lock_wait
        delay = 0.0002
        while not (yield ("lock", txn.token, self.lock_ms)):
            delay = yield from self._pause(deadline, delay)
        txn.refreshed = time.monotonic()
        return txn

    def commit(self, txn: Txn) -> Exchange[None]:
        """Apply the buffered writes and release the lock in one script."""
        ops: list[str] = []
        for parts, value in txn.overlay.ops():
            ops += encode_delete(parts) if value is MISSING else encode_write(parts, value)
        if not ops:
            yield from self.release(txn)
            return
        yield from self._refresh(txn)
        yield from self._apply(ops, txn.token)

    def release(self, txn: Txn) -> Exchange[None]:
        yield ("eval", "release", [self.prefix, txn.token])

    def finish(self, reset: Token[Txn | None], exc: BaseException | None) -> Exchange[None]:
        """Leave the transaction: commit when ``exc`` is None, else discard; the lock is
        released in both cases (best effort when the server is gone: it then expires)."""
        txn = self.txn.get()
        self.txn.reset(reset)
        assert txn is not None
        if exc is None:
            try:
                yield from self.commit(txn)
            except BaseException:
                yield from self._release_quietly(txn)
                raise
            return
        yield from self._release_quietly(txn)

    def _release_quietly(self, txn: Txn) -> Exchange[None]:
        try:
            yield from self.release(txn)
        except BackendError:
            pass

    def _refresh(self, txn: Txn) -> Exchange[None]:
        now = time.monotonic()
        if (now - txn.refreshed) * 3000 < self.lock_ms:
            return
        if not (yield ("eval", "refresh", [self.prefix, txn.token, self.lock_ms])):
            raise BackendError(
                f"the transaction lock {self.lock_key!r} expired (held longer than "
                f"lock_timeout); the transaction cannot commit"
            )
        txn.refreshed = now


class StreamCursor:
    """Where a follower is in the change stream, and its reconnection back-off.

    Every entry carries a sequence number (``<prefix>:seq``, incremented by each commit).
    A jump in it means entries the follower never saw: trimmed away while it was offline
    for longer than ``stream_maxlen`` commits, or lost by a server restarted without its
    data. ``take`` then reports ``RESYNC`` and the follower starts over from the whole tree.
    """

    MIN_DELAY, MAX_DELAY = 0.05, 2.0
    RESYNC: Any = "resync"

    def __init__(self, origin: str, last_id: str, seq: int | None) -> None:
        self.origin = origin
        self.last_id = last_id
        self.seq = seq
        self._delay = self.MIN_DELAY

    def take(self, reply: Any) -> list[Any]:
        """The change lists of an XREAD reply from other origins, in order, cut short by
        ``RESYNC`` at a gap; advances ``last_id``."""
        out: list[Any] = []
        if isinstance(reply, dict):  # RESP3
            reply = reply.items()
        for _stream, entries in reply or ():
            for entry_id, fields in entries:
                seq = int(fields.get("s", 0))
                if self.seq is not None and seq != self.seq + 1:
                    out.append(self.RESYNC)
                    return out
                self.last_id, self.seq = entry_id, seq
                changes = decode_changes(fields, self.origin)
                if changes:
                    out.append(changes)
        return out

    def restart(self, resync_reply: list[str]) -> list[tuple[str, Any, Any]]:
        """Continue after the RESYNC script's position; the root change to deliver."""
        self.last_id, self.seq = resync_reply[0], int(resync_reply[1])
        return [("/", MISSING, loads(resync_reply[2]))]

    def backoff(self) -> float:
        delay, self._delay = self._delay, min(self._delay * 2, self.MAX_DELAY)
        return delay * (0.75 + random.random() / 2)

    def connected(self) -> None:
        self._delay = self.MIN_DELAY
