"""zeroflow.observe: structured logging, composition and OpenTelemetry spans."""

from __future__ import annotations

import logging
import sys
from typing import Any

import pytest

from _support import integration
from zeroflow import Event, HandlerResult, WorkflowContext, WorkflowEngine, subscribe
from zeroflow._events import wanted_kinds
from zeroflow.observe import compose, logging_callback, otel_callback

WORKFLOW: dict[str, Any] = {
    "workflow_name": "observed",
    "default_entry_node": "a",
    "nodes": {
        "a": {"handler": "ok", "outputs": {"next": [{"target_node": "b"}]}},
        "b": {"handler": "b", "outputs": {}},
    },
}


def ok(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["next"])


def boom(ctx: WorkflowContext) -> HandlerResult:
    raise RuntimeError("disk on fire")


def ask(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=[], waiting=True, waiting_prompt="approve?")


def done(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=[])


def test_logging_writes_one_structured_record_per_event(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Event] = []
    callback = compose(seen.append, logging_callback("zf.test"))
    with caplog.at_level(logging.DEBUG, logger="zf.test"):
        result = WorkflowEngine(WORKFLOW, {"ok": ok, "b": done}, event_callback=callback).run(
            run_id="r1"
        )
    assert result.success
    records = [r for r in caplog.records if r.name == "zf.test"]
    assert [r.zf_event for r in records] == [e.kind for e in seen]  # type: ignore[attr-defined]
    ends = [r for r in records if r.zf_event == "node:end"]  # type: ignore[attr-defined]
    assert [(r.zf_run_id, r.zf_node, r.zf_step, r.zf_wave) for r in ends] == [  # type: ignore[attr-defined]
        ("r1", "a", 1, 1),
        ("r1", "b", 2, 1),
    ]
    assert all(r.zf_duration_ms is not None and r.zf_duration_ms >= 0 for r in ends)  # type: ignore[attr-defined]
    assert "node:end run=r1 node=a step=1 wave=1 duration_ms=" in ends[0].getMessage()
    checkpoints = [r for r in records if r.zf_event == "checkpoint"]  # type: ignore[attr-defined]
    assert checkpoints and all(r.levelno == logging.DEBUG for r in checkpoints)
    assert all(set(r.zf_data) == {"step"} for r in checkpoints)  # type: ignore[attr-defined]


def test_logging_skips_formatting_when_the_level_is_disabled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="zf.quiet"):
        WorkflowEngine(
            WORKFLOW, {"ok": ok, "b": done}, event_callback=logging_callback("zf.quiet")
        ).run()
    assert not [r for r in caplog.records if r.name == "zf.quiet"]


def test_failures_are_logged_at_error_and_retries_at_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flaky = {
        **WORKFLOW,
        "nodes": {
            **WORKFLOW["nodes"],
            "a": {**WORKFLOW["nodes"]["a"], "run_policy": {"max_retries": 1}},
        },
    }
    engine = WorkflowEngine(
        flaky,
        {"ok": boom, "b": done},
        event_callback=logging_callback("zf.levels"),
        sleep=lambda seconds: None,
    )
    with caplog.at_level(logging.INFO, logger="zf.levels"):
        assert not engine.run(run_id="r1").success
    levels = {r.zf_event: r.levelno for r in caplog.records if r.name == "zf.levels"}  # type: ignore[attr-defined]
    assert levels["node:error"] == logging.ERROR
    assert levels["node:retry"] == logging.WARNING
    assert levels["wf:end"] == logging.ERROR
    assert levels["node:start"] == logging.INFO


def test_compose_calls_each_callback_and_merges_declared_kinds() -> None:
    a: list[str] = []
    b: list[str] = []
    both = compose(
        subscribe(lambda e: a.append(e.kind), "node:end"),
        None,
        subscribe(lambda e: b.append(e.kind), "wf:end"),
    )
    assert wanted_kinds(both) == {"node:end", "wf:end"}
    WorkflowEngine(WORKFLOW, {"ok": ok, "b": done}, event_callback=both).run()
    assert a == ["node:end", "node:end"] and b == ["wf:end"]
    assert wanted_kinds(compose(print, subscribe(print, "x"))) is None
    with pytest.raises(TypeError):
        compose(3)  # type: ignore[arg-type]


