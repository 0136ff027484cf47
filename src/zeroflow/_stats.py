"""Run statistics: per-node figures from an audit trail, and reports over run summaries.

Pure functions over data: ``node_stats`` folds audit-trail records (``StepRecord``
objects, or their stored dicts with ``node_stats_of_dicts``) into one
``NodeStats`` per node; ``encode_nodes`` /
``decode_nodes`` are the compact form stores keep with each run's summary;
``percentile`` and ``stats_report`` turn many ``RunSummary`` records into the
figures ``zeroflow runs stats`` prints. No clock, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from datetime import datetime

__all__ = [
    "NodeStats",
    "RunSummary",
    "Record",
    "node_stats",
    "node_stats_of_dicts",
    "encode_nodes",
    "decode_nodes",
    "since_key",
    "percentile",
    "stats_report",
    "EXECUTION_STATUSES",
    "STATS_FORMAT",
]

EXECUTION_STATUSES = frozenset({"succeeded", "failed", "waiting"})
"""Audit-trail statuses that are a node execution; other records (a migration) are not."""

STATS_FORMAT = 1
"""The version of the compact per-run form (``encode_nodes``); a newer one reads as absent."""

_FINISHED = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True, slots=True)
class NodeStats:
    """What one node did in a run: executions, failures, retries and durations (ms).

    ``executions`` counts the node's audit-trail records (each handler call
    that settled, a pause included); ``retries`` the extra attempts made
    before those settled; ``total_duration_ms`` and ``max_duration_ms`` cover
    the executions whose duration was measured.
    """

    node: str
    executions: int = 0
    failures: int = 0
    retries: int = 0
    total_duration_ms: float = 0.0
    max_duration_ms: float = 0.0

    @property
    def mean_duration_ms(self) -> float:
        """``total_duration_ms`` per execution (0.0 without executions)."""
        return self.total_duration_ms / self.executions if self.executions else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "executions": self.executions,
            "failures": self.failures,
            "retries": self.retries,
            "total_duration_ms": self.total_duration_ms,
            "max_duration_ms": self.max_duration_ms,
        }


@dataclass(frozen=True, slots=True)
class RunSummary:
    """A stored run as a stats query sees it: status, times and per-node figures.

    ``nodes`` is None for a run whose store kept no node figures for it (written
    before the store kept them, or damaged): it still counts by status and time.
    """

    run_id: str
    workflow_name: str
    status: str
    started_at: str | None = None
    updated_at: str | None = None
    nodes: Mapping[str, NodeStats] | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "workflow_name": self.workflow_name,
            "status": self.status,
            "started_at": self.started_at,
            "updated_at": self.updated_at,
            "nodes": None
            if self.nodes is None
            else {name: s.to_dict() for name, s in self.nodes.items()},
        }


class Record(Protocol):
    """What ``node_stats`` reads of an audit-trail record (``StepRecord`` has it all)."""

    @property
    def node(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def duration_ms(self) -> float | None: ...
    @property
    def retries(self) -> int: ...
    @property
    def kind(self) -> str: ...


NOT_RUNS = frozenset({"compensation", "override"})
"""Record kinds that are no call of the node's handler: a compensation, an override."""


def node_stats(records: Iterable[Record]) -> dict[str, NodeStats]:
    """One ``NodeStats`` per node of ``records`` (``StepRecord``s), in first-run order.

    Records that are no execution (``EXECUTION_STATUSES``: a migration; ``NOT_RUNS``:
    a compensation or an override) are skipped.
    """
    return _fold(
        (r.node, r.status, r.duration_ms, r.retries) for r in records if r.kind not in NOT_RUNS
    )


def node_stats_of_dicts(records: Iterable[Any]) -> dict[str, NodeStats]:
    """``node_stats`` of stored records (``StepRecord.to_dict`` shapes), as read from disk.

    Anything that is not such a dict, and fields that are missing or damaged,
    are skipped, so any stored trail can be read.
    """
    return _fold(
        (r.get("node"), r.get("status"), r.get("duration_ms"), r.get("retries"))
        for r in records
        if isinstance(r, Mapping) and r.get("kind", "node") not in NOT_RUNS
    )


