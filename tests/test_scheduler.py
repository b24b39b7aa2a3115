"""The scheduler of tracked functions (docs/semantics.md, "Scheduling"): deferral, order from
footprints, loops refused before they do damage, failure marks and recovery, latest wins.

Every test here runs on both controllers (the ``controller`` fixture), without IPython."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from restate import ControllerAsync, ControllerSync, CycleError
from tests.conftest import settle


def info(controller: Any, name: str) -> Any:
    return next(t for t in controller.trackers() if t.name == name)


def reader(controller: Any, path: str, runs: list[Any], name: str) -> Any:
    async def fn(event: Any) -> None:
        runs.append(await settle(event.get_state(path)))

    fn.__qualname__ = name
    return fn


def copier(src: str, dest: str, name: str, runs: list[str] | None = None) -> Any:
    """A tracked function that writes ``dest = src + 1``."""

    async def fn(event: Any) -> None:
        if runs is not None:
            runs.append(name)
        value = await settle(event.get_state(src)) or 0
        await settle(event.set_state(dest, value + 1))

    fn.__qualname__ = name
    return fn


# ----- deferral --------------------------------------------------------------------------


def test_a_deferred_function_is_only_marked_due_until_run_deferred(controller: Any) -> None:
    runs: list[Any] = []
    controller.track(reader(controller, "/x", runs, "show"), policy="deferred")
    controller.set_state("/x", 1)
    controller.set_state("/x", 2)
    assert runs == [None]
    due = info(controller, "show")
    assert (due.status, str(due.paths and sorted(map(str, due.paths)))) == ("due", "['/x']")
    assert due.reason is not None and due.reason.startswith("/x changed (thread ")
    assert controller.run_deferred() == 1
    assert runs == [None, 2]
    assert info(controller, "show").status == "ok"
    assert str(info(controller, "show").why.path) == "/x"
    assert controller.run_deferred() == 0


def test_writes_inside_deferring_run_each_due_function_once_at_the_end(controller: Any) -> None:
    runs: list[Any] = []
    controller.track(reader(controller, "/x", runs, "show"))
    with controller.deferring():
        for value in range(5):
            controller.set_state("/x", value)
        assert runs == [None]
    assert runs == [None, 4]
    controller.set_state("/x", 9)  # outside the block: at once again
    assert runs == [None, 4, 9]


def test_nested_deferring_blocks_run_only_when_the_outermost_ends(controller: Any) -> None:
    runs: list[Any] = []
    controller.track(reader(controller, "/x", runs, "show"))
    with controller.deferring():
        with controller.deferring():
            controller.set_state("/x", 1)
        assert runs == [None]
    assert runs == [None, 1]


def test_run_deferred_runs_writers_before_their_readers(controller: Any) -> None:
    order: list[str] = []

    async def total(event: Any) -> None:  # registered first, reads what `double` writes
        order.append("total")
        await settle(event.get_state("/double"))

    controller.track(total, policy="deferred")
    controller.track(copier("/x", "/double", "double", order), policy="deferred")
    order.clear()
    controller.set_state("/x", 1)  # double due; total is not (it reads /double)
    controller.set_state("/double", 0)  # now both are due, total first in registration order
    assert controller.run_deferred() == 2
    assert order == ["double", "total"]


def test_a_lazy_function_shows_stale_with_the_changed_path_and_runs_only_when_asked(
    controller: Any,
) -> None:
    runs: list[Any] = []
    marks: list[Any] = []
    tid = controller.track(
        reader(controller, "/x", runs, "slow"), policy="lazy", on_mark=marks.append
    )
    controller.set_state("/x", 1)
    controller.set_state("/x", 2)
    stale = info(controller, "slow")
    assert (stale.status, runs, marks) == ("stale", [None], [tid, tid])
    assert stale.reason is not None and stale.reason.startswith("/x changed")
    assert controller.run_deferred() == 0  # not without lazy=True
    assert controller.run_deferred(lazy=True) == 1
    assert runs == [None, 2]
    assert info(controller, "slow").status == "ok"


def test_run_deferred_only_runs_the_ids_it_is_given(controller: Any) -> None:
    a: list[Any] = []
    b: list[Any] = []
    ta = controller.track(reader(controller, "/x", a, "a"), policy="lazy")
    controller.track(reader(controller, "/x", b, "b"), policy="deferred")
    controller.set_state("/x", 1)
    assert controller.run_deferred(only=[ta]) == 1
    assert (a, b) == ([None, 1], [None])
    assert info(controller, "b").status == "due"


def test_run_deferred_for_chosen_ids_also_runs_what_their_writes_made_due(
    controller: Any,
) -> None:
    shown: list[Any] = []
    feed = controller.track(copier("/x", "/y", "feed"), policy="lazy")
    controller.track(reader(controller, "/y", shown, "show"))
    controller.set_state("/x", 1)
    assert controller.run_deferred(only=[feed]) == 2
    assert shown == [1, 2]


def test_an_interrupted_run_deferred_leaves_the_functions_it_did_not_reach_due() -> None:
    c = ControllerSync()
    ran: list[str] = []

    def first(event: Any) -> None:
        if c.get_state("/x") == 1 and "interrupted" not in ran:
            ran.append("interrupted")
            raise KeyboardInterrupt
        ran.append("first")

    def second(event: Any) -> None:
        c.get_state("/x")
        ran.append("second")

    c.track(first, policy="deferred")
    c.track(second, policy="deferred")
    ran.clear()
    c.set_state("/x", 1)
    with pytest.raises(KeyboardInterrupt):
        c.run_deferred()
    assert ran == ["interrupted"]
    assert {t.name: t.status for t in c.trackers()} == {"first": "ok", "second": "due"}
    assert c.run_deferred() == 1
    assert ran == ["interrupted", "second"]
    c.set_state("/x", 2)  # both still tracked, with their dependencies
    assert c.run_deferred() == 2


def test_an_unknown_policy_is_refused_and_registers_nothing(controller: Any) -> None:
    with pytest.raises(
        ValueError, match="policy must be one of now, eager, deferred, lazy, not 'sometimes'"
    ):
        controller.track(lambda e: None, policy="sometimes")
    assert controller.trackers() == []


def test_an_eager_function_runs_inside_the_write_even_in_a_deferring_block(
    controller: Any,
) -> None:
    runs: list[Any] = []
    controller.track(reader(controller, "/x", runs, "mirror"), policy="eager")
    with controller.deferring():
        controller.set_state("/x", 1)
        assert runs == [None, 1]
    assert runs == [None, 1]


def test_why_names_the_tracked_function_whose_write_caused_a_run(controller: Any) -> None:
    controller.track(copier("/x", "/y", "feed"))
    controller.track(reader(controller, "/y", [], "show"))
    controller.set_state("/x", 1)
    why = info(controller, "show").why
    assert (str(why.path), why.origin) == ("/y", "feed")
    assert str(why).startswith("/y changed (feed, ")
    assert info(controller, "feed").why.origin.startswith("thread ")


def test_writer_name_labels_who_wrote_in_why_lines_and_due_reasons(controller: Any) -> None:
    inner = getattr(controller, "inner", controller)  # (the async one, unwrapped)
    label: list[str | None] = ["the importer"]
    inner.writer_name = lambda: label[0]
    assert inner.writer_name() == "the importer"
    controller.track(reader(controller, "/x", [], "show"))
    controller.track(reader(controller, "/x", [], "later"), policy="deferred")
    controller.track(copier("/x", "/y", "feed"))
    controller.track(reader(controller, "/y", [], "after"))
    controller.set_state("/x", 1)
    assert info(controller, "show").why.origin == "the importer"
    assert info(controller, "later").reason.startswith("/x changed (the importer, ")
    assert info(controller, "after").why.origin == "feed"  # a running function's name wins
    label[0] = None  # no label for this write: the thread's name
    controller.set_state("/x", 2)
    assert info(controller, "show").why.origin.startswith("thread ")
    label[0] = "the importer"
    inner.writer_name = None  # removed
    controller.set_state("/x", 3)
    assert info(controller, "show").why.origin.startswith("thread ")
    assert inner.writer_name is None


def test_a_writer_name_that_is_not_a_function_is_refused_and_changes_nothing(
    controller: Any,
) -> None:
    inner = getattr(controller, "inner", controller)
    namer = lambda: "cell [1]"  # noqa: E731
    inner.writer_name = namer
    with pytest.raises(TypeError, match=r"writer_name takes a function .* not str"):
        inner.writer_name = "cell [1]"
    assert inner.writer_name is namer


def test_a_failing_writer_name_never_fails_the_write(
    controller: Any, caplog: pytest.LogCaptureFixture
) -> None:
    inner = getattr(controller, "inner", controller)
    controller.track(reader(controller, "/x", [], "show"), policy="deferred")
    inner.writer_name = lambda: 1 / 0
    assert controller.set_state("/x", 1) is True
    assert info(controller, "show").reason.startswith("/x changed (thread ")
    inner.writer_name = lambda: 42
    controller.set_state("/x", 2)
    assert info(controller, "show").reason.startswith("/x changed (thread ")
    logged = [r.getMessage() for r in caplog.records if r.name == "restate"]
    assert logged == [
        "controller.writer_name raised; the thread's name is used",
        "controller.writer_name returned 42, not a str or None",
    ]


class WatchedStore:
    """A user backend that reports changes made by someone else (as Redis does)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.handler: Any = None

    def read(self, path: Any, default: Any = None) -> Any:
        return self.data.get(str(path), default)

    def write(self, path: Any, value: Any) -> None:
        self.data[str(path)] = value

    def delete(self, path: Any) -> None:
        self.data.pop(str(path), None)

    def watch(self, handler: Any) -> Any:
        self.handler = handler
        return lambda: None

    def someone_else_writes(self, path: str, value: Any) -> None:
        prev = self.data.get(path)
        self.data[path] = value
        self.handler([(path, prev, value)])


