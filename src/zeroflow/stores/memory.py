"""``InMemoryWorkflowStore``: runs kept in this process, as independent copies."""

from __future__ import annotations

import threading

from .._constants import EVENT_CHECKPOINT
from .._errors import RunNotFoundError
from .._journal import StepDelta, apply_delta
from .._models import Event, RunMetadata, RunSnapshot

__all__ = ["InMemoryWorkflowStore"]


class InMemoryWorkflowStore:
    """Keeps snapshots and events in memory; what a caller holds never aliases what it holds.

    Each node is applied as a ``StepDelta`` to the stored copy, so a long run
    costs O(change) per node. Thread-safe.
    """

    def __init__(self) -> None:
        self._snapshots: dict[str, RunSnapshot] = {}
        self._events: dict[str, list[Event]] = {}
        self._lock = threading.Lock()

    def save_snapshot(self, snapshot: RunSnapshot) -> None:
        copy = snapshot.copy()
        with self._lock:
            self._snapshots[snapshot.run_id] = copy

    def append_step(self, run_id: str, delta: StepDelta) -> None:
        with self._lock:
            snap = self._snapshots.get(run_id)
            if snap is None:
                raise RunNotFoundError(run_id)
            apply_delta(snap, delta)

    def load_snapshot(self, run_id: str) -> RunSnapshot:
        with self._lock:
            snap = self._snapshots.get(run_id)
            if snap is None:
                raise RunNotFoundError(run_id)
            return snap.copy()

    def append_event(self, run_id: str, event: Event) -> None:
        if event.kind == EVENT_CHECKPOINT and "state" in event.data:
            event = Event(
                event.run_id,
                event.step,
                event.wave,
                event.node,
                event.kind,
                event.ts,
                {"step": event.step},
            )
        else:
            event = Event.from_dict(event.to_dict())
        with self._lock:
            self._events.setdefault(run_id, []).append(event)

    def events(self, run_id: str) -> list[Event]:
        """The run's event log, oldest first (checkpoint events carry only their step)."""
        with self._lock:
            if run_id not in self._events and run_id not in self._snapshots:
                raise RunNotFoundError(run_id)
            return list(self._events.get(run_id, []))

    def list_metadata(self, workflow_name: str | None = None) -> list[RunMetadata]:
        with self._lock:
            snaps = list(self._snapshots.values())
        return [
            s.metadata() for s in snaps if workflow_name is None or s.workflow_name == workflow_name
        ]
