"""How each kind of node executes: task (with retries), map, wait, end and subflow.

``TaskRunner`` is the half of ``RunMachine`` that turns one taken node into
an outcome ``(result, error, exception class names)``. Its methods are
generators: they yield ``Call`` / ``Batch`` / ``Sleep`` requests for the
driver and never touch a clock, a thread or a file themselves.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any

from . import _constants as C
from ._definition import CompiledNode, CompiledWorkflow
from ._frozen import NotJSONError, freeze, thaw
from ._live import LiveRun
from ._models import HandlerResult, RunSnapshot, WorkflowContext, WorkflowError, WorkflowResult

if TYPE_CHECKING:
    from ._machine import RunMachine

__all__ = [
    "Batch",
    "Call",
    "HandlerCancelled",
    "NodeTimeoutError",
    "Outcome",
    "Request",
    "Sleep",
    "Steps",
    "TaskRunner",
    "Cancelled",
    "TimedOut",
    "lookup_path",
]


class Call:
    """Request: call ``fn(ctx)``; answer ``(result, None)`` or ``(None, exception)``.

    ``timeout_seconds`` is the node's per-attempt limit, which an async driver
    enforces by cancelling the handler. With a limit, the driver notes in
    ``returned_at`` (``ctx.clock()``) when the handler returned: in a batch the
    answer comes only once every call of the batch is done.
    """

    __slots__ = ("ctx", "fn", "returned_at", "timeout_seconds")

    def __init__(self, fn: Callable[..., Any], ctx: WorkflowContext, timeout: float | None) -> None:
        self.fn = fn
        self.ctx = ctx
        self.timeout_seconds = timeout
        self.returned_at: float | None = None


class Batch:
    """Request: run these calls together; answer a list of ``(result, exception)`` in order."""

    __slots__ = ("calls",)

    def __init__(self, calls: list[Call]) -> None:
        self.calls = calls


class Sleep:
    """Request: wait ``seconds`` unless cancelled; answer True when a cancel arrived."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


Request = Call | Batch | Sleep
Outcome = tuple[HandlerResult | None, WorkflowError | None, frozenset[str] | None]
Steps = Generator[Request, Any, "WorkflowResult"]
"""A run driven by the machine: yields requests, returns the call's result."""
Gen = Generator[Request, Any, Outcome]


class Cancelled(Exception):
    """A cancel arrived while a node was waiting to retry or running."""


class TimedOut(Exception):
    """The workflow deadline passed while a node waited to retry."""


class HandlerCancelled(Exception):
    """A driver cancelled a running (async) handler because ``engine.cancel()`` was called."""


class NodeTimeoutError(TimeoutError):
    """An async handler was cancelled at its node deadline."""

    zeroflow_node_timeout = True


_MISSING = object()
_TIMEOUT_NAMES = frozenset(cls.__name__ for cls in NodeTimeoutError.__mro__)


def lookup_path(run: LiveRun, path: tuple[str, ...]) -> Any:
    """The value at a state path (``("input", "files")``), or ``_MISSING``."""
    section = {"input": run.input, "workflow": run.workflow, "node": run.node_state}[path[0]]
    value: Any = section
    for key in path[1:]:
        if not isinstance(value, Mapping) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _json_type_name(value: Any) -> str:
    """The user-facing type name of state data (frozen containers are dicts and lists)."""
    if isinstance(value, dict):
        return "dict"
    if isinstance(value, list):
        return "list"
    return type(value).__name__


def _class_names(exc: BaseException) -> frozenset[str]:
    return frozenset(cls.__name__ for cls in type(exc).__mro__)


def lockstep(gens: dict[int, Gen]) -> Generator[Request, Any, dict[int, Outcome | BaseException]]:
    """Advance several node generators together: their calls become one ``Batch``.

    Retry waits of several generators become one ``Sleep`` of the longest
    delay. A generator that raises (cancel, timeout) has its exception in the
    result instead of an outcome.
    """
    out: dict[int, Outcome | BaseException] = {}
    pending: dict[int, Request] = {}

    def advance(i: int, answer: Any, first: bool = False) -> None:
        try:
            pending[i] = next(gens[i]) if first else gens[i].send(answer)
        except StopIteration as stop:
            out[i] = stop.value
            pending.pop(i, None)
        except (Cancelled, TimedOut) as exc:
            out[i] = exc
            pending.pop(i, None)

    for i in sorted(gens):
        advance(i, None, first=True)
    while pending:
        calls = [(i, r) for i, r in sorted(pending.items()) if type(r) is Call]
        if calls:
            answers = yield Batch([r for _, r in calls])
            for (i, _), answer in zip(calls, answers, strict=True):
                advance(i, answer)
            continue
        nested = [(i, r) for i, r in sorted(pending.items()) if type(r) is Batch]
        if nested:
            i, req = nested[0]
            advance(i, (yield req))
            continue
        sleeps = sorted(pending.items())
        cancelled = yield Sleep(max(r.seconds for _, r in sleeps))  # type: ignore[union-attr]
        for i, _ in sleeps:
            advance(i, cancelled)
    return out