def test_why_says_another_process_wrote_when_the_backend_reports_a_change() -> None:
    store = WatchedStore()
    c = ControllerSync(store)
    seen: list[Any] = []
    c.track(lambda e: seen.append(e.get_state("/x")), name="show")
    store.someone_else_writes("/x", 5)
    assert seen == [None, 5]
    why = info(c, "show").why
    assert (str(why.path), why.origin) == ("/x", "another process")


def test_a_function_tracked_with_raise_errors_false_fails_quietly_but_visibly(
    controller: Any,
) -> None:
    async def fragile(event: Any) -> None:
        if await settle(event.get_state("/x")):
            raise RuntimeError("boom")

    controller.track(fragile, raise_errors=False)
    assert controller.set_state("/x", 1) is True  # the writer gets nothing
    failed = info(controller, "fragile")
    assert (failed.status, str(failed.error)) == ("failed", "boom")
    controller.set_state("/x", 0)
    assert info(controller, "fragile").status == "ok"


# ----- loops -----------------------------------------------------------------------------


def test_a_loop_between_two_functions_is_refused_after_the_pass_that_revealed_it(
    controller: Any,
) -> None:
    runs: list[str] = []
    controller.set_state("/x", 0)
    controller.track(copier("/x", "/y", "a", runs))
    assert controller.get_state("/y") == 1
    with pytest.raises(CycleError, match=r"b → /x → a → /y → b"):
        controller.track(copier("/y", "/x", "b", runs))
    # only b's first pass ran: it wrote /x = 2; a did not run again
    assert runs == ["a", "b"]
    assert (controller.get_state("/x"), controller.get_state("/y")) == (2, 1)
    controller.set_state("/x", 10)  # later writes start nothing
    controller.set_state("/y", 10)
    assert runs == ["a", "b"]
    assert (controller.get_state("/x"), controller.get_state("/y")) == (10, 10)
    assert {t.name: t.status for t in controller.trackers()} == {"a": "refused", "b": "refused"}
    assert isinstance(info(controller, "a").error, CycleError)


