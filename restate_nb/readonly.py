"""Read-only snapshots: what ``state[path]`` returns for dicts, lists and sets.

A value read through ``state`` is a copy of the stored one, so mutating it in place could
never reach the state. Rather than lose such a change silently, the containers are returned
as read-only snapshots that refuse in-place changes and say which write to make instead::

    cfg = state["/cfg"]                # {"a": 1, "sub": {"b": 2}}, a ReadOnlyDict
    cfg["a"] = 2                       # TypeError: state["/cfg"] is a read-only snapshot;
                                       #   write state["/cfg/a"] = 2 ...
    cfg["sub"]["b"] = 3                # TypeError: ... write state["/cfg/sub/b"] = 3 ...
    state["/items"].append(4)          # TypeError: ... write state["/items"] = [...] ...
    mine = dict(cfg)                   # a plain, mutable (shallow) copy; cfg.copy() too
    state["/items"] += [4]             # works: like a tuple, += makes a new list, then writes

The snapshot types subclass ``dict``, ``list`` and ``set``, so ``isinstance``, ``==``,
``json.dumps`` and printing behave as for the plain types; ``copy.deepcopy`` and ``pickle``
give plain ones. Augmented operators (``+=``, ``|=``, ``*=``) return a new plain value, as
for immutable types, so ``state[p] += [x]`` writes and ``v = state[p]; v += [x]`` only
rebinds ``v``. Other objects (numbers, strings, tuples and, on the memory backend, any
Python object) are returned as they are read: for a custom object that is a copy, so write
it back (``state[p] = obj``) after changing it.
"""

from __future__ import annotations

import copy
from typing import Any, NoReturn

from restate.paths import parts_to_str, to_parts

__all__ = ["ReadOnlyDict", "ReadOnlyList", "ReadOnlySet", "freeze", "thaw"]


def freeze(value: Any, path: Any) -> Any:
    """``value`` (read at ``path``) with its dicts, lists and sets made read-only, deeply."""
    if type(value) not in _CONTAINERS:
        return value  # a leaf: no path to normalise
    return _freeze(value, parts_to_str(to_parts(path)))


def _freeze(value: Any, path: str) -> Any:
    # exact types only: a user's own dict subclass keeps its class (the memory backend
    # returned a copy of it; see the module docstring). Leaves are passed through without a
    # call or a path string each: reading 10,000 leaves stays a few milliseconds.
    kind = type(value)
    if kind is dict:
        items = {
            k: _freeze(v, _child(path, k)) if type(v) in _CONTAINERS else v
            for k, v in value.items()
        }
        return ReadOnlyDict(path, items)
    if kind is list:
        return ReadOnlyList(
            path,
            [
                _freeze(v, f"{path}[{i}]") if type(v) in _CONTAINERS else v
                for i, v in enumerate(value)
            ],
        )
    if kind is set:
        return ReadOnlySet(path, value)
    return value


_CONTAINERS = frozenset({dict, list, set})


def thaw(value: Any) -> Any:
    """A plain, mutable deep copy of ``value`` (snapshots become dict / list / set)."""
    if isinstance(value, dict):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list):
        return [thaw(v) for v in value]
    if isinstance(value, set):
        return set(value)
    return copy.deepcopy(value)


def _child(path: str, key: Any) -> str:
    return f"/{key}" if path == "/" else f"{path}/{key}"


def _refuse(snapshot: Any, hint: str) -> NoReturn:
    __tracebackhide__ = True  # IPython shows the user's line, not this frame
    raise TypeError(
        f'state["{snapshot.root}"] is a read-only snapshot: changing it in place would not '
        f"change the state; {hint}, or make a mutable copy with {snapshot.copy_hint}"
    )


class _Snapshot:
    """What the three snapshot types share: the path they were read at, copy helpers."""

    _path: str
    copy_hint = "copy.deepcopy(...)"

    @property
    def root(self) -> str:
        """The state path this value (or the container it sits in) was read at."""
        return self._path.partition("[")[0]

    def _whole(self) -> str:
        return f'write the whole value instead: state["{self.root}"] = ...'

    def __copy__(self) -> Any:
        return self.copy()  # type: ignore[attr-defined]

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return thaw(self)

    def __reduce__(self) -> Any:
        return (thaw, (self.copy(),))  # type: ignore[attr-defined]


