"""The file backend: one file per written value below a root directory.

``backend.py`` is the store, ``fileio.py`` the descriptor-relative file operations,
``names.py`` the reversible encoding of keys into file names, ``probe.py`` the existence
probes that read no subtree.
"""

from __future__ import annotations

from .backend import FileSystemAsyncBackend, FileSystemSyncBackend

__all__ = ["FileSystemAsyncBackend", "FileSystemSyncBackend"]
