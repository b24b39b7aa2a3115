"""A controller follows its backend's changes (``watch()``) only from the first registration
that can hear another process's write until ``close()`` -- checked with a backend that records
its watch calls, and on the stores without ``watch()`` (memory, files, SQLite)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from restate import ControllerAsync, ControllerSync
from restate.backends import FileSystemSyncBackend, InMemoryBackend, SQLiteBackend
from restate.missing import MISSING


class Watched:
    """A dict store with ``watch()``: it counts starts and stops and can play another
    process's write (``remote``)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.starts = self.stops = 0
        self.down = False  # watch() raises, as when the server cannot be reached
        self.handlers: list[Callable[[list[tuple[Any, ...]]], Any]] = []

    def read(self, path: Any, default: Any = None) -> Any:
        return self.data.get(str(path), {} if str(path) == "/" else default)

    def write(self, path: Any, value: Any) -> None:
        self.data[str(path)] = value

    def delete(self, path: Any) -> None:
        self.data.pop(str(path), None)

    def watch(self, on_changes: Callable[[list[tuple[Any, ...]]], Any]) -> Callable[[], None]:
        if self.down:
            raise ConnectionError("the server is down")
        self.starts += 1
        self.handlers.append(on_changes)

        def unwatch() -> None:
            self.stops += 1
            self.handlers.remove(on_changes)

        return unwatch

    def remote(self, path: str, value: Any) -> threading.Thread:
        """Write as another process would; its change reaches the watchers in a thread of its
        own (as a follower thread does), returned to be joined."""
        prev = self.data.get(path, MISSING)
        self.data[path] = value
        handlers = list(self.handlers)
        thread = threading.Thread(target=lambda: [h([(path, prev, value)]) for h in handlers])
        thread.start()
        return thread


def joined(thread: threading.Thread | None) -> None:
    assert thread is not None
    thread.join(10)
    assert not thread.is_alive(), "the delivery of a remote write never ended"


REGISTRATIONS: dict[str, Callable[[ControllerSync], Any]] = {
    "subscribe": lambda c: c.subscribe("/a", lambda e: None),
    "a wildcard subscribe": lambda c: c.subscribe("/*/b", lambda e: None),
    "the subscribe decorator": lambda c: c.subscribe("/a")(lambda e: None),
    "subscribe_by_id": lambda c: c.subscribe_by_id("/a", "later", ignore_missing=True),
    "on_changes": lambda c: c.on_changes(lambda changes: None),
    "derive": lambda c: c.derive("/d", "/a", lambda v: v),
    "derive_many": lambda c: c.derive_many("/d", ["/a", "/b"], lambda data: 1),
    "track": lambda c: c.track(lambda e: c.get_state("/a")),
    "an atom's subscribe": lambda c: c.atom("/a").subscribe(lambda e: None),
}


def test_writes_reads_and_callback_ids_alone_never_start_following():
    store = Watched()
    controller = ControllerSync(store)
    controller.set_state("/a", 1)
    controller.update("/a", lambda n: n + 1)
    assert controller.get_state("/a") == 2
    controller.register_callback(lambda e: None, force_id="cb")
    with controller.batch():
        controller.set_state("/b", 1)
    assert store.starts == 0 and not controller.following


@pytest.mark.parametrize("kind", list(REGISTRATIONS))
def test_each_registration_that_can_hear_a_remote_write_starts_following_once(kind):
    store = Watched()
    controller = ControllerSync(store)
    REGISTRATIONS[kind](controller)
    assert store.starts == 1 and controller.following, kind
    REGISTRATIONS[kind](controller) if kind not in ("derive", "derive_many") else None
    controller.subscribe("/other", lambda e: None)
    assert store.starts == 1, "a second registration started a second watch"


def test_following_outlives_unsubscribe_and_ends_at_close_for_good():
    store = Watched()
    controller = ControllerSync(store)

    def heard(event: Any) -> None:
        pass

    for _ in range(5):  # no thread churn: one start for many subscribe/unsubscribe cycles
        controller.subscribe("/a", heard)
        assert controller.unsubscribe("/a", heard)
    assert (store.starts, store.stops) == (1, 0) and controller.following
    controller.close()
    assert (store.starts, store.stops) == (1, 1) and not controller.following
    controller.subscribe("/a", heard)
    assert store.starts == 1, "a registration after close() started following again"
    controller.close()
    assert store.stops == 1


