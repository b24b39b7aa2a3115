"""The StateTree message protocol, kernel side, against a real ControllerSync (no browser)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from restate import ControllerSync
from restate_nb.tree_protocol import PAGE
from restate_nb.tree_widget import MAX_JSON, StateTree, TreeProtocol

Message = dict[str, Any]


class Outbox:
    """Collects what a session sends, from any thread, and waits for messages."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._cond = threading.Condition()

    def __call__(self, msg: Message) -> None:
        json.dumps(msg)  # every message must be JSON-able
        with self._cond:
            self.messages.append(msg)
            self._cond.notify_all()

    def of_type(self, kind: str) -> list[Message]:
        with self._cond:
            return [m for m in self.messages if m["type"] == kind]

    # Deadlines, not expectations: a passing test never waits this long, a busy machine may
    # need far more than the usual milliseconds.
    def wait_for(self, pred: Callable[[Message], bool], timeout: float = 30.0) -> Message:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for m in self.messages:
                    if pred(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching message in {self.messages!r}")
                self._cond.wait(left)

    def next_diff(self, timeout: float = 30.0) -> Message:
        """The first diff sent after this call."""
        start = len(self.messages)
        return self.wait_for(
            lambda m: m["type"] == "diff" and self.messages.index(m) >= start, timeout
        )

    def quiet(self, for_s: float = 0.2) -> None:
        """Wait until nothing was sent for ``for_s`` seconds."""
        while True:
            n = len(self.messages)
            time.sleep(for_s)
            if len(self.messages) == n:
                return


@pytest.fixture
def controller() -> ControllerSync:
    c = ControllerSync()
    c.set_state("/", {"users": {"1": {"name": "ada"}, "2": {"name": "bob"}}, "n": 1, "s": "x"})
    return c


@pytest.fixture
def open_session(
    controller: ControllerSync,
) -> Iterator[Callable[..., tuple[TreeProtocol, Outbox]]]:
    sessions: list[TreeProtocol] = []

    def make(path: str = "/", **kw: Any) -> tuple[TreeProtocol, Outbox]:
        out = Outbox()
        session = TreeProtocol(controller, path, out, **kw)
        sessions.append(session)
        return session, out

    yield make
    for s in sessions:
        s.close()


def ask(session: TreeProtocol, out: Outbox, msg: Message) -> Message:
    """Send ``msg`` as the front end would and return the reply to it."""
    req = f"req-{id(msg)}-{time.monotonic_ns()}"
    session.handle({**msg, "req": req})
    return out.wait_for(lambda m: m.get("req") == req, timeout=1)


def children_of(node: Message) -> dict[str, Message]:
    return {c["key"]: c for c in node["children"]}


def ops_by_path(diff: Message) -> dict[str, Message]:
    return {op["path"]: op for op in diff["ops"]}


# -- snapshot and lazy loading ---------------------------------------------------------------


def test_hello_sends_a_snapshot_holding_only_the_expanded_root_and_its_children(open_session):
    session, out = open_session()
    snap = ask(session, out, {"type": "hello"})
    assert snap["type"] == "snapshot"
    root = snap["root"]
    assert (root["path"], root["kind"], root["count"]) == ("/", "dict", 3)
    kids = children_of(root)
    assert kids["users"] == {"key": "users", "path": "/users", "kind": "dict", "count": 2}
    assert (kids["n"]["kind"], kids["n"]["json"], kids["n"]["type"]) == ("leaf", "1", "number")
    assert kids["s"]["json"] == '"x"' and kids["s"]["type"] == "string"


def test_expanding_a_dict_loads_its_children_one_page_at_a_time(controller, open_session):
    controller.set_state("/big", {f"k{i}": i for i in range(10)})
    session, out = open_session(page=4)
    first = ask(session, out, {"type": "expand", "path": "/big", "offset": 0})
    assert (first["type"], first["count"], first["offset"]) == ("children", 10, 0)
    assert [c["key"] for c in first["children"]] == ["k0", "k1", "k2", "k3"]
    second = ask(session, out, {"type": "expand", "path": "/big", "offset": 8})
    assert [c["key"] for c in second["children"]] == ["k8", "k9"]


def test_an_expanded_dict_appears_with_its_children_in_the_next_snapshot(open_session):
    session, out = open_session()
    ask(session, out, {"type": "expand", "path": "/users", "offset": 0})
    ask(session, out, {"type": "expand", "path": "/users/1", "offset": 0})
    root = ask(session, out, {"type": "hello"})["root"]
    users = children_of(root)["users"]
    assert children_of(children_of(users)["1"])["name"]["json"] == '"ada"'
    assert "children" not in children_of(users)["2"]


def test_expanding_a_leaf_is_an_error_shown_at_that_node(open_session):
    session, out = open_session()
    reply = ask(session, out, {"type": "expand", "path": "/n", "offset": 0})
    assert reply["type"] == "error" and reply["path"] == "/n" and "not a dict" in reply["message"]


def test_a_long_leaf_is_truncated_in_records_and_read_in_full_for_editing(controller, open_session):
    long = "x" * (MAX_JSON + 100)
    controller.set_state("/long", long)
    session, out = open_session()
    rec = children_of(ask(session, out, {"type": "hello"})["root"])["long"]
    assert rec["truncated"] and len(rec["json"]) == MAX_JSON
    full = ask(session, out, {"type": "read", "path": "/long"})
    assert json.loads(full["json"]) == long


def test_a_value_that_is_not_json_is_shown_as_repr_and_flagged(controller, open_session):
    controller.set_state("/obj", (1, 2))
    controller.set_state("/thing", object)
    session, out = open_session()
    kids = children_of(ask(session, out, {"type": "hello"})["root"])
    assert kids["obj"]["json"] == "[1, 2]" and not kids["obj"]["exact"]
    assert "class 'object'" in kids["thing"]["json"] and not kids["thing"]["exact"]


# -- diffs -----------------------------------------------------------------------------------


def test_a_write_to_a_visible_leaf_sends_only_that_leaf(controller, open_session):
    session, out = open_session()
    ask(session, out, {"type": "hello"})
    out.quiet(0.1)
    controller.set_state("/n", 42)
    diff = out.next_diff()
    assert diff["ops"] == [
        {"op": "put", "path": "/n", "node": {**diff["ops"][0]["node"], "json": "42"}}
    ]
    assert diff["flash"] == ["/n"]


def test_a_write_inside_a_collapsed_dict_flashes_that_dict_and_sends_none_of_its_content(
    controller, open_session
):
    session, out = open_session()
    ask(session, out, {"type": "hello"})
    out.quiet(0.1)
    controller.set_state("/users/1/name", "ada lovelace")
    diff = out.next_diff()
    assert diff["ops"] == [] and diff["flash"] == ["/users"]


def test_creating_a_key_in_a_collapsed_dict_updates_only_its_count(controller, open_session):
    session, out = open_session()
    ask(session, out, {"type": "hello"})
    out.quiet(0.1)
    controller.set_state("/users/3", {"name": "cy"})
    diff = out.next_diff()
    assert [(op["op"], op["path"], op["node"]["count"]) for op in diff["ops"]] == [
        ("head", "/users", 3)
    ]
    assert "children" not in diff["ops"][0]["node"]


def test_creating_and_deleting_a_visible_key_sends_the_node_and_the_parent_count(
    controller, open_session
):
    session, out = open_session()
    ask(session, out, {"type": "expand", "path": "/users", "offset": 0})
    out.quiet(0.1)
    controller.set_state("/users/3", {"name": "cy"})
    ops = ops_by_path(out.next_diff())
    assert ops["/users/3"]["op"] == "put" and ops["/users/3"]["node"]["count"] == 1
    assert ops["/users"] == {"op": "head", "path": "/users", "node": ops["/users"]["node"]}
    assert ops["/users"]["node"]["count"] == 3
    out.quiet(0.1)
    controller.del_state("/users/1")
    ops = ops_by_path(out.next_diff())
    assert ops["/users/1"] == {"op": "remove", "path": "/users/1"}
    assert ops["/users"]["node"]["count"] == 2


def test_several_keys_created_in_one_batch_send_one_parent_count_after_the_nodes(
    controller, open_session
):
    session, out = open_session()
    ask(session, out, {"type": "expand", "path": "/users", "offset": 0})
    out.quiet(0.1)
    with controller.batch():
        for key in "345":
            controller.set_state(f"/users/{key}", key)
    diff = out.next_diff()
    assert [(op["op"], op["path"]) for op in diff["ops"]] == [
        ("put", "/users/3"),
        ("put", "/users/4"),
        ("put", "/users/5"),
        ("head", "/users"),
    ]
    assert diff["ops"][-1]["node"]["count"] == 5


def test_replacing_an_expanded_dict_sends_its_visible_subtree_and_flashes_changed_children(
    controller, open_session
):
    session, out = open_session()
    ask(session, out, {"type": "expand", "path": "/users", "offset": 0})
    out.quiet(0.1)
    controller.set_state("/users", {"1": {"name": "ada"}, "9": 9})
    diff = out.next_diff()
    (op,) = diff["ops"]
    assert op["op"] == "put" and op["path"] == "/users"
    assert set(children_of(op["node"])) == {"1", "9"}
    assert "/users" in diff["flash"]


def test_collapsing_a_dict_stops_sending_its_content(controller, open_session):
    session, out = open_session()
    ask(session, out, {"type": "expand", "path": "/users", "offset": 0})
    session.handle({"type": "collapse", "path": "/users", "req": "c"})
    out.quiet(0.1)
    controller.set_state("/users/1", "gone")
    diff = out.next_diff()
    assert diff["ops"] == [] and diff["flash"] == ["/users"]


def test_a_view_of_a_subtree_ignores_changes_outside_it_and_follows_a_root_rewrite(
    controller, open_session
):
    session, out = open_session("/users")
    snap = ask(session, out, {"type": "hello"})
    assert snap["root"]["path"] == "/users" and set(children_of(snap["root"])) == {"1", "2"}
    out.quiet(0.1)
    seen = len(out.of_type("diff"))
    controller.set_state("/n", 5)
    out.quiet(0.15)
    assert len(out.of_type("diff")) == seen
    controller.set_state("/", {"users": {"7": 7}})
    (op,) = out.next_diff()["ops"]
    assert op["path"] == "/users" and set(children_of(op["node"])) == {"7"}
    controller.del_state("/users")
    (op,) = out.next_diff()["ops"]
    assert op["node"] == {"key": "users", "path": "/users", "kind": "missing"}


def test_a_burst_of_writes_is_coalesced_to_at_most_20_diffs_a_second_ending_on_the_last_value(
    controller, open_session
):
    session, out = open_session()
    ask(session, out, {"type": "hello"})
    out.quiet(0.1)
    start, writes = time.monotonic(), 0
    while time.monotonic() - start < 0.5:
        controller.set_state("/n", writes)
        writes += 1
    elapsed = time.monotonic() - start
    out.quiet(0.2)
    diffs = out.of_type("diff")
    assert writes > 100
    assert 2 <= len(diffs) <= elapsed * 20 + 2
    sent = [m for m in out.messages if m["type"] == "diff"]
    assert ops_by_path(sent[-1])["/n"]["node"]["json"] == str(writes - 1)


def test_a_batch_changing_many_siblings_sends_their_parent_page_once(controller, open_session):
    controller.set_state("/big", {f"k{i}": i for i in range(400)})
    session, out = open_session(page=50)
    ask(session, out, {"type": "expand", "path": "/big", "offset": 0})
    out.quiet(0.1)
    with controller.batch():
        for i in range(400):
            controller.set_state(f"/big/k{i}", -i)
    diff = out.next_diff()
    (op,) = diff["ops"]
    assert op["op"] == "put" and op["path"] == "/big" and len(op["node"]["children"]) == 50
    assert op["node"]["children"][7]["json"] == "-7"
    assert diff["flash"] == ["/big"]


def test_a_slower_interval_sends_fewer_diffs(controller, open_session):
    _, out = open_session(interval=0.2)
    out.quiet(0.1)
    start = time.monotonic()
    for i in range(300):
        controller.set_state("/n", i)
        time.sleep(0.002)
    elapsed = time.monotonic() - start
    out.quiet(0.3)
    assert len(out.of_type("diff")) <= elapsed / 0.2 + 2


# -- edits from the front end ----------------------------------------------------------------


def test_set_writes_parsed_json_through_the_controller_so_subscribers_run(controller, open_session):
    events: list[Any] = []
    controller.subscribe("/n", lambda e: events.append(e.new_value))
    session, out = open_session()
    reply = ask(session, out, {"type": "set", "path": "/n", "json": '{"a": [1, 2]}'})
    assert reply == {"type": "ack", "path": "/n", "changed": True, "req": reply["req"]}
    assert controller.get_state("/n") == {"a": [1, 2]} and events == [{"a": [1, 2]}]
    same = ask(session, out, {"type": "set", "path": "/n", "json": '{"a": [1, 2]}'})
    assert same["changed"] is False


def test_invalid_json_is_reported_at_the_node_and_writes_nothing(controller, open_session):
    events: list[Any] = []
    controller.subscribe("/n", events.append)
    session, out = open_session()
    reply = ask(session, out, {"type": "set", "path": "/n", "json": "{oops"})
    assert reply["type"] == "error" and reply["path"] == "/n"
    assert reply["message"].startswith("ValueError: invalid JSON: ")
    assert controller.get_state("/n") == 1 and events == []


def test_writing_below_a_leaf_comes_back_as_an_error_and_changes_nothing(controller, open_session):
    session, out = open_session()
    before = controller.get_state("/")
    reply = ask(session, out, {"type": "add", "path": "/n", "key": "k", "json": "1"})
    assert reply["type"] == "error" and reply["message"].startswith("PathConflictError")
    reply = ask(session, out, {"type": "set", "path": "/s/deeper", "json": "1"})
    assert reply["type"] == "error" and reply["message"].startswith("PathConflictError")
    assert controller.get_state("/") == before


@pytest.mark.parametrize("key", ["a/b", "", "..", "*", 7, None])
def test_adding_a_bad_key_is_rejected_with_invalid_path_error(controller, open_session, key):
    session, out = open_session()
    before = controller.get_state("/")
    reply = ask(session, out, {"type": "add", "path": "/users", "key": key, "json": "1"})
    assert reply["type"] == "error" and reply["message"].startswith("InvalidPathError")
    assert controller.get_state("/") == before


def test_adding_an_existing_key_is_refused_so_nothing_is_overwritten(controller, open_session):
    session, out = open_session()
    reply = ask(session, out, {"type": "add", "path": "/users", "key": "1", "json": "0"})
    assert reply["type"] == "error" and "exists already" in reply["message"]
    assert controller.get_state("/users/1") == {"name": "ada"}


def test_adding_a_key_creates_it_and_the_diff_shows_it(controller, open_session):
    session, out = open_session()
    ask(session, out, {"type": "expand", "path": "/users", "offset": 0})
    out.quiet(0.1)
    reply = ask(session, out, {"type": "add", "path": "/users", "key": "3", "json": '"cy"'})
    assert reply["type"] == "ack" and reply["path"] == "/users/3"
    assert controller.get_state("/users/3") == "cy"
    assert ops_by_path(out.next_diff())["/users/3"]["node"]["json"] == '"cy"'


def test_delete_removes_the_node_and_its_subtree(controller, open_session):
    session, out = open_session()
    reply = ask(session, out, {"type": "delete", "path": "/users"})
    assert reply["type"] == "ack"
    assert controller.get_state("/users") is None
    assert ops_by_path(out.next_diff())["/users"] == {"op": "remove", "path": "/users"}


def test_a_failing_subscriber_is_reported_but_the_write_stays(controller, open_session):
    def boom(event: Any) -> None:
        raise RuntimeError("subscriber failed")

    controller.subscribe("/n", boom)
    session, out = open_session()
    reply = ask(session, out, {"type": "set", "path": "/n", "json": "2"})
    assert reply["type"] == "error" and "subscriber failed" in reply["message"]
    assert controller.get_state("/n") == 2


@pytest.mark.parametrize(
    "msg",
    [
        {"type": "nope"},
        {"type": "set", "path": "/a/../b", "json": "1"},
        {"type": "set", "path": "/n"},
        {"type": "expand"},
    ],
)
def test_malformed_requests_get_an_error_reply_and_change_nothing(controller, open_session, msg):
    session, out = open_session()
    before = controller.get_state("/")
    assert ask(session, out, msg)["type"] == "error"
    assert controller.get_state("/") == before


# -- marks ----------------------------------------------------------------------------------


def test_derived_and_tracked_paths_are_marked_with_their_sources(controller, open_session):
    controller.derive("/double", "/n", lambda n: n * 2)

    def shows_name(event: Any) -> None:
        controller.get_state("/users/1/name")

    controller.track(shows_name)
    session, out = open_session()
    marks = ask(session, out, {"type": "hello"})["marks"]
    assert marks["derived"] == {"/double": ["/n"]}
    assert marks["feeds"] == {"/n": ["/double"]}
    assert any("shows_name" in name for name in marks["tracked"]["/users/1/name"])


def test_a_tracker_is_named_by_its_payload_description(controller, open_session):
    class Cell:
        def describe(self) -> str:
            return "cell #2 [In[5]]"

    controller.track(lambda event: controller.get_state("/n"), payload=Cell())
    controller.track(lambda event: controller.get_state("/n"), payload="my reader")
    session, out = open_session()
    tracked = ask(session, out, {"type": "hello"})["marks"]["tracked"]
    assert sorted(tracked["/n"]) == ["cell #2 [In[5]]", "my reader"]


def test_marks_are_resent_when_derivations_change(controller, open_session):
    session, out = open_session()
    assert ask(session, out, {"type": "hello"})["marks"]["derived"] == {}
    controller.derive_many("/sum", ["/n", "/users"], lambda d: d.get("/n"))
    diff = out.wait_for(lambda m: m["type"] == "diff" and "marks" in m)
    assert diff["marks"]["derived"] == {"/sum": ["/n", "/users"]}


def test_marks_are_refreshed_while_idle_when_a_tracker_reads_without_writing(
    controller, open_session
):
    session, out = open_session(marks_poll=0.05)
    assert ask(session, out, {"type": "hello"})["marks"]["tracked"] == {}
    controller.track(lambda event: controller.get_state("/s"))
    diff = out.wait_for(lambda m: m["type"] == "diff" and "marks" in m)
    assert list(diff["marks"]["tracked"]) == ["/s"] and diff["ops"] == []


def test_an_async_controller_is_refused_with_a_clear_error():
    from restate import ControllerAsync

    with pytest.raises(TypeError, match="ControllerSync"):
        TreeProtocol(ControllerAsync(), "/", print)


# -- lifecycle and the widget ----------------------------------------------------------------


def test_close_unsubscribes_and_stops_the_flusher_thread(controller, open_session):
    session, out = open_session()
    session.close()
    assert not session._thread.is_alive()
    n = len(out.messages)
    controller.set_state("/n", 99)
    time.sleep(0.15)
    assert len(out.messages) == n


def test_the_widget_assets_are_local_files_without_network_imports():
    from restate_nb.tree_widget import STATIC

    assert StateTree._esm == (STATIC / "tree.js").read_text(encoding="utf-8")
    assert StateTree._css == (STATIC / "tree.css").read_text(encoding="utf-8")
    for asset in ("tree.js", "tree.css"):
        text = (STATIC / asset).read_text()
        assert not re.search(r"""(import|from)\s*\(?\s*["']https?:""", text)
        assert "@import" not in text


def test_the_widget_answers_front_end_messages_through_its_comm(controller):
    tree = StateTree(controller, "/users")
    sent: list[Message] = []
    tree.protocol._send = sent.append
    try:
        assert tree.path == "/users"
        tree._handle_custom_msg({"type": "hello", "req": "h"}, [])
        assert sent[-1]["type"] == "snapshot" and sent[-1]["req"] == "h"
        tree._handle_custom_msg({"type": "set", "path": "/users/2/name", "json": '"b"'}, [])
        assert controller.get_state("/users/2/name") == "b"
    finally:
        tree.close()
    assert tree.protocol.closed


def test_the_widget_rejects_an_invalid_path_before_opening_anything(controller):
    with pytest.raises(ValueError, match=r"\.\."):
        StateTree(controller, "/a/../b")


def test_the_widget_defaults_to_the_notebook_controller():
    import restate_nb

    tree = StateTree()
    try:
        assert tree.controller is restate_nb.get_controller()
    finally:
        tree.close()


# -- scale -----------------------------------------------------------------------------------


def snapshot_then_edit_100k_leaves(
    open_session: Any, controller: ControllerSync
) -> tuple[Message, Message, float, float]:
    """hello on a 100k-leaf tree, then expand + edit + diff: both replies and their seconds."""
    controller.set_state("/", {f"group{g}": {f"k{i}": i for i in range(100)} for g in range(1000)})
    session, out = open_session()
    start = time.perf_counter()
    snap = ask(session, out, {"type": "hello"})
    hello_s = time.perf_counter() - start
    out.quiet(0.1)
    start = time.perf_counter()
    ask(session, out, {"type": "expand", "path": "/group7", "offset": 0})
    controller.set_state("/group7/k3", "edited")
    diff = out.next_diff()
    return snap, diff, hello_s, time.perf_counter() - start


def test_a_snapshot_of_100k_leaves_sends_only_the_visible_page(open_session, controller):
    snap, diff, _, _ = snapshot_then_edit_100k_leaves(open_session, controller)
    assert len(snap["root"]["children"]) == PAGE and snap["root"]["count"] == 1000
    assert len(json.dumps(snap)) < 50_000
    assert ops_by_path(diff)["/group7/k3"]["node"]["json"] == '"edited"'


@pytest.mark.perf
def test_a_snapshot_of_100k_leaves_and_an_edit_take_milliseconds(open_session, controller):
    _, _, hello_s, edit_s = snapshot_then_edit_100k_leaves(open_session, controller)
    print(f"\n100k leaves: snapshot {hello_s * 1e3:.1f} ms, expand+edit+diff {edit_s * 1e3:.1f} ms")
    assert hello_s < 0.5 and edit_s < 0.1


# -- first paint from the published snapshot --------------------------------------------------


class Published:
    """What the protocol published (the widget's ``_snapshot`` trait), thread-safe."""

    def __init__(self) -> None:
        self.snapshots: list[Message] = []
        self.cond = threading.Condition()

    def __call__(self, snapshot: Message) -> None:
        json.dumps(snapshot)
        with self.cond:
            self.snapshots.append(snapshot)
            self.cond.notify_all()

    def wait_for(self, pred: Callable[[Message], bool], timeout: float = 3.0) -> Message:
        with self.cond:
            if not self.cond.wait_for(lambda: any(pred(s) for s in self.snapshots), timeout):
                raise AssertionError(f"no matching snapshot in {self.snapshots!r}")
            return next(s for s in reversed(self.snapshots) if pred(s))


def leaf_json(snapshot: Message, key: str) -> str:
    [node] = [c for c in snapshot["root"]["children"] if c["key"] == key]
    return str(node["json"])


def test_the_snapshot_is_published_at_creation_before_any_hello(open_session):
    published = Published()
    _session, out = open_session(publish=published)
    [first] = published.snapshots
    assert first["type"] == "snapshot" and first["seq"] == 0
    assert leaf_json(first, "n") == "1" and out.messages == []


def test_until_a_view_says_hello_every_diff_republishes_with_its_number(controller, open_session):
    published = Published()
    _session, out = open_session(publish=published, publish_every=60)
    controller.set_state("/n", 2)
    diff = out.next_diff()
    snap = published.wait_for(lambda s: s["seq"] == diff["seq"])
    assert diff["seq"] == 1 and leaf_json(snap, "n") == "2"
    controller.set_state("/n", 3)
    diff = out.next_diff()
    snap = published.wait_for(lambda s: s["seq"] == diff["seq"])
    assert diff["seq"] == 2 and leaf_json(snap, "n") == "3"


def test_after_hello_publication_is_throttled_and_catches_up_when_quiet(controller, open_session):
    published = Published()
    session, out = open_session(publish=published, publish_every=60, marks_poll=0.05)
    ask(session, out, {"type": "hello"})
    count = len(published.snapshots)
    controller.set_state("/n", 2)
    out.next_diff()
    controller.set_state("/n", 3)
    last = out.next_diff()
    # busy: no publication within publish_every; quiet: the next idle tick publishes once
    snap = published.wait_for(lambda s: s["seq"] == last["seq"])
    assert leaf_json(snap, "n") == "3"
    assert len(published.snapshots) <= count + 2


def test_flush_sends_pending_changes_and_publishes_at_once(controller, open_session):
    published = Published()
    session, out = open_session(publish=published, interval=60)
    controller.set_state("/n", 1)  # no change: nothing pending
    session._last_diff = time.monotonic()  # the interval would hold the next diff for 60 s
    controller.set_state("/s", "now")
    session.flush()
    [diff] = out.of_type("diff")
    assert diff["ops"][0]["path"] == "/s"
    assert leaf_json(published.snapshots[-1], "s") == '"now"'
    assert published.snapshots[-1]["seq"] == diff["seq"]


def test_the_widget_carries_its_first_paint_in_a_synced_trait(controller):
    tree = StateTree(controller, "/users")
    try:
        assert tree.trait_metadata("_snapshot", "sync") is True
        snap = tree._snapshot
        assert snap["root"]["path"] == "/users" and snap["seq"] == 0
        assert [c["key"] for c in snap["root"]["children"]] == ["1", "2"]
        controller.set_state("/users/3", {"name": "cy"})
        tree.protocol.flush()
        assert [c["key"] for c in tree._snapshot["root"]["children"]] == ["1", "2", "3"]
    finally:
        tree.close()


def test_closed_trees_release_the_controller_and_are_garbage_collected(controller):
    import gc
    import weakref

    listeners = len(controller._engine.listeners)
    threads = threading.active_count()
    refs = []
    for _ in range(200):
        tree = StateTree(controller, "/")
        refs.append(weakref.ref(tree))
        tree.close()
        del tree
    gc.collect()
    assert sum(r() is not None for r in refs) == 0
    assert len(controller._engine.listeners) == listeners
    assert threading.active_count() <= threads
