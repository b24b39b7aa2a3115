"""Settling derivations after a write: each affected derivation recomputed once, in
topological order (glitch-free), its own writes feeding the ones after it."""

from __future__ import annotations

import heapq
from collections.abc import Hashable

from ..derived import DeriveData
from ..missing import MISSING
from ..paths import parts_to_str
from ..tree import IMMUTABLE, copy_in, copy_out, values_equal
from .graph import Derivation
from .registries import Registries
from .requests import CALL, READ, WRITE, Gen, user_value
from .subscriptions import Change

__all__ = ["Settling"]


class Settling(Registries):
    """``Engine``'s derivation settling; the engine sets these attributes up.

    (One chain of bases, Registries -> Settling -> Engine, not two mixins: the compiled
    build's mypyc supports single inheritance only.)
    """

    aliasing: bool

    def _settle(self, changes: list[Change], errors: list[Exception]) -> Gen:
        graph = self.graph
        heap: list[tuple[int, int, Derivation]] = []
        queued: set[Hashable] = set()

        def push(ch: Change) -> None:
            for d in graph.affected(ch.parts, ch.prev, ch.new, ch.ping):
                if d.id not in queued:
                    queued.add(d.id)
                    heapq.heappush(heap, (graph.rank[d.id], id(d), d))

        for ch in changes:
            push(ch)
        scheduler = self.scheduler
        while heap:
            d = heapq.heappop(heap)[2]
            if graph.by_dest.get(d.dest) is not d or scheduler.is_refused(d):
                continue
            if d.id in scheduler.computing:  # its transform wrote its own source
                raise scheduler.writes_own_source(d)
            try:
                scheduler.computing.add(d.id)
                try:
                    value = yield from self._compute(d)
                finally:
                    scheduler.computing.discard(d.id)
                prev = yield (READ, d.dest)
                if prev is not MISSING and values_equal(value, prev):
                    scheduler.derivation_ok(d)
                    continue
                stored = copy_in(value, d.dest)
                yield (WRITE, d.dest, stored)
            except Exception as exc:
                exc.add_note(f"(while deriving {parts_to_str(d.dest)!r})")
                if not scheduler.is_refused(d):
                    scheduler.derivation_failed(d, exc)
                errors.append(exc)
                continue
            scheduler.derivation_ok(d)
            new = copy_out(stored) if self.aliasing and type(stored) not in IMMUTABLE else stored
            ch = Change(d.dest, prev, new, d.payload)
            changes.append(ch)
            push(ch)

    def _compute(self, d: Derivation) -> Gen:
        if d.many:
            values = {}
            for src in d.sources:
                value = yield (READ, src)
                values[src] = user_value(value)
            return (yield (CALL, d.transform, DeriveData(values)))
        value = yield (READ, d.sources[0])
        return (yield (CALL, d.transform, user_value(value)))
