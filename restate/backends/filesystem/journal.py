"""The file backend's undo journal: what makes a batch all-or-nothing across crashes.

Design (an undo log, the classic write-ahead rule applied to pre-images):

1. A transaction holds the directory's exclusive lock (``lock.py``) from start to end.
2. Before the transaction changes a name below the root for the first time (a file
   replaced or removed, a directory made or removed), the journal file ``.restate.journal``
   in the root gets a record of what that name held: the file's bytes, "a directory", or
   "nothing". The record is written *before* the change is made.
3. Commit = unlinking the journal (then, with ``durable=True``, fsyncing the root). That
   single unlink is the commit point: before it the batch can be undone completely, after
   it there is nothing to undo.
4. Rollback (an exception, including KeyboardInterrupt) and recovery (the next process to
   take the lock finds a journal left by a killed one) both undo the records newest first
   and then unlink the journal. Undoing is idempotent, so a crash during an undo is finished
   by the next recovery.

When the record must be on disk (process crash vs power loss):

- A process crash (SIGKILL, an exception that kills the interpreter) loses nothing already
  handed to the kernel with ``write``: the page cache outlives the process, and every other
  process sees the writes in the order they were made. So a record written (not fsynced)
  before its change is enough for all-or-nothing across process crashes.
- An OS crash or power loss can drop or reorder unsynced writes. With ``durable=True`` every
  record is fsynced before its change (and the root after the journal is created and after
  it is unlinked), so batches are all-or-nothing across power loss too. With
  ``durable=False`` (the default) the value files are not fsynced either, so no promise is
  made for power loss: after one, a batch may be partly applied and recent writes lost.

Single-step writes need no journal: a plain ``write``/``delete`` that is one atomic rename
or unlink (a leaf file replaced or created, no directory removed or made, no key sidecar)
opens a level with ``record=False``; the backend calls ``record()`` before the first change
only when it finds the operation takes several steps. A level nested in a recording one
always records.

Records are ``kind, len(rel), len(data), rel, data, crc32``; a torn last record (the
process died while appending it) fails its checksum and is ignored -- its change had not
been made, since a record is complete before its change starts. ``rel`` is the list
of names from the root, so undo walks descriptors from the root (``fileio.restore``) and
never follows a symlink planted meanwhile.

Nested transactions append their own records (a name touched again by an inner level is
recorded again, with the inner level's starting content); an inner rollback undoes its
records and truncates the journal back to where the inner level began.
"""

from __future__ import annotations

import contextlib
import os
import stat
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ...errors import BackendError
from .descriptors import Descriptors
from .fileio import _CLOEXEC, DIR, PreImage, read_bytes, restore

__all__ = ["JOURNAL_NAME", "Journal", "Rel", "has_journal", "recover"]

JOURNAL_NAME = ".restate.journal"
_MAGIC = b"RSJ1\n"
_HEAD = struct.Struct(">BII")
_CRC = struct.Struct(">I")
_KINDS = {0: None, 1: DIR, 2: b""}  # nothing, a directory, a file (its bytes follow)
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC

Rel = tuple[str, ...]


@dataclass
class _Level:
    count: int  # records before this level began
    offset: int  # journal size before this level began
    recording: bool = True  # False: a single-step change, nothing to journal
    seen: set[Rel] = field(default_factory=set)
    held: int = 0  # the directory lock's depth before this level took it
    scoped: bool = True  # opened by a ``with`` scope holding the backend's thread lock


