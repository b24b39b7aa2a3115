"""Registration at scale and the cost of isolation (issue 15 items 2, 3, 6), side by side.

Run: ``.venv/bin/python benchmarks/bench_scale.py`` (``--quick`` for fewer repeats); also
printed by ``bench_core.py``. CPU time (``process_time``), A/B pairs measured in interleaved
rounds so that load on a shared machine hits both sides alike; compare the ratios.

Rows:
- derive(): the cost of the 200th and the 2,000th derive (a spreadsheet: each cell derived
  from two random earlier cells), and 10,000 derivations registered from empty;
- subscribe(): the 1,000th and the 16,000th distinct callback;
- a write nobody hears, with no registrations and with 10,000 unrelated ones elsewhere;
- isolation: a 100-key dict write (one subscriber) and a read of a 10,000-leaf tree, with
  the copies before this change (``naive``) and now, and the alternatives measured on the
  same data: copy-on-write (a store that never mutates in place, so a write copies the dicts
  on its path and readers may share) and read-only views (``MappingProxyType``).
"""

from __future__ import annotations

import contextlib
import copy
import random
import statistics
import sys
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

from _cli import options  # beside this file (the script's directory is on sys.path)

import restate.tree
from restate import ControllerSync
from restate.tree import IMMUTABLE

QUICK = options(__doc__, {"quick": "fewer repeats"}).quick
ROUNDS = 3 if QUICK else 7


def cpu_per_op(fn: Callable[[], Any], number: int) -> float:
    start = time.process_time()
    for _ in range(number):
        fn()
    return (time.process_time() - start) / number


def interleaved(
    a: Callable[[], Any],
    b: Callable[[], Any],
    number: int,
    around_a: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
) -> tuple[float, float]:
    """Median seconds per call of ``a`` (each round inside ``around_a()``) and of ``b``,
    measured in alternating rounds."""
    ta, tb = [], []
    for _ in range(ROUNDS):
        with around_a():
            ta.append(cpu_per_op(a, number))
        tb.append(cpu_per_op(b, number))
    return statistics.median(ta), statistics.median(tb)


def window(times: list[float], nth: int, half: int = 25) -> float:
    """The median cost around the ``nth`` call (1-based): one call is too noisy to quote."""
    return statistics.median(times[max(0, nth - 1 - half) : nth + half])


# ----- registration ----------------------------------------------------------------------------


def derive_costs(total: int) -> tuple[list[float], float]:
    """Seconds per derive() while registering ``total`` spreadsheet cells, and the total."""
    rng = random.Random(15)
    c = ControllerSync()
    c.set_state("/cells/c0", 1)
    costs = []
    begin = time.process_time()
    for i in range(1, total + 1):
        sources = [f"/cells/c{rng.randrange(i)}", f"/cells/c{rng.randrange(i)}"]
        start = time.process_time()
        c.derive_many(f"/cells/c{i}", sources, _sum_cells)
        costs.append(time.process_time() - start)
    return costs, time.process_time() - begin


def _sum_cells(data: Any) -> int:
    return sum(v or 0 for v in data.values()) % 1000


def subscribe_costs(total: int) -> list[float]:
    c = ControllerSync()
    callbacks = [_callback() for _ in range(total)]
    costs = []
    for i, cb in enumerate(callbacks):
        start = time.process_time()
        c.subscribe(f"/subs/{i % 100}", cb)
        costs.append(time.process_time() - start)
    return costs


def _callback() -> Callable[[Any], None]:
    return lambda event: None


def unheard_writes() -> tuple[float, float]:
    bare, busy = ControllerSync(), ControllerSync()
    for i in range(5_000):
        busy.subscribe(f"/items/{i}/value", _callback())
    for i in range(200):
        busy.subscribe(f"/groups/{i}/*/value", _callback())
    for i in range(4_800):
        busy.derive(f"/out/{i}", f"/in/{i}", _identity)
    return interleaved(_writer(bare, "/a/b"), _writer(busy, "/a/b"), 20_000)


def _identity(value: Any) -> Any:
    return value


def _writer(c: ControllerSync, path: str) -> Callable[[], None]:
    i = [0]

    def op() -> None:
        i[0] += 1
        c.set_state(path, i[0])

    return op


# ----- isolation -------------------------------------------------------------------------------


def naive_copy_in(value: Any, where: Any = ()) -> Any:
    """The copy before this change: every key checked by a call, every value looked at."""
    t = type(value)
    if t in IMMUTABLE:
        return value
    if t is dict or isinstance(value, dict):
        out = {}
        for k, v in value.items():
            restate.tree.check_key(k, where)
            out[k] = v if type(v) in IMMUTABLE else naive_copy_in(v, (*where, k))
        return out
    if t is list:
        return [v if type(v) in IMMUTABLE else naive_copy_in(v, where) for v in value]
    if t is tuple:
        return tuple(v if type(v) in IMMUTABLE else naive_copy_in(v, where) for v in value)
    return copy.deepcopy(value)


def naive_copy_out(value: Any) -> Any:
    t = type(value)
    if t in IMMUTABLE:
        return value
    if t is dict:
        return {k: v if type(v) in IMMUTABLE else naive_copy_out(v) for k, v in value.items()}
    if t is list:
        return [v if type(v) in IMMUTABLE else naive_copy_out(v) for v in value]
    if t is tuple:
        return tuple(v if type(v) in IMMUTABLE else naive_copy_out(v) for v in value)
    return copy.deepcopy(value)


