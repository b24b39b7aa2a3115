"""``%restate`` / ``%%restate``: parse the command line and delegate to the Session.

Bad input raises ``UsageError`` with the one-line usage of the command, which IPython shows
without a traceback.

Python expressions are taken as typed: the magic is ``no_var_expand``, so IPython's
``{expr}`` / ``$name`` expansion does not touch the EXPR of ``%restate set PATH EXPR`` and
``%restate derive DEST = EXPR`` (``%restate set /s {1, 2}`` stores the set ``{1, 2}``, not the
tuple IPython's expansion would make of it). Everything else -- paths, the backend argument,
``%%restate derive DEST`` -- is expanded here as IPython would (names from the notebook's
namespace; text that does not format is kept as is), so ``%restate backend sqlite {db}`` and
``%restate get /users/$uid`` keep working.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.display import display
from IPython.utils.text import DollarFormatter

from restate.errors import (
    CycleError,
    InvalidPathError,
    PathConflictError,
    SerializationError,
    StateError,
)
from restate.missing import MISSING
from restate.paths import to_parts

from .backend_switch import SwitchRefused
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
    "run": "%restate run  (runs the stale --lazy cells now)",
    "untrack": "%restate untrack [all | N | DEST]",
    "track": "%%restate track [--lazy | --debounce SECONDS]  (a cell magic: the body follows)",
}
GENERAL = "usage: %restate " + " | ".join(USAGE) + "; %%restate track | derive DEST"

# Errors that mean "this input cannot be applied"; others (from callbacks) keep their traceback.
_BAD_INPUT = (InvalidPathError, PathConflictError, SerializationError, SyntaxError)

_EXPRESSION_COMMANDS = ("set", "derive")  # their EXPR is Python, never expanded

_TOKEN = re.compile(r"""\s*(?:"([^"]*)"|'([^']*)'|([^\s=]+|=+))\s*""")


@magics_class
class RestateMagics(Magics):
    """The ``restate`` line and cell magic."""

    def __init__(self, shell: Any, session: Session) -> None:
        super().__init__(shell)
        self.session = session

    @line_cell_magic
    @no_var_expand
    def restate(self, line: str, cell: str | None = None) -> Any:
        command, rest = _split_command(line)
        if cell is not None or command not in _EXPRESSION_COMMANDS:
            rest = self._expand(rest)
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
        if command == "track":
            lazy, debounce = _track_options(rest)
            self.session.track(cell, lazy=lazy, debounce=debounce)
        elif command == "derive":
            dest, extra = _take_path(rest, "derive")
            if extra:
                raise UsageError(f"usage: %%restate derive DEST (got extra {extra!r})")
            try:
                self.session.track(cell, dest)
            except ValueError as error:
                raise UsageError(f"%%restate derive {dest}: {error}") from None
        else:
            raise UsageError(f"usage: {USAGE['track']} | %%restate derive DEST")

    def _line_get(self, rest: str) -> Any:
        path = _only_path(rest, "get")
        value = self.session.get(path)
        if value is MISSING:
            print(f"restate: nothing stored at {path} (the path does not exist)")
            return None
        return value

    def _expand(self, text: str) -> str:
        """``text`` with ``{expr}`` and ``$name`` expanded as IPython does for other magics."""
        try:
            return str(DollarFormatter().vformat(text, args=[], kwargs=self.session.shell.user_ns))
        except Exception:  # like IPython: what does not format stays as typed
            return text

    def _expanded_path(self, path: str, command: str) -> str:
        path = self._expand(path)
        _check_path(path, command)
        return path

    def _line_set(self, rest: str) -> None:
        path, expr = _take_path(rest, "set")
        path = self._expanded_path(path, "set")
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
        dest = self._expanded_path(dest, "derive")
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
        kind, argument, mode = _parse_backend(rest)
        try:
            line = self.session.set_backend(kind, argument, mode)
        except ValueError as error:  # SwitchRefused is a StateError, not a ValueError
            raise UsageError(f"usage: {error}") from None
        except SwitchRefused as error:
            raise UsageError(f"%restate backend: {error}") from None
        except SerializationError as error:
            raise UsageError(f"%restate backend: cannot copy the state: {error}; "
                             f"nothing changed") from None  # fmt: skip
        except OSError as error:
            raise UsageError(f"{USAGE['backend']}: cannot open {argument!r}: {error}") from None
        print(f"restate: {line}")

    def _line_status(self, rest: str) -> None:
        _no_arguments(rest, "status")
        bundle = {
            "text/plain": self.session.status(),
            "text/markdown": self.session.status_markdown(),
        }
        display(bundle, raw=True)  # a Mermaid picture where Markdown renders, else the text

    def _line_run(self, rest: str) -> None:
        _no_arguments(rest, "run")
        ran = self.session.run_stale()
        print(f"restate: ran {ran} stale cell{'' if ran == 1 else 's'}")

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


def _track_options(rest: str) -> tuple[bool, float | None]:
    """``--lazy`` or ``--debounce SECONDS`` (nothing else) for ``%%restate track``."""
    words = rest.split()
    if not words:
        return False, None
    if words == ["--lazy"]:
        return True, None
    if len(words) == 2 and words[0] == "--debounce":
        try:
            seconds = float(words[1])
        except ValueError:
            seconds = -1.0
        if seconds >= 0:
            return False, seconds
        raise UsageError(f"usage: {USAGE['track']} (SECONDS: a number >= 0, not {words[1]!r})")
    raise UsageError(f"usage: {USAGE['track']} (got {rest!r})")


def _parse_backend(rest: str) -> tuple[str, str | None, str]:
    """KIND, ARG (None when absent) and the mode (auto, copy, open) of a backend line."""
    try:
        words = shlex.split(rest)
    except ValueError as error:
        raise UsageError(f"usage: {USAGE['backend']} ({error})") from None
    flags = [w for w in words if w.startswith("--")]
    words = [w for w in words if not w.startswith("--")]
    if not words or len(words) > 2 or len(flags) > 1 or not set(flags) <= {"--copy", "--open"}:
        raise UsageError(f"usage: {USAGE['backend']}")
    mode = flags[0][2:] if flags else "auto"
    return words[0], words[1] if len(words) == 2 else None, mode


def _split_command(line: str) -> tuple[str, str]:
    command, _, rest = line.strip().partition(" ")
    return command, rest.strip()


def _take_path(text: str, command: str) -> tuple[str, str]:
    """The first token of ``text`` (quoted or not), checked as a path, and the rest."""
    match = _TOKEN.match(text)
    if match is None or not text.strip():
        raise UsageError(f"usage: {USAGE[command]}")
    path = next(g for g in match.groups() if g is not None)
    _check_path(path, command)
    return path, text[match.end() :].strip()


def _check_path(path: str, command: str) -> None:
    try:
        to_parts(path)
    except (StateError, TypeError) as error:
        raise UsageError(f"{USAGE[command]}: {error}") from None


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
