"""RedisBackend as a store: tree semantics, key layout, validation before anything is sent."""

from __future__ import annotations

import math

import pytest
import redis

from restate.backends.base import MISSING
from restate.backends.redis import RedisBackend
from restate.errors import InvalidPathError, PathConflictError, SerializationError
from tests.redis.conftest import keys_of

pytestmark = pytest.mark.redis


def hashes(raw: redis.Redis, prefix: str) -> dict[str, dict[str, str]]:
    return {k: raw.hgetall(k) for k in keys_of(raw, prefix) if ":n:" in k}


def scripts_run(raw: redis.Redis) -> int:
    stats = raw.info("commandstats")
    return sum(
        stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("fcall", "evalsha", "eval")
    )


def test_a_dict_written_at_a_path_becomes_a_subtree_readable_at_every_level(backend):
    backend.write("/config", {"theme": "dark", "colors": {"primary": 1}})
    backend.write("/config/colors/secondary", [1, "two", None])
    assert backend.read("/config/theme") == "dark"
    assert backend.read("/config/colors") == {"primary": 1, "secondary": [1, "two", None]}
    assert backend.read("/") == {
        "config": {"theme": "dark", "colors": {"primary": 1, "secondary": [1, "two", None]}}
    }


def test_reading_a_missing_path_returns_the_default_and_the_root_is_an_empty_dict(backend):
    assert backend.read("/nope") is None
    assert backend.read("/nope/deeper", MISSING) is MISSING
    assert backend.read("/") == {}
    backend.write("/x", None)
    assert backend.read("/x", MISSING) is None


def test_empty_dicts_are_kept_as_interior_nodes(backend):
    backend.write("/a", {"b": {}})
    assert backend.read("/a") == {"b": {}}
    backend.delete("/a/b")
    assert backend.read("/a") == {}


def test_json_values_round_trip_exactly(backend):
    values = [0, -1, 2**70, 0.1, 1e-300, "ünï/cöde\0", "", True, False, None, [], [[1], {"k": 2}]]
    for i, value in enumerate(values):
        backend.write(f"/v/{i}", value)
    assert [backend.read(f"/v/{i}") for i in range(len(values))] == values


def test_writing_below_a_leaf_raises_and_changes_nothing(backend, raw, prefix):
    backend.write("/a", {"leaf": 1, "keep": 2})
    before = hashes(raw, prefix)
    with pytest.raises(PathConflictError, match="'/a/leaf' holds a leaf"):
        backend.write("/a/leaf/x/y", 3)
    assert hashes(raw, prefix) == before
    assert backend.read("/") == {"a": {"leaf": 1, "keep": 2}}


def test_a_value_that_is_not_json_raises_serialization_error_before_anything_is_sent(backend, raw):
    backend.write("/a", 1)
    sent = scripts_run(raw)
    for bad in [object(), {"ok": 1, "bad": {1, 2}}, math.nan, b"bytes"]:
        with pytest.raises(SerializationError):
            backend.write("/a", bad)
    assert scripts_run(raw) == sent
    assert backend.read("/a") == 1


def test_bad_dict_keys_raise_invalid_path_error_and_nothing_is_sent(backend, raw):
    sent = scripts_run(raw)
    for bad in [{1: "x"}, {"a/b": 1}, {"": 1}, {"ok": [{"*": 1}]}, [{2: 3}]]:
        with pytest.raises(InvalidPathError):
            backend.write("/a", bad)
    assert scripts_run(raw) == sent
    assert backend.read("/a", MISSING) is MISSING


def test_the_root_can_only_be_written_with_a_dict(backend):
    with pytest.raises(TypeError, match="root must be a dict"):
        backend.write("/", 5)
    backend.write("/", {"a": {"b": 1}})
    backend.write("/", {"c": 2})
    assert backend.read("/") == {"c": 2}


def test_deleting_removes_the_subtree_and_a_missing_path_is_a_no_op(backend, raw, prefix):
    backend.write("/a", {"b": {"c": 1}, "d": 2})
    backend.write("/e", 3)
    backend.delete("/a/b")
    assert backend.read("/") == {"a": {"d": 2}, "e": 3}
    entries = raw.xlen(f"{{{prefix}}}:changes")
    backend.delete("/a/b")
    backend.delete("/missing/deep")
    backend.delete("/e/below/a/leaf")
    assert raw.xlen(f"{{{prefix}}}:changes") == entries
    backend.delete("/")
    assert backend.read("/") == {}
    kept = {f"{{{prefix}}}:{name}" for name in ("changes", "seq", "since", "floor")}  # resyncs
    assert keys_of(raw, prefix) == kept  # nothing per client: a write id rides in its entry


def test_each_directory_is_one_hash_and_overwriting_a_subtree_drops_its_hashes(
    backend, raw, prefix
):
    backend.write("/users", {"1": {"name": "ann", "tags": {"x": 1}}, "2": {"name": "bob"}})
    n = f"{{{prefix}}}:n:"
    assert keys_of(raw, prefix) == {
        f"{{{prefix}}}:changes", f"{{{prefix}}}:seq", f"{{{prefix}}}:since",
        f"{{{prefix}}}:floor", n + "/",
        n + "/users", n + "/users/1", n + "/users/1/tags", n + "/users/2",
    }  # fmt: skip
    assert raw.hget(n + "/users/1", "name") == '"ann"'
    backend.write("/users/1", "gone")
    assert n + "/users/1/tags" not in keys_of(raw, prefix)
    assert n + "/users/1" not in keys_of(raw, prefix)


def test_subtree_reads_and_deletes_touch_only_that_subtree(backend, raw, prefix):
    backend.write("/big", {str(i): {"v": i} for i in range(300)})
    backend.write("/small", {"a": {"b": 1}})
    raw.config_resetstat()
    assert backend.read("/small") == {"a": {"b": 1}}
    backend.delete("/small")
    stats = raw.info("commandstats")
    # a Lua script's inner calls are counted too: the two scripts visited two hashes each
    assert stats["cmdstat_hgetall"]["calls"] <= 6
    assert "cmdstat_keys" not in stats and "cmdstat_scan" not in stats


def test_two_clients_with_different_prefixes_do_not_see_each_other(url, backend):
    with RedisBackend(url, backend.prefix + "-other") as elsewhere:
        backend.write("/a", 1)
        assert elsewhere.read("/a") is None


def test_paths_given_as_parts_strings_or_pure_posix_paths_are_the_same(backend):
    from pathlib import PurePosixPath

    backend.write(PurePosixPath("/a/b"), 1)
    assert backend.read("a/b") == 1
    assert backend.read("/a//b/.") == 1
