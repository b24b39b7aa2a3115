"""Sans-IO operations of the Redis backends, shared by the sync and the async twin.

Each operation is a generator that yields Redis commands and receives their replies, so
``RedisBackend`` drives it with blocking calls and ``RedisAsyncBackend`` with awaits
(``driving.py``: one dispatch, two thin drivers); the logic exists once. Commands:

- ``("eval", name, args)``: run the Lua script ``name`` (see ``scripts.py``) with its one
  declared key, the stream; reply back;
- ``("hexists", key, field)``, ``("hget", key, field)``, ``("get", key)``,
  ``("hscan", key, cursor, count)``, ``("zrangebyscore", key, min, max)``: those commands;
- ``("blpop", key, seconds)``: wait for a wake-up pushed by the release of a lease;
- ``("renew",)``: make sure the lease renewer runs (a big write holds a lease: big.py).

Transactions (leases, isolation) are in ``leases.py``; this module is the keyspace and the
plain reads and writes, which consult an open transaction when there is one.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
import uuid
from collections.abc import Generator
from contextvars import ContextVar
from typing import Any, TypeVar

from ...errors import BackendError, StaleReadError
from ...missing import MISSING
from ...paths import Parts, parts_to_str
from ...tree import get_in
from ..probe import holds
from . import big, walk
from .codec import conflict_error, encode_delete, encode_leaf, encode_write, first_prev, loads
from .leases import Txn
from .transaction import Known, merge

__all__ = ["Exchange", "RedisCore", "keyspace_of"]

T = TypeVar("T")

# An operation: yields commands, receives their replies, returns a T.
Exchange = Generator[tuple[Any, ...], Any, T]

_TAGGED = re.compile(r"\{[^{}]+\}")
POLL = 0.1  # seconds a waiter blocks before asking again (its place in line lasts 0.3 s)
HOT = 1.0  # seconds a contended path is updated under a lease at once (RedisCore.heat)


def keyspace_of(prefix: str) -> str:
    """The hash-tagged name every key of the tree starts with: ``{prefix}``.

    A prefix that already is one hash tag (``"{app}"``) is used as is. Braces anywhere else
    would move keys of one tree into different Redis Cluster slots, so they are refused.
    """
    if not isinstance(prefix, str) or not prefix:
        raise ValueError(f"prefix must be a non-empty str, not {prefix!r}")
    if _TAGGED.fullmatch(prefix):
        return prefix
    if "{" in prefix or "}" in prefix:
        raise ValueError(
            f"prefix {prefix!r} may contain braces only as one whole hash tag like '{{name}}'"
        )
    return "{" + prefix + "}"


class RedisCore:
    """Key names and the plain operations of one backend instance."""

    def __init__(
        self,
        prefix: str,
        stream_maxlen: int,
        lease_timeout: float,
        lock_wait: float,
        stream_maxbytes: int | None = None,
    ) -> None:
        self.keyspace = keyspace_of(prefix)
        self.prefix = prefix
        self.origin = uuid.uuid4().hex
        self.stream = f"{self.keyspace}:changes"
        self.seq_key = f"{self.keyspace}:seq"
        if int(stream_maxlen) < 1:
            raise ValueError(f"stream_maxlen must be at least 1, not {stream_maxlen!r}")
        self.maxlen = str(int(stream_maxlen))
        if stream_maxbytes is not None and (
            not isinstance(stream_maxbytes, int) or stream_maxbytes < 1024
        ):
            raise ValueError(
                f"stream_maxbytes must be None or an int of at least 1024, not {stream_maxbytes!r}"
            )
        self.maxbytes = "" if stream_maxbytes is None else str(stream_maxbytes)
        if not lease_timeout > 0:
            raise ValueError(f"lease_timeout must be positive, not {lease_timeout!r}")
        self.lease_ms = max(10, int(lease_timeout * 1000))
        self.lock_wait = lock_wait
        self.txn: ContextVar[Txn | None] = ContextVar(f"restate-redis-{self.origin}", default=None)
        self.open: set[Txn] = set()  # the transactions whose leases the renewer keeps alive
        self._ids = itertools.count()
        # paths found contended by an optimistic update (a stale commit, or a lease or line to
        # wait for): until when this process's updates of them go straight to a lease. Under
        # contention an optimistic attempt mostly costs a wasted read, run and commit.
        self._hot: dict[Parts, float] = {}
        self._id_lock = threading.Lock()

    def is_hot(self, parts: Parts) -> bool:
        until = self._hot.get(parts)
        return until is not None and until > time.monotonic()

    def heat(self, parts: Parts) -> None:
        if len(self._hot) > 1024:  # a bound, not a cache: forgetting costs one conflict
            self._hot.clear()
        self._hot[parts] = time.monotonic() + HOT

    def write_id(self) -> str:
        with self._id_lock:
            return str(next(self._ids))

    # -- reads ------------------------------------------------------------------------------
    def read(self, parts: Parts) -> Exchange[Any]:
        txn = self.txn.get()
        if txn is None:
            return (yield from self._stored(parts))
        depth, node = txn.overlay.locate(parts)
        if type(node) is Known:
            return txn.overlay.read_known(node, parts, depth)
        if node.created:
            return MISSING if depth < len(parts) else merge({}, node)
        if parts in txn.texts:
            stored = loads(txn.texts[parts])
            return stored if depth < len(parts) else merge(stored, node)
        reply = yield from txn.ask(self, parts, "read", [str(walk.BUDGET)])
        if isinstance(reply[1], list):  # too big for one script: walk it, under the lease
            stored = loads((yield from walk.walk_text(self, parts)))
        else:
            text = reply[1] or None  # Lua's false: missing
            txn.texts[parts] = text
            stored = loads(text)
        return stored if depth < len(parts) else merge(stored, node)

    def exists(self, parts: Parts) -> Exchange[bool]:
        """Like ``read(parts) is not MISSING``: one HEXISTS on the parent's hash (none for the
        root, or when the transaction's buffer decides)."""
        if not parts:
            return True
        txn = self.txn.get()
        if txn is not None:
            depth, node = txn.overlay.locate(parts)
            if type(node) is Known:
                return get_in(node.value, parts, depth) is not MISSING
            if node.created or depth == len(parts):
                return depth == len(parts)
            answer = yield from txn.ask(self, parts, "exists")
            return bool(answer[1])
        return bool((yield ("hexists", self.hash_key(parts[:-1]), parts[-1])))

    def occupied(self, parts: Parts, ignore: frozenset[str]) -> Exchange[bool]:
        """Whether the node is a leaf or a dict with a key outside ``ignore`` (see ../probe.py)."""
        txn = self.txn.get()
        if txn is not None:
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
            return bool((yield from txn.ask(self, parts, "occupied", sorted(ignore)))[1])
        return bool((yield ("eval", "occupied", [parts_to_str(parts), *ignore])))

    def hash_key(self, parts: Parts) -> str:
        return f"{self.keyspace}:n:{parts_to_str(parts)}"

    def _stored(self, parts: Parts) -> Exchange[Any]:
        reply = yield ("eval", "read", [parts_to_str(parts), str(walk.BUDGET)])
        if isinstance(reply, list):  # {'big'}: too many fields for one script
            return (yield from walk.read_big(self, parts))
        return loads(reply)

    def dir_key(self, path: str) -> str:
        return f"{self.keyspace}:n:{path}"

    # -- writes -----------------------------------------------------------------------------
    def write(self, parts: Parts, value: Any, want_prev: bool = False) -> Exchange[Any]:
        """Store ``value``; with ``want_prev`` return the value it replaced (MISSING when
        there was none) from the same script, else None."""
        txn = self.txn.get()
        if txn is None and parts and not isinstance(value, dict):  # the hot path: PUT
            text = encode_leaf(value, parts)  # validates before anything is sent
            prev = yield from self.put(parts, text, want_prev)
            return loads(prev) if want_prev else None
        op = encode_write(parts, value)  # validates before anything is sent
        if txn is None:
            prev = yield from self._plain(parts, op, want_prev)
            return loads(prev) if want_prev else None
        prev = (yield from self.read(parts)) if want_prev else None
        yield from txn.write(self, parts, value)
        return prev

    def delete(self, parts: Parts) -> Exchange[None]:
        txn = self.txn.get()
        if txn is None:
            yield from self._plain(parts, encode_delete(parts), False)
            return
        yield from txn.delete(self, parts)

    def _plain(self, parts: Parts, op: list[str], want_prev: bool) -> Exchange[str | None]:
        """A write or delete outside a transaction: one script, or in chunks when it stores
        or replaces more than ``big.BIG`` fields (``big.py``)."""
        if big.fields_of(op) <= big.BIG:
            try:
                return (yield from self.apply(op, "", want_prev))
            except big.TooBig:
                pass
        return (yield from big.apply_big(self, parts, op, self.write_id()))

    def put(self, parts: Parts, text: str, want_prev: bool) -> Exchange[str | None]:
        """Store the leaf JSON ``text`` at ``parts`` (not the root) outside a transaction: APPLY
        with fewer words, PUT; the previous JSON text as ``apply``."""
        wid = self.write_id()
        path = "/" + "/".join(parts)
        args = [self.origin, self.maxlen, self.maxbytes, wid, "", "1" if want_prev else "0", ""]
        args += [path, path[: -len(parts[-1]) - 1] or "/", parts[-1], text]
        return (yield from self._write("put", args, wid, 6))

    def apply(self, ops: list[str], token: str, want_prev: bool = False) -> Exchange[str | None]:
        """Run APPLY until it is not kept waiting by another client's lease; the previous JSON
        text of the first op (None when missing, or when not ``want_prev``)."""
        wid = self.write_id()  # the same for every resend of this write: applied at most once
        want = "1" if want_prev else "0"
        args = [self.origin, self.maxlen, self.maxbytes, token, wid, "", want, "", *ops]
        return (yield from self._write("apply", args, wid, 7))

    def _write(self, name: str, args: list[str], wid: str, waited: int) -> Exchange[str | None]:
        """Call the write script ``name`` (APPLY or PUT) until no lease keeps it waiting
        (``args[waited]``: the path whose line it waits in)."""
        deadline = time.monotonic() + self.lock_wait
        while True:
            reply = yield ("eval", name, args)
            kind = reply[0]
            if kind == "ok":
                return reply[2] if len(reply) > 2 else None
            if kind == "done":
                return first_prev(reply[1])
            self.refusal(reply)
            if kind == "big":
                raise big.TooBig()
            args[waited] = reply[3]  # it waits in that path's line now (scripts.py)
            yield from self.pause(deadline, f"{self.origin}:{wid}")

    def refusal(self, reply: list[Any]) -> None:
        """Raise for the replies every write script may give that write nothing: ``unsure``
        (a resend that cannot tell), ``conflict`` (a leaf on the way), ``lost`` (the lease)."""
        kind = reply[0]
        if kind == "unsure":
            raise self.unsure_error()
        if kind == "conflict":
            raise conflict_error(reply[1], int(reply[2]))
        if kind == "lost":
            raise self.lost_error()

    def apply_checked(self, ops: list[str], token: str, seen: dict[Parts, str]) -> Exchange[None]:
        """Commit an optimistic transaction: APPLY ``ops`` if every leaf in ``seen`` still
        holds the JSON text it was read with, nobody else leases it and nobody waits for it
        (scripts.py, ``commit``); else raise ``StaleReadError`` (nothing written)."""
        wid = self.write_id()  # the same for a resend after a lost reply: applied once
        args = [self.origin, self.maxlen, self.maxbytes, token, wid, "", str(len(seen))]
        for parts, text in seen.items():
            args += [parts_to_str(parts), text]
        reply = yield ("eval", "commit", [*args, *ops])
        kind = reply[0]
        if kind in ("ok", "done"):
            return
        self.refusal(reply)
        for parts in seen:
            self.heat(parts)
        # 'stale'; 'busy' or 'big' cannot happen (leased or checked paths only): the same
        where = reply[1] if kind in ("stale", "busy") else "a path it read"
        raise StaleReadError(
            f"{where!s} on {self.keyspace!r} changed since this optimistic transaction read "
            f"it; nothing was written"
        )

    def unsure_error(self) -> BackendError:
        return BackendError(
            f"a write to {self.keyspace!r} lost its reply and cannot tell whether it was "
            f"applied (the change stream was trimmed past the moment it was sent, or more "
            f"than 3,000 commits came meanwhile); it was not applied again -- read the value "
            f"back before repeating it"
        )

    def lost_error(self) -> BackendError:
        return BackendError(
            f"the transaction on {self.keyspace!r} lost its lease (it was not renewed for "
            f"{self.lease_ms} ms: the process was stopped, or the server lost it); nothing "
            f"of it was written"
        )

    def pause(self, deadline: float, waiter: str) -> Exchange[None]:
        """Wait for this waiter's turn: the release of the lease it waits for (or a waiter
        ahead of it leaving the line) pushes a wake-up to ``T:wake:<waiter>`` (scripts.py).
        At most ``POLL`` seconds: a holder killed never releases, its lease expires; asking
        again keeps the waiter's place in line."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise BackendError(
                f"waited {self.lock_wait:g} s for the transaction of another client on "
                f"{self.keyspace!r} to finish; nothing was written"
            )
        poll = min(POLL, self.lease_ms / 10_000, left)
        yield ("blpop", f"{self.keyspace}:wake:{waiter}", poll)

    # -- transactions (leases.py) -------------------------------------------------------------
    def begin(self, optimistic: bool = False) -> Txn:
        """A new transaction: sends nothing (its leases are taken by what it touches; an
        optimistic one reads small unleased leaves without a lease: leases.py)."""
        return Txn(optimistic)

    def enter(self, txn: Txn) -> None:
        """Make ``txn`` the current transaction of this context, renewed until ``leave``."""
        self.open.add(txn)
        self.txn.set(txn)

    def leave(self, txn: Txn) -> None:
        """Stop renewing ``txn`` and leave it (idempotent: also the safety net of an
        interrupt)."""
        self.open.discard(txn)
        if self.txn.get() is txn:
            self.txn.set(None)

    def finish(self, txn: Txn, exc: BaseException | None) -> Exchange[None]:
        """Leave a transaction: commit when ``exc`` is None, else drop its leases (best effort
        when the server is gone or the call is interrupted: they then expire)."""
        self.open.discard(txn)
        if exc is None:
            try:
                yield from txn.commit(self)
            except GeneratorExit:  # closed unfinished (its driver was interrupted): no yield
                raise
            except BaseException:
                yield from self._release_quietly(txn)
                raise
            return
        yield from self._release_quietly(txn)

    def _release_quietly(self, txn: Txn) -> Exchange[None]:
        try:
            yield from txn.release()
        except BackendError:
            pass