def test_a_loop_through_a_derivation_is_refused_too(controller: Any) -> None:
    controller.set_state("/x", 0)
    controller.derive("/double", "/x", lambda x: (x or 0) * 2)
    with pytest.raises(CycleError, match=r"grow → /x → derive /double → /double → grow"):
        controller.track(copier("/double", "/x", "grow"))
    assert (controller.get_state("/x"), controller.get_state("/double")) == (1, 2)
    controller.set_state("/x", 5)
    assert controller.get_state("/double") == 10  # the derivation itself still works
    assert controller.get_state("/x") == 5


def test_a_function_that_writes_what_it_reads_is_refused_after_one_pass(
    controller: Any,
) -> None:
    runs: list[str] = []
    with pytest.raises(CycleError, match=r"bump → /n → bump"):
        controller.track(copier("/n", "/n", "bump", runs))
    assert (runs, controller.get_state("/n")) == (["bump"], 1)
    controller.set_state("/n", 5)
    assert (runs, controller.get_state("/n")) == (["bump"], 5)


def test_tracking_a_refused_function_again_gives_it_a_fresh_start(controller: Any) -> None:
    runs: list[Any] = []
    with pytest.raises(CycleError):
        controller.track(copier("/n", "/n", "bump"))
    controller.untrack(info(controller, "bump").id)
    controller.track(reader(controller, "/n", runs, "bump"))
    controller.set_state("/n", 7)
    assert runs == [1, 7]


