"""The store protocols: where runs are kept between calls and across processes.

``WorkflowStore`` is 0.1.0's four-method protocol; any object with these
methods works. The engine decides once per store, with ``isinstance``,
which of these abilities it has and uses them:

- ``JournalingStore``: ``append_step(run_id, delta)`` persists each node as a
  ``StepDelta`` (O(change)); ``save_snapshot`` is then called only at
  lifecycle transitions (start, resume, waiting, end), and at the next
  checkpoint after ``append_step`` returned True (the store's journal is due
  for a fold and the engine holds the whole state).
- ``EventBatchingStore``: ``append_events(run_id, events)`` takes a
  checkpoint's events in one call, after that checkpoint's write.
- ``LeasingStore``: one driver per run at a time: a lease with a fencing
  token (``acquire_lease`` ...), and ``commit``, which writes one checkpoint
  with its events only while that token is current; ``run_status`` /
  ``delete_run`` so a new run never silently overwrites an existing one, and
  ``latest_checkpoint`` so a stale checkpoint is never resumed.
- ``LeaseInspectingStore``: ``lease_info(run_id)`` says who holds a run's
  lease (host, process, whether that process is alive) without touching it.
- ``StatsStore``: ``run_summaries(workflow_name, since)`` lists each run's
  status, times and per-node figures from a summary the store keeps with the
  run (``zeroflow runs stats``), without loading any run.
- ``RunQueryStore``: ``query_runs(RunQuery)`` returns one page of run
  summaries, filtered and newest first, from an index (the run console's
  runs page), without loading every run.
- ``HistoryStore``: every checkpoint is kept; ``load_snapshot(run_id, step=N)``
  (the last checkpoint at step N) or ``load_snapshot(run_id, seq=S)`` (exactly
  checkpoint S), ``history(run_id)`` and ``prune(...)``.

``zeroflow.testing`` checks any store against these contracts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ._journal import StepDelta
from ._models import Event, RunMetadata, RunSnapshot

if TYPE_CHECKING:
    from datetime import timedelta

__all__ = [
    "WorkflowStore",
    "JournalingStore",
    "EventBatchingStore",
    "EventLogStore",
    "LeasingStore",
    "CheckpointWrite",
    "HistoryStore",
    "CheckpointInfo",
    "PruneResult",
    "DEFAULT_LEASE_TTL_SECONDS",
    "FINISHED_STATUSES",
]

DEFAULT_LEASE_TTL_SECONDS = 30.0
"""How long a lease outlives its last renewal; a killed driver's lease expires after this."""

FINISHED_STATUSES: tuple[str, ...] = ("succeeded", "failed", "cancelled")
"""The default ``statuses`` of ``prune(older_than=...)``."""


@runtime_checkable
class WorkflowStore(Protocol):
    """Keeps snapshots and events of runs; 0.1.0's protocol, unchanged."""

    def save_snapshot(self, snapshot: RunSnapshot) -> None:
        """Persist ``snapshot`` as the run's latest resume point (the store keeps a copy)."""
        ...

    def load_snapshot(self, run_id: str) -> RunSnapshot:
        """Return a copy of the run's latest snapshot; ``KeyError`` naming the run if absent."""
        ...

    def append_event(self, run_id: str, event: Event) -> None:
        """Append one event to the run's event log."""
        ...

    def list_metadata(self, workflow_name: str | None = None) -> list[RunMetadata]:
        """Summaries of stored runs, optionally of one workflow only."""
        ...


@runtime_checkable
class JournalingStore(WorkflowStore, Protocol):
    """A store that can persist one step's change instead of the whole snapshot."""

    def append_step(self, run_id: str, delta: StepDelta) -> bool | None:
        """Persist ``delta`` on top of the run's latest snapshot, before returning.

        Return True to ask for a full snapshot (``save_snapshot``) at the next
        checkpoint, e.g. when the journal has grown large; None or False otherwise.
        """
        ...


@runtime_checkable
class EventBatchingStore(WorkflowStore, Protocol):
    """A store that takes several events in one call.

    The engine then holds a call's events and hands them over together at
    each checkpoint that writes state (and at the end of the call), after
    that checkpoint's ``append_step`` or ``save_snapshot``.
    """

    def append_events(self, run_id: str, events: Sequence[Event]) -> None:
        """Append ``events`` to the run's log, in order."""
        ...


@dataclass(frozen=True, slots=True)
class CheckpointWrite:
    """One checkpoint of a driven run, written by ``LeasingStore.commit`` as one unit.

    ``seq`` is the checkpoint's identity: the run's previous checkpoint's
    ``seq`` plus one (1 for a run's first checkpoint). Exactly one of
    ``snapshot`` (a full save) and ``delta`` (one step's change) is set;
    ``events`` are the events that led to this checkpoint, in order.
    """

    seq: int
    snapshot: RunSnapshot | None = None
    delta: StepDelta | None = None
    events: Sequence[Event] = ()


@runtime_checkable
class EventLogStore(WorkflowStore, Protocol):
    """A store whose event log can be read back (the CLI's ``runs show``, the kit)."""

    def events(self, run_id: str) -> list[Event]:
        """The run's events, oldest first; ``KeyError`` naming the run if it has none."""
        ...


