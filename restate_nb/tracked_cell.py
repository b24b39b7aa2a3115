"""Tracked cells: a cell body run as a tracked function of the controller, its output shown
in place, with a status line saying why it last ran (or why it is stale).

Output goes into an ``ipywidgets.Output`` that the tracked cell displays once (under a small
``ipywidgets.HTML`` status line); every run assigns ``output.outputs = (...)`` (what the body
printed, displayed and raised, captured in order). Why a widget and not display ids: a re-run
can print, display several objects or raise, so the number of outputs changes between runs,
which ``update_display`` (a fixed set of display ids) cannot express; an Output widget holds
any list of outputs, can be assigned from any thread (tracked cells re-run on the writer's
thread), and is rendered in place by JupyterLab, Notebook 7, VS Code and Colab, and stored by
nbclient in the notebook's widget state. The cost: a static viewer shows the last run only if
widget state was saved.

When a cell runs, in what order, and which loops are refused is the core scheduler's
business (restate/_engine/scheduler.py); this module only runs the body and shows what the
scheduler says about it (``TrackerInfo``: why, status, reason).

A run shows its error in the cell's own output (traceback from the user's code) and re-raises
it to the scheduler, which marks the cell failed and its readers stale; the cell is tracked
with ``raise_errors=False``, so the writer's cell gets one line on stderr, not a traceback.
"""

from __future__ import annotations

import ast
import html
import sys
from dataclasses import dataclass
from types import CodeType
from typing import Any

from .capture import OutputCapture

__all__ = ["TrackedCell", "compile_body", "cycle_output", "failure_note", "from_user_code"]


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


def cycle_output(message: str) -> dict[str, Any]:
    """An error output explaining a self-triggering cell; no traceback, it would not help."""
    return {
        "output_type": "error",
        "ename": "CycleError",
        "evalue": message,
        "traceback": [f"\x1b[0;31mCycleError\x1b[0m: {message}"],
    }


def from_user_code(error: BaseException) -> BaseException:
    """``error`` with our frame (the one calling ``exec``/``eval``) cut from its traceback,
    so it starts at the user's code (IPython 9 ignores ``tb_offset``)."""
    tb = error.__traceback__
    if tb is not None and tb.tb_next is not None:
        error.__traceback__ = tb.tb_next
    return error


def failure_note(name: str, error: BaseException) -> str:
    """The one line a writer's cell gets when a run it caused failed elsewhere."""
    text = f"{type(error).__name__}: {error}".splitlines()[0]
    return f"restate: {name} failed ({text}); its output shows the traceback"


class TrackedCell:
    """One ``%%restate track`` (or ``%%restate derive DEST``) cell: its body, its Output
    widget and status line, and what it shows for each run and mark."""

    def __init__(
        self,
        *,
        number: int,
        key: Any,
        source: str,
        body: CompiledBody,
        shell: Any,
        controller: Any,
        dest: Any = None,
        label: str = "",
        policy: str = "now",
        debounce: float | None = None,
    ) -> None:
        import ipywidgets

        self.number = number
        self.key = key
        self.source = source
        self.body = body
        self.dest = dest
        self.label = label
        self.policy = policy
        self.debounce = debounce
        self.output = ipywidgets.Output()
        self.status = ipywidgets.HTML(layout=ipywidgets.Layout(margin="0"))
        self.status.add_class("restate-tracked-status")
        self.view = ipywidgets.VBox([self.status, self.output])
        self.view.add_class("restate-tracked")  # scripts/headless.py shows it as a cell
        self.tracker_id: Any = None
        self.active = True
        self.runs = 0
        self.timer: Any = None  # the pending debounce timer
        self._shell = shell
        self._controller = controller

    @property
    def is_derive(self) -> bool:
        return self.dest is not None

    @property
    def name(self) -> str:
        """How loops, failures and why lines name the cell: ``cell [3]``."""
        return f"cell [{self.label[3:-1]}]" if self.label.startswith("In[") else self.label

    def __call__(self, event: Any) -> None:
        """The tracked function: run the body; re-raise its error for the scheduler."""
        if not self.active:
            return
        error = self.run()
        if error is not None:
            if self.runs > 1:  # a re-run: the writer's cell gets one line, not a traceback
                print(failure_note(self.name, error), file=sys.stderr)
            raise error

    def run(self) -> Exception | None:
        """Run the body now, capturing its output into the cell's Output widget."""
        with OutputCapture(self._shell) as capture:
            error = self._execute(capture)
        self.runs += 1
        info = self.info()  # its why is this run's; its status is the previous run's
        # the status line first: a watcher of the outputs (scripts/headless.py) sees both new
        self.status.value = _line(_ran_text(info.why if info else None, error))
        self.output.outputs = tuple(capture.outputs)
        return error

    def _execute(self, capture: OutputCapture) -> Exception | None:
        shell = self._shell
        try:
            exec(self.body.statements, shell.user_global_ns, shell.user_ns)
            if self.body.last is None:
                return None
            value = eval(self.body.last, shell.user_global_ns, shell.user_ns)
            if self.dest is not None:
                self._controller.set_state(self.dest, value)
        except Exception as error:
            capture.add_error(from_user_code(error))
            return error
        return None

    # -- what the scheduler says ------------------------------------------------------------

    def info(self) -> Any:
        """This cell's ``TrackerInfo`` (None when it is not tracked)."""
        return next((i for i in self._controller.trackers() if i.id == self.tracker_id), None)

    def show_status(self) -> None:
        """The status line: why it last ran, or why it is stale, failed or refused."""
        info = self.info()
        self.status.value = _status_html(info) if info is not None else ""

    def show_refused(self, error: BaseException) -> None:
        """A loop through this cell was refused: the error replaces its output."""
        text = str(error).replace("until tracked again", "until their cells are run again")
        self.output.outputs = (cycle_output(text),)
        self.show_status()

    def describe(self) -> str:
        """``cell #2 [In[5]]`` or ``cell #3 [In[7]] -> /total``, as ``%restate status`` and
        ``%restate untrack`` show it (``#N`` is what ``%restate untrack N`` takes)."""
        text = f"cell #{self.number}"
        if self.label:
            text += f" [{self.label}]"
        if self.dest is not None:
            text += f" -> {self.dest}"
        if self.policy == "lazy":
            text += " (lazy)" if self.debounce is None else f" (debounce {self.debounce:g} s)"
        return text


def _status_html(info: Any) -> str:
    status, reason = info.status, info.reason
    if status == "refused":
        return _line("⛔ refused: part of a loop (see below)")
    if status == "stale" and reason is not None:
        how = "; %restate run updates it" if info.policy == "lazy" else ""
        return _line(f"⚠ stale: {reason}{how}")
    return _line(_ran_text(info.why, info.error if status == "failed" else None))


def _ran_text(why: Any, error: BaseException | None) -> str:
    """Why the last run happened ("" for the run at registration), and how it ended."""
    if error is not None:
        after = f" after {why}" if why is not None and why.path is not None else ""
        return f"✖ failed ({type(error).__name__}){after}"
    if why is None or why.path is None:
        return ""
    return f"↻ ran because {why}"


def _line(text: str) -> str:
    if not text:
        return ""
    return (
        '<span class="restate-why" style="color: var(--jp-ui-font-color2, #777); '
        f'font-size: 0.85em">{html.escape(text)}</span>'
    )
