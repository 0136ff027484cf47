"""Saga compensation: undo the completed visits of a run that failed for good.

When a run is about to end ``failed`` (after retries and catchers), ``Saga.begin``
plans the compensation: every completed visit of a node that names a
``compensate`` handler, most recent first (a looped node once per visit). The
plan lives in ``snapshot.extra["compensation"]`` and shrinks as each
compensation succeeds and is checkpointed at once, so a crash resumes it where
it stopped (the one in flight runs again). ``Saga.steps`` runs the plan: each
compensation is a call of the node's ``compensate`` handler with the node's own
retry policy, recorded as a ``StepRecord`` of kind ``"compensation"``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Generator, Mapping
from typing import Any

from .. import _constants as C
from .._definition import CompiledNode, CompiledWorkflow
from .._errors import InvalidTransitionError, OverrideError
from .._frozen import FrozenDict, NotJSONError, freeze
from .._live import LiveRun
from .._models import RunSnapshot, StepRecord, WorkflowError, now_iso
from .recorder import Recorder
from .requests import Request, TimedOut
from .tasks import TaskCaller

__all__ = [
    "COMPENSATION",
    "VISIT_KEY",
    "Saga",
    "compensating",
    "compensation_outcome",
    "redrive_compensation",
]

COMPENSATION = "compensation"
"""The ``snapshot.extra`` key of a run's compensation: plan, state and error."""
VISIT_KEY = "__compensation__"
"""The ``state.workflow`` key a compensate handler reads: which visit it undoes, and why."""

_perf = time.perf_counter


def compensating(run: LiveRun) -> bool:
    """The run has compensations still to do (it failed, and was interrupted while undoing)."""
    record = run.snap.extra.get(COMPENSATION)
    return isinstance(record, Mapping) and record.get("state") == "running"


def compensation_outcome(
    extra: Mapping[str, Any],
) -> tuple[bool, WorkflowError | None]:
    """``(compensated, the failed compensation's error)`` of a run, from its ``extra``."""
    record = extra.get(COMPENSATION)
    if not isinstance(record, Mapping):
        return False, None
    failed = record.get("failed")
    if record.get("state") == "failed" and isinstance(failed, Mapping):
        return False, WorkflowError.from_dict(failed)
    return record.get("state") == "done", None


def redrive_compensation(snap: RunSnapshot, overriding: bool) -> bool:
    """Prepare a redrive of a run with a compensation record; True if it resumes undoing.

    A failed compensation is retried (it and the ones after it); a compensated run
    is refused (``InvalidTransitionError``): its completed work was undone.
    """
    record = snap.extra.get(COMPENSATION)
    if not isinstance(record, dict):
        return False
    state = record.get("state")
    if state == "done":
        raise InvalidTransitionError(
            f"run '{snap.run_id}' failed and its completed nodes were compensated (undone); "
            "it cannot be redriven: start a new run",
            run_id=snap.run_id,
            status=snap.status,
        )
    if overriding:
        raise OverrideError(
            f"run '{snap.run_id}' is undoing its completed nodes (its compensation "
            f"{'failed' if state == 'failed' else 'was interrupted'}); redrive it without "
            "override to carry the compensation on",
            run_id=snap.run_id,
            node=None,
        )
    snap.extra[COMPENSATION] = {**record, "state": "running"}
    snap.extra[COMPENSATION].pop("failed", None)
    return True


