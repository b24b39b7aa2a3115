"""``%restate`` / ``%%restate``: parse the command line and delegate to the Session.

Bad input raises ``UsageError`` with the one-line usage of the command, which IPython shows
without a traceback.
"""

from __future__ import annotations

import re
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from restate.errors import (
    CycleError,
    InvalidPathError,
    PathConflictError,
    SerializationError,
    StateError,
)
from restate.paths import to_parts

from .session import BACKENDS, Session

__all__ = ["USAGE", "RestateMagics"]

USAGE = {
    "get": "%restate get PATH",
    "set": "%restate set PATH EXPR",
    "del": "%restate del PATH",
    "ping": "%restate ping PATH",
    "derive": "%restate derive DEST = EXPR  (or a cell: %%restate derive DEST)",
    "tree": "%restate tree [PATH]",
    "backend": f"%restate backend {BACKENDS}",
    "status": "%restate status",
    "untrack": "%restate untrack [all | N | DEST]",
    "track": "%%restate track  (a cell magic: the cell body follows)",
}
GENERAL = "usage: %restate " + " | ".join(USAGE) + "; %%restate track | derive DEST"

# Errors that mean "this input cannot be applied"; others (from callbacks) keep their traceback.
_BAD_INPUT = (InvalidPathError, PathConflictError, SerializationError, SyntaxError)

_TOKEN = re.compile(r"""\s*(?:"([^"]*)"|'([^']*)'|([^\s=]+|=+))\s*""")


@magics_class
class RestateMagics(Magics):
    """The ``restate`` line and cell magic."""

    def __init__(self, shell: Any, session: Session) -> None:
        super().__init__(shell)
        self.session = session

    @line_cell_magic
    def restate(self, line: str, cell: str | None = None) -> Any:
        command, rest = _split_command(line)
        if cell is not None:
            return self._cell(command, rest, cell)
        handler = getattr(self, f"_line_{command}", None)
        if handler is None:
            raise UsageError(f"unknown command {command!r}; {GENERAL}" if command else GENERAL)
        try:
            return handler(rest)
        except _BAD_INPUT as error:
            raise UsageError(f"{USAGE[command]}: {_one_line(error)}") from None

    def _cell(self, command: str, rest: str, cell: str) -> None:
        try:
            self._track(command, rest, cell)
        except SyntaxError:
            self.session.shell.showsyntaxerror()  # like a plain cell: the error, not our frames

    def _track(self, command: str, rest: str, cell: str) -> None:
        if command == "track" and not rest:
            self.session.track(cell)
        elif command == "derive":
            dest, extra = _take_path(rest, "derive")
            if extra:
                raise UsageError(f"usage: %%restate derive DEST (got extra {extra!r})")
            try:
                self.session.track(cell, dest)
            except ValueError as error:
                raise UsageError(f"%%restate derive {dest}: {error}") from None
        else:
            raise UsageError("usage: %%restate track | %%restate derive DEST")

    def _line_get(self, rest: str) -> Any:
        return self.session.get(_only_path(rest, "get"))

    def _line_set(self, rest: str) -> None:
        path, expr = _take_path(rest, "set")
        if not expr:
            raise UsageError(f"usage: {USAGE['set']}")
        compile(expr, "<restate set>", "eval")
        self.session.set(path, expr)

    def _line_del(self, rest: str) -> None:
        self.session.delete(_only_path(rest, "del"))

    def _line_ping(self, rest: str) -> None:
        self.session.ping(_only_path(rest, "ping"))

    def _line_derive(self, rest: str) -> None:
        dest, tail = _take_path(rest, "derive")
        if not tail.startswith("=") or tail.startswith("=="):
            raise UsageError(f"usage: {USAGE['derive']}")
        expr = tail[1:].strip()
        if not expr:
            raise UsageError(f"usage: {USAGE['derive']}")
        compile(expr, "<restate derive>", "eval")
        try:
            self.session.derive(dest, expr)
        except CycleError as error:
            raise UsageError(f"CycleError: {error}") from None

    def _line_tree(self, rest: str) -> Any:
        path = _only_path(rest, "tree") if rest.strip() else "/"
        self.session.tree(path)

    def _line_backend(self, rest: str) -> None:
        kind, raw = _split_command(rest)
        argument = _unquote(raw) if raw else None
        try:
            backend = self.session.set_backend(kind, argument)
        except ValueError as error:
            raise UsageError(f"usage: {error}") from None
        except OSError as error:
            raise UsageError(f"{USAGE['backend']}: cannot open {argument!r}: {error}") from None
        print(f"restate: state now lives in {type(backend).__name__}({argument or ''})")

    def _line_status(self, rest: str) -> None:
        _no_arguments(rest, "status")
        print(self.session.status())

    def _line_untrack(self, rest: str) -> None:
        target = _unquote(rest.strip()) if rest.strip() else None
        if target is not None and " " in target:
            raise UsageError(f"usage: {USAGE['untrack']}")
        done = self.session.untrack(target)
        if done:
            print("restate: untracked " + ", ".join(done))
        else:
            what = "this cell" if target is None else repr(target)
            print(f"restate: nothing to untrack for {what}; see %restate status")

    def _line_track(self, rest: str) -> None:
        raise UsageError(f"usage: {USAGE['track']}")


def _split_command(line: str) -> tuple[str, str]:
    command, _, rest = line.strip().partition(" ")
    return command, rest.strip()


def _take_path(text: str, command: str) -> tuple[str, str]:
    """The first token of ``text`` (quoted or not), checked as a path, and the rest."""
    match = _TOKEN.match(text)
    if match is None or not text.strip():
        raise UsageError(f"usage: {USAGE[command]}")
    path = next(g for g in match.groups() if g is not None)
    try:
        to_parts(path)
    except (StateError, TypeError) as error:
        raise UsageError(f"{USAGE[command]}: {error}") from None
    return path, text[match.end() :].strip()


def _only_path(text: str, command: str) -> str:
    path, extra = _take_path(text, command)
    if extra:
        raise UsageError(f"usage: {USAGE[command]} (unexpected {extra!r})")
    return path


def _no_arguments(text: str, command: str) -> None:
    if text.strip():
        raise UsageError(f"usage: {USAGE[command]} (no arguments)")


def _one_line(error: BaseException) -> str:
    name = type(error).__name__
    text = error.msg if isinstance(error, SyntaxError) else str(error)
    return f"{name}: {text}".splitlines()[0]


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text