def test_a_derive_transform_that_writes_its_own_source_raises_cycle_error_not_recursion(
    controller: Any,
) -> None:
    target = getattr(controller, "inner", controller)  # the transform runs inside the write
    calls: list[Any] = []

    async def transform(x: Any) -> Any:
        calls.append(x)
        if x:
            await settle(target.set_state("/src", x + 1))
        return x

    controller.derive("/dest", "/src", transform)
    with pytest.raises(CycleError, match=r"derive /dest → /src → derive /dest"):
        controller.set_state("/src", 1)
    assert calls == [None, 1]  # registration, then the one pass that revealed the loop
    assert controller.get_state("/src") == 2
    (d,) = controller.derivations()
    assert (d.status, type(d.error)) == ("refused", CycleError)
    controller.set_state("/src", 10)  # no longer recomputed
    assert calls == [None, 1]


def test_the_worked_example_of_the_scheduler_docstring_holds(controller: Any) -> None:
    runs: list[str] = []

    async def a(e: Any) -> None:
        runs.append("a")
        await settle(e.set_state("/y", (await settle(e.get_state("/x")) or 0) + 1))

    async def b(e: Any) -> None:
        runs.append("b")
        await settle(e.set_state("/total", (await settle(e.get_state("/y")) or 0) * 10))

    async def feedback(e: Any) -> None:
        await settle(e.set_state("/x", await settle(e.get_state("/total"))))

    controller.track(a)
    controller.track(b)
    controller.set_state("/x", 5)  # a, then b, run before the write call returns
    assert (runs, controller.get_state("/total")) == (["a", "b", "a", "b"], 60)
    with controller.deferring():
        controller.set_state("/x", 1)
        controller.set_state("/x", 2)
        assert [t.status for t in controller.trackers()] == ["due", "ok"]
    assert (runs[4:], controller.get_state("/total")) == (["a", "b"], 30)
    with pytest.raises(CycleError) as caught:
        controller.track(feedback, name="<lambda>")
    assert str(caught.value).startswith(
        "a loop: <lambda> → /x → a → /y → b → /total → <lambda>. Stopped before it could "
        "repeat: <lambda> ran once and the state is what it left; <lambda>, a and b will not "
        "run again until tracked again."
    )
    assert (controller.get_state("/x"), controller.get_state("/total")) == (30, 30)
    assert runs == ["a", "b"] * 3