class Saga:
    """Plans and runs the compensations of one workflow's failed runs."""

    def __init__(
        self,
        graph: CompiledWorkflow,
        recorder: Recorder,
        tasks: TaskCaller,
        clock: Callable[[], float],
    ) -> None:
        # Each compensation is a call of the node's compensate handler as a plain task
        # (no map, no subflow), with the node's retry policy and outputs.
        self.undo: dict[str, CompiledNode] = {
            name: dataclasses.replace(node, handler=node.compensate, kind="task", map=None)
            for name, node in graph.nodes.items()
            if node.compensate is not None
        }
        self.recorder = recorder
        self.tasks = tasks
        self.clock = clock

    def begin(self, run: LiveRun, error: WorkflowError) -> bool:
        """Plan the compensations of ``run``, which failed with ``error``; False if none.

        The plan is written at once (``now=True``); the run stays ``running`` until
        ``steps`` has done it, and the workflow deadline no longer applies.
        """
        if not self.undo or COMPENSATION in run.snap.extra:
            return False
        plan = [
            [record.node, record.step]
            for record in reversed(run.snap.audit_trail)
            if record.node in self.undo
            and record.status == C.STATUS_SUCCEEDED
            and record.kind in ("node", "override")
        ]
        if not plan:
            return False
        run.snap.deadline_ts = None  # undoing must not be cut short by the deadline that failed it
        run.set_extra(COMPENSATION, {"state": "running", "error": error.to_dict(), "pending": plan})
        self.recorder.checkpoint(run, now=True)
        return True

    def steps(self, run: LiveRun) -> Generator[Request, Any, WorkflowError]:
        """Run the pending compensations, most recent visit first; return the run's error.

        The error is the original failure with ``details["compensated"] = True``, or
        with ``details["compensation_failed"]`` (the error of the compensation that
        gave up; the ones after it are not run). ``Cancelled`` escapes with the plan
        intact, so a resume or redrive carries on.
        """
        run.snap.deadline_ts = None  # (a redrive of the run set a new one)
        record = dict(run.snap.extra[COMPENSATION])
        error = WorkflowError.from_dict(record["error"])
        pending = [list(item) for item in record["pending"]]
        while pending:
            name, visit = str(pending[0][0]), int(pending[0][1])
            failure = yield from self._one(run, name, visit, error)
            if failure is not None:
                record.update(state="failed", pending=pending, failed=failure.to_dict())
                run.set_extra(COMPENSATION, record)
                run.delete_workflow_key(VISIT_KEY)
                return dataclasses.replace(
                    error, details={**error.details, "compensation_failed": failure.to_dict()}
                )
            pending.pop(0)
            record["pending"] = [list(item) for item in pending]
            run.set_extra(COMPENSATION, dict(record))
            self.recorder.checkpoint(run, now=True)
        record.update(state="done", pending=[])
        record.pop("failed", None)
        run.set_extra(COMPENSATION, record)
        run.delete_workflow_key(VISIT_KEY)
        return dataclasses.replace(error, details={**error.details, "compensated": True})

    def _one(
        self, run: LiveRun, name: str, visit: int, error: WorkflowError
    ) -> Generator[Request, Any, WorkflowError | None]:
        """Undo one visit of ``name``: its compensate handler, recorded; the failure or None."""
        node = self.undo.get(name)
        if node is None:  # the node lost its compensate handler in a migration: nothing to call
            return None
        snap = run.snap
        run.set_workflow_key(VISIT_KEY, {"node": name, "step": visit, "error": error.to_dict()})
        self.recorder.emit(run, C.EVENT_NODE_COMPENSATE, name, {"node": name, "step": visit})
        started = _perf()
        step = snap.step + 1
        try:
            result, failure, _ = yield from self.tasks.call(run, node, step)
        except TimedOut as timed_out:
            result, failure = None, timed_out.args[0]
        if failure is None and result is not None:
            failure = self._merge(run, node, result.workflow_updates, result.node_updates)
            if failure is None and result.waiting:
                failure = WorkflowError(
                    C.ERROR_INVALID_HANDLER_RESULT,
                    f"compensate handler '{node.handler}' of node '{name}' asked to wait; "
                    "a compensation cannot pause the run: return its result instead",
                    name,
                )
        snap.step = step
        snap.audit_trail.append(
            StepRecord(
                step,
                run.frontier.wave,
                name,
                C.STATUS_SUCCEEDED if failure is None else C.STATUS_FAILED,
                now_iso(self.clock()),
                [],
                failure,
                False,
                round((_perf() - started) * 1000.0, 3),
                kind="compensation",
                details={"step": visit},
            )
        )
        if failure is not None:
            self.recorder.emit(
                run,
                C.EVENT_NODE_COMPENSATION_FAILED,
                name,
                {"node": name, "step": visit, "error": failure.to_dict()},
            )
            return failure
        self.recorder.emit(run, C.EVENT_NODE_COMPENSATED, name, {"node": name, "step": visit})
        return None

    def _merge(
        self, run: LiveRun, node: CompiledNode, workflow: Any, per_node: Any
    ) -> WorkflowError | None:
        """Merge a compensation's updates as a node's; the error if JSON cannot hold them."""
        try:
            wf_up = None if workflow is None else freeze(workflow, "workflow_updates")
            node_up = None if per_node is None else freeze(per_node, "node_updates")
            for update in (wf_up, node_up):
                if update is not None and type(update) is not FrozenDict:
                    raise NotJSONError("workflow_updates/node_updates (must be dicts)", update)
        except (NotJSONError, TypeError) as exc:
            return WorkflowError(
                C.ERROR_STATE_SERIALIZATION,
                "workflow state is not JSON-serializable",
                node.name,
                details={"reason": str(exc)},
                cause_type="TypeError",
            )
        if wf_up:
            run.merge_workflow(wf_up)
        if node_up is not None:
            run.merge_node(node.name, node_up)
        return None
