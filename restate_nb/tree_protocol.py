"""The StateTree protocol, without the widget: snapshot, diffs, throttling, edits.

The kernel side (``TreeProtocol``) keeps which dicts the viewer has expanded and sends only
those; the front end (``static/tree.js``) renders what it is sent and asks for the rest.
All messages are anywidget custom messages holding one JSON object with a ``type``.

Node records (paths are absolute strings, ``key`` is the last segment or ``"/"``)::

    {"key": "b", "path": "/a/b", "kind": "leaf", "type": "number", "json": "1",
     "truncated": false, "exact": true}          # exact: false when shown as repr()
    {"key": "a", "path": "/a", "kind": "dict", "count": 3,
     "children": [...]}                           # children only when expanded (one page)
    {"key": "x", "path": "/x", "kind": "missing"} # only for a view root that does not exist

Front end -> kernel (``req`` is an opaque id echoed in the reply)::

    hello                          -> snapshot {root, marks, page, seq}
    expand {path, offset}          -> children {path, offset, count, children}
    collapse {path}                   (no reply; the kernel stops sending that subtree)
    set {path, json}               -> ack | error       (a leaf edit, JSON text)
    add {path, key, json}          -> ack | error       (a new child of the dict at path)
    delete {path}                  -> ack | error
    read {path}                    -> value {path, json} (the full JSON of a truncated leaf)

Kernel -> front end, unprompted: ``diff {seq, ops, flash, marks?}`` where ``ops`` are
``{"op": "put", "path", "node"}`` (replace or append that node with its visible subtree),
``{"op": "head", "path", "node"}`` (new count of a dict, children untouched) and
``{"op": "remove", "path"}``; ``seq`` numbers the diffs 1, 2, 3...; ``flash`` lists the
paths to highlight (a collapsed dict flashes for changes inside it); ``marks`` is
``{"derived": {dest: [sources]}, "feeds": {source: [dests]}, "tracked": {path: [tracker
names]}}`` when it changed.

First paint without a round trip: the snapshot (``{root, marks, page, seq}``, ``seq`` being
the last diff it includes) is also *published* through ``publish`` -- the widget puts it in a
synced trait, so it travels with the widget's creation and the view paints at once, even when
the kernel is busy in a long cell and cannot answer ``hello`` (the shell channel is serial;
kernel -> front end messages still go out). The view applies the diffs numbered above the
snapshot's ``seq``. Diffs sent before a view exists are lost to it, so until the first
``hello`` arrives every flush publishes the snapshot again; after that, at most once per
``publish_every`` seconds and once more when the state goes quiet, so a view opened later
starts from a recent picture and its ``hello`` makes it exact.

Worked example: the view shows ``/`` with ``/users`` collapsed. ``set_state("/users/1/age",
3)`` records ``/users/1/age`` as pending; the flusher thread wakes, finds that ``/users`` is
the deepest rendered node on the way, and sends ``diff {ops: [], flash: ["/users"]}``.
Writes are recorded by ``controller.on_changes`` under the controller's lock and sent by
one flusher thread at most every ``interval`` seconds (20 messages/s), so a burst of
10,000 writes costs the front end a handful of diffs, each holding the latest values.
Errors of a request (invalid JSON, a bad key, a write below a leaf, a failing subscriber)
come back as ``error {req, path, message}`` and are shown next to the node.
"""

from __future__ import annotations

import inspect
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from itertools import islice
from typing import Any, ClassVar

from restate.missing import MISSING
from restate.paths import Parts, PathLike, check_key, is_prefix, parts_to_str, to_parts

from .tree_records import MAX_JSON, compute_marks, describe_error, leaf_preview, parse_json

__all__ = ["MAX_JSON", "TreeProtocol", "compute_marks", "parse_json"]

PAGE = 200  # children sent per expand request
INTERVAL = 0.05  # at most 20 diff messages per second
PUBLISH_EVERY = 1.0  # once a view said hello, republish the snapshot at most this often
MARKS_POLL = 1.0  # refresh derivation / tracker marks this often when the state is idle
CROWD = 32  # more changed siblings than this in one diff: resend their parent's page instead

_ABSENT = object()
_log = logging.getLogger(__name__)
Message = dict[str, Any]


