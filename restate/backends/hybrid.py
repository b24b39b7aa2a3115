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

import asyncio
import functools
import inspect
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import PurePosixPath
from typing import Any

from ..errors import PathConflictError
from ..paths import Parts, is_prefix, parts_to_path, parts_to_str, to_parts
from ..tree import copy_in, delete_in, get_in, set_in
from ._interrupts import finish
from .base import MISSING, AsyncBackend, Backend
from .probe import exists_plan, probe_async, probe_sync, run_async, run_sync

__all__ = ["HybridAsyncBackend", "HybridSyncBackend"]

Step = tuple[Any, str, Parts, Any]  # (store, "write" | "delete", path in the store, value)


def _pop_in(tree: Any, parts: Parts) -> Any:
    value = get_in(tree, parts)
    if value is not MISSING:
        delete_in(tree, parts)
    return value


class _Mounts:
    """The mount table and the pure planning of reads and writes over it."""

    def __init__(self, root: Any) -> None:
        self.root = root
        self.table: dict[Parts, Any] = {}

    def mount(self, path: PurePosixPath | str, backend: Any) -> None:
        parts = to_parts(path)
        if not parts:
            raise ValueError("cannot mount at '/': pass that backend as the root backend")
        if parts in self.table:
            raise ValueError(f"{parts_to_str(parts)!r} is already mounted; unmount it first")
        self.table[parts] = backend

    def unmount(self, path: PurePosixPath | str) -> Any:
        parts = to_parts(path)
        if parts not in self.table:
            raise KeyError(f"nothing is mounted at {parts_to_str(parts)!r}")
        return self.table.pop(parts)

    def owner(self, parts: Parts) -> tuple[Parts, Any]:
        for i in range(len(parts), 0, -1):
            backend = self.table.get(parts[:i])
            if backend is not None:
                return parts[:i], backend
        return (), self.root

    def below(self, parts: Parts) -> list[Parts]:
        """Mount points strictly below ``parts``, shallowest first."""
        found = [m for m in self.table if len(m) > len(parts) and is_prefix(parts, m)]
        return sorted(found, key=len)

    def reads(self, parts: Parts) -> list[tuple[Any, Parts, Parts]]:
        """What to read for ``parts``: ``(store, path in store, where in the result)``."""
        mount, owner = self.owner(parts)
        plan: list[tuple[Any, Parts, Parts]] = [(owner, parts[len(mount) :], ())]
        plan += [(self.table[m], (), m[len(parts) :]) for m in self.below(parts)]
        return plan

    def ancestor_checks(self, parts: Parts) -> list[tuple[Any, Parts, Parts]]:
        """Paths above the owning mount point, held by other stores, that must not be leaves."""
        mount, _ = self.owner(parts)
        checks = []
        for i in range(1, len(mount)):
            if mount[:i] not in self.table:
                above, store = self.owner(mount[:i])
                checks.append((store, mount[len(above) : i], mount[:i]))
        return checks

    def writes(self, parts: Parts, value: Any) -> list[Step]:
        """Split a write at ``parts`` into one step per store; the owner's step first."""
        mount, owner = self.owner(parts)
        steps: list[Step] = []
        for m in reversed(self.below(parts)):
            sub = _pop_in(value, m[len(parts) :]) if type(value) is dict else MISSING
            if sub is MISSING:
                steps.append((self.table[m], "delete", (), None))
            elif type(sub) is dict:
                steps.append((self.table[m], "write", (), sub))
            else:
                raise _mount_conflict(parts, m)
        if parts == mount and type(value) is not dict:
            raise _mount_conflict(parts, mount)
        steps.append((owner, "write", parts[len(mount) :], value))
        return steps[::-1]

    def deletes(self, parts: Parts) -> list[Step]:
        mount, owner = self.owner(parts)
        steps: list[Step] = [(owner, "delete", parts[len(mount) :], None)]
        steps += [(self.table[m], "delete", (), None) for m in self.below(parts)]
        return steps

    def stores(self) -> list[Any]:
        unique: dict[int, Any] = {id(self.root): self.root}
        for backend in self.table.values():
            unique.setdefault(id(backend), backend)
        return list(unique.values())


def _mount_conflict(parts: Parts, mount: Parts) -> PathConflictError:
    return PathConflictError(
        f"cannot write {parts_to_str(parts)!r}: {parts_to_str(mount)!r} is a mount point and "
        f"holds a dict, not a leaf"
    )


def _leaf_conflict(parts: Parts, at: Parts, leaf: Any) -> PathConflictError:
    return PathConflictError(
        f"cannot write {parts_to_str(parts)!r}: {parts_to_str(at)!r} holds a "
        f"{type(leaf).__name__} leaf, not a dict; delete it or write the dict first"
    )


