"""docs/semantics.md §1: path forms, normalisation, invalid paths and keys."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from restate import ROOT_PATH, ControllerSync, InvalidPathError, StateError
from restate.paths import check_key, to_parts


class _Atomish:
    def __init__(self, path: str) -> None:
        self.path = path


@pytest.mark.parametrize(
    ("path", "parts"),
    [
        ("/", ()),
        ("", ()),
        ("/users/1", ("users", "1")),
        ("users/1", ("users", "1")),
        ("//users///1/", ("users", "1")),
        ("/./users/./1", ("users", "1")),
        (PurePosixPath("/users/1"), ("users", "1")),
        (PurePosixPath("users") / "1", ("users", "1")),
        (ROOT_PATH / "users" / "1", ("users", "1")),
        (_Atomish("/a/b"), ("a", "b")),
        ("/a*/b", ("a*", "b")),
        ("/ünï/代码", ("ünï", "代码")),
    ],
)
def test_accepted_path_forms_normalise_to_the_same_segments(path: object, parts: tuple) -> None:
    assert to_parts(path) == parts


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/a/../b", "'..'"),
        ("..", "'..'"),
        ("/a/\0b", "NUL"),
        ("/users/*/name", "wildcards are only allowed in subscriptions"),
        ("*", "wildcards"),
    ],
)
def test_invalid_paths_raise_invalid_path_error_naming_the_problem(
    path: str, fragment: str
) -> None:
    with pytest.raises(InvalidPathError) as info:
        to_parts(path)
    assert fragment in str(info.value)
    assert isinstance(info.value, StateError) and isinstance(info.value, ValueError)


def test_wildcards_are_accepted_in_subscription_paths() -> None:
    assert to_parts("/users/*/name", wildcard=True) == ("users", "*", "name")


@pytest.mark.parametrize("path", [1, 2.5, None, b"/a", ["a"], object()])
def test_a_non_path_type_raises_type_error(path: object) -> None:
    with pytest.raises(TypeError, match="state path must be"):
        to_parts(path)


@pytest.mark.parametrize("key", ["", "a/b", ".", "..", "*", "a\0b", 1, None, ("a",)])
def test_invalid_dict_keys_are_rejected(key: object) -> None:
    with pytest.raises(InvalidPathError):
        check_key(key)


@pytest.mark.parametrize("method", ["get_state", "del_state", "ping"])
@pytest.mark.parametrize("path", ["/a/../b", "/x/*", "/a\0"])
def test_every_controller_method_rejects_invalid_paths_and_changes_nothing(
    method: str, path: str
) -> None:
    c = ControllerSync()
    c.set_state("/a", {"b": 1})
    with pytest.raises(InvalidPathError):
        getattr(c, method)(path)
    assert c.get_state("/") == {"a": {"b": 1}}
