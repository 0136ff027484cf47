"""One handler call of a task node: its context, retries, timeouts and outcome.

``TaskCaller.call`` builds the ``WorkflowContext``, yields a ``Call`` for the
driver, classifies the answer (steps 1 to 3 of SPEC A5) and retries with a
``Sleep`` between attempts. It never touches a clock of its own, a thread or
a file: time comes from the engine's clock, events go to the recorder.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Generator, Mapping
from typing import Any

from .. import _constants as C
from .._definition import CompiledNode, CompiledWorkflow
from .._frozen import NotJSONError, freeze, thaw
from .._live import LiveRun
from .._models import HandlerResult, WorkflowContext, WorkflowError, WorkflowState
from .recorder import Recorder
from .requests import (
    Call,
    Cancelled,
    HandlerCancelled,
    NodeSteps,
    NodeTimeoutError,
    Outcome,
    Request,
    Sleep,
    TimedOut,
)

__all__ = ["TaskCaller"]

_TIMEOUT_NAMES = frozenset(cls.__name__ for cls in NodeTimeoutError.__mro__)


def _class_names(exc: BaseException) -> frozenset[str]:
    return frozenset(cls.__name__ for cls in type(exc).__mro__)


class TaskCaller:
    """Calls a task node's handler, with the node's retry policy, for one run at a time."""

    def __init__(
        self,
        graph: CompiledWorkflow,
        handlers: Mapping[str, Callable[..., Any]],
        services: Mapping[str, Any],
        recorder: Recorder,
        clock: Callable[[], float],
        rng: random.Random,
    ) -> None:
        self.strict_outputs = graph.policy.strict_outputs
        self.readonly = graph.policy.state_isolation == "readonly"
        self.handlers = handlers
        self.services = services
        self.recorder = recorder
        self.clock = clock
        self.rng = rng

    def call(
        self,
        run: LiveRun,
        node: CompiledNode,
        step: int,
        item: Any = None,
        index: int | None = None,
    ) -> NodeSteps:
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
        self.recorder.emit(
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
        if self.strict_outputs:
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
        self.recorder.emit(run, C.EVENT_NODE_WARNING, name, {"node": name, "warning": unknown})
        return result, None, None

    # ------------------------------------------------------------------ the context

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
        """The ``ctx`` one attempt of ``node``'s handler receives."""
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

    def _custom_emitter(self, run: LiveRun, node: str) -> Callable[..., None]:
        """``ctx.emit``: a handler's own events, in queue order inside a batch."""
        recorder = self.recorder
        copies = recorder.copies_event_data

        def emit(kind: str, data: Mapping[str, Any] | None = None) -> None:
            if not data:
                payload: dict[str, Any] = {}
            elif not copies:
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
                recorder.emit(run, str(kind), node, payload)

        return emit
