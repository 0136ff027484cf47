"""One handler call of a task node: its context, retries, timeouts and outcome.

``TaskCaller.call`` builds the ``WorkflowContext``, yields a ``Call`` for the
driver, classifies the answer (steps 1 to 3 of SPEC A5) and retries with a
``Sleep`` between attempts. It never touches a clock of its own, a thread or
a file: time comes from the engine's clock, events go to the recorder.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Coroutine, Generator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio
    import random

    from .._codec_boundary import CodecBoundary

from .. import _constants as C
from .._definition import CompiledNode, CompiledWorkflow
from .._fastinit import maker
from .._frozen import FrozenDict, FrozenList, NotJSONError, freeze, thaw
from .._live import LiveRun
from .._models import HandlerResult, WorkflowContext, WorkflowError, WorkflowState
from .._private import PrivateContext, PrivateState, private
from .effects import EffectError, EffectHost
from .recorder import Recorder
from .requests import (
    Call,
    Cancelled,
    DirectCaller,
    HandlerCancelled,
    NodeSteps,
    NodeTimeoutError,
    Outcome,
    Request,
    Sleep,
    TimedOut,
    new_call,
)

__all__ = ["TaskCaller"]

_private_view = PrivateState.over
# One context per handler call: built without the class call (every field, in order).
_private_context = maker(PrivateContext)
_context = maker(WorkflowContext)

_TIMEOUT_NAMES = frozenset(cls.__name__ for cls in NodeTimeoutError.__mro__)
_FROZEN = frozenset({FrozenDict, FrozenList})


def _class_names(exc: BaseException) -> frozenset[str]:
    return frozenset(cls.__name__ for cls in type(exc).__mro__)


def _all_str(values: list[Any]) -> bool:
    return all(type(value) is str for value in values)


def _label_list(outputs: Any) -> bool:
    """True if ``outputs`` is a list (or tuple) of strings, the only shape routing takes."""
    return isinstance(outputs, list | tuple) and all(isinstance(o, str) for o in outputs)


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _shape_problem(result: HandlerResult) -> str | None:
    """What is wrong with a result's tags, ``waiting`` or ``waiting_prompt``; None if nothing."""
    tags = result.tags
    if tags is not None:
        if isinstance(tags, str | bytes) or not isinstance(tags, list | tuple):
            return (
                f"tags of type {type(tags).__name__} ({_brief(tags)}); "
                "use a list of strings, e.g. tags=['vip']"
            )
        for tag in tags:
            # None, a bool or a container is JSON but no label (a value JSON cannot hold
            # at all fails as STATE_SERIALIZATION, like an update); numbers keep their text.
            if tag is None or isinstance(tag, bool | dict | list | tuple):
                return (
                    f"a tag of type {type(tag).__name__} ({_brief(tag)}); "
                    "tags are strings, e.g. tags=['vip']"
                )
    if type(result.waiting) is not bool:
        return (
            f"waiting={_brief(result.waiting)} ({type(result.waiting).__name__}); "
            "waiting is True or False"
        )
    prompt = result.waiting_prompt
    if prompt is not None and not isinstance(prompt, str):
        return (
            f"a waiting_prompt of type {type(prompt).__name__} ({_brief(prompt)}); "
            "use a string or None"
        )
    return None


_DETAILS_DEPTH = 8
"""Containers a handler error's ``details`` may sit inside once recorded.

(``__error__``, a map's ``MAP_FAILED`` details): its own nesting may use the rest of ``MAX_DEPTH``.
"""


