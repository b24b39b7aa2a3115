"""The hybrid backends' mount table and the pure planning of reads and writes over it:
which store owns a path, how a write or delete is split into one step per store, how the
stores' answers to a read are merged back into one tree. No I/O.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from ..errors import PathConflictError
from ..paths import Parts, is_prefix, parts_to_path, parts_to_str, to_parts
from ..tree import copy_in, delete_in, get_in, set_in
from .base import MISSING

__all__ = [
    "Step",
    "_HybridBase",
    "_Mounts",
    "_check_values",
    "_is_conflict",
    "_leaf_conflict",
    "_merge",
]

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


def _is_conflict(value: Any) -> bool:
    return value is not MISSING and type(value) is not dict


class _HybridBase:
    """The mount table's public face, the same on both hybrid backends."""

    _mounts: _Mounts

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

    def unmount(self, path: PurePosixPath | str) -> Any:
        """Remove the mount at ``path`` and return its store. Raises KeyError when none."""
        return self._mounts.unmount(path)

    def check_value(self, path: PurePosixPath | str, value: Any) -> None:
        parts = to_parts(path)
        _check_values(self._mounts.writes(parts, copy_in(value, parts)))
