"""Other processes: a writer killed with SIGKILL never leaves a torn file; SQLite update()
from several processes loses nothing."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from restate import ControllerSync
from restate.backends import FileSystemSyncBackend, SQLiteBackend
from tests.children import Child, run_together

WRITER = """
import sys
from restate.backends import FileSystemSyncBackend
fs = FileSystemSyncBackend(sys.argv[1])
i = int(sys.argv[2])
fs.write("/doc", {"n": i})
print("ready", flush=True)
while True:
    i += 1
    pad = "x" * (i * 7919 % 20000)
    value = {"i": i, "pad": pad, "size": len(pad)}
    fs.write(f"/k{i % 5}", value)
    fs.write(f"/d/sub{i % 3}/leaf", value)
    fs.write(f"/doc/n{i % 4}", i)
    fs.write(f"/d/sub{i % 3}", {"leaf": value}) if i % 11 == 0 else None
"""


def _check_files(base: Path) -> int:
    """Every value file parses and holds a value the writer wrote; returns how many."""
    count = 0
    for path in base.rglob("*.json"):
        value = json.loads(path.read_text())  # a torn file would not parse
        if path.name == "doc.json":
            assert isinstance(value["n"], int)
            assert all(isinstance(v, int) for v in value.values())
        else:
            leaf = value.get("leaf", value)
            assert leaf["size"] == len(leaf["pad"]) == leaf["i"] * 7919 % 20000
        count += 1
    return count


@pytest.mark.slow
def test_a_writer_killed_at_random_moments_never_leaves_a_torn_file(tmp_path: Path) -> None:
    base = tmp_path / "state"
    rng = random.Random(1234)
    for attempt in range(30):
        with Child.script(WRITER, str(base), str(attempt * 100_000)) as writer:
            writer.expect("ready")
            time.sleep(rng.uniform(0.001, 0.04))  # a random moment of its writes
            writer.kill()
        assert _check_files(base) >= 1
        state = FileSystemSyncBackend(base).read("/")  # the backend reads it all too
        assert isinstance(state["doc"]["n"], int)
    leftovers = [p.name for p in base.rglob(".tmp-*")]
    assert len(leftovers) <= 30 * 1  # at most the one temp file each killed write had open


COUNTER = """
import sys
from restate import ControllerSync
from restate.backends import SQLiteBackend
controller = ControllerSync(SQLiteBackend(sys.argv[1]))
print("ready", flush=True)
sys.stdin.readline()
for _ in range(int(sys.argv[2])):
    controller.update("/counter/n", lambda n: n + 1, default=0)
"""


@pytest.mark.slow
def test_sqlite_update_from_four_processes_loses_nothing(tmp_path: Path) -> None:
    db = str(tmp_path / "state.db")
    SQLiteBackend(db).close()  # create the file and table once
    run_together(COUNTER, [db, "500"], 4, timeout=120)
    assert ControllerSync(SQLiteBackend(db)).get_state("/counter/n") == 2000
