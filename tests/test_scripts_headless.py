"""The headless main job (`scripts/run --headless`) runs notebooks in a real kernel and reports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

# every test starts a real kernel: not part of the quick loop
pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parent.parent
HEADLESS = REPO_ROOT / "scripts" / "headless.py"

GOOD_CELLS = [
    "print('hello from cell one')\n6 * 7",
    "import ipywidgets as w\nout = w.Output()\nout",
    # What a tracked cell does on a re-run: replace the content of its Output widget.
    "out.outputs = ({'output_type': 'stream', 'name': 'stdout', 'text': 'rerun shows 2\\n'},)",
    "w.VBox([w.IntSlider(value=3, description='n'), w.Label('hi')])",
]


def write_notebook(
    path: Path, sources: list[str], tags: dict[int, list[str]] | None = None
) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    for index, cell_tags in (tags or {}).items():
        nb.cells[index].metadata["tags"] = cell_tags
    nbformat.write(nb, path)
    return path


def run_headless(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEADLESS), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )


def test_headless_job_prints_cell_text_results_and_what_output_widgets_hold(tmp_path):
    notebook = write_notebook(tmp_path / "good.ipynb", GOOD_CELLS)

    result = run_headless(notebook)

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "[1] print('hello from cell one')" in lines
    assert "    hello from cell one" in lines
    assert "    42" in lines
    # The Output widget shown by cell 2 holds what cell 3 put there later.
    cell_two = lines.index("[2] import ipywidgets as w")
    assert lines[cell_two + 1 : cell_two + 3] == ["    Output widget:", "        rerun shows 2"]
    assert "        IntSliderModel(description='n', value=3)" in lines
    assert "1 of 1 notebooks ran without errors" in lines


def test_headless_job_fails_with_the_traceback_when_a_cell_raises(tmp_path):
    notebook = write_notebook(
        tmp_path / "bad.ipynb", ["print('before')", "raise ValueError('boom in cell two')"]
    )

    result = run_headless(notebook)

    assert result.returncode == 1
    assert "    before" in result.stdout
    assert "ValueError: boom in cell two" in result.stdout
    assert "FAILED" in result.stderr and "Traceback" in result.stderr
    assert "ValueError: boom in cell two" in result.stderr
    assert "0 of 1 notebooks ran without errors" in result.stdout


def test_headless_job_fails_when_an_output_widget_holds_an_error(tmp_path):
    error = "{'output_type': 'error', 'ename': 'KeyError', 'evalue': 'late', 'traceback': []}"
    notebook = write_notebook(
        tmp_path / "widget_error.ipynb",
        ["import ipywidgets as w\nout = w.Output()\nout", f"out.outputs = ({error},)"],
    )

    result = run_headless(notebook)

    assert result.returncode == 1
    assert "shows errors" in result.stderr
    assert "KeyError: late" in result.stderr


def test_headless_job_accepts_an_error_in_a_cell_tagged_raises_exception(tmp_path):
    notebook = write_notebook(
        tmp_path / "expected.ipynb",
        ["raise ZeroDivisionError('on purpose')", "print('still running')"],
        tags={0: ["raises-exception"]},
    )

    result = run_headless(notebook)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "ZeroDivisionError: on purpose" in result.stdout
    assert "    still running" in result.stdout


def test_headless_job_runs_every_notebook_of_a_directory_and_names_the_failed_ones(tmp_path):
    write_notebook(tmp_path / "a_good.ipynb", ["print('a')"])
    write_notebook(tmp_path / "b_bad.ipynb", ["1 / 0"])
    write_notebook(tmp_path / "c_good.ipynb", ["print('c')"])

    result = run_headless(tmp_path)

    assert result.returncode == 1
    order = [line for line in result.stdout.splitlines() if line.startswith("=== ")]
    assert [Path(line[4:]).name for line in order] == [
        "a_good.ipynb",
        "b_bad.ipynb",
        "c_good.ipynb",
    ]
    assert "2 of 3 notebooks ran without errors" in result.stdout
    assert result.stderr.rstrip().endswith("b_bad.ipynb")


@pytest.mark.parametrize("make", ["empty dir", "not a notebook"])
def test_headless_job_refuses_paths_without_notebooks(tmp_path, make):
    target = tmp_path if make == "empty dir" else tmp_path / "notes.txt"
    if make == "not a notebook":
        target.write_text("hello")

    result = run_headless(target)

    assert result.returncode != 0
    assert "error:" in result.stderr


def test_run_command_with_headless_sets_up_then_executes_the_named_notebook(tmp_path):
    notebook = write_notebook(tmp_path / "one.ipynb", ["print('through scripts/run')"])

    result = subprocess.run(
        [str(REPO_ROOT / "scripts" / "run"), "--headless", str(notebook)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "== python environment" in result.stdout
    assert "    through scripts/run" in result.stdout
    assert "== headless run of the examples:" in result.stdout
