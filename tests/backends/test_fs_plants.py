"""The file backend never reads, writes, renames or deletes outside its root, whatever is
planted at the names it creates (temp files, journal, lock) or swapped in during a batch.

Every test keeps a canary tree outside the root and checks it byte for byte afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from restate import ControllerSync
from restate.backends.filesystem import FileSystemSyncBackend, fileio
from restate.backends.filesystem.journal import JOURNAL_NAME, Journal
from restate.backends.filesystem.lock import LOCK_NAME
from restate.errors import BackendError

from .conftest import files_of


class Boom(Exception):
    pass


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    canary = tmp_path / "outside"
    (canary / "sub").mkdir(parents=True)
    (canary / "secret.json").write_text('"do not touch"')
    (canary / "sub" / "x.json").write_text('"canary x"')
    (canary / "lockfile").write_text("lock canary")
    (canary / "journal").write_text("journal canary")
    return canary


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "state"


def snapshot(path: Path) -> dict[str, Any]:
    """Every file, directory and symlink below ``path`` with contents and modes."""
    found = files_of(path)
    found.update({k: (v, os.lstat(path / k).st_mode) for k, v in found.items()})
    return found


def test_a_symlink_planted_at_the_lock_name_is_removed_never_followed(root, outside):
    root.mkdir()
    (root / LOCK_NAME).symlink_to(outside / "lockfile")
    before = snapshot(outside)
    fs = FileSystemSyncBackend(root)
    fs.write("/a", 1)
    assert fs.read("/a") == 1
    assert not (root / LOCK_NAME).is_symlink()
    assert snapshot(outside) == before


def test_a_symlink_planted_at_the_journal_name_is_removed_never_followed(root, outside):
    root.mkdir()
    (root / JOURNAL_NAME).symlink_to(outside / "journal")
    before = snapshot(outside)
    fs = FileSystemSyncBackend(root)  # recovery on open finds the plant: not a journal
    with pytest.raises(Boom), fs.transaction():
        fs.write("/a", 1)
        fs.write("/b", {"c": 2})
        raise Boom
    assert fs.read("/") == {}
    assert snapshot(outside) == before
    assert not (root / JOURNAL_NAME).exists()


def test_a_journal_name_planted_while_a_batch_runs_is_never_written_through(root, outside):
    fs = FileSystemSyncBackend(root)
    before = snapshot(outside)
    fs._txns.journal = Journal(fs._fds, fs._open_base)  # a fresh one: no file created yet
    with fs.transaction():
        (root / JOURNAL_NAME).symlink_to(outside / "journal")  # planted before the first change
        fs.write("/a", 1)
    assert fs.read("/a") == 1
    assert snapshot(outside) == before


def test_temp_names_planted_in_advance_make_the_backend_pick_another(root, outside, monkeypatch):
    root.mkdir()
    names = iter(["aaaa", "aaaa", "bbbb", "bbbb", "cccc"])
    monkeypatch.setattr(fileio.secrets, "token_hex", lambda n: next(names))
    (root / ".tmp-aaaa").symlink_to(outside / "secret.json")
    (root / ".tmp-bbbb").symlink_to(outside / "sub")
    before = snapshot(outside)
    fs = FileSystemSyncBackend(root)
    fs.write("/a", "value")
    assert fs.read("/a") == "value"
    assert snapshot(outside) == before


def test_temp_names_are_unpredictable():
    assert len({fileio.temp_name() for _ in range(1000)}) == 1000


def test_a_directory_swapped_for_a_symlink_mid_batch_is_not_written_through(root, outside):
    fs = FileSystemSyncBackend(root)
    fs.write("/d/x", "original")
    before = snapshot(outside)
    with pytest.raises(BackendError, match="symlink"), fs.transaction():
        fs.write("/d/y", 1)
        os.rename(root / "d", root.parent / "moved")
        (root / "d").symlink_to(outside / "sub")
        fs.write("/d/x", "through the link?")
    assert snapshot(outside) == before
    assert fs.read("/d") is None  # the attacker took the directory away; a symlink is no value


def test_rollback_under_a_swapped_directory_restores_inside_the_root_only(root, outside):
    fs = FileSystemSyncBackend(root)
    fs.write("/d/x", "original")
    fs.write("/d/gone", 1)
    before = snapshot(outside)
    with pytest.raises(Boom), fs.transaction():
        fs.write("/d/x", "changed")  # rollback must put "original" back ...
        fs.delete("/d/gone")  # ... and recreate this one
        fs.write("/d/new", 2)  # ... and remove this one
        os.rename(root / "d", root.parent / "moved")
        (root / "d").symlink_to(outside / "sub")  # ... where the directory now points outside
        raise Boom
    assert snapshot(outside) == before
    assert fs.read("/d") == {"x": "original", "gone": 1}


def test_recovery_after_a_crash_walks_descriptors_not_planted_symlinks(root, outside):
    fs = FileSystemSyncBackend(root)
    fs.write("/d/x", "original")
    before = snapshot(outside)
    fs._txns.begin()  # a batch a killed process left half done: journal on disk, lock released
    fs.write("/d/x", "half")
    fs._txns.dirlock.close()
    os.rename(root / "d", root.parent / "moved")
    (root / "d").symlink_to(outside / "sub")
    reopened = FileSystemSyncBackend(root)
    assert reopened.read("/d") == {"x": "original"}
    assert snapshot(outside) == before


def test_planted_symlinks_inside_the_tree_are_neither_read_nor_deleted_through(root, outside):
    fs = FileSystemSyncBackend(root)
    fs.write("/d/x", 1)
    (root / "d" / "link.json").symlink_to(outside / "secret.json")
    (root / "e").symlink_to(outside / "sub")
    before = snapshot(outside)
    assert fs.read("/") == {"d": {"x": 1}}
    fs.delete("/d")
    fs.delete("/e")
    c = ControllerSync(fs)
    with pytest.raises(BackendError, match="never writes through"), c.batch():
        c.set_state("/d/y", 4)
        c.set_state("/e/x", 5)
    assert snapshot(outside) == before
    assert c.get_state("/") == {}  # the batch rolled back whole