# ----- failures --------------------------------------------------------------------------


def test_a_failing_derivation_marks_its_dependents_stale_and_they_recover_by_themselves(
    controller: Any,
) -> None:
    shown: list[Any] = []
    controller.set_state("/num", 6)
    controller.set_state("/den", 3)
    controller.derive_many("/ratio", ["/num", "/den"], lambda d: d.get("/num") / d.get("/den"))
    controller.derive("/percent", "/ratio", lambda r: r * 100)
    controller.track(reader(controller, "/percent", shown, "show"))
    with pytest.raises(ZeroDivisionError):
        controller.set_state("/den", 0)
    ratio, percent = controller.derivations()
    assert (ratio.status, type(ratio.error)) == ("failed", ZeroDivisionError)
    assert (percent.status, percent.reason) == ("stale", "/ratio failed in derive /ratio")
    show = info(controller, "show")
    assert (show.status, show.reason) == ("stale", "/ratio failed in derive /ratio")
    assert controller.get_state("/ratio") == 2  # the last good value stays
    controller.set_state("/den", 2)
    assert [d.status for d in controller.derivations()] == ["ok", "ok"]
    assert info(controller, "show").status == "ok"
    assert shown == [200.0, 300.0]


def test_a_failing_function_is_marked_failed_and_its_readers_stale_until_it_recovers(
    controller: Any,
) -> None:
    async def parse(event: Any) -> None:
        text = await settle(event.get_state("/text"))
        await settle(event.set_state("/parsed", int(text)))

    controller.set_state("/text", "1")
    controller.track(parse)
    controller.track(reader(controller, "/parsed", [], "show"))
    with pytest.raises(ValueError):
        controller.set_state("/text", "x")
    assert info(controller, "parse").status == "failed"
    assert isinstance(info(controller, "parse").error, ValueError)
    assert info(controller, "show").reason == "/parsed failed in parse"
    controller.set_state("/text", "2")
    assert (info(controller, "parse").status, info(controller, "show").status) == ("ok", "ok")


# ----- latest wins -----------------------------------------------------------------------


def test_a_slow_deferred_function_under_a_burst_of_1000_writes_runs_for_the_latest_value() -> None:
    c = ControllerSync()
    seen: list[int] = []
    started, burst_done = threading.Event(), threading.Event()

    def slow(event: Any) -> None:
        seen.append(event.get_state("/x"))
        if len(seen) == 2:  # the first deferred run is the slow one
            started.set()
            assert burst_done.wait(10), "the writer never finished its burst"

    c.set_state("/x", -1)
    c.track(slow, policy="deferred")
    c.set_state("/x", 0)
    runner = threading.Thread(target=c.run_deferred)
    runner.start()
    assert started.wait(10), "run_deferred() did not start the function"
    for value in range(1, 1000):  # the writer is never held up by the slow run
        c.set_state("/x", value)
    burst_done.set()
    runner.join(10)
    assert seen == [-1, 0, 999]


def test_a_slow_async_function_under_a_burst_of_1000_writes_runs_for_the_latest_value() -> None:
    async def main() -> list[int]:
        c = ControllerAsync()
        seen: list[int] = []
        started, burst_done = asyncio.Event(), asyncio.Event()

        async def slow(event: Any) -> None:
            seen.append(await event.get_state("/x"))
            if len(seen) == 2:
                started.set()
                await asyncio.wait_for(burst_done.wait(), 10)

        await c.set_state("/x", -1)
        await c.track(slow, policy="deferred")
        await c.set_state("/x", 0)
        runner = asyncio.create_task(c.run_deferred())
        await asyncio.wait_for(started.wait(), 10)
        for value in range(1, 1000):
            await c.set_state("/x", value)
        burst_done.set()
        await asyncio.wait_for(runner, 10)
        return seen

    assert asyncio.run(main()) == [-1, 0, 999]


