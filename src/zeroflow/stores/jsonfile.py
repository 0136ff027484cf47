"""``JsonFileWorkflowStore``: one folder per run, 0.1.0's layout, crash-safe and O(change).

Per run (format documented in ``docs/STORAGE.md``)::

    <base_dir>/<run_id>/snapshot.json     the last fold: a full snapshot + "store" info
                        metadata.json     0.1.0's summary, refreshed at every fold
                        events.jsonl      one JSON event a line
                        journal/<seq>.jsonl          step records after the fold <seq>
                        journal/<seq>.snapshot.json  earlier folds, kept as history
                        lease.json        who drives the run, until when, its fencing token

A node costs one appended journal line and one appended batch of event
lines; the journal is folded into ``snapshot.json`` at lifecycle transitions
and when it has grown as large as the last fold. A driver's checkpoint is one
``commit``: under the advisory lock of ``lease.json`` the store checks that
the driver's token is still the current one and that the checkpoint follows
the stored one, then writes its events and its journal record (events
first). A driver that takes over a crashed run drops whatever was written
after the last complete record, so the files only ever describe committed
checkpoints.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from .._constants import EVENT_STORE_RECOVERED
from .._errors import (
    RunLockedError,
    RunNotFoundError,
    StoreCorruptError,
    StoreError,
)
from .._journal import StepDelta
from .._models import Event, RunMetadata, RunSnapshot, now_iso
from .._stats import RunSummary, decode_nodes, encode_nodes, node_stats_of_dicts, since_key
from .._store import (
    DEFAULT_LEASE_TTL_SECONDS,
    FINISHED_STATUSES,
    CheckpointInfo,
    CheckpointWrite,
    PruneResult,
)
from .._store_views import LeaseInfo, RunPage, RunQuery
from . import _files
from ._batch import BatchingStore, Writer
from ._common import (
    Reporter,
    apply_delta_dict,
    check_due_query,
    check_holds,
    check_keep_last,
    check_run_id,
    encode_compact,
    encode_event,
    info_of,
    lease_info_of,
    lease_verdict,
    locked_error,
    lost_lease_error,
    moved_on_error,
    process_holder,
    report_corrupt,
    reset_after_fork,
    select_seq,
    snapshot_due,
    status_set,
    timers_of,
    to_seconds,
    waiting_now,
)
from ._files import (
    LinkRefusedError,
    append_fd,
    copy_atomic,
    create_with,
    is_file,
    lock_fd,
    locked,
    read_bytes,
    refuse_link,
    remove_contents,
    tree_size,
    truncate,
    unlock_fd,
    write_atomic,
)
from ._json_index import (
    GONE,
    LISTING_INDEX,
    LISTING_LOCK,
    Entry,
    Gone,
    Listed,
    ListingIndex,
    entry_of,
)

__all__ = ["FORMAT_VERSION", "JsonFileWorkflowStore", "check_run_id"]

FORMAT_VERSION = 1
"""The on-disk format this store writes (``snapshot.json`` → ``"store"."format"``)."""

DUE_INDEX = "due.json"
"""The store-wide due index: ``{"format": 1, "due": {run_id: due_at}}`` (see STORAGE.md)."""
DUE_LOCK = "due.lock"
"""The advisory lock file every writer of ``due.json`` holds."""
_RESERVED = frozenset({DUE_INDEX, DUE_LOCK, LISTING_INDEX, LISTING_LOCK})


def _seg_name(seq: int) -> str:
    return f"{seq:012d}.jsonl"


def _base_name(seq: int) -> str:
    return f"{seq:012d}.snapshot.json"


def _corrupt(path: Path, run_id: str, what: str) -> StoreCorruptError:
    return StoreCorruptError(
        f"{path}: {what}; nothing was overwritten: restore the file from a backup, "
        "or delete the run's folder to drop the run",
        run_id=run_id,
        path=str(path),
    )


def _link_error(path: str | Path, run_id: str | None) -> StoreCorruptError:
    """A link found where the store keeps a run's file or folder: refused, never followed."""
    whose = f"run '{run_id}': " if run_id else ""
    return StoreCorruptError(
        f"{whose}{path} is a symbolic link; the store never follows links inside its folder "
        "(one could make it read, write or delete files elsewhere) and touched nothing: "
        "replace the link by the real file or folder, or remove it",
        run_id=run_id,
        path=str(path),
    )


_ERRNO_FIX = {
    errno.ENOSPC: "free space on that file system",
    errno.EDQUOT: "free space or raise the disk quota",
    errno.EACCES: "give this process read and write access to the run's folder",
    errno.EPERM: "give this process read and write access to the run's folder",
    errno.EROFS: "the file system is read-only: remount it read-write",
    errno.EIO: "the disk reported an I/O error: check it",
    errno.EMFILE: "too many open files: raise the process's file limit",
    errno.ENFILE: "too many open files: raise the system's file limit",
}


