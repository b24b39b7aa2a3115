"""Existence probes without reading subtrees: ``holds``, and the hybrid's plan of what to ask.

Two questions a store can answer cheaply (see each backend's ``exists`` / ``_occupied``):

- ``exists(path)``: would ``read(path, MISSING)`` find a node?
- ``_occupied(path, ignore)``: is the node at ``path`` a leaf, or a dict with a child whose
  key is not in ``ignore``? (``ignore`` empty and path ``/``: "is the store non-empty?")

The hybrid backend combines them over its mounts (``exists_plan``, a generator of probe
requests driven by ``run_sync`` / ``run_async``). Stores without these methods are asked
through ``InMemoryBackend``'s internal lookup or, for user backends, a ``read``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any

from ..paths import Parts, parts_to_path
from .base import MISSING
from .memory import InMemoryBackend

__all__ = ["NOTHING", "exists_plan", "holds", "probe_async", "probe_sync", "run_async", "run_sync"]

NOTHING: frozenset[str] = frozenset()
Probe = tuple[str, Any, Parts, frozenset[str]]  # ("exists" | "occupied", store, path, ignore)
ProbePlan = Generator[Probe, bool, bool]


def holds(value: Any, ignore: frozenset[str] = NOTHING) -> bool:
    """``_occupied`` of an in-memory value: a leaf, or a dict with a key outside ``ignore``."""
    if value is MISSING:
        return False
    if type(value) is not dict:
        return True
    return any(key not in ignore for key in value)


def exists_plan(mounts: Any, parts: Parts) -> ProbePlan:
    """Whether the hybrid's ``read(parts)`` finds a node, mirroring its merge of mounts:

    - no mount below ``parts``: the owner has the node (a mount point: its store is not empty);
    - a non-empty store mounted below: always (its data, or a leaf of the owner above it);
    - all stores below empty: the root exists when the owner's does; another path when the
      owner holds a leaf there or a dict with a key that is not an (empty, hiding) mount.
    """
    mount, owner = mounts.owner(parts)
    rel = parts[len(mount) :]
    below = mounts.below(parts)
    if not below:
        if mount and parts == mount:
            return (yield ("occupied", owner, (), NOTHING))
        return (yield ("exists", owner, rel, NOTHING))
    for m in below:
        if (yield ("occupied", mounts.table[m], (), NOTHING)):
            return True
    if not parts:
        return (yield ("exists", owner, rel, NOTHING))
    direct = frozenset(m[len(parts)] for m in below if len(m) == len(parts) + 1)
    return (yield ("occupied", owner, rel, direct))


def _ask(kind: str, store: Any, rel: Parts, ignore: frozenset[str]) -> tuple[bool, Any]:
    """``(probed, result)``: the store's own answer (a bool, or an awaitable of one), or,
    for a store without the probe, the value at ``rel`` (or an awaitable of it)."""
    if kind == "exists":
        probe = getattr(store, "exists", None)
        args: tuple[Any, ...] = (parts_to_path(rel),)
    else:
        probe = getattr(store, "_occupied", None)
        args = (parts_to_path(rel), ignore)
    if callable(probe):
        return True, probe(*args)
    if isinstance(store, InMemoryBackend):
        return False, store._get(rel)
    return False, store.read(parts_to_path(rel), MISSING)


def _answer(kind: str, probed: bool, result: Any, ignore: frozenset[str]) -> bool:
    if probed:
        return bool(result)
    return result is not MISSING if kind == "exists" else holds(result, ignore)


def probe_sync(
    store: Any, rel: Parts, kind: str = "exists", ignore: frozenset[str] = NOTHING
) -> bool:
    """Ask one sync store ``exists`` (or ``_occupied``) at ``rel``."""
    return _answer(kind, *_ask(kind, store, rel, ignore), ignore)


async def probe_async(
    store: Any, rel: Parts, kind: str = "exists", ignore: frozenset[str] = NOTHING
) -> bool:
    """Ask one sync or async store ``exists`` (or ``_occupied``) at ``rel``."""
    probed, result = _ask(kind, store, rel, ignore)
    if asyncio.iscoroutine(result):
        result = await result
    return _answer(kind, probed, result, ignore)


def run_sync(plan: ProbePlan) -> bool:
    answer: Any = None
    while True:
        try:
            request = plan.send(answer)
        except StopIteration as stop:
            return bool(stop.value)
        kind, store, rel, ignore = request
        answer = probe_sync(store, rel, kind, ignore)


async def run_async(plan: ProbePlan) -> bool:
    answer: Any = None
    while True:
        try:
            request = plan.send(answer)
        except StopIteration as stop:
            return bool(stop.value)
        kind, store, rel, ignore = request
        answer = await probe_async(store, rel, kind, ignore)
