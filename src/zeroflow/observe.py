"""Event callbacks for observability: standard logging, OpenTelemetry, and composition.

Pass any of these as ``event_callback`` to ``WorkflowEngine``:

- ``logging_callback()`` writes one structured ``logging`` record per event,
  with the run id, node, step, wave and (for node and run ends) the duration
  as record attributes, so any formatter or JSON handler can pick them up;
- ``otel_callback()`` opens an OpenTelemetry span per run call and per node
  execution (needs ``opentelemetry-api``: ``pip install 'zeroflow[otel]'``;
  the core of zeroflow never imports it);
- ``compose(a, b, ...)`` sends every event to several callbacks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from ._constants import (
    EVENT_CHECKPOINT,
    EVENT_NODE_COMPENSATION_FAILED,
    EVENT_NODE_END,
    EVENT_NODE_ERROR,
    EVENT_NODE_RETRY,
    EVENT_NODE_START,
    EVENT_NODE_WARNING,
    EVENT_STORE_CORRUPT,
    EVENT_STORE_RECOVERED,
    EVENT_WF_CANCELLED,
    EVENT_WF_END,
    EVENT_WF_RESUMED,
    EVENT_WF_START,
    EVENT_WF_WAITING,
)
from ._events import EventCallback, wanted_kinds
from ._models import Event

__all__ = [
    "LoggingCallback",
    "OpenTelemetryCallback",
    "compose",
    "logging_callback",
    "otel_callback",
]

_RUN_OPEN = (EVENT_WF_START, EVENT_WF_RESUMED)
_RUN_CLOSE = (EVENT_WF_END, EVENT_WF_WAITING)
_NODE_CLOSE = (EVENT_NODE_END, EVENT_NODE_ERROR)
_ERROR_KINDS = frozenset([EVENT_NODE_ERROR, EVENT_NODE_COMPENSATION_FAILED, EVENT_STORE_CORRUPT])
_WARNING_KINDS = frozenset([EVENT_NODE_RETRY, EVENT_NODE_WARNING, EVENT_STORE_RECOVERED])


class _Durations:
    """Measures run calls and node executions from their start events (monotonic clock)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._started: dict[tuple[str, str | None], float] = {}
        self._lock = threading.Lock()

    def observe(self, event: Event) -> float | None:
        """Record starts; for an end event return the elapsed milliseconds, if known."""
        kind = event.kind
        now = self._clock()
        with self._lock:
            if kind in _RUN_OPEN:
                self._started[(event.run_id, None)] = now
            elif kind == EVENT_NODE_START:
                self._started[(event.run_id, event.node)] = now
            elif kind in _NODE_CLOSE:
                begun = self._started.pop((event.run_id, event.node), None)
                return None if begun is None else (now - begun) * 1000.0
            elif kind in _RUN_CLOSE:
                self._started.pop((event.run_id, event.node), None)
                begun = self._started.pop((event.run_id, None), None)
                return None if begun is None else (now - begun) * 1000.0
        return None


def _failed(data: Mapping[str, Any]) -> bool:
    """A ``wf:end`` of a run that failed (not one that was cancelled)."""
    return data.get("error") is not None and not data.get("cancelled")


class LoggingCallback:
    """Writes one ``logging`` record per event; see ``logging_callback``."""

    def __init__(
        self,
        logger: logging.Logger,
        level: int,
        checkpoint_level: int,
        clock: Callable[[], float],
    ) -> None:
        self.logger = logger
        self.level = level
        self.checkpoint_level = checkpoint_level
        self._durations = _Durations(clock)

    def __call__(self, event: Event) -> None:
        duration = self._durations.observe(event)
        kind = event.kind
        if kind == EVENT_CHECKPOINT:
            level = self.checkpoint_level
        elif kind in _ERROR_KINDS or (kind == EVENT_WF_END and _failed(event.data)):
            level = max(self.level, logging.ERROR)
        elif kind in _WARNING_KINDS:
            level = max(self.level, logging.WARNING)
        else:
            level = self.level
        if not self.logger.isEnabledFor(level):
            return
        data = event.data
        if event.kind == EVENT_CHECKPOINT:
            data = {"step": event.step}  # never log the whole snapshot
        fields: dict[str, Any] = {
            "event": event.kind,
            "run_id": event.run_id,
            "node": event.node,
            "step": event.step,
            "wave": event.wave,
            "duration_ms": None if duration is None else round(duration, 3),
            "data": data,
        }
        suffix = "" if duration is None else f" duration_ms={duration:.1f}"
        node = "-" if event.node is None else event.node
        self.logger.log(
            level,
            "%s run=%s node=%s step=%d wave=%d%s",
            event.kind,
            event.run_id,
            node,
            event.step,
            event.wave,
            suffix,
            extra={"zeroflow": fields, **{f"zf_{k}": v for k, v in fields.items()}},
        )


