"""A batch that writes a path and a sibling's children reports each subscription's own values.

Found by tests/test_tree_model.py's property test: the before-value of a subscription reached
by several writes was rebuilt from every write of the batch, and a write to a sibling (``/a``
next to ``/b``) was undone *into* ``/b`` -- an IndexError, or a wrong old value.
"""

from __future__ import annotations

from restate import ControllerSync, SQLiteBackend


def test_a_batch_writing_a_sibling_and_two_children_gives_one_event_with_the_old_dict(tmp_path):
    c = ControllerSync(SQLiteBackend(str(tmp_path / "state.db")))
    c.set_state("/", {"b": {}})
    events = []
    c.subscribe("/b", lambda e: events.append((e.prev_value, e.new_value)))

    with c.batch():
        c.set_state("/a", None)
        c.set_state("/b/a", None)
        c.set_state("/b/b", None)

    assert events == [({}, {"a": None, "b": None})]
    assert c.get_state("/") == {"a": None, "b": {"a": None, "b": None}}
