"""``SqliteWorkflowStore``: every checkpoint of every run in one SQLite file (stdlib ``sqlite3``).

Each checkpoint is one row holding the step's change (a ``StepDelta``), with a
full snapshot row now and then (at lifecycle transitions, and when the deltas
since the last one outweigh it), so neither time per node nor disk use grows
with the square of the run's length. A checkpoint, the events that led to it
and the run's summary row are written in one transaction. WAL mode lets
readers work during writes and several processes write different runs.

The schema is versioned with ``PRAGMA user_version`` and migrated forward on
open; a database written by a newer zeroflow is refused, not altered.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from .._constants import EVENT_CHECKPOINT
from .._errors import RunNotFoundError, StoreCorruptError, StoreError
from .._journal import StepDelta
from .._models import Event, RunMetadata, RunSnapshot, WorkflowError
from .._store import DEFAULT_LEASE_TTL_SECONDS, FINISHED_STATUSES, CheckpointInfo, PruneResult
from ._common import (
    SqlWriter,
    apply_delta_dict,
    check_keep_last,
    check_run_id,
    checkpoint_not_found,
    encode_compact,
    encode_event,
    frontier_only,
    lease_verdict,
    locked_error,
    lost_lease_error,
    should_fold,
    status_set,
    to_seconds,
)

__all__ = ["SCHEMA_VERSION", "SqliteWorkflowStore"]


_MIGRATIONS: list[list[str]] = [
    # version 1
    [
        """CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            workflow_name TEXT NOT NULL,
            workflow_hash TEXT NOT NULL,
            status TEXT NOT NULL,
            started_at TEXT,
            updated_at TEXT,
            current_node TEXT,
            last_error TEXT,
            base_seq INTEGER NOT NULL,
            saved_at REAL NOT NULL
        ) WITHOUT ROWID""",
        "CREATE INDEX runs_by_workflow ON runs (workflow_name, status)",
        "CREATE INDEX runs_by_status ON runs (status, saved_at)",
        """CREATE TABLE checkpoints (
            run_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            step INTEGER NOT NULL,
            wave INTEGER NOT NULL,
            status TEXT NOT NULL,
            node TEXT,
            ts TEXT,
            delta TEXT,
            PRIMARY KEY (run_id, seq)
        ) WITHOUT ROWID""",
        """CREATE TABLE snapshots (
            run_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (run_id, seq)
        )""",
        """CREATE TABLE events (
            run_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            count INTEGER NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (run_id, seq)
        ) WITHOUT ROWID""",
        """CREATE TABLE leases (
            run_id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            expires_at REAL NOT NULL
        ) WITHOUT ROWID""",
    ],
]

SCHEMA_VERSION = len(_MIGRATIONS)
"""The schema this zeroflow writes; older databases are migrated forward on open."""


class SqliteWorkflowStore:
    """Keeps runs, their whole checkpoint history and events in SQLite.

    ``path`` is a file (created if missing) or ``":memory:"``. ``fsync=False``
    (default, ``synchronous=NORMAL``) survives a killed process; ``fsync=True``
    (``synchronous=FULL``) also survives power loss. ``timeout_seconds`` is how
    long a write waits for another process's transaction. Thread-safe.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        fsync: bool = False,
        lease_ttl_seconds: float = DEFAULT_LEASE_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
        timeout_seconds: float = 30.0,
    ) -> None:
        self.path = str(path)
        self.fsync = fsync
        self.lease_ttl_seconds = float(lease_ttl_seconds)
        self._clock = clock
        self._lock = threading.RLock()
        self._writers: dict[str, SqlWriter] = {}
        if self.path != ":memory:" and not self.path.startswith("file:"):
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(
                self.path, timeout=timeout_seconds, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
            self._migrate()
        except sqlite3.OperationalError as exc:
            raise StoreError(f"cannot open {self.path}: {exc}", path=self.path) from exc
        except sqlite3.DatabaseError as exc:
            raise StoreCorruptError(
                f"{self.path} is not a SQLite database ({exc}); point the store at its own file",
                path=self.path,
            ) from exc

    def _migrate(self) -> None:
        db = self._db
        with self._tx():
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreCorruptError(
                    f"{self.path}: schema version {version} is newer than this zeroflow's "
                    f"({SCHEMA_VERSION}); upgrade zeroflow to open it",
                    path=self.path,
                )
            for number in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[number]:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={number + 1}")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; ``BEGIN IMMEDIATE`` takes the write lock up front."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every SELECT inside sees the same committed state."""
        with self._lock:
            db = self._db
            db.execute("BEGIN")
            try:
                yield db
            finally:
                db.execute("COMMIT")

    def close(self) -> None:
        """Write anything pending and close the connection."""
        with self._lock:
            self.flush()
            self._writers.clear()
            self._db.close()

    # ------------------------------------------------------------------ writes

    def save_snapshot(self, snapshot: RunSnapshot) -> None:
        data = snapshot.to_dict()
        with self._lock:
            w = self._writer(snapshot.run_id)
            w.pending_full = data
            w.hold = False
            if w.owner is None:
                self._commit(snapshot.run_id, w)

    def append_step(self, run_id: str, delta: StepDelta) -> None:
        plain = delta.to_dict()
        body = encode_compact(plain)
        with self._lock:
            w = self._writer(run_id)
            if w.pending_full is not None:
                self._commit(run_id, w)
            if w.base_seq < 0 and w.owner is not None:
                raise RunNotFoundError(run_id)
            w.pending_deltas.append((body, delta))
            if w.live is not None:
                apply_delta_dict(w.live, plain)
            w.hold = frontier_only(delta)
            if w.owner is None:
                self._commit(run_id, w)

    def append_event(self, run_id: str, event: Event) -> None:
        body = encode_event(event)
        with self._lock:
            w = self._writer(run_id)
            w.pending_events.append(body)
            if w.owner is None or (event.kind == EVENT_CHECKPOINT and not w.hold and w.has_state()):
                # A checkpoint that wrote no state (a wave opening) rides with the next one.
                self._commit(run_id, w)

    def flush(self) -> None:
        """Commit whatever a driven run has pending (reads and releases do this themselves)."""
        with self._lock:
            for run_id, w in self._writers.items():
                self._commit(run_id, w)

    def _writer(self, run_id: str) -> SqlWriter:
        w = self._writers.get(run_id)
        if w is None:
            check_run_id(run_id)
            w = SqlWriter()
            self._load_counters(run_id, w)
            self._writers[run_id] = w
        return w

    def _load_counters(self, run_id: str, w: SqlWriter) -> None:
        db = self._db
        row = db.execute("SELECT base_seq FROM runs WHERE run_id=?", (run_id,)).fetchone()
        w.event_seq = db.execute(
            "SELECT coalesce(max(seq + count - 1), 0) FROM events WHERE run_id=?", (run_id,)
        ).fetchone()[0]
        if row is None:
            w.seq, w.base_seq, w.base_bytes, w.records, w.delta_bytes = 0, -1, 0, 0, 0
            return
        w.base_seq = row[0]
        w.seq = db.execute("SELECT max(seq) FROM checkpoints WHERE run_id=?", (run_id,)).fetchone()[
            0
        ]
        w.base_bytes = db.execute(
            "SELECT length(body) FROM snapshots WHERE run_id=? AND seq=?", (run_id, w.base_seq)
        ).fetchone()[0]
        w.records, w.delta_bytes = db.execute(
            "SELECT count(*), coalesce(sum(length(delta)), 0) FROM checkpoints "
            "WHERE run_id=? AND seq>?",
            (run_id, w.base_seq),
        ).fetchone()

    def _commit(self, run_id: str, w: SqlWriter) -> None:
        """Write pending events and the pending checkpoint in one transaction."""
        if not (w.pending_events or w.pending_full is not None or w.pending_deltas):
            return
        now = self._clock()
        with self._tx() as db:
            if w.owner is None:
                self._load_counters(run_id, w)  # no lease: another writer may have moved on
            if w.pending_events:
                # One row per checkpoint's events (JSON lines never hold a raw newline).
                count = len(w.pending_events)
                db.execute(
                    "INSERT INTO events VALUES (?, ?, ?, ?)",
                    (run_id, w.event_seq + 1, count, "\n".join(w.pending_events)),
                )
                w.event_seq += count
            if w.pending_deltas:
                if w.base_seq < 0:
                    raise RunNotFoundError(run_id)
                rows = []
                for body, delta in w.pending_deltas:
                    w.seq += 1
                    w.delta_bytes += len(body)
                    rows.append(
                        (
                            run_id,
                            w.seq,
                            delta.step,
                            delta.wave,
                            delta.status,
                            delta.last_node,
                            delta.updated_at,
                            body,
                        )
                    )
                db.executemany("INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
                w.records += len(rows)
                if w.pending_full is None and should_fold(w.records, w.delta_bytes, w.base_bytes):
                    self._fold(db, run_id, w, now)
            if w.pending_full is not None:
                self._write_full(db, run_id, w, w.pending_full, now)
            # Cleared only once the transaction is in: a failed commit keeps them for a retry.
            w.pending_events = []
            w.pending_full = None
            w.pending_deltas = []
            w.hold = False

    def _fold(self, db: sqlite3.Connection, run_id: str, w: SqlWriter, now: float) -> None:
        """Store the run's current state as a full snapshot and refresh its summary row."""
        snap = w.live if w.live is not None else self._rebuild(db, run_id, w.seq)
        text = encode_compact(snap)
        db.execute("INSERT INTO snapshots VALUES (?, ?, ?)", (run_id, w.seq, text))
        db.execute(
            "UPDATE runs SET base_seq=?, status=?, updated_at=?, current_node=?, saved_at=? "
            "WHERE run_id=?",
            (w.seq, snap.get("status"), snap.get("updated_at"), snap.get("last_node"), now, run_id),
        )
        w.base_seq, w.base_bytes, w.records, w.delta_bytes = w.seq, len(text), 0, 0

    def _write_full(
        self, db: sqlite3.Connection, run_id: str, w: SqlWriter, data: dict[str, Any], now: float
    ) -> None:
        seq = w.seq + 1
        text = encode_compact(data)
        status = data["status"]
        db.execute(
            "INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
            (
                run_id,
                seq,
                data["step"],
                data["wave"],
                status,
                data["last_node"],
                data["updated_at"],
            ),
        )
        db.execute("INSERT INTO snapshots VALUES (?, ?, ?)", (run_id, seq, text))
        err = data["last_error"]
        db.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO "
            "UPDATE SET workflow_name=excluded.workflow_name, "
            "workflow_hash=excluded.workflow_hash, status=excluded.status, "
            "started_at=excluded.started_at, updated_at=excluded.updated_at, "
            "current_node=excluded.current_node, last_error=excluded.last_error, "
            "base_seq=excluded.base_seq, saved_at=excluded.saved_at",
            (
                run_id,
                data["workflow_name"],
                data["wf_hash"],
                status,
                data["started_at"],
                data["updated_at"],
                data["last_node"],
                None if err is None else json.dumps(err),
                seq,
                now,
            ),
        )
        w.seq = w.base_seq = seq
        w.base_bytes = len(text)
        w.records = w.delta_bytes = 0
        # A driver keeps the run's current state, so the next full snapshot costs one encode.
        w.live = data if w.owner is not None else None

    # ------------------------------------------------------------------ reads

    def _decode(self, run_id: str, seq: int, body: str) -> dict[str, Any]:
        try:
            data = json.loads(body)
            if not isinstance(data, dict):
                raise TypeError(f"a JSON {type(data).__name__}, not an object")
            return data
        except (ValueError, TypeError) as exc:
            raise StoreCorruptError(
                f"{self.path}: snapshot {seq} of run '{run_id}' cannot be decoded "
                f"({type(exc).__name__}: {exc})",
                run_id=run_id,
                path=self.path,
            ) from exc

    def _rebuild(self, db: sqlite3.Connection, run_id: str, seq: int) -> dict[str, Any]:
        """The run as of checkpoint ``seq`` (snapshot dict): the last full snapshot plus deltas."""
        row = db.execute(
            "SELECT seq, body FROM snapshots WHERE run_id=? AND seq<=? ORDER BY seq DESC LIMIT 1",
            (run_id, seq),
        ).fetchone()
        if row is None:
            raise StoreCorruptError(
                f"{self.path}: run '{run_id}' has no full snapshot at or before checkpoint {seq}",
                run_id=run_id,
                path=self.path,
            )
        snap = self._decode(run_id, row[0], row[1])
        for number, body in db.execute(
            "SELECT seq, delta FROM checkpoints WHERE run_id=? AND seq>? AND seq<=? "
            "AND delta IS NOT NULL ORDER BY seq",
            (run_id, row[0], seq),
        ):
            try:
                apply_delta_dict(snap, json.loads(body))
            except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
                raise StoreCorruptError(
                    f"{self.path}: checkpoint {number} of run '{run_id}' cannot be decoded "
                    f"({type(exc).__name__}: {exc})",
                    run_id=run_id,
                    path=self.path,
                ) from exc
        return snap

    def load_snapshot(self, run_id: str, step: int | None = None) -> RunSnapshot:
        self._commit_run(run_id)
        with self._read() as db:
            seq = db.execute(
                "SELECT max(seq) FROM checkpoints WHERE run_id=?", (run_id,)
            ).fetchone()[0]
            if seq is None:
                raise RunNotFoundError(run_id)
            if step is not None:
                found = db.execute(
                    "SELECT max(seq) FROM checkpoints WHERE run_id=? AND step=?", (run_id, step)
                ).fetchone()[0]
                if found is None:
                    entries = list(enumerate(self._history(db, run_id)))
                    raise checkpoint_not_found(run_id, step, entries)
                seq = found
            data = self._rebuild(db, run_id, seq)
        try:
            return RunSnapshot.from_dict(data)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StoreCorruptError(
                f"{self.path}: run '{run_id}' does not decode to a snapshot "
                f"({type(exc).__name__}: {exc})",
                run_id=run_id,
                path=self.path,
            ) from exc

    def _commit_run(self, run_id: str) -> None:
        with self._lock:
            w = self._writers.get(run_id)
            if w is not None:
                self._commit(run_id, w)

    def _history(self, db: sqlite3.Connection, run_id: str) -> list[CheckpointInfo]:
        return [
            CheckpointInfo(step, wave, status, node, ts)
            for step, wave, status, node, ts in db.execute(
                "SELECT step, wave, status, node, ts FROM checkpoints WHERE run_id=? ORDER BY seq",
                (run_id,),
            )
        ]

    def history(self, run_id: str) -> list[CheckpointInfo]:
        """The run's checkpoints, oldest first."""
        self._commit_run(run_id)
        with self._read() as db:
            out = self._history(db, run_id)
        if not out:
            raise RunNotFoundError(run_id)
        return out

    def events(self, run_id: str) -> list[Event]:
        """The run's event log, oldest first (checkpoint events carry only their step)."""
        self._commit_run(run_id)
        with self._read() as db:
            rows = db.execute(
                "SELECT body FROM events WHERE run_id=? ORDER BY seq", (run_id,)
            ).fetchall()
            if (
                not rows
                and db.execute("SELECT 1 FROM runs WHERE run_id=?", (run_id,)).fetchone() is None
            ):
                raise RunNotFoundError(run_id)
        try:
            return [
                Event.from_dict(json.loads(line)) for (body,) in rows for line in body.split("\n")
            ]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StoreCorruptError(
                f"{self.path}: an event of run '{run_id}' cannot be decoded ({exc})",
                run_id=run_id,
                path=self.path,
            ) from exc

    def run_status(self, run_id: str) -> str | None:
        self._commit_run(run_id)
        with self._lock:
            row = self._db.execute("SELECT status FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return None if row is None else str(row[0])

    def list_metadata(
        self, workflow_name: str | None = None, status: str | None = None
    ) -> list[RunMetadata]:
        self.flush()
        where, args = [], []
        if workflow_name is not None:
            where.append("workflow_name=?")
            args.append(workflow_name)
        if status is not None:
            where.append("status=?")
            args.append(status)
        sql = (
            "SELECT run_id, workflow_name, workflow_hash, status, started_at, updated_at, "
            "current_node, last_error FROM runs"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY run_id", args).fetchall()
        return [
            RunMetadata(
                workflow_name=name,
                workflow_hash=wf_hash,
                status=st,
                started_at=started,
                updated_at=updated,
                current_node=node,
                waiting=st == "waiting",
                last_error=None if err is None else WorkflowError.from_dict(json.loads(err)),
                run_id=run_id,
            )
            for run_id, name, wf_hash, st, started, updated, node, err in rows
        ]

    # ------------------------------------------------------------------ leases

    def acquire_lease(self, run_id: str, owner: str) -> None:
        check_run_id(run_id)
        with self._tx() as db:
            now = self._clock()
            row = db.execute(
                "SELECT owner, expires_at FROM leases WHERE run_id=?", (run_id,)
            ).fetchone()
            holder, expires = row if row is not None else (None, 0.0)
            if lease_verdict(holder, expires, owner, now) == "taken":
                raise locked_error(run_id, holder, expires - now)
            db.execute(
                "INSERT OR REPLACE INTO leases VALUES (?, ?, ?)",
                (run_id, owner, now + self.lease_ttl_seconds),
            )
        with self._lock:
            old = self._writers.pop(run_id, None)
            if old is not None:
                self._commit(run_id, old)
            w = SqlWriter()
            self._load_counters(run_id, w)
            w.owner, w.renewed_at = owner, now
            self._writers[run_id] = w

    def renew_lease(self, run_id: str, owner: str) -> None:
        now = self._clock()
        w = self._writers.get(run_id)
        if w is not None and w.owner == owner and now - w.renewed_at < self.lease_ttl_seconds / 3:
            return
        with self._tx() as db:
            row = db.execute(
                "SELECT owner, expires_at FROM leases WHERE run_id=?", (run_id,)
            ).fetchone()
            if row is not None and row[0] != owner and row[1] > now:
                raise lost_lease_error(run_id)
            db.execute(
                "INSERT OR REPLACE INTO leases VALUES (?, ?, ?)",
                (run_id, owner, now + self.lease_ttl_seconds),
            )
        if w is not None and w.owner == owner:
            w.renewed_at = now

    def release_lease(self, run_id: str, owner: str) -> None:
        with self._lock:
            w = self._writers.get(run_id)
            if w is not None and w.owner == owner:
                try:
                    self._commit(run_id, w)
                finally:
                    del self._writers[run_id]
            with self._tx() as db:
                db.execute("DELETE FROM leases WHERE run_id=? AND owner=?", (run_id, owner))

    def break_lease(self, run_id: str) -> bool:
        with self._tx() as db:
            return db.execute("DELETE FROM leases WHERE run_id=?", (run_id,)).rowcount > 0

    def delete_run(self, run_id: str, *, owner: str | None = None) -> bool:
        with self._tx() as db:
            now = self._clock()
            row = db.execute(
                "SELECT owner, expires_at FROM leases WHERE run_id=?", (run_id,)
            ).fetchone()
            holder, expires = row if row is not None else (None, 0.0)
            if lease_verdict(holder, expires, owner, now) == "taken":
                raise locked_error(run_id, holder, expires - now)
            existed = self._delete(db, run_id)
            if owner is None:
                db.execute("DELETE FROM leases WHERE run_id=?", (run_id,))
        w = self._writers.pop(run_id, None)
        if w is not None and w.owner == owner and owner is not None:
            fresh = SqlWriter()
            fresh.owner, fresh.renewed_at = owner, w.renewed_at
            self._writers[run_id] = fresh
        return existed

    def _delete(self, db: sqlite3.Connection, run_id: str) -> bool:
        for table in ("checkpoints", "snapshots", "events"):
            db.execute(f"DELETE FROM {table} WHERE run_id=?", (run_id,))
        return db.execute("DELETE FROM runs WHERE run_id=?", (run_id,)).rowcount > 0

    # ------------------------------------------------------------------ history

    def prune(
        self,
        keep_last: int | None = None,
        older_than: float | timedelta | None = None,
        statuses: Iterable[str] = FINISHED_STATUSES,
    ) -> PruneResult:
        check_keep_last(keep_last)
        wanted = sorted(status_set(statuses))
        self.flush()
        deleted: list[str] = []
        trimmed: dict[str, int] = {}
        now = self._clock()
        if older_than is not None and wanted:
            cutoff = now - to_seconds(older_than)
            marks = ",".join("?" * len(wanted))
            with self._tx() as db:
                rows = db.execute(
                    f"SELECT run_id FROM runs WHERE status IN ({marks}) AND saved_at<? "
                    "AND run_id NOT IN (SELECT run_id FROM leases WHERE expires_at>?)",
                    (*wanted, cutoff, now),
                ).fetchall()
                for (run_id,) in rows:
                    self._delete(db, run_id)
                    deleted.append(run_id)
        if keep_last is not None:
            with self._lock:
                candidates = self._db.execute(
                    "SELECT run_id, count(*) FROM checkpoints GROUP BY run_id HAVING count(*)>?",
                    (keep_last,),
                ).fetchall()
            for run_id, count in candidates:
                with self._tx() as db:
                    live = db.execute(
                        "SELECT 1 FROM leases WHERE run_id=? AND expires_at>?", (run_id, now)
                    ).fetchone()
                    if live is not None:
                        continue
                    keep = db.execute(
                        "SELECT seq FROM checkpoints WHERE run_id=? ORDER BY seq DESC "
                        "LIMIT 1 OFFSET ?",
                        (run_id, keep_last - 1),
                    ).fetchone()[0]
                    has_full = db.execute(
                        "SELECT 1 FROM snapshots WHERE run_id=? AND seq=?", (run_id, keep)
                    ).fetchone()
                    if has_full is None:
                        text = encode_compact(self._rebuild(db, run_id, keep))
                        db.execute("INSERT INTO snapshots VALUES (?, ?, ?)", (run_id, keep, text))
                        db.execute(
                            "UPDATE runs SET base_seq=max(base_seq, ?) WHERE run_id=?",
                            (keep, run_id),
                        )
                    db.execute("DELETE FROM checkpoints WHERE run_id=? AND seq<?", (run_id, keep))
                    db.execute("DELETE FROM snapshots WHERE run_id=? AND seq<?", (run_id, keep))
                    trimmed[run_id] = count - keep_last
                self._writers.pop(run_id, None)
        return PruneResult(tuple(sorted(deleted)), trimmed)


def _error_text(error: WorkflowError | None) -> str | None:
    return None if error is None else json.dumps(error.to_dict())
