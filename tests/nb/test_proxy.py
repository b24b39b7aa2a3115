"""The ``state`` mapping, in a real in-process IPython shell."""

from __future__ import annotations

import copy
import json
import pickle

import pytest

from restate import InvalidPathError, PathConflictError

from .conftest import Shell, seen


def test_state_reads_writes_and_deletes_paths(shell: Shell) -> None:
    state = shell.ns["state"]
    state["/config/theme"] = "dark"
    state["config/colors/primary"] = 1  # the leading slash is optional
    assert state["/config"] == {"theme": "dark", "colors": {"primary": 1}}
    del state["/config/colors"]
    assert shell.controller.get_state("/config") == {"theme": "dark"}


def test_missing_paths_raise_key_error_and_get_returns_the_default(shell: Shell) -> None:
    state = shell.ns["state"]
    with pytest.raises(KeyError):
        state["/nope"]
    with pytest.raises(KeyError):
        del state["/nope"]
    assert state.get("/nope") is None
    assert state.get("/nope", 5) == 5
    state["/none"] = None
    assert state["/none"] is None and "/none" in state and "/nope" not in state


def test_iteration_and_len_follow_the_top_level_of_the_tree(shell: Shell) -> None:
    state = shell.ns["state"]
    assert len(state) == 0 and list(state) == []
    state["/a/x"] = 1
    state["/b"] = 2
    assert sorted(state) == ["a", "b"] and len(state) == 2
    assert dict(state.items()) == {"a": {"x": 1}, "b": 2}
    assert "InMemoryBackend" in repr(state)


def test_values_read_are_read_only_snapshots_that_refuse_in_place_changes(shell: Shell) -> None:
    state = shell.ns["state"]
    state["/d"] = {"k": [1]}
    value = state["/d"]
    with pytest.raises(TypeError, match=r'state\["/d/k"\] is a read-only snapshot'):
        value["k"].append(2)
    assert state["/d"] == {"k": [1]}
    assert isinstance(value, dict) and isinstance(value["k"], list)


def test_bad_paths_and_writes_below_a_leaf_raise_and_change_nothing(shell: Shell) -> None:
    state = shell.ns["state"]
    state["/leaf"] = 1
    with pytest.raises(InvalidPathError):
        state["/a/../b"] = 1
    with pytest.raises(PathConflictError):
        state["/leaf/below"] = 1
    with pytest.raises(TypeError):
        state[3] = 1
    assert shell.controller.get_state("/") == {"leaf": 1}


def test_state_follows_a_backend_switch(shell: Shell, tmp_path) -> None:  # type: ignore[no-untyped-def]
    shell.run(f'%restate backend sqlite "{tmp_path / "x.db"}"')
    shell.ns["state"]["/s"] = "stored"
    assert shell.controller.backend.read("/s") == "stored"


MUTATIONS = [
    # (stored value, path read, the in-place change, the write the message suggests)
    (
        {"a": 1},
        "/cfg",
        lambda v: v.__setitem__("a", 2),
        'write by path instead: state["/cfg/a"] = 2',
    ),
    ({"a": 1}, "/cfg", lambda v: v.update(a=2), 'state["/cfg"] = ...'),
    ({"a": 1}, "/cfg", lambda v: v.pop("a"), 'state["/cfg"] = ...'),
    ({"a": 1}, "/cfg", lambda v: v.setdefault("b", 1), 'state["/cfg"] = ...'),
    ({"a": 1}, "/cfg", lambda v: v.clear(), 'state["/cfg"] = ...'),
    ({"a": 1}, "/cfg", lambda v: v.__delitem__("a"), 'del state["/cfg/a"]'),
    ({"sub": {"b": 1}}, "/cfg", lambda v: v["sub"].__setitem__("b", 3), 'state["/cfg/sub/b"] = 3'),
    (
        {"l": [1, {"c": 2}]},
        "/cfg",
        lambda v: v["l"][1].__setitem__("c", 5),
        'state["/cfg/l"] = ...',
    ),
    ({"l": [1]}, "/cfg", lambda v: v["l"].append(2), 'state["/cfg/l"] = ...'),
    ([3, 1], "/items", lambda v: v.sort(), 'state["/items"] = ...'),
    ([3, 1], "/items", lambda v: v.__setitem__(0, 9), 'state["/items"] = ...'),
    ([3, 1], "/items", lambda v: v.extend([4]), 'state["/items"] = ...'),
    ([3, 1], "/items", lambda v: v.__delitem__(0), 'state["/items"] = ...'),
    ({1, 2}, "/tags", lambda v: v.add(3), 'state["/tags"] = ...'),
    ({1, 2}, "/tags", lambda v: v.discard(1), 'state["/tags"] = ...'),
]


