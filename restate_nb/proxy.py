"""The ``state`` mapping put in the user namespace: paths in, values out, over a controller.

::

    state["/config/theme"] = "dark"     # controller.set_state
    state["/config"]                    # {"theme": "dark"} (recorded inside tracked cells)
    state["/config"]["theme"] = "light" # TypeError: a read-only snapshot; write by path:
    state["/config/theme"] = "light"    #   this is the write that reaches the state
    state.get("/missing", 0)            # 0
    "/config/theme" in state            # True
    del state["/config"]                # controller.del_state; KeyError when missing
    list(state)                         # top-level keys, like a dict of the whole tree

Values read are snapshots: dicts, lists and sets come back read-only (``readonly.py``), so
an in-place change (``cfg = state["/cfg"]; cfg["a"] = 2``), which could never reach the
state, raises ``TypeError`` naming the write to make instead (``state["/cfg/a"] = 2``)
rather than being lost silently. ``dict(value)`` / ``copy.deepcopy(value)`` give mutable
copies; ``state["/items"] += [4]`` works (``+=`` makes a new list, which is then written).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from restate.missing import MISSING

from .readonly import freeze

__all__ = ["StateProxy"]

WriteHook = Callable[[Any], None]


class StateProxy(MutableMapping[Any, Any]):
    """A mutable mapping from paths to values of ``controller``'s state tree.

    Reading a missing path raises ``KeyError`` (use ``.get(path, default)``); a stored
    ``None`` is a value. Dicts, lists and sets are returned as read-only snapshots (see the
    module docstring); ``default`` is returned as given. ``on_write(path)`` is called after
    each write or delete that changed the state (the notebook layer uses it to order tracked cells).
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
        return freeze(value, path)

    def get(self, path: Any, default: Any = None) -> Any:
        value = self._controller.get_state(path, MISSING)
        return default if value is MISSING else freeze(value, path)

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
