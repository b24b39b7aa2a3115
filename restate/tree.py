"""Pure nested-dict operations on the state tree: copy-in with validation, get/set/delete in place.

Values are dicts (interior nodes) or leaves. These functions never notify and never lock; the
controller and the in-memory backend build on them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from .errors import PathConflictError, SerializationError
from .missing import MISSING
from .paths import Parts, check_key, parts_to_str

__all__ = [
    "IMMUTABLE",
    "MAX_DEPTH",
    "copy_in",
    "copy_out",
    "delete_in",
    "get_in",
    "set_in",
    "validate_value",
    "values_equal",
]

#: How deep the state tree may nest: a value written at a path of ``p`` segments may hold at
#: most ``MAX_DEPTH - p`` levels of nested dicts, lists and tuples. Deeper values would
#: overflow Python's recursion limit in the code that copies, compares and serialises them,
#: so they are refused before anything changes.
MAX_DEPTH = 200

IMMUTABLE: frozenset[type] = frozenset(
    {int, float, str, bool, type(None), bytes, complex, frozenset, range}
)


def validate_value(value: Any, where: Parts = ()) -> None:
    """Raise, before anything is stored, unless ``value`` can be stored at ``where``.

    Walks dicts, lists and tuples without recursion. Raises SerializationError for a
    container that contains itself or for nesting deeper than ``MAX_DEPTH`` (counting the
    path). Other objects are leaves and are not looked into. (Dict keys are checked by the
    copy, ``copy_in``, which stores nothing either when one is bad.)
    """
    stack: list[tuple[Any, Parts, int]] = [(value, where, len(where))]
    on_path: set[int] = set()  # ids of the containers enclosing the one being looked at
    while stack:
        node, at, depth = stack.pop()
        if node is _LEAVE:
            on_path.discard(depth)
            continue
        if depth >= MAX_DEPTH:
            raise _too_deep(where, at)
        if id(node) in on_path:
            raise SerializationError(
                f"the value written at {parts_to_str(where)!r} contains itself (at "
                f"{parts_to_str(at)!r}); state values must be trees: copy the inner part"
            )
        on_path.add(id(node))
        stack.append((_LEAVE, at, id(node)))
        _push_children(node, at, depth, stack)


_LEAVE: Any = object()  # marks the end of a container's children on the walk's stack


def _push_children(node: Any, at: Parts, depth: int, stack: list[tuple[Any, Parts, int]]) -> None:
    if _all_immutable(node.values() if isinstance(node, dict) else node):
        return  # the common case, decided in one C-level pass
    if isinstance(node, dict):
        for k, v in node.items():
            if type(v) not in IMMUTABLE and isinstance(v, dict | list | tuple):
                stack.append((v, (*at, k), depth + 1))
    else:
        for v in node:
            if type(v) not in IMMUTABLE and isinstance(v, dict | list | tuple):
                stack.append((v, at, depth + 1))


def _too_deep(where: Parts, at: Parts) -> SerializationError:
    below = parts_to_str(at[len(where) : len(where) + 3]) if len(at) > len(where) else ""
    return SerializationError(
        f"the value written at {parts_to_str(where)!r} nests deeper than restate's limit of "
        f"{MAX_DEPTH} levels (path segments plus nested dicts, lists and tuples; it goes on "
        f"below {below or '/'!r}...); flatten it or store it as one string"
    )


def copy_in(value: Any, where: Parts = ()) -> Any:
    """An isolated copy of ``value`` to store at ``where``, validated first
    (``validate_value``); raises InvalidPathError for a bad dict key anywhere in the value,
    SerializationError for a cycle or too deep a value -- nothing is stored then.
    """
    t = type(value)
    if t in IMMUTABLE:
        return value
    if t is dict or t is list or t is tuple or isinstance(value, dict):
        validate_value(value, where)
    return _copy_in(value, where)


def _copy_in(value: Any, where: Parts) -> Any:
    t = type(value)
    if t in IMMUTABLE:
        return value
    if t is dict or isinstance(value, dict):
        _check_keys(value, where)
        if _all_immutable(value.values()):
            return dict(value)
        return {
            k: v if type(v) in IMMUTABLE else _copy_in(v, (*where, k)) for k, v in value.items()
        }
    if t is list:
        if _all_immutable(value):
            return value.copy()
        return [v if type(v) in IMMUTABLE else _copy_in(v, where) for v in value]
    if t is tuple:
        if _all_immutable(value):
            return value
        return tuple(v if type(v) in IMMUTABLE else _copy_in(v, where) for v in value)
    return copy.deepcopy(value)


def copy_out(value: Any) -> Any:
    """An isolated copy of a stored value, handed to users (keys are already valid)."""
    t = type(value)
    if t in IMMUTABLE:
        return value
    if t is dict:
        if _all_immutable(value.values()):
            return value.copy()
        return {k: v if type(v) in IMMUTABLE else copy_out(v) for k, v in value.items()}
    if t is list:
        if _all_immutable(value):
            return value.copy()
        return [v if type(v) in IMMUTABLE else copy_out(v) for v in value]
    if t is tuple:
        if _all_immutable(value):
            return value
        return tuple(v if type(v) in IMMUTABLE else copy_out(v) for v in value)
    return copy.deepcopy(value)


# Copy strategy (measured in benchmarks/bench_core.py): values are copied in on write and
# out on read (copy-on-read). Most containers hold only immutable leaves: one C-level pass
# over their types says so and a shallow ``dict.copy()`` is then a full isolated copy, and
# a tuple of immutables is shared as is. The first mutable value stops that pass early.


def _all_immutable(values: Iterable[Any]) -> bool:
    return IMMUTABLE.issuperset(map(type, values))


_STR = frozenset({str})


def _check_keys(d: dict[Any, Any], where: Parts) -> None:
    """``check_key`` for every key of ``d``, in C-level passes when all keys are fine (a
    bad key is then named by ``check_key`` itself)."""
    if _STR.issuperset(map(type, d)):
        joined = "".join(d)
        if not ("/" in joined or "\0" in joined or "" in d or "." in d or ".." in d or "*" in d):
            return
    for k in d:
        check_key(k, where)


def get_in(tree: Any, parts: Parts, start: int = 0) -> Any:
    """The value at ``parts[start:]`` below ``tree``, or ``MISSING``."""
    node = tree
    for i in range(start, len(parts)):
        if type(node) is not dict:
            return MISSING
        node = node.get(parts[i], MISSING)
        if node is MISSING:
            return MISSING
    return node


def set_in(tree: dict[str, Any], parts: Parts, value: Any) -> None:
    """Store ``value`` at ``parts`` in ``tree`` (mutating the dicts on the way, creating missing
    ones). Raises PathConflictError, before changing anything, when a leaf is in the way.
    """
    node = tree
    last = len(parts) - 1
    for i in range(last):
        child = node.get(parts[i], MISSING)
        if child is MISSING:
            for seg in parts[i:last]:
                child = {}
                node[seg] = child
                node = child
            break
        if type(child) is not dict:
            raise _leaf_in_the_way(parts, i, child)
        node = child
    node[parts[last]] = value


def check_settable(tree: Any, parts: Parts) -> None:
    """Raise PathConflictError when a leaf above ``parts`` would block a write."""
    node = tree
    for i in range(len(parts) - 1):
        if type(node) is not dict:
            break
        node = node.get(parts[i], MISSING)
        if node is MISSING:
            return
        if type(node) is not dict:
            raise _leaf_in_the_way(parts, i, node)


def _leaf_in_the_way(parts: Parts, depth: int, leaf: Any) -> PathConflictError:
    return PathConflictError(
        f"cannot write {parts_to_str(parts)!r}: {parts_to_str(parts[: depth + 1])!r} holds a "
        f"{type(leaf).__name__} leaf, not a dict; delete it or write the dict first"
    )


def delete_in(tree: dict[str, Any], parts: Parts) -> bool:
    """Remove the node at ``parts`` (not the root). False when it was missing."""
    parent = get_in(tree, parts[:-1])
    if type(parent) is not dict or parts[-1] not in parent:
        return False
    del parent[parts[-1]]
    return True


def values_equal(a: Any, b: Any) -> bool:
    """``a == b`` made safe: objects whose ``==`` is not a plain bool (arrays) count as unequal
    unless they are the same object."""
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:
        return False
