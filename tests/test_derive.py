"""docs/semantics.md §4: derive, derive_many, glitch-free order, cycles, runaway loops, track()."""

from __future__ import annotations

from typing import Any

import pytest

from restate import CycleError, DeriveData
from tests.conftest import settle


def test_derive_writes_now_and_after_every_change_of_its_source(controller: Any) -> None:
    controller.derive(
        dest="/cart/total",
        source="/cart/items",
        transform=lambda items: sum(item["price"] for item in items or []),
    )
    assert controller.get_state("/cart/total") == 0
    controller.set_state(
        "/cart/items", [{"name": "Book", "price": 10}, {"name": "Pen", "price": 2}]
    )
    assert controller.get_state("/cart/total") == 12


def test_derive_reacts_to_writes_below_and_above_its_source(controller: Any) -> None:
    controller.set_state("/users", {"1": {"role": "admin"}})
    controller.derive(
        "/stats/admins",
        "/users",
        lambda users: sum(u["role"] == "admin" for u in (users or {}).values()),
    )
    controller.set_state("/users/2", {"role": "admin"})
    assert controller.get_state("/stats/admins") == 2
    controller.set_state("/", {"users": {}, "stats": {}})
    assert controller.get_state("/stats/admins") == 0


def test_derive_does_not_recompute_when_an_unrelated_sibling_changes(controller: Any) -> None:
    calls: list = []
    controller.set_state("/a", {"x": 1, "y": 1})
    controller.derive("/out", "/a/x", lambda v: calls.append(v) or v)
    controller.set_state("/a", {"x": 1, "y": 2})
    assert calls == [1]


def test_diamond_recomputes_the_join_exactly_once_with_settled_inputs(controller: Any) -> None:
    seen: list = []
    controller.set_state("/a", 1)
    controller.derive("/b", "/a", lambda a: a + 1)
    controller.derive("/c", "/a", lambda a: a * 10)

    def join(data: DeriveData) -> int:
        seen.append((data.b, data.c))
        return data.b + data.c

    controller.derive_many("/d", ["/b", "/c"], join)
    seen.clear()
    controller.set_state("/a", 2)
    assert seen == [(3, 20)]
    assert controller.get_state("/d") == 23


def test_subscribers_never_see_a_derived_value_out_of_date(controller: Any) -> None:
    seen: list = []
    controller.set_state("/a", 1)
    controller.derive("/b", "/a", lambda a: a * 2)

    def check(e: Any) -> Any:
        async def read() -> None:
            seen.append((await settle(e.get_state("/a")), await settle(e.get_state("/b"))))

        return read()

    controller.subscribe("/a", check)
    controller.subscribe("/b", check)
    controller.set_state("/a", 5)
    assert seen == [(5, 10), (5, 10)]


def test_a_chain_of_fifty_derivations_settles_in_one_write(controller: Any) -> None:
    controller.set_state("/n0", 0)
    for i in range(50):
        controller.derive(f"/n{i + 1}", f"/n{i}", lambda v: v + 1)
    controller.set_state("/n0", 100)
    assert controller.get_state("/n50") == 150


def test_derive_many_passes_derive_data(controller: Any) -> None:
    def aggregate_stats(data: DeriveData) -> dict:
        users = data.get("users")
        posts = data.get("posts")
        comments = data.get("comments")
        return {
            "user_count": len(users),
            "post_count": len(posts),
            "comment_count": len(comments),
            "avg_comments_per_post": (len(comments) / len(posts) if posts else 0),
        }

    controller.set_state("/users", {"1": {}, "2": {}})
    controller.set_state("/posts", {"p": {}})
    controller.set_state("/comments", {"c1": {}, "c2": {}, "c3": {}})
    controller.derive_many(
        dest="/stats", sources=["/users", "/posts", "/comments"], transform=aggregate_stats
    )
    assert controller.get_state("/stats") == {
        "user_count": 2,
        "post_count": 1,
        "comment_count": 3,
        "avg_comments_per_post": 3.0,
    }


def test_derive_data_reads_attributes_items_and_paths_below_sources() -> None:
    data = DeriveData({("users",): {"1": {"name": "A"}}, ("config", "colors"): {"p": 1}})
    assert data.users == {"1": {"name": "A"}}
    assert data["/users/1/name"] == "A"
    assert data.get("config/colors/p") == 1
    assert data.colors == {"p": 1}
    with pytest.raises(AttributeError, match="sources: /users, /config/colors"):
        _ = data.nope
    assert len(data) == 2


def test_deriving_to_the_same_dest_replaces_the_derivation(controller: Any) -> None:
    controller.set_state("/a", 1)
    controller.derive("/out", "/a", lambda a: a + 1)
    controller.derive("/out", "/a", lambda a: a + 100)
    controller.set_state("/a", 2)
    assert controller.get_state("/out") == 102
    assert len(controller.derivations()) == 1


def test_underive_stops_updates_and_keeps_the_last_value(controller: Any) -> None:
    controller.set_state("/a", 1)
    controller.derive("/out", "/a", lambda a: a)
    assert controller.underive("/out") is True
    controller.set_state("/a", 2)
    assert controller.get_state("/out") == 1
    assert controller.underive("/out") is False


