"""``Atom``: a handle on one path of a controller (awaitable methods on the async one)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

__all__ = ["Atom"]


class Atom:
    """One path of a controller. Its ``.path`` makes it usable wherever a path is accepted.

    On a ``ControllerAsync`` every method that touches state returns an awaitable.
    """

    __slots__ = ("controller", "default", "path")

    def __init__(self, controller: Any, path: PurePosixPath, default: Any = None) -> None:
        self.controller = controller
        self.path = path
        self.default = default

    def get(self, default: Any = None, write_default: bool = False) -> Any:
        """The value (``default``, else the atom's default, when missing)."""
        fallback = self.default if default is None else default
        return self.controller.get_state(self.path, fallback, write_default)

    def set(self, value: Any, **kwargs: Any) -> Any:
        return self.controller.set_state(self.path, value, **kwargs)

    def delete(self, **kwargs: Any) -> Any:
        return self.controller.del_state(self.path, **kwargs)

    def update(self, fn: Callable[[Any], Any], payload: Any = None) -> Any:
        return self.controller.update(self.path, fn, self.default, payload)

    def ping(self, payload: Any = None) -> Any:
        return self.controller.ping(self.path, self.default, payload)

    def subscribe(self, callback: Callable[..., Any], **kwargs: Any) -> Any:
        return self.controller.subscribe(self.path, callback, **kwargs)

    def unsubscribe(self, callback: Callable[..., Any]) -> bool:
        return bool(self.controller.unsubscribe(self.path, callback))

    def derive(self, source: Any, transform: Callable[[Any], Any], payload: Any = None) -> Any:
        """Make this atom's value ``transform(value at source)``, kept up to date."""
        return self.controller.derive(self.path, source, transform, payload)

    def derive_many(
        self, sources: Any, transform: Callable[[Any], Any], payload: Any = None
    ) -> Any:
        return self.controller.derive_many(self.path, sources, transform, payload)

    def on_change(self, fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """Call ``fn(new_value)`` after each change of this atom; usable as a decorator."""

        def callback(event: Any) -> Any:
            return fn(event.new_value)

        callback.__qualname__ = getattr(fn, "__qualname__", "on_change")
        self.controller.subscribe(self.path, callback)
        return fn

    def __repr__(self) -> str:
        return f"Atom({str(self.path)!r})"
