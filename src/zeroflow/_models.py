"""The public records of a run: errors, step records, events, snapshots, results.

Each record is a small dataclass with explicit ``to_dict`` / ``from_dict``
that round-trip through JSON with the key names of zeroflow 0.1.0, so
snapshots written by either version load in the other.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ._constants import STATUS_RUNNING, STATUS_WAITING
from ._fastinit import install as _fast_init
from ._frozen import thaw
from ._policies import EnginePolicy

if TYPE_CHECKING:
    from ._stats import NodeStats

__all__ = [
    "WorkflowError",
    "StepRecord",
    "WorkflowState",
    "RunSnapshot",
    "RunMetadata",
    "Event",
    "EnginePolicy",
    "HandlerResult",
    "WorkflowResult",
    "WorkflowContext",
    "json_clone",
    "now_iso",
    "LAST_ISO",
]


def json_clone(value: Any) -> Any:
    """Return a JSON round-trip copy of ``value``; ``TypeError`` if JSON cannot hold it."""
    import json

    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"workflow state must be JSON-serializable: {exc}") from exc


LAST_ISO: list[tuple[int, str]] = [(-1, "")]
"""``now_iso``'s last second and its text, one tuple (threads replace it whole, never half).

The stored run's recorder reads it inline for every event: ``LAST_ISO[0][1]`` when
``LAST_ISO[0][0]`` is the clock's second, else ``now_iso(second)``, which keeps it here.
"""


def now_iso(ts: float | None = None) -> str:
    """ISO-8601 UTC timestamp with seconds precision, e.g. ``2026-01-01T00:00:00+00:00``."""
    sec = int(time.time() if ts is None else ts)
    cached_sec, cached_text = LAST_ISO[0]
    if sec == cached_sec:
        return cached_text
    from datetime import UTC, datetime  # once a second at most: the text above is cached

    text = datetime.fromtimestamp(sec, UTC).isoformat(timespec="seconds")
    LAST_ISO[0] = (sec, text)
    return text


def _opt_seq(value: Any) -> int | None:
    """A checkpoint identity from a snapshot dict: a non-negative int, or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"seq must be a non-negative integer, got {value!r}")
    return value


def _compensation_error(error: WorkflowError | None) -> WorkflowError | None:
    """The compensation failure a failed run's error carries (``details``), if any."""
    failed = None if error is None else error.details.get("compensation_failed")
    return WorkflowError.from_dict(failed) if isinstance(failed, Mapping) else None


