"""Tracked cells in a real in-process IPython shell: when they re-run, in what order, what
they show, and how errors and cycles are reported."""

from __future__ import annotations

import html
import re
import threading
from pathlib import PurePosixPath
from typing import Any

import pytest
from IPython.core.error import UsageError

from .conftest import Shell, seen


def test_tracked_cell_shows_its_output_and_reruns_when_a_read_path_changes(shell: Shell) -> None:
    shell.run('state["/a"] = 1; state["/b"] = 2')
    cell = shell.tracked('total = state["/a"] + state["/b"]\nprint("total:", total)\ntotal * 10')
    assert seen(cell) == "total: 3\n30\n"
    shell.run('state["/a"] = 40')
    assert seen(cell) == "total: 42\n420\n"
    assert shell.ns["total"] == 42


def test_writes_in_one_cell_rerun_a_dependent_cell_once_after_the_cell(shell: Shell) -> None:
    shell.run('state["/a"] = 1; state["/b"] = 2')
    shell.run("log = []")
    cell = shell.tracked('log.append((state["/a"], state["/b"]))')
    shell.run('state["/a"] = 10\nstate["/b"] = 20\nmid = list(log)')
    assert shell.ns["mid"] == [(1, 2)]  # nothing re-ran in the middle of the writing cell
    assert shell.ns["log"] == [(1, 2), (10, 20)]
    assert cell.runs == 2


def test_setter_cell_output_is_not_touched_by_the_rerun(shell: Shell, capsys: object) -> None:
    cell = shell.tracked('print("tracked sees", state.get("/a"))')
    result = shell.ip.run_cell('state["/a"] = 5\nprint("setter done")')
    assert result.success
    assert seen(cell) == "tracked sees 5\n"
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "tracked sees" not in out and "setter done" in out


def test_chained_cells_rerun_in_dependency_order_and_update_names(shell: Shell) -> None:
    shell.run('state["/price"] = 2; state["/qty"] = 3')
    shell.run("order = []")
    # created reader-first, so creation order alone would run them in the wrong order
    total = shell.tracked('order.append("report")\nreport = f"total {state[\'/total\']}"\nreport')
    shell.tracked('order.append("total")\nstate["/total"] = state["/price"] * state["/qty"]')
    assert seen(total) == "'total 6'\n"  # /total appeared when the second cell ran
    shell.run('order.clear()\nstate["/price"] = 5')
    assert shell.ns["order"] == ["total", "report"]
    assert shell.ns["report"] == "total 15"
    assert seen(total) == "'total 15'\n"


def test_rerunning_a_tracked_cell_by_hand_replaces_its_registration(shell: Shell) -> None:
    shell.run("runs = []")
    for text in ("first", "second"):
        shell.tracked(f'runs.append("{text}"); state.get("/a")', cell_id="same")
    shell.run("runs.clear()")
    shell.run('state["/a"] = 1')
    assert shell.ns["runs"] == ["second"]
    assert len(shell.controller.trackers()) == 1


def test_same_source_without_cell_ids_is_the_same_tracked_cell(shell: Shell) -> None:
    code = '%%restate track\nstate.get("/a")'
    shell.ip.run_cell(code)
    shell.ip.run_cell(code)
    assert len(shell.controller.trackers()) == 1


def test_error_in_a_rerun_shows_its_traceback_in_place_and_the_cell_recovers(
    shell: Shell,
) -> None:
    shell.run('state["/x"] = 2')
    cell = shell.tracked('value = 10 / state["/x"]\nprint("value", value)')
    result = shell.ip.run_cell('state["/x"] = 0')
    assert result.success  # the error belongs to the tracked cell, not to the writer
    text = seen(cell)
    assert "ZeroDivisionError" in text and 'value = 10 / state["/x"]' in text
    assert "Traceback" in text or "----> 1" in text
    shell.run('state["/x"] = 5')
    assert seen(cell) == "value 2.0\n"


def test_error_in_the_first_run_is_shown_and_paths_read_before_it_stay_tracked(
    shell: Shell,
) -> None:
    cell = shell.tracked('a = state["/a"]\nprint("a is", a)')
    assert "KeyError" in seen(cell)
    shell.run('state["/a"] = 1')
    assert seen(cell) == "a is 1\n"


def test_tracked_cell_writing_what_it_reads_reports_cycle_error_without_hanging(
    shell: Shell,
) -> None:
    shell.run('state["/n"] = 0')
    cell = shell.tracked('state["/n"] = state["/n"] + 1\nprint("n", state["/n"])')
    text = seen(cell)
    assert f"CycleError: a loop: {cell.name} → /n → {cell.name}." in text
    assert "will not run again until their cells are run again" in text
    assert [t.status for t in shell.controller.trackers()] == ["refused"]
    assert shell.controller.get_state("/n") == 1  # the one pass that revealed the loop
    shell.run('state["/n"] = 10')  # no hang, no re-run
    assert shell.controller.get_state("/n") == 10
    assert cell.runs == 1


