"""RedisBackend.transaction(): buffered, isolated, atomic, locked against other clients."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from restate.backends.base import MISSING
from restate.backends.memory import InMemoryBackend
from restate.backends.redis import RedisBackend
from restate.errors import BackendError, PathConflictError

pytestmark = pytest.mark.redis


def test_writes_inside_are_seen_inside_and_by_no_one_else_until_commit(backend, other):
    backend.write("/a", {"x": 1})
    with backend.transaction():
        backend.write("/a/y", 2)
        backend.delete("/a/x")
        backend.write("/b/c/d", 3)
        assert backend.read("/") == {"a": {"y": 2}, "b": {"c": {"d": 3}}}
        assert backend.read("/b/c") == {"d": 3}
        assert other.read("/") == {"a": {"x": 1}}
    assert other.read("/") == {"a": {"y": 2}, "b": {"c": {"d": 3}}}


def test_an_exception_discards_every_buffered_write_and_releases_the_lock(backend, other):
    backend.write("/a", 1)
    with pytest.raises(RuntimeError, match="boom"), backend.transaction():
        backend.write("/a", 2)
        backend.delete("/a")
        backend.write("/z", {"k": 1})
        raise RuntimeError("boom")
    assert backend.read("/") == {"a": 1}
    other.write("/a", 5)  # would wait for lock_wait if the lock were still held
    assert backend.read("/a") == 5


def test_a_conflict_inside_raises_at_once_and_leaves_the_buffer_as_it_was(backend):
    backend.write("/leaf", 1)
    with backend.transaction():
        backend.write("/new", 2)
        with pytest.raises(PathConflictError, match="'/leaf' holds a leaf"):
            backend.write("/leaf/x", 3)
        backend.write("/new2", 5)
        with pytest.raises(PathConflictError, match="'/new2' holds a leaf"):
            backend.write("/new2/x", 3)
    assert backend.read("/") == {"leaf": 1, "new": 2, "new2": 5}


def test_nested_transactions_join_the_outer_one(backend, other):
    with backend.transaction():
        backend.write("/a", 1)
        with backend.transaction():
            backend.write("/b", 2)
        assert other.read("/b") is None
    assert other.read("/") == {"a": 1, "b": 2}


def test_plain_writes_of_other_clients_wait_for_the_transaction(backend, other):
    done = []
    with backend.transaction():
        backend.write("/n", 1)
        writer = threading.Thread(target=lambda: (other.write("/n", 2), done.append(1)))
        writer.start()
        time.sleep(0.2)  # room for a wrong write to happen; a slow machine only makes it pass
        assert not done, "a plain write went through while a transaction held the lock"
    writer.join(30)
    assert done, "the waiting write did not finish within 30 s of the commit"
    assert backend.read("/n") == 2


def test_a_plain_write_gives_up_with_backend_error_after_lock_wait(url, prefix, backend):
    with RedisBackend(url, prefix, lock_wait=0.2) as impatient, backend.transaction():
        backend.write("/n", 1)
        started = time.monotonic()
        with pytest.raises(BackendError, match=r"waited 0\.2 s"):
            impatient.write("/n", 2)
        # far below the default lock_wait (30 s): lock_wait=0.2 was obeyed, however busy
        assert time.monotonic() - started < 10
    assert backend.read("/n") == 1


def test_a_transaction_that_lost_its_lease_writes_nothing(backend, other, raw, prefix):
    with pytest.raises(BackendError, match="lost its lease"), backend.transaction():
        backend.write("/a", 1)
        [token] = {v.split()[0] for v in raw.hgetall(f"{{{prefix}}}:leases").values()}
        raw.delete(f"{{{prefix}}}:lease:{token}")  # as if it expired: the process was stopped
        other.write("/a", 2)  # a dead lease no longer holds the other client back
    assert backend.read("/") == {"a": 2}


def test_another_thread_of_the_same_backend_is_not_inside_the_transaction(backend):
    seen = []
    with backend.transaction():
        backend.write("/a", 1)
        thread = threading.Thread(target=lambda: seen.append(backend.read("/a", MISSING)))
        thread.start()
        thread.join(5)
    assert seen == [MISSING]


def test_a_transaction_without_writes_records_no_change(backend, raw, prefix):
    backend.write("/a", 1)
    with backend.transaction():
        assert backend.read("/a") == 1
    assert raw.xlen(f"{{{prefix}}}:changes") == 1


def test_a_commit_appends_one_stream_entry_with_one_change_per_written_subtree(
    backend, raw, prefix
):
    backend.write("/a", {"x": 1})
    with backend.transaction():
        backend.write("/a/y", 2)
        backend.write("/a/y", 3)
        backend.write("/b/c", 4)
        backend.delete("/a/x")
    [(_, fields)] = raw.xrevrange(f"{{{prefix}}}:changes", count=1)
    assert fields["o"] == backend.origin
    import json

    assert sorted(json.loads(fields["c"]), key=lambda c: c["p"]) == [
        {"p": "/a/x", "o": 1},
        {"p": "/a/y", "n": 3},
        {"p": "/b", "n": {"c": 4}},
    ]


# ---- the overlay against a model: reads inside and the state after commit ------------------

SEGMENT = st.sampled_from(["a", "b", "c"])
PATH = st.lists(SEGMENT, min_size=0, max_size=3).map(tuple)
LEAF = st.one_of(st.integers(-3, 3), st.none(), st.just("s"))
VALUE = st.recursive(LEAF, lambda inner: st.dictionaries(SEGMENT, inner, max_size=3), max_leaves=5)
OP = st.one_of(
    st.tuples(st.just("write"), PATH, VALUE),
    st.tuples(st.just("delete"), PATH),
    st.tuples(st.just("read"), PATH),
)


def _apply(store, op):
    path = "/" + "/".join(op[1])
    try:
        if op[0] == "write":
            if not op[1] and not isinstance(op[2], dict):
                return "skip"
            store.write(path, op[2])
            return None
        if op[0] == "delete":
            store.delete(path)
            return None
        return store.read(path, MISSING)
    except PathConflictError:
        return "conflict"


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(initial=st.dictionaries(SEGMENT, VALUE, max_size=3), ops=st.lists(OP, max_size=12))
def test_redis_behaves_like_the_in_memory_tree_inside_and_outside_transactions(
    redis_server, initial, ops
):
    for in_transaction in (True, False):
        model = InMemoryBackend(initial)
        with RedisBackend(redis_server.url, f"h{uuid.uuid4().hex[:10]}") as store:
            store.write("/", initial)
            with store.transaction() if in_transaction else contextlib.nullcontext():
                for op in ops:
                    assert _apply(store, op) == _apply(model, op), (in_transaction, op)
                assert store.read("/") == model.read("/")
            assert store.read("/") == model.read("/")
            store.delete("/")


def test_a_transaction_that_lost_its_lease_never_drops_the_lease_another_took_since(
    url, prefix, backend, other, raw
):
    taken, done = threading.Event(), threading.Event()

    def hold() -> None:
        with other.transaction():
            other.write("/a", 2)
            taken.set()
            assert done.wait(5)

    with pytest.raises(BackendError, match="lost its lease"), backend.transaction():
        backend.write("/a", 1)
        [token] = {v.split()[0] for v in raw.hgetall(f"{{{prefix}}}:leases").values()}
        raw.delete(f"{{{prefix}}}:lease:{token}")
        holder = threading.Thread(target=hold)
        holder.start()
        assert taken.wait(5), "the other transaction could not take the dead lease"
    holders = {v.split()[0] for v in raw.hgetall(f"{{{prefix}}}:leases").values()}
    assert holders and token not in holders, "the lost transaction dropped another's lease"
    done.set()
    holder.join(5)
    assert backend.read("/") == {"a": 2}
