"""The run loop: every decision of a run, and nothing else.

``RunLoop.steps`` walks one run (SPEC A3): it checks cancel and deadline,
opens waves, takes nodes (one, or a batch settled in queue order), settles
each outcome (merge and route, pause, or fail and route the error) and ends
the run. It yields the node runners' requests to a driver and tells the
recorder what to record; it never touches a store, a callback, a thread or
a clock of its own. ``RunLoop.call`` wraps it in the recorder's session.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import Any

from .. import _constants as C
from .._definition import CompiledNode, CompiledWorkflow
from .._fastinit import maker
from .._frozen import FrozenDict, NotJSONError, freeze, thaw
from .._live import LiveRun
from .._models import HandlerResult, StepRecord, WorkflowError, WorkflowResult, now_iso
from .._policies import Catcher
from .._scheduler import Frontier, build_routes
from .._timers import TIMER_SLEEP, TIMERS
from .._tokens import TOKENS, digest, mint, new_token
from .branches import STAND_INS, branch_of
from .compensation import Saga, compensating, compensation_outcome
from .effects import EFFECTS, drop_effects
from .lockstep import lockstep
from .nodes import NodeRunner
from .override import OVERRIDE, override_result
from .recorder import Recorder
from .requests import (
    DIRECT,
    Cancelled,
    DirectCaller,
    Outcome,
    Request,
    Steps,
    TimedOut,
)
from .waits import RESUMING, waiting_paths

__all__ = ["RunLoop"]

_perf = time.perf_counter
# Durations are milliseconds to the microsecond: ``round(seconds * 1e6) / 1000.0``.
_step_record = maker(StepRecord)  # (every field, in order): one per node, built fast


def _redrive_record(
    node: str | None, fr: Frontier, *, requeue: str | None = None
) -> dict[str, Any]:
    """What ``redrive()`` restores: the queues as they were, ``requeue`` first again."""
    record: dict[str, Any] = {"node": node, **fr.export()}
    if requeue is not None:
        record["ready_now"].insert(0, requeue)
        record["executed_this_wave"].remove(requeue)
    return record


class _Batch:
    """What settling a parallel batch has decided so far."""

    __slots__ = ("blocked", "end_error", "paused")

    def __init__(self) -> None:
        self.blocked = False  # a failure reset the queues: later nodes are not settled
        self.end_error: WorkflowError | None = None  # an unrouted failure ends the run
        self.paused: list[tuple[str, str | None]] = []  # run-level waits, in queue order


class _Begun:
    """A node taken and counted, its time running; ``first``: its first attempt, if made."""

    __slots__ = ("first", "node", "started")

    def __init__(self, node: CompiledNode, started: float) -> None:
        self.node = node
        self.started = started
        self.first: tuple[Any, BaseException | None] | None = None


class RunLoop:
    """Drives the runs of one compiled workflow; shared by every call of an engine."""

    def __init__(
        self,
        graph: CompiledWorkflow,
        recorder: Recorder,
        nodes: NodeRunner,
        clock: Callable[[], float],
        is_cancelled: Callable[[], bool],
    ) -> None:
        self.graph = graph
        self.recorder = recorder
        self.nodes = nodes
        self.clock = clock
        self.is_cancelled = is_cancelled
        self.routes = build_routes(graph)
        policy = graph.policy
        self.max_steps = policy.max_steps
        self.concurrency = policy.max_concurrency
        self.branch_hitl = policy.hitl == "branch"
        self.contracts = policy.contracts or "warn"
        # Checked only where a node declares writes_to or writes_schema: one test per node.
        self.checks_contracts = self.contracts != "off" and any(
            n.writes is not None or n.writes_schema is not None for n in graph.nodes.values()
        )
        self.issue_tokens = False
        """Give each wait a resume token (the top-level run's loop; a child's waits are the
        parent's, reached by path)."""
        self.new_token: Callable[[], str] = new_token
        # Bound once: these run for every node.
        self.emit = recorder.emit
        self.checkpoint = recorder.checkpoint
        self.listening = recorder.listening
        self.checkpoints = recorder.checkpoints  # else checkpoint() is a no-op: not called
        self.call_task = nodes.tasks.call
        tasks = nodes.tasks
        self.first_attempt = tasks.first_attempt
        # Without a codec, accepting a result is checking its outputs: one call fewer.
        self.accept = tasks.check_outputs if tasks.tags is None else tasks.accept
        self.plain = frozenset(n for n in nodes.tasks.plain if graph.nodes[n].map is None)
        self.saga = Saga(graph, recorder, nodes.tasks, clock)
        self.branches: dict[str, frozenset[str]] = {}  # a failed node's branch, found once

    # ------------------------------------------------------------------ one call

    def call(
        self,
        run: LiveRun,
        kind: str,
        data: dict[str, Any],
        *,
        replace: bool = False,
        resuming: bool = False,
        warning: dict[str, Any] | None = None,
    ) -> Steps:
        """One call on one run: open the session, announce, drive, always close.

        ``kind`` is the opening event (``wf:start`` or ``wf:resumed``);
        ``resuming``: the run continues a stored checkpoint, which must still
        be the latest; ``warning``: a ``node:warning`` announced right after it
        (an ``initial_input`` its ``input_schema`` refuses, under ``contracts: warn``).
        """
        direct: DirectCaller | None = yield DIRECT
        recorder = self.recorder
        recorder.open(run, fresh=kind == C.EVENT_WF_START, replace=replace, resuming=resuming)
        try:
            self.emit(run, kind, None, data)
            if warning is not None:
                self.emit(run, C.EVENT_NODE_WARNING, None, warning)
            self.checkpoint(run, full=True)
            result = yield from self.steps(run, direct)
            recorder.finish(run)
            return result
        finally:
            # Leaving on an exception drops the events since the last checkpoint, as a
            # crash would: the log describes committed checkpoints, and the next driver
            # runs (and logs) that work again.
            recorder.close(run)

    # ------------------------------------------------------------------ the loop

    def steps(self, run: LiveRun, direct: DirectCaller | None = None) -> Steps:
        """Drive ``run`` until it ends or pauses (SPEC A3); yields requests to a driver.

        ``direct``: the driver's caller (its answer to ``Direct``); a plain task
        node's first attempt is made through it, without a request.
        """
        snap = run.snap
        run.direct = direct
        plain = self.plain
        frontier = run.frontier
        clock = self.clock
        concurrency = self.concurrency
        if compensating(run):  # interrupted while undoing a failure: carry on undoing
            return (yield from self._compensate(run))
        if OVERRIDE in snap.extra:
            self._override(run)
        while frontier.ready_now or frontier.ready_next_wave:
            if self.is_cancelled():
                return self._end_cancelled(run)
            if snap.deadline_ts is not None and clock() > snap.deadline_ts:
                ended = self._end_failed(run, _timeout_error(snap.last_node))
                return (yield from self._then(run, ended))
            if not frontier.ready_now:
                frontier.open_wave()
                if self.checkpoints:
                    self.checkpoint(run, write=False)
            if concurrency > 1 and len(frontier.ready_now) > 1:
                outcome = yield from self._step_batch(run, concurrency)
            elif direct is not None and frontier.ready_now[0] in plain:
                got = self._step_direct(run, direct)
                if isinstance(got, _Begun):  # its first attempt needs a closer look
                    outcome = yield from self._step_rest(run, got)
                else:
                    outcome = got
            else:
                outcome = yield from self._step_one(run)
            if outcome is not None:
                return (yield from self._then(run, outcome))
        return (yield from self._then(run, self._end(run)))

    def _then(self, run: LiveRun, result: WorkflowResult) -> Steps:
        """``result``, unless the run failed for good and has compensations to run first."""
        if compensating(run):
            return (yield from self._compensate(run))
        return result

    def _compensate(self, run: LiveRun) -> Steps:
        """Undo the run's completed visits (``Saga``), then end it ``failed``."""
        try:
            error = yield from self.saga.steps(run)
        except Cancelled:
            return self._end_cancelled(run)
        run.snap.status = C.STATUS_FAILED
        run.snap.last_error = error
        return self._finish(run, error)

    def _override(self, run: LiveRun) -> None:
        """Settle the redriven failed node with the override's result, without calling it."""
        snap = run.snap
        spec = snap.extra[OVERRIDE]
        run.set_extra(OVERRIDE, None)
        node = self.graph.nodes[run.frontier.take()]
        snap.trace.append(node.name)
        snap.step += 1
        snap.last_node = node.name
        details = {key: spec[key] for key in ("actor", "reason") if spec.get(key) is not None}
        self.emit(run, C.EVENT_NODE_OVERRIDE, node.name, {"node": node.name, **details})
        self._absorb(run, node, override_result(spec), 0.0, "override", details or None)
        if EFFECTS in snap.extra:  # the visit is over: an effect it left open will not be redone
            drop_effects(run, node.name)
        self.checkpoint(run, now=True)

    def _begin(self, run: LiveRun) -> _Begun | WorkflowResult:
        """Take the next node and count its step; the run's end if that is one step too many."""
        snap = run.snap
        name = run.frontier.take()
        snap.trace.append(name)
        snap.step += 1
        snap.last_node = name
        max_steps = self.max_steps
        if max_steps is not None and snap.step > max_steps:
            run.frontier.push_front(name)
            return self._end_failed(
                run,
                WorkflowError(
                    C.ERROR_MAX_STEPS_EXCEEDED, f"max steps exceeded: limit={max_steps}", name
                ),
            )
        node = self.graph.nodes[name]
        if self.listening:
            self.emit(run, C.EVENT_NODE_START, name, {"node": name})
        return _Begun(node, _perf())

    def _step_one(self, run: LiveRun) -> Generator[Request, Any, WorkflowResult | None]:
        begun = self._begin(run)
        if not isinstance(begun, _Begun):
            return begun
        return (yield from self._step_rest(run, begun))

    def _step_direct(self, run: LiveRun, direct: DirectCaller) -> _Begun | WorkflowResult | None:
        """A plain task node, its first attempt called here: settled, unless that attempt
        failed or returned something to look at closer (then ``_step_rest`` carries on)."""
        snap = run.snap
        if self.max_steps is not None:
            begun = self._begin(run)
            if not isinstance(begun, _Begun):
                return begun
            node = begun.node
            started = begun.started
        else:  # ``_begin`` inlined: no step limit to check
            name = run.frontier.take()
            snap.trace.append(name)
            snap.step += 1
            snap.last_node = name
            node = self.graph.nodes[name]
            if self.listening:
                self.emit(run, C.EVENT_NODE_START, name, {"node": name})
            started = _perf()
        result, exc = self.first_attempt(run, node, snap.step, direct)
        if exc is not None or type(result) is not HandlerResult or result.error is not None:
            begun = _Begun(node, started)
            begun.first = (result, exc)
            return begun
        outcome = self.accept(run, node, result)
        if run.resumed is not None and run.resumed == node.name:
            run.resumed = None
            run.set_extra_path((RESUMING,), None)
        return self._settle(run, node, outcome, round((_perf() - started) * 1e6) / 1000.0)

    def _step_rest(
        self, run: LiveRun, begun: _Begun
    ) -> Generator[Request, Any, WorkflowResult | None]:
        """Run a begun node through its runner (retries, waits, maps, subflows); settle it."""
        node, started = begun.node, begun.started
        step = run.snap.step
        try:
            if node.kind == "task" and node.map is None:
                outcome = yield from self.call_task(run, node, step, first=begun.first)
            else:
                outcome = yield from self.nodes.execute(run, node, step)
        except Cancelled:
            run.frontier.push_front(node.name)
            return self._end_cancelled(run)
        except TimedOut as timed_out:
            error = timed_out.args[0]
            self._record_failure(run, node, error, round((_perf() - started) * 1e6) / 1000.0, [])
            return self._end_failed(run, error)
        if run.resumed == node.name:
            run.resumed = None
            run.set_extra_path((RESUMING,), None)
        return self._settle(run, node, outcome, round((_perf() - started) * 1e6) / 1000.0)

    def _step_batch(
        self, run: LiveRun, size: int
    ) -> Generator[Request, Any, WorkflowResult | None]:
        """Run up to ``size`` queued nodes together; settle their outcomes in queue order.

        Every node of the batch sees the state as it was when the batch started;
        their custom events are buffered and delivered in queue order.
        """
        snap = run.snap
        frontier = run.frontier
        names = frontier.ready_now[:size]
        max_steps = self.max_steps
        first_step = snap.step + 1
        if max_steps is not None and snap.step + len(names) > max_steps:
            names = names[: max(0, max_steps - snap.step)]
            if not names:
                return (yield from self._step_one(run))
        run.buffers = {name: [] for name in names}
        gens = {}
        for i, name in enumerate(names):
            if self.listening:
                snap.step = first_step + i  # the step this node is settled at, as ctx.step
                self.emit(run, C.EVENT_NODE_START, name, {"node": name})
            gens[i] = self.nodes.execute(run, self.graph.nodes[name], first_step + i)
        snap.step = first_step - 1
        started = _perf()
        durations: dict[int, float] = {}
        outcomes = yield from lockstep(gens, durations)
        wall = _perf() - started
        buffers = run.buffers
        run.buffers = None
        cancelled = False
        batch = _Batch()
        for i, name in enumerate(names):
            if batch.blocked:
                # A failure earlier in the batch reset the queues: as with one node at a
                # time, the nodes queued after it do not count as run (a redrive reruns them).
                break
            if frontier.ready_now and frontier.ready_now[0] == name:
                frontier.ready_now.pop(0)
            frontier.executed[name] = None
            snap.trace.append(name)
            snap.step += 1
            snap.last_node = name
            for kind, data in buffers[name]:
                self.emit(run, kind, name, data)
            if run.resumed == name:
                run.resumed = None
                run.set_extra_path((RESUMING,), None)
            got = outcomes[i]
            node = self.graph.nodes[name]
            # Each node's own time, as in a serial run (the batch's, if the driver kept none).
            duration_ms = round(durations.get(i, wall) * 1e6) / 1000.0
            if isinstance(got, Cancelled):
                # Like a failure, a cancel stops settling: this node and the ones queued
                # after it stay queued and run again when the run is resumed.
                frontier.push_front(name)
                cancelled = True
                break
            if isinstance(got, TimedOut):
                error = got.args[0]
                self._record_failure(run, node, error, duration_ms, [])
                return self._end_failed(run, error)
            assert not isinstance(got, BaseException)
            self._settle(run, node, got, duration_ms, batch)
        if run.retries:  # of nodes a failure or cancel left unsettled: they run again
            run.retries.clear()
        if batch.end_error is not None:
            return self._end_failed(run, batch.end_error)
        if cancelled:
            return self._end_cancelled(run)
        if batch.paused:
            frontier.ready_now[0:0] = [name for name, _ in batch.paused]
            snap.waiting_prompt = batch.paused[0][1]
            return self._pause(run)
        return None

    # ------------------------------------------------------------------ settling

    def _settle(
        self,
        run: LiveRun,
        node: CompiledNode,
        outcome: Outcome,
        duration_ms: float,
        batch: _Batch | None = None,
    ) -> WorkflowResult | None:
        """Apply one node's outcome: merge and route, pause, or fail and route the error.

        Inside a batch a run-level pause waits until the whole batch is settled,
        and a failure marks the batch as blocked (an unrouted failure ends the
        run once settling stops).
        """
        result, error, exc_names = outcome
        if error is None:
            assert result is not None
            error = self._absorb(run, node, result, duration_ms)
            if error is None:
                if not result.waiting:
                    if EFFECTS in run.snap.extra:  # the visit is over: its receipts go
                        drop_effects(run, node.name)
                    if self.checkpoints:
                        self.checkpoint(run)
                    return None
                if batch is not None and not self.branch_hitl:
                    batch.paused.append((node.name, result.waiting_prompt))
                    return None
                return self._wait(run, node, result)
            outputs = list(result.outputs)
        else:
            outputs = list(result.outputs) if result is not None else []
        if node.detached:
            self._detached_failure(run, node, error, duration_ms, outputs)
            return None
        catcher = self._catcher(node, error, exc_names)
        branch = catcher is not None and catcher.scope == "branch"
        self._record_failure(run, node, error, duration_ms, outputs, branch)
        target = self._catch_target(node, error, exc_names)
        if target is not None and EFFECTS in run.snap.extra:
            drop_effects(run, node.name)  # caught: the run moved on (a redrive would not)
        if branch:
            assert target is not None
            # A catcher that fails in turn hands its stand-in on: the join waits for the first.
            stood = run.snap.extra.get(STAND_INS, {}).get(node.name)
            if stood is not None:
                run.set_extra_path((STAND_INS, node.name), None)
            run.set_extra_path((STAND_INS, target), stood or node.name)
            if target not in run.frontier.ready_now:
                run.frontier.ready_now.append(target)
            self.checkpoint(run, now=True)
            return None
        if batch is not None:
            batch.blocked = True
            if target is None:
                batch.end_error = error
                return None
        if target is None:
            return self._end_failed(run, error)
        run.frontier.ready_now.append(target)
        self.checkpoint(run, now=True)
        return None

    def _contract_broken(
        self, run: LiveRun, node: CompiledNode, stray: list[str]
    ) -> WorkflowError | None:
        """Writes outside ``writes_to``: a ``node:warning`` (warn), or the node's failure."""
        allowed = sorted(node.writes or ())
        message = (
            f"node '{node.name}' wrote {', '.join(repr(k) for k in stray)} to state.workflow, "
            f"outside its state_contract.writes_to ({', '.join(allowed) or 'nothing'})"
        )
        return self._contract_outcome(run, node, message, {"keys": stray, "writes_to": allowed})

    def _schema_broken(
        self, run: LiveRun, node: CompiledNode, updates: FrozenDict | None
    ) -> WorkflowError | None:
        """``workflow_updates`` against the node's ``writes_schema``: a warning or a failure."""
        from .._schema import check_instance

        assert node.writes_schema is not None
        problems = check_instance(thaw(updates) if updates else {}, node.writes_schema)
        if not problems:
            return None
        listed = "; ".join(f"{at or '/'}: {what}" for at, what in problems[:5])
        message = (
            f"node '{node.name}' wrote workflow_updates its state_contract.writes_schema "
            f"refuses ({listed})"
        )
        details = {"problems": [{"at": at, "problem": what} for at, what in problems]}
        return self._contract_outcome(run, node, message, details)

    def _contract_outcome(
        self, run: LiveRun, node: CompiledNode, message: str, details: dict[str, Any]
    ) -> WorkflowError | None:
        """A broken contract: ``CONTRACT_VIOLATION`` under ``enforce``, else a ``node:warning``."""
        if self.contracts == "enforce":
            return WorkflowError(C.ERROR_CONTRACT_VIOLATION, message, node.name, details=details)
        if self.listening:
            self.emit(
                run,
                C.EVENT_NODE_WARNING,
                node.name,
                {"node": node.name, "reason": "contract", "message": message, **details},
            )
        return None

    def _absorb(
        self,
        run: LiveRun,
        node: CompiledNode,
        result: HandlerResult,
        duration_ms: float,
        kind: str = "node",
        details: dict[str, Any] | None = None,
    ) -> WorkflowError | None:
        """Steps 4-6 of SPEC A5: copy-check updates, merge them, record, route.

        ``kind`` and ``details`` mark the step record (an override's actor and reason).
        """
        name = node.name
        snap = run.snap
        try:
            wf_up = result.workflow_updates
            if wf_up is not None:
                wf_up = freeze(wf_up, "workflow_updates")
            node_up = result.node_updates
            if node_up is not None:
                node_up = freeze(node_up, "node_updates")
            tags = result.tags
            if tags:
                tags = [str(t) for t in freeze(tags, "tags")]
            if (wf_up is not None and type(wf_up) is not FrozenDict) or (
                node_up is not None and type(node_up) is not FrozenDict
            ):
                raise NotJSONError("workflow_updates/node_updates (must be dicts)", wf_up)
        except (NotJSONError, TypeError) as exc:
            return WorkflowError(
                C.ERROR_STATE_SERIALIZATION,
                "workflow state is not JSON-serializable",
                name,
                details={"reason": str(exc)},
                cause_type="TypeError",
            )
        if self.checks_contracts:
            if wf_up and node.writes is not None:
                stray = sorted(k for k in wf_up if k not in node.writes)
                if stray:
                    broken = self._contract_broken(run, node, stray)
                    if broken is not None:
                        return broken
            if node.writes_schema is not None:
                broken = self._schema_broken(run, node, wf_up)
                if broken is not None:
                    return broken
        if wf_up:
            run.merge_workflow(wf_up)
        if node_up is not None:
            run.merge_node(name, node_up)
        if tags:
            snap.tags.extend(tags)
        outputs = list(result.outputs)
        waiting = result.waiting
        snap.audit_trail.append(
            _step_record(
                snap.step,
                run.frontier.wave,
                name,
                C.STATUS_WAITING if waiting else C.STATUS_SUCCEEDED,
                now_iso(self.clock()),
                outputs,
                None,
                waiting,
                duration_ms,
                run.retries.pop(name, 0) if run.retries else 0,
                kind,
                details,
            )
        )
        if waiting:
            return None
        if self.listening:
            self.emit(run, C.EVENT_NODE_END, name, {"node": name, "outputs": list(outputs)})
        stand_ins = snap.extra.get(STAND_INS)
        stands_for = stand_ins.get(name) if stand_ins else None
        if stands_for is not None:  # a branch catcher arrives at the join as the node it caught
            run.set_extra_path((STAND_INS, name), None)
            if not snap.extra.get(STAND_INS):
                run.set_extra(STAND_INS, None)
        run.frontier.route(name, outputs, self.routes, stands_for)
        return None

    def _record_failure(
        self,
        run: LiveRun,
        node: CompiledNode,
        error: WorkflowError,
        duration_ms: float,
        outputs: list[str],
        branch: bool = False,
    ) -> None:
        """SPEC A5 failure: one failed record, ``node:error``, ``__error__``, queues reset.

        ``branch``: a branch-scoped catcher took it, so only the failed node's own
        branch is cleared; other branches' queued nodes and join arrivals stay.
        """
        snap = run.snap
        name = node.name
        fr = run.frontier
        run.set_extra("redrive", _redrive_record(name, fr, requeue=name))
        snap.audit_trail.append(
            StepRecord(
                snap.step,
                fr.wave,
                name,
                C.STATUS_FAILED,
                now_iso(self.clock()),
                outputs,
                error,
                False,
                duration_ms,
                run.retries.pop(name, 0) if run.retries else 0,
            )
        )
        err_dict = error.to_dict()
        self.emit(run, C.EVENT_NODE_ERROR, name, {"node": name, "error": err_dict})
        snap.last_error = error
        run.set_workflow_key("__error__", err_dict)
        if not branch:
            fr.reset()
            if STAND_INS in snap.extra:  # the branch catchers' joins were cleared too
                run.set_extra(STAND_INS, None)
            return
        cleared = self.branches.get(name)
        if cleared is None:
            cleared = self.branches[name] = branch_of(self.graph, name)
        fr.ready_now = [n for n in fr.ready_now if n not in cleared]
        fr.ready_next_wave = [n for n in fr.ready_next_wave if n not in cleared]

    def _detached_failure(
        self,
        run: LiveRun,
        node: CompiledNode,
        error: WorkflowError,
        duration_ms: float,
        outputs: list[str],
    ) -> None:
        """A detached node failed: record it as a warning; the run goes on untouched."""
        snap = run.snap
        name = node.name
        snap.audit_trail.append(
            StepRecord(
                snap.step,
                run.frontier.wave,
                name,
                C.STATUS_FAILED,
                now_iso(self.clock()),
                outputs,
                error,
                False,
                duration_ms,
                run.retries.pop(name, 0) if run.retries else 0,
                kind="detached",
            )
        )
        err_dict = error.to_dict()
        self.emit(
            run,
            C.EVENT_NODE_WARNING,
            name,
            {"node": name, "warning": "detached_failed", "error": err_dict},
        )
        self.emit(run, C.EVENT_NODE_ERROR, name, {"node": name, "error": err_dict})
        if EFFECTS in snap.extra:
            drop_effects(run, name)
        self.checkpoint(run, now=True)

    def _catcher(
        self, node: CompiledNode, error: WorkflowError, exc_names: frozenset[str] | None
    ) -> Catcher | None:
        """The first ``on_error`` catcher of ``node`` that matches ``error``, or None."""
        for catcher in node.on_error:
            if catcher.codes is not None and error.code not in catcher.codes:
                continue
            if catcher.exceptions is not None:
                names = exc_names or (frozenset({error.cause_type}) if error.cause_type else None)
                if not names or names.isdisjoint(catcher.exceptions):
                    continue
            return catcher
        return None

    def _catch_target(
        self, node: CompiledNode, error: WorkflowError, exc_names: frozenset[str] | None
    ) -> str | None:
        """The first matching ``on_error`` catcher, else the default error node, else None."""
        catcher = self._catcher(node, error, exc_names)
        if catcher is not None:
            return catcher.target
        fallback = self.graph.error_node
        if fallback is not None and fallback != node.name:
            return fallback
        return None

    # ------------------------------------------------------------------ endings

    def _wait(
        self, run: LiveRun, node: CompiledNode, result: HandlerResult
    ) -> WorkflowResult | None:
        """A node asked to wait: pause the run, or (branch HITL) only this branch."""
        name = node.name
        if self.branch_hitl:
            run.set_extra_path(("waiting", name), result.waiting_prompt or "")
            self.checkpoint(run, now=True)
            return None
        run.frontier.push_front(name)
        run.snap.waiting_prompt = result.waiting_prompt
        run.snap.status = C.STATUS_WAITING
        data: dict[str, Any] = {"node": name, "prompt": result.waiting_prompt}
        timer = (run.snap.extra.get(TIMERS) or {}).get(name)
        if timer:  # a sleep's wake-up or a wait's deadline
            data["due_at"] = timer["due"]
            data["reason"] = "timer" if timer["kind"] == TIMER_SLEEP else "input"
        tokens = self._issue_tokens(run)
        self.emit(run, C.EVENT_WF_WAITING, name, data)
        self.checkpoint(run, full=True)
        self._announce_tokens(run, tokens)
        return self.result(run, tokens)

    def _pause(self, run: LiveRun) -> WorkflowResult:
        """Pause after a batch (or when only branch-local waits remain)."""
        snap = run.snap
        snap.status = C.STATUS_WAITING
        waiting = _waiting_nodes(run)
        first = next(iter(waiting))
        if run.snap.extra.get("waiting"):
            snap.waiting_prompt = waiting[first]
        tokens = self._issue_tokens(run)
        self.emit(
            run,
            C.EVENT_WF_WAITING,
            first,
            {"node": first, "prompt": snap.waiting_prompt, "nodes": dict(waiting)},
        )
        self.checkpoint(run, full=True)
        self._announce_tokens(run, tokens)
        return self.result(run, tokens)

    def _issue_tokens(self, run: LiveRun) -> dict[str, str]:
        """A fresh resume token for each wait without an open one; only digests are kept."""
        if not self.issue_tokens:
            return {}
        open_tokens = run.snap.extra.get(TOKENS) or {}
        fresh = mint(_waiting_nodes(run), open_tokens, self.new_token)
        for path, token in fresh.items():
            run.set_extra_path((TOKENS, path), digest(token))
        return fresh

    def _announce_tokens(self, run: LiveRun, tokens: dict[str, str]) -> None:
        """Tell the callbacks (and streams) each new token, once its pause is committed.

        ``wf:token`` is live only: no store keeps it (the store has the digest),
        so the code that sends approval links can listen for it.
        """
        if tokens and self.listening:
            for path, token in tokens.items():
                self.recorder.emit_live(
                    run, C.EVENT_WF_TOKEN, path.split("/")[0], {"node": path, "token": token}
                )

    def _end(self, run: LiveRun) -> WorkflowResult:
        if run.snap.extra.get("waiting"):
            return self._pause(run)
        stranded = run.frontier.stranded_joins(self.graph)
        for target, arrived, missing in stranded:
            self.emit(
                run,
                C.EVENT_NODE_WARNING,
                target,
                {
                    "node": target,
                    "warning": "join_stranded",
                    "arrived": arrived,
                    "missing": missing,
                },
            )
        if stranded and self.graph.policy.stranded_joins == "fail":
            target, arrived, missing = stranded[0]
            return self._end_failed(
                run,
                WorkflowError(
                    C.ERROR_JOIN_STRANDED,
                    f"AND-join '{target}' never ran: {', '.join(missing)} did not arrive "
                    f"(arrived: {', '.join(arrived)})",
                    target,
                    details={"arrived": arrived, "missing": missing},
                ),
            )
        run.snap.status = C.STATUS_SUCCEEDED
        for leftover in (
            "redrive",
            "map",
            EFFECTS,
            STAND_INS,
            TIMERS,
        ):  # progress of a failure the run recovered from
            if leftover in run.snap.extra:
                run.set_extra(leftover, None)
        return self._finish(run, None)

    def _end_failed(self, run: LiveRun, error: WorkflowError) -> WorkflowResult:
        snap = run.snap
        if "redrive" not in snap.extra or snap.extra["redrive"].get("node") != error.node:
            run.set_extra("redrive", _redrive_record(error.node, run.frontier))
        if error.code == C.ERROR_MAX_STEPS_EXCEEDED and run.frontier.ready_now:
            run.frontier.ready_now.pop(0)
        if self.saga.begin(run, error):
            snap.last_error = error
            return self.result(run)  # provisional: ``_then`` runs the compensations first
        snap.status = C.STATUS_FAILED
        snap.last_error = error
        return self._finish(run, error)

    def _end_cancelled(self, run: LiveRun) -> WorkflowResult:
        snap = run.snap
        error = WorkflowError(C.ERROR_WORKFLOW_CANCELLED, "workflow was cancelled", snap.last_node)
        snap.status = C.STATUS_CANCELLED
        snap.last_error = error
        self.emit(run, C.EVENT_WF_CANCELLED, None, {"error": error.to_dict()})
        return self._finish(run, error)

    def _finish(self, run: LiveRun, error: WorkflowError | None) -> WorkflowResult:
        snap = run.snap
        run.failed = error
        data: dict[str, Any] = {
            "workflow": snap.workflow_name,
            "success": snap.status == C.STATUS_SUCCEEDED,
            "trace": list(snap.trace),
            "tags": list(snap.tags),
        }
        if error is not None:
            data["error"] = error.to_dict()
        if snap.status == C.STATUS_CANCELLED:
            data["cancelled"] = True
        self.emit(run, C.EVENT_WF_END, None, data)
        self.checkpoint(run, full=True)
        return self.result(run)

    def result(self, run: LiveRun, tokens: dict[str, str] | None = None) -> WorkflowResult:
        """The ``WorkflowResult`` of the call, with plain independent data.

        ``tokens``: the resume tokens this call issued (``resume_tokens``).
        """
        snap = run.snap
        if not self.checkpoints:
            # No checkpoint stamped it. Otherwise the result's checkpoint keeps the time
            # the store saved: re-stamping here could tick a second past it.
            snap.updated_at = now_iso(self.clock())
        status = snap.status
        waiting = status == C.STATUS_WAITING
        compensated, compensation_failed = compensation_outcome(snap.extra)
        return WorkflowResult(
            compensated=compensated,
            compensation_failed=compensation_failed,
            warnings=[
                r.error for r in snap.audit_trail if r.kind == "detached" and r.error is not None
            ],
            run_id=snap.run_id,
            success=status == C.STATUS_SUCCEEDED,
            status=status,
            trace=list(snap.trace),
            tags=list(snap.tags),
            state=run.private_state(),
            audit_trail=list(snap.audit_trail),
            error=run.failed,
            waiting=waiting,
            waiting_prompt=snap.waiting_prompt if waiting else None,
            checkpoint=None if status == C.STATUS_SUCCEEDED else self.recorder.export(run),
            cancelled=status == C.STATUS_CANCELLED,
            waiting_nodes=_waiting_nodes(run) if waiting else {},
            resume_tokens=dict(tokens) if tokens else {},
        )


def _waiting_nodes(run: LiveRun) -> dict[str, str | None]:
    snap = run.snap
    return waiting_paths(snap.status, run.frontier.ready_now, snap.extra, snap.waiting_prompt)


def _timeout_error(node: str | None) -> WorkflowError:
    return WorkflowError(C.ERROR_WORKFLOW_TIMEOUT, "workflow timeout exceeded", node)
