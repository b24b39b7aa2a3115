"""``HybridAsyncBackend``: the async twin of ``HybridSyncBackend`` (``hybrid.py``, whose
module docstring describes both); mounted stores may be sync or async.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import PurePosixPath
from typing import Any

from ..paths import Parts, parts_to_path, to_parts
from ..tree import copy_in
from .base import MISSING, AsyncBackend
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
from .probe import exists_plan, probe_async, run_async

__all__ = ["HybridAsyncBackend"]


async def _maybe_await(result: Any) -> Any:
    return await result if asyncio.iscoroutine(result) else result


async def _enter(cm: Any) -> None:
    if hasattr(cm, "__aenter__"):
        await cm.__aenter__()
    else:
        cm.__enter__()


async def _exit(cm: Any, exc: BaseException | None) -> None:
    args = (None, None, None) if exc is None else (type(exc), exc, exc.__traceback__)
    if hasattr(cm, "__aexit__"):
        await cm.__aexit__(*args)
    else:
        cm.__exit__(*args)


async def _commit_all(cms: list[Any]) -> None:
    """Commit the stores' transactions newest first, every one of them even when the task
    is cancelled meanwhile (the cancellation is raised after the last): a cancellation
    landing in one store's commit never keeps the stores after it from committing."""
    cancelled: asyncio.CancelledError | None = None
    for cm in reversed(cms):
        try:
            await _exit(cm, None)
        except asyncio.CancelledError as exc:
            cancelled = exc
    if cancelled is not None:
        raise cancelled


class HybridAsyncBackend(_HybridBase, AsyncBackend):
    """The async twin of ``HybridSyncBackend``; mounted stores may be sync or async."""

    def __init__(self, root_backend: Any) -> None:
        self._mounts = _Mounts(root_backend)
        self._levels = _Levels()

    def mount(self, path: PurePosixPath | str, backend: Any) -> None:
        """Let ``backend`` (sync or async) own ``path`` and its subtree."""
        self._mounts.mount(path, backend)

    async def read(self, path: PurePosixPath | str, default: Any = None) -> Any:
        parts = to_parts(path)
        results = []
        for store, rel, where in self._mounts.reads(parts):
            results.append((where, await _maybe_await(store.read(parts_to_path(rel), MISSING))))
        value = _merge(parts, results, parts in self._mounts.table)
        return default if value is MISSING else value

    async def exists(self, path: PurePosixPath | str) -> bool:
        """See ``HybridSyncBackend.exists``."""
        return await run_async(exists_plan(self._mounts, to_parts(path)))

    async def write(self, path: PurePosixPath | str, value: Any) -> None:
        parts = to_parts(path)
        steps = self._mounts.writes(parts, copy_in(value, parts))
        _check_values(steps)
        for store, rel, at in self._mounts.ancestor_checks(parts):
            leaf = await _maybe_await(store.read(parts_to_path(rel), MISSING))
            if _is_conflict(leaf):
                raise _leaf_conflict(parts, at, leaf)
        await self._run(steps)

    async def delete(self, path: PurePosixPath | str) -> None:
        await self._run(self._mounts.deletes(to_parts(path)))

    async def close(self) -> None:
        for store in self._mounts.stores():
            await _maybe_await(store.close())

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[HybridAsyncBackend]:
        """See ``HybridSyncBackend.transaction``; stores' transactions may be sync or async."""
        cms: list[Any] = []
        try:
            for store in self._mounts.stores():
                if _has_txn(store):
                    cm = store.transaction()
                    await _enter(cm)
                    cms.append(cm)
        except BaseException as exc:
            for cm in reversed(cms):
                await _exit(cm, exc)
            raise
        self._levels.stack.append((cms, len(self._levels.undo)))
        try:
            yield self
        except BaseException as exc:
            cms, undo = self._levels.pop()
            for cm in reversed(cms):
                await _exit(cm, exc)
            await self._run([(s, "delete" if v is MISSING else "write", p, v) for s, p, v in undo])
            raise
        cms, _ = self._levels.pop()
        await _commit_all(cms)

    async def _remember(self, store: Any, rel: Parts) -> None:
        prev = await _maybe_await(store.read(parts_to_path(rel), MISSING))
        if prev is MISSING:
            for depth in range(1, len(rel)):
                if not await probe_async(store, rel[:depth]):
                    self._levels.undo.append((store, rel[:depth], MISSING))
                    break
        self._levels.undo.append((store, rel, prev))

    async def _run(self, steps: list[Step]) -> None:
        for store, kind, rel, value in steps:
            if self._levels.wants_undo(store):
                await self._remember(store, rel)
            if kind == "write":
                await _maybe_await(store.write(parts_to_path(rel), value))
            else:
                await _maybe_await(store.delete(parts_to_path(rel)))
