"""``FileSystemAsyncBackend``: the file backend for ``ControllerAsync``, its disk work in
worker threads."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import PurePosixPath
from typing import Any

from ...paths import to_parts
from ...serializers import Serializer, json_serializer
from ...tree import copy_in
from .._interrupts import finish_in_thread
from ..base import AsyncBackend
from .backend import FileSystemSyncBackend

__all__ = ["FileSystemAsyncBackend"]


class FileSystemAsyncBackend(AsyncBackend):
    """``FileSystemSyncBackend`` with awaitable methods: each call runs the sync implementation
    in a worker thread (``asyncio.to_thread``), so the event loop never blocks on the disk.
    ``.sync`` is the underlying sync backend."""

    def __init__(
        self,
        base_dir: str | os.PathLike[str],
        serializer: Serializer[Any] = json_serializer,
        durable: bool = False,
    ) -> None:
        self.sync = FileSystemSyncBackend(base_dir, serializer, durable)
        self.base_dir = self.sync.base_dir
        self.serializer = serializer

    def __repr__(self) -> str:
        return f"FileSystemAsyncBackend({str(self.base_dir)!r})"

    async def read(self, path: PurePosixPath | str, default: Any = None) -> Any:
        return await finish_in_thread(self.sync.read, path, default)

    async def write(self, path: PurePosixPath | str, value: Any) -> None:
        value = copy_in(value, to_parts(path))  # isolate now: the caller may mutate it later
        await finish_in_thread(self.sync.write, path, value)

    async def delete(self, path: PurePosixPath | str) -> None:
        await finish_in_thread(self.sync.delete, path)

    async def exists(self, path: PurePosixPath | str) -> bool:
        """See ``FileSystemSyncBackend.exists``."""
        return await finish_in_thread(self.sync.exists, path)

    async def _occupied(
        self, path: PurePosixPath | str, ignore: frozenset[str] = frozenset()
    ) -> bool:
        return await finish_in_thread(self.sync._occupied, path, ignore)

    def check_value(self, path: PurePosixPath | str, value: Any) -> None:
        self.sync.check_value(path, value)

    async def close(self) -> None:
        self.sync.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[FileSystemAsyncBackend]:
        """The sync backend's transaction (see ``FileSystemSyncBackend.transaction``), its
        lock taken in a worker thread. Cancellation waits for the disk operation in flight
        (a thread cannot be stopped) and then rolls back. Tasks that use this backend
        meanwhile take part in it, so keep one writer (the controller)."""
        txns = self.sync._txns
        level, held = txns.journal.depth, txns.dirlock.depth
        try:
            await finish_in_thread(txns.begin)
            yield self
            await finish_in_thread(txns.end, level, held, False)
        except BaseException:
            await finish_in_thread(txns.end, level, held, True)
            raise