class TreeProtocol:
    """The kernel side of the StateTree protocol; ``send`` delivers one message to the view.

    Args:
        controller: a ``ControllerSync``.
        path: the node shown as the root of the view.
        send: called with each outgoing message (a JSON-able dict), from any thread.
        interval: the minimum time between two diff messages.
        page: how many children one expand request loads.
        marks_poll: how often derivation and tracker marks are refreshed while idle.
        publish: called with the current snapshot (a JSON-able dict) now and as described in
            the module docstring; None when nothing holds a snapshot.
        publish_every: the minimum time between two publications once a view said hello.

    Raises:
        TypeError: ``controller`` is an async controller (its reads are coroutines).
    """

    def __init__(
        self,
        controller: Any,
        path: PathLike,
        send: Callable[[Message], Any],
        *,
        interval: float = INTERVAL,
        page: int = PAGE,
        marks_poll: float = MARKS_POLL,
        publish: Callable[[Message], Any] | None = None,
        publish_every: float = PUBLISH_EVERY,
    ) -> None:
        if inspect.iscoroutinefunction(getattr(controller, "get_state", None)):
            raise TypeError("StateTree shows a ControllerSync; got an async controller")
        self.controller = controller
        self.root: Parts = to_parts(path)
        self.interval = interval
        self.page = page
        self.marks_poll = marks_poll
        self._send = send
        self._expanded: dict[Parts, int] = {self.root: page}  # dict path -> children loaded
        self._view_lock = threading.RLock()  # expanded set + message order
        self._wake = threading.Condition()  # guards _pending and _closed
        self._pending: dict[Parts, bool] = {}  # changed path -> created or deleted
        self._closed = False
        self._last_diff = 0.0
        self._marks: Message = compute_marks(controller)  # what the snapshot will show
        self._seq = 0  # number of the last diff sent
        self._publish = publish
        self.publish_every = publish_every
        self._hello_seen = False
        self._published_at = 0.0
        self._publish_due = False  # a diff went out that the published snapshot lacks
        self._unsubscribe = controller.on_changes(self._on_changes)
        if publish is not None:
            self._republish()
        self._thread = threading.Thread(target=self._run, name="restate-tree", daemon=True)
        self._thread.start()

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop listening to the controller and stop the flusher thread."""
        with self._wake:
            if self._closed:
                return
            self._closed = True
            self._wake.notify_all()
        self._unsubscribe()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=2)

    @property
    def closed(self) -> bool:
        return self._closed

    # -- changes: recorded under the controller's lock, sent by the flusher ---------------

    def _on_changes(self, changes: list[Any]) -> None:
        with self._wake:
            for change in changes:
                parts = to_parts(change.path)
                created_or_deleted = change.prev_value is MISSING or change.new_value is MISSING
                self._pending[parts] = self._pending.get(parts, False) or created_or_deleted
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                pending = self._next_batch()
                if pending is None:
                    return
            try:
                self._flush(pending)
            except Exception:  # the viewer must keep running; the traceback goes to the log
                _log.exception("StateTree could not send a diff")

    def _next_batch(self) -> dict[Parts, bool] | None:
        """Wait (holding ``_wake``) until pending changes may be sent; None when closed."""
        while not self._closed:
            if not self._pending:
                if not self._wake.wait(self.marks_poll):
                    return {}  # idle: refresh the marks only
                continue
            delay = self._last_diff + self.interval - time.monotonic()
            if delay <= 0:
                pending, self._pending = self._pending, {}
                return pending
            self._wake.wait(delay)
        return None

    def flush(self) -> None:
        """Send the pending changes now, without waiting for the interval (the notebook
        calls it when a cell ends, so the view and the published snapshot are current)."""
        with self._wake:
            pending, self._pending = self._pending, {}
        if pending or self._publish_due:
            self._flush(pending, publish_now=True)

    def _flush(self, pending: dict[Parts, bool], publish_now: bool = False) -> None:
        with self._view_lock:
            ops, flash = self._diff(pending)
            marks = self._fresh_marks()
            if ops or flash or marks is not None:
                self._seq += 1
                msg: Message = {"type": "diff", "seq": self._seq, "ops": ops, "flash": flash}
                if marks is not None:
                    msg["marks"] = marks
                self._last_diff = time.monotonic()
                self._emit(msg)
                self._publish_due = self._publish is not None
            if self._publish_due and (publish_now or self._may_publish(bool(pending))):
                self._republish()

    def _may_publish(self, busy: bool) -> bool:
        """Publish on every diff until a view said hello; then at most every
        ``publish_every`` seconds, and on the first quiet tick."""
        if not self._hello_seen or not busy:
            return True
        return time.monotonic() - self._published_at >= self.publish_every

    def _republish(self) -> None:
        if self._publish is None or self._closed:
            return
        self._published_at = time.monotonic()
        self._publish_due = False
        self._publish(self.snapshot())

    def snapshot(self) -> Message:
        """The view's current picture: ``{type: snapshot, root, marks, page, seq}``."""
        with self._view_lock:
            root = self._record(self.root, self._read(self.root))
            self._marks = compute_marks(self.controller)
            return {"type": "snapshot", "root": root, "marks": self._marks, "page": self.page,
                    "seq": self._seq}  # fmt: skip

    def _diff(self, pending: dict[Parts, bool]) -> tuple[list[Message], list[str]]:
        ops: list[Message] = []
        flash: dict[str, None] = {}  # ordered set
        covered: list[Parts] = []  # nodes already sent whole in this diff
        recounted: dict[Parts, None] = {}  # dicts whose count changed (ordered set)
        pending = _coalesce(pending)
        for parts in sorted(pending, key=len):
            created_or_deleted = pending[parts]
            if is_prefix(parts, self.root):
                parts, created_or_deleted = self.root, False
            elif not is_prefix(self.root, parts):
                continue  # outside the view
            if any(is_prefix(c, parts) for c in covered):
                flash[parts_to_str(parts)] = None
                continue
            anchor, visible = self._locate(parts)
            flash[parts_to_str(anchor)] = None
            if visible:
                ops.append(self._put(parts))
                covered.append(parts)
            if created_or_deleted and parts != self.root and anchor in (parts, parts[:-1]):
                recounted[parts[:-1]] = None
        # after the puts: the front end appends a new key only while its parent's old count
        # says every key is loaded
        for parent in recounted:
            if not any(is_prefix(c, parent) for c in covered):
                ops.append(self._head(parent))
        return ops, list(flash)

    def _locate(self, parts: Parts) -> tuple[Parts, bool]:
        """The deepest node on the way to ``parts`` the view shows; True when it is ``parts``."""
        for i in range(len(self.root), len(parts)):
            if parts[:i] not in self._expanded:
                return parts[:i], False
        return parts, True

    def _put(self, parts: Parts) -> Message:
        value = self._read(parts)
        if value is _ABSENT and parts != self.root:
            self._forget_below(parts)
            return {"op": "remove", "path": parts_to_str(parts)}
        if not isinstance(value, dict):
            self._forget_below(parts)
        return {"op": "put", "path": parts_to_str(parts), "node": self._record(parts, value)}

    def _head(self, parts: Parts) -> Message:
        value = self._read(parts)
        return {"op": "head", "path": parts_to_str(parts), "node": self._record(parts, value, 0)}

    def _forget_below(self, parts: Parts) -> None:
        for p in [p for p in self._expanded if is_prefix(parts, p) and p != self.root]:
            del self._expanded[p]

    # -- records ---------------------------------------------------------------------------

    def _read(self, parts: Parts) -> Any:
        return self.controller.get_state(parts_to_str(parts), _ABSENT)

    def _record(self, parts: Parts, value: Any, depth: int = 64) -> Message:
        key = parts[-1] if parts else "/"
        path = parts_to_str(parts)
        if value is _ABSENT:
            return {"key": key, "path": path, "kind": "missing"}
        if not isinstance(value, dict):
            return {"key": key, "path": path, "kind": "leaf", **leaf_preview(value)}
        rec: Message = {"key": key, "path": path, "kind": "dict", "count": len(value)}
        limit = self._expanded.get(parts)
        if limit is not None and depth > 0:
            items = islice(value.items(), limit)
            rec["children"] = [self._record((*parts, k), v, depth - 1) for k, v in items]
        return rec

    def _fresh_marks(self) -> Message | None:
        """The current marks when they differ from the last ones sent, else None."""
        marks = compute_marks(self.controller)
        if marks == self._marks:
            return None
        self._marks = marks
        return marks

    # -- requests from the front end -------------------------------------------------------

    def handle(self, msg: Message) -> None:
        """Answer one message from the front end (on the kernel's thread)."""
        if not isinstance(msg, dict):
            msg = {"type": repr(msg)}
        kind, req, path = msg.get("type"), msg.get("req"), msg.get("path")
        handler = self._handlers.get(kind) if isinstance(kind, str) else None
        try:
            if handler is None:
                raise ValueError(f"unknown StateTree message type {kind!r}")
            reply = handler(self, msg)
        except Exception as exc:  # any failure is shown next to the node it concerns
            self._emit({"type": "error", "req": req, "path": path, "message": describe_error(exc)})
            return
        if reply is not None:
            self._emit({**reply, "req": req})

    def _hello(self, msg: Message) -> Message:
        self._hello_seen = True
        return self.snapshot()

    def _expand(self, msg: Message) -> Message:
        parts, offset = to_parts(msg["path"]), int(msg.get("offset", 0))
        with self._view_lock:
            value = self._read(parts)
            if not isinstance(value, dict):
                raise ValueError(f"{parts_to_str(parts)} is not a dict: nothing to expand")
            self._expanded[parts] = max(self._expanded.get(parts, 0), offset + self.page)
            items = islice(value.items(), offset, offset + self.page)
            children = [self._record((*parts, k), v) for k, v in items]
            path = parts_to_str(parts)
            return {"type": "children", "path": path, "offset": offset, "count": len(value),
                    "children": children}  # fmt: skip

    def _collapse(self, msg: Message) -> None:
        parts = to_parts(msg["path"])
        with self._view_lock:
            for p in [p for p in self._expanded if is_prefix(parts, p)]:
                del self._expanded[p]

    def _set(self, msg: Message) -> Message:
        path = parts_to_str(to_parts(msg["path"]))
        changed = self.controller.set_state(path, parse_json(msg.get("json")))
        return {"type": "ack", "path": path, "changed": bool(changed)}

    def _add(self, msg: Message) -> Message:
        parent, key = to_parts(msg["path"]), msg.get("key")
        check_key(key, parent)  # raises unless key is a usable str
        assert isinstance(key, str)
        value = parse_json(msg.get("json"))
        child = parts_to_str((*parent, key))
        if self._read((*parent, key)) is not _ABSENT:
            raise ValueError(f"{child} exists already: edit it instead of adding it")
        self.controller.set_state(child, value)
        return {"type": "ack", "path": child}

    def _delete(self, msg: Message) -> Message:
        path = parts_to_str(to_parts(msg["path"]))
        self.controller.del_state(path)
        return {"type": "ack", "path": path}

    def _read_value(self, msg: Message) -> Message:
        path = parts_to_str(to_parts(msg["path"]))
        value = self._read(to_parts(path))
        if value is _ABSENT:
            raise KeyError(f"{path} does not exist")
        text = json.dumps(value, ensure_ascii=False, default=repr)
        return {"type": "value", "path": path, "json": text}

    _handlers: ClassVar[dict[str, Callable[[TreeProtocol, Message], Message | None]]] = {
        "hello": _hello,
        "expand": _expand,
        "collapse": _collapse,
        "set": _set,
        "add": _add,
        "delete": _delete,
        "read": _read_value,
    }

    def _emit(self, msg: Message) -> None:
        if not self._closed:
            self._send(msg)


def _coalesce(pending: dict[Parts, bool]) -> dict[Parts, bool]:
    """Replace crowds of changed siblings (a batch of 10,000 writes) by their parent."""
    by_parent = Counter(p[:-1] for p in pending if p)
    crowded = {parent for parent, n in by_parent.items() if n > CROWD}
    if not crowded:
        return pending
    out = {p: flag for p, flag in pending.items() if not p or p[:-1] not in crowded}
    for parent in crowded:
        out[parent] = out.get(parent, False)
    return out