class TaskRunner:
    """Executes taken nodes; mixed into ``RunMachine``, which provides the attributes."""

    graph: CompiledWorkflow
    handlers: Mapping[str, Callable[..., Any]]
    clock: Callable[[], float]
    rng: random.Random
    is_cancelled: Callable[[], bool]
    children: dict[str, RunMachine]

    def emit(self, run: LiveRun, kind: str, node: str | None, data: dict[str, Any]) -> None:
        raise NotImplementedError

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
        raise NotImplementedError

    def quiet_checkpoint(self, run: LiveRun, node: str) -> None:
        raise NotImplementedError

    def execute(self, run: LiveRun, node: CompiledNode, step: int) -> Gen:
        """The outcome of running ``node`` once (all kinds)."""
        kind = node.kind
        if kind == "wait":
            return self._wait_node(run, node)
        if kind == "end":
            return (
                HandlerResult(outputs=[], workflow_updates={"result": thaw(node.end_result)}),
                None,
                None,
            )
        if kind == "subflow":
            return (yield from self._subflow(run, node))
        if node.map is not None:
            return (yield from self._map(run, node, step))
        return (yield from self.task(run, node, step))

    # ------------------------------------------------------------------ tasks

    def task(
        self,
        run: LiveRun,
        node: CompiledNode,
        step: int,
        item: Any = None,
        index: int | None = None,
    ) -> Gen:
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
            ctx = self.context(run, node, step, attempt, deadline, item, index)
            call = Call(fn, ctx, retry.timeout_seconds)
            result, exc = yield call
            exc_names = None
            if type(exc) is HandlerCancelled:
                raise Cancelled()
            if (
                type(exc) is NodeTimeoutError
                and run.snap.deadline_ts is not None
                and self.clock() >= run.snap.deadline_ts
            ):
                raise TimedOut(
                    WorkflowError(C.ERROR_WORKFLOW_TIMEOUT, "workflow timeout exceeded", name)
                )
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
            elif (
                node_deadline is not None
                and (call.returned_at if call.returned_at is not None else self.clock())
                > node_deadline
            ):
                error = WorkflowError(
                    C.ERROR_NODE_TIMEOUT,
                    f"node '{name}' returned after its timeout of {retry.timeout_seconds} s",
                    name,
                    retryable=True,
                    details={"timeout_seconds": retry.timeout_seconds},
                    cause_type=NodeTimeoutError.__name__,
                )
                # A late return counts as the same NodeTimeoutError an async handler
                # raises at its deadline, so retry_on treats both alike.
                exc_names = _TIMEOUT_NAMES
                retryable = retry.retry_on is None or not exc_names.isdisjoint(retry.retry_on)
                retry_text = f"{error.code}: {error.message}"
                result = None
            else:
                return self._check_outputs(run, node, result)
            if not retryable or attempt > retry.max_retries:
                return result, error, exc_names
            yield from self._wait_before_retry(run, node, attempt, retry_text)

    def _exception_error(self, node: CompiledNode, exc: BaseException) -> WorkflowError:
        if getattr(exc, "zeroflow_node_timeout", False):
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
    ) -> Generator[Request, Any, None]:
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
            raise Cancelled()
        if deadline is not None and self.clock() >= deadline:
            raise TimedOut(
                WorkflowError(C.ERROR_WORKFLOW_TIMEOUT, "workflow timeout exceeded", node.name)
            )

    def _check_outputs(self, run: LiveRun, node: CompiledNode, result: HandlerResult) -> Outcome:
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

    # ------------------------------------------------------------------ built-in kinds

    def _wait_node(self, run: LiveRun, node: CompiledNode) -> Outcome:
        """A wait node pauses; resumed, it keeps the payload and routes on its outcome."""
        spec = node.wait
        assert spec is not None
        if run.resumed != node.name:
            return HandlerResult(outputs=[], waiting=True, waiting_prompt=spec.prompt), None, None
        payload = run.workflow.get("__resume__")
        outcome = payload.get("outcome") if isinstance(payload, Mapping) else None
        label = outcome if isinstance(outcome, str) and outcome in node.outputs else "ok"
        updates = {spec.resume_as: thaw(payload)} if spec.resume_as else None
        outputs = [label] if label in node.outputs else []
        return HandlerResult(outputs=outputs, workflow_updates=updates), None, None

    def _map(self, run: LiveRun, node: CompiledNode, step: int) -> Gen:
        """Run the handler once per item; finished items are checkpointed as they land."""
        spec = node.map
        assert spec is not None
        name = node.name
        items = lookup_path(run, spec.over)
        where = ".".join(spec.over)
        if items is _MISSING or not isinstance(items, list):
            found = "nothing" if items is _MISSING else _json_type_name(items)
            return (
                None,
                WorkflowError(
                    C.ERROR_MAP_INPUT,
                    f"node '{name}' maps over '{where}', which holds {found}; it must be a list",
                    name,
                    details={"over": where},
                ),
                None,
            )
        progress = run.snap.extra.get("map", {}).get(name, {})
        results: dict[str, Any] = dict(progress.get("results", {}))
        errors: dict[str, Any] = dict(progress.get("errors", {}))
        todo = [i for i in range(len(items)) if str(i) not in results and str(i) not in errors]
        size = spec.max_concurrency
        for start in range(0, len(todo), size):
            if self.is_cancelled():
                raise Cancelled()
            chunk = todo[start : start + size]
            if len(chunk) == 1:
                i = chunk[0]
                outcomes: dict[int, Outcome | BaseException] = {
                    i: (yield from self.task(run, node, step, items[i], i))
                }
            else:
                outcomes = yield from lockstep(
                    {i: self.task(run, node, step, items[i], i) for i in chunk}
                )
            interrupted: BaseException | None = None
            for i in chunk:
                got = outcomes[i]
                if isinstance(got, BaseException):
                    interrupted = interrupted or got  # record the finished items first
                    continue
                result, error, _ = got
                value: Any = None
                if error is None and result is not None:
                    try:
                        value = freeze(result.node_updates, f"map[{i}]")  # private, immutable
                    except NotJSONError as exc:
                        error = WorkflowError(
                            C.ERROR_STATE_SERIALIZATION,
                            "workflow state is not JSON-serializable",
                            name,
                            details={"reason": str(exc)},
                            cause_type="TypeError",
                        )
                if error is None:
                    results[str(i)] = value
                    run.set_extra_path(("map", name, "results", str(i)), value)
                else:
                    errors[str(i)] = error.to_dict()
                    run.set_extra_path(("map", name, "errors", str(i)), error.to_dict())
            self.quiet_checkpoint(run, name)
            if interrupted is not None:
                raise interrupted
        ordered = [results.get(str(i)) for i in range(len(items))]
        failures = [
            {"index": int(k), "error": v}
            for k, v in sorted(errors.items(), key=lambda kv: int(kv[0]))
        ]
        if len(failures) > spec.tolerated_failures:
            # Keep the finished items, forget the failed ones: a redrive reruns only those.
            run.set_extra_path(("map", name, "errors"), None)
            return (
                None,
                WorkflowError(
                    C.ERROR_MAP_FAILED,
                    f"node '{name}': {len(failures)} of {len(items)} items failed "
                    f"(tolerated_failures={spec.tolerated_failures})",
                    name,
                    details={"errors": failures, "results": ordered},
                ),
                None,
            )
        run.set_extra_path(("map", name), None)
        if not run.snap.extra.get("map"):
            run.set_extra_path(("map",), None)
        return (
            HandlerResult(outputs=["ok"], node_updates={"results": ordered, "errors": failures}),
            None,
            None,
        )

    def _subflow(self, run: LiveRun, node: CompiledNode) -> Gen:
        """Run the child workflow; its pause, failure or cancel becomes this node's."""
        spec = node.subflow
        assert spec is not None
        name = node.name
        child = self.children[name]
        saved = run.snap.extra.get("subflows", {}).get(name)
        if saved is not None:
            payload = run.workflow.get("__resume__")
            child_node = run.resume_path if run.resumed == name else None
            run.resume_path = None
            steps = child.resume_child(RunSnapshot.from_dict(saved), payload, child_node)
        else:
            child_input: dict[str, Any] = {}
            for key, path in spec.input:
                value = lookup_path(run, path)
                if value is _MISSING:
                    return (
                        None,
                        WorkflowError(
                            C.ERROR_SUBFLOW_FAILED,
                            f"node '{name}': subflow input '{key}' reads '{'.'.join(path)}', "
                            "which is not in the state",
                            name,
                            details={"workflow": spec.workflow, "missing": ".".join(path)},
                        ),
                        None,
                    )
                child_input[key] = thaw(value)
            steps = child.start_child(
                f"{run.snap.run_id}.{name}", child_input, run.snap.deadline_ts
            )
        result = yield from steps
        status = result.status
        if status in (C.STATUS_WAITING, C.STATUS_CANCELLED):
            assert result.checkpoint is not None
            run.set_extra_path(("subflows", name), result.checkpoint.to_dict())
            if status == C.STATUS_CANCELLED:
                raise Cancelled()
            return (
                HandlerResult(outputs=[], waiting=True, waiting_prompt=result.waiting_prompt),
                None,
                None,
            )
        if saved is not None:
            run.set_extra_path(("subflows", name), None)
        if status == C.STATUS_SUCCEEDED:
            return (
                HandlerResult(outputs=["ok"], node_updates={"output": result.state.workflow}),
                None,
                None,
            )
        err = result.error
        assert err is not None
        return (
            None,
            WorkflowError(
                C.ERROR_SUBFLOW_FAILED,
                f"subflow '{spec.workflow}' of node '{name}' failed: {err.code}: {err.message}",
                name,
                details={"workflow": spec.workflow, "child_error": err.to_dict()},
            ),
            None,
        )