def test_cells_feeding_each_other_stop_with_cycle_error(shell: Shell) -> None:
    shell.run('state["/a"] = 0; state["/b"] = 0')
    one = shell.tracked('state["/b"] = state["/a"] + 1')
    two = shell.tracked('state["/a"] = state["/b"] + 1')
    chain = f"{two.name} → /a → {one.name} → /b → {two.name}"
    assert f"CycleError: a loop: {chain}" in seen(one)
    assert f"CycleError: a loop: {chain}" in seen(two)
    # bounded: only the second cell's first pass ran after the first cell's
    assert (shell.controller.get_state("/a"), shell.controller.get_state("/b")) == (2, 1)
    shell.run('state["/a"] = 100')  # later writes start nothing
    assert (shell.controller.get_state("/a"), shell.controller.get_state("/b")) == (100, 1)
    assert (one.runs, two.runs) == (1, 1)
    assert {t.status for t in shell.controller.trackers()} == {"refused"}


def test_write_from_another_thread_reruns_the_cell_at_once(shell: Shell) -> None:
    cell = shell.tracked('print("sees", state.get("/t"))')
    worker = threading.Thread(target=lambda: shell.controller.set_state("/t", "thread"))
    worker.start()
    worker.join()
    assert seen(cell) == "sees thread\n"


def test_thread_started_and_joined_by_a_cell_does_not_deadlock(shell: Shell) -> None:
    cell = shell.tracked('print("sees", state.get("/t"))')
    shell.run(
        "import threading\n"
        "w = threading.Thread(target=lambda: state.__setitem__('/t', 1))\n"
        "w.start(); w.join(timeout=10)\n"
        "alive = w.is_alive()"
    )
    assert shell.ns["alive"] is False
    assert seen(cell) == "sees 1\n"


def test_magics_inside_a_tracked_body_work_and_are_tracked(shell: Shell) -> None:
    shell.run('state["/a"] = 3')
    cell = shell.tracked("x = %restate get /a\nprint('x', x)")
    shell.run('state["/a"] = 4')
    assert seen(cell) == "x 4\n"


def test_output_keeps_print_and_display_order_and_honours_semicolon(shell: Shell) -> None:
    cell = shell.tracked(
        "from IPython.display import display\n"
        'print("one")\ndisplay("two")\nprint("three")\nstate.get("/a", "hidden");'
    )
    assert [o["output_type"] for o in cell.output.outputs] == [
        "stream",
        "display_data",
        "stream",
    ]
    assert seen(cell) == "one\n'two'\nthree\n"


def test_reads_through_the_controller_directly_are_tracked_too(shell: Shell) -> None:
    shell.run("import restate_nb")
    cell = shell.tracked('print(restate_nb.get_controller().get_state("/direct"))')
    shell.controller.set_state("/direct", 9)
    assert seen(cell) == "9\n"


def test_prints_of_other_threads_during_a_rerun_stay_out_of_the_cell(
    shell: Shell, capsys: object
) -> None:
    started, release = threading.Event(), threading.Event()
    shell.ns.update(started=started, release=release)
    cell = shell.tracked(
        'if state.get("/go"):\n    started.set()\n    release.wait(5)\n'
        'print("cell", state.get("/go"))'
    )
    worker = threading.Thread(target=lambda: shell.controller.set_state("/go", 1))
    worker.start()
    assert started.wait(5)
    print("main thread meanwhile")  # the kernel's main thread, while the cell re-runs
    release.set()
    worker.join()
    assert seen(cell) == "cell 1\n"
    assert "main thread meanwhile" in capsys.readouterr().out  # type: ignore[attr-defined]


def test_syntax_error_in_a_tracked_cell_is_shown_plainly_and_tracks_nothing(
    shell: Shell, capsys: object
) -> None:
    shell.run("%%restate track\nx = (\nprint(1)")
    out = capsys.readouterr()  # type: ignore[attr-defined]
    assert "SyntaxError" in out.out + out.err
    assert "restate_nb" not in out.out + out.err  # no frames of ours
    assert shell.controller.trackers() == []


def test_tracked_body_may_join_a_thread_that_writes_state(shell: Shell) -> None:
    cell = shell.tracked(
        "import threading\n"
        "w = threading.Thread(target=lambda: state.__setitem__('/w', 1))\n"
        "w.start(); w.join(timeout=1)\n"
        "print('joined', not w.is_alive())"
    )
    assert seen(cell) == "joined True\n"


def test_many_writes_in_one_cell_cost_nothing_more_per_write(shell: Shell) -> None:
    shell.run('state["/x"] = 0')
    cell = shell.tracked('print(state["/x"])')
    shell.run('for i in range(2000):\n    state["/x"] = i')
    assert cell.runs == 2 and seen(cell) == "1999\n"
    [info] = shell.controller.trackers()
    assert {str(p) for p in info.paths} == {"/x"}


def test_interrupted_rerun_keeps_the_other_queued_cells_tracked(shell: Shell) -> None:
    shell.run('state["/a"] = 0')
    first = shell.tracked('if state["/a"] == 1:\n    raise KeyboardInterrupt\nprint("first")')
    second = shell.tracked('print("second sees", state["/a"])')
    shell.ip.run_cell('state["/a"] = 1')  # the drain is interrupted by the first cell
    shell.run('state["/a"] = 2')
    assert seen(second) == "second sees 2\n"
    assert seen(first) == "first\n"
    assert len(shell.controller.trackers()) == 2  # nothing orphaned