def test_an_immediate_function_running_elsewhere_is_marked_due_not_run_twice_at_once() -> None:
    c = ControllerSync()
    seen: list[int] = []
    started, go = threading.Event(), threading.Event()

    def slow(event: Any) -> None:
        seen.append(event.get_state("/x"))
        if len(seen) == 2:
            started.set()
            assert go.wait(10), "the test never let the run finish"

    def deferred_write() -> None:
        with c.deferring():  # the block's end runs it in this thread
            c.set_state("/x", 0)

    c.track(slow)
    runner = threading.Thread(target=deferred_write)
    runner.start()
    assert started.wait(10), "the deferred run did not start"
    for value in range(1, 1000):
        c.set_state("/x", value)  # it is running in the runner: only marked due
    go.set()
    runner.join(10)
    assert seen == [None, 0, 999]


def test_a_write_of_an_unchanged_value_still_counts_in_the_footprint(controller: Any) -> None:
    controller.set_state("/x", 1)
    controller.track(copier("/x", "/y", "feed"))  # writes /y = 2
    controller.set_state("/x", 1.0)  # equal: nothing re-runs
    controller.ping("/x")  # re-runs feed, which writes /y = 2 again (unchanged)
    assert [str(p) for p in info(controller, "feed").writes] == ["/y"]


# ----- the first run, outside the controller's lock ------------------------------------------


def finished(thread: threading.Thread, what: str) -> None:
    thread.join(10)
    assert not thread.is_alive(), f"{what} still blocked after 10 s (a deadlock?)"


def test_a_first_run_may_start_a_thread_that_writes_state_and_join_it() -> None:
    c = ControllerSync()
    joined: list[bool] = []

    def body(event: Any) -> None:
        x = event.get_state("/x")
        writer = threading.Thread(target=lambda: c.set_state("/w", x))
        writer.start()
        writer.join(10)
        joined.append(not writer.is_alive())

    c.set_state("/x", 5)
    registering = threading.Thread(target=c.track, args=(body,), daemon=True)
    registering.start()
    finished(registering, "track()")
    assert joined == [True]
    assert c.get_state("/w") == 5
    with c.deferring():  # re-run at the block's end, outside the lock, as the first run
        c.set_state("/x", 6)
    assert (joined, c.get_state("/w")) == ([True, True], 6)


def test_an_async_first_run_may_await_a_task_that_writes_state() -> None:
    async def main() -> Any:
        c = ControllerAsync()

        async def body(event: Any) -> None:
            task = asyncio.create_task(c.set_state("/w", await event.get_state("/x")))
            await asyncio.wait_for(task, 10)  # under the lock this waited for ever

        await c.set_state("/x", 5)
        await asyncio.wait_for(c.track(body), 20)
        return await c.get_state("/w")

    assert asyncio.run(main()) == 5


def test_a_write_from_another_thread_racing_the_first_run_makes_it_run_again() -> None:
    c = ControllerSync()
    seen: list[Any] = []
    has_read, written = threading.Event(), threading.Event()

    def body(event: Any) -> None:
        seen.append(event.get_state("/x"))
        if len(seen) == 1:  # the first run: let the other thread write after our read
            has_read.set()
            assert written.wait(10), "the other thread never wrote"

    def other() -> None:
        assert has_read.wait(10), "the first run never read"
        c.set_state("/x", 1)  # between the read and the end of the first run
        written.set()

    c.set_state("/x", 0)
    writer = threading.Thread(target=other, daemon=True)
    writer.start()
    c.track(body, name="body")
    finished(writer, "the other thread")
    assert seen == [0, 1]  # the write was not lost: track() ran it again, for the new value
    assert info(c, "body").status == "ok"
    assert str(info(c, "body").why.path) == "/x"
    c.set_state("/x", 2)
    assert seen == [0, 1, 2]


