"""The Redis backend: the tree in Redis hashes, changes shared between processes by a stream.

``backend.py`` and ``async_backend.py`` are the sync and async stores, ``shell.py`` what they
share (clients, cluster detection, the lease renewer, the finaliser), ``core.py`` the sans-IO
protocol both drive, ``leases.py`` transactions (short renewed leases on paths),
``walk.py`` chunked reads of large subtrees, ``follower.py``, ``xread.py`` and ``cursor.py``
following the change stream, ``driving.py`` running the sans-IO operations (one loop for both
twins), ``scripts.py`` the Lua scripts, ``transaction.py`` the client-side overlay of a
transaction, ``codec.py`` how values and change lists are encoded. What a tree on Redis
guarantees is in docs/backends.md.
"""

from __future__ import annotations

from .async_backend import RedisAsyncBackend
from .backend import RedisBackend
from .cursor import RESYNCED

__all__ = ["RESYNCED", "RedisAsyncBackend", "RedisBackend"]
