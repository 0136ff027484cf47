"""Step deltas: what one node changed, so stores can persist O(change), not O(run).

After each completed node the engine describes the change as a ``StepDelta``
(records, trace and tags appended, state operations, the new queues). A store
that implements ``append_step`` writes only that; ``apply_delta`` replays it
onto a snapshot, so "last full snapshot + deltas" equals the live run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._fastinit import install as _fast_init
from ._frozen import thaw
from ._models import RunSnapshot, StepRecord, WorkflowError

__all__ = ["StateOp", "StepDelta", "apply_delta", "apply_state_op"]

# ("merge" | "set" | "del", path, value); path starts with "input", "workflow", "node"
# or "extra" (data of features beyond 0.1.0, such as map progress).
StateOp = tuple[str, tuple[str, ...], Any]


@dataclass(frozen=True, slots=True)
class StepDelta:
    """The change one or more steps made to a run since the previous checkpoint.

    Values inside ``ops`` may share structure with the live run: a store must
    serialise or copy them before ``append_step`` returns.
    """

    run_id: str
    step: int
    wave: int
    status: str
    updated_at: str | None
    ready_now: list[str]
    ready_next_wave: list[str]
    arrivals: dict[str, list[str]]
    executed_this_wave: list[str]
    last_node: str | None
    waiting_prompt: str | None
    last_error: WorkflowError | None
    trace: Sequence[str] = ()
    tags: Sequence[str] = ()
    records: Sequence[StepRecord] = ()
    ops: Sequence[StateOp] = ()
    extra: dict[str, Any] | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "run_id": self.run_id,
            "step": self.step,
            "wave": self.wave,
            "status": self.status,
            "updated_at": self.updated_at,
            "ready_now": list(self.ready_now),
            "ready_next_wave": list(self.ready_next_wave),
            "arrivals": {k: list(v) for k, v in self.arrivals.items()},
            "executed_this_wave": list(self.executed_this_wave),
            "last_node": self.last_node,
            "waiting_prompt": self.waiting_prompt,
            "last_error": None if self.last_error is None else self.last_error.to_dict(),
            "trace": list(self.trace),
            "tags": list(self.tags),
            "records": [r.to_dict() for r in self.records],
            "ops": [[op, list(path), thaw(value)] for op, path, value in self.ops],
        }
        if self.extra is not None:
            out["extra"] = thaw(self.extra)
        return out

    def to_json_data(self) -> dict[str, Any]:
        """What ``to_dict`` gives, sharing this delta's lists and values instead of copying.

        For encoding at once (stores write each delta as JSON text): the JSON
        encoder takes the frozen state values as they are, so a map node with
        thousands of progress operations is not deep-copied first.
        """
        out: dict[str, Any] = {
            "run_id": self.run_id,
            "step": self.step,
            "wave": self.wave,
            "status": self.status,
            "updated_at": self.updated_at,
            "ready_now": self.ready_now,
            "ready_next_wave": self.ready_next_wave,
            "arrivals": self.arrivals,
            "executed_this_wave": self.executed_this_wave,
            "last_node": self.last_node,
            "waiting_prompt": self.waiting_prompt,
            "last_error": None if self.last_error is None else self.last_error.to_dict(),
            "trace": self.trace,
            "tags": self.tags,
            "records": [r.to_dict() for r in self.records],
            "ops": [(op, path, value) for op, path, value in self.ops],
        }
        if self.extra is not None:
            out["extra"] = self.extra
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepDelta:
        err = data.get("last_error")
        return cls(
            run_id=str(data["run_id"]),
            step=int(data["step"]),
            wave=int(data["wave"]),
            status=str(data["status"]),
            updated_at=data.get("updated_at"),
            ready_now=list(data.get("ready_now") or []),
            ready_next_wave=list(data.get("ready_next_wave") or []),
            arrivals={k: list(v) for k, v in (data.get("arrivals") or {}).items()},
            executed_this_wave=list(data.get("executed_this_wave") or []),
            last_node=data.get("last_node"),
            waiting_prompt=data.get("waiting_prompt"),
            last_error=None if err is None else WorkflowError.from_dict(err),
            trace=list(data.get("trace") or []),
            tags=list(data.get("tags") or []),
            records=[StepRecord.from_dict(r) for r in data.get("records") or []],
            ops=[(str(op), tuple(path), value) for op, path, value in data.get("ops") or []],
            extra=data.get("extra"),
        )


def _merge_plain(target: dict[str, Any], update: Mapping[str, Any]) -> None:
    for k, v in update.items():
        if isinstance(v, Mapping):
            cur = target.get(k)
            if isinstance(cur, dict):
                _merge_plain(cur, v)
                continue
        target[k] = thaw(v)


def apply_state_op(state: dict[str, dict[str, Any]], op: StateOp) -> None:
    """Apply one state operation to plain ``{"input", "workflow", "node"}`` dicts."""
    kind, path, value = op
    parent: dict[str, Any] = state[path[0]]
    for key in path[1:-1]:
        parent = parent.setdefault(key, {})
    if kind == "merge":
        if len(path) > 1:
            parent = parent.setdefault(path[-1], {})
        _merge_plain(parent, value)
    elif kind == "set":
        parent[path[-1]] = thaw(value)
    elif kind == "del":
        parent.pop(path[-1], None)
    else:
        raise ValueError(f"unknown state operation {kind!r}")


def apply_delta(snapshot: RunSnapshot, delta: StepDelta) -> None:
    """Replay ``delta`` onto ``snapshot`` in place; the snapshot must hold plain data."""
    sections = {
        "input": snapshot.state.input,
        "workflow": snapshot.state.workflow,
        "node": snapshot.state.node,
        "extra": snapshot.extra,
    }
    for op in delta.ops:
        apply_state_op(sections, op)
    snapshot.trace.extend(delta.trace)
    snapshot.tags.extend(delta.tags)
    snapshot.audit_trail.extend(delta.records)
    snapshot.step = delta.step
    snapshot.wave = delta.wave
    snapshot.status = delta.status
    snapshot.updated_at = delta.updated_at
    snapshot.ready_now = list(delta.ready_now)
    snapshot.ready_next_wave = list(delta.ready_next_wave)
    snapshot.arrivals = {k: list(v) for k, v in delta.arrivals.items()}
    snapshot.executed_this_wave = list(delta.executed_this_wave)
    snapshot.last_node = delta.last_node
    snapshot.waiting_prompt = delta.waiting_prompt
    snapshot.last_error = delta.last_error
    if delta.extra is not None:
        snapshot.extra = thaw(delta.extra)


_fast_init(StepDelta)
