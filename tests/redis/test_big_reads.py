"""Large subtrees are read in bounded chunks, and still as one state of the tree."""

from __future__ import annotations

import threading

import pytest

from restate.backends.base import MISSING
from restate.backends.redis import RedisBackend, walk

pytestmark = pytest.mark.redis

TREE = {
    "wide": {f"k{i}": i for i in range(40)},  # one directory bigger than the budget: HSCAN
    "deep": {"a": {"b": {"c": {"d": [1, 2]}}, "e": "x"}, "f": {}},
    "many": {f"d{i}": {"v": i, "w": {"z": None}} for i in range(12)},  # many small ones
    "leaf": 1.5,
}


@pytest.fixture
def small_budget(monkeypatch):
    monkeypatch.setattr(walk, "BUDGET", 7)
    monkeypatch.setattr(walk, "CHUNK", 5)


def test_a_tree_bigger_than_one_script_reads_the_same_in_chunks(small_budget, backend):
    backend.write("/t", TREE)
    assert backend.read("/t") == TREE
    assert backend.read("/") == {"t": TREE}
    assert backend.read("/t/many") == TREE["many"]
    with backend.transaction():  # under a lease, with the buffer merged in
        backend.write("/t/wide/k0", "new")
        assert backend.read("/t/wide") == {**TREE["wide"], "k0": "new"}


def test_a_chunked_read_under_constant_transfers_always_sees_one_state(
    small_budget, url, prefix, backend
):
    backend.write("/acc", {f"a{i}": {"v": 10} for i in range(20)})  # the total stays 200
    stop = threading.Event()

    def transfer() -> None:
        with RedisBackend(url, prefix) as mover:
            i = 0
            while not stop.is_set():
                src, dst = f"/acc/a{i % 20}/v", f"/acc/a{(i * 7 + 3) % 20}/v"
                with mover.transaction():
                    mover.write(src, mover.read(src) - 1)
                    mover.write(dst, mover.read(dst) + 1)
                i += 1

    thread = threading.Thread(target=transfer)
    thread.start()
    try:
        for _ in range(30):
            assert sum(a["v"] for a in backend.read("/acc").values()) == 200
    finally:
        stop.set()
        thread.join(10)


def test_a_resync_after_a_trim_delivers_a_tree_read_in_chunks(small_budget, url, prefix):
    import queue

    got: queue.Queue = queue.Queue()
    with (
        RedisBackend(url, prefix) as follower,
        RedisBackend(url, prefix, stream_maxlen=1) as writer,
    ):
        gate = threading.Event()

        def slow(changes):
            got.put(changes)
            gate.wait(5)

        unwatch = follower.watch(slow)
        writer.write("/first", 0)
        assert got.get(timeout=30) == [("/first", MISSING, 0)]
        for i in range(300):  # trimmed past the follower while it is busy
            writer.write("/t", {**TREE, "n": i})
        gate.set()
        [(path, prev, tree, _)] = got.get(timeout=30)  # only what changed: /t, read in chunks
        assert (path, prev) == ("/t", MISSING)
        assert tree == {**TREE, "n": 299}
        unwatch()
