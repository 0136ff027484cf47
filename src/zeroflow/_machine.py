"""The run loop as a generator: every decision here, every wait and handler call outside.

``RunMachine.steps`` walks one run (SPEC A3) and *yields* what it needs from
the outside world: ``Call`` (run a handler), ``Batch`` (run several at once)
and ``Sleep`` (wait before a retry). A driver answers each request and sends
the answer back: the sync driver calls handlers in this thread (or a thread
pool for a batch), the async driver awaits them. So the loop, the outcome
classification (SPEC A5), events and checkpoints exist once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Generator, Mapping
from typing import Any

from . import _constants as C
from ._definition import CompiledNode, CompiledWorkflow
from ._events import EventCallback, wanted_kinds, wants_checkpoints
from ._frozen import FrozenDict, NotJSONError, freeze, thaw
from ._live import LiveRun
from ._models import (
    Event,
    HandlerResult,
    StepRecord,
    WorkflowContext,
    WorkflowError,
    WorkflowResult,
    WorkflowState,
    now_iso,
)
from ._scheduler import Frontier, build_routes
from ._sessions import Sessions, waiting_paths
from ._store import (
    CheckpointWrite,
    EventBatchingStore,
    JournalingStore,
    LeasingStore,
    WorkflowStore,
)
from ._tasks import (
    Batch,
    Call,
    Cancelled,
    HandlerCancelled,
    Outcome,
    Request,
    Sleep,
    Steps,
    TaskRunner,
    TimedOut,
    lockstep,
)

__all__ = [
    "Batch",
    "Call",
    "HandlerCancelled",
    "Request",
    "RunMachine",
    "Sleep",
    "Steps",
]

_perf = time.perf_counter


def _random_owner() -> str:
    import uuid

    return uuid.uuid4().hex


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


class RunMachine(Sessions, TaskRunner):
    """Holds what every run of one engine shares; ``session(run, ...)`` drives one call."""

    def __init__(
        self,
        graph: CompiledWorkflow,
        handlers: Mapping[str, Callable[..., Any]],
        services: Mapping[str, Any],
        callback: EventCallback | None,
        store: WorkflowStore | None,
        clock: Callable[[], float],
        rng: random.Random,
        is_cancelled: Callable[[], bool],
        children: dict[str, RunMachine] | None = None,
        new_owner: Callable[[], str] | None = None,
        *,
        child: bool = False,
    ) -> None:
        self.graph = graph
        self.handlers = handlers
        self.services = services
        self.callback = callback
        self.store = store
        self.persist = store is not None and graph.policy.persist_checkpoints
        # What the store can do, decided once: a leasing store takes fenced commits.
        self.leasing: LeasingStore | None = store if isinstance(store, LeasingStore) else None
        self.journal = self.persist and (
            self.leasing is not None or isinstance(store, JournalingStore)
        )
        self.batch_events = self.leasing is not None or isinstance(store, EventBatchingStore)
        self.durable_journal = self.journal and (self.leasing is None or self.leasing.durable)
        # A subflow's checkpoints are not resume points of the parent: keep them to itself.
        self.want_checkpoint = (
            not child and callback is not None and wants_checkpoints(wanted_kinds(callback))
        )
        self.child = child
        self.clock = clock
        self.rng = rng
        self.is_cancelled = is_cancelled
        self.routes = build_routes(graph)
        self.readonly = graph.policy.state_isolation == "readonly"
        self.branch_hitl = graph.policy.hitl == "branch"
        self.children: dict[str, RunMachine] = children or {}
        self.new_owner: Callable[[], str] = new_owner or _random_owner

    # ------------------------------------------------------------------ events

    def emit(self, run: LiveRun, kind: str, node: str | None, data: dict[str, Any]) -> None:
        """The one place events are built: to the callback, then to the store's log."""
        cb = self.callback
        store = self.store
        if cb is None and store is None:
            return
        snap = run.snap
        event = Event(
            snap.run_id, snap.step, run.frontier.wave, node, kind, now_iso(self.clock()), data
        )
        if cb is not None:
            cb(event)
        if store is not None:
            outbox = run.outbox
            if outbox is not None:
                outbox.append(event)
            else:
                store.append_event(snap.run_id, event)

    def flush_events(self, run: LiveRun) -> None:
        """Hand the events held for a batching store over in one call.

        A leased run's events go with its commits instead, unless it persists no
        checkpoints (``persist_checkpoints: false``).
        """
        outbox = run.outbox
        if outbox and (run.lease_owner is None or not self.persist):
            run.outbox = []
            self.store.append_events(run.snap.run_id, outbox)  # type: ignore[union-attr]

    def commit(self, run: LiveRun, *, full: bool, extra_events: tuple[Event, ...] = ()) -> None:
        """Write one fenced checkpoint with the events that led to it (leased runs).

        ``RunLockedError`` from the store means this call lost its lease: nothing of
        the checkpoint is written and the call stops here.
        """
        store = self.leasing
        assert store is not None and run.lease_owner is not None and run.lease_token is not None
        snap = run.snap
        seq = run.seq + 1
        snap.seq = seq
        events = run.outbox or []
        if extra_events:
            events = [*events, *extra_events]
        if full or run.fold_due:
            write = CheckpointWrite(seq, snapshot=run.export(), events=events)
            run.mark()
        else:
            write = CheckpointWrite(seq, delta=run.delta(), events=events)
        run.fold_due = bool(store.commit(snap.run_id, run.lease_owner, run.lease_token, write))
        run.seq = seq
        run.outbox = []

    def checkpoint(self, run: LiveRun, *, full: bool = False, write: bool = True) -> None:
        """A resume point: write the store, emit ``store:saved``, then ``checkpoint``.

        ``write=False`` (a new wave opening) announces the checkpoint but leaves the
        write to the next one: opening a wave is decided by the state already
        saved, so a crash in between loses nothing. A leased run's checkpoint and
        its events are one fenced ``commit``; callbacks hear of it once it is written.
        """
        snap = run.snap
        if self.store is None and (self.callback is None or self.child):
            return  # nobody to tell; updated_at is stamped when the result is built
        snap.updated_at = now_iso(self.clock())
        if self.persist and write and run.lease_owner is not None:
            saved, point = self._checkpoint_events(run)
            self.commit(run, full=full, extra_events=(saved, point))
            cb = self.callback
            if cb is not None:
                cb(saved)
                cb(point)
            return
        if self.persist:
            store = self.store
            assert store is not None
            if write:
                if self.journal and not (full or run.fold_due):
                    # True: the store asks for a full snapshot next (its journal is due a fold).
                    run.fold_due = bool(
                        store.append_step(snap.run_id, run.delta())  # type: ignore[attr-defined]
                    )
                else:
                    store.save_snapshot(run.export())
                    run.mark()
                    run.fold_due = False
            self.emit(
                run,
                C.EVENT_STORE_SAVED,
                snap.last_node,
                {"run_id": snap.run_id, "status": snap.status},
            )
        if self.want_checkpoint:
            # to_dict() copies the live run into plain data itself: no export() first.
            self.emit(run, C.EVENT_CHECKPOINT, snap.last_node, {"state": run.sync().to_dict()})
        elif self.store is not None:
            # The log keeps a pointer, not the whole snapshot (O(1) per checkpoint).
            self.emit(run, C.EVENT_CHECKPOINT, snap.last_node, {"step": snap.step})
        if write and run.outbox:
            # A wave opening (write=False) keeps its events for the next written checkpoint.
            self.flush_events(run)

    def _checkpoint_events(self, run: LiveRun) -> tuple[Event, Event]:
        """``store:saved`` and ``checkpoint`` of a commit, built before it is written."""
        snap = run.snap
        ts = now_iso(self.clock())
        wave = run.frontier.wave
        saved = Event(
            snap.run_id,
            snap.step,
            wave,
            snap.last_node,
            C.EVENT_STORE_SAVED,
            ts,
            {"run_id": snap.run_id, "status": snap.status},
        )
        if self.want_checkpoint:
            snap.seq = run.seq + 1
            data: dict[str, Any] = {"state": run.sync().to_dict()}
        else:
            data = {"step": snap.step}
        point = Event(snap.run_id, snap.step, wave, snap.last_node, C.EVENT_CHECKPOINT, ts, data)
        return saved, point

    def quiet_checkpoint(self, run: LiveRun, node: str) -> None:
        """Persist progress inside a node (map items) with the node still queued, no events.

        Only durable stores get it: progress kept in this process's memory cannot
        outlive a crash, and a cancel saves it with the run's final checkpoint.
        """
        if not self.durable_journal:
            return
        store = self.store
        assert store is not None
        frontier = run.frontier
        frontier.ready_now.insert(0, node)
        try:
            if run.lease_owner is not None:
                # The finished items' events go with their progress (the node's start, emits).
                self.commit(run, full=False)
            else:
                due = store.append_step(run.snap.run_id, run.delta())  # type: ignore[attr-defined]
                run.fold_due = run.fold_due or bool(due)
        finally:
            frontier.ready_now.pop(0)
        self.flush_events(run)

    def _custom_emitter(self, run: LiveRun, node: str) -> Callable[..., None]:
        def emit(kind: str, data: Mapping[str, Any] | None = None) -> None:
            if not data:
                payload: dict[str, Any] = {}
            elif self.store is None:
                payload = dict(data)  # callbacks only: anything goes, as in 0.1.0
            else:
                # A private copy, checked now: the store writes it later, with the checkpoint.
                try:
                    payload = thaw(freeze(dict(data), "data"))
                except NotJSONError as exc:
                    raise TypeError(f"event data must be JSON-serializable: {exc}") from exc
            payload.setdefault("node", node)
            buffers = run.buffers
            if buffers is not None and node in buffers:
                buffers[node].append((str(kind), payload))
            else:
                self.emit(run, str(kind), node, payload)

        return emit

    def context(
        self,
        run: LiveRun,
        node: CompiledNode,
        step: int,
        attempt: int,
        deadline: float | None,
        item: Any = None,
        index: int | None = None,
    ) -> WorkflowContext:
        snap = run.snap
        if self.readonly:
            state: WorkflowState = run.view
            config: Any = node.config
        else:
            state = run.private_state()
            config = thaw(node.config)
            item = thaw(item)
        return WorkflowContext(
            snap.workflow_name,
            snap.wf_hash,
            snap.run_id,
            node.name,
            config,
            step,
            run.frontier.wave,
            state,
            self.services,
            deadline,
            self._custom_emitter(run, node.name),
            item,
            index,
            attempt,
            self.clock,
        )

    # ------------------------------------------------------------------ the loop

    def steps(self, run: LiveRun) -> Steps:
        """Drive ``run`` until it ends or pauses (SPEC A3); yields requests to a driver."""
        snap = run.snap
        frontier = run.frontier
        clock = self.clock
        concurrency = self.graph.policy.max_concurrency
        while frontier.ready_now or frontier.ready_next_wave:
            if self.is_cancelled():
                return self._end_cancelled(run)
            if snap.deadline_ts is not None and clock() > snap.deadline_ts:
                return self._end_failed(run, self._timeout_error(snap.last_node))
            if not frontier.ready_now:
                frontier.open_wave()
                self.checkpoint(run, write=False)
            if concurrency > 1 and len(frontier.ready_now) > 1:
                outcome = yield from self._step_batch(run, concurrency)
            else:
                outcome = yield from self._step_one(run)
            if outcome is not None:
                return outcome
        return self._end(run)

    def _step_one(self, run: LiveRun) -> Generator[Request, Any, WorkflowResult | None]:
        snap = run.snap
        name = run.frontier.take()
        snap.trace.append(name)
        snap.step += 1
        snap.last_node = name
        max_steps = self.graph.policy.max_steps
        if max_steps is not None and snap.step > max_steps:
            run.frontier.push_front(name)
            return self._end_failed(
                run,
                WorkflowError(
                    C.ERROR_MAX_STEPS_EXCEEDED, f"max steps exceeded: limit={max_steps}", name
                ),
            )
        node = self.graph.nodes[name]
        if self.callback is not None or self.store is not None:
            self.emit(run, C.EVENT_NODE_START, name, {"node": name})
        started = _perf()
        try:
            if node.kind == "task" and node.map is None:
                outcome = yield from self.task(run, node, snap.step)
            else:
                outcome = yield from self.execute(run, node, snap.step)
        except Cancelled:
            run.frontier.push_front(name)
            return self._end_cancelled(run)
        except TimedOut as timed_out:
            error = timed_out.args[0]
            self._record_failure(run, node, error, round((_perf() - started) * 1000.0, 3), [])
            return self._end_failed(run, error)
        if run.resumed == name:
            run.resumed = None
        return self._settle(run, node, outcome, round((_perf() - started) * 1000.0, 3))

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
        max_steps = self.graph.policy.max_steps
        first_step = snap.step + 1
        if max_steps is not None and snap.step + len(names) > max_steps:
            names = names[: max(0, max_steps - snap.step)]
            if not names:
                return (yield from self._step_one(run))
        announce = self.callback is not None or self.store is not None
        run.buffers = {name: [] for name in names}
        gens = {}
        for i, name in enumerate(names):
            if announce:
                snap.step = first_step + i - 1
                self.emit(run, C.EVENT_NODE_START, name, {"node": name})
            gens[i] = self.execute(run, self.graph.nodes[name], first_step + i)
        snap.step = first_step - 1
        started = _perf()
        outcomes = yield from lockstep(gens)
        duration_ms = round((_perf() - started) * 1000.0, 3)
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
            got = outcomes[i]
            node = self.graph.nodes[name]
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
        if batch.end_error is not None:
            return self._end_failed(run, batch.end_error)
        if cancelled:
            return self._end_cancelled(run)
        if batch.paused:
            frontier.ready_now[0:0] = [name for name, _ in batch.paused]
            snap.waiting_prompt = batch.paused[0][1]
            return self._pause(run)
        return None

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
                    self.checkpoint(run)
                    return None
                if batch is not None and not self.branch_hitl:
                    batch.paused.append((node.name, result.waiting_prompt))
                    return None
                return self._wait(run, node, result)
            outputs = list(result.outputs)
        else:
            outputs = list(result.outputs) if result is not None else []
        self._record_failure(run, node, error, duration_ms, outputs)
        target = self._catch_target(node, error, exc_names)
        if batch is not None:
            batch.blocked = True
            if target is None:
                batch.end_error = error
                return None
        if target is None:
            return self._end_failed(run, error)
        run.frontier.ready_now.append(target)
        self.checkpoint(run)
        return None

    def _absorb(
        self, run: LiveRun, node: CompiledNode, result: HandlerResult, duration_ms: float
    ) -> WorkflowError | None:
        """Steps 4-6 of SPEC A5: copy-check updates, merge them, record, route."""
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
        if wf_up:
            run.merge_workflow(wf_up)
        if node_up is not None:
            run.merge_node(name, node_up)
        if tags:
            snap.tags.extend(tags)
        outputs = list(result.outputs)
        waiting = result.waiting
        snap.audit_trail.append(
            StepRecord(
                snap.step,
                run.frontier.wave,
                name,
                C.STATUS_WAITING if waiting else C.STATUS_SUCCEEDED,
                now_iso(self.clock()),
                outputs,
                None,
                waiting,
                duration_ms,
            )
        )
        if waiting:
            return None
        if self.callback is not None or self.store is not None:
            self.emit(run, C.EVENT_NODE_END, name, {"node": name, "outputs": list(outputs)})
        run.frontier.route(name, outputs, self.routes)
        return None

    def _record_failure(
        self,
        run: LiveRun,
        node: CompiledNode,
        error: WorkflowError,
        duration_ms: float,
        outputs: list[str],
    ) -> None:
        """SPEC A5 failure: one failed record, ``node:error``, ``__error__``, queues reset."""
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
            )
        )
        err_dict = error.to_dict()
        self.emit(run, C.EVENT_NODE_ERROR, name, {"node": name, "error": err_dict})
        snap.last_error = error
        run.set_workflow_key("__error__", err_dict)
        fr.reset()

    def _catch_target(
        self, node: CompiledNode, error: WorkflowError, exc_names: frozenset[str] | None
    ) -> str | None:
        """The first matching ``on_error`` catcher, else the default error node, else None."""
        for catcher in node.on_error:
            if catcher.codes is not None and error.code not in catcher.codes:
                continue
            if catcher.exceptions is not None:
                names = exc_names or (frozenset({error.cause_type}) if error.cause_type else None)
                if not names or names.isdisjoint(catcher.exceptions):
                    continue
            return catcher.target
        fallback = self.graph.error_node
        if fallback is not None and fallback != node.name:
            return fallback
        return None

    def _timeout_error(self, node: str | None) -> WorkflowError:
        return WorkflowError(C.ERROR_WORKFLOW_TIMEOUT, "workflow timeout exceeded", node)

    # ------------------------------------------------------------------ endings

    def _wait(
        self, run: LiveRun, node: CompiledNode, result: HandlerResult
    ) -> WorkflowResult | None:
        """A node asked to wait: pause the run, or (branch HITL) only this branch."""
        name = node.name
        if self.branch_hitl:
            run.set_extra_path(("waiting", name), result.waiting_prompt or "")
            self.checkpoint(run)
            return None
        run.frontier.push_front(name)
        run.snap.waiting_prompt = result.waiting_prompt
        run.snap.status = C.STATUS_WAITING
        self.emit(run, C.EVENT_WF_WAITING, name, {"node": name, "prompt": result.waiting_prompt})
        self.checkpoint(run, full=True)
        return self.result(run)

    def _pause(self, run: LiveRun) -> WorkflowResult:
        """Pause after a batch (or when only branch-local waits remain)."""
        snap = run.snap
        snap.status = C.STATUS_WAITING
        waiting = self._waiting_nodes(run)
        first = next(iter(waiting))
        if run.snap.extra.get("waiting"):
            snap.waiting_prompt = waiting[first]
        self.emit(
            run,
            C.EVENT_WF_WAITING,
            first,
            {"node": first, "prompt": snap.waiting_prompt, "nodes": dict(waiting)},
        )
        self.checkpoint(run, full=True)
        return self.result(run)

    def _waiting_nodes(self, run: LiveRun) -> dict[str, str | None]:
        snap = run.snap
        return waiting_paths(snap.status, run.frontier.ready_now, snap.extra, snap.waiting_prompt)

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
        for leftover in ("redrive", "map"):  # progress of a failure the run recovered from
            if leftover in run.snap.extra:
                run.set_extra(leftover, None)
        return self._finish(run, None)

    def _end_failed(self, run: LiveRun, error: WorkflowError) -> WorkflowResult:
        snap = run.snap
        if "redrive" not in snap.extra or snap.extra["redrive"].get("node") != error.node:
            run.set_extra("redrive", _redrive_record(error.node, run.frontier))
        if error.code == C.ERROR_MAX_STEPS_EXCEEDED and run.frontier.ready_now:
            run.frontier.ready_now.pop(0)
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

    def result(self, run: LiveRun) -> WorkflowResult:
        """The ``WorkflowResult`` of the call, with plain independent data."""
        snap = run.snap
        if self.store is None and (self.callback is None or self.child):
            # No checkpoint stamped it (nobody to tell). Otherwise the result's checkpoint
            # keeps the time the store saved: re-stamping here could tick a second past it.
            snap.updated_at = now_iso(self.clock())
        status = snap.status
        waiting = status == C.STATUS_WAITING
        return WorkflowResult(
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
            checkpoint=None if status == C.STATUS_SUCCEEDED else run.export(),
            cancelled=status == C.STATUS_CANCELLED,
            waiting_nodes=self._waiting_nodes(run) if waiting else {},
        )