class Journal:
    """The records of the transaction in progress (one per backend instance)."""

    def __init__(
        self, fds: Descriptors, open_root: Callable[[], int], durable: bool = False
    ) -> None:
        self._fds = fds  # the backend's: ``open_root`` opens there, so closes go there
        self._open_root = open_root
        self._durable = durable  # also fsync the root after creating and unlinking
        self.records: list[tuple[Rel, PreImage]] = []
        self._levels: list[_Level] = []
        self._fd: int | None = None
        self._size = 0

    @property
    def active(self) -> bool:
        return bool(self._levels)

    @property
    def depth(self) -> int:
        """How many levels are open; the next ``begin()`` opens level ``depth``."""
        return len(self._levels)

    def begin(self, record: bool = True, held: int = 0, scoped: bool = True) -> None:
        """Open a level; ``record=False`` journals nothing until ``record()`` (inside a
        recording level it records anyway). ``held``/``scoped``: see ``_Level``."""
        recording = record or (bool(self._levels) and self._levels[-1].recording)
        self._levels.append(_Level(len(self.records), self._size, recording, set(), held, scoped))

    def first_scoped(self) -> tuple[int, int] | None:
        """The lowest level opened by a scope, and the lock depth before it; None if none."""
        for depth, level in enumerate(self._levels):
            if level.scoped:
                return depth, level.held
        return None

    @property
    def recording(self) -> bool:
        return bool(self._levels) and self._levels[-1].recording

    def record(self) -> None:
        """Journal this level's changes from now on (call before its first change)."""
        self._levels[-1].recording = True

    def note(self, rel: Rel, pre: Callable[[], PreImage]) -> None:
        """Record what ``rel`` holds (``pre()``) before its first change in this level."""
        level = self._levels[-1]
        if not level.recording or rel in level.seen:
            return
        image = pre()
        self._append(_encode(rel, image))
        level.seen.add(rel)
        self.records.append((rel, image))

    def commit(self, depth: int) -> None:
        """Commit level ``depth`` (and any left open above it); nothing if already ended."""
        if len(self._levels) <= depth:
            return
        del self._levels[depth + 1 :]
        level = self._levels[depth]
        if depth:
            self._levels[depth - 1].seen |= level.seen
        else:
            self._finish()
        del self._levels[depth:]

    def rollback(self, depth: int, durable: bool) -> None:
        """Undo level ``depth``'s records (and those of levels above it) newest first, then
        forget them; nothing if already ended. Resumable: a record is dropped only once
        undone, so calling it again after an interruption finishes it."""
        if len(self._levels) <= depth:
            return
        level = self._levels[depth]
        if self.records and len(self.records) > level.count:
            root = self._open_root()
            try:
                while len(self.records) > level.count:
                    rel, image = self.records[-1]
                    restore(self._fds, root, rel, image, durable)
                    self.records.pop()
            finally:
                self._fds.close(root)
        if depth:
            self._truncate(level.offset)
        else:
            self._finish()
        del self._levels[depth:]

    def _append(self, record: bytes) -> None:
        root = None
        if self._fd is None:
            root = self._open_root()
            self._fd = _create(root)
            self._size = _write(self._fd, _MAGIC)
        self._size += _write(self._fd, record)
        if self._durable:  # power loss: the record is on disk before the change it allows
            os.fsync(self._fd)
            if root is not None:
                os.fsync(root)  # ... and so is the journal's name
        if root is not None:
            self._fds.close(root)

    def _truncate(self, offset: int) -> None:
        if self._fd is not None and offset < self._size:
            os.ftruncate(self._fd, offset)
            os.lseek(self._fd, offset, os.SEEK_SET)
            if self._durable:
                os.fsync(self._fd)
            self._size = offset

    def _finish(self) -> None:
        """The commit point: the journal's name goes away (nothing left to undo). Idempotent:
        an interrupted call can run again."""
        if self._fd is not None:
            root = self._open_root()
            try:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(JOURNAL_NAME, dir_fd=root)
                if self._durable:
                    os.fsync(root)  # the commit survives power loss
            finally:
                self._fds.close(root)
            self._fds.adopt(self._fd)  # an interrupt from here on leaves it to fds.sweep()
            fd, self._fd, self._size = self._fd, None, 0
            self._fds.close(fd)
        self.records.clear()


def has_journal(root: int) -> bool:
    """Whether something stands under the journal's name in ``root`` (one ``stat``)."""
    try:
        os.stat(JOURNAL_NAME, dir_fd=root, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def recover(fds: Descriptors, root: int, durable: bool) -> int:
    """Undo the batch a killed process left in ``root`` (call with the exclusive lock held);
    returns how many records were undone. Something else planted under the journal's name
    (a symlink, a directory) is removed as a name, never followed."""
    try:
        st = os.stat(JOURNAL_NAME, dir_fd=root, follow_symlinks=False)
    except FileNotFoundError:
        return 0
    if stat.S_ISDIR(st.st_mode):
        raise _in_the_way()
    raw = read_bytes(fds, root, JOURNAL_NAME)
    records = _decode(raw) if raw is not None else []
    for rel, image in reversed(records):
        restore(fds, root, rel, image, durable)
    os.unlink(JOURNAL_NAME, dir_fd=root)
    if durable:
        os.fsync(root)
    return len(records)


def _create(root: int) -> int:
    try:
        return os.open(JOURNAL_NAME, _FLAGS, 0o600, dir_fd=root)
    except FileExistsError:
        pass  # a plant (we hold the lock and recovered): remove the name, never follow it
    try:
        os.unlink(JOURNAL_NAME, dir_fd=root)
    except IsADirectoryError:
        raise _in_the_way() from None
    return os.open(JOURNAL_NAME, _FLAGS, 0o600, dir_fd=root)


def _in_the_way() -> BackendError:
    return BackendError(
        f"a directory named {JOURNAL_NAME!r} is in the state directory; restate keeps its "
        f"journal under that name: remove that directory"
    )


def _write(fd: int, data: bytes) -> int:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    return len(data)


def _encode(rel: Sequence[str], image: PreImage) -> bytes:
    rel_bytes = "/".join(rel).encode("utf-8", "surrogateescape")
    kind, data = (0, b"") if image is None else (1, b"") if isinstance(image, str) else (2, image)
    body = _HEAD.pack(kind, len(rel_bytes), len(data)) + rel_bytes + data
    return body + _CRC.pack(zlib.crc32(body))


def _decode(raw: bytes) -> list[tuple[Rel, PreImage]]:
    """The complete records of a journal; stops at a torn or corrupt one."""
    if not raw.startswith(_MAGIC):
        return []
    records: list[tuple[Rel, PreImage]] = []
    pos = len(_MAGIC)
    while pos + _HEAD.size <= len(raw):
        kind, n_rel, n_data = _HEAD.unpack_from(raw, pos)
        end = pos + _HEAD.size + n_rel + n_data
        if kind not in _KINDS or end + _CRC.size > len(raw):
            break
        (crc,) = _CRC.unpack_from(raw, end)
        if crc != zlib.crc32(raw[pos:end]):
            break
        start = pos + _HEAD.size
        rel = tuple(raw[start : start + n_rel].decode("utf-8", "surrogateescape").split("/"))
        data = raw[start + n_rel : end]
        records.append((rel, data if kind == 2 else _KINDS[kind]))
        pos = end + _CRC.size
    return records
