"""The headless main job: execute notebooks with a real kernel and print what each cell shows.

Usage: ``python scripts/headless.py [NOTEBOOK_OR_DIR ...]`` (default: ``examples/``).

Printed as the notebook runs: each code cell as ``[n] first line of its source`` when it
starts, then its outputs when it ends: text, results, errors, and the content of widgets (an
``ipywidgets.Output`` with the outputs it holds, a ``StateTree`` as the indented text it
shows). While a later cell runs, every re-run of a tracked cell is printed as it happens,
under that cell, as ``↻ [n] re-ran:`` followed by what the tracked cell shows now (its why
line included), and a tree that changed is printed again when the cell ends::

    [2] %%restate track
        Output widget:
            total = 3
    [3] state["/a"] = 5
        ↻ [2] re-ran:
            total = 8

Exit status is 1 when any notebook fails: a cell raised, or an error output appeared anywhere
(inside a widget too), unless the cell is tagged ``raises-exception`` (the nbclient/nbval
convention).
"""

from __future__ import annotations

import argparse
import html
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

REPO_ROOT = Path(__file__).resolve().parent.parent
WIDGET_STATE_KEY = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW_KEY = "application/vnd.jupyter.widget-view+json"
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
INDENT = "    "
# restate_nb's tracked cell: a box (its status line, its Output widget), see tracked_cell.py
TRACKED_VIEW, TRACKED_STATUS = "restate-tracked", "restate-tracked-status"


def find_notebooks(paths: list[Path]) -> list[Path]:
    """Notebook files named by ``paths`` (directories give their ``*.ipynb``, sorted)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(path.glob("*.ipynb")))
        elif path.suffix == ".ipynb" and path.is_file():
            found.append(path)
        else:
            raise SystemExit(f"error: {path} is neither a notebook nor a directory")
    if not found:
        raise SystemExit(f"error: no notebooks found in {', '.join(map(str, paths))}")
    return found


def python_kernel_manager() -> KernelManager:
    """A manager for the kernel of *this* interpreter, ignoring kernelspecs installed elsewhere."""
    specs = KernelSpecManager(kernel_dirs=[], ensure_native_kernel=True)
    return KernelManager(kernel_name="python3", kernel_spec_manager=specs)


class LiveClient(NotebookClient):
    """A NotebookClient that prints each cell as it runs and widget updates as they arrive
    (when it has a ``printer``)."""

    printer: LivePrinter | None = None

    async def async_execute_cell(
        self,
        cell: Any,
        cell_index: int,
        execution_count: int | None = None,
        store_history: bool = True,
    ) -> Any:
        printer = self.printer if cell.cell_type == "code" and cell.source.strip() else None
        if printer is not None:
            printer.start(cell)
        try:
            return await super().async_execute_cell(
                cell, cell_index, execution_count, store_history
            )
        finally:
            if printer is not None:
                printer.finish(cell, self.live_widgets())

    def handle_comm_msg(self, outs: list[Any], msg: dict[str, Any], cell_index: int) -> None:
        super().handle_comm_msg(outs, msg, cell_index)
        state = msg["content"].get("data", {}).get("state") or {}
        if self.printer is not None and "outputs" in state:
            self.printer.output_changed(msg["content"]["comm_id"], self.live_widgets())

    def live_widgets(self) -> dict[str, dict[str, Any]]:
        """The widget states so far, shaped like the notebook's stored widget state."""
        return {
            model_id: {"model_name": state.get("_model_name", "widget"), "state": state}
            for model_id, state in self.widget_state.items()
        }


class LivePrinter:
    """Prints cells when they start and end, and re-runs of tracked cells as they happen."""

    def __init__(self) -> None:
        self.count = 0  # execution count of the last cell that ran
        self.shown_by: dict[str, tuple[str, bool]] = {}  # model id -> (cell label, tracked?)
        self.trees: dict[str, list[str]] = {}  # tree model id -> the lines printed last
        self.view_of: dict[str, str] = {}  # a tracked cell's Output id -> its view's id

    def start(self, cell: Any) -> None:
        print(f"[{self.count + 1}] {first_line(cell)}", flush=True)

    def finish(self, cell: Any, widgets: dict[str, Any]) -> None:
        self.count = cell.get("execution_count") or self.count + 1
        lines: list[str] = []
        for output in cell.get("outputs", []):
            lines.extend(INDENT + line for line in describe_output(output, widgets, set()))
        lines.extend(self._changed_trees(widgets))
        for model_id in displayed_models(cell.get("outputs", [])):
            tracked = cell.source.lstrip().startswith("%%restate")
            self.shown_by[model_id] = (f"[{self.count}]", tracked)
            for child in _tracked_view_children(widgets.get(model_id)):
                self.view_of[child] = model_id
            if _is_tree(widgets.get(model_id)):
                self.trees[model_id] = list(describe_widget(model_id, widgets, set()))
        if lines:
            print("\n".join(lines), flush=True)

    def output_changed(self, model_id: str, widgets: dict[str, Any]) -> None:
        view = self.view_of.get(model_id, model_id)
        if view not in self.shown_by:
            return  # still the cell that shows it: its outputs are printed when it ends
        label, tracked = self.shown_by[view]
        title = f"↻ {label} re-ran:" if tracked else f"↻ the Output widget of {label} now shows:"
        inner = list(describe_widget(model_id, widgets, set()))[1:]  # without "Output widget:"
        if view != model_id:  # a tracked cell: its status line (why it ran) comes first
            status = [c for c in _tracked_view_children(widgets.get(view)) if c != model_id]
            why = [line for c in status for line in describe_widget(c, widgets, set())]
            inner = [INDENT + line for line in why] + inner
        print("\n".join([INDENT + title, *(INDENT + line for line in inner)]), flush=True)

    def _changed_trees(self, widgets: dict[str, Any]) -> list[str]:
        lines: list[str] = []
        for model_id, before in self.trees.items():
            now = list(describe_widget(model_id, widgets, set()))
            if now != before:
                self.trees[model_id] = now
                label = self.shown_by[model_id][0]
                lines.append(f"{INDENT}↻ the StateTree of {label} now shows:")
                lines.extend(INDENT + line for line in now[1:])
        return lines


