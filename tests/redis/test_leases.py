"""Transactions take short renewed leases on what they touch: independent keys never wait,
a dead or interrupted transaction stalls nobody for long, and deadlocks cannot happen."""

from __future__ import annotations

import signal
import threading

import pytest

from restate import ControllerSync
from restate.backends.redis import RedisBackend
from restate.errors import BackendError
from tests.children import RedisProcs as spawn
from tests.children import read_line

pytestmark = pytest.mark.redis


def test_a_transaction_on_one_key_never_holds_back_writes_or_transactions_on_another(
    url, prefix, backend
):
    with RedisBackend(url, prefix, lock_wait=0.05) as impatient, backend.transaction():
        assert backend.read("/a", 0) == 0
        backend.write("/a", 1)
        impatient.write("/b", 1)  # would raise "waited 0.05 s" if /b were held
        with impatient.transaction():
            impatient.write("/c/d", impatient.read("/c/d", 0) + 1)
        with pytest.raises(BackendError, match=r"waited 0\.05 s"):
            impatient.write("/a", 2)
        with pytest.raises(BackendError, match=r"waited 0\.05 s"):
            impatient.write("/", {})  # the root contains /a
    assert backend.read("/") == {"a": 1, "b": 1, "c": {"d": 1}}


def test_a_lease_on_a_directory_holds_back_writes_below_it_and_above_it(url, prefix, backend):
    backend.write("/users", {"1": "ann"})
    with RedisBackend(url, prefix, lock_wait=0.05) as impatient, backend.transaction():
        backend.read("/users")
        for path in ("/users/1", "/users/2/x", "/"):
            with pytest.raises(BackendError, match="waited"):
                impatient.write(path, {"k": 0})
        impatient.write("/usersX", 1)  # a sibling sharing the name's start is unrelated


def test_a_transaction_outliving_many_lease_timeouts_keeps_its_leases_and_commits(url, prefix):
    with (
        RedisBackend(url, prefix, lease_timeout=0.05) as slow,
        RedisBackend(url, prefix, lock_wait=0.05) as impatient,
    ):
        with slow.transaction():
            slow.write("/n", 1)
            for _ in range(4):  # 4 x 0.1 s of waiting = 8 lease lifetimes: renewed
                with pytest.raises(BackendError, match="waited"):
                    impatient.write("/n", 2)
        assert impatient.read("/n") == 1


def test_two_transactions_taking_two_keys_in_opposite_orders_never_deadlock(url, prefix):
    with RedisBackend(url, prefix) as one, RedisBackend(url, prefix) as two:
        first_in, second_in = threading.Event(), threading.Event()
        outcome: dict[str, object] = {}

        def run(store: RedisBackend, mine: str, theirs: str, me: threading.Event,
                them: threading.Event) -> None:  # fmt: skip
            try:
                with store.transaction():
                    store.write(mine, 1)
                    me.set()
                    assert them.wait(5)
                    store.write(theirs, 2)
                outcome[mine] = "committed"
            except BackendError as exc:
                outcome[mine] = str(exc)

        older = threading.Thread(target=run, args=(one, "/a", "/b", first_in, second_in))
        older.start()
        assert first_in.wait(5)
        younger = threading.Thread(target=run, args=(two, "/b", "/a", second_in, first_in))
        younger.start()
        older.join(10)
        younger.join(10)
        assert outcome["/a"] == "committed"
        assert "gives way" in str(outcome["/b"])
        assert one.read("/") == {"a": 1, "b": 2}


@pytest.mark.slow
def test_a_writer_killed_inside_a_transaction_holds_others_back_for_about_its_lease(url, prefix):
    holder = spawn("hold", url, prefix)
    try:
        assert read_line(holder) == {"kind": "inside"}
        holder.kill()
        holder.wait(5)
    finally:
        holder.kill()
    # the old global lock held everyone for 10 s: a 0.5 s lease must be gone well within 3 s
    with RedisBackend(url, prefix, lock_wait=3) as store:
        controller = ControllerSync(store)
        assert controller.update("/n", lambda n: "after", default=None) == "after"
        assert store.read("/") == {"n": "after"}  # the killed batch wrote nothing


@pytest.mark.slow
def test_sigint_inside_a_batch_rolls_it_back_and_later_writes_of_that_process_commit(url, prefix):
    holder = spawn("hold", url, prefix)
    try:
        assert read_line(holder) == {"kind": "inside"}
        holder.send_signal(signal.SIGINT)
        assert read_line(holder) == {"kind": "after", "n": None, "after": 1}
        with RedisBackend(url, prefix, lock_wait=0.2) as store:
            store.write("/n", "free")  # the interrupted batch's leases were dropped
    finally:
        holder.kill()
        holder.wait(5)


def test_keyboard_interrupts_at_any_point_of_updates_leave_no_lease_and_no_stuck_transaction(
    url, prefix
):
    backend = RedisBackend(url, prefix, lease_timeout=0.2)  # a lease cut off expires soon
    controller = ControllerSync(backend)
    controller.set_state("/n", 0)
    interrupted = 0
    for delay_us in range(50, 3000, 150):  # a timer fires somewhere inside an update()

        def boom(*_: object) -> None:
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGALRM, boom)
        try:
            signal.setitimer(signal.ITIMER_REAL, delay_us / 1e6)
            for _ in range(50):
                controller.update("/n", lambda n: n + 1)
        except KeyboardInterrupt:
            interrupted += 1
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        assert backend._core.txn.get() is None, "a transaction stayed open after the interrupt"
        controller.set_state("/probe", delay_us)
        with RedisBackend(url, backend.prefix, lock_wait=2) as other:
            assert other.read("/probe") == delay_us, "a later write stayed uncommitted"
            other.write("/n", other.read("/n"))  # no lease of the interrupted update left
    assert interrupted > 0
    controller.close()


def test_an_interrupt_while_the_lease_renewer_starts_reaches_the_caller_as_keyboard_interrupt(
    url, prefix, monkeypatch
):
    # CPython turns a KeyboardInterrupt inside Thread.start()'s wait into "RuntimeError:
    # release unlocked lock" (seen once in a full run); replay that on the first start.
    from restate.backends.redis.shell import Renewer

    started = Renewer.start

    def interrupted_start(self: Renewer) -> None:
        monkeypatch.setattr(Renewer, "start", started)
        started(self)
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("release unlocked lock")  # noqa: B904 (as CPython does)

    monkeypatch.setattr(Renewer, "start", interrupted_start)
    backend = RedisBackend(url, prefix, lease_timeout=0.2)
    controller = ControllerSync(backend)
    controller.set_state("/n", 0)
    with pytest.raises(KeyboardInterrupt), controller.batch():  # a batch starts the renewer
        controller.update("/n", lambda n: n + 1)
    assert backend._core.txn.get() is None
    with controller.batch():
        controller.update("/n", lambda n: n + 1)
    assert controller.get_state("/n") == 1
    assert backend._renewer and backend._renewer[0].is_alive()
    controller.close()
