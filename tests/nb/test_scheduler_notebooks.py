"""The scheduler on its unhappy paths, in a real kernel run by nbclient, read as a person
reads each cell: a loop between cells stays bounded, a failing derive shows at its own cell
(the writer gets one line), a lazy cell shows stale with its old output, re-runs say why."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .notebook_runner import Run, run_notebook

pytestmark = pytest.mark.timeout(120)

STAMP = r"\d\d:\d\d:\d\d"


def test_a_loop_between_two_cells_is_refused_and_the_state_stays_bounded(
    kernel_path: Path, tmp_path: Path
) -> None:
    cells = [
        '%load_ext restate_nb\nstate["/x"] = 0',  # 0  In[1]
        '%%restate track\nstate["/y"] = state["/x"] + 1',  # 1  In[2]
        '%%restate track\nstate["/x"] = state["/y"] + 1',  # 2  In[3]
        'print(state["/x"], state["/y"])',  # 3
        'state["/x"] = 100\nprint(state["/x"], state["/y"])',  # 4 later writes start nothing
    ]
    run = run_notebook(cells, tmp_path)
    chain = "cell [3] → /x → cell [2] → /y → cell [3]"
    for index in (1, 2):
        assert f"CycleError: a loop: {chain}. Stopped before it could repeat" in run.seen(index)
        assert "until their cells are run again" in run.seen(index)
    assert run.seen(3) == "2 1\n"  # what the one revealing pass left: no 10**100
    assert run.seen(4) == "100 1\n"


def test_a_failing_derive_shows_at_its_own_cell_and_dependents_recover(
    kernel_path: Path, tmp_path: Path
) -> None:
    cells = [
        '%load_ext restate_nb\nstate["/num"] = 6\nstate["/den"] = 3',  # 0
        '%restate derive /ratio = state["/num"] / state["/den"]',  # 1  In[2]
        '%%restate track\nprint("ratio is", state["/ratio"])',  # 2
        'state["/den"] = 0\nprint("writer done")',  # 3  In[4]
        'state["/den"] = 4',  # 4  In[5]
    ]
    during: dict[str, str] = {}

    def look(run: Run) -> None:
        during.update(derive=run.seen(1), reader=run.seen(2))

    run = run_notebook(cells, tmp_path, {3: look})
    # the writer: its own print and one line, no traceback
    assert run.seen(3) == (
        "writer done\nrestate: derive /ratio failed (ZeroDivisionError: division by zero); "
        "its output shows the traceback\n"
    )
    # the derive's own cell: the traceback, from the user's expression, no frames of ours
    assert "ZeroDivisionError" in during["derive"]
    assert 'state["/num"] / state["/den"]' in during["derive"]
    assert "restate_nb" not in during["derive"] and "/restate/" not in during["derive"]
    # the dependent: stale, naming what failed and where; its last good output stays
    assert during["reader"] == "⚠ stale: /ratio failed in derive /ratio\nratio is 2.0\n"
    # fixed: everything recovered by itself
    assert run.seen(1) == ""
    assert re.fullmatch(
        rf"↻ ran because /ratio changed \(derive /ratio, {STAMP}\)\nratio is 1.5\n", run.seen(2)
    )


def test_a_lazy_cell_shows_stale_and_its_old_output_until_restate_run(
    kernel_path: Path, tmp_path: Path
) -> None:
    cells = [
        '%load_ext restate_nb\nstate["/n"] = 1',  # 0
        '%%restate track --lazy\nprint("expensive result for", state["/n"])',  # 1
        'state["/n"] = 2',  # 2  In[3]
        "%restate run",  # 3  In[4]
    ]
    during: dict[str, str] = {}
    run = run_notebook(cells, tmp_path, {2: lambda r: during.update(lazy=r.seen(1))})
    assert re.fullmatch(
        rf"⚠ stale: /n changed \(cell \[3\], {STAMP}\); %restate run updates it\n"
        r"expensive result for 1\n",
        during["lazy"],
    )
    assert run.seen(3) == "restate: ran 1 stale cell\n"
    assert re.fullmatch(
        rf"↻ ran because /n changed \(cell \[3\], {STAMP}\)\nexpensive result for 2\n",
        run.seen(1),
    )


def test_status_shows_the_graph_as_mermaid_with_marks_and_as_text(
    kernel_path: Path, tmp_path: Path
) -> None:
    cells = [
        '%load_ext restate_nb\nstate["/a"] = 1',  # 0
        '%%restate track\nstate["/b"] = state["/a"] * 2',  # 1  In[2]
        '%%restate track --lazy\nprint(state["/b"])',  # 2  In[3]
        'state["/a"] = 5',  # 3
        "%restate status",  # 4
    ]
    run = run_notebook(cells, tmp_path)
    [bundle] = run.nb.cells[4].outputs
    markdown, text = bundle["data"]["text/markdown"], bundle["data"]["text/plain"]
    assert markdown.startswith("```mermaid\nflowchart LR\n")
    assert 'n0 -->|"/b"| n1' in markdown and 'p0(["/a"]) --> n0' in markdown
    assert "class n1 stale" in markdown
    assert "cell #2 [In[3]] (lazy)  reads /b  ⚠ stale: /b changed (cell [2]" in text


JOINING_CELL = """%%restate track
level = state["/level"]
if level > 1:  # a re-run: a helper thread writes state, and the cell waits for it
    helper = threading.Thread(target=lambda: state.__setitem__("/echo", level))
    helper.start(); helper.join(timeout=10)
    print("level", level, "joined", not helper.is_alive())
else:
    print("level", level)"""


@pytest.mark.slow
def test_a_cell_rerun_by_a_thread_or_a_widget_may_join_a_thread_that_writes_state(
    kernel_path: Path, tmp_path: Path
) -> None:
    cells = [
        "%load_ext restate_nb\nimport threading, ipywidgets, restate_nb",  # 0
        'state["/level"] = 1',  # 1
        JOINING_CELL,  # 2
        "worker = threading.Thread(target=lambda: state.__setitem__('/level', 2), name='feeder')"
        '\nworker.start(); worker.join(timeout=30)\nprint("worker done", not worker.is_alive(), '
        'state.get("/echo"))',  # 3
        'slider = ipywidgets.IntSlider()\nrestate_nb.bind(slider, "/level")\nslider',  # 4
        'print("after widget", state["/level"], state.get("/echo"))',  # 5
    ]
    during: dict[str, str] = {}

    def drag_slider(run: Run) -> None:
        [model_id] = run.widget_ids(4)
        run.send_widget_update(model_id, {"value": 7})  # the re-run happens in this handler

    run = run_notebook(
        cells, tmp_path, {3: lambda r: during.update(thread=r.seen(2)), 4: drag_slider}
    )
    # re-run in the writer's thread after its write released the lock: the helper's write
    # went through (under the lock it waited until join() gave up: "joined False")
    assert re.fullmatch(
        rf"↻ ran because /level changed \(thread feeder, {STAMP}\)\nlevel 2 joined True\n",
        during["thread"],
    )
    assert run.seen(3) == "worker done True 2\n"  # the re-run ended before the write returned
    assert re.fullmatch(
        rf"↻ ran because /level changed \(a widget, {STAMP}\)\nlevel 7 joined True\n",
        run.seen(2),
    )
    assert run.seen(5) == "after widget 7 7\n"
