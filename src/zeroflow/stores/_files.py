"""File primitives of the JSON store: atomic replace, folder fsync, advisory locks, no links.

Kept apart from the store's logic so the crash-safety rules live in one
place: a file is either replaced whole (temporary file in the same folder,
flush, optional fsync, ``os.replace``) or appended one whole line per write.
Nothing here follows a symbolic link: files are opened with ``O_NOFOLLOW``
(checked with ``lstat`` where the platform has no such flag), so a link
planted in a run folder raises ``LinkRefusedError`` instead of making the
store read, write or truncate a file elsewhere.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "LinkRefusedError",
    "append_fd",
    "copy_atomic",
    "create_with",
    "fsync_dir",
    "is_file",
    "locked",
    "open_nofollow",
    "read_bytes",
    "refuse_link",
    "remove_contents",
    "truncate",
    "tree_size",
    "write_all",
    "write_atomic",
]

NOFOLLOW: int = getattr(os, "O_NOFOLLOW", 0)
"""``O_NOFOLLOW`` where the platform has it (0 elsewhere: ``lstat`` checks instead)."""

NEW_FILE_MODE = 0o666
"""What new files are created with; the process umask takes its bits away (as ``open``)."""


class LinkRefusedError(OSError):
    """A file or folder the store would use is a symbolic link; it was not followed."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(errno.ELOOP, "is a symbolic link", str(path))


def refuse_link(path: str | Path) -> bool:
    """``LinkRefusedError`` when ``path`` is a symbolic link; returns whether it exists."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode):
        raise LinkRefusedError(path)
    return True


def is_file(path: str | Path) -> bool:
    """True when ``path`` is a regular file; ``LinkRefusedError`` when it is a link."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode):
        raise LinkRefusedError(path)
    return stat.S_ISREG(st.st_mode)


def open_nofollow(path: str | Path, flags: int, mode: int = NEW_FILE_MODE) -> int:
    """``os.open`` that refuses a symbolic link as the last component (``LinkRefusedError``)."""
    if not NOFOLLOW:  # pragma: no cover - platforms without O_NOFOLLOW (Windows)
        refuse_link(path)
    try:
        return os.open(path, flags | NOFOLLOW, mode)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK) and os.path.islink(path):
            raise LinkRefusedError(path) from exc
        raise


def _set_mode(fd: int, path: str, mode: int) -> None:
    if hasattr(os, "fchmod"):
        os.fchmod(fd, mode)
    else:  # pragma: no cover - Windows before Python 3.13
        os.chmod(path, mode)


