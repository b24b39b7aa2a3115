"""``ControllerBase``: what both controllers share that does no I/O (subscriptions, callback
ids, derivation and tracker bookkeeping, introspection, atoms)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Hashable, Iterable
from contextlib import AbstractContextManager
from pathlib import PurePosixPath
from typing import Any

from ._engine.engine import Engine
from ._engine.graph import DerivationInfo
from ._engine.tracking import TrackerInfo
from .atom import Atom
from .backends.memory import InMemoryBackend
from .errors import CallbackIdError
from .missing import MISSING
from .paths import Parts, PathLike, parts_to_path, to_parts

__all__ = ["ControllerBase"]


class ControllerBase:
    """The plain (never awaited) half of the controller API."""

    _engine: Engine
    _guard: AbstractContextManager[Any]
    # the bound backend's I/O (set by _bind_backend); an async backend's return awaitables
    _read: Callable[[Parts], Any]
    _write: Callable[[Parts, Any], Any]
    _delete: Callable[[Parts], Any]
    _exists: Callable[[Parts], Any]

    # ----- who writes, for "why" lines -------------------------------------------------------

    @property
    def writer_name(self) -> Callable[[], str | None] | None:
        """A function naming who is writing, for the reasons tracked functions run.

        ``TrackerInfo.why`` / ``reason`` name the writer of a change: the tracked function
        or derivation that wrote it, ``another process``, or else ``thread NAME``. Set this
        to a function of no arguments returning a label to use instead of ``thread NAME``
        (restate_nb returns ``"cell [4]"`` while a cell runs, ``"a widget"`` between cells),
        or None to keep the thread's name for this write. It is called in the writing
        thread, inside the write and under the controller's lock: keep it cheap. If it
        raises or returns something else than a str or None, the thread's name is used and
        the error is logged. Assign None to remove it (the default).

        Raises (on assignment):
            TypeError: neither callable nor None.
        """
        return self._engine.scheduler.writer_name

    @writer_name.setter
    def writer_name(self, namer: Callable[[], str | None] | None) -> None:
        if namer is not None and not callable(namer):
            raise TypeError(
                f"writer_name takes a function returning a label (or None), not "
                f"{type(namer).__name__}"
            )
        self._engine.scheduler.writer_name = namer

    # ----- subscriptions and callback ids ----------------------------------------------------

    def subscribe(
        self,
        path: PathLike,
        callback: Callable[..., Any] | None = None,
        force_id: Hashable = None,
        replace: bool = False,
    ) -> Any:
        """Call ``callback(event)`` after every change at, below or above ``path``
        (docs/semantics.md#events).

        ``*`` segments match any one segment. Returns the callback id. Without ``callback``
        returns a decorator (``@controller.subscribe("/users")``) that returns the function.
        """
        parts = to_parts(path, wildcard=True)
        if callback is None:

            def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
                self.subscribe(parts_path(parts), fn, force_id, replace)
                return fn

            return decorator
        with self._guard:
            self._listen()
            cid = self._engine.register_callback(callback, force_id, replace, keep=False)
            self._engine.subs.add(parts, cid)
            return cid

    def unsubscribe(self, path: PathLike, callback: Callable[..., Any]) -> bool:
        """Stop calling ``callback`` for ``path``. False when it was not subscribed there.

        A callback that ``subscribe`` registered is released (no reference to it is kept) when
        its last subscription goes; one given an id by ``register_callback`` stays registered
        until ``remove_callback``.
        """
        parts = to_parts(path, wildcard=True)
        with self._guard:
            engine = self._engine
            removed = [engine.unsubscribe(parts, cid) for cid in engine.ids_of(callback)]
            return any(removed)

    def register_callback(
        self, callback: Callable[..., Any], force_id: Hashable = None, replace: bool = False
    ) -> Hashable:
        """Give ``callback`` an id (``force_id`` or a new one) to subscribe it by id.

        Raises CallbackIdError when ``force_id`` names another callback and not ``replace``.
        """
        with self._guard:
            return self._engine.register_callback(callback, force_id, replace)

    def subscribe_by_id(self, path: PathLike, id: Hashable, ignore_missing: bool = False) -> bool:
        """Subscribe the callback registered as ``id`` to ``path``.

        Raises CallbackIdError for an unknown id unless ``ignore_missing`` (then the
        subscription waits for a callback registered under that id later).
        """
        parts = to_parts(path, wildcard=True)
        with self._guard:
            if id not in self._engine.callbacks and not ignore_missing:
                raise CallbackIdError(
                    f"no callback is registered as {id!r}; call register_callback() first or "
                    f"pass ignore_missing=True"
                )
            self._listen()
            return self._engine.subs.add(parts, id)

    def unsubscribe_by_id(self, path: PathLike, id: Hashable) -> bool:
        """Remove the subscription of callback ``id`` at ``path``; False if there was none.
        Like ``unsubscribe``, releases a callback that ``subscribe`` registered once its last
        subscription is gone."""
        parts = to_parts(path, wildcard=True)
        with self._guard:
            return self._engine.unsubscribe(parts, id)

    def remove_callback(self, id: Hashable) -> bool:
        """Forget callback ``id`` and every subscription it has."""
        with self._guard:
            return self._engine.remove_callback(id)

    def on_changes(self, callback: Callable[[list[Any]], Any]) -> Callable[[], None]:
        """Call ``callback(changes)`` after every settled write, batch or ping with the list of
        ``StateChange(path, prev_value, new_value)`` roots (``MISSING`` marks a missing node).
        Returns a function that removes the listener."""
        with self._guard:
            self._listen()
            key = self._engine.new_id()
            self._engine.listeners[key] = callback

        def remove() -> None:
            with self._guard:
                self._engine.listeners.pop(key, None)

        return remove

    # ----- the backend ------------------------------------------------------------------------

    def _bind_backend(self, backend: Any) -> None:
        """Adopt ``backend``: its I/O functions (fast paths for the memory backend), its
        optional capabilities, and change watching."""
        for name in ("read", "write", "delete"):
            if not callable(getattr(backend, name, None)):
                raise TypeError(f"backend {backend!r} has no {name}() method")
        self._backend = backend
        engine = self._engine
        engine.aliasing = isinstance(backend, InMemoryBackend)
        engine.batches.has_txn = callable(getattr(backend, "transaction", None))
        engine.batches.has_optimistic = getattr(backend, "optimistic_transactions", False) is True
        if isinstance(backend, InMemoryBackend):
            self._read, self._write, self._delete = backend._get, backend._set, backend._del
            self._exists = lambda parts: backend._get(parts) is not MISSING
        else:
            self._read = lambda parts: backend.read(parts_to_path(parts), MISSING)
            self._write = lambda parts, value: backend.write(parts_to_path(parts), value)
            self._delete = lambda parts: backend.delete(parts_to_path(parts))
            exists = getattr(backend, "exists", None)
            self._exists = (
                (lambda parts: exists(parts_to_path(parts)))
                if callable(exists)
                else (lambda parts: _is_there(backend.read(parts_to_path(parts), MISSING)))
            )
        watch = getattr(backend, "watch", None)
        self._watch = watch if callable(watch) else None
        if self._hearing:  # something already listens: follow the new store at once
            self._listen()

    # ----- following other processes' writes (docs/backends.md, Redis "Delivery") ----------
    # A controller follows its backend's change stream only once something can hear another
    # process's write: a writer that never listens never wakes for others' commits.

    _watch: Callable[[Callable[..., Any]], Callable[[], Any]] | None = None
    _unwatch: Callable[[], Any] | None = None
    _hearing = False  # a subscription, listener, derivation or tracker was ever registered
    _closed = False  # close() was called (set_backend() reopens)

    def _listen(self) -> None:
        """Start following the backend's changes unless already following or closed.

        Called before a registration that can hear another process's write takes effect and
        before its first read, so that a write landing after that read is delivered (a
        watching backend starts from the stream's end as it was when ``watch()`` returned).
        Once started it follows until ``close()``: unsubscribing does not stop it. When
        ``watch()`` raises (the server is down), so does the registration, registering nothing;
        the next one tries again.
        """
        if self._unwatch is None and self._watch is not None and not self._closed:
            self._unwatch = self._watch(self._on_external)
        self._hearing = True

    def _stop_listening(self) -> None:
        unwatch, self._unwatch = self._unwatch, None
        if unwatch is not None:
            unwatch()

    @property
    def following(self) -> bool:
        """Whether this controller follows its backend's changes (other processes' writes)
        now: from the first subscription, listener, derivation or tracked function until
        ``close()``. Always False on a backend without ``watch()`` (the memory, file and
        SQLite stores: they do not report other processes' writes)."""
        return self._unwatch is not None

    def _read_root(self, parts: Parts) -> Any:
        """A read of a sync backend for the engine's direct I/O (the root is never missing)."""
        value = self._read(parts)
        return {} if value is MISSING and not parts else value

    def _on_external(self, raw: Any) -> None:
        raise NotImplementedError

    # ----- derivations and trackers: bookkeeping -------------------------------------------------

    def underive(self, dest: PathLike) -> bool:
        """Remove the derivation writing ``dest`` (its last value stays). False if none."""
        parts = to_parts(dest)
        with self._guard:
            return self._engine.underive(parts)

    def untrack(self, id: Hashable) -> bool:
        """Stop re-running the tracked function ``id``. False if unknown."""
        with self._guard:
            return self._engine.untrack(id)

    def derivations(self) -> list[DerivationInfo]:
        """Every derivation, in the order they recompute, with its status (``ok``,
        ``failed`` with ``error``, ``stale`` with ``reason``, or ``refused``)."""
        with self._guard:
            scheduler = self._engine.scheduler
            return [
                DerivationInfo.of(d).with_status(scheduler.derivation_status(d))
                for d in self._engine.graph
            ]

    def trackers(self) -> list[TrackerInfo]:
        """Every tracked function: what its last run read and wrote, its status, why it
        last ran and why it is due or stale (see ``TrackerInfo``)."""
        with self._guard:
            scheduler = self._engine.scheduler
            return [
                TrackerInfo.of(t, scheduler.due_why(t.id)) for t in self._engine.trackers.values()
            ]

    def atom(
        self, path: PathLike | None = None, key: str | None = None, default: Any = None
    ) -> Atom:
        """A handle on one path: ``path``, ``path/key``, or a fresh ``/__atoms__/<n>`` path."""
        if path is None:
            base: Parts = ("__atoms__",)
            if key is None:
                key = str(self._engine.new_id())
        else:
            base = to_parts(path)
        parts = (*base, *to_parts(key)) if key is not None else base
        return Atom(self, parts_path(parts), default)

    @staticmethod
    def _sources(sources: Iterable[PathLike]) -> tuple[Parts, ...]:
        if isinstance(sources, (str, PurePosixPath)) or hasattr(sources, "path"):
            raise TypeError("derive_many() takes a list of source paths, not one path")
        return tuple(dict.fromkeys(to_parts(s) for s in sources))


def _is_there(value: Any) -> Any:
    """``value is not MISSING``, awaiting first when the read was a coroutine."""
    if inspect.isawaitable(value):
        return _awaited_is_there(value)
    return value is not MISSING


async def _awaited_is_there(value: Any) -> bool:
    return (await value) is not MISSING


def parts_path(parts: Parts) -> PurePosixPath:
    return PurePosixPath("/" + "/".join(parts))
