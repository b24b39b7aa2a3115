"""StateTree: a live, editable view of a controller's state tree, as an anywidget.

The widget is thin: ``TreeProtocol`` (tree_protocol.py, where the message protocol is
documented) does the work; ``static/tree.js`` and ``static/tree.css`` are the front end.
The snapshot of the expanded nodes is also kept in the synced trait ``_snapshot``, so the
first paint needs no kernel round trip (a tree displayed before a long cell shows the state
at once, then the live changes while the cell runs) and nbclient stores what the tree shows.
"""

from __future__ import annotations

import pathlib
from typing import Any

import anywidget
import traitlets

from restate.paths import PathLike, parts_to_str, to_parts

from .controller import _sessions, get_controller
from .tree_protocol import MAX_JSON, TreeProtocol

__all__ = ["MAX_JSON", "StateTree", "TreeProtocol"]

STATIC = pathlib.Path(__file__).parent / "static"


def _adopt(tree: StateTree) -> None:
    """Hand ``tree`` to the notebook session of this shell, if the extension is loaded."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - anywidget needs IPython anyway
        return
    session = _sessions.get(id(get_ipython()))
    if session is not None:
        session.adopt_tree(tree)


class StateTree(anywidget.AnyWidget):
    """A live, collapsible, editable view of the state below ``path``.

    Args:
        controller: the ``ControllerSync`` to show; None means ``restate_nb.get_controller()``.
        path: the node shown as the root of the view (``"/"`` for all of it).

    In a notebook with ``%load_ext restate_nb`` a tree belongs to the cell that made it:
    running that cell again closes it (the new run shows a new one), and every tree sends
    what changed when a cell ends. ``close()`` stops it and releases the controller.

    Raises:
        InvalidPathError / TypeError: ``path`` is not a valid state path.
    """

    # the text, not the Path: for a Path anywidget connects every instance to a file-change
    # signal with a strong reference, so no StateTree could ever be garbage-collected
    _esm = (STATIC / "tree.js").read_text(encoding="utf-8")
    _css = (STATIC / "tree.css").read_text(encoding="utf-8")
    path = traitlets.Unicode("/").tag(sync=True)
    _snapshot = traitlets.Dict().tag(sync=True)

    def __init__(self, controller: Any = None, path: PathLike = "/", **kwargs: Any) -> None:
        parts = to_parts(path)
        if controller is None:
            controller = get_controller()
        super().__init__(path=parts_to_str(parts), **kwargs)
        self.controller = controller
        self.protocol = TreeProtocol(controller, parts, self.send, publish=self._set_snapshot)
        self.on_msg(self._on_front_end_msg)
        self.observe(self._on_comm, names=["comm"])
        _adopt(self)

    def _set_snapshot(self, snapshot: dict[str, Any]) -> None:
        self._snapshot = snapshot

    def _on_comm(self, change: dict[str, Any]) -> None:
        if change["new"] is None:  # closed, by close() or by ipywidgets
            self.protocol.close()

    def _on_front_end_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        self.protocol.handle(content)

    def close(self) -> None:
        """Stop the live updates, release the controller and close the widget."""
        protocol = getattr(self, "protocol", None)
        if protocol is not None:
            protocol.close()
        super().close()
