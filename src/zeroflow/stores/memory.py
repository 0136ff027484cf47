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

from .._errors import RunNotFoundError
from .._journal import StepDelta, apply_delta
from .._models import Event, RunMetadata, RunSnapshot
from .._store import DEFAULT_LEASE_TTL_SECONDS, FINISHED_STATUSES, CheckpointInfo, PruneResult
from ._common import (
    check_keep_last,
    checkpoint_not_found,
    decode_event_rows,
    encode_compact,
    encode_event_rows,
    info_of,
    lease_verdict,
    locked_error,
    lost_lease_error,
    pick_seq,
    reset_after_fork,
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


@dataclass(slots=True)
class _Run:
    latest: RunSnapshot
    saved_at: float
    seq: int = 0
    history: list[_Entry] = field(default_factory=list)


class InMemoryWorkflowStore:
    """Keeps runs in memory; what a caller holds never aliases what the store holds.

    Each node is applied as a ``StepDelta`` to the stored copy (O(change) per
    node) and kept as history, so ``load_snapshot(run_id, step=N)`` works.
    Leases follow the same rules as the file stores, within this process.
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
        self._leases: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        reset_after_fork(self)

    def _forked(self) -> None:
        """In a forked child: a fresh lock (another thread may have held it at the fork)."""
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ writes

    def save_snapshot(self, snapshot: RunSnapshot) -> None:
        latest = snapshot.copy()
        kept = latest.copy()
        now = self._clock()
        with self._lock:
            run = self._runs.get(snapshot.run_id)
            if run is None:
                run = self._runs[snapshot.run_id] = _Run(latest, now)
            run.latest = latest
            run.saved_at = now
            run.seq += 1
            run.history.append(_Entry(run.seq, info_of(kept.to_dict()), full=kept))

    def append_step(self, run_id: str, delta: StepDelta) -> bool:
        text = encode_compact(delta.to_json_data())
        info = CheckpointInfo(
            delta.step, delta.wave, delta.status, delta.last_node, delta.updated_at
        )
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                raise RunNotFoundError(run_id)
            apply_delta(run.latest, delta)
            run.saved_at = self._clock()
            run.seq += 1
            run.history.append(_Entry(run.seq, info, delta=text))
        return False  # the latest snapshot is kept whole: nothing to fold

    def append_event(self, run_id: str, event: Event) -> None:
        self.append_events(run_id, (event,))

    def append_events(self, run_id: str, events: Sequence[Event]) -> None:
        """Events in order (copies: the caller may reuse what it passed)."""
        if not events:
            return
        text = encode_event_rows(events)
        with self._lock:
            self._events.setdefault(run_id, []).append(text)

    # ------------------------------------------------------------------ reads

    def load_snapshot(self, run_id: str, step: int | None = None) -> RunSnapshot:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                raise RunNotFoundError(run_id)
            if step is None:
                return run.latest.copy()
            entries = [(e.seq, e.info) for e in run.history]
            seq = pick_seq(entries, step)
            if seq < 0:
                raise checkpoint_not_found(run_id, step, entries)
            return _rebuild(run.history, seq)

    def history(self, run_id: str) -> list[CheckpointInfo]:
        """The run's checkpoints, oldest first."""
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                raise RunNotFoundError(run_id)
            return [e.info for e in run.history]

    def events(self, run_id: str) -> list[Event]:
        """The run's event log, oldest first (checkpoint events carry only their step)."""
        with self._lock:
            if run_id not in self._events and run_id not in self._runs:
                raise RunNotFoundError(run_id)
            texts = list(self._events.get(run_id, []))
        return [event for text in texts for event in decode_event_rows(run_id, text)]

    def latest_step(self, run_id: str) -> int | None:
        """The step of the run's latest checkpoint; None when the store has none."""
        with self._lock:
            run = self._runs.get(run_id)
            return None if run is None else run.latest.step

    def run_status(self, run_id: str) -> str | None:
        with self._lock:
            run = self._runs.get(run_id)
            return None if run is None else run.latest.status

    def list_metadata(
        self, workflow_name: str | None = None, status: str | None = None
    ) -> list[RunMetadata]:
        with self._lock:
            snaps = [run.latest for run in self._runs.values()]
        return [
            s.metadata()
            for s in snaps
            if (workflow_name is None or s.workflow_name == workflow_name)
            and (status is None or s.status == status)
        ]

    # ------------------------------------------------------------------ leases

    def acquire_lease(self, run_id: str, owner: str) -> None:
        now = self._clock()
        with self._lock:
            holder, expires = self._leases.get(run_id, (None, 0.0))
            if lease_verdict(holder, expires, owner, now) == "taken":
                raise locked_error(run_id, holder, expires - now)
            self._leases[run_id] = (owner, now + self.lease_ttl_seconds)

    def renew_lease(self, run_id: str, owner: str) -> None:
        now = self._clock()
        with self._lock:
            holder, expires = self._leases.get(run_id, (None, 0.0))
            if holder is not None and holder != owner and expires > now:
                raise lost_lease_error(run_id)
            self._leases[run_id] = (owner, now + self.lease_ttl_seconds)

    def release_lease(self, run_id: str, owner: str) -> None:
        with self._lock:
            holder = self._leases.get(run_id, (None, 0.0))[0]
            if holder == owner:
                del self._leases[run_id]

    def break_lease(self, run_id: str) -> bool:
        with self._lock:
            return self._leases.pop(run_id, None) is not None

    def delete_run(self, run_id: str, *, owner: str | None = None) -> bool:
        now = self._clock()
        with self._lock:
            holder, expires = self._leases.get(run_id, (None, 0.0))
            if lease_verdict(holder, expires, owner, now) == "taken":
                raise locked_error(run_id, holder, expires - now)
            if owner is None:
                self._leases.pop(run_id, None)
            self._events.pop(run_id, None)
            return self._runs.pop(run_id, None) is not None

    # ------------------------------------------------------------------ history

    def prune(
        self,
        keep_last: int | None = None,
        older_than: float | timedelta | None = None,
        statuses: Iterable[str] = FINISHED_STATUSES,
    ) -> PruneResult:
        check_keep_last(keep_last)
        wanted = status_set(statuses)
        deleted: list[str] = []
        trimmed: dict[str, int] = {}
        now = self._clock()
        with self._lock:
            if older_than is not None:
                cutoff = now - to_seconds(older_than)
                for run_id, run in list(self._runs.items()):
                    holder, expires = self._leases.get(run_id, (None, 0.0))
                    leased = lease_verdict(holder, expires, None, now) == "taken"
                    if run.latest.status in wanted and run.saved_at < cutoff and not leased:
                        del self._runs[run_id]
                        self._events.pop(run_id, None)
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
                    del run.history[:drop]
                    trimmed[run_id] = drop
        return PruneResult(tuple(sorted(deleted)), trimmed)


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
    return snap
