"""``StateEvent`` (what a callback receives) and ``StateChange`` (one changed node).

Event values are isolated: ``prev_value``/``new_value`` are copied on first access, so a
callback that mutates them changes nothing stored and nothing another callback sees.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

from .missing import MISSING
from .paths import Parts, parts_to_path
from .tree import IMMUTABLE, copy_out

if TYPE_CHECKING:
    from .async_controller import ControllerAsync
    from .controller import ControllerSync

__all__ = ["StateChange", "StateEvent"]

C = TypeVar("C", bound="ControllerSync | ControllerAsync")


class StateChange(NamedTuple):
    """One changed node: ``prev_value``/``new_value`` are ``MISSING`` where the node did not
    exist (created / deleted). Handed to ``controller.on_changes`` listeners."""

    path: PurePosixPath
    prev_value: Any
    new_value: Any


def _user_value(value: Any) -> Any:
    if value is MISSING:
        return None
    return value if type(value) in IMMUTABLE else copy_out(value)


class StateEvent(Generic[C]):
    """What a subscription callback receives (docs/semantics.md#events).

    Attributes:
        controller: the controller that dispatched the event.
        emitting_path: the path that was written (for bubbled events, below ``current_path``).
        current_path: the path of the subscription that receives the event.
        prev_value / old_value: value at ``emitting_path`` before the change (None if missing).
        new_value: value at ``emitting_path`` after the change (None if deleted).
        payload: whatever the writer passed as ``payload``.
    """

    __slots__ = (
        "_bubble",
        "_current",
        "_emitting",
        "_new",
        "_new_copied",
        "_prev",
        "_prev_copied",
        "controller",
        "payload",
    )

    def __init__(
        self,
        controller: C,
        emitting: Parts,
        current: Parts,
        prev: Any,
        new: Any,
        payload: Any = None,
        bubble: list[int] | None = None,
    ) -> None:
        self.controller = controller
        self._emitting = emitting
        self._current = current
        self._prev = prev
        self._new = new
        self._prev_copied = False
        self._new_copied = False
        self.payload = payload
        self._bubble = bubble

    @property
    def emitting_path(self) -> PurePosixPath:
        return parts_to_path(self._emitting)

    @property
    def current_path(self) -> PurePosixPath:
        return parts_to_path(self._current)

    @property
    def prev_value(self) -> Any:
        if not self._prev_copied:
            self._prev = _user_value(self._prev)
            self._prev_copied = True
        return self._prev

    @property
    def old_value(self) -> Any:
        """The same as ``prev_value`` (the original API's name)."""
        return self.prev_value

    @property
    def new_value(self) -> Any:
        if not self._new_copied:
            self._new = _user_value(self._new)
            self._new_copied = True
        return self._new

    def stop_bubbling(self) -> None:
        """Do not notify subscriptions above ``current_path`` for this change.

        Derivations and tracked functions still run: they keep the state consistent.
        """
        if self._bubble is not None:
            self._bubble[0] = max(self._bubble[0], len(self._current))

    def get_state(self, path: Any, default: Any = None, write_default: bool = False) -> Any:
        """``controller.get_state`` (recorded when this event runs a tracked function)."""
        return self.controller.get_state(path, default, write_default)

    def set_state(self, path: Any, value: Any, **kwargs: Any) -> Any:
        """``controller.set_state``: applied at once, its notifications run after this round."""
        return self.controller.set_state(path, value, **kwargs)

    def del_state(self, path: Any, **kwargs: Any) -> Any:
        """``controller.del_state``."""
        return self.controller.del_state(path, **kwargs)

    def __repr__(self) -> str:
        return (
            f"StateEvent(emitting_path={str(self.emitting_path)!r}, "
            f"current_path={str(self.current_path)!r}, prev_value={self.prev_value!r}, "
            f"new_value={self.new_value!r}, payload={self.payload!r})"
        )
