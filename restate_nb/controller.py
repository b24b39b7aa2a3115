"""The notebook's default controller, shared by the magics, ``state``, bindings and trees."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from restate import ControllerSync

if TYPE_CHECKING:
    from .session import Session

__all__ = ["get_controller"]

# The extension's session of each IPython shell (by id), kept here rather than in the package
# __init__ so that lower modules (tree_widget) can reach it without importing the package.
_sessions: dict[int, Session] = {}

_controller: ControllerSync | None = None
_controller_lock = threading.Lock()


def get_controller() -> ControllerSync:
    """The notebook's controller (in memory until ``%restate backend`` switches its store)."""
    global _controller
    with _controller_lock:
        if _controller is None:
            _controller = ControllerSync()
        return _controller
