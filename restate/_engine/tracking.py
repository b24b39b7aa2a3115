"""The auto-tracker: which paths a tracked function read during its last run."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from ..paths import Parts, parts_to_path

__all__ = ["RECORDER", "Tracker", "TrackerInfo", "record_read"]

# (controller, set of parts) while a tracked function runs in this thread / task
RECORDER: ContextVar[tuple[object, set[Parts]] | None] = ContextVar(
    "restate_recorder", default=None
)


def record_read(controller: object, parts: Parts) -> None:
    """Record ``parts`` as read when a tracked function of ``controller`` is running here."""
    rec = RECORDER.get()
    if rec is not None and rec[0] is controller:
        rec[1].add(parts)


@dataclass(eq=False)
class Tracker:
    id: Hashable
    callback: Callable[..., Any]
    payload: Any = None
    paths: frozenset[Parts] = field(default_factory=frozenset)


@dataclass(frozen=True)
class TrackerInfo:
    """A tracked function as ``controller.trackers()`` reports it."""

    id: Hashable
    callback: Callable[..., Any]
    paths: frozenset[PurePosixPath]
    payload: Any

    @classmethod
    def of(cls, tracker: Tracker) -> TrackerInfo:
        paths = frozenset(parts_to_path(p) for p in tracker.paths)
        return cls(tracker.id, tracker.callback, paths, tracker.payload)
