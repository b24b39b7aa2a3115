"""Reading a large subtree in chunks, so no single command blocks the server for long.

A subtree of up to ``BUDGET`` fields is read by one script (``READ``), which gives up with
``{'big'}`` beyond that. A bigger one is walked: the ``WALK`` script returns whole directories
until about ``BUDGET`` fields are read, a directory bigger than that is read with ``HSCAN``
(``CHUNK`` fields per call), and the JSON text is assembled here and parsed once.

A walk spans many commands, so it checks the tree's sequence number (``T:seq``, bumped by
every commit) before and after: unchanged means no commit happened in between and the result
is exactly one state of the tree. After ``ATTEMPTS`` walks spoiled by concurrent commits, the
walk takes a lease on the subtree (``leases.py``), which holds its writers back (not the
server, and not writers elsewhere) while it reads.
"""

from __future__ import annotations

import json
from collections import deque
from typing import TYPE_CHECKING, Any

from ...errors import BackendError
from ...missing import MISSING
from ...paths import Parts, parts_to_str, to_parts
from .codec import MARK, loads

if TYPE_CHECKING:
    from .core import Exchange, RedisCore

__all__ = [
    "BUDGET",
    "changed_since",
    "read_big",
    "resync",
    "walk_dirs",
    "walk_fields",
    "walk_text",
]

BUDGET = 2000  # fields per script: about 1 ms of server time
CHUNK = 500  # fields per HSCAN call (about 1 ms of server time; more under load)
ATTEMPTS = 3
SINCE_READS = 256  # changed paths a resync reads one by one; past that, one walk of the tree
_key = json.JSONEncoder(ensure_ascii=False).encode


def read_big(core: RedisCore, parts: Parts) -> Exchange[Any]:
    """The value of the large directory at ``parts``, read consistently in chunks."""
    for _ in range(ATTEMPTS):
        before = yield ("get", core.seq_key)
        text = yield from walk_text(core, parts)
        if text is None or (yield ("get", core.seq_key)) == before:
            return loads(text)
    txn = core.begin()  # not renewed: the seq check below tells if its lease ran out
    try:
        yield from txn.ask(core, parts, "none")
        before = yield ("get", core.seq_key)
        text = yield from walk_text(core, parts)
        if (yield ("get", core.seq_key)) != before:
            raise BackendError(
                f"could not read {parts_to_str(parts)!r} of {core.keyspace!r} consistently: "
                f"it took longer than lease_timeout under constant writes; retry"
            )
        return loads(text)
    finally:
        yield from txn.release()


def resync(core: RedisCore) -> Exchange[tuple[str, int, Any]]:
    """The stream position (last entry id, sequence number) and the whole tree at it."""
    for _ in range(ATTEMPTS):
        last_id, seq = yield ("eval", "position", [])
        reply = yield ("eval", "read", ["/", str(BUDGET)])
        text = (yield from walk_text(core, ())) if isinstance(reply, list) else reply
        if (yield ("get", core.seq_key)) == seq:
            return last_id, int(seq), loads(text)
    raise BackendError(f"could not read {core.keyspace!r} consistently under constant writes")


