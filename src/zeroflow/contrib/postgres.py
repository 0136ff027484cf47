"""``PostgresWorkflowStore``: runs shared by many processes and machines in PostgreSQL.

The same layout and behaviour as ``SqliteWorkflowStore`` (needs the
``zeroflow[postgres]`` extra, psycopg 3): one row per checkpoint holding the
step's change, a full snapshot now and then, the run's summary row for
indexed listing, and the events, all written in one transaction per
checkpoint. A lease is a row whose expiry is checked and moved in one
``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` statement, so two workers racing
for a run cannot both win; by default expiry is measured on the database
server's clock, so workers on machines whose clocks disagree still agree on it.

The tables live in their own schema (``zeroflow`` by default), created and
migrated on first use; several processes may open the store at once.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import psycopg
from psycopg import sql

from .._constants import EVENT_CHECKPOINT
from .._errors import RunNotFoundError, StoreCorruptError, StoreError
from .._journal import StepDelta
from .._models import Event, RunMetadata, RunSnapshot, WorkflowError
from .._store import DEFAULT_LEASE_TTL_SECONDS, FINISHED_STATUSES, CheckpointInfo, PruneResult
from ..stores._common import (
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
]

SCHEMA_VERSION = len(_MIGRATIONS)
"""The schema this zeroflow writes; older schemas are migrated forward on open."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_MIGRATION_LOCK = 0x7A65_726F_666C_6F77 & 0x7FFF_FFFF_FFFF_FFFF  # "zeroflow"
# The lease clock: the caller's when one was given, else the server's (one clock for all workers).
_NOW = "coalesce(%(now)s::float8, extract(epoch from clock_timestamp())::float8)"


Cursor = psycopg.Cursor[tuple[Any, ...]]


