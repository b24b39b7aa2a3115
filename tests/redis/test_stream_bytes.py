"""``stream_maxbytes``: the change stream kept within a byte budget, oldest entries first."""

from __future__ import annotations

import queue
import threading

import pytest
import redis

from restate.backends.base import MISSING
from restate.backends.redis import RESYNCED, RedisBackend

pytestmark = pytest.mark.redis


def entries(raw: redis.Redis, prefix: str) -> list[tuple[str, dict[str, str]]]:
    return raw.xrange(f"{{{prefix}}}:changes")


def size(fields: dict[str, str]) -> int:
    return len(fields["c"]) + 64  # what the script counts per entry (scripts.py, ENTRY_BYTES)


def test_the_stream_stays_within_its_byte_budget_keeping_the_newest_entries(url, prefix, raw):
    with RedisBackend(url, prefix, stream_maxbytes=4096) as backend:
        for i in range(200):
            backend.write("/blob", {"i": i, "pad": "x" * (100 + i % 300)})
        kept = entries(raw, prefix)
    total = sum(size(fields) for _, fields in kept)
    assert total <= 4096
    assert int(raw.get(f"{{{prefix}}}:bytes")) == total  # the count is exact
    assert '"i":199' in kept[-1][1]["c"]  # the newest stays
    seqs = [int(fields["s"]) for _, fields in kept]
    assert seqs == list(range(seqs[0], 201))  # only the oldest went, none in the middle
    biggest = max(size(fields) for _, fields in kept)
    assert total > 4096 - biggest  # no more was dropped than needed


def test_an_entry_bigger_than_the_budget_stays_until_the_next_commit(url, prefix, raw):
    with RedisBackend(url, prefix, stream_maxbytes=2048) as backend:
        backend.write("/a", 1)
        backend.write("/big", "y" * 5000)
        kept = entries(raw, prefix)
        assert len(kept) == 1 and "yyyy" in kept[0][1]["c"]
        backend.write("/a", 2)
        kept = entries(raw, prefix)
        assert len(kept) == 1 and '"n":2' in kept[0][1]["c"]


def test_with_a_byte_budget_the_entry_bound_is_exact_too(url, prefix, raw):
    with RedisBackend(url, prefix, stream_maxlen=5, stream_maxbytes=1 << 20) as backend:
        for i in range(30):
            backend.write("/n", i)
    kept = entries(raw, prefix)
    assert len(kept) == 5 and '"n":29' in kept[-1][1]["c"]
    assert int(raw.get(f"{{{prefix}}}:bytes")) == sum(size(f) for _, f in kept)


def test_a_follower_further_behind_than_the_byte_budget_resyncs_what_changed(url, prefix, backend):
    got: queue.Queue = queue.Queue()
    busy = threading.Event()

    def slow_handler(changes):
        got.put(changes)
        busy.wait(5)  # the follower reads nothing while its handler runs

    unwatch = backend.watch(slow_handler)
    with RedisBackend(url, prefix, stream_maxbytes=2048) as writer:
        writer.write("/n", 0)
        assert got.get(timeout=10) == [("/n", MISSING, 0)]
        for i in range(1, 40):  # ~40 entries of ~300 bytes: the budget holds 6 of them
            writer.write("/n", {"i": i, "pad": "z" * 200})
        busy.set()
        last = {"i": 39, "pad": "z" * 200}
        assert got.get(timeout=10) == [("/n", MISSING, last, RESYNCED)]
        writer.write("/n", 40)
        assert got.get(timeout=10) == [("/n", last, 40)]
    unwatch()


@pytest.mark.parametrize("bad", [0, 100, -5, "1mb", 1.5])
def test_a_byte_budget_that_is_not_an_int_of_at_least_1024_is_refused(url, prefix, bad):
    with pytest.raises(ValueError, match="stream_maxbytes"):
        RedisBackend(url, prefix, stream_maxbytes=bad)