def _fold(rows: Iterable[tuple[Any, Any, Any, Any]]) -> dict[str, NodeStats]:
    """``(node, status, duration_ms, retries)`` rows summed per node; bad fields skipped."""
    acc: dict[str, list[Any]] = {}
    for node, status, ms, retries in rows:
        if status not in EXECUTION_STATUSES or type(node) is not str:
            continue
        row = acc.get(node)
        if row is None:
            row = acc[node] = [0, 0, 0, 0.0, 0.0]
        row[0] += 1
        if status == "failed":
            row[1] += 1
        if type(retries) is int and retries > 0:
            row[2] += retries
        if type(ms) in (int, float) and math.isfinite(ms) and ms >= 0:
            row[3] += ms
            if ms > row[4]:
                row[4] = float(ms)
    return {
        name: NodeStats(name, row[0], row[1], row[2], round(row[3], 3), row[4])
        for name, row in acc.items()
    }


def encode_nodes(nodes: Mapping[str, NodeStats]) -> dict[str, Any]:
    """The compact JSON form a store keeps: ``{"format": 1, "nodes": {name: [e, f, r, t, m]}}``."""
    return {
        "format": STATS_FORMAT,
        "nodes": {
            name: [s.executions, s.failures, s.retries, s.total_duration_ms, s.max_duration_ms]
            for name, s in nodes.items()
        },
    }


def _count(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"a count is {value!r}, not a non-negative integer")
    return value


def _ms(value: Any) -> float:
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"a duration is {value!r}, not a non-negative number")
    return float(value)


def decode_nodes(data: Any) -> dict[str, NodeStats] | None:
    """``encode_nodes``' form read back; None for None or a newer format.

    ``ValueError`` saying what is wrong when ``data`` is damaged (the caller
    reports it and counts the run without node figures).
    """
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise ValueError(f"node stats are a JSON {type(data).__name__}, not an object")
    version = data.get("format")
    if type(version) is int and version > STATS_FORMAT:
        return None
    if version != STATS_FORMAT or not isinstance(data.get("nodes"), Mapping):
        raise ValueError(f"node stats have format {version!r} and no 'nodes' object")
    out = {}
    for name, row in data["nodes"].items():
        if not isinstance(row, list) or len(row) != 5:
            raise ValueError(f"node stats of {name!r} are {row!r}, not five numbers")
        executions, failures = _count(row[0]), _count(row[1])
        if failures > executions:
            raise ValueError(f"node stats of {name!r} count more failures than executions")
        out[str(name)] = NodeStats(
            str(name), executions, failures, _count(row[2]), _ms(row[3]), _ms(row[4])
        )
    return out


