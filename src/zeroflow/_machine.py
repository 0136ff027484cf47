"""The run loop as a generator: every decision here, every wait and handler call outside.

``RunMachine.steps`` walks one run (SPEC A3) and *yields* what it needs from
the outside world: ``Call`` (run a handler) and ``Sleep`` (wait before a
retry). A driver answers each request and sends the answer back: the sync
driver calls the handler in this thread, the async driver awaits it. So the
loop, the outcome classification (SPEC A5), events and checkpoints exist
once, whatever runs the handlers.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Generator, Mapping
from typing import Any

from . import _constants as C
from ._definition import CompiledNode, CompiledWorkflow
from ._errors import RunExistsError
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
from ._scheduler import build_routes
from ._store import WorkflowStore

__all__ = ["Call", "HandlerCancelled", "Sleep", "Request", "RunMachine", "Steps"]

_perf = time.perf_counter


class Call:
    """Request: call ``fn(ctx)``; answer ``(result, None)`` or ``(None, exception)``.

    ``timeout_seconds`` is the node's per-attempt limit, which an async driver
    enforces by cancelling the handler.
    """

    __slots__ = ("ctx", "fn", "timeout_seconds")

    def __init__(self, fn: Callable[..., Any], ctx: WorkflowContext, timeout: float | None) -> None:
        self.fn = fn
        self.ctx = ctx
        self.timeout_seconds = timeout


class Sleep:
    """Request: wait ``seconds`` unless cancelled; answer True when a cancel arrived."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


Request = Call | Sleep
Answer = Any
Steps = Generator[Request, Answer, WorkflowResult]


class _Cancelled(Exception):
    """A cancel arrived while the machine waited to retry."""


class HandlerCancelled(Exception):
    """A driver cancelled a running (async) handler because ``engine.cancel()`` was called."""


class _TimedOut(Exception):
    """The workflow deadline passed while the machine waited to retry."""


def _class_names(exc: BaseException) -> frozenset[str]:
    return frozenset(cls.__name__ for cls in type(exc).__mro__)


