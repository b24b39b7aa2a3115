"""The exceptions restate raises (docs/semantics.md#errors)."""

from __future__ import annotations

__all__ = [
    "BackendError",
    "CallbackIdError",
    "CycleError",
    "InvalidPathError",
    "PathConflictError",
    "SerializationError",
    "StaleReadError",
    "StateError",
]


class StateError(Exception):
    """Base class of every error restate raises on purpose."""


class InvalidPathError(StateError, ValueError):
    """A path or a dict key is not valid: ``..``, NUL, a misplaced ``*``, an empty key."""


class PathConflictError(StateError, ValueError):
    """A write below a leaf: the leaf would have to become a dict."""


class CycleError(StateError, RuntimeError):
    """A derivation that depends on itself, or callbacks that keep re-triggering each other."""


class SerializationError(StateError, TypeError):
    """A value the backend's serializer cannot store (raised before anything changes)."""


class CallbackIdError(StateError, ValueError):
    """A callback id that is already taken by another callback, or that is not registered."""


class BackendError(StateError, OSError):
    """A backend cannot reach or use its storage (an unreachable server, a lost connection)."""


class StaleReadError(BackendError):
    """An optimistic transaction's commit found a value it had read changed by another client;
    nothing was written. ``update()`` catches it and runs its function again under leases
    (see ``transaction(optimistic=True)`` in ``restate/backends/base.py``)."""
