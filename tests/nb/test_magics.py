"""%restate / %%restate in a real in-process IPython shell."""

from __future__ import annotations

import time
from pathlib import Path, PurePosixPath

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

import restate
import restate_nb
from restate import InMemoryBackend

from .conftest import Shell, seen


def test_load_ext_registers_the_magic_and_puts_state_in_the_namespace(shell: Shell) -> None:
    assert "restate" in shell.ip.magics_manager.magics["line"]
    assert "restate" in shell.ip.magics_manager.magics["cell"]
    shell.run('state["/a/b"] = 1')
    assert shell.controller.get_state("/a") == {"b": 1}
    assert isinstance(shell.controller.backend, InMemoryBackend)


def test_unload_ext_removes_magics_state_event_hooks_and_trackers(shell: Shell) -> None:
    shell.tracked('print(state.get("/x"))')
    shell.run('%restate derive /y = state.get("/x", 0) + 1')
    with capture_output():
        shell.run("%restate tree")
    [tree] = shell.session.trees
    assert tree.comm is not None
    events = shell.ip.events.callbacks
    session = shell.session
    owners = (session, session.cells)

    def hooks() -> list[object]:
        return [
            cb
            for name in ("pre_run_cell", "post_run_cell")
            for cb in events[name]
            if getattr(cb, "__self__", None) in owners
        ]

    assert hooks()
    shell.run("%unload_ext restate_nb")
    assert "restate" not in shell.ip.magics_manager.magics["line"]
    assert "restate" not in shell.ip.magics_manager.magics["cell"]
    assert "state" not in shell.ns
    assert hooks() == []
    assert shell.controller.trackers() == []
    assert tree.comm is None  # the tree widget was closed
    shell.run("%load_ext restate_nb")  # the fixture unloads again


def test_loading_twice_registers_one_set_of_hooks(shell: Shell) -> None:
    before = len(shell.ip.events.callbacks["post_run_cell"])
    shell.run("%load_ext restate_nb")
    assert len(shell.ip.events.callbacks["post_run_cell"]) == before


def test_get_returns_the_value_as_the_cell_result(shell: Shell) -> None:
    shell.controller.set_state("/config", {"theme": "dark"})
    assert shell.run("%restate get /config/theme") == "dark"
    assert shell.run("%restate get /config") == {"theme": "dark"}


def test_get_of_a_missing_path_says_so_in_one_line(
    shell: Shell, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.controller.set_state("/none", None)
    assert shell.run("%restate get /missing") is None
    out, _ = capsys.readouterr()
    assert out.strip().splitlines() == [
        "restate: nothing stored at /missing (the path does not exist)"
    ]
    assert shell.run("%restate get /none") is None  # a stored None is a value: no message
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("%restate set /s {1, 2}", {1, 2}),
        ("%restate set /d {'k': {1}}", {"k": {1}}),
        ('%restate set /f f"{n}!"', "3!"),
        ("%restate set /money '$n'", "$n"),
        ("%restate set /e {}", {}),
    ],
)
def test_magic_lines_are_python_as_typed_without_ipython_expansion(
    shell: Shell, line: str, expected: object
) -> None:
    shell.run("n = 3")
    shell.run(line)
    path = line.split()[2]
    assert shell.controller.get_state(path) == expected
    assert type(shell.controller.get_state(path)) is type(expected)


