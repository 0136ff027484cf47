"""``WorkflowEngine``: the public entry points, and the drivers that answer the machine.

The engine validates and compiles the definition once; each call builds a
``LiveRun`` and lets a driver answer the requests of ``RunMachine.steps``:
``_drive_sync`` calls handlers in this thread, ``_drive_async`` awaits them.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import random
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from . import _constants as C
from ._definition import CompiledWorkflow, compile_workflow
from ._errors import (
    HashMismatchError,
    InvalidTransitionError,
    StoreNotConfiguredError,
    WorkflowDefinitionError,
)
from ._events import EventCallback
from ._frozen import NotJSONError, freeze
from ._live import LiveRun
from ._machine import Call, HandlerCancelled, RunMachine, Sleep, Steps
from ._models import HandlerResult, RunSnapshot, WorkflowContext, WorkflowResult, now_iso
from ._store import WorkflowStore

__all__ = ["Handler", "WorkflowEngine"]

Handler = Callable[[WorkflowContext], HandlerResult | Awaitable[HandlerResult]]


def _short(digest: str) -> str:
    return digest[:12]


class WorkflowEngine:
    """Runs one workflow definition: validated once, then ``run()`` as often as you like.

    An engine is safe to share between threads that drive different runs.
    The cancel flag is per engine, as in 0.1.0: ``cancel()`` stops whichever
    call of this engine checks it next, and every call clears it when it starts.
    """

    def __init__(
        self,
        workflow_def: Mapping[str, Any],
        handlers: Mapping[str, Handler],
        services: Mapping[str, Any] | None = None,
        event_callback: EventCallback | None = None,
        store: WorkflowStore | None = None,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
        run_id_factory: Callable[[], str] | None = None,
    ) -> None:
        graph: CompiledWorkflow = compile_workflow(workflow_def)
        if not isinstance(handlers, Mapping):
            raise TypeError(
                "handlers must be a mapping of handler name to callable, "
                f"got {type(handlers).__name__}"
            )
        for name, fn in handlers.items():
            if not callable(fn):
                raise TypeError(
                    f"handler '{name}' must be callable (a function taking a WorkflowContext), "
                    f"got {type(fn).__name__}"
                )
        if services is not None and not isinstance(services, Mapping):
            raise TypeError(f"services must be a mapping, got {type(services).__name__}")
        if event_callback is not None and not callable(event_callback):
            raise TypeError(f"event_callback must be callable, got {type(event_callback).__name__}")
        self._graph = graph
        self._store = store
        self._cancel = threading.Event()
        self._sleep = sleep
        self._clock = clock or time.time
        self._new_id = run_id_factory or (lambda: uuid.uuid4().hex)
        self._machine = RunMachine(
            graph,
            dict(handlers),
            {} if services is None else services,
            event_callback,
            store,
            self._clock,
            rng or random.Random(),
            self._cancel.is_set,
        )

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_files(
        cls,
        workflow_json_path: str | Path,
        handlers: Mapping[str, Handler],
        services: Mapping[str, Any] | None = None,
        event_callback: EventCallback | None = None,
        store: WorkflowStore | None = None,
    ) -> WorkflowEngine:
        """Build an engine from a UTF-8 JSON file holding the workflow definition."""
        file = Path(workflow_json_path)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise WorkflowDefinitionError(f"cannot read workflow file '{file}': {exc}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise WorkflowDefinitionError(
                f"workflow file '{file}' is not valid JSON: {exc.msg} "
                f"(line {exc.lineno}, column {exc.colno})"
            ) from exc
        return cls(data, handlers, services, event_callback, store)

    # ------------------------------------------------------------------ properties

    @property
    def workflow_hash(self) -> str:
        """SHA-256 of the definition, as 0.1.0 computes it; checkpoints are locked to it."""
        return self._graph.hash

    @property
    def workflow_name(self) -> str:
        """The definition's ``workflow_name``."""
        return self._graph.name

    @property
    def store(self) -> WorkflowStore | None:
        """The store this engine persists to, if any."""
        return self._store

    # ------------------------------------------------------------------ control

    def cancel(self) -> None:
        """Ask the running call to stop before its next node (thread-safe)."""
        self._cancel.set()

    def load_snapshot(self, run_id: str) -> RunSnapshot:
        """Load a run's latest snapshot from the store (``KeyError`` if unknown)."""
        if self._store is None:
            raise StoreNotConfiguredError()
        return self._store.load_snapshot(run_id)

    # ------------------------------------------------------------------ runs

    def run(
        self,
        initial_input: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        *,
        replace: bool = False,
    ) -> WorkflowResult:
        """Start a new run at the entry node and drive it until it ends or pauses.

        With a store, a ``run_id`` the store already holds raises
        ``RunExistsError`` unless ``replace=True``.
        """
        return self._drive_sync(self._start(initial_input, run_id, replace))

    def run_from_checkpoint(
        self, checkpoint: RunSnapshot | Mapping[str, Any], resume_input: Any = None
    ) -> WorkflowResult:
        """Continue a waiting, cancelled or interrupted run from ``checkpoint``.

        ``resume_input`` (when not None) lands in ``state.workflow["__resume__"]``
        and the waiting node runs again first. A failed run is continued by
        ``redrive()``; a succeeded one has nothing left to do: both raise
        ``ValueError`` here.
        """
        return self._drive_sync(self._resume(checkpoint, resume_input))

    async def arun(
        self,
        initial_input: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        *,
        replace: bool = False,
    ) -> WorkflowResult:
        """``run()`` for ``async def`` handlers (plain handlers work too)."""
        return await self._drive_async(self._start(initial_input, run_id, replace))

    async def arun_from_checkpoint(
        self, checkpoint: RunSnapshot | Mapping[str, Any], resume_input: Any = None
    ) -> WorkflowResult:
        """``run_from_checkpoint()`` for ``async def`` handlers."""
        return await self._drive_async(self._resume(checkpoint, resume_input))

    # ------------------------------------------------------------------ internals

    def _start(
        self, initial_input: Mapping[str, Any] | None, run_id: str | None, replace: bool = False
    ) -> Steps:
        self._cancel.clear()
        try:
            frozen_input = freeze(dict(initial_input or {}))
        except NotJSONError as exc:
            raise TypeError(f"initial_input must be JSON-serializable: {exc}") from exc
        now = self._clock()
        graph = self._graph
        timeout = graph.policy.workflow_timeout_seconds
        stamp = now_iso(now)
        snap = RunSnapshot(
            run_id=run_id if run_id is not None else self._new_id(),
            workflow_name=graph.name,
            wf_hash=graph.hash,
            status=C.STATUS_RUNNING,
            ready_now=[graph.entry],
            started_at=stamp,
            updated_at=stamp,
            deadline_ts=None if timeout is None else now + timeout,
        )
        snap.state.input = frozen_input
        machine = self._machine
        run = LiveRun(snap, machine.journal)
        return machine.session(run, C.EVENT_WF_START, {"workflow": graph.name}, replace=replace)

    def _adopt(self, checkpoint: RunSnapshot | Mapping[str, Any]) -> RunSnapshot:
        """A private copy of ``checkpoint`` after checking the hash lock."""
        if isinstance(checkpoint, RunSnapshot):
            snap = checkpoint.copy()
        elif isinstance(checkpoint, Mapping):
            snap = RunSnapshot.from_dict(checkpoint)
        else:
            raise TypeError(
                f"checkpoint must be a RunSnapshot or its dict, got {type(checkpoint).__name__}"
            )
        current = self._graph.hash
        if snap.wf_hash != current:
            raise HashMismatchError(
                f"workflow hash mismatch: checkpoint={_short(snap.wf_hash)}, "
                f"current={_short(current)}",
                checkpoint_hash=snap.wf_hash,
                current_hash=current,
            )
        return snap

    def _resume(self, checkpoint: RunSnapshot | Mapping[str, Any], resume_input: Any) -> Steps:
        self._cancel.clear()
        snap = self._adopt(checkpoint)
        if snap.status not in C.RESUMABLE_STATUSES:
            hint = (
                "call engine.redrive(checkpoint) to run the failed node again"
                if snap.status == C.STATUS_FAILED
                else "a succeeded run has nothing left to do"
            )
            raise InvalidTransitionError(
                f"cannot resume run '{snap.run_id}': its status is '{snap.status}'; {hint}",
                run_id=snap.run_id,
                status=snap.status,
            )
        resumed_from = snap.step
        snap.status = C.STATUS_RUNNING
        snap.waiting_prompt = None
        machine = self._machine
        run = LiveRun(snap, machine.journal)
        if resume_input is not None:
            try:
                run.set_workflow_key("__resume__", resume_input)
            except NotJSONError as exc:
                raise TypeError(f"resume_input must be JSON-serializable: {exc}") from exc
        return machine.session(
            run,
            C.EVENT_WF_RESUMED,
            {"workflow": snap.workflow_name, "resumed_from_step": resumed_from, "wave": snap.wave},
        )

    def _drive_sync(self, steps: Steps) -> WorkflowResult:
        """Answer the machine's requests in this thread."""
        answer: Any = None
        cancel = self._cancel
        try:
            request = next(steps)
            while True:
                if type(request) is Call:
                    try:
                        result = request.fn(request.ctx)
                        if type(result) is not HandlerResult and inspect.isawaitable(result):
                            result = _await_outside_loop(result, request)
                        answer = (result, None)
                    except Exception as exc:
                        answer = (None, exc)
                else:
                    assert type(request) is Sleep
                    if self._sleep is not None:
                        self._sleep(request.seconds)
                        answer = cancel.is_set()
                    else:
                        answer = (
                            cancel.wait(request.seconds)
                            if request.seconds > 0
                            else (cancel.is_set())
                        )
                request = steps.send(answer)
        except StopIteration as stop:
            result_value: WorkflowResult = stop.value
            return result_value
        finally:
            steps.close()

    async def _drive_async(self, steps: Steps) -> WorkflowResult:
        """Answer the machine's requests on the running event loop."""
        answer: Any = None
        cancel = self._cancel
        try:
            request = next(steps)
            while True:
                if type(request) is Call:
                    answer = await _call_async(request, cancel)
                else:
                    assert type(request) is Sleep
                    answer = await _sleep_async(request.seconds, cancel, self._sleep)
                request = steps.send(answer)
        except StopIteration as stop:
            result_value: WorkflowResult = stop.value
            return result_value
        finally:
            steps.close()


