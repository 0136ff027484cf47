"""Why a run is not moving: a pure reading of its snapshot, lease, events and definition.

``why_run`` takes what a store holds of one run (its latest snapshot, its
lease as ``LeaseInfo``, its recent events) and, optionally, the definition
it should run under, and returns a ``Why``: one ``Reason`` per thing that
holds the run where it is (a wait, a retry delay, a lease, a definition
whose hash differs, a stranded AND-join, a failure, the end), each with a
line of text, its facts as data, and what would move it on. Nothing here
reads a clock, a file or a store: ``now`` comes in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from . import _constants as C
from ._definition import CompiledWorkflow, compile_workflow
from ._models import Event, RunSnapshot, WorkflowError
from ._run.waits import waiting_paths
from ._scheduler import Frontier
from ._store_views import LeaseInfo
from ._timers import node_timer
from ._transitions import ALLOWED

__all__ = ["Why", "Reason", "REASON_KINDS", "why_run"]

REASON_KINDS: Final[tuple[str, ...]] = (
    "succeeded",
    "cancelled",
    "failed",
    "waiting",
    "sleeping",
    "retrying",
    "leased",
    "unleased",
    "definition",
    "stranded_join",
    "status",
)
"""Every ``Reason.kind``, in the order ``Why.reasons`` lists them."""


@dataclass(frozen=True, slots=True)
class Reason:
    """One thing that holds a run where it is: ``kind`` (of ``REASON_KINDS``), a line of
    ``text``, its facts in ``details`` (plain JSON data) and ``hint``, what would move it on."""

    kind: str
    text: str
    details: Mapping[str, Any] = field(default_factory=dict)
    hint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "text": self.text,
            "details": dict(self.details),
            "hint": self.hint,
        }


@dataclass(frozen=True, slots=True)
class Why:
    """Why a run is not moving: its status and every ``Reason`` found, most decisive first."""

    run_id: str
    workflow_name: str
    wf_hash: str
    status: str
    reasons: tuple[Reason, ...]

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(r.kind for r in self.reasons)

    def text(self) -> str:
        """The reasons for a person: a heading line, then each reason and its hint."""
        lines = [f"run {self.run_id} ({self.workflow_name}) is {self.status}"]
        for reason in self.reasons:
            lines.append(f"  {reason.kind}: {reason.text}")
            if reason.hint:
                lines.append(f"    -> {reason.hint}")
        return "\n".join(map(_printable, lines)) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "workflow_name": self.workflow_name,
            "wf_hash": self.wf_hash,
            "status": self.status,
            "reasons": [r.to_dict() for r in self.reasons],
        }


def _printable(line: str) -> str:
    """``line`` with control characters escaped, so run data cannot steer a terminal."""
    if line.isprintable():
        return line
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in line)


def why_run(
    snapshot: RunSnapshot,
    *,
    lease: LeaseInfo | None = None,
    events: Sequence[Event] = (),
    definition: Mapping[str, Any] | CompiledWorkflow | None = None,
    now: float | None = None,
) -> Why:
    """Why ``snapshot``'s run is where it is.

    ``lease`` is the store's record of the run's lease (None: none, or a store
    without leases); ``events`` the run's log (the last few are enough);
    ``definition`` the definition the run should continue under (a dict, or
    compiled; ``WorkflowDefinitionError`` if it is invalid), to
    tell a hash that differs and whether ``migrate`` would take the run, and
    to find stranded AND-joins; ``now`` (epoch seconds, the engine's clock)
    turns deadlines into "in 5 s". Never raises on damaged extras: what
    cannot be read is left out.
    """
    graph = definition
    if graph is not None and not isinstance(graph, CompiledWorkflow):
        graph = compile_workflow(graph)
    found: list[Reason] = []
    for judge in _JUDGES:
        found.extend(judge(snapshot, lease, events, graph, now))
    if not found:
        found.append(
            Reason(
                "status",
                f"status {snapshot.status!r} is not one this version knows",
                {"status": snapshot.status},
                "check which zeroflow version wrote this run",
            )
        )
    order = {kind: i for i, kind in enumerate(REASON_KINDS)}
    found.sort(key=lambda r: order.get(r.kind, len(order)))
    return Why(
        snapshot.run_id, snapshot.workflow_name, snapshot.wf_hash, snapshot.status, tuple(found)
    )


_Judge = Callable[
    [RunSnapshot, LeaseInfo | None, Sequence[Event], CompiledWorkflow | None, float | None],
    list[Reason],
]


# ---------------------------------------------------------------------- the end


def _finished(
    snap: RunSnapshot,
    lease: LeaseInfo | None,
    events: Sequence[Event],
    graph: CompiledWorkflow | None,
    now: float | None,
) -> list[Reason]:
    if snap.status == C.STATUS_SUCCEEDED:
        return [
            Reason(
                "succeeded",
                f"it succeeded at {snap.updated_at or '?'} after {snap.step} step(s)",
                {"at": snap.updated_at, "step": snap.step},
                "nothing is left to do; fork it to run part of it again",
            )
        ]
    if snap.status == C.STATUS_CANCELLED:
        return [
            Reason(
                "cancelled",
                f"it was cancelled at {snap.updated_at or '?'}, at step {snap.step}",
                {"at": snap.updated_at, "node": snap.last_node},
                "runs resume continues it where it stopped; runs redrive runs its last node again",
            )
        ]
    return []


def _failed(
    snap: RunSnapshot,
    lease: LeaseInfo | None,
    events: Sequence[Event],
    graph: CompiledWorkflow | None,
    now: float | None,
) -> list[Reason]:
    if snap.status != C.STATUS_FAILED:
        return []
    error = snap.last_error
    first = _first_failure(snap)
    details: dict[str, Any] = {"error": None if error is None else error.to_dict()}
    text = "it failed" + ("" if error is None else f" with {_error_text(error)}")
    if first is not None and (error is None or first.to_dict() != error.to_dict()):
        details["first_error"] = first.to_dict()
        text += f"; it began with {_error_text(first)}"
    record = snap.extra.get("redrive")
    can = C.STATUS_FAILED in ALLOWED["redrive"] and isinstance(record, Mapping) and bool(record)
    details["redrivable"] = can
    if can:
        assert isinstance(record, Mapping)
        again = record.get("node") or (error.node if error is not None else None)
        hint = f"runs redrive runs {f'node {again!r}' if again else 'the failed node'} again"
    else:
        hint = "no redrive record (it failed before a node ran, or an old version wrote it): "
        hint += "only a new run can do it again"
    return [Reason("failed", text, details, hint)]


def _first_failure(snap: RunSnapshot) -> WorkflowError | None:
    """The error of the audit trail's first failed step since the run last moved on."""
    first = None
    for rec in reversed(snap.audit_trail):
        if rec.error is None:
            if rec.status == C.STATUS_SUCCEEDED and first is not None:
                break
            continue
        first = rec.error
    return first


def _error_text(error: WorkflowError) -> str:
    where = f" at node {error.node!r}" if error.node else ""
    message = " ".join(str(error.message).split())
    return f"{error.code}{where}: {message if len(message) <= 200 else message[:197] + '...'}"


# ---------------------------------------------------------------------- waits and timers


def _waits(
    snap: RunSnapshot,
    lease: LeaseInfo | None,
    events: Sequence[Event],
    graph: CompiledWorkflow | None,
    now: float | None,
) -> list[Reason]:
    if snap.status != C.STATUS_WAITING:
        return []
    try:
        waits = waiting_paths(snap.status, list(snap.ready_now), snap.extra, snap.waiting_prompt)
    except (TypeError, ValueError, AttributeError):
        waits = {}
    if not waits:
        return [
            Reason(
                "waiting",
                "it is waiting, but records no node it waits at",
                {},
                "runs show --json shows what it holds",
            )
        ]
    since = _waiting_since(snap, events)
    out = []
    for path, prompt in sorted(waits.items()):
        node = path.partition("/")[0]
        timer = node_timer(snap.extra, node)
        details: dict[str, Any] = {"node": path, "prompt": prompt, "since": since}
        text = f"node {path!r} waits for an answer"
        text += "" if prompt is None else f" to {prompt!r}"
        text += "" if since is None else f", since {since}"
        kind = "waiting"
        if timer is not None:
            due, timer_kind = timer
            details["due"] = due
            when = _when(due, now)
            if timer_kind == "sleep":
                kind = "sleeping"
                text = f"node {path!r} sleeps until {when}"
            else:
                text += f"; its deadline is {when}"
        token = _resume_token(snap.extra, node)
        if token is not None:
            details["resume_token"] = token
        hint = f"runs resume {snap.run_id} --node {path} --input JSON answers it"
        if kind == "sleeping":
            hint = "it wakes when its time comes and something resumes due runs"
        out.append(Reason(kind, text, details, hint))
    return out


def _waiting_since(snap: RunSnapshot, events: Sequence[Event]) -> str | None:
    """When the run paused: its last ``wf:waiting`` event, else its last checkpoint."""
    for event in reversed(events):
        if event.kind == C.EVENT_WF_WAITING:
            return event.ts
    return snap.updated_at


def _resume_token(extra: Mapping[str, Any], node: str) -> Any:
    """A waiting node's open resume token (its digest, ``extra["tokens"][node]``), if any."""
    tokens = extra.get("tokens")
    return tokens.get(node) if isinstance(tokens, Mapping) else None


def _when(epoch: float, now: float | None) -> str:
    """An instant as UTC ISO text, and how far it is from ``now`` when that is known."""
    from datetime import UTC, datetime

    try:
        text = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        text = f"{epoch!r} (epoch seconds)"
    if now is None:
        return text
    delta = epoch - now
    return f"{text} (in {delta:.0f} s)" if delta >= 0 else f"{text} ({-delta:.0f} s ago)"


# ---------------------------------------------------------------------- a running run


def _retrying(
    snap: RunSnapshot,
    lease: LeaseInfo | None,
    events: Sequence[Event],
    graph: CompiledWorkflow | None,
    now: float | None,
) -> list[Reason]:
    """A running run whose last event is a ``node:retry``: it sleeps until the next attempt."""
    if snap.status != C.STATUS_RUNNING or not events or events[-1].kind != C.EVENT_NODE_RETRY:
        return []
    event = events[-1]
    data = event.data
    delay = data.get("delay_seconds")
    attempt, most = data.get("attempt"), data.get("max_retries")
    details: dict[str, Any] = {
        "node": event.node,
        "attempt": attempt,
        "max_retries": most,
        "error": data.get("error"),
        "since": event.ts,
    }
    text = f"node {event.node!r} failed attempt {attempt} of {_plus_one(most)}"
    text += f" ({data.get('error')})" if data.get("error") else ""
    start = _epoch(event.ts)
    if isinstance(delay, int | float) and not isinstance(delay, bool) and start is not None:
        until = start + float(delay)
        details["until"] = until
        text += f"; the next attempt is due at {_when(until, now)}"
    hint = "its driver retries it by itself; wait"
    if lease is not None and not lease.live:
        hint = (
            f"nobody drives it now (its lease is not held): runs resume {snap.run_id} continues it"
        )
    return [Reason("retrying", text, details, hint)]


def _plus_one(value: Any) -> str:
    return str(value + 1) if isinstance(value, int) and not isinstance(value, bool) else "?"


def _epoch(ts: str) -> float | None:
    from datetime import datetime

    try:
        return datetime.fromisoformat(ts).timestamp()
    except (TypeError, ValueError):
        return None


def _lease(
    snap: RunSnapshot,
    lease: LeaseInfo | None,
    events: Sequence[Event],
    graph: CompiledWorkflow | None,
    now: float | None,
) -> list[Reason]:
    """Who drives the run (a live lease) or that nobody does (a running run without one)."""
    if lease is not None and lease.live:
        who = _holder(lease)
        expires = lease.expires_in_seconds
        text = f"a lease held by {who} keeps other drivers out"
        text += (
            "" if expires is None else f"; it expires in {max(expires, 0.0):.0f} s unless renewed"
        )
        at = snap.ready_now[0] if snap.ready_now else snap.last_node
        if snap.status == C.STATUS_RUNNING and at:
            text += f" (the run is at node {at!r})"
        hint = "wait for its driver"
        if lease.holder_alive is None:
            hint += f", or if that process is gone: store.break_lease('{snap.run_id}')"
        return [Reason("leased", text, {"lease": lease.to_dict()}, hint)]
    if snap.status != C.STATUS_RUNNING:
        return []
    if lease is None:
        text = "it is marked running, but its store records no lease (no driver can be seen)"
    elif lease.owner is None:
        text = "it is marked running, but nobody holds its lease: its driver stopped mid-run"
    elif lease.holder_alive is False:
        text = f"its lease was held by {_holder(lease)}, which is gone: its driver died mid-run"
    else:
        text = f"the lease of {_holder(lease)} lapsed: its driver stopped renewing it mid-run"
    details = {"lease": None if lease is None else lease.to_dict()}
    return [Reason("unleased", text, details, f"runs resume {snap.run_id} continues it")]


def _holder(lease: LeaseInfo) -> str:
    where = f"process {lease.pid}" if lease.pid is not None else "a process"
    where += f" on {lease.host}" if lease.host else ""
    state = {True: "alive", False: "gone", None: "alive or not: unknown from here"}
    return f"{where} ({state[lease.holder_alive]}, token {lease.token})"


# ---------------------------------------------------------------------- the definition


def _definition(
    snap: RunSnapshot,
    lease: LeaseInfo | None,
    events: Sequence[Event],
    graph: CompiledWorkflow | None,
    now: float | None,
) -> list[Reason]:
    """A definition whose hash is not the run's: continuing is refused; would migrate take it?"""
    if graph is None or snap.wf_hash == graph.hash or snap.status == C.STATUS_SUCCEEDED:
        return []
    from ._upgrade import BLOCKED, MIGRATABLE, _judge

    if graph.name != snap.workflow_name:
        text = (
            f"the definition given is workflow {graph.name!r}, this run is {snap.workflow_name!r}"
        )
        mismatch: dict[str, Any] = {
            "run_hash": snap.wf_hash,
            "definition_hash": graph.hash,
            "verdict": None,
        }
        return [Reason("definition", text, mismatch, "give this run's own definition")]
    verdict = _judge(snap, graph, {}, {})
    text = (
        f"it was started with definition {snap.wf_hash[:12]}, the one given is "
        f"{graph.hash[:12]}: resume and redrive refuse a definition whose hash differs"
    )
    details: dict[str, Any] = {
        "run_hash": snap.wf_hash,
        "definition_hash": graph.hash,
        "verdict": verdict.verdict,
        "problems": list(verdict.reasons) if verdict.verdict == BLOCKED else [],
    }
    if verdict.verdict == MIGRATABLE:
        hint = "migrate would take it (runs check-upgrade NEW_DEF --apply migrates it)"
    elif verdict.verdict == BLOCKED:
        hint = "migrate would refuse it: " + "; ".join(verdict.reasons)
    else:
        hint = "whether migrate would take it is unknown: " + "; ".join(verdict.reasons)
    return [Reason("definition", text, details, hint)]


def _stranded(
    snap: RunSnapshot,
    lease: LeaseInfo | None,
    events: Sequence[Event],
    graph: CompiledWorkflow | None,
    now: float | None,
) -> list[Reason]:
    """AND-joins that got some arrivals and can get no more: nothing queued can bring them."""
    error = snap.last_error
    if snap.status == C.STATUS_FAILED and error is not None and error.code == C.ERROR_JOIN_STRANDED:
        info = error.details if isinstance(error.details, Mapping) else {}
        joins = [
            (str(error.node), list(info.get("arrived") or ()), list(info.get("missing") or ()))
        ]
    elif graph is None or graph.hash != snap.wf_hash or snap.ready_now or snap.ready_next_wave:
        return []
    else:
        frontier = Frontier(snap.wave, (), (), snap.arrivals)
        joins = frontier.stranded_joins(graph)
    out = []
    for target, arrived, missing in joins:
        text = (
            f"AND-join {target!r} got {', '.join(map(str, arrived)) or 'nothing'} but waits for "
            f"{', '.join(map(str, missing))}, which nothing queued can bring"
        )
        out.append(
            Reason(
                "stranded_join",
                text,
                {"node": target, "arrived": arrived, "missing": missing},
                "lint ZF103 finds such joins; fork the run and route the missing branch",
            )
        )
    return out


_JUDGES: Final[tuple[_Judge, ...]] = (
    _finished,
    _failed,
    _waits,
    _retrying,
    _lease,
    _definition,
    _stranded,
)
