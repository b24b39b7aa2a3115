"""``%restate backend KIND [ARG] [--copy | --open]``: move the notebook's state to a new store.

What happens to the two states involved (the current one, and what the target holds)::

    current state   target store   no flag                    --copy           --open
    -------------   ------------   ------------------------   --------------   -------------
    empty           empty          open it (nothing to move)  same             same
    empty           N keys         open it                    empties target   open it
    M keys          empty          copy the state into it     copy             open (empty)
    M keys          N keys         refuse, nothing changes    replace target   open it

Without a flag nothing is ever discarded: the only case that would lose data (both sides
hold something different) is refused with a message naming both choices. ``--copy`` writes
the current state over what the target holds; ``--open`` makes the target's content the
state (the old store is dropped; an in-memory one is gone). The copy is one batch on the
target, so a value the target cannot store (a ``set`` in SQLite) leaves the target as it
was and keeps the current store. After the switch tracked cells, derivations and bindings
react to the difference between the old and the new state (none after a copy).
"""

from __future__ import annotations

from typing import Any

from restate import ControllerSync
from restate.errors import StateError

__all__ = [
    "BACKENDS",
    "MODES",
    "SwitchRefused",
    "describe_backend",
    "make_backend",
    "prepare_switch",
]

BACKENDS = "memory | fs DIR | sqlite FILE | redis URL  [--copy | --open]"
MODES = ("auto", "copy", "open")
_FACTORIES = {"fs": "FileSystemSyncBackend", "sqlite": "SQLiteBackend", "redis": "RedisBackend"}
_ARG_NAMES = {"fs": "DIR", "sqlite": "FILE", "redis": "URL"}


class SwitchRefused(StateError):
    """Both the current state and the target store hold data, and no flag said which wins."""


def make_backend(kind: str, argument: str | None) -> Any:
    """The backend for ``%restate backend KIND [ARG]``.

    Raises:
        ValueError: unknown KIND or a missing/extra argument (the message is the usage line).
    """
    import restate

    if kind == "memory" and argument is None:
        return restate.InMemoryBackend()
    if kind in _FACTORIES and argument:
        return getattr(restate, _FACTORIES[kind])(argument)
    raise ValueError(f"%restate backend {BACKENDS}")


def describe_backend(kind: str, argument: str | None) -> str:
    return f"{kind} {argument}" if argument else "a new in-memory store"


def prepare_switch(controller: Any, backend: Any, mode: str, name: str) -> str:
    """Decide as ``mode`` says, copy the state into ``backend`` when that is the choice, and
    return the line saying what happened; the caller then calls
    ``controller.set_backend(backend)``.

    Raises:
        SwitchRefused: ``mode`` is ``auto`` and both sides hold different data.
        SerializationError: (``copy``) the target cannot store a value; nothing changed.
    """
    ours = _plain(controller.get_state("/", {}))
    theirs = _content(backend)
    if mode == "auto":
        mode = _choose(ours, theirs, name, _flags_hint(controller, name))
    if mode == "copy":
        _copy_into(backend, ours)
        line = f"copied the current state, {_keys(ours)}, into {name}"
        if theirs and theirs != ours:
            line += f", replacing the {_keys(theirs)} it held"
        elif not theirs and ours:
            line += " (add --open to start from the empty store instead)"
    else:
        line = f"opened {name}, " + (
            f"an existing store with {_keys(theirs)}" if theirs else "an empty store"
        )
        if ours and ours != theirs:
            line += f"; the previous state, {_keys(ours)}, was left behind"
    return line


def _choose(ours: dict[str, Any], theirs: dict[str, Any], name: str, hint: str) -> str:
    if not ours or ours == theirs:
        return "open"
    if not theirs:
        return "copy"
    raise SwitchRefused(
        f"{name} already holds {_keys(theirs)} and the current state holds {_keys(ours)}; "
        f"nothing changed. {hint}"
    )


def _flags_hint(controller: Any, name: str) -> str:
    old = type(controller.backend).__name__
    return (
        f"Add --open to use what {name} holds (the current state stays in the old {old}, "
        f"which is dropped), or --copy to replace what it holds with the current state."
    )


def _content(backend: Any) -> dict[str, Any]:
    probe = ControllerSync(backend)
    try:
        return _plain(probe.get_state("/", {}))
    finally:
        probe.close()


def _copy_into(backend: Any, state: dict[str, Any]) -> None:
    """Replace the whole content of ``backend`` by ``state``, in one batch (all or nothing)."""
    target = ControllerSync(backend)
    try:
        with target.batch():
            target.set_state("/", state)
    finally:
        target.close()


def _plain(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _keys(tree: dict[str, Any]) -> str:
    keys = sorted(tree)
    shown = ", ".join(keys[:5]) + (", …" if len(keys) > 5 else "")
    noun = "key" if len(keys) == 1 else "keys"
    return f"{len(keys)} top-level {noun} ({shown})" if keys else "nothing"
