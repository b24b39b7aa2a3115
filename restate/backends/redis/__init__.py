"""The Redis backend: the tree in Redis hashes, changes shared between processes by a stream.

``backend.py`` is the sync and async store, ``core.py`` the sans-IO protocol both drive,
``scripts.py`` the Lua scripts, ``transaction.py`` the client-side overlay of a transaction,
``codec.py`` how values and change lists are encoded.
"""

from __future__ import annotations

from .async_backend import RedisAsyncBackend
from .backend import RedisBackend

__all__ = ["RedisAsyncBackend", "RedisBackend"]
