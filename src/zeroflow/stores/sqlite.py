"""``SqliteWorkflowStore``: every checkpoint of every run in one SQLite file (stdlib ``sqlite3``).

Each checkpoint is one row holding the step's change (a ``StepDelta``), with a
full snapshot row now and then (at lifecycle transitions, and when the deltas
since the last one outweigh it), so neither time per node nor disk use grows
with the square of the run's length. A checkpoint, the events that led to it
and the run's summary row are written in one transaction. WAL mode lets
readers work during writes and several processes write different runs.

The schema is versioned with ``PRAGMA user_version`` and migrated forward on
open; a database written by a newer zeroflow is refused, not altered. A store
is marked with ``PRAGMA application_id`` (stores made before the mark are
recognised by their tables); any other file (empty, another program's
database) is refused before anything is written to it. A new file is built
under a temporary name and linked into place, so no other process ever
opens a half-made store.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from .._errors import StoreCorruptError, StoreError
from .._models import Event
from .._store import DEFAULT_LEASE_TTL_SECONDS
from ._common import Reporter, encode_event_rows, reset_after_fork
from ._sql import LEASE_HORIZON_SECONDS, Db, SqlStore, SqlWriter, _Faults, newer_schema_error, one

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
    # version 4: a run's summary row keeps its per-node figures for stats (runs.stats,
    # written at full saves and folds; NULL in rows written before).
    [
        "ALTER TABLE runs ADD COLUMN stats TEXT",
    ],
    # version 5: a waiting run's earliest timer (a sleep's wake-up, a wait deadline), and
    # the partial index ``due_runs`` reads; NULL for every other run.
    [
        "ALTER TABLE runs ADD COLUMN due_at REAL",
        "CREATE INDEX runs_due ON runs (due_at, run_id) WHERE due_at IS NOT NULL",
    ],
    # version 6: the run console's listing (``query_runs``) pages newest first by index.
    [
        "CREATE INDEX runs_by_updated ON runs (updated_at, run_id)",
        "CREATE INDEX runs_by_status_updated ON runs (status, updated_at, run_id)",
    ],
]

SCHEMA_VERSION = len(_MIGRATIONS)
"""The schema this zeroflow writes; older databases are migrated forward on open."""

APPLICATION_ID = 0x7A666C77  # "zflw"
"""``PRAGMA application_id`` of a zeroflow store (0 in stores made before it was set)."""

_TABLES = frozenset({"runs", "checkpoints", "snapshots", "events", "leases"})
"""A database with all of these and no application id is a store made before the mark."""

WAL_LIMIT_BYTES = 8 * 1024 * 1024
"""``PRAGMA journal_size_limit``: a write-ahead log grown past this (readers held it open
while writers wrote) is cut back to it at the next checkpoint that empties it."""

_LOG = logging.getLogger("zeroflow.stores")


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

    ``path`` is a file (created if missing) or ``":memory:"``; an existing file
    that is not a zeroflow store (empty, another program's database) is
    refused with ``StoreCorruptError`` and left as it is. ``fsync=False``
    (default, ``synchronous=NORMAL``) survives a killed process; ``fsync=True``
    (``synchronous=FULL``) also survives power loss. ``timeout_seconds`` is how
    long a write waits for another process's transaction. ``on_report``
    receives a ``store:corrupt`` event for each run a listing or prune skipped
    as unreadable (default: the ``zeroflow.stores`` logger). Thread-safe; only
    zeroflow's errors (``StoreError`` and its subclasses) leave its methods.
    """

    _DRIVER_ERRORS = (sqlite3.Error,)
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
    _BINARY_TEXT_ORDER = True
    _MALFORMED_RUNS = (
        "SELECT run_id, status, saved_at FROM runs WHERE typeof(status)<>'text' "
        "OR typeof(saved_at) NOT IN ('integer', 'real') OR abs(saved_at)>9e307"
    )

    def __init__(
        self,
        path: str | Path,
        *,
        fsync: bool = False,
        lease_ttl_seconds: float = DEFAULT_LEASE_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
        timeout_seconds: float = 30.0,
        on_report: Reporter | None = None,
    ) -> None:
        self.path = str(path)
        self.fsync = fsync
        self.lease_ttl_seconds = float(lease_ttl_seconds)
        self.on_report = on_report
        self._clock = clock
        self._timeout = timeout_seconds
        self._lock = threading.RLock()
        self._writers: dict[str, SqlWriter] = {}
        self._private = self.path in (":memory:", "") or self.path.startswith("file:")
        try:
            if not self._private:
                file = Path(self.path)
                file.parent.mkdir(parents=True, exist_ok=True)
                if os.path.lexists(file):
                    self._check_not_empty()
                else:
                    self._create(file)
            db = self._connect()
            try:
                self._recognise(db)
                self._configure(db)
                self._db = db
                self._migrate()
            except BaseException:
                db.close()
                raise
        except StoreError:
            raise
        except sqlite3.OperationalError as exc:
            raise StoreError(
                f"cannot open {self.path}: {exc}; {self._fix(exc)}", path=self.path
            ) from exc
        except sqlite3.DatabaseError as exc:
            if _primary_code(exc) == 11 or "malformed" in str(exc):
                raise StoreCorruptError(
                    f"{self.path}: the database file is damaged ({exc}); nothing was written. "
                    "Restore it from a backup "
                    f"(`sqlite3 {self.path} .recover` may save what is left)",
                    path=self.path,
                ) from exc
            raise StoreCorruptError(
                f"{self.path} is not a SQLite database ({exc}); point the store at a file of "
                "its own",
                path=self.path,
            ) from exc
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open {self.path}: {exc}", path=self.path) from exc
        reset_after_fork(self)

    # ------------------------------------------------------------------ opening

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(
            self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )

    def _configure(self, db: sqlite3.Connection) -> None:
        """WAL mode, the durability asked for, a bound on the log: only for a store's own file."""
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={'FULL' if self.fsync else 'NORMAL'}")
        db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")

    def _check_not_empty(self) -> None:
        """Refuse a zero-byte file (``touch``, a truncated copy): it is no store to start afresh."""
        if os.path.getsize(self.path) > 0:
            return
        wal = self.path + "-wal"
        if os.path.exists(wal) and os.path.getsize(wal) > 0:
            return  # a store whose pages are all still in its write-ahead log
        raise StoreCorruptError(
            f"{self.path} is empty (0 bytes): not a zeroflow store. If it was one, it was "
            "truncated: restore it from a backup. Otherwise delete it (the store then "
            "creates a new one there) or point the store at a new path",
            path=self.path,
        )

    def _create(self, file: Path) -> None:
        """Build a new store under a temporary name, then link it into place.

        The link never replaces a file: when another process made ``file`` first,
        theirs is the one opened.
        """
        tmp = file.with_name(f".{file.name}.{os.getpid()}.{secrets.token_hex(4)}.new")
        try:
            db = sqlite3.connect(tmp, isolation_level=None)
            try:
                self._initialise(db)
            finally:
                db.close()
            if self.fsync:
                _fsync(tmp)
            try:
                os.link(tmp, file)
            except FileExistsError:
                return
            except OSError:
                self._copy_new(tmp, file)  # a file system without hard links
            if self.fsync:
                _fsync(file.parent)
        finally:
            for suffix in ("", "-journal", "-wal", "-shm"):
                Path(f"{tmp}{suffix}").unlink(missing_ok=True)

    def _copy_new(self, tmp: Path, file: Path) -> None:
        try:
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            return
        with os.fdopen(fd, "wb") as out, open(tmp, "rb") as src:
            shutil.copyfileobj(src, out)
            out.flush()
            if self.fsync:
                os.fsync(out.fileno())

    @staticmethod
    def _initialise(db: sqlite3.Connection) -> None:
        """Make an empty database a store: incremental vacuum, the mark, every table."""
        db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # only takes before the first table
        db.execute("BEGIN IMMEDIATE")
        try:
            for statements in _MIGRATIONS:
                for statement in statements:
                    db.execute(statement)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            db.execute("COMMIT")
        finally:
            if db.in_transaction:
                db.execute("ROLLBACK")

    def _recognise(self, db: sqlite3.Connection) -> None:
        """Refuse, having only read it, a database that is not a zeroflow store (or too new)."""
        app = int(db.execute("PRAGMA application_id").fetchone()[0])
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        names = sorted(
            str(name)
            for (name,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite%'"
            )
        )
        if app == APPLICATION_ID or (app == 0 and set(names) >= _TABLES):
            if version > SCHEMA_VERSION:
                raise newer_schema_error(self.path, version, SCHEMA_VERSION)
            return
        if self._private and app == 0 and version == 0 and not names:
            return  # a new in-memory (or URI) database: made a store in place
        if app != 0:
            why = f"it is marked as another program's database (application_id {app:#x})"
        elif names:
            shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
            why = f"it holds another program's tables ({shown})"
        elif version:
            why = (
                f"it holds no tables, yet its user_version is {version} (this zeroflow writes "
                f"schema {SCHEMA_VERSION}; a store of a newer zeroflow holds its tables and "
                "is marked as zeroflow's): upgrade zeroflow if a newer one made it, else"
            )
        else:
            why = "it is an empty SQLite database, which zeroflow did not make"
        raise StoreCorruptError(
            f"{self.path} is not a zeroflow store: {why}; it was left as it is. Point "
            "SqliteWorkflowStore at a file of its own (a path that does not exist yet is "
            "created)",
            path=self.path,
        )

    def _migrate(self) -> None:
        """Bring an older store's schema forward (one transaction); mark it as zeroflow's."""
        db = self._db
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version == SCHEMA_VERSION:
            if int(db.execute("PRAGMA application_id").fetchone()[0]) != APPLICATION_ID:
                try:
                    with self._tx():
                        db.execute(f"PRAGMA application_id={APPLICATION_ID}")
                except sqlite3.OperationalError:
                    pass  # busy or read-only: it is recognised by its tables meanwhile
            return
        if version == 0:
            db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # a new private database
        with self._tx():
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise newer_schema_error(self.path, version, SCHEMA_VERSION)
            for number in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[number]:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={number + 1}")
            db.execute(f"PRAGMA application_id={APPLICATION_ID}")

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
            self._configure(self._db)
        except sqlite3.Error as exc:
            self._db = _Unusable(f"{self.path}: cannot reopen after fork ({exc})")  # type: ignore[assignment]

    # ------------------------------------------------------------------ transactions

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
                if db.in_transaction:
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

    def _drop_events(self, db: Db, run_id: str, below_seq: int) -> int:
        # Events ride in the checkpoint rows that are deleted next; those in ``events``
        # numbered before the kept checkpoint's mark go now. A row of a store made before
        # marks were written has none: then the carried events tell where the log is cut.
        mark = one(
            db.execute(
                "SELECT event_seq FROM checkpoints WHERE run_id=? AND seq=?", (run_id, below_seq)
            )
        )
        carried, carried_end = db.execute(
            "SELECT coalesce(sum(event_count), 0), max(event_seq + event_count - 1) "
            "FROM checkpoints WHERE run_id=? AND seq<? AND events IS NOT NULL",
            (run_id, below_seq),
        ).fetchone()
        if mark is None and carried_end is not None:
            mark = carried_end + 1
        count = int(carried)
        if mark is not None:
            count += int(
                one(
                    db.execute(
                        "SELECT coalesce(sum(count), 0) FROM events "
                        "WHERE run_id=? AND seq + count - 1 < ?",
                        (run_id, mark),
                    )
                )
            )
            db.execute("DELETE FROM events WHERE run_id=? AND seq + count - 1 < ?", (run_id, mark))
        return count

    def _expired(self, db: Db, statuses: list[str], older_than_seconds: float) -> list[Any]:
        now = self._clock()
        marks = ",".join("?" * len(statuses))
        horizon = now + max(LEASE_HORIZON_SECONDS, self.lease_ttl_seconds)
        return db.execute(
            f"SELECT run_id FROM runs WHERE status IN ({marks}) AND saved_at<? "
            "AND typeof(saved_at) IN ('integer', 'real') AND saved_at>-9e307 "
            "AND run_id NOT IN (SELECT run_id FROM leases WHERE owner IS NOT NULL "
            "AND expires_at>? AND expires_at<=?)",
            (*statuses, now - older_than_seconds, now, horizon),
        ).fetchall()

    # ------------------------------------------------------------------ disk use

    def _space(self) -> int:
        """The database's bytes on disk: the file and its write-ahead log (pages in memory)."""
        if self._private:
            page_count = self._db.execute("PRAGMA page_count").fetchone()[0]
            return int(page_count) * int(self._db.execute("PRAGMA page_size").fetchone()[0])
        total = 0
        for suffix in ("", "-wal"):
            with suppress(OSError):
                total += os.path.getsize(self.path + suffix)
        return total

    def _reclaim(self, before: int, estimate: int) -> int:
        """Give freed pages back to the file system; cut the write-ahead log back.

        A store made before incremental vacuum was switched on is rebuilt once
        (``VACUUM``, which needs free space about the size of the file); later
        prunes only release their free pages. A failure (a busy database, a full
        disk) is logged: what the prune deleted stays deleted.
        """
        db = self._db
        try:
            mode = int(db.execute("PRAGMA auto_vacuum").fetchone()[0])
            if mode == 0:
                db.execute("PRAGMA auto_vacuum=INCREMENTAL")
                db.execute("VACUUM")
            elif mode == 2:
                db.executescript("PRAGMA incremental_vacuum;")  # stepped to the end: every page
            self._checkpoint_wal()
        except sqlite3.Error as exc:
            _LOG.warning("%s: the space freed by prune was not given back yet (%s)", self.path, exc)
        return max(0, before - self._space())

    def _checkpoint_wal(self) -> None:
        """Copy the write-ahead log into the database and empty it, without waiting for readers."""
        db = self._db
        db.execute("PRAGMA busy_timeout=0")
        try:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            db.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")

    def close(self) -> None:
        """Write anything pending and close the connection (closed even when the write fails)."""
        with self._lock:
            try:
                with _Faults(self, None):
                    self.flush()
                    self._retry_abandoned()
            finally:
                self._writers.clear()
                self._db.close()

    # ------------------------------------------------------------------ errors

    def _fault(self, exc: BaseException, run_id: str | None) -> StoreError:
        """``exc`` as ``StoreError`` (``StoreCorruptError`` for a damaged file), with the fix."""
        what = "the store" if run_id is None else f"run '{run_id}'"
        text = f"{self.path}: {what}: {type(exc).__name__}: {exc}"
        if _is_corrupt(exc):
            return StoreCorruptError(
                f"{text}; the database file is damaged: restore it from a backup "
                f"(`sqlite3 {self.path} .recover` may save what is left)",
                run_id=run_id,
                path=self.path,
            )
        return StoreError(f"{text}; {self._fix(exc)}", run_id=run_id, path=self.path)

    def _fix(self, exc: BaseException) -> str:
        """What to do about a SQLite error that is not damage."""
        code = _primary_code(exc)
        said = str(exc).lower()
        if code == 13 or "full" in said:
            return (
                "free space on its file system, then retry: what was checkpointed before is "
                "kept, and the run resumes from its last checkpoint"
            )
        if code in (5, 6) or "locked" in said or "busy" in said:
            return (
                "another connection held the database's write lock longer than "
                f"timeout_seconds={self._timeout:g}; retry, or open the store with a longer "
                "timeout_seconds"
            )
        if code == 8 or "readonly" in said or "read-only" in said:
            return "the file (or its folder) is read-only: give this process write access"
        if code == 10 or "i/o" in said:
            return "the operating system reported an I/O error: check the disk, then retry"
        if code == 14 or "unable to open" in said:
            return "check that the path and its folder exist and are accessible"
        if "closed" in said:
            return "the store was closed: open a new one"
        return "retry; if it persists, check the database file"


def _primary_code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _is_corrupt(exc: BaseException) -> bool:
    """True for SQLite's damage errors (SQLITE_CORRUPT, SQLITE_NOTADB)."""
    code = _primary_code(exc)
    if code is not None:
        return code in (11, 26)
    said = str(exc).lower()
    return "malformed" in said or "not a database" in said


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
