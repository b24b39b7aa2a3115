"""The notebook's default controller, shared by the magics, ``state``, bindings and trees."""

from __future__ import annotations

import threading

from restate import ControllerSync

__all__ = ["get_controller"]

_controller: ControllerSync | None = None
_controller_lock = threading.Lock()


def get_controller() -> ControllerSync:
    """The notebook's controller (in memory until ``%restate backend`` switches its store)."""
    global _controller
    with _controller_lock:
        if _controller is None:
            _controller = ControllerSync()
        return _controller
