"""The ``state`` mapping put in the user namespace: paths in, values out, over a controller.

::

    state["/config/theme"] = "dark"     # controller.set_state
    state["/config"]                    # {"theme": "dark"} (recorded inside tracked cells)
    state.get("/missing", 0)            # 0
    "/config/theme" in state            # True
    del state["/config"]                # controller.del_state; KeyError when missing
    list(state)                         # top-level keys, like a dict of the whole tree
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from restate.missing import MISSING

__all__ = ["StateProxy"]

WriteHook = Callable[[Any], None]


class StateProxy(MutableMapping[Any, Any]):
    """A mutable mapping from paths to values of ``controller``'s state tree.

    Reading a missing path raises ``KeyError`` (use ``.get(path, default)``); a stored
    ``None`` is a value. ``on_write(path)`` is called after each write or delete that changed
    the state (the notebook layer uses it to order tracked cells).
    """

    def __init__(self, controller: Any, on_write: WriteHook | None = None) -> None:
        self._controller = controller
        self._on_write = on_write

    @property
    def controller(self) -> Any:
        """The controller this mapping reads and writes."""
        return self._controller

    def __getitem__(self, path: Any) -> Any:
        value = self._controller.get_state(path, MISSING)
        if value is MISSING:
            raise KeyError(path)
        return value

    def get(self, path: Any, default: Any = None) -> Any:
        value = self._controller.get_state(path, MISSING)
        return default if value is MISSING else value

    def __setitem__(self, path: Any, value: Any) -> None:
        if self._controller.set_state(path, value) and self._on_write is not None:
            self._on_write(path)

    def __delitem__(self, path: Any) -> None:
        if not self._controller.del_state(path):
            raise KeyError(path)
        if self._on_write is not None:
            self._on_write(path)

    def __contains__(self, path: object) -> bool:
        return self._controller.get_state(path, MISSING) is not MISSING

    def __iter__(self) -> Iterator[str]:
        return iter(self._root())

    def __len__(self) -> int:
        return len(self._root())

    def _root(self) -> dict[str, Any]:
        root = self._controller.get_state("/", {})
        return root if isinstance(root, dict) else {}

    def __repr__(self) -> str:
        backend = type(self._controller.backend).__name__
        text = repr(self._root())
        if len(text) > 200:
            text = text[:197] + "..."
        return f"<state on {backend}: {text}>"
