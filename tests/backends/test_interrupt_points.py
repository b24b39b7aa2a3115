"""A KeyboardInterrupt at every executed line of restate's code during set_state, a batch
of several writes with subscribers, update() and delete, on every sync store: the state is
old or new (all-or-nothing), the events heard agree with it, no transaction, journal or lock
is left behind, closing an abandoned generator raises nothing, and later operations work.
The harness is ``tests/interrupt_points.py``.

The default run tries a seeded random share of the points on memory and SQLite;
``RESTATE_ALL_POINTS=1`` tries every point of every case, files, caching and hybrid included
(tens of minutes). The default run covers those three with the directed tests below and
``test_interrupts.py``'s random real SIGINTs. ``RESTATE_POINTS_FDS=1`` also checks that no
file descriptor is left open after ``close()``."""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

import pytest

from restate import ControllerSync
from tests.interrupt_points import (
    OPERATIONS,
    PACKAGE,
    SETUP,
    STORES,
    Run,
    files_store,
    interrupt_on,
    record,
    run_points,
    unraisable,
)

ALL = os.environ.get("RESTATE_ALL_POINTS") == "1"
# every point of one case takes minutes under load: past the suite's 300 s per test
NO_TIMEOUT_WHEN_ALL = pytest.mark.timeout(0 if ALL else 300)
# share of the points tried in the default run (a point is ~5-45 ms under load)
SHARE = {"memory": 0.08, "sqlite": 0.03}


@NO_TIMEOUT_WHEN_ALL
@pytest.mark.parametrize("operation", sorted(OPERATIONS))
@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_an_interrupt_at_any_line_leaves_the_store_old_or_new_and_usable(
    store: str, operation: str, tmp_path: Path
) -> None:
    check(store, operation, tmp_path, 1.0 if ALL else SHARE[store])


@pytest.mark.slow
@pytest.mark.skipif(not ALL, reason="exhaustive interrupt points: RESTATE_ALL_POINTS=1")
@NO_TIMEOUT_WHEN_ALL
@pytest.mark.parametrize("operation", sorted(OPERATIONS))
@pytest.mark.parametrize("store", ["files", "caching", "hybrid"])
def test_an_interrupt_at_any_line_of_a_file_cache_or_hybrid_store_leaves_it_old_or_new(
    store: str, operation: str, tmp_path: Path
) -> None:
    # Opt-in: run in the suite's process, these cases left a stale exception state behind
    # (a later test's ZeroDivisionError got a FileNotFoundError of theirs as __context__);
    # see docs/development.md#interrupt-points.
    check(store, operation, tmp_path, 1.0)


def check(store: str, operation: str, tmp_path: Path, share: float) -> None:
    outcome = run_points(STORES[store], OPERATIONS[operation], tmp_path, share, seed=14)
    print(  # the numbers of a run (pytest -rP shows them)
        f"{store} {operation}: {outcome.points} line events, {outcome.tried} interrupts tried, "
        f"{outcome.landed} landed inside, {len(outcome.failures)} failures"
    )
    assert not outcome.failures, (
        f"{len(outcome.failures)}+ of {outcome.tried} interrupt points failed "
        f"({outcome.points} line events):\n" + "\n".join(outcome.failures)
    )
    assert outcome.landed >= outcome.tried // 2, outcome  # the interrupts did land


# ----- the points that were bugs, each aimed at directly ---------------------------------------


def _line_of(module: str, text: str, within: str = "") -> tuple[str, int]:
    """(path below restate/, line number) of the first line of ``module`` containing
    ``text`` after the line containing ``within``."""
    source = (Path(PACKAGE) / module).read_text().splitlines()
    start = next(n for n, line in enumerate(source) if within in line)
    found = next(n for n, line in enumerate(source[start:], start + 1) if text in line)
    return module, found


def _failing_batch(c: ControllerSync) -> None:
    with c.batch():
        c.set_state("/a/x", 2)
        c.set_state("/a/new", {"deep": 1})
        raise LookupError("the batch fails")


def _interrupt_on(make_op: Any, line: tuple[str, int], tmp_path: Path) -> Run:
    """A fresh file store whose ``make_op`` is interrupted the first time ``line`` runs."""
    run = Run(files_store(tmp_path / "store"))
    assert interrupt_on(lambda: _swallow(lambda: make_op(run.c)), line), f"{line} never ran"
    return run


