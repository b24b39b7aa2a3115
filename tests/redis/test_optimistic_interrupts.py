"""A KeyboardInterrupt at any line of restate's code during an optimistic update() on Redis --
uncontended, or losing the race and running again under a lease -- leaves the value old or
committed (never the attempt that lost), delivers only what was committed, leaves no open or
renewed transaction, and the next update commits. The harness is ``tests/interrupt_points.py``
(a settrace tracer that raises at the k-th line event)."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from typing import Any

import pytest
import redis

from restate import ControllerSync
from restate.backends.redis import RedisBackend
from tests.interrupt_points import interrupt_at, record, sample, unraisable

pytestmark = pytest.mark.redis

ALL = os.environ.get("RESTATE_ALL_POINTS") == "1"


class Case:
    """One store on a fresh prefix: /n = 1, a subscriber of /n, and a rival client."""

    def __init__(self, url: str, prefix: str) -> None:
        self.backend = RedisBackend(url, prefix, lease_timeout=0.3)
        self.rival = RedisBackend(url, prefix)
        self.c = ControllerSync(self.backend)
        self.c.set_state("/n", 1)
        self.heard: list[Any] = []
        self.c.subscribe("/n", lambda e: self.heard.append(e.new_value))

    def close(self) -> None:
        self.c.close()
        self.rival.close()


def plain(case: Case) -> None:
    case.c.update("/n", lambda n: n + 1)


def racing(case: Case) -> None:
    """The rival writes /n = 5 while fn first runs: the commit is stale, fn runs again."""
    calls: list[int] = []

    def bump(n: int) -> int:
        calls.append(n)
        if len(calls) == 1:
            case.rival.write("/n", 5)
        return n + 1

    case.c.update("/n", bump)


# what /n may hold after an interrupt: unchanged, the rival's write alone, or committed
OUTCOMES: dict[str, tuple[Callable[[Case], None], set[int]]] = {
    "uncontended": (plain, {1, 2}),
    "racing": (racing, {1, 5, 6}),
}


def check(case: Case, raw: redis.Redis, allowed: set[int]) -> None:
    c = case.c
    value = c.get_state("/n")  # the controller's next operation heals what was cut short
    assert value in allowed, f"/n is {value}"
    assert 2 not in case.heard or value == 2, f"heard an uncommitted attempt: {case.heard}"
    core = case.backend._core
    assert core.txn.get() is None and not core.open, "a transaction stayed open or renewed"
    with RedisBackend(case.backend.url, case.backend.prefix, lock_wait=2) as fresh:
        assert fresh.read("/n") == value  # another client sees the same
        fresh.write("/probe", 1)  # any lease left was not renewed: it expired (0.3 s)
    assert c.update("/n", lambda n: n + 100) == value + 100
    assert not list(raw.scan_iter(match=f"{{{case.backend.prefix}}}:lease:*"))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(OUTCOMES))
def test_an_interrupt_at_any_line_of_an_optimistic_update_leaves_it_old_or_committed(
    name: str, url: str, redis_server: Any, raw: redis.Redis
) -> None:
    operation, allowed = OUTCOMES[name]
    reference = Case(url, redis_server.unique_prefix())
    points = record(lambda: operation(reference))
    reference.close()
    chosen = sample(len(points), 1.0 if ALL else 0.08, seed=16)
    failures, landed = [], 0
    for k in chosen:
        case = Case(url, redis_server.unique_prefix())
        try:
            with unraisable() as raised:
                landed += interrupt_at(lambda: operation(case), k) is not None  # noqa: B023
                check(case, raw, allowed)
                case.close()
                gc.collect()  # an abandoned generator is closed here: it must not raise
            raised = [text for text in raised if "interrupt point" not in text]
            assert not raised, f"raised while being finalised: {raised}"
        except Exception as exc:
            failures.append(f"point {k} {points[k]}: {type(exc).__name__}: {exc}")
            if len(failures) >= 5:
                break
        finally:
            case.close()
    assert not failures, "\n".join(failures)
    assert landed >= len(chosen) // 2
