"""The store protocol: where runs are kept between calls and across processes.

``WorkflowStore`` is 0.1.0's four-method protocol; any object with these
methods works. A store may also implement ``append_step(run_id, delta)``:
the engine then persists each node as a ``StepDelta`` (O(change)) and calls
``save_snapshot`` only at lifecycle transitions.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ._journal import StepDelta
from ._models import Event, RunMetadata, RunSnapshot

__all__ = ["WorkflowStore", "JournalingStore"]


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

    def append_step(self, run_id: str, delta: StepDelta) -> None:
        """Persist ``delta`` on top of the run's latest snapshot, before returning."""
        ...