class RunMachine:
    """Holds what every run of one engine shares; ``steps(run)`` drives one run."""

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
    ) -> None:
        self.graph = graph
        self.handlers = handlers
        self.services = services
        self.callback = callback
        self.store = store
        self.persist = store is not None and graph.policy.persist_checkpoints
        self.journal = self.persist and callable(getattr(store, "append_step", None))
        self.want_checkpoint = callback is not None and wants_checkpoints(wanted_kinds(callback))
        self.clock = clock
        self.rng = rng
        self.is_cancelled = is_cancelled
        self.routes = build_routes(graph)
        self.readonly = graph.policy.state_isolation == "readonly"

    # ------------------------------------------------------------------ events

    def emit(self, run: LiveRun, kind: str, node: str | None, data: dict[str, Any]) -> None:
        """The one place events are built: to the callback, then to the store's log."""
        cb = self.callback
        store = self.store
        if cb is None and store is None:
            return
        snap = run.snap
        event = Event(snap.run_id, snap.step, run.frontier.wave, node, kind, now_iso(), data)
        if cb is not None:
            cb(event)
        if store is not None:
            store.append_event(snap.run_id, event)

    def checkpoint(self, run: LiveRun, *, full: bool = False) -> None:
        """A resume point: write the store, emit ``store:saved``, then ``checkpoint``."""
        snap = run.snap
        snap.updated_at = now_iso()
        if self.persist:
            store = self.store
            assert store is not None
            if run.lease_owner is not None:
                store.renew_lease(snap.run_id, run.lease_owner)  # type: ignore[attr-defined]
            if self.journal and not full:
                store.append_step(snap.run_id, run.delta())  # type: ignore[attr-defined]
            else:
                store.save_snapshot(run.export())
                run.mark()
            self.emit(
                run,
                C.EVENT_STORE_SAVED,
                snap.last_node,
                {"run_id": snap.run_id, "status": snap.status},
            )
        if self.want_checkpoint:
            self.emit(run, C.EVENT_CHECKPOINT, snap.last_node, {"state": run.export().to_dict()})
        elif self.store is not None:
            # The log keeps a pointer, not the whole snapshot (O(1) per checkpoint).
            self.emit(run, C.EVENT_CHECKPOINT, snap.last_node, {"step": snap.step})

    def _custom_emitter(self, run: LiveRun, node: str) -> Callable[..., None]:
        def emit(kind: str, data: Mapping[str, Any] | None = None) -> None:
            payload = dict(data) if data else {}
            payload.setdefault("node", node)
            self.emit(run, str(kind), node, payload)

        return emit

    def context(
        self,
        run: LiveRun,
        node: CompiledNode,
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
        return WorkflowContext(
            snap.workflow_name,
            snap.wf_hash,
            snap.run_id,
            node.name,
            config,
            snap.step,
            run.frontier.wave,
            state,
            self.services,
            deadline,
            self._custom_emitter(run, node.name),
            item,
            index,
            attempt,
        )

    # ------------------------------------------------------------------ the loop

    def session(
        self, run: LiveRun, kind: str, data: dict[str, Any], *, replace: bool = False
    ) -> Steps:
        """One call on one run: take the lease, announce, drive, always release.

        ``kind`` is the opening event (``wf:start`` or ``wf:resumed``). A store
        with leases (``acquire_lease``) is asked first, so a second driver of
        the same run gets ``RunLockedError`` before anything is written.
        """
        store = self.store
        owner = uuid.uuid4().hex
        leased = False
        if store is not None:
            if kind == C.EVENT_WF_START:
                self._claim_new_run(run.snap.run_id, replace)
            acquire = getattr(store, "acquire_lease", None)
            if acquire is not None:
                acquire(run.snap.run_id, owner)
                leased = True
        run.lease_owner = owner if leased else None
        try:
            self.emit(run, kind, None, data)
            self.checkpoint(run, full=True)
            return (yield from self.steps(run))
        finally:
            if leased:
                store.release_lease(run.snap.run_id, owner)  # type: ignore[union-attr]

    def _claim_new_run(self, run_id: str, replace: bool) -> None:
        """Refuse to overwrite a stored run unless ``replace``; then clear it for reuse."""
        store = self.store
        assert store is not None
        status_of = getattr(store, "run_status", None)
        if status_of is not None:
            status = status_of(run_id)
        else:
            try:
                status = store.load_snapshot(run_id).status
            except KeyError:
                status = None
        if status is None:
            return
        if not replace:
            raise RunExistsError(
                f"run '{run_id}' already exists in the store with status '{status}'; "
                "pick another run_id, resume it with run_from_checkpoint(), or pass "
                "replace=True to start it over",
                run_id=run_id,
            )
        delete = getattr(store, "delete_run", None)
        if delete is not None:
            delete(run_id)

    def steps(self, run: LiveRun) -> Steps:
        """Drive ``run`` until it ends or pauses (SPEC A3); yields ``Call``/``Sleep``."""
        snap = run.snap
        frontier = run.frontier
        max_steps = self.graph.policy.max_steps
        nodes = self.graph.nodes
        clock = self.clock
        announce = self.callback is not None or self.store is not None
        while frontier.ready_now or frontier.ready_next_wave:
            if self.is_cancelled():
                return self._end_cancelled(run)
            if snap.deadline_ts is not None and clock() > snap.deadline_ts:
                return self._end_run_error(run, self._timeout_error(snap.last_node))
            if not frontier.ready_now:
                frontier.open_wave()
                self.checkpoint(run)
            name = frontier.take()
            snap.trace.append(name)
            snap.step += 1
            snap.last_node = name
            if max_steps is not None and snap.step > max_steps:
                return self._end_run_error(
                    run,
                    WorkflowError(
                        C.ERROR_MAX_STEPS_EXCEEDED, f"max steps exceeded: limit={max_steps}", name
                    ),
                )
            node = nodes[name]
            if announce:
                self.emit(run, C.EVENT_NODE_START, name, {"node": name})
            started = _perf()
            try:
                result, error, exc_names = yield from self._execute(run, node)
            except _Cancelled:
                frontier.push_front(name)
                return self._end_cancelled(run)
            except _TimedOut as timed_out:
                error = timed_out.args[0]
                self._record_failure(run, node, error, round((_perf() - started) * 1000.0, 3), [])
                return self._end_failed(run, error)
            duration_ms = round((_perf() - started) * 1000.0, 3)
            if error is None:
                assert result is not None
                error = self._absorb(run, node, result, duration_ms)
                if error is None:
                    if result.waiting:
                        return self._pause(run, node, result)
                    self.checkpoint(run)
                    continue
                outputs = list(result.outputs)
            else:
                outputs = list(result.outputs) if result is not None else []
            self._record_failure(run, node, error, duration_ms, outputs)
            target = self._catch_target(node, error, exc_names)
            if target is None:
                return self._end_failed(run, error)
            frontier.ready_now.append(target)
            self.checkpoint(run)
        return self._end(run)

    def _execute(
        self, run: LiveRun, node: CompiledNode
    ) -> Generator[
        Request, Answer, tuple[HandlerResult | None, WorkflowError | None, frozenset[str] | None]
    ]:
        """Call the handler with retries; classify steps 1-3 of SPEC A5."""
        name = node.name
        if node.handler is None:
            return (
                None,
                WorkflowError(
                    C.ERROR_HANDLER_TYPE_NOT_DECLARED,
                    f"node '{name}' missing handler declaration",
                    name,
                ),
                None,
            )
        fn = self.handlers.get(node.handler)
        if fn is None:
            return (
                None,
                WorkflowError(
                    C.ERROR_HANDLER_NOT_REGISTERED,
                    f"handler '{node.handler}' not registered; pass it to WorkflowEngine("
                    f"handlers={{'{node.handler}': ...}})",
                    name,
                    details={"handler": node.handler},
                ),
                None,
            )
        retry = node.retry
        attempt = 0
        while True:
            attempt += 1
            deadline = run.snap.deadline_ts
            node_deadline = None
            if retry.timeout_seconds is not None:
                node_deadline = self.clock() + retry.timeout_seconds
                if deadline is None or node_deadline < deadline:
                    deadline = node_deadline
            ctx = self.context(run, node, attempt, deadline)
            result, exc = yield Call(fn, ctx, retry.timeout_seconds)
            exc_names = None
            if type(exc) is HandlerCancelled:
                raise _Cancelled()
            if exc is not None:
                exc_names = _class_names(exc)
                error = self._exception_error(node, exc)
                retryable = retry.retry_on is None or not exc_names.isdisjoint(retry.retry_on)
                retry_text = f"{type(exc).__name__}: {exc}"
            elif type(result) is not HandlerResult and not isinstance(result, HandlerResult):
                return (
                    None,
                    WorkflowError(
                        C.ERROR_INVALID_HANDLER_RESULT,
                        f"handler '{node.handler}' of node '{name}' returned "
                        f"{type(result).__name__}, expected a HandlerResult",
                        name,
                        details={"handler": node.handler, "returned_type": type(result).__name__},
                    ),
                    None,
                )
            elif result.error is not None:
                error = result.error
                retryable = error.retryable
                retry_text = f"{error.code}: {error.message}"
            elif node_deadline is not None and self.clock() > node_deadline:
                error = WorkflowError(
                    C.ERROR_NODE_TIMEOUT,
                    f"node '{name}' returned after its timeout of {retry.timeout_seconds} s",
                    name,
                    retryable=True,
                    details={"timeout_seconds": retry.timeout_seconds},
                )
                retryable = True
                retry_text = f"{error.code}: {error.message}"
                result = None
            else:
                return self._check_outputs(run, node, result)
            if not retryable or attempt > retry.max_retries:
                return result, error, exc_names
            yield from self._wait_before_retry(run, node, attempt, retry_text)

    def _exception_error(self, node: CompiledNode, exc: BaseException) -> WorkflowError:
        if isinstance(exc, TimeoutError) and getattr(exc, "zeroflow_node_timeout", False):
            return WorkflowError(
                C.ERROR_NODE_TIMEOUT,
                f"node '{node.name}' was cancelled at its timeout of "
                f"{node.retry.timeout_seconds} s",
                node.name,
                retryable=True,
                details={"timeout_seconds": node.retry.timeout_seconds},
                cause_type=type(exc).__name__,
            )
        return WorkflowError(
            C.ERROR_HANDLER_EXCEPTION,
            str(exc),
            node.name,
            details={"handler": node.handler},
            cause_type=type(exc).__name__,
        )

    def _wait_before_retry(
        self, run: LiveRun, node: CompiledNode, attempt: int, text: str
    ) -> Generator[Request, Answer, None]:
        retry = node.retry
        delay = retry.delay_seconds(attempt)
        if retry.jitter == "full":
            delay = self.rng.uniform(0.0, delay)
        deadline = run.snap.deadline_ts
        if deadline is not None:
            delay = max(0.0, min(delay, deadline - self.clock()))
        self.emit(
            run,
            C.EVENT_NODE_RETRY,
            node.name,
            {
                "node": node.name,
                "attempt": attempt,
                "max_retries": retry.max_retries,
                "error": text,
                "delay_seconds": delay,
            },
        )
        cancelled = yield Sleep(delay)
        if cancelled:
            raise _Cancelled()
        if deadline is not None and self.clock() >= deadline:
            raise _TimedOut(self._timeout_error(node.name))

    def _check_outputs(
        self, run: LiveRun, node: CompiledNode, result: HandlerResult
    ) -> tuple[HandlerResult | None, WorkflowError | None, None]:
        """Step 3 of SPEC A5: every returned output must be declared (or warned about)."""
        outputs = result.outputs
        name = node.name
        if type(outputs) is not list and (
            isinstance(outputs, str) or not isinstance(outputs, list | tuple)
        ):
            return (
                None,
                WorkflowError(
                    C.ERROR_INVALID_HANDLER_RESULT,
                    f"handler '{node.handler}' of node '{name}' returned outputs of type "
                    f"{type(outputs).__name__}; use a list of output labels, e.g. ['ok']",
                    name,
                    details={"handler": node.handler},
                ),
                None,
            )
        declared = node.outputs
        for label in outputs:
            if label not in declared:
                break
        else:
            return result, None, None
        unknown = sorted({str(o) for o in outputs if o not in declared})
        if self.graph.policy.strict_outputs:
            return (
                result,
                WorkflowError(
                    C.ERROR_UNDECLARED_OUTPUT,
                    f"handler '{name}' emitted undeclared outputs: {', '.join(unknown)}",
                    name,
                    details={"outputs": unknown},
                ),
                None,
            )
        self.emit(run, C.EVENT_NODE_WARNING, name, {"node": name, "warning": unknown})
        return result, None, None

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
                raise NotJSONError("workflow_updates/node_updates must be dicts", wf_up)
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
                now_iso(),
                outputs,
                None,
                waiting,
                duration_ms,
            )
        )
        if waiting:
            return None
        if self.callback is not None or self.store is not None:
            self.emit(run, C.EVENT_NODE_END, name, {"node": name, "outputs": outputs})
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
        run.set_extra(
            "redrive",
            {
                "node": name,
                "wave": fr.wave,
                "ready_now": [name, *fr.ready_now],
                "ready_next_wave": list(fr.ready_next_wave),
                "arrivals": {k: list(v) for k, v in fr.arrivals.items()},
                "executed_this_wave": [n for n in fr.executed if n != name],
            },
        )
        snap.audit_trail.append(
            StepRecord(
                snap.step,
                fr.wave,
                name,
                C.STATUS_FAILED,
                now_iso(),
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

    def _pause(self, run: LiveRun, node: CompiledNode, result: HandlerResult) -> WorkflowResult:
        snap = run.snap
        run.frontier.push_front(node.name)
        snap.status = C.STATUS_WAITING
        snap.waiting_prompt = result.waiting_prompt
        self.emit(
            run, C.EVENT_WF_WAITING, node.name, {"node": node.name, "prompt": result.waiting_prompt}
        )
        self.checkpoint(run, full=True)
        return self.result(run)

    def _end(self, run: LiveRun) -> WorkflowResult:
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
        return self._finish(run, None)

    def _end_failed(self, run: LiveRun, error: WorkflowError) -> WorkflowResult:
        run.snap.status = C.STATUS_FAILED
        run.snap.last_error = error
        return self._finish(run, error)

    def _end_run_error(self, run: LiveRun, error: WorkflowError) -> WorkflowResult:
        """Timeout between nodes and max steps end the run as 0.1.0 did: no routing."""
        return self._end_failed(run, error)

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
            waiting_nodes={run.frontier.ready_now[0]: snap.waiting_prompt} if waiting else {},
        )
