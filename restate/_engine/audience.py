"""Who hears a write at a path, usually in one dict lookup.

"Does any subscription, tracked path or derivation source lie at, above or under this path"
is worked out once per path (a walk of the subscription trie and of the source prefixes)
and remembered until a registration changes (subscribe, unsubscribe, a tracked function's
new reads, derive, underive). A write heard by nobody then skips planning entirely, and
costs the same however many unrelated registrations exist elsewhere in the tree.
"""

from __future__ import annotations

from ..paths import Parts
from .graph import DerivationGraph
from .subscriptions import SubscriptionIndex

__all__ = ["Audience"]

LIMIT = 4096  # remembered paths; past it the memory starts again (writes to ever-new paths)


class Audience:
    __slots__ = ("graph", "known", "subs")

    def __init__(self, subs: SubscriptionIndex, graph: DerivationGraph) -> None:
        self.subs = subs
        self.graph = graph
        self.known: dict[Parts, bool] = {}
        subs.on_change = graph.on_change = self.forget

    def forget(self) -> None:
        if self.known:
            self.known = {}

    def hears(self, parts: Parts) -> bool:
        """True when a subscription, tracked path or derivation source touches ``parts``."""
        heard = self.known.get(parts)
        if heard is None:
            heard = self.subs.reaches(parts) or self.graph.reaches(parts)
            if len(self.known) >= LIMIT:
                self.known = {}
            self.known[parts] = heard
        return heard
