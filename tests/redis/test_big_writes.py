"""Plain writes and deletes of big subtrees run in chunks (big.py), atomic for readers."""

from __future__ import annotations

import asyncio
import queue
import threading

import pytest
import redis

from restate.backends.base import MISSING
from restate.backends.redis import RedisAsyncBackend, RedisBackend
from restate.backends.redis.big import BIG
from restate.errors import PathConflictError

pytestmark = pytest.mark.redis

N = BIG + 1000  # fields: past what one script may replace


def tree(tag: str, dirs: int = 3) -> dict[str, dict[str, str]]:
    per = N // dirs + 1
    return {f"d{d}": {f"k{i}": f"{tag}{i}" for i in range(per)} for d in range(dirs)}


def commands(raw: redis.Redis) -> dict[str, int]:
    return {k[len("cmdstat_") :]: v["calls"] for k, v in raw.info("commandstats").items()}


def test_a_big_write_is_staged_in_chunks_and_swapped_in_by_one_script(backend, raw, other):
    got: queue.Queue = queue.Queue()
    unwatch = other.watch(got.put)
    old, new = tree("old"), tree("new")
    backend.write("/t", old)
    assert got.get(timeout=10) == [("/t", MISSING, old)]
    raw.config_resetstat()
    assert backend.swap("/t", new) == old
    assert other.read("/t") == new
    assert got.get(timeout=10) == [("/t", old, new)]
    stats = commands(raw)
    assert stats["fcall"] >= 4  # read, walks, stages, the swap: no single script of N fields
    assert not [k for k in raw.scan_iter(match=f"{{{backend.prefix}}}:s:*")]  # renamed
    unwatch()


def test_a_big_delete_unlinks_the_subtree_and_records_its_value(backend, other):
    got: queue.Queue = queue.Queue()
    old = tree("old", dirs=1)  # one directory of N fields: read with HSCAN
    backend.write("/t", old)
    backend.write("/keep", 1)
    unwatch = other.watch(got.put)
    backend.delete("/t")
    assert backend.read("/") == {"keep": 1}
    assert got.get(timeout=10) == [("/t", old, MISSING)]
    backend.write("/t/d0/k0", "again")  # no leftover of the old directories shows up
    assert backend.read("/t") == {"d0": {"k0": "again"}}
    unwatch()


def test_readers_see_the_old_subtree_or_the_new_one_never_a_mix(backend, other):
    old, new = tree("old"), tree("new")
    backend.write("/t", old)
    seen: list[str] = []
    done = threading.Event()

    def read_while_writing() -> None:
        while not done.is_set():
            value = other.read("/t")
            seen.append("old" if value == old else "new" if value == new else "MIXED")

    reader = threading.Thread(target=read_while_writing)
    reader.start()
    try:
        for _ in range(3):
            backend.write("/t", new)
            backend.write("/t", old)
    finally:
        done.set()
        reader.join(30)
    assert seen and "MIXED" not in seen


def test_an_interrupted_big_write_changes_nothing_and_holds_nobody_back(url, prefix, raw):
    old, new = tree("old"), tree("new")
    with RedisBackend(url, prefix) as backend, RedisBackend(url, prefix, lock_wait=0.5) as other:
        backend.write("/t", old)
        execute = backend._execute

        def interrupted(command):
            if command[:2] == ("eval", "swap"):
                raise KeyboardInterrupt
            return execute(command)

        backend._execute = interrupted
        with pytest.raises(KeyboardInterrupt):
            backend.write("/t", new)
        backend._execute = execute
        assert other.read("/t") == old
        other.write("/t/d0/k0", "next")  # the lease was dropped: no wait (lock_wait 0.5 s)
        staged = list(raw.scan_iter(match=f"{{{prefix}}}:s:*"))
        assert staged and all(0 < raw.pttl(k) <= 60_000 for k in staged)  # they expire


def test_a_big_write_under_a_leaf_is_refused_changes_nothing_and_holds_nobody_back(
    url, prefix, backend
):
    backend.write("/leaf", 1)
    with pytest.raises(PathConflictError):
        backend.write("/leaf/t", tree("x"))
    assert backend.read("/") == {"leaf": 1}
    with RedisBackend(url, prefix, lock_wait=0.2) as other:
        other.write("/leaf", 2)  # its lease was dropped: no wait


@pytest.mark.slow
def test_no_command_of_a_100000_leaf_rewrite_or_delete_blocks_the_server_for_long(backend, raw):
    big = {f"d{d}": {f"k{i}": i for i in range(10_000)} for d in range(10)}
    longest: dict[str, float] = {"rewrite": float("inf"), "delete": float("inf")}
    # The server's own timing of each command (SLOWLOG) still counts the time the machine
    # took the server off its core: on two loaded cores one chunk can be stretched to tens of
    # ms. The claim is about the commands, so the best of three trials is what is checked (a
    # single script doing it all took 160-190 ms in every trial on this machine).
    for _trial in range(3):
        backend.write("/t", big)
        for name, step in (("rewrite", lambda: backend.write("/t", big)),
                           ("delete", lambda: backend.delete("/t"))):  # fmt: skip
            raw.config_set("slowlog-max-len", 10_000)
            raw.config_set("slowlog-log-slower-than", 0)
            raw.slowlog_reset()
            step()
            log = raw.slowlog_get(10_000)
            raw.config_set("slowlog-log-slower-than", 10_000)
            took = max(entry["duration"] for entry in log) / 1000
            longest[name] = min(longest[name], took)
        if max(longest.values()) < 50:
            break
    # the chunks are bounded by what they touch (2,000 fields, or one UNLINK per directory
    # and the entry's 2.4 MB)
    assert longest["rewrite"] < 50 and longest["delete"] < 50, longest
    assert backend.read("/t", MISSING) is MISSING


def test_the_async_twin_writes_and_deletes_big_subtrees_in_chunks_too(url, prefix, raw):
    old, new = tree("old"), tree("new")

    async def main() -> None:
        backend = RedisAsyncBackend(url, prefix)
        try:
            await backend.write("/t", old)
            raw.config_resetstat()
            assert await backend.swap("/t", new) == old
            assert commands(raw).get("fcall", 0) >= 4  # staged, then swapped
            assert await backend.read("/t") == new
            await backend.delete("/t")
            assert await backend.read("/t", MISSING) is MISSING
        finally:
            await backend.close()

    asyncio.run(asyncio.wait_for(main(), 60))
