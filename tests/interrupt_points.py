"""A KeyboardInterrupt at every line: the deterministic counterpart of a timer's Ctrl-C.

Python raises a signal handler's exception (Ctrl-C, Jupyter's "interrupt kernel") between
two bytecodes of the main thread. This harness runs an operation once under ``sys.settrace``
counting every line event in ``restate/`` code (``record``), then, for each point ``k``,
re-runs it from a fresh store with a tracer that raises KeyboardInterrupt at the ``k``-th
event (``interrupt_at``; a trace function that raises is removed by CPython, so exactly one
interrupt lands). ``check_point`` then checks what the world relies on: the state is the old
or the new one (all-or-nothing), the events delivered agree with what is stored, no journal,
lock, transaction or file descriptor is left behind, and the next operations work.

The interrupt is delivered the way CPython delivers SIGINT: the handler in place is called
(``signal.getsignal``). The harness's own handler raises KeyboardInterrupt; inside one of
restate's ``deferred_interrupts()`` sections the section's handler notes it instead, and
the section raises it once it ends -- as it would for a real Ctrl-C.

Points are line events (the start of each executed line), not every bytecode: an interrupt
inside a line lands at the same statement boundary a line event sees, or between two
bytecodes of one expression, which no code here treats differently.
"""

from __future__ import annotations

import fcntl
import gc
import os
import random
import signal
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import restate
from restate import ControllerSync
from restate.backends import (
    CachingSyncBackend,
    FileSystemSyncBackend,
    HybridSyncBackend,
    InMemoryBackend,
    SQLiteBackend,
)
from restate.backends.filesystem.journal import JOURNAL_NAME
from restate.backends.filesystem.lock import LOCK_NAME

PACKAGE = str(Path(restate.__file__).resolve().parent) + os.sep

Point = tuple[str, int]
CHECK_FDS = os.environ.get("RESTATE_POINTS_FDS") == "1"  # see the test module


class Landed(Exception):
    """Not raised: the marker a test uses to tell its interrupt from another one."""