class PostgresWorkflowStore:
    """Keeps runs, their whole checkpoint history, events and leases in PostgreSQL.

    ``conninfo`` is a libpq connection string or URL. The connection is opened
    on first use and again in a forked child (a Celery prefork worker), so a
    store may be built before the fork. ``clock`` (seconds) measures leases;
    None uses the server's clock. Thread-safe: threads share one connection,
    one statement at a time. Database errors surface as ``StoreError``.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = "zeroflow",
        lease_ttl_seconds: float = DEFAULT_LEASE_TTL_SECONDS,
        clock: Callable[[], float] | None = None,
        connect_timeout_seconds: float = 10.0,
    ) -> None:
        if not _IDENTIFIER.fullmatch(schema):
            raise ValueError(f"schema must be a plain SQL identifier, got {schema!r}")
        self.conninfo = conninfo
        self.schema = schema
        self.lease_ttl_seconds = float(lease_ttl_seconds)
        self.path = f"postgres schema '{schema}'"
        self._clock = clock
        self._connect_timeout = max(1, round(connect_timeout_seconds))
        self._lock = threading.RLock()
        self._writers: dict[str, SqlWriter] = {}
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._pid = -1
        with self._lock:
            self._db()

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
                raise StoreCorruptError(
                    f"{self.path}: schema version {version} is newer than this zeroflow's "
                    f"({SCHEMA_VERSION}); upgrade zeroflow to open it",
                    path=self.path,
                )
            for number in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[number]:
                    conn.execute(statement)
            if row is None:
                conn.execute("INSERT INTO zeroflow_schema VALUES (%s)", (SCHEMA_VERSION,))
            elif version < SCHEMA_VERSION:
                conn.execute("UPDATE zeroflow_schema SET version=%s", (SCHEMA_VERSION,))

    @contextmanager
    def _tx(self) -> Iterator[Cursor]:
        """One transaction; a lost connection is dropped so the next call reconnects."""
        with self._lock:
            conn = self._db()
            try:
                with conn.transaction(), conn.cursor() as cur:
                    yield cur
            except psycopg.Error as exc:
                if conn.broken or conn.closed:
                    self._conn = None
                raise StoreError(
                    f"{self.path}: {type(exc).__name__}: {exc}", path=self.path
                ) from exc

    def _now(self) -> float | None:
        """The lease clock's reading, or None to let the server read its own."""
        return None if self._clock is None else self._clock()

    def _tick(self) -> float:
        """What renewals are throttled by: the lease clock, or a monotonic one for the server's."""
        return time.monotonic() if self._clock is None else self._clock()

    def _wall(self) -> float:
        """When a checkpoint is written (``saved_at``, what ``prune(older_than=)`` compares)."""
        return time.time() if self._clock is None else self._clock()

    def close(self) -> None:
        """Write anything pending and close the connection."""
        with self._lock:
            try:
                self.flush()
            finally:
                self._writers.clear()
                if self._conn is not None and self._pid == os.getpid():
                    self._conn.close()
                self._conn = None

    def drop_schema(self) -> None:
        """Delete every table of this store (its schema), for tests and teardown."""
        with self._lock:
            self._writers.clear()
            with self._tx() as cur:
                cur.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema))
                )
            self.close()

    # ------------------------------------------------------------------ writes

    def save_snapshot(self, snapshot: RunSnapshot) -> None:
        data = snapshot.to_dict()
        with self._lock:
            w = self._writer(check_run_id(snapshot.run_id))
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
            w = self._writer(check_run_id(run_id))
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
        self._db()  # a forked child starts with no writers
        w = self._writers.get(run_id)
        if w is None:
            w = SqlWriter()
            with self._tx() as cur:
                self._load_counters(cur, run_id, w)
            self._writers[run_id] = w
        return w

    def _load_counters(self, cur: Cursor, run_id: str, w: SqlWriter) -> None:
        row = cur.execute("SELECT base_seq FROM runs WHERE run_id=%s", (run_id,)).fetchone()
        w.event_seq = _one(
            cur.execute("SELECT coalesce(max(seq), 0) FROM events WHERE run_id=%s", (run_id,))
        )
        if row is None:
            w.seq, w.base_seq, w.base_bytes, w.records, w.delta_bytes = 0, -1, 0, 0, 0
            return
        w.base_seq = row[0]
        w.seq = _one(cur.execute("SELECT max(seq) FROM checkpoints WHERE run_id=%s", (run_id,)))
        w.base_bytes = _one(
            cur.execute(
                "SELECT length(body) FROM snapshots WHERE run_id=%s AND seq=%s",
                (run_id, w.base_seq),
            )
        )
        counts = cur.execute(
            "SELECT count(*), coalesce(sum(length(delta)), 0) FROM checkpoints "
            "WHERE run_id=%s AND seq>%s",
            (run_id, w.base_seq),
        ).fetchone()
        assert counts is not None
        w.records, w.delta_bytes = int(counts[0]), int(counts[1])

    def _commit(self, run_id: str, w: SqlWriter) -> None:
        """Write pending events and the pending checkpoint in one transaction."""
        if not (w.pending_events or w.pending_full is not None or w.pending_deltas):
            return
        now = self._wall()
        with self._tx() as cur:
            if w.owner is None:
                self._load_counters(cur, run_id, w)  # no lease: another writer may have moved on
            if w.pending_events:
                start = w.event_seq
                cur.executemany(
                    "INSERT INTO events (run_id, seq, body) VALUES (%s, %s, %s)",
                    [(run_id, start + i + 1, body) for i, body in enumerate(w.pending_events)],
                )
            if w.pending_deltas:
                if w.base_seq < 0:
                    raise RunNotFoundError(run_id)
                rows = []
                seq = w.seq
                for body, delta in w.pending_deltas:
                    seq += 1
                    rows.append(
                        (
                            run_id,
                            seq,
                            delta.step,
                            delta.wave,
                            delta.status,
                            delta.last_node,
                            delta.updated_at,
                            body,
                        )
                    )
                cur.executemany(
                    "INSERT INTO checkpoints VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", rows
                )
            if w.pending_full is not None:
                full_seq = w.seq + len(w.pending_deltas) + 1
                text = self._write_full(cur, run_id, full_seq, w.pending_full, now)
            elif w.pending_deltas and should_fold(
                w.records + len(w.pending_deltas),
                w.delta_bytes + sum(len(body) for body, _ in w.pending_deltas),
                w.base_bytes,
            ):
                full_seq = w.seq + len(w.pending_deltas)
                snap = w.live if w.live is not None else self._rebuild(cur, run_id, full_seq)
                text = self._fold(cur, run_id, full_seq, snap, now)
            else:
                full_seq, text = -1, ""
        # Counters move only once the transaction is in: a failed commit keeps all for a retry.
        w.event_seq += len(w.pending_events)
        w.seq += len(w.pending_deltas)
        w.records += len(w.pending_deltas)
        w.delta_bytes += sum(len(body) for body, _ in w.pending_deltas)
        if full_seq >= 0:
            if w.pending_full is not None:
                w.seq = full_seq
                # A driver keeps the run's state, so its next full snapshot costs one encode.
                w.live = w.pending_full if w.owner is not None else None
            w.base_seq, w.base_bytes, w.records, w.delta_bytes = full_seq, len(text), 0, 0
        w.pending_events = []
        w.pending_full = None
        w.pending_deltas = []
        w.hold = False

    def _fold(self, cur: Cursor, run_id: str, seq: int, snap: dict[str, Any], now: float) -> str:
        """Store the run's current state as a full snapshot and refresh its summary row."""
        text = encode_compact(snap)
        cur.execute("INSERT INTO snapshots VALUES (%s, %s, %s)", (run_id, seq, text))
        cur.execute(
            "UPDATE runs SET base_seq=%s, status=%s, updated_at=%s, current_node=%s, saved_at=%s "
            "WHERE run_id=%s",
            (seq, snap.get("status"), snap.get("updated_at"), snap.get("last_node"), now, run_id),
        )
        return text

    def _write_full(
        self, cur: Cursor, run_id: str, seq: int, data: dict[str, Any], now: float
    ) -> str:
        text = encode_compact(data)
        status = data["status"]
        cur.execute(
            "INSERT INTO checkpoints VALUES (%s, %s, %s, %s, %s, %s, %s, NULL)",
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
        cur.execute("INSERT INTO snapshots VALUES (%s, %s, %s)", (run_id, seq, text))
        err = data["last_error"]
        cur.execute(
            "INSERT INTO runs VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (run_id) DO UPDATE SET workflow_name=excluded.workflow_name, "
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
        return text

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

    def _rebuild(self, cur: Cursor, run_id: str, seq: int) -> dict[str, Any]:
        """The run as of checkpoint ``seq`` (snapshot dict): the last full snapshot plus deltas."""
        row = cur.execute(
            "SELECT seq, body FROM snapshots WHERE run_id=%s AND seq<=%s ORDER BY seq DESC LIMIT 1",
            (run_id, seq),
        ).fetchone()
        if row is None:
            raise StoreCorruptError(
                f"{self.path}: run '{run_id}' has no full snapshot at or before checkpoint {seq}",
                run_id=run_id,
                path=self.path,
            )
        snap = self._decode(run_id, row[0], row[1])
        for number, body in cur.execute(
            "SELECT seq, delta FROM checkpoints WHERE run_id=%s AND seq>%s AND seq<=%s "
            "AND delta IS NOT NULL ORDER BY seq",
            (run_id, row[0], seq),
        ).fetchall():
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
        with self._tx() as cur:
            seq = _one(cur.execute("SELECT max(seq) FROM checkpoints WHERE run_id=%s", (run_id,)))
            if seq is None:
                raise RunNotFoundError(run_id)
            if step is not None:
                found = _one(
                    cur.execute(
                        "SELECT max(seq) FROM checkpoints WHERE run_id=%s AND step=%s",
                        (run_id, step),
                    )
                )
                if found is None:
                    entries = list(enumerate(self._history(cur, run_id)))
                    raise checkpoint_not_found(run_id, step, entries)
                seq = found
            data = self._rebuild(cur, run_id, seq)
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
            self._db()
            w = self._writers.get(run_id)
            if w is not None:
                self._commit(run_id, w)

    def _history(self, cur: Cursor, run_id: str) -> list[CheckpointInfo]:
        return [
            CheckpointInfo(int(step), int(wave), status, node, ts)
            for step, wave, status, node, ts in cur.execute(
                "SELECT step, wave, status, node, ts FROM checkpoints WHERE run_id=%s ORDER BY seq",
                (run_id,),
            ).fetchall()
        ]

    def history(self, run_id: str) -> list[CheckpointInfo]:
        """The run's checkpoints, oldest first."""
        self._commit_run(run_id)
        with self._tx() as cur:
            out = self._history(cur, run_id)
        if not out:
            raise RunNotFoundError(run_id)
        return out

    def events(self, run_id: str) -> list[Event]:
        """The run's event log, oldest first (checkpoint events carry only their step)."""
        self._commit_run(run_id)
        with self._tx() as cur:
            rows = cur.execute(
                "SELECT body FROM events WHERE run_id=%s ORDER BY seq", (run_id,)
            ).fetchall()
            if not rows and (
                cur.execute("SELECT 1 FROM runs WHERE run_id=%s", (run_id,)).fetchone() is None
            ):
                raise RunNotFoundError(run_id)
        return [Event.from_dict(json.loads(body)) for (body,) in rows]

    def run_status(self, run_id: str) -> str | None:
        self._commit_run(run_id)
        with self._tx() as cur:
            row = cur.execute("SELECT status FROM runs WHERE run_id=%s", (run_id,)).fetchone()
        return None if row is None else str(row[0])

    def list_metadata(
        self, workflow_name: str | None = None, status: str | None = None
    ) -> list[RunMetadata]:
        self.flush()
        where, args = [], []
        if workflow_name is not None:
            where.append("workflow_name=%s")
            args.append(workflow_name)
        if status is not None:
            where.append("status=%s")
            args.append(status)
        query = (
            "SELECT run_id, workflow_name, workflow_hash, status, started_at, updated_at, "
            "current_node, last_error FROM runs"
        )
        if where:
            query += " WHERE " + " AND ".join(where)
        with self._tx() as cur:
            rows = cur.execute(query + " ORDER BY run_id", args).fetchall()
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

    def stale_runs(self, limit: int = 100) -> list[str]:
        """Ids of runs left ``running`` by a driver whose lease lapsed (a killed worker).

        Oldest first. Rows another sweeper is reading are skipped
        (``FOR UPDATE SKIP LOCKED``), so several sweepers share the work
        instead of queueing behind each other.
        """
        self.flush()
        with self._tx() as cur:
            rows = cur.execute(
                "SELECT r.run_id FROM runs r LEFT JOIN leases l ON l.run_id = r.run_id "
                f"WHERE r.status = 'running' AND (l.run_id IS NULL OR l.expires_at <= {_NOW}) "
                "ORDER BY r.saved_at LIMIT %(limit)s FOR UPDATE OF r SKIP LOCKED",
                {"now": self._now(), "limit": limit},
            ).fetchall()
        return [str(run_id) for (run_id,) in rows]

    # ------------------------------------------------------------------ leases

    def acquire_lease(self, run_id: str, owner: str) -> None:
        check_run_id(run_id)
        with self._lock:
            with self._tx() as cur:
                won = cur.execute(
                    f"WITH t AS (SELECT {_NOW} AS now) "
                    "INSERT INTO leases AS l (run_id, owner, expires_at) "
                    "SELECT %(run)s, %(owner)s, t.now + %(ttl)s FROM t "
                    "ON CONFLICT (run_id) DO UPDATE SET owner=excluded.owner, "
                    "expires_at=excluded.expires_at "
                    "WHERE l.owner = excluded.owner OR l.expires_at <= (SELECT now FROM t) "
                    "RETURNING 1",
                    self._lease_args(run_id, owner),
                ).fetchone()
                if won is None:
                    holder, expires, now = self._lease_row(cur, run_id)
                    raise locked_error(run_id, holder, expires - now)
            old = self._writers.pop(run_id, None)
            if old is not None:
                self._commit(run_id, old)
            w = SqlWriter()
            with self._tx() as cur:
                self._load_counters(cur, run_id, w)
            w.owner, w.renewed_at = owner, self._tick()
            self._writers[run_id] = w

    def renew_lease(self, run_id: str, owner: str) -> None:
        mono = self._tick()
        with self._lock:
            w = self._writers.get(run_id)
            if (
                w is not None
                and w.owner == owner
                and self._pid == os.getpid()
                and mono - w.renewed_at < self.lease_ttl_seconds / 3
            ):
                return
            with self._tx() as cur:
                kept = cur.execute(
                    f"WITH t AS (SELECT {_NOW} AS now) "
                    "INSERT INTO leases AS l (run_id, owner, expires_at) "
                    "SELECT %(run)s, %(owner)s, t.now + %(ttl)s FROM t "
                    "ON CONFLICT (run_id) DO UPDATE SET owner=excluded.owner, "
                    "expires_at=excluded.expires_at "
                    "WHERE l.owner = excluded.owner OR l.expires_at <= (SELECT now FROM t) "
                    "RETURNING 1",
                    self._lease_args(run_id, owner),
                ).fetchone()
                if kept is None:
                    raise lost_lease_error(run_id)
            if w is not None and w.owner == owner:
                w.renewed_at = mono

    def release_lease(self, run_id: str, owner: str) -> None:
        with self._lock:
            w = self._writers.get(run_id)
            if w is not None and w.owner == owner:
                try:
                    self._commit(run_id, w)
                finally:
                    del self._writers[run_id]
            with self._tx() as cur:
                cur.execute("DELETE FROM leases WHERE run_id=%s AND owner=%s", (run_id, owner))

    def break_lease(self, run_id: str) -> bool:
        with self._tx() as cur:
            return cur.execute("DELETE FROM leases WHERE run_id=%s", (run_id,)).rowcount > 0

    def delete_run(self, run_id: str, *, owner: str | None = None) -> bool:
        with self._lock:
            with self._tx() as cur:
                holder, expires, now = self._lease_row(cur, run_id, lock=True)
                if lease_verdict(holder, expires, owner, now) == "taken":
                    raise locked_error(run_id, holder, expires - now)
                existed = self._delete(cur, run_id)
                if owner is None:
                    cur.execute("DELETE FROM leases WHERE run_id=%s", (run_id,))
            w = self._writers.pop(run_id, None)
            if w is not None and w.owner == owner and owner is not None:
                fresh = SqlWriter()
                fresh.owner, fresh.renewed_at = owner, w.renewed_at
                self._writers[run_id] = fresh
            return existed

    def _lease_args(self, run_id: str, owner: str) -> dict[str, Any]:
        return {"now": self._now(), "run": run_id, "owner": owner, "ttl": self.lease_ttl_seconds}

    def _lease_row(
        self, cur: Cursor, run_id: str, *, lock: bool = False
    ) -> tuple[str | None, float, float]:
        """(holder, expires_at, now) of the run's lease; (None, 0, now) when it has none."""
        now = float(_one(cur.execute(f"SELECT {_NOW}", {"now": self._now()})))
        row = cur.execute(
            "SELECT owner, expires_at FROM leases WHERE run_id=%s"
            + (" FOR UPDATE" if lock else ""),
            (run_id,),
        ).fetchone()
        if row is None:
            return None, 0.0, now
        return str(row[0]), float(row[1]), now

    def _delete(self, cur: Cursor, run_id: str) -> bool:
        for table in ("checkpoints", "snapshots", "events"):
            cur.execute(f"DELETE FROM {table} WHERE run_id=%s", (run_id,))
        return cur.execute("DELETE FROM runs WHERE run_id=%s", (run_id,)).rowcount > 0

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
        if older_than is not None and wanted:
            with self._tx() as cur:
                now = float(_one(cur.execute(f"SELECT {_NOW}", {"now": self._now()})))
                cutoff = self._wall() - to_seconds(older_than)
                rows = cur.execute(
                    "SELECT run_id FROM runs WHERE status = ANY(%s) AND saved_at<%s "
                    "AND run_id NOT IN (SELECT run_id FROM leases WHERE expires_at>%s) "
                    "FOR UPDATE SKIP LOCKED",
                    (wanted, cutoff, now),
                ).fetchall()
                for (run_id,) in rows:
                    self._delete(cur, run_id)
                    deleted.append(run_id)
        if keep_last is not None:
            with self._tx() as cur:
                candidates = cur.execute(
                    "SELECT run_id, count(*) FROM checkpoints GROUP BY run_id HAVING count(*)>%s",
                    (keep_last,),
                ).fetchall()
            for run_id, count in candidates:
                with self._lock:
                    with self._tx() as cur:
                        holder, expires, now = self._lease_row(cur, run_id, lock=True)
                        if lease_verdict(holder, expires, None, now) != "free":
                            continue
                        keep = _one(
                            cur.execute(
                                "SELECT seq FROM checkpoints WHERE run_id=%s ORDER BY seq DESC "
                                "LIMIT 1 OFFSET %s",
                                (run_id, keep_last - 1),
                            )
                        )
                        has_full = cur.execute(
                            "SELECT 1 FROM snapshots WHERE run_id=%s AND seq=%s", (run_id, keep)
                        ).fetchone()
                        if has_full is None:
                            text = encode_compact(self._rebuild(cur, run_id, keep))
                            cur.execute(
                                "INSERT INTO snapshots VALUES (%s, %s, %s)", (run_id, keep, text)
                            )
                            cur.execute(
                                "UPDATE runs SET base_seq=GREATEST(base_seq, %s) WHERE run_id=%s",
                                (keep, run_id),
                            )
                        cur.execute(
                            "DELETE FROM checkpoints WHERE run_id=%s AND seq<%s", (run_id, keep)
                        )
                        cur.execute(
                            "DELETE FROM snapshots WHERE run_id=%s AND seq<%s", (run_id, keep)
                        )
                        trimmed[run_id] = int(count) - keep_last
                    self._writers.pop(run_id, None)
        return PruneResult(tuple(sorted(deleted)), trimmed)


def _one(cur: Cursor) -> Any:
    """The single value of a one-row, one-column query."""
    row = cur.fetchone()
    return None if row is None else row[0]