def _error_problem(error: Any) -> str | None:
    """What is wrong with a handler's ``HandlerResult.error``; None for a sound one."""
    if not isinstance(error, WorkflowError):
        return (
            f"error={_brief(error)} ({type(error).__name__}); set error to a "
            "WorkflowError(code, message), or raise an exception"
        )
    for field, value, kinds, wanted in (
        ("code", error.code, (str,), "a string"),
        ("message", error.message, (str,), "a string"),
        ("node", error.node, (str, type(None)), "a string or None"),
        ("retryable", error.retryable, (bool,), "True or False"),
        ("cause_type", error.cause_type, (str, type(None)), "a string or None"),
    ):
        if not isinstance(value, kinds):
            return (
                f"a WorkflowError whose {field} is {type(value).__name__} ({_brief(value)}); "
                f"{field} must be {wanted}"
            )
    if not error.code:
        return "a WorkflowError with an empty code; give it a code such as 'PAYMENT_DECLINED'"
    if not isinstance(error.details, dict):
        return (
            f"a WorkflowError whose details is {type(error.details).__name__}; "
            "details must be a dict"
        )
    try:
        freeze(error.details, "error.details", _DETAILS_DEPTH)
    except NotJSONError as exc:
        return f"a WorkflowError whose details cannot be stored: {exc}"
    return None


def graced(fn: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Any]:
    """``fn`` run as a task of its own that a cancel stops waiting for after a grace period.

    The driver cancels a running async handler at its deadline (or on
    ``engine.cancel()``). A handler that catches that ``CancelledError`` and
    goes on would keep the run waiting for ever; through this guard the run
    waits at most ``CANCEL_GRACE_SECONDS`` for it to finish, then abandons the
    task (it keeps running on its event loop) and takes the cancel as done.
    """

    @functools.wraps(fn)
    async def guarded(ctx: WorkflowContext) -> Any:
        import asyncio

        task = asyncio.ensure_future(fn(ctx))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                task.cancel()
                await asyncio.wait((task,), timeout=C.CANCEL_GRACE_SECONDS)
            task.add_done_callback(_retrieve)  # an abandoned task's error is not logged
            raise

    return guarded


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


