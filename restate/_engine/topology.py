"""Topological ranks kept valid as nodes come and go, without re-ranking the whole graph.

Every node has a distinct integer rank with ``rank[u] < rank[v]`` for every edge ``u -> v``.
Removing a node keeps that true. Inserting a node ``n`` with predecessors P and successors S
follows Pearce and Kelly ("A dynamic topological sort algorithm for directed acyclic graphs",
2006), generalised to one node with all its edges: when every P ranks below every S, ``n``
takes a free rank between them; otherwise only the nodes ranked between ``lo = min rank(S)``
and ``hi = max rank(P)`` can need moving:

* F: nodes reachable from S that rank at most ``hi`` (any path S -> P lies inside F, so
  ``F & P`` non-empty is exactly a cycle);
* B: nodes that reach P and rank at least ``lo``.

B, then ``n``, then F take the ranks B and F held, each group in its old order: F nodes
only move up and B nodes only move down, so edges leaving the region stay ordered. Ranks
are spaced ``GAP`` apart so that a new node usually finds a free rank; when none is left the
ranks are renumbered in order (O(N log N), rare).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence

__all__ = ["GAP", "Ranks"]

GAP = 1 << 32

Neighbours = Callable[[Hashable], Iterable[Hashable]]


class Ranks:
    """Ranks of the nodes of a DAG; ``of[node]`` is its rank."""

    def __init__(self) -> None:
        self.of: dict[Hashable, int] = {}
        self._taken: dict[int, Hashable] = {}
        self._top = 0
        self._bottom = 0

    def __len__(self) -> int:
        return len(self.of)

    def discard(self, node: Hashable) -> None:
        rank = self.of.pop(node, None)
        if rank is not None:
            del self._taken[rank]

    def path_back(
        self, preds: Sequence[Hashable], succs: Sequence[Hashable], forward: Neighbours
    ) -> list[Hashable] | None:
        """A path from one of ``succs`` to one of ``preds`` (a cycle through a new node with
        these edges), or None."""
        return self._forward(preds, succs, forward)[1]

    def insert(
        self,
        node: Hashable,
        preds: Sequence[Hashable],
        succs: Sequence[Hashable],
        forward: Neighbours,
        backward: Neighbours,
    ) -> None:
        """Rank ``node`` (not ranked yet, no cycle: ``path_back`` said so) after ``preds``
        and before ``succs``, moving only the nodes ranked between them."""
        rank = self.of
        hi = max((rank[p] for p in preds), default=None)
        lo = min((rank[s] for s in succs), default=None)
        if lo is None:
            self._top += GAP
            self._set(node, self._top)
        elif hi is None:
            self._bottom -= GAP
            self._set(node, self._bottom)
        elif hi < lo:
            self._set_between(node, preds, succs)
        else:
            self._reorder(node, preds, succs, forward, backward, lo)

    def _set(self, node: Hashable, value: int) -> None:
        self.of[node] = value
        self._taken[value] = node

    def _set_between(
        self, node: Hashable, below: Sequence[Hashable], above: Sequence[Hashable]
    ) -> None:
        """Give ``node`` a free rank above every node of ``below`` and under all of ``above``."""
        for _ in range(2):
            hi = max(self.of[b] for b in below)
            lo = min(self.of[a] for a in above)
            value = self._free_between(hi, lo)
            if value is not None:
                self._set(node, value)
                return
            self._renumber()  # ranks are now GAP apart: hi + 1 is free
        raise AssertionError("no free rank after renumbering")  # pragma: no cover

    def _free_between(self, low: int, high: int) -> int | None:
        for value in ((low + high) // 2, low + 1, high - 1):
            if low < value < high and value not in self._taken:
                return value
        return None

    def _reorder(
        self,
        node: Hashable,
        preds: Sequence[Hashable],
        succs: Sequence[Hashable],
        forward: Neighbours,
        backward: Neighbours,
        lo: int,
    ) -> None:
        rank = self.of
        ahead = self._forward(preds, succs, forward)[0]
        behind = self._backward(preds, lo, backward)
        slots = sorted(rank[x] for x in (*behind, *ahead))
        moved = sorted(behind, key=rank.__getitem__) + sorted(ahead, key=rank.__getitem__)
        for x in moved:
            del self._taken[rank[x]]
        for x, value in zip(moved, slots, strict=True):
            self._set(x, value)
        self._set_between(node, behind, ahead)

    def _forward(
        self, preds: Sequence[Hashable], succs: Sequence[Hashable], forward: Neighbours
    ) -> tuple[list[Hashable], list[Hashable] | None]:
        """Nodes reachable from ``succs`` ranked at most max rank(``preds``), and the first
        path found from a successor to a predecessor."""
        rank = self.of
        if not preds or not succs:
            return [], None
        hi = max(rank[p] for p in preds)
        targets = set(preds)
        parent: dict[Hashable, Hashable | None] = {}
        stack = []
        for s in succs:
            if rank[s] <= hi and s not in parent:
                parent[s] = None
                stack.append(s)
        while stack:
            x = stack.pop()
            if x in targets:
                return list(parent), _trail(parent, x)
            for y in forward(x):
                if y not in parent and rank[y] <= hi:
                    parent[y] = x
                    stack.append(y)
        return list(parent), None

    def _backward(self, preds: Sequence[Hashable], lo: int, backward: Neighbours) -> list[Hashable]:
        rank = self.of
        seen = {p for p in preds if rank[p] >= lo}
        stack = list(seen)
        while stack:
            for y in backward(stack.pop()):
                if y not in seen and rank[y] >= lo:
                    seen.add(y)
                    stack.append(y)
        return list(seen)

    def _renumber(self) -> None:
        ordered = sorted(self.of, key=self.of.__getitem__)
        self.of.clear()
        self._taken.clear()
        for i, x in enumerate(ordered, 1):
            self._set(x, i * GAP)
        self._top = len(ordered) * GAP
        self._bottom = GAP


def _trail(parent: dict[Hashable, Hashable | None], last: Hashable) -> list[Hashable]:
    out = [last]
    while (up := parent[out[-1]]) is not None:
        out.append(up)
    return out[::-1]