def _await_outside_loop(awaitable: Any, request: Call) -> Any:
    """Drive an async handler to completion from sync ``run()``, if no loop is running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        if inspect.iscoroutine(awaitable):
            awaitable.close()
        raise RuntimeError(
            f"handler of node '{request.ctx.node_name}' is async and run() was called inside a "
            "running event loop; use 'await engine.arun(...)' instead"
        )

    async def wrap() -> Any:
        if request.timeout_seconds is None:
            return await awaitable
        return await _with_node_timeout(awaitable, request.timeout_seconds)

    return asyncio.run(wrap())


class NodeTimeoutError(TimeoutError):
    """An async handler was cancelled at its node deadline."""

    zeroflow_node_timeout = True


async def _with_node_timeout(awaitable: Any, seconds: float) -> Any:
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        raise NodeTimeoutError(f"cancelled after {seconds} s") from None


async def _call_async(request: Call, cancel: threading.Event) -> tuple[Any, Exception | None]:
    """Call a handler; await it if async, cancelling it at its deadline or on ``cancel()``."""
    try:
        result = request.fn(request.ctx)
        if type(result) is HandlerResult or not inspect.isawaitable(result):
            return result, None
        task = asyncio.ensure_future(
            result
            if request.timeout_seconds is None
            else _with_node_timeout(result, request.timeout_seconds)
        )
        while True:
            done, _ = await asyncio.wait({task}, timeout=0.05)
            if done:
                return task.result(), None
            if cancel.is_set():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
                return None, HandlerCancelled("handler cancelled by engine.cancel()")
    except Exception as exc:
        return None, exc


async def _sleep_async(
    seconds: float, cancel: threading.Event, sleep: Callable[[float], None] | None
) -> bool:
    if sleep is not None:
        sleep(seconds)
        return cancel.is_set()
    deadline = time.monotonic() + seconds
    while not cancel.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        await asyncio.sleep(min(left, 0.05))
    return True
