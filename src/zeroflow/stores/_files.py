"""File primitives of the JSON store: atomic replace, folder fsync, advisory locks.

Kept apart from the store's logic so the crash-safety rules live in one
place: a file is either replaced whole (temporary file in the same folder,
flush, optional fsync, ``os.replace``) or appended one whole line per write.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ["append_fd", "copy_atomic", "fsync_dir", "locked", "truncate", "write_atomic"]


def fsync_dir(folder: Path) -> None:
    """Make a create, rename or delete in ``folder`` survive power loss (POSIX only)."""
    if sys.platform == "win32":  # pragma: no cover - Windows cannot open folders
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: str | bytes, *, fsync: bool = False) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never half."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view) :]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if fsync:
        fsync_dir(path.parent)


def copy_atomic(src: Path, dst: Path, *, fsync: bool = False) -> None:
    """Give ``dst`` the content of ``src``: a hard link when possible, else an atomic copy."""
    try:
        os.link(src, dst)
    except FileExistsError:
        return
    except OSError:
        write_atomic(dst, src.read_bytes(), fsync=fsync)
        return
    if fsync:
        fsync_dir(dst.parent)


def append_fd(path: Path, *, fsync: bool = False) -> int:
    """Open ``path`` for appending (created if missing); a raw fd, one ``os.write`` per batch."""
    existed = path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    if fsync and not existed:
        fsync_dir(path.parent)
    return fd


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` (``os.write`` may write less on some systems)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def truncate(path: Path, size: int, *, fsync: bool = False) -> None:
    """Cut ``path`` back to ``size`` bytes (dropping a torn or uncommitted tail)."""
    with open(path, "r+b") as fh:
        fh.truncate(size)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_LOCK, 1)

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


def lock_fd(fd: int) -> None:
    """Take the exclusive advisory lock of an open file (``unlock_fd`` gives it back)."""
    _lock(fd)


def unlock_fd(fd: int) -> None:
    """Give back the lock ``lock_fd`` took."""
    _unlock(fd)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[int]:
    """Hold an exclusive advisory lock on ``path`` (created if missing); yield its fd.

    The operating system drops the lock when the holder dies, so a killed
    process never leaves it behind; it guards only short read-modify-writes.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _lock(fd)
        try:
            yield fd
        finally:
            _unlock(fd)
    finally:
        os.close(fd)