@runtime_checkable
class LeasingStore(WorkflowStore, Protocol):
    """A store that lets one driver at a time write a run, and fences every write.

    A lease is held by an ``owner`` (an opaque string, one per engine call)
    and lapses ``lease_ttl_seconds`` after its last renewal, so a lease left
    by a killed process frees itself; a lease whose holder process is gone
    from this host may be taken at once. Every acquisition returns a fencing
    token, a number that grows with every acquisition of that run and is kept
    with the run; ``commit`` and ``renew_lease`` refuse a token that is no
    longer the current one with ``RunLockedError``. Renewal never acquires.
    """

    lease_ttl_seconds: float
    durable: bool
    """True when checkpoints outlive this process (files, databases); the memory store is not."""

    def acquire_lease(self, run_id: str, owner: str) -> int:
        """Take the run for ``owner`` and return its fencing token.

        ``RunLockedError`` naming the run if another caller holds a live lease.
        """
        ...

    def renew_lease(self, run_id: str, owner: str, token: int | None = None) -> None:
        """Keep the lease alive; ``RunLockedError`` if ``owner`` (with ``token``) lost it."""
        ...

    def release_lease(self, run_id: str, owner: str) -> None:
        """Give the run up; a no-op when ``owner`` no longer holds it."""
        ...

    def break_lease(self, run_id: str) -> bool:
        """Drop whatever lease the run has (an operator's tool); True if there was one."""
        ...

    def run_status(self, run_id: str) -> str | None:
        """The stored run's status, or None when the store has no snapshot of it."""
        ...

    def latest_checkpoint(self, run_id: str) -> int | None:
        """The ``seq`` of the run's latest checkpoint; None when the store has none."""
        ...

    def latest_step(self, run_id: str) -> int | None:
        """The step of the run's latest checkpoint; None when the store has none."""
        ...

    def delete_run(self, run_id: str, *, owner: str | None = None) -> bool:
        """Delete the run; ``RunLockedError`` if a live lease not held by ``owner`` covers it."""
        ...

    def commit(self, run_id: str, owner: str, token: int, write: CheckpointWrite) -> bool:
        """Write one checkpoint and its events now, renewing the lease.

        Refused with ``RunLockedError`` (nothing written) when ``owner`` and
        ``token`` no longer hold the run's lease, or when ``write.seq`` is not
        the stored run's latest ``seq`` plus one. Returns True to ask for a
        full snapshot at the next commit (the store's journal is due a fold).
        """
        ...


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    """One entry of a run's history: where it was and when it was written.

    ``seq`` is the checkpoint's identity (``RunSnapshot.seq``): several
    checkpoints can share a step (a pause and its resume, map progress, a
    cancel), one ``seq`` names exactly one of them, for
    ``load_snapshot(run_id, seq=...)`` and ``engine.fork(..., seq=...)``.
    None for a store that does not number its checkpoints.
    """

    step: int
    wave: int
    status: str
    node: str | None
    timestamp: str | None
    seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "step": self.step,
            "wave": self.wave,
            "status": self.status,
            "node": self.node,
            "timestamp": self.timestamp,
        }
        if self.seq is not None:
            out["seq"] = self.seq
        return out


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What ``prune`` deleted: whole runs, checkpoints and events trimmed per kept run.

    ``bytes_freed`` is what the store gave back: measured on files; for the
    memory store, the compact JSON size of what it dropped; for Postgres, the
    stored size of the deleted rows.
    """

    runs: tuple[str, ...] = ()
    checkpoints: dict[str, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    bytes_freed: int = 0

    @property
    def checkpoints_deleted(self) -> int:
        """The number of checkpoints trimmed from runs that were kept."""
        return sum(self.checkpoints.values())


@runtime_checkable
class HistoryStore(WorkflowStore, Protocol):
    """A store that keeps every checkpoint of a run, not only the latest."""

    def load_snapshot(
        self, run_id: str, step: int | None = None, *, seq: int | None = None
    ) -> RunSnapshot:
        """The latest snapshot; with ``step`` the last checkpoint taken at that step.

        ``seq`` names one checkpoint exactly (``CheckpointInfo.seq``), e.g. the
        pause of a run that was resumed at the same step; given with ``step``,
        the checkpoint must be at that step. A checkpoint the history does not
        hold raises ``CheckpointNotFoundError``.
        """
        ...

    def history(self, run_id: str) -> list[CheckpointInfo]:
        """The run's checkpoints, oldest first, each with its ``seq``; ``KeyError`` naming
        the run if absent."""
        ...

    def prune(
        self,
        keep_last: int | None = None,
        older_than: float | timedelta | None = None,
        statuses: Iterable[str] = FINISHED_STATUSES,
        *,
        keep_events: bool = False,
    ) -> PruneResult:
        """Trim histories to ``keep_last`` checkpoints; delete old runs in ``statuses``.

        Trimming also drops the events logged before the first kept checkpoint
        unless ``keep_events``; stores give the freed space back.
        """
        ...