def _tracer(on_line: Callable[[FrameType], None]) -> Callable[..., Any]:
    """A global trace function calling ``on_line`` at every line of restate's own code."""

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            on_line(frame)
        return local

    def global_(frame: FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename.startswith(PACKAGE) else None

    return global_


@contextmanager
def _sigint_raises(message: str) -> Iterator[None]:
    """SIGINT's handler raises ``KeyboardInterrupt(message)`` meanwhile."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(message)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _sigint(frame: FrameType) -> None:
    """Deliver SIGINT here: call the handler in place, as the interpreter does."""
    signal.getsignal(signal.SIGINT)(signal.SIGINT, frame)  # type: ignore[operator]


@contextmanager
def _traced(on_line: Callable[[FrameType], None]) -> Iterator[None]:
    previous = sys.gettrace()
    sys.settrace(_tracer(on_line))
    try:
        yield
    finally:
        sys.settrace(previous)


def record(operation: Callable[[], object]) -> list[Point]:
    """Every line event of restate's code while ``operation`` runs, in order."""
    points: list[Point] = []

    def on_line(frame: FrameType) -> None:
        points.append((frame.f_code.co_filename[len(PACKAGE) :], frame.f_lineno))

    with _traced(on_line):
        operation()
    return points


def interrupt_on(operation: Callable[[], object], point: Point, nth: int = 1) -> bool:
    """Run ``operation`` with a KeyboardInterrupt raised the ``nth`` time ``point`` (a path
    below restate/ and a line) runs; True when it did (the interrupt is caught here)."""
    hit = []

    def on_line(frame: FrameType) -> None:
        at = (frame.f_code.co_filename[len(PACKAGE) :], frame.f_lineno)
        if at == point:
            hit.append(point)
            if len(hit) == nth:
                _sigint(frame)

    with _sigint_raises(f"interrupt at {point}"), _traced(on_line):
        try:
            operation()
        except KeyboardInterrupt:
            if len(hit) < nth:
                raise
    return len(hit) >= nth


def interrupt_at(operation: Callable[[], object], k: int) -> Point | None:
    """Run ``operation`` with a KeyboardInterrupt raised at its ``k``-th line event (0-based).
    Returns where it landed, or None when the operation ended first (no interrupt raised).
    The interrupt propagates out of ``operation`` unless restate swallowed it (it must not)."""
    seen = 0
    where: list[Point] = []

    def on_line(frame: FrameType) -> None:
        nonlocal seen
        seen += 1
        if seen == k + 1:
            where.append((frame.f_code.co_filename[len(PACKAGE) :], frame.f_lineno))
            _sigint(frame)

    with unraisable() as finalising, _sigint_raises(f"interrupt point {k}"), _traced(on_line):
        try:
            operation()
        except KeyboardInterrupt:
            if not where:
                raise
            return where[0]
    if where and not any(f"interrupt point {k}" in text for text in finalising):
        raise AssertionError(f"the KeyboardInterrupt at {where[0]} was swallowed")
    # (one landing in a finaliser -- a generator closed by the garbage collector -- is
    # reported to sys.unraisablehook by the interpreter: the operation goes on without it)
    return where[0] if where else None


@contextmanager
def unraisable() -> Iterator[list[str]]:
    """What ``sys.unraisablehook`` gets meanwhile (e.g. a generator whose close() raised)."""
    raised: list[str] = []
    previous = sys.unraisablehook

    def hook(info: Any) -> None:
        raised.append(f"{type(info.exc_value).__name__}: {info.exc_value} in {info.object!r}")
        if getattr(previous, "nested", False):
            previous(info)  # an enclosing unraisable() sees it too

    hook.nested = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook
    try:
        yield raised
    finally:
        sys.unraisablehook = previous


def open_fds() -> set[int]:
    """This process's open descriptors."""
    return {int(name) for name in os.listdir("/proc/self/fd")}


def sample(points: int, fraction: float, seed: int) -> list[int]:
    """All point indexes (``fraction`` >= 1) or a seeded random share of them, in order."""
    if fraction >= 1:
        return list(range(points))
    chosen = random.Random(seed).sample(range(points), max(1, round(points * fraction)))
    return sorted(chosen)


# ----- stores ----------------------------------------------------------------------------------


def _files_free(base: Path) -> None:
    """No journal left and the directory lock free (another open file description takes it)."""
    assert not (base / JOURNAL_NAME).exists(), f"a journal was left in {base}"
    fd = os.open(base / LOCK_NAME, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: still held
    finally:
        os.close(fd)


def _files_idle(backend: FileSystemSyncBackend) -> None:
    txns = backend._txns
    assert not txns.journal.active, "the file backend's journal is still active"
    assert txns.dirlock.depth == 0, f"the directory lock is still held ({txns.dirlock.depth})"
    _files_free(backend.base_dir)


def _sqlite_idle(backend: SQLiteBackend) -> None:
    assert not backend._db.in_transaction, "the SQLite connection is inside a transaction"
    other = sqlite3.connect(backend.path, timeout=0.0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # "database is locked" at once if we held it
        other.execute("ROLLBACK")
    finally:
        other.close()


@dataclass
class Store:
    """A backend, how to tell it holds nothing open, and how another reader sees it."""

    backend: Any
    idle: Callable[[], None]  # raises AssertionError when a transaction/lock is left open
    reread: Callable[[], Any] | None = None  # the whole state through a fresh backend
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in self.closers:
            close()


def memory_store(tmp: Path) -> Store:
    return Store(InMemoryBackend(), lambda: None)


def files_store(tmp: Path) -> Store:
    backend = FileSystemSyncBackend(tmp / "fs")

    def reread() -> Any:
        other = FileSystemSyncBackend(tmp / "fs")
        try:
            return other.read("/", {})
        finally:
            other.close()

    return Store(backend, lambda: _files_idle(backend), reread, [backend.close])


def sqlite_store(tmp: Path) -> Store:
    tmp.mkdir(parents=True, exist_ok=True)
    backend = SQLiteBackend(str(tmp / "state.db"))

    def reread() -> Any:
        other = SQLiteBackend(str(tmp / "state.db"))
        try:
            return other.read("/", {})
        finally:
            other.close()

    return Store(backend, lambda: _sqlite_idle(backend), reread, [backend.close])


def caching_store(tmp: Path) -> Store:
    """A cache over files, flushing on every write (so the files follow)."""
    inner = FileSystemSyncBackend(tmp / "fs")
    cache = CachingSyncBackend(inner, flush_interval=0)

    def idle() -> None:
        _files_idle(inner)

    def reread() -> Any:
        cache.flush()
        other = FileSystemSyncBackend(tmp / "fs")
        try:
            return other.read("/", {})
        finally:
            other.close()

    return Store(cache, idle, reread, [cache.close, inner.close])


def hybrid_store(tmp: Path) -> Store:
    """Memory at the root, files at ``/a``, SQLite at ``/s``: a batch spans three stores."""
    files = FileSystemSyncBackend(tmp / "fs")
    tmp.mkdir(parents=True, exist_ok=True)
    db = SQLiteBackend(str(tmp / "state.db"))
    hybrid = HybridSyncBackend(InMemoryBackend())
    hybrid.mount("/a", files)
    hybrid.mount("/s", db)

    def idle() -> None:
        _files_idle(files)
        _sqlite_idle(db)

    return Store(hybrid, idle, None, [files.close, db.close])


STORES: dict[str, Callable[[Path], Store]] = {
    "memory": memory_store,
    "files": files_store,
    "sqlite": sqlite_store,
    "caching": caching_store,
    "hybrid": hybrid_store,
}


# ----- operations ------------------------------------------------------------------------------

SETUP: dict[str, Any] = {"a": {"x": 1, "y": {"z": 1, "w": [1, 2]}}, "s": {"v": 1}, "top": 1}
HEARD = ("/a", "/a/x", "/s", "/top")  # subscribed paths (hybrid: files, SQLite, memory)


def _batch(c: ControllerSync) -> None:
    with c.batch():
        c.set_state("/a/x", 2)
        c.set_state("/s/v", 2)
        c.del_state("/a/y")
        c.set_state("/a/new/deep", [1])
        c.set_state("/top", 2)


OPERATIONS: dict[str, Callable[[ControllerSync], object]] = {
    "set_state": lambda c: c.set_state("/a/y", {"z": 2, "deep": {"q": [3]}}),
    "batch": _batch,
    "update": lambda c: c.update("/a/x", lambda v: v + 1),
    "delete": lambda c: c.del_state("/a/y"),
}


def _at(state: Any, path: str) -> Any:
    for key in path.strip("/").split("/"):
        if not isinstance(state, dict) or key not in state:
            return None
        state = state[key]
    return state


class Run:
    """One store with a controller set up, subscribers listening, ready for the operation."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.closed = False
        self.c = ControllerSync(store.backend)
        for key, value in SETUP.items():
            self.c.set_state(f"/{key}", value)
        self.heard: list[tuple[str, Any]] = []
        for path in HEARD:
            self.c.subscribe(path, self._hear)

    def _hear(self, event: Any) -> None:
        self.heard.append((str(event.emitting_path), event.new_value))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.c.close()
            self.store.close()


def check_point(run: Run, old: Any, new: Any) -> None:
    """After an interrupted operation: see the module's docstring."""
    c = run.c
    state = c.get_state("/")  # the controller's next operation (it heals a cut-short batch)
    assert state in (old, new), f"neither the old nor the new state: {state}"
    if state == old:
        assert not run.heard, f"events for writes that are not stored: {run.heard}"
    last = dict(run.heard)  # path -> the last value heard there
    for path, value in last.items():
        assert _at(state, path) == value, f"{path} was heard as {value!r}, stored: {state}"
    run.store.idle()
    if run.store.reread is not None:
        assert run.store.reread() == state, "another reader sees another state"
    # the next operations work and commit
    c.set_state("/probe", 1)
    with c.batch():
        c.set_state("/a/x", 10)
        c.set_state("/s/v", 10)
    c.update("/top", lambda v: 5)
    after = c.get_state("/")
    assert after["probe"] == 1 and after["a"]["x"] == 10 and after["s"]["v"] == 10
    assert after["top"] == 5
    run.store.idle()
    if run.store.reread is not None:
        assert run.store.reread() == after, "another reader does not see the later writes"


@dataclass
class Outcome:
    points: int  # line events in one uninterrupted run
    tried: int
    landed: int  # interrupts raised before the operation ended
    failures: list[str]


def run_points(
    make: Callable[[Path], Store],
    operation: Callable[[ControllerSync], object],
    tmp: Path,
    fraction: float = 1.0,
    seed: int = 0,
    max_failures: int = 5,
    only: range | None = None,
) -> Outcome:
    """``operation`` interrupted at every (or a sampled share of) line event(s)."""
    reference = Run(make(tmp / "reference"))
    old = reference.c.get_state("/")
    points = record(lambda: operation(reference.c))
    new = reference.c.get_state("/")
    reference.close()
    chosen = sample(len(points), fraction, seed)
    if only is not None:
        chosen = [k for k in chosen if k in only]
    landed, failures = 0, []
    for k in chosen:
        where = tmp / f"p{k}"
        fds = open_fds()
        run = Run(make(where))
        try:
            with unraisable() as raised:
                at = interrupt_at(lambda: operation(run.c), k)  # noqa: B023 - called here
                landed += at is not None
                check_point(run, old, new)
                run.close()
                gc.collect()  # an abandoned generator is closed here: it must not raise
            raised = [text for text in raised if "interrupt point" not in text]
            assert not raised, f"raised while being finalised: {raised}"
            left = open_fds() - fds if CHECK_FDS else set()
            assert not left, f"file descriptors left open after close(): {sorted(left)}"
        except Exception as exc:  # reported with the point it failed at
            at_k = f"{points[k][0]}:{points[k][1]}" if k < len(points) else "?"
            failures.append(f"point {k} {at_k}: {type(exc).__name__}: {exc}")
            if len(failures) >= max_failures:
                break
        finally:
            run.close()
            _rmtree(where)
    return Outcome(len(points), len(chosen), landed, failures)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