@pytest.mark.parametrize(
    ("dest", "source"),
    [("/a", "/a"), ("/a/b", "/a"), ("/a", "/a/b")],
)
def test_a_derivation_overlapping_its_own_source_is_a_cycle(
    controller: Any, dest: str, source: str
) -> None:
    with pytest.raises(CycleError, match="its own source"):
        controller.derive(dest, source, lambda v: v)
    assert controller.derivations() == []
    assert controller.get_state("/") == {}


def test_a_transitive_cycle_is_refused_naming_the_chain(controller: Any) -> None:
    controller.set_state("/a", 1)
    controller.derive("/b", "/a", lambda v: v)
    controller.derive("/c", "/b", lambda v: v)
    before = controller.get_state("/")
    with pytest.raises(CycleError, match="/a -> /b -> /c -> /a"):
        controller.derive("/a", "/c", lambda v: v)
    assert [str(d.dest) for d in controller.derivations()] == ["/b", "/c"]
    assert controller.get_state("/") == before


def test_a_failing_transform_at_registration_registers_nothing(controller: Any) -> None:
    with pytest.raises(ZeroDivisionError):
        controller.derive("/out", "/a", lambda a: 1 / 0)
    assert controller.derivations() == [] and controller.get_state("/") == {}


def test_a_failing_transform_later_keeps_the_write_and_raises_to_the_writer(
    controller: Any,
) -> None:
    controller.set_state("/a", 1)
    controller.derive("/inv", "/a", lambda a: 1 / a)
    controller.derive("/other", "/a", lambda a: a + 1)
    with pytest.raises(ZeroDivisionError) as info:
        controller.set_state("/a", 0)
    assert "while deriving '/inv'" in "".join(getattr(info.value, "__notes__", []))
    assert controller.get_state("/a") == 0
    assert controller.get_state("/inv") == 1.0
    assert controller.get_state("/other") == 1


def test_a_self_triggering_subscriber_stops_with_cycle_error(controller: Any) -> None:
    controller.subscribe("/n", lambda e: e.set_state("/n", e.new_value + 1))
    with pytest.raises(CycleError, match=r"after 100 rounds.*/n"):
        controller.set_state("/n", 0)
    assert controller.get_state("/n") == 100


def test_max_rounds_is_configurable(make_controller: Any) -> None:
    c = make_controller(max_rounds=5)
    c.subscribe("/n", lambda e: e.set_state("/n", e.new_value + 1))
    with pytest.raises(CycleError, match="after 5 rounds"):
        c.set_state("/n", 0)
    c.set_state("/m", 1)  # the controller still works afterwards


def test_ping_pong_between_two_subscribers_stops_with_cycle_error(controller: Any) -> None:
    controller.subscribe("/a", lambda e: e.set_state("/b", e.new_value + 1))
    controller.subscribe("/b", lambda e: e.set_state("/a", e.new_value + 1))
    with pytest.raises(
        CycleError, match=r"paths still changing: /[ab]; callbacks involved: .*<lambda>"
    ):
        controller.set_state("/a", 0)


def test_track_runs_now_and_reruns_when_a_read_path_changes(controller: Any) -> None:
    seen: list = []

    async def compute(event: Any) -> None:
        seen.append((str(event.emitting_path), await settle(event.get_state("/x"))))

    controller.track(compute)
    controller.set_state("/x", 1)
    controller.set_state("/unrelated", 1)
    controller.set_state("/x", 1)
    assert seen == [("/", None), ("/x", 1)]


def test_track_replaces_its_dependencies_on_each_run(controller: Any) -> None:
    runs: list = []

    async def feature_example(event: Any) -> None:
        runs.append(1)
        if await settle(event.get_state("/features/legacy")):
            await settle(event.get_state("/legacy/data"))
        else:
            await settle(event.get_state("/new/data"))

    tid = controller.track(feature_example)
    controller.set_state("/legacy/data", 1)
    assert len(runs) == 1
    controller.set_state("/features/legacy", True)
    controller.set_state("/legacy/data", 2)
    controller.set_state("/new/data", 2)
    assert len(runs) == 4 - 1
    paths = {str(p) for p in controller.trackers()[0].paths}
    assert paths == {"/features/legacy", "/legacy/data"}
    assert controller.untrack(tid) is True
    controller.set_state("/legacy/data", 3)
    assert len(runs) == 3


def test_track_reruns_once_per_write_even_when_several_read_paths_change(
    controller: Any,
) -> None:
    runs: list = []

    async def fn(e: Any) -> None:
        runs.append((await settle(e.get_state("/a")), await settle(e.get_state("/b"))))

    controller.track(fn)
    controller.set_state("/", {"a": 1, "b": 2})
    assert runs == [(None, None), (1, 2)]


def test_the_readme_dashboard_tracker_runs_without_error(controller: Any) -> None:
    async def compute_dashboard_stats(event: Any) -> dict:
        users = await settle(event.get_state("/users")) or {}
        active_posts = await settle(event.get_state("/posts/active")) or []
        settings = await settle(event.get_state("/settings")) or {}
        return {
            "total_users": len(users),
            "active_posts": len(active_posts),
            "is_public": settings.get("public", False),
        }

    controller.track(compute_dashboard_stats)
    controller.set_state("/settings/public", True)
    assert [str(p) for p in sorted(controller.trackers()[0].paths)] == [
        "/posts/active",
        "/settings",
        "/users",
    ]
