"""Two-way links between an ipywidget trait and a state path.

::

    slider = IntSlider()
    bind(slider, "/threshold")      # state wins if it exists, else the slider value is written
    state["/threshold"] = 7         # slider.value == 7
    slider.value = 9                # state["/threshold"] == 9 (a frontend drag does the same)
    unbind(slider)

No echo loops: a change applied from the state side is not written back (a per-binding
guard), and a write of an equal value is a no-op in the controller anyway. When the path
is deleted the widget keeps its value. ``unbind`` and closing the widget release the link
completely (the controller forgets the callback), so the widget can be garbage-collected.
"""

from __future__ import annotations

import threading
from typing import Any

from restate.missing import MISSING
from restate.paths import parts_to_path, to_parts

from .controller import get_controller

__all__ = ["Binding", "bind", "bindings", "unbind"]

_bindings: dict[tuple[int, Any, str], Binding] = {}
_lock = threading.Lock()


class Binding:
    """One ``widget.trait <-> path`` link."""

    def __init__(self, widget: Any, path: Any, trait: str, controller: Any) -> None:
        self.widget = widget
        self.path = parts_to_path(to_parts(path))
        self.trait = trait
        self.controller = controller
        self._applying = threading.local()
        self._callback_id: Any = None

    def connect(self) -> None:
        current = self.controller.get_state(self.path, MISSING)
        if current is MISSING:
            self.controller.set_state(self.path, getattr(self.widget, self.trait))
        else:
            self._apply(current)
        self.widget.observe(self._on_widget, names=[self.trait])
        self.widget.observe(self._on_comm, names=["comm"])
        self._callback_id = self.controller.subscribe(self.path, self._on_state)

    def disconnect(self) -> None:
        self.widget.unobserve(self._on_widget, names=[self.trait])
        self.widget.unobserve(self._on_comm, names=["comm"])
        # remove_callback, not unsubscribe: the latter leaves the callback registered by id
        self.controller.remove_callback(self._callback_id)

    def _on_comm(self, change: dict[str, Any]) -> None:
        if change["new"] is None:  # the widget was closed: drop this link
            with _lock:
                if _bindings.get(self.key) is self:
                    del _bindings[self.key]
            self.disconnect()

    @property
    def key(self) -> tuple[int, Any, str]:
        return (id(self.widget), self.path, self.trait)

    def _on_widget(self, change: dict[str, Any]) -> None:
        if not getattr(self._applying, "active", False):
            self.controller.set_state(self.path, change["new"])

    def _on_state(self, event: Any) -> None:
        value = self.controller.get_state(self.path, MISSING)
        if value is not MISSING:
            self._apply(value)

    def _apply(self, value: Any) -> None:
        self._applying.active = True
        try:
            setattr(self.widget, self.trait, value)
        finally:
            self._applying.active = False


def bind(widget: Any, path: Any, trait: str = "value", *, controller: Any = None) -> Binding:
    """Link ``widget.<trait>`` and the state at ``path`` both ways.

    If ``path`` holds a value the widget takes it, otherwise the widget's current value is
    written there. Binding the same widget, path and trait again replaces the link.

    Raises:
        AttributeError: the widget has no trait named ``trait``.
        InvalidPathError / TypeError: ``path`` is not a valid state path.
    """
    if not (hasattr(widget, "has_trait") and widget.has_trait(trait)):
        raise AttributeError(f"{type(widget).__name__} has no trait {trait!r} to bind")
    if controller is None:
        controller = get_controller()
    binding = Binding(widget, path, trait, controller)
    key = binding.key
    with _lock:
        old = _bindings.pop(key, None)
    if old is not None:
        old.disconnect()
    binding.connect()
    with _lock:
        _bindings[key] = binding
    return binding


def unbind(widget: Any, path: Any = None) -> int:
    """Remove the links of ``widget`` (only those to ``path`` when given); returns how many."""
    wanted = None if path is None else parts_to_path(to_parts(path))
    with _lock:
        keys = [k for k, b in _bindings.items() if b.widget is widget]
        keys = [k for k in keys if wanted is None or k[1] == wanted]
        removed = [_bindings.pop(k) for k in keys]
    for binding in removed:
        binding.disconnect()
    return len(removed)


def bindings() -> list[Binding]:
    """The active bindings (for ``%restate status`` and for unloading the extension)."""
    with _lock:
        return list(_bindings.values())
