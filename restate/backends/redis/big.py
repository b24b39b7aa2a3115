"""Big plain writes and deletes in chunks, so no single command blocks the server for long.

A write or delete outside a transaction is one script (``APPLY``) while what it replaces and
what it writes stay under ``BIG`` fields (a few ms of server time). Beyond, it runs here:

1. a lease on the path (``leases.py``, renewed while this runs): other writers of the subtree,
   its ancestors and descendants wait in line; readers go on reading the old value;
2. the old value is read in bounded chunks (``walk.py``): the previous value of the stream
   entry, and the directories to remove;
3. the new value is staged in chunks of ``STAGE`` fields under ``T:s:<token>:<dir>``
   (invisible to readers, expiring after a minute if this process dies);
4. one last script (``SWAP``) unlinks the old directories (``UNLINK``: Redis frees them in
   the background), renames the staged ones into place (``RENAME``: O(1) each), links the
   path in its parent, appends the stream entry (its JSON text built here: building a text
   of megabytes in Lua costs the server milliseconds per copy) and releases the lease.

Readers see the old value until step 4 and the new one after: the change is atomic for them.
Step 4 costs O(number of directories) plus copying the entry's text once into the stream
(about 1.5 ms per MB), not O(fields). A write
inside a transaction is part of its commit, one script whatever its size.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ...paths import Parts, parts_to_str
from .codec import conflict_error
from .walk import BUDGET, walk_dirs

if TYPE_CHECKING:
    from .core import Exchange, RedisCore

__all__ = ["BIG", "STAGE", "TooBig", "apply_big", "fields_of"]

BIG = 5000  # fields: as the scripts' BIG
STAGE = 2000  # fields per STAGE call (about 1 ms of server time)


class TooBig(Exception):
    """APPLY answered {'big'}: the write must go through ``apply_big``."""


def fields_of(op: list[str]) -> int:
    """The fields an APPLY op ``['w', path, json, ngroups, (dir, n, pairs...)...]`` stores."""
    if op[0] != "w":
        return 0
    total, i = 0, 4
    for _ in range(int(op[3])):
        n = int(op[i + 1])
        total, i = total + n, i + 2 + 2 * n
    return total


def apply_big(core: RedisCore, parts: Parts, op: list[str], wid: str) -> Exchange[str | None]:
    """Apply one write or delete op in chunks; the previous JSON text (None when missing)."""
    txn = core.begin()
    core.open.add(txn)  # the renewer keeps its lease alive while the chunks run
    try:
        yield ("renew",)
        yield from txn.ask(core, parts, "none")
        path = parts_to_str(parts)
        prev, old, dirs = yield from _old(core, parts, path)
        staged = (yield from _stage(txn.token, op)) if op[0] == "w" else []
        args = [core.origin, core.maxlen, core.maxbytes, txn.token, wid, "", path, op[0]]
        args += [entry(path, prev, op), old, str(len(dirs)), *dirs, *staged]
        reply = yield ("eval", "swap", args)
        if reply[0] == "conflict":  # nothing changed: the lease is dropped below
            raise conflict_error(reply[1], int(reply[2]))
    except GeneratorExit:  # closed unfinished (its driver was interrupted): no yield
        core.open.discard(txn)
        raise
    except BaseException:
        core.open.discard(txn)
        try:
            yield from txn.release()
        except Exception:
            pass  # it expires after lease_timeout
        raise
    core.open.discard(txn)
    core.refusal(reply)  # 'lost' or 'unsure'
    return prev  # 'ok', or 'done': a resend found it applied


def entry(path: str, prev: str | None, op: list[str]) -> str:
    """The stream entry of the change, as the write script would write it ('' for none)."""
    new = op[2] if op[0] == "w" else ("{}" if path == "/" else None)
    if (new is None and prev is None) or (path == "/" and new == prev):
        return ""
    text = '[{"p":' + json.dumps(path, ensure_ascii=False)
    if prev is not None:
        text += ',"o":' + prev
    if new is not None:
        text += ',"n":' + new
    return text + "}]"


def _old(core: RedisCore, parts: Parts, path: str) -> Exchange[tuple[str | None, str, list[str]]]:
    """The value being replaced: its JSON text (None when missing), how SWAP removes it
    ('small', 'walked' with its directories, or 'missing'). Under the lease, nobody else
    changes it meanwhile."""
    reply = yield ("eval", "read", [path, str(BUDGET)])
    if not isinstance(reply, list):
        return (reply, "small", []) if reply else (None, "missing", [])
    text, dirs = yield from walk_dirs(core, parts)
    return (text, "walked", dirs) if text is not None else (None, "missing", [])


def _stage(token: str, op: list[str]) -> Exchange[list[str]]:
    """Stage the directories of a write op (all but the link in its parent); their paths."""
    groups: list[tuple[str, list[str]]] = []
    i = 4
    for _ in range(int(op[3])):
        n = int(op[i + 1])
        groups.append((op[i], op[i + 2 : i + 2 + 2 * n]))
        i += 2 + 2 * n
    if op[1] != "/":
        groups = groups[1:]  # the parent's field naming the path: SWAP sets it
    args: list[str] = [token]
    size = 0
    for directory, pairs in groups:
        for start in range(0, len(pairs), 2 * STAGE):
            chunk = pairs[start : start + 2 * STAGE]
            args += [directory, str(len(chunk) // 2), *chunk]
            size += len(chunk) // 2
            if size >= STAGE:
                yield ("eval", "stage", args)
                args, size = [token], 0
    if len(args) > 1:
        yield ("eval", "stage", args)
    return [directory for directory, _ in groups]
