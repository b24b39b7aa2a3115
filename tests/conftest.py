"""Shared fixtures: ``controller`` runs one test body against ControllerSync and ControllerAsync."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from restate import ControllerAsync, ControllerSync
from tests.orphans import exit_status, stop_on_sigterm
from tests.redis_fixture import redis_server  # noqa: F401

_RESTORE_SIGTERM: list[Any] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    # SIGTERM (a CI timeout, a user's kill) ends the session through teardown, so the
    # servers fixtures started are stopped (tests/orphans.py; they also die with pytest).
    _RESTORE_SIGTERM.append(stop_on_sigterm())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.exitstatus = exit_status(session.exitstatus)


def pytest_unconfigure(config: pytest.Config) -> None:
    while _RESTORE_SIGTERM:
        _RESTORE_SIGTERM.pop()()


class Driven:
    """A ControllerAsync whose awaitables are run to completion on a private loop, so that a
    test written in the sync style exercises the async controller too."""

    is_async = True

    def __init__(self, controller: ControllerAsync, loop: asyncio.AbstractEventLoop) -> None:
        self.inner = controller
        self.loop = loop
        # Every coroutine runs inside one long-lived task, as one task of an app would:
        # ``async with batch()`` is task-reentrant, so enter, body and exit share that task.
        self._jobs: asyncio.Queue[tuple[Any, asyncio.Future[Any]]] = asyncio.Queue()
        self._server = loop.create_task(self._serve())

    async def _serve(self) -> None:
        while True:
            awaitable, future = await self._jobs.get()
            try:
                future.set_result(await awaitable)
            except BaseException as exc:  # handed to the waiting test
                future.set_exception(exc)

    def run(self, value: Any) -> Any:
        if not inspect.isawaitable(value):
            return value
        future = self.loop.create_future()
        self._jobs.put_nowait((value, future))
        return self.loop.run_until_complete(future)

    def close(self) -> None:
        self._server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            self.loop.run_until_complete(self._server)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return self.run(attr(*args, **kwargs))

        return call

    @contextmanager
    def batch(self) -> Iterator[Driven]:
        cm = self.inner.batch()
        self.run(cm.__aenter__())
        try:
            yield self
        except BaseException as exc:
            if not self.run(cm.__aexit__(type(exc), exc, exc.__traceback__)):
                raise
        else:
            self.run(cm.__aexit__(None, None, None))

    @contextmanager
    def deferring(self) -> Iterator[Driven]:
        cm = self.inner.deferring()
        self.run(cm.__aenter__())
        try:
            yield self
        finally:
            self.run(cm.__aexit__(None, None, None))


@pytest.fixture(params=["sync", "async"])
def make_controller(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A factory: ``make_controller(backend=None)`` -> a controller of the parametrised kind."""
    loop = asyncio.new_event_loop() if request.param == "async" else None
    made: list[Driven] = []

    def make(backend: Any = None, **kwargs: Any) -> Any:
        if loop is None:
            return ControllerSync(backend, **kwargs)
        made.append(Driven(ControllerAsync(backend, **kwargs), loop))
        return made[-1]

    yield make
    for driven in made:
        driven.close()
    if loop is not None:
        loop.close()


@pytest.fixture
def controller(make_controller: Any) -> Any:
    return make_controller()


async def settle(value: Any) -> Any:
    """``await`` ``value`` when it is awaitable: lets one callback body serve both controllers."""
    return await value if inspect.isawaitable(value) else value


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--perf",
        action="store_true",
        help="also run the wall-clock budgets marked perf (left out by default: a busy "
        "machine would fail them by chance)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out ``perf`` tests unless asked for (``--perf``, or ``-m`` naming perf), and run
    the browser tests last. Playwright's sync API keeps an event loop marked as running in the
    main thread for as long as its (shared, session-wide) browser lives, and code that starts
    its own loop (asyncio.run, ControllerAsync tests, jupyter clients) cannot run then."""
    if not config.getoption("perf") and "perf" not in (config.getoption("markexpr") or ""):
        perf = [item for item in items if item.get_closest_marker("perf") is not None]
        if perf:
            config.hook.pytest_deselected(items=perf)
            items[:] = [item for item in items if item.get_closest_marker("perf") is None]
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line for every skip of the run: ``N skipped: reason (count), ...``."""
    skipped = terminalreporter.stats.get("skipped", [])
    reasons: dict[str, int] = {}
    for report in skipped:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    if reasons:
        listed = ", ".join(f"{reason} ({count})" for reason, count in sorted(reasons.items()))
        terminalreporter.write_line(f"{len(skipped)} skipped: {listed}")
