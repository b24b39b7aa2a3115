"""The follower thread: reads the change stream in bursts and calls ``on_changes``.

It holds no reference to its backend and only a weak one to a bound-method handler (the
controller's), so a controller dropped without ``close()`` is collected, and the follower
notices and ends, closing its connection (see ``Backend.__init__``'s finaliser).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis

from .cursor import StreamCursor
from .driving import call, drive
from .library import ClientScripts, Library
from .walk import changed_since, resync
from .xread import StreamReads

if TYPE_CHECKING:
    from .core import RedisCore

__all__ = ["Follower"]

log = logging.getLogger("restate.redis")

OnChanges = Callable[[list[tuple[str, Any, Any]]], Any]
BATCH = 1000  # entries per XREAD: a burst costs one round trip per this many entries
OWN_LINGER = 0.002  # seconds; delays another process's entry by at most this much


class Follower(threading.Thread):
    """Follows ``stream`` with ``client`` and calls ``on_changes`` once per delivery.

    ``owns_client``: the client is this follower's own (closed at stop, and disconnected to
    interrupt a blocking read); else it is shared and the read blocks ``block_ms`` at most.
    """

    def __init__(
        self,
        client: Any,
        owns_client: bool,
        core: RedisCore,
        on_changes: OnChanges,
        cursor: StreamCursor,
        loop: asyncio.AbstractEventLoop | None,
        block_ms: int,
        registry: list[Follower],
        rebuild: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__(daemon=True, name=f"restate-redis-follower-{cursor.origin[:8]}")
        self._client, self._owns = client, owns_client
        self._core = core
        self._stream = core.stream
        # a bound method is called as function(owner, changes), its owner held weakly: the
        # same as a WeakMethod, without its Python-level __call__ on every delivery
        self._owner: Callable[[], Any] | None = None
        self._function: Callable[..., Any] = on_changes
        if inspect.ismethod(on_changes):
            self._owner = weakref.ref(on_changes.__self__)
            self._function = on_changes.__func__
        self._loop = loop
        self._block_ms = block_ms
        self._registry = registry
        self._rebuild = rebuild
        self.cursor = cursor
        self._stopped = threading.Event()  # waited on; ``_halt`` says the same, cheaper
        self._halt = False
        self._scripts = ClientScripts(client, Library())
        self._reads: StreamReads | None = None
        if owns_client and isinstance(client, redis.Redis):  # closed with the pool
            self._reads = StreamReads(client, self._stream, BATCH, block_ms)

    def run(self) -> None:
        try:
            while not self._halt and self._alive():
                try:
                    self._follow()
                except Exception as exc:  # also socket errors of a stop() racing the read
                    if self._halt:
                        break
                    log.warning("restate: lost the Redis change stream (%s); reconnecting", exc)
                    self._reconnect()
                    self._stopped.wait(self.cursor.backoff())
        finally:
            self._release()

    def _reconnect(self) -> None:
        if not self._owns:
            return
        disconnect(self._client)
        if self._rebuild is None:
            return
        # a cluster client may keep routing to a dead master: discover the slots afresh
        try:
            fresh = self._rebuild(self._client)
        except Exception as exc:  # no node answers yet: the next round tries again
            log.debug("restate: rediscovering the cluster failed: %s", exc)
            return
        with contextlib.suppress(Exception):
            self._client.close()
        self._client = fresh
        self._scripts = ClientScripts(fresh, self._scripts.library)

    def _alive(self) -> bool:
        """False once the handler's owner (the controller) was collected."""
        return self._owner is None or self._owner() is not None

    def _follow(self) -> None:
        """Read and deliver until stopped; a connection error ends it (``run`` reconnects).

        At 100 writes/s every write wakes every subscriber process for one entry, so this
        loop's fixed cost per wake-up is most of what a delivery costs: the read, the take and
        the handler's call are one frame here (docs/backends.md, "What one delivery costs").
        """
        cursor = self.cursor
        take = cursor.take
        read = self._read if self._reads is None else self._reads.read
        connected = False
        while not self._halt:
            reply = read(cursor.last_id)
            if not connected:
                cursor.connected()  # (resets the back-off of reconnections)
                connected = True
            deliveries = take(reply)
            if not deliveries:
                if reply:  # only this process's own entries: let a run of them gather
                    self._stopped.wait(OWN_LINGER)  # instead of taking the GIL once per write
                elif not self._alive():  # the block timed out: is anyone still listening?
                    return
                continue
            for changes in deliveries:
                if self._halt:
                    return
                if changes is StreamCursor.RESYNC:
                    changes = self._resync()
                if not self._deliver(changes):
                    return

    def _read(self, last_id: str) -> list[tuple[str, Any]]:
        """One XREAD through the client: a shared one, or a cluster's (on a plain client of
        its own, ``StreamReads`` reads instead: xread.py; its fixed cost per wake-up is a
        fraction of redis-py's)."""
        reply = self._client.xread({self._stream: last_id}, count=BATCH, block=self._block_ms)
        if isinstance(reply, dict):  # RESP3
            reply = reply.items()
        return [entry for _stream, entries in reply or () for entry in entries]

    def _resync(self) -> list[tuple[str, Any, Any]]:
        keys = [self._stream]

        def run(command: tuple[Any, ...]) -> Any:
            return call(self._client, self._scripts, keys, command)

        behind = self.cursor.behind
        if behind is not None:
            found = drive(changed_since(self._core, behind), run)
            if found is not None:
                log.warning(
                    "restate: changes of %r were trimmed from the stream before this client "
                    "read them; delivering the %d paths changed since as changes from MISSING",
                    self._stream,
                    len(found[2]),
                )
                return self.cursor.restart_since(found)
        log.warning(
            "restate: changes of %r were trimmed from the stream or lost before this client "
            "read them; delivering the whole tree as one change",
            self._stream,
        )
        return self.cursor.restart(drive(resync(self._core), run))

    def _deliver(self, changes: list[tuple[str, Any, Any]]) -> bool:
        """Call the handler with ``changes``; False when its owner was collected (the
        controller was dropped without ``close()``): the follower stops."""
        owner = self._owner
        try:
            if owner is None:
                result = self._function(changes)
            else:
                target = owner()
                if target is None:
                    self._halt = True
                    self._stopped.set()
                    return False
                result = self._function(target, changes)
                del target  # not kept alive while the next read blocks
            if result is not None and inspect.isawaitable(result):  # None: a sync handler
                if self._loop is None or self._loop.is_closed():
                    raise TypeError(
                        "on_changes returned an awaitable, but watch() ran outside a loop"
                    )
                asyncio.run_coroutine_threadsafe(_awaited(result), self._loop).result()
        except Exception:
            log.exception("restate: a Redis change handler raised")
        return True

    def stop(self) -> None:
        """End the thread (waits for it unless called from it) and release its connection."""
        self._halt = True
        self._stopped.set()
        deadline = time.monotonic() + 5
        while threading.current_thread() is not self and time.monotonic() < deadline:
            if self._owns:  # the thread may be inside XREAD: closing its socket wakes it
                disconnect(self._client)
            self.join(timeout=0.05)
            if not self.is_alive():
                break
        self._release()

    def _release(self) -> None:
        if self._owns:
            with contextlib.suppress(Exception):
                self._client.close()
        with contextlib.suppress(ValueError):
            self._registry.remove(self)


def disconnect(client: Any) -> None:
    """Close the sockets of a client (a blocked read on one of them returns at once)."""
    if hasattr(client, "disconnect_connection_pools"):  # redis.cluster.RedisCluster
        client.disconnect_connection_pools()
    else:
        client.connection_pool.disconnect()


async def _awaited(awaitable: Any) -> Any:
    return await awaitable
