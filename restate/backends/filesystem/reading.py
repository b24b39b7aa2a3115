"""Reading the file backend's tree: value files, directories, key sidecars. A part of
``FileSystemSyncBackend`` (``backend.py``: its ``_reader``), which also writes through it
(``load``, ``load_dir``) and hands it to the existence probes (``probe.py``).

A file wins over a directory of the same name, a directory without values reads as
missing, and hidden names, files of other extensions and symlinks are skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ...errors import BackendError
from ...missing import MISSING
from ...paths import Parts
from ...serializers import Serializer
from ...tree import get_in
from . import names
from .descriptors import Descriptors
from .fileio import open_dir, read_bytes

__all__ = ["FileReader"]


class FileReader:
    """``read(parts)`` and the loaders it is built from.

    Args:
        base_dir: the root (for error messages); ``open_base()`` opens it.
        serializer: parses value files, whose names end in ``ext``.
        enc: a key -> its file name, without ``ext`` (the backend's cached encoder).
        fds: the backend's ``Descriptors`` (every descriptor is opened and closed there).
    """

    def __init__(
        self,
        base_dir: Path,
        serializer: Serializer[Any],
        ext: str,
        fds: Descriptors,
        open_base: Callable[[], int],
        enc: Callable[[str], str],
    ) -> None:
        self.base_dir = base_dir
        self.serializer = serializer
        self.ext = ext
        self.fds = fds
        self.open_base = open_base
        self.enc = enc

    def dec(self, parent: int, name: str) -> str | None:
        if not names.is_hashed(name):
            return names.decode_name(name)
        raw = read_bytes(self.fds, parent, names.sidecar(name))
        return None if raw is None else raw.decode("utf-8", "surrogatepass")

    def load(self, parent: int, name: str) -> Any:
        raw = read_bytes(self.fds, parent, name)
        if raw is None:
            return MISSING
        try:
            return self.serializer.loads(raw.decode() if self.serializer.raw_type is str else raw)
        except Exception as exc:
            raise BackendError(
                f"cannot parse {name!r} below {str(self.base_dir)!r}: {exc}"
            ) from exc

    def read(self, parts: Parts) -> Any:
        fd = self.open_base()
        try:
            for i, key in enumerate(parts):
                name = self.enc(key)
                value = self.load(fd, name + self.ext)
                if value is not MISSING:
                    return get_in(value, parts, i + 1)
                sub = open_dir(self.fds, fd, name)
                if sub is None:
                    return MISSING
                fd, old = sub, fd  # swapped first: an interrupt leaks, never double-closes
                self.fds.close(old)
            value = self.load_dir(fd)
            return value if value or not parts else MISSING
        finally:
            self.fds.close(fd)

    def entries(self, fd: int) -> Iterator[tuple[str | None, str, bool]]:
        """``(key, name, is_value_file)`` for each value file and directory in ``fd``; hidden
        names and files of other extensions are skipped, ``key`` is None when a name does not
        decode."""
        ext, n = self.ext, len(self.ext)
        with os.scandir(fd) as entries:
            for entry in entries:
                name = entry.name
                if name[0] == ".":
                    continue
                if name.endswith(ext) and entry.is_file(follow_symlinks=False):
                    yield self.dec(fd, name[:-n]), name, True
                elif entry.is_dir(follow_symlinks=False):
                    yield self.dec(fd, name), name, False

    def load_dir(self, fd: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        subdirs = []
        for key, name, is_file in self.entries(fd):
            if key is None:
                continue
            if not is_file:
                subdirs.append((key, name))
                continue
            value = self.load(fd, name)
            if value is not MISSING:
                result[key] = value
        for key, name in subdirs:
            if key in result:
                continue  # a file wins over a directory of the same name
            sub = open_dir(self.fds, fd, name)
            if sub is not None:
                try:
                    value = self.load_dir(sub)
                finally:
                    self.fds.close(sub)
                if value:
                    result[key] = value
        return result
