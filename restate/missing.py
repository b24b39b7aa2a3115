"""``MISSING``: the one marker for "no node here", shared by the core and every backend."""

from __future__ import annotations

from typing import ClassVar

__all__ = ["MISSING", "Missing"]


class Missing:
    """The type of ``MISSING``: what a backend read returns for a node that does not exist."""

    _instance: ClassVar[Missing | None] = None

    def __new__(cls) -> Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "MISSING"


MISSING = Missing()
