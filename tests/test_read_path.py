"""The lock-free leaf read (ControllerSync.get_state on the memory store): a read never sees
a write, its dispatch or a batch of another thread half done, and it stays tracked.

The thread tests hunt for a torn read: a writer thread keeps an invariant that holds in
every settled state, reader threads check it on a tight loop until a deadline. Python
switches threads every 5 ms by default; the hunt asks for a switch every 10 µs so that
readers are interrupted inside their reads often. One test runs the same hunt against a
read without the checks (the store read directly) and requires it to be caught -- so the
hunt can fail.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import Any

import pytest

from restate import ControllerAsync, ControllerSync
from restate.backends import InMemoryBackend
from restate.paths import to_parts

POISON = -1  # written only by batches that roll back: no settled state holds it
Read = Callable[[str], Any]


class Boom(Exception):
    pass


@contextmanager
def frequent_switches() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def hunt(
    write_once: Callable[[int], None],
    check_once: Callable[[], str | None],
    seconds: float,
    readers: int = 2,
) -> str | None:
    """Run ``write_once(n)`` for n = 1, 2, ... in one thread and ``check_once()`` in
    ``readers`` threads until one reports a violation or ``seconds`` pass; the violation."""
    stop = threading.Event()
    found: list[str] = []
    errors: list[BaseException] = []

    def writing() -> None:
        n = 0
        try:
            while not stop.is_set():
                n += 1
                write_once(n)
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    def reading() -> None:
        try:
            while not stop.is_set():
                bad = check_once()
                if bad is not None:
                    found.append(bad)
                    stop.set()
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=writing)]
    threads += [threading.Thread(target=reading) for _ in range(readers)]
    with frequent_switches():
        for t in threads:
            t.start()
        stop.wait(seconds)
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a hunting thread did not stop"
    if errors:
        raise errors[0]
    return found[0] if found else None


def batch_writer(c: ControllerSync) -> Callable[[int], None]:
    """Every settled state has /a == /b; every third batch writes POISON and rolls back."""

    def write_once(n: int) -> None:
        if n % 3 == 0:
            try:
                with c.batch():
                    c.set_state("/a", POISON)
                    raise Boom
            except Boom:
                return
        with c.batch():
            c.set_state("/a", n)
            c.set_state("/b", n)

    return write_once


def ordered_check(read: Read) -> Callable[[], str | None]:
    """/a is read before /b: settled states only move forward, so b >= a, and no POISON."""

    def check_once() -> str | None:
        a = read("/a")
        b = read("/b")
        if a == POISON:
            return "read a value that only a rolled-back batch wrote"
        if b < a:
            return f"read /a = {a} from a batch that had not yet written /b = {b}"
        return None

    return check_once


def seeded() -> ControllerSync:
    c = ControllerSync()
    with c.batch():
        c.set_state("/a", 0)
        c.set_state("/b", 0)
    return c


def test_a_reader_thread_never_sees_another_threads_batch_half_applied_or_rolled_back() -> None:
    c = seeded()
    assert hunt(batch_writer(c), ordered_check(c.get_state), seconds=1.5) is None
    assert c.get_state("/a") == c.get_state("/b") > 0  # the writer made progress


def test_the_hunt_catches_a_read_path_without_the_check() -> None:
    c = seeded()
    store = c.backend
    assert isinstance(store, InMemoryBackend)

    def unchecked(path: str) -> Any:  # the store read with neither the lock nor the check
        return store._get(to_parts(path))

    found = hunt(batch_writer(c), ordered_check(unchecked), seconds=20)
    assert found is not None, "no torn read in 20 s: the hunt cannot tell a safe read path"


def test_a_reader_never_sees_a_write_whose_derivation_has_not_run_yet() -> None:
    c = ControllerSync()
    c.set_state("/x", 0)
    c.derive("/double", "/x", lambda v: 2 * v)

    def check_once() -> str | None:
        x = c.get_state("/x")
        double = c.get_state("/double")
        if double < 2 * x:
            return f"read /x = {x} before its derivation wrote /double (still {double})"
        return None

    assert hunt(lambda n: c.set_state("/x", n), check_once, seconds=1.0) is None
    assert c.get_state("/double") == 2 * c.get_state("/x") > 0


def test_a_reader_never_sees_a_write_before_the_callbacks_it_triggers_have_written() -> None:
    c = ControllerSync()
    c.set_state("/x", 0)
    c.set_state("/echo", 0)
    c.subscribe("/x", lambda e: c.set_state("/echo", e.new_value))

    def check_once() -> str | None:
        x = c.get_state("/x")
        echo = c.get_state("/echo")
        return None if echo >= x else f"read /x = {x} while /echo was still {echo}"

    assert hunt(lambda n: c.set_state("/x", n), check_once, seconds=1.0) is None


def test_every_change_a_controller_makes_to_the_memory_store_is_marked_for_readers() -> None:
    """The lock-free read is safe only if each change happens while ``_version`` is odd or a
    batch is open: run every kind of operation against a store that checks it."""
    store = InMemoryBackend()
    seen: list[str] = []
    holder: list[ControllerSync] = []

    def marked(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def changing(*args: Any) -> Any:
            c = holder[0]
            if not (c._version & 1 or c._owners):
                raise AssertionError(f"{name}{args} ran with no operation or batch marked")
            seen.append(name)
            return fn(*args)

        return changing

    for name in ("_set", "_del", "_roll_back", "_replace"):
        setattr(store, name, marked(name, getattr(store, name)))
    c = ControllerSync(store)
    holder.append(c)
    c.subscribe("/s", lambda e: None)
    c.set_state("/s/a", 1)  # the direct path
    c.set_state("/x", 1)
    c.derive("/d", "/x", lambda v: v + 1)  # the engine's path
    c.set_state("/x", 2)
    c.update("/x", lambda v: v + 1)
    c.ping("/x")
    c.get_state("/new", 5, write_default=True)
    c.track(lambda e: c.set_state("/t", c.get_state("/x")))
    c.set_state("/x", 10)
    with c.batch():
        c.set_state("/x", 11)
        c.del_state("/s/a")
    with pytest.raises(Boom), c.batch():
        c.set_state("/x", 12)
        raise Boom
    with c.deferring():
        c.set_state("/x", 13)
    c.track(lambda e: c.set_state("/later", c.get_state("/x")), policy="deferred")
    c.set_state("/x", 14)
    assert c.run_deferred() == 1
    c.del_state("/s")
    assert c.get_state("/x") == 14 and c.get_state("/t") == 14 and c.get_state("/d") == 15
    assert c.get_state("/later") == 14
    assert {"_set", "_del", "_roll_back", "_replace"} <= set(seen)
    other = InMemoryBackend({"x": 1})
    other._set = marked("_set", other._set)  # type: ignore[method-assign]
    c._attach = marked("_attach", c._attach)  # type: ignore[method-assign]
    c.set_backend(other)  # the reaction to the swap writes /d and /t in the new store
    assert "_attach" in seen
    assert c.get_state("/d") == 2 and c.get_state("/t") == 1


def test_reads_inside_a_tracked_function_are_recorded_and_rerun_it() -> None:
    c = ControllerSync()
    c.set_state("/x", 1)
    runs: list[Any] = []
    c.track(lambda e: runs.append(c.get_state("/x")))
    c.set_state("/x", 2)
    assert runs == [1, 2]
    assert c.trackers()[0].paths == frozenset({PurePosixPath("/x")})


def test_a_read_inside_ones_own_batch_sees_its_writes_and_a_rollback_undoes_them() -> None:
    c = ControllerSync()
    c.set_state("/a", 1)
    with pytest.raises(Boom), c.batch():
        c.set_state("/a", 2)
        assert c.get_state("/a") == 2
        raise Boom
    assert c.get_state("/a") == 1


def test_a_lock_free_read_gives_what_the_locked_read_gives() -> None:
    c = ControllerSync()
    c.set_state("/t", {"i": 1, "s": "x", "n": None, "tu": (1, 2), "l": [1], "d": {"k": 2}})
    c.set_state("/leaf", 3)
    cases = ["/t/i", "/t/s", "/t/n", "/t/tu", "/t/l", "/t/d", "/t/d/k", "/t", "/", "/nope",
             "/t/i/below", "/t/nope/deeper", "/leaf", "leaf", "/leaf/"]  # fmt: skip
    for path in cases:
        assert c.get_state(path, "dflt") == c._locked_read(to_parts(path), "dflt", False), path
    got = c.get_state("/t/l")
    got.append(2)  # a list is still an isolated copy
    assert c.get_state("/t/l") == [1]


def test_a_path_that_is_not_a_str_is_still_parsed_and_checked() -> None:
    from restate.errors import InvalidPathError

    c = ControllerSync()
    c.set_state("/a/b", 1)
    assert c.get_state(PurePosixPath("/a/b")) == 1
    assert c.get_state(c.atom("/a/b")) == 1
    with pytest.raises(InvalidPathError):
        c.get_state("/a/../b")
    with pytest.raises(TypeError):
        c.get_state(["a", "b"])


def assert_read_waits(
    c: ControllerSync, path: str, release: threading.Event, expected: Any, while_: str
) -> None:
    """A read of ``path`` from another thread waits (0.2 s) while the writer is held, then,
    once ``release`` lets the writer finish, gives ``expected``."""
    got: list[Any] = []
    reader = threading.Thread(target=lambda: got.append(c.get_state(path)))
    reader.start()
    reader.join(timeout=0.2)
    assert reader.is_alive() and got == [], f"read {path} {while_}"
    release.set()
    reader.join(timeout=30)
    assert got == [expected]


def test_the_read_waits_for_another_threads_open_batch() -> None:
    c = ControllerSync()
    c.set_state("/a", 1)
    inside, release = threading.Event(), threading.Event()

    def batching() -> None:
        with c.batch():
            c.set_state("/a", 2)
            inside.set()
            assert release.wait(30)

    writer = threading.Thread(target=batching)
    writer.start()
    assert inside.wait(30), "the writer never opened its batch"
    assert_read_waits(c, "/a", release, 2, "while another thread's batch was open")
    writer.join(timeout=30)


def test_a_free_threaded_build_reads_under_the_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    import restate.controller as module

    monkeypatch.setattr(module, "LOCK_FREE_READS", False)
    c = ControllerSync()
    c.set_state("/a", 1)
    assert c._memory is None and c.get_state("/a") == 1


def test_the_read_waits_for_another_threads_write_whose_callbacks_are_still_running() -> None:
    c = ControllerSync()
    c.set_state("/x", 0)
    inside, release = threading.Event(), threading.Event()

    def callback(event: Any) -> None:  # runs after /x was written, before the write ends
        inside.set()
        assert release.wait(30)

    c.subscribe("/x", callback)
    writer = threading.Thread(target=lambda: c.set_state("/x", 1))
    writer.start()
    assert inside.wait(30), "the write never reached its callback"
    assert_read_waits(c, "/x", release, 1, "while its write was still dispatching")
    writer.join(timeout=30)


def test_the_read_still_waits_after_a_callback_of_that_write_has_written_itself() -> None:
    """A write made by a callback ends inside the outer write: readers must keep waiting."""
    c = ControllerSync()
    c.set_state("/x", 0)
    inside, release = threading.Event(), threading.Event()
    c.subscribe("/x", lambda e: c.set_state("/y", e.new_value))  # delivered first (innermost)

    def pause(event: Any) -> None:
        if event.emitting_path == PurePosixPath("/x"):
            inside.set()
            assert release.wait(30)

    c.subscribe("/", pause)
    writer = threading.Thread(target=lambda: c.set_state("/x", 1))
    writer.start()
    assert inside.wait(30), "the write never reached its second callback"
    assert c._engine.batches.depth == 0 and c.backend.read("/y") == 1  # the inner write ended
    assert_read_waits(c, "/x", release, 1, "while its write was still dispatching")
    writer.join(timeout=30)


def line_of(fn: Callable[..., Any], text: str) -> int:
    lines, first = inspect.getsourcelines(fn)
    matches = [first + i for i, line in enumerate(lines) if text in line]
    assert len(matches) == 1, f"expected one line with {text!r} in {fn.__qualname__}"
    return matches[0]


@contextmanager
def at_lines(fn: Callable[..., Any], hooks: dict[int, Callable[[], None]]) -> Iterator[None]:
    """Run ``hooks[line]`` when this thread's ``fn`` is about to run that line (once each)."""
    code = fn.__code__
    pending = dict(hooks)

    def local(frame: Any, event: str, arg: Any) -> Any:
        if event == "line" and frame.f_lineno in pending:
            pending.pop(frame.f_lineno)()
        return local

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        return local if event == "call" and frame.f_code is code else None

    before = sys.gettrace()
    sys.settrace(tracer)
    try:
        yield
    finally:
        sys.settrace(before)
    assert not pending, f"lines never reached: {sorted(pending)}"