def _opt_float(value: Any) -> float | None:
    """A finite number as a float; anything else (a damaged summary) as None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if number == number and abs(number) != float("inf") else None


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class WorkflowError:
    """Why a node or a run failed: a stable ``code``, a message and its evidence."""

    code: str
    message: str
    node: str | None = None
    retryable: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    cause_type: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "node": self.node,
            "retryable": self.retryable,
            "details": thaw(self.details),
            "cause_type": self.cause_type,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkflowError:
        return cls(
            code=str(data["code"]),
            message=str(data.get("message", "")),
            node=_opt_str(data.get("node")),
            retryable=bool(data.get("retryable", False)),
            details=dict(data.get("details") or {}),
            cause_type=_opt_str(data.get("cause_type")),
        )


def _error_or_none(data: Any) -> WorkflowError | None:
    return None if data is None else WorkflowError.from_dict(data)


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One row of the audit trail: a node execution and how it ended."""

    step: int
    wave: int
    node: str
    status: str
    ts: str
    outputs: list[str] = field(default_factory=list)
    error: WorkflowError | None = None
    waiting: bool = False
    duration_ms: float | None = None
    retries: int = 0
    """Attempts made before the one recorded (0: it settled at the first call)."""
    kind: str = "node"
    """``"node"`` (the node ran), ``"compensation"`` (its compensate handler undid a visit),
    ``"override"`` (``redrive(override=...)`` gave its result) or ``"detached"`` (the failed
    row of a detached node: a failure that did not stop the run)."""
    details: dict[str, Any] | None = None
    """What the ``kind`` adds: the visit a compensation undid (``{"step": N}``), an
    override's ``actor`` and ``reason``."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "step": self.step,
            "wave": self.wave,
            "node": self.node,
            "status": self.status,
            "ts": self.ts,
            "outputs": list(self.outputs),
            "error": None if self.error is None else self.error.to_dict(),
            "waiting": self.waiting,
            "duration_ms": self.duration_ms,
        }
        if self.retries:  # only then: a record without retries keeps 0.1.0's keys
            out["retries"] = self.retries
        if self.kind != "node":  # 0.1.0's rows stay byte for byte what they were
            out["kind"] = self.kind
        if self.details is not None:
            out["details"] = dict(self.details)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepRecord:
        return cls(
            step=int(data["step"]),
            wave=int(data.get("wave", 1)),
            node=str(data["node"]),
            status=str(data["status"]),
            ts=str(data.get("ts", "")),
            outputs=[str(o) for o in data.get("outputs") or []],
            error=_error_or_none(data.get("error")),
            waiting=bool(data.get("waiting", False)),
            duration_ms=None if data.get("duration_ms") is None else float(data["duration_ms"]),
            retries=int(data.get("retries") or 0),
            kind=str(data.get("kind", "node")),
            details=dict(data["details"]) if isinstance(data.get("details"), Mapping) else None,
        )


@dataclass(slots=True)
class WorkflowState:
    """The data a run carries: its ``input``, shared ``workflow`` data and per-``node`` data."""

    input: dict[str, Any] = field(default_factory=dict)
    workflow: dict[str, Any] = field(default_factory=dict)
    node: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"input": thaw(self.input), "workflow": thaw(self.workflow), "node": thaw(self.node)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> WorkflowState:
        data = data or {}
        return cls(
            input=thaw(dict(data.get("input") or {})),
            workflow=thaw(dict(data.get("workflow") or {})),
            node=thaw(dict(data.get("node") or {})),
        )

    def _node_state(self, node: str) -> dict[str, Any]:
        """``ctx.node_state`` of ``node``: a shallow copy of its entry, or ``{}``, as in 0.1.0."""
        found = self.node.get(node)
        if found is None:
            return {}
        return dict(found) if isinstance(found, dict) else found


@dataclass(frozen=True, slots=True)
class RunMetadata:
    """A small summary of a run, cheap to list from a store."""

    workflow_name: str
    workflow_hash: str
    status: str
    started_at: str | None = None
    updated_at: str | None = None
    current_node: str | None = None
    waiting: bool = False
    last_error: WorkflowError | None = None
    run_id: str | None = None
    waiting_nodes: tuple[str, ...] = ()
    """Every node a waiting run waits on (paths such as ``"approve/legal"`` for a subflow
    waiting at several places), in the order the run paused on them; ``current_node`` is
    the first. Empty unless the run is waiting."""
    due_at: float | None = None
    """When a waiting run's earliest timer fires (a ``sleep`` node's wake-up or a wait
    deadline; epoch seconds of the engine's clock): what ``engine.resume_due`` looks at."""
    wait_reason: str | None = None
    """Why a waiting run waits: ``"timer"`` (only sleep nodes hold it) or ``"input"``."""

    @property
    def compensated(self) -> bool:
        """The run failed and every completed visit's compensation ran (see ``compensate``)."""
        return self.last_error is not None and self.last_error.details.get("compensated") is True

    @property
    def compensation_failed(self) -> WorkflowError | None:
        """The error of the compensation that gave up, when the run's undoing stopped."""
        return _compensation_error(self.last_error)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "workflow_name": self.workflow_name,
            "workflow_hash": self.workflow_hash,
            "status": self.status,
            "started_at": self.started_at,
            "updated_at": self.updated_at,
            "current_node": self.current_node,
            "waiting": self.waiting,
            "last_error": None if self.last_error is None else self.last_error.to_dict(),
        }
        if self.run_id is not None:
            out["run_id"] = self.run_id
        if self.waiting_nodes:
            out["waiting_nodes"] = list(self.waiting_nodes)
        if self.due_at is not None:
            out["due_at"] = self.due_at
        if self.wait_reason is not None:
            out["wait_reason"] = self.wait_reason
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunMetadata:
        return cls(
            workflow_name=str(data.get("workflow_name", "")),
            workflow_hash=str(data.get("workflow_hash", "")),
            status=str(data.get("status", "")),
            started_at=_opt_str(data.get("started_at")),
            updated_at=_opt_str(data.get("updated_at")),
            current_node=_opt_str(data.get("current_node")),
            waiting=bool(data.get("waiting", False)),
            last_error=_error_or_none(data.get("last_error")),
            run_id=_opt_str(data.get("run_id")),
            waiting_nodes=tuple(str(n) for n in data.get("waiting_nodes") or ()),
            due_at=_opt_float(data.get("due_at")),
            wait_reason=_opt_str(data.get("wait_reason")),
        )


