"""``DeriveData``: what a ``derive_many`` transform receives."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import PurePosixPath
from typing import Any

from .missing import MISSING
from .paths import Parts, is_prefix, parts_to_path, to_parts
from .tree import get_in

__all__ = ["DeriveData"]


class DeriveData(Mapping[PurePosixPath, Any]):
    """The values of a derivation's sources.

    ``data.get("/users")`` (leading slash optional), ``data["/users"]``, and attribute access
    ``data.users`` for the source ``/users``; a path below a source reads inside it
    (``data.get("/users/1/name")``). An attribute that names no source path but is the last
    segment of exactly one source (``data.primary`` for ``/config/colors/primary``) reads it.
    """

    __slots__ = ("_values",)

    def __init__(self, values: dict[Parts, Any]) -> None:
        object.__setattr__(self, "_values", values)

    def get(self, path: Any, default: Any = None) -> Any:
        parts = to_parts(path)
        for src, value in self._values.items():
            if is_prefix(src, parts):
                found = get_in(value, parts, len(src))
                return default if found is MISSING else found
        return default

    def __getitem__(self, path: Any) -> Any:
        marker = object()
        value = self.get(path, marker)
        if value is marker:
            raise KeyError(path)
        return value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if (name,) in self._values:
            return self._values[(name,)]
        matches = [src for src in self._values if src and src[-1] == name]
        if len(matches) == 1:
            return self._values[matches[0]]
        sources = ", ".join(str(parts_to_path(s)) for s in self._values)
        raise AttributeError(f"no source {name!r} in this derivation (sources: {sources})")

    def __iter__(self) -> Iterator[PurePosixPath]:
        return (parts_to_path(p) for p in self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        inner = ", ".join(f"{str(parts_to_path(p))!r}: {v!r}" for p, v in self._values.items())
        return f"DeriveData({{{inner}}})"
