"""Test doubles for workflows: a fake clock and an event recorder.

Pass ``clock`` and ``sleep`` of a ``FakeClock`` to ``WorkflowEngine`` (and to
stores that take a clock) so retries, deadlines and leases move time without
waiting; pass an ``EventRecorder`` as ``event_callback`` to assert on events.
"""

from __future__ import annotations

from .._models import Event

__all__ = ["EventRecorder", "FakeClock"]


class FakeClock:
    """Injected time in epoch seconds: ``sleep`` and ``advance`` move it, nothing waits.

    The instance is callable (``clock=fake``); ``fake.sleep`` records each wait.
    """

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = float(now)
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def time(self) -> float:
        """The current fake time."""
        return self.now

    def sleep(self, seconds: float) -> None:
        """Record a wait of ``seconds`` and move the clock by it."""
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (a lease expiring, a deadline passing)."""
        self.now += seconds


class EventRecorder:
    """An ``event_callback`` that keeps every event it hears, in order."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        """The kinds of the events heard, in order."""
        return [e.kind for e in self.events]

    def of(self, kind: str) -> list[Event]:
        """The events of one kind, in order."""
        return [e for e in self.events if e.kind == kind]

    def nodes(self, kind: str = "node:start") -> list[str | None]:
        """The node of each event of ``kind`` (by default: the nodes started, in order)."""
        return [e.node for e in self.events if e.kind == kind]
