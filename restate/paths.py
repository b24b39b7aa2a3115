"""Normalise and validate paths; wildcard matching; ancestors.

Internally a path is a tuple of segments: ``"/users/1/name"`` is ``("users", "1", "name")``
and the root is ``()``. Public API takes ``str``, ``PurePosixPath`` or any object with a
``.path`` attribute (an atom) and hands out ``PurePosixPath``.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any, TypeAlias

from .errors import InvalidPathError

__all__ = [
    "ROOT_PATH",
    "WILDCARD",
    "Parts",
    "PathLike",
    "check_key",
    "is_prefix",
    "parts_to_path",
    "parts_to_str",
    "to_parts",
]

ROOT_PATH = PurePosixPath("/")
WILDCARD = "*"

Parts: TypeAlias = tuple[str, ...]
PathLike: TypeAlias = "str | PurePosixPath | Any"

_CACHE_LIMIT = 20_000
_BAD_KEYS = frozenset({".", "..", WILDCARD})
_plain_cache: dict[str, Parts] = {}
_wild_cache: dict[str, Parts] = {}
_path_cache: dict[Parts, PurePosixPath] = {}

#: ``to_parts``'s cache of plain (no wildcard) str paths: a hot caller looks a str up here
#: first and calls ``to_parts`` only on a miss (the dict is cleared, never replaced).
plain_cache = _plain_cache


def to_parts(path: PathLike, *, wildcard: bool = False) -> Parts:
    """Return the normalised segments of ``path``.

    Raises:
        TypeError: ``path`` is not a str, a PurePosixPath or an object with ``.path``.
        InvalidPathError: a ``..`` segment, a NUL character, or a ``*`` segment where
            wildcards are not allowed (everywhere but subscriptions).
    """
    cache = _wild_cache if wildcard else _plain_cache
    if type(path) is str:
        parts = cache.get(path)
        if parts is not None:
            return parts
        text = path
    elif isinstance(path, tuple):
        return _checked_tuple(path, wildcard)
    else:
        text = _text_of(path)
        parts = cache.get(text)
        if parts is not None:
            return parts
    parts = _parse(text, wildcard)
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[text] = parts
    return parts


def _text_of(path: Any) -> str:
    if isinstance(path, str):
        return str(path)
    if isinstance(path, PurePosixPath):
        return str(path)
    inner = getattr(path, "path", None)
    if inner is not None and inner is not path:
        return _text_of(inner)
    raise TypeError(
        f"a state path must be a str, a pathlib.PurePosixPath or an object with a .path "
        f"attribute (an atom), not {type(path).__name__}: {path!r}"
    )


def _parse(text: str, wildcard: bool) -> Parts:
    if "\0" in text:
        raise InvalidPathError(f"path {text!r} contains a NUL character")
    parts = tuple(seg for seg in text.split("/") if seg and seg != ".")
    for seg in parts:
        if seg == "..":
            raise InvalidPathError(
                f"path {text!r} contains a '..' segment; paths are absolute, write the full path"
            )
        if seg == WILDCARD and not wildcard:
            raise InvalidPathError(
                f"path {text!r} contains a '*' segment; wildcards are only allowed in subscriptions"
            )
    return parts


def _checked_tuple(parts: tuple[Any, ...], wildcard: bool) -> Parts:
    for seg in parts:
        if not isinstance(seg, str):
            raise TypeError(f"path segments must be str, not {type(seg).__name__}: {seg!r}")
    return _parse("/" + "/".join(parts), wildcard)


def check_key(key: Any, where: Parts = ()) -> None:
    """Raise unless ``key`` can be a dict key of the state tree (docs/semantics.md#values)."""
    if type(key) is str and key and key not in _BAD_KEYS and "/" not in key and "\0" not in key:
        return
    at = parts_to_str(where)
    if not isinstance(key, str):
        raise InvalidPathError(
            f"dict key {key!r} at {at!r} is a {type(key).__name__}; state dict keys must be str"
        )
    raise InvalidPathError(
        f"dict key {key!r} at {at!r} is not allowed: keys must be non-empty, without '/' or NUL, "
        f"and not '.', '..' or '*'"
    )


def parts_to_path(parts: Parts) -> PurePosixPath:
    """The ``PurePosixPath`` for ``parts`` (cached: events create many)."""
    path = _path_cache.get(parts)
    if path is None:
        if len(_path_cache) >= _CACHE_LIMIT:
            _path_cache.clear()
        path = _path_cache[parts] = PurePosixPath("/" + "/".join(parts))
    return path


def parts_to_str(parts: Parts) -> str:
    return "/" + "/".join(parts)


def is_prefix(prefix: Parts, parts: Parts) -> bool:
    """True when ``prefix`` is ``parts`` or one of its ancestors."""
    return parts[: len(prefix)] == prefix


def related(a: Parts, b: Parts) -> bool:
    """True when one path is the other or an ancestor of it (their values overlap)."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]
