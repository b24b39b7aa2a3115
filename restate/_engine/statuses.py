"""The marks of tracked functions and derivations: failed, stale (downstream of a failure,
until it recovers) and refused (in a loop their footprints close); the scheduler keeps one.

See ``restate/_engine/scheduler.py`` for when these marks are made ("Loops are refused from
footprints", "Failures propagate as marks")."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator

from ..errors import CycleError
from ..paths import Parts, parts_to_str
from .footprints import Node, derivation_name, find_cycle, footprint_nodes, successors
from .graph import Derivation, DerivationGraph
from .tracking import Status, Tracker

__all__ = ["Statuses", "shown"]


class Statuses:
    """The failed / stale / refused marks, and the footprint graph they are read from.

    Trackers keep their own ``Status``; derivations with a mark are in ``derived``.
    ``unmark`` drops a refused function's due mark (the scheduler's bookkeeping).
    """

    def __init__(
        self,
        trackers: dict[Hashable, Tracker],
        graph: DerivationGraph,
        unmark: Callable[[Hashable], None],
    ) -> None:
        self.trackers = trackers
        self.graph = graph
        self._unmark = unmark
        self.derived: dict[Hashable, Status] = {}  # derivations with a mark (failed, stale...)

    # ----- derivations ---------------------------------------------------------------------

    def is_refused(self, d: Derivation) -> bool:
        status = self.derived.get(d.id) if self.derived else None
        return status is not None and status.refused is not None

    def writes_own_source(self, d: Derivation) -> CycleError:
        """``d``'s transform wrote one of its sources (found when the write would recompute
        ``d`` inside its own transform): refuse ``d``."""
        name = derivation_name(d)
        sources = ", ".join(parts_to_str(s) for s in d.sources)
        error = CycleError(
            f"a loop: {name} → {sources} → {name} (its transform writes {sources}, which it "
            f"reads). It was stopped after one pass and does not recompute again; derive it "
            f"again once the transform no longer writes its sources."
        )
        self.derived.setdefault(d.id, Status()).refused = error
        return error

    def derivation_failed(self, d: Derivation, error: Exception) -> None:
        status = self.derived.setdefault(d.id, Status())
        status.error = error
        self.spread_stale(d.id, f"{parts_to_str(d.dest)} failed in {derivation_name(d)}")

    def derivation_ok(self, d: Derivation) -> None:
        status = self.derived.get(d.id) if self.derived else None
        if status is None:
            return
        failed = status.error is not None
        status.error = status.stale = status.cause = None
        if status.refused is None:
            del self.derived[d.id]
        if failed:
            self.recover(d.id)

    def derivation_status(self, d: Derivation) -> Status:
        return self.derived.get(d.id) or Status()

    # ----- the footprint graph ---------------------------------------------------------------

    def nodes(self) -> list[Node]:
        return footprint_nodes(self.trackers, self.graph)

    def find_cycle(self, start: Hashable) -> list[tuple[Node, Parts]] | None:
        """A loop through ``start``: [(node, path it writes that the next node reads), ...]."""
        return find_cycle(self.nodes(), start)

    def refuse(self, chain: list[tuple[Node, Parts]]) -> CycleError:
        text = " → ".join(f"{node.name} → {parts_to_str(path)}" for node, path in chain)
        refused = [node for node, _ in chain if node.id in self.trackers]
        names = list(dict.fromkeys(node.name for node in refused))
        listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
        error = CycleError(
            f"a loop: {text} → {chain[0][0].name}. Stopped before it could repeat: "
            f"{chain[0][0].name} ran once and the state is what it left; {listed} will not "
            f"run again until tracked again. Break the loop (read and write different paths)."
        )
        for node in refused:
            self.trackers[node.id].status.refused = error
            self._unmark(node.id)
        for node in refused:
            self._notify(node.id)
        return error

    def spread_stale(self, source: Hashable, reason: str) -> None:
        """Mark everything downstream of ``source`` stale because ``source`` failed."""
        nodes = self.nodes()
        first = next((n for n in nodes if n.id == source), None)
        if first is None:
            return
        seen = {source}
        todo = [first]
        while todo:
            node = todo.pop()
            for nxt, _ in successors(node, nodes):
                if nxt.id in seen:
                    continue
                seen.add(nxt.id)
                todo.append(nxt)
                status = self._status_of(nxt.id)
                if status.stale is None:
                    status.stale, status.cause = reason, source
                    self._notify(nxt.id)

    def recover(self, source: Hashable) -> None:
        for tid, status in self._statuses():
            if status.cause == source:
                status.stale = status.cause = None
                self._notify(tid)

    def _statuses(self) -> Iterator[tuple[Hashable, Status]]:
        for tracker in list(self.trackers.values()):
            yield tracker.id, tracker.status
        yield from list(self.derived.items())

    def _status_of(self, nid: Hashable) -> Status:
        tracker = self.trackers.get(nid)
        if tracker is not None:
            return tracker.status
        return self.derived.setdefault(nid, Status())

    def _notify(self, nid: Hashable) -> None:
        tracker = self.trackers.get(nid)
        if tracker is not None and tracker.on_mark is not None:
            tracker.on_mark(nid)


def shown(paths: Iterable[Parts]) -> str:
    return ", ".join(sorted(parts_to_str(p) for p in paths)) or "it"
