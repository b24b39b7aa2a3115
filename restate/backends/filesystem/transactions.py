"""Transactions of the file backend: the journal (``journal.py``) under the directory lock
(``lock.py``). A mixin of ``FileSystemSyncBackend`` (``backend.py``), which owns the state
declared here; split out so each module keeps one responsibility.

A batch (``transaction()``) journals every change before making it. A plain ``write`` or
``delete`` opens a non-recording level (``_transaction(record=False)``) and turns the journal
on with ``_several_steps()`` before its first change only when it takes more than one rename
or unlink; a single rename or unlink is atomic by itself.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Self

from .._interrupts import finish
from .fileio import pre_image
from .journal import Journal, Rel, has_journal, recover
from .lock import DirLock

__all__ = ["FileTransactions"]


class FileTransactions:
    """Locking, journaling, commit, rollback and recovery for ``FileSystemSyncBackend``."""

    durable: bool
    _lock: threading.RLock
    _journal: Journal
    _dirlock: DirLock
    _journal_path: str
    _rels: dict[int, Rel]  # open directory descriptor -> names below the root

    def _open_base(self) -> int:
        raise NotImplementedError

    # transactions: the journal (journal.py) under the directory lock (lock.py)
    def _note(self, parent: int, name: str) -> None:
        """Journal what ``name`` holds before it changes (every change goes through here)."""
        self._journal.note((*self._rels[parent], name), lambda: pre_image(parent, name))

    @contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        """Hold the directory lock; the first holder undoes what a killed process left."""
        depth = self._dirlock.depth
        try:
            if self._dirlock.acquire(exclusive):
                self._recover()
        except BaseException:
            self._dirlock.release_to(depth)
            raise
        try:
            yield
        finally:
            self._dirlock.release_to(depth)

    def _recover(self) -> None:
        # Every lock taken asks this; a stat by path (the same lookup as opening the root)
        # keeps the common answer, "no journal", to one system call.
        if not os.path.lexists(self._journal_path):
            return
        fd = self._open_base()
        try:
            if not has_journal(fd):
                return
            exclusive = self._dirlock.exclusive
            if not exclusive:
                self._dirlock.upgrade()
            try:
                recover(fd, self.durable)
            finally:
                if not exclusive:
                    self._dirlock.downgrade()
        finally:
            os.close(fd)

    @contextmanager
    def transaction(self) -> Iterator[Self]:
        """Group writes and deletes into one atomic unit (nestable).

        Holds the directory's exclusive lock throughout, so it is isolated from other
        processes; every change is journaled first (``journal.py``), so a crash at any point
        leaves all of it or none. On an exception (KeyboardInterrupt included) every file and
        directory it touched is put back as it was, byte for byte, then the exception
        propagates.
        """
        with self._transaction(record=True):
            yield self

    @contextmanager
    def _transaction(self, record: bool) -> Iterator[Self]:
        """``record=False``: a plain write or delete, journaled only once it calls
        ``_several_steps()`` (before its first change)."""
        with self._lock:
            level, held = self._journal.depth, self._dirlock.depth
            try:
                self._begin(record)
                yield self
                self._end(level, held, rollback=False)
            except BaseException:
                self._end(level, held, rollback=True)
                raise

    def _begin(self, record: bool = True) -> None:
        with self._lock:
            depth = self._dirlock.depth
            try:
                if self._dirlock.acquire(exclusive=True):
                    self._recover()
                self._journal.begin(record)
            except BaseException:
                self._dirlock.release_to(depth)
                raise

    def _end(self, level: int, held: int, rollback: bool) -> None:
        """Commit or roll back journal level ``level``, then give the lock back down to
        ``held``. Idempotent (a level already ended is left alone), so an interrupted end can
        be repeated; a failed commit rolls back; a rollback runs through interrupts."""
        with self._lock:
            try:
                if not rollback:
                    try:
                        self._journal.commit(level)
                        return
                    except BaseException:
                        finish(lambda: self._journal.rollback(level, self.durable))
                        raise
                finish(lambda: self._journal.rollback(level, self.durable))
            finally:
                self._dirlock.release_to(held)

    def _several_steps(self) -> None:
        """The change in progress takes more than one rename or unlink: journal it (a no-op
        inside a batch, which journals everything)."""
        if not self._journal.recording:
            self._journal.record()
