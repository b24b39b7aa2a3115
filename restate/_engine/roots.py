"""Which paths a batch's end reports: the minimal written roots someone hears, and siblings
merged into their parent.

A batch's log is coalesced (batching.py) into one change per root: a written path with no
written path above it. A root nobody hears needs no change at all. Siblings heard only by
subscriptions above them (``/batch`` hears writes to ``/batch/k0`` ... ``/batch/k999``)
become one change at their parent: each of those subscriptions would be reached by every
sibling, so it gets one event about its own path and values anyway (engine.py, "reached by
several"); one change at the parent gives it the same event without coalescing, planning
and undoing each sibling. The engine widens the deliveries of a merged change
(``Engine._plan``), so every subscription still gets its own path and values.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import eq, is_, itemgetter
from typing import TYPE_CHECKING, Any

from ..missing import MISSING
from ..paths import Parts
from ..tree import IMMUTABLE, values_equal

if TYPE_CHECKING:
    from .batching import Entry

__all__ = ["Heard", "find_roots", "nobody"]

# who hears a write at a path: false (nobody), or true -- possibly an object whose
# ``above_only`` says that only subscriptions above the path hear it (audience.Route)
Heard = Callable[[Parts], Any]


def nobody(parts: Parts) -> bool:
    """``heard`` for ``BatchLog.end`` when nothing is registered: no root is coalesced."""
    return False


def find_roots(
    log: list[Entry], heard: Heard | None, merge: bool
) -> tuple[dict[Parts, Any], dict[Parts, dict[str, Any]]]:
    """The roots (path -> payload) someone hears (``heard`` None: all), the first write
    fixing the order, the last the payload; and the parents that took their siblings' place
    (``merge``: allowed -- not with listeners or derivations, which see every root), each
    with what its merged children held before the batch (key -> stored value or MISSING).

    Siblings merge only where every written root under the parent is such a sibling, at
    least two, and each was written once with nothing under it and changed (a root that ends
    where it started drops out of the batch's changes, so it must not be counted), and no
    write of the batch was quiet (``skip_notify``) or a ping: their values are no part of
    the roots' changes, but would be of the parent's."""
    if heard is nobody:
        return {}, {}
    if merge and heard is not None and log:
        found = _siblings(log, heard)
        if found is not None:
            return found
    written: dict[Parts, Entry] = {}
    for e in log:
        if e.notify and not e.ping:
            written[e.parts] = e
    # every entry a notified write of its own path (the cheap test for "written once")
    merge = merge and heard is not None and len(written) == len(log)
    roots: dict[Parts, Any] = {}
    before: dict[Parts, dict[str, Any]] = {}  # parent -> its mergeable children's values
    spoilt: set[Parts] = set()  # parents with a child that may not merge
    below: set[Parts] = set()  # paths with a write under them (merge only)
    nested: dict[Parts, bool] = {}  # parent -> a written path at or above it (siblings share)
    depths = set()
    for parts, e in written.items():
        if parts:
            parent = parts[:-1]
            inside = nested.get(parent)
            if inside is None:
                inside = any(parent[:d] in written for d in range(len(parent) + 1))
                nested[parent] = inside
            if inside:
                if merge:
                    below.update(parts[:d] for d in range(len(parts)))
                continue
        route = True if heard is None else heard(parts)
        if not route:
            continue  # a change nobody hears needs no values
        roots[parts] = e.payload
        if merge and parts:
            depths.add(len(parts))
            prev, new = e.prev, e.new
            if type(route) is bool or not route.above_only or prev is new:
                spoilt.add(parent)  # (prev is new: also a created dict's own entry)
                continue
            if type(prev) is type(new) and type(prev) in IMMUTABLE:  # (usually, inline)
                if prev == new:
                    spoilt.add(parent)
                    continue
            elif prev is not MISSING and new is not MISSING and values_equal(prev, new):
                spoilt.add(parent)
                continue
            children = before.get(parent)
            if children is None:
                children = before[parent] = {}
            children[parts[-1]] = e.prev
    if not merge or not before:
        return roots, {}
    spoilt.update(p[:-1] for p in below if p in roots)
    merged = {p: b for p, b in before.items() if len(b) > 1 and p not in spoilt}
    if merged and len(depths) > 1:  # a root deeper under a parent would nest in it
        for p in roots:
            for d in range(len(p) - 1):
                merged.pop(p[:d], None)
    if not merged:
        return roots, {}
    out: dict[Parts, Any] = {}
    for parts, payload in roots.items():  # the parent takes its first sibling's place
        parent = parts[:-1]
        if parts and parent in merged:
            out.setdefault(parent, payload)  # (the first sibling's: its delivery's payload)
        else:
            out[parts] = payload
    return out, merged


_PARTS, _PREV, _NOTIFY, _PING, _NEW, _KEY = map(itemgetter, (0, 1, 3, 4, 5, -1))


def _siblings(
    log: list[Entry], heard: Heard
) -> tuple[dict[Parts, Any], dict[Parts, dict[str, Any]]] | None:
    """``find_roots`` for the usual large batch, in C-level passes: every entry a notified
    write changing one immutable value into another at its own child of one parent that
    nothing under it hears (``Route.below`` false: no subscription at any child either).
    None when the log is not like that (the general way decides)."""
    paths = list(map(_PARTS, log))
    if len(paths) < 2:
        return None  # (one root alone keeps its own event)
    depths = set(map(len, paths))
    depth = depths.pop()
    if depths or not depth:
        return None
    for d in range(depth - 1):  # one parent: one segment at each level above the children
        if len(set(map(itemgetter(d), paths))) != 1:
            return None
    if not all(map(_NOTIFY, log)) or any(map(_PING, log)):
        return None
    prevs, news = list(map(_PREV, log)), list(map(_NEW, log))
    if not (IMMUTABLE.issuperset(map(type, prevs)) and IMMUTABLE.issuperset(map(type, news))):
        return None  # (MISSING among them: a created or deleted child)
    if any(map(is_, prevs, news)) or any(map(eq, prevs, news)):
        return None  # one ended where it started (or equal but for its type: 1 and 1.0)
    children = dict(zip(map(_KEY, paths), prevs, strict=True))
    if len(children) != len(paths):
        return None  # a child written twice
    parent = paths[0][:-1]
    route = heard(parent)
    if not route:
        return {}, {}
    if type(route) is bool or route.below or route.trackers:
        return None
    return {parent: log[0].payload}, {parent: children}
