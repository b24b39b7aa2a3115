"""Existence probes of the file backend: answered from names and file types, parsing nothing
below the path (only a document the path lies inside of is parsed, as ``read`` would).

They mirror ``FileReader.read`` (``reading.py``): at each level a value file ``<key>.<ext>`` wins
over a directory ``<key>``; a directory holds a node only while it holds a value somewhere
below it (a visible value file, or a subdirectory that does), so the scan of a directory
stops at the first value found.
"""

from __future__ import annotations

import os
import stat

from ...missing import MISSING
from ...paths import Parts
from ...tree import get_in
from ..probe import NOTHING, holds
from .fileio import open_dir
from .reading import FileReader

__all__ = ["exists", "occupied"]


def exists(fs: FileReader, parts: Parts) -> bool:
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
        doc = fs.load(fd, fs.enc(parts[depth]) + fs.ext)
        return get_in(doc, parts, depth + 1) is not MISSING
    finally:
        fs.fds.close(fd)


def occupied(fs: FileReader, parts: Parts, ignore: frozenset[str]) -> bool:
    """Whether the node at ``parts`` is a leaf or a dict with a key outside ``ignore``."""
    depth, fd = _descend(fs, parts)
    if fd is None:
        return False
    try:
        if depth == len(parts):
            return _dir_holds(fs, fd, ignore)
        doc = fs.load(fd, fs.enc(parts[depth]) + fs.ext)
        return holds(get_in(doc, parts, depth + 1), ignore)
    finally:
        fs.fds.close(fd)


def _descend(fs: FileReader, parts: Parts) -> tuple[int, int | None]:
    """Walk the directories of ``parts`` from the base. ``(depth, fd)``: fd is the directory
    holding the value file of ``parts[depth]`` (depth < len), or the directory at ``parts``
    (depth == len); None when the path is missing."""
    fd = fs.open_base()
    for depth, key in enumerate(parts):
        name = fs.enc(key)
        if _is_value_file(fd, name + fs.ext):
            return depth, fd
        sub = open_dir(fs.fds, fd, name)
        fs.fds.close(fd)
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


def _dir_holds(fs: FileReader, fd: int, ignore: frozenset[str]) -> bool:
    """Whether ``fs.load_dir(fd)`` would have a key outside ``ignore``; stops at the first."""
    for key, name, is_file in fs.entries(fd):
        if key is None or key in ignore:
            continue
        if is_file or _subdir_holds(fs, fd, name):
            return True
    return False


def _subdir_holds(fs: FileReader, parent: int, name: str) -> bool:
    sub = open_dir(fs.fds, parent, name)
    if sub is None:
        return False
    try:
        return _dir_holds(fs, sub, NOTHING)
    finally:
        fs.fds.close(sub)