class TaskCaller:
    """Calls a task node's handler, with the node's retry policy, for one run at a time."""

    def __init__(
        self,
        graph: CompiledWorkflow,
        handlers: Mapping[str, Callable[..., Any]],
        services: Mapping[str, Any],
        recorder: Recorder,
        clock: Callable[[], float],
        rng: random.Random | None,
        tags: CodecBoundary | None = None,
    ) -> None:
        import inspect  # once per engine, never per node

        self.strict_outputs = graph.policy.strict_outputs
        # With a codec each handler reads its own decoded copy of the state ("copy").
        self.isolation = graph.policy.state_isolation if tags is None else "copy"
        self.tags = tags
        # Coroutine functions run inside a guard that gives up on them at a cancel
        # (see ``graced``); plain handlers are called as they are, at no cost.
        self.handlers = {
            name: graced(fn) if inspect.iscoroutinefunction(fn) else fn
            for name, fn in handlers.items()
        }
        # Task nodes ``first_attempt`` can call (their items, for a map): a registered
        # handler and no timeout of their own. Found once, looked up per call.
        self.plain = frozenset(
            n.name
            for n in graph.nodes.values()
            if n.kind == "task"
            and n.handler is not None
            and n.handler in self.handlers
            and n.retry.timeout_seconds is None
        )
        self.services = services
        self.recorder = recorder
        self.clock = clock
        self.rng = rng  # None: made at the first jittered retry (``random`` loads then)
        self.host: EffectHost | None = None  # the effects of the run called last
        # ctx.emit of each node of the run called last; one tuple, replaced whole (threads).
        self.emitters: tuple[LiveRun | None, dict[str, Callable[..., None]]] = (None, {})

    def call(
        self,
        run: LiveRun,
        node: CompiledNode,
        step: int,
        item: Any = None,
        index: int | None = None,
        first: tuple[Any, BaseException | None] | None = None,
    ) -> NodeSteps:
        """Call the handler with retries; classify steps 1-3 of SPEC A5.

        ``first``: the first attempt was already made (by the loop, through the
        driver's ``Direct`` caller, without a ``Call``) and this was its answer.
        """
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
            node_deadline = None
            call: Call | None = None  # no Call for the first attempt of a plain node
            if first is not None:  # made without a node timeout (``plain``)
                result, exc = first
                first = None
            else:
                deadline = run.snap.deadline_ts
                if retry.timeout_seconds is not None:
                    node_deadline = self.clock() + retry.timeout_seconds
                    if deadline is None or node_deadline < deadline:
                        deadline = node_deadline
                ctx = self.context(run, node, step, attempt, deadline, item, index)
                call = new_call(fn, ctx, retry.timeout_seconds)
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
                if type(exc) is EffectError:
                    return None, exc.error, exc_names  # a retry would meet the same record
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
                problem = _error_problem(error)
                if problem is not None:
                    return None, self._invalid(node, problem), None
                if not _label_list(result.outputs):
                    result = None  # the handler's own error stands; its junk outputs are dropped
                if error.node is None:  # the error node must learn which node failed
                    error = dataclasses.replace(error, node=node.name)
                retryable = error.retryable
                retry_text = f"{error.code}: {error.message}"
            elif (
                node_deadline is not None
                and call is not None
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
                return self.accept(run, node, result)
            if not retryable or attempt > retry.max_retries:
                return result, error, exc_names
            yield from self._wait_before_retry(run, node, attempt, retry_text)

    def first_attempt(
        self,
        run: LiveRun,
        node: CompiledNode,
        step: int,
        direct: DirectCaller,
        item: Any = None,
        index: int | None = None,
    ) -> tuple[Any, BaseException | None]:
        """The first attempt of a task node in ``plain`` (or of a map item's), made through
        the driver's ``direct`` caller: its answer, as a ``Call`` would have had it."""
        ctx = self.context(run, node, step, 1, run.snap.deadline_ts, item, index)
        return direct(self.handlers[node.handler], ctx)  # type: ignore[index]  # plain: it has one

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
            rng = self.rng
            if rng is None:
                import random

                rng = self.rng = random.Random()
            delay = rng.uniform(0.0, delay)
        deadline = run.snap.deadline_ts
        if deadline is not None:
            delay = max(0.0, min(delay, deadline - self.clock()))
        retries = run.retries
        retries[node.name] = retries.get(node.name, 0) + 1
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

    def _invalid(self, node: CompiledNode, problem: str) -> WorkflowError:
        """``INVALID_HANDLER_RESULT`` for ``node``: ``problem`` says what is wrong and the fix."""
        return WorkflowError(
            C.ERROR_INVALID_HANDLER_RESULT,
            f"handler '{node.handler}' of node '{node.name}' returned {problem}",
            node.name,
            details={"handler": node.handler},
        )

    def accept(self, run: LiveRun, node: CompiledNode, result: HandlerResult) -> Outcome:
        """The outcome of a result that raised nothing and carries no error (the checks of
        ``check_outputs``; with a codec, its updates encoded)."""
        if self.tags is None:
            return self.check_outputs(run, node, result)
        return self.tags.outcome(self.check_outputs(run, node, result), node.name)

    def check_outputs(self, run: LiveRun, node: CompiledNode, result: HandlerResult) -> Outcome:
        """Step 3 of SPEC A5 (every output declared, or warned about), and the result's shape.

        Outputs must be a list of strings, tags a list of strings (numbers are
        kept as their text, as before), ``waiting`` a bool and ``waiting_prompt``
        a string or None; anything else is ``INVALID_HANDLER_RESULT`` (a tag JSON
        cannot hold is ``STATE_SERIALIZATION`` later, as an update would be).
        """
        outputs = result.outputs
        name = node.name
        if type(outputs) is not list and (
            isinstance(outputs, str) or not isinstance(outputs, list | tuple)
        ):
            return (
                None,
                self._invalid(
                    node,
                    f"outputs of type {type(outputs).__name__}; "
                    "use a list of output labels, e.g. ['ok']",
                ),
                None,
            )
        tags = result.tags
        if (
            (tags is not None and (type(tags) is not list or not _all_str(tags)))
            or type(result.waiting) is not bool
            or (result.waiting_prompt is not None and type(result.waiting_prompt) is not str)
        ):
            problem = _shape_problem(result)
            if problem is not None:
                return None, self._invalid(node, problem), None
        declared = node.outputs
        for label in outputs:
            if type(label) is not str or label not in declared:
                break
        else:
            return result, None, None
        if node.terminal and _label_list(outputs):
            return result, None, None  # a zf/1 node without `on`: every outcome ends here
        if not _label_list(outputs):
            bad = next(o for o in outputs if not isinstance(o, str))
            return (
                None,
                self._invalid(
                    node,
                    f"an output label of type {type(bad).__name__} ({_brief(bad)}); "
                    "output labels are strings, e.g. outputs=['ok']",
                ),
                None,
            )
        unknown = sorted({str(o) for o in outputs if o not in declared})
        if self.strict_outputs:
            return (
                result,
                WorkflowError(
                    C.ERROR_UNDECLARED_OUTPUT,
                    # 0.1.0's text named the node as "handler"; name both when they differ.
                    f"handler '{name}' emitted undeclared outputs: {', '.join(unknown)}"
                    if node.handler == name
                    else f"handler '{node.handler}' of node '{name}' emitted undeclared "
                    f"outputs: {', '.join(unknown)}",
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
        host = self.host
        if host is None or host.run is not run:
            host = self.host = EffectHost(run, self.recorder, self.tags)
        emitters = self.emitters  # ``emitter``'s cache, read here: one call fewer per node
        emit = emitters[1].get(node.name) if emitters[0] is run else None
        if emit is None:
            emit = self.emitter(run, node.name)
        isolation = self.isolation
        if isolation == "private":
            if type(item) in _FROZEN:
                item = private(item)
            ctx: WorkflowContext = _private_context(
                snap.workflow_name,
                snap.wf_hash,
                snap.run_id,
                node.name,
                node.config,  # the context copies it when the handler first reads it
                step,
                run.frontier.wave,
                _private_view(run.sources),  # LiveRun.private_view, without the extra call
                self.services,
                deadline,
                emit,
                item,
                index,
                attempt,
                self.clock,
                host,
            )
            return ctx  # (its config view is made when the handler first reads it)
        if isolation == "readonly":
            state: WorkflowState = run.view
            config: Any = node.config
        elif self.tags is None:
            state = run.private_state()
            config = thaw(node.config)
            item = thaw(item)
        else:
            state = self.tags.handler_state(run)
            config = thaw(node.config)
            item = self.tags.decode(item)
        return _context(
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
            emit,
            item,
            index,
            attempt,
            self.clock,
            host,
        )

    def emitter(self, run: LiveRun, node: str) -> Callable[..., None]:
        """``ctx.emit`` for ``node`` of ``run``: made once per node and run."""
        cached = self.emitters
        if cached[0] is not run:
            cached = self.emitters = (run, {})
        emit = cached[1].get(node)
        if emit is None:
            emit = cached[1][node] = self._custom_emitter(run, node)
        return emit

    def _custom_emitter(self, run: LiveRun, node: str) -> Callable[..., None]:
        """``ctx.emit``: a handler's own events, in queue order inside a batch."""
        recorder = self.recorder
        copies = recorder.copies_event_data

        def emit(
            kind: str, data: Mapping[str, Any] | None = None, *, persist: bool | None = None
        ) -> None:
            if not (kept_by_default(kind) if persist is None else persist):
                # Live only (tokens): straight to the callback, also from a batch's thread.
                live = {} if not data else dict(data)
                live.setdefault("node", node)
                recorder.emit_live(run, str(kind), node, live)
                return
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


def kept_by_default(kind: str) -> bool:
    """Whether ``ctx.emit(kind, ...)`` is stored when the handler does not say (``persist``).

    High-rate kinds (``token`` and ``token:<name>``) are live only: a 10,000-token
    answer must not grow the event log.
    """
    return kind != C.EVENT_TOKEN and not kind.startswith("token:")