def _io_error(exc: OSError, run_id: str | None, where: Path) -> StoreError:
    """``exc`` as the ``StoreError`` (``StoreCorruptError`` for a link) a caller may catch."""
    path = exc.filename if exc.filename is not None else where
    if isinstance(exc, LinkRefusedError):
        return _link_error(path, run_id)
    whose = f"run '{run_id}'" if run_id else f"store {where}"
    fix = _ERRNO_FIX.get(exc.errno or 0, "check the file system")
    return StoreError(
        f"{whose}: {exc.strerror or exc} ({path}); nothing checkpointed before was lost "
        f"and the failed call released what it held: {fix}, then resume or re-run it",
        run_id=run_id,
        path=str(path),
    )


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _guarded(
    method: Callable[Concatenate[JsonFileWorkflowStore, _P], _R],
) -> Callable[Concatenate[JsonFileWorkflowStore, _P], _R]:
    """Let only zeroflow's errors escape ``method``: an ``OSError`` becomes a ``StoreError``.

    The run is the call's first argument (a run id, or a snapshot's ``run_id``).
    """

    def call(self: JsonFileWorkflowStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        except OSError as exc:
            first = args[0] if args else kwargs.get("run_id", kwargs.get("snapshot"))
            run_id = first if isinstance(first, str) else getattr(first, "run_id", None)
            where = self.base_dir / run_id if isinstance(run_id, str) else self.base_dir
            raise _io_error(exc, run_id if isinstance(run_id, str) else None, where) from exc

    functools.update_wrapper(call, method)
    return call


def read_json(path: Path, run_id: str) -> Any:
    """Read one JSON file; a truncated or non-JSON file is a ``StoreCorruptError`` naming it."""
    try:
        raw = read_bytes(path)
    except FileNotFoundError:
        raise RunNotFoundError(run_id) from None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _corrupt(
            path,
            run_id,
            f"is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            "the file is corrupt or was truncated",
        ) from exc
    except UnicodeDecodeError as exc:
        raise _corrupt(path, run_id, f"is not UTF-8 text ({exc.reason})") from exc
    except RecursionError as exc:
        raise _corrupt(path, run_id, "nests too deep to be a zeroflow file") from exc


def _int(value: Any, path: Path, run_id: str, what: str, *, null: bool = False) -> Any:
    """``value`` when it is a whole number >= 0 (or None with ``null``); else corruption."""
    if (type(value) is int and value >= 0) or (null and value is None):
        return value
    raise _corrupt(path, run_id, f"{what} is {value!r}, not a whole number")


def _store_info(data: Any, path: Path, run_id: str) -> dict[str, Any]:
    """The ``"store"`` block of a snapshot file (empty for 0.1.0 files); checks the format."""
    if not isinstance(data, dict):
        raise _corrupt(path, run_id, f"holds a JSON {type(data).__name__}, not a snapshot object")
    _int(data.get("step", 0), path, run_id, '"step"')
    info = data.get("store")
    if info is None:
        return {}
    version = info.get("format") if isinstance(info, dict) else None
    if type(version) is not int or not 1 <= version <= FORMAT_VERSION:
        raise StoreCorruptError(
            f"{path}: snapshot format version {version!r} is not one this zeroflow reads "
            f"(1 to {FORMAT_VERSION}); a newer zeroflow wrote it: upgrade zeroflow to load it",
            run_id=run_id,
            path=str(path),
        )
    assert isinstance(info, dict)
    _int(info.get("seq", 0), path, run_id, '"store"."seq"')
    _int(info.get("events_end"), path, run_id, '"store"."events_end"', null=True)
    return info


def _info(data: Any, path: Path, run_id: str, seq: int) -> CheckpointInfo:
    """``info_of`` for data read from a file: wrong field types are corruption naming it.

    ``seq`` 0 is a 0.1.0 snapshot, which no store numbered: its ``seq`` is None.
    """
    try:
        return info_of(data, seq or None)
    except (TypeError, ValueError, AttributeError) as exc:
        raise _corrupt(path, run_id, f"holds a checkpoint with bad fields ({exc})") from exc


def _snapshot_from(data: Any, path: Path, run_id: str) -> RunSnapshot:
    try:
        return RunSnapshot.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _corrupt(
            path, run_id, f"does not hold a zeroflow snapshot ({type(exc).__name__}: {exc})"
        ) from exc


def _event_lines(events: Iterable[Event]) -> bytes:
    """Events as ``events.jsonl`` lines, 0.1.0's format."""
    return "".join([encode_event(e) + "\n" for e in events]).encode("utf-8")


MAX_LEASE_AHEAD_SECONDS = 366 * 86400.0
"""A lease expiring further ahead than this (1e300, a clock gone wrong) counts as expired."""


@dataclass(slots=True)
class _Lease:
    """``lease.json``: who drives the run, until when, and the run's fencing token.

    A released or broken lease keeps its ``token`` (``owner`` None), so the
    next acquisition's token is still larger. ``events_from`` is where the
    events of a run's first checkpoint begin (set by the driver's first
    commit): a driver that takes over a run with no snapshot yet cuts the
    events of a first commit that was killed halfway back to it. ``notes``
    are the byte ranges of ``events.jsonl`` that other callers appended
    while the run had a driver: recovery keeps them when it cuts the events
    of a checkpoint that never committed.
    """

    owner: str | None = None
    expires_at: float = 0.0
    token: int = 0
    holder: dict[str, Any] | None = None
    events_from: int | None = None
    notes: list[list[int]] = field(default_factory=list)

    def verdict(self, owner: str | None, now: float) -> str:
        expires = self.expires_at
        if not expires - now <= MAX_LEASE_AHEAD_SECONDS:  # NaN, inf and absurd dates too
            expires = math.nan
        return lease_verdict(self.owner, expires, owner, now, who=self.holder)

    def encode(self) -> bytes:
        data: dict[str, Any] = {
            "owner": self.owner,
            "expires_at": self.expires_at if math.isfinite(self.expires_at) else None,
            "token": self.token,
            "holder": self.holder,
        }
        if self.events_from is not None:
            data["events_from"] = self.events_from
        if self.notes:
            data["notes"] = self.notes
        return json.dumps(data).encode("utf-8")


_DECODER = json.JSONDecoder()


def _parse_lease(raw: bytes, run_id: str, path: Path, on_report: Reporter | None = None) -> _Lease:
    """A ``lease.json``'s content; empty content is a free lease, garbage a reported free one.

    Bytes after the first JSON value are ignored: a lease is rewritten in
    place and then cut to its new length, so a kill in between leaves the
    old record's tail behind the complete new one. An expiry that is not a
    number counts as expired. Content that is not a lease record (a torn
    write after a power cut, an edit) is reported as ``store:corrupt`` and
    read as a free lease with token 0: safe, because every commit checks the
    lease's owner as well as its token, and the run must not stay blocked.
    """
    text = raw.lstrip(b" \t\r\n")
    if not text:
        return _Lease()  # made by a lock that never wrote a record
    try:
        data, _ = _DECODER.raw_decode(text.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        data = None
    problem = None
    if not isinstance(data, dict):
        problem = "is not a JSON lease record"
    elif data.get("owner") is not None and not isinstance(data.get("owner"), str):
        problem = f'has an "owner" of {data.get("owner")!r}, not a string'
    elif not (type(data.get("token", 0)) is int and data.get("token", 0) >= 0):
        problem = f'has a "token" of {data.get("token")!r}, not a whole number'
    if problem is not None or not isinstance(data, dict):
        report_corrupt(
            on_report, run_id, str(path), f"{problem}; read as a free lease with token 0"
        )
        return _Lease()
    owner = data.get("owner")
    expires = data.get("expires_at")
    if not isinstance(expires, int | float) or isinstance(expires, bool):
        expires = math.nan
    holder = data.get("holder")
    start = data.get("events_from")
    notes = data.get("notes")
    ranges = []
    if isinstance(notes, list):
        for item in notes:
            if (
                isinstance(item, list)
                and len(item) == 2
                and all(type(n) is int and n >= 0 for n in item)
                and item[0] < item[1]
            ):
                ranges.append([item[0], item[1]])
    return _Lease(
        owner=owner,
        expires_at=float(expires) if math.isfinite(expires) else math.nan,
        token=data.get("token", 0),
        holder=holder if isinstance(holder, dict) else None,
        events_from=start if type(start) is int and start >= 0 else None,
        notes=ranges,
    )


def _read_rest(fd: int, offset: int) -> bytes:
    """What follows ``offset`` in ``fd``, to its end (a lease larger than one read)."""
    chunks = []
    while chunk := os.pread(fd, 65536, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _stat_key(path: Path | str) -> tuple[int, int, int] | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _read_records(path: Path, run_id: str) -> tuple[list[dict[str, Any]], int, int]:
    """Journal records of one segment, the byte length of the complete ones, and torn bytes.

    A last line that is cut short or not JSON is the torn write of a killed
    process: it is left out and its size reported. A bad line before the last
    one is corruption: ``StoreCorruptError`` naming the file and line.
    """
    try:
        raw = read_bytes(path)
    except FileNotFoundError:
        return [], 0, 0
    records: list[dict[str, Any]] = []
    good = 0
    lines = raw.split(b"\n")
    last = len(lines) - 1  # the text after the final newline: empty unless torn
    for number, line in enumerate(lines):
        if number == last:
            return records, good, len(line)
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError) as exc:
            if number == last - 1 and not lines[last]:
                return records, good, len(raw) - good
            raise _corrupt(
                path, run_id, f"line {number + 1} is not a journal record ({exc})"
            ) from exc
        delta = rec.get("delta") if isinstance(rec, dict) else None
        end = rec.get("events_end") if isinstance(rec, dict) else None
        if (
            not isinstance(rec, dict)
            or type(rec.get("seq")) is not int
            or not isinstance(delta, dict)
            or type(delta.get("step", 0)) is not int
            or not (end is None or (type(end) is int and end >= 0))
        ):
            raise _corrupt(
                path,
                run_id,
                f"line {number + 1} is not a journal record (its seq, events_end, delta or "
                "step has the wrong type)",
            )
        records.append(rec)
        good += len(line) + 1
    return records, good, 0


class _Writer(Writer):
    """A run's writer in the JSON store: also its open files and where its files end."""

    __slots__ = (
        "base_status",
        "events_fd",
        "events_size",
        "folder",
        "fresh",
        "journal_bytes",
        "journal_fd",
        "last_events_end",
        "lease",
        "lease_fd",
        "lease_raw",
        "on_disk",
        "paths",
        "step",
        "token",
    )

    def __init__(self) -> None:
        super().__init__()
        self.journal_bytes = 0
        self.base_status: str | None = None
        self.step = 0
        self.events_size = 0
        self.folder = Path()
        self.last_events_end: int | None = None
        self.events_fd: int | None = None
        self.journal_fd: int | None = None
        # ``lease.json``, kept open while this writer holds the lease, and its content as
        # this writer last read or wrote it (parsed once, not at every commit).
        self.lease_fd: int | None = None
        self.lease_raw = b""
        self.lease: _Lease | None = None
        self.fresh = False
        self.token: int | None = None
        # (base_seq, folder, snapshot.json, journal segment, lease.json) as strings.
        self.paths: tuple[int, Path, str, str, str] | None = None
        # The run's files as this writer last saw them: an unleased write re-reads the
        # counters when another process changed them since.
        self.on_disk: tuple[Any, ...] | None = None

    def close(self) -> None:
        for fd in (self.events_fd, self.journal_fd, self.lease_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.events_fd = self.journal_fd = self.lease_fd = None
        self.lease = None


_COUNTERS = (
    "seq",
    "base_seq",
    "base_bytes",
    "records",
    "journal_bytes",
    "base_status",
    "step",
    "events_size",
    "last_events_end",
    "fresh",
    "on_disk",
)


class JsonFileWorkflowStore(BatchingStore[_Writer]):
    """Keeps each run in ``base_dir/<run_id>/``; reads runs written by zeroflow 0.1.0.

    ``fsync=False`` (default) survives a killed process: every write reaches
    the operating system before the checkpoint completes. ``fsync=True`` also
    survives power loss: files and folders are fsynced on every commit,
    create and replace. ``lease_ttl_seconds`` bounds how long a crashed
    driver blocks its run (a driver that died on this host frees it at once);
    ``clock`` (epoch seconds) is injectable for tests. ``file_mode`` sets the
    permission bits of new files (None: ``0o666`` less the umask); a replaced
    file keeps the bits it had. ``on_report`` receives a ``store:corrupt``
    event for each damaged run a listing or prune skips (None: a warning on
    the ``zeroflow.stores`` logger). Only zeroflow's errors escape: an
    ``OSError`` becomes a ``StoreError`` naming the run and the file, a
    symbolic link inside ``base_dir`` a ``StoreCorruptError`` naming it.
    """

    durable = True
    """Checkpoints are files: they outlive the process."""

    def __init__(
        self,
        base_dir: str | Path,
        *,
        fsync: bool = False,
        lease_ttl_seconds: float = DEFAULT_LEASE_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
        file_mode: int | None = None,
        on_report: Reporter | None = None,
    ) -> None:
        if file_mode is not None and (
            isinstance(file_mode, bool)
            or not isinstance(file_mode, int)
            or not 0 <= file_mode <= 0o777
        ):
            raise ValueError(f"file_mode must be permission bits such as 0o600, got {file_mode!r}")
        self.base_dir = Path(base_dir)
        try:
            self.base_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _io_error(exc, None, self.base_dir) from exc
        self.fsync = fsync
        self.lease_ttl_seconds = float(lease_ttl_seconds)
        self.file_mode = file_mode
        self.on_report = on_report
        self._clock = clock
        self._lock = threading.RLock()
        self._writers: dict[str, _Writer] = {}
        self._listing = ListingIndex(
            self.base_dir,
            fsync=fsync,
            file_mode=file_mode,
            scan=self._scan_listing,
            report=lambda path, reason: self._report(LISTING_INDEX, path, reason),
        )
        try:
            self._listing.start_empty()
        except OSError as exc:
            raise _io_error(exc, None, self.base_dir) from exc
        reset_after_fork(self)

    def _forked(self) -> None:
        for w in self._writers.values():
            w.close()  # the child's copies of the parent's descriptors
        super()._forked()

    def _run_dir(self, run_id: str) -> Path:
        """``base_dir/<run_id>``; a run folder that is a symbolic link is refused."""
        if run_id in _RESERVED:
            raise StoreError(
                f"run id {run_id!r} names a file of the JSON store itself (its due index); "
                "choose another run id",
                run_id=run_id,
            )
        folder = self.base_dir / check_run_id(run_id)
        try:
            refuse_link(folder)
        except LinkRefusedError:
            raise _link_error(folder, run_id) from None
        return folder

    @staticmethod
    def _journal_dir(folder: Path, run_id: str) -> Path:
        """``folder/journal``; refused when it is a symbolic link."""
        journal = folder / "journal"
        try:
            refuse_link(journal)
        except LinkRefusedError:
            raise _link_error(journal, run_id) from None
        return journal

    # ------------------------------------------------------------------ the public calls
    # Each lets only zeroflow's errors out (``_guarded``): an OSError becomes a StoreError.

    @_guarded
    def save_snapshot(self, snapshot: RunSnapshot) -> None:
        """Write ``snapshot`` at once as the run's next checkpoint (unfenced: 0.1.0's API)."""
        super().save_snapshot(snapshot)

    @_guarded
    def append_step(self, run_id: str, delta: StepDelta) -> bool:
        """Write one step at once (unfenced); True asks for a full snapshot next."""
        return super().append_step(run_id, delta)

    @_guarded
    def append_events(self, run_id: str, events: Sequence[Event]) -> None:
        """Events in order, written at once; they keep their place if the run's driver crashes."""
        super().append_events(run_id, events)

    @_guarded
    def flush(self) -> None:
        """Commit whatever a driven run has pending."""
        super().flush()

    def commit(self, run_id: str, owner: str, token: int, write: CheckpointWrite) -> bool:
        """Write one checkpoint of a driven run and its events now (``LeasingStore.commit``).

        A failed write (disk full) leaves the files as they were before it.
        """
        try:
            return super().commit(run_id, owner, token, write)
        except OSError as exc:
            raise _io_error(exc, run_id, self.base_dir / run_id) from exc

    # ------------------------------------------------------------------ writes

    def _append_unleased(self, run_id: str, events: Sequence[Event]) -> None:
        """Append ``events`` under the run's lock; recorded as notes while a driver holds it.

        A driver's crash recovery cuts the events of a checkpoint that never
        committed; the ranges recorded here are kept.
        """
        folder = self._run_dir(run_id)
        folder.mkdir(exist_ok=True)
        data = _event_lines(events)
        lease_path = folder / "lease.json"
        try:
            with locked(lease_path, create=False) as lfd:
                lease = self._read_lease(lfd, run_id, lease_path)
                start = self._append_file(folder / "events.jsonl", data)
                if lease.owner is not None:
                    lease.notes.append([start, start + len(data)])
                    self._write_lease(lfd, lease)
        except FileNotFoundError:
            self._append_file(folder / "events.jsonl", data)  # never leased: nothing to cut
        w = self._writers.get(run_id)
        if w is not None:
            w.events_size += len(data)

    def _append_file(self, path: Path, data: bytes) -> int:
        """Append ``data`` to ``path`` in one write; returns where it starts."""
        fd = append_fd(path, fsync=self.fsync, mode=self.file_mode)
        try:
            start = os.fstat(fd).st_size
            try:
                _files.write_all(fd, data)
            except OSError as exc:
                _undo_append(fd, exc, len(data))
                exc.filename = str(path)
                raise
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        return start

    def close(self) -> None:
        """Flush and close the files this store keeps open; the store stays usable."""
        with self._lock:
            try:
                self.flush()
            finally:
                for w in self._writers.values():
                    w.close()
                self._writers.clear()

    @staticmethod
    def _paths(w: _Writer) -> tuple[int, Path, str, str, str]:
        """The paths of ``w``'s run as plain strings, kept per writer (used at every commit)."""
        cached = w.paths
        if cached is None or cached[0] != w.base_seq or cached[1] != w.folder:
            folder = w.folder
            cached = w.paths = (
                w.base_seq,
                folder,
                str(folder / "snapshot.json"),
                str(folder / "journal" / _seg_name(w.base_seq)),
                str(folder / "lease.json"),
            )
        return cached

    def _on_disk(self, w: _Writer) -> tuple[Any, ...]:
        """What changes when any process writes a checkpoint of the run (two ``lstat``)."""
        paths = self._paths(w)
        return (_stat_key(paths[2]), _stat_key(paths[3]))

    def _refresh(self, run_id: str, w: _Writer) -> None:
        """Re-read ``w``'s counters when another process wrote the run since ``w`` last did."""
        if w.on_disk == self._on_disk(w):
            return
        current = self._open_writer(run_id)
        w.close()
        for name in _COUNTERS:
            setattr(w, name, getattr(current, name))

    def _refuse_orphan(self, folder: Path, run_id: str) -> None:
        """``StoreCorruptError`` when a run with no ``snapshot.json`` shows it had one.

        Its ``metadata.json`` or journal files are written only with or after a
        snapshot: the run lost its state, and starting it afresh would mix the
        old journal into the new run or cut its events.
        """
        found = [name for name in ("metadata.json",) if refuse_link(folder / name)]
        journal = self._journal_dir(folder, run_id)
        with contextlib.suppress(FileNotFoundError, NotADirectoryError), os.scandir(journal) as it:
            if any(e.name.endswith((".jsonl", ".snapshot.json")) for e in it):
                found.append("journal/")
        if found:
            raise StoreCorruptError(
                f"run '{run_id}': {folder / 'snapshot.json'} is missing but "
                f"{' and '.join(found)} exist: the run's latest state is lost and was not "
                "started over; restore snapshot.json from a backup, or delete the run "
                f"(store.delete_run('{run_id}')) to reuse its id",
                run_id=run_id,
                path=str(folder / "snapshot.json"),
            )

    def _open_writer(
        self, run_id: str, *, recover: bool = False, lease: _Lease | None = None
    ) -> _Writer:
        """Read the run's counters; with ``recover``, cut torn or uncommitted tails.

        ``lease`` (held under its lock): ``events_from``, where the events of a
        killed first commit begin, cut when the run still has no snapshot, and
        the ``notes`` that such cuts keep.
        """
        folder = self._run_dir(run_id)
        journal = self._journal_dir(folder, run_id)
        journal.mkdir(parents=True, exist_ok=True)
        w = _Writer()
        w.folder = folder
        events = folder / "events.jsonl"
        try:
            w.events_size = os.lstat(events).st_size if refuse_link(events) else 0
            snap_path = folder / "snapshot.json"
            has_snapshot = refuse_link(snap_path)
            refuse_link(folder / "metadata.json")
        except LinkRefusedError as exc:
            raise _link_error(exc.filename, run_id) from None
        if not has_snapshot:
            self._refuse_orphan(folder, run_id)
            w.fresh = True
            events_from = None if lease is None else lease.events_from
            if recover and events_from is not None and w.events_size > events_from:
                # A first commit was killed after its events, before its snapshot: its
                # events describe nothing. Events appended around it (notes) stay.
                assert lease is not None
                w.events_size -= self._drop_events(events, w.events_size, events_from, lease)
            w.on_disk = self._on_disk(w)
            return w
        data = read_json(snap_path, run_id)
        info = _store_info(data, snap_path, run_id)
        w.base_seq = w.seq = int(info.get("seq", 0))
        w.base_bytes = os.lstat(snap_path).st_size
        w.base_status = data.get("status")
        w.step = int(data.get("step", 0))
        w.last_events_end = info.get("events_end")
        seg = journal / _seg_name(w.base_seq)
        records, good, torn = _read_records(seg, run_id)
        records = [r for r in records if r["seq"] > w.base_seq]
        if records:
            w.seq = records[-1]["seq"]
            w.step = int(records[-1]["delta"].get("step", w.step))
            w.last_events_end = records[-1].get("events_end")
        w.records = len(records)
        w.journal_bytes = good
        w.on_disk = self._on_disk(w)
        if not recover:
            return w
        for stale in folder.glob(".*.tmp"):  # a replace that a killed process never finished
            stale.unlink(missing_ok=True)
        meta_path = folder / "metadata.json"
        try:
            meta = json.loads(read_bytes(meta_path))
        except (FileNotFoundError, ValueError, RecursionError):
            meta = None
        # Killed between the two replaces, or damaged: metadata.json is derived, rebuild it.
        if (
            not isinstance(meta, dict)
            or meta.get("status") != data.get("status")
            or meta.get("seq") != w.base_seq
        ):
            summary = json.dumps(_metadata_of(data, self._clock()), indent=2)
            write_atomic(meta_path, summary, fsync=self.fsync, mode=self.file_mode)
            entry = entry_of(data, w.base_seq)
            if entry is not None:  # the snapshot is the truth: a settled line
                self._listing.note(run_id, entry)
        dropped = 0
        if torn:
            truncate(seg, good, fsync=self.fsync)
        end = w.last_events_end
        if type(end) is int and w.events_size > end:
            dropped = self._drop_events(events, w.events_size, end, lease)
            w.events_size -= dropped
        if torn or dropped:
            last = records[-1]["delta"] if records else data
            recovered = Event(
                run_id,
                int(last.get("step", 0)),
                int(last.get("wave", 1)),
                None,
                EVENT_STORE_RECOVERED,
                now_iso(self._clock()),
                {
                    "file": str(seg),
                    "torn_bytes": torn,
                    "uncommitted_event_bytes": dropped,
                    "recovered_seq": w.seq,
                },
            )
            w.pending_events.append(recovered)
        return w

    def _drop_events(self, path: Path, size: int, cut: int, lease: _Lease | None) -> int:
        """Drop the bytes of ``path`` after ``cut`` but the notes of ``lease``; returns the cut.

        Without notes the file is cut back to ``cut``. With notes, the bytes
        between them are overwritten with empty lines (which readers skip) and
        the file is cut after the last note: the notes keep their offsets, so
        doing this twice (a crash during recovery) gives the same file.
        """
        notes = sorted(r for r in (lease.notes if lease else ()) if r[0] >= cut and r[1] <= size)
        if not notes:
            truncate(path, cut, fsync=self.fsync)
            return size - cut
        fd = _files.open_nofollow(path, os.O_RDWR)
        try:
            pos = cut
            for start, end in notes:
                if start > pos:
                    os.pwrite(fd, b"\n" * (start - pos), pos)
                pos = max(pos, end)
            os.ftruncate(fd, pos)
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        return size - pos

    def _commit(self, run_id: str, w: _Writer) -> None:
        """Write what ``w`` holds; fenced (``w.fence``) under the lock of ``lease.json``."""
        if w.fence is not None:
            self._commit_fenced(run_id, w, w.fence)
            return
        if not (w.has_state() or w.pending_events):
            if w.owner is None:
                w.close()
            return
        if w.owner is None:
            self._refresh(run_id, w)
            if w.pending_steps and w.base_seq < 0:
                raise RunNotFoundError(run_id)
        try:
            self._write_pending(run_id, w)
        except OSError:
            _stale(w)
            raise
        w.on_disk = self._on_disk(w)

    def _commit_fenced(self, run_id: str, w: _Writer, fence: tuple[str, int, int]) -> None:
        """Check ``owner``, ``token`` and ``seq`` and write, all under ``lease.json``'s lock.

        Another process can take the lease only under that lock, so it cannot
        take it between the check and the write. On refusal nothing is written;
        a write that fails (disk full) is undone before the lock is given back.
        """
        owner, token, seq = fence
        folder = w.folder
        fd = self._lease_fd(run_id, owner, w)
        lock_fd(fd)
        try:
            if os.fstat(fd).st_nlink == 0:
                # The run's folder was deleted since this writer opened lease.json: the
                # lease went with it (a folder made since is not this lease's).
                raise lost_lease_error(run_id, owner, None, "the run's folder was deleted")
            raw = os.pread(fd, 65536, 0)
            if len(raw) == 65536:
                raw += _read_rest(fd, 65536)
            lease = w.lease
            if lease is None or raw != w.lease_raw:
                lease = _parse_lease(raw, run_id, folder / "lease.json", self.on_report)
            _check_holds(lease, run_id, owner, token)
            # Where the run stands on disk (two stat calls when nobody else wrote it): this
            # instance may not have taken the lease, or an unleased write may have landed.
            self._refresh(run_id, w)
            w.owner, w.token = owner, token
            latest = w.seq if w.base_seq >= 0 else None
            if seq != (latest or 0) + 1:
                raise moved_on_error(run_id, seq, latest)
            if w.pending_steps and w.base_seq < 0:
                raise RunNotFoundError(run_id)
            now = self._clock()
            marked = False
            if w.fresh:
                key = _stat_key(folder / "events.jsonl")
                size = 0 if key is None else key[2]
                marked = lease.events_from != size
                lease.events_from = size
            if marked or not lease.expires_at - now > self.lease_ttl_seconds * 2 / 3:
                lease.expires_at = now + self.lease_ttl_seconds
                if lease.notes:  # notes inside the committed events need no keeping
                    done = w.last_events_end or 0
                    lease.notes = [r for r in lease.notes if r[1] > done]
                raw = self._write_lease(fd, lease, sync=marked, size=len(raw))
            w.lease, w.lease_raw = lease, raw
            base, seen, steps = w.base_seq, w.on_disk, bool(w.pending_steps)
            try:
                self._write_pending(run_id, w, fenced=True)
            except OSError:
                _stale(w)
                raise
            if w.base_seq != base or seen is None:
                w.on_disk = self._on_disk(w)
            elif steps and w.journal_fd is not None:
                # Only this commit's journal lines changed the run's files: one fstat.
                st = os.fstat(w.journal_fd)
                w.on_disk = (seen[0], (st.st_ino, st.st_mtime_ns, st.st_size))
        except BaseException:
            w.lease = None  # read it afresh next time
            raise
        finally:
            unlock_fd(fd)

    def _lease_fd(self, run_id: str, owner: str, w: _Writer) -> int:
        """``lease.json`` of ``w``'s run, opened once per writer (``w.close`` closes it)."""
        fd = w.lease_fd
        if fd is None:
            try:
                # No O_CREAT: a run folder that is gone means the lease is gone with it.
                fd = _files.open_nofollow(self._paths(w)[4], os.O_RDWR)
            except FileNotFoundError:
                raise lost_lease_error(run_id, owner, None, "the run's folder is gone") from None
            w.lease_fd = fd
            w.lease = None
        return fd

    def _write_pending(self, run_id: str, w: _Writer, *, fenced: bool = False) -> None:
        """Write pending events, then the pending record or fold; fold the journal when due.

        ``fenced`` (under the lease's lock, which notes take too): a write that
        fails before the checkpoint is on disk (its journal line or its
        snapshot) is cut back off both files, so they hold only committed
        checkpoints and the events that led to them.
        """
        folder = w.folder
        fsync = self.fsync
        undo_events: int | None = None  # bytes of this call at the end of events.jsonl
        try:
            if w.pending_events:
                data = _event_lines(w.pending_events)
                w.pending_events = []
                if w.events_fd is None:
                    w.events_fd = append_fd(
                        folder / "events.jsonl", fsync=fsync, mode=self.file_mode
                    )
                try:
                    _files.write_all(w.events_fd, data)
                except OSError as exc:
                    if fenced:
                        _undo_append(w.events_fd, exc, len(data))
                    exc.filename = str(folder / "events.jsonl")
                    raise
                undo_events = len(data)
                # Where the file ends now, not where this writer last left it: another
                # process may have appended events without the lease (an operator's note).
                w.events_size = os.lseek(w.events_fd, 0, os.SEEK_CUR)
                if fsync:
                    os.fsync(w.events_fd)
            events_end = w.events_size if w.owner is not None else None
            if w.pending_steps:
                end = "null" if events_end is None else str(events_end)
                lines = []
                seq = w.seq
                for body, _delta in w.pending_steps:
                    seq += 1
                    lines.append(f'{{"seq":{seq},"events_end":{end},"delta":{body}}}\n')
                data = "".join(lines).encode("utf-8")
                if w.journal_fd is None:
                    seg = Path(self._paths(w)[3])
                    w.journal_fd = append_fd(seg, fsync=fsync, mode=self.file_mode)
                try:
                    _files.write_all(w.journal_fd, data)
                except OSError as exc:
                    if fenced:
                        _undo_append(w.journal_fd, exc, len(data))
                    exc.filename = self._paths(w)[3]
                    raise
                if fsync:
                    try:
                        os.fsync(w.journal_fd)
                    except OSError as exc:
                        if fenced:  # not known to be on disk: not committed
                            exc.written = len(data)  # type: ignore[attr-defined]
                            _undo_append(w.journal_fd, exc, len(data))
                        exc.filename = self._paths(w)[3]
                        raise
                undo_events = None  # committed: the journal line is on disk
                w.seq = seq
                w.step = w.pending_steps[-1][1].step
                w.pending_steps = []
                w.records += len(lines)
                w.journal_bytes += len(data)
                w.last_events_end = events_end
                if w.pending_full is None and self._fold_due(w, w.records, w.journal_bytes):
                    live = self._rebuild(run_id, folder, w.base_seq, w.seq)
                    settle = self._index(run_id, live, w.seq, w.base_status)
                    self._write_base(folder, w, live, w.last_events_end)
                    self._write_meta(folder, live)
                    if settle is not None:
                        self._listing.note(run_id, settle)
            if w.pending_full is not None:
                full, w.pending_full = w.pending_full, None
                # The due index learns of a timer before the snapshot holds it and forgets
                # one after: a crash in between leaves an entry too many, never one too few.
                due, indexed = snapshot_due(full), w.base_status in (None, "waiting")
                if due is not None:
                    self._due_index(run_id, due)
                settle = self._index(run_id, full, w.seq + 1, w.base_status)
                self._write_base(folder, w, full, events_end, seq=w.seq + 1)
                undo_events = None  # committed: snapshot.json is replaced
                # Every fold: metadata.json names the fold whose journal a listing reads.
                self._write_meta(folder, full)
                if settle is not None:
                    self._listing.note(run_id, settle)
                if due is None and indexed:
                    self._due_index(run_id, None)
        except OSError:
            if fenced and undo_events is not None and w.events_fd is not None:
                with contextlib.suppress(OSError):
                    os.ftruncate(w.events_fd, w.events_size - undo_events)
            raise
        finally:
            if w.owner is None:
                w.close()

    def _write_base(
        self,
        folder: Path,
        w: _Writer,
        data: dict[str, Any],
        events_end: int | None,
        *,
        seq: int | None = None,
    ) -> None:
        """Make ``data`` the run's fold at ``seq`` (default ``w.seq``); the old fold stays.

        The writer's counters move once ``snapshot.json`` is replaced.
        ``metadata.json`` is the caller's (``_write_meta``), at lifecycle saves
        only: its status cannot change in between.
        """
        seq = w.seq if seq is None else seq
        data["store"] = {"format": FORMAT_VERSION, "seq": seq, "events_end": events_end}
        data["seq"] = seq
        text = encode_compact(data)
        snap_path = folder / "snapshot.json"
        if w.base_seq >= 0 and refuse_link(snap_path):
            copy_atomic(snap_path, folder / "journal" / _base_name(w.base_seq), fsync=self.fsync)
        write_atomic(snap_path, text, fsync=self.fsync, mode=self.file_mode)
        if w.journal_fd is not None:
            os.close(w.journal_fd)
            w.journal_fd = None
        w.seq = seq
        w.step = int(data["step"])
        w.base_seq = seq
        w.base_bytes = len(text)
        w.records = 0
        w.journal_bytes = 0
        w.last_events_end = events_end
        w.fresh = False
        w.fold_wanted = False
        w.base_status = data.get("status")

    def _write_meta(self, folder: Path, data: dict[str, Any]) -> None:
        """Rewrite ``metadata.json``: 0.1.0's summary of the snapshot dict ``data``."""
        summary = _metadata_of(data, self._clock())
        write_atomic(
            folder / "metadata.json",
            json.dumps(summary, indent=2),
            fsync=self.fsync,
            mode=self.file_mode,
        )

    # ------------------------------------------------------------------ the listing index

    def _index(
        self, run_id: str, data: dict[str, Any], seq: int, before: str | None
    ) -> Entry | None:
        """Tell ``listing.jsonl`` of the full save ``data`` (checkpoint ``seq``) before it is
        written; returns the line to settle it with once ``metadata.json`` is written.

        A save that keeps the status (a fold) is one settled line: a crash after it
        leaves only the time ahead. One that changes it (or starts the run) is an
        intent naming the status ``before``, settled after the save: a crash in between
        leaves the run listed under both statuses until a page shows it, never neither.
        """
        entry = entry_of(data, seq)
        if entry is None:
            return None
        if before is not None and before == entry[1]:
            self._listing.note(run_id, entry)
            return None
        self._listing.note(run_id, entry, (before,))
        return entry

    @_guarded
    def query_runs(self, query: RunQuery) -> RunPage:
        """One page of summaries, newest update first (``RunQueryStore``), from
        ``listing.jsonl``: only the page's runs are read (their ``metadata.json``, and a
        running run's journal tail). A missing or damaged index is rebuilt from every
        run's ``metadata.json`` first (reported through ``on_report``)."""
        self.flush()
        rows, total = self._listing.page(query, self._listed, self._quiet)
        return RunPage(tuple(rows), total)

    def _scan_listing(self) -> dict[str, Entry]:
        """Every readable run's index entry, from its ``metadata.json`` (a rebuild)."""
        out = {}
        for folder, data, _item in self._metadata():
            seq = data.get("seq")
            entry = entry_of(data, seq if type(seq) is int else None)
            if entry is not None and folder.name not in _RESERVED:
                out[folder.name] = entry
        return out

    def _listed(self, run_id: str) -> Listed | Gone | None:
        """``run_id``'s entry and summary as its ``metadata.json`` says; ``GONE`` when its
        folder is gone; None when it cannot be listed (reported when damaged)."""
        try:
            if run_id in _RESERVED or check_run_id(run_id) != run_id:
                return None
        except StoreError:
            return None  # a crafted entry: never a path outside the store
        folder = self.base_dir / run_id
        meta = folder / "metadata.json"
        try:
            if not refuse_link(folder):
                return GONE
            raw = read_bytes(meta)
            data = json.loads(raw)
        except FileNotFoundError:
            orphan = self._without_metadata(folder, run_id)
            if orphan is not None:
                self._report(run_id, meta, orphan)
            elif not os.path.lexists(folder / "snapshot.json"):
                return GONE  # no checkpoint at all: a first save that never happened
            return None
        except LinkRefusedError as exc:
            self._report(run_id, Path(exc.filename), "a symbolic link, not followed")
            return None
        except (OSError, ValueError, RecursionError) as exc:
            self._report(run_id, meta, f"metadata.json cannot be read as JSON ({exc})")
            return None
        problem = _metadata_problem(data)
        if problem is not None:
            self._report(run_id, meta, f"metadata.json {problem}")
            return None
        try:
            item = RunMetadata.from_dict({**data, "run_id": data.get("run_id", run_id)})
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self._report(run_id, meta, f"metadata.json: its last_error is not an error ({exc})")
            return None
        seq = data.get("seq")
        entry = entry_of(data, seq if type(seq) is int else None)
        assert entry is not None  # _metadata_problem checked the name and the status
        return Listed(entry, _current(folder, data, item))

    def _quiet(self, run_id: str) -> contextlib.AbstractContextManager[object]:
        """The run's lease lock, when it has a ``lease.json``: no commit of it is under way."""
        stack = contextlib.ExitStack()
        with contextlib.suppress(OSError):
            stack.enter_context(locked(self.base_dir / run_id / "lease.json", create=False))
        return stack

    # ------------------------------------------------------------------ the due index

    def _due_index(self, run_id: str, due: float | None) -> None:
        """Set (or with None, drop) ``run_id``'s entry in ``due.json`` under its lock file.

        A read-modify-write of one small file (an entry per waiting run with a
        timer), replaced atomically: readers see the old index or the new one.
        """
        path = self.base_dir / DUE_INDEX
        if due is None and not os.path.lexists(path):
            return  # no index: no run ever had a timer (only this run's writer adds its entry)
        with self._lock, locked(self.base_dir / DUE_LOCK, mode=self.file_mode):
            entries = self._read_due(path)
            if entries is None:
                if due is None:
                    return  # no index yet: nothing to forget
                entries = self._rebuild_due()
            if entries.get(run_id) == due or (due is None and run_id not in entries):
                return
            if due is None:
                del entries[run_id]
            else:
                entries[run_id] = due
            body = {"format": FORMAT_VERSION, "due": dict(sorted(entries.items()))}
            write_atomic(path, json.dumps(body, indent=1), fsync=self.fsync, mode=self.file_mode)

    def _read_due(self, path: Path) -> dict[str, float] | None:
        """The entries of ``due.json``; None when it is missing; a damaged one is rebuilt."""
        try:
            raw = read_bytes(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._report(DUE_INDEX, path, f"the due index cannot be read ({exc}); rebuilt")
            return self._rebuild_due()
        try:
            data = json.loads(raw)
            entries = data["due"]
            return {
                str(k): float(v)
                for k, v in entries.items()
                if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            }
        except (ValueError, RecursionError, KeyError, TypeError, AttributeError) as exc:
            self._report(DUE_INDEX, path, f"the due index is damaged ({exc}); rebuilt")
            return self._rebuild_due()

    def _rebuild_due(self) -> dict[str, float]:
        """The due index recomputed from every run's ``metadata.json`` (after damage only)."""
        return {
            item.run_id or folder.name: item.due_at
            for folder, _, item in self._metadata()
            if item.status == "waiting" and item.due_at is not None
        }

    @_guarded
    def due_runs(
        self, now: float, limit: int | None = None, *, workflow_name: str | None = None
    ) -> list[RunMetadata]:
        """Waiting runs whose earliest timer is due by ``now`` (``DueStore``), from ``due.json``.

        Each candidate is confirmed by its ``metadata.json`` (an entry whose run
        has moved on is skipped), so only due runs are read, never every run.
        """
        now = check_due_query(now, limit)
        self.flush()
        entries = self._read_due(self.base_dir / DUE_INDEX) or {}
        out = []
        for _, run_id in sorted((d, r) for r, d in entries.items() if d <= now):
            try:
                if run_id in _RESERVED or check_run_id(run_id) != run_id:
                    continue
            except StoreError:
                continue  # a crafted entry: never a path outside the store
            meta = self.base_dir / run_id / "metadata.json"
            try:
                data = json.loads(read_bytes(meta))
            except (OSError, ValueError, RecursionError):
                continue  # deleted, or being written: the next call sees it
            if _metadata_problem(data) is not None:
                continue
            try:
                item = RunMetadata.from_dict({**data, "run_id": data.get("run_id", run_id)})
            except (KeyError, TypeError, ValueError, AttributeError):
                continue
            if item.status != "waiting" or item.due_at is None or item.due_at > now:
                continue
            if workflow_name is not None and item.workflow_name != workflow_name:
                continue
            out.append(replace(item, waiting_nodes=tuple(data.get("waiting_nodes") or ())))
            if limit is not None and len(out) >= limit:
                break
        return out

    # ------------------------------------------------------------------ reads

    @_guarded
    def load_snapshot(
        self, run_id: str, step: int | None = None, *, seq: int | None = None
    ) -> RunSnapshot:
        """The run's latest checkpoint, the last one taken at ``step``, or checkpoint
        ``seq`` exactly; always one whole.

        A fold written by another process while this reads is detected (every
        fold records its ``seq``) and the fold it replaced is read from the
        history instead, so a read never mixes two checkpoints.
        """
        folder = self._run_dir(run_id)
        self._commit_run(run_id)
        if step is not None or seq is not None:
            return self._consistent(lambda: self._load_step(run_id, folder, step, seq))
        snap_path = folder / "snapshot.json"
        try:
            data = read_json(snap_path, run_id)
        except RunNotFoundError:
            self._refuse_orphan(folder, run_id)
            raise
        info = _store_info(data, snap_path, run_id)
        seq = base_seq = int(info.get("seq", 0))
        seg = self._journal_dir(folder, run_id) / _seg_name(base_seq)
        # Segment <S> only grows while <S> is the fold and is never rewritten after: read
        # after snapshot.json, it holds every record from S on, even if a fold came since.
        records = [r for r in _read_records(seg, run_id)[0] if r["seq"] > base_seq]
        _replay(data, records, base_seq, seg, run_id)
        if records:
            seq = records[-1]["seq"]
        data["seq"] = seq or None  # 0: a 0.1.0 snapshot, which no store numbered
        return _snapshot_from(data, snap_path, run_id)

    def _load_step(
        self, run_id: str, folder: Path, step: int | None, wanted: int | None
    ) -> RunSnapshot:
        entries, bases = self._entries(run_id, folder)
        seq = select_seq(run_id, entries, step, wanted)
        base = max(s for s in bases if s <= seq)
        data = self._rebuild(run_id, folder, base, seq, bases)
        data["seq"] = seq or None  # 0: a 0.1.0 snapshot, which no store numbered
        return _snapshot_from(data, bases[base], run_id)

    @staticmethod
    def _consistent(read: Callable[[], _R]) -> _R:
        """Run ``read`` again when the run's history changed under it (``_Moved``)."""
        for _ in range(_READ_ATTEMPTS - 1):
            try:
                return read()
            except _Moved:
                continue
        try:
            return read()
        except _Moved as exc:
            raise StoreError(
                f"{exc.path}: the run kept changing while it was read "
                f"({_READ_ATTEMPTS} attempts); retry the read",
                run_id=exc.run_id,
                path=str(exc.path),
            ) from None

    @_guarded
    def latest_checkpoint(self, run_id: str) -> int | None:
        """The ``seq`` of the run's latest checkpoint; None when the store has none.

        Known without reading files while this store holds the run's lease;
        otherwise read from disk (another process may have written the run).
        """
        folder = self._run_dir(run_id)
        with self._lock:
            w = self._writers.get(run_id)
            if w is not None and w.owner is not None:
                self._commit(run_id, w)
                self._refresh(run_id, w)  # two stat calls, unless another process wrote
                return None if w.base_seq < 0 else w.seq
        snap_path = folder / "snapshot.json"
        try:
            info = _store_info(read_json(snap_path, run_id), snap_path, run_id)
        except RunNotFoundError:
            self._refuse_orphan(folder, run_id)
            return None
        base_seq = int(info.get("seq", 0))
        seg = self._journal_dir(folder, run_id) / _seg_name(base_seq)
        records = _read_records(seg, run_id)[0]
        return max([base_seq, *(int(r["seq"]) for r in records)])

    def _bases(self, folder: Path, run_id: str) -> dict[int, Path]:
        """Every fold of the run by sequence number: history folds and ``snapshot.json``.

        ``snapshot.json`` is read first: a fold made after it is read has
        already linked the fold it replaced into the history, where
        ``_read_fold`` finds it.
        """
        snap_path = folder / "snapshot.json"
        try:
            info = _store_info(read_json(snap_path, run_id), snap_path, run_id)
        except RunNotFoundError:
            self._refuse_orphan(folder, run_id)
            raise
        out: dict[int, Path] = {}
        for path in self._journal_dir(folder, run_id).glob("*.snapshot.json"):
            with contextlib.suppress(ValueError):
                out[int(path.name.split(".")[0])] = path
        out[int(info.get("seq", 0))] = snap_path
        return out

    def _read_fold(self, folder: Path, run_id: str, seq: int, path: Path) -> dict[str, Any]:
        """The fold ``seq`` (snapshot dict) from ``path``, or from the history if it moved on.

        ``_Moved`` when neither holds it (the history was pruned meanwhile).
        """
        try:
            data = read_json(path, run_id)
        except RunNotFoundError:
            data = None
        if data is not None and int(_store_info(data, path, run_id).get("seq", 0)) == seq:
            return dict(data)
        kept = folder / "journal" / _base_name(seq)
        if kept != path:
            try:
                data = read_json(kept, run_id)
            except RunNotFoundError:
                data = None
            if data is not None and int(_store_info(data, kept, run_id).get("seq", 0)) == seq:
                return dict(data)
        raise _Moved(run_id, path)

    def _rebuild(
        self,
        run_id: str,
        folder: Path,
        base_seq: int,
        seq: int,
        bases: dict[int, Path] | None = None,
    ) -> dict[str, Any]:
        """The run as of checkpoint ``seq`` (snapshot dict): fold ``base_seq`` plus records."""
        path = (bases or self._bases(folder, run_id))[base_seq]
        snap = self._read_fold(folder, run_id, base_seq, path)
        seg = folder / "journal" / _seg_name(base_seq)
        records = _read_records(seg, run_id)[0]
        _replay(snap, [r for r in records if base_seq < r["seq"] <= seq], base_seq, seg, run_id)
        return snap

    def _entries(
        self, run_id: str, folder: Path
    ) -> tuple[list[tuple[int, CheckpointInfo]], dict[int, Path]]:
        """(seq, info) of every checkpoint that can still be rebuilt, oldest first."""
        bases = self._bases(folder, run_id)
        found: dict[int, CheckpointInfo] = {}
        for seq, path in bases.items():
            found[seq] = _info(self._read_fold(folder, run_id, seq, path), path, run_id, seq)
            seg = folder / "journal" / _seg_name(seq)
            for rec in _read_records(seg, run_id)[0]:
                if rec["seq"] > seq:
                    found[rec["seq"]] = _info(rec["delta"], seg, run_id, rec["seq"])
        floor = min(bases)
        return sorted((s, i) for s, i in found.items() if s >= floor), bases

    @_guarded
    def history(self, run_id: str) -> list[CheckpointInfo]:
        """The run's checkpoints, oldest first (a run written by 0.1.0 has one)."""
        folder = self._run_dir(run_id)
        self._commit_run(run_id)
        entries = self._consistent(lambda: self._entries(run_id, folder)[0])
        return [info for _, info in entries]

    @_guarded
    def events(self, run_id: str) -> list[Event]:
        """The run's event log, oldest first; a torn last line is left out."""
        folder = self._run_dir(run_id)
        self._commit_run(run_id)
        path = folder / "events.jsonl"
        try:
            raw = read_bytes(path)
        except FileNotFoundError:
            if not refuse_link(folder / "snapshot.json"):
                raise RunNotFoundError(run_id) from None
            return []
        out = []
        lines = raw.split(b"\n")
        for number, line in enumerate(lines):
            if not line:
                continue
            try:
                out.append(Event.from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
                torn = number == len(lines) - 1 or (number == len(lines) - 2 and not lines[-1])
                if torn:
                    break  # the half-written last line of a killed process
                raise _corrupt(path, run_id, f"line {number + 1} is not an event ({exc})") from exc
        return out

    @_guarded
    def latest_step(self, run_id: str) -> int | None:
        """The step of the run's latest checkpoint; None when the store has none.

        Known without reading files while this store holds the run's lease.
        """
        with self._lock:
            w = self._writers.get(run_id)
            if w is not None and w.owner is not None:
                self._commit(run_id, w)
                return None if w.base_seq < 0 else w.step
        try:
            return self.load_snapshot(run_id).step
        except RunNotFoundError:
            return None

    @_guarded
    def run_status(self, run_id: str) -> str | None:
        """The status of the run's latest fold; None when the store does not hold the run."""
        folder = self._run_dir(run_id)
        self._commit_run(run_id)
        snap_path = folder / "snapshot.json"
        # Only a full save changes the status, so the fold is authoritative (metadata.json
        # can lag by one replace after a crash).
        try:
            data = read_json(snap_path, run_id)
        except RunNotFoundError:
            self._refuse_orphan(folder, run_id)
            return None
        _store_info(data, snap_path, run_id)
        return str(data.get("status"))

    @_guarded
    def list_metadata(
        self, workflow_name: str | None = None, status: str | None = None
    ) -> list[RunMetadata]:
        """Every readable run's summary; a damaged run is skipped and reported (``on_report``)."""
        self.flush()
        out = []
        for folder, data, item in self._metadata():
            if (workflow_name is None or item.workflow_name == workflow_name) and (
                status is None or item.status == status
            ):
                out.append(_current(folder, data, item))
        return out

    @_guarded
    def run_summaries(
        self, workflow_name: str | None = None, since: str | datetime | None = None
    ) -> list[RunSummary]:
        """Each readable run's summary, by run id, from its ``metadata.json`` alone.

        Its ``stats`` are the figures of the run's last fold; a ``metadata.json``
        without them (written by an older zeroflow) gives ``nodes`` None, and
        damaged ones are reported (``on_report``) and read as None too.
        """
        after = since_key(since)
        self.flush()
        out = []
        for folder, data, item in self._metadata():
            if workflow_name is not None and item.workflow_name != workflow_name:
                continue
            if after is not None and (item.started_at is None or item.started_at < after):
                continue
            try:
                nodes = decode_nodes(data.get("stats"))
            except ValueError as exc:
                self._report(folder.name, folder / "metadata.json", f"its stats {exc}")
                nodes = None
            out.append(
                RunSummary(
                    item.run_id or folder.name,
                    item.workflow_name,
                    item.status,
                    item.started_at,
                    item.updated_at,
                    nodes,
                )
            )
        return out

    def _metadata(self) -> list[tuple[Path, dict[str, Any], RunMetadata]]:
        """(folder, metadata dict, summary) of every run folder with a readable summary.

        Stray files, and folders without ``metadata.json`` that hold no
        checkpoint, are skipped; a link, a ``metadata.json`` that cannot be
        read as a summary, or one missing beside a checkpoint, is skipped and
        reported through ``on_report`` (never a failure of the whole listing).
        """
        out = []
        with os.scandir(self.base_dir) as scan:
            entries = sorted(scan, key=lambda e: e.name)
        for entry in entries:
            folder = Path(entry.path)
            if entry.is_symlink():
                self._report(entry.name, folder, "the run's folder is a symbolic link")
                continue
            if not entry.is_dir(follow_symlinks=False):
                continue
            meta = folder / "metadata.json"
            try:
                raw = read_bytes(meta)
            except FileNotFoundError:
                orphan = self._without_metadata(folder, entry.name)
                if orphan is not None:
                    self._report(entry.name, meta, orphan)
                continue
            except LinkRefusedError:
                self._report(entry.name, meta, "metadata.json is a symbolic link")
                continue
            except OSError as exc:  # a folder, no permission, an I/O error: this run only
                self._report(entry.name, meta, f"metadata.json cannot be read ({exc})")
                continue
            try:
                data = json.loads(raw)
            except (ValueError, RecursionError) as exc:
                self._report(entry.name, meta, f"metadata.json is not valid JSON ({exc})")
                continue
            problem = _metadata_problem(data)
            if problem is None:
                assert isinstance(data, dict)
                try:
                    item = RunMetadata.from_dict({**data, "run_id": data.get("run_id", entry.name)})
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    problem = f"its last_error is not an error ({exc})"
                else:
                    out.append((folder, data, item))
                    continue
            self._report(entry.name, meta, f"metadata.json {problem}")
        return out

    def _without_metadata(self, folder: Path, name: str) -> str | None:
        """Why a run folder without ``metadata.json`` is damaged; None when it is not a run yet.

        A folder with a checkpoint (``snapshot.json``, a journal segment) lost its
        summary, unless a live lease says its first save is being written now.
        """
        held = ["snapshot.json"] if os.path.lexists(folder / "snapshot.json") else []
        try:
            with os.scandir(folder / "journal") as segments:
                if any(segments):
                    held.append("a journal")
        except OSError:
            pass  # no journal (or none readable): the snapshot decides
        if not held:
            return None
        try:
            lease = _parse_lease(read_bytes(folder / "lease.json"), name, folder / "lease.json")
        except OSError:
            lease = _Lease()
        if lease.verdict(None, self._clock()) != "free":
            return None  # its driver is writing the first checkpoint's files right now
        return (
            f"metadata.json is missing although the run has {' and '.join(held)}; "
            f"store.delete_run('{name}') removes it, or restore metadata.json from a backup"
        )

    def _report(self, run_id: str, path: Path, reason: str) -> None:
        """Tell ``on_report`` (else the log) that a run was skipped as damaged."""
        report_corrupt(self.on_report, run_id, str(path), reason)

    # ------------------------------------------------------------------ leases

    def _read_lease(self, fd: int, run_id: str, path: Path) -> _Lease:
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return _parse_lease(b"".join(chunks), run_id, path, self.on_report)

    def _write_lease(
        self, fd: int, lease: _Lease, *, sync: bool = True, size: int | None = None
    ) -> bytes:
        """Rewrite ``lease.json`` in place, so that it is a whole JSON record at every moment.

        A record shorter than the file's ``size`` (None: ``fstat``) is written
        padded with spaces over the whole old one, then the file is cut to the
        record: a process killed in between leaves the new record and blanks,
        still valid JSON. Returns the record as the file holds it now.
        """
        body = lease.encode()
        old = os.fstat(fd).st_size if size is None else size
        os.lseek(fd, 0, os.SEEK_SET)
        _files.write_all(fd, body + b" " * (old - len(body)) if old > len(body) else body)
        if old > len(body):
            os.ftruncate(fd, len(body))
        if sync and self.fsync:
            os.fsync(fd)
        return body

    def _free_lease(self, fd: int, lease: _Lease) -> None:
        """Write ``lease`` released, even on a full disk; the run is never left locked.

        If the rewrite fails, the file is cut to nothing (which gives its
        blocks back) and the record written again; if even that fails the file
        stays empty, which every reader takes for a free lease (token restarts:
        safe, since a commit must match the lease's owner as well as its token).
        """
        cleared = _cleared(lease)
        try:
            self._write_lease(fd, cleared)
        except OSError:
            try:
                os.ftruncate(fd, 0)
                self._write_lease(fd, cleared, size=0)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
            raise

    def _lease_file(self, path: Path) -> Path:
        """``path`` (a run's ``lease.json``), created holding a free lease if missing.

        Created whole (``create_with``), so a process killed while taking a
        run's first lease never leaves an empty ``lease.json`` behind.
        """
        create_with(path, _Lease().encode(), fsync=self.fsync, mode=self.file_mode)
        return path

    @_guarded
    def acquire_lease(self, run_id: str, owner: str) -> int:
        """Take the run for ``owner``; returns its fencing token (one more than the last).

        Recovery of a crashed driver's files runs under the lease's lock; if it
        (or anything else in this call) fails, the lease is given back first.
        """
        folder = self._run_dir(run_id)
        folder.mkdir(exist_ok=True)
        lease_path = folder / "lease.json"
        with self._lock:
            now = self._clock()
            with locked(self._lease_file(lease_path), mode=self.file_mode) as fd:
                lease = self._read_lease(fd, run_id, lease_path)
                if lease.verdict(owner, now) == "taken":
                    raise locked_error(run_id, lease.owner, lease.expires_at - now)
                token = lease.token + 1
                taken = _Lease(
                    owner,
                    now + self.lease_ttl_seconds,
                    token,
                    process_holder(),
                    lease.events_from,
                    lease.notes,
                )
                try:
                    self._write_lease(fd, taken)
                    old = self._writers.pop(run_id, None)
                    if old is not None:
                        try:
                            self._commit(run_id, old)
                        finally:
                            old.close()
                    w = self._open_writer(run_id, recover=True, lease=taken)
                except BaseException:
                    with contextlib.suppress(OSError):
                        self._free_lease(fd, taken)
                    raise
            w.owner = owner
            w.token = token
            self._writers[run_id] = w
            return token

    @_guarded
    def renew_lease(self, run_id: str, owner: str, token: int | None = None) -> None:
        """Extend ``owner``'s lease, expired or not; never acquires.

        ``RunLockedError`` when the lease is not ``owner``'s (with ``token``) any more.
        """
        folder = self._run_dir(run_id)
        lease_path = folder / "lease.json"
        with self._lock:
            if not is_file(lease_path):
                raise lost_lease_error(run_id, owner, None, "the run has no lease")
            with locked(lease_path, create=False) as fd:
                lease = self._read_lease(fd, run_id, lease_path)
                _check_holds(lease, run_id, owner, token)
                now = self._clock()
                lease.expires_at = now + self.lease_ttl_seconds
                lease.holder = process_holder()
                self._write_lease(fd, lease)

    @_guarded
    def release_lease(self, run_id: str, owner: str) -> None:
        """Commit what ``owner`` has pending and free the run; freed even if that write fails."""
        folder = self._run_dir(run_id)
        lease_path = folder / "lease.json"
        with self._lock:
            w = self._writers.get(run_id)
            try:
                if w is not None and w.owner == owner:
                    try:
                        self._commit(run_id, w)
                    finally:
                        w.close()
                        del self._writers[run_id]
            finally:
                if is_file(lease_path):
                    with locked(lease_path, create=False) as fd:
                        lease = self._read_lease(fd, run_id, lease_path)
                        if lease.owner == owner:
                            self._free_lease(fd, lease)

    @_guarded
    def lease_info(self, run_id: str) -> LeaseInfo | None:
        """Who holds the run's lease, read without its lock (``lease.json`` is always whole)."""
        path = self._run_dir(run_id) / "lease.json"
        try:
            raw = read_bytes(path)
        except FileNotFoundError:
            return None
        lease = _parse_lease(raw, run_id, path, self.on_report)
        expires = lease.expires_at
        if not expires - self._clock() <= MAX_LEASE_AHEAD_SECONDS:
            expires = math.nan
        return lease_info_of(lease.owner, expires, lease.token, lease.holder, self._clock())

    @_guarded
    def break_lease(self, run_id: str) -> bool:
        """Free the run now, whoever holds it; False when nobody held it."""
        folder = self._run_dir(run_id)
        lease_path = folder / "lease.json"
        if not is_file(lease_path):
            return False
        with self._lock, locked(lease_path, create=False) as fd:
            lease = self._read_lease(fd, run_id, lease_path)
            if lease.owner is None:
                return False
            self._write_lease(fd, _cleared(lease))
            w = self._writers.get(run_id)
            if w is not None:
                w.token = None  # a commit through this writer re-reads the run first
            return True

    @_guarded
    def delete_run(self, run_id: str, *, owner: str | None = None) -> bool:
        """Delete the run's files (never through a link); refused while another drives it.

        With ``owner`` (``run(..., replace=True)``) the lease stays ``owner``'s.
        """
        folder = self._run_dir(run_id)
        if not refuse_link(folder):
            return False
        lease_path = folder / "lease.json"
        with self._lock:
            with locked(self._lease_file(lease_path), mode=self.file_mode) as fd:
                now = self._clock()
                lease = self._read_lease(fd, run_id, lease_path)
                if lease.verdict(owner, now) == "taken":
                    raise locked_error(run_id, lease.owner, lease.expires_at - now)
                if lease.events_from is not None or lease.notes:
                    lease.events_from = None  # the events it points into are deleted now
                    lease.notes = []
                    self._write_lease(fd, lease)
                existed = refuse_link(folder / "snapshot.json")
                old = self._writers.pop(run_id, None)
                if old is not None:
                    old.close()
                remove_contents(folder, keep=frozenset({"lease.json"}))
                if owner is not None and old is not None and old.owner == owner:
                    fresh = _Writer()
                    fresh.folder = folder
                    fresh.owner, fresh.fresh = owner, True
                    fresh.token = old.token
                    (folder / "journal").mkdir()
                    fresh.on_disk = self._on_disk(fresh)
                    self._writers[run_id] = fresh
            if owner is None:
                remove_contents(folder)
                with contextlib.suppress(OSError):
                    os.rmdir(folder)
        self._due_index(run_id, None)
        self._listing.note(run_id, None)
        return existed

    # ------------------------------------------------------------------ history

    @_guarded
    def prune(
        self,
        keep_last: int | None = None,
        older_than: float | timedelta | None = None,
        statuses: Iterable[str] = FINISHED_STATUSES,
        *,
        keep_events: bool = False,
    ) -> PruneResult:
        """Trim runs to their newest ``keep_last`` checkpoints; delete old finished runs.

        Runs being driven are skipped; a damaged run is skipped and reported
        (``on_report``), never deleted blindly nor hidden. ``keep_events=False``
        also drops the events of the trimmed checkpoints. ``bytes_freed`` is
        measured from the files' sizes before and after.
        """
        check_keep_last(keep_last)
        wanted = status_set(statuses)
        self.flush()
        deleted: list[str] = []
        trimmed: dict[str, int] = {}
        events_cut: dict[str, int] = {}
        freed = 0
        if older_than is not None:
            cutoff = self._clock() - to_seconds(older_than)
            for folder, meta, _item in self._metadata():
                if meta.get("status") in wanted and _saved_at(meta, folder) < cutoff:
                    size = tree_size(folder)
                    try:
                        self.delete_run(folder.name)
                    except RunLockedError:
                        continue
                    except StoreError as exc:
                        self._report(folder.name, Path(exc.path or folder), str(exc))
                        continue
                    deleted.append(folder.name)
                    freed += size - tree_size(folder)
        if keep_last is not None:
            with os.scandir(self.base_dir) as scan:
                entries = sorted(scan, key=lambda e: e.name)
            for entry in entries:
                folder = Path(entry.path)
                if entry.is_symlink():
                    self._report(entry.name, folder, "the run's folder is a symbolic link")
                    continue
                if not entry.is_dir(follow_symlinks=False) or not os.path.lexists(
                    folder / "snapshot.json"
                ):
                    continue
                size = tree_size(folder)
                try:
                    dropped, cut = self._trim(folder, int(keep_last), keep_events)
                except (RunLockedError, RunNotFoundError):
                    continue
                except StoreError as exc:
                    self._report(entry.name, Path(exc.path or folder), str(exc))
                    continue
                except OSError as exc:
                    self._report(entry.name, Path(exc.filename or folder), str(exc))
                    continue
                if dropped:
                    trimmed[entry.name] = dropped
                if cut:
                    events_cut[entry.name] = cut
                freed += max(size - tree_size(folder), 0)
        return PruneResult(tuple(sorted(deleted)), trimmed, events_cut, freed)

    def _trim(self, folder: Path, keep_last: int, keep_events: bool) -> tuple[int, int]:
        """Keep the newest ``keep_last`` checkpoints of one run (and, unless ``keep_events``,
        the events from the first kept one on); (checkpoints, events) dropped.

        A run being driven is skipped (``RunLockedError``).
        """
        run_id = folder.name
        owner = f"prune-{os.getpid()}-{id(self)}"
        self.acquire_lease(run_id, owner)
        try:
            entries, bases = self._entries(run_id, folder)
            drop = len(entries) - keep_last
            if drop <= 0:
                return 0, 0
            cut = None if keep_events else self._events_end(run_id, folder, entries[drop - 1][0])
            self._cut_before(run_id, folder, bases, entries[drop][0])
            lines = self._cut_events(run_id, folder, cut) if cut else 0
            return drop, lines
        finally:
            self.release_lease(run_id, owner)

    def _events_end(self, run_id: str, folder: Path, seq: int) -> int | None:
        """Where ``events.jsonl`` ended when checkpoint ``seq`` was committed (None: unknown)."""
        bases = self._bases(folder, run_id)
        if seq in bases:
            info = _store_info(self._read_fold(folder, run_id, seq, bases[seq]), bases[seq], run_id)
            end = info.get("events_end")
            return end if type(end) is int else None
        base = max(s for s in bases if s <= seq)
        for rec in _read_records(folder / "journal" / _seg_name(base), run_id)[0]:
            if rec["seq"] == seq:
                end = rec.get("events_end")
                return end if type(end) is int else None
        return None

    def _cut_events(self, run_id: str, folder: Path, cut: int) -> int:
        """Drop the first ``cut`` bytes of ``events.jsonl``; returns how many events went.

        Under the lease's lock (notes wait). The events file is replaced
        first, then every kept record and fold is rewritten with its
        ``events_end`` moved back by ``cut``: a crash in between leaves ends
        that are too large, which recovery reads as "nothing to cut".
        """
        events = folder / "events.jsonl"
        lease_path = folder / "lease.json"
        with locked(self._lease_file(lease_path), mode=self.file_mode) as fd:
            raw = read_bytes(events)
            if cut > len(raw) or (cut and raw[cut - 1 : cut] != b"\n"):
                return 0  # not at a line end: the offsets do not describe this file
            dropped = sum(1 for line in raw[:cut].split(b"\n") if line.strip())
            write_atomic(events, raw[cut:], fsync=self.fsync, mode=self.file_mode)
            lease = self._read_lease(fd, run_id, lease_path)
            if lease.events_from is not None:
                lease.events_from = max(lease.events_from - cut, 0)
            lease.notes = [[a - cut, b - cut] for a, b in lease.notes if a >= cut]
            self._write_lease(fd, lease)
        journal = folder / "journal"
        for path in sorted(journal.iterdir()):
            if path.name.endswith(".snapshot.json"):
                self._shift_fold(run_id, path, cut)
            elif path.name.endswith(".jsonl"):
                records, _, _ = _read_records(path, run_id)
                for rec in records:
                    if type(rec.get("events_end")) is int:
                        rec["events_end"] = max(rec["events_end"] - cut, 0)
                text = "".join(encode_compact(r) + "\n" for r in records)
                write_atomic(path, text, fsync=self.fsync, mode=self.file_mode)
        self._shift_fold(run_id, folder / "snapshot.json", cut)
        return dropped

    def _move_meta(self, folder: Path, run_id: str, seq: int, step: Any) -> None:
        """Point ``metadata.json`` at the fold ``seq`` that a trim made; ``saved_at`` stays."""
        path = folder / "metadata.json"
        try:
            meta = read_json(path, run_id)
        except (RunNotFoundError, StoreCorruptError):
            return  # rebuilt from the fold by the run's next driver
        if isinstance(meta, dict) and "seq" in meta:
            meta["seq"], meta["step"] = seq, step
            write_atomic(path, json.dumps(meta, indent=2), fsync=self.fsync, mode=self.file_mode)

    def _shift_fold(self, run_id: str, path: Path, cut: int) -> None:
        """Move a fold's ``"store"."events_end"`` back by ``cut`` bytes."""
        data = read_json(path, run_id)
        info = _store_info(data, path, run_id)
        if type(info.get("events_end")) is int:
            info["events_end"] = max(info["events_end"] - cut, 0)
            write_atomic(path, encode_compact(data), fsync=self.fsync, mode=self.file_mode)

    def _cut_before(self, run_id: str, folder: Path, bases: dict[int, Path], keep: int) -> None:
        """Make checkpoint ``keep`` a fold, then delete every fold and record before it.

        Files are written before anything is deleted, so a crash in between
        leaves extra history, never a gap.
        """
        journal = self._journal_dir(folder, run_id)
        base = max(s for s in bases if s <= keep)
        if base != keep:
            snap = self._rebuild(run_id, folder, base, keep, bases)
            records = _read_records(journal / _seg_name(base), run_id)[0]
            kept = next(r for r in records if r["seq"] == keep)
            after = "".join(encode_compact(r) + "\n" for r in records if r["seq"] > keep)
            write_atomic(journal / _seg_name(keep), after, fsync=self.fsync, mode=self.file_mode)
            snap["store"] = {
                "format": FORMAT_VERSION,
                "seq": keep,
                "events_end": kept.get("events_end"),
            }
            snap["seq"] = keep
            target = folder / "snapshot.json" if base == max(bases) else journal / _base_name(keep)
            write_atomic(target, encode_compact(snap), fsync=self.fsync, mode=self.file_mode)
            if target.name == "snapshot.json":
                self._move_meta(folder, run_id, keep, snap.get("step"))
        for path in list(journal.iterdir()):
            try:
                seq = int(path.name.split(".")[0])
            except ValueError:
                continue
            if seq < keep:
                path.unlink()


_READ_ATTEMPTS = 5
"""How often a read of a run's history is tried while other processes fold or prune it."""


class _Moved(Exception):
    """A fold a read had listed is no longer where it was: the read starts over."""

    def __init__(self, run_id: str, path: Path) -> None:
        super().__init__(run_id, path)
        self.run_id = run_id
        self.path = path


_META_TYPES: tuple[tuple[str, tuple[type, ...], bool], ...] = (
    ("workflow_name", (str,), False),
    ("workflow_hash", (str,), True),
    ("status", (str,), False),
    ("started_at", (str,), True),
    ("updated_at", (str,), True),
    ("current_node", (str,), True),
    ("waiting", (bool,), True),
    ("last_error", (dict,), True),
    ("run_id", (str,), True),
    ("saved_at", (int, float), True),
    ("seq", (int,), True),
    ("step", (int,), True),
    ("waiting_nodes", (list,), True),
    ("due_at", (int, float), True),
    ("wait_reason", (str,), True),
)


def _metadata_problem(data: Any) -> str | None:
    """What makes ``data`` not a ``metadata.json`` summary; None when it is one."""
    if not isinstance(data, dict):
        return f"holds a JSON {type(data).__name__}, not a run summary"
    for key, types, optional in _META_TYPES:
        value = data.get(key)
        if value is None:
            if optional:
                continue
            return f"has no {key!r}"
        if not isinstance(value, types) or (types != (bool,) and isinstance(value, bool)):
            return f"{key!r} is {value!r}, not {' or '.join(t.__name__ for t in types)}"
    return None


def _undo_append(fd: int, exc: OSError, size: int) -> None:
    """Cut the bytes a failed ``write_all`` of ``size`` bytes left at the end of ``fd``."""
    written = getattr(exc, "written", 0)
    if 0 < written <= size:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, os.fstat(fd).st_size - written)


def _stale(w: _Writer) -> None:
    """After a failed write: close ``w``'s data files; its counters are read again before use.

    ``lease.json`` stays open: the caller may still hold its lock.
    """
    for fd in (w.events_fd, w.journal_fd):
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
    w.events_fd = w.journal_fd = None
    w.on_disk = None
    w.lease = None


def _check_holds(lease: _Lease, run_id: str, owner: str, token: int | None) -> None:
    """``RunLockedError`` unless ``lease`` is ``owner``'s (with ``token``); expiry aside."""
    check_holds(run_id, owner, token, lease.owner, lease.token)


def _cleared(lease: _Lease) -> _Lease:
    """``lease`` released: nobody holds it, its token and first-commit mark stay."""
    return _Lease(None, 0.0, lease.token, None, lease.events_from)


def _replay(
    snap: dict[str, Any], records: list[dict[str, Any]], base_seq: int, seg: Path, run_id: str
) -> None:
    """Apply journal records in order; a gap in their numbers is corruption."""
    expected = base_seq + 1
    for rec in records:
        if rec["seq"] != expected:
            raise _corrupt(
                seg, run_id, f"journal record {expected} is missing (found {rec['seq']})"
            )
        try:
            apply_delta_dict(snap, rec["delta"])
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise _corrupt(
                seg, run_id, f"record {rec['seq']} is not a step ({type(exc).__name__}: {exc})"
            ) from exc
        expected += 1


def _metadata_of(data: dict[str, Any], saved_at: float) -> dict[str, Any]:
    """0.1.0's ``metadata.json`` fields from a snapshot dict (a fold), plus ours.

    Ours: ``run_id``, ``saved_at``, the fold's ``seq`` and ``step`` (the
    journal ``journal/<seq>.jsonl`` holds the checkpoints after it), and a
    waiting run's ``waiting_nodes``; a waiting run's ``current_node`` is the
    first node it waits on.
    """
    status = data.get("status")
    current, waiting = waiting_now(data)
    info = data.get("store")
    seq = info.get("seq") if isinstance(info, dict) else None
    out = {
        "workflow_name": data.get("workflow_name"),
        "workflow_hash": data.get("wf_hash"),
        "status": status,
        "started_at": data.get("started_at"),
        "updated_at": data.get("updated_at"),
        "current_node": current,
        "waiting": status == "waiting",
        "last_error": data.get("last_error"),
        "run_id": data.get("run_id"),
        "saved_at": saved_at,
        "seq": seq if type(seq) is int else None,
        "step": data.get("step"),
    }
    if status == "waiting":
        out["waiting_nodes"] = list(waiting)
        out.update({k: v for k, v in timers_of(data).items() if v is not None})
    trail = data.get("audit_trail")
    out["stats"] = encode_nodes(node_stats_of_dicts(trail if isinstance(trail, list) else ()))
    return out


def _current(folder: Path, meta: dict[str, Any], item: RunMetadata) -> RunMetadata:
    """``item`` (from ``metadata.json``, written at folds) brought up to the run's latest
    checkpoint, and a waiting run's waiting nodes.

    A running run's latest checkpoint is the last record of the journal that
    follows its fold (``journal/<seq>.jsonl``), read from the file's end: O(1)
    in the journal's length. A waiting run's summary is always current (its
    pause is a fold); ``metadata.json`` written before summaries named the
    waiting nodes is completed from ``snapshot.json``.
    """
    if item.status == "waiting":
        names = meta.get("waiting_nodes")
        if isinstance(names, list):
            return replace(item, waiting_nodes=tuple(str(n) for n in names))
        try:
            snap = json.loads(read_bytes(folder / "snapshot.json"))
        except (OSError, ValueError, RecursionError):
            return item
        if not isinstance(snap, dict) or snap.get("status") != "waiting":
            return item
        current, waiting = waiting_now(snap)
        return replace(
            item,
            current_node=current if type(current) is str else None,
            waiting_nodes=waiting,
            **timers_of(snap),
        )
    seq = meta.get("seq")
    if item.status != "running" or type(seq) is not int:
        return item
    rec = _last_record(folder / "journal" / _seg_name(seq))
    if rec is None or not isinstance(rec.get("seq"), int) or rec["seq"] <= seq:
        return item
    delta = rec["delta"]
    node, updated = delta.get("last_node"), delta.get("updated_at")
    return replace(
        item,
        current_node=node if isinstance(node, str) else None,
        updated_at=updated if isinstance(updated, str) else item.updated_at,
    )


_TAIL_BYTES = 16384
"""What a listing reads first from the end of a journal to find its last record."""


def _last_record(path: Path) -> dict[str, Any] | None:
    """The last complete journal record of ``path``, read backwards from its end.

    A torn last line (a killed writer's) is skipped, as loads skip it; None
    when the file is missing, holds no record, or its tail is not one.
    """
    try:
        fd = _files.open_nofollow(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        size = os.fstat(fd).st_size
        want = _TAIL_BYTES
        while True:
            start = max(0, size - want)
            data = os.pread(fd, size - start, start)
            lines = data.split(b"\n")
            # lines[-1] follows the last newline: empty, or a torn line. Complete lines are
            # the rest, but the first may be cut by ``start``: wanted only from offset 0.
            complete = lines[:-1] if start == 0 else lines[1:-1]
            for line in reversed(complete[-2:]):
                try:
                    rec = json.loads(line)
                except (ValueError, RecursionError):
                    continue  # torn: a killed writer's last line ends with a newline
                if isinstance(rec, dict) and isinstance(rec.get("delta"), dict):
                    return rec
                return None
            if start == 0 or len(complete) >= 2:
                return None
            want *= 8
    except OSError:
        return None
    finally:
        os.close(fd)


def _saved_at(meta: dict[str, Any], folder: Path) -> float:
    """When a run was last written: our ``saved_at``, else 0.1.0's ``updated_at``, else mtime."""
    saved = meta.get("saved_at")
    if isinstance(saved, int | float):
        return float(saved)
    with contextlib.suppress(TypeError, ValueError):
        return datetime.fromisoformat(str(meta.get("updated_at"))).timestamp()
    return os.lstat(folder / "metadata.json").st_mtime
