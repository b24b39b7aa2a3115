"""Plain file writes and deletes: one rename or unlink skips the journal, several steps never
do (a crash in the middle of replacing or deleting a directory subtree is whole or absent)."""

from __future__ import annotations

import os
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from restate.backends import FileSystemSyncBackend
from restate.backends.filesystem import backend as backend_module
from restate.backends.filesystem import journal as journal_module
from restate.backends.filesystem.journal import JOURNAL_NAME
from restate.missing import MISSING
from tests.children import Child

SUBTREE = {"d": {f"k{j}": j for j in range(8)}, "e": {"x": "y"}}


def _subtree(fs: FileSystemSyncBackend) -> None:
    """``/t`` as directories and leaf files (not one document)."""
    with fs.transaction():
        for key, children in SUBTREE.items():
            for name, value in children.items():
                fs.write(f"/t/{key}/{name}", value)
    assert (fs.base_dir / "t" / "d").is_dir()


class Crash(BaseException):
    """Stands for the process dying: raised after the directory was copied as it stood."""


def _crash_at_unlink(
    monkeypatch: pytest.MonkeyPatch, base: Path, copy: Path, nth: int
) -> Callable[[], int]:
    """Make the ``nth`` file removal of the backend copy the directory (what a SIGKILL at that
    moment would leave on disk) and raise ``Crash``; returns a counter of removals."""
    calls = 0
    real = backend_module.unlink_at

    def unlink_at(parent: int, name: str) -> bool:
        nonlocal calls
        calls += 1
        if calls == nth:
            shutil.copytree(base, copy, symlinks=True)
            raise Crash
        return real(parent, name)

    monkeypatch.setattr(backend_module, "unlink_at", unlink_at)
    return lambda: calls


@pytest.mark.parametrize("nth", [1, 2, 5, 9])
@pytest.mark.parametrize("change", ["write a leaf over", "delete"])
def test_a_crash_anywhere_inside_a_plain_write_or_delete_of_a_subtree_leaves_it_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str, nth: int
) -> None:
    base, copy = tmp_path / "state", tmp_path / "after-crash"
    fs = FileSystemSyncBackend(base)
    _subtree(fs)
    _crash_at_unlink(monkeypatch, base, copy, nth)
    with pytest.raises(Crash):
        if change == "delete":
            fs.delete("/t")
        else:
            fs.write("/t", 42)
    monkeypatch.undo()
    assert (copy / JOURNAL_NAME).exists(), "the subtree change was not journaled"
    assert FileSystemSyncBackend(copy).read("/") == {"t": SUBTREE}  # reopening undoes it
    assert not (copy / JOURNAL_NAME).exists()
    assert not (copy / "t.json").exists()


