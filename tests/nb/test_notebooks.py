"""Notebooks executed by nbclient against a real ipykernel.

Assertions read what a person would see under each cell: its outputs plus the outputs held
by the Output widgets it displays (from the widget state nbclient keeps). One kernel per
notebook; each notebook covers several behaviours.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .notebook_runner import Run, run_notebook

# real kernels through nbclient: not part of the quick loop
pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


WHY = re.compile(r"↻ ran because (/\S*) changed \((.+), \d\d:\d\d:\d\d\)\n")


def body(text: str) -> str:
    """What a tracked cell shows under its status line."""
    return WHY.sub("", text, count=1) if text.startswith("↻") else text


def why(text: str) -> tuple[str, str] | None:
    """(path, writer) of a tracked cell's "ran because" status line."""
    match = WHY.match(text)
    return (match[1], match[2]) if match else None


class Snapshots:
    """Record what a cell shows at a given moment (the widget state changes later)."""

    def __init__(self) -> None:
        self.taken: dict[str, str] = {}

    def of(self, name: str, index: int):  # type: ignore[no-untyped-def]
        def take(run: Run) -> None:
            self.taken[name] = run.seen(index)

        return take


def test_tracked_cells_rerun_in_place_in_an_executed_notebook(
    kernel_path: Path, tmp_path: Path
) -> None:
    cells = [
        "%load_ext restate_nb\norder = []",  # 0
        'state["/a"] = 1\nstate["/b"] = 2',  # 1
        '%%restate track\norder.append("total")\n'
        'total = state["/a"] + state["/b"]\nstate["/total"] = total\nprint("total", total)',  # 2
        'state["/a"] = 10',  # 3 setter
        'state["/b"] = 20\nprint("setter printed")',  # 4 setter
        # chained: the reader is created before the writer
        '%%restate track\norder.append("report")\n'
        "report = f\"report of {state['/doubled']}\"\nprint(report)",  # 5
        '%%restate track\norder.append("doubled")\n'
        'doubled = state["/total"] * 2\nstate["/doubled"] = doubled\n'
        'print("doubled", doubled)',  # 6
        'order.clear()\nstate["/a"] = 100',  # 7
        "print(total, report, order)",  # 8
        '%restate derive /triple = state["/a"] * 3',  # 9
        'state["/a"] = 7\nprint("triple", state["/triple"])',  # 10
        '%%restate track\nratio = 100 / state["/b"]\nprint("ratio", ratio)',  # 11
        'state["/b"] = 0',  # 12 -> error shown in cell 11
        'state["/b"] = 4',  # 13 -> recovery
        '%%restate track\nstate["/n"] = state.get("/n", 0) + 1',  # 14 self-loop
        "%restate backend nosuch",  # 15 bad input
        "%restate status",  # 16
    ]
    snap = Snapshots()
    run = run_notebook(cells, tmp_path, {12: snap.of("error", 11)})

    assert body(run.seen(2)) == "total 11\n"  # latest total (a=7, b=4), in its own output
    assert why(run.seen(2)) == ("/b", "cell [14]")  # the last writer: cell 13, In[14]
    for setter in (1, 3, 7, 13):
        assert run.seen(setter) == "", setter  # the tracked output never lands here
    # the writer whose write made cell 11 fail gets one line, no traceback
    assert run.seen(12) == (
        "restate: cell [12] failed (ZeroDivisionError: division by zero); "
        "its output shows the traceback\n"
    )
    assert run.seen(4) == "setter printed\n"
    assert body(run.seen(6)) == "doubled 22\n"
    assert body(run.seen(5)) == "report of 22\n"
    assert why(run.seen(5)) == ("/doubled", "cell [7]")  # written by the doubled cell
    # names updated by the re-runs, each cell once, writers before readers
    assert run.seen(8) == "120 report of 240 ['total', 'doubled', 'report']\n"
    assert run.seen(10) == "triple 21\n"
    assert "ZeroDivisionError" in snap.taken["error"]
    assert 'ratio = 100 / state["/b"]' in snap.taken["error"]
    assert body(run.seen(11)) == "ratio 25.0\n"
    assert "CycleError: a loop: cell [15] → /n → cell [15]" in run.seen(14)
    bad = run.seen(15).strip().splitlines()
    assert len(bad) == 1 and bad[0].startswith("UsageError:") and "backend" in bad[0]
    status = run.seen(16)
    assert "5 tracked cells" in status and "reads /a, /b" in status and "/triple" in status
    refused = "cell #5 [In[15]]  reads /n  writes /n  ⛔ refused: CycleError: a loop: cell [15]"
    assert refused in status


def test_thread_and_widget_writes_rerun_a_tracked_cell(kernel_path: Path, tmp_path: Path) -> None:
    cells = [
        "%load_ext restate_nb\nimport threading, ipywidgets, restate_nb",  # 0
        'state["/level"] = 1',  # 1
        '%%restate track\nprint("level", state["/level"])',  # 2
        "worker = threading.Thread(target=lambda: state.__setitem__('/level', 2))\n"
        "worker.start(); worker.join()",  # 3
        'slider = ipywidgets.IntSlider()\nrestate_nb.bind(slider, "/level")\nslider',  # 4
        'print("after widget", state["/level"])',  # 5
    ]
    snap = Snapshots()

    def drag_slider(run: Run) -> None:
        [model_id] = run.widget_ids(4)
        assert run.widget_state(model_id)["value"] == 2  # state won over the default 0
        run.send_widget_update(model_id, {"value": 7})

    run = run_notebook(cells, tmp_path, {3: snap.of("thread", 2), 4: drag_slider})
    assert body(snap.taken["thread"]) == "level 2\n"
    assert why(snap.taken["thread"]) == ("/level", "thread Thread-3 (<lambda>)")
    assert run.seen(3) == ""
    assert body(run.seen(2)) == "level 7\n"
    assert why(run.seen(2)) == ("/level", "a widget")
    assert run.seen(5) == "after widget 7\n"


def test_backend_switch_to_fs_and_sqlite_keeps_tracked_cells_working(
    kernel_path: Path, tmp_path: Path
) -> None:
    fs_dir, db = tmp_path / "state-dir", tmp_path / "state.db"
    cells = [
        "%load_ext restate_nb",  # 0
        'state["/x"] = 1',  # 1
        '%%restate track\nprint("x is", state.get("/x"))',  # 2
        '%restate derive /y = (state.get("/x") or 0) + 1',  # 3
        f"%restate backend fs {fs_dir}",  # 4
        'state["/x"] = 5',  # 5
        f'%restate backend sqlite "{db}"',  # 6
        'state["/x"] = 6\nprint("y", state["/y"])',  # 7
    ]
    snap = Snapshots()
    run = run_notebook(cells, tmp_path, {5: snap.of("fs", 2)})
    assert run.seen(4).startswith("restate: copied the current state, 2 top-level keys (x, y)")
    assert body(snap.taken["fs"]) == "x is 5\n"
    assert (fs_dir / "y.json").read_text().strip() == "6"
    assert body(run.seen(2)) == "x is 6\n"
    assert run.seen(7) == "y 7\n"
    assert db.exists()
