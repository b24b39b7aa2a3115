"""Registration bookkeeping: every removal releases what it removed, registries return to empty
after churn, callback ids are found without scanning, and equal callbacks share one id."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest

from restate import CallbackIdError
from tests.conftest import settle


class Listener:
    """A callback owner holding something big, as a widget or a model would."""

    def __init__(self) -> None:
        self.payload = bytearray(1 << 16)
        self.seen: list[Any] = []

    def on_event(self, event: Any) -> None:
        self.seen.append(event.new_value)

    def transform(self, value: Any) -> Any:
        return value

    def tracked(self, event: Any) -> None:
        self.seen.append(event)


def collected(ref: weakref.ref[Any]) -> bool:
    gc.collect()
    return ref() is None


def registry_sizes(controller: Any) -> dict[str, int]:
    engine = controller._engine
    registry = engine.registry
    return {
        "callbacks": len(engine.callbacks),
        "kept": len(registry.kept),
        "reverse": len(registry._ids) + len(registry._unhashable),
        "subscriptions": engine.subs.size,
        "trie": len(engine.subs.root.children) + (engine.subs.root.wild is not None),
        "where": len(engine.subs._where),
        "trackers": len(engine.trackers),
        "derivations": len(engine.graph),
    }


EMPTY = dict.fromkeys(
    ["callbacks", "kept", "reverse", "subscriptions", "trie", "where", "trackers", "derivations"],
    0,
)


def test_unsubscribe_releases_the_callback_and_its_owner(controller: Any) -> None:
    owner = Listener()
    ref = weakref.ref(owner)
    method = owner.on_event
    controller.subscribe("/a/b", method)
    controller.set_state("/a/b", 1)
    assert owner.seen == [1]
    del owner
    assert not collected(ref), "a subscribed callback keeps its owner alive"
    assert controller.unsubscribe("/a/b", method)
    del method
    assert collected(ref)
    assert registry_sizes(controller) == EMPTY


def test_unsubscribe_by_id_releases_a_callback_that_subscribe_registered(controller: Any) -> None:
    owner = Listener()
    ref = weakref.ref(owner)
    cid = controller.subscribe("/x", owner.on_event)
    controller.subscribe("/y/*", owner.on_event)
    del owner
    assert controller.unsubscribe_by_id("/x", cid)
    assert not collected(ref), "still subscribed at /y/*"
    assert controller.unsubscribe_by_id("/y/*", cid)
    assert collected(ref)
    assert registry_sizes(controller) == EMPTY


def test_remove_callback_releases_an_explicitly_registered_callback(controller: Any) -> None:
    owner = Listener()
    ref = weakref.ref(owner)
    cid = controller.register_callback(owner.on_event, force_id="mine")
    controller.subscribe_by_id("/p", cid)
    controller.subscribe_by_id("/q", cid)
    del owner
    assert controller.unsubscribe_by_id("/p", cid)
    assert controller.unsubscribe_by_id("/q", cid)
    assert not collected(ref), "an id from register_callback is kept until remove_callback"
    assert controller.subscribe_by_id("/p", "mine")
    assert controller.remove_callback("mine")
    assert collected(ref)
    assert registry_sizes(controller) == EMPTY


def test_untrack_releases_the_tracked_function(controller: Any) -> None:
    owner = Listener()
    ref = weakref.ref(owner)

    async def run(event: Any, owner: Listener = owner) -> None:  # held by the function itself
        await settle(event.get_state("/watched"))
        owner.tracked(event)

    tid = controller.track(run)
    controller.set_state("/watched", 2)
    del owner, run
    assert not collected(ref)
    assert controller.untrack(tid)
    assert collected(ref)
    assert registry_sizes(controller) == EMPTY


def test_underive_releases_the_transform(controller: Any) -> None:
    owner = Listener()
    ref = weakref.ref(owner)
    controller.derive("/out", "/in", owner.transform)
    controller.set_state("/in", 3)
    assert controller.get_state("/out") == 3
    del owner
    assert not collected(ref)
    assert controller.underive("/out")
    assert collected(ref)
    assert registry_sizes(controller) == EMPTY


def test_registries_return_to_empty_after_subscribe_unsubscribe_churn(controller: Any) -> None:
    for round_ in range(3):
        callbacks = [(lambda e, i=i: None) for i in range(300)]
        for i, cb in enumerate(callbacks):
            controller.subscribe(f"/items/{i % 17}/{'*' if i % 5 == 0 else 'v'}", cb)
        controller.set_state("/items/3/v", round_)
        for i, cb in enumerate(callbacks):
            assert controller.unsubscribe(f"/items/{i % 17}/{'*' if i % 5 == 0 else 'v'}", cb)
        assert registry_sizes(controller) == EMPTY


def test_a_callback_subscribed_twice_keeps_one_id_until_its_last_subscription_goes(
    controller: Any,
) -> None:
    owner = Listener()
    first = controller.subscribe("/a", owner.on_event)
    assert controller.subscribe("/b", owner.on_event) == first  # an equal bound method
    assert controller.unsubscribe("/a", owner.on_event)
    controller.set_state("/b", 5)
    assert owner.seen == [5]
    assert controller.subscribe("/c", owner.on_event) == first


def test_register_callback_after_subscribe_keeps_the_id_past_the_last_unsubscribe(
    controller: Any,
) -> None:
    cb = Listener().on_event
    cid = controller.subscribe("/a", cb)
    assert controller.register_callback(cb) == cid
    controller.unsubscribe("/a", cb)
    assert controller.subscribe_by_id("/a", cid)


class EqualByName:
    """An unhashable callable (``__eq__`` without ``__hash__``): found by comparison."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EqualByName) and other.name == self.name

    def __call__(self, event: Any) -> None:
        self.calls += 1


