"""Who hears a write at a path, usually in one dict lookup.

"Does any subscription, tracked path or derivation source lie at, above or under this path"
is worked out once per path (a walk of the subscription trie and of the source prefixes)
and remembered until a registration changes (subscribe, unsubscribe, a tracked function's
new reads, derive, underive). A write heard by nobody then skips planning entirely, and
costs the same however many unrelated registrations exist elsewhere in the tree.

For a path heard only by plain subscriptions and tracked functions the answer is a
``Route``: those subscriptions in delivery order (the written path, then its ancestors,
innermost first -- what ``SubscriptionIndex.plan_one`` would produce) and the tracked
functions that read the path or above it. The engine's direct write path
(``Engine.set_direct``) delivers from it without planning. Anything else that hears the path
-- a derivation source, a ``*`` subscription that may match it -- makes the answer
``True``: "heard, ask the planner".
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

from ..paths import Parts
from .graph import DerivationGraph
from .subscriptions import TRACK, Change, Delivery, Seen, SubscriptionIndex, seen_again

if TYPE_CHECKING:
    from .subscriptions import _Node

__all__ = ["Audience", "Heard", "Route", "plan_route"]

LIMIT = 4096  # remembered paths; past it the memory starts again (writes to ever-new paths)


class Route:
    """The plain subscriptions that hear a write at one path, in delivery order.

    ``subs``: ``(callback id, trie node, current path)``, the written path first, then its
    ancestors innermost first. ``below``: subscriptions lie under the path, so a write whose
    old or new value is a dict needs the planner (it diffs the dicts to find them).
    ``above_only``: every subscription that hears the path lies above it (a batch may merge
    such siblings into one change at their parent: batching.py). ``trackers``: the ids of
    the tracked functions that read the path or one above it, innermost first.
    """

    __slots__ = ("above_only", "below", "subs", "trackers")

    def __init__(
        self,
        subs: tuple[tuple[Hashable, _Node, Parts], ...],
        below: bool,
        depth: int,
        trackers: tuple[Hashable, ...] = (),
    ) -> None:
        self.subs = subs
        self.below = below
        self.trackers = trackers
        self.above_only = (
            not below and not trackers and all(len(current) < depth for _, _, current in subs)
        )


# False: nobody hears; a Route: only these plain subscriptions; True: ask the planner
Heard = bool | Route


class Audience:
    __slots__ = ("graph", "known", "subs")

    def __init__(self, subs: SubscriptionIndex, graph: DerivationGraph) -> None:
        self.subs = subs
        self.graph = graph
        self.known: dict[Parts, Heard] = {}
        subs.on_change = graph.on_change = self.forget

    def forget(self) -> None:
        if self.known:
            self.known = {}

    def hears(self, parts: Parts) -> bool:
        """True when a subscription, tracked path or derivation source touches ``parts``."""
        heard = self.known.get(parts)
        if heard is None:
            heard = self.route(parts)
        return heard is not False

    def route(self, parts: Parts) -> Heard:
        """False (nobody hears ``parts``), a ``Route`` (only plain subscriptions do), or True
        (the planner must work it out); remembered until a registration changes."""
        heard = self.known.get(parts)
        if heard is None:
            heard = self._work_out(parts)
            if len(self.known) >= LIMIT:
                self.known = {}
            self.known[parts] = heard
        return heard

    def _work_out(self, parts: Parts) -> Heard:
        subs = self.subs
        if not subs.reaches(parts):
            return self.graph.reaches(parts)
        if self.graph.reaches(parts):
            return True
        chain = subs.chain(parts)
        if any(node.wild is not None for node in chain[: len(parts)]):
            return True  # a ``*`` subscription may match this path: the planner's walk
        found: list[tuple[Hashable, _Node, Parts]] = []
        trackers: list[Hashable] = []
        for depth in range(len(chain) - 1, -1, -1):
            node = chain[depth]
            current = parts if depth == len(parts) else parts[:depth]
            for cid, kind in node.entries.items():
                if kind == TRACK:
                    if cid not in trackers:
                        trackers.append(cid)
                else:
                    found.append((cid, node, current))
        last = chain[-1]
        below = len(chain) == len(parts) + 1 and bool(last.children or last.wild)
        return Route(tuple(found), below, len(parts), tuple(trackers))


def plan_route(
    route: Route,
    change: Change,
    out: list[Delivery],
    seen: Seen,
    trackers: dict[Hashable, Change],
) -> bool:
    """``SubscriptionIndex.plan`` for a change whose path has a ``Route``: the same
    deliveries and tracked functions, without walking the trie. False (nothing planned) when
    the change needs the planner after all: a dict written where subscriptions lie below."""
    prev, new = change.prev, change.new
    if route.below and not change.ping and (type(prev) is dict or type(new) is dict):
        return False
    for tid in route.trackers:
        trackers.setdefault(tid, change)
    parts, payload = change.parts, change.payload
    bubble = [0]
    for cid, node, current in route.subs:
        if not seen_again(seen, cid, current, len(out)):
            out.append((cid, node, parts, current, prev, new, payload, bubble))
    return True
