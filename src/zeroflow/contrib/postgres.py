"""``PostgresWorkflowStore``: runs shared by many processes and machines in PostgreSQL.

The same layout and behaviour as ``SqliteWorkflowStore`` (needs the
``zeroflow[postgres]`` extra, psycopg 3): one row per checkpoint holding the
step's change, a full snapshot now and then, the run's summary row for
indexed listing, and the events, all written in one transaction per
checkpoint. A lease is a row, read and changed under its row lock, so two
workers racing for a run cannot both win; it keeps a fencing token that grows
with every acquisition, and every leased commit checks it in its own
transaction. By default expiry is measured on the database server's clock, so
workers on machines whose clocks disagree still agree on it.

The tables live in their own schema (``zeroflow`` by default), created and
migrated on first use; several processes may open the store at once. Only
zeroflow's errors leave its methods: a database error is a ``StoreError``
naming the run and the schema (``StoreCorruptError`` for data the server
reports damaged), with psycopg's error as ``__cause__``. Reads of one
checkpoint (``load_snapshot``, ``history``, ``events``) run in one
``REPEATABLE READ`` transaction, so they see one committed state.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

try:
    import psycopg
    from psycopg import sql
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "zeroflow.contrib.postgres needs psycopg 3: pip install 'zeroflow[postgres]' "
        "(or uv add 'zeroflow[postgres]')"
    ) from exc

from .._errors import StoreCorruptError, StoreError
from .._models import Event, RunSnapshot
from .._store import DEFAULT_LEASE_TTL_SECONDS
from ..stores._common import (
    Reporter,
    check_run_id,
    encode_event,
    reset_after_fork,
    should_fold,
)
from ..stores._sql import (
    LEASE_HORIZON_SECONDS,
    Db,
    SqlStore,
    SqlWriter,
    _Faults,
    newer_schema_error,
    one,
)

__all__ = ["SCHEMA_VERSION", "PostgresWorkflowStore"]

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
            base_seq BIGINT NOT NULL,
            saved_at DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX runs_by_workflow ON runs (workflow_name, status)",
        "CREATE INDEX runs_by_status ON runs (status, saved_at)",
        """CREATE TABLE checkpoints (
            run_id TEXT NOT NULL,
            seq BIGINT NOT NULL,
            step BIGINT NOT NULL,
            wave BIGINT NOT NULL,
            status TEXT NOT NULL,
            node TEXT,
            ts TEXT,
            delta TEXT,
            PRIMARY KEY (run_id, seq)
        )""",
        """CREATE TABLE snapshots (
            run_id TEXT NOT NULL,
            seq BIGINT NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (run_id, seq)
        )""",
        """CREATE TABLE events (
            run_id TEXT NOT NULL,
            seq BIGINT NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (run_id, seq)
        )""",
        """CREATE TABLE leases (
            run_id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL
        )""",
    ],
    # version 2: a lease row keeps its fencing token (and the holder process) when it is
    # released or broken, so the owner may be NULL; a migrated lease starts at token 0.
    [
        "ALTER TABLE leases ADD COLUMN IF NOT EXISTS token BIGINT NOT NULL DEFAULT 0",
        "ALTER TABLE leases ADD COLUMN IF NOT EXISTS holder TEXT",
        "ALTER TABLE leases ALTER COLUMN owner DROP NOT NULL",
    ],
    # version 3: a checkpoint row records the number of the first event logged after the
    # checkpoint before it, where prune cuts the event log (NULL in older rows).
    [
        "ALTER TABLE checkpoints ADD COLUMN IF NOT EXISTS event_seq BIGINT",
    ],
    # version 4: a run's summary row keeps its per-node figures for stats (runs.stats,
    # written at full saves and folds; NULL in rows written before).
    [
        "ALTER TABLE runs ADD COLUMN IF NOT EXISTS stats TEXT",
    ],
    # version 5: a waiting run's earliest timer (a sleep's wake-up, a wait deadline), and
    # the partial index ``due_runs`` reads; NULL for every other run.
    [
        "ALTER TABLE runs ADD COLUMN IF NOT EXISTS due_at DOUBLE PRECISION",
        "CREATE INDEX IF NOT EXISTS runs_due ON runs (due_at, run_id) WHERE due_at IS NOT NULL",
    ],
    # version 6: the run console's listing (``query_runs``) pages newest first by index.
    [
        "CREATE INDEX IF NOT EXISTS runs_by_updated ON runs (updated_at, run_id)",
        "CREATE INDEX IF NOT EXISTS runs_by_status_updated ON runs (status, updated_at, run_id)",
    ],
]

SCHEMA_VERSION = len(_MIGRATIONS)
"""The schema this zeroflow writes; older schemas are migrated forward on open."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_MIGRATION_LOCK = 0x7A65_726F_666C_6F77 & 0x7FFF_FFFF_FFFF_FFFF  # "zeroflow"
# The lease clock: the caller's when one was given, else the server's (one clock for all workers).
_NOW = "coalesce(%(now)s::float8, extract(epoch from clock_timestamp())::float8)"
# A leased checkpoint of one step: fenced by the lease row (renewed in the same
# statement), the events numbered from %(mark)s, the checkpoint row; nothing at all
# when the lease or the latest checkpoint is not what the writer holds.
_ONE_STATEMENT_COMMIT = f"""
WITH fence AS (
    UPDATE leases SET expires_at = {_NOW} + %(ttl)s
    WHERE run_id = %(run)s AND owner = %(owner)s AND token = %(token)s
      AND coalesce((SELECT max(seq) FROM checkpoints WHERE run_id = %(run)s), 0) = %(prev)s
    RETURNING run_id
), logged AS (
    INSERT INTO events (run_id, seq, body)
    SELECT fence.run_id, %(mark)s + t.n - 1, t.body
    FROM fence, unnest(%(bodies)s::text[]) WITH ORDINALITY AS t(body, n)
)
INSERT INTO checkpoints (run_id, seq, step, wave, status, node, ts, delta, event_seq)
SELECT fence.run_id, %(seq)s, %(step)s, %(wave)s, %(status)s, %(node)s, %(ts)s, %(delta)s,
       %(mark)s
FROM fence
RETURNING seq
"""


