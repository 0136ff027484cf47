"""Durable timers and wait deadlines, as a paused run keeps them in ``snapshot.extra``.

A ``sleep`` node's wake-up time and a wait node's deadline are both a *timer*:
``extra["timers"][node] = {"due": <epoch seconds, engine clock>, "kind": "sleep" | "wait"}``,
written when the node pauses and dropped when it is resumed. Stores index a
waiting run by its earliest timer (``due_at``) so ``engine.resume_due`` finds
what is due without reading every run. A leaf: pure readings of snapshot fields.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ._constants import STATUS_WAITING

__all__ = [
    "TIMERS",
    "TIMER_SLEEP",
    "TIMER_WAIT",
    "due_at",
    "due_timers",
    "iso_of",
    "node_timer",
    "parse_instant",
    "pending_timers",
    "wait_reason",
]

TIMERS = "timers"
"""``snapshot.extra`` key of the paused nodes' timers."""
TIMER_SLEEP = "sleep"
TIMER_WAIT = "wait"


def _waiting_names(status: Any, ready_now: Any, extra: Mapping[str, Any]) -> set[str]:
    """The top-level nodes a paused run waits on, each resumable by name.

    Branch waits, and the head of the queue (the node a run-level pause put
    back first; nodes paused behind it in the same batch pause again, with
    their timers, once it is answered).
    """
    if status != STATUS_WAITING:
        return set()
    names = {str(n) for n in (extra.get("waiting") or ())}
    if isinstance(ready_now, list) and ready_now and not names:
        names.add(str(ready_now[0]))
    return names


def pending_timers(
    status: Any, ready_now: Any, extra: Any, *, children: bool = True
) -> dict[str, tuple[float, str]]:
    """``{path: (due, kind)}`` of the timers of nodes the run waits on now.

    A paused subflow node's child run contributes the timers of the nodes it
    waits on, by path (``"approve/ask"``, as ``resume(node=...)`` takes it;
    one level deep). Damaged entries (a due that is not a finite number) are
    left out: a timer that cannot be read never fires, and never breaks a listing.
    """
    if not isinstance(extra, Mapping):
        return {}
    names = _waiting_names(status, ready_now, extra)
    out: dict[str, tuple[float, str]] = {}
    timers = extra.get(TIMERS)
    for node, timer in timers.items() if isinstance(timers, Mapping) else ():
        if node not in names or not isinstance(timer, Mapping):
            continue
        due = timer.get("due")
        if isinstance(due, bool) or not isinstance(due, int | float) or not math.isfinite(due):
            continue
        kind = timer.get("kind")
        out[str(node)] = (float(due), kind if kind == TIMER_SLEEP else TIMER_WAIT)
    subflows = extra.get("subflows") if children else None
    for node, child in subflows.items() if isinstance(subflows, Mapping) else ():
        if node not in names or not isinstance(child, Mapping):
            continue
        inner = pending_timers(
            child.get("status"), child.get("ready_now"), child.get("zeroflow"), children=False
        )
        out.update({f"{node}/{path}": timer for path, timer in inner.items()})
    return out


def due_at(status: Any, ready_now: Any, extra: Any) -> float | None:
    """When the run's earliest timer fires (None: not waiting, or no timer)."""
    timers = pending_timers(status, ready_now, extra)
    return min((due for due, _ in timers.values()), default=None)


def due_timers(status: Any, ready_now: Any, extra: Any, now: float) -> list[str]:
    """The nodes whose timer has fired by ``now``, earliest first (then by name)."""
    timers = pending_timers(status, ready_now, extra)
    fired = [(due, node) for node, (due, _) in timers.items() if due <= now]
    return [node for _, node in sorted(fired)]


def wait_reason(status: Any, ready_now: Any, extra: Any) -> str | None:
    """Why a paused run waits: ``"timer"`` when only sleeping nodes hold it, else ``"input"``.

    None unless the run is waiting. A wait node with a deadline waits for input.
    """
    if status != STATUS_WAITING or not isinstance(extra, Mapping):
        return None
    holding = _waiting_names(status, ready_now, extra)
    if holding and all(_sleeping(name, status, ready_now, extra) for name in holding):
        return "timer"
    return "input"


def _sleeping(name: str, status: Any, ready_now: Any, extra: Mapping[str, Any]) -> bool:
    """Whether waiting node ``name`` waits only on a sleep (its own, or its child run's)."""
    own = pending_timers(status, ready_now, extra, children=False).get(name)
    if own is not None:
        return own[1] == TIMER_SLEEP
    child = (extra.get("subflows") or {}).get(name)
    if not isinstance(child, Mapping):
        return False
    return wait_reason(child.get("status"), child.get("ready_now"), child.get("zeroflow")) == (
        "timer"
    )


def node_timer(extra: Mapping[str, Any], node: str) -> tuple[float, str] | None:
    """A paused node's timer, ``extra["timers"][node]``: its due time and ``sleep`` or
    ``wait``; None when it has none, or when what is kept is damaged."""
    timers = extra.get(TIMERS)
    timer = timers.get(node) if isinstance(timers, Mapping) else None
    if not isinstance(timer, Mapping):
        return None
    due = timer.get("due")
    if isinstance(due, bool) or not isinstance(due, int | float) or not math.isfinite(due):
        return None
    return float(due), "sleep" if timer.get("kind") == TIMER_SLEEP else "wait"


def iso_of(ts: float) -> str:
    """An epoch time as ISO-8601 UTC with seconds precision (``...+00:00``)."""
    from datetime import UTC, datetime  # at the first timer, not at ``import zeroflow``

    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


def parse_instant(value: Any) -> float | None:
    """An ISO-8601 time (a string) as epoch seconds; None when it is not one.

    A time without an offset is read as UTC.
    """
    from datetime import UTC, datetime

    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


def timer_lines(status: Any, ready_now: Any, extra: Any) -> list[tuple[str, str]]:
    """``timers:`` lines of ``zeroflow runs show``: each armed timer, earliest first."""
    timers = pending_timers(status, ready_now, extra)
    lines: list[tuple[str, str]] = []
    for i, (due, node, kind) in enumerate(sorted((d, n, k) for n, (d, k) in timers.items())):
        what = "wakes at" if kind == TIMER_SLEEP else "deadline"
        lines.append(("timers" if i == 0 else "", f"{node}: {what} {iso_of(due)}"))
    return lines
