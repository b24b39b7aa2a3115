"""The file descriptors a file backend opens for one operation, so one an interrupt cut
loose is closed later instead of leaking.

KeyboardInterrupt can land on any line: after an ``os.open`` and before the ``try`` whose
``finally`` closes it, or on that ``finally``'s first line. So every descriptor an operation
opens is registered on the line that opens it and unregistered on the line that closes it
(no line, hence no interrupt point, in between); whatever is still registered when no
operation of the backend runs -- ``sweep()`` from ``FileTransactions.heal()``, which holds
the backend's thread lock once, and from ``close()`` -- was cut loose and is closed then.

Long-lived descriptors that outlive an operation (the directory lock's, the journal's) are
owned by their objects instead: opened here, handed over with ``keep()``, and handed back
with ``adopt()`` just before their owner closes them.
"""

from __future__ import annotations

import os

__all__ = ["Descriptors"]


class Descriptors:
    """``open`` / ``close`` for an operation's descriptors, and ``sweep`` for the lost ones."""

    def __init__(self) -> None:
        self._open: dict[int, int] = {}

    def open(self, path: str, flags: int, dir_fd: int | None = None, mode: int = 0o777) -> int:
        """``os.open`` and register the descriptor on one line."""
        self._open.setdefault(fd := os.open(path, flags, mode, dir_fd=dir_fd), fd)
        return fd

    def close(self, fd: int) -> None:
        """Unregister and ``os.close`` on one line (forgotten first: at worst a descriptor is
        left open, never closed twice -- its number may belong to someone else by then)."""
        os.close(self._open.pop(fd))

    def keep(self, fd: int) -> int:
        """Unregister ``fd`` as a long-lived owner takes it (``owner.fd = fds.keep(fd)``: no
        interrupt point between the two)."""
        return self._open.pop(fd)

    def adopt(self, fd: int) -> None:
        """Register an owner's ``fd`` again just before it is closed: an interrupt between
        the owner forgetting it and ``close()`` leaves it to ``sweep()``."""
        self._open[fd] = fd

    def close_all(self, fds: list[int]) -> None:
        for fd in reversed(fds):
            self.close(fd)

    def sweep(self) -> None:
        """Close what an interrupt left open (call when no operation is running)."""
        while self._open:
            try:
                os.close(self._open.popitem()[1])
            except OSError:
                pass  # closed behind our back: nothing left to do

    def __len__(self) -> int:
        return len(self._open)
