"""The storage contract of every backend, and the optional capabilities the controller finds.

Required (docs/semantics.md#backends) -- all a user backend has to write::

    class MyBackend(Backend):
        def read(self, path, default=None): ...   # value at path, or default when missing
        def write(self, path, value): ...         # store value at path (replace what was there)
        def delete(self, path): ...               # remove path and its subtree; no-op when missing

``path`` arrives as a ``PurePosixPath`` ("/users/1"); ``str`` works too. A flat backend that
stores only exact paths (the original README's Redis sketch) works for exact paths.

Optional capabilities, found with ``getattr`` and never required:

``transaction()``
    A context manager (an async one on an ``AsyncBackend``) that makes everything done inside
    it one atomic and isolated unit: a controller batch and ``update()`` run inside it; on an
    exception the backend rolls back itself (SQLite, Redis). Without it the controller keeps
    an undo log and restores the previous values on rollback.

``transaction(optimistic=True)`` with ``optimistic_transactions = True``
    A transaction that may read without locking and fails at its commit, writing nothing,
    with ``restate.errors.StaleReadError`` when what it read changed meanwhile (Redis).
    ``update()`` outside a batch opens one first and, on that error, runs its function again
    in an ordinary ``transaction()``; batches never use it.

``watch(on_changes) -> unwatch``
    For backends shared by several processes (Redis). ``on_changes`` is called, from any
    thread, with a list of ``(path, prev_value, new_value)`` for writes made *by other
    processes* (``MISSING`` for a missing node), optionally with a fourth element, the
    ``payload`` of the events (Redis marks a resync's changes with it); the controller then
    runs its subscriptions, derivations and tracked functions as if the writes were local.
    Returns a callable that stops watching.

``exists(path) -> bool`` (``async def`` on an ``AsyncBackend``)
    Exactly ``read(path, MISSING) is not MISSING``, answered without reading the subtree
    (O(depth) lookups or one indexed query). The controller uses it in batches to find the
    highest missing ancestor of a path it creates; without it, it reads that path.

``swap(path, value) -> previous value``
    Write ``value`` and return the value it replaced (``MISSING`` when there was none) in
    one step, so a plain ``set_state`` outside a batch costs one round trip instead of a
    read and a write (Redis). A backend may skip rewriting an identical value. The sync
    controller uses it when no derivation needs the value before the write; it then
    compares the returned value with the new one to decide whether anything changed.

``close()``
    Release files, connections, background threads. Backends are context managers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import PurePosixPath
from typing import Any

from ..missing import MISSING, Missing

__all__ = ["MISSING", "AsyncBackend", "Backend", "Missing"]


class Backend(ABC):
    """Synchronous storage for the state tree. Subclass it and implement the three methods."""

    @abstractmethod
    def read(self, path: PurePosixPath | str, default: Any = None) -> Any:
        """Return the value at ``path`` (a nested dict for interior nodes) or ``default``."""

    @abstractmethod
    def write(self, path: PurePosixPath | str, value: Any) -> None:
        """Store ``value`` at ``path``, creating the dicts above it."""

    @abstractmethod
    def delete(self, path: PurePosixPath | str) -> None:
        """Remove ``path`` and its subtree. Deleting a missing path does nothing."""

    def close(self) -> None:
        """Release resources. The default does nothing."""

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncBackend(ABC):
    """Asynchronous storage for the state tree: the same contract as ``Backend``, awaited."""

    @abstractmethod
    async def read(self, path: PurePosixPath | str, default: Any = None) -> Any:
        """Return the value at ``path`` (a nested dict for interior nodes) or ``default``."""

    @abstractmethod
    async def write(self, path: PurePosixPath | str, value: Any) -> None:
        """Store ``value`` at ``path``, creating the dicts above it."""

    @abstractmethod
    async def delete(self, path: PurePosixPath | str) -> None:
        """Remove ``path`` and its subtree. Deleting a missing path does nothing."""

    async def close(self) -> None:
        """Release resources. The default does nothing."""

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
