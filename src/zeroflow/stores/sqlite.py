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

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .._errors import StoreCorruptError, StoreError
from .._models import Event
from .._store import DEFAULT_LEASE_TTL_SECONDS
from ._common import encode_event_rows, reset_after_fork
from ._sql import Db, SqlStore, SqlWriter, newer_schema_error

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
    # version 2: a commit's events ride in its checkpoint row, one INSERT per node; the
    # table keeps rowids (a WITHOUT ROWID table is slow to insert rows of a kilobyte).
    [
        """CREATE TABLE checkpoints_v2 (
            run_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            step INTEGER NOT NULL,
            wave INTEGER NOT NULL,
            status TEXT NOT NULL,
            node TEXT,
            ts TEXT,
            delta TEXT,
            event_seq INTEGER,
            event_count INTEGER NOT NULL DEFAULT 0,
            events TEXT,
            PRIMARY KEY (run_id, seq)
        )""",
        "INSERT INTO checkpoints_v2 (run_id, seq, step, wave, status, node, ts, delta) "
        "SELECT run_id, seq, step, wave, status, node, ts, delta FROM checkpoints",
        "DROP TABLE checkpoints",
        "ALTER TABLE checkpoints_v2 RENAME TO checkpoints",
    ],
    # version 3: a lease row keeps its fencing token (and the holder process) when it is
    # released or broken, so the owner may be NULL; a migrated lease starts at token 0.
    [
        """CREATE TABLE leases_v3 (
            run_id TEXT PRIMARY KEY,
            owner TEXT,
            expires_at REAL NOT NULL,
            token INTEGER NOT NULL DEFAULT 0,
            holder TEXT
        ) WITHOUT ROWID""",
        "INSERT INTO leases_v3 (run_id, owner, expires_at) "
        "SELECT run_id, owner, expires_at FROM leases",
        "DROP TABLE leases",
        "ALTER TABLE leases_v3 RENAME TO leases",
    ],
]

SCHEMA_VERSION = len(_MIGRATIONS)
"""The schema this zeroflow writes; older databases are migrated forward on open."""


class _Unusable:
    """Stands in for a connection a forked child could not reopen; every use says why."""

    def __init__(self, why: str) -> None:
        self.why = why

    def execute(self, *args: object) -> None:
        raise StoreError(self.why)

    executemany = execute


class _WriteTx:
    """``with`` one write transaction: commit on success, roll back on any error.

    A plain class rather than ``@contextmanager``: it runs once per checkpoint.
    """

    __slots__ = ("db", "lock")

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock) -> None:
        self.db = db
        self.lock = lock

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise
        return self.db

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        try:
            if kind is None:
                try:
                    self.db.execute("COMMIT")
                    return
                except BaseException:
                    # A failed COMMIT may leave the transaction open (busy) or rolled back
                    # already (I/O error, disk full): roll back only what is still open.
                    if self.db.in_transaction:
                        self.db.execute("ROLLBACK")
                    raise
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
        finally:
            self.lock.release()


