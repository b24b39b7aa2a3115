"""Derivations: who reads what, topological order, cycle detection (SPEC §4).

An edge D1 -> D2 exists when D1's destination overlaps (is, contains or lies under) one of
D2's sources: recomputing D1 may change D2's input. Registration keeps the graph acyclic, so
a topological rank exists; propagation recomputes affected derivations in rank order, each
once, after all its sources settled (glitch-free).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import Any

from ..errors import CycleError
from ..paths import Parts, parts_to_path, parts_to_str, related
from ..tree import get_in, values_equal

__all__ = ["Derivation", "DerivationGraph", "DerivationInfo"]


@dataclass(eq=False)
class Derivation:
    id: Hashable
    dest: Parts
    sources: tuple[Parts, ...]
    transform: Callable[[Any], Any]
    many: bool
    payload: Any = None


@dataclass(frozen=True)
class DerivationInfo:
    """A derivation as ``controller.derivations()`` reports it."""

    id: Hashable
    dest: PurePosixPath
    sources: tuple[PurePosixPath, ...]
    payload: Any
    status: str = "ok"  # ok | failed (see error) | stale (an input failed: reason) | refused
    error: BaseException | None = None
    reason: str | None = None

    @classmethod
    def of(cls, d: Derivation) -> DerivationInfo:
        return cls(d.id, parts_to_path(d.dest), tuple(map(parts_to_path, d.sources)), d.payload)

    def with_status(self, status: Any) -> DerivationInfo:
        """This info with the scheduler's marks (a ``tracking.Status``)."""
        error = status.refused if status.refused is not None else status.error
        return replace(self, status=status.word(False, False), error=error, reason=status.stale)


class DerivationGraph:
    def __init__(self) -> None:
        self.by_dest: dict[Parts, Derivation] = {}
        self.rank: dict[Hashable, int] = {}
        self._at: dict[Parts, list[Derivation]] = {}  # source -> derivations reading it
        self._below: dict[Parts, set[Parts]] = {}  # proper prefix -> sources under it

    def __bool__(self) -> bool:
        return bool(self.by_dest)

    def __iter__(self) -> Iterator[Derivation]:
        return iter(sorted(self.by_dest.values(), key=lambda d: self.rank[d.id]))

    def check(self, new: Derivation) -> None:
        """Raise CycleError if adding ``new`` (replacing the derivation at its dest) would
        create a cycle; the message names the chain of paths."""
        for src in new.sources:
            if related(src, new.dest):
                raise CycleError(
                    f"cannot derive {parts_to_str(new.dest)!r} from {parts_to_str(src)!r}: the "
                    f"destination is, contains or lies under its own source"
                )
        others = [d for d in self.by_dest.values() if d.dest != new.dest]
        chain = self._path_back(new, others)
        if chain is not None:
            names = " -> ".join(parts_to_str(p) for p in [new.dest, *chain, new.dest])
            raise CycleError(f"derivation cycle: {names} (each arrow: 'is a source of')")

    @staticmethod
    def _path_back(new: Derivation, others: list[Derivation]) -> list[Parts] | None:
        """Dests of a chain new -> D1 -> ... -> Dk where Dk feeds one of new's sources."""
        stack: list[tuple[Parts, list[Parts]]] = [(new.dest, [])]
        visited: set[Parts] = set()
        while stack:
            dest, chain = stack.pop()
            for d in others:
                if d.dest in visited or not any(related(dest, s) for s in d.sources):
                    continue
                if any(related(d.dest, s) for s in new.sources):
                    return [*chain, d.dest]
                visited.add(d.dest)
                stack.append((d.dest, [*chain, d.dest]))
        return None

    def add(self, d: Derivation) -> Derivation | None:
        """Register ``d`` (after ``check``); returns the derivation it replaced."""
        old = self.remove(d.dest)
        self.by_dest[d.dest] = d
        for src in d.sources:
            self._at.setdefault(src, []).append(d)
            for i in range(len(src)):
                self._below.setdefault(src[:i], set()).add(src)
        self._rerank()
        return old

    def remove(self, dest: Parts) -> Derivation | None:
        d = self.by_dest.pop(dest, None)
        if d is None:
            return None
        for src in d.sources:
            readers = self._at[src]
            readers.remove(d)
            if not readers:
                del self._at[src]
                for i in range(len(src)):
                    below = self._below[src[:i]]
                    below.discard(src)
                    if not below:
                        del self._below[src[:i]]
        self.rank.pop(d.id, None)
        self._rerank()
        return d

    def _rerank(self) -> None:
        nodes = list(self.by_dest.values())
        feeds = {
            d.id: [e for e in nodes if e is not d and any(related(d.dest, s) for s in e.sources)]
            for d in nodes
        }
        indegree = {d.id: 0 for d in nodes}
        for outs in feeds.values():
            for e in outs:
                indegree[e.id] += 1
        ready = [d for d in nodes if indegree[d.id] == 0]
        rank: dict[Hashable, int] = {}
        while ready:
            d = ready.pop(0)
            rank[d.id] = len(rank)
            for e in feeds[d.id]:
                indegree[e.id] -= 1
                if indegree[e.id] == 0:
                    ready.append(e)
        self.rank = rank

    def affected(self, parts: Parts, old: Any, new: Any, ping: bool) -> Iterator[Derivation]:
        """Derivations one of whose sources changed value because ``parts`` went old -> new."""
        at = self._at
        for depth in range(len(parts) + 1):
            readers = at.get(parts[:depth])
            if readers:
                yield from readers
        if ping:
            return
        n = len(parts)
        for src in self._below.get(parts, ()):
            if not values_equal(get_in(old, src, n), get_in(new, src, n)):
                yield from at[src]
