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
import json
import math
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .._constants import EVENT_STORE_RECOVERED
from .._errors import RunLockedError, RunNotFoundError, StoreCorruptError
from .._models import Event, RunMetadata, RunSnapshot, now_iso
from .._store import DEFAULT_LEASE_TTL_SECONDS, FINISHED_STATUSES, CheckpointInfo, PruneResult
from ._batch import BatchingStore, Writer
from ._common import (
    apply_delta_dict,
    check_holds,
    check_keep_last,
    check_run_id,
    checkpoint_not_found,
    encode_compact,
    encode_event,
    info_of,
    lease_verdict,
    locked_error,
    lost_lease_error,
    moved_on_error,
    pick_seq,
    process_holder,
    reset_after_fork,
    status_set,
    to_seconds,
)
from ._files import (
    append_fd,
    copy_atomic,
    lock_fd,
    locked,
    truncate,
    unlock_fd,
    write_all,
    write_atomic,
)

__all__ = ["FORMAT_VERSION", "JsonFileWorkflowStore", "check_run_id"]

FORMAT_VERSION = 1
"""The on-disk format this store writes (``snapshot.json`` → ``"store"."format"``)."""


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


def read_json(path: Path, run_id: str) -> Any:
    """Read one JSON file; a truncated or non-JSON file is a ``StoreCorruptError`` naming it."""
    try:
        raw = path.read_bytes()
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


def _store_info(data: Any, path: Path, run_id: str) -> dict[str, Any]:
    """The ``"store"`` block of a snapshot file (empty for 0.1.0 files); checks the format."""
    if not isinstance(data, dict):
        raise _corrupt(path, run_id, f"holds a JSON {type(data).__name__}, not a snapshot object")
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
    return info


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


@dataclass(slots=True)
class _Lease:
    """``lease.json``: who drives the run, until when, and the run's fencing token.

    A released or broken lease keeps its ``token`` (``owner`` None), so the
    next acquisition's token is still larger. ``events_from`` is where the
    events of a run's first checkpoint begin (set by the driver's first
    commit): a driver that takes over a run with no snapshot yet cuts the
    events of a first commit that was killed halfway back to it.
    """

    owner: str | None = None
    expires_at: float = 0.0
    token: int = 0
    holder: dict[str, Any] | None = None
    events_from: int | None = None

    def verdict(self, owner: str | None, now: float) -> str:
        return lease_verdict(self.owner, self.expires_at, owner, now, who=self.holder)

    def encode(self) -> bytes:
        data: dict[str, Any] = {
            "owner": self.owner,
            "expires_at": self.expires_at,
            "token": self.token,
            "holder": self.holder,
        }
        if self.events_from is not None:
            data["events_from"] = self.events_from
        return json.dumps(data).encode("utf-8")


_DECODER = json.JSONDecoder()


