"""The file backend's inter-process lock: ``fcntl.flock`` on ``.restate.lock`` in the root.

Writers (every write, delete and transaction) hold it exclusively, readers shared, so
``update()`` and ``batch()`` are atomic and isolated across processes that share a
directory, and a reader never sees half of another process's batch. The lock is re-entrant
per backend (a depth count; callers serialise on the backend's own thread lock).

Taking the lock is also when a killed process's half-done batch is undone (``journal.py``):
whoever holds the lock knows no live process is inside a batch, so a journal found then was
left by a dead one.

Where ``flock`` is unavailable (no ``fcntl`` module, as on Windows, or a filesystem that
answers ENOLCK / EOPNOTSUPP, as some network mounts do) the backend warns once and goes on
without it: batches stay all-or-nothing across crashes, but only one process may use the
directory at a time.
"""

from __future__ import annotations

import errno
import os
import stat
import warnings
from collections.abc import Callable

from ...errors import BackendError
from .descriptors import Descriptors
from .fileio import _CLOEXEC

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "DirLock"]

LOCK_NAME = ".restate.lock"
_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC
_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


class DirLock:
    """``acquire(exclusive)`` / ``release()``; ``on_first(exclusive)`` runs when the lock is
    newly taken (the backend recovers there)."""

    def __init__(self, fds: Descriptors, open_root: Callable[[], int], where: str) -> None:
        self._fds = fds  # the backend's: the root and the lock file are opened there
        self._open_root = open_root
        self._where = where
        self._fd: int | None = None
        self._depth = 0
        self._exclusive = False
        self.available = fcntl is not None

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def exclusive(self) -> bool:
        return self._exclusive

    def acquire(self, exclusive: bool) -> bool:
        """Take the lock (blocking); True when this call took it, False when already held."""
        if self._depth:
            if exclusive and not self._exclusive:
                raise BackendError(f"cannot write to {self._where!r} while reading it")
            self._depth += 1
            return False
        # Counted before it is taken: an interrupt in between leaves a count that the
        # caller's release_to() gives back (unlocking a lock not taken is harmless); the
        # other order left a lock taken that no count accounted for, held for good.
        self._depth, self._exclusive = 1, exclusive
        self._flock(exclusive)
        return True

    def release(self) -> None:
        self.release_to(self._depth - 1)

    def release_to(self, depth: int) -> None:
        """Give up the holds taken above ``depth`` (unlocking at 0). Idempotent, so a clean-up
        interrupted half way can run again."""
        if self._depth <= depth:
            return
        if depth == 0 and self._fd is not None and self.available:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._depth = depth

    def upgrade(self) -> None:
        """Hold the lock exclusively (the caller holds it once, shared)."""
        self._flock(True)
        self._exclusive = True

    def downgrade(self) -> None:
        self._flock(False)
        self._exclusive = False

    def close(self) -> None:
        if self._fd is not None:
            self._fds.adopt(self._fd)  # an interrupt from here on leaves it to fds.sweep()
            fd, self._fd = self._fd, None  # forgotten first: never a closed fd kept
            self._fds.close(fd)
        self._depth = 0

    def _flock(self, exclusive: bool) -> None:
        if not self.available:
            return
        fd = self._fd if self._fd is not None else self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                raise
            self.available = False
            warnings.warn(
                f"{self._where!r} does not support file locks ({exc}); restate goes on without "
                f"them: use this directory from one process at a time",
                RuntimeWarning,
                stacklevel=4,
            )

    def _open(self) -> int:
        root = self._open_root()
        try:
            for _ in range(3):
                try:
                    fd = self._fds.open(LOCK_NAME, _FLAGS, root, 0o666)
                except OSError as exc:
                    if exc.errno == errno.EISDIR:
                        raise self._in_the_way() from None
                    if exc.errno != errno.ELOOP:
                        raise
                    os.unlink(LOCK_NAME, dir_fd=root)  # a planted symlink: remove the name
                    continue
                if stat.S_ISREG(os.fstat(fd).st_mode):
                    self._fd = self._fds.keep(fd)
                    return fd
                self._fds.close(fd)  # a FIFO or device planted under our name
                os.unlink(LOCK_NAME, dir_fd=root)
            raise self._in_the_way()
        finally:
            self._fds.close(root)

    def _in_the_way(self) -> BackendError:
        return BackendError(
            f"cannot lock {self._where!r}: {LOCK_NAME!r} there is not a regular file; restate "
            f"keeps its lock under that name: remove what is there"
        )
