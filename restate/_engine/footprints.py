"""The footprint graph: tracked functions and derivations as nodes, an edge where one
writes a path that another reads (the same path, above or below it). The scheduler orders
due functions by it and searches it for loops."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from typing import NamedTuple

from ..paths import Parts, parts_to_str, related
from .graph import Derivation, DerivationGraph
from .tracking import Tracker

__all__ = ["Node", "derivation_name", "feeds", "find_cycle", "footprint_nodes", "successors"]


class Node(NamedTuple):
    """A tracked function or a derivation, as the footprint graph sees it."""

    id: Hashable
    name: str
    reads: Iterable[Parts]
    writes: Iterable[Parts]


def footprint_nodes(trackers: dict[Hashable, Tracker], graph: DerivationGraph) -> list[Node]:
    out = [Node(t.id, t.name, t.paths, t.writes) for t in trackers.values()]
    out += [Node(d.id, derivation_name(d), d.sources, (d.dest,)) for d in graph.by_dest.values()]
    return out


def find_cycle(nodes: list[Node], start: Hashable) -> list[tuple[Node, Parts]] | None:
    """A loop through ``start``: [(node, path it writes that the next node reads), ...]."""
    first = next((n for n in nodes if n.id == start), None)
    if first is None or not first.writes:
        return None
    stack: list[tuple[Node, list[tuple[Node, Parts]]]] = [(first, [])]
    seen: set[Hashable] = set()
    while stack:
        node, chain = stack.pop()
        for nxt, path in successors(node, nodes):
            if nxt.id == start:
                return [*chain, (node, path)]
            if nxt.id not in seen:
                seen.add(nxt.id)
                stack.append((nxt, [*chain, (node, path)]))
    return None


def derivation_name(d: Derivation) -> str:
    return f"derive {parts_to_str(d.dest)}"


def feeds(writes: Iterable[Parts], reads: Iterable[Parts]) -> bool:
    return any(related(w, r) for w in writes for r in reads)


def successors(node: Node, nodes: list[Node]) -> Iterator[tuple[Node, Parts]]:
    for other in nodes:
        path = next((w for w in node.writes for r in other.reads if related(w, r)), None)
        if path is not None:
            yield other, path
