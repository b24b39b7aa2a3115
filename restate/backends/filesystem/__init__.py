"""The file backend: one file per written value below a root directory.

``backend.py`` is the store (``async_backend.py`` its async shell), ``journal.py`` and
``lock.py`` make its batches atomic across crashes and processes, ``fileio.py`` the
descriptor-relative file operations,
``names.py`` the reversible encoding of keys into file names, ``probe.py`` the existence
probes that read no subtree.
"""

from __future__ import annotations

from .async_backend import FileSystemAsyncBackend
from .backend import FileSystemSyncBackend

__all__ = ["FileSystemAsyncBackend", "FileSystemSyncBackend"]