Cursor = psycopg.Cursor[tuple[Any, ...]]

_INHERITED: list[psycopg.Connection[tuple[Any, ...]]] = []
"""Connections a forked child inherited: kept referenced, never used."""


class _Statements:
    """A psycopg cursor that also takes the shared statements' ``?`` parameter marks."""

    __slots__ = ("cursor",)

    def __init__(self, cursor: Cursor) -> None:
        self.cursor = cursor

    def execute(self, query: Any, parameters: Any = None, /) -> Cursor:
        if isinstance(query, str):
            query = query.replace("?", "%s")
        return self.cursor.execute(query, parameters)

    def executemany(self, query: str, parameters: Iterable[Any], /) -> None:
        self.cursor.executemany(query.replace("?", "%s"), parameters)


class PostgresWorkflowStore(SqlStore):
    """Keeps runs, their whole checkpoint history, events and leases in PostgreSQL.

    ``conninfo`` is a libpq connection string or URL. The connection is opened
    on first use and again in a forked child (a Celery prefork worker), so a
    store may be built before the fork. ``clock`` (seconds) measures leases;
    None uses the server's clock. Thread-safe: threads share one connection,
    one statement at a time. Database errors surface as ``StoreError``.
    ``on_report`` receives a ``store:corrupt`` event for each run a listing or
    prune skipped as unreadable (default: the ``zeroflow.stores`` logger).
    """

    _DRIVER_ERRORS = (psycopg.Error,)
    _MALFORMED_RUNS = (
        "SELECT run_id, status, saved_at FROM runs WHERE saved_at = 'NaN'::float8 "
        "OR saved_at IN ('Infinity'::float8, '-Infinity'::float8)"
    )
    _EVENTS_END = "SELECT coalesce(max(seq), 0) FROM events WHERE run_id=?"
    _EVENTS_TABLE_END = "SELECT max(seq) FROM events WHERE run_id=?"
    _GREATEST = "GREATEST"
    _FOR_UPDATE = " FOR UPDATE"

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = "zeroflow",
        lease_ttl_seconds: float = DEFAULT_LEASE_TTL_SECONDS,
        clock: Callable[[], float] | None = None,
        connect_timeout_seconds: float = 10.0,
        on_report: Reporter | None = None,
    ) -> None:
        if not _IDENTIFIER.fullmatch(schema):
            raise ValueError(f"schema must be a plain SQL identifier, got {schema!r}")
        self.conninfo = conninfo
        self.schema = schema
        self.lease_ttl_seconds = float(lease_ttl_seconds)
        self.path = f"postgres schema '{schema}'"
        self.on_report = on_report
        self._clock = clock
        self._connect_timeout = max(1, round(connect_timeout_seconds))
        self._lock = threading.RLock()
        self._writers: dict[str, SqlWriter] = {}
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._pid = -1
        with self._lock:
            self._db()
        reset_after_fork(self)

    def _forked(self) -> None:
        """In a forked child: a fresh lock, no writers, and a connection of its own.

        The parent's connection object is kept but never used: the socket is
        the parent's (psycopg does not close it when a child collects it).
        """
        super()._forked()
        if self._conn is not None:
            _INHERITED.append(self._conn)
        self._conn = None

    # ------------------------------------------------------------------ connection

    def _db(self) -> psycopg.Connection[tuple[Any, ...]]:
        """The connection of this process, (re)opened and migrated when needed."""
        conn = self._conn
        if conn is not None and self._pid == os.getpid() and not conn.closed:
            return conn
        if self._pid != os.getpid():
            # A forked child must not touch the parent's socket or its half-written runs.
            self._conn = None
            self._writers.clear()
        try:
            conn = psycopg.connect(
                self.conninfo, autocommit=True, connect_timeout=self._connect_timeout
            )
            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
            )
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
            self._migrate(conn)
        except psycopg.Error as exc:
            raise StoreError(f"{self.path}: cannot open the store ({exc})", path=self.path) from exc
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _migrate(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS zeroflow_schema (version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM zeroflow_schema").fetchone()
            version = 0 if row is None else int(row[0])
            if version > SCHEMA_VERSION:
                raise newer_schema_error(self.path, version, SCHEMA_VERSION)
            for number in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[number]:
                    conn.execute(statement)
            if row is None:
                conn.execute("INSERT INTO zeroflow_schema VALUES (%s)", (SCHEMA_VERSION,))
            elif version < SCHEMA_VERSION:
                conn.execute("UPDATE zeroflow_schema SET version=%s", (SCHEMA_VERSION,))

    @contextmanager
    def _tx(self) -> Iterator[_Statements]:
        """One transaction; a lost connection is dropped so the next call reconnects.

        psycopg's errors pass through: the public methods turn them into
        ``StoreError`` naming the run (``_fault``).
        """
        with self._lock:
            conn = self._db()
            try:
                with conn.transaction(), conn.cursor() as cur:
                    yield _Statements(cur)
            except psycopg.Error:
                if conn.broken or conn.closed:
                    self._conn = None
                raise

    @contextmanager
    def _read(self) -> Iterator[_Statements]:
        """A read-only ``REPEATABLE READ`` transaction: every SELECT sees one snapshot."""
        with self._tx() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield cur

    def _fault(self, exc: BaseException, run_id: str | None) -> StoreError:
        """psycopg's ``exc`` as ``StoreError`` (``StoreCorruptError`` for damaged data)."""
        what = "the store" if run_id is None else f"run '{run_id}'"
        state = str(getattr(exc, "sqlstate", None) or "")
        text = f"{self.path}: {what}: {type(exc).__name__}: {str(exc).strip()}"
        if state in ("XX001", "XX002"):
            return StoreCorruptError(
                f"{text}; the server reports damaged data (SQLSTATE {state}): restore it "
                "from a backup (REINDEX for a damaged index)",
                run_id=run_id,
                path=self.path,
            )
        if state.startswith("53"):
            fix = (
                f"the server is out of resources (SQLSTATE {state}: disk, memory or "
                "connections): free them, then retry; what was checkpointed before is kept"
            )
        elif state in ("55P03", "40P01", "40001", "57014"):
            fix = f"another transaction held a lock too long (SQLSTATE {state}): retry"
        elif state.startswith("08") or isinstance(exc, psycopg.OperationalError):
            fix = "the connection to the server failed: check the server; the next call reconnects"
        else:
            fix = "retry; if it persists, check the server's log"
        return StoreError(f"{text}; {fix}", run_id=run_id, path=self.path)

    def _write(self, run_id: str, w: SqlWriter) -> None:
        """A driven run's usual checkpoint in one statement (one round trip), else in steps.

        One step, no full snapshot, no fold due, counters current: the lease
        check and renewal, the events and the checkpoint row are one statement,
        its own transaction. When it writes nothing (the lease or ``seq`` moved
        on) or collides (events logged by someone else meanwhile), the general
        path runs and says why, or writes with the events renumbered.
        """
        fence = w.fence
        if (
            fence is None
            or w.pending_full is not None
            or len(w.pending_steps) != 1
            or w.base_seq < 0
            or fence[2] != w.seq + 1
        ):
            super()._write(run_id, w)
            return
        body, delta = w.pending_steps[0]
        if should_fold(w.records + 1, w.delta_bytes + len(body), w.base_bytes):
            super()._write(run_id, w)
            return
        events = w.pending_events
        mark = w.event_seq + 1
        params = {
            "run": run_id,
            "owner": fence[0],
            "token": fence[1],
            "prev": w.seq,
            "now": self._now(),
            "ttl": self.lease_ttl_seconds,
            "mark": mark,
            "bodies": [encode_event(e) for e in events],
            "seq": fence[2],
            "step": delta.step,
            "wave": delta.wave,
            "status": delta.status,
            "node": delta.last_node,
            "ts": delta.updated_at,
            "delta": body,
        }
        conn = self._db()
        try:
            with conn.cursor() as cur:
                row = _Statements(cur).execute(_ONE_STATEMENT_COMMIT, params).fetchone()
        except psycopg.IntegrityError:
            row = None  # events logged meanwhile: the general path renumbers them
        except psycopg.Error:
            if conn.broken or conn.closed:
                self._conn = None  # the next call reconnects
            raise
        if row is None:
            super()._write(run_id, w)
            return
        w.event_seq += len(events)
        w.seq += 1
        w.records += 1
        w.delta_bytes += len(body)
        w.pending_events = []
        w.pending_steps = []

    def _writer(self, run_id: str) -> SqlWriter:
        self._db()  # a forked child starts with no writers
        return super()._writer(run_id)

    def _commit_run(self, run_id: str) -> None:
        with self._lock:
            self._db()
            super()._commit_run(run_id)

    def _open_writer(self, run_id: str) -> SqlWriter:
        # Unlike SQLite, append_step never checked the run id here: only saves and events do.
        return self._load_writer(run_id)

    def _now(self) -> float | None:
        """The lease clock's reading, or None to let the server read its own."""
        return None if self._clock is None else self._clock()

    def _wall(self) -> float:
        return time.time() if self._clock is None else self._clock()

    def _lease_now(self, db: Db) -> float:
        return float(one(db.execute(f"SELECT {_NOW}", {"now": self._now()})))

    def _insert_events(self, db: Db, run_id: str, first_seq: int, events: list[Event]) -> None:
        db.executemany(
            "INSERT INTO events (run_id, seq, body) VALUES (%s, %s, %s)",
            [(run_id, first_seq + i, encode_event(e)) for i, e in enumerate(events)],
        )

    def _drop_events(self, db: Db, run_id: str, below_seq: int) -> int:
        # The events numbered before the kept checkpoint's mark (none known in a row
        # written before schema 3: then nothing is dropped).
        mark = one(
            db.execute(
                "SELECT event_seq FROM checkpoints WHERE run_id=? AND seq=?", (run_id, below_seq)
            )
        )
        if mark is None:
            return 0
        return int(
            db.execute("DELETE FROM events WHERE run_id=? AND seq<?", (run_id, mark)).rowcount
        )

    def _delete_where(self, db: Db, table: str, where: str, args: tuple[Any, ...]) -> int:
        # The estimate of the bytes freed: the stored size of the deleted rows (autovacuum
        # makes the space reusable; the files only shrink with VACUUM FULL).
        row = db.execute(
            f"WITH gone AS (DELETE FROM {table} t WHERE {where} RETURNING pg_column_size(t) n) "
            "SELECT coalesce(sum(n), 0) FROM gone",
            args,
        ).fetchone()
        return int(row[0])

    def _expired(self, db: Db, statuses: list[str], older_than_seconds: float) -> list[Any]:
        now = self._lease_now(db)
        horizon = now + max(LEASE_HORIZON_SECONDS, self.lease_ttl_seconds)
        return db.execute(
            "SELECT run_id FROM runs WHERE status = ANY(%s) AND saved_at<%s "
            "AND saved_at > '-Infinity'::float8 "
            "AND run_id NOT IN (SELECT run_id FROM leases WHERE owner IS NOT NULL "
            "AND expires_at>%s AND expires_at<=%s) "
            "FOR UPDATE SKIP LOCKED",
            (statuses, self._wall() - older_than_seconds, now, horizon),
        ).fetchall()

    def close(self) -> None:
        """Write anything pending and close the connection (closed even when the write fails)."""
        with self._lock:
            try:
                with _Faults(self, None):
                    self.flush()
                    self._retry_abandoned()
            finally:
                self._writers.clear()
                if self._conn is not None and self._pid == os.getpid():
                    self._conn.close()
                self._conn = None

    def drop_schema(self) -> None:
        """Delete every table of this store (its schema), for tests and teardown."""
        with self._lock:
            self._writers.clear()
            with _Faults(self, None), self._tx() as cur:
                cur.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema))
                )
            self.close()

    # ------------------------------------------------------------------ writes

    def save_snapshot(self, snapshot: RunSnapshot) -> None:
        check_run_id(snapshot.run_id)
        super().save_snapshot(snapshot)

    def append_events(self, run_id: str, events: Sequence[Event]) -> None:
        check_run_id(run_id)
        super().append_events(run_id, events)

    # ------------------------------------------------------------------ leases

    def stale_runs(self, limit: int = 100) -> list[str]:
        """Ids of runs left ``running`` by a driver whose lease lapsed (a killed worker).

        Oldest first. Rows another sweeper is reading are skipped
        (``FOR UPDATE SKIP LOCKED``), so several sweepers share the work
        instead of queueing behind each other.
        """
        with _Faults(self, None):
            self.flush()
            with self._tx() as cur:
                rows = cur.execute(
                    "SELECT r.run_id FROM runs r LEFT JOIN leases l ON l.run_id = r.run_id "
                    "WHERE r.status = 'running' AND (l.owner IS NULL OR NOT "
                    f"(l.expires_at > {_NOW} AND l.expires_at <= {_NOW} + %(horizon)s)) "
                    "ORDER BY r.saved_at LIMIT %(limit)s FOR UPDATE OF r SKIP LOCKED",
                    {
                        "now": self._now(),
                        "limit": limit,
                        "horizon": max(LEASE_HORIZON_SECONDS, self.lease_ttl_seconds),
                    },
                ).fetchall()
        return [str(run_id) for (run_id,) in rows]

    def _extend_lease(self, db: Db, run_id: str, owner: str, token: int | None) -> bool:
        # One statement on the server's clock (no round trip to read it first).
        rows = db.execute(
            f"UPDATE leases SET expires_at={_NOW} + %(ttl)s WHERE run_id=%(run)s "
            "AND owner=%(owner)s AND (%(token)s::bigint IS NULL OR token=%(token)s::bigint)",
            {
                "now": self._now(),
                "ttl": self.lease_ttl_seconds,
                "run": run_id,
                "owner": owner,
                "token": token,
            },
        )
        return rows.rowcount > 0
