"""Existence probes of the file backend: answered from names and file types, parsing nothing
below the path (only a document the path lies inside of is parsed, as ``read`` would).

They mirror ``FileSystemSyncBackend._read``: at each level a value file ``<key>.<ext>`` wins
over a directory ``<key>``; a directory holds a node only while it holds a value somewhere
below it (a visible value file, or a subdirectory that does), so the scan of a directory
stops at the first value found.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from ...missing import MISSING
from ...paths import Parts
from ...tree import get_in
from ..probe import NOTHING, holds
from .fileio import open_dir

__all__ = ["exists", "occupied"]


def exists(fs: Any, parts: Parts) -> bool:
    """Whether ``fs.read(parts, MISSING)`` finds a node. A corrupt value file exists here,
    where ``read`` raises BackendError naming it."""
    depth, fd = _descend(fs, parts)
    if fd is None:
        return False
    try:
        if depth == len(parts):
            return not parts or _dir_holds(fs, fd, NOTHING)
        if depth == len(parts) - 1:
            return True
        doc = fs._load(fd, fs._enc(parts[depth]) + fs._ext)
        return get_in(doc, parts, depth + 1) is not MISSING
    finally:
        os.close(fd)


def occupied(fs: Any, parts: Parts, ignore: frozenset[str]) -> bool:
    """Whether the node at ``parts`` is a leaf or a dict with a key outside ``ignore``."""
    depth, fd = _descend(fs, parts)
    if fd is None:
        return False
    try:
        if depth == len(parts):
            return _dir_holds(fs, fd, ignore)
        doc = fs._load(fd, fs._enc(parts[depth]) + fs._ext)
        return holds(get_in(doc, parts, depth + 1), ignore)
    finally:
        os.close(fd)


def _descend(fs: Any, parts: Parts) -> tuple[int, int | None]:
    """Walk the directories of ``parts`` from the base. ``(depth, fd)``: fd is the directory
    holding the value file of ``parts[depth]`` (depth < len), or the directory at ``parts``
    (depth == len); None when the path is missing."""
    fd = fs._open_base()
    for depth, key in enumerate(parts):
        name = fs._enc(key)
        if _is_value_file(fd, name + fs._ext):
            return depth, fd
        sub = open_dir(fd, name)
        os.close(fd)
        if sub is None:
            return depth, None
        fd = sub
    return len(parts), fd


def _is_value_file(parent: int, name: str) -> bool:
    try:
        mode = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return False
    return stat.S_ISREG(mode)


def _dir_holds(fs: Any, fd: int, ignore: frozenset[str]) -> bool:
    """Whether ``fs._load_dir(fd)`` would have a key outside ``ignore``; stops at the first."""
    for key, name, is_file in fs._entries(fd):
        if key is None or key in ignore:
            continue
        if is_file or _subdir_holds(fs, fd, name):
            return True
    return False


def _subdir_holds(fs: Any, parent: int, name: str) -> bool:
    sub = open_dir(parent, name)
    if sub is None:
        return False
    try:
        return _dir_holds(fs, sub, NOTHING)
    finally:
        os.close(sub)
