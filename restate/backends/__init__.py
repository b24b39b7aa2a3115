"""The storage backends. Optional ones (Redis) import their client library only when used."""

from __future__ import annotations

import importlib
from typing import Any

from .base import MISSING, AsyncBackend, Backend
from .memory import InMemoryBackend

__all__ = [
    "MISSING",
    "AsyncBackend",
    "Backend",
    "CachingAsyncBackend",
    "CachingSyncBackend",
    "FileSystemAsyncBackend",
    "FileSystemSyncBackend",
    "HybridAsyncBackend",
    "HybridSyncBackend",
    "InMemoryBackend",
    "RedisAsyncBackend",
    "RedisBackend",
    "SQLiteBackend",
]

_LAZY = {
    "FileSystemSyncBackend": "filesystem",
    "FileSystemAsyncBackend": "filesystem",
    "CachingSyncBackend": "caching",
    "CachingAsyncBackend": "caching",
    "HybridSyncBackend": "hybrid",
    "HybridAsyncBackend": "hybrid",
    "SQLiteBackend": "sqlite",
    "RedisBackend": "redis",
    "RedisAsyncBackend": "redis",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
