"""Transactions on Redis: short renewed leases on the paths a transaction touches.

Design (the isolation level is documented in ``docs/backends.md``): a transaction buffers its
writes in an ``Overlay`` (``transaction.py``) and takes an exclusive *lease* on every path it
reads, probes or writes, in the same script as that read (one round trip). A lease on a path
covers its subtree and conflicts with leases of other transactions on the same path, an
ancestor or a descendant; unrelated paths never wait for each other. Plain writes of other
clients wait while a lease covers what they write. The commit applies the buffer, appends one
stream entry and drops the leases in one script. This is strict two-phase locking on path
prefixes: transactions are serializable, reads outside a transaction see committed data.

A lease lives ``lease_timeout`` seconds (1 s by default) unless renewed; the backend renews
the leases of open transactions every third of that from a background thread (a task on the
async twin), so a process killed or stopped inside a transaction stalls others for at most
about ``lease_timeout``, and a transaction that lost its lease fails at commit, writing
nothing.

An *optimistic* transaction (``transaction(optimistic=True)``, what ``update()`` opens first)
reads a small leaf that no other transaction leases and nobody waits for without a lease
(script ``peek``; anything else it leases as above, in the same call) and remembers the JSON
text it read; its commit (script ``commit``) applies only if each of those texts is still
stored, unleased and without a line, else raises ``StaleReadError`` and writes nothing. Reads
under leases cannot change before the commit, the others are checked by it, and the commit is
one script: such a transaction is serializable too, at its commit.

Deadlocks are impossible by the wait-die rule: a transaction that already holds a lease and
wants one held by an *older* transaction fails at once with ``BackendError`` (nothing
written) instead of waiting; a younger holder, or holding nothing yet, means waiting.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from ...errors import BackendError
from ...missing import MISSING
from ...paths import Parts, parts_to_str
from ...tree import copy_in
from .codec import conflict_error, encode_delete, encode_write
from .transaction import Known, Overlay

if TYPE_CHECKING:
    from .core import Exchange, RedisCore

__all__ = ["Txn"]


class Txn:
    """One open transaction: its token, age, leases and buffered writes."""

    __slots__ = ("leased", "lost", "optimistic", "overlay", "seen", "start", "texts", "token")

    def __init__(self, optimistic: bool = False) -> None:
        self.optimistic = optimistic
        # leaves read without a lease (optimistic): path -> the JSON text the commit checks
        self.seen: dict[Parts, str] = {}
        self.token = uuid.uuid4().hex
        self.start = f"{time.time():.6f}"  # the wait-die age; ties broken by token
        self.leased: set[Parts] = set()
        self.overlay = Overlay()
        self.lost = False  # set by the renewer when the lease key was gone
        # stored JSON text (None: missing) of paths read under this transaction's lease: no
        # other client can change them (or their ancestors) before the commit, so a second
        # read (update() reads, then swaps) or a probe of their ancestors needs no round trip
        self.texts: dict[Parts, str | None] = {}

    def covers(self, parts: Parts) -> bool:
        leased = self.leased
        return any(parts[:i] in leased for i in range(len(parts) + 1))

    def ask(
        self, core: RedisCore, parts: Parts, mode: str, extra: list[str] | None = None
    ) -> Exchange[list[Any]]:
        """Lease ``parts`` (unless already covered) and answer ``mode`` about it in the same
        script: ``read`` -> [_, json], ``probe`` -> [_, kind, depth], ``exists`` /
        ``occupied`` -> [_, 0 or 1]."""
        if self.lost:
            raise core.lost_error()
        path = parts_to_str(parts)
        if self.covers(parts):
            if mode == "read":
                return ["ok", (yield ("eval", "read", [path, *(extra or ())]))]
            if mode == "probe":
                return ["ok", *(yield ("eval", "probe", [path]))]
            if mode == "occupied":
                return ["ok", (yield ("eval", "occupied", [path, *(extra or ())]))]
            if mode == "exists" and parts:
                return ["ok", (yield ("hexists", core.hash_key(parts[:-1]), parts[-1]))]
            return ["ok", 1]  # 'none', or whether the root exists: always
        deadline = time.monotonic() + core.lock_wait
        waited = ""
        optimistic = self.optimistic and mode == "read"
        script = "peek" if optimistic and not core.is_hot(parts) else "lease"
        while True:
            reply = yield ("eval", script, self._args(core, path, waited, mode, extra))
            if reply[0] == "free":  # a leaf read without a lease: the commit checks it
                self.seen[parts] = reply[1]
                return ["ok", reply[1]]
            if reply[0] == "ok":
                first = not self.leased
                self.leased.add(parts)  # recorded first: an interrupt below still releases it
                if self.optimistic and first:
                    yield ("renew",)  # its first lease: keep it alive from now on
                return list(reply)
            if reply[0] == "lost":
                self.lost = True
                raise core.lost_error()
            if self.leased and (float(reply[2]), reply[1]) < (float(self.start), self.token):
                raise BackendError(
                    f"this transaction on {core.keyspace!r} waits for {path!r}, which an "
                    f"older transaction holds while it may wait for this one: it gives way "
                    f"(nothing was written); retry it"
                )
            if optimistic:  # contended: its next updates wait in turn at once (core.py)
                core.heat(parts)
            waited = reply[3]
            yield from core.pause(deadline, self.token)

    def _args(
        self, core: RedisCore, path: str, waited: str, mode: str, extra: list[str] | None
    ) -> list[str]:
        first = "0" if self.leased else "1"
        token, ttl = self.token, str(core.lease_ms)
        return [token, ttl, self.start, first, waited, mode, path, *(extra or ())]

    def write(self, core: RedisCore, parts: Parts, value: Any) -> Exchange[None]:
        value = copy_in(value, parts)
        overlay = self.overlay
        depth, node = overlay.locate(parts)
        if type(node) is Known:
            overlay.write_below_known(node, parts, depth, value)
            return
        created_from = None
        if not node.created:
            created_from = yield from self._creating(core, parts, depth)
        elif not self.covers(parts):
            yield from self.ask(core, parts, "none")
        overlay.place(parts, depth, value, created_from)

    def _creating(self, core: RedisCore, parts: Parts, depth: int) -> Exchange[int | None]:
        """Lease ``parts``; when ancestors are missing, also lease the highest missing one (the
        commit writes it whole); the depth from which ancestors are created, or None."""
        if parts in self.seen:  # read as a leaf: its parent is a directory, the commit checks
            return None
        if len(parts) == 1 or self.texts.get(parts) is not None:
            # no strict ancestor but the root, or read here as present: they are directories
            if not self.covers(parts):
                yield from self.ask(core, parts, "none")
            return None
        target = parts
        while True:
            reply = yield from self.ask(core, target, "probe")
            kind, at = reply[1], int(reply[2])
            if target is not parts:  # probed from the leased missing ancestor
                kind, at = yield from self._probe_below(core, parts)
            if kind == "leaf":
                raise conflict_error(parts_to_str(parts), at)
            if kind == "dir" or depth >= len(parts) - 1:
                return None
            if self.covers(parts[:at]):
                return at
            target = parts[:at]

    def _probe_below(self, core: RedisCore, parts: Parts) -> Exchange[tuple[str, int]]:
        kind, at = yield ("eval", "probe", [parts_to_str(parts)])
        return kind, int(at)

    def delete(self, core: RedisCore, parts: Parts) -> Exchange[None]:
        overlay = self.overlay
        depth, node = overlay.locate(parts)
        if type(node) is Known:
            overlay.delete_below_known(node, parts, depth)
            return
        if node.created and depth < len(parts) - 1:
            return
        reply = yield from self.ask(core, parts, "probe")
        if depth < len(parts) - 1 and reply[1] != "dir":
            return  # an ancestor is missing or a leaf: nothing to delete
        overlay.place(parts, depth, MISSING if parts else {}, None)

    def commit(self, core: RedisCore) -> Exchange[None]:
        """Apply the buffered writes and drop the leases in one script."""
        ops: list[str] = []
        for parts, value in self.overlay.ops():
            ops += encode_delete(parts) if value is MISSING else encode_write(parts, value)
        if self.lost:
            raise core.lost_error()
        if ops and self.seen:
            token = self.token if self.leased else ""
            yield from core.apply_checked(ops, token, self.seen)
        elif ops:
            yield from core.apply(ops, self.token)
        elif self.leased:
            yield from self.release()

    def release(self) -> Exchange[None]:
        if self.leased:
            yield ("eval", "release", [self.token])
