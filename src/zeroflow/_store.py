"""The store protocols: where runs are kept between calls and across processes.

``WorkflowStore`` is 0.1.0's four-method protocol; any object with these
methods works. The engine looks for optional abilities and uses them when a
store has them:

- ``JournalingStore``: ``append_step(run_id, delta)`` persists each node as a
  ``StepDelta`` (O(change)); ``save_snapshot`` is then called only at
  lifecycle transitions (start, resume, waiting, end), and at the next
  checkpoint after ``append_step`` returned True (the store's journal is due
  for a fold and the engine holds the whole state).
- ``EventBatchingStore``: ``append_events(run_id, events)`` takes a
  checkpoint's events in one call, after that checkpoint's write.
- ``LeasingStore``: one driver per run at a time (``acquire_lease`` ...), and
  ``run_status`` / ``delete_run`` so a new run never silently overwrites an
  existing one.
- ``HistoryStore``: every checkpoint is kept; ``load_snapshot(run_id, step=N)``,
  ``history(run_id)`` and ``prune(...)``.

``zeroflow.testing`` checks any store against these contracts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable

from ._journal import StepDelta
from ._models import Event, RunMetadata, RunSnapshot

__all__ = [
    "WorkflowStore",
    "JournalingStore",
    "EventBatchingStore",
    "LeasingStore",
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


@runtime_checkable
class LeasingStore(WorkflowStore, Protocol):
    """A store that lets one driver at a time write a run.

    A lease is held by an ``owner`` (an opaque string, one per engine call)
    and lapses ``lease_ttl_seconds`` after its last renewal, so a lease left
    by a killed process frees itself.
    """

    lease_ttl_seconds: float

    def acquire_lease(self, run_id: str, owner: str) -> None:
        """Take the run for ``owner``; ``RunLockedError`` naming the run if another holds it."""
        ...

    def renew_lease(self, run_id: str, owner: str) -> None:
        """Keep the lease alive (cheap when called often); ``RunLockedError`` if it was lost."""
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

    def delete_run(self, run_id: str, *, owner: str | None = None) -> bool:
        """Delete the run; ``RunLockedError`` if a live lease not held by ``owner`` covers it."""
        ...


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    """One entry of a run's history: where it was and when it was written."""

    step: int
    wave: int
    status: str
    node: str | None
    timestamp: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "wave": self.wave,
            "status": self.status,
            "node": self.node,
            "timestamp": self.timestamp,
        }


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What ``prune`` deleted: whole runs, and checkpoints trimmed per remaining run."""

    runs: tuple[str, ...] = ()
    checkpoints: dict[str, int] = field(default_factory=dict)

    @property
    def checkpoints_deleted(self) -> int:
        """The number of checkpoints trimmed from runs that were kept."""
        return sum(self.checkpoints.values())


@runtime_checkable
class HistoryStore(WorkflowStore, Protocol):
    """A store that keeps every checkpoint of a run, not only the latest."""

    def load_snapshot(self, run_id: str, step: int | None = None) -> RunSnapshot:
        """The latest snapshot, or with ``step`` the last checkpoint taken at that step."""
        ...

    def history(self, run_id: str) -> list[CheckpointInfo]:
        """The run's checkpoints, oldest first; ``KeyError`` naming the run if absent."""
        ...

    def prune(
        self,
        keep_last: int | None = None,
        older_than: float | timedelta | None = None,
        statuses: Iterable[str] = FINISHED_STATUSES,
    ) -> PruneResult:
        """Trim histories to ``keep_last`` checkpoints; delete old runs in ``statuses``."""
        ...