def changed_since(core: RedisCore, seq: int) -> Exchange[tuple[str, int, Changed] | None]:
    """The stream position and, for each path changed after sequence number ``seq`` (the
    topmost of related ones), its value now (``MISSING``: deleted) -- from ``T:since``, which
    the write script keeps (scripts.py, ``remember``). None when it cannot tell: paths were
    dropped from it past ``seq`` (``T:floor``), or the sequence went back (data lost).

    The reads are one state when no commit came in between (the sequence number is checked
    after them). After ``ATTEMPTS`` spoiled by constant writes, what was read is returned with
    the position from *before* the reads: the stream then delivers the commits made meanwhile
    again, as ordinary changes (a value read may already be one of theirs), so nothing is
    missed and a resync never livelocks."""
    for attempt in range(ATTEMPTS):
        last_id, now = yield ("eval", "position", [])
        floor = yield ("get", f"{core.keyspace}:floor")
        if int(now) < seq or (floor is not None and int(floor) > seq):
            return None
        paths = yield ("zrangebyscore", f"{core.keyspace}:since", f"({seq}", "+inf")
        tops = topmost(paths)
        if len(tops) > SINCE_READS or () in tops:
            reply = yield ("eval", "read", ["/", str(BUDGET)])
            text = (yield from walk_text(core, ())) if isinstance(reply, list) else reply
            tree = loads(text)
            found = [(parts, _pick(tree, parts)) for parts in tops]
        else:
            found = []
            for parts in tops:
                found.append((parts, (yield from core.read(parts))))
        if (yield ("get", core.seq_key)) == now or attempt == ATTEMPTS - 1:
            return last_id, int(now), [(parts_to_str(parts), value) for parts, value in found]
    raise AssertionError("unreachable")  # pragma: no cover


Changed = list[tuple[str, Any]]


def topmost(paths: list[str]) -> list[Parts]:
    """The paths none of whose ancestors is among them, as parts, in order."""
    out: list[Parts] = []
    for parts in sorted(to_parts(p) for p in paths):  # an ancestor sorts right before
        if not out or parts[: len(out[-1])] != out[-1]:
            out.append(parts)
    return out


def _pick(tree: Any, parts: Parts) -> Any:
    node = tree
    for name in parts:
        if type(node) is not dict or name not in node:
            return MISSING
        node = node[name]
    return node


def walk_text(core: RedisCore, parts: Parts) -> Exchange[str | None]:
    """The JSON text of the directory at ``parts`` (None when it is missing), read with
    bounded commands; consistent only when nothing commits meanwhile (see ``read_big``)."""
    fields = yield from walk_fields(core, parts)
    return None if fields is None else _assemble(fields, parts_to_str(parts))


def walk_dirs(core: RedisCore, parts: Parts) -> Exchange[tuple[str | None, list[str]]]:
    """``walk_text`` and the paths of the directories it read (big.py removes them)."""
    fields = yield from walk_fields(core, parts)
    if fields is None:
        return None, []
    return _assemble(fields, parts_to_str(parts)), list(fields)


def walk_fields(core: RedisCore, parts: Parts) -> Exchange[dict[str, dict[str, str]] | None]:
    """The fields of every directory of the subtree at ``parts``, by path (None: missing)."""
    top = parts_to_str(parts)
    if parts:
        parent = core.hash_key(parts[:-1])
        if (yield ("hget", parent, parts[-1])) != MARK:
            return None  # gone (or turned into a leaf) since READ said it was big
    fields: dict[str, dict[str, str]] = {}
    pending = deque([top])
    while pending:
        batch = [pending.popleft() for _ in range(min(len(pending), 500))]
        reply = yield ("eval", "walk", [str(BUDGET), *batch])
        for entry in reply:
            path, flat = entry[0], entry[1:]
            if flat == [MARK + "big"]:
                found = yield from _scan(core, path)
            else:
                found = dict(zip(flat[::2], flat[1::2], strict=True))
            fields[path] = found
            pending.extend(_child(path, n) for n, v in found.items() if v == MARK)
        pending.extendleft(reversed(batch[len(reply) :]))
    return fields


def _scan(core: RedisCore, path: str) -> Exchange[dict[str, str]]:
    found: dict[str, str] = {}
    cursor: Any = 0
    while True:
        cursor, chunk = yield ("hscan", core.dir_key(path), cursor, CHUNK)
        found.update(chunk)
        if int(cursor) == 0:
            return found


def _child(path: str, name: str) -> str:
    return f"/{name}" if path == "/" else f"{path}/{name}"


def _assemble(fields: dict[str, dict[str, str]], path: str) -> str:
    items = []
    for name, value in fields.get(path, {}).items():
        text = _assemble(fields, _child(path, name)) if value == MARK else value
        items.append(f"{_key(name)}:{text}")
    return "{" + ",".join(items) + "}"