@pytest.mark.parametrize(("stored", "path", "change", "hint"), MUTATIONS)
def test_an_in_place_change_of_a_value_read_raises_naming_the_write_and_changes_nothing(
    shell: Shell, stored: object, path: str, change: object, hint: str
) -> None:
    state = shell.ns["state"]
    state[path] = stored
    value = state[path]
    with pytest.raises(TypeError) as raised:
        change(value)  # type: ignore[operator]
    assert str(raised.value).startswith(f'state["{path}')  # the value's own path
    assert "is a read-only snapshot" in str(raised.value)
    assert hint in str(raised.value)
    assert shell.controller.get_state(path) == stored
    assert value == stored  # the snapshot did not change either


def test_snapshots_behave_as_plain_values_for_copies_json_pickle_and_writing_back(
    shell: Shell,
) -> None:
    state = shell.ns["state"]
    state["/cfg"] = {"a": 1, "sub": {"l": [1, 2]}}
    cfg = state["/cfg"]
    mine = copy.deepcopy(cfg)
    mine["sub"]["l"].append(3)  # a deep copy is plain and mutable
    assert type(mine["sub"]) is dict and type(mine["sub"]["l"]) is list
    shallow = dict(cfg)
    shallow["a"] = 2
    assert type(cfg.copy()) is dict and type(copy.copy(cfg)) is dict
    assert json.loads(json.dumps(cfg)) == cfg
    assert type(pickle.loads(pickle.dumps(cfg))) is dict
    state["/cfg"] = mine  # the documented way: change a copy, write it back
    assert shell.controller.get_state("/cfg/sub/l") == [1, 2, 3]
    state["/copy"] = state["/cfg"]  # a snapshot written elsewhere is stored as plain data
    assert type(shell.controller.get_state("/copy")) is dict


def test_augmented_assignment_through_state_writes_a_new_value(shell: Shell) -> None:
    state = shell.ns["state"]
    state["/items"] = [1]
    state["/cfg"] = {"a": 1}
    state["/tags"] = {1}
    state["/items"] += [2]
    state["/cfg"] |= {"b": 2}
    state["/tags"] |= {2}
    assert shell.controller.get_state("/") == {
        "items": [1, 2],
        "cfg": {"a": 1, "b": 2},
        "tags": {1, 2},
    }
    items = state["/items"]
    items += [3]  # like a tuple: rebinds the name to a new list, the state is untouched
    assert items == [1, 2, 3] and shell.controller.get_state("/items") == [1, 2]


def test_get_and_the_magic_return_snapshots_and_defaults_as_given(shell: Shell) -> None:
    state = shell.ns["state"]
    state["/cfg"] = {"a": 1}
    with pytest.raises(TypeError, match="read-only snapshot"):
        state.get("/cfg")["a"] = 2
    with pytest.raises(TypeError, match="read-only snapshot"):
        shell.run("%restate get /cfg")["a"] = 2
    default: dict[str, int] = {}
    assert state.get("/missing", default) is default
    default["x"] = 1  # the default is the caller's own object


def test_a_tracked_cell_mutating_a_value_it_read_shows_the_error_in_its_output(
    shell: Shell,
) -> None:
    state = shell.ns["state"]
    state["/cfg"] = {"a": 1}
    cell = shell.tracked('cfg = state["/cfg"]\ncfg["a"] = cfg["a"] + 1\nprint("finished" + "!")')
    text = seen(cell)
    assert 'TypeError: state["/cfg"] is a read-only snapshot' in text
    assert 'state["/cfg/a"] = 2' in text and "finished!" not in text
    assert shell.controller.get_state("/cfg") == {"a": 1}
    state["/cfg/a"] = 5  # still tracked: it re-runs, and says so again
    assert 'state["/cfg/a"] = 6' in seen(cell)


def test_snapshots_print_like_the_plain_values(shell: Shell) -> None:
    state = shell.ns["state"]
    state["/v"] = {"s": {1, 2}, "l": [1, [2]], "d": {"k": "v"}}
    assert repr(state["/v"]) == repr({"s": {1, 2}, "l": [1, [2]], "d": {"k": "v"}})
    assert str(state["/v/s"]) == "{1, 2}"