# ----- the scheduler as a notebook user meets it --------------------------------------------


def status_line(cell: Any) -> str:
    """The cell's status line as a person reads it (tags dropped)."""
    return html.unescape(re.sub(r"<[^>]*>", "", cell.status.value))


def test_a_rerun_says_which_path_changed_and_which_cell_wrote_it(shell: Shell) -> None:
    cell = shell.tracked('print("a is", state.get("/a"))')
    assert status_line(cell) == ""  # the run at registration needs no reason
    count = shell.ip.execution_count
    shell.run('state["/a"] = 1')
    assert re.fullmatch(
        rf"↻ ran because /a changed \(cell \[{count}\], \d\d:\d\d:\d\d\)", status_line(cell)
    )
    worker = threading.Thread(target=lambda: shell.controller.set_state("/a", 2), name="feeder")
    worker.start()
    worker.join()
    assert "/a changed (thread feeder," in status_line(cell)


def test_a_lazy_cell_shows_stale_keeps_its_old_output_and_runs_on_restate_run(
    shell: Shell, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.run('state["/a"] = 1')
    cell = shell.run_tracked_with('%%restate track --lazy\nprint("slow sees", state["/a"])')
    count = shell.ip.execution_count
    shell.run('state["/a"] = 2')
    assert seen(cell) == "slow sees 1\n"  # the old output stays
    assert status_line(cell).startswith(f"⚠ stale: /a changed (cell [{count}], ")
    assert status_line(cell).endswith("; %restate run updates it")
    capsys.readouterr()
    shell.run("%restate run")
    assert capsys.readouterr().out == "restate: ran 1 stale cell\n"
    assert seen(cell) == "slow sees 2\n"
    assert status_line(cell).startswith("↻ ran because /a changed")


def test_restate_run_runs_stale_lazy_cells_ancestors_first(shell: Shell) -> None:
    shell.run('state["/a"] = 1\norder = []')
    # the reader is registered first: registration order alone would be wrong
    shell.run_tracked_with('%%restate track --lazy\norder.append("report")\nstate.get("/b")')
    shell.run_tracked_with(
        '%%restate track --lazy\norder.append("b")\nstate["/b"] = state["/a"] * 2'
    )
    shell.run('order.clear()\nstate["/a"] = 5\nstate["/b"] = 0')
    shell.run("%restate run")
    assert shell.ns["order"] == ["b", "report"]
    assert shell.controller.get_state("/b") == 10


def test_a_debounced_cell_waits_for_quiet_and_runs_once_for_the_latest_value(
    shell: Shell,
) -> None:
    ran = threading.Event()
    shell.ns.update(ran=ran, seen_values=[])
    shell.run('state["/x"] = 0')
    cell = shell.run_tracked_with(
        "%%restate track --debounce 0.2\n"
        'seen_values.append(state["/x"])\n'
        "if len(seen_values) > 1: ran.set()"
    )
    shell.run('for i in range(1000):\n    state["/x"] = i')
    assert ran.wait(10), "the debounced cell never ran"
    assert shell.ns["seen_values"] == [0, 999]
    assert cell.runs == 2


def test_a_failing_derive_shows_its_traceback_in_its_own_cell_and_readers_go_stale(
    shell: Shell, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.run('state["/num"] = 6\nstate["/den"] = 3')
    shell.run('%restate derive /ratio = state["/num"] / state["/den"]')
    derivation = shell.session.derivations.by_dest[PurePosixPath("/ratio")]
    reader = shell.tracked('print("ratio", state["/ratio"])')
    capsys.readouterr()
    result = shell.run_raw('state["/den"] = 0')
    assert result.success  # the writer's cell: no traceback
    err = capsys.readouterr().err
    assert err == (
        "restate: derive /ratio failed (ZeroDivisionError: division by zero); "
        "its output shows the traceback\n"
    )
    [error] = derivation.output.outputs
    shown = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", "\n".join(error["traceback"]))
    assert "ZeroDivisionError" in shown and 'state["/num"] / state["/den"]' in shown
    assert "restate" not in shown.replace("restate derive /ratio", "")  # no frames of ours
    assert status_line(reader) == "⚠ stale: /ratio failed in derive /ratio"
    assert seen(reader) == "ratio 2.0\n"  # its last good output stays
    shell.run('state["/den"] = 4')  # fixed: everything recovers by itself
    assert derivation.output.outputs == ()
    assert seen(reader) == "ratio 1.5\n"
    assert status_line(reader).startswith("↻ ran because /ratio changed (derive /ratio, ")


def test_bad_track_options_are_a_one_line_usage_error(shell: Shell) -> None:
    for header in ("--lazy --lazy", "--debounce", "--debounce soon", "--debounce -1", "--fast"):
        with pytest.raises(UsageError, match=r"%%restate track \[--lazy \| --debounce SECONDS\]"):
            shell.run(f"%%restate track {header}\nprint(1)")
    assert shell.controller.trackers() == []
