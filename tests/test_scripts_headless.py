"""The headless main job (`scripts/run --headless`) runs notebooks in a real kernel and reports."""

from __future__ import annotations

import re
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
    # The Output widget shown by cell 2 is empty then; cell 3 fills it, which is printed there.
    cell_two = lines.index("[2] import ipywidgets as w")
    assert lines[cell_two + 1] == "    Output widget:"
    cell_three = lines.index("[3] out.outputs = ({'output_type': 'stream', 'name': 'stdout', "
                             "'text': 'rerun shows 2\\n'},)")  # fmt: skip
    assert lines[cell_three + 1 : cell_three + 3] == [
        "    ↻ the Output widget of [2] now shows:",
        "        rerun shows 2",
    ]
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


TRACKED_NOTEBOOK = [
    '%load_ext restate_nb\nstate["/a"] = 1',
    '%%restate track\nprint("total =", state["/a"] * 3)',
    "%restate tree",
    'state["/a"] = 5\nstate["/cfg/x"] = [1, 2]',
]


def test_headless_job_prints_each_rerun_under_the_cell_that_caused_it_and_the_tree_text(
    tmp_path,
):
    notebook = write_notebook(tmp_path / "tracked.ipynb", TRACKED_NOTEBOOK)

    result = run_headless(notebook)

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    start = lines.index("[1] %load_ext restate_nb")
    why = lines.pop(start + 9)  # the re-run's status line: why it ran
    assert re.fullmatch(r"        ↻ ran because /a changed \(cell \[4\], \d\d:\d\d:\d\d\)", why)
    assert lines[start : start + 13] == [
        "[1] %load_ext restate_nb",
        "[2] %%restate track",
        "    Output widget:",
        "        total = 3",
        "[3] %restate tree",
        "    StateTree of /:",
        "        a: 1",
        '[4] state["/a"] = 5',
        "    ↻ [2] re-ran:",
        "        total = 15",
        "    ↻ the StateTree of [3] now shows:",
        "        a: 5",
        "        ▸ cfg {1 key}",
    ]
    assert lines[start + 13].startswith("--- ok")


def test_headless_job_prints_a_rerun_while_the_writing_cell_is_still_running(tmp_path):
    """The notebook's last cell writes from a thread, then waits until this test has read
    the re-run line on the job's stdout: the line must come out while the cell runs."""
    go = tmp_path / "seen-rerun"
    waiting = (
        "import pathlib, threading, time\n"
        'threading.Thread(target=lambda: state.__setitem__("/a", 7)).start()\n'
        "end = time.monotonic() + 60\n"
        f"while not pathlib.Path({str(go)!r}).exists():\n"
        "    assert time.monotonic() < end, 'the re-run was not printed while the cell ran'\n"
        "    time.sleep(0.02)\n"
        'print("writer done")'
    )
    notebook = write_notebook(tmp_path / "live.ipynb", [*TRACKED_NOTEBOOK[:2], waiting])
    proc = subprocess.Popen(
        [sys.executable, str(HEADLESS), str(notebook)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    seen: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line.rstrip("\n"))
            if seen[-3:-2] == ["    ↻ [2] re-ran:"] and seen[-1:] == ["        total = 21"]:
                go.write_text("")
                break
        assert go.exists(), f"no re-run printed: {seen}"
        rest, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, "\n".join(seen) + rest + err
    assert "    writer done" in rest.splitlines()


def test_in_a_real_kernel_magic_input_and_in_place_changes_say_what_happened(tmp_path):
    """Items a user meets first, in a real kernel: a set typed in %restate, a missing path,
    a backend switch, and an in-place change of a value read from a tracked cell."""
    db = tmp_path / "s.db"
    cells = [
        '%load_ext restate_nb\nstate["/cfg"] = {"a": 1}',
        "%restate set /s {1, 2}\nprint('a set:', isinstance(state['/s'], set), state['/s'])",
        "%restate get /missing",
        '%%restate track\ncfg = state["/cfg"]\ncfg["a"] = cfg["a"] + 1',
        '%restate del /s\nstate["/cfg/a"] = 3',
        f"%restate backend sqlite {db}",
    ]
    notebook = write_notebook(tmp_path / "input.ipynb", cells)

    result = run_headless(notebook)

    lines = result.stdout.splitlines()
    assert "    a set: True {1, 2}" in lines
    assert "    restate: nothing stored at /missing (the path does not exist)" in lines
    snapshot_error = [line for line in lines if "is a read-only snapshot" in line]
    assert any('write by path instead: state["/cfg/a"] = 2' in line for line in snapshot_error)
    assert any('state["/cfg/a"] = 4' in line for line in snapshot_error)  # re-ran after /cfg/a = 3
    assert any(
        line.startswith("    restate: copied the current state, 1 top-level key (cfg), into sqlite")
        for line in lines
    )
    # the tracked cell's error is a real error output, so the job reports it
    assert result.returncode == 1 and "TypeError" in result.stderr
