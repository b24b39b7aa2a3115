"""Descriptor-relative file primitives for the file backend; none of them follows a symlink.

Every call names a file by ``(directory descriptor, name)``, where the descriptor was opened
with ``O_DIRECTORY | O_NOFOLLOW`` relative to its parent's, starting at the root. So a symlink
planted anywhere below the root, or a directory swapped for one while we work, is never
followed: opening it fails (``ELOOP`` / ``ENOTDIR``) instead of leaving the root. Temporary
files get unpredictable names and ``O_CREAT | O_EXCL | O_NOFOLLOW``, so a name planted in
advance makes us pick another one, never write through it.

Descriptors are opened and closed through the backend's ``Descriptors`` (``fds``), so one
an interrupt cuts loose is closed later (``descriptors.py``).
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Sequence

from ...errors import BackendError
from .descriptors import Descriptors

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC
TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC
TMP_PREFIX = ".tmp-"
_TMP_TRIES = 16

#: The pre-image of a directory (a file's is its bytes, a missing name's is None).
DIR = "dir"
PreImage = bytes | str | None


def open_dir(fds: Descriptors, parent: int, name: str) -> int | None:
    """A descriptor of directory ``name`` below ``parent``; None when missing or not a real
    directory (a symlink, a file)."""
    try:
        return fds.open(name, DIR_FLAGS, parent)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink, never followed
            return None
        raise


def is_real_dir(parent: int, name: str) -> bool:
    """Whether ``name`` below ``parent`` is a directory (not a symlink to one): asked of the
    name itself, so no descriptor is opened (an answer that opened one had to close it)."""
    try:
        return stat.S_ISDIR(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


def read_bytes(fds: Descriptors, parent: int, name: str) -> bytes | None:
    """The bytes of regular file ``name``; None when missing, a symlink or not a file."""
    try:
        fd = fds.open(name, READ_FLAGS, parent)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None  # a FIFO or device planted under our name: never read it
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    except IsADirectoryError:
        return None
    finally:
        fds.close(fd)


def temp_name() -> str:
    """An unpredictable hidden name for a temporary file."""
    return TMP_PREFIX + secrets.token_hex(8)


def create_temp(fds: Descriptors, parent: int) -> tuple[int, str]:
    """A new empty file under an unpredictable name: ``(fd, name)``. A name that exists (a
    plant, however unlikely) is never opened; another is drawn."""
    for _ in range(_TMP_TRIES):
        name = temp_name()
        try:
            return fds.open(name, TMP_FLAGS, parent, 0o666), name
        except FileExistsError:
            continue
    raise BackendError(f"cannot create a temporary file: {_TMP_TRIES} random names were taken")


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_atomic(fds: Descriptors, parent: int, name: str, data: bytes, durable: bool) -> None:
    """Replace ``name`` with ``data`` at once: a temporary file in the same directory, then
    ``os.replace`` (which replaces a symlink at ``name`` itself, never its target);
    ``durable`` fsyncs the file before and the directory after."""
    fd, tmp = create_temp(fds, parent)
    try:
        try:
            write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            fds.close(fd)
        os.replace(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
    except BaseException:
        unlink_at(parent, tmp)
        raise
    if durable:
        os.fsync(parent)


def unlink_at(parent: int, name: str) -> bool:
    """Remove file (or symlink) ``name``; False when it was not there."""
    try:
        os.unlink(name, dir_fd=parent)
        return True
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return False


def pre_image(fds: Descriptors, parent: int, name: str) -> PreImage:
    """What ``name`` holds now, to put back on rollback: ``DIR``, a file's bytes, or None (no
    name, or one we never restore: a symlink, a FIFO)."""
    try:
        mode = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISDIR(mode):
        return DIR
    return read_bytes(fds, parent, name) if stat.S_ISREG(mode) else None


def restore(fds: Descriptors, root: int, rel: Sequence[str], pre: PreImage, durable: bool) -> None:
    """Put back what ``root/rel`` held: a directory, a file's bytes, or nothing (None).

    Walks from ``root`` one descriptor at a time. Whatever stands in the way now -- a planted
    symlink, a file where a directory was -- is removed as a name (a symlink is unlinked,
    never followed), so the restore can neither fail on a plant nor leave the root.
    """
    parent = fds.open(".", DIR_FLAGS, root)
    try:
        for name in rel[:-1]:
            if pre is None and not is_real_dir(parent, name):
                return  # nothing to remove below a directory that is not there
            sub = _dir_for_restore(fds, parent, name)
            parent, old = sub, parent  # swapped first: an interrupt never double-closes
            fds.close(old)
        _restore_name(fds, parent, rel[-1], pre, durable)
    finally:
        fds.close(parent)


def _dir_for_restore(fds: Descriptors, parent: int, name: str) -> int:
    fd = open_dir(fds, parent, name)
    if fd is not None:
        return fd
    _remove_name(parent, name)
    os.mkdir(name, 0o777, dir_fd=parent)
    return fds.open(name, DIR_FLAGS, parent)


def _restore_name(fds: Descriptors, parent: int, name: str, pre: PreImage, durable: bool) -> None:
    if pre is None:
        _remove_name(parent, name)
    elif isinstance(pre, str):  # DIR
        if not is_real_dir(parent, name):
            _remove_name(parent, name)
            os.mkdir(name, 0o777, dir_fd=parent)
    else:
        if is_real_dir(parent, name):
            _remove_name(parent, name)  # a directory now stands where the file was
        write_atomic(fds, parent, name, pre, durable)
    if durable:
        os.fsync(parent)


def _remove_name(parent: int, name: str) -> None:
    """Remove ``name`` from ``parent``: a file or symlink is unlinked, an empty directory
    removed; a directory still holding foreign files stays."""
    try:
        mode = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return
    if stat.S_ISDIR(mode):
        try:
            os.rmdir(name, dir_fd=parent)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                raise
    else:
        unlink_at(parent, name)


def key_bytes(key: str) -> bytes:
    return key.encode("utf-8", "surrogatepass")