def test_an_interrupt_inside_a_plain_write_over_a_subtree_puts_the_subtree_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs = FileSystemSyncBackend(tmp_path)
    _subtree(fs)
    real, calls = backend_module.unlink_at, 0

    def unlink_at(parent: int, name: str) -> bool:
        nonlocal calls
        calls += 1
        if calls == 4:
            raise KeyboardInterrupt
        return real(parent, name)

    monkeypatch.setattr(backend_module, "unlink_at", unlink_at)
    with pytest.raises(KeyboardInterrupt):
        fs.write("/t", 42)
    monkeypatch.undo()
    assert fs.read("/") == {"t": SUBTREE}
    assert not (tmp_path / "t.json").exists()
    fs.write("/t", 43)  # and the store goes on
    assert fs.read("/") == {"t": 43} and not (tmp_path / "t").exists()


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda fs: fs.write("/a/leaf", 2), id="a leaf replaced"),
        pytest.param(lambda fs: fs.write("/a/new", 3), id="a leaf created in a directory"),
        pytest.param(lambda fs: fs.write("/doc/inner/x", 4), id="a write inside a document"),
        pytest.param(lambda fs: fs.delete("/a/leaf"), id="a leaf deleted"),
        pytest.param(lambda fs: fs.delete("/doc/inner"), id="a delete inside a document"),
        pytest.param(lambda fs: fs.write("/top", 5), id="a leaf created in the root"),
    ],
)
def test_a_plain_change_of_one_rename_or_unlink_writes_no_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: Callable[[Any], None]
) -> None:
    fs = FileSystemSyncBackend(tmp_path)
    fs.write("/a/leaf", 1)
    fs.write("/doc", {"inner": {"x": 0}})

    def no_journal(root: int) -> int:
        raise AssertionError("a single-step change created the journal")

    monkeypatch.setattr(journal_module, "_create", no_journal)
    change(fs)
    monkeypatch.undo()
    assert fs.read("/a/leaf", MISSING) in (1, 2, MISSING)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda fs: fs.write("/new/dir/leaf", 1), id="directories made"),
        pytest.param(lambda fs: fs.write("/t", 1), id="a directory replaced by a file"),
        pytest.param(lambda fs: fs.delete("/t"), id="a directory deleted"),
        pytest.param(lambda fs: fs.write("/", {"x": 1}), id="the root written"),
        pytest.param(lambda fs: fs.delete("/"), id="the root deleted"),
        pytest.param(lambda fs: fs.write("/" + "k" * 300, 1), id="a key with a sidecar"),
    ],
)
def test_a_plain_change_of_several_steps_is_journaled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: Callable[[Any], None]
) -> None:
    fs = FileSystemSyncBackend(tmp_path)
    _subtree(fs)
    created = []
    real = journal_module._create

    def spy(root: int) -> int:
        created.append(True)
        return real(root)

    monkeypatch.setattr(journal_module, "_create", spy)
    change(fs)
    assert created, "a change of several steps went without a journal"
    assert not (tmp_path / JOURNAL_NAME).exists()


@pytest.mark.parametrize("durable", [False, True])
def test_the_journal_is_fsynced_only_when_the_store_is_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durable: bool
) -> None:
    fs = FileSystemSyncBackend(tmp_path, durable=durable)
    _subtree(fs)
    synced: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with fs.transaction():
        fs.write("/t/d/k0", 100)
        fs.write("/u", 1)
    monkeypatch.undo()
    assert bool(synced) is durable
    assert fs.read("/t/d/k0") == 100 and fs.read("/u") == 1


REPLACER = """
import sys
from restate.backends import FileSystemSyncBackend
fs = FileSystemSyncBackend(sys.argv[1])
i = int(sys.argv[2])
first = True
while True:
    with fs.transaction():
        fs.delete("/t")
        for j in range(40):  # big files: undoing their removal takes the journal most work
            fs.write(f"/t/d/k{j}", f"{i}:" + "x" * 20_000)
    fs.write("/t", i)  # a directory of 40 files replaced by a leaf: one plain write
    if first:
        print("ready", flush=True)
        first = False
    i += 1
"""


def _value_files(directory: Path) -> int:
    return sum(1 for _ in directory.rglob("*.json")) if directory.is_dir() else 0


@pytest.mark.slow
def test_sigkill_during_a_plain_write_that_replaces_a_subtree_by_a_leaf_is_whole_or_absent(
    tmp_path: Path,
) -> None:
    base = tmp_path / "state"
    rng = random.Random(97)
    mid_write = kills = 0
    while kills < 30 or (mid_write < 2 and kills < 150):  # >= 30 kills, 2 inside the write
        kills += 1
        attempt = kills
        with Child.script(REPLACER, str(base), str(attempt * 100_000)) as replacer:
            replacer.expect("ready")
            time.sleep(rng.uniform(0.0, 0.15))  # several batch+write rounds
            replacer.kill()
        # the new leaf in place while the old subtree is half removed: the kill hit the write
        mid_write += (base / "t.json").exists() and _value_files(base / "t") > 0
        t = FileSystemSyncBackend(base).read("/t", MISSING)  # reopening recovers
        files = _value_files(base / "t")
        if t is MISSING:
            assert files == 0 and not (base / "t.json").exists()
        elif isinstance(t, int):
            assert files == 0, f"a leaf was written over {files} files of the old subtree"
        else:
            n = t["d"]["k0"]
            assert t == {"d": {f"k{j}": n for j in range(40)}}, "a subtree from two batches"
    print(f"{mid_write} of {kills} kills landed inside the replacing write")
    assert mid_write >= 1, "no kill landed inside a replacing write: the test proved nothing"
