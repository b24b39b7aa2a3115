"""restate: storage-agnostic reactive state for Python.

State is one JSON-like tree addressed by paths. Writes notify subscribers (exact, ``*``
wildcards, bubbling to ancestors), derived values recompute glitch-free, ``track()`` re-runs
functions when what they read changes (now, deferred or lazily; loops between them refused,
failures marked; see ``restate._engine.scheduler``), batches are atomic; over any backend,
sync or async.
"""

from __future__ import annotations

from typing import Any

from ._engine.graph import DerivationInfo
from ._engine.tracking import TrackerInfo, Why
from .async_controller import ControllerAsync
from .atom import Atom
from .backends import AsyncBackend, Backend, InMemoryBackend
from .controller import ControllerSync
from .derived import DeriveData
from .errors import (
    BackendError,
    CallbackIdError,
    CycleError,
    InvalidPathError,
    PathConflictError,
    SerializationError,
    StateError,
)
from .events import StateChange, StateEvent
from .missing import MISSING
from .paths import ROOT_PATH
from .serializers import Serializer, json_serializer

__version__ = "0.12.0"

__all__ = [
    "MISSING",
    "ROOT_PATH",
    "AsyncBackend",
    "Atom",
    "Backend",
    "BackendError",
    "CachingAsyncBackend",
    "CachingSyncBackend",
    "CallbackIdError",
    "ControllerAsync",
    "ControllerSync",
    "CycleError",
    "DerivationInfo",
    "DeriveData",
    "FileSystemAsyncBackend",
    "FileSystemSyncBackend",
    "HybridAsyncBackend",
    "HybridSyncBackend",
    "InMemoryBackend",
    "InvalidPathError",
    "PathConflictError",
    "RedisAsyncBackend",
    "RedisBackend",
    "SQLiteBackend",
    "SerializationError",
    "Serializer",
    "StateChange",
    "StateError",
    "StateEvent",
    "TrackerInfo",
    "Why",
    "json_serializer",
]

_BACKENDS = {
    "CachingAsyncBackend",
    "CachingSyncBackend",
    "FileSystemAsyncBackend",
    "FileSystemSyncBackend",
    "HybridAsyncBackend",
    "HybridSyncBackend",
    "RedisAsyncBackend",
    "RedisBackend",
    "SQLiteBackend",
}


def __getattr__(name: str) -> Any:
    if name in _BACKENDS:
        from . import backends

        return getattr(backends, name)
    raise AttributeError(f"module 'restate' has no attribute {name!r}")
