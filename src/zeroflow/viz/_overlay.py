"""Per-node run status for overlays, read from a run by duck typing.

A run may be a `RunSnapshot`, a `WorkflowResult` or a snapshot dict
(`RunSnapshot.to_dict()`); the engine is never imported, so pictures work
with any object of that shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from zeroflow.viz._graph import Graph

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
    taken: frozenset[int] = frozenset()
    """Indexes into `Graph.edges` of the edges the run took (see `taken_edges`)."""


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


def overlay_for(graph: Graph, run: object) -> Overlay:
    """`overlay_from_run` for the graph's nodes, plus the edges the run took."""
    overlay = overlay_from_run(run, graph.node_ids())
    return replace(overlay, taken=taken_edges(graph, run))


def _error_fields(record: object) -> tuple[str | None, str | None]:
    error = _get(record, "error")
    if error is None:
        return None, None
    code, cause = _get(error, "code"), _get(error, "cause_type")
    return (
        str(code) if code is not None else None,
        str(cause) if cause is not None else None,
    )


def taken_edges(graph: Graph, run: object) -> frozenset[int]:
    """The edges a run took, as indexes into `graph.edges`, read from its audit trail.

    A succeeded record took the edges of every outcome it returned. A failed
    record took the error route the engine picks: the first ``on_error``
    catcher whose codes and exceptions match the recorded error, else the
    route to the error node. The record keeps only the exception's own class
    name, so a catcher naming a base class is judged by where the run went: it
    counts when its target is the first of the possible targets to run (or be
    queued) afterwards. A failure's route is only marked when its target ran
    or is queued after it (a run that ended on the failure took none).
    """
    trail_raw = _get(run, "audit_trail")
    trail = list(trail_raw) if isinstance(trail_raw, (list, tuple)) else []
    queued = _queued(run)
    by_source: dict[str, list[int]] = {}
    for i, e in enumerate(graph.edges):
        by_source.setdefault(e.source, []).append(i)
    failure_into: list[int] = [i for i, e in enumerate(graph.edges) if e.route == "failure"]
    markers = {n.id for n in graph.nodes if n.is_marker}
    taken: set[int] = set()
    nodes_after: list[str] = [str(_get(r, "node")) for r in trail]

    def first_after(index: int, candidates: Iterable[str]) -> str | None:
        wanted = set(candidates)
        for name in [*nodes_after[index + 1 :], *queued]:
            if name in wanted:
                return name
        return None

    for index, record in enumerate(trail):
        node = _get(record, "node")
        if node is None:
            continue
        name = str(node)
        mine = by_source.get(name, [])
        status = _get(record, "status")
        if status == "succeeded":
            outs = set(_names(_get(record, "outputs")))
            taken.update(
                i for i in mine if graph.edges[i].route == "output" and graph.edges[i].label in outs
            )
            continue
        if status != "failed":
            continue
        code, cause = _error_fields(record)
        catchers = [i for i in mine if graph.edges[i].route == "catch"]
        direct = [i for i in mine if graph.edges[i].route == "failure"]
        via_marker = (
            [i for i in failure_into if graph.edges[i].source in markers]
            if graph.error_node not in (None, name)
            else []
        )
        candidates = [graph.edges[i].target for i in catchers]
        if graph.error_node is not None and graph.error_node != name:
            candidates.append(graph.error_node)
        went = first_after(index, candidates)
        chosen: list[int] = []
        for i in catchers:
            e = graph.edges[i]
            if e.codes is not None and code not in e.codes:
                continue
            # A base class may still match the exception: judged by where the run went.
            if (
                e.exceptions is not None
                and cause not in e.exceptions
                and (cause is None or went != e.target)
            ):
                continue
            chosen = [i]
            break
        else:
            chosen = direct or via_marker
        if chosen and went is not None and graph.edges[chosen[0]].target == went:
            taken.update(chosen)
    return frozenset(taken)


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
