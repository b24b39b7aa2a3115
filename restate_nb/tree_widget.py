"""StateTree: a live, editable view of a controller's state tree, as an anywidget.

The widget is thin: ``TreeProtocol`` (tree_protocol.py, where the message protocol is
documented) does the work; ``static/tree.js`` and ``static/tree.css`` are the front end.
"""

from __future__ import annotations

import pathlib
from typing import Any

import anywidget
import traitlets

from restate.paths import PathLike, parts_to_str, to_parts

from .controller import get_controller
from .tree_protocol import MAX_JSON, TreeProtocol

__all__ = ["MAX_JSON", "StateTree", "TreeProtocol"]

STATIC = pathlib.Path(__file__).parent / "static"


class StateTree(anywidget.AnyWidget):
    """A live, collapsible, editable view of the state below ``path``.

    Args:
        controller: the ``ControllerSync`` to show; None means ``restate_nb.get_controller()``.
        path: the node shown as the root of the view (``"/"`` for all of it).

    Raises:
        InvalidPathError / TypeError: ``path`` is not a valid state path.
    """

    _esm = STATIC / "tree.js"
    _css = STATIC / "tree.css"
    path = traitlets.Unicode("/").tag(sync=True)

    def __init__(self, controller: Any = None, path: PathLike = "/", **kwargs: Any) -> None:
        parts = to_parts(path)
        if controller is None:
            controller = get_controller()
        super().__init__(path=parts_to_str(parts), **kwargs)
        self.controller = controller
        self.protocol = TreeProtocol(controller, parts, self.send)
        self.on_msg(self._on_front_end_msg)

    def _on_front_end_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        self.protocol.handle(content)

    def close(self) -> None:
        """Stop the live updates and close the widget."""
        protocol = getattr(self, "protocol", None)
        if protocol is not None:
            protocol.close()
        super().close()
