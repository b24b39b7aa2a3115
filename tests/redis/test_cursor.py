"""A follower's place in the change stream (sans-IO): what ``StreamCursor.take`` makes of the
entries of one XREAD -- the one-entry path a paced writer takes delivers exactly what the
burst path delivers, gaps resync, this process's own entries are skipped."""

from __future__ import annotations

import json
from typing import Any

import pytest

from restate.backends.redis.cursor import StreamCursor
from restate.missing import MISSING

ME, OTHER = "me", "other"


def change(path: str, prev: Any = MISSING, new: Any = MISSING) -> dict[str, Any]:
    out: dict[str, Any] = {"p": path}
    if prev is not MISSING:
        out["o"] = prev
    if new is not MISSING:
        out["n"] = new
    return out


def entry(seq: int, changes: list[dict[str, Any]], origin: str = OTHER, flat: bool = False):
    """One stream entry as the write script adds it (a RESP3 dict, or RESP2's flat list),
    with the write id's field that the follower does not read."""
    fields = {"o": origin, "s": str(seq), "c": json.dumps(changes), "w": "wid"}
    if flat:
        return f"{seq}-0", [x for pair in fields.items() for x in pair]
    return f"{seq}-0", fields


# one entry each, and what it delivers: a plain write, transactions, writes that change nothing
ENTRIES = {
    "a leaf written": ([change("/a", 1, 2)], [[("/a", 1, 2)]]),
    "a leaf created": ([change("/a", new={"x": [1]})], [[("/a", MISSING, {"x": [1]})]]),
    "a leaf deleted": ([change("/a", prev="gone")], [[("/a", "gone", MISSING)]]),
    "rewritten with the same value": ([change("/a", {"x": 1}, {"x": 1})], []),
    "1 over True (not the same)": ([change("/a", True, 1)], [[("/a", True, 1)]]),
    "unrelated paths": (
        [change("/a", 1, 2), change("/b", new=3)],
        [[("/a", 1, 2), ("/b", MISSING, 3)]],
    ),
    "a path and its child (one commit: one call)": (
        [change("/a", {"x": 1}, {"x": 2}), change("/a/x", 2, 3)],
        [[("/a", {"x": 1}, {"x": 2}), ("/a/x", 2, 3)]],
    ),
    "a path twice, back to where it was": ([change("/a", 1, 2), change("/a", 2, 1)], []),
    "nothing": ([], []),
}


@pytest.mark.parametrize("flat", [False, True], ids=["RESP3", "RESP2"])
@pytest.mark.parametrize("name", ENTRIES)
def test_one_entry_is_delivered_as_the_burst_path_delivers_it(name, flat):
    changes, expected = ENTRIES[name]
    one = entry(1, changes, flat=flat)
    own = entry(2, [change("/mine", new=1)], origin=ME, flat=flat)  # delivers nothing
    alone = StreamCursor(ME, "0-0", 0)
    got = alone.take([one])
    assert got == expected
    assert StreamCursor(ME, "0-0", 0).take([one, own]) == expected  # the burst path
    assert (alone.last_id, alone.seq) == ("1-0", 1)


def test_a_single_change_arrives_with_its_prev_and_new_values():
    cursor = StreamCursor(ME, "0-0", 4)
    assert cursor.take([entry(5, [change("/a/b", [1], {"c": None})])]) == [
        [("/a/b", [1], {"c": None})]
    ]
    assert (cursor.last_id, cursor.seq) == ("5-0", 5)


def test_a_value_rewritten_unchanged_delivers_nothing_but_advances_the_cursor():
    cursor = StreamCursor(ME, "0-0", 0)
    assert cursor.take([entry(1, [change("/a", {"x": 1}, {"x": 1})])]) == []
    assert (cursor.last_id, cursor.seq) == ("1-0", 1)


def test_an_entry_of_this_process_is_skipped_but_advances_the_cursor():
    cursor = StreamCursor(ME, "0-0", 0)
    assert cursor.take([entry(1, [change("/a", 1, 2)], origin=ME)]) == []
    assert (cursor.last_id, cursor.seq) == ("1-0", 1)
    assert cursor.take([entry(2, [change("/a", 2, 3)])]) == [[("/a", 2, 3)]]


@pytest.mark.parametrize("burst", [False, True], ids=["one entry", "in a burst"])
def test_a_gap_in_the_sequence_asks_for_a_resync_and_leaves_the_cursor_before_it(burst):
    cursor = StreamCursor(ME, "3-0", 3)
    entries = [entry(4, [change("/a", 1, 2)])] if burst else []
    entries.append(entry(9, [change("/a", 2, 3)]))
    out = cursor.take(entries)
    assert out[-1] is StreamCursor.RESYNC
    assert out[:-1] == ([[("/a", 1, 2)]] if burst else [])
    assert cursor.seq == (4 if burst else 3) and cursor.behind == cursor.seq


def test_a_sequence_number_that_went_back_resyncs_the_whole_tree():
    cursor = StreamCursor(ME, "7-0", 7)
    assert cursor.take([entry(1, [change("/a", 1, 2)])]) == [StreamCursor.RESYNC]
    assert cursor.behind is None  # nothing to re-read "since": the whole tree


def test_a_cursor_started_on_an_empty_stream_takes_any_first_sequence_number():
    cursor = StreamCursor(ME, "0-0", None)
    assert cursor.take([entry(12, [change("/a", new=1)])]) == [[("/a", MISSING, 1)]]
    assert cursor.seq == 12


def test_a_burst_merges_unrelated_paths_and_one_path_and_splits_at_a_related_one():
    cursor = StreamCursor(ME, "0-0", 0)
    out = cursor.take(
        [
            entry(1, [change("/a", 1, 2)]),
            entry(2, [change("/b", new=1)]),
            entry(3, [change("/a", 2, 3)]),  # the same path: one change from 1 to 3
            entry(4, [change("/b/c", prev=0)]),  # below /b: the next call
            entry(5, [change("/z", 5, 6)]),
        ]
    )
    assert out == [[("/a", 1, 3), ("/b", MISSING, 1)], [("/b/c", 0, MISSING), ("/z", 5, 6)]]
    assert cursor.seq == 5
