"""docs/semantics.md §3: order, bubbling, stop_bubbling, wildcards, payloads, ping, callback ids."""

from __future__ import annotations

from typing import Any

import pytest

from restate import CallbackIdError


def recorder(log: list, name: str) -> Any:
    def callback(event: Any) -> None:
        log.append(
            (
                name,
                str(event.emitting_path),
                str(event.current_path),
                event.prev_value,
                event.new_value,
            )
        )

    return callback


def test_order_is_changed_descendants_then_exact_then_ancestors_innermost_first(
    controller: Any,
) -> None:
    log: list = []
    controller.set_state("/a/b", {"c": 1, "d": 1})
    for path in ["/", "/a", "/a/b", "/a/b/c", "/a/b/d", "/a/b/c/deeper"]:
        controller.subscribe(path, recorder(log, path))
    controller.set_state("/a/b", {"c": 2, "d": 1})
    assert log == [
        ("/a/b/c", "/a/b/c", "/a/b/c", 1, 2),
        ("/a/b", "/a/b", "/a/b", {"c": 1, "d": 1}, {"c": 2, "d": 1}),
        ("/a", "/a/b", "/a", {"c": 1, "d": 1}, {"c": 2, "d": 1}),
        ("/", "/a/b", "/", {"c": 1, "d": 1}, {"c": 2, "d": 1}),
    ]


def test_descendants_are_notified_when_the_written_node_is_deleted(controller: Any) -> None:
    log: list = []
    controller.set_state("/a", {"b": {"c": 1}})
    controller.subscribe("/a/b/c", recorder(log, "c"))
    controller.del_state("/a")
    assert log == [("c", "/a/b/c", "/a/b/c", 1, None)]


def test_each_subscription_is_notified_at_most_once_per_write(controller: Any) -> None:
    calls: list = []
    cb = recorder(calls, "x")
    controller.subscribe("/a", cb)
    controller.subscribe("/a/b", cb)
    controller.set_state("/a/b", 1)
    assert [c[2] for c in calls] == ["/a/b", "/a"]  # once per subscribed path


def test_stop_bubbling_stops_the_ancestors_above_it(controller: Any) -> None:
    log: list = []

    def nested_handler(event: Any) -> None:
        log.append("nested")
        event.stop_bubbling()

    controller.subscribe("/", lambda e: log.append("root"))
    controller.subscribe("/deep", lambda e: log.append("deep"))
    controller.subscribe("/deep/nested/path", nested_handler)
    controller.subscribe("/deep/nested/path", lambda e: log.append("sibling"))
    controller.set_state("/deep/nested/path", 1)
    assert log == ["nested", "sibling"]
    log.clear()
    controller.set_state("/deep/other", 1)
    assert log == ["deep", "root"]


def test_stop_bubbling_does_not_stop_derivations_or_tracked_functions(controller: Any) -> None:
    runs: list = []
    controller.subscribe("/a/b", lambda e: e.stop_bubbling())
    controller.derive("/copy", "/a", lambda a: a)
    controller.track(lambda e: runs.append(1) or e.get_state("/a"))
    controller.set_state("/a/b", 5)
    assert controller.get_state("/copy") == {"b": 5}
    assert len(runs) == 2


def test_wildcards_match_exactly_one_segment(controller: Any) -> None:
    log: list = []
    controller.subscribe("/users/*/name", recorder(log, "w"))
    controller.set_state("/users/1/name", "Alice")
    controller.set_state("/users/2", {"name": "Bob", "age": 3})
    controller.set_state("/users/2/age", 4)
    controller.set_state("/users/1/name/x", 1) if False else None
    assert [(c[1], c[3], c[4]) for c in log] == [
        ("/users/1/name", None, "Alice"),
        ("/users/2/name", None, "Bob"),
    ]


def test_a_wildcard_subscription_hears_each_concrete_path_below_a_dict_write(
    controller: Any,
) -> None:
    log: list = []
    controller.subscribe("/users/*/name", recorder(log, "w"))
    controller.set_state("/users", {"1": {"name": "A"}, "2": {"name": "B"}, "3": {"x": 1}})
    assert sorted(c[1] for c in log) == ["/users/1/name", "/users/2/name"]


