"""A resync's reads, step by step against a scripted server (the sans-IO operation of walk.py):
consistent when nothing commits meanwhile, and never stuck under constant writes."""

from __future__ import annotations

from typing import Any

from restate.backends.redis.core import RedisCore
from restate.backends.redis.driving import drive
from restate.backends.redis.walk import ATTEMPTS, changed_since, topmost


class Server:
    """Answers a resync's commands; ``writer`` commits once between each read and check."""

    def __init__(self, writer: bool) -> None:
        self.seq, self.writer, self.positions = 10, writer, 0

    def run(self, command: tuple[Any, ...]) -> Any:
        kind = command[0]
        if kind == "eval" and command[1] == "position":
            self.positions += 1
            return [f"{self.seq}-0", str(self.seq)]
        if kind == "get" and command[1].endswith(":floor"):
            return "3"
        if kind == "zrangebyscore":
            return ["/a/x", "/b", "/a"]
        if kind == "eval" and command[1] == "read":
            return f'"{command[2][0]} at {self.seq}"'
        if kind == "get" and command[1].endswith(":seq"):
            if self.writer:
                self.seq += 1  # a commit landed while the values were read
            return str(self.seq)
        raise AssertionError(f"unexpected {command}")


def test_a_resync_with_no_commit_meanwhile_reads_once_at_one_position():
    server = Server(writer=False)
    last_id, seq, found = drive(changed_since(RedisCore("t", 10, 1.0, 1.0), 5), server.run)
    assert (last_id, seq, server.positions) == ("10-0", 10, 1)
    assert found == [("/a", "/a at 10"), ("/b", "/b at 10")]  # /a/x is inside /a


def test_a_resync_under_constant_writes_ends_positioned_before_its_last_reads():
    server = Server(writer=True)
    last_id, seq, found = drive(changed_since(RedisCore("t", 10, 1.0, 1.0), 5), server.run)
    assert found == [("/a", f"/a at {seq}"), ("/b", f"/b at {seq}")]  # read after that position
    assert server.positions == ATTEMPTS  # it tried for one state, then took what it read
    assert seq == 10 + ATTEMPTS - 1 and server.seq == seq + 1  # the stream replays that commit
    assert last_id == f"{seq}-0"


def test_a_follower_behind_the_floor_or_a_sequence_gone_back_gets_no_partial_resync():
    server = Server(writer=False)
    assert drive(changed_since(RedisCore("t", 10, 1.0, 1.0), 2), server.run) is None  # floor 3
    assert drive(changed_since(RedisCore("t", 10, 1.0, 1.0), 11), server.run) is None  # 10 < 11


def test_topmost_keeps_the_highest_of_related_paths_only():
    assert topmost(["/a-b", "/a/x", "/a", "/c/d", "/c/d/e", "/ab"]) == [
        ("a",), ("a-b",), ("ab",), ("c", "d")
    ]  # fmt: skip