def test_a_batch_that_opens_and_rolls_back_while_a_read_walks_the_store_is_not_read() -> None:
    """The interleaving the version check is for, made to happen: after the read's first
    check another thread opens a batch and writes; the read fetches that value; the batch
    rolls back and ends before the read's second check. Only the version tells."""
    get_state = ControllerSync.get_state
    if not hasattr(get_state, "__code__"):
        pytest.skip("compiled: the interleaving is made with a line tracer")
    c = seeded()
    opened, go = threading.Event(), threading.Event()

    def batching() -> None:
        try:
            with c.batch():
                c.set_state("/a", POISON)
                opened.set()
                assert go.wait(30)
                raise Boom
        except Boom:
            pass

    writer = threading.Thread(target=batching)

    def open_a_batch() -> None:
        writer.start()
        assert opened.wait(30), "the writer never opened its batch"

    def roll_it_back() -> None:
        go.set()
        writer.join(timeout=30)
        assert not writer.is_alive()

    hooks = {
        line_of(get_state, "node: Any = store._root"): open_a_batch,
        line_of(get_state, "self._version == seen"): roll_it_back,
    }
    with at_lines(get_state, hooks):
        got = c.get_state("/a")
    assert got == 0, "read a value only a rolled-back batch wrote"


# ----- ControllerAsync: a read on a store that needs no awaiting skips the lock when it is free


