"""File batches are all-or-nothing across SIGKILL, and update()/batch() are atomic across
processes on one directory (the journal and the directory lock of the file backend)."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from restate import ControllerSync
from restate.backends import FileSystemSyncBackend
from restate.backends.filesystem.journal import JOURNAL_NAME
from tests.children import Child, run_together

BATCHER = """
import sys
from restate import ControllerSync
from restate.backends import FileSystemSyncBackend
c = ControllerSync(FileSystemSyncBackend(sys.argv[1]))
i = int(sys.argv[2])
while True:
    with c.batch():
        for j in range(6):
            c.set_state(f"/a/k{j}", i)
        c.set_state("/doc", {"n": i, "pad": "x" * (i * 7919 % 5000)})
        c.set_state("/deep/x/y", {"n": i})
        c.set_state(f"/flip{i % 2}", i)
        c.del_state(f"/flip{(i + 1) % 2}")
        c.set_state(f"/docs/d{i % 3}", {"n": i})
    if i == int(sys.argv[2]):
        print("ready", flush=True)
    i += 1
"""


def _check_whole(state: dict) -> int:
    """Every value written by one batch is there, from the same batch; returns its number."""
    n = state["doc"]["n"]
    assert state["a"] == {f"k{j}": n for j in range(6)}
    assert state["doc"]["pad"] == "x" * (n * 7919 % 5000)
    assert state["deep"] == {"x": {"y": {"n": n}}}
    assert f"flip{n % 2}" in state and f"flip{(n + 1) % 2}" not in state
    assert state["docs"][f"d{n % 3}"] == {"n": n}
    return int(n)


@pytest.mark.slow
def test_a_batch_killed_at_random_moments_is_all_or_nothing_on_reopen(tmp_path: Path) -> None:
    base = tmp_path / "state"
    rng = random.Random(4321)
    seen, mid_batch = -1, 0
    for attempt in range(36):
        with Child.script(BATCHER, str(base), str((attempt + 1) * 100_000)) as batcher:
            batcher.expect("ready")
            time.sleep(rng.uniform(0.0, 0.03))  # a random moment of its batches
            batcher.kill()
        mid_batch += (base / JOURNAL_NAME).exists()
        n = _check_whole(FileSystemSyncBackend(base).read("/"))  # reopening recovers
        assert n >= (attempt + 1) * 100_000 > seen  # the committed batches stayed
        seen = n
        assert not (base / JOURNAL_NAME).exists()
    print(f"{mid_batch} of 36 kills landed inside a batch")
    assert mid_batch >= 1, "no kill landed inside a batch: the test proved nothing"


COUNTER = """
import sys
from restate import ControllerSync
from restate.backends import FileSystemSyncBackend
controller = ControllerSync(FileSystemSyncBackend(sys.argv[1]))
print("ready", flush=True)
sys.stdin.readline()
for _ in range(int(sys.argv[2])):
    controller.update("/counter/n", lambda n: n + 1, default=0)
    with controller.batch():
        controller.set_state("/pair/a", controller.get_state("/pair/a", 0) + 1)
        controller.set_state("/pair/b", controller.get_state("/pair/b", 0) + 1)
"""


@pytest.mark.slow
def test_update_and_batch_from_four_processes_on_one_directory_lose_nothing(
    tmp_path: Path,
) -> None:
    base = str(tmp_path / "state")
    FileSystemSyncBackend(base)
    run_together(COUNTER, [base, "150"], 4)
    state = ControllerSync(FileSystemSyncBackend(base)).get_state("/")
    assert state["counter"] == {"n": 600}
    assert state["pair"] == {"a": 600, "b": 600}


WAITING_WRITER = """
import sys
from restate.backends import FileSystemSyncBackend
fs = FileSystemSyncBackend(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
fs.write("/x", "B")
fs.write("/y", "B")
print("done", flush=True)
"""


def test_an_aborted_batch_never_overwrites_another_process_s_committed_writes(
    tmp_path: Path,
) -> None:
    base = tmp_path / "state"
    fs = FileSystemSyncBackend(base)
    fs.write("/x", "before")
    with Child.script(WAITING_WRITER, str(base)) as writer:
        writer.expect("ready")
        with pytest.raises(RuntimeError), fs.transaction():
            fs.write("/x", "A")
            writer.send("go")  # the other process writes now: it waits for our lock
            assert fs.read("/y") is None
            raise RuntimeError("abort")
        writer.expect("done")
        assert writer.wait() == 0
    assert fs.read("/") == {"x": "B", "y": "B"}
