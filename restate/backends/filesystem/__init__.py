"""The file backend: one file per written value below a root directory.

``backend.py`` is the store and its writes (``async_backend.py`` its async shell),
``reading.py`` its reads, ``transactions.py`` its transactions, built on ``journal.py`` and
``lock.py``, which make batches atomic across crashes and processes; ``fileio.py`` holds the
descriptor-relative file operations,
``names.py`` the reversible encoding of keys into file names, ``probe.py`` the existence
probes that read no subtree.
"""

from __future__ import annotations

from .async_backend import FileSystemAsyncBackend
from .backend import FileSystemSyncBackend

__all__ = ["FileSystemAsyncBackend", "FileSystemSyncBackend"]