def _parse_lease(raw: bytes) -> _Lease:
    """A ``lease.json``'s content; empty, torn or foreign content is a free lease.

    Bytes after the first JSON value are ignored: a lease is rewritten in
    place and then cut to its new length, so a kill in between leaves the
    old record's tail behind the complete new one.
    """
    try:
        data, _ = _DECODER.raw_decode(raw.decode("utf-8").lstrip())
    except (ValueError, UnicodeDecodeError):
        return _Lease()
    if not isinstance(data, dict):
        return _Lease()
    owner = data.get("owner")
    expires = data.get("expires_at")
    if not isinstance(expires, int | float) or isinstance(expires, bool):
        expires = math.nan
    token = data.get("token")
    holder = data.get("holder")
    start = data.get("events_from")
    return _Lease(
        owner=None if owner is None else str(owner),
        expires_at=float(expires) if math.isfinite(expires) else math.nan,
        token=token if type(token) is int and token > 0 else 0,
        holder=holder if isinstance(holder, dict) else None,
        events_from=start if type(start) is int and start >= 0 else None,
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
        st = os.stat(path)
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
        raw = path.read_bytes()
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
            if not isinstance(rec, dict) or type(rec.get("seq")) is not int:
                raise ValueError("not a journal record")
        except ValueError as exc:
            if number == last - 1 and not lines[last]:
                return records, good, len(raw) - good
            raise _corrupt(
                path, run_id, f"line {number + 1} is not a journal record ({exc})"
            ) from exc
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
    ``clock`` (epoch seconds) is injectable for tests.
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
    ) -> None:
        self.base_dir = Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self.lease_ttl_seconds = float(lease_ttl_seconds)
        self._clock = clock
        self._lock = threading.RLock()
        self._writers: dict[str, _Writer] = {}
        reset_after_fork(self)

    def _forked(self) -> None:
        for w in self._writers.values():
            w.close()  # the child's copies of the parent's descriptors
        super()._forked()

    def _run_dir(self, run_id: str) -> Path:
        return self.base_dir / check_run_id(run_id)

    # ------------------------------------------------------------------ writes

    def _append_unleased(self, run_id: str, events: Sequence[Event]) -> None:
        folder = self._run_dir(run_id)
        folder.mkdir(exist_ok=True)
        data = _event_lines(events)
        fd = append_fd(folder / "events.jsonl", fsync=self.fsync)
        try:
            write_all(fd, data)
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        w = self._writers.get(run_id)
        if w is not None:
            w.events_size += len(data)

    def close(self) -> None:
        """Flush and close the files this store keeps open; the store stays usable."""
        with self._lock:
            self.flush()
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
        """What changes when any process writes a checkpoint of the run (two ``stat``)."""
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

    def _open_writer(
        self, run_id: str, *, recover: bool = False, events_from: int | None = None
    ) -> _Writer:
        """Read the run's counters; with ``recover``, cut torn or uncommitted tails.

        ``events_from`` (from ``lease.json``): where the events of a killed
        first commit begin, cut when the run still has no snapshot.
        """
        folder = self._run_dir(run_id)
        (folder / "journal").mkdir(parents=True, exist_ok=True)
        w = _Writer()
        w.folder = folder
        events = folder / "events.jsonl"
        w.events_size = events.stat().st_size if events.exists() else 0
        snap_path = folder / "snapshot.json"
        if not snap_path.exists():
            w.fresh = True
            if recover and events_from is not None and w.events_size > events_from:
                # A first commit was killed after its events, before its snapshot: its
                # events describe nothing. Events appended before it (notes) stay.
                truncate(events, events_from, fsync=self.fsync)
                w.events_size = events_from
            w.on_disk = self._on_disk(w)
            return w
        data = read_json(snap_path, run_id)
        info = _store_info(data, snap_path, run_id)
        w.base_seq = w.seq = int(info.get("seq", 0))
        w.base_bytes = snap_path.stat().st_size
        w.base_status = data.get("status")
        w.step = int(data.get("step", 0))
        w.last_events_end = info.get("events_end")
        seg = folder / "journal" / _seg_name(w.base_seq)
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
        with contextlib.suppress(OSError, ValueError):
            meta = json.loads(meta_path.read_bytes()) if meta_path.exists() else {}
            if meta.get("status") != data.get("status"):  # killed between the two replaces
                summary = json.dumps(_metadata_of(data, self._clock()), indent=2)
                write_atomic(meta_path, summary, fsync=self.fsync)
        dropped = 0
        if torn:
            truncate(seg, good, fsync=self.fsync)
        end = w.last_events_end
        if type(end) is int and w.events_size > end:
            dropped = w.events_size - end
            truncate(events, end, fsync=self.fsync)
            w.events_size = end
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
        self._write_pending(run_id, w)
        w.on_disk = self._on_disk(w)

    def _commit_fenced(self, run_id: str, w: _Writer, fence: tuple[str, int, int]) -> None:
        """Check ``owner``, ``token`` and ``seq`` and write, all under ``lease.json``'s lock.

        Another process can take the lease only under that lock, so it cannot
        take it between the check and the write. On refusal nothing is written.
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
                lease = _parse_lease(raw)
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
                raw = self._write_lease(fd, lease, sync=marked)
            w.lease, w.lease_raw = lease, raw
            base, seen, steps = w.base_seq, w.on_disk, bool(w.pending_steps)
            self._write_pending(run_id, w)
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
                fd = os.open(self._paths(w)[4], os.O_RDWR)
            except FileNotFoundError:
                raise lost_lease_error(run_id, owner, None, "the run's folder is gone") from None
            w.lease_fd = fd
            w.lease = None
        return fd

    def _write_pending(self, run_id: str, w: _Writer) -> None:
        """Write pending events, then the pending record or fold; fold the journal when due."""
        folder = w.folder
        fsync = self.fsync
        if w.pending_events:
            data = _event_lines(w.pending_events)
            w.pending_events = []
            if w.events_fd is None:
                w.events_fd = append_fd(folder / "events.jsonl", fsync=fsync)
            write_all(w.events_fd, data)
            # Where the file ends now, not where this writer last left it: another
            # process may have appended events without the lease (an operator's note).
            w.events_size = os.lseek(w.events_fd, 0, os.SEEK_CUR)
            if fsync:
                os.fsync(w.events_fd)
        events_end = w.events_size if w.owner is not None else None
        if w.pending_steps:
            end = "null" if events_end is None else str(events_end)
            lines = []
            for body, delta in w.pending_steps:
                w.seq += 1
                w.step = delta.step
                lines.append(f'{{"seq":{w.seq},"events_end":{end},"delta":{body}}}\n')
            w.pending_steps = []
            data = "".join(lines).encode("utf-8")
            if w.journal_fd is None:
                w.journal_fd = append_fd(folder / "journal" / _seg_name(w.base_seq), fsync=fsync)
            write_all(w.journal_fd, data)
            if fsync:
                os.fsync(w.journal_fd)
            w.records += len(lines)
            w.journal_bytes += len(data)
            w.last_events_end = events_end
            if w.pending_full is None and self._fold_due(w, w.records, w.journal_bytes):
                live = self._rebuild(run_id, folder, w.base_seq, w.seq)
                self._write_base(folder, w, live, w.last_events_end, meta=False)
        if w.pending_full is not None:
            full, w.pending_full = w.pending_full, None
            w.seq += 1
            w.step = int(full["step"])
            # A fold the store asked for leaves metadata.json alone unless the status moved.
            meta = not w.fold_wanted or full.get("status") != w.base_status
            self._write_base(folder, w, full, events_end, meta=meta)
        if w.owner is None:
            w.close()

    def _write_base(
        self,
        folder: Path,
        w: _Writer,
        data: dict[str, Any],
        events_end: int | None,
        *,
        meta: bool = True,
    ) -> None:
        """Make ``data`` the run's fold at ``w.seq``; the previous fold stays as history.

        ``metadata.json`` is rewritten at lifecycle saves only (``meta``): its
        status cannot change in between, so a periodic fold skips a file replace.
        """
        data["store"] = {"format": FORMAT_VERSION, "seq": w.seq, "events_end": events_end}
        data["seq"] = w.seq
        text = encode_compact(data)
        snap_path = folder / "snapshot.json"
        if w.base_seq >= 0 and snap_path.exists():
            copy_atomic(snap_path, folder / "journal" / _base_name(w.base_seq), fsync=self.fsync)
        write_atomic(snap_path, text, fsync=self.fsync)
        if meta:
            summary = _metadata_of(data, self._clock())
            write_atomic(folder / "metadata.json", json.dumps(summary, indent=2), fsync=self.fsync)
        if w.journal_fd is not None:
            os.close(w.journal_fd)
            w.journal_fd = None
        w.base_seq = w.seq
        w.base_bytes = len(text)
        w.records = 0
        w.journal_bytes = 0
        w.last_events_end = events_end
        w.fresh = False
        w.fold_wanted = False
        w.base_status = data.get("status")

    # ------------------------------------------------------------------ reads

    def load_snapshot(self, run_id: str, step: int | None = None) -> RunSnapshot:
        folder = self._run_dir(run_id)
        self._commit_run(run_id)
        if step is not None:
            entries, bases = self._entries(run_id, folder)
            seq = pick_seq(entries, step)
            if seq < 0:
                raise checkpoint_not_found(run_id, step, entries)
            base = max(s for s in bases if s <= seq)
            data = self._rebuild(run_id, folder, base, seq, bases)
            data["seq"] = seq or None  # 0: a 0.1.0 snapshot, which no store numbered
            return _snapshot_from(data, bases[base], run_id)
        snap_path = folder / "snapshot.json"
        data = read_json(snap_path, run_id)
        info = _store_info(data, snap_path, run_id)
        seq = base_seq = int(info.get("seq", 0))
        seg = folder / "journal" / _seg_name(base_seq)
        records = [r for r in _read_records(seg, run_id)[0] if r["seq"] > base_seq]
        _replay(data, records, base_seq, seg, run_id)
        if records:
            seq = records[-1]["seq"]
        data["seq"] = seq or None  # 0: a 0.1.0 snapshot, which no store numbered
        return _snapshot_from(data, snap_path, run_id)

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
            return None
        base_seq = int(info.get("seq", 0))
        records = _read_records(folder / "journal" / _seg_name(base_seq), run_id)[0]
        return max([base_seq, *(int(r["seq"]) for r in records)])

    def _bases(self, folder: Path, run_id: str) -> dict[int, Path]:
        """Every fold of the run by sequence number: history folds and ``snapshot.json``."""
        snap_path = folder / "snapshot.json"
        info = _store_info(read_json(snap_path, run_id), snap_path, run_id)
        out: dict[int, Path] = {}
        for path in (folder / "journal").glob("*.snapshot.json"):
            with contextlib.suppress(ValueError):
                out[int(path.name.split(".")[0])] = path
        out[int(info.get("seq", 0))] = snap_path
        return out

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
        snap: dict[str, Any] = read_json(path, run_id)
        _store_info(snap, path, run_id)
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
            found[seq] = info_of(read_json(path, run_id))
            for rec in _read_records(folder / "journal" / _seg_name(seq), run_id)[0]:
                if rec["seq"] > seq and isinstance(rec.get("delta"), dict):
                    found[rec["seq"]] = info_of(rec["delta"])
        floor = min(bases)
        return sorted((s, i) for s, i in found.items() if s >= floor), bases

    def history(self, run_id: str) -> list[CheckpointInfo]:
        """The run's checkpoints, oldest first (a run written by 0.1.0 has one)."""
        folder = self._run_dir(run_id)
        self._commit_run(run_id)
        return [info for _, info in self._entries(run_id, folder)[0]]

    def events(self, run_id: str) -> list[Event]:
        """The run's event log, oldest first; a torn last line is left out."""
        folder = self._run_dir(run_id)
        self._commit_run(run_id)
        path = folder / "events.jsonl"
        if not path.exists():
            if not (folder / "snapshot.json").exists():
                raise RunNotFoundError(run_id)
            return []
        out = []
        lines = path.read_bytes().split(b"\n")
        for number, line in enumerate(lines):
            if not line:
                continue
            try:
                out.append(Event.from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                torn = number == len(lines) - 1 or (number == len(lines) - 2 and not lines[-1])
                if torn:
                    break  # the half-written last line of a killed process
                raise _corrupt(path, run_id, f"line {number + 1} is not an event ({exc})") from exc
        return out

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

    def run_status(self, run_id: str) -> str | None:
        folder = self._run_dir(run_id)
        self._commit_run(run_id)
        snap_path = folder / "snapshot.json"
        if not snap_path.exists():
            return None
        # Only a full save changes the status, so the fold is authoritative (metadata.json
        # can lag by one replace after a crash).
        data = read_json(snap_path, run_id)
        _store_info(data, snap_path, run_id)
        return str(data.get("status"))

    def list_metadata(
        self, workflow_name: str | None = None, status: str | None = None
    ) -> list[RunMetadata]:
        self.flush()
        out = []
        for folder, data in self._metadata():
            item = RunMetadata.from_dict({**data, "run_id": data.get("run_id", folder.name)})
            if (workflow_name is None or item.workflow_name == workflow_name) and (
                status is None or item.status == status
            ):
                out.append(item)
        return out

    def _metadata(self) -> list[tuple[Path, dict[str, Any]]]:
        """(folder, metadata dict) of every run folder; stray files and folders are skipped."""
        out = []
        for folder in sorted(self.base_dir.iterdir()):
            meta = folder / "metadata.json"
            if not folder.is_dir() or not meta.is_file():
                continue
            try:
                data = json.loads(meta.read_bytes())
            except (OSError, ValueError):
                continue
            if isinstance(data, dict):
                out.append((folder, data))
        return out

    # ------------------------------------------------------------------ leases

    def _read_lease(self, fd: int) -> _Lease:
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return _parse_lease(b"".join(chunks))

    def _write_lease(self, fd: int, lease: _Lease, *, sync: bool = True) -> bytes:
        """Rewrite ``lease.json`` in place: the new record first, then cut to its length."""
        body = lease.encode()
        os.lseek(fd, 0, os.SEEK_SET)
        write_all(fd, body)
        os.ftruncate(fd, len(body))
        if sync and self.fsync:
            os.fsync(fd)
        return body

    def acquire_lease(self, run_id: str, owner: str) -> int:
        """Take the run for ``owner``; returns its fencing token (one more than the last)."""
        folder = self._run_dir(run_id)
        folder.mkdir(exist_ok=True)
        with self._lock:
            now = self._clock()
            with locked(folder / "lease.json") as fd:
                lease = self._read_lease(fd)
                if lease.verdict(owner, now) == "taken":
                    raise locked_error(run_id, lease.owner, lease.expires_at - now)
                token = lease.token + 1
                events_from = lease.events_from
                taken = _Lease(owner, now + self.lease_ttl_seconds, token, process_holder())
                taken.events_from = events_from
                self._write_lease(fd, taken)
            old = self._writers.pop(run_id, None)
            if old is not None:
                try:
                    self._commit(run_id, old)
                finally:
                    old.close()
            w = self._open_writer(run_id, recover=True, events_from=events_from)
            w.owner = owner
            w.token = token
            self._writers[run_id] = w
            return token

    def renew_lease(self, run_id: str, owner: str, token: int | None = None) -> None:
        """Extend ``owner``'s lease, expired or not; never acquires.

        ``RunLockedError`` when the lease is not ``owner``'s (with ``token``) any more.
        """
        folder = self._run_dir(run_id)
        with self._lock:
            if not (folder / "lease.json").is_file():
                raise lost_lease_error(run_id, owner, None, "the run has no lease")
            with locked(folder / "lease.json") as fd:
                lease = self._read_lease(fd)
                _check_holds(lease, run_id, owner, token)
                now = self._clock()
                lease.expires_at = now + self.lease_ttl_seconds
                lease.holder = process_holder()
                self._write_lease(fd, lease)

    def release_lease(self, run_id: str, owner: str) -> None:
        folder = self._run_dir(run_id)
        with self._lock:
            w = self._writers.get(run_id)
            if w is not None and w.owner == owner:
                try:
                    self._commit(run_id, w)
                finally:
                    w.close()
                    del self._writers[run_id]
            if not (folder / "lease.json").is_file():
                return
            with locked(folder / "lease.json") as fd:
                lease = self._read_lease(fd)
                if lease.owner == owner:
                    self._write_lease(fd, _cleared(lease))

    def break_lease(self, run_id: str) -> bool:
        folder = self._run_dir(run_id)
        if not (folder / "lease.json").exists():
            return False
        with self._lock, locked(folder / "lease.json") as fd:
            lease = self._read_lease(fd)
            if lease.owner is None:
                return False
            self._write_lease(fd, _cleared(lease))
            w = self._writers.get(run_id)
            if w is not None:
                w.token = None  # a commit through this writer re-reads the run first
            return True

    def delete_run(self, run_id: str, *, owner: str | None = None) -> bool:
        folder = self._run_dir(run_id)
        if not folder.exists():
            return False
        with self._lock:
            with locked(folder / "lease.json") as fd:
                now = self._clock()
                lease = self._read_lease(fd)
                if lease.verdict(owner, now) == "taken":
                    raise locked_error(run_id, lease.owner, lease.expires_at - now)
                if lease.events_from is not None:
                    lease.events_from = None  # the events it points into are deleted now
                    self._write_lease(fd, lease)
                existed = (folder / "snapshot.json").exists()
                old = self._writers.pop(run_id, None)
                if old is not None:
                    old.close()
                for path in list(folder.iterdir()):
                    if path.name == "lease.json":
                        continue
                    if path.is_dir():
                        shutil.rmtree(path)
                    else:
                        path.unlink()
                if owner is not None and old is not None and old.owner == owner:
                    fresh = _Writer()
                    fresh.folder = folder
                    fresh.owner, fresh.fresh = owner, True
                    fresh.token = old.token
                    (folder / "journal").mkdir()
                    fresh.on_disk = self._on_disk(fresh)
                    self._writers[run_id] = fresh
            if owner is None:
                shutil.rmtree(folder, ignore_errors=True)
        return existed

    # ------------------------------------------------------------------ history

    def prune(
        self,
        keep_last: int | None = None,
        older_than: float | timedelta | None = None,
        statuses: Iterable[str] = FINISHED_STATUSES,
        *,
        keep_events: bool = False,
    ) -> PruneResult:
        check_keep_last(keep_last)
        wanted = status_set(statuses)
        self.flush()
        deleted: list[str] = []
        trimmed: dict[str, int] = {}
        if older_than is not None:
            cutoff = self._clock() - to_seconds(older_than)
            for folder, meta in self._metadata():
                if meta.get("status") in wanted and _saved_at(meta, folder) < cutoff:
                    try:
                        self.delete_run(folder.name)
                    except RunLockedError:
                        continue
                    deleted.append(folder.name)
        if keep_last is not None:
            for folder in sorted(self.base_dir.iterdir()):
                if (folder / "snapshot.json").is_file():
                    dropped = self._trim(folder, int(keep_last))
                    if dropped:
                        trimmed[folder.name] = dropped
        return PruneResult(tuple(sorted(deleted)), trimmed)

    def _trim(self, folder: Path, keep_last: int) -> int:
        """Keep the newest ``keep_last`` checkpoints of one run; a run being driven is skipped."""
        run_id = folder.name
        owner = f"prune-{os.getpid()}-{id(self)}"
        try:
            self.acquire_lease(run_id, owner)
        except RunLockedError:
            return 0
        try:
            entries, bases = self._entries(run_id, folder)
            drop = len(entries) - keep_last
            if drop <= 0:
                return 0
            self._cut_before(run_id, folder, bases, entries[drop][0])
            return drop
        finally:
            self.release_lease(run_id, owner)

    def _cut_before(self, run_id: str, folder: Path, bases: dict[int, Path], keep: int) -> None:
        """Make checkpoint ``keep`` a fold, then delete every fold and record before it.

        Files are written before anything is deleted, so a crash in between
        leaves extra history, never a gap.
        """
        journal = folder / "journal"
        base = max(s for s in bases if s <= keep)
        if base != keep:
            snap = self._rebuild(run_id, folder, base, keep, bases)
            records = _read_records(journal / _seg_name(base), run_id)[0]
            kept = next(r for r in records if r["seq"] == keep)
            after = "".join(encode_compact(r) + "\n" for r in records if r["seq"] > keep)
            write_atomic(journal / _seg_name(keep), after, fsync=self.fsync)
            snap["store"] = {
                "format": FORMAT_VERSION,
                "seq": keep,
                "events_end": kept.get("events_end"),
            }
            snap["seq"] = keep
            target = folder / "snapshot.json" if base == max(bases) else journal / _base_name(keep)
            write_atomic(target, encode_compact(snap), fsync=self.fsync)
        for path in list(journal.iterdir()):
            try:
                seq = int(path.name.split(".")[0])
            except ValueError:
                continue
            if seq < keep:
                path.unlink()


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
    """0.1.0's ``metadata.json`` fields from a snapshot dict, plus ``run_id`` and ``saved_at``."""
    status = data.get("status")
    return {
        "workflow_name": data.get("workflow_name"),
        "workflow_hash": data.get("wf_hash"),
        "status": status,
        "started_at": data.get("started_at"),
        "updated_at": data.get("updated_at"),
        "current_node": data.get("last_node"),
        "waiting": status == "waiting",
        "last_error": data.get("last_error"),
        "run_id": data.get("run_id"),
        "saved_at": saved_at,
    }


def _saved_at(meta: dict[str, Any], folder: Path) -> float:
    """When a run was last written: our ``saved_at``, else 0.1.0's ``updated_at``, else mtime."""
    saved = meta.get("saved_at")
    if isinstance(saved, int | float):
        return float(saved)
    with contextlib.suppress(TypeError, ValueError):
        return datetime.fromisoformat(str(meta.get("updated_at"))).timestamp()
    return (folder / "metadata.json").stat().st_mtime
