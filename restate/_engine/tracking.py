"""The footprint recorder (what a tracked function read and wrote during its last run) and
the tracked function's record (its policy, footprint, status and why it last ran)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, ClassVar

from ..paths import Parts, parts_to_path

__all__ = [
    "DEFERRED",
    "EAGER",
    "LAZY",
    "NOW",
    "POLICIES",
    "RECORDER",
    "Footprint",
    "Status",
    "Tracker",
    "TrackerInfo",
    "Why",
    "record_read",
    "record_write",
    "recording",
    "start_recording",
    "stop_recording",
]

NOW, EAGER, DEFERRED, LAZY = "now", "eager", "deferred", "lazy"
POLICIES = (NOW, EAGER, DEFERRED, LAZY)


class Footprint:
    """The paths one run read and wrote, and who was running (for "why" lines)."""

    __slots__ = ("controller", "heard", "listen", "name", "reads", "writes")

    # how many footprints are being recorded anywhere: a plain write checks this int before
    # it looks the recorder up, so writes outside tracked code pay almost nothing
    active: ClassVar[int] = 0  # (ClassVar: a class attribute for mypyc too)

    def __init__(self, controller: object, name: str) -> None:
        self.controller = controller
        self.name = name
        self.reads: set[Parts] = set()
        self.writes: set[Parts] = set()
        # a run outside the controller's lock subscribes at each path as it first reads it
        # (``Scheduler.listen``); ``heard``: the paths it subscribed at that way
        self.listen: Callable[[Parts], None] | None = None
        self.heard: set[Parts] = set()


_COUNTING = threading.Lock()

# the footprint of the tracked function or derivation running in this thread / task
RECORDER: ContextVar[Footprint | None] = ContextVar("restate_recorder", default=None)


def start_recording(controller: object, name: str) -> tuple[Footprint, Token[Any]]:
    """Record into a new footprint from now (nested runs record their own); pass what it
    returns to ``stop_recording`` in a ``finally``."""
    footprint = Footprint(controller, name)
    token = RECORDER.set(footprint)
    with _COUNTING:  # runs in several threads: a lost update could stop recording
        Footprint.active += 1
    return footprint, token


def stop_recording(token: Token[Any]) -> None:
    with _COUNTING:
        Footprint.active -= 1
    RECORDER.reset(token)


@contextmanager
def recording(controller: object, name: str) -> Iterator[Footprint]:
    """``start_recording`` .. ``stop_recording`` around a block."""
    footprint, token = start_recording(controller, name)
    try:
        yield footprint
    finally:
        stop_recording(token)


def record_read(controller: object, parts: Parts) -> None:
    """Record ``parts`` as read when a tracked function of ``controller`` is running here.

    Called under the controller's lock just before the read, so a run that subscribes here
    (``Footprint.listen``) hears every write made after the value it reads."""
    if Footprint.active:
        rec = RECORDER.get()
        if rec is not None and rec.controller is controller:
            if rec.listen is not None and parts not in rec.reads:
                rec.listen(parts)
            rec.reads.add(parts)


def record_write(controller: object, parts: Parts) -> None:
    """Record ``parts`` as written when a tracked function of ``controller`` is running here."""
    rec = RECORDER.get()
    if rec is not None and rec.controller is controller:
        rec.writes.add(parts)


def running_name(controller: object) -> str | None:
    """The name of the tracked function or derivation of ``controller`` running here."""
    rec = RECORDER.get()
    return rec.name if rec is not None and rec.controller is controller else None


class Why:
    """Why a tracked function ran (or is due): which path changed, who wrote it, when.

    ``path`` is None for the run at registration. ``origin`` names the writer: a tracked
    function or derivation, ``another process``, ``thread NAME``, or what the embedding
    application names it (restate_nb: ``cell [4]``, ``a widget``). ``at``: ``time.time()``.
    """

    __slots__ = ("at", "origin", "path")  # one is made per run: keep it cheap

    def __init__(self, path: PurePosixPath | None, origin: str, at: float | None = None):
        self.path = path
        self.origin = origin
        self.at = time.time() if at is None else at

    def __repr__(self) -> str:
        return f"Why(path={self.path!r}, origin={self.origin!r}, at={self.at!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Why):
            return NotImplemented
        return (self.path, self.origin, self.at) == (other.path, other.origin, other.at)

    def __hash__(self) -> int:
        return hash((self.path, self.origin, self.at))

    def __str__(self) -> str:
        when = time.strftime("%H:%M:%S", time.localtime(self.at))
        if self.path is None:
            return f"registered ({when})"
        return f"{self.path} changed ({self.origin}, {when})"


@dataclass(eq=False)
class Status:
    """How a tracked function or derivation stands after its last run."""

    error: BaseException | None = None  # its last run raised this
    stale: str | None = None  # an input failed: "/ratio failed in cell [7]"
    cause: Hashable = None  # the id of that failed input
    refused: BaseException | None = None  # a CycleError: it does not run again

    def word(self, due: bool, lazy: bool) -> str:
        if self.refused is not None:
            return "refused"
        if self.error is not None:
            return "failed"
        if self.stale is not None or (due and lazy):
            return "stale"
        return "due" if due else "ok"


@dataclass(eq=False)
class Tracker:
    id: Hashable
    callback: Callable[..., Any]
    payload: Any = None
    name: str = ""
    policy: str = NOW
    on_mark: Callable[[Hashable], Any] | None = None  # called when marked due or stale
    paths: frozenset[Parts] = field(default_factory=frozenset)  # read in its last run
    writes: frozenset[Parts] = frozenset()  # written in its last run
    status: Status = field(default_factory=Status)
    runs: int = 0
    why: Why | None = None  # why it last ran
    running: bool = False
    raise_errors: bool = True  # False: an error is only recorded (status), not raised
    checked: tuple[Any, ...] = ()  # (reads, writes, topology) when last searched for a loop


@dataclass(frozen=True)
class TrackerInfo:
    """A tracked function as ``controller.trackers()`` reports it.

    Attributes:
        paths / writes: what its last run read / wrote.
        status: ``ok``, ``due`` (a deferred run waits for ``run_deferred()``), ``stale`` (a
            lazy function whose input changed, or one whose input failed: see ``reason``),
            ``failed`` (its last run raised ``error``) or ``refused`` (it closed a loop;
            ``error`` is the ``CycleError``; it runs again only when tracked again).
        reason: why it is due or stale, e.g. ``/x changed (thread MainThread, 12:00:01)``
            or ``/ratio failed in cell [7]``.
        why: why it last ran; runs: how many times it ran.
    """

    id: Hashable
    callback: Callable[..., Any]
    paths: frozenset[PurePosixPath]
    payload: Any
    name: str = ""
    policy: str = NOW
    writes: frozenset[PurePosixPath] = frozenset()
    status: str = "ok"
    error: BaseException | None = None
    reason: str | None = None
    why: Why | None = None
    runs: int = 0

    @classmethod
    def of(cls, tracker: Tracker, due: Why | None = None) -> TrackerInfo:
        st = tracker.status
        reason = st.stale if st.stale is not None else (str(due) if due is not None else None)
        return cls(
            tracker.id,
            tracker.callback,
            frozenset(parts_to_path(p) for p in tracker.paths),
            tracker.payload,
            tracker.name,
            tracker.policy,
            frozenset(parts_to_path(p) for p in tracker.writes),
            st.word(due is not None, tracker.policy == LAZY),
            st.refused if st.refused is not None else st.error,
            reason,
            tracker.why,
            tracker.runs,
        )
