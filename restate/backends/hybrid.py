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
in the way) before any store changes; across stores it is not atomic, so the controller
keeps its undo log for batches. ``close()`` closes every store.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import Any

from ..paths import Parts, parts_to_path, to_parts
from ..tree import copy_in
from ._interrupts import finish
from .base import MISSING, AsyncBackend, Backend
from .hybrid_async import HybridAsyncBackend
from .hybrid_levels import _close, _commit_all, _has_txn, _Levels
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

    def mount(self, path: PurePosixPath | str, backend: Any) -> None:
        """Let ``backend`` own ``path`` and its subtree. Raises ValueError when taken or '/'."""
        _require_sync(backend)
        self._mounts.mount(path, backend)

    def read(self, path: PurePosixPath | str, default: Any = None) -> Any:
        parts = to_parts(path)
        results = [(w, s.read(parts_to_path(r), MISSING)) for s, r, w in self._mounts.reads(parts)]
        value = _merge(parts, results, parts in self._mounts.table)
        return default if value is MISSING else value

    def exists(self, path: PurePosixPath | str) -> bool:
        """Whether ``read(path, MISSING)`` finds a node, asking the owning store with the
        relative path (a mount point: whether its store is non-empty); above mount points,
        whether a store mounted below is non-empty or the owner holds more than empty mounts
        hide. Each store answers with its own ``exists`` (stores without one: a read)."""
        return run_sync(exists_plan(self._mounts, to_parts(path)))

    def write(self, path: PurePosixPath | str, value: Any) -> None:
        parts = to_parts(path)
        steps = self._mounts.writes(parts, copy_in(value, parts))
        _check_values(steps)
        for store, rel, at in self._mounts.ancestor_checks(parts):
            leaf = store.read(parts_to_path(rel), MISSING)
            if _is_conflict(leaf):
                raise _leaf_conflict(parts, at, leaf)
        self._run(steps)

    def delete(self, path: PurePosixPath | str) -> None:
        self._run(self._mounts.deletes(to_parts(path)))

    def close(self) -> None:
        for store in self._mounts.stores():
            store.close()

    @contextmanager
    def transaction(self) -> Iterator[HybridSyncBackend]:
        """Group writes and deletes across stores: each store's own ``transaction()`` is
        entered (and rolls back itself); stores without one get an undo log. Nestable. Not
        atomic across stores if a commit itself fails.

        KeyboardInterrupt can land between any two bytecodes: the level is registered
        before any store's transaction opens, and each transaction is listed before it is
        entered and unlisted only once exited, so ``_unwind`` (run to its end through
        further interrupts) finds everything that is open."""
        levels = self._levels
        depth = len(levels.stack)
        cms: list[Any] = []
        levels.stack.append((cms, len(levels.undo)))
        try:
            for store in self._mounts.stores():
                if _has_txn(store):
                    cms.append(store.transaction())
                    cms[-1].__enter__()
            yield self
        except BaseException as exc:
            finish(functools.partial(self._unwind, depth, exc))
            raise
        try:
            # an interrupt between two stores' commits would leave one committed and the
            # other rolled back: the commits run to their end, then it is raised
            finish(functools.partial(_commit_all, cms))
        except BaseException as exc:
            if cms:  # a store's commit failed: roll the others back
                finish(functools.partial(self._unwind, depth, exc))
                raise
            self._drop_level(depth)
            raise
        self._drop_level(depth)

    def _drop_level(self, depth: int) -> None:
        """Forget a committed level; an outer level may still roll back, undoing this
        level's undo entries too, so those go only with the outermost level."""
        levels = self._levels
        mark = levels.stack[depth][1]
        del levels.stack[depth:]
        if not depth:
            del levels.undo[mark:]

    def _unwind(self, depth: int, exc: BaseException) -> None:
        """Roll back levels ``depth`` and above, newest first. Resumable: each step is
        removed only once done, so an interrupted call can be repeated."""
        levels = self._levels
        while len(levels.stack) > depth:
            cms, mark = levels.stack[-1]
            while cms:
                _close(cms[-1], exc)
                cms.pop()
            while len(levels.undo) > mark:
                store, rel, prev = levels.undo[-1]
                if prev is MISSING:
                    store.delete(parts_to_path(rel))
                else:
                    store.write(parts_to_path(rel), prev)
                levels.undo.pop()
            levels.stack.pop()

    def _remember(self, store: Any, rel: Parts) -> None:
        prev = store.read(parts_to_path(rel), MISSING)
        if prev is MISSING:
            for depth in range(1, len(rel)):
                if not probe_sync(store, rel[:depth]):
                    self._levels.undo.append((store, rel[:depth], MISSING))
                    break
        self._levels.undo.append((store, rel, prev))

    def _run(self, steps: list[Step]) -> None:
        for store, kind, rel, value in steps:
            if self._levels.wants_undo(store):
                self._remember(store, rel)
            if kind == "write":
                store.write(parts_to_path(rel), value)
            else:
                store.delete(parts_to_path(rel))
