"""Core behaviour the StateTree relies on, found lacking while building it (see NOTES-tree.md)."""

from __future__ import annotations

import time

from restate import ControllerSync


def test_a_batch_of_3000_sibling_writes_settles_in_well_under_a_second():
    # A StateTree coalesces bursts, but a batch must reach it first: propagation._coalesce /
    # _value_before compare every write of the batch with every other (O(n^2) is_prefix).
    c = ControllerSync()
    c.set_state("/big", {f"k{i}": i for i in range(3000)})
    start = time.perf_counter()
    with c.batch():
        for i in range(3000):
            c.set_state(f"/big/k{i}", -i)
    elapsed = time.perf_counter() - start
    assert c.get_state("/big/k2999") == -2999
    assert elapsed < 0.5, f"a batch of 3000 writes took {elapsed:.2f} s"
