"""``InMemoryWorkflowStore``: runs kept in this process, as independent copies.

Step deltas and events are kept as compact JSON text, not as Python objects:
copying them is one encoder call, and a long run leaves the garbage
collector strings to skip instead of millions of small containers to scan.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from .._errors import RunNotFoundError
from .._journal import StepDelta, apply_delta
from .._models import Event, RunMetadata, RunSnapshot
from .._store import (
    DEFAULT_LEASE_TTL_SECONDS,
    FINISHED_STATUSES,
    CheckpointInfo,
    CheckpointWrite,
    PruneResult,
)
from ._common import (
    check_holds,
    check_keep_last,
    check_run_id,
    decode_event_rows,
    encode_compact,
    encode_event_rows,
    info_of,
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


@dataclass(slots=True)
class _Entry:
    """One checkpoint: a full snapshot copy, or a step delta's JSON text."""

    seq: int
    info: CheckpointInfo
    full: RunSnapshot | None = None
    delta: str | None = None
    events_from: int = 0
    """How many event chunks the run's log held before this checkpoint's own events."""


@dataclass(slots=True)
class _Run:
    latest: RunSnapshot
    saved_at: float
    seq: int = 0
    """The run's latest checkpoint (1 for the first), as ``latest_checkpoint`` returns it."""
    history: list[_Entry] = field(default_factory=list)


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
        # Per run, each append's events as one ``encode_event_rows`` text.
        self._events: dict[str, list[str]] = {}
        self._leases: dict[str, _Lease] = {}
        self._lock = threading.Lock()
        reset_after_fork(self)

    def _forked(self) -> None:
        """In a forked child: a fresh lock (another thread may have held it at the fork)."""
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ writes

    def save_snapshot(self, snapshot: RunSnapshot) -> None:
        """Keep ``snapshot`` as the run's next checkpoint (its ``seq`` is the store's to set)."""
        check_run_id(snapshot.run_id)
        latest = snapshot.copy()
        kept = latest.copy()
        with self._lock:
            self._save(latest, kept, self._clock())

    def _save(self, latest: RunSnapshot, kept: RunSnapshot, now: float) -> None:
        """Write a full checkpoint (two private copies of it). Holds ``_lock``."""
        run = self._runs.get(latest.run_id)
        if run is None:
            run = self._runs[latest.run_id] = _Run(latest, now)
        run.seq += 1
        latest.seq = kept.seq = run.seq
        run.latest = latest
        run.saved_at = now
        mark = len(self._events.get(latest.run_id, ()))
        info = info_of(kept.to_dict(), run.seq)
        run.history.append(_Entry(run.seq, info, full=kept, events_from=mark))

    def append_step(self, run_id: str, delta: StepDelta) -> bool:
        check_run_id(run_id)
        text = encode_compact(delta.to_json_data())
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                raise RunNotFoundError(run_id)
            self._step(run, delta, text, self._clock(), len(self._events.get(run_id, ())))
        return False  # the latest snapshot is kept whole: nothing to fold

    @staticmethod
    def _step(run: _Run, delta: StepDelta, text: str, now: float, mark: int) -> None:
        """Write one step's checkpoint (``text``: the delta's JSON). Holds ``_lock``."""
        info = CheckpointInfo(
            delta.step, delta.wave, delta.status, delta.last_node, delta.updated_at, run.seq + 1
        )
        apply_delta(run.latest, delta)
        run.seq += 1
        run.latest.seq = run.seq
        run.saved_at = now
        run.history.append(_Entry(run.seq, info, delta=text, events_from=mark))

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
        copies = (snapshot.copy(), snapshot.copy()) if snapshot is not None else None
        text = encode_compact(delta.to_json_data()) if delta is not None else ""
        events = encode_event_rows(write.events) if write.events else None
        now = self._clock()
        with self._lock:
            self._check_lease(run_id, owner, token)
            run = self._runs.get(run_id)
            latest = None if run is None else run.seq
            if write.seq != (latest or 0) + 1:
                raise moved_on_error(run_id, write.seq, latest)
            if copies is not None:
                self._save(copies[0], copies[1], now)
            else:
                if run is None:
                    raise RunNotFoundError(run_id)
                assert delta is not None
                self._step(run, delta, text, now, len(self._events.get(run_id, ())))
            if events is not None:
                self._events.setdefault(run_id, []).append(events)
            self._leases[run_id].expires_at = now + self.lease_ttl_seconds
        return False

    def append_event(self, run_id: str, event: Event) -> None:
        self.append_events(run_id, (event,))

    def append_events(self, run_id: str, events: Sequence[Event]) -> None:
        """Events in order (copies: the caller may reuse what it passed)."""
        check_run_id(run_id)
        if not events:
            return
        text = encode_event_rows(events)
        with self._lock:
            self._events.setdefault(run_id, []).append(text)

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
                return run.latest.copy()
            entries = [(e.seq, e.info) for e in run.history]
            return _rebuild(run.history, select_seq(run_id, entries, step, seq))

    def history(self, run_id: str) -> list[CheckpointInfo]:
        """The run's checkpoints, oldest first."""
        check_run_id(run_id)
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                raise RunNotFoundError(run_id)
            return [e.info for e in run.history]

    def events(self, run_id: str) -> list[Event]:
        """The run's event log, oldest first (checkpoint events carry only their step)."""
        check_run_id(run_id)
        with self._lock:
            if run_id not in self._events and run_id not in self._runs:
                raise RunNotFoundError(run_id)
            texts = list(self._events.get(run_id, []))
        return [event for text in texts for event in decode_event_rows(run_id, text)]

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
            return None if run is None else run.latest.step

    def run_status(self, run_id: str) -> str | None:
        check_run_id(run_id)
        with self._lock:
            run = self._runs.get(run_id)
            return None if run is None else run.latest.status

    def list_metadata(
        self, workflow_name: str | None = None, status: str | None = None
    ) -> list[RunMetadata]:
        with self._lock:
            snaps = [run.latest for run in self._runs.values()]
        return [
            metadata_of(s)
            for s in snaps
            if (workflow_name is None or s.workflow_name == workflow_name)
            and (status is None or s.status == status)
        ]

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
        ``keep_events``; ``bytes_freed`` estimates the text given back.
        """
        check_keep_last(keep_last)
        wanted = status_set(statuses)
        deleted: list[str] = []
        trimmed: dict[str, int] = {}
        dropped_events: dict[str, int] = {}
        freed = 0
        now = self._clock()
        with self._lock:
            if older_than is not None:
                cutoff = now - to_seconds(older_than)
                for run_id, run in list(self._runs.items()):
                    lease = self._leases.get(run_id)
                    leased = lease is not None and lease.verdict(None, now) == "taken"
                    if run.latest.status in wanted and run.saved_at < cutoff and not leased:
                        del self._runs[run_id]
                        freed += sum(len(t) for t in self._events.pop(run_id, ()))
                        freed += sum(len(e.delta or "") for e in run.history)
                        deleted.append(run_id)
            if keep_last is not None:
                for run_id, run in self._runs.items():
                    drop = len(run.history) - int(keep_last)
                    if drop <= 0:
                        continue
                    first = run.history[drop]
                    if first.full is None:
                        first.full = _rebuild(run.history, first.seq)
                        first.delta = None
                    freed += sum(len(e.delta or "") for e in run.history[:drop])
                    del run.history[:drop]
                    trimmed[run_id] = drop
                    cut = first.events_from
                    chunks = self._events.get(run_id)
                    if keep_events or not chunks or cut <= 0:
                        continue
                    gone = chunks[:cut]
                    del chunks[:cut]
                    for entry in run.history:
                        entry.events_from = max(0, entry.events_from - cut)
                    dropped_events[run_id] = sum(
                        len(decode_event_rows(run_id, text)) for text in gone
                    )
                    freed += sum(len(text) for text in gone)
        return PruneResult(tuple(sorted(deleted)), trimmed, dropped_events, freed)


def _rebuild(history: list[_Entry], seq: int) -> RunSnapshot:
    """The snapshot as of checkpoint ``seq``: the last full copy before it plus deltas."""
    index = next(i for i, e in enumerate(history) if e.seq == seq)
    base = index
    while history[base].full is None:
        base -= 1
    full = history[base].full
    assert full is not None
    snap = full.copy()
    for entry in history[base + 1 : index + 1]:
        assert entry.delta is not None
        apply_delta(snap, StepDelta.from_dict(json.loads(entry.delta)))
    snap.seq = seq
    return snap