def read_bytes(path: str | Path) -> bytes:
    """The whole content of ``path`` (``FileNotFoundError`` when missing; links refused)."""
    fd = open_nofollow(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        chunks = [os.read(fd, size + 1)]  # one read when the file did not grow meanwhile
        while chunks[-1]:
            chunks.append(os.read(fd, 65536))
        return b"".join(chunks)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Make a create, rename or delete in ``folder`` survive power loss (POSIX only)."""
    if sys.platform == "win32":  # pragma: no cover - Windows cannot open folders
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` (``os.write`` may write less on some systems).

    An ``OSError`` on the way carries ``written``: the bytes that did reach the file.
    """
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        exc.written = len(data) - len(view)  # type: ignore[attr-defined]
        raise


def write_atomic(
    path: Path, data: str | bytes, *, fsync: bool = False, mode: int | None = None
) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never half.

    The new file keeps the permission bits of the file it replaces; a file
    that did not exist gets ``mode`` (None: ``0o666`` less the umask). A
    ``path`` that is a symbolic link is refused, not replaced.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        carried = mode
    else:
        if stat.S_ISLNK(st.st_mode):
            raise LinkRefusedError(path)
        carried = stat.S_IMODE(st.st_mode) & 0o777
    tmp = _write_temp(path, raw, fsync=fsync, mode=carried)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if fsync:
        fsync_dir(path.parent)


def _write_temp(path: Path, data: bytes, *, fsync: bool, mode: int | None) -> str:
    """A temporary file next to ``path`` holding ``data``; its name (removed on failure).

    Created no more open than it ends up (``mode``, or ``0o666`` less the
    umask; the umask may take bits away, fchmod gives them back): nobody can
    open it while it is more permissive than wanted.
    """
    tmp = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = open_nofollow(
        tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, NEW_FILE_MODE if mode is None else mode
    )
    try:
        try:
            if mode is not None:
                _set_mode(fd, tmp, mode)
            write_all(fd, data)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def copy_atomic(src: Path, dst: Path, *, fsync: bool = False) -> None:
    """Give ``dst`` the content of ``src``: a hard link when possible, else an atomic copy.

    ``src`` must not be a symbolic link (``LinkRefusedError``); the copy keeps its mode.
    """
    refuse_link(src)
    try:
        os.link(src, dst)
    except FileExistsError:
        return
    except OSError:
        data = read_bytes(src)
        write_atomic(dst, data, fsync=fsync, mode=stat.S_IMODE(os.lstat(src).st_mode))
        return
    if fsync:
        fsync_dir(dst.parent)


def create_with(path: Path, data: bytes, *, fsync: bool = False, mode: int | None = None) -> bool:
    """Create ``path`` holding ``data`` unless it exists; False (nothing done) if it does.

    Never replaces a file: the content is written to a temporary file first and
    hard-linked into place, so no reader ever finds ``path`` empty or half
    written, even when the process is killed. Where hard links are not
    supported, ``path`` is created exclusively and written.
    """
    if os.path.lexists(path):
        return False
    tmp = _write_temp(path, data, fsync=fsync, mode=mode)
    try:
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:
            fd, created = _open_or_create(path, os.O_WRONLY, mode)
            try:
                if created:
                    write_all(fd, data)
            finally:
                os.close(fd)
            if not created:
                return False
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    if fsync:
        fsync_dir(path.parent)
    return True


def _open_or_create(path: Path, flags: int, mode: int | None) -> tuple[int, bool]:
    """Open ``path`` (no link followed), creating it when missing; (fd, created)."""
    while True:
        try:
            return open_nofollow(path, flags), False
        except FileNotFoundError:
            pass
        try:
            fd = open_nofollow(path, flags | os.O_CREAT | os.O_EXCL, NEW_FILE_MODE)
        except FileExistsError:
            continue  # made by another process in between: open that one
        if mode is not None:
            try:
                _set_mode(fd, str(path), mode)
            except BaseException:
                os.close(fd)
                raise
        return fd, True


def append_fd(path: Path, *, fsync: bool = False, mode: int | None = None) -> int:
    """Open ``path`` for appending (created if missing, with ``mode``); one ``os.write`` a batch."""
    fd, created = _open_or_create(path, os.O_WRONLY | os.O_APPEND, mode)
    if fsync and created:
        fsync_dir(path.parent)
    return fd


def truncate(path: Path, size: int, *, fsync: bool = False) -> None:
    """Cut ``path`` back to ``size`` bytes (dropping a torn or uncommitted tail)."""
    fd = open_nofollow(path, os.O_RDWR)
    try:
        os.ftruncate(fd, size)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def remove_contents(folder: Path, keep: frozenset[str] = frozenset()) -> None:
    """Delete what ``folder`` holds except the names in ``keep``; links are removed, not followed.

    ``folder`` itself must not be a link (``LinkRefusedError``).
    """
    refuse_link(folder)
    with os.scandir(folder) as entries:
        found = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries if e.name not in keep]
    # snapshot.json first: a delete cut short leaves a run that reads as damaged, never one
    # that silently lost its journal and looks like an older state.
    found.sort(key=lambda item: item[0] != "snapshot.json")
    for name, is_dir in found:
        path = folder / name
        if is_dir:
            shutil.rmtree(path)  # never follows links inside the tree
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def tree_size(folder: Path, _seen: set[tuple[int, int]] | None = None) -> int:
    """The bytes the regular files under ``folder`` hold, each hard-linked file once.

    Links and folders count 0; a missing ``folder`` holds 0 bytes.
    """
    seen = set() if _seen is None else _seen
    total = 0
    with contextlib.suppress(FileNotFoundError, NotADirectoryError), os.scandir(folder) as it:
        for entry in it:
            if entry.is_dir(follow_symlinks=False):
                total += tree_size(Path(entry.path), seen)
            elif entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    st = entry.stat(follow_symlinks=False)
                    if (st.st_dev, st.st_ino) not in seen:
                        seen.add((st.st_dev, st.st_ino))
                        total += st.st_size
    return total


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
def locked(path: Path, *, create: bool = True, mode: int | None = None) -> Iterator[int]:
    """Hold an exclusive advisory lock on ``path`` (created if missing with ``create``).

    Yields its fd. The operating system drops the lock when the holder dies,
    so a killed process never leaves it behind; it guards only short
    read-modify-writes. A link is refused (``LinkRefusedError``).
    """
    if create:
        fd, _ = _open_or_create(path, os.O_RDWR, mode)
    else:
        fd = open_nofollow(path, os.O_RDWR)
    try:
        _lock(fd)
        try:
            yield fd
        finally:
            _unlock(fd)
    finally:
        os.close(fd)
