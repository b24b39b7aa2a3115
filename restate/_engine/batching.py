"""Batches: the log of what each write replaced, rollback, and coalescing into changes.

Every write inside ``batch()`` is applied at once and logged with the value it replaced
(``MISSING`` for a node that did not exist, plus an entry for the highest dict the write
created). Rollback undoes the log newest first (or lets a transactional backend roll back).
At the end the log is coalesced: one ``Change`` per highest written path, from its value
before the batch (the current value with the log undone) to its value now.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any, NamedTuple, Protocol

from ..missing import MISSING
from ..paths import Parts, is_prefix
from ..tree import IMMUTABLE, copy_out, delete_in, get_in, set_in, values_equal
from .requests import BEGIN, COMMIT, DELETE, EXISTS, READ, ROLLBACK, WRITE, Gen
from .roots import Heard, find_roots
from .subscriptions import Change

__all__ = ["BatchLog", "Entry", "new_entry", "value_before"]


class Entry(NamedTuple):
    """One write in a batch: what ``parts`` held before (MISSING if absent)."""

    parts: Parts
    prev: Any
    payload: Any = None
    notify: bool = True
    ping: bool = False
    new: Any = MISSING  # what the write stored (MISSING for a delete)


_PING = itemgetter(4)  # Entry.ping, for C-level passes over the log

# builds an Entry without the NamedTuple's __new__, which is Python code (a write's hot path)
new_entry = tuple.__new__


class Undoable(Protocol):
    """A recorded write ``value_before`` can undo: an ``Entry``, or a ``Change`` (whose
    ``created`` it also uses)."""

    @property
    def parts(self) -> Parts: ...

    @property
    def prev(self) -> Any: ...


class BatchLog:
    """The batch in progress: its depth, the log of what each write replaced, rollback, and
    coalescing the log into changes at the end. The engine propagates those changes."""

    def __init__(self) -> None:
        self.depth = 0
        self.has_txn = False  # the backend has transaction(): BEGIN/COMMIT/ROLLBACK
        # and transaction(optimistic=True): update() tries it first (engine.py)
        self.has_optimistic = False
        self.log: list[Entry] = []
        self._existing: set[Parts] = set()  # paths the batch knows exist (no EXISTS needed)
        self._marks: list[int] = []
        self.merged: frozenset[Parts] = frozenset()  # the roots the last end merged

    def begin(self, optimistic: bool = False) -> Gen:
        if self.depth == 0:
            if self.has_txn:
                yield (BEGIN, optimistic)
            self.log = []
            self._existing.clear()
        self._marks.append(len(self.log))
        self.depth += 1

    def end(
        self, exc: BaseException | None, heard: Heard | None = None, merge: bool = False
    ) -> Gen:
        """Close one level; returns the coalesced changes when the outermost one committed
        (an empty list otherwise). ``heard``: who hears a write at a path (false: nobody,
        roots nobody hears are not coalesced; None: everyone hears everything, e.g.
        listeners). ``merge``: siblings heard only above them may become one change at their
        parent (roots.py); the parents that did are left in ``merged``."""
        if exc is not None and not self._marks:
            # No batch is open, yet a failed one ends: the generator running it was left by
            # its driver (an interrupt landed in the driver's own loop), which reset this log
            # (controller.abandon_engine_batch) and rolled the store back; it is being closed
            # now (GeneratorExit, often by the garbage collector). Nothing is left to end.
            return []
        mark = self._marks.pop()
        self.depth -= 1
        if not self.depth:
            self._existing.clear()  # only a batch in progress may trust it
        if exc is not None:
            if self.depth == 0 and self.has_txn:
                self.log = []
                yield (ROLLBACK, exc)
            else:
                yield from self._undo(mark)
            return []
        if self.depth:
            return []
        log, self.log = self.log, []
        if self.has_txn:
            yield (COMMIT,)
        return (yield from self._coalesce(log, heard, merge))

    def missing_ancestor(self, parts: Parts) -> Gen:
        """The highest missing ancestor of ``parts``: the write will create it, so rollback
        must remove it and the batch's "before" value of anything above is MISSING."""
        highest = None
        for depth in range(len(parts) - 1, 0, -1):
            above = parts[:depth]
            if above in self._existing or (yield (EXISTS, above)):
                break
            highest = above
        return highest

    def highest_missing(self, parts: Parts, exists: Callable[[Parts], Any]) -> Parts | None:
        """``missing_ancestor`` with a direct ``exists`` (the sync driver's)."""
        highest = None
        existing = self._existing
        for depth in range(len(parts) - 1, 0, -1):
            above = parts[:depth]
            if above in existing or exists(above):
                break
            highest = above
        return highest

    def record(
        self,
        parts: Parts,
        prev: Any,
        payload: Any,
        notify: bool,
        created: Parts | None = None,
        new: Any = MISSING,
    ) -> None:
        if created is not None:  # part of this write: notified (or not) with it
            self.log.append(Entry(created, MISSING, payload, notify))
        self.log.append(new_entry(Entry, (parts, prev, payload, notify, False, new)))
        if prev is MISSING and new is not MISSING and parts[:-1] not in self._existing:
            # created: its ancestors exist until a delete in this batch (all of them, or none,
            # are known). A rewritten node's ancestors existed anyway: not worth a lookup.
            self._existing.update(parts[:depth] for depth in range(1, len(parts)))

    def record_ping(self, parts: Parts, value: Any, payload: Any) -> None:
        self.log.append(Entry(parts, value, payload, True, True))

    def forget_existing(self) -> None:
        """A delete in the batch: what the batch knew to exist may be gone."""
        self._existing.clear()

    def _undo(self, mark: int) -> Gen:
        self._existing.clear()
        while len(self.log) > mark:
            entry = self.log.pop()
            if entry.ping:
                continue
            if entry.prev is MISSING:
                yield (DELETE, entry.parts)
            else:
                yield (WRITE, entry.parts, entry.prev)

    def _coalesce(self, log: list[Entry], heard: Heard | None, merge: bool) -> Gen:
        """One Change per minimal written root: its value before the batch and now."""
        roots, merged = find_roots(log, heard, merge)
        self.merged = frozenset(merged)
        pings = (
            []
            if not any(map(_PING, log))
            else [Change(e.parts, e.prev, e.prev, e.payload, True) for e in log if e.ping]
        )
        if not roots:
            return pings
        # a merged parent's entries are its children's: _merged_values needs none of them
        related = _entries_by_root(roots, log) if len(merged) < len(roots) else {}
        changes = []
        for parts, payload in roots.items():
            children = merged.get(parts)
            if children is not None:
                old, new = yield from _merged_values(parts, children)
                changes.append(new_entry(Change, (parts, old, new, payload, False, None)))
                continue
            entries = related[parts]
            if len(entries) == 1:  # written once, nothing under it: the entry has both
                _, old, _, _, _, new = entries[0]
                if type(new) not in IMMUTABLE and new is not MISSING:
                    new = copy_out(new)
                if type(old) not in IMMUTABLE and old is not MISSING:
                    old = copy_out(old)
            else:
                old, new = yield from _before_and_now(parts, entries)
            if old is not new and not values_equal(old, new):
                # tuple.__new__: Change's own __new__ is Python code, and this is per root
                changes.append(new_entry(Change, (parts, old, new, payload, False, None)))
        changes.extend(pings)
        return changes


