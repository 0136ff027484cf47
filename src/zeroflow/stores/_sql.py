"""What the SQLite and Postgres stores share: one table layout, written to the same way.

Both keep ``runs``, ``checkpoints``, ``snapshots``, ``events`` and ``leases``
and commit a driven run's pending writes once per checkpoint (``SqlWriter``).
A lease row outlives its lease: releasing or breaking it clears the owner and
keeps the fencing token, so every acquisition's token is larger than any
issued before for that run. A leased commit checks its fence (owner, token,
``seq``) inside its write transaction, before it inserts anything.
``SqlStore`` holds that logic, its statements in SQLite's ``?`` parameter
style; a backend supplies the connection and its transactions, its clocks,
how it lays out event rows, and the statements only its dialect has (taking
a lease, picking old runs to prune). No database driver is imported here.

Faults: every public method lets only zeroflow's errors out. A driver error
(``_DRIVER_ERRORS``) becomes the backend's ``_fault`` (``StoreError``, or
``StoreCorruptError`` for a damaged database) naming the run and the
database, with the driver's error as ``__cause__``; a row whose columns do not
decode is ``StoreCorruptError``, except in listings (``list_metadata``,
``prune``), which skip that run and report it (``store:corrupt``). A lease
this process gave up but could not clear in the database (a full disk, a
lock) is remembered, so the next caller in this process takes the run at
once; other processes wait out its TTL, or take it when this process is gone.
"""

from __future__ import annotations

import json
import logging
import math
from abc import abstractmethod
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol

from .._errors import RunNotFoundError, StoreCorruptError, StoreError
from .._models import Event, RunMetadata, RunSnapshot, WorkflowError
from .._stats import RunSummary, decode_nodes, encode_nodes, node_stats_of_dicts, since_key
from .._store import FINISHED_STATUSES, CheckpointInfo, PruneResult
from .._store_views import LeaseInfo, RunPage, RunQuery
from ._batch import BatchingStore, Writer
from ._common import (
    Reporter,
    apply_delta_dict,
    check_due_query,
    check_keep_last,
    check_run_id,
    decode_event_rows,
    encode_compact,
    encode_event_rows,
    lease_info_of,
    lease_verdict,
    locked_error,
    lost_lease_error,
    moved_on_error,
    process_holder,
    report_corrupt,
    select_seq,
    snapshot_due,
    status_set,
    timers_of,
    to_seconds,
    waiting_now,
)

__all__ = ["Db", "Rows", "SqlStore", "SqlWriter", "newer_schema_error", "one"]

_LOG = logging.getLogger("zeroflow.stores")

LEASE_HORIZON_SECONDS = 366 * 86400.0
"""A lease expiring further ahead than this (or the store's TTL, if longer) counts as expired.

No store ever writes such an expiry: it is damage, and must not hold a run forever.
"""

_ABANDONED: dict[str, tuple[str, str]] = {}
"""Leases this process released but could not clear in the database: owner -> (store, run).

An owner is one engine call's random id, so a lease row still naming one of
these owners is free for every caller in this process.
"""


class Rows(Protocol):
    """What a statement returns: a DB-API cursor, as far as the stores use one."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Db(Protocol):
    """Where statements run (an ``sqlite3.Connection``, a wrapped psycopg cursor)."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Rows: ...

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> object: ...


def newer_schema_error(path: str, version: int, supported: int) -> StoreCorruptError:
    """The error for a database whose schema a newer zeroflow wrote; it is not altered."""
    return StoreCorruptError(
        f"{path}: schema version {version} is newer than this zeroflow's "
        f"({supported}); upgrade zeroflow to open it",
        path=path,
    )


class SqlWriter(Writer):
    """A run's writer in a SQL store: also the last event's number and the deltas' bytes."""

    __slots__ = ("delta_bytes", "event_seq")

    def __init__(self) -> None:
        super().__init__()
        self.delta_bytes = 0
        self.event_seq = 0


def one(rows: Rows) -> Any:
    """The single value of a one-row, one-column query; None when there is no row."""
    row = rows.fetchone()
    return None if row is None else row[0]


class _Faults:
    """``with`` it around a store call: a database driver's error leaves as a zeroflow error.

    A plain class rather than ``@contextmanager``: entering and leaving it costs
    next to nothing when nothing fails.
    """

    __slots__ = ("run_id", "store")

    def __init__(self, store: SqlStore, run_id: str | None) -> None:
        self.store = store
        self.run_id = run_id

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _: Any) -> None:
        if exc is not None and isinstance(exc, self.store._DRIVER_ERRORS):
            raise self.store._fault(exc, self.run_id) from exc