@pytest.fixture
def spans() -> Any:
    sdk = integration("opentelemetry.sdk.trace")
    export = integration("opentelemetry.sdk.trace.export")
    memory = integration("opentelemetry.sdk.trace.export.in_memory_span_exporter")
    provider = sdk.TracerProvider()
    exporter = memory.InMemorySpanExporter()
    provider.add_span_processor(export.SimpleSpanProcessor(exporter))
    return provider, exporter


def test_otel_creates_a_span_per_run_and_per_node(spans: Any) -> None:
    provider, exporter = spans
    engine = WorkflowEngine(
        WORKFLOW, {"ok": ok, "b": done}, event_callback=otel_callback(tracer_provider=provider)
    )
    assert engine.run(run_id="r1").success
    finished = {s.name: s for s in exporter.get_finished_spans()}
    assert set(finished) == {"workflow observed", "node a", "node b"}
    run = finished["workflow observed"]
    for name in ("node a", "node b"):
        assert finished[name].parent.span_id == run.context.span_id
        assert finished[name].attributes["zeroflow.run_id"] == "r1"
    assert finished["node a"].attributes["zeroflow.outputs"] == ("next",)
    assert finished["node b"].attributes["zeroflow.step"] == 2
    assert run.attributes["zeroflow.success"] is True
    assert run.attributes["zeroflow.trace"] == ("a", "b")


def test_otel_marks_failures_and_retries(spans: Any) -> None:
    provider, exporter = spans
    defn = {**WORKFLOW, "nodes": {**WORKFLOW["nodes"]}}
    defn["nodes"]["a"] = {
        **defn["nodes"]["a"],
        "run_policy": {"max_retries": 1, "retry_sleep_seconds": 0},
    }
    engine = WorkflowEngine(
        defn, {"ok": boom, "b": done}, event_callback=otel_callback(tracer_provider=provider)
    )
    assert not engine.run().success
    finished = {s.name: s for s in exporter.get_finished_spans()}
    node = finished["node a"]
    assert node.status.status_code.name == "ERROR"
    assert node.attributes["zeroflow.error.code"] == "HANDLER_EXCEPTION"
    assert [e.name for e in node.events] == ["retry"]
    assert finished["workflow observed"].status.status_code.name == "ERROR"


def test_otel_ends_spans_when_a_run_pauses_and_opens_new_ones_on_resume(spans: Any) -> None:
    provider, exporter = spans
    engine = WorkflowEngine(
        WORKFLOW, {"ok": ok, "b": ask}, event_callback=otel_callback(tracer_provider=provider)
    )
    paused = engine.run()
    assert paused.waiting
    first = exporter.get_finished_spans()
    run = next(s for s in first if s.name == "workflow observed")
    assert run.attributes["zeroflow.status"] == "waiting"
    assert next(s for s in first if s.name == "node b").attributes["zeroflow.waiting"] is True
    engine2 = WorkflowEngine(
        WORKFLOW, {"ok": ok, "b": done}, event_callback=otel_callback(tracer_provider=provider)
    )
    assert paused.checkpoint is not None
    assert engine2.run_from_checkpoint(paused.checkpoint, {"ok": True}).success
    resumed = [s for s in exporter.get_finished_spans() if s.name == "workflow observed"]
    assert len(resumed) == 2 and resumed[1].attributes["zeroflow.resumed"] is True


def test_otel_callback_explains_how_to_install_the_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ImportError, match=r"zeroflow\[otel\]"):
        otel_callback()


def test_the_core_never_imports_opentelemetry() -> None:
    import subprocess

    code = (
        "import sys, zeroflow, zeroflow.observe, zeroflow._cli; "
        "print(any(m.startswith('opentelemetry') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
