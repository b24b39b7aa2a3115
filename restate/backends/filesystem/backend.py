"""``FileSystemSyncBackend`` / ``FileSystemAsyncBackend``: the state tree as readable files.

Layout: a value lives where it was written. ``/config/theme`` is the file
``base_dir/config/theme.json``; a dict written at ``/config/colors`` is one document
``config/colors.json``; the directories above hold no value of their own::

    write("/config/theme", "dark"); write("/config/colors/primary", 1)
    -> base_dir/config/theme.json, base_dir/config/colors/primary.json
    write("/config/colors/primary/x", 2)   -> PathConflictError (primary.json holds a leaf)
    write("/config", {"theme": "light"})   -> config.json written, directory config/ removed

Rules:

- A write below a stored document updates that document; a write at a path replaces the file
  or directory that was there (the new file is in place before the old directory goes, and a
  file wins over a directory of the same name, so a crash in between reads the new value).
- Directories exist only while they hold values: deleting the last value in a directory
  removes it and its empty parents, and an empty directory reads as missing. So deleting
  ``/a/b`` when it was ``/a``'s only child leaves ``/a`` missing (the memory backend keeps
  ``{}``); write ``/a = {}`` to keep an empty dict, it is stored as the document ``a.json``.
- Every file write is a temporary file (random name, ``O_EXCL | O_NOFOLLOW``) in the same
  directory + ``os.replace``; ``durable=True`` also fsyncs the file and its directory.
  Serialization happens before the disk is touched.
- Every write, delete and batch is a transaction: it holds the directory lock (``lock.py``),
  so it is isolated from other processes, and it is all-or-nothing across process crashes
  (and, with ``durable=True``, power loss; see ``journal.py``). A change of several steps (a
  batch, a directory replaced by a file or removed, new directories made, a root write) is
  journaled first and the next lock holder undoes what a killed process left half done; a
  plain write or delete that is one rename or unlink (a leaf file replaced, created or
  removed) is atomic by itself and skips the journal.
- Names are encoded reversibly (see ``names.py``). Files of other extensions, names starting
  with ``.`` and symlinks are never read, followed, written through or deleted: the walk
  opens each directory with ``O_NOFOLLOW`` relative to its parent's descriptor.

This module holds the public methods and the write/delete paths; reading is in
``reading.py`` (``_reader``, a ``FileReader``), locking and journaling in ``transactions.py``
(``_txns``, a ``FileTransactions``): parts the backend holds, as the engine holds its own.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, Self

from ...errors import BackendError, PathConflictError
from ...missing import MISSING
from ...paths import Parts, parts_to_str, to_parts
from ...serializers import Serializer, json_serializer
from ...tree import copy_in, delete_in, set_in
from ..base import Backend
from . import names, probe
from .descriptors import Descriptors
from .fileio import (
    DIR_FLAGS,
    TMP_PREFIX,
    key_bytes,
    open_dir,
    unlink_at,
    write_atomic,
)
from .journal import Rel
from .reading import FileReader
from .transactions import FileTransactions

__all__ = ["FileSystemSyncBackend"]


class FileSystemSyncBackend(Backend):
    """State stored as files below ``base_dir`` (created if missing).

    Args:
        base_dir: the directory holding the tree.
        serializer: how values become file contents (default JSON, ``.json`` files).
        durable: fsync every written file and its directory (slower, survives power loss).
    """

    def __init__(
        self,
        base_dir: str | os.PathLike[str],
        serializer: Serializer[Any] = json_serializer,
        durable: bool = False,
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.serializer = serializer
        self.durable = durable
        self._ext = "." + serializer.extension
        self._lock = threading.RLock()
        self._encoded: dict[str, str] = {}
        self._rels: dict[int, Rel] = {}  # open directory descriptor -> names below base_dir
        self._fds = Descriptors()  # what each operation opens (descriptors.py)
        self._reader = FileReader(
            self.base_dir, serializer, self._ext, self._fds, self._open_base, self._enc
        )
        self._txns = FileTransactions(
            str(self.base_dir), self._fds, self._open_base, self._lock, self._rels, durable
        )
        with self._lock, self._txns.locked(exclusive=True):
            pass  # taking the lock undoes a batch a killed process left half done

    def __repr__(self) -> str:
        return f"FileSystemSyncBackend({str(self.base_dir)!r})"

    def close(self) -> None:
        """Release the directory lock's file descriptor (the backend reopens it if used)."""
        with self._lock:
            self._txns.dirlock.close()
            self._fds.sweep()

    # public contract
    def read(self, path: PurePosixPath | str, default: Any = None) -> Any:
        parts = to_parts(path)
        with self._os_errors("read", parts), self._lock, self._txns.locked(exclusive=False):
            value = self._reader.read(parts)
        return default if value is MISSING else value

    def write(self, path: PurePosixPath | str, value: Any) -> None:
        parts = to_parts(path)
        value = copy_in(value, parts)
        with self._os_errors("write", parts), self._txns.scope(record=False):
            if parts:
                self._write(parts, value)
            else:
                self._write_root(value)

    def delete(self, path: PurePosixPath | str) -> None:
        parts = to_parts(path)
        with self._os_errors("delete", parts), self._txns.scope(record=False):
            self._delete(parts)

    @contextmanager
    def transaction(self) -> Iterator[Self]:
        """Group writes and deletes into one atomic unit (nestable).

        Holds the directory's exclusive lock throughout, so it is isolated from other
        processes; every change is journaled first (``journal.py``), so a crash at any point
        leaves all of it or none. On an exception (KeyboardInterrupt included) every file and
        directory it touched is put back as it was, byte for byte, then the exception
        propagates.
        """
        with self._txns.scope(record=True):
            yield self

    @contextmanager
    def _os_errors(self, verb: str, parts: Parts) -> Iterator[None]:
        """An OSError (a racing process, a permission, something planted in the way) becomes
        a BackendError -- still an OSError -- naming the path and the directory."""
        try:
            yield
        except BackendError:
            raise
        except OSError as exc:
            at = parts_to_str(parts) if parts else "/"
            raise BackendError(
                f"cannot {verb} {at!r} in {str(self.base_dir)!r}: {exc.strerror or exc} "
                f"({exc.filename or 'the directory'}); check that nothing foreign (a directory, "
                f"a file without write permission) stands where restate keeps that value"
            ) from exc

    def exists(self, path: PurePosixPath | str) -> bool:
        """Whether ``read(path, MISSING)`` finds a node, from names and file types: no value
        below ``path`` is parsed, a directory scan stops at its first value (a directory
        without values reads as missing). A corrupt value file exists (``read`` raises)."""
        parts = to_parts(path)
        with self._lock, self._txns.locked(exclusive=False):
            return probe.exists(self._reader, parts)

    def _occupied(self, path: PurePosixPath | str, ignore: frozenset[str] = frozenset()) -> bool:
        parts = to_parts(path)
        with self._lock, self._txns.locked(exclusive=False):
            return probe.occupied(self._reader, parts, ignore)

    def check_value(self, path: PurePosixPath | str, value: Any) -> None:
        """Raise what ``write(path, value)`` would raise for the value itself (bad keys,
        SerializationError), without touching the disk. Used by wrapping backends."""
        parts = to_parts(path)
        self.serializer.dump_bytes(copy_in(value, parts), parts_to_str(parts))

    # names
    def _enc(self, key: str) -> str:
        name = self._encoded.get(key)
        if name is None:
            if len(self._encoded) > 50_000:
                self._encoded.clear()
            name = self._encoded[key] = names.encode_name(key, self.serializer.extension)
        return name

    # files
    def _open_base(self) -> int:
        base = str(self.base_dir)
        try:
            fd = self._fds.open(base, DIR_FLAGS)
        except FileNotFoundError:
            os.makedirs(base, exist_ok=True)
            fd = self._fds.open(base, DIR_FLAGS)
        self._rels[fd] = ()
        return fd

    def _sub(self, parent: int, name: str) -> int | None:
        fd = open_dir(self._fds, parent, name)
        if fd is not None:
            self._rels[fd] = (*self._rels[parent], name)
        return fd

    def _unlink(self, parent: int, name: str) -> bool:
        self._txns.note(parent, name)
        return unlink_at(parent, name)

    def _is_dir(self, parent: int, name: str) -> bool:
        try:
            return stat.S_ISDIR(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            return False

    def _store(self, parent: int, name: str, data: bytes) -> None:
        self._txns.note(parent, name)
        write_atomic(self._fds, parent, name, data, self.durable)

    # write
    def _walk(self, parts: Parts) -> tuple[list[int], Any]:
        """Open the existing directories above ``parts[-1]``; stop at a stored document.

        Returns the descriptors opened (base first) and the document found in the last one
        (``MISSING`` when none). Raises BackendError for a symlink or file in the way.
        """
        fds = [self._open_base()]
        try:
            for key in parts[:-1]:
                name = self._enc(key)
                doc = self._reader.load(fds[-1], name + self._ext)
                if doc is not MISSING:
                    return fds, doc
                try:
                    sub = self._fds.open(name, DIR_FLAGS, fds[-1])
                except FileNotFoundError:
                    break
                except OSError as exc:
                    at = parts_to_str(parts[: len(fds)])
                    raise BackendError(
                        f"cannot write {parts_to_str(parts)!r}: {at!r} is a symlink or a file "
                        f"that is not a {self._ext} document; restate never writes through them"
                    ) from exc
                self._rels[sub] = (*self._rels[fds[-1]], name)
                fds.append(sub)
            return fds, MISSING
        except BaseException:
            self._fds.close_all(fds)
            raise

    def _write(self, parts: Parts, value: Any) -> None:
        fds, doc = self._walk(parts)
        try:
            depth = len(fds) - 1
            if doc is not MISSING:
                self._write_in_doc(fds[-1], parts, depth, doc, value)
                return
            raw = self.serializer.dump_bytes(value, parts_to_str(parts))
            name = self._enc(parts[-1])
            has_dir = depth == len(parts) - 1 and self._is_dir(fds[-1], name)
            if has_dir or depth < len(parts) - 1 or names.is_hashed(name):
                self._txns.several_steps()
            for key in parts[depth:-1]:
                fds.append(self._make_dir(fds[-1], self._enc(key), key))
            if names.is_hashed(name):
                self._store(fds[-1], names.sidecar(name), key_bytes(parts[-1]))
            self._store(fds[-1], name + self._ext, raw)
            if has_dir:
                self._remove_tree(fds[-1], name)
        finally:
            self._fds.close_all(fds)

    def _write_in_doc(self, parent: int, parts: Parts, depth: int, doc: Any, value: Any) -> None:
        if type(doc) is not dict:
            raise PathConflictError(
                f"cannot write {parts_to_str(parts)!r}: {parts_to_str(parts[: depth + 1])!r} "
                f"holds a {type(doc).__name__} leaf, not a dict; delete it or write the dict first"
            )
        try:
            set_in(doc, parts[depth + 1 :], value)
        except PathConflictError:
            raise PathConflictError(
                f"cannot write {parts_to_str(parts)!r}: a leaf above it in the document "
                f"{parts_to_str(parts[: depth + 1])!r} is in the way; delete it or write the dict"
            ) from None
        at = parts_to_str(parts[: depth + 1])
        self._store(
            parent, self._enc(parts[depth]) + self._ext, self.serializer.dump_bytes(doc, at)
        )

    def _make_dir(self, parent: int, name: str, key: str) -> int:
        if names.is_hashed(name):
            self._store(parent, names.sidecar(name), key_bytes(key))
        self._txns.note(parent, name)
        try:
            os.mkdir(name, dir_fd=parent)
        except FileExistsError:
            pass
        if self.durable:
            os.fsync(parent)
        fd = self._fds.open(name, DIR_FLAGS, parent)
        self._rels[fd] = (*self._rels[parent], name)
        return fd

    def _write_root(self, value: Any) -> None:
        if type(value) is not dict:
            raise TypeError(f"the root must be a dict, not {type(value).__name__}")
        raws = {k: self.serializer.dump_bytes(v, "/" + k) for k, v in value.items()}
        self._txns.several_steps()
        fd = self._open_base()
        try:
            current = self._reader.load_dir(fd)
            for key in current.keys() - raws.keys():
                self._remove_node(fd, self._enc(key))
            for key, raw in raws.items():
                name = self._enc(key)
                if names.is_hashed(name):
                    self._store(fd, names.sidecar(name), key_bytes(key))
                self._store(fd, name + self._ext, raw)
                self._remove_tree(fd, name)
        finally:
            self._fds.close(fd)

    # delete
    def _delete(self, parts: Parts) -> None:
        if not parts:
            self._txns.several_steps()
            fd = self._open_base()
            try:
                self._clear_dir(fd)
            finally:
                self._fds.close(fd)
            return
        try:
            fds, doc = self._walk(parts)
        except BackendError:
            return  # a symlink or foreign file in the way: nothing of ours below it
        try:
            depth = len(fds) - 1
            if doc is not MISSING:
                if type(doc) is dict and delete_in(doc, parts[depth + 1 :]):
                    name = self._enc(parts[depth]) + self._ext
                    at = parts_to_str(parts[: depth + 1])
                    self._store(fds[-1], name, self.serializer.dump_bytes(doc, at))
                return
            if depth < len(parts) - 1:
                return
            name = self._enc(parts[-1])
            if self._is_dir(fds[-1], name) or any(names.is_hashed(self._enc(k)) for k in parts):
                self._txns.several_steps()  # a subtree, or key sidecars: more than one unlink
            if self._remove_node(fds[-1], name):
                self._prune(fds, parts)  # empty directories read as missing: no journal
        finally:
            self._fds.close_all(fds)

    def _remove_node(self, parent: int, name: str) -> bool:
        removed = self._unlink(parent, name + self._ext)
        removed = self._remove_tree(parent, name) or removed
        if names.is_hashed(name):
            self._unlink(parent, names.sidecar(name))
        if removed and self.durable:
            os.fsync(parent)
        return removed

    def _remove_tree(self, parent: int, name: str) -> bool:
        """Remove our files below directory ``name`` and the directories they leave empty.
        Foreign files (other extensions, hidden files, symlinks) stay."""
        fd = self._sub(parent, name)
        if fd is None:
            return False
        try:
            self._clear_dir(fd)
        finally:
            self._fds.close(fd)
        try:
            self._txns.note(parent, name)
            os.rmdir(name, dir_fd=parent)
        except OSError:
            pass
        return True

    def _clear_dir(self, fd: int) -> None:
        with os.scandir(fd) as it:
            entries = [
                (e.name, e.is_file(follow_symlinks=False), e.is_dir(follow_symlinks=False))
                for e in it
            ]
        for name, is_file, is_dir in entries:
            ours = name.startswith(TMP_PREFIX) or (name[0] == "." and name.endswith(".key"))
            if is_file and (ours or (name[0] != "." and name.endswith(self._ext))):
                self._unlink(fd, name)
            elif is_dir and name[0] != ".":
                self._remove_tree(fd, name)

    def _prune(self, fds: list[int], parts: Parts) -> None:
        for i in range(len(fds) - 1, 0, -1):
            name = self._enc(parts[i - 1])
            try:
                self._txns.note(fds[i - 1], name)
                os.rmdir(name, dir_fd=fds[i - 1])
            except OSError:
                return
            if names.is_hashed(name):
                self._unlink(fds[i - 1], names.sidecar(name))
