"""Event callbacks and subscriptions.

Events are built by the run's recorder (``_run.recorder``) and handed to the user's
callback and to the store's event log. A callback may declare the kinds it
wants (``subscribe``); the engine then skips building what nobody reads,
above all the full snapshot carried by ``checkpoint`` events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ._constants import EVENT_CHECKPOINT
from ._models import Event

__all__ = ["EventCallback", "subscribe", "wanted_kinds"]

EventCallback = Callable[[Event], None]


class _Subscribed:
    """A callback that only receives the event kinds it named."""

    __slots__ = ("callback", "event_kinds")

    def __init__(self, callback: EventCallback, kinds: frozenset[str]) -> None:
        self.callback = callback
        self.event_kinds = kinds

    def __call__(self, event: Event) -> None:
        if event.kind in self.event_kinds:
            self.callback(event)


def subscribe(callback: EventCallback, *kinds: str) -> EventCallback:
    """Wrap ``callback`` so it receives only events of ``kinds``.

    The engine reads the declared kinds: a subscriber that does not ask for
    ``"checkpoint"`` never makes a run build the full snapshot payload.
    """
    if not kinds:
        raise ValueError("subscribe() needs at least one event kind, e.g. 'node:end'")
    return _Subscribed(callback, frozenset(kinds))


def wanted_kinds(callback: Any) -> frozenset[str] | None:
    """The kinds a callback declared through ``event_kinds``, or None for every kind."""
    kinds = getattr(callback, "event_kinds", None)
    if kinds is None:
        return None
    return frozenset(str(k) for k in kinds)


def wants_checkpoints(kinds: Iterable[str] | None) -> bool:
    return kinds is None or EVENT_CHECKPOINT in kinds