class SqliteWorkflowStore(SqlStore):
    """Keeps runs, their whole checkpoint history and events in SQLite.

    ``path`` is a file (created if missing) or ``":memory:"``. ``fsync=False``
    (default, ``synchronous=NORMAL``) survives a killed process; ``fsync=True``
    (``synchronous=FULL``) also survives power loss. ``timeout_seconds`` is how
    long a write waits for another process's transaction. Thread-safe.
    """

    _EVENTS_END = (
        "SELECT max(coalesce((SELECT max(seq + count - 1) FROM events WHERE run_id=?1), 0), "
        "coalesce((SELECT max(event_seq + event_count - 1) FROM checkpoints WHERE run_id=?1), 0))"
    )
    _EVENTS_TABLE_END = (
        "SELECT seq + count - 1 FROM events WHERE run_id=? ORDER BY seq DESC LIMIT 1"
    )
    _EVENTS_QUERY = (
        "SELECT event_seq, events FROM checkpoints WHERE run_id=?1 AND events IS NOT NULL "
        "UNION ALL SELECT seq, body FROM events WHERE run_id=?1 ORDER BY 1"
    )
    _EVENTS_IN_CHECKPOINTS = True
    _GREATEST = "max"

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
        self._timeout = timeout_seconds
        self._lock = threading.RLock()
        self._writers: dict[str, SqlWriter] = {}
        if self.path != ":memory:" and not self.path.startswith("file:"):
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._connect()
            self._migrate()
        except sqlite3.OperationalError as exc:
            raise StoreError(f"cannot open {self.path}: {exc}", path=self.path) from exc
        except sqlite3.DatabaseError as exc:
            raise StoreCorruptError(
                f"{self.path} is not a SQLite database ({exc}); point the store at its own file",
                path=self.path,
            ) from exc
        reset_after_fork(self)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={'FULL' if self.fsync else 'NORMAL'}")
        return db

    def _forked(self) -> None:
        """In a forked child: a connection of its own (SQLite forbids using the parent's).

        A ``":memory:"`` or temporary (``""``) database is the child's own copy
        and stays as it is.
        """
        super()._forked()
        if self.path in (":memory:", ""):
            return  # a private database: the child's copy is its own
        # The lock was held across the fork: the parent's connection was idle, with no
        # statement or transaction open, so closing the child's copy touches nothing the
        # parent uses, and the new connection takes its own locks.
        self._db.close()
        try:
            self._db = self._connect()
        except sqlite3.Error as exc:
            self._db = _Unusable(f"{self.path}: cannot reopen after fork ({exc})")  # type: ignore[assignment]

    def _migrate(self) -> None:
        db = self._db
        with self._tx():
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise newer_schema_error(self.path, version, SCHEMA_VERSION)
            for number in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[number]:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={number + 1}")

    def _tx(self) -> _WriteTx:
        """One write transaction; ``BEGIN IMMEDIATE`` takes the write lock up front."""
        return _WriteTx(self._db, self._lock)

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

    @contextmanager
    def _query(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._db

    def _wall(self) -> float:
        return self._clock()

    def _lease_now(self, db: Db) -> float:
        return self._clock()

    def _insert_events(self, db: Db, run_id: str, first_seq: int, events: list[Event]) -> None:
        # Events no checkpoint carries (written without a lease, or after the last checkpoint).
        db.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?)",
            (run_id, first_seq, len(events), encode_event_rows(events)),
        )

    def _keep_events(self, db: Db, run_id: str, below_seq: int) -> None:
        db.execute(
            "INSERT INTO events SELECT run_id, event_seq, event_count, events FROM checkpoints "
            "WHERE run_id=? AND seq<? AND events IS NOT NULL",
            (run_id, below_seq),
        )

    def _expired(self, db: Db, statuses: list[str], older_than_seconds: float) -> list[Any]:
        now = self._clock()
        marks = ",".join("?" * len(statuses))
        return db.execute(
            f"SELECT run_id FROM runs WHERE status IN ({marks}) AND saved_at<? "
            "AND run_id NOT IN (SELECT run_id FROM leases WHERE owner IS NOT NULL "
            "AND expires_at>? AND expires_at<9e999)",
            (*statuses, now - older_than_seconds, now),
        ).fetchall()

    def close(self) -> None:
        """Write anything pending and close the connection."""
        with self._lock:
            self.flush()
            self._writers.clear()
            self._db.close()

    # ------------------------------------------------------------------ errors

    def _commit(self, run_id: str, w: SqlWriter) -> None:
        """``SqlStore._commit``; a raw ``sqlite3`` error (a locked database) as ``StoreError``."""
        try:
            super()._commit(run_id, w)
        except sqlite3.Error as exc:
            raise self._store_error(run_id, exc) from exc

    def _clear_lease(self, run_id: str, owner: str | None) -> int:
        try:
            return super()._clear_lease(run_id, owner)
        except sqlite3.Error as exc:
            raise self._store_error(run_id, exc) from exc

    def acquire_lease(self, run_id: str, owner: str) -> int:
        try:
            return super().acquire_lease(run_id, owner)
        except sqlite3.Error as exc:
            raise self._store_error(run_id, exc) from exc

    def renew_lease(self, run_id: str, owner: str, token: int | None = None) -> None:
        try:
            super().renew_lease(run_id, owner, token)
        except sqlite3.Error as exc:
            raise self._store_error(run_id, exc) from exc

    def _store_error(self, run_id: str, exc: sqlite3.Error) -> StoreError:
        return StoreError(
            f"{self.path}: run '{run_id}': {type(exc).__name__}: {exc}",
            run_id=run_id,
            path=self.path,
        )