@dataclass(slots=True)
class RunSnapshot:
    """Everything needed to continue a run: queues, state, history. Mutable, like 0.1.0's."""

    run_id: str
    workflow_name: str
    wf_hash: str
    status: str = STATUS_RUNNING
    step: int = 0
    wave: int = 1
    ready_now: list[str] = field(default_factory=list)
    ready_next_wave: list[str] = field(default_factory=list)
    state: WorkflowState = field(default_factory=WorkflowState)
    trace: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    audit_trail: list[StepRecord] = field(default_factory=list)
    arrivals: dict[str, list[str]] = field(default_factory=dict)
    executed_this_wave: list[str] = field(default_factory=list)
    last_node: str | None = None
    waiting_prompt: str | None = None
    last_error: WorkflowError | None = None
    started_at: str | None = field(default_factory=now_iso)
    updated_at: str | None = field(default_factory=now_iso)
    deadline_ts: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Data of features beyond 0.1.0 (waiting nodes, subflow children, map progress).

    Stored under the ``"zeroflow"`` key of the snapshot dict so 0.1.0 ignores it.
    """
    seq: int | None = None
    """The checkpoint's identity in its store: a per-run number that never repeats.

    Set by the store that wrote the checkpoint (None for a snapshot no store
    numbered, e.g. one of 0.1.0); a resume is refused unless it is the latest.
    """

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "run_id": self.run_id,
            "workflow_name": self.workflow_name,
            "wf_hash": self.wf_hash,
            "status": self.status,
            "step": self.step,
            "wave": self.wave,
            "ready_now": list(self.ready_now),
            "ready_next_wave": list(self.ready_next_wave),
            "state": self.state.to_dict(),
            "trace": list(self.trace),
            "tags": list(self.tags),
            "audit_trail": [r.to_dict() for r in self.audit_trail],
            "arrivals": {k: list(v) for k, v in self.arrivals.items()},
            "executed_this_wave": list(self.executed_this_wave),
            "last_node": self.last_node,
            "waiting_prompt": self.waiting_prompt,
            "last_error": None if self.last_error is None else self.last_error.to_dict(),
            "started_at": self.started_at,
            "updated_at": self.updated_at,
            "deadline_ts": self.deadline_ts,
        }
        if self.extra:
            out["zeroflow"] = thaw(self.extra)
        if self.seq is not None:
            out["seq"] = self.seq
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSnapshot:
        deadline = data.get("deadline_ts")
        return cls(
            run_id=str(data["run_id"]),
            workflow_name=str(data["workflow_name"]),
            wf_hash=str(data["wf_hash"]),
            status=str(data.get("status", STATUS_RUNNING)),
            step=int(data.get("step", 0)),
            wave=int(data.get("wave", 1)),
            ready_now=[str(n) for n in data.get("ready_now") or []],
            ready_next_wave=[str(n) for n in data.get("ready_next_wave") or []],
            state=WorkflowState.from_dict(data.get("state")),
            trace=[str(n) for n in data.get("trace") or []],
            tags=[str(t) for t in data.get("tags") or []],
            audit_trail=[StepRecord.from_dict(r) for r in data.get("audit_trail") or []],
            arrivals={str(k): [str(n) for n in v] for k, v in (data.get("arrivals") or {}).items()},
            executed_this_wave=[str(n) for n in data.get("executed_this_wave") or []],
            last_node=_opt_str(data.get("last_node")),
            waiting_prompt=_opt_str(data.get("waiting_prompt")),
            last_error=_error_or_none(data.get("last_error")),
            # As 0.1.0: a missing stamp is "now", an explicit null stays None.
            started_at=_opt_str(data["started_at"]) if "started_at" in data else now_iso(),
            updated_at=_opt_str(data["updated_at"]) if "updated_at" in data else now_iso(),
            deadline_ts=None if deadline is None else float(deadline),
            extra=thaw(dict(data.get("zeroflow") or {})),
            seq=_opt_seq(data.get("seq")),
        )

    def copy(self) -> RunSnapshot:
        """An independent deep copy (records are immutable and shared)."""
        return RunSnapshot(
            run_id=self.run_id,
            workflow_name=self.workflow_name,
            wf_hash=self.wf_hash,
            status=self.status,
            step=self.step,
            wave=self.wave,
            ready_now=list(self.ready_now),
            ready_next_wave=list(self.ready_next_wave),
            state=WorkflowState(
                input=thaw(self.state.input),
                workflow=thaw(self.state.workflow),
                node=thaw(self.state.node),
            ),
            trace=list(self.trace),
            tags=list(self.tags),
            audit_trail=list(self.audit_trail),
            arrivals={k: list(v) for k, v in self.arrivals.items()},
            executed_this_wave=list(self.executed_this_wave),
            last_node=self.last_node,
            waiting_prompt=self.waiting_prompt,
            last_error=self.last_error,
            started_at=self.started_at,
            updated_at=self.updated_at,
            deadline_ts=self.deadline_ts,
            extra=thaw(self.extra),
            seq=self.seq,
        )

    def metadata(self) -> RunMetadata:
        """The run's ``RunMetadata`` summary."""
        return RunMetadata(
            workflow_name=self.workflow_name,
            workflow_hash=self.wf_hash,
            status=self.status,
            started_at=self.started_at,
            updated_at=self.updated_at,
            current_node=self.last_node,
            waiting=self.status == STATUS_WAITING,
            last_error=self.last_error,
            run_id=self.run_id,
        )


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened in a run, as delivered to ``event_callback``."""

    run_id: str
    step: int
    wave: int
    node: str | None
    kind: str
    ts: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "step": self.step,
            "wave": self.wave,
            "node": self.node,
            "kind": self.kind,
            "ts": self.ts,
            "data": thaw(self.data),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        return cls(
            run_id=str(data["run_id"]),
            step=int(data.get("step", 0)),
            wave=int(data.get("wave", 1)),
            node=_opt_str(data.get("node")),
            kind=str(data["kind"]),
            ts=str(data.get("ts", "")),
            data=dict(data.get("data") or {}),
        )


@dataclass(frozen=True, slots=True)
class HandlerResult:
    """What a handler returns: the outputs to route on, updates, tags, an error or a pause."""

    outputs: list[str] = field(default_factory=list)
    workflow_updates: dict[str, Any] | None = None
    node_updates: dict[str, Any] | None = None
    tags: list[str] | None = None
    error: WorkflowError | None = None
    waiting: bool = False
    waiting_prompt: str | None = None


@dataclass(frozen=True, slots=True)
class WorkflowResult:
    """How a ``run()`` call ended; ``checkpoint`` resumes or redrives it."""

    run_id: str
    success: bool
    status: str
    trace: list[str]
    tags: list[str]
    state: WorkflowState
    audit_trail: list[StepRecord]
    error: WorkflowError | None = None
    waiting: bool = False
    waiting_prompt: str | None = None
    checkpoint: RunSnapshot | None = None
    cancelled: bool = False
    waiting_nodes: dict[str, str | None] = field(default_factory=dict)
    compensated: bool = False
    """The run failed and the compensations of its completed visits all ran."""
    compensation_failed: WorkflowError | None = None
    """The error of the compensation that failed for good (the others after it did not run)."""
    warnings: list[WorkflowError] = field(default_factory=list)
    """Failures that did not stop the run: those of ``detached`` nodes, in order."""
    resume_tokens: dict[str, str] = field(default_factory=dict)
    """The single-use token of each wait this call paused on (keyed as ``waiting_nodes``):
    put it in the approval link; ``resume(..., token=...)`` accepts it once. Handed out
    only here: the store keeps its digest."""

    @property
    def stats(self) -> dict[str, NodeStats]:
        """Per node (in the order nodes first ran): executions, failures, retries, durations.

        Computed from ``audit_trail`` when read, so a run pays nothing for it;
        a resumed run's figures cover the whole run, not only the last call.
        """
        from ._stats import node_stats

        return node_stats(self.audit_trail)


class EffectHost(Protocol):
    """What records a run's effects for ``ctx.effect`` (the engine's ``_run.effects``)."""

    def effect(
        self,
        ctx: WorkflowContext,
        key: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any: ...

    async def aeffect(
        self,
        ctx: WorkflowContext,
        key: str,
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any: ...

    def idempotency_key(self, ctx: WorkflowContext) -> str: ...


@dataclass(frozen=True, slots=True)
class WorkflowContext:
    """What a handler sees: where it is in the run, the state, its config and services.

    What a handler does to ``state``, ``node_state`` or ``node_config`` never
    reaches the run; only the updates it returns do. ``engine_policy.state_isolation``
    decides how: ``"private"`` gives views the handler may change, copied level by
    level as it reads them; ``"readonly"`` the engine's own containers, which
    refuse any mutation with ``TypeError``; ``"copy"`` a deep copy, as 0.1.0 did.
    """

    workflow_name: str
    workflow_hash: str
    run_id: str
    node_name: str
    node_config: dict[str, Any]
    step: int
    wave: int
    state: WorkflowState
    services: Mapping[str, Any]
    deadline_ts: float | None
    emit: Callable[..., None]
    item: Any = None
    map_index: int | None = None
    attempt: int = 1
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)
    """The engine's clock, the one ``deadline_ts`` was computed with."""
    effects: EffectHost | None = field(default=None, repr=False, compare=False)
    """The run's effect records (None in a context built by hand: effects just call ``fn``)."""

    def effect(self, key: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call ``fn(*args, **kwargs)`` once per visit of this node and return its receipt.

        The intent ``key`` is recorded durably before ``fn`` runs and its
        JSON-serialisable result (the receipt) after; when the node runs again
        in the same visit (a retry, a resume after a crash, a redrive) the
        recorded receipt is returned (a private copy) and ``fn`` is not called.
        An intent without a receipt fails the node with ``EFFECT_UNCERTAIN``;
        a receipt JSON cannot hold fails it with ``STATE_SERIALIZATION``; an
        exception from ``fn`` withdraws the intent and propagates. Let the
        ``EffectError`` it may raise propagate.
        """
        host = self.effects
        if host is None:
            return fn(*args, **kwargs)
        return host.effect(self, key, fn, args, kwargs)

    async def aeffect(
        self, key: str, fn: Callable[..., Awaitable[Any]], /, *args: Any, **kwargs: Any
    ) -> Any:
        """``effect`` for an async ``fn``: ``await ctx.aeffect("charge", api.charge, amount)``."""
        host = self.effects
        if host is None:
            return await fn(*args, **kwargs)
        return await host.aeffect(self, key, fn, args, kwargs)

    @property
    def idempotency_key(self) -> str:
        """A key stable for one execution of this node: ``<run id>/<node>/<visit step>``.

        The visit step is the step at which the node's current visit began; it is
        recorded with the run on first use, so the same key comes back on a retry,
        a resume after a crash and a redrive, and the next visit gets another one.
        Inside a map the item's index follows (``.../<index>``).
        """
        host = self.effects
        if host is None:
            base = f"{self.run_id}/{self.node_name}/{self.step}"
            return base if self.map_index is None else f"{base}/{self.map_index}"
        return host.idempotency_key(self)

    def is_timed_out(self) -> bool:
        """True once the deadline (node or workflow, the earlier) has passed."""
        return self.deadline_ts is not None and self.clock() >= self.deadline_ts

    def remaining_seconds(self) -> float | None:
        """Seconds left before the deadline, clamped at 0; None without a deadline."""
        if self.deadline_ts is None:
            return None
        return max(0.0, self.deadline_ts - self.clock())

    @property
    def node_state(self) -> dict[str, Any]:
        """A copy of this node's entry of ``state.node`` (empty before it wrote any).

        The same kind of object on every visit: a private view, a read-only view
        or a plain ``dict``, as ``state_isolation`` says.
        """
        state = self.state
        if isinstance(state, WorkflowState):
            return state._node_state(self.node_name)
        found = state.node.get(self.node_name)  # a stand-in state object
        return {} if found is None else dict(found)


for _cls in (WorkflowError, StepRecord, Event, HandlerResult, WorkflowResult, WorkflowContext):
    _fast_init(_cls)
