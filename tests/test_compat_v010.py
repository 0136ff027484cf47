"""SPEC A1 and A13: code and run folders written for zeroflow 0.1.0 keep working."""

from __future__ import annotations

import importlib
import inspect
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import zeroflow
from zeroflow import (
    HandlerResult,
    JsonFileWorkflowStore,
    RunSnapshot,
    WorkflowContext,
    WorkflowEngine,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "v010"
RESULTS = json.loads((FIXTURES / "results.json").read_text(encoding="utf-8"))
HASHES = json.loads((FIXTURES / "hashes.json").read_text(encoding="utf-8"))
RUNS = {
    "hitl_run": ("hitl_workflow.json", {"doc": "draft-1"}),
    "linear_run": ("linear_workflow.json", {"x": 1}),
    "error_routed_run": ("error_workflow.json", {}),
    "error_failed_run": ("error_fails_workflow.json", {}),
    "join_loop_run": ("join_loop_workflow.json", {}),
}

V010_ALL = {
    "EVENT_CHECKPOINT",
    "EVENT_NODE_END",
    "EVENT_NODE_ERROR",
    "EVENT_NODE_RETRY",
    "EVENT_NODE_START",
    "EVENT_NODE_WARNING",
    "EVENT_STORE_SAVED",
    "EVENT_WF_CANCELLED",
    "EVENT_WF_END",
    "EVENT_WF_RESUMED",
    "EVENT_WF_START",
    "EVENT_WF_WAITING",
    "EnginePolicy",
    "Event",
    "EventCallback",
    "Handler",
    "HandlerResult",
    "InMemoryWorkflowStore",
    "JsonFileWorkflowStore",
    "RunMetadata",
    "RunSnapshot",
    "StepRecord",
    "WorkflowContext",
    "WorkflowEngine",
    "WorkflowError",
    "WorkflowResult",
    "WorkflowState",
    "WorkflowStore",
}


# ---------------------------------------------------------------- the 0.1.0 handlers (README.md)


def prepare(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"], node_updates={"prepared": True})


def review(ctx: WorkflowContext) -> HandlerResult:
    resume = ctx.state.workflow.get("__resume__")
    if resume is None:
        return HandlerResult(
            outputs=[],
            waiting=True,
            waiting_prompt="Approve the draft?",
            workflow_updates={"asked": True},
            tags=["needs_review"],
        )
    label = "approved" if resume.get("approved") else "rejected"
    return HandlerResult(outputs=[label], workflow_updates={"decision": label})


def publish(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"], workflow_updates={"published": True})


def step(ctx: WorkflowContext) -> HandlerResult:
    n = ctx.node_config["n"]
    return HandlerResult(
        outputs=["ok"], node_updates={"n": n}, workflow_updates={"last": n}, tags=[f"t{n}"]
    )


def ok(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"])


def boom(ctx: WorkflowContext) -> HandlerResult:
    raise RuntimeError(f"boom in {ctx.node_name}")


def recover(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(
        outputs=["ok"], workflow_updates={"recovered_from": ctx.state.workflow["__error__"]["node"]}
    )


def start(ctx: WorkflowContext) -> HandlerResult:
    visits = ctx.state.node.get("start", {}).get("visits", 0) + 1
    return HandlerResult(outputs=["ok"], node_updates={"visits": visits})


def branch(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"], node_updates={"wave": ctx.wave})


def merge(ctx: WorkflowContext) -> HandlerResult:
    waves = ctx.state.workflow.get("merged_waves", []) + [ctx.wave]  # noqa: RUF005 - as in 0.1.0 user code
    return HandlerResult(outputs=["ok"], workflow_updates={"merged_waves": waves})


def check(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["again"] if ctx.wave == 1 else ["done"])


def end(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"], tags=["finished"])


HANDLERS = {
    "prepare": prepare,
    "review": review,
    "publish": publish,
    "step": step,
    "ok": ok,
    "boom": boom,
    "recover": recover,
    "start": start,
    "branch": branch,
    "merge": merge,
    "check": check,
    "end": end,
}


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    """A private copy of the 0.1.0 run folders (resuming appends to them)."""
    target = tmp_path / "runs"
    target.mkdir()
    for run_id in RUNS:
        shutil.copytree(FIXTURES / run_id, target / run_id)
    return target


def engine_for(run_id: str, store: Any = None, **kwargs: Any) -> WorkflowEngine:
    return WorkflowEngine.from_files(FIXTURES / RUNS[run_id][0], HANDLERS, store=store, **kwargs)


def v010_snapshot(run_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / run_id / "snapshot.json").read_text("utf-8"))
    return data


# ---------------------------------------------------------------- public names (A1)


def test_package_all_lists_every_0_1_0_name_and_version() -> None:
    assert set(zeroflow.__all__) >= V010_ALL | {"__version__"}
    for name in zeroflow.__all__:
        assert hasattr(zeroflow, name), name
    assert isinstance(zeroflow.__version__, str)


def test_core_exposes_the_same_names() -> None:
    core = importlib.import_module("zeroflow.core")
    assert set(core.__all__) >= V010_ALL
    for name in V010_ALL:
        assert getattr(core, name) is getattr(zeroflow, name), name


def test_core_models_exposes_types_helpers_and_constants() -> None:
    models = importlib.import_module("zeroflow.core.models")
    for name in (
        "WorkflowContext",
        "WorkflowState",
        "HandlerResult",
        "WorkflowResult",
        "WorkflowError",
        "RunSnapshot",
        "StepRecord",
        "RunMetadata",
        "Event",
        "EnginePolicy",
    ):
        assert getattr(models, name) is getattr(zeroflow, name)
    assert models.json_clone is zeroflow.json_clone
    assert models.now_iso is zeroflow.now_iso
    assert models.ERROR_CANCELLED == "WORKFLOW_CANCELLED"
    assert {
        models.ERROR_HANDLER_EXCEPTION,
        models.ERROR_HANDLER_NOT_REGISTERED,
        models.ERROR_HANDLER_TYPE_NOT_DECLARED,
        models.ERROR_UNDECLARED_OUTPUT,
        models.ERROR_MAX_STEPS_EXCEEDED,
        models.ERROR_WORKFLOW_TIMEOUT,
        models.ERROR_STATE_SERIALIZATION,
    } == {
        "HANDLER_EXCEPTION",
        "HANDLER_NOT_REGISTERED",
        "HANDLER_TYPE_NOT_DECLARED",
        "UNDECLARED_OUTPUT",
        "MAX_STEPS_EXCEEDED",
        "WORKFLOW_TIMEOUT",
        "STATE_SERIALIZATION",
    }
    assert [
        models.STATUS_RUNNING,
        models.STATUS_SUCCEEDED,
        models.STATUS_FAILED,
        models.STATUS_WAITING,
        models.STATUS_CANCELLED,
    ] == ["running", "succeeded", "failed", "waiting", "cancelled"]
    assert models.EVENT_WF_START == "wf:start"
    assert models.DEFAULT_RETRY_SLEEP == 0.1
    assert models.DEFAULT_STRICT_OUTPUTS is True


def test_error_code_namespace_matches_the_constants() -> None:
    codes = zeroflow.ErrorCode
    assert codes.WORKFLOW_CANCELLED == zeroflow.ERROR_WORKFLOW_CANCELLED == "WORKFLOW_CANCELLED"
    assert codes.HANDLER_EXCEPTION == "HANDLER_EXCEPTION"
    assert codes.INVALID_HANDLER_RESULT == "INVALID_HANDLER_RESULT"


def test_core_engine_store_and_validation_modules() -> None:
    engine_mod = importlib.import_module("zeroflow.core.engine")
    store_mod = importlib.import_module("zeroflow.core.store")
    validation = importlib.import_module("zeroflow.core.validation")
    assert engine_mod.WorkflowEngine is WorkflowEngine
    assert store_mod.WorkflowStore is zeroflow.WorkflowStore
    assert store_mod.InMemoryWorkflowStore is zeroflow.InMemoryWorkflowStore
    assert store_mod.JsonFileWorkflowStore is zeroflow.JsonFileWorkflowStore
    with pytest.raises(ValueError, match="missing required keys"):
        validation.validate_workflow_definition({})


def test_viz_exposes_the_mermaid_functions() -> None:
    viz = importlib.import_module("zeroflow.viz")
    assert callable(viz.workflow_to_mermaid)
    assert callable(viz.mermaid_to_html)


def test_package_ships_py_typed() -> None:
    assert (Path(zeroflow.__file__).parent / "py.typed").is_file()


def test_0_1_0_signatures_still_accept_positional_calls() -> None:
    init = list(inspect.signature(WorkflowEngine.__init__).parameters)
    assert init[:6] == ["self", "workflow_def", "handlers", "services", "event_callback", "store"]
    assert list(inspect.signature(WorkflowEngine.run).parameters)[:3] == [
        "self",
        "initial_input",
        "run_id",
    ]
    assert list(inspect.signature(WorkflowEngine.run_from_checkpoint).parameters)[:3] == [
        "self",
        "checkpoint",
        "resume_input",
    ]
    assert list(inspect.signature(WorkflowEngine.from_files).parameters)[:5] == [
        "workflow_json_path",
        "handlers",
        "services",
        "event_callback",
        "store",
    ]


def test_in_memory_store_constructs_without_arguments() -> None:
    store = zeroflow.InMemoryWorkflowStore()
    assert isinstance(store, zeroflow.WorkflowStore)


# ---------------------------------------------------------------- 0.1.0 run folders


@pytest.mark.parametrize("run_id", sorted(RUNS))
def test_each_0_1_0_run_loads_from_its_store_folder(run_id: str, runs_dir: Path) -> None:
    store = JsonFileWorkflowStore(runs_dir)
    snap = engine_for(run_id, store).load_snapshot(run_id)
    expected = RESULTS[run_id]
    assert snap.run_id == run_id
    assert snap.status == expected["status"]
    assert snap.trace == expected["trace"]
    assert snap.tags == expected["tags"]
    assert snap.wf_hash == HASHES[RUNS[run_id][0]]
    assert snap.state.input == RUNS[run_id][1]


@pytest.mark.parametrize("run_id", sorted(RUNS))
def test_each_0_1_0_snapshot_round_trips_through_our_records(run_id: str) -> None:
    data = v010_snapshot(run_id)
    assert RunSnapshot.from_dict(data).to_dict() == data


def test_0_1_0_run_folders_are_listed_and_filtered(runs_dir: Path) -> None:
    (runs_dir / "stray.txt").write_text("x", encoding="utf-8")
    (runs_dir / "empty_folder").mkdir()
    store = JsonFileWorkflowStore(runs_dir)
    listed = store.list_metadata()
    assert sorted(m.workflow_name for m in listed) == sorted(
        ["hitl_review", "linear_three", "error_routing", "error_routing_fails", "join_loop"]
    )
    [hitl] = store.list_metadata("hitl_review")
    assert (hitl.status, hitl.waiting, hitl.current_node) == ("waiting", True, "review")
    assert hitl.workflow_hash == HASHES["hitl_workflow.json"]
    assert store.list_metadata("nope") == []


def test_resuming_the_0_1_0_hitl_run_with_approval(runs_dir: Path) -> None:
    store = JsonFileWorkflowStore(runs_dir)
    engine = engine_for("hitl_run", store)
    snap = engine.load_snapshot("hitl_run")
    assert snap.ready_now == ["review"]
    result = engine.run_from_checkpoint(snap, resume_input={"approved": True})
    assert result.status == "succeeded"
    assert result.trace == ["prepare", "review", "review", "publish"]
    assert result.tags == ["needs_review"]
    assert result.state.to_dict() == {
        "input": {"doc": "draft-1"},
        "workflow": {
            "asked": True,
            "__resume__": {"approved": True},
            "decision": "approved",
            "published": True,
        },
        "node": {"prepare": {"prepared": True}},
    }
    stored = JsonFileWorkflowStore(runs_dir).load_snapshot("hitl_run")
    assert stored.status == "succeeded"
    assert stored.trace == result.trace
    old_events = (FIXTURES / "hitl_run" / "events.jsonl").read_text("utf-8").splitlines()
    new_events = (runs_dir / "hitl_run" / "events.jsonl").read_text("utf-8").splitlines()
    assert new_events[: len(old_events)] == old_events
    assert json.loads(new_events[len(old_events)])["kind"] == "wf:resumed"


def test_resuming_the_0_1_0_hitl_run_with_rejection(runs_dir: Path) -> None:
    engine = engine_for("hitl_run", JsonFileWorkflowStore(runs_dir))
    result = engine.run_from_checkpoint(
        engine.load_snapshot("hitl_run"), resume_input={"approved": False}
    )
    assert result.status == "succeeded"
    assert result.trace == ["prepare", "review", "review"]


def test_resuming_from_the_0_1_0_snapshot_dict_itself() -> None:
    engine = engine_for("hitl_run")
    result = engine.run_from_checkpoint(v010_snapshot("hitl_run"), resume_input={"approved": True})
    assert result.trace == ["prepare", "review", "review", "publish"]
    resumed = engine.run_from_checkpoint(
        RunSnapshot.from_dict(v010_snapshot("hitl_run")), resume_input={"approved": True}
    )
    assert resumed.state == result.state


def test_resuming_a_minimal_0_1_0_shaped_cancelled_snapshot() -> None:
    engine = engine_for("linear_run")
    snap = {
        "run_id": "old",
        "workflow_name": "linear_three",
        "wf_hash": HASHES["linear_workflow.json"],
        "status": "cancelled",
        "step": 1,
        "wave": 1,
        "ready_now": ["b"],
        "ready_next_wave": [],
        "state": {"input": {"x": 1}, "workflow": {"last": 1}, "node": {"a": {"n": 1}}},
        "trace": ["a"],
        "tags": ["t1"],
        "audit_trail": [
            {
                "step": 1,
                "wave": 1,
                "node": "a",
                "status": "succeeded",
                "ts": "2026-01-01T00:00:00+00:00",
            }
        ],
    }
    result = engine.run_from_checkpoint(snap)
    assert result.status == "succeeded"
    assert result.trace == ["a", "b", "c"]
    assert result.tags == ["t1", "t2", "t3"]
    assert result.state.workflow == {"last": 3}
    assert [r.step for r in result.audit_trail] == [1, 2, 3]


@pytest.mark.parametrize("run_id", ["linear_run", "error_failed_run", "join_loop_run"])
def test_finished_0_1_0_runs_cannot_be_resumed(run_id: str, runs_dir: Path) -> None:
    engine = engine_for(run_id, JsonFileWorkflowStore(runs_dir))
    with pytest.raises(ValueError):
        engine.run_from_checkpoint(engine.load_snapshot(run_id))


def test_a_0_1_0_snapshot_of_another_workflow_is_rejected() -> None:
    engine = engine_for("linear_run")
    with pytest.raises(zeroflow.HashMismatchError) as info:
        engine.run_from_checkpoint(v010_snapshot("hitl_run"))
    assert str(info.value).startswith(
        f"workflow hash mismatch: checkpoint={HASHES['hitl_workflow.json'][:12]}, "
        f"current={HASHES['linear_workflow.json'][:12]}; "
    )
    assert "engine.migrate(checkpoint, old_workflow_def)" in str(info.value)


# ---------------------------------------------------------------- same runs, same outcome


def without_0_1_0_spurious_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """0.1.0 wrote a 'succeeded' row right after a 'failed' row of the same step (a bug)."""
    out: list[dict[str, Any]] = []
    for row in rows:
        if out and out[-1]["status"] == "failed" and out[-1]["step"] == row["step"]:
            continue
        out.append(row)
    return out


def without_0_1_0_spurious_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop the spurious node:end (and its store:saved + checkpoint) after each node:error."""
    out: list[dict[str, Any]] = []
    skip = 0
    for i, event in enumerate(events):
        if skip:
            skip -= 1
            continue
        prev = out[-2:] if len(out) >= 2 else []
        if (
            event["kind"] == "node:end"
            and [e["kind"] for e in prev][-1:] == ["checkpoint"]
            and any(e["kind"] == "node:error" for e in events[max(0, i - 3) : i])
        ):
            skip = 2
            continue
        out.append(event)
    return out


def comparable(event: dict[str, Any]) -> tuple[Any, ...]:
    data = event["data"]
    if event["kind"] == "checkpoint":
        data = None
    return (event["kind"], event["step"], event["wave"], event["node"], data)


@pytest.mark.parametrize("run_id", sorted(RUNS))
def test_rerunning_each_fixture_gives_the_0_1_0_outcome(run_id: str, tmp_path: Path) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    result = engine_for(run_id, store).run(initial_input=RUNS[run_id][1], run_id=run_id)
    old = v010_snapshot(run_id)
    ours = store.load_snapshot(run_id).to_dict()
    for key in ("status", "step", "wave", "trace", "tags", "state", "ready_now", "arrivals"):
        assert ours[key] == old[key], key
    assert ours["last_error"] == old["last_error"]
    assert [
        (r["step"], r["wave"], r["node"], r["status"], r["outputs"], r["error"], r["waiting"])
        for r in ours["audit_trail"]
    ] == [
        (r["step"], r["wave"], r["node"], r["status"], r["outputs"], r["error"], r["waiting"])
        for r in without_0_1_0_spurious_rows(old["audit_trail"])
    ]
    assert result.status == RESULTS[run_id]["status"]
    assert (result.error.to_dict() if result.error else None) == RESULTS[run_id]["error"]


@pytest.mark.parametrize("run_id", sorted(RUNS))
def test_rerunning_each_fixture_logs_the_0_1_0_events(run_id: str, tmp_path: Path) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    engine_for(run_id, store).run(initial_input=RUNS[run_id][1], run_id=run_id)

    def read(folder: Path) -> list[dict[str, Any]]:
        lines = (folder / "events.jsonl").read_text("utf-8").splitlines()
        return [json.loads(line) for line in lines]

    old = without_0_1_0_spurious_events(read(FIXTURES / run_id))
    ours = read(tmp_path / run_id)
    assert [comparable(e) for e in ours] == [comparable(e) for e in old]