def test_the_first_remote_write_after_subscribe_is_delivered():
    store = Watched()
    controller = ControllerSync(store)
    heard: list[Any] = []
    controller.subscribe("/a", lambda e: heard.append(e.new_value))
    joined(store.remote("/a", 5))
    assert heard == [5]


def test_a_remote_write_during_a_derivations_first_read_is_recomputed():
    store = Watched()
    store.data["/a"] = 1
    controller = ControllerSync(store)
    calls: list[Any] = []
    delivery: list[threading.Thread] = []

    def double(value: Any) -> Any:
        calls.append(value)
        if len(calls) == 1:  # lands after the first read: only a watch already on hears it
            delivery.append(store.remote("/a", 10))
        return value * 2

    controller.derive("/d", "/a", double)
    joined(delivery[0])
    assert controller.get_state("/d") == 20 and calls == [1, 10]


def test_a_remote_write_during_a_tracked_functions_first_run_runs_it_again():
    store = Watched()
    store.data["/a"] = 1
    controller = ControllerSync(store)
    seen: list[Any] = []
    delivery: list[threading.Thread] = []

    def run(event: Any) -> None:
        seen.append(controller.get_state("/a"))
        if len(seen) == 1:
            delivery.append(store.remote("/a", 2))

    controller.track(run)
    joined(delivery[0])
    assert seen == [1, 2]


def test_set_backend_moves_following_to_the_new_store_only_when_something_listens():
    first, second, third = Watched(), Watched(), Watched()
    controller = ControllerSync(first)
    controller.set_backend(second)
    assert (first.starts, second.starts) == (0, 0)
    controller.on_changes(lambda changes: None)
    assert second.starts == 1
    controller.set_backend(third)
    assert (second.stops, third.starts) == (1, 1) and controller.following


def test_the_async_controller_starts_following_at_its_first_registration_only():
    async def main() -> None:
        store = Watched()
        controller = ControllerAsync(store)
        await controller.set_state("/a", 1)
        assert await controller.get_state("/a") == 1
        assert store.starts == 0 and not controller.following
        heard = asyncio.Event()
        controller.subscribe("/a", lambda e: heard.set())
        assert store.starts == 1 and controller.following
        await asyncio.to_thread(joined, store.remote("/a", 2))
        await asyncio.wait_for(heard.wait(), 5)
        await controller.derive("/d", "/a", lambda v: v)
        await controller.track(lambda e: None)
        assert store.starts == 1
        controller.close()
        assert store.stops == 1 and not controller.following

    asyncio.run(main())


@pytest.mark.parametrize("kind", ["derive", "track"])
def test_the_async_controllers_derive_and_track_start_following_before_their_first_read(kind):
    async def main() -> None:
        store = Watched()
        controller = ControllerAsync(store)
        if kind == "derive":
            await controller.derive("/d", "/a", lambda v: v)
        else:
            await controller.track(lambda e: None)
        assert store.starts == 1

    asyncio.run(main())


@pytest.mark.parametrize("make", ["memory", "files", "sqlite"])
def test_stores_without_watch_work_as_before_and_never_follow(make, tmp_path):
    store = {
        "memory": InMemoryBackend,
        "files": lambda: FileSystemSyncBackend(tmp_path / "tree"),
        "sqlite": lambda: SQLiteBackend(tmp_path / "state.db"),
    }[make]()
    controller = ControllerSync(store)
    heard: list[Any] = []
    controller.subscribe("/a", lambda e: heard.append(e.new_value))
    controller.derive("/d", "/a", lambda v: v and v + 1)
    controller.set_state("/a", 1)
    assert heard == [1] and controller.get_state("/d") == 2
    assert not controller.following
    controller.close()
    controller.set_state("/a", 2)  # close() only stops following: writes still notify
    assert heard == [1, 2]


def test_a_failing_watch_fails_the_registration_which_registers_nothing_and_the_next_retries():
    store = Watched()
    store.down = True
    controller = ControllerSync(store)
    heard: list[Any] = []
    with pytest.raises(ConnectionError, match="down"):
        controller.subscribe("/a", lambda e: heard.append(e.new_value))
    assert not controller.following
    controller.set_state("/a", 1)
    assert heard == [], "the failed subscribe registered its callback"
    store.down = False
    controller.subscribe("/a", lambda e: heard.append(e.new_value))
    assert controller.following and store.starts == 1
    joined(store.remote("/a", 2))
    assert heard == [2]