class SqlStore(BatchingStore[SqlWriter]):
    """The ``WorkflowStore`` methods a SQL backend shares; see the module docstring.

    Subclasses set ``path``, ``lease_ttl_seconds``, ``_lock`` (an ``RLock``)
    and ``_writers``, and implement the abstract hooks below.
    """

    path: str
    durable = True
    """Checkpoints live in the database: they outlive this process."""
    on_report: Reporter | None = None
    """Where a listing or a prune reports a run it skipped as unreadable (``store:corrupt``)."""

    _DRIVER_ERRORS: ClassVar[tuple[type[BaseException], ...]] = ()
    """The database driver's errors: none of them leaves a public method as it is."""

    _EVENTS_END: ClassVar[str]
    """One value: the sequence number of the run's last stored event (0 if none)."""
    _EVENTS_TABLE_END: ClassVar[str]
    """One value, one index lookup: the number of the last event in ``events`` (or no row)."""
    _GREATEST: ClassVar[str]
    """The SQL function for the larger of two values."""
    _FOR_UPDATE: ClassVar[str] = ""
    """Appended to a lease read that must lock the row until the transaction ends."""
    _EVENTS_QUERY: ClassVar[str] = "SELECT seq, body FROM events WHERE run_id=? ORDER BY seq"
    """Rows ``(first event number, text)`` of a run's events, in order."""
    _EVENTS_IN_CHECKPOINTS: ClassVar[bool] = False
    """True: a commit's events ride in its last checkpoint row (three more columns), as
    one ``encode_event_rows`` text."""
    _INSERT_CHECKPOINT: ClassVar[dict[int, str]] = {
        n: f"INSERT INTO checkpoints VALUES ({', '.join('?' * n)})" for n in (9, 11)
    }
    _BINARY_TEXT_ORDER: ClassVar[bool] = False
    """True when text compares by code point (SQLite): a run-id prefix is then also a key range."""
    _MALFORMED_RUNS: ClassVar[str]
    """Rows ``(run_id, status, saved_at)`` of ``runs`` that ``prune(older_than=)`` cannot judge."""

    # ------------------------------------------------------------------ hooks

    @abstractmethod
    def _tx(self) -> AbstractContextManager[Db]:
        """One write transaction, holding ``_lock``."""

    def _read(self) -> AbstractContextManager[Db]:
        """A read transaction: every statement inside sees the same committed state."""
        return self._tx()

    def _query(self) -> AbstractContextManager[Db]:
        """Where reads that need no transaction of their own run, holding ``_lock``."""
        return self._tx()

    @abstractmethod
    def _wall(self) -> float:
        """When a checkpoint is written (``saved_at``, what ``prune(older_than=)`` compares)."""

    @abstractmethod
    def _lease_now(self, db: Db) -> float:
        """The lease clock's reading."""

    @abstractmethod
    def _insert_events(self, db: Db, run_id: str, first_seq: int, events: list[Event]) -> None:
        """Store events that no checkpoint row carries, numbered from ``first_seq``."""

    def _keep_events(self, db: Db, run_id: str, below_seq: int) -> None:
        """Before checkpoints under ``below_seq`` are pruned: save the events they carry."""

    @abstractmethod
    def _expired(self, db: Db, statuses: list[str], older_than_seconds: float) -> list[Any]:
        """Rows ``(run_id,)`` of unleased runs in ``statuses`` saved longer ago than that."""

    @abstractmethod
    def _fault(self, exc: BaseException, run_id: str | None) -> StoreError:
        """The zeroflow error for the driver's error ``exc``: names the run, the database, a fix."""

    def _drop_events(self, db: Db, run_id: str, below_seq: int) -> int:
        """Before checkpoints under ``below_seq`` are pruned: delete the events logged before
        checkpoint ``below_seq``; how many there were."""
        return 0

    def _delete_where(self, db: Db, table: str, where: str, args: tuple[Any, ...]) -> int:
        """``DELETE FROM table WHERE where``; the bytes freed, where the backend estimates them."""
        db.execute(f"DELETE FROM {table} WHERE {where}", args)
        return 0

    def _space(self) -> int:
        """The bytes the database takes on disk now (0 where the backend cannot tell)."""
        return 0

    def _reclaim(self, before: int, estimate: int) -> int:
        """After a prune deleted rows: give the space back; the bytes freed since ``before``."""
        return estimate

    def _open_writer(self, run_id: str) -> SqlWriter:
        """The writer of a run this instance has not written yet; checks the id."""
        return self._load_writer(check_run_id(run_id))

    # ------------------------------------------------------------------ faults

    def _corrupt(self, run_id: str, what: str) -> StoreCorruptError:
        """A row of ``run_id`` that does not hold what zeroflow wrote."""
        return StoreCorruptError(
            f"{self.path}: run '{run_id}': {what}; the database was changed outside zeroflow "
            f"or is damaged: restore it from a backup, or delete the run "
            f"(store.delete_run('{run_id}'))",
            run_id=run_id,
            path=self.path,
        )

    def _int(self, run_id: str, what: str, value: Any) -> int:
        """``value`` if it is an integer; ``StoreCorruptError`` naming ``what`` otherwise."""
        if type(value) is int:
            return value
        raise self._corrupt(run_id, f"{what} is {value!r}, not an integer")

    def _report(self, run_id: Any, reason: str) -> None:
        """Tell ``on_report`` that ``run_id`` was skipped as unreadable."""
        name = run_id if isinstance(run_id, str) else repr(run_id)
        report_corrupt(self.on_report, name, self.path, reason)

    # ------------------------------------------------------------------ writes

    def _append_unleased(self, run_id: str, events: Sequence[Event]) -> None:
        w = self._writer(run_id)
        w.pending_events.extend(events)
        try:
            self._commit(run_id, w)
        except BaseException:
            # Refused (data JSON cannot hold, a lost connection): the caller gets the
            # error, and the events must not stay queued to fail every later call.
            del w.pending_events[-len(events) :]
            raise

    def _load_writer(self, run_id: str) -> SqlWriter:
        w = SqlWriter()
        with _Faults(self, run_id), self._query() as db:
            self._load_counters(db, run_id, w)
        return w

    def _load_counters(self, db: Db, run_id: str, w: SqlWriter) -> None:
        row = db.execute("SELECT base_seq FROM runs WHERE run_id=?", (run_id,)).fetchone()
        w.event_seq = self._int(
            run_id, "the last event number", one(db.execute(self._EVENTS_END, (run_id,)))
        )
        if row is None:
            w.seq, w.base_seq, w.base_bytes, w.records, w.delta_bytes = 0, -1, 0, 0, 0
            return
        w.base_seq = self._int(run_id, "runs.base_seq", row[0])
        w.seq = self._int(
            run_id,
            "the latest checkpoint's seq",
            one(db.execute("SELECT max(seq) FROM checkpoints WHERE run_id=?", (run_id,))),
        )
        w.base_bytes = int(
            one(
                db.execute(
                    "SELECT length(body) FROM snapshots WHERE run_id=? AND seq=?",
                    (run_id, w.base_seq),
                )
            )
            or 0
        )
        records, delta_bytes = db.execute(
            "SELECT count(*), coalesce(sum(length(delta)), 0) FROM checkpoints "
            "WHERE run_id=? AND seq>?",
            (run_id, w.base_seq),
        ).fetchone()
        w.records, w.delta_bytes = int(records), int(delta_bytes)

    def _commit(self, run_id: str, w: SqlWriter) -> None:
        """Write pending events and the pending checkpoint in one transaction.

        A driver's error leaves as the backend's ``StoreError``; the writer keeps its
        counters (nothing of the failed transaction was written). An unleased
        write that failed is dropped: its caller got the error, and a later read
        must neither fail on it again nor write it behind the caller's back.
        """
        try:
            self._write(run_id, w)
        except BaseException as exc:
            if w.owner is None:
                w.pending_full = None
                w.pending_steps = []
                w.pending_events = []
            if isinstance(exc, self._DRIVER_ERRORS):
                raise self._fault(exc, run_id) from exc
            raise

    def _write(self, run_id: str, w: SqlWriter) -> None:
        if not (w.pending_events or w.pending_full is not None or w.pending_steps):
            return
        now = self._wall()
        events = w.pending_events
        # Events that ride in the commit's last checkpoint row, encoded before the
        # transaction takes the database's write lock.
        carry = (
            self._EVENTS_IN_CHECKPOINTS
            and bool(events)
            and bool(w.pending_steps or w.pending_full is not None)
        )
        events_text = encode_event_rows(events) if carry else ""
        fence = w.fence
        with self._tx() as db:
            outside = None
            if fence is not None:
                outside = self._check_fence(db, run_id, w, fence)
            elif w.owner is None:
                self._load_counters(db, run_id, w)  # no lease: another writer may have moved on
            elif events:
                outside = one(db.execute(self._EVENTS_TABLE_END, (run_id,)))
            # Events may come from elsewhere without the lease (an operator's note): a
            # leased writer numbers this call's events after whatever ``events`` holds now.
            if events and outside is not None and outside > w.event_seq:
                w.event_seq = int(outside)
            # Every checkpoint row records the number of the first event logged after the
            # checkpoint before it (``event_seq``: where prune cuts the log), and in SQLite
            # the commit's last row carries its events (first number, count, text).
            mark = w.event_seq + 1
            carried: tuple[Any, ...] = (mark,)
            tail = carried
            if self._EVENTS_IN_CHECKPOINTS:
                carried = (mark, len(events), events_text) if carry else (mark, 0, None)
                tail = (mark, 0, None)
            if events and not carry:
                self._insert_events(db, run_id, mark, events)
            added_bytes = 0
            if w.pending_steps:
                if w.base_seq < 0:
                    raise RunNotFoundError(run_id)
                rows = []
                seq = w.seq
                last = len(w.pending_steps) - 1 if w.pending_full is None else -1
                for i, (body, delta) in enumerate(w.pending_steps):
                    seq += 1
                    added_bytes += len(body)
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
                            *(carried if i == last else tail),
                        )
                    )
                insert = self._INSERT_CHECKPOINT[len(rows[0])]
                if len(rows) == 1:
                    db.execute(insert, rows[0])  # the usual case: cheaper than executemany
                else:
                    db.executemany(insert, rows)
            if w.pending_full is not None:
                full_seq = w.seq + len(w.pending_steps) + 1
                text = self._write_full(db, run_id, full_seq, w.pending_full, now, carried)
            elif w.pending_steps and self._fold_due(
                w, w.records + len(w.pending_steps), w.delta_bytes + added_bytes
            ):
                full_seq = w.seq + len(w.pending_steps)
                text = self._fold(db, run_id, full_seq, self._rebuild(db, run_id, full_seq), now)
            else:
                full_seq, text = -1, ""
        # Counters move only once the transaction is in: a failed commit keeps all for a retry.
        w.event_seq += len(w.pending_events)
        w.seq += len(w.pending_steps)
        w.records += len(w.pending_steps)
        w.delta_bytes += added_bytes
        if full_seq >= 0:
            if w.pending_full is not None:
                w.seq = full_seq
            w.base_seq, w.base_bytes, w.records, w.delta_bytes = full_seq, len(text), 0, 0
            w.fold_wanted = False
        w.pending_events = []
        w.pending_full = None
        w.pending_steps = []

    def _check_fence(
        self, db: Db, run_id: str, w: SqlWriter, fence: tuple[str, int, int]
    ) -> int | None:
        """Refuse a leased commit whose lease or ``seq`` is no longer current; renew it otherwise.

        Returns the number of the last event in the events table (None: no row).

        Runs first in the commit's transaction, so no other process can take
        the lease or write a checkpoint between this check and the write.
        """
        owner, token, seq = fence
        # One statement: the lease, the latest checkpoint, where the events table ends.
        lease = db.execute(
            "SELECT owner, token, expires_at, "
            "(SELECT max(seq) FROM checkpoints WHERE run_id=?), "
            f"({self._EVENTS_TABLE_END}) FROM leases WHERE run_id=?{self._FOR_UPDATE}",
            (run_id, run_id, run_id),
        ).fetchone()
        if lease is None or lease[0] != owner or lease[1] != token:
            raise self._lost(db, run_id, owner, token)
        # Renewed once a third of the TTL has passed, not at every commit: the check above
        # is what fences, and a renewal is one more row written. An expiry that is not a
        # number, or lies further ahead than a renewal would put it (damage), is rewritten.
        now = self._lease_now(db)
        ttl = self.lease_ttl_seconds
        try:
            fresh = ttl * 2 / 3 < lease[2] - now <= ttl + 1.0
        except TypeError:
            fresh = False
        if not fresh:
            db.execute(
                "UPDATE leases SET expires_at=? WHERE run_id=?",
                (now + self.lease_ttl_seconds, run_id),
            )
        latest = lease[3]
        if (latest or 0) != seq - 1:
            raise moved_on_error(run_id, seq, latest)
        if (latest or 0) != w.seq:
            self._load_counters(db, run_id, w)  # written by another instance of this store
        return None if lease[4] is None else int(lease[4])

    def _fold(self, db: Db, run_id: str, seq: int, snap: dict[str, Any], now: float) -> str:
        """Store the run's current state as a full snapshot and refresh its summary row."""
        text = encode_compact(snap)
        db.execute("INSERT INTO snapshots VALUES (?, ?, ?)", (run_id, seq, text))
        db.execute(
            "UPDATE runs SET base_seq=?, status=?, updated_at=?, current_node=?, saved_at=?, "
            "stats=?, due_at=? WHERE run_id=?",
            (
                seq,
                snap.get("status"),
                snap.get("updated_at"),
                _current_node(snap),
                now,
                _stats_text(snap),
                snapshot_due(snap),
                run_id,
            ),
        )
        return text

    def _write_full(
        self,
        db: Db,
        run_id: str,
        seq: int,
        data: dict[str, Any],
        now: float,
        carried: tuple[Any, ...],
    ) -> str:
        data["seq"] = seq
        text = encode_compact(data)
        status = data["status"]
        row = (
            run_id,
            seq,
            data["step"],
            data["wave"],
            status,
            data["last_node"],
            data["updated_at"],
            None,
            *carried,
        )
        db.execute(self._INSERT_CHECKPOINT[len(row)], row)
        db.execute("INSERT INTO snapshots VALUES (?, ?, ?)", (run_id, seq, text))
        err = data["last_error"]
        db.execute(
            "INSERT INTO runs (run_id, workflow_name, workflow_hash, status, started_at, "
            "updated_at, current_node, last_error, base_seq, saved_at, stats, due_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO "
            "UPDATE SET workflow_name=excluded.workflow_name, "
            "workflow_hash=excluded.workflow_hash, status=excluded.status, "
            "started_at=excluded.started_at, updated_at=excluded.updated_at, "
            "current_node=excluded.current_node, last_error=excluded.last_error, "
            "base_seq=excluded.base_seq, saved_at=excluded.saved_at, stats=excluded.stats, "
            "due_at=excluded.due_at",
            (
                run_id,
                data["workflow_name"],
                data["wf_hash"],
                status,
                data["started_at"],
                data["updated_at"],
                _current_node(data),
                None if err is None else json.dumps(err),
                seq,
                now,
                _stats_text(data),
                snapshot_due(data),
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

    def _rebuild(self, db: Db, run_id: str, seq: int) -> dict[str, Any]:
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

    def load_snapshot(
        self, run_id: str, step: int | None = None, *, seq: int | None = None
    ) -> RunSnapshot:
        """The run's latest checkpoint, the last one taken at ``step``, or checkpoint ``seq``
        exactly: one consistent read."""
        with _Faults(self, run_id):
            self._commit_run(run_id)
            with self._read() as db:
                latest = one(
                    db.execute("SELECT max(seq) FROM checkpoints WHERE run_id=?", (run_id,))
                )
                if latest is None:
                    raise RunNotFoundError(run_id)
                if step is not None or seq is not None:
                    latest = self._address(db, run_id, step, seq)
                number = self._int(run_id, "a checkpoint's seq", latest)
                data = self._rebuild(db, run_id, number)
        seq = number
        data["seq"] = seq
        try:
            return RunSnapshot.from_dict(data)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StoreCorruptError(
                f"{self.path}: run '{run_id}' does not decode to a snapshot "
                f"({type(exc).__name__}: {exc}); restore the database from a backup, or "
                f"delete the run (store.delete_run('{run_id}'))",
                run_id=run_id,
                path=self.path,
            ) from exc

    def _address(self, db: Db, run_id: str, step: int | None, seq: int | None) -> Any:
        """The ``seq`` that ``step`` and/or ``seq`` address (``select_seq``); one indexed read."""
        if isinstance(seq, int) and not isinstance(seq, bool):
            row = db.execute(
                "SELECT seq, step FROM checkpoints WHERE run_id=? AND seq=?", (run_id, seq)
            ).fetchone()
            if row is not None and (step is None or row[1] == step):
                return row[0]
        elif seq is None and isinstance(step, int) and not isinstance(step, bool):
            found = one(
                db.execute(
                    "SELECT max(seq) FROM checkpoints WHERE run_id=? AND step=?", (run_id, step)
                )
            )
            if found is not None:
                return found
        entries = [(info.seq or 0, info) for info in self._history(db, run_id)]
        return select_seq(run_id, entries, step, seq)  # raises: not found, or a bad argument

    def _history(self, db: Db, run_id: str) -> list[CheckpointInfo]:
        out = []
        for seq, step, wave, status, node, ts in db.execute(
            "SELECT seq, step, wave, status, node, ts FROM checkpoints WHERE run_id=? ORDER BY seq",
            (run_id,),
        ).fetchall():
            if not (
                type(step) is int
                and type(wave) is int
                and type(status) is str
                and (node is None or type(node) is str)
                and (ts is None or type(ts) is str)
            ):
                raise self._corrupt(
                    run_id,
                    f"checkpoint {seq!r} holds step={step!r}, wave={wave!r}, status={status!r}, "
                    f"node={node!r}, ts={ts!r}",
                )
            out.append(CheckpointInfo(step, wave, status, node, ts, seq))
        return out

    def history(self, run_id: str) -> list[CheckpointInfo]:
        """The run's checkpoints, oldest first (one consistent read)."""
        with _Faults(self, run_id):
            self._commit_run(run_id)
            with self._read() as db:
                out = self._history(db, run_id)
        if not out:
            raise RunNotFoundError(run_id)
        return out

    def events(self, run_id: str) -> list[Event]:
        """The run's event log, oldest first (checkpoint events carry only their step)."""
        with _Faults(self, run_id):
            self._commit_run(run_id)
            with self._read() as db:
                rows = db.execute(self._EVENTS_QUERY, (run_id,)).fetchall()
                if (
                    not rows
                    and db.execute("SELECT 1 FROM runs WHERE run_id=?", (run_id,)).fetchone()
                    is None
                ):
                    raise RunNotFoundError(run_id)
        try:
            # A row holds one event line, a checkpoint's lines joined by newlines (SQLite
            # schema 1), or a compact array of a commit's events (SQLite schema 2).
            return [event for _, body in rows for event in decode_event_rows(run_id, body)]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StoreCorruptError(
                f"{self.path}: an event of run '{run_id}' cannot be decoded ({exc}); restore "
                "the database from a backup, or delete the run",
                run_id=run_id,
                path=self.path,
            ) from exc

    def latest_checkpoint(self, run_id: str) -> int | None:
        """The ``seq`` of the run's latest checkpoint; None when the store has none."""
        with _Faults(self, run_id):
            self._commit_run(run_id)
            with self._query() as db:
                seq = one(db.execute("SELECT max(seq) FROM checkpoints WHERE run_id=?", (run_id,)))
        return None if seq is None else self._int(run_id, "the latest checkpoint's seq", seq)

    def latest_step(self, run_id: str) -> int | None:
        """The step of the run's latest checkpoint; None when the store has none."""
        with _Faults(self, run_id):
            self._commit_run(run_id)
            with self._query() as db:
                row = db.execute(
                    "SELECT step FROM checkpoints WHERE run_id=? ORDER BY seq DESC LIMIT 1",
                    (run_id,),
                ).fetchone()
        return None if row is None else self._int(run_id, "the latest checkpoint's step", row[0])

    def run_status(self, run_id: str) -> str | None:
        """The stored run's status; None when the store does not hold the run."""
        with _Faults(self, run_id):
            self._commit_run(run_id)
            with self._query() as db:
                row = db.execute("SELECT status FROM runs WHERE run_id=?", (run_id,)).fetchone()
        if row is None:
            return None
        if type(row[0]) is not str:
            raise self._corrupt(run_id, f"runs.status is {row[0]!r}, not a string")
        return row[0]

    def list_metadata(
        self, workflow_name: str | None = None, status: str | None = None
    ) -> list[RunMetadata]:
        """Summaries of the stored runs, by run id; a run whose row does not decode is
        skipped and reported (``on_report``, else the ``zeroflow.stores`` logger)."""
        where, args = [], []
        if workflow_name is not None:
            where.append("r.workflow_name=?")
            args.append(workflow_name)
        if status is not None:
            where.append("r.status=?")
            args.append(status)
        # The summary row is written at full saves and folds (see ``_SUMMARY``).
        query = _SUMMARY
        if where:
            query += " WHERE " + " AND ".join(where)
        with _Faults(self, None):
            self.flush()
            with self._query() as db:
                rows = db.execute(query + " ORDER BY r.run_id", args).fetchall()
        return self._summaries(rows)

    def query_runs(self, query: RunQuery) -> RunPage:
        """One page of summaries, newest update first (``RunQueryStore``): the filters and
        the order run on the ``runs`` indexes; only the page's rows are joined."""
        where: list[str] = []
        args: list[Any] = []
        if query.workflow_name is not None:
            where.append("workflow_name=?")
            args.append(query.workflow_name)
        if query.statuses:
            where.append(f"status IN ({', '.join('?' * len(query.statuses))})")
            args.extend(query.statuses)
        if query.run_id_prefix:
            prefix = query.run_id_prefix
            where.append("substr(run_id, 1, ?)=?")
            args.extend((len(prefix), prefix))
            if self._BINARY_TEXT_ORDER:  # the same runs, found by a range of the primary key
                where.append("run_id>=? AND run_id<?")
                args.extend((prefix, prefix + "\U0010ffff"))
        if query.updated_before is not None:
            # The summary row lags a running run's progress (it is written at full saves,
            # and every pause and ending is one), and a checkpoint is never older than it:
            # the row's index picks the candidates; a running one's latest checkpoint (a
            # primary-key lookup) decides.
            where.append("updated_at<?")
            where.append(
                "(status<>'running' OR coalesce((SELECT c.ts FROM checkpoints c "
                "WHERE c.run_id=runs.run_id ORDER BY c.seq DESC LIMIT 1), updated_at)<?)"
            )
            args.extend((query.updated_before, query.updated_before))
        cond = " WHERE " + " AND ".join(where) if where else ""
        order = " ORDER BY {0}updated_at DESC, {0}run_id DESC"
        page = f"SELECT run_id FROM runs{cond}{order.format('')} LIMIT ? OFFSET ?"
        with _Faults(self, None):
            self.flush()
            with self._read() as db:
                total = int(one(db.execute(f"SELECT count(*) FROM runs{cond}", args)))
                rows = db.execute(
                    f"{_SUMMARY} WHERE r.run_id IN ({page}){order.format('r.')}",
                    [*args, query.limit, query.offset],
                ).fetchall()
        return RunPage(tuple(self._summaries(rows)), total)

    def _summaries(self, rows: Sequence[Sequence[Any]]) -> list[RunMetadata]:
        """Rows of ``_SUMMARY`` as summaries; a row that does not decode is skipped (reported)."""
        out = []
        for row in rows:
            meta = self._metadata(row[:8])
            if meta is not None:
                out.append(_current(meta, row[8], row[9], row[10]))
        return out

    def run_summaries(
        self, workflow_name: str | None = None, since: str | datetime | None = None
    ) -> list[RunSummary]:
        """Each run's summary, by run id, from its ``runs`` row alone (its ``stats`` column).

        A row written before the column existed has ``nodes`` None; a row that
        does not decode is skipped and reported, damaged figures are reported
        and read as None.
        """
        after = since_key(since)
        where, args = [], []
        if workflow_name is not None:
            where.append("workflow_name=?")
            args.append(workflow_name)
        if after is not None:
            where.append("started_at>=?")
            args.append(after)
        query = "SELECT run_id, workflow_name, status, started_at, updated_at, stats FROM runs"
        if where:
            query += " WHERE " + " AND ".join(where)
        with _Faults(self, None):
            self.flush()
            with self._query() as db:
                rows = db.execute(query + " ORDER BY run_id", args).fetchall()
        out = []
        for run_id, name, st, started, updated, stats in rows:
            if not all(type(v) is str for v in (run_id, name, st)) or not all(
                v is None or type(v) is str for v in (started, updated, stats)
            ):
                self._report(run_id, "its runs row does not decode (a column is not text)")
                continue
            try:
                nodes = None if stats is None else decode_nodes(json.loads(stats))
            except (ValueError, RecursionError) as exc:
                self._report(run_id, f"its runs.stats does not decode: {exc}")
                nodes = None
            out.append(RunSummary(run_id, name, st, started, updated, nodes))
        return out

    def due_runs(
        self, now: float, limit: int | None = None, *, workflow_name: str | None = None
    ) -> list[RunMetadata]:
        """Waiting runs whose earliest timer is due by ``now`` (``DueStore``): one range
        scan of the partial index ``runs_due``, earliest first."""
        now = check_due_query(now, limit)
        query = (
            "SELECT r.run_id, r.workflow_name, r.workflow_hash, r.status, r.started_at, "
            "r.updated_at, r.current_node, r.last_error, s.body FROM runs r "
            "LEFT JOIN snapshots s ON s.run_id=r.run_id AND s.seq=r.base_seq "
            "WHERE r.due_at IS NOT NULL AND r.due_at<=?"
        )
        args: list[Any] = [now]
        if workflow_name is not None:
            query += " AND r.workflow_name=?"
            args.append(workflow_name)
        query += " ORDER BY r.due_at, r.run_id"
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        with _Faults(self, None):
            self.flush()
            with self._query() as db:
                rows = db.execute(query, args).fetchall()
        out = []
        for row in rows:
            meta = self._metadata(row[:8])
            if meta is not None and meta.status == "waiting":
                out.append(_current(meta, None, None, row[8]))
        return out

    def _metadata(self, row: Sequence[Any]) -> RunMetadata | None:
        """A ``runs`` row as a ``RunMetadata``; None (reported) when it does not decode."""
        run_id, name, wf_hash, st, started, updated, node, err = row
        try:
            for column, value, optional in (
                ("run_id", run_id, False),
                ("workflow_name", name, False),
                ("workflow_hash", wf_hash, False),
                ("status", st, False),
                ("started_at", started, True),
                ("updated_at", updated, True),
                ("current_node", node, True),
                ("last_error", err, True),
            ):
                if not (type(value) is str or (optional and value is None)):
                    raise TypeError(f"{column} is {value!r}, not a string")
            error = None
            if err is not None:
                try:
                    decoded = json.loads(err)
                    if not isinstance(decoded, dict):
                        raise TypeError(f"a JSON {type(decoded).__name__}, not an object")
                    error = WorkflowError.from_dict(decoded)
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    raise ValueError(f"last_error does not decode ({exc})") from exc
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self._report(run_id, f"its runs row does not decode: {exc}")
            return None
        return RunMetadata(
            workflow_name=name,
            workflow_hash=wf_hash,
            status=st,
            started_at=started,
            updated_at=updated,
            current_node=node,
            waiting=st == "waiting",
            last_error=error,
            run_id=run_id,
        )

    # ------------------------------------------------------------------ leases

    def _adopt(self, run_id: str, owner: str) -> SqlWriter:
        """After ``owner`` took the lease: commit this instance's old writer, start a fresh one.

        Call with ``_lock`` held.
        """
        old = self._writers.pop(run_id, None)
        if old is not None:
            self._commit(run_id, old)
        w = self._load_writer(run_id)
        w.owner = owner
        self._writers[run_id] = w
        return w

    def acquire_lease(self, run_id: str, owner: str) -> int:
        """Take the run for ``owner``; the fencing token, larger than any issued before.

        A failure after the lease was taken clears it again, or (when even that
        fails) leaves it free for every later caller in this process.
        """
        check_run_id(run_id)
        holder = encode_compact(process_holder())
        with self._lock, _Faults(self, run_id):
            if _ABANDONED:
                self._retry_abandoned()
            with self._tx() as db:
                # The row first, so that racing acquirers queue on its lock (Postgres).
                db.execute(
                    "INSERT INTO leases (run_id, owner, expires_at, token, holder) "
                    "VALUES (?, NULL, 0, 0, NULL) ON CONFLICT (run_id) DO NOTHING",
                    (run_id,),
                )
                now_owner, expires, token, who, now = self._lease_state(db, run_id)
                if lease_verdict(now_owner, expires, owner, now, who) == "taken":
                    raise locked_error(run_id, now_owner, expires - now)
                token += 1
                db.execute(
                    "UPDATE leases SET owner=?, expires_at=?, token=?, holder=? WHERE run_id=?",
                    (owner, now + self.lease_ttl_seconds, token, holder, run_id),
                )
            try:
                self._adopt(run_id, owner)
            except BaseException:
                self._give_up(run_id, owner)  # a failed acquire leaves no lease behind
                raise
        return token

    def renew_lease(self, run_id: str, owner: str, token: int | None = None) -> None:
        """Extend ``owner``'s lease; never acquires: ``RunLockedError`` once it is not theirs.

        An expired lease nobody took since is still ``owner``'s to renew.
        """
        with self._lock, _Faults(self, run_id), self._tx() as db:
            if not self._extend_lease(db, run_id, owner, token):
                raise self._lost(db, run_id, owner, token)

    def _extend_lease(self, db: Db, run_id: str, owner: str, token: int | None) -> bool:
        """Move the lease's expiry on if ``owner`` (with ``token``) holds it; True if it did."""
        expires = self._lease_now(db) + self.lease_ttl_seconds
        if token is None:
            rows = db.execute(
                "UPDATE leases SET expires_at=? WHERE run_id=? AND owner=?",
                (expires, run_id, owner),
            )
        else:
            rows = db.execute(
                "UPDATE leases SET expires_at=? WHERE run_id=? AND owner=? AND token=?",
                (expires, run_id, owner, token),
            )
        return rows.rowcount > 0

    def _lost(self, db: Db, run_id: str, owner: str, token: int | None) -> Exception:
        """The error for ``owner`` (with ``token``) whose lease is no longer current."""
        now_owner, _, now_token, _, _ = self._lease_state(db, run_id)
        if now_owner is None:
            why = "the run has no lease now: it was released or broken"
        elif now_owner != owner:
            why = ""
        else:
            why = f"fencing token {token} is not the current {now_token}"
        return lost_lease_error(run_id, owner, now_owner if now_owner != owner else None, why)

    def _clear_lease(self, run_id: str, owner: str | None) -> int:
        """Free the run (of ``owner`` only, when given), keeping its token; rows changed."""
        with _Faults(self, run_id), self._tx() as db:
            if owner is None:
                rows = db.execute(
                    "UPDATE leases SET owner=NULL, expires_at=0, holder=NULL "
                    "WHERE run_id=? AND owner IS NOT NULL",
                    (run_id,),
                )
            else:
                rows = db.execute(
                    "UPDATE leases SET owner=NULL, expires_at=0, holder=NULL "
                    "WHERE run_id=? AND owner=?",
                    (run_id, owner),
                )
            return rows.rowcount

    def _give_up(self, run_id: str, owner: str) -> None:
        """Clear ``owner``'s lease; if the database refuses (full, locked, gone), remember it.

        A remembered lease is free for every caller in this process at once, and
        cleared in the database by this store's next ``acquire_lease`` or ``close``.
        """
        try:
            self._clear_lease(run_id, owner)
        except Exception as exc:
            _ABANDONED[owner] = (self.path, run_id)
            _LOG.warning(
                "%s: run %r: the lease of %s could not be cleared (%s); it is free for this "
                "process now, and lapses for others in %.0f s",
                self.path,
                run_id,
                owner[:8],
                exc,
                self.lease_ttl_seconds,
            )

    def _retry_abandoned(self) -> None:
        """Clear in the database the leases of this store that this process gave up."""
        for owner, (path, run_id) in list(_ABANDONED.items()):
            if path != self.path:
                continue
            try:
                self._clear_lease(run_id, owner)
            except Exception:
                return  # still failing: try again at the next opportunity
            _ABANDONED.pop(owner, None)

    def release_lease(self, run_id: str, owner: str) -> None:
        """Write what ``owner`` has pending, then free the run (a no-op if not ``owner``'s).

        A failed write raises ``StoreError``; the lease is freed even then.
        """
        with self._lock, _Faults(self, run_id):
            w = self._writers.get(run_id)
            try:
                if w is not None and w.owner == owner:
                    try:
                        self._commit(run_id, w)
                    finally:
                        del self._writers[run_id]
            finally:
                self._give_up(run_id, owner)  # even when the last write failed

    def lease_info(self, run_id: str) -> LeaseInfo | None:
        """Who holds the run's lease (read only); None when the run never had one."""
        with _Faults(self, run_id), self._query() as db:
            row = db.execute("SELECT 1 FROM leases WHERE run_id=?", (run_id,)).fetchone()
            if row is None:
                return None
            owner, expires, token, who, now = self._lease_state(db, run_id)
        return lease_info_of(owner, expires, token, who, now)

    def break_lease(self, run_id: str) -> bool:
        """Drop whatever lease the run has (an operator's tool); True if there was one."""
        return self._clear_lease(run_id, None) > 0

    def delete_run(self, run_id: str, *, owner: str | None = None) -> bool:
        """Delete the run; ``RunLockedError`` if a live lease not held by ``owner`` covers it."""
        with self._lock, _Faults(self, run_id):
            with self._tx() as db:
                holder, expires, _, who, now = self._lease_state(db, run_id, lock=True)
                if lease_verdict(holder, expires, owner, now, who) == "taken":
                    raise locked_error(run_id, holder, expires - now)
                existed = self._delete(db, run_id)[0]
                if owner is None:
                    # The row (and its token) stays: a later lease's token must still grow.
                    db.execute(
                        "UPDATE leases SET owner=NULL, expires_at=0, holder=NULL WHERE run_id=?",
                        (run_id,),
                    )
            w = self._writers.pop(run_id, None)
            if w is not None and w.owner == owner and owner is not None:
                fresh = SqlWriter()
                fresh.owner = owner
                self._writers[run_id] = fresh
            return existed

    def _lease_state(
        self, db: Db, run_id: str, *, lock: bool = False
    ) -> tuple[str | None, float, int, dict[str, Any] | None, float]:
        """(owner, expires_at, token, holder process, now) of the run's lease row.

        ``(None, 0, 0, None, now)`` when the run never had a lease. An expiry
        that is not a finite number (NULL, text, NaN, infinity) or lies absurdly
        far ahead (``LEASE_HORIZON_SECONDS``) reads as NaN, which counts as
        expired; a lease this process gave up reads as free.
        """
        now = self._lease_now(db)
        row = db.execute(
            "SELECT owner, expires_at, token, holder FROM leases WHERE run_id=?"
            + (self._FOR_UPDATE if lock else ""),
            (run_id,),
        ).fetchone()
        if row is None:
            return None, 0.0, 0, None, now
        owner, expires, token, holder = row
        if owner is not None and _ABANDONED.get(str(owner), (None, None))[1] == run_id:
            owner = None
        if not (
            type(expires) in (int, float)
            and math.isfinite(expires)
            and expires - now <= max(LEASE_HORIZON_SECONDS, self.lease_ttl_seconds)
        ):
            expires = math.nan
        if token is None:
            token = 0
        elif type(token) is not int or token < 0:
            raise self._corrupt(
                run_id,
                f"its lease row holds the fencing token {token!r}, not a whole number; set "
                "leases.token to the largest token ever issued for it",
            )
        who: Any = None
        if holder is not None:
            try:
                who = json.loads(holder)
            except (ValueError, TypeError):
                who = None
        return (
            None if owner is None else str(owner),
            float(expires),
            token,
            who if isinstance(who, dict) else None,
            now,
        )

    def _delete(self, db: Db, run_id: str) -> tuple[bool, int]:
        """Delete the run's rows (not its lease row); (it existed, bytes freed estimate)."""
        freed = 0
        for table in ("checkpoints", "snapshots", "events"):
            freed += self._delete_where(db, table, "run_id=?", (run_id,))
        rows = db.execute("DELETE FROM runs WHERE run_id=?", (run_id,)).rowcount
        return rows > 0, freed

    # ------------------------------------------------------------------ history

    def prune(
        self,
        keep_last: int | None = None,
        older_than: float | timedelta | None = None,
        statuses: Iterable[str] = FINISHED_STATUSES,
        *,
        keep_events: bool = False,
    ) -> PruneResult:
        """Trim histories to ``keep_last`` checkpoints, delete old runs in ``statuses``.

        Trimming drops the events logged before a run's first kept checkpoint
        unless ``keep_events``. Runs being driven are skipped; a run whose rows
        cannot be read is skipped and reported (``on_report``). The space is
        given back to the file system where the backend can (``bytes_freed``).
        """
        check_keep_last(keep_last)
        wanted = sorted(status_set(statuses))
        seconds = None if older_than is None else to_seconds(older_than)
        deleted: list[str] = []
        trimmed: dict[str, int] = {}
        dropped: dict[str, int] = {}
        estimate = 0
        with _Faults(self, None):
            self.flush()
            before = self._space()
            if seconds is not None and wanted:
                with self._lock:
                    with self._tx() as db:
                        malformed = db.execute(self._MALFORMED_RUNS).fetchall()
                        for (run_id,) in self._expired(db, wanted, seconds):
                            estimate += self._delete(db, run_id)[1]
                            deleted.append(run_id)
                    for run_id in deleted:
                        self._writers.pop(run_id, None)
                for run_id, st, saved_at in malformed:
                    self._report(
                        run_id,
                        f"prune(older_than=) cannot tell its age: its runs row holds "
                        f"status={st!r}, saved_at={saved_at!r}; the run was kept",
                    )
            if keep_last is not None:
                with self._query() as db:
                    candidates = db.execute(
                        "SELECT run_id, count(*) FROM checkpoints GROUP BY run_id "
                        "HAVING count(*)>?",
                        (keep_last,),
                    ).fetchall()
                for run_id, count in candidates:
                    with self._lock:
                        try:
                            with self._tx() as db:
                                holder, expires, _, who, now = self._lease_state(
                                    db, run_id, lock=True
                                )
                                if lease_verdict(holder, expires, None, now, who) != "free":
                                    continue
                                events, freed = self._trim(db, run_id, keep_last, keep_events)
                        except StoreCorruptError as exc:
                            self._report(run_id, f"prune(keep_last=) skipped it: {exc}")
                            continue
                        estimate += freed
                        trimmed[run_id] = int(count) - keep_last
                        if events:
                            dropped[run_id] = events
                        self._writers.pop(run_id, None)
            freed_bytes = 0
            if deleted or trimmed:
                with self._lock:
                    freed_bytes = self._reclaim(before, estimate)
        return PruneResult(tuple(sorted(deleted)), trimmed, dropped, freed_bytes)

    def _trim(self, db: Db, run_id: str, keep_last: int, keep_events: bool) -> tuple[int, int]:
        """Drop all but the run's last ``keep_last`` checkpoints; the oldest kept becomes full.

        Returns (events dropped, bytes freed estimate).
        """
        keep = self._int(
            run_id,
            "a checkpoint's seq",
            one(
                db.execute(
                    "SELECT seq FROM checkpoints WHERE run_id=? ORDER BY seq DESC LIMIT 1 OFFSET ?",
                    (run_id, keep_last - 1),
                )
            ),
        )
        has_full = db.execute(
            "SELECT 1 FROM snapshots WHERE run_id=? AND seq=?", (run_id, keep)
        ).fetchone()
        if has_full is None:
            text = encode_compact(self._rebuild(db, run_id, keep))
            db.execute("INSERT INTO snapshots VALUES (?, ?, ?)", (run_id, keep, text))
            db.execute(
                f"UPDATE runs SET base_seq={self._GREATEST}(base_seq, ?) WHERE run_id=?",
                (keep, run_id),
            )
        if keep_events:
            self._keep_events(db, run_id, keep)
            events = 0
        else:
            events = self._drop_events(db, run_id, keep)
        freed = self._delete_where(db, "checkpoints", "run_id=? AND seq<?", (run_id, keep))
        freed += self._delete_where(db, "snapshots", "run_id=? AND seq<?", (run_id, keep))
        return events, freed


def _stats_text(data: dict[str, Any]) -> str:
    """The ``runs.stats`` of a snapshot dict: its audit trail's per-node figures, compact."""
    trail = data.get("audit_trail")
    return encode_compact(
        encode_nodes(node_stats_of_dicts(trail if isinstance(trail, list) else ()))
    )


_SUMMARY = (
    "SELECT r.run_id, r.workflow_name, r.workflow_hash, r.status, r.started_at, "
    "r.updated_at, r.current_node, r.last_error, c.node, c.ts, s.body FROM runs r "
    "LEFT JOIN checkpoints c ON c.run_id=r.run_id AND c.seq="
    "(SELECT max(seq) FROM checkpoints WHERE run_id=r.run_id) "
    "LEFT JOIN snapshots s ON r.status='waiting' AND s.run_id=r.run_id "
    "AND s.seq=r.base_seq"
)
"""A run summary's columns: its ``runs`` row, brought up to date by its latest checkpoint
(one primary-key lookup) and, for a waiting run, its latest full save (what it waits on)."""


def _current_node(data: dict[str, Any]) -> Any:
    """The ``runs.current_node`` of a snapshot dict (``waiting_now``)."""
    return waiting_now(data)[0] if data.get("status") == "waiting" else data.get("last_node")


def _current(meta: RunMetadata, node: Any, ts: Any, body: Any) -> RunMetadata:
    """``meta`` (a ``runs`` row) brought up to the latest checkpoint (``node``, ``ts``), and
    for a waiting run the nodes its snapshot ``body`` waits on."""
    if meta.status != "waiting":
        if type(node) is str or (node is None and type(ts) is str):
            return replace(
                meta, current_node=node, updated_at=ts if type(ts) is str else meta.updated_at
            )
        return meta
    try:
        data = json.loads(body) if type(body) is str else None
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict) or data.get("status") != "waiting":
        return meta
    current, waiting = waiting_now(data)
    return replace(
        meta,
        current_node=current if type(current) is str else None,
        waiting_nodes=waiting,
        **timers_of(data),
    )
