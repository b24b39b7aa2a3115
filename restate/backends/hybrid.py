"""``HybridSyncBackend`` / ``HybridAsyncBackend``: several stores mounted into one tree.

``mount("/persistent", fs)`` makes ``fs`` own ``/persistent`` and everything below it; ``fs``
sees paths relative to its mount point (``/persistent/a`` is ``/a`` in ``fs``). The longest
mount prefix owns a path; the root backend owns the rest. Operations on subtrees that span
mounts are split and merged so the controller sees one tree::

    hybrid = HybridSyncBackend(InMemoryBackend()); hybrid.mount("/disk", fs)
    hybrid.write("/", {"tmp": 1, "disk": {"a": 2}})  -> memory gets {"tmp": 1}, fs gets {"a": 2}
    hybrid.read("/")                                  -> {"tmp": 1, "disk": {"a": 2}}
    hybrid.delete("/")                                -> both emptied

A mount point holds a dict: writing a leaf there raises ``PathConflictError``, and a mount
point whose store is empty reads as missing. Data the parent store holds under a mount point
is hidden while the mount exists. A write is checked (values the stores would reject, leaves
in the way) before any store changes; one that spans stores runs as a transaction of them
all. ``transaction()`` commits the stores one after the other with Ctrl-C held back until
the last has committed (``transaction``'s docstring; a crash or a failing commit between
two stores stays a limit: ``docs/backends.md#limits``). ``close()`` closes every store.

Parts: ``hybrid_mounts.py`` (the mount table, pure planning), ``hybrid_levels.py`` (open
transactions across stores), ``hybrid_async.py`` (the async twin).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import Any

from ..errors import StateError
from ..paths import Parts, parts_to_path, to_parts
from ..tree import copy_in
from ._interrupts import deferred_interrupts, finish
from .base import MISSING, AsyncBackend, Backend
from .hybrid_async import HybridAsyncBackend
from .hybrid_levels import _has_txn, _Levels
from .hybrid_mounts import (
    Step,
    _check_values,
    _HybridBase,
    _is_conflict,
    _leaf_conflict,
    _merge,
    _Mounts,
)
from .probe import exists_plan, probe_sync, run_sync

__all__ = ["HybridAsyncBackend", "HybridSyncBackend"]


def _require_sync(backend: Any) -> None:
    if isinstance(backend, AsyncBackend):
        raise TypeError(
            f"HybridSyncBackend takes sync backends; {type(backend).__name__} is async, "
            f"use HybridAsyncBackend"
        )


class HybridSyncBackend(_HybridBase, Backend):
    """Sync stores mounted into one tree; ``root_backend`` holds what no mount owns."""

    def __init__(self, root_backend: Backend) -> None:
        _require_sync(root_backend)
        self._mounts = _Mounts(root_backend)
        self._levels = _Levels()
        self._lock = threading.RLock()  # held by a transaction from start to end: see _heal

    def mount(self, path: PurePosixPath | str, backend: Any) -> None:
        """Let ``backend`` own ``path`` and its subtree. Raises ValueError when taken or '/'."""
        _require_sync(backend)
        self._mounts.mount(path, backend)

    def read(self, path: PurePosixPath | str, default: Any = None) -> Any:
        parts = to_parts(path)
        with self._lock:
            self._heal()
            plan = self._mounts.reads(parts)
            results = [(w, s.read(parts_to_path(r), MISSING)) for s, r, w in plan]
        value = _merge(parts, results, parts in self._mounts.table)
        return default if value is MISSING else value

    def exists(self, path: PurePosixPath | str) -> bool:
        """Whether ``read(path, MISSING)`` finds a node, asking the owning store with the
        relative path (a mount point: whether its store is non-empty); above mount points,
        whether a store mounted below is non-empty or the owner holds more than empty mounts
        hide. Each store answers with its own ``exists`` (stores without one: a read)."""
        with self._lock:
            self._heal()
            return run_sync(exists_plan(self._mounts, to_parts(path)))

    def write(self, path: PurePosixPath | str, value: Any) -> None:
        parts = to_parts(path)
        steps = self._mounts.writes(parts, copy_in(value, parts))
        _check_values(steps)
        with self._lock:
            self._heal()
            for store, rel, at in self._mounts.ancestor_checks(parts):
                leaf = store.read(parts_to_path(rel), MISSING)
                if _is_conflict(leaf):
                    raise _leaf_conflict(parts, at, leaf)
            self._run_all(steps)

    def delete(self, path: PurePosixPath | str) -> None:
        with self._lock:
            self._heal()
            self._run_all(self._mounts.deletes(to_parts(path)))

    def close(self) -> None:
        for store in self._mounts.stores():
            store.close()

    @contextmanager
    def transaction(self) -> Iterator[HybridSyncBackend]:
        """Group writes and deletes across stores: each store's own ``transaction()`` is
        entered (and rolls back itself); stores without one get an undo log. Nestable.

        All or nothing for an interrupt: the stores commit inside ``deferred_interrupts()``,
        so a Ctrl-C arriving during the commits is raised once every store has committed
        (never between two of them). Not atomic across stores if a commit itself fails (a
        disk error in the second store after the first committed) or the process dies
        between two stores' commits: ``docs/backends.md#limits``.

        KeyboardInterrupt can land between any two bytecodes: the level is registered
        before any store's transaction opens, and each transaction is listed before it is
        entered and unlisted only once exited, so ``_Levels.unwind`` (run to its end through
        further interrupts) finds everything that is open. The thread lock is held from
        start to end, so a level found open when no transaction holds it was lost to an
        interrupt that skipped the clean-up: the next operation rolls it back (``_heal``)."""
        levels = self._levels
        with self._lock:
            self._heal()
            depth = len(levels.stack)
            cms: list[Any] = []
            levels.stack.append((cms, len(levels.undo)))
            try:
                for store in self._mounts.stores():
                    if _has_txn(store):
                        cms.append(store.transaction())
                        cms[-1].__enter__()
                yield self
                with deferred_interrupts():
                    finish(functools.partial(levels.commit, depth))
            except BaseException as exc:
                finish(functools.partial(levels.unwind, depth, exc))  # nothing once committed
                raise

    def _heal(self) -> None:
        """Roll back levels no running transaction owns (call holding the thread lock once:
        then no ``transaction()`` of this thread is running, since each holds it)."""
        count = getattr(self._lock, "_recursion_count", None)
        if self._levels.stack and count is not None and count() == 1:
            lost = StateError("a hybrid transaction was interrupted before it could end")
            finish(functools.partial(self._levels.unwind, 0, lost))

    def _remember(self, store: Any, rel: Parts) -> None:
        prev = store.read(parts_to_path(rel), MISSING)
        if prev is MISSING:
            for depth in range(1, len(rel)):
                if not probe_sync(store, rel[:depth]):
                    self._levels.undo.append((store, rel[:depth], MISSING))
                    break
        self._levels.undo.append((store, rel, prev))

    def _run_all(self, steps: list[Step]) -> None:
        """Run a write's or delete's steps; several stores' steps as one transaction, so a
        failure or an interrupt half way leaves none of them applied."""
        if len(steps) > 1 and not self._levels.stack:
            with self.transaction():
                self._run(steps)
        else:
            self._run(steps)

    def _run(self, steps: list[Step]) -> None:
        for store, kind, rel, value in steps:
            if self._levels.wants_undo(store):
                self._remember(store, rel)
            if kind == "write":
                store.write(parts_to_path(rel), value)
            else:
                store.delete(parts_to_path(rel))
