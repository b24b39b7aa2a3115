"""Transactions of the file backend: the journal (``journal.py``) under the directory lock
(``lock.py``). A part of ``FileSystemSyncBackend`` (``backend.py``: its ``_txns``), split out
so each module keeps one responsibility.

A batch (``backend.transaction()``) journals every change before making it. A plain
``write`` or ``delete`` opens a non-recording level (``scope(record=False)``) and turns the
journal on with ``several_steps()`` before its first change only when it takes more than
one rename or unlink; a single rename or unlink is atomic by itself.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .._interrupts import finish
from .descriptors import Descriptors
from .fileio import pre_image
from .journal import JOURNAL_NAME, Journal, Rel, has_journal
from .journal import recover as recover_dir
from .lock import DirLock

__all__ = ["FileTransactions"]


class FileTransactions:
    """Locking, journaling, commit, rollback and recovery for ``FileSystemSyncBackend``.

    Args:
        base_dir: the root; ``open_base()`` opens it.
        lock: the backend's lock (threads of one process).
        fds: the backend's ``Descriptors``: an operation's descriptors are opened there,
            and those an interrupt left open are closed by ``heal()``.
        rels: the backend's open directory descriptors -> their names below the root
            (``note`` journals by those names).
        durable: fsync the journal and what a rollback puts back.
    """

    def __init__(
        self,
        base_dir: str,
        fds: Descriptors,
        open_base: Callable[[], int],
        lock: threading.RLock,
        rels: dict[int, Rel],
        durable: bool,
    ) -> None:
        self.fds = fds
        self.open_base = open_base
        self.lock = lock
        self.rels = rels
        self.durable = durable
        self.journal = Journal(fds, open_base, durable)
        self.journal_path = os.path.join(base_dir, JOURNAL_NAME)
        self.dirlock = DirLock(fds, open_base, base_dir)

    # transactions: the journal (journal.py) under the directory lock (lock.py)
    def note(self, parent: int, name: str) -> None:
        """Journal what ``name`` holds before it changes (every change goes through here)."""
        self.journal.note((*self.rels[parent], name), lambda: pre_image(self.fds, parent, name))

    @contextmanager
    def locked(self, exclusive: bool) -> Iterator[None]:
        """Hold the directory lock; the first holder undoes what a killed process left."""
        self.heal()
        depth = self.dirlock.depth
        # One try from the acquire to the yield: with two, a KeyboardInterrupt landing on
        # the second ``try:`` (after the acquire, outside both) kept the lock held for good,
        # and every other process waited on it (tests/interrupt_points.py found it).
        try:
            if self.dirlock.acquire(exclusive):
                self.recover()
            yield
        finally:
            self.dirlock.release_to(depth)

    def heal(self) -> None:
        """Undo what an interrupt made us lose track of (call holding the thread lock once).

        A KeyboardInterrupt landing on the first bytecode of an ``except`` or ``finally``
        block, or of a ``with`` statement's exit, skips that clean-up: a journal level stays
        open (every later write would join a batch that never ends) or a hold of the
        directory lock stays counted (other processes would wait for it forever). A scope
        holds the thread lock from its start to its end, so when this thread holds it only
        once -- the caller's hold -- no scope is running: a level a scope opened that is still
        open was lost, and so was any hold of the lock no level accounts for. Roll those back
        now, before the operation that found them."""
        count = getattr(self.lock, "_recursion_count", None)
        if count is None or count() != 1:
            return  # inside a scope of ours (or no way to tell): nothing was lost
        lost = self.journal.first_scoped()
        if lost is not None:
            level, held = lost
            finish(lambda: self.journal.rollback(level, self.durable))
            self.dirlock.release_to(held)
        elif not self.journal.active:
            self.dirlock.release_to(0)
        if self.fds:  # descriptors no running operation holds: cut loose by an interrupt
            self.fds.sweep()

    def recover(self) -> None:
        # Every lock taken asks this; a stat by path (the same lookup as opening the root)
        # keeps the common answer, "no journal", to one system call.
        if not os.path.lexists(self.journal_path):
            return
        fd = self.open_base()
        try:
            if not has_journal(fd):
                return
            exclusive = self.dirlock.exclusive
            if not exclusive:
                self.dirlock.upgrade()
            try:
                recover_dir(self.fds, fd, self.durable)
            finally:
                if not exclusive:
                    self.dirlock.downgrade()
        finally:
            self.fds.close(fd)

    @contextmanager
    def scope(self, record: bool) -> Iterator[None]:
        """One level of transaction. ``record=True``: a batch, every change journaled;
        ``record=False``: a plain write or delete, journaled only once it calls
        ``several_steps()`` (before its first change)."""
        with self.lock:
            self.heal()
            level, held = self.journal.depth, self.dirlock.depth
            try:
                self.begin(record, scoped=True)
                yield
                self.end(level, held, rollback=False)
            except BaseException:
                self.end(level, held, rollback=True)
                raise

    def begin(self, record: bool = True, scoped: bool = False) -> None:
        """Open a journal level under the exclusive lock. ``scoped``: called by ``scope()``,
        which holds the thread lock until the level ends (the async backend's levels span
        worker threads: they are not, and ``heal()`` leaves them alone)."""
        with self.lock:
            depth = self.dirlock.depth
            try:
                if self.dirlock.acquire(exclusive=True):
                    self.recover()
                self.journal.begin(record, depth, scoped)
            except BaseException:
                self.dirlock.release_to(depth)
                raise

    def end(self, level: int, held: int, rollback: bool) -> None:
        """Commit or roll back journal level ``level``, then give the lock back down to
        ``held``. Idempotent (a level already ended is left alone), so an interrupted end can
        be repeated; a failed commit rolls back; a rollback runs through interrupts."""
        with self.lock:
            try:
                if not rollback:
                    try:
                        self.journal.commit(level)
                        return
                    except BaseException:
                        finish(lambda: self.journal.rollback(level, self.durable))
                        raise
                finish(lambda: self.journal.rollback(level, self.durable))
            finally:
                self.dirlock.release_to(held)

    def several_steps(self) -> None:
        """The change in progress takes more than one rename or unlink: journal it (a no-op
        inside a batch, which journals everything)."""
        if not self.journal.recording:
            self.journal.record()
