"""restate_nb: reactive notebooks on restate (``%load_ext restate_nb``).

Importing this package imports neither IPython nor ipywidgets: the magics, tracked cells and
the ``state`` mapping are imported by ``load_ipython_extension``, ``StateTree`` on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .binding import bind, unbind
from .controller import _sessions, get_controller

if TYPE_CHECKING:
    from .tree_widget import StateTree

__all__ = [
    "StateTree",
    "bind",
    "get_controller",
    "load_ipython_extension",
    "unbind",
    "unload_ipython_extension",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext restate_nb``: register ``%restate``, put ``state`` in the namespace."""
    if id(ipython) in _sessions:
        return
    from .magics import RestateMagics
    from .session import Session

    session = Session(ipython, get_controller())
    session.start()
    ipython.register_magics(RestateMagics(ipython, session))
    _sessions[id(ipython)] = session


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext restate_nb``: remove the magics, ``state``, event hooks and trackers."""
    session = _sessions.pop(id(ipython), None)
    if session is None:
        return
    session.stop()
    manager = ipython.magics_manager
    for kind in ("line", "cell"):
        manager.magics[kind].pop("restate", None)
    manager.registry.pop("RestateMagics", None)


def __getattr__(name: str) -> Any:
    if name == "StateTree":
        from .tree_widget import StateTree

        return StateTree
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