def _tracked_view_children(model: dict[str, Any] | None) -> list[str]:
    """The child ids of a restate_nb tracked cell's view (status line, Output); [] otherwise."""
    state = (model or {}).get("state", {})
    if TRACKED_VIEW not in state.get("_dom_classes", ()):
        return []
    return [str(c).removeprefix("IPY_MODEL_") for c in state.get("children", [])]


def first_line(cell: Any) -> str:
    return str(cell.source.strip().splitlines()[0])


def displayed_models(outputs: list[dict[str, Any]]) -> list[str]:
    """Model ids of the widgets a cell displays."""
    views = (o.get("data", {}).get(WIDGET_VIEW_KEY) for o in outputs)
    return [view["model_id"] for view in views if view and view.get("model_id")]


def execute(path: Path, timeout: int, live: bool = False) -> tuple[Any, str | None]:
    """Run the notebook at ``path`` (printing as it goes when ``live``); return it with its
    outputs and the error text, if any. The kernel's stderr (start-up warnings) is shown only
    with a failure.
    """
    nb = nbformat.read(path, as_version=4)
    client = LiveClient(
        nb,
        km=python_kernel_manager(),
        timeout=timeout,
        startup_timeout=60,
        store_widget_state=True,
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.printer = LivePrinter() if live else None
    with tempfile.TemporaryFile("w+") as kernel_stderr:
        try:
            client.execute(stderr=kernel_stderr)
        except CellExecutionError as error:
            client.set_widgets_metadata()  # nbclient stores widget state only on success
            kernel_stderr.seek(0)
            return nb, f"{strip_ansi(str(error))}\n--- kernel stderr ---\n{kernel_stderr.read()}"
    return nb, None


def strip_ansi(text: str) -> str:
    return ANSI_ESCAPE.sub("", text)


def widget_states(nb: Any) -> dict[str, dict[str, Any]]:
    return nb.metadata.get("widgets", {}).get(WIDGET_STATE_KEY, {}).get("state", {})


def describe_output(
    output: dict[str, Any], widgets: dict[str, Any], seen: set[str]
) -> Iterator[str]:
    """Lines showing one nbformat output, widgets expanded."""
    kind = output.get("output_type")
    if kind == "stream":
        yield from output.get("text", "").rstrip("\n").splitlines()
    elif kind == "error":
        yield from strip_ansi("\n".join(output.get("traceback", []))).splitlines()
    elif kind in ("execute_result", "display_data"):
        data = output.get("data", {})
        if WIDGET_VIEW_KEY in data:
            yield from describe_widget(data[WIDGET_VIEW_KEY].get("model_id", ""), widgets, seen)
        elif "text/plain" in data:
            yield from str(data["text/plain"]).splitlines()
        else:
            yield f"<{', '.join(sorted(data))}>"


def describe_widget(model_id: str, widgets: dict[str, Any], seen: set[str]) -> Iterator[str]:
    """Lines showing a widget: an Output's content, a box's children, or its name and value."""
    model = widgets.get(model_id)
    if model is None or model_id in seen:
        yield f"<widget {model_id} (no stored state)>"
        return
    seen = seen | {model_id}
    state = model.get("state", {})
    if _is_tree(model):
        yield from describe_tree(state)
        return
    name = state.get("_anywidget_id") or model.get("model_name", "widget")
    if model.get("model_name") == "OutputModel":
        yield "Output widget:"
        for inner in state.get("outputs", []):
            yield from (INDENT + line for line in describe_output(inner, widgets, seen))
        return
    if TRACKED_VIEW in state.get("_dom_classes", ()):  # a tracked cell: why line, output
        for child in state.get("children", []):
            yield from describe_widget(str(child).removeprefix("IPY_MODEL_"), widgets, seen)
        return
    if TRACKED_STATUS in state.get("_dom_classes", ()):
        text = html.unescape(re.sub(r"<[^>]*>", "", state.get("value") or ""))
        yield from ([text] if text else [])
        return
    summary = [f"{key}={state[key]!r}" for key in ("description", "value") if state.get(key)]
    yield f"{name}({', '.join(summary)})" if summary else f"{name}"
    for child in state.get("children", []):
        child_id = str(child).removeprefix("IPY_MODEL_")
        yield from (INDENT + line for line in describe_widget(child_id, widgets, seen))


def _is_tree(model: dict[str, Any] | None) -> bool:
    state = (model or {}).get("state", {})
    return str(state.get("_anywidget_id", "")).endswith(".StateTree")


def describe_tree(state: dict[str, Any]) -> Iterator[str]:
    """The text a StateTree shows: its published snapshot (``_snapshot``), indented."""
    root = (state.get("_snapshot") or {}).get("root")
    if root is None:
        yield f"StateTree of {state.get('path', '/')} (no snapshot stored)"
        return
    yield f"StateTree of {root['path']}:"
    if root.get("kind") != "dict":
        yield from (INDENT + line for line in tree_node(root))
        return
    for child in root.get("children", []):
        yield from (INDENT + line for line in tree_node(child))
    yield from _more(root)


def tree_node(rec: dict[str, Any]) -> Iterator[str]:
    """One node record and the children the view shows, as indented lines."""
    key, kind = rec.get("key"), rec.get("kind")
    if kind == "leaf":
        yield f"{key}: {rec.get('json')}{'…' if rec.get('truncated') else ''}"
    elif kind == "missing":
        yield f"{key}: (no value)"
    else:
        count = rec.get("count", 0)
        shown = "▾" if "children" in rec else "▸"
        yield f"{shown} {key} {{{count} {'key' if count == 1 else 'keys'}}}"
        for child in rec.get("children", []):
            yield from (INDENT + line for line in tree_node(child))
        yield from _more(rec)


def _more(rec: dict[str, Any]) -> Iterator[str]:
    hidden = rec.get("count", 0) - len(rec.get("children", []))
    if "children" in rec and hidden > 0:
        yield f"{INDENT}… {hidden} more"


def error_outputs(output: dict[str, Any], widgets: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Error outputs in ``output`` and in the Output widgets it displays."""
    if output.get("output_type") == "error":
        yield output
    view = output.get("data", {}).get(WIDGET_VIEW_KEY)
    if view:
        yield from _widget_errors(view.get("model_id", ""), widgets)


def _widget_errors(model_id: str, widgets: dict[str, Any]) -> Iterator[dict[str, Any]]:
    state = widgets.get(model_id, {}).get("state", {})
    for inner in state.get("outputs", []):
        yield from error_outputs(inner, widgets)
    if TRACKED_VIEW in state.get("_dom_classes", ()):  # the tracked cell's Output inside
        for child in state.get("children", []):
            yield from _widget_errors(str(child).removeprefix("IPY_MODEL_"), widgets)


def report(nb: Any) -> tuple[list[str], list[str]]:
    """The printed lines for every code cell, and the unexpected errors found."""
    widgets = widget_states(nb)
    lines: list[str] = []
    problems: list[str] = []
    for cell in nb.cells:
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        first = cell.source.strip().splitlines()[0]
        lines.append(f"[{cell.get('execution_count') or ' '}] {first}")
        for output in cell.get("outputs", []):
            lines.extend(INDENT + line for line in describe_output(output, widgets, set()))
            expected = "raises-exception" in cell.get("metadata", {}).get("tags", [])
            if not expected:
                problems.extend(
                    f"{first}: {err.get('ename')}: {err.get('evalue')}"
                    for err in error_outputs(output, widgets)
                )
    return lines, problems


def run_one(path: Path, timeout: int) -> bool:
    """Execute and print one notebook; True when it ran without unexpected errors."""
    started = time.perf_counter()
    print(f"=== {display_name(path)}", flush=True)
    nb, failure = execute(path, timeout, live=True)  # prints the cells as they run
    _, problems = report(nb)
    elapsed = time.perf_counter() - started
    if failure:
        print(f"\nFAILED: {display_name(path)} stopped at an error:\n{failure}", file=sys.stderr)
        return False
    if problems:
        print(f"\nFAILED: {display_name(path)} shows errors:", file=sys.stderr)
        print("\n".join(f"  {problem}" for problem in problems), file=sys.stderr)
        return False
    print(f"--- ok ({elapsed:.1f} s)\n", flush=True)
    return True


def display_name(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, default=[REPO_ROOT / "examples"])
    parser.add_argument("--timeout", type=int, default=120, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    notebooks = find_notebooks(args.paths)
    failed = [path for path in notebooks if not run_one(path, args.timeout)]
    ok = len(notebooks) - len(failed)
    print(f"{ok} of {len(notebooks)} notebooks ran without errors")
    if failed:
        print("failed: " + ", ".join(display_name(path) for path in failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
