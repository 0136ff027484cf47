"""Wait deadlines: a wait node's ``timeout_seconds`` (zf/1 ``timeout_ms``) and ``on_timeout``.

The deadline is armed from the engine's clock when the node pauses, kept in
``snapshot.extra["timers"]`` and the run's metadata, and wins over an answer
that comes after it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from _support import Recorder
from zeroflow import (
    ERROR_WAIT_TIMEOUT,
    HandlerResult,
    InMemoryWorkflowStore,
    JsonFileWorkflowStore,
    WorkflowContext,
    WorkflowEngine,
    convert,
)
from zeroflow._cli import main
from zeroflow.testing import FakeClock

T0 = 1_800_000_000.0
DAY = 86400.0


def approval(on_timeout: str | None = None, **wait: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"prompt": "approve?", "resume_as": "answer", "timeout_seconds": DAY}
    if on_timeout is not None:
        spec["on_timeout"] = on_timeout
    spec.update(wait)
    return {
        "workflow_name": "deadline",
        "default_entry_node": "ask",
        "nodes": {
            "ask": {
                "kind": "wait",
                "wait": spec,
                "outputs": {"ok": [{"target_node": "done"}], "timeout": [{"target_node": "boss"}]},
            },
            "boss": {"handler": "note", "outputs": {"ok": []}},
            "done": {"handler": "note", "outputs": {"ok": []}},
        },
    }


def note(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"], workflow_updates={"ran": [ctx.node_name]})


def engine(defn: dict[str, Any], store: Any, clock: FakeClock, **kw: Any) -> WorkflowEngine:
    return WorkflowEngine(defn, {"note": note}, store=store, clock=clock, **kw)


def test_the_deadline_is_armed_from_the_engine_clock_and_kept_in_the_checkpoint() -> None:
    store, clock = InMemoryWorkflowStore(), FakeClock(T0)
    paused = engine(approval(), store, clock).run(run_id="r")
    assert paused.waiting
    assert store.load_snapshot("r").extra["timers"] == {"ask": {"due": T0 + DAY, "kind": "wait"}}
    (meta,) = store.list_metadata()
    assert meta.due_at == T0 + DAY and meta.wait_reason == "input"


def test_an_answer_before_the_deadline_resumes_as_usual_and_drops_the_timer() -> None:
    store, clock = InMemoryWorkflowStore(), FakeClock(T0)
    engine(approval(), store, clock).run(run_id="r")
    clock.advance(DAY - 1)
    done = engine(approval(), store, clock).resume("r", resume_input={"yes": True})
    assert done.success and done.trace == ["ask", "ask", "done"]
    assert done.state.workflow["answer"] == {"yes": True}
    assert "timers" not in store.load_snapshot("r").extra
    assert store.list_metadata()[0].due_at is None


def test_a_late_answer_loses_to_the_deadline_which_routes_to_timeout() -> None:
    store, clock, heard = InMemoryWorkflowStore(), FakeClock(T0), Recorder()
    engine(approval(), store, clock).run(run_id="r")
    clock.advance(DAY)  # exactly at the deadline: passed
    late = engine(approval(), store, clock, event_callback=heard).resume(
        "r", resume_input={"yes": True}
    )
    assert late.success and late.trace == ["ask", "ask", "boss"]
    assert "answer" not in late.state.workflow  # the late payload was not used
    assert heard.of("wf:resumed")[0].data["timed_out"] == "ask"


def test_on_timeout_fail_fails_the_run_with_wait_timeout_and_routes_like_any_failure() -> None:
    store, clock = InMemoryWorkflowStore(), FakeClock(T0)
    engine(approval("fail"), store, clock).run(run_id="r")
    clock.advance(2 * DAY)
    failed = engine(approval("fail"), store, clock).resume("r")
    assert not failed.success and failed.status == "failed"
    assert failed.error is not None and failed.error.code == ERROR_WAIT_TIMEOUT
    assert failed.error.node == "ask" and failed.error.details["deadline"] == T0 + DAY

    caught = approval("fail")
    caught["default_error_node"] = "boss"
    store2 = InMemoryWorkflowStore()
    engine(caught, store2, FakeClock(T0)).run(run_id="r")
    routed = engine(caught, store2, FakeClock(T0 + 2 * DAY)).resume("r")
    assert routed.success and routed.trace[-1] == "boss"
    assert routed.state.workflow["__error__"]["code"] == ERROR_WAIT_TIMEOUT


def test_on_timeout_default_resumes_with_the_declared_payload() -> None:
    defn = approval("default", timeout_payload={"outcome": "ok", "auto": True})
    store, clock = InMemoryWorkflowStore(), FakeClock(T0)
    engine(defn, store, clock).run(run_id="r")
    clock.advance(DAY + 5)
    done = engine(defn, store, clock).resume("r", resume_input={"forged": 1})
    assert done.success and done.trace[-1] == "done"
    assert done.state.workflow["answer"] == {"outcome": "ok", "auto": True}
    assert done.state.workflow["__resume__"] == {"outcome": "ok", "auto": True}


def test_the_default_policy_is_route_with_a_timeout_output_and_fail_without_one() -> None:
    store = InMemoryWorkflowStore()
    engine(approval(), store, FakeClock(T0)).run(run_id="r")
    assert engine(approval(), store, FakeClock(T0 + DAY)).resume("r").trace[-1] == "boss"
    bare = approval()
    del bare["nodes"]["ask"]["outputs"]["timeout"]
    store2 = InMemoryWorkflowStore()
    engine(bare, store2, FakeClock(T0)).run(run_id="r")
    failed = engine(bare, store2, FakeClock(T0 + DAY)).resume("r")
    assert failed.error is not None and failed.error.code == ERROR_WAIT_TIMEOUT


def test_a_deadline_under_branch_hitl_times_out_one_branch_only() -> None:
    defn: dict[str, Any] = {
        "workflow_name": "branches",
        "default_entry_node": "fan",
        "engine_policy": {"hitl": "branch"},
        "nodes": {
            "fan": {
                "handler": "note",
                "outputs": {"ok": [{"target_node": "legal"}, {"target_node": "finance"}]},
            },
            "legal": {
                "kind": "wait",
                "wait": {"timeout_seconds": 60},
                "outputs": {"ok": [], "timeout": [{"target_node": "boss"}]},
            },
            "finance": {"kind": "wait", "wait": {}, "outputs": {"ok": []}},
            "boss": {"handler": "note", "outputs": {"ok": []}},
        },
    }
    store, clock = InMemoryWorkflowStore(), FakeClock(T0)
    first = engine(defn, store, clock).run(run_id="b")
    assert set(first.waiting_nodes) == {"legal", "finance"}
    assert store.list_metadata()[0].due_at == T0 + 60
    clock.advance(61)
    after = engine(defn, store, clock).resume("b", "legal", {"late": True})
    assert after.waiting and list(after.waiting_nodes) == ["finance"]
    assert after.trace[-1] == "boss"
    assert store.list_metadata()[0].due_at is None  # finance has no deadline


def test_a_repause_of_the_same_visit_keeps_its_first_deadline() -> None:
    # Two waits paused in one batch: resuming the first re-runs the second, which pauses
    # again; its deadline must not move.
    defn: dict[str, Any] = {
        "workflow_name": "batch",
        "default_entry_node": "fan",
        "engine_policy": {"max_concurrency": 2},
        "nodes": {
            "fan": {
                "handler": "note",
                "outputs": {"ok": [{"target_node": "a"}, {"target_node": "b"}]},
            },
            "a": {"kind": "wait", "wait": {}, "outputs": {"ok": []}},
            "b": {
                "kind": "wait",
                "wait": {"timeout_seconds": 100},
                "outputs": {"ok": [], "timeout": []},
            },
        },
    }
    store, clock = InMemoryWorkflowStore(), FakeClock(T0)
    engine(defn, store, clock).run(run_id="p")
    clock.advance(50)
    again = engine(defn, store, clock).resume("p", "a")
    assert again.waiting
    assert store.load_snapshot("p").extra["timers"]["b"]["due"] == T0 + 100


@pytest.mark.parametrize(
    ("wait", "fragment"),
    [
        ({"timeout_seconds": -1}, "wait.timeout_seconds must be"),
        ({"timeout_seconds": 0}, "wait.timeout_seconds must be"),
        ({"timeout_seconds": "1h"}, "wait.timeout_seconds must be"),
        ({"timeout_seconds": float("nan")}, "wait.timeout_seconds must be"),
        ({"timeout_seconds": 1e12}, "wait.timeout_seconds must be"),
        ({"on_timeout": "route"}, "needs wait.timeout_seconds"),
        ({"timeout_seconds": 5, "on_timeout": "escalate"}, "wait.on_timeout must be one of"),
    ],
)
def test_bad_deadlines_are_refused_at_construction(wait: dict[str, Any], fragment: str) -> None:
    defn = approval()
    defn["nodes"]["ask"]["wait"] = wait
    with pytest.raises(ValueError, match=fragment):
        WorkflowEngine(defn, {"note": note})


def test_route_without_a_timeout_output_and_a_default_the_schema_refuses_are_refused() -> None:
    defn = approval("route")
    del defn["nodes"]["ask"]["outputs"]["timeout"]
    with pytest.raises(ValueError, match="no 'timeout' output"):
        WorkflowEngine(defn, {"note": note})
    bad = approval(
        "default",
        timeout_payload={"yes": "maybe"},
        resume_schema={"type": "object", "properties": {"yes": {"type": "boolean"}}},
    )
    with pytest.raises(ValueError, match="timeout_payload does not match its resume_schema"):
        WorkflowEngine(bad, {"note": note})


ZF1: dict[str, Any] = {
    "version": "zf/1",
    "name": "deadline",
    "entry": "ask",
    "nodes": {
        "ask": {
            "kind": "wait",
            "prompt": "approve?",
            "timeout_ms": 60000,
            "on_timeout": "default",
            "timeout_payload": {"outcome": "ok"},
            "on": {"ok": "done", "timeout": "done"},
        },
        "done": {"handler": "note", "on": {"ok": []}},
    },
}


def test_zf1_timeout_ms_means_the_same_as_legacy_seconds_and_converts_both_ways() -> None:
    store, clock = InMemoryWorkflowStore(), FakeClock(T0)
    engine(ZF1, store, clock).run(run_id="z")
    assert store.load_snapshot("z").extra["timers"]["ask"]["due"] == T0 + 60
    legacy = convert(ZF1, "legacy").definition
    assert legacy["nodes"]["ask"]["wait"]["timeout_seconds"] == 60
    assert legacy["nodes"]["ask"]["wait"]["on_timeout"] == "default"
    back = convert(legacy, "zf/1")
    assert not back.losses
    assert back.definition["nodes"]["ask"]["timeout_ms"] == 60000
    assert back.definition["nodes"]["ask"]["timeout_payload"] == {"outcome": "ok"}


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"timeout_ms": -5}, "timeout_ms"),
        ({"timeout_ms": 0}, "timeout_ms"),
        ({"on_timeout": "later"}, "on_timeout must be one of"),
    ],
)
def test_zf1_bad_deadlines_are_refused(change: dict[str, Any], fragment: str) -> None:
    defn = copy.deepcopy(ZF1)
    defn["nodes"]["ask"].update(change)
    with pytest.raises(ValueError, match=fragment):
        WorkflowEngine(defn, {"note": note})


def test_runs_show_prints_the_deadline_and_the_json_store_keeps_it_in_metadata(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = JsonFileWorkflowStore(tmp_path / "s")
    engine(approval(), store, FakeClock(T0)).run(run_id="r")
    meta = json.loads((tmp_path / "s" / "r" / "metadata.json").read_text())
    assert meta["due_at"] == T0 + DAY and meta["wait_reason"] == "input"
    assert main(["runs", "show", "r", "--store", str(tmp_path / "s")]) == 0
    assert "ask: deadline 2027-01-16T08:00:00+00:00" in capsys.readouterr().out


def test_lint_warns_about_a_timeout_output_no_deadline_takes() -> None:
    from zeroflow import lint

    defn = approval()
    del defn["nodes"]["ask"]["wait"]["timeout_seconds"]
    (finding,) = [f for f in lint(defn) if f.code == "ZF110"]
    assert finding.pointer == "/nodes/ask/outputs/timeout" and "deadline" in finding.hint
    assert not [f for f in lint(approval()) if f.code == "ZF110"]
    assert [f.code for f in lint(approval("fail")) if f.code == "ZF110"] == ["ZF110"]
