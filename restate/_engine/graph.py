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
from .topology import Ranks

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
    """Derivations indexed by destination and by source path (exact, and under each prefix),
    so that registration and propagation only look at the derivations a path touches."""

    def __init__(self) -> None:
        self.by_dest: dict[Parts, Derivation] = {}
        self._by_id: dict[Hashable, Derivation] = {}
        self._ranks = Ranks()
        self.rank = self._ranks.of  # derivation id -> topological rank (the same dict, kept)
        self._at: dict[Parts, list[Derivation]] = {}  # source -> derivations reading it
        self._below: dict[Parts, set[Parts]] = {}  # proper prefix -> sources under it
        self._dests_below: dict[Parts, set[Parts]] = {}  # proper prefix -> dests under it
        self.on_change: Callable[[], None] = _nothing  # told of every add and remove

    def __bool__(self) -> bool:
        return bool(self.by_dest)

    def __len__(self) -> int:
        return len(self.by_dest)

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
        # the derivation ``new`` replaces is neither a reader of new.dest nor a writer of
        # new's sources (both would be the error above), so it never shows in the search
        back = self._ranks.path_back(self._writers(new), self._readers(new.dest), self._after)
        if back is not None:
            chain = [self._by_id[i].dest for i in back]
            names = " -> ".join(parts_to_str(p) for p in [new.dest, *chain, new.dest])
            raise CycleError(f"derivation cycle: {names} (each arrow: 'is a source of')")

    def add(self, d: Derivation) -> Derivation | None:
        """Register ``d`` (after ``check``); returns the derivation it replaced."""
        old = self.remove(d.dest)
        self._ranks.insert(d.id, self._writers(d), self._readers(d.dest), self._after, self._before)
        self.by_dest[d.dest] = d
        self._by_id[d.id] = d
        _index(self._dests_below, d.dest)
        for src in d.sources:
            self._at.setdefault(src, []).append(d)
            _index(self._below, src)
        self.on_change()
        return old

    def remove(self, dest: Parts) -> Derivation | None:
        d = self.by_dest.pop(dest, None)
        if d is None:
            return None
        del self._by_id[d.id]
        _unindex(self._dests_below, dest)
        for src in d.sources:
            readers = self._at[src]
            readers.remove(d)
            if not readers:
                del self._at[src]
                _unindex(self._below, src)
        self._ranks.discard(d.id)
        self.on_change()
        return d

    # ----- edges, found through the indexes ----------------------------------------------------

    def _readers(self, dest: Parts) -> list[Hashable]:
        """Ids of the derivations with a source at, above or under ``dest``."""
        at = self._at
        out = [d.id for i in range(len(dest) + 1) for d in at.get(dest[:i], ())]
        for src in self._below.get(dest, ()):
            out.extend(d.id for d in at[src])
        return out

    def _writers(self, d: Derivation) -> list[Hashable]:
        """Ids of the derivations whose dest is at, above or under one of ``d``'s sources."""
        by_dest = self.by_dest
        out = []
        for src in d.sources:
            for i in range(len(src) + 1):
                w = by_dest.get(src[:i])
                if w is not None:
                    out.append(w.id)
            out.extend(by_dest[p].id for p in self._dests_below.get(src, ()))
        return out

    def _after(self, id: Hashable) -> list[Hashable]:
        return self._readers(self._by_id[id].dest)

    def _before(self, id: Hashable) -> list[Hashable]:
        return self._writers(self._by_id[id])

    def reaches(self, parts: Parts) -> bool:
        """True when a source is at, above or under ``parts`` (a write there may matter)."""
        if not self.by_dest:
            return False
        at, below = self._at, self._below
        for depth in range(len(parts) + 1):
            prefix = parts[:depth]
            if prefix in at:
                return True
            if prefix not in below:
                return False
        return True  # sources lie under ``parts``

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


def _index(prefixes: dict[Parts, set[Parts]], parts: Parts) -> None:
    for i in range(len(parts)):
        prefixes.setdefault(parts[:i], set()).add(parts)


def _unindex(prefixes: dict[Parts, set[Parts]], parts: Parts) -> None:
    for i in range(len(parts)):
        under = prefixes[parts[:i]]
        under.discard(parts)
        if not under:
            del prefixes[parts[:i]]


def _nothing() -> None:
    pass
