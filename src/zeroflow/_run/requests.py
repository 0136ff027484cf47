"""What a run asks of its driver, and the signals that stop a node.

The loop and the node runners are generators: they *yield* a ``Call`` (run a
handler), a ``Batch`` (run several at once) or a ``Sleep`` (wait before a
retry) and receive the driver's answer. This module is a leaf: drivers,
nodes and the loop all import it, it imports only the public records.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from .._models import HandlerResult, WorkflowContext, WorkflowError, WorkflowResult

__all__ = [
    "DIRECT",
    "Batch",
    "Call",
    "Cancelled",
    "Direct",
    "DirectCaller",
    "HandlerCancelled",
    "NodeSteps",
    "NodeTimeoutError",
    "Outcome",
    "Request",
    "Sleep",
    "Steps",
    "TimedOut",
    "new_call",
]


class Call:
    """Request: call ``fn(ctx)``; answer ``(result, None)`` or ``(None, exception)``.

    ``timeout_seconds`` is the node's per-attempt limit, which an async driver
    enforces by cancelling the handler. With a limit, the driver notes in
    ``returned_at`` (``ctx.clock()``) when the handler returned: in a batch the
    answer comes only once every call of the batch is done.
    """

    __slots__ = ("ctx", "elapsed", "fn", "returned_at", "timeout_seconds")

    def __init__(self, fn: Callable[..., Any], ctx: WorkflowContext, timeout: float | None) -> None:
        self.fn = fn
        self.ctx = ctx
        self.timeout_seconds = timeout
        self.returned_at: float | None = None
        self.elapsed: float | None = None
        """Seconds the handler took, noted by the driver for the calls of a ``Batch``."""


def new_call(fn: Callable[..., Any], ctx: WorkflowContext, timeout: float | None) -> Call:
    """``Call(fn, ctx, timeout)``, without the class call (one per handler call)."""
    call = _new(Call)
    call.fn = fn
    call.ctx = ctx
    call.timeout_seconds = timeout
    call.returned_at = None
    call.elapsed = None
    return call


_new = object.__new__


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


class Direct:
    """Request, once at the start of a call: may the loop call handlers itself?

    The answer is a ``DirectCaller`` (a function that calls ``fn(ctx)`` in this
    thread and answers as the driver would answer a ``Call`` without a timeout)
    or None: every call goes through the driver. A driver that must see each
    call (async, paced by a stream) answers None.
    """

    __slots__ = ()


DIRECT = Direct()
DirectCaller = Callable[[Callable[..., Any], WorkflowContext], tuple[Any, BaseException | None]]
"""``direct(fn, ctx)``: no ``Call`` is built for an attempt that needs no request."""

Request = Call | Batch | Sleep | Direct
Outcome = tuple[HandlerResult | None, WorkflowError | None, frozenset[str] | None]
"""What running one node came to: its result, its error, the exception's class names."""
Steps = Generator[Request, Any, WorkflowResult]
"""A call driving a run: yields requests, returns the call's result."""
NodeSteps = Generator[Request, Any, Outcome]
"""One node running: yields requests, returns its outcome."""


class Cancelled(Exception):
    """A cancel arrived while a node was waiting to retry or running."""


class TimedOut(Exception):
    """The workflow deadline passed while a node ran or waited to retry.

    ``args[0]`` is the ``WorkflowError`` the run ends with.
    """


class HandlerCancelled(Exception):
    """A driver cancelled a running (async) handler because ``engine.cancel()`` was called."""


class NodeTimeoutError(TimeoutError):
    """An async handler was cancelled at its node deadline."""

    zeroflow_node_timeout = True
