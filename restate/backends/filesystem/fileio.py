"""Descriptor-relative file primitives for the file backend; none of them follows a symlink."""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import stat
from pathlib import Path
from typing import Any

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC
TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC
TMP_PREFIX = ".tmp-"
_counter = itertools.count()


def open_dir(parent: int, name: str) -> int | None:
    """A descriptor of directory ``name`` below ``parent``; None when missing or not a real
    directory (a symlink, a file)."""
    try:
        return os.open(name, DIR_FLAGS, dir_fd=parent)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink, never followed
            return None
        raise


def read_bytes(parent: int, name: str) -> bytes | None:
    try:
        fd = os.open(name, READ_FLAGS, dir_fd=parent)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None
        raise
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    except IsADirectoryError:
        return None
    finally:
        os.close(fd)


def write_atomic(parent: int, name: str, data: bytes, durable: bool) -> None:
    """Replace ``name`` with ``data`` at once: a temporary file in the same directory, then
    ``os.replace``; ``durable`` fsyncs the file before and the directory after."""
    tmp = f"{TMP_PREFIX}{os.getpid()}-{next(_counter)}"
    fd = os.open(tmp, TMP_FLAGS, 0o666, dir_fd=parent)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
    except BaseException:
        unlink_at(parent, tmp)
        raise
    if durable:
        os.fsync(parent)


def unlink_at(parent: int, name: str) -> bool:
    """Remove file ``name``; False when it was not there."""
    try:
        os.unlink(name, dir_fd=parent)
        return True
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return False


_DIR = object()  # pre-image of a directory


def pre_image(parent: int, name: str) -> Any:
    try:
        mode = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(mode):
        return _DIR
    return read_bytes(parent, name) if stat.S_ISREG(mode) else None


def restore(path: Path, pre: Any) -> None:
    """Put back what ``path`` held: a directory, the bytes of a file, or nothing (None)."""
    if pre is _DIR:
        path.mkdir(parents=True, exist_ok=True)
    elif pre is None:
        if path.is_dir() and not path.is_symlink():
            with contextlib.suppress(OSError):
                path.rmdir()
        else:
            path.unlink(missing_ok=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{TMP_PREFIX}{os.getpid()}-{next(_counter)}")
        tmp.write_bytes(pre)
        os.replace(tmp, path)


def key_bytes(key: str) -> bytes:
    return key.encode("utf-8", "surrogatepass")


def close_all(fds: list[int]) -> None:
    for fd in reversed(fds):
        os.close(fd)