def _merged_values(parts: Parts, children: dict[str, Any]) -> Gen:
    """A merged parent's value before the batch and now (copies): now, with its merged
    children's keys set back to what they held (``children``: key -> value or MISSING)."""
    now = yield (READ, parts)
    new = copy_out(now) if now is not MISSING else MISSING
    old = copy_out(now) if type(now) is dict else {}  # (a dict: its children were written)
    if IMMUTABLE.issuperset(map(type, children.values())):  # usually: one C-level update
        old.update(children)
        return old, new
    for key, prev in children.items():
        if prev is MISSING:
            old.pop(key, None)
        else:
            old[key] = copy_out(prev)
    return old, new


def _before_and_now(parts: Parts, entries: list[Entry]) -> Gen:
    """A root's value before the batch and now (copies), from its log entries."""
    last = entries[-1]
    if last.parts == parts and last.notify:
        new = last.new  # nothing was written below it since: no need to read it
    else:
        new = yield (READ, parts)
    new = copy_out(new) if new is not MISSING else MISSING
    if all(e.parts == parts for e in entries):  # only rewritten: its first "before"
        first = entries[0].prev
        return (copy_out(first) if first is not MISSING else MISSING), new
    return value_before(parts, new, entries), new


def _entries_by_root(roots: dict[Parts, Any], log: list[Entry]) -> dict[Parts, list[Entry]]:
    """The log entries that touch each root's value (at, below or above it), in log order.
    Roots never nest, so an entry at or below a root belongs to that one root."""
    related: dict[Parts, list[Entry]] = {parts: [] for parts in roots}
    below: dict[Parts, list[Parts]] | None = None  # ancestor -> the roots under it
    for e in log:
        if e.ping:
            continue
        at = related.get(e.parts)
        if at is None and e.parts:  # a child of a root (a merged one's siblings)
            at = related.get(e.parts[:-1])
        if at is not None:  # at or just under a root, so above no other root
            at.append(e)
            continue
        owner = _owner(e.parts, roots)
        if owner is not None:  # below a root, so above no other root
            related[owner].append(e)
            continue
        if below is None:
            below = {}
            for parts in roots:
                for d in range(len(parts)):
                    below.setdefault(parts[:d], []).append(parts)
        for parts in below.get(e.parts, ()):
            related[parts].append(e)
    return related


def _owner(parts: Parts, roots: dict[Parts, Any]) -> Parts | None:
    return next((parts[:d] for d in range(len(parts)) if parts[:d] in roots), None)


def value_before(parts: Parts, now: Any, entries: Sequence[Undoable]) -> Any:
    """The value at ``parts`` before a batch: ``now`` with ``entries`` undone, newest first."""
    value = copy_out(now) if now is not MISSING else MISSING
    child = len(parts) + 1
    for e in reversed(entries):
        if type(e) is Entry:  # (a batch's log, where created dicts have entries of their own)
            if len(e.parts) == child and type(value) is dict and e.parts[:-1] == parts:
                prev = e.prev  # a child of ``parts``: its key, without walking (the usual case)
                if prev is MISSING:
                    value.pop(e.parts[-1], None)
                else:
                    value[e.parts[-1]] = prev if type(prev) in IMMUTABLE else copy_out(prev)
                continue
        else:
            created = getattr(e, "created", None)
            if created is not None and (e.prev is MISSING):
                e = Entry(created, MISSING)  # undoing the write removes what it created
        if is_prefix(e.parts, parts):
            found = get_in(e.prev, parts, len(e.parts))
            value = copy_out(found) if found is not MISSING else MISSING
            continue
        if not is_prefix(parts, e.parts):
            continue  # a change elsewhere in the batch (another root) left ``parts`` alone
        rel = e.parts[len(parts) :]
        if e.prev is MISSING:
            if type(value) is dict:
                delete_in(value, rel)
        else:
            if type(value) is not dict:
                value = {}
            set_in(value, rel, copy_out(e.prev))
    return value