def _merge(parts: Parts, results: list[tuple[Parts, Any]], is_mount: bool) -> Any:
    """Overlay what each mounted store returned onto the owner's value."""
    value = results[0][1]
    for where, sub in results[1:]:
        if not sub:
            if type(value) is dict:
                delete_in(value, where)  # hide what the parent store holds under the mount
            continue
        if value is MISSING:
            value = {}
        if type(value) is not dict:
            break  # a leaf above the mount points hides them
        try:
            set_in(value, where, sub)
        except PathConflictError:
            continue
    if value == {} and (is_mount or (parts and len(results) > 1)):
        return MISSING
    return value


def _check_values(steps: list[Step]) -> None:
    for store, kind, rel, value in steps:
        check = getattr(store, "check_value", None)
        if kind == "write" and check is not None:
            check(parts_to_path(rel), value)


def _require_sync(backend: Any) -> None:
    if isinstance(backend, AsyncBackend):
        raise TypeError(
            f"HybridSyncBackend takes sync backends; {type(backend).__name__} is async, "
            f"use HybridAsyncBackend"
        )


def _has_txn(store: Any) -> bool:
    return callable(getattr(store, "transaction", None))


class _Levels:
    """Open transactions: per level the stores' own transactions entered, and an undo log
    (store, path, previous value) for stores that have none."""

    def __init__(self) -> None:
        self.stack: list[tuple[list[Any], int]] = []
        self.undo: list[tuple[Any, Parts, Any]] = []

    def wants_undo(self, store: Any) -> bool:
        return bool(self.stack) and not _has_txn(store)

    def pop(self) -> tuple[list[Any], list[tuple[Any, Parts, Any]]]:
        """The level's transactions, and its undo entries, newest first."""
        cms, mark = self.stack.pop()
        undo = self.undo[mark:][::-1]
        del self.undo[mark:]
        return cms, undo


def _is_conflict(value: Any) -> bool:
    return value is not MISSING and type(value) is not dict


class HybridSyncBackend(Backend):
    """Sync stores mounted into one tree; ``root_backend`` holds what no mount owns."""

    def __init__(self, root_backend: Backend) -> None:
        _require_sync(root_backend)
        self._mounts = _Mounts(root_backend)
        self._levels = _Levels()

    def __repr__(self) -> str:
        mounted = ", ".join(parts_to_str(m) for m in self._mounts.table)
        return f"{type(self).__name__}({self._mounts.root!r}, mounts=[{mounted}])"

    @property
    def root_backend(self) -> Any:
        return self._mounts.root

    @property
    def mounts(self) -> dict[PurePosixPath, Any]:
        """Mount points and their stores."""
        return {parts_to_path(m): b for m, b in self._mounts.table.items()}

    def mount(self, path: PurePosixPath | str, backend: Any) -> None:
        """Let ``backend`` own ``path`` and its subtree. Raises ValueError when taken or '/'."""
        _require_sync(backend)
        self._mounts.mount(path, backend)

    def unmount(self, path: PurePosixPath | str) -> Any:
        """Remove the mount at ``path`` and return its store. Raises KeyError when none."""
        return self._mounts.unmount(path)

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

    def check_value(self, path: PurePosixPath | str, value: Any) -> None:
        parts = to_parts(path)
        _check_values(self._mounts.writes(parts, copy_in(value, parts)))

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


def _commit_all(cms: list[Any]) -> None:
    """Commit the stores' transactions, newest first (resumable)."""
    while cms:
        _close(cms[-1], None)
        cms.pop()


def _close(cm: Any, exc: BaseException | None) -> None:
    """Exit a store's transaction (committing when ``exc`` is None) unless it never opened
    or has ended already: safe to repeat after an interruption."""
    gen = getattr(cm, "gen", None)
    if gen is not None:
        state = inspect.getgeneratorstate(gen)
        if state == inspect.GEN_CREATED:
            gen.close()
            return
        if state == inspect.GEN_CLOSED:
            return
    if exc is None:
        cm.__exit__(None, None, None)
        return
    try:
        cm.__exit__(type(exc), exc, exc.__traceback__)
    except BaseException as raised:
        if raised is not exc:
            raise


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


class HybridAsyncBackend(AsyncBackend):
    """The async twin of ``HybridSyncBackend``; mounted stores may be sync or async."""

    def __init__(self, root_backend: Any) -> None:
        self._mounts = _Mounts(root_backend)
        self._levels = _Levels()

    root_backend = HybridSyncBackend.root_backend
    mounts = HybridSyncBackend.mounts
    unmount = HybridSyncBackend.unmount
    check_value = HybridSyncBackend.check_value
    __repr__ = HybridSyncBackend.__repr__

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
        for cm in reversed(cms):
            await _exit(cm, None)

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