def logging_callback(
    logger: logging.Logger | str | None = None,
    *,
    level: int = logging.INFO,
    checkpoint_level: int = logging.DEBUG,
    clock: Callable[[], float] = time.perf_counter,
) -> LoggingCallback:
    """A callback logging each event as one record to ``logger`` (default ``"zeroflow"``).

    The message reads ``node:end run=<id> node=<n> step=<s> wave=<w> duration_ms=<d>``;
    the same values are record attributes ``zf_event``, ``zf_run_id``, ``zf_node``,
    ``zf_step``, ``zf_wave``, ``zf_duration_ms`` and ``zf_data`` (and all together
    as the dict ``record.zeroflow``). ``checkpoint`` events are logged at
    ``checkpoint_level`` without the snapshot they carry; ``node:error`` and a
    failed ``wf:end`` at least at ERROR, ``node:retry`` and ``node:warning`` at
    least at WARNING, everything else at ``level``.
    """
    if logger is None or isinstance(logger, str):
        logger = logging.getLogger(logger or "zeroflow")
    return LoggingCallback(logger, level, checkpoint_level, clock)


class _Composed:
    """Calls each callback in order; declares the union of the kinds they want."""

    def __init__(self, callbacks: tuple[EventCallback, ...]) -> None:
        self.callbacks = callbacks
        kinds = [wanted_kinds(cb) for cb in callbacks]
        if all(k is not None for k in kinds):
            self.event_kinds: frozenset[str] | None = frozenset().union(
                *(k for k in kinds if k is not None)
            )
        else:
            self.event_kinds = None

    def __call__(self, event: Event) -> None:
        for cb in self.callbacks:
            cb(event)


def compose(*callbacks: EventCallback | None) -> EventCallback:
    """One callback that hands every event to each of ``callbacks`` in order (None skipped).

    When every callback declares the kinds it wants (``subscribe``), the result
    declares their union, so the engine still skips building payloads no one reads.
    """
    present = tuple(cb for cb in callbacks if cb is not None)
    for cb in present:
        if not callable(cb):
            raise TypeError(f"compose() takes callables, got {type(cb).__name__}")
    return _Composed(present)


# ---------------------------------------------------------------------- OpenTelemetry


