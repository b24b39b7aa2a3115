"""Reversible encoding of state keys into file names any common filesystem can hold.

A key is kept as is when it is safe; otherwise the offending characters become ``%XX`` (their
UTF-8 bytes), exactly like URL quoting, so decoding is ``urllib.parse.unquote``::

    "theme"       -> "theme"          "v1.2" -> "v1.2"     (dots stay: v1.2 and v1.3 differ)
    "50%"         -> "50%25"          "a\\b"  -> "a%5Cb"   (also control chars, : * ? " < > |)
    ".hidden"     -> "%2Ehidden"      (a leading dot: names starting with "." are ours)
    "x.json"      -> "x%2Ejson"       (a key ending in the serializer's extension)
    "CON", "nul"  -> "%43ON", "%6Eul" (names Windows reserves)
    "end."        -> "end%2E"         (Windows drops trailing dots and spaces)

A name longer than ``MAX_NAME_BYTES`` becomes ``<readable prefix>%~<sha256>``; the full key is
kept in a hidden sidecar file ``.<that name>.key`` beside it, which listing reads to decode.
``%~`` never occurs in a plain encoding because ``%`` itself is always quoted.
"""

from __future__ import annotations

import hashlib
from urllib.parse import unquote

__all__ = ["HASH_MARK", "MAX_NAME_BYTES", "decode_name", "encode_name", "is_hashed", "sidecar"]

MAX_NAME_BYTES = 200
HASH_MARK = "%~"
_PREFIX_BYTES = 96
_UNSAFE = frozenset('%\\:*?"<>|') | {chr(c) for c in range(0x20)} | {chr(0x7F)}
_UNSAFE |= {chr(c) for c in range(0x80, 0xA0)} | {chr(c) for c in range(0xD800, 0xE000)}
_RESERVED = frozenset(
    ["con", "prn", "aux", "nul"] + [f"com{i}" for i in range(10)] + [f"lpt{i}" for i in range(10)]
)


def _quote(ch: str) -> str:
    return "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))


def encode_name(key: str, ext: str) -> str:
    """The file name stem for ``key`` (without the ``.ext`` of value files)."""
    chars = [_quote(ch) if ch in _UNSAFE else ch for ch in key]
    if chars[0] == ".":
        chars[0] = "%2E"
    if chars[-1] in (".", " "):
        chars[-1] = _quote(chars[-1])
    if key.split(".", 1)[0].rstrip(" ").lower() in _RESERVED:
        chars[0] = _quote(chars[0]) if len(chars[0]) == 1 else chars[0]
    name = "".join(chars)
    dot_ext = "." + ext
    if name.endswith(dot_ext):
        name = name[: -len(dot_ext)] + "%2E" + ext
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        name = _hashed(key, name)
    return name


def _hashed(key: str, name: str) -> str:
    prefix = name[:_PREFIX_BYTES]
    while len(prefix.encode("utf-8", "surrogatepass")) > _PREFIX_BYTES:
        prefix = prefix[:-1]
    cut = prefix.rfind("%", max(0, len(prefix) - 2))
    if cut != -1:
        prefix = prefix[:cut]
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:40]
    return f"{prefix}{HASH_MARK}{digest}"


def is_hashed(name: str) -> bool:
    return HASH_MARK in name


def sidecar(name: str) -> str:
    """The hidden file beside a hashed name that holds the full key."""
    return f".{name}.key"


def decode_name(name: str) -> str:
    """The key of a plain (not hashed) encoded name."""
    if "%" not in name:
        return name
    return unquote(name, errors="surrogatepass")