def test_the_readme_wildcard_handler_reads_the_user_id(controller: Any) -> None:
    out = []

    def any_user_name_change(event: Any) -> None:
        user_id = event.emitting_path.parent.name
        out.append(f"user '{user_id}' changed name: {event.old_value} -> {event.new_value}")

    controller.subscribe("/users/*/name", any_user_name_change)
    controller.set_state("/users/7/name", "Ann")
    controller.set_state("/users/7/name", "Anna")
    assert out == ["user '7' changed name: None -> Ann", "user '7' changed name: Ann -> Anna"]


def test_payload_reaches_every_event_bubbled_ones_too(controller: Any) -> None:
    payloads = []
    for path in ["/", "/a", "/a/b", "/a/b/c"]:
        controller.subscribe(path, lambda e: payloads.append(e.payload))
    controller.set_state("/a/b", {"c": 1}, payload={"who": "me"})
    assert payloads == [{"who": "me"}] * 4
    payloads.clear()
    controller.ping("/a/b", payload="p")
    controller.del_state("/a", payload="d")
    assert payloads == ["p"] * 3 + ["d"] * 4


def test_event_fields_and_old_value_alias(controller: Any) -> None:
    got = []
    controller.set_state("/users/1", "a")
    controller.subscribe("/users", got.append)
    controller.set_state("/users/1", "b")
    e = got[0]
    assert str(e.emitting_path) == "/users/1" and str(e.current_path) == "/users"
    assert e.prev_value == e.old_value == "a" and e.new_value == "b"
    assert e.controller is getattr(controller, "inner", controller)
    assert "emitting_path='/users/1'" in repr(e)


def test_event_values_are_isolated_copies(controller: Any) -> None:
    got = []

    def mutate(event: Any) -> None:
        event.new_value["x"].append(99)
        got.append(event)

    controller.subscribe("/d", mutate)
    controller.subscribe("/d", lambda e: got.append(e.new_value))
    controller.set_state("/d", {"x": [1]})
    assert got[1] == {"x": [1]}
    assert controller.get_state("/d") == {"x": [1]}


def test_ping_notifies_the_path_and_ancestors_with_equal_prev_and_new(controller: Any) -> None:
    log: list = []
    controller.set_state("/users", {"1": "a"})
    controller.subscribe("/users", recorder(log, "u"))
    controller.subscribe("/", recorder(log, "root"))
    controller.subscribe("/users/1", recorder(log, "below"))
    controller.ping("/users")
    assert log == [
        ("u", "/users", "/users", {"1": "a"}, {"1": "a"}),
        ("root", "/users", "/", {"1": "a"}, {"1": "a"}),
    ]


def test_unsubscribe_really_stops_notifications(controller: Any) -> None:
    calls: list = []
    cb = calls.append
    controller.subscribe("/config", cb)
    controller.set_state("/config", 1)
    assert controller.unsubscribe("/config", cb) is True
    controller.set_state("/config", 2)
    assert len(calls) == 1
    assert controller.unsubscribe("/config", cb) is False


def test_subscribe_works_as_a_decorator(controller: Any) -> None:
    calls: list = []

    @controller.subscribe("/x")
    def on_x(event: Any) -> None:
        calls.append(event.new_value)

    controller.set_state("/x", 1)
    assert calls == [1] and callable(on_x)


def test_callback_ids_register_subscribe_and_remove(controller: Any) -> None:
    calls: list = []

    def basic_callback(event: Any) -> None:
        calls.append(("basic", event.new_value))

    def stats_handler(event: Any) -> None:
        calls.append(("stats", event.new_value))

    def new_stats_handler(event: Any) -> None:
        calls.append(("new", event.new_value))

    callback_id = controller.register_callback(basic_callback)
    controller.subscribe_by_id("/users", callback_id)
    assert (
        controller.register_callback(stats_handler, force_id="stats_callback") == "stats_callback"
    )
    controller.subscribe_by_id("/stats", "stats_callback")
    controller.set_state("/users", 1)
    controller.set_state("/stats", 1)
    with pytest.raises(CallbackIdError, match="replace=True"):
        controller.register_callback(new_stats_handler, force_id="stats_callback")
    controller.register_callback(new_stats_handler, force_id="stats_callback", replace=True)
    controller.set_state("/stats", 2)
    assert controller.unsubscribe_by_id("/users", callback_id) is True
    controller.set_state("/users", 2)
    assert controller.remove_callback("stats_callback") is True
    controller.set_state("/stats", 3)
    assert calls == [("basic", 1), ("stats", 1), ("new", 2)]