def test_a_write_from_another_task_racing_an_async_first_run_makes_it_run_again() -> None:
    async def main() -> list[Any]:
        c = ControllerAsync()
        seen: list[Any] = []
        has_read, written = asyncio.Event(), asyncio.Event()

        async def body(event: Any) -> None:
            seen.append(await event.get_state("/x"))
            if len(seen) == 1:
                has_read.set()
                await asyncio.wait_for(written.wait(), 10)

        async def other() -> None:
            await asyncio.wait_for(has_read.wait(), 10)
            await c.set_state("/x", 1)
            written.set()

        await c.set_state("/x", 0)
        writer = asyncio.create_task(other())
        await asyncio.wait_for(c.track(body), 20)
        await asyncio.wait_for(writer, 10)
        await c.set_state("/x", 2)
        return seen

    assert asyncio.run(main()) == [0, 1, 2]


def test_a_write_racing_the_first_run_of_a_deferred_function_only_marks_it_due() -> None:
    c = ControllerSync()
    seen: list[Any] = []
    has_read = threading.Event()

    def body(event: Any) -> None:
        seen.append(event.get_state("/x"))
        has_read.set()
        writer.join(10)  # the write lands while the first run is still running

    writer = threading.Thread(target=lambda: (has_read.wait(10), c.set_state("/x", 1)))
    writer.start()
    c.track(body, name="body", policy="deferred")
    assert not writer.is_alive(), "the writer was blocked by the first run"
    assert seen == [None] and info(c, "body").status == "due"
    assert c.run_deferred() == 1 and seen == [None, 1]


def test_an_interrupted_first_run_still_hears_the_paths_it_read() -> None:
    c = ControllerSync()
    seen: list[Any] = []

    def body(event: Any) -> None:
        seen.append(event.get_state("/x"))
        if len(seen) == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        c.track(body)
    c.set_state("/x", 1)
    assert seen == [None, 1]
    assert [str(p) for p in c.trackers()[0].paths] == ["/x"]


def test_a_cancelled_async_first_run_still_hears_the_paths_it_read() -> None:
    async def main() -> tuple[list[Any], list[str]]:
        c = ControllerAsync()
        seen: list[Any] = []

        async def body(event: Any) -> None:
            seen.append(await event.get_state("/x"))
            if len(seen) == 1:
                await asyncio.sleep(3600)  # cancelled here

        registering = asyncio.create_task(c.track(body))
        while not seen:
            await asyncio.sleep(0)
        registering.cancel()
        with pytest.raises(asyncio.CancelledError):
            await registering
        await c.set_state("/x", 1)
        return seen, [str(p) for p in c.trackers()[0].paths]

    assert asyncio.run(main()) == ([None, 1], ["/x"])


def test_the_first_runs_writes_reach_readers_after_it_as_in_a_deferred_pass(
    controller: Any,
) -> None:
    runs: list[str] = []
    controller.track(copier("/y", "/z", "reader", runs))
    controller.track(copier("/x", "/y", "writer", runs))
    assert runs == ["reader", "writer", "reader"]  # the reader ran once, after the writer
    assert controller.get_state("/z") == 2


def test_a_write_to_a_path_a_deferred_rerun_reads_for_the_first_time_is_not_lost() -> None:
    c = ControllerSync()
    seen: list[Any] = []
    has_read, written = threading.Event(), threading.Event()

    def body(event: Any) -> None:
        if event.get_state("/a") == 1:  # this run reads /b for the first time
            seen.append(event.get_state("/b"))
            if len(seen) == 1:
                has_read.set()
                assert written.wait(10), "the test never wrote /b"

    c.track(body, policy="deferred")
    c.set_state("/a", 1)
    runner = threading.Thread(target=c.run_deferred, daemon=True)
    runner.start()
    assert has_read.wait(10), "run_deferred() did not run it"
    c.set_state("/b", 5)  # it is subscribed at /b since its read: marked due, not lost
    written.set()
    finished(runner, "run_deferred()")
    assert seen == [None, 5]