def test_a_set_cannot_go_to_a_json_store_and_the_error_says_so_in_one_line(
    shell: Shell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.run(f"%restate backend sqlite {tmp_path / 's.db'}")
    capsys.readouterr()
    result = shell.run_raw("%restate set /s {1, 2}")
    out, err = capsys.readouterr()
    assert isinstance(result.error_in_exec, UsageError)
    [line] = [x for x in (out + err).splitlines() if x.strip()]
    assert "SerializationError" in line and "set" in line
    assert shell.controller.get_state("/s") is None


def test_set_evaluates_the_expression_in_the_user_namespace(shell: Shell) -> None:
    shell.run("n = 20")
    shell.run("%restate set /total n * 2 + 2")
    assert shell.controller.get_state("/total") == 42
    shell.run('%restate set "/a b/c" [1, 2]')
    assert shell.controller.get_state("/a b/c") == [1, 2]


def test_del_removes_the_subtree_and_ping_notifies_without_writing(shell: Shell) -> None:
    shell.controller.set_state("/a", {"b": 1, "c": 2})
    cell = shell.tracked('print("a is", state.get("/a"))')
    shell.run("%restate ping /a")
    assert cell.runs == 2
    shell.run("%restate del /a/b")
    assert shell.controller.get_state("/a") == {"c": 2}
    assert seen(cell) == "a is {'c': 2}\n"
    shell.run("%restate del /nothing/here")  # deleting a missing path changes nothing


def test_line_derive_follows_its_inputs_at_once(shell: Shell) -> None:
    shell.run('state["/a"] = 2')
    shell.run('%restate derive /double = state["/a"] * 2')
    assert shell.controller.get_state("/double") == 4
    shell.run('state["/a"] = 5\nseen_inside = state["/double"]')
    assert shell.ns["seen_inside"] == 10  # settled before the next line, not after the cell


def test_line_derive_again_for_the_same_dest_replaces_it(shell: Shell) -> None:
    shell.run('state["/a"] = 2')
    shell.run('%restate derive /d = state["/a"] * 2')
    shell.run('%restate derive /d = state["/a"] + 100')
    shell.run('state["/a"] = 3')
    assert shell.controller.get_state("/d") == 103
    assert len(shell.controller.trackers()) == 1


def test_line_derive_reading_its_own_dest_is_refused_with_cycle_error(shell: Shell) -> None:
    shell.run('state["/n"] = 1')
    with pytest.raises(UsageError, match=r"CycleError.*/n"):
        shell.run('%restate derive /n = state["/n"] + 1')
    assert shell.controller.trackers() == []
    assert shell.controller.get_state("/n") == 1


def test_line_derive_whose_first_evaluation_fails_stays_registered(shell: Shell) -> None:
    with pytest.raises(TypeError):
        shell.run('%restate derive /half = state.get("/x") / 2')
    shell.run('state["/x"] = 8')
    assert shell.controller.get_state("/half") == 4


def test_cell_derive_writes_the_last_expression_and_shows_prints_in_place(shell: Shell) -> None:
    shell.run('state["/items"] = [1, 2, 3]')
    shell.run('%%restate derive /sum\nprint("summing")\nsum(state["/items"])', cell_id="d")
    cell = shell.session.cells.cells[("id", "d")]
    assert shell.controller.get_state("/sum") == 6
    shell.run('state["/items"] = [10, 20]\nafter = state["/sum"]')
    assert shell.ns["after"] == 30
    assert seen(cell) == "summing\n"


def test_cell_derive_without_a_final_expression_is_a_usage_error(shell: Shell) -> None:
    with pytest.raises(UsageError, match="must end with an expression"):
        shell.run("%%restate derive /x\ny = 1")


def test_backend_switch_keeps_tracked_cells_and_derivations_working(
    shell: Shell, tmp_path: Path
) -> None:
    shell.run('state["/a"] = 1')
    cell = shell.tracked('print("a =", state.get("/a"))')
    shell.run('%restate derive /b = state.get("/a", 0) * 10')
    runs = cell.runs
    shell.run(f"%restate backend fs {tmp_path / 'fs'}")
    assert type(shell.controller.backend).__name__ == "FileSystemSyncBackend"
    assert seen(cell) == "a = 1\n" and cell.runs == runs  # copied: nothing changed, no re-run
    shell.run('state["/a"] = 7')
    assert seen(cell) == "a = 7\n"
    assert (tmp_path / "fs" / "b.json").read_text().strip() == "70"
    shell.run(f'%restate backend sqlite "{tmp_path / "s.db"}"')
    shell.run('state["/a"] = 8')
    assert seen(cell) == "a = 8\n"
    assert shell.controller.get_state("/b") == 80
    shell.run("%restate backend memory")
    assert isinstance(shell.controller.backend, InMemoryBackend)


def test_a_derivation_failing_on_the_opened_store_notes_it_in_one_line_and_the_switch_stands(
    shell: Shell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.run('state["/income"] = 100')
    shell.run('%restate derive /left = state["/income"] - 10')  # KeyError on an empty store
    derivation = shell.session.derivations.by_dest[PurePosixPath("/left")]
    capsys.readouterr()
    shell.run(f"%restate backend fs {tmp_path / 'fs'} --open")
    err = capsys.readouterr().err
    assert "restate: derive /left failed (KeyError: '/income')" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    shown = "".join("".join(o.get("traceback", ())) for o in derivation.output.outputs)
    assert "KeyError" in shown and "restate/" not in shown  # no frames of ours
    assert type(shell.controller.backend).__name__ == "FileSystemSyncBackend"
    shell.run('state["/income"] = 50')
    assert shell.controller.get_state("/left") == 40


def _switch(shell: Shell, capsys: pytest.CaptureFixture[str], line: str) -> str:
    capsys.readouterr()
    result = shell.run_raw(line)
    out, err = capsys.readouterr()
    lines = [x for x in (out + err).splitlines() if x.strip()]
    assert len(lines) == 1, lines
    if result.error_in_exec is not None:
        assert isinstance(result.error_in_exec, UsageError)
    return lines[0]


def test_backend_switch_copies_the_state_into_a_new_empty_store_and_says_so(
    shell: Shell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.run('state["/a"] = 1; state["/b/c"] = 2')
    cell = shell.tracked('print("a =", state["/a"])')
    line = _switch(shell, capsys, f"%restate backend sqlite {tmp_path / 'new.db'}")
    assert line.startswith("restate: copied the current state, 2 top-level keys (a, b), into")
    assert "--open" in line
    assert shell.controller.get_state("/") == {"a": 1, "b": {"c": 2}}
    assert restate.SQLiteBackend(str(tmp_path / "new.db")).read("/b/c") == 2
    shell.run('state["/a"] = 5')
    assert seen(cell) == "a = 5\n"


def test_backend_switch_opens_an_existing_store_when_the_state_is_empty(
    shell: Shell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    restate.ControllerSync(restate.SQLiteBackend(str(tmp_path / "old.db"))).set_state(
        "/", {"x": 1, "y": 2, "z": 3}
    )
    line = _switch(shell, capsys, f"%restate backend sqlite {tmp_path / 'old.db'}")
    assert line.startswith("restate: opened sqlite ")
    assert line.endswith("an existing store with 3 top-level keys (x, y, z)")
    assert shell.ns["state"]["/y"] == 2


def test_backend_switch_refuses_when_both_hold_data_and_changes_nothing(
    shell: Shell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(tmp_path / "old.db")
    restate.ControllerSync(restate.SQLiteBackend(path)).set_state("/", {"theirs": 1})
    shell.run('state["/ours"] = 2')
    cell = shell.tracked('print("ours =", state["/ours"])')
    backend = shell.controller.backend
    line = _switch(shell, capsys, f"%restate backend sqlite {path}")
    assert line.startswith("UsageError: %restate backend:")
    assert "already holds 1 top-level key (theirs)" in line
    assert "the current state holds 1 top-level key (ours)" in line
    assert "nothing changed" in line and "--open" in line and "--copy" in line
    assert shell.controller.backend is backend
    assert shell.controller.get_state("/") == {"ours": 2}
    assert restate.SQLiteBackend(path).read("/") == {"theirs": 1}
    assert seen(cell) == "ours = 2\n"


def test_backend_switch_with_copy_replaces_what_the_store_held(
    shell: Shell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(tmp_path / "old.db")
    restate.ControllerSync(restate.SQLiteBackend(path)).set_state("/", {"theirs": 1})
    shell.run('state["/ours"] = 2')
    line = _switch(shell, capsys, f"%restate backend sqlite {path} --copy")
    assert line == (
        f"restate: copied the current state, 1 top-level key (ours), into sqlite {path}, "
        "replacing the 1 top-level key (theirs) it held"
    )
    assert restate.SQLiteBackend(path).read("/") == {"ours": 2}


def test_backend_switch_with_open_uses_the_store_and_tracked_cells_show_its_values(
    shell: Shell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(tmp_path / "old.db")
    restate.ControllerSync(restate.SQLiteBackend(path)).set_state("/", {"n": 10})
    shell.run('state["/n"] = 2')
    cell = shell.tracked('print("n =", state["/n"])')
    line = _switch(shell, capsys, f"%restate backend sqlite {path} --open")
    assert line == (
        f"restate: opened sqlite {path}, an existing store with 1 top-level key (n); "
        "the previous state, 1 top-level key (n), was left behind"
    )
    assert seen(cell) == "n = 10\n"


def test_a_copy_the_store_cannot_hold_changes_nothing_and_closes_the_new_store(
    shell: Shell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.run('state["/ok"] = 1; state["/tags"] = {1, 2}')
    backend = shell.controller.backend
    line = _switch(shell, capsys, f"%restate backend sqlite {tmp_path / 'n.db'}")
    assert line.startswith("UsageError: %restate backend: cannot copy the state:")
    assert "set" in line and line.endswith("nothing changed")
    assert shell.controller.backend is backend
    assert restate.SQLiteBackend(str(tmp_path / "n.db")).read("/") in (None, {})


def test_backend_switch_to_memory_keeps_the_state_unless_told_to_open_an_empty_one(
    shell: Shell, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.run('state["/a"] = 1')
    line = _switch(shell, capsys, "%restate backend memory")
    assert line.startswith("restate: copied the current state, 1 top-level key (a), into")
    assert shell.controller.get_state("/") == {"a": 1}
    line = _switch(shell, capsys, "%restate backend memory --open")
    assert "was left behind" in line
    assert shell.controller.get_state("/") == {}


def test_status_lists_cells_and_derivations_with_their_paths_and_last_run(
    shell: Shell, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.run('state["/a"] = 1; state["/b"] = 2')
    count = shell.ip.execution_count  # the number the next cell gets
    shell.tracked('print(state["/a"] + state["/b"])')
    shell.run('%restate derive /c = state["/a"] * 3')
    shell.controller.derive("/d", "/c", lambda c: c + 1)
    capsys.readouterr()
    shell.run("%restate status")
    out = capsys.readouterr().out
    assert "1 tracked cell, 2 derivations" in out
    assert f"cell #1 [In[{count}]]  reads /a, /b  last ran" in out
    assert 'derive #1 /c = state["/a"] * 3  reads /a' in out
    assert "derivation /d <- /c" in out


def test_untrack_by_number_dest_and_all(shell: Shell, capsys: pytest.CaptureFixture[str]) -> None:
    first = shell.tracked('print(state.get("/a"))')
    second = shell.tracked('print(state.get("/a"), "again")')
    shell.run('%restate derive /b = state.get("/a")')
    shell.run(f"%restate untrack {first.number}")
    shell.run('state["/a"] = 1')
    assert (first.runs, second.runs) == (1, 2)
    shell.run("%restate untrack /b")
    shell.run('state["/a"] = 2')
    assert shell.controller.get_state("/b") == 1
    shell.run("%restate untrack all")
    assert shell.controller.trackers() == []
    assert "untracked cell #2" in capsys.readouterr().out


def test_running_a_tracked_cell_as_plain_code_untracks_it(shell: Shell) -> None:
    cell = shell.tracked('print(state.get("/a"))', cell_id="c1")
    shell.run("%restate untrack", cell_id="c1")
    shell.run('state["/a"] = 3')
    assert cell.runs == 1
    assert shell.controller.trackers() == []


BAD_INPUT = [
    "",
    "frobnicate /a",
    "get",
    "get /a/../b",
    "get /a extra",
    "set /a",
    "set /a 1 +",
    "del",
    "ping /x/*/y",
    "derive /a",
    "derive /a == 1",
    "derive /a = ",
    "backend",
    "backend postgres x",
    "backend fs",
    "backend memory extra",
    "backend memory --move",
    "backend memory --copy --open",
    'backend fs "unclosed',
    "status now",
    "untrack a b",
    "track",
]


@pytest.mark.parametrize("line", BAD_INPUT)
def test_bad_magic_input_prints_one_usage_line_and_changes_nothing(
    shell: Shell, capsys: pytest.CaptureFixture[str], line: str
) -> None:
    shell.controller.set_state("/a", 1)
    capsys.readouterr()
    result = shell.run_raw(f"%restate {line}")
    out, err = capsys.readouterr()
    assert isinstance(result.error_in_exec, UsageError)
    assert "Traceback" not in out + err
    lines = [x for x in (out + err).splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("UsageError:"), lines
    assert "%restate" in lines[0] or "usage" in lines[0]
    assert shell.controller.get_state("/") == {"a": 1}
    assert isinstance(shell.controller.backend, InMemoryBackend)


@pytest.mark.parametrize("header", ["%%restate", "%%restate track now", "%%restate derive"])
def test_bad_cell_magic_input_is_a_usage_error(shell: Shell, header: str) -> None:
    with pytest.raises(UsageError):
        shell.run(f"{header}\nx = 1")
    assert shell.controller.trackers() == []


def test_extension_import_does_not_import_ipython() -> None:
    import subprocess
    import sys

    code = "import sys, restate_nb; print('IPython' in sys.modules, 'ipywidgets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"
    assert restate_nb.get_controller() is restate_nb.get_controller()


def test_tree_displays_a_state_tree_of_the_notebook_controller(shell: Shell) -> None:
    shell.run('state["/users/1/name"] = "ada"')
    with capture_output() as captured:
        shell.run("%restate tree /users")
    [tree] = shell.session.trees
    assert isinstance(tree, restate_nb.StateTree)
    assert tree.controller is shell.controller and tree.path == "/users"
    [shown] = captured.outputs
    view = shown.data["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] == tree.model_id


def test_tree_with_a_bad_path_is_a_usage_error(shell: Shell) -> None:
    with pytest.raises(UsageError, match="tree"):
        shell.run("%restate tree /a/../b")


def test_running_a_tree_cell_again_closes_the_tree_it_showed_before(shell: Shell) -> None:
    with capture_output():
        shell.run("%restate tree", cell_id="tree-cell")
        [first] = shell.session.trees
        shell.run("%restate tree /a", cell_id="other-cell")
        shell.run("%restate tree", cell_id="tree-cell")
    assert first.comm is None and first.protocol.closed
    assert len(shell.session.trees) == 2
    assert all(t.comm is not None for t in shell.session.trees)


def test_a_tree_made_in_code_belongs_to_its_cell_too(shell: Shell) -> None:
    code = "from restate_nb import StateTree\ntrees = [StateTree(), StateTree(path='/a')]"
    shell.run(code, cell_id="code-cell")
    made = shell.ns["trees"]
    assert all(t.comm is not None for t in made)  # two trees in one run both stay
    shell.run(code, cell_id="code-cell")
    assert all(t.comm is None for t in made)
    assert all(t.comm is not None for t in shell.ns["trees"])


def test_a_cell_that_ends_sends_what_it_changed_to_every_tree_at_once(shell: Shell) -> None:
    with capture_output():
        shell.run("%restate tree", cell_id="tree-cell")
    [tree] = shell.session.trees
    tree.protocol.interval = 60  # the flusher alone would wait a minute
    tree.protocol._last_diff = time.monotonic()
    shell.run('state["/late"] = "written"', cell_id="writer")
    children = tree._snapshot["root"]["children"]
    assert [c["json"] for c in children if c["key"] == "late"] == ['"written"']


def test_paths_and_backend_arguments_still_expand_names_from_the_namespace(
    shell: Shell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.run(f"db = {str(tmp_path / 'named.db')!r}\nuid = 7\nn = 2")
    shell.run("%restate set /users/{uid} {1, n}")  # the path expands, the expression does not
    assert shell.controller.get_state("/users/7") == {1, 2}
    assert shell.run("%restate get /users/$uid") == {1, 2}
    shell.run("%restate derive /double/{uid} = len(state.get('/users/7', ())) * n")
    assert shell.controller.get_state("/double/7") == 4
    shell.run("%restate del /users/{uid}")
    capsys.readouterr()
    shell.run("%restate backend sqlite {db}")
    assert "named.db" in capsys.readouterr().out
    assert (tmp_path / "named.db").exists()
