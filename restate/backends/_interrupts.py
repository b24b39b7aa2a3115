"""Running clean-up to its end although KeyboardInterrupt or task cancellation arrives.

Python raises a signal handler's exception (Ctrl-C, Jupyter's "interrupt kernel", a timer)
in the main thread between any two bytecodes, so a rollback interrupted half way would leave
a store half restored. ``finish`` re-runs a *resumable* step until it completes and raises
the interrupt afterwards; ``finish_in_thread`` runs blocking work in a worker thread and, if
the awaiting task is cancelled, still waits for that work (a thread cannot be stopped), so
a rollback never races the write it undoes. ``deferred_interrupts`` holds Ctrl-C back
while a few steps that must happen together run (two stores' commits, a cache's change and
its queued write), and delivers it right after.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any, TypeVar

__all__ = ["deferred_interrupts", "finish", "finish_in_thread"]

T = TypeVar("T")


def finish(step: Callable[[], object]) -> None:
    """Call ``step`` until it returns without KeyboardInterrupt, then re-raise the last
    interrupt, if any. ``step`` must be resumable: safe to call again after an interruption
    at any point (each undo step is idempotent and removed only once done)."""
    interrupted: KeyboardInterrupt | None = None
    while True:
        try:
            step()
        except KeyboardInterrupt as exc:
            interrupted = exc
            continue
        break
    if interrupted is not None:
        raise interrupted


async def finish_in_thread(
    fn: Callable[..., T], *args: Any, undo: Callable[[], object] | None = None
) -> T:
    """``await asyncio.to_thread(fn, *args)``, except that cancellation waits for ``fn`` to
    end, calls ``undo()`` if it succeeded, then re-raises the cancellation."""
    task = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():
            try:
                await asyncio.wait({task})
            except asyncio.CancelledError:
                continue
        if undo is not None and not task.cancelled() and task.exception() is None:
            undo()
        raise


class _Hold:
    """SIGINT's handler inside a deferring section: it only notes that the signal came."""

    def __init__(self) -> None:
        self.frames: list[FrameType | None] = []

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.frames.append(frame)


class deferred_interrupts:  # lower case: used like a function, ``with deferred_interrupts():``
    """Hold SIGINT back while the block runs; deliver it once the block has ended.

    Ctrl-C (and Jupyter's "interrupt kernel", which sends SIGINT) arriving inside the block
    is noted instead of raising; on leaving, SIGINT's handler is put back and, if a signal
    came, called with it -- the default one raises KeyboardInterrupt there, so Ctrl-C still
    works, a few steps late. For steps that must all happen or none: with two stores'
    commits inside, an interrupt can no longer leave one committed and not the other.

    Keep the block short and free of waits on other processes beyond the store's own
    commit: the user's Ctrl-C waits for it. Nested blocks defer to the outermost. Only the
    main thread gets signals in Python, so elsewhere this does nothing; a handler not set
    from Python (``signal.getsignal`` answers None) is left alone. Other signals whose
    handlers raise (a SIGALRM timer raising KeyboardInterrupt) are not held back.
    """

    __slots__ = ("_hold", "_previous")

    def __enter__(self) -> None:
        self._hold: _Hold | None = None
        if threading.get_ident() != threading.main_thread().ident:
            return
        previous = signal.getsignal(signal.SIGINT)
        if previous is None or isinstance(previous, _Hold):
            return  # not ours to replace, or an outer section holds it already
        # Both noted before the swap: once the hold is installed, __exit__ must find it.
        self._previous, self._hold = previous, _Hold()
        signal.signal(signal.SIGINT, self._hold)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        hold = self._hold
        if hold is None:
            return
        signal.signal(signal.SIGINT, self._previous)
        if hold.frames:
            _deliver(self._previous, hold.frames[0])


def _deliver(handler: Any, frame: FrameType | None) -> None:
    """What SIGINT would have done had ``handler`` been in place when it came."""
    if callable(handler):
        handler(signal.SIGINT, frame)
    elif handler == signal.SIG_DFL:
        signal.raise_signal(signal.SIGINT)
