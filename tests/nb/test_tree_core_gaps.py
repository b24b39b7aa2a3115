"""Core behaviour the StateTree relies on, found lacking while building it."""

from __future__ import annotations

import time

import pytest

from restate import ControllerSync

SIBLINGS = 3000


def filled() -> ControllerSync:
    c = ControllerSync()
    c.set_state("/big", {f"k{i}": i for i in range(SIBLINGS)})
    return c


def write_siblings_in_one_batch(c: ControllerSync) -> float:
    """Overwrite every leaf of /big (each with a new value) in one batch; the seconds it took."""
    start = time.perf_counter()
    with c.batch():
        for i in range(SIBLINGS):
            c.set_state(f"/big/k{i}", -i - 1)
    return time.perf_counter() - start


def test_a_batch_of_3000_sibling_writes_settles_with_one_notification_per_leaf():
    c = filled()
    seen: list[str] = []
    c.subscribe("/big/*", lambda event: seen.append(str(event.emitting_path)))

    write_siblings_in_one_batch(c)

    assert c.get_state("/big/k2999") == -3000
    assert len(seen) == SIBLINGS and len(set(seen)) == SIBLINGS


@pytest.mark.perf
def test_a_batch_of_3000_sibling_writes_settles_in_well_under_a_second():
    # A StateTree coalesces bursts, but a batch must reach it first: comparing every write of
    # the batch with every other (O(n^2) is_prefix) made this take seconds.
    elapsed = write_siblings_in_one_batch(filled())
    assert elapsed < 0.5, f"a batch of {SIBLINGS} writes took {elapsed:.2f} s"
