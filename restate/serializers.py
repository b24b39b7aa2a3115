"""``Serializer`` (how a file backend turns values into file contents) and ``json_serializer``."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .errors import SerializationError

__all__ = ["Serializer", "json_serializer"]

RawT = TypeVar("RawT", str, bytes)


@dataclass(frozen=True)
class Serializer(Generic[RawT]):
    """How values are stored in files.

    Args:
        extension: the file extension, without the dot (``"json"``, ``"yaml"``).
        raw_type: ``str`` for text formats, ``bytes`` for binary ones.
        serialize: value -> raw (``str`` or ``bytes``).
        deserialize: raw -> value.
    """

    extension: str
    raw_type: type[RawT]
    serialize: Callable[[Any], RawT]
    deserialize: Callable[[RawT], Any]

    def __post_init__(self) -> None:
        ext = self.extension.lstrip(".")
        if not ext or "/" in ext:
            raise ValueError(f"serializer extension {self.extension!r} must be a plain name")
        object.__setattr__(self, "extension", ext)
        if self.raw_type not in (str, bytes):
            raise TypeError(f"raw_type must be str or bytes, not {self.raw_type!r}")

    def dumps(self, value: Any) -> RawT:
        """Serialize ``value``; any failure becomes a ``SerializationError``."""
        try:
            raw = self.serialize(value)
        except Exception as exc:
            raise SerializationError(
                f"cannot serialize {type(value).__name__} value with the {self.extension!r} "
                f"serializer: {exc}"
            ) from exc
        if not isinstance(raw, self.raw_type):
            raise SerializationError(
                f"the {self.extension!r} serializer returned {type(raw).__name__}, "
                f"expected {self.raw_type.__name__}"
            )
        return raw

    def loads(self, raw: RawT) -> Any:
        return self.deserialize(raw)

    def dump_bytes(self, value: Any, at: str) -> bytes:
        """``dumps`` as the bytes of a file (text as UTF-8); every failure is a
        ``SerializationError`` naming ``at``, the path being written."""
        try:
            raw = self.dumps(value)
        except SerializationError as exc:
            raise SerializationError(f"cannot store the value at {at!r}: {exc}") from exc
        if isinstance(raw, bytes):
            return raw
        try:
            return raw.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise SerializationError(
                f"cannot store the value at {at!r}: the {self.extension!r} serializer produced "
                f"text that is not valid UTF-8 ({exc.reason}: a lone surrogate such as "
                f"{raw[exc.start : exc.end]!a}); clean the string, e.g. "
                f"s.encode('utf-8', 'replace').decode()"
            ) from exc


def _json_dumps(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, sort_keys=False)
    if not text.isascii() and _has_lone_surrogate(text):
        # a str json.loads can produce but UTF-8 cannot hold: \udXXX escapes keep it exactly
        text = json.dumps(value, ensure_ascii=True, allow_nan=False, sort_keys=False)
    return text


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


json_serializer = Serializer(
    extension="json", raw_type=str, serialize=_json_dumps, deserialize=json.loads
)
