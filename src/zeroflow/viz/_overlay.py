"""Per-node run status for overlays, read from a run by duck typing.

A run may be a `RunSnapshot`, a `WorkflowResult` or a snapshot dict
(`RunSnapshot.to_dict()`); the engine is never imported, so pictures work
with any object of that shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Status = Literal["succeeded", "failed", "waiting", "next", "not_reached", "pending"]
"""`pending` is the plain, no-run state; the others come from a run."""

STATUS_LABELS: Mapping[Status, str] = {
    "succeeded": "succeeded",
    "failed": "failed",
    "waiting": "waiting",
    "next": "next",
    "not_reached": "never reached",
    "pending": "pending",
}


@dataclass(frozen=True, slots=True)
class NodeRun:
    """What a run did with one node: last status, number of runs, summed duration."""

    status: Status
    runs: int = 0
    duration_ms: float = 0.0
    queued: bool = False


@dataclass(frozen=True, slots=True)
class Overlay:
    """The statuses of all nodes of a graph for one run."""

    run_status: str | None
    nodes: Mapping[str, NodeRun]
    total_duration_ms: float


def _get(obj: object, key: str) -> object:
    """Read a field from a mapping or an object, None when absent."""
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def _names(value: object) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return []


def _queued(run: object) -> list[str]:
    """Nodes queued to run next, from the run itself or its checkpoint."""
    source: object = run
    if _get(run, "ready_now") is None and _get(run, "ready_next_wave") is None:
        source = _get(run, "checkpoint")
        if source is None:
            return []
    return _names(_get(source, "ready_now")) + _names(_get(source, "ready_next_wave"))


def overlay_from_run(run: object, node_ids: Iterable[str]) -> Overlay:
    """Compute each node's status from the run's audit trail and queues.

    The last audit record of a node decides its status; a node with no record
    is `next` when queued, else `not_reached`. Records for unknown nodes are
    ignored. Durations that are missing count as zero.
    """
    ids = list(node_ids)
    known = set(ids)
    last: dict[str, Status] = {}
    runs: dict[str, int] = {}
    duration: dict[str, float] = {}
    total = 0.0
    trail = _get(run, "audit_trail")
    for record in trail if isinstance(trail, (list, tuple)) else []:
        node = _get(record, "node")
        status = _get(record, "status")
        ms = _get(record, "duration_ms")
        value = float(ms) if isinstance(ms, (int, float)) and not isinstance(ms, bool) else 0.0
        total += value
        if node is None or str(node) not in known:
            continue
        name = str(node)
        runs[name] = runs.get(name, 0) + 1
        duration[name] = duration.get(name, 0.0) + value
        if status in ("succeeded", "failed", "waiting"):
            last[name] = status
    queued = set(_queued(run))
    nodes: dict[str, NodeRun] = {}
    for name in ids:
        status_value: Status = last.get(name) or ("next" if name in queued else "not_reached")
        nodes[name] = NodeRun(
            status=status_value,
            runs=runs.get(name, 0),
            duration_ms=duration.get(name, 0.0),
            queued=name in queued,
        )
    run_status = _get(run, "status")
    return Overlay(
        run_status=str(run_status) if run_status is not None else None,
        nodes=nodes,
        total_duration_ms=total,
    )


def legacy_marks(overlay: Overlay, order: Sequence[str]) -> tuple[list[str], str | None, bool]:
    """Translate an overlay to `workflow_to_mermaid`'s done / active / failed arguments."""
    done = [n for n in order if overlay.nodes[n].status == "succeeded"]
    for wanted in ("failed", "waiting", "next"):
        for n in order:
            if overlay.nodes[n].status == wanted:
                return done, n, wanted == "failed"
    return done, None, False


def format_duration(ms: float) -> str:
    """A short human duration: `850 ms`, `1.2 s`, `3 min 4 s`."""
    if ms < 1000:
        return f"{ms:.0f} ms" if ms >= 1 or ms == 0 else f"{ms:.2f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"
