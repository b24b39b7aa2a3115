"""The headless main job: execute notebooks with a real kernel and print what each cell shows.

Usage: ``python scripts/headless.py [NOTEBOOK_OR_DIR ...]`` (default: ``examples/``).

Each code cell is printed as ``[n] first line of its source`` followed by its outputs: text,
results, errors, and the content of widgets -- an ``ipywidgets.Output`` is shown with the outputs
it holds at the end of the run, which is where tracked cells put their re-runs. Exit status is 1
when any notebook fails: a cell raised, or an error output appeared anywhere (inside a widget
too), unless the cell is tagged ``raises-exception`` (the nbclient/nbval convention).
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


def execute(path: Path, timeout: int) -> tuple[Any, str | None]:
    """Run the notebook at ``path``; return it with its outputs and the error text, if any.

    The kernel's own stderr (start-up warnings) is kept aside and shown only with a failure.
    """
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        km=python_kernel_manager(),
        timeout=timeout,
        startup_timeout=60,
        store_widget_state=True,
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
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
    nb, failure = execute(path, timeout)
    lines, problems = report(nb)
    print("\n".join(lines), flush=True)
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