def test_registering_the_same_callback_twice_under_one_id_is_fine(controller: Any) -> None:
    def cb(e: Any) -> None: ...

    assert controller.register_callback(cb, force_id="x") == "x"
    assert controller.register_callback(cb, force_id="x") == "x"
    assert controller.subscribe("/a", cb) == "x"


def test_subscribe_by_unknown_id_raises_unless_ignore_missing(controller: Any) -> None:
    with pytest.raises(CallbackIdError, match="register_callback"):
        controller.subscribe_by_id("/a", "nobody")
    calls: list = []
    controller.subscribe_by_id("/a", "later", ignore_missing=True)
    controller.set_state("/a", 1)
    controller.register_callback(calls.append, force_id="later")
    controller.set_state("/a", 2)
    assert [e.new_value for e in calls] == [2]


def test_a_callback_unsubscribed_during_dispatch_is_not_called(controller: Any) -> None:
    calls: list = []

    def second(e: Any) -> None:
        calls.append("second")

    controller.subscribe("/a", lambda e: controller.unsubscribe("/a", second))
    controller.subscribe("/a", second)
    controller.set_state("/a", 1)
    assert calls == []


def test_on_changes_listeners_get_every_changed_root(controller: Any) -> None:
    from restate import MISSING

    seen: list = []
    remove = controller.on_changes(seen.append)
    controller.derive("/n2", "/n", lambda n: (n or 0) * 2)
    controller.set_state("/n", 2)
    controller.del_state("/n2")
    remove()
    controller.set_state("/n", 3)
    flat = [[(str(c.path), c.prev_value, c.new_value) for c in changes] for changes in seen]
    assert flat == [
        [("/n2", MISSING, 0)],
        [("/n", MISSING, 2), ("/n2", 0, 4)],
        [("/n2", 4, MISSING)],
    ]


def test_a_subscription_above_a_write_and_its_derivation_gets_its_own_values(
    controller: Any,
) -> None:
    controller.derive("/count", "/b", lambda b: len(b or {}))
    got: list = []
    controller.subscribe(
        "/", lambda e: got.append((str(e.emitting_path), e.prev_value, e.new_value))
    )
    controller.set_state("/b/a", 1)  # creates /b; /count follows
    assert got == [("/", {"count": 0}, {"b": {"a": 1}, "count": 1})]


def test_skip_notify_recomputes_derivations_but_calls_no_one(controller: Any) -> None:
    calls: list = []
    controller.derive("/double", "/n", lambda n: (n or 0) * 2)
    controller.subscribe("/n", calls.append)
    controller.subscribe("/double", calls.append)
    controller.track(lambda e: calls.append("tracked") or e.get_state("/n"))
    calls.clear()
    assert controller.set_state("/n", 2, skip_notify=True) is True
    assert controller.get_state("/double") == 4
    assert calls == []
    with controller.batch():
        controller.set_state("/n", 3, skip_notify=True)
    assert controller.get_state("/n") == 3
    assert controller.get_state("/double") == 4  # left out of the batch's changes
    assert calls == []


def test_a_batch_gives_a_subscription_its_own_values_when_another_root_also_changed(
    controller: Any,
) -> None:
    # Found by hypothesis: a change under /a was undone into /b's "before" value.
    log: list = []
    controller.set_state("/", {"b": {}, "a": None})
    controller.subscribe("/b", recorder(log, "b"))
    with controller.batch():
        controller.set_state("/a", {})
        controller.set_state("/a/a", None)
        controller.set_state("/b/a", None)
        controller.set_state("/b/b", None)
    assert log == [("b", "/b", "/b", {}, {"a": None, "b": None})]
    assert controller.get_state("/") == {"b": {"a": None, "b": None}, "a": {"a": None}}
