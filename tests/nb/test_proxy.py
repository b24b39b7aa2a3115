"""The ``state`` mapping, in a real in-process IPython shell."""

from __future__ import annotations

import pytest

from restate import InvalidPathError, PathConflictError

from .conftest import Shell


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


def test_values_read_are_copies(shell: Shell) -> None:
    state = shell.ns["state"]
    state["/d"] = {"k": [1]}
    value = state["/d"]
    value["k"].append(2)
    assert state["/d"] == {"k": [1]}


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
