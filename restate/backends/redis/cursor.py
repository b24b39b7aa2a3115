"""A follower's place in the change stream, and how a burst of entries becomes few deliveries.

Every entry carries a sequence number (``T:seq``, incremented by each commit). A jump in it
means entries the follower never saw: trimmed away while it was away for longer than
``stream_maxlen`` commits, or lost by a server restarted without its data. ``take`` then
reports ``RESYNC`` and the follower starts over from the whole tree.

A burst (the entries one ``XREAD COUNT`` returns) is delivered as few ``on_changes`` calls as
keep the meaning of every change: consecutive entries merge into one call as long as their
paths are unrelated, or equal (then one change from the first ``prev`` to the last ``new``,
dropped when those are equal -- as a local batch does). An entry touching an ancestor or a
descendant of a path already in the call starts the next call, so no subscriber ever sees a
``prev`` that does not match what it saw before.
"""

from __future__ import annotations

import random
from typing import Any

from ...missing import MISSING
from .codec import _scan, decode_changes

__all__ = ["RESYNCED", "Burst", "StreamCursor"]

Changes = list[tuple[Any, ...]]


class _Resynced:
    """The payload of the events of a resync: their ``prev_value`` is not known (None)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "RESYNCED"

    def __reduce__(self) -> str:
        return "RESYNCED"


RESYNCED: Any = _Resynced()


def related(a: str, b: str) -> bool:
    """``a`` and ``b`` are the same path, or one is an ancestor of the other."""
    if a == b or a == "/" or b == "/":
        return True
    if len(a) > len(b):
        a, b = b, a
    return b.startswith(a) and b[len(a)] == "/"


class Burst:
    """Consecutive change lists merged into as few deliveries as their meaning allows."""

    def __init__(self) -> None:
        self.calls: list[Changes] = []
        self._open: dict[str, list[Any]] = {}

    def add(self, changes: Changes) -> None:
        open_ = self._open
        for path, _prev, _new in changes:
            if path not in open_ and any(related(path, seen) for seen in open_):
                self._flush()
                open_ = self._open
                break
        for path, prev, new in changes:
            slot = open_.get(path)
            if slot is None:
                open_[path] = [prev, new]
            else:
                slot[1] = new

    def _flush(self) -> None:
        out = [(p, prev, new) for p, (prev, new) in self._open.items() if not _same(prev, new)]
        if out:
            self.calls.append(out)
        self._open = {}

    def done(self) -> list[Changes]:
        self._flush()
        calls, self.calls = self.calls, []
        return calls


def _same(prev: Any, new: Any) -> bool:
    if prev is MISSING or new is MISSING:
        return prev is new
    return type(prev) is type(new) and bool(prev == new)


class StreamCursor:
    """Where a follower is in the change stream, and its reconnection back-off."""

    MIN_DELAY, MAX_DELAY = 0.05, 2.0
    RESYNC: Any = "resync"

    def __init__(self, origin: str, last_id: str, seq: int | None) -> None:
        self.origin = origin
        self.last_id = last_id
        self.seq = seq
        # at a gap forward (entries trimmed): the last sequence number delivered, from which
        # a resync can re-read only what changed; None when the sequence went back
        self.behind: int | None = None
        self._delay = self.MIN_DELAY

    def take(self, entries: list[tuple[str, Any]]) -> list[Any]:
        """The deliveries of the entries of one XREAD (``(id, fields)``, fields a flat list or
        a dict) from other origins, in order, ending with ``RESYNC`` at a gap; advances
        ``last_id``. This process's own entries are skipped before their changes are
        decoded."""
        if len(entries) != 1:
            return self._burst(entries)
        # a paced writer: one entry per wake-up, so this path's fixed cost is most of what a
        # delivery costs a subscriber; it is the loop of _burst for one entry, inline (one
        # Python call instead of five: each costs microseconds on a cold wake-up)
        entry_id, fields = entries[0]
        if type(fields) is not dict:
            fields = dict(zip(fields[::2], fields[1::2], strict=True))
        seq = int(fields.get("s", 0))
        if self.seq is not None and seq != self.seq + 1:
            return [self._gap(seq)]
        self.last_id, self.seq = entry_id, seq
        if fields.get("o") == self.origin:
            return []
        changes = _scan(fields.get("c", "[]"), 0)[0]
        if len(changes) != 1:
            burst = Burst()
            burst.add([(c["p"], c.get("o", MISSING), c.get("n", MISSING)) for c in changes])
            return burst.done()
        change = changes[0]
        prev, new = change.get("o", MISSING), change.get("n", MISSING)
        if prev is new or (type(prev) is type(new) and prev == new):  # _same, inline
            return []
        return [[(change["p"], prev, new)]]

    def _burst(self, entries: list[tuple[str, Any]]) -> list[Any]:
        burst = Burst()
        for entry_id, flat in entries:
            fields = flat if type(flat) is dict else dict(zip(flat[::2], flat[1::2], strict=True))
            seq = int(fields.get("s", 0))
            if self.seq is not None and seq != self.seq + 1:
                return [*burst.done(), self._gap(seq)]
            self.last_id, self.seq = entry_id, seq
            changes = decode_changes(fields, self.origin)
            if changes:
                burst.add(changes)
        return burst.done()

    def _gap(self, seq: int) -> Any:
        self.behind = self.seq if self.seq is not None and seq > self.seq else None
        return self.RESYNC

    def restart(self, position: tuple[str, int, Any]) -> Changes:
        """Continue after a resync's position (``walk.resync``); the root change to deliver."""
        self.last_id, self.seq, tree = position
        self.behind = None
        return [("/", MISSING, tree, RESYNCED)]

    def restart_since(self, position: tuple[str, int, list[tuple[str, Any]]]) -> Changes:
        """Continue after a resync of the paths changed since ``behind`` (``changed_since``):
        one change per path, from ``MISSING`` (what it was is not known any more), with the
        payload ``RESYNCED``."""
        self.last_id, self.seq, found = position
        self.behind = None
        return [(path, MISSING, value, RESYNCED) for path, value in found]

    def backoff(self) -> float:
        delay, self._delay = self._delay, min(self._delay * 2, self.MAX_DELAY)
        return delay * (0.75 + random.random() / 2)

    def connected(self) -> None:
        self._delay = self.MIN_DELAY
