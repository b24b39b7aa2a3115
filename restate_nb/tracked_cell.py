"""Tracked cells: a cell body run under the controller's tracker, its output shown in place.

Output goes into an ``ipywidgets.Output`` that the tracked cell displays once; every run
assigns ``output.outputs = (...)`` (what the body printed, displayed and raised, captured
in order). Why a widget and not display ids: a re-run can print, display several objects or
raise, so the number of outputs changes between runs, which ``update_display`` (a fixed set
of display ids) cannot express; an Output widget holds any list of outputs, can be assigned
from any thread (tracked cells re-run on the writer's thread), and is rendered in place by
JupyterLab, Notebook 7, VS Code and Colab, and stored by nbclient in the notebook's widget
state. The cost: a static viewer shows the last run only if widget state was saved.

A run never raises: errors become the cell's output, and the cell stays tracked with the
paths read before the error. A cell that writes a path it reads (``state["/n"] += 1``)
would trigger itself forever; it is reported as a ``CycleError`` in its own output and
untracked after that run.
"""

from __future__ import annotations

import ast
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import CodeType
from typing import Any

from restate.paths import Parts, parts_to_str, related, to_parts

from .capture import OutputCapture

__all__ = [
    "Recorder",
    "RunLog",
    "TrackedCell",
    "compile_body",
    "cycle_output",
    "self_loop_message",
]


@dataclass
class RunLog:
    """Paths read and written through ``state`` / ``%restate`` during one run."""

    reads: set[Parts] = field(default_factory=set)
    writes: set[Parts] = field(default_factory=set)

    def self_loop(self) -> list[Parts]:
        """The written paths that overlap a path read in the same run."""
        return sorted(w for w in self.writes if any(related(w, r) for r in self.reads))


class Recorder:
    """Per-thread stack of ``RunLog``: the proxy reports reads and writes to the top one."""

    def __init__(self) -> None:
        self._local = threading.local()

    @contextmanager
    def recording(self) -> Iterator[RunLog]:
        stack = self._stack()
        log = RunLog()
        stack.append(log)
        try:
            yield log
        finally:
            stack.pop()

    def read(self, path: Any) -> None:
        stack = self._stack()
        if stack:
            stack[-1].reads.add(to_parts(path))

    def wrote(self, path: Any) -> None:
        stack = self._stack()
        if stack:
            stack[-1].writes.add(to_parts(path))

    def _stack(self) -> list[RunLog]:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack


@dataclass(frozen=True)
class CompiledBody:
    """A cell body compiled once: the statements, then the last expression (if any)."""

    statements: CodeType
    last: CodeType | None
    filename: str


def compile_body(
    shell: Any, source: str, *, want_value: bool, count: int | None = None
) -> CompiledBody:
    """Compile ``source`` (IPython syntax allowed) like IPython would run it as a cell.

    With ``want_value`` the last expression is compiled for ``eval`` (its value is returned);
    otherwise it is displayed like a cell's result, unless it ends with ``;``. ``count`` is
    the execution count tracebacks name the code by (``Cell In[count]``).

    Raises:
        SyntaxError: the body is not valid Python.
        ValueError: ``want_value`` and the body does not end with an expression.
    """
    transformed = shell.transform_cell(source)
    number = shell.execution_count if count is None else count
    filename = shell.compile.cache(transformed, number, raw_code=source)
    tree = shell.transform_ast(shell.compile.ast_parse(transformed, filename))
    statements, last = list(tree.body), None
    flags = shell.compile.flags & ~ast.PyCF_ONLY_AST
    if statements and isinstance(statements[-1], ast.Expr):
        expr = statements.pop()
        if want_value:
            last = compile(ast.Expression(expr.value), filename, "eval", flags, True)
        elif not _ends_with_semicolon(shell, transformed):
            last = compile(ast.Interactive([expr]), filename, "single", flags, True)
        else:
            statements.append(expr)
    elif want_value:
        raise ValueError("the cell must end with an expression: its value is what gets written")
    module = ast.Module(statements, type_ignores=[])
    return CompiledBody(compile(module, filename, "exec", flags, True), last, filename)


def _ends_with_semicolon(shell: Any, source: str) -> bool:
    check = getattr(shell.displayhook, "semicolon_at_end_of_expression", None)
    if check is not None:
        return bool(check(source))
    return source.rstrip().endswith(";")  # IPython < 8.13; ignores a trailing comment


def self_loop_message(what: str, paths: list[Parts]) -> str:
    shown = ", ".join(parts_to_str(p) for p in paths)
    return (
        f"{what} writes {shown}, which it also reads, so every run would trigger the next. "
        f"It is no longer tracked: read and write different paths, then run it again."
    )


def cycle_output(message: str) -> dict[str, Any]:
    """An error output explaining a self-triggering cell; no traceback, it would not help."""
    return {
        "output_type": "error",
        "ename": "CycleError",
        "evalue": message,
        "traceback": [f"\x1b[0;31mCycleError\x1b[0m: {message}"],
    }


class TrackedCell:
    """One ``%%restate track`` (or ``%%restate derive DEST``) cell and its Output widget."""

    def __init__(
        self,
        *,
        number: int,
        key: Any,
        source: str,
        body: CompiledBody,
        shell: Any,
        controller: Any,
        recorder: Recorder,
        dest: Any = None,
        label: str = "",
    ) -> None:
        import ipywidgets

        self.number = number
        self.key = key
        self.source = source
        self.body = body
        self.dest = dest
        self.label = label
        self.output = ipywidgets.Output()
        self.tracker_id: Any = None
        self.callback: Any = None
        self.starting = False
        self.restoring = False
        self.kept_reads: frozenset[Any] = frozenset()
        self.active = True
        self.runs = 0
        self.last_run: float | None = None
        self.last_error: str | None = None
        self.log = RunLog()
        self.self_loop: list[Parts] = []
        self._shell = shell
        self._controller = controller
        self._recorder = recorder

    @property
    def is_derive(self) -> bool:
        return self.dest is not None

    def run(self) -> None:
        """Run the body now, capturing its output into the cell's Output widget."""
        with self._recorder.recording() as log, OutputCapture(self._shell) as capture:
            error = self._execute(capture, log)
        self.runs += 1
        self.last_run = time.time()
        self.log = log
        self.last_error = None if error is None else f"{type(error).__name__}: {error}"
        self.self_loop = log.self_loop()
        if self.self_loop:
            message = self_loop_message(f"tracked cell #{self.number}", self.self_loop)
            capture.outputs.append(cycle_output(message))
            self.last_error = "CycleError"
        self.output.outputs = tuple(capture.outputs)

    def _execute(self, capture: OutputCapture, log: RunLog) -> BaseException | None:
        shell = self._shell
        try:
            exec(self.body.statements, shell.user_global_ns, shell.user_ns)
            if self.body.last is None:
                return None
            value = eval(self.body.last, shell.user_global_ns, shell.user_ns)
            if self.dest is not None:
                self._controller.set_state(self.dest, value)
                log.writes.add(to_parts(self.dest))
        except Exception as error:
            capture.add_error(error, tb_offset=1)
            return error
        return None

    def show_error(self, output: dict[str, Any]) -> None:
        """Replace the cell's output with one error output (used for cycles between cells)."""
        self.last_error = output.get("ename", "error")
        self.output.outputs = (output,)

    def describe(self) -> str:
        """``cell #2`` or ``cell #3 -> /total``, as shown by ``%restate status``."""
        text = f"cell #{self.number}"
        if self.label:
            text += f" [{self.label}]"
        if self.dest is not None:
            text += f" -> {self.dest}"
        return text