class OpenTelemetryCallback:
    """Opens a span per run call and per node execution; see ``otel_callback``."""

    event_kinds = frozenset(
        {
            EVENT_WF_START,
            EVENT_WF_RESUMED,
            EVENT_WF_WAITING,
            EVENT_WF_CANCELLED,
            EVENT_WF_END,
            EVENT_NODE_START,
            EVENT_NODE_END,
            EVENT_NODE_ERROR,
            EVENT_NODE_RETRY,
            EVENT_NODE_WARNING,
        }
    )

    def __init__(self, tracer: Any, trace_api: Any) -> None:
        self._tracer = tracer
        self._trace = trace_api
        self._runs: dict[str, Any] = {}
        self._nodes: dict[tuple[str, str | None], Any] = {}
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            handler = self._dispatch.get(event.kind)
            if handler is not None:
                handler(self, event)

    def _attrs(self, event: Event) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "zeroflow.run_id": event.run_id,
            "zeroflow.step": event.step,
            "zeroflow.wave": event.wave,
        }
        if event.node is not None:
            attrs["zeroflow.node"] = event.node
        return attrs

    def _open_run(self, event: Event) -> None:
        workflow = str(event.data.get("workflow", ""))
        attrs = self._attrs(event)
        attrs["zeroflow.workflow"] = workflow
        attrs["zeroflow.resumed"] = event.kind == EVENT_WF_RESUMED
        self._runs[event.run_id] = self._tracer.start_span(f"workflow {workflow}", attributes=attrs)

    def _open_node(self, event: Event) -> None:
        parent = self._runs.get(event.run_id)
        context = None if parent is None else self._trace.set_span_in_context(parent)
        self._nodes[(event.run_id, event.node)] = self._tracer.start_span(
            f"node {event.node}", context=context, attributes=self._attrs(event)
        )

    def _node_event(self, event: Event) -> None:
        span = self._nodes.get((event.run_id, event.node))
        if span is not None:
            name = event.kind.split(":", 1)[1]
            span.add_event(name, {k: str(v) for k, v in event.data.items() if k != "node"})

    def _close_node(self, event: Event) -> None:
        span = self._nodes.pop((event.run_id, event.node), None)
        if span is None:
            return
        if event.kind == EVENT_NODE_END:
            span.set_attribute("zeroflow.outputs", [str(o) for o in event.data.get("outputs", [])])
        else:
            _mark_error(span, self._trace, event.data.get("error"))
        span.end()

    def _close_run(self, event: Event) -> None:
        if event.kind == EVENT_WF_WAITING:
            node_span = self._nodes.pop((event.run_id, event.node), None)
            if node_span is not None:
                node_span.set_attribute("zeroflow.waiting", True)
                node_span.end()
        for key in [k for k in self._nodes if k[0] == event.run_id]:
            self._nodes.pop(key).end()
        span = self._runs.pop(event.run_id, None)
        if span is None:
            return
        if event.kind == EVENT_WF_WAITING:
            span.set_attribute("zeroflow.status", "waiting")
            prompt = event.data.get("prompt")
            if prompt is not None:
                span.set_attribute("zeroflow.waiting_prompt", str(prompt))
        else:
            success = bool(event.data.get("success"))
            span.set_attribute("zeroflow.success", success)
            span.set_attribute("zeroflow.trace", [str(n) for n in event.data.get("trace", [])])
            if event.data.get("cancelled"):
                span.set_attribute("zeroflow.status", "cancelled")
            if not success:
                _mark_error(span, self._trace, event.data.get("error"))
        span.end()

    def _cancelled(self, event: Event) -> None:
        span = self._runs.get(event.run_id)
        if span is not None:
            span.add_event("cancelled")

    _dispatch: ClassVar[Mapping[str, Callable[[OpenTelemetryCallback, Event], None]]] = {
        EVENT_WF_START: _open_run,
        EVENT_WF_RESUMED: _open_run,
        EVENT_NODE_START: _open_node,
        EVENT_NODE_RETRY: _node_event,
        EVENT_NODE_WARNING: _node_event,
        EVENT_NODE_END: _close_node,
        EVENT_NODE_ERROR: _close_node,
        EVENT_WF_WAITING: _close_run,
        EVENT_WF_END: _close_run,
        EVENT_WF_CANCELLED: _cancelled,
    }


def _mark_error(span: Any, trace_api: Any, error: Any) -> None:
    if isinstance(error, Mapping):
        code = str(error.get("code", "ERROR"))
        message = str(error.get("message", ""))
        span.set_attribute("zeroflow.error.code", code)
        if error.get("cause_type"):
            span.set_attribute("zeroflow.error.cause_type", str(error["cause_type"]))
        description = f"{code}: {message}"
    else:
        description = "workflow failed"
    span.set_status(trace_api.Status(trace_api.StatusCode.ERROR, description))


def otel_callback(tracer: Any = None, *, tracer_provider: Any = None) -> OpenTelemetryCallback:
    """A callback that traces runs with OpenTelemetry: one span per run call, one per node.

    Node spans are children of their run's span and carry ``zeroflow.run_id``,
    ``zeroflow.node``, ``zeroflow.step``, ``zeroflow.wave`` and the outputs;
    failures set the span status to ERROR with the error code; retries and
    warnings become span events. A run that pauses ends its span with
    ``zeroflow.status = "waiting"``; the resumed call opens a new one.
    Raises ``ImportError`` with the install hint when ``opentelemetry-api``
    is missing.
    """
    try:
        from opentelemetry import trace as trace_api
    except ImportError as exc:
        raise ImportError(
            "otel_callback() needs the OpenTelemetry API: pip install 'zeroflow[otel]'"
        ) from exc
    if tracer is None:
        from . import __version__

        tracer = trace_api.get_tracer("zeroflow", __version__, tracer_provider=tracer_provider)
    return OpenTelemetryCallback(tracer, trace_api)
