"""The write buffer of a Redis transaction: an overlay of pending writes over the stored tree.

Nodes are ``Known`` (the whole subtree at that path is decided by the buffer; ``MISSING``
when deleted) or ``Patch`` (a directory: its children in the overlay override the stored
ones, the others come from Redis). A ``Patch`` marked ``created`` does not exist in Redis
yet. Known nodes never nest, so at commit each becomes one independent APPLY op; a topmost
created Patch becomes one write of its merged value.

Example: stored ``{"a": {"x": 1}}``; in a transaction write ``/a/y = 2`` and delete ``/b/c``
(``/b`` missing: nothing to delete, nothing recorded). Overlay: root Patch -> ``a``
Patch -> ``y`` Known(2). ``read("/a")`` reads ``{"x": 1}`` from Redis and merges ``y``.
"""

from __future__ import annotations

from typing import Any, final

from ...missing import MISSING
from ...paths import Parts
from ...tree import copy_out, delete_in, get_in, set_in
from .codec import conflict_error

__all__ = ["Known", "Overlay", "Patch"]


@final
class Known:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


@final
class Patch(dict[str, "Patch | Known"]):
    created = False


class Overlay:
    """Pending writes; the methods return what must still be asked of Redis, or act."""

    def __init__(self) -> None:
        self.root: Patch | Known = Patch()

    def locate(self, parts: Parts) -> tuple[int, Patch | Known]:
        """The Known node at or above ``parts``, or the deepest Patch on the way, with depth."""
        node, depth = self.root, 0
        while depth < len(parts) and type(node) is Patch:
            child = node.get(parts[depth])
            if child is None:
                break
            node, depth = child, depth + 1
        return depth, node

    def read_known(self, node: Known, parts: Parts, depth: int) -> Any:
        return copy_out(get_in(node.value, parts, depth))

    def write_below_known(self, node: Known, parts: Parts, depth: int, value: Any) -> None:
        if depth == len(parts):
            node.value = value
            return
        if node.value is MISSING:
            node.value = {}
        if type(node.value) is not dict:
            raise conflict_error("/" + "/".join(parts), depth)
        set_in(node.value, parts[depth:], value)

    def delete_below_known(self, node: Known, parts: Parts, depth: int) -> None:
        if depth == len(parts):
            node.value = {} if not parts else MISSING
        elif type(node.value) is dict:
            delete_in(node.value, parts[depth:])

    def place(self, parts: Parts, depth: int, value: Any, created_from: int | None) -> None:
        """Put Known(value) at ``parts``, adding Patch nodes below ``parts[:depth]``.

        ``created_from``: the depth from which the ancestors do not exist in Redis.
        """
        if not parts:
            self.root = Known(value)
            return
        node = self.root
        assert type(node) is Patch
        for i in range(len(parts) - 1):
            child = node.get(parts[i])
            if type(child) is not Patch:
                child = node[parts[i]] = Patch()
                child.created = node.created or (created_from is not None and i + 1 >= created_from)
            node = child
        node[parts[-1]] = Known(value)

    def ops(self) -> list[tuple[Parts, Any]]:
        """(parts, value or MISSING) to apply at commit: independent, never nested."""
        if type(self.root) is Known:
            return [((), self.root.value)]
        out: list[tuple[Parts, Any]] = []
        _collect(self.root, (), out)
        return out


def _collect(patch: Patch, parts: Parts, out: list[tuple[Parts, Any]]) -> None:
    for name, child in patch.items():
        where = (*parts, name)
        if type(child) is Known:
            out.append((where, child.value))
        elif child.created:
            out.append((where, merge({}, child)))
        else:
            _collect(child, where, out)


def merge(base: Any, patch: Patch) -> dict[str, Any]:
    """``base`` (a stored directory, or anything else meaning "empty") with ``patch`` applied."""
    out: dict[str, Any] = base if type(base) is dict else {}
    for name, child in patch.items():
        if type(child) is Known:
            if child.value is MISSING:
                out.pop(name, None)
            else:
                out[name] = copy_out(child.value)
        else:
            out[name] = merge(out.get(name), child)
    return out
