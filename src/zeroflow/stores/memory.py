"""``InMemoryWorkflowStore``: runs kept in this process, as independent copies.

Nothing is encoded on the way in. A checkpoint is kept as the engine's own
kind of record, made private at the call: a step's ``StepDelta`` with its
state values copied into plain data (the engine's frozen values may be merged
into later), its lists as tuples and its records shared (they are immutable);
an event as a ``(step, wave, node, kind, ts, data)`` tuple whose data is a
private copy, or a marker for the engine's usual shapes (``{"step": n}``,
``{"node": n}``, ``{"run_id": r, "status": s}``), rebuilt when read. What a
reader gets (``load_snapshot``, ``events``, ``history``, ``list_metadata``) is
built from those records at the call, so it never aliases them. The latest
snapshot is brought up to date when someone asks for it, not at every step.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .._constants import EVENT_CHECKPOINT, STATUS_WAITING
from .._errors import RunNotFoundError
from .._fastinit import maker
from .._frozen import FrozenDict, FrozenList
from .._journal import StepDelta, apply_delta
from .._models import Event, RunMetadata, RunSnapshot
from .._stats import RunSummary, node_stats, since_key
from .._store import (
    DEFAULT_LEASE_TTL_SECONDS,
    FINISHED_STATUSES,
    CheckpointInfo,
    CheckpointWrite,
    PruneResult,
)
from .._store_views import LeaseInfo
from .._timers import due_at
from ._common import (
    check_due_query,
    check_holds,
    check_keep_last,
    check_run_id,
    encode_compact,
    lease_info_of,
    lease_verdict,
    locked_error,
    metadata_of,
    moved_on_error,
    process_holder,
    reset_after_fork,
    select_seq,
    status_set,
    to_seconds,
)

__all__ = ["InMemoryWorkflowStore"]

_SCALARS = frozenset({str, int, float, bool, type(None)})
_STR = frozenset({str})


class _NotPlain(Exception):
    """A dict key that is not a ``str``: the value takes the JSON round trip instead."""


def _key(key: object) -> str:
    raise _NotPlain


def _keep(value: Any) -> Any:
    """The stored form of JSON data: a private copy, with arrays as tuples.

    What a JSON round trip would give back, except that arrays are tuples:
    nothing kept can then be changed in place, and a stored value holds no
    list or object the garbage collector has to keep scanning. ``dict`` /
    ``list`` (frozen or not) with ``str`` keys and exact scalar types are
    copied directly; anything else (non-string keys, an ``IntEnum``, a view)
    takes the round trip through JSON text, which also refuses what JSON
    cannot hold with ``TypeError``. ``_plain`` turns it back into plain data.
    """
    tp = type(value)
    if tp is dict or tp is FrozenDict:
        if _STR.issuperset(map(type, value)) and _SCALARS.issuperset(map(type, value.values())):
            return dict(value)  # flat (the usual update): copied in C
        try:
            return {
                (k if type(k) is str else _key(k)): (v if type(v) in _SCALARS else _keep(v))
                for k, v in value.items()
            }
        except _NotPlain:
            return _keep(json.loads(encode_compact(value)))
    if tp is list or tp is FrozenList or tp is tuple:
        return tuple([v if type(v) in _SCALARS else _keep(v) for v in value])
    if tp in _SCALARS:
        return value
    if isinstance(value, dict):
        return _keep(dict(value))
    if isinstance(value, list | tuple):
        return _keep(list(value))
    return _keep(json.loads(encode_compact(value)))


def _plain(value: Any) -> Any:
    """A plain, independent ``dict`` / ``list`` copy of data kept by ``_keep``."""
    tp = type(value)
    if tp is dict:
        return {k: (v if type(v) in _SCALARS else _plain(v)) for k, v in value.items()}
    if tp is tuple:
        return [v if type(v) in _SCALARS else _plain(v) for v in value]
    return value


_Raw = tuple[Any, ...]
"""A kept step delta, one tuple: ``_RAW_FIELDS`` in order, arrays as tuples, values kept."""
_RAW_FIELDS = (
    "step",
    "wave",
    "status",
    "updated_at",
    "ready_now",
    "ready_next_wave",
    "arrivals",  # ((node, (arrived, ...)), ...)
    "executed_this_wave",
    "last_node",
    "waiting_prompt",
    "last_error",
    "trace",
    "tags",
    "records",
    "ops",  # ((kind, path, kept value), ...)
    "extra",
)
_STEP, _WAVE, _STATUS, _UPDATED, _NODE, _RECORDS = 0, 1, 2, 3, 8, 13


def _keep_delta(d: StepDelta) -> _Raw:
    """A private copy of ``d`` that the caller's later changes cannot reach.

    State values and ``extra`` are copied (``_keep``): the engine's frozen
    values may be merged into later. Records and errors are immutable and
    shared, as ``RunSnapshot.copy`` shares them.
    """
    arrivals = d.arrivals
    ops = d.ops
    extra = d.extra
    return (
        d.step,
        d.wave,
        d.status,
        d.updated_at,
        tuple(d.ready_now),
        tuple(d.ready_next_wave),
        tuple([(k, tuple(v)) for k, v in arrivals.items()]) if arrivals else (),
        tuple(d.executed_this_wave),
        d.last_node,
        d.waiting_prompt,
        d.last_error,
        tuple(d.trace),
        tuple(d.tags),
        tuple(d.records),
        tuple(
            [
                (kind, tuple(path), value if type(value) in _SCALARS else _keep(value))
                for kind, path, value in ops
            ]
        )
        if ops
        else (),
        None if extra is None else _keep(extra),
    )


def _delta_of(run_id: str, raw: _Raw) -> StepDelta:
    """The ``StepDelta`` a kept one stands for, with fresh plain values (for ``apply_delta``)."""
    (step, wave, status, updated, ready, ready_next, arrivals, executed) = raw[:8]
    (node, prompt, error, trace, tags, records, ops, extra) = raw[8:]
    return StepDelta(
        run_id,
        step,
        wave,
        status,
        updated,
        list(ready),
        list(ready_next),
        {k: list(v) for k, v in arrivals},
        list(executed),
        node,
        prompt,
        error,
        trace,
        tags,
        records,
        [(kind, path, _plain(value)) for kind, path, value in ops],
        None if extra is None else _plain(extra),
    )


_MARK = object()
"""The first item of a marker standing for an event's data in one of the engine's shapes."""
_AT_STEP = (_MARK, "step")
"""``{"step": <the event's step>}`` (every ``checkpoint`` event is stored so)."""
_AT_NODE = (_MARK, "node")
"""``{"node": <the event's node>}``."""
_saved_markers: dict[str, tuple[Any, ...]] = {}
"""``{"run_id": <the run>, "status": s}`` as ``(_MARK, "saved", s)``, shared per status."""
Row = tuple[int, int, "str | None", str, str, Any]
"""A kept event: ``(step, wave, node, kind, ts, kept data or a marker)``; no run id."""


def _saved(status: str) -> tuple[Any, ...]:
    marker = _saved_markers.get(status)
    if marker is None:
        marker = (_MARK, "saved", status)
        if len(_saved_markers) < 64:  # the engine's few statuses; anything else is not cached
            _saved_markers[status] = marker
    return marker


_end_markers: dict[tuple[str, ...], tuple[Any, ...]] = {}
"""``{"node": <the event's node>, "outputs": [...]}`` as ``(_MARK, "end", outputs)``, shared."""


def _ended(outputs: tuple[str, ...]) -> tuple[Any, ...]:
    marker = _end_markers.get(outputs)
    if marker is None:
        marker = (_MARK, "end", outputs)
        if len(_end_markers) < 256:  # a workflow's few output lists; others are not cached
            _end_markers[outputs] = marker
    return marker


def _pack(run_id: str, events: Iterable[Event]) -> list[Row]:
    """The stored form of ``events``: their fields and private copies of their data.

    The engine's usual payloads (``{"step": n}``, ``{"node": n}``, ``{"node":
    n, "outputs": [...]}``, ``{"run_id": r, "status": s}``) become markers
    that name what is not already in the row; any other payload is kept with
    ``_keep``. A ``checkpoint`` event keeps only its step, as in every store.
    """
    rows: list[Row] = []
    add = rows.append
    for event in events:
        data: Any = event.data
        step = event.step
        kept: Any = None
        if type(data) is dict:
            if "state" in data and event.kind == EVENT_CHECKPOINT:
                kept = _AT_STEP if type(step) is int else {"step": step}
            elif len(data) == 1:
                if "step" in data:
                    value = data["step"]
                    if value == step and type(value) is int and type(step) is int:
                        kept = _AT_STEP
                elif "node" in data:
                    value = data["node"]
                    if value == event.node and type(value) is str:
                        kept = _AT_NODE
            elif len(data) == 2:
                first, second = data
                if first == "run_id" and second == "status":
                    value, status = data[first], data[second]
                    if value == run_id and type(value) is str and type(status) is str:
                        kept = _saved_markers.get(status) or _saved(status)
                elif first == "node" and second == "outputs":
                    value, outputs = data[first], data[second]
                    if (
                        value == event.node
                        and type(value) is str
                        and type(outputs) is list
                        and _STR.issuperset(map(type, outputs))
                    ):
                        ends = tuple(outputs)
                        kept = _end_markers.get(ends) or _ended(ends)
        elif event.kind == EVENT_CHECKPOINT and isinstance(data, dict) and "state" in data:
            kept = {"step": step}
        if kept is None:
            kept = _keep(data)
        add((step, event.wave, event.node, event.kind, event.ts, kept))
    return rows


def _data_of(run_id: str, row: Row) -> Any:
    """A fresh, plain copy of a stored event's data."""
    kept = row[5]
    if type(kept) is tuple and kept and kept[0] is _MARK:
        if kept is _AT_STEP:
            return {"step": row[0]}
        if kept is _AT_NODE:
            return {"node": row[2]}
        if kept[1] == "end":
            return {"node": row[2], "outputs": list(kept[2])}
        return {"run_id": run_id, "status": kept[2]}
    return _plain(kept)


def _unpack(run_id: str, row: Row) -> Event:
    step, wave, node, kind, ts, _ = row
    return Event(run_id, step, wave, node, kind, ts, _data_of(run_id, row))


@dataclass(slots=True)
class _Entry:
    """One checkpoint: a full snapshot (private), or a step delta (kept, ``_keep_delta``)."""

    seq: int
    full: RunSnapshot | None
    raw: _Raw | None
    events_from: int
    """How many events the run's log held before this checkpoint's own events."""

    def info(self) -> CheckpointInfo:
        full, raw = self.full, self.raw
        if full is not None:
            return CheckpointInfo(
                full.step, full.wave, full.status, full.last_node, full.updated_at, self.seq
            )
        assert raw is not None
        return CheckpointInfo(
            raw[_STEP], raw[_WAVE], raw[_STATUS], raw[_NODE], raw[_UPDATED], self.seq
        )


_entry = maker(_Entry)  # one per checkpoint: without the class call


@dataclass(slots=True)
class _Run:
    latest: RunSnapshot
    """The run as of checkpoint ``applied``; the deltas after it are applied when read."""
    saved_at: float
    seq: int = 0
    """The run's latest checkpoint (1 for the first), as ``latest_checkpoint`` returns it."""
    applied: int = 0
    shared: bool = True
    """``latest`` is a history entry's full snapshot itself: copy it before applying a delta."""
    step: int = 0
    status: str = ""
    history: list[_Entry] = field(default_factory=list)

    def current(self) -> RunSnapshot:
        """``latest`` brought up to checkpoint ``seq`` (the store's own; holds ``_lock``)."""
        behind = self.seq - self.applied
        if behind:
            snap = self.latest
            if self.shared:
                snap = self.latest = snap.copy()
                self.shared = False
            run_id = snap.run_id
            for entry in self.history[-behind:]:
                assert entry.raw is not None  # a full entry resets ``applied``
                apply_delta(snap, _delta_of(run_id, entry.raw))
            snap.seq = self.applied = self.seq
        return self.latest


@dataclass(slots=True)
class _Lease:
    """A run's lease; kept (owner None) after a release or break so tokens keep growing."""

    owner: str | None
    expires_at: float
    token: int
    holder: dict[str, Any] | None = None

    def verdict(self, owner: str | None, now: float) -> str:
        return lease_verdict(self.owner, self.expires_at, owner, now, who=self.holder)


class InMemoryWorkflowStore:
    """Keeps runs in memory; what a caller holds never aliases what the store holds.

    Each node is applied as a ``StepDelta`` to the stored copy (O(change) per
    node) and kept as history, so ``load_snapshot(run_id, step=N)`` works.
    Leases follow the same rules as the file stores, within this process. Run
    ids follow the same rule as in every store (``check_run_id``): a bad one
    raises ``StoreError`` before anything is kept.
    Thread-safe. ``clock`` (epoch seconds) is injectable for tests.
    """

    durable = False
    """Runs die with the process: the engine skips progress writes only a crash would need."""

    def __init__(
        self,
        *,
        lease_ttl_seconds: float = DEFAULT_LEASE_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.lease_ttl_seconds = float(lease_ttl_seconds)
        self._clock = clock
        self._runs: dict[str, _Run] = {}
        # Per run, its event log: one ``_pack`` row per event, oldest first.
        self._events: dict[str, list[Row]] = {}
        self._leases: dict[str, _Lease] = {}
        # The due index: run id -> when its earliest timer fires (waiting runs only).
        self._due: dict[str, float] = {}
        self._lock = threading.Lock()
        reset_after_fork(self)

    def _forked(self) -> None:
        """In a forked child: a fresh lock (another thread may have held it at the fork)."""
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ writes

    def save_snapshot(self, snapshot: RunSnapshot) -> None:
        """Keep ``snapshot`` as the run's next checkpoint (its ``seq`` is the store's to set)."""
        check_run_id(snapshot.run_id)
        kept = snapshot.copy()
        with self._lock:
            self._save(kept, self._clock())

    def _save(self, kept: RunSnapshot, now: float) -> None:
        """Write a full checkpoint (``kept``: a private copy). Holds ``_lock``."""
        run_id = kept.run_id
        run = self._runs.get(run_id)
        if run is None:
            run = self._runs[run_id] = _Run(kept, now)
        run.seq += 1
        kept.seq = run.applied = run.seq
        run.latest = kept  # shared with the history entry until a delta is applied
        run.shared = True
        run.saved_at = now
        run.step, run.status = kept.step, kept.status
        log = self._events.get(run_id)
        run.history.append(_Entry(run.seq, kept, None, 0 if log is None else len(log)))
        due = due_at(kept.status, kept.ready_now, kept.extra)
        if due is None:
            self._due.pop(run_id, None)
        else:
            self._due[run_id] = due

    def append_step(self, run_id: str, delta: StepDelta) -> bool:
        check_run_id(run_id)
        raw = _keep_delta(delta)
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                raise RunNotFoundError(run_id)
            self._step(run, raw, self._clock(), self._events.get(run_id))
            if run.status != STATUS_WAITING:
                self._due.pop(run_id, None)
        return False  # the latest snapshot is rebuilt in place: nothing to fold

    @staticmethod
    def _step(run: _Run, raw: _Raw, now: float, log: list[Row] | None) -> None:
        """Write one step's checkpoint (``raw``: a kept delta). Holds ``_lock``."""
        run.seq += 1
        run.saved_at = now
        run.step, run.status = raw[_STEP], raw[_STATUS]
        run.history.append(_entry(run.seq, None, raw, 0 if log is None else len(log)))

    def commit(self, run_id: str, owner: str, token: int, write: CheckpointWrite) -> bool:
        """Write one checkpoint and its events while ``owner`` holds lease ``token``.

        ``RunLockedError`` (nothing written) when the lease is no longer
        ``owner``'s with ``token``, or ``write.seq`` does not follow the stored
        run's latest checkpoint. Never asks for a fold (returns False).
        """
        check_run_id(run_id)
        snapshot, delta = write.snapshot, write.delta
        if (snapshot is None) == (delta is None):
            raise ValueError("a CheckpointWrite holds exactly one of snapshot and delta")
        # Private copies first, outside the lock: nothing the caller holds is kept.
        kept = snapshot.copy() if snapshot is not None else None
        raw = _keep_delta(delta) if delta is not None else None
        rows = _pack(run_id, write.events) if write.events else None
        now = self._clock()
        with self._lock:
            lease = self._leases.get(run_id)
            if lease is None or lease.owner != owner or lease.token != token:
                lease = self._check_lease(run_id, owner, token)  # refuses, or a None token
            run = self._runs.get(run_id)
            latest = None if run is None else run.seq
            if write.seq != (latest or 0) + 1:
                raise moved_on_error(run_id, write.seq, latest)
            if kept is not None:
                self._save(kept, now)
            else:
                if run is None:
                    raise RunNotFoundError(run_id)
                assert raw is not None
                self._step(run, raw, now, self._events.get(run_id))
                if run.status != STATUS_WAITING:
                    self._due.pop(run_id, None)
            if rows is not None:
                log = self._events.get(run_id)
                if log is None:
                    self._events[run_id] = rows
                else:
                    log += rows
            lease.expires_at = now + self.lease_ttl_seconds
        return False

    def append_event(self, run_id: str, event: Event) -> None:
        self.append_events(run_id, (event,))

    def append_events(self, run_id: str, events: Sequence[Event]) -> None:
        """Events in order (copies: the caller may reuse what it passed)."""
        check_run_id(run_id)
        if not events:
            return
        rows = _pack(run_id, events)
        with self._lock:
            log = self._events.get(run_id)
            if log is None:
                self._events[run_id] = rows
            else:
                log += rows

    # ------------------------------------------------------------------ reads

    def load_snapshot(
        self, run_id: str, step: int | None = None, *, seq: int | None = None
    ) -> RunSnapshot:
        """The latest snapshot; the last one taken at ``step``; or checkpoint ``seq`` exactly."""
        check_run_id(run_id)
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                raise RunNotFoundError(run_id)
            if step is None and seq is None:
                return run.current().copy()
            entries = [(e.seq, e.info()) for e in run.history]
            return _rebuild(run.history, select_seq(run_id, entries, step, seq))

    def history(self, run_id: str) -> list[CheckpointInfo]:
        """The run's checkpoints, oldest first."""
        check_run_id(run_id)
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                raise RunNotFoundError(run_id)
            return [e.info() for e in run.history]

    def events(self, run_id: str) -> list[Event]:
        """The run's event log, oldest first (checkpoint events carry only their step)."""
        check_run_id(run_id)
        with self._lock:
            if run_id not in self._events and run_id not in self._runs:
                raise RunNotFoundError(run_id)
            rows = list(self._events.get(run_id, ()))
        # Rows are never changed once kept: each reader builds its own events from them.
        return [_unpack(run_id, row) for row in rows]

    def latest_checkpoint(self, run_id: str) -> int | None:
        """The ``seq`` of the run's latest checkpoint; None when the store has none."""
        check_run_id(run_id)
        with self._lock:
            run = self._runs.get(run_id)
            return None if run is None else run.seq

    def latest_step(self, run_id: str) -> int | None:
        """The step of the run's latest checkpoint; None when the store has none."""
        check_run_id(run_id)
        with self._lock:
            run = self._runs.get(run_id)
            return None if run is None else run.step

    def run_status(self, run_id: str) -> str | None:
        check_run_id(run_id)
        with self._lock:
            run = self._runs.get(run_id)
            return None if run is None else run.status

    def list_metadata(
        self, workflow_name: str | None = None, status: str | None = None
    ) -> list[RunMetadata]:
        with self._lock:
            # Built under the lock: bringing ``latest`` up to date changes it in place.
            return [
                metadata_of(run.current())
                for run in self._runs.values()
                if (workflow_name is None or run.latest.workflow_name == workflow_name)
                and (status is None or run.status == status)
            ]

    def run_summaries(
        self, workflow_name: str | None = None, since: str | datetime | None = None
    ) -> list[RunSummary]:
        """Each run's summary, by run id, from its records: always current.

        The figures come from the audit trail the store already holds (the
        latest full copy's, then the records of the steps after it); no run is
        copied or rebuilt.
        """
        after = since_key(since)
        out = []
        with self._lock:
            for run_id in sorted(self._runs):
                run = self._runs[run_id]
                base = run.latest
                if workflow_name is not None and base.workflow_name != workflow_name:
                    continue
                if after is not None and (base.started_at is None or base.started_at < after):
                    continue
                records = list(base.audit_trail)
                updated = base.updated_at
                behind = run.seq - run.applied
                for entry in run.history[len(run.history) - behind :] if behind else ():
                    assert entry.raw is not None  # a full entry resets ``applied``
                    records += entry.raw[_RECORDS]
                    updated = entry.raw[_UPDATED]
                out.append(
                    RunSummary(
                        run_id,
                        base.workflow_name,
                        run.status,
                        base.started_at,
                        updated,
                        node_stats(records),
                    )
                )
        return out

    def due_runs(
        self, now: float, limit: int | None = None, *, workflow_name: str | None = None
    ) -> list[RunMetadata]:
        """Waiting runs whose earliest timer is due by ``now`` (``DueStore``), from a dict."""
        now = check_due_query(now, limit)
        with self._lock:
            fired = sorted((due, run_id) for run_id, due in self._due.items() if due <= now)
            out = []
            for _, run_id in fired:
                run = self._runs.get(run_id)
                if run is None or (
                    workflow_name is not None and run.latest.workflow_name != workflow_name
                ):
                    continue
                out.append(metadata_of(run.current()))
                if limit is not None and len(out) >= limit:
                    break
            return out

    # ------------------------------------------------------------------ leases

    def acquire_lease(self, run_id: str, owner: str) -> int:
        """Take the run for ``owner``; returns its fencing token (one more than the last)."""
        check_run_id(run_id)
        now = self._clock()
        with self._lock:
            lease = self._leases.get(run_id)
            if lease is not None and lease.verdict(owner, now) == "taken":
                raise locked_error(run_id, lease.owner, lease.expires_at - now)
            token = (0 if lease is None else lease.token) + 1
            self._leases[run_id] = _Lease(
                owner, now + self.lease_ttl_seconds, token, process_holder()
            )
            return token

    def _check_lease(self, run_id: str, owner: str, token: int | None) -> _Lease:
        """The lease if ``owner`` (with ``token``) holds it, expired or not. Holds ``_lock``."""
        lease = self._leases.get(run_id)
        held_by, current = (None, 0) if lease is None else (lease.owner, lease.token)
        check_holds(run_id, owner, token, held_by, current)
        assert lease is not None  # check_holds refused a missing lease
        return lease

    def renew_lease(self, run_id: str, owner: str, token: int | None = None) -> None:
        """Extend ``owner``'s lease; never acquires (``RunLockedError`` if it is not theirs)."""
        check_run_id(run_id)
        now = self._clock()
        with self._lock:
            self._check_lease(run_id, owner, token).expires_at = now + self.lease_ttl_seconds

    def release_lease(self, run_id: str, owner: str) -> None:
        check_run_id(run_id)
        with self._lock:
            lease = self._leases.get(run_id)
            if lease is not None and lease.owner == owner:
                lease.owner, lease.expires_at, lease.holder = None, 0.0, None

    def lease_info(self, run_id: str) -> LeaseInfo | None:
        """Who holds the run's lease (read only); None when the run never had one."""
        check_run_id(run_id)
        now = self._clock()
        with self._lock:
            lease = self._leases.get(run_id)
            if lease is None:
                return None
            return lease_info_of(lease.owner, lease.expires_at, lease.token, lease.holder, now)

    def break_lease(self, run_id: str) -> bool:
        check_run_id(run_id)
        with self._lock:
            lease = self._leases.get(run_id)
            if lease is None or lease.owner is None:
                return False
            lease.owner, lease.expires_at, lease.holder = None, 0.0, None
            return True

    def delete_run(self, run_id: str, *, owner: str | None = None) -> bool:
        """Delete the run; with ``owner`` (its driver) the lease and its token stay."""
        check_run_id(run_id)
        now = self._clock()
        with self._lock:
            lease = self._leases.get(run_id)
            if lease is not None and lease.verdict(owner, now) == "taken":
                raise locked_error(run_id, lease.owner, lease.expires_at - now)
            if owner is None:
                self._leases.pop(run_id, None)  # run and lease both gone: tokens may restart
            self._events.pop(run_id, None)
            self._due.pop(run_id, None)
            return self._runs.pop(run_id, None) is not None

    # ------------------------------------------------------------------ history

    def prune(
        self,
        keep_last: int | None = None,
        older_than: float | timedelta | None = None,
        statuses: Iterable[str] = FINISHED_STATUSES,
        *,
        keep_events: bool = False,
    ) -> PruneResult:
        """Trim histories and delete old finished runs (see ``HistoryStore.prune``).

        Trimming drops the events logged before the first kept checkpoint unless
        ``keep_events``. ``bytes_freed`` estimates what was given back as the
        size of the dropped checkpoints and events in compact JSON text (the
        form they take when they leave the process), measured after the lock is
        released: nothing is encoded while they are kept.
        """
        check_keep_last(keep_last)
        wanted = status_set(statuses)
        deleted: list[str] = []
        trimmed: dict[str, int] = {}
        dropped_events: dict[str, int] = {}
        gone_entries: list[_Entry] = []
        gone_rows: list[tuple[str, list[Row]]] = []
        now = self._clock()
        with self._lock:
            if older_than is not None:
                cutoff = now - to_seconds(older_than)
                for run_id, run in list(self._runs.items()):
                    lease = self._leases.get(run_id)
                    leased = lease is not None and lease.verdict(None, now) == "taken"
                    if run.status in wanted and run.saved_at < cutoff and not leased:
                        del self._runs[run_id]
                        self._due.pop(run_id, None)
                        gone_rows.append((run_id, self._events.pop(run_id, [])))
                        gone_entries += run.history
                        deleted.append(run_id)
            if keep_last is not None:
                for run_id, run in self._runs.items():
                    drop = len(run.history) - int(keep_last)
                    if drop <= 0:
                        continue
                    run.current()  # the deltas not yet applied may be among those dropped
                    first = run.history[drop]
                    if first.full is None:
                        first.full = _rebuild(run.history, first.seq)
                        first.raw = None
                    gone_entries += run.history[:drop]
                    del run.history[:drop]
                    trimmed[run_id] = drop
                    cut = first.events_from
                    log = self._events.get(run_id)
                    if keep_events or not log or cut <= 0:
                        continue
                    gone_rows.append((run_id, log[:cut]))
                    del log[:cut]
                    for entry in run.history:
                        entry.events_from = max(0, entry.events_from - cut)
                    dropped_events[run_id] = cut
        freed = sum(_text_size(e) for e in gone_entries)
        freed += sum(_text_size(_unpack(run_id, row)) for run_id, rows in gone_rows for row in rows)
        return PruneResult(tuple(sorted(deleted)), trimmed, dropped_events, freed)


def _text_size(item: _Entry | Event) -> int:
    """About how many bytes ``item`` takes as compact JSON text (``bytes_freed``)."""
    if isinstance(item, Event):
        data: Any = [item.step, item.wave, item.node, item.kind, item.ts, item.data]
    elif item.raw is not None:
        data = dict(zip(_RAW_FIELDS, item.raw, strict=True))
        data["last_error"] = None if item.raw[10] is None else item.raw[10].to_dict()
        data["records"] = [r.to_dict() for r in item.raw[13]]
        data["arrivals"] = dict(item.raw[6])
    else:
        assert item.full is not None
        data = item.full.to_dict()
    try:
        return len(encode_compact(data))
    except (TypeError, ValueError):  # an int too long for text: still an estimate
        return len(repr(data))


def _rebuild(history: list[_Entry], seq: int) -> RunSnapshot:
    """The snapshot as of checkpoint ``seq``: the last full copy before it plus deltas."""
    index = seq - history[0].seq  # seqs are consecutive: a checkpoint per entry
    if not (0 <= index < len(history) and history[index].seq == seq):
        index = next(i for i, e in enumerate(history) if e.seq == seq)
    base = index
    while history[base].full is None:
        base -= 1
    full = history[base].full
    assert full is not None
    snap = full.copy()
    for entry in history[base + 1 : index + 1]:
        assert entry.raw is not None
        apply_delta(snap, _delta_of(snap.run_id, entry.raw))
    snap.seq = seq
    return snap
