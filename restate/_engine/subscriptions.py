"""Index of exact and wildcard subscriptions (and tracked functions) by path.

A trie keyed by segment; a ``*`` node matches any one segment. Finding who hears a write at W
walks W's segments (O(depth), independent of unrelated subscriptions) and, when W's value is
a dict, the subscribed part of the trie below W.

Order of deliveries for one change at W (docs/semantics.md#delivery-order)::

    set_state("/a/b", {"c": 1})   subscriptions: /a/b/c, /a/b, /a, /
    -> /a/b/c  (emitting=current=/a/b/c, its own prev/new)      descendants, deepest first
    -> /a/b    (emitting=current=/a/b)                          exact
    -> /a, /   (emitting=/a/b, current=/a then /)               ancestors, innermost first

``stop_bubbling()`` in a callback skips the later deliveries of that change whose
``current_path`` lies above the caller's. Tracked functions are collected apart and are never
stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

from ..missing import MISSING
from ..paths import WILDCARD, Parts
from ..tree import values_equal

__all__ = ["SUB", "TRACK", "Change", "Delivery", "Seen", "SubscriptionIndex", "seen_again"]

SUB = 0
TRACK = 1


class Change(NamedTuple):
    """A changed root: the values at ``parts`` before and after (``MISSING`` when absent)."""

    parts: Parts
    prev: Any
    new: Any
    payload: Any = None
    ping: bool = False
    created: Parts | None = None  # the highest dict the write created above ``parts``


# One planned callback call (a plain tuple: planning is the hot path):
# (callback id, trie node, emitting path, current path, prev, new, payload, bubble)
Delivery = tuple[Hashable, "_Node", Parts, Parts, Any, Any, Any, list[int]]


# (callback id, current path) -> [index of its delivery, how many changes reached it]
Seen = dict[tuple[Hashable, Parts], list[int]]


def seen_again(seen: Seen, cid: Hashable, current: Parts, index: int) -> bool:
    """Count a hit; True when this subscription already has a delivery in this dispatch."""
    hit = seen.get((cid, current))
    if hit is None:
        seen[(cid, current)] = [index, 1]
        return False
    hit[1] += 1
    return True


class _Node:
    __slots__ = ("children", "entries", "wild")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.wild: _Node | None = None
        self.entries: dict[Hashable, int] = {}

    def child(self, seg: str) -> _Node | None:
        return self.wild if seg == WILDCARD else self.children.get(seg)

    def is_empty(self) -> bool:
        return not (self.entries or self.children or self.wild)


class SubscriptionIndex:
    """Subscriptions (``SUB``) and tracked functions (``TRACK``) keyed by callback id."""

    def __init__(self) -> None:
        self.root = _Node()
        self._where: dict[Hashable, set[Parts]] = {}
        self.wildcards = 0  # '*' nodes in the trie: without any, a write walks one chain
        self.size = 0  # subscriptions and tracked paths
        self.on_change: Callable[[], None] = _nothing  # told of every add and remove

    def __len__(self) -> int:
        return self.size

    def add(self, parts: Parts, cid: Hashable, kind: int = SUB) -> bool:
        node = self.root
        for seg in parts:
            nxt = node.child(seg)
            if nxt is None:
                nxt = _Node()
                if seg == WILDCARD:
                    node.wild = nxt
                    self.wildcards += 1
                else:
                    node.children[seg] = nxt
            node = nxt
        if cid in node.entries:
            return False
        node.entries[cid] = kind
        self.size += 1
        self.on_change()
        self._where.setdefault(cid, set()).add(parts)
        return True

    def remove(self, parts: Parts, cid: Hashable) -> bool:
        trail = [self.root]
        for seg in parts:
            nxt = trail[-1].child(seg)
            if nxt is None:
                return False
            trail.append(nxt)
        if trail[-1].entries.pop(cid, None) is None:
            return False
        self.size -= 1
        self.on_change()
        where = self._where[cid]
        where.discard(parts)
        if not where:
            del self._where[cid]
        self._prune(trail, parts)
        return True

    def _prune(self, trail: list[_Node], parts: Parts) -> None:
        for depth in range(len(parts), 0, -1):
            if not trail[depth].is_empty():
                return
            parent, seg = trail[depth - 1], parts[depth - 1]
            if seg == WILDCARD:
                parent.wild = None
                self.wildcards -= 1
            else:
                del parent.children[seg]

    def has(self, cid: Hashable) -> bool:
        """True while ``cid`` has a subscription (or tracked path)."""
        return cid in self._where

    def reaches(self, parts: Parts) -> bool:
        """True when a subscription or tracked path is at, above or under ``parts``: False
        means a write there is heard by nobody here. Stops at the first segment that leaves
        the subscribed part of the trie (usually the first)."""
        if not self.wildcards:
            at = self.root
            for seg in parts:
                if at.entries:
                    return True
                below = at.children.get(seg)
                if below is None:
                    return False
                at = below
            return bool(at.entries or at.children)
        level = [self.root]
        for seg in parts:
            if any(node.entries for node in level):
                return True
            level = _step(level, seg)
            if not level:
                return False
        return any(not node.is_empty() for node in level)

    def chain(self, parts: Parts) -> list[_Node]:
        """The trie nodes along ``parts`` (``*`` nodes aside), from the root as far as the
        subscribed part of the trie goes: the nodes whose subscriptions hear a write there."""
        chain = [self.root]
        for seg in parts:
            node = chain[-1].children.get(seg)
            if node is None:
                break
            chain.append(node)
        return chain

    def remove_all(self, cid: Hashable) -> None:
        for parts in list(self._where.get(cid, ())):
            self.remove(parts, cid)

    def plan(
        self,
        change: Change,
        out: list[Delivery],
        seen: Seen | None,
        trackers: dict[Hashable, Change],
    ) -> None:
        """Append the deliveries ``change`` causes to ``out`` (each subscription once per
        concrete path across one dispatch, counted in ``seen``) and its tracked functions to
        ``trackers``."""
        parts = change.parts
        if not self.wildcards:
            self.plan_one(change, out, seen, trackers)
            return
        levels = [[self.root]]
        for seg in parts:
            nxt = _step(levels[-1], seg)
            if not nxt:
                break
            levels.append(nxt)
        bubble = [0]  # deliveries whose current path is shallower than this are stopped
        n = len(parts)
        if len(levels) == n + 1 and not change.ping:
            for node in levels[-1]:
                if node.children or node.wild:
                    self._below(
                        node, parts, change.prev, change.new, change, bubble, out, seen, trackers
                    )
        for depth in range(len(levels) - 1, -1, -1):  # the written path, then its ancestors
            current = parts if depth == n else parts[:depth]
            for node in levels[depth]:
                if node.entries:
                    self._emit(
                        node, parts, current, change, change.prev, change.new, bubble, out,
                        seen, trackers,
                    )  # fmt: skip

    def plan_one(
        self,
        change: Change,
        out: list[Delivery],
        seen: Seen | None,
        trackers: dict[Hashable, Change],
    ) -> None:
        """``plan`` without wildcards: the subscribed paths at and above a write form one
        chain of trie nodes, walked once."""
        parts = change.parts
        chain = self.chain(parts)
        bubble = [0]
        prev, new, payload = change.prev, change.new, change.payload
        n = len(parts)
        node = chain[-1]
        if len(chain) == n + 1 and node.children and not change.ping:
            self._below(node, parts, prev, new, change, bubble, out, seen, trackers)
        for depth in range(len(chain) - 1, -1, -1):
            entries = chain[depth].entries
            if not entries:
                continue
            current = parts if depth == n else parts[:depth]
            for cid, kind in entries.items():
                if kind == TRACK:
                    trackers.setdefault(cid, change)
                    continue
                if seen is not None and seen_again(seen, cid, current, len(out)):
                    continue
                out.append((cid, chain[depth], parts, current, prev, new, payload, bubble))

    def _below(
        self,
        node: _Node,
        base: Parts,
        old: Any,
        new: Any,
        change: Change,
        bubble: list[int],
        out: list[Delivery],
        seen: Seen | None,
        trackers: dict[Hashable, Change],
    ) -> None:
        old_d = old if type(old) is dict else None
        new_d = new if type(new) is dict else None
        if old_d is None and new_d is None:
            return
        pairs = list(node.children.items())
        if node.wild is not None:
            keys = dict.fromkeys(old_d or ())
            keys.update(dict.fromkeys(new_d or ()))
            pairs.extend((k, node.wild) for k in keys)
        for key, child in pairs:
            o = old_d.get(key, MISSING) if old_d is not None else MISSING
            n = new_d.get(key, MISSING) if new_d is not None else MISSING
            if o is n or (o is not MISSING and n is not MISSING and values_equal(o, n)):
                continue
            path = (*base, key)
            self._below(child, path, o, n, change, bubble, out, seen, trackers)
            self._emit(child, path, path, change, o, n, bubble, out, seen, trackers)

    @staticmethod
    def _emit(
        node: _Node,
        emitting: Parts,
        current: Parts,
        change: Change,
        prev: Any,
        new: Any,
        bubble: list[int],
        out: list[Delivery],
        seen: Seen | None,
        trackers: dict[Hashable, Change],
    ) -> None:
        for cid, kind in node.entries.items():
            if kind == TRACK:
                trackers.setdefault(cid, change)
                continue
            if seen is not None and seen_again(seen, cid, current, len(out)):
                continue
            out.append((cid, node, emitting, current, prev, new, change.payload, bubble))


def _step(level: list[_Node], seg: str) -> list[_Node]:
    """The nodes one segment below ``level``: each one's child ``seg`` and its ``*`` node."""
    nxt = []
    for node in level:
        child = node.children.get(seg)
        if child is not None:
            nxt.append(child)
        if node.wild is not None:
            nxt.append(node.wild)
    return nxt


def _nothing() -> None:
    pass