class ReadOnlyDict(_Snapshot, dict[Any, Any]):
    """A dict read from the state; in-place changes raise ``TypeError`` naming the path."""

    copy_hint = "dict(...) or copy.deepcopy(...)"

    def __init__(self, path: str, items: dict[Any, Any]) -> None:
        dict.__init__(self, items)
        self._path = path

    def _hint_for(self, key: Any, value: Any = ...) -> str:
        if "[" in self._path or not isinstance(key, str):
            return self._whole()
        shown = "..." if value is ... else _short(value)
        return f'write by path instead: state["{_child(self._path, key)}"] = {shown}'

    def __setitem__(self, key: Any, value: Any) -> NoReturn:
        __tracebackhide__ = True
        _refuse(self, self._hint_for(key, value))

    def __delitem__(self, key: Any) -> NoReturn:
        __tracebackhide__ = True
        if "[" in self._path or not isinstance(key, str):
            _refuse(self, self._whole())
        _refuse(self, f'delete by path instead: del state["{_child(self._path, key)}"]')

    def _mutator(self, *args: Any, **kwargs: Any) -> NoReturn:
        __tracebackhide__ = True
        _refuse(self, self._whole())

    update = setdefault = pop = popitem = clear = _mutator

    def __ior__(self, other: Any) -> Any:  # type: ignore[misc]
        return thaw(self) | dict(other)

    def copy(self) -> dict[Any, Any]:
        """A plain, mutable shallow copy (a plain ``dict``)."""
        return dict(self)


class ReadOnlyList(_Snapshot, list[Any]):
    """A list read from the state; in-place changes raise ``TypeError`` naming the path."""

    copy_hint = "list(...) or copy.deepcopy(...)"

    def __init__(self, path: str, items: list[Any]) -> None:
        list.__init__(self, items)
        self._path = path

    def _mutator(self, *args: Any, **kwargs: Any) -> NoReturn:
        __tracebackhide__ = True
        _refuse(self, self._whole())

    __setitem__ = __delitem__ = append = extend = insert = pop = _mutator
    remove = clear = sort = reverse = _mutator

    def __iadd__(self, other: Any) -> Any:  # type: ignore[misc]
        return thaw(self) + list(other)

    def __imul__(self, n: Any) -> Any:  # type: ignore[misc]
        return thaw(self) * n

    def copy(self) -> list[Any]:
        """A plain, mutable shallow copy (a plain ``list``)."""
        return list(self)


class ReadOnlySet(_Snapshot, set[Any]):
    """A set read from the state (memory backend); in-place changes raise ``TypeError``."""

    copy_hint = "set(...)"

    def __init__(self, path: str, items: Any) -> None:
        set.__init__(self, items)
        self._path = path

    def _mutator(self, *args: Any, **kwargs: Any) -> NoReturn:
        __tracebackhide__ = True
        _refuse(self, self._whole())

    add = discard = remove = pop = clear = update = _mutator
    difference_update = intersection_update = symmetric_difference_update = _mutator

    def __ior__(self, other: Any) -> Any:  # type: ignore[misc]
        return set(self) | other

    def __iand__(self, other: Any) -> Any:  # type: ignore[misc]
        return set(self) & other

    def __isub__(self, other: Any) -> Any:  # type: ignore[misc]
        return set(self) - other

    def __ixor__(self, other: Any) -> Any:  # type: ignore[misc]
        return set(self) ^ other

    def copy(self) -> set[Any]:
        """A plain, mutable copy (a plain ``set``)."""
        return set(self)

    def __repr__(self) -> str:  # shown like a set, as the dict and list snapshots are
        return repr(set(self))


def _short(value: Any) -> str:
    text = repr(thaw(value) if isinstance(value, _Snapshot) else value)
    return text if len(text) <= 40 else text[:37] + "..."
