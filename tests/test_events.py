"""SPEC A10: every event kind, its payload and its order, as 0.1.0 emitted them (bugs aside)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import _support
import zeroflow
from _support import ok
from zeroflow import (
    HandlerResult,
    InMemoryWorkflowStore,
    JsonFileWorkflowStore,
    RunSnapshot,
    WorkflowContext,
    WorkflowEngine,
    WorkflowError,
    subscribe,
)

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")


def node(handler: str | None, *targets: str, **extra: Any) -> dict[str, Any]:
    return {"handler": handler, "outputs": {"ok": [{"target_node": t} for t in targets]}, **extra}


def linear(*names: str, **top: Any) -> dict[str, Any]:
    nodes = {n: node(n, *names[i + 1 : i + 2]) for i, n in enumerate(names)}
    return {"workflow_name": "lin", "default_entry_node": names[0], "nodes": nodes, **top}


def boom(ctx: WorkflowContext) -> HandlerResult:
    raise RuntimeError("kaboom")


class Recorder(_support.Recorder):
    def summary(self) -> list[tuple[str, int, int, str | None]]:
        return [(e.kind, e.step, e.wave, e.node) for e in self.events]

    def statuses(self) -> list[str]:
        return [e.data["state"]["status"] for e in self.of("checkpoint")]


CP = "checkpoint"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EVENT_WF_START", "wf:start"),
        ("EVENT_WF_END", "wf:end"),
        ("EVENT_WF_WAITING", "wf:waiting"),
        ("EVENT_WF_CANCELLED", "wf:cancelled"),
        ("EVENT_WF_RESUMED", "wf:resumed"),
        ("EVENT_NODE_START", "node:start"),
        ("EVENT_NODE_END", "node:end"),
        ("EVENT_NODE_ERROR", "node:error"),
        ("EVENT_NODE_RETRY", "node:retry"),
        ("EVENT_NODE_WARNING", "node:warning"),
        ("EVENT_CHECKPOINT", "checkpoint"),
        ("EVENT_STORE_SAVED", "store:saved"),
    ],
)
def test_event_kind_constants_have_the_0_1_0_values(name: str, value: str) -> None:
    assert getattr(zeroflow, name) == value


def test_linear_run_events_in_order_with_payloads() -> None:
    rec = Recorder()
    WorkflowEngine(
        linear("n0", "n1", "n2"), dict.fromkeys(("n0", "n1", "n2"), ok), event_callback=rec
    ).run(run_id="r1")
    assert rec.summary() == [
        ("wf:start", 0, 1, None),
        (CP, 0, 1, None),
        ("node:start", 1, 1, "n0"),
        ("node:end", 1, 1, "n0"),
        (CP, 1, 1, "n0"),
        ("node:start", 2, 1, "n1"),
        ("node:end", 2, 1, "n1"),
        (CP, 2, 1, "n1"),
        ("node:start", 3, 1, "n2"),
        ("node:end", 3, 1, "n2"),
        (CP, 3, 1, "n2"),
        ("wf:end", 3, 1, None),
        (CP, 3, 1, "n2"),
    ]
    events = rec.events
    assert events[0].data == {"workflow": "lin"}
    assert events[2].data == {"node": "n0"}
    assert events[3].data == {"node": "n0", "outputs": ["ok"]}
    assert events[-2].data == {
        "workflow": "lin",
        "success": True,
        "trace": ["n0", "n1", "n2"],
        "tags": [],
    }
    assert rec.statuses() == ["running"] * 4 + ["succeeded"]
    assert all(e.run_id == "r1" for e in events)
    assert all(ISO.fullmatch(e.ts) for e in events)


def test_checkpoint_events_carry_the_full_snapshot_dict() -> None:
    rec = Recorder()
    engine = WorkflowEngine(linear("a", "b"), {"a": ok, "b": ok}, event_callback=rec)
    engine.run(initial_input={"x": 1}, run_id="r")
    for event in rec.of(CP):
        state = event.data["state"]
        assert RunSnapshot.from_dict(json.loads(json.dumps(state))).to_dict() == state
        assert state["run_id"] == "r"
        assert state["step"] == event.step
        assert state["state"]["input"] == {"x": 1}
        assert state["wf_hash"] == engine.workflow_hash
    last = rec.of(CP)[-1].data["state"]
    assert last["trace"] == ["a", "b"]
    assert [r["node"] for r in last["audit_trail"]] == ["a", "b"]


def test_checkpoint_payloads_are_independent_copies() -> None:
    seen: list[Any] = []

    def mangle(event: zeroflow.Event) -> None:
        if event.kind == CP:
            state = event.data["state"]
            state["ready_now"].append("b")
            state["state"]["workflow"]["hacked"] = True
            seen.append(state["step"])

    engine = WorkflowEngine(linear("a", "b"), {"a": ok, "b": ok}, event_callback=mangle)
    result = engine.run()
    assert result.trace == ["a", "b"]
    assert result.state.workflow == {}
    assert seen


def test_hitl_pause_and_resume_events() -> None:
    def ask(ctx: WorkflowContext) -> HandlerResult:
        if "__resume__" in ctx.state.workflow:
            return HandlerResult(outputs=["ok"])
        return HandlerResult(outputs=[], waiting=True, waiting_prompt="approve?")

    rec = Recorder()
    engine = WorkflowEngine(
        linear("a", "ask", "z"), {"a": ok, "ask": ask, "z": ok}, event_callback=rec
    )
    paused = engine.run()
    assert rec.summary()[5:] == [
        ("node:start", 2, 1, "ask"),
        ("wf:waiting", 2, 1, "ask"),
        (CP, 2, 1, "ask"),
    ]
    assert rec.of("wf:waiting")[0].data == {"node": "ask", "prompt": "approve?"}
    assert rec.statuses()[-1] == "waiting"
    assert not rec.of("wf:end")
    assert not rec.of("node:end")[1:]

    rec.events.clear()
    assert paused.checkpoint is not None
    engine.run_from_checkpoint(paused.checkpoint, resume_input={"ok": True})
    assert rec.summary() == [
        ("wf:resumed", 2, 1, None),
        (CP, 2, 1, "ask"),
        ("node:start", 3, 1, "ask"),
        ("node:end", 3, 1, "ask"),
        (CP, 3, 1, "ask"),
        ("node:start", 4, 1, "z"),
        ("node:end", 4, 1, "z"),
        (CP, 4, 1, "z"),
        ("wf:end", 4, 1, None),
        (CP, 4, 1, "z"),
    ]
    assert rec.events[0].data == {"workflow": "lin", "resumed_from_step": 2, "wave": 1}
    assert rec.statuses() == ["running", "running", "running", "succeeded"]


def test_waiting_prompt_defaults_to_none_in_the_event() -> None:
    rec = Recorder()
    engine = WorkflowEngine(
        linear("a"), {"a": lambda ctx: HandlerResult(outputs=[], waiting=True)}, event_callback=rec
    )
    engine.run()
    assert rec.of("wf:waiting")[0].data == {"node": "a", "prompt": None}


def error_def(error_handler: str) -> dict[str, Any]:
    wf = linear("a", "b", "c")
    wf["nodes"]["b"]["handler"] = "boom"
    wf["nodes"]["err"] = node(error_handler)
    wf["default_error_node"] = "err"
    return wf


HANDLER_ERROR = {
    "code": "HANDLER_EXCEPTION",
    "message": "kaboom",
    "node": "b",
    "retryable": False,
    "details": {"handler": "boom"},
    "cause_type": "RuntimeError",
}


def test_failure_routed_to_the_error_node_events_without_a_spurious_node_end() -> None:
    rec = Recorder()
    engine = WorkflowEngine(
        error_def("ok"), {"a": ok, "boom": boom, "c": ok, "ok": ok}, event_callback=rec
    )
    engine.run()
    assert rec.summary()[5:] == [
        ("node:start", 2, 1, "b"),
        ("node:error", 2, 1, "b"),
        (CP, 2, 1, "b"),
        ("node:start", 3, 1, "err"),
        ("node:end", 3, 1, "err"),
        (CP, 3, 1, "err"),
        ("wf:end", 3, 1, None),
        (CP, 3, 1, "err"),
    ]
    assert rec.of("node:error")[0].data == {"node": "b", "error": HANDLER_ERROR}
    assert rec.of("wf:end")[0].data == {
        "workflow": "lin",
        "success": True,
        "trace": ["a", "b", "err"],
        "tags": [],
    }
    routed = rec.of(CP)[2].data["state"]
    assert routed["ready_now"] == ["err"]
    assert routed["state"]["workflow"]["__error__"] == HANDLER_ERROR


def test_failure_without_an_error_node_events() -> None:
    rec = Recorder()
    wf = linear("a", "b", "c")
    wf["nodes"]["b"]["handler"] = "boom"
    WorkflowEngine(wf, {"a": ok, "boom": boom, "c": ok}, event_callback=rec).run()
    assert rec.summary()[5:] == [
        ("node:start", 2, 1, "b"),
        ("node:error", 2, 1, "b"),
        ("wf:end", 2, 1, None),
        (CP, 2, 1, "b"),
    ]
    assert rec.of("wf:end")[0].data == {
        "workflow": "lin",
        "success": False,
        "trace": ["a", "b"],
        "tags": [],
        "error": HANDLER_ERROR,
    }
    assert rec.statuses()[-1] == "failed"


def test_error_node_failing_after_routing_events() -> None:
    rec = Recorder()
    engine = WorkflowEngine(error_def("boom"), {"a": ok, "boom": boom, "c": ok}, event_callback=rec)
    engine.run()
    assert [k for k, *_ in rec.summary()[5:]] == [
        "node:start",
        "node:error",
        CP,
        "node:start",
        "node:error",
        "wf:end",
        CP,
    ]
    assert rec.of("wf:end")[0].data["error"]["node"] == "err"


def test_retry_events() -> None:
    calls = {"n": 0}

    def flaky(ctx: WorkflowContext) -> HandlerResult:
        calls["n"] += 1
        if calls["n"] < 3:
            raise ValueError(f"fail {calls['n']}")
        return HandlerResult(outputs=["ok"])

    rec = Recorder()
    wf = linear("a", run_policy=None)
    wf["nodes"]["a"]["run_policy"] = {"max_retries": 2, "retry_sleep_seconds": 0.01}
    WorkflowEngine(wf, {"a": flaky}, event_callback=rec, sleep=lambda s: None).run()
    assert rec.summary() == [
        ("wf:start", 0, 1, None),
        (CP, 0, 1, None),
        ("node:start", 1, 1, "a"),
        ("node:retry", 1, 1, "a"),
        ("node:retry", 1, 1, "a"),
        ("node:end", 1, 1, "a"),
        (CP, 1, 1, "a"),
        ("wf:end", 1, 1, None),
        (CP, 1, 1, "a"),
    ]
    retries = [
        {k: v for k, v in e.data.items() if k in ("node", "attempt", "max_retries", "error")}
        for e in rec.of("node:retry")
    ]
    assert retries == [
        {"node": "a", "attempt": 1, "max_retries": 2, "error": "ValueError: fail 1"},
        {"node": "a", "attempt": 2, "max_retries": 2, "error": "ValueError: fail 2"},
    ]


def test_cancel_from_a_handler_events() -> None:
    engine: WorkflowEngine

    def cancel(ctx: WorkflowContext) -> HandlerResult:
        engine.cancel()
        return HandlerResult(outputs=["ok"])

    rec = Recorder()
    engine = WorkflowEngine(
        linear("n0", "n1", "n2"), {"n0": ok, "n1": cancel, "n2": ok}, event_callback=rec
    )
    engine.run()
    cancel_error = {
        "code": "WORKFLOW_CANCELLED",
        "message": "workflow was cancelled",
        "node": "n1",
        "retryable": False,
        "details": {},
        "cause_type": None,
    }
    assert rec.summary()[5:] == [
        ("node:start", 2, 1, "n1"),
        ("node:end", 2, 1, "n1"),
        (CP, 2, 1, "n1"),
        ("wf:cancelled", 2, 1, None),
        ("wf:end", 2, 1, None),
        (CP, 2, 1, "n1"),
    ]
    assert rec.of("wf:cancelled")[0].data == {"error": cancel_error}
    assert rec.of("wf:end")[0].data == {
        "workflow": "lin",
        "success": False,
        "trace": ["n0", "n1"],
        "tags": [],
        "error": cancel_error,
        "cancelled": True,
    }
    assert rec.statuses()[-1] == "cancelled"


def test_undeclared_output_warning_comes_between_start_and_end() -> None:
    rec = Recorder()
    wf = linear("n0", engine_policy={"strict_outputs": False})
    handler = {"n0": lambda ctx: HandlerResult(outputs=["ok", "zzz", "aaa"])}
    WorkflowEngine(wf, handler, event_callback=rec).run()
    assert [k for k, *_ in rec.summary()[2:5]] == ["node:start", "node:warning", "node:end"]
    assert rec.of("node:warning")[0].data == {"node": "n0", "warning": ["aaa", "zzz"]}
    assert rec.of("node:end")[0].data == {"node": "n0", "outputs": ["ok", "zzz", "aaa"]}


def test_custom_events_from_ctx_emit() -> None:
    def emitter(ctx: WorkflowContext) -> HandlerResult:
        ctx.emit("my:event", {"x": 1})
        ctx.emit("bare")
        ctx.emit("withnode", {"node": "other", "y": 2})
        return HandlerResult(outputs=["ok"])

    rec = Recorder()
    WorkflowEngine(linear("a", "n0"), {"a": ok, "n0": emitter}, event_callback=rec).run()
    assert rec.summary()[5:10] == [
        ("node:start", 2, 1, "n0"),
        ("my:event", 2, 1, "n0"),
        ("bare", 2, 1, "n0"),
        ("withnode", 2, 1, "n0"),
        ("node:end", 2, 1, "n0"),
    ]
    assert rec.of("my:event")[0].data == {"x": 1, "node": "n0"}
    assert rec.of("bare")[0].data == {"node": "n0"}
    assert rec.of("withnode")[0].data == {"node": "other", "y": 2}


def test_ctx_emit_does_not_keep_the_callers_dict() -> None:
    payload = {"x": 1}

    def emitter(ctx: WorkflowContext) -> HandlerResult:
        ctx.emit("mine", payload)
        return HandlerResult(outputs=["ok"])

    rec = Recorder()
    WorkflowEngine(linear("a"), {"a": emitter}, event_callback=rec).run()
    assert payload == {"x": 1}
    assert rec.of("mine")[0].data == {"x": 1, "node": "a"}


def test_ctx_emit_refuses_data_json_cannot_hold_inside_the_handler() -> None:
    seen: list[str] = []

    def emitter(ctx: WorkflowContext) -> HandlerResult:
        try:
            ctx.emit("mine", {"when": object()})
        except TypeError as exc:
            seen.append(str(exc))
        return HandlerResult(outputs=["ok"])

    store = InMemoryWorkflowStore()
    result = WorkflowEngine(linear("a"), {"a": emitter}, store=store).run(run_id="r")
    assert result.success
    assert seen and "JSON" in seen[0] and "when" in seen[0], seen
    assert "mine" not in [e.kind for e in store.events("r")]


def test_a_stored_custom_event_keeps_the_payload_as_it_was_emitted(tmp_path: Path) -> None:
    inner = {"items": [1]}

    def emitter(ctx: WorkflowContext) -> HandlerResult:
        ctx.emit("mine", {"inner": inner})
        inner["items"].append(2)  # after the emit, before the checkpoint writes the log
        return HandlerResult(outputs=["ok"])

    store = JsonFileWorkflowStore(tmp_path)
    WorkflowEngine(linear("a"), {"a": emitter}, store=store).run(run_id="r")
    [mine] = [e for e in store.events("r") if e.kind == "mine"]
    assert mine.data == {"inner": {"items": [1]}, "node": "a"}


def test_timeout_between_nodes_events() -> None:
    now = [100.0]

    def slow(ctx: WorkflowContext) -> HandlerResult:
        now[0] += 10
        return HandlerResult(outputs=["ok"])

    rec = Recorder()
    wf = linear("a", "b", engine_policy={"workflow_timeout_seconds": 5})
    WorkflowEngine(wf, {"a": slow, "b": ok}, event_callback=rec, clock=lambda: now[0]).run()
    assert [k for k, *_ in rec.summary()] == [
        "wf:start", CP, "node:start", "node:end", CP, "wf:end", CP,
    ]  # fmt: skip
    assert rec.of("wf:end")[0].data["error"]["code"] == "WORKFLOW_TIMEOUT"
    assert rec.of("wf:end")[0].data["error"]["node"] == "a"
    assert rec.statuses()[-1] == "failed"


def test_max_steps_events_have_no_node_start_for_the_refused_step() -> None:
    rec = Recorder()
    wf = {
        "workflow_name": "loop",
        "default_entry_node": "a",
        "nodes": {
            "a": {"handler": "a", "outputs": {"ok": [{"target_node": "a", "is_loopback": True}]}}
        },
        "engine_policy": {"max_steps": 3},
    }
    WorkflowEngine(wf, {"a": ok}, event_callback=rec).run()
    tail = rec.summary()[-5:]
    assert tail == [
        ("node:end", 3, 3, "a"),
        (CP, 3, 3, "a"),
        (CP, 3, 4, "a"),
        ("wf:end", 4, 4, None),
        (CP, 4, 4, "a"),
    ]
    assert rec.of("wf:end")[0].data["error"]["code"] == "MAX_STEPS_EXCEEDED"
    assert len(rec.of("node:start")) == 3
    # each new wave opens with its own checkpoint before the node starts
    assert [(k, s, w) for k, s, w, _ in rec.summary()[5:7]] == [(CP, 1, 2), ("node:start", 2, 2)]


def test_opening_a_wave_emits_a_checkpoint_with_cleared_marks() -> None:
    rec = Recorder()
    wf = {
        "workflow_name": "loop",
        "default_entry_node": "a",
        "nodes": {
            "a": {"handler": "a", "outputs": {"ok": [{"target_node": "b"}]}},
            "b": {"handler": "b", "outputs": {"ok": [{"target_node": "a", "is_loopback": True}]}},
        },
    }

    def b(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(outputs=["ok"] if ctx.wave == 1 else [])

    WorkflowEngine(wf, {"a": ok, "b": b}, event_callback=rec).run()
    opening = rec.events[8]
    assert (opening.kind, opening.step, opening.wave) == (CP, 2, 2)
    state = opening.data["state"]
    assert (state["wave"], state["ready_now"], state["ready_next_wave"]) == (2, ["a"], [])
    assert state["executed_this_wave"] == []


def test_store_saved_follows_each_store_write() -> None:
    rec = Recorder()
    store = InMemoryWorkflowStore()
    WorkflowEngine(linear("a", "b"), {"a": ok, "b": ok}, event_callback=rec, store=store).run(
        run_id="r1"
    )
    assert [e.kind for e in rec.events] == [
        "wf:start", "store:saved", CP,
        "node:start", "node:end", "store:saved", CP,
        "node:start", "node:end", "store:saved", CP,
        "wf:end", "store:saved", CP,
    ]  # fmt: skip
    assert rec.events[1].data == {"run_id": "r1", "status": "running"}
    assert rec.of("store:saved")[-1].data == {"run_id": "r1", "status": "succeeded"}


def test_without_persist_checkpoints_the_store_is_not_written_but_checkpoints_fire() -> None:
    rec = Recorder()
    store = InMemoryWorkflowStore()
    wf = linear("a", engine_policy={"persist_checkpoints": False})
    WorkflowEngine(wf, {"a": ok}, event_callback=rec, store=store).run(run_id="r1")
    assert not rec.of("store:saved")
    assert len(rec.of(CP)) == 3
    with pytest.raises(KeyError):
        store.load_snapshot("r1")


def test_events_reaching_a_store_carry_the_step_instead_of_the_snapshot(tmp_path: Path) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    WorkflowEngine(linear("a", "b"), {"a": ok, "b": ok}, store=store).run(run_id="r1")
    lines = (tmp_path / "r1" / "events.jsonl").read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["kind"] for e in events] == [
        "wf:start", "store:saved", CP,
        "node:start", "node:end", "store:saved", CP,
        "node:start", "node:end", "store:saved", CP,
        "wf:end", "store:saved", CP,
    ]  # fmt: skip
    checkpoints = [e for e in events if e["kind"] == CP]
    assert [e["data"] for e in checkpoints] == [{"step": 0}, {"step": 1}, {"step": 2}, {"step": 2}]
    assert all(list(e) == sorted(e) for e in events)


def test_in_memory_store_event_log_also_keeps_only_the_step() -> None:
    store = InMemoryWorkflowStore()
    rec = Recorder()
    WorkflowEngine(linear("a"), {"a": ok}, store=store, event_callback=rec).run(run_id="r1")
    logged = [e for e in store.events("r1") if e.kind == CP]
    assert [e.data for e in logged] == [{"step": 0}, {"step": 1}, {"step": 1}]
    assert all("state" in e.data for e in rec.of(CP))


def test_subscribe_delivers_only_the_named_kinds() -> None:
    got: list[zeroflow.Event] = []
    cb = subscribe(got.append, "node:end", "wf:end")
    WorkflowEngine(linear("a", "b"), {"a": ok, "b": ok}, event_callback=cb).run()
    assert [e.kind for e in got] == ["node:end", "node:end", "wf:end"]


def test_subscribe_needs_at_least_one_kind() -> None:
    with pytest.raises(ValueError):
        subscribe(lambda e: None)


def test_a_subscriber_without_checkpoint_never_makes_the_engine_build_snapshots(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    original = RunSnapshot.to_dict

    def counting(self: RunSnapshot) -> dict[str, Any]:
        calls.append(1)
        return original(self)

    monkeypatch.setattr(RunSnapshot, "to_dict", counting)
    engine = WorkflowEngine(
        linear("a", "b"), {"a": ok, "b": ok}, event_callback=subscribe(lambda e: None, "node:end")
    )
    engine.run()
    assert calls == []
    WorkflowEngine(linear("a", "b"), {"a": ok, "b": ok}, event_callback=lambda e: None).run()
    assert calls


def test_a_subscriber_of_checkpoint_gets_the_full_snapshot() -> None:
    got: list[zeroflow.Event] = []
    cb = subscribe(got.append, CP)
    WorkflowEngine(linear("a"), {"a": ok}, event_callback=cb).run()
    assert [e.data["state"]["status"] for e in got] == ["running", "running", "succeeded"]


def test_node_error_payload_is_the_error_dict_for_a_returned_error() -> None:
    error = WorkflowError("MY_CODE", "custom", details={"a": 1})
    rec = Recorder()
    handler = {"a": lambda ctx: HandlerResult(outputs=[], error=error)}
    WorkflowEngine(linear("a"), handler, event_callback=rec).run()
    assert rec.of("node:error")[0].data == {"node": "a", "error": {**error.to_dict(), "node": "a"}}


def test_a_failing_callback_propagates() -> None:
    def bad(event: zeroflow.Event) -> None:
        raise LookupError("callback broke")

    with pytest.raises(LookupError):
        WorkflowEngine(linear("a"), {"a": ok}, event_callback=bad).run()
