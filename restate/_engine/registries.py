"""The engine's registries, and keeping them consistent: callback ids, subscriptions,
tracked functions and derivations registered and removed (no I/O; engine.py runs the
operations over them)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable
from typing import Any

from ..errors import CallbackIdError
from ..paths import Parts
from .callbacks import CallbackRegistry
from .graph import DerivationGraph
from .scheduler import Scheduler
from .subscriptions import TRACK, SubscriptionIndex
from .tracking import NOW, POLICIES, Tracker

__all__ = ["Registries"]


class Registries:
    """What ``Engine`` registers; the engine sets these attributes up."""

    subs: SubscriptionIndex
    registry: CallbackRegistry
    callbacks: dict[Hashable, Callable[..., Any]]
    graph: DerivationGraph
    trackers: dict[Hashable, Tracker]
    scheduler: Scheduler
    _ids: itertools.count[int]

    def new_id(self) -> int:
        """A fresh id; skips ids a caller forced on a callback (one index holds both)."""
        cid = next(self._ids)
        while cid in self.callbacks:
            cid = next(self._ids)
        return cid

    def register_callback(
        self,
        callback: Callable[..., Any],
        force_id: Hashable = None,
        replace: bool = False,
        keep: bool = True,
    ) -> Hashable:
        """The id of ``callback``: ``force_id``, the id of an equal registered callback, or a
        new one. ``keep``: the id outlives its subscriptions (``register_callback``); without
        it (``subscribe``) the last ``unsubscribe`` releases the callback."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        registry = self.registry
        if force_id is None:
            cid = registry.first_id(callback)
            if cid is None:
                cid = self.new_id()
                registry.put(cid, callback)
        else:
            cid = force_id
            known = registry.by_id.get(cid)
            if known is not None and known != callback and not replace:
                raise CallbackIdError(
                    f"callback id {cid!r} is already used by {known!r}; pass replace=True "
                    f"to replace it, or choose another id"
                )
            if known is not callback:
                keep = keep or cid in registry.kept
                registry.put(cid, callback)
        if keep:
            registry.kept.add(cid)
        return cid

    def ids_of(self, callback: Callable[..., Any]) -> list[Hashable]:
        return self.registry.ids_of(callback)

    def unsubscribe(self, parts: Parts, cid: Hashable) -> bool:
        """Remove one subscription; an implicitly registered callback left without any is
        released."""
        if not self.subs.remove(parts, cid):
            return False
        if cid not in self.registry.kept and not self.subs.has(cid):
            self.registry.pop(cid)
        return True

    def remove_callback(self, cid: Hashable) -> bool:
        if self.registry.pop(cid) is None:
            return False
        self.subs.remove_all(cid)
        return True

    def register_tracker(
        self,
        callback: Callable[..., Any],
        payload: Any = None,
        name: str | None = None,
        policy: str = NOW,
        on_mark: Callable[[Hashable], Any] | None = None,
        raise_errors: bool = True,
    ) -> Tracker:
        """Check and register a tracked function; the controller runs it first (outside its
        lock, as a re-run: ``Scheduler.first_run``)."""
        if not callable(callback):
            raise TypeError(f"track() needs a callable, not {type(callback).__name__}")
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")
        if on_mark is not None and not callable(on_mark):
            raise TypeError(f"on_mark must be callable, not {type(on_mark).__name__}")
        if name is None:  # "Class.method" or "fn", without the "outer.<locals>." noise
            qualname = getattr(callback, "__qualname__", None) or repr(callback)
            name = qualname.rsplit("<locals>.", 1)[-1]
        tracker = Tracker(self.new_id(), callback, payload, name, policy, on_mark)
        tracker.raise_errors = raise_errors
        self.trackers[tracker.id] = tracker
        return tracker

    def untrack(self, tid: Hashable) -> bool:
        tracker = self.trackers.pop(tid, None)
        if tracker is None:
            return False
        self.subs.remove_all(tid)
        self.scheduler.forget(tid)
        return True

    def underive(self, dest: Parts) -> bool:
        d = self.graph.remove(dest)
        if d is None:
            return False
        self.scheduler.forget(d.id)
        self.scheduler.topology += 1
        return True

    def _subscribe(self, tracker: Tracker, parts: Parts) -> None:
        self.subs.add(parts, tracker.id, TRACK)

    def _retrack(self, tracker: Tracker, read: set[Parts]) -> None:
        if self.trackers.get(tracker.id) is not tracker:
            return
        for parts in tracker.paths - read:
            self.subs.remove(parts, tracker.id)
        for parts in read - tracker.paths:
            self.subs.add(parts, tracker.id, TRACK)
        tracker.paths = frozenset(read)
