"""Child processes for the Redis tests: ``follow URL PREFIX``, ``increment URL PREFIX N``,
``count URL PREFIX N KEY``, ``inside_update URL PREFIX`` and ``hold URL PREFIX``.

``follow`` prints one JSON line per event its subscriber of ``/msg`` or its tracked function
sees, with the receive time; ``increment`` runs ``update("/n", +1)`` N times.
"""

from __future__ import annotations

import json
import sys
import threading
import time

from restate import ControllerSync
from restate.backends.redis import RedisBackend


def emit(**line: object) -> None:
    print(json.dumps(line), flush=True)


def follow(url: str, prefix: str) -> None:
    controller = ControllerSync(RedisBackend(url, prefix))
    controller.subscribe("/msg", lambda e: emit(kind="sub", value=e.new_value, at=time.time()))
    controller.track(lambda e: emit(kind="track", value=e.get_state("/msg"), at=time.time()))
    emit(kind="ready")
    sys.stdin.read()  # until the parent closes stdin


def fan(url: str, prefix: str, expected: int) -> None:
    """Subscribe to ``/m/*`` and to ``/last``; after ``/last`` arrives, report every key seen
    and how many times."""
    controller = ControllerSync(RedisBackend(url, prefix))
    seen: dict[str, int] = {}
    done = threading.Event()
    controller.subscribe(
        "/m/*", lambda e: seen.__setitem__(e.emitting_path, seen.get(e.emitting_path, 0) + 1)
    )
    controller.subscribe("/last", lambda e: done.set())
    emit(kind="ready")
    if not done.wait(60):
        emit(kind="timeout", seen=len(seen))
        return
    emit(kind="seen", keys=len(seen), events=sum(seen.values()), expected=expected)


def increment(url: str, prefix: str, times: int) -> None:
    controller = ControllerSync(RedisBackend(url, prefix))
    for _ in range(times):
        controller.update("/n", lambda n: n + 1, default=0)
    emit(kind="done")


def count(url: str, prefix: str, times: int, key: str) -> None:
    """``update(key, +1)`` ``times`` times; report how often the function ran."""
    controller = ControllerSync(RedisBackend(url, prefix))
    calls = 0

    def bump(n: int) -> int:
        nonlocal calls
        calls += 1
        return n + 1

    for _ in range(times):
        controller.update(key, bump, default=0)
    emit(kind="done", calls=calls)


def inside_update(url: str, prefix: str) -> None:
    """Stop inside the function of an optimistic ``update("/n")`` (for kill -9 or SIGINT);
    after an interrupt, write /after and report what a fresh client reads back."""
    controller = ControllerSync(RedisBackend(url, prefix, lease_timeout=5))

    def wait(n: int) -> int:
        emit(kind="inside", n=n)
        sys.stdin.read()
        return n + 1

    try:
        controller.update("/n", wait)
    except KeyboardInterrupt:
        controller.set_state("/after", 1)
        with RedisBackend(url, prefix) as fresh:
            emit(kind="after", n=fresh.read("/n"), after=fresh.read("/after"))


def hold(url: str, prefix: str) -> None:
    """Open a batch that writes /n, say so, then wait inside it (for kill -9 or SIGINT); after
    an interrupt, write /after and report what a fresh client reads back."""
    controller = ControllerSync(RedisBackend(url, prefix, lease_timeout=0.5))
    try:
        with controller.batch():
            controller.set_state("/n", "held")
            emit(kind="inside")
            sys.stdin.read()
    except KeyboardInterrupt:
        controller.set_state("/after", 1)
        with RedisBackend(url, prefix) as fresh:
            emit(kind="after", n=fresh.read("/n"), after=fresh.read("/after"))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "follow":
        follow(*args)
    elif command == "hold":
        hold(*args)
    elif command == "fan":
        fan(args[0], args[1], int(args[2]))
    elif command == "count":
        count(args[0], args[1], int(args[2]), args[3])
    elif command == "inside_update":
        inside_update(*args)
    else:
        increment(args[0], args[1], int(args[2]))
