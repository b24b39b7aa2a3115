"""update() on a backend with optimistic transactions (``transaction(optimistic=True)``, see
restate/backends/base.py): tried optimistically first; a ``StaleReadError`` at its commit runs
the function again in an ordinary transaction -- once -- and only the committed result is
delivered. Both controllers; Redis's own tests are in tests/redis/test_optimistic.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from restate.backends import InMemoryBackend
from restate.errors import StaleReadError


class Racy(InMemoryBackend):
    """Memory whose optimistic commits lose the race while ``rivals`` lasts: the commit
    fails (rolled back) and another client's value for ``/n`` lands."""

    optimistic_transactions = True

    def __init__(self, rivals: list[int]) -> None:
        super().__init__({"n": 0})
        self.rivals = rivals
        self.opened: list[bool] = []

    @contextmanager
    def transaction(self, optimistic: bool = False) -> Iterator[InMemoryBackend]:
        self.opened.append(optimistic)
        try:
            with super().transaction():
                yield self
                if optimistic and self.rivals:
                    raise StaleReadError("/n changed since it was read")
        except StaleReadError:
            self._set(("n",), self.rivals.pop(0))
            raise


def test_a_stale_optimistic_commit_runs_fn_again_in_an_ordinary_transaction_once(
    make_controller: Any,
) -> None:
    backend = Racy(rivals=[10])
    c = make_controller(backend)
    heard: list[tuple[Any, Any]] = []
    c.subscribe("/n", lambda e: heard.append((e.prev_value, e.new_value)))
    calls: list[int] = []
    assert c.update("/n", lambda n: calls.append(n) or n + 1) == 11
    assert calls == [0, 10] and backend.opened == [True, False]
    assert c.get_state("/n") == 11
    assert heard == [(10, 11)]  # the attempt that did not commit (0 -> 1) was never delivered


def test_an_uncontended_update_commits_optimistically_and_runs_fn_once(
    make_controller: Any,
) -> None:
    backend = Racy(rivals=[])
    c = make_controller(backend)
    calls: list[int] = []
    assert c.update("/n", lambda n: calls.append(n) or n + 5) == 5
    assert calls == [0] and backend.opened == [True]


def test_an_update_inside_a_batch_never_uses_an_optimistic_transaction(
    make_controller: Any,
) -> None:
    backend = Racy(rivals=[10])
    c = make_controller(backend)
    with c.batch():
        c.update("/n", lambda n: n + 1)
    assert backend.opened == [False] and c.get_state("/n") == 1


def test_an_error_of_fn_in_the_optimistic_attempt_is_raised_and_fn_is_not_run_again(
    make_controller: Any,
) -> None:
    backend = Racy(rivals=[10])
    c = make_controller(backend)
    calls: list[int] = []

    def fail(n: int) -> int:
        calls.append(n)
        raise LookupError("fn failed")

    with pytest.raises(LookupError):
        c.update("/n", fail)
    assert calls == [0] and backend.opened == [True] and c.get_state("/n") == 0