def since_key(since: str | datetime | None) -> str | None:
    """``since`` as the text a run's ``started_at`` is compared with (UTC, seconds).

    Takes an ISO-8601 string (``2026-01-01``, ``2026-01-01T12:00:00Z``, with an
    offset) or a ``datetime``; one without a zone is UTC. ``ValueError`` naming
    the accepted forms for anything else.
    """
    if since is None:
        return None
    from datetime import UTC, datetime

    if isinstance(since, datetime):
        moment = since
    elif isinstance(since, str):
        try:
            moment = datetime.fromisoformat(since.strip())
        except ValueError:
            raise ValueError(
                f"since must be an ISO-8601 date or time such as 2026-01-01 or "
                f"2026-01-01T12:00:00Z, got {since!r}"
            ) from None
    else:
        raise TypeError(f"since must be an ISO-8601 string or a datetime, got {since!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of ``values``; None if empty.

    Always one of the values: the smallest value with at least ``q`` percent
    of the values at or below it.
    """
    if not 0 < q <= 100:
        raise ValueError(f"q must be in (0, 100], got {q!r}")
    if not values:
        return None
    ordered = sorted(values)
    rank = math.ceil(q / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


def _spread(values: Sequence[float]) -> dict[str, Any]:
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values) if values else None,
    }


def _duration_seconds(summary: RunSummary) -> float | None:
    """A finished run's wall time from its stamps (seconds precision); None if unknown."""
    if summary.status not in _FINISHED or not summary.started_at or not summary.updated_at:
        return None
    from datetime import datetime

    try:
        seconds = (
            datetime.fromisoformat(summary.updated_at) - datetime.fromisoformat(summary.started_at)
        ).total_seconds()
    except (ValueError, TypeError):  # a stamp that is no ISO-8601 time, or naive vs aware
        return None
    return seconds if seconds >= 0 else None


class _NodeAcc:
    __slots__ = ("executions", "failures", "max_ms", "means", "retries", "total_ms")

    def __init__(self) -> None:
        self.executions = self.failures = self.retries = 0
        self.total_ms = self.max_ms = 0.0
        self.means: list[float] = []

    def add(self, s: NodeStats) -> None:
        self.executions += s.executions
        self.failures += s.failures
        self.retries += s.retries
        self.total_ms += s.total_duration_ms
        self.max_ms = max(self.max_ms, s.max_duration_ms)
        if s.executions:
            self.means.append(s.mean_duration_ms)

    def to_dict(self) -> dict[str, Any]:
        return {
            "executions": self.executions,
            "failures": self.failures,
            "retries": self.retries,
            "total_ms": round(self.total_ms, 3),
            "p50_ms": percentile(self.means, 50),
            "p95_ms": percentile(self.means, 95),
            "max_ms": self.max_ms,
        }


def stats_report(summaries: Iterable[RunSummary], *, top: int = 5) -> dict[str, Any]:
    """The figures of ``zeroflow runs stats`` over ``summaries``, as JSON-ready data.

    ``runs`` and ``by_status`` count every run; per workflow, ``duration_seconds``
    spreads the wall time of finished runs (from their stamps) and ``nodes``
    each node's executions, failures, retries, total time, and p50/p95 of its
    mean duration per run with the longest single execution as ``max_ms``;
    ``slowest`` (by p95) and ``most_failing`` (by failures) list the ``top``
    nodes across workflows. Runs without node figures count in
    ``runs_without_node_stats``.
    """
    by_status: dict[str, int] = {}
    flows: dict[str, dict[str, Any]] = {}
    durations: dict[str, list[float]] = {}
    nodes: dict[tuple[str, str], _NodeAcc] = {}
    total = without = 0
    for summary in summaries:
        total += 1
        name = summary.workflow_name
        by_status[summary.status] = by_status.get(summary.status, 0) + 1
        flow = flows.get(name)
        if flow is None:
            flow = flows[name] = {"runs": 0, "by_status": {}}
            durations[name] = []
        flow["runs"] += 1
        flow["by_status"][summary.status] = flow["by_status"].get(summary.status, 0) + 1
        seconds = _duration_seconds(summary)
        if seconds is not None:
            durations[name].append(seconds)
        if summary.nodes is None:
            without += 1
            continue
        for node, figures in summary.nodes.items():
            acc = nodes.get((name, node))
            if acc is None:
                acc = nodes[(name, node)] = _NodeAcc()
            acc.add(figures)
    workflows: dict[str, Any] = {}
    for name in sorted(flows):
        flow = flows[name]
        workflows[name] = {
            "runs": flow["runs"],
            "by_status": dict(sorted(flow["by_status"].items())),
            "duration_seconds": _spread(durations[name]),
            "nodes": {
                node: acc.to_dict() for (wf, node), acc in sorted(nodes.items()) if wf == name
            },
        }
    rows = [
        {"workflow": wf, "node": node, **acc.to_dict()} for (wf, node), acc in sorted(nodes.items())
    ]
    slowest = sorted(
        (r for r in rows if r["executions"]),
        key=lambda r: (-(r["p95_ms"] or 0.0), -r["max_ms"], r["workflow"], r["node"]),
    )
    failing = sorted(
        (r for r in rows if r["failures"]),
        key=lambda r: (-r["failures"], -r["failures"] / r["executions"], r["workflow"], r["node"]),
    )
    return {
        "runs": total,
        "by_status": dict(sorted(by_status.items())),
        "runs_without_node_stats": without,
        "workflows": workflows,
        "slowest": slowest[: max(top, 0)],
        "most_failing": failing[: max(top, 0)],
    }
