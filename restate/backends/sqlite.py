"""``SQLiteBackend``: the state tree in one SQLite table; transactional, safe for several processes.

Layout: one row per leaf, ``leaves(path TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID``::

    write("/config", {"theme": "dark", "colors": {"primary": 1}, "tags": [], "extra": {}})
    -> ("/config/colors/primary", "1"), ("/config/extra", "{}"), ("/config/tags", "[]"),
       ("/config/theme", '"dark"')

``value`` is the leaf as JSON; the text ``{}`` marks an empty dict (a leaf is never a dict, so
the marker cannot clash). A subtree is the row at its path plus the key range
``[path + "/", path + "0")`` (``"0"`` follows ``"/"`` in byte order), so leaf reads and writes
and subtree reads and deletes are index lookups and range scans. Like the memory backend,
deleting the last child of a dict leaves that dict as ``{}``.

Every write is one transaction (``BEGIN IMMEDIATE``, so concurrent writers queue on the busy
timeout instead of failing); ``transaction()`` groups several, nests with savepoints, and
rolls back on an exception -- the controller runs batches and ``update()`` inside it, which
makes ``update()`` from several processes on one file lose nothing. Files use WAL mode.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import Any

from ..errors import InvalidPathError, PathConflictError, SerializationError
from ..paths import Parts, parts_to_str, to_parts
from ..serializers import json_serializer
from ..tree import copy_in
from ._interrupts import finish
from .base import Backend

__all__ = ["SQLiteBackend"]

_EMPTY = "{}"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS leaves (path TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID"
)
_EXISTS = (
    "SELECT EXISTS (SELECT 1 FROM leaves WHERE path = ?1) "
    "OR EXISTS (SELECT 1 FROM leaves WHERE path >= ?2 AND path < ?3)"
)
_FIRST = {  # the first row from a start (included or not) to an end
    op: f"SELECT path FROM leaves WHERE path {op} ? AND path < ? ORDER BY path LIMIT 1"
    for op in (">=", ">")
}
_SUBTREE = (
    "SELECT path, value FROM leaves WHERE path = ?1 "
    "UNION ALL SELECT path, value FROM leaves WHERE path >= ?2 AND path < ?3"
)


def _dumps(value: Any, at: str) -> str:
    try:
        return json_serializer.serialize(value)  # lone surrogates kept as \udXXX escapes
    except (TypeError, ValueError, RecursionError) as exc:
        raise SerializationError(
            f"cannot store the {type(value).__name__} value at {at!r} in SQLite as JSON: {exc}"
        ) from exc


def _path_text(parts: Parts) -> str:
    """The row key of ``parts``; InvalidPathError for a key SQLite's UTF-8 cannot hold."""
    text = parts_to_str(parts) if parts else ""
    if not text.isascii():
        _check_utf8(text)
    return text


