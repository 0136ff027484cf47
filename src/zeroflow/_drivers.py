"""Drivers: answer the run machine's requests, in this thread or on an event loop.

The run loop (``_run.loop.RunLoop.steps``) yields ``Call``, ``Batch`` and ``Sleep``;
``drive_sync`` answers them by calling handlers here (a thread pool for a
batch), ``drive_async`` by awaiting them. Asked (``Direct``), an unpaced
``drive_sync`` lends the loop its own caller, so a plain node's call needs no
request. Only this module's functions run user code, touch threads and sleep.

``asyncio`` and the thread pool are imported when first needed: a program
that only runs plain handlers (a CLI, a Lambda function) does not pay for
them at ``import zeroflow``.
"""

from __future__ import annotations

import sys
import threading
import time
import types
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

from . import _constants as C
from ._models import HandlerResult, WorkflowContext, WorkflowResult
from ._run.requests import (
    Batch,
    Call,
    Direct,
    DirectCaller,
    HandlerCancelled,
    NodeTimeoutError,
    Sleep,
    Steps,
)

__all__ = ["drive_async", "drive_sync", "loop_running"]

Sleeper = Callable[[float], None]
_POLL_SECONDS = 0.05  # how often a running async handler checks the cancel flag
_CO_ITERABLE_COROUTINE = 0x100  # inspect.CO_ITERABLE_COROUTINE


def _isawaitable(value: Any) -> bool:
    """``inspect.isawaitable`` (its body in CPython 3.11), without importing ``inspect``."""
    return (
        isinstance(value, types.CoroutineType)
        or (
            isinstance(value, types.GeneratorType)
            and bool(value.gi_code.co_flags & _CO_ITERABLE_COROUTINE)
        )
        or isinstance(value, Awaitable)
    )


def drive_sync(
    steps: Steps,
    cancel: threading.Event,
    sleep: Sleeper | None,
    pace: Callable[[], None] | None = None,
) -> WorkflowResult:
    """Answer every request of ``steps`` in this thread; return the run's result.

    ``pace`` (a stream's) is called before each handler call or batch and may
    block until the consumer has caught up.
    """
    answer: Any = None
    pool: ThreadPoolExecutor | None = None  # made at the first batch, reused by the next ones
    # Unpaced, the loop may call handlers itself: the same call, minus a request per node.
    direct: DirectCaller | None = partial(_call_here, cancel) if pace is None else None
    try:
        request = next(steps)
        while True:
            if type(request) is Direct:
                request = steps.send(direct)
                continue
            if pace is not None and type(request) is not Sleep:
                pace()
            if type(request) is Call:
                answer = _call_sync(request, cancel)
            elif type(request) is Batch:
                calls = request.calls
                if pool is None or pool._max_workers < len(calls):
                    if pool is not None:
                        pool.shutdown()
                    from concurrent.futures import ThreadPoolExecutor

                    pool = ThreadPoolExecutor(max_workers=len(calls))
                answer = list(pool.map(partial(_timed_sync, cancel=cancel), calls))
            else:
                assert isinstance(request, Sleep)
                if sleep is not None:
                    sleep(request.seconds)
                    answer = cancel.is_set()
                elif request.seconds > 0:
                    answer = cancel.wait(request.seconds)
                else:
                    answer = cancel.is_set()
            request = steps.send(answer)
    except StopIteration as stop:
        result: WorkflowResult = stop.value
        return result
    finally:
        steps.close()
        if pool is not None:
            pool.shutdown()


async def drive_async(
    steps: Steps,
    cancel: threading.Event,
    sleep: Sleeper | None,
    pace: Callable[[], Awaitable[None]] | None = None,
) -> WorkflowResult:
    """Answer every request of ``steps`` on the running loop; return the run's result.

    ``pace`` (a stream's) is awaited before each handler call or batch.
    """
    import asyncio

    answer: Any = None
    try:
        request = next(steps)
        while True:
            if type(request) is Direct:
                request = steps.send(None)  # every handler call is awaited here
                continue
            if pace is not None and type(request) is not Sleep:
                await pace()
            if type(request) is Call:
                answer = await _call_async(request, cancel)
            elif type(request) is Batch:
                jobs = [_timed_async(c, cancel) for c in request.calls]
                answer = list(await asyncio.gather(*jobs))
            else:
                assert isinstance(request, Sleep)
                answer = await _sleep_async(request.seconds, cancel, sleep)
            request = steps.send(answer)
    except StopIteration as stop:
        result: WorkflowResult = stop.value
        return result
    finally:
        steps.close()


def _call_sync(request: Call, cancel: threading.Event) -> tuple[Any, Exception | None]:
    """Answer a ``Call`` in this thread (``_call_here``, noting when a timed call returned)."""
    return _call_here(cancel, request.fn, request.ctx, request)