def test_unhashable_callbacks_are_matched_by_equality_and_released(controller: Any) -> None:
    first = EqualByName("x")
    ref = weakref.ref(first)
    cid = controller.subscribe("/u", first)
    assert controller.subscribe("/v", EqualByName("x")) == cid
    assert controller.subscribe("/v", EqualByName("y")) != cid
    assert controller.unsubscribe("/u", EqualByName("x"))
    assert controller.unsubscribe("/v", EqualByName("x"))
    assert controller.unsubscribe("/v", EqualByName("y"))
    del first
    assert collected(ref)
    assert registry_sizes(controller) == EMPTY


def test_replacing_a_forced_id_releases_the_old_callback(controller: Any) -> None:
    old = Listener()
    ref = weakref.ref(old)
    controller.register_callback(old.on_event, force_id="slot")
    with pytest.raises(CallbackIdError):
        controller.register_callback(Listener().on_event, force_id="slot")
    new = Listener()
    controller.register_callback(new.on_event, force_id="slot", replace=True)
    del old
    assert collected(ref)
    controller.subscribe_by_id("/s", "slot")
    controller.set_state("/s", 1)
    assert new.seen == [1]


def test_a_callback_unsubscribed_during_a_dispatch_is_not_called_and_is_released(
    controller: Any,
) -> None:
    late = Listener()
    ref = weakref.ref(late)
    pending = [late.on_event]

    def first(event: Any) -> None:
        controller.unsubscribe("/k", pending.pop())

    controller.subscribe("/k", first)
    controller.subscribe("/k", late.on_event)
    controller.set_state("/k", 1)
    assert late.seen == []
    del late
    assert collected(ref)


class Counted:
    """A hashable callable that counts how often it is compared with another callable."""

    comparisons = 0

    def __call__(self, event: Any) -> None:
        pass

    def __eq__(self, other: object) -> bool:
        Counted.comparisons += 1
        return self is other

    def __hash__(self) -> int:
        return id(self) >> 4


def test_subscribing_a_new_callback_compares_it_with_no_registered_callback(
    controller: Any,
) -> None:
    for i in range(2_000):
        controller.subscribe(f"/s/{i % 10}", Counted())
    Counted.comparisons = 0
    newcomer = Counted()
    controller.subscribe("/s/new", newcomer)
    controller.unsubscribe("/s/new", newcomer)
    assert Counted.comparisons <= 2, "found through the reverse map, not by scanning"


def test_a_generated_id_never_collides_with_an_id_forced_on_a_callback(controller: Any) -> None:
    forced = Listener()
    for n in (1, 2, 3):
        controller.register_callback(forced.on_event, force_id=n)
        controller.subscribe_by_id("/shared", n)
    runs: list[Any] = []

    async def watch(event: Any) -> None:
        runs.append(await settle(event.get_state("/shared")))

    tid = controller.track(watch)
    other = controller.subscribe("/shared", Listener().on_event)
    assert tid not in (1, 2, 3) and other not in (1, 2, 3, tid)
    controller.set_state("/shared", 9)
    assert forced.seen == [9, 9, 9]
    assert runs == [None, 9]
