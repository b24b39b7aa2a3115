"""StateTree node records and marks: how a value, a failure and the dependency marks are
shown to the front end (pure functions; the protocol is in tree_protocol.py)."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["MAX_JSON", "compute_marks", "describe_error", "leaf_preview", "parse_json",
           "tracker_name"]  # fmt: skip

MAX_JSON = 2_000  # longer leaf previews are truncated; the editor reads the full value
Message = dict[str, Any]


def leaf_preview(value: Any) -> Message:
    """The display fields of a leaf: JSON text (or repr for non-JSON values), its type."""
    exact = True

    def fallback(obj: Any) -> str:
        nonlocal exact
        exact = False
        return repr(obj)

    try:
        text = json.dumps(value, ensure_ascii=False, default=fallback)
    except ValueError:  # circular structures
        text, exact = repr(value), False
    truncated = len(text) > MAX_JSON
    return {
        "type": _json_type(value),
        "json": text[:MAX_JSON] if truncated else text,
        "truncated": truncated,
        "exact": exact and not isinstance(value, tuple),
    }


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    return "object"


def parse_json(text: Any) -> Any:
    """The value of JSON ``text``; ValueError with the position when it is not JSON."""
    if not isinstance(text, str):
        raise ValueError(f"expected JSON text, got {type(text).__name__}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe_error(e) for e in exc.exceptions)
    if isinstance(exc, KeyError) and exc.args:
        return f"KeyError: {exc.args[0]}"
    return f"{type(exc).__name__}: {exc}"


def compute_marks(controller: Any) -> Message:
    """Derived dests with their sources, sources with their dests, tracked paths by reader."""
    derived: dict[str, list[str]] = {}
    feeds: dict[str, list[str]] = {}
    tracked: dict[str, list[str]] = {}
    for info in controller.derivations():
        dest = str(info.dest)
        derived[dest] = sorted(str(s) for s in info.sources)
        for source in derived[dest]:
            feeds.setdefault(source, []).append(dest)
    for info in controller.trackers():
        name = tracker_name(info)
        for p in sorted(str(p) for p in info.paths):
            tracked.setdefault(p, []).append(name)
    return {"derived": derived, "feeds": feeds, "tracked": tracked}


def tracker_name(info: Any) -> str:
    """How a tracked function is named on hover: its payload's ``describe()`` or name (tracked
    cells of restate_nb describe themselves as ``cell #2 [In[5]]``), else its qualname."""
    payload = info.payload
    if isinstance(payload, str):
        return payload
    describe = getattr(payload, "describe", None)
    if callable(describe):
        return str(describe())
    if isinstance(payload, dict):
        for key in ("name", "cell", "label"):
            if key in payload:
                return str(payload[key])
    name = getattr(payload, "name", None) or getattr(payload, "label", None)
    if isinstance(name, str):
        return name
    cb = info.callback
    return str(getattr(cb, "__qualname__", None) or getattr(cb, "__name__", None) or cb)
