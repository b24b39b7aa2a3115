"""Running clean-up to its end although KeyboardInterrupt or task cancellation arrives.

Python raises a signal handler's exception (Ctrl-C, Jupyter's "interrupt kernel", a timer)
in the main thread between any two bytecodes, so a rollback interrupted half way would leave
a store half restored. ``finish`` re-runs a *resumable* step until it completes and raises
the interrupt afterwards; ``finish_in_thread`` runs blocking work in a worker thread and, if
the awaiting task is cancelled, still waits for that work (a thread cannot be stopped), so
a rollback never races the write it undoes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["finish", "finish_in_thread"]

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