async def blocked(task: asyncio.Task[Any]) -> bool:
    """Whether ``task`` is still waiting after the loop has had time to run it."""
    done, _ = await asyncio.wait({task}, timeout=0.2)
    return not done


def test_an_async_read_waits_for_another_tasks_batch_and_never_sees_it_rolled_back() -> None:
    async def main() -> None:
        c = ControllerAsync()
        await c.set_state("/a", 0)
        inside, release = asyncio.Event(), asyncio.Event()

        async def batching(value: int, fail: bool) -> None:
            async with c.batch():
                await c.set_state("/a", value)
                inside.set()
                await release.wait()
                if fail:
                    raise Boom

        writer = asyncio.create_task(batching(POISON, fail=True))
        await inside.wait()
        reader = asyncio.create_task(c.get_state("/a"))
        assert await blocked(reader), "read /a inside another task's open batch"
        release.set()
        with pytest.raises(Boom):
            await writer
        assert await reader == 0
        inside.clear()
        release.clear()
        writer = asyncio.create_task(batching(5, fail=False))
        await inside.wait()
        reader = asyncio.create_task(c.get_state("/a"))
        assert await blocked(reader)
        release.set()
        await writer
        assert await reader == 5

    asyncio.run(main())


def test_an_async_read_waits_for_a_write_whose_callbacks_are_still_running() -> None:
    async def main() -> None:
        c = ControllerAsync()
        await c.set_state("/x", 0)
        inside, release = asyncio.Event(), asyncio.Event()

        async def callback(event: Any) -> None:
            inside.set()
            await release.wait()

        c.subscribe("/x", callback)
        writer = asyncio.create_task(c.set_state("/x", 1))
        await inside.wait()
        reader = asyncio.create_task(c.get_state("/x"))
        assert await blocked(reader), "read /x while its write was still dispatching"
        release.set()
        await writer
        assert await reader == 1

    asyncio.run(main())


def test_an_async_read_is_tracked_isolated_and_gives_defaults() -> None:
    async def main() -> None:
        c = ControllerAsync()
        await c.set_state("/x", 1)
        await c.set_state("/d", {"l": [1]})
        runs: list[Any] = []

        async def tracked(event: Any) -> None:
            runs.append(await c.get_state("/x"))

        await c.track(tracked)
        await c.set_state("/x", 2)
        assert runs == [1, 2]
        got = await c.get_state("/d")
        got["l"].append(2)
        assert await c.get_state("/d") == {"l": [1]}
        assert await c.get_state("/nope", "dflt") == "dflt"
        assert await c.get_state("/") == {"x": 2, "d": {"l": [1]}}
        assert await c.get_state("/new", 3, write_default=True) == 3
        assert await c.get_state("/new") == 3

    asyncio.run(main())