@contextlib.contextmanager
def naive_copies() -> Iterator[None]:
    """Swap the naive copies into every restate module that imported the current ones."""
    swaps = {restate.tree.copy_in: naive_copy_in, restate.tree.copy_out: naive_copy_out}
    patched = []
    for module in [m for name, m in sys.modules.items() if name.startswith("restate")]:
        for attr in ("copy_in", "copy_out"):
            current = getattr(module, attr, None)
            if current in swaps:
                patched.append((module, attr, current))
                setattr(module, attr, swaps[current])
    try:
        yield
    finally:
        for module, attr, current in patched:
            setattr(module, attr, current)


def dict_writer() -> Callable[[], None]:
    c = ControllerSync()
    c.subscribe("/d", _callback())
    values = [{f"k{j}": j + i for j in range(100)} for i in range(2)]
    i = [0]

    def op() -> None:
        i[0] ^= 1
        c.set_state("/d", values[i[0]])

    return op


def tree_reader() -> Callable[[], Any]:
    c = ControllerSync()
    c.set_state("/", big_tree())
    return lambda: c.get_state("/")


def big_tree() -> dict[str, Any]:
    return {f"g{i}": {f"k{j}": j for j in range(100)} for i in range(100)}


def isolation_rows() -> list[tuple[str, float, float | None, str]]:
    write_now, read_now = dict_writer(), tree_reader()
    with naive_copies():
        write_naive, read_naive = dict_writer(), tree_reader()

    w_before, w_after = interleaved(write_naive, write_now, 3_000, naive_copies)
    r_before, r_after = interleaved(read_naive, read_now, 30, naive_copies)
    snapshot, path_100, path_10k, view_read, share_read = alternatives()
    return [
        ("100-key dict write, 1 subscriber: copies before", w_before, None, ""),
        ("100-key dict write, 1 subscriber: copies now", w_after, w_before, "< 1× before"),
        ("  of which the event snapshot copy-on-write would save", snapshot, w_after, ""),
        ("  copy-on-write: path copy per leaf write, 100-key parent", path_100, None, ""),
        ("  copy-on-write: path copy per leaf write, 10,000-key parent", path_10k, None, ""),
        ("read a 10,000-leaf tree: copies before", r_before, None, ""),
        ("read a 10,000-leaf tree: copies now", r_after, r_before, "< 1× before"),
        ("  copy-on-write, reader shares (breaks isolation alone)", share_read, r_before, ""),
        ("  read-only view (breaks d = get_state(); d[k] = v)", view_read, r_before, ""),
    ]


def alternatives() -> tuple[float, float, float, float, float]:
    """Costs of the strategies not chosen, on the same data (see the module docstring).

    Copy-on-write (a store that never mutates a stored dict) would let an event share the
    stored value: it saves the snapshot copy of a write (``copy_out`` of the 100-key dict)
    but makes every leaf write copy the dicts on its path, O(their width). A reader still
    needs a mutable dict of its own (``d = get_state(p); d["k"] = 1; set_state(p, d)``), so
    sharing alone breaks isolation; read-only views keep isolation without copying but make
    ``d["k"] = 1`` raise.
    """
    hundred = {f"k{j}": j for j in range(100)}
    wide = {f"k{j}": j for j in range(10_000)}
    tree = big_tree()
    view = types.MappingProxyType

    def median(fn: Callable[[], Any], number: int) -> float:
        return statistics.median(cpu_per_op(fn, number) for _ in range(ROUNDS))

    return (
        median(lambda: restate.tree.copy_out(hundred), 3_000),
        median(lambda: {**hundred, "k7": 1}, 3_000),
        median(lambda: {**wide, "k7": 1}, 100),
        median(lambda: view(tree), 3_000),
        median(lambda: tree, 3_000),
    )


# ----- report ----------------------------------------------------------------------------------


def rows() -> list[tuple[str, float, float | None, str]]:
    derive_times, total_10k = derive_costs(10_000)
    sub_times = subscribe_costs(16_000)
    bare, busy = unheard_writes()
    d200, d2000 = window(derive_times, 200), window(derive_times, 2_000)
    s1k, s16k = window(sub_times, 1_000), window(sub_times, 16_000)
    return [
        ("derive(): the 200th (spreadsheet cell, 2 sources)", d200, None, ""),
        ("derive(): the 2,000th", d2000, d200, "≤ 2× the 200th"),
        ("derive(): 10,000 derivations registered, total", total_10k, None, "≤ 1 s"),
        ("subscribe(): the 1,000th distinct callback", s1k, None, ""),
        ("subscribe(): the 16,000th distinct callback", s16k, s1k, "≤ 2× the 1,000th"),
        ("write nobody hears, no registrations", bare, None, ""),
        ("write nobody hears, 10,000 unrelated registrations", busy, bare, "≈ 1×"),
        *isolation_rows(),
    ]


def print_rows(table: list[tuple[str, float, float | None, str]]) -> None:
    for name, t, ref, target in table:
        ratio = f"{t / ref:7.2f}×" if ref else ""
        shown = f"{t:9.3f} s " if t >= 0.1 else f"{t * 1e6:9.2f} µs"
        print(f"{name:58} {shown}  {ratio:>8}  {target}")


def main() -> None:
    print(f"{'registration and isolation':58} {'time':>12}  {'ratio':>8}  target")
    print_rows(rows())


if __name__ == "__main__":
    main()