def _call_here(
    cancel: threading.Event,
    fn: Callable[..., Any],
    ctx: WorkflowContext,
    request: Call | None = None,
) -> tuple[Any, Exception | None]:
    """Call a handler in this thread; an async one is driven on a private event loop.

    ``partial(_call_here, cancel)`` is the unpaced driver's ``DirectCaller``; a
    ``request`` with a timeout learns when its handler returned.
    """
    try:
        result = fn(ctx)
        if type(result) is not HandlerResult and _isawaitable(result):
            result = _await_outside_loop(result, ctx, cancel)
        if request is not None and request.timeout_seconds is not None:
            request.returned_at = ctx.clock()
        return result, None
    except Exception as exc:
        return None, exc


def _timed_sync(request: Call, cancel: threading.Event) -> tuple[Any, Exception | None]:
    """``_call_sync`` for a call of a batch: also notes how long this handler took."""
    started = time.perf_counter()
    try:
        return _call_sync(request, cancel)
    finally:
        request.elapsed = time.perf_counter() - started


async def _timed_async(request: Call, cancel: threading.Event) -> tuple[Any, Exception | None]:
    """``_call_async`` for a call of a batch: also notes how long this handler took."""
    started = time.perf_counter()
    try:
        return await _call_async(request, cancel, threaded=True)
    finally:
        request.elapsed = time.perf_counter() - started


def _is_coroutine_function(fn: Any) -> bool:
    """``inspect.iscoroutinefunction``; only a parallel batch on the event loop asks."""
    import inspect  # a batch's thread hop dwarfs this lookup

    return inspect.iscoroutinefunction(fn)


def loop_running() -> bool:
    """True when this thread is running an event loop (never without ``asyncio`` imported)."""
    if "asyncio" not in sys.modules:
        return False
    import asyncio  # waits for another thread that may be importing it right now

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _await_outside_loop(awaitable: Any, ctx: WorkflowContext, cancel: threading.Event) -> Any:
    """Drive an async handler to completion from sync ``run()``, if no loop is running."""
    if loop_running():
        if isinstance(awaitable, types.CoroutineType):  # inspect.iscoroutine
            awaitable.close()
        raise RuntimeError(
            f"handler of node '{ctx.node_name}' is async and run() was called inside a "
            "running event loop; use 'await engine.arun(...)' (or arun_from_checkpoint, "
            "aresume, aredrive) instead"
        )
    import asyncio

    # Not asyncio.run: at its end it waits, without limit, for every task still
    # running, and a handler that swallows each cancel would hang run() there.
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(_supervise(awaitable, ctx, cancel))
    finally:
        try:
            left = asyncio.all_tasks(loop)
            for task in left:
                task.cancel()
            if left:
                loop.run_until_complete(asyncio.wait(left, timeout=C.CANCEL_GRACE_SECONDS))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


async def _supervise(awaitable: Any, ctx: WorkflowContext, cancel: threading.Event) -> Any:
    """Await a handler, cancelling it at ``ctx.deadline_ts`` or when ``cancel()`` is called.

    The deadline is the earlier of the node's and the workflow's. A
    ``TimeoutError`` the handler raises itself passes through unchanged; only
    our own cut-off becomes ``NodeTimeoutError``.
    """
    import asyncio

    task = asyncio.ensure_future(awaitable)
    while True:
        wait = _POLL_SECONDS
        if ctx.deadline_ts is not None:
            wait = min(wait, max(0.0, ctx.deadline_ts - ctx.clock()))
        done, _ = await asyncio.wait({task}, timeout=wait)
        if done:
            return task.result()
        if cancel.is_set():
            await _cancel_task(task)
            raise HandlerCancelled("handler cancelled by engine.cancel()")
        if ctx.deadline_ts is not None and ctx.clock() >= ctx.deadline_ts:
            await _cancel_task(task)
            raise NodeTimeoutError(f"node '{ctx.node_name}' was cancelled at its deadline")


async def _cancel_task(task: asyncio.Future[Any]) -> None:
    import asyncio

    task.cancel()
    # At most the grace period: a handler that swallows the cancel is abandoned.
    await asyncio.wait((task,), timeout=C.CANCEL_GRACE_SECONDS)
    task.add_done_callback(_retrieve)  # its outcome is not ours to report


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def _call_async(
    request: Call, cancel: threading.Event, *, threaded: bool = False
) -> tuple[Any, Exception | None]:
    """Call a handler; await it if async, cancelling it at its deadline or on ``cancel()``.

    In a parallel batch (``threaded``) a plain handler runs in a worker thread.
    """
    import asyncio

    try:
        fn = request.fn
        if threaded and not _is_coroutine_function(fn):
            result = await asyncio.to_thread(fn, request.ctx)
        else:
            result = fn(request.ctx)
        if type(result) is not HandlerResult and _isawaitable(result):
            result = await _supervise(result, request.ctx, cancel)
        if request.timeout_seconds is not None:
            request.returned_at = request.ctx.clock()
        return result, None
    except HandlerCancelled as exc:
        return None, exc
    except Exception as exc:
        return None, exc


async def _sleep_async(
    seconds: float, cancel: threading.Event, sleep: Callable[[float], None] | None
) -> bool:
    if sleep is not None:
        sleep(seconds)
        return cancel.is_set()
    import asyncio

    deadline = time.monotonic() + seconds
    while not cancel.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        await asyncio.sleep(min(left, 0.05))
    return True