def _check_utf8(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidPathError(
            f"the path {text!a} holds a lone surrogate ({text[exc.start : exc.end]!a}), which "
            f"SQLite cannot store as UTF-8 text; such keys usually come from mis-decoded bytes: "
            f"decode them properly or use the file or memory backend"
        ) from None


def _flatten(prefix: str, value: Any, rows: list[tuple[str, str]]) -> None:
    if type(value) is dict:
        if not value and prefix:
            rows.append((prefix, _EMPTY))
        for key, child in value.items():
            _flatten(f"{prefix}/{key}", child, rows)
    else:
        rows.append((prefix, _dumps(value, prefix or "/")))


def _assemble(prefix: str, rows: list[tuple[str, str]]) -> Any:
    if len(rows) == 1 and rows[0][0] == prefix:
        path, text = rows[0]
        return {} if text == _EMPTY else json.loads(text)
    tree: dict[str, Any] = {}
    start = len(prefix) + 1
    for path, text in rows:
        keys = path[start:].split("/")
        node = tree
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = {} if text == _EMPTY else json.loads(text)
    return tree


class SQLiteBackend(Backend):
    """State in an SQLite database file (``":memory:"`` for a private in-memory database).

    Args:
        path: the database file; created with its table when missing.
        timeout: seconds a writer waits for another process's transaction to finish.
        durable: ``synchronous=FULL`` (survives power loss) instead of ``NORMAL``.
    """

    def __init__(self, path: str = ":memory:", *, timeout: float = 30.0, durable: bool = False):
        self.path = str(path)
        self._lock = threading.RLock()
        self._depth = 0
        self._db = sqlite3.connect(
            self.path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._db.execute(_SCHEMA)

    def __repr__(self) -> str:
        return f"SQLiteBackend({self.path!r})"

    # public contract
    def read(self, path: PurePosixPath | str, default: Any = None) -> Any:
        parts = to_parts(path)
        with self._lock:
            rows = self._subtree(parts)
        if not rows:
            return default if parts else {}
        return _assemble(_path_text(parts), rows)

    def write(self, path: PurePosixPath | str, value: Any) -> None:
        parts = to_parts(path)
        rows = self._rows(parts, copy_in(value, parts))
        with self.transaction():
            if parts:
                self._check_ancestors(parts)
            self._delete_subtree(parts)
            self._db.executemany("INSERT INTO leaves VALUES (?, ?)", rows)

    def delete(self, path: PurePosixPath | str) -> None:
        parts = to_parts(path)
        with self.transaction():
            if self._delete_subtree(parts) and len(parts) > 1:
                self._keep_parent(parts[:-1])

    def exists(self, path: PurePosixPath | str) -> bool:
        """Whether ``read(path, MISSING)`` finds a node: one query that stops at the first row
        of the subtree (the row at ``path`` or the first of its range)."""
        parts = to_parts(path)
        if not parts:
            return True
        prefix = _path_text(parts)
        with self._lock:
            row = self._db.execute(_EXISTS, (prefix, prefix + "/", prefix + "0")).fetchone()
        return bool(row[0])

    def _occupied(self, path: PurePosixPath | str, ignore: frozenset[str] = frozenset()) -> bool:
        """Whether the node at ``path`` is a leaf or a dict with a key outside ``ignore``:
        at most ``len(ignore) + 2`` single-row index lookups."""
        parts = to_parts(path)
        prefix = _path_text(parts)
        with self._lock:
            if parts:
                row = self._db.execute("SELECT value FROM leaves WHERE path = ?", (prefix,))
                found = row.fetchone()
                if found is not None:
                    text: str = found[0]  # the JSON text of a leaf, _EMPTY for {}
                    return text != _EMPTY
            return self._child_outside(prefix, ignore)

    def _child_outside(self, prefix: str, ignore: frozenset[str]) -> bool:
        """Whether the range below ``prefix`` has a row of a child not in ``ignore``: take the
        first row, skip past the ignored child it belongs to, repeat."""
        start, end, op = prefix + "/", prefix + "0", ">="
        while True:
            found = self._db.execute(_FIRST[op], (start, end)).fetchone()
            if found is None:
                return False
            rest = found[0][len(prefix) + 1 :]
            key = rest.split("/", 1)[0]
            if key not in ignore:
                return True
            child = f"{prefix}/{key}"
            # "/a/k" < "/a/k!x" (key "k!x") < "/a/k/..." < "/a/k0": step over one part at a time
            start, op = (child, ">") if rest == key else (child + "0", ">=")

    def check_value(self, path: PurePosixPath | str, value: Any) -> None:
        """Raise what ``write(path, value)`` would raise for the value itself, changing nothing."""
        parts = to_parts(path)
        self._rows(parts, copy_in(value, parts))

    @contextmanager
    def transaction(self) -> Iterator[SQLiteBackend]:
        """One atomic, isolated unit (nestable): commits at the end, rolls back on an exception.

        The outermost level is ``BEGIN IMMEDIATE``: it takes the database's write lock at once,
        so a read-modify-write inside it cannot interleave with another process's. A
        KeyboardInterrupt at any point (BEGIN and COMMIT included) leaves the database
        committed or rolled back, never inside an open transaction: the rollback runs to its
        end through further interrupts, and a failed COMMIT rolls back.
        """
        with self._lock:
            depth = self._depth
            try:
                self._heal(depth)
                self._depth = depth + 1
                self._db.execute("BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT sp{depth}")
                yield self
                self._db.execute("COMMIT" if depth == 0 else f"RELEASE sp{depth}")
                self._depth = depth
            except BaseException:
                finish(lambda: self._roll_back(depth))
                raise

    def _heal(self, depth: int) -> None:
        """At the outermost level no transaction may be open; one left by an interrupt that
        landed before its rollback could start (a few bytecodes) is rolled back now."""
        if depth == 0 and self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def _roll_back(self, depth: int) -> None:
        """Undo down to ``depth``; resumable (each step checks what is still open)."""
        try:
            open_ = self._db.in_transaction
        except sqlite3.ProgrammingError:
            # closed: closing rolled back whatever was open (a transaction an interrupt left
            # to the garbage collector is finalised after close())
            self._depth = depth
            return
        if not open_:
            self._depth = depth
            return
        if depth == 0:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        elif self._db.in_transaction:
            try:
                self._db.execute(f"ROLLBACK TO sp{depth}")
                self._db.execute(f"RELEASE sp{depth}")
            except sqlite3.OperationalError as exc:
                if "no such savepoint" not in str(exc):
                    raise
        self._depth = depth

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # internals
    def _rows(self, parts: Parts, value: Any) -> list[tuple[str, str]]:
        if not parts and type(value) is not dict:
            raise TypeError(f"the root must be a dict, not {type(value).__name__}")
        rows: list[tuple[str, str]] = []
        _flatten(_path_text(parts), value, rows)
        for path, _ in rows:
            if not path.isascii():
                _check_utf8(path)
        return rows

    def _subtree(self, parts: Parts) -> list[tuple[str, str]]:
        if not parts:
            return self._db.execute("SELECT path, value FROM leaves").fetchall()
        prefix = _path_text(parts)
        return self._db.execute(_SUBTREE, (prefix, prefix + "/", prefix + "0")).fetchall()

    def _delete_subtree(self, parts: Parts) -> int:
        if not parts:
            return self._db.execute("DELETE FROM leaves").rowcount
        prefix = _path_text(parts)
        exact = self._db.execute("DELETE FROM leaves WHERE path = ?", (prefix,)).rowcount
        below = self._db.execute(
            "DELETE FROM leaves WHERE path >= ? AND path < ?", (prefix + "/", prefix + "0")
        ).rowcount
        return exact + below

    def _check_ancestors(self, parts: Parts) -> None:
        ancestors = [parts_to_str(parts[:i]) for i in range(1, len(parts))]
        if not ancestors:
            return
        marks = ",".join("?" * len(ancestors))
        found = self._db.execute(
            f"SELECT path, value FROM leaves WHERE path IN ({marks})", ancestors
        ).fetchall()
        for path, text in found:
            if text != _EMPTY:
                raise PathConflictError(
                    f"cannot write {parts_to_str(parts)!r}: {path!r} holds a leaf "
                    f"({text[:40]}), not a dict; delete it or write the dict first"
                )
        if found:
            self._db.execute(f"DELETE FROM leaves WHERE path IN ({marks})", ancestors)

    def _keep_parent(self, parent: Parts) -> None:
        """Deleting the last child leaves its parent as ``{}``, as in the memory backend."""
        if not self._subtree(parent):
            self._db.execute("INSERT INTO leaves VALUES (?, ?)", (parts_to_str(parent), _EMPTY))