def _swallow(fn: Any) -> None:
    try:
        fn()
    except LookupError:
        pass


def test_an_interrupt_on_the_first_line_of_a_file_batch_s_rollback_leaves_no_journal_active(
    tmp_path: Path,
) -> None:
    # the first bytecode of scope()'s ``except`` block: the rollback in it never ran, the
    # journal stayed active and every later write joined a batch that never ended
    line = _line_of("backends/filesystem/transactions.py", "rollback=True)", "def scope(")
    run = _interrupt_on(_failing_batch, line, tmp_path)
    assert run.c.get_state("/") == SETUP  # rolled back at the next operation
    run.store.idle()
    run.c.set_state("/a/x", 3)
    assert run.store.reread() == {**SETUP, "a": {**SETUP["a"], "x": 3}}
    run.store.idle()
    run.close()


def test_an_interrupt_on_the_release_of_the_read_lock_does_not_keep_it(tmp_path: Path) -> None:
    # the first bytecode of locked()'s ``finally``: the shared lock stayed held for good
    line = _line_of("backends/filesystem/transactions.py", "release_to(depth)", "def locked(")
    run = _interrupt_on(lambda c: c.get_state("/a"), line, tmp_path)
    run.c.get_state("/")
    run.store.idle()  # another process can take the lock
    run.close()


def test_closing_an_update_its_driver_left_after_an_interrupt_raises_nothing(
    tmp_path: Path,
) -> None:
    # An interrupt in the driver's own loop (between two requests) leaves the engine's
    # update generator suspended inside its batch; the driver resets the batch. Closing that
    # generator later (the garbage collector) ran its rollback against the reset log:
    # "IndexError: pop from empty list" in BatchLog.end, reported as unraisable.
    line = _line_of("controller.py", "error = None", "def _steps(")
    for nth in range(1, 6):  # after each request of the update in turn
        run = Run(STORES["memory"](tmp_path / str(nth)))
        with unraisable() as raised:
            c = run.c
            assert interrupt_on(lambda: c.update("/a/x", lambda v: v + 1), line, nth)  # noqa: B023
            assert run.c.get_state("/a/x") in (1, 2)
            run.c.update("/a/x", lambda v: 10)  # the next update commits
            gc.collect()
        assert not raised, f"after request {nth}"
        assert run.c.get_state("/a/x") == 10
        run.close()


def test_a_ctrl_c_inside_one_store_s_commit_of_a_hybrid_batch_lands_after_every_store_committed(
    tmp_path: Path,
) -> None:
    # The stores commit one after the other (SQLite, then files, then memory): a Ctrl-C in
    # the files' commit rolled the files back after SQLite had committed. The commits now
    # run inside deferred_interrupts(): the interrupt is delivered once all have committed.
    line = _line_of("backends/filesystem/transactions.py", "self.journal.commit(level)")
    reference = Run(STORES["hybrid"](tmp_path / "reference"))
    ran = record(lambda: OPERATIONS["batch"](reference.c)).count(line)
    new = reference.c.get_state("/")
    reference.close()
    run = Run(STORES["hybrid"](tmp_path / "store"))
    # the last time it runs is the batch's own commit (each write inside commits a level)
    assert interrupt_on(lambda: OPERATIONS["batch"](run.c), line, ran), f"{line} never ran"
    assert run.c.get_state("/") == new  # every store committed, none rolled back
    run.store.idle()
    run.close()


def test_a_ctrl_c_between_a_cache_s_change_and_its_queued_write_never_splits_them(
    tmp_path: Path,
) -> None:
    # An interrupt after the cache's tree changed and before the write was queued left the
    # cache showing a value its store never got. Now the change is noted first and the
    # cache's next operation finishes it (heal): the cache and the store agree.
    store = STORES["caching"](tmp_path / "store")
    cache = store.backend
    cache.read("/")  # loaded
    line = _line_of("backends/_cache_core.py", "self.queue.record(parts, kind, queued)")
    assert interrupt_on(lambda: cache.write("/x", 1), line), f"{line} never ran"
    shown = cache.read("/")
    assert shown in ({}, {"x": 1})
    assert store.reread is not None and store.reread() == shown  # flushed: the same
    store.close()
