"""Issue C: built-in node kinds ``wait`` and ``end`` (no handler needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from _support import Recorder
from zeroflow import (
    HandlerResult,
    JsonFileWorkflowStore,
    WorkflowContext,
    WorkflowEngine,
)


def review_flow(**policy: Any) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "workflow_name": "review",
        "default_entry_node": "draft",
        "nodes": {
            "draft": {"handler": "draft", "outputs": {"ok": [{"target_node": "review"}]}},
            "review": {
                "kind": "wait",
                "wait": {"prompt": "Approve the draft?", "resume_as": "review"},
                "outputs": {
                    "ok": [{"target_node": "publish"}],
                    "approved": [{"target_node": "publish"}],
                    "rejected": [{"target_node": "discard"}],
                },
            },
            "publish": {"kind": "end", "end": {"result": {"published": True}}, "outputs": {}},
            "discard": {"kind": "end", "end": {"result": "discarded"}, "outputs": {}},
        },
    }
    if policy:
        definition["engine_policy"] = policy
    return definition


def draft(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"], workflow_updates={"text": "hello"})


HANDLERS = {"draft": draft}


def test_a_wait_node_pauses_with_its_prompt() -> None:
    rec = Recorder()
    paused = WorkflowEngine(review_flow(), HANDLERS, event_callback=rec).run()
    assert paused.status == "waiting"
    assert paused.waiting_prompt == "Approve the draft?"
    assert paused.trace == ["draft", "review"]
    assert rec.of("wf:waiting")[0].data["prompt"] == "Approve the draft?"
    assert rec.of("wf:waiting")[0].data["node"] == "review"
    assert paused.checkpoint is not None
    assert paused.checkpoint.ready_now[0] == "review"


@pytest.mark.parametrize(
    ("payload", "ending", "result"),
    [
        ({"outcome": "approved", "by": "ada"}, "publish", {"published": True}),
        ({"outcome": "rejected", "why": "typos"}, "discard", "discarded"),
        ({"outcome": "maybe"}, "publish", {"published": True}),
        ({"by": "ada"}, "publish", {"published": True}),
        ("just a string", "publish", {"published": True}),
        ({"outcome": 3}, "publish", {"published": True}),
    ],
)
def test_a_resumed_wait_node_stores_the_payload_and_routes_on_its_outcome(
    payload: Any, ending: str, result: Any
) -> None:
    rec = Recorder()
    engine = WorkflowEngine(review_flow(), HANDLERS, event_callback=rec)
    paused = engine.run()
    assert paused.checkpoint is not None
    done = engine.run_from_checkpoint(paused.checkpoint, resume_input=payload)
    assert done.success
    assert done.trace == ["draft", "review", "review", ending]
    assert done.state.workflow["review"] == payload
    assert done.state.workflow["result"] == result
    outcome = payload.get("outcome") if isinstance(payload, dict) else None
    expected_label = outcome if outcome in ("approved", "rejected") else "ok"
    review_end = [e for e in rec.of("node:end") if e.node == "review"]
    assert review_end[0].data["outputs"] == [expected_label]


def test_a_wait_node_without_resume_as_keeps_only_resume() -> None:
    definition = review_flow()
    definition["nodes"]["review"]["wait"] = {"prompt": "?"}
    engine = WorkflowEngine(definition, HANDLERS)
    paused = engine.run()
    assert paused.checkpoint is not None
    done = engine.run_from_checkpoint(paused.checkpoint, resume_input={"outcome": "rejected"})
    assert done.trace[-1] == "discard"
    assert done.state.workflow["__resume__"] == {"outcome": "rejected"}
    assert "review" not in done.state.workflow


def test_a_wait_node_without_an_ok_output_ends_its_branch_on_a_plain_payload() -> None:
    definition = review_flow()
    del definition["nodes"]["review"]["outputs"]["ok"]
    engine = WorkflowEngine(definition, HANDLERS)
    paused = engine.run()
    assert paused.checkpoint is not None
    done = engine.run_from_checkpoint(paused.checkpoint, resume_input={"by": "ada"})
    assert done.success
    assert done.trace == ["draft", "review", "review"]


def test_a_wait_node_resumes_from_a_store_in_a_fresh_engine(tmp_path: Path) -> None:
    WorkflowEngine(review_flow(), HANDLERS, store=JsonFileWorkflowStore(tmp_path)).run(run_id="r")
    fresh = WorkflowEngine(review_flow(), HANDLERS, store=JsonFileWorkflowStore(tmp_path))
    done = fresh.resume("r", resume_input={"outcome": "approved"})
    assert done.success
    assert done.state.workflow["result"] == {"published": True}


def test_wait_nodes_pause_only_their_branch_in_branch_mode() -> None:
    definition = review_flow(hitl="branch")
    definition["nodes"]["draft"]["outputs"]["ok"].append({"target_node": "second"})
    definition["nodes"]["second"] = {
        "kind": "wait",
        "wait": {"prompt": "Second opinion?", "resume_as": "second"},
        "outputs": {"ok": []},
    }
    engine = WorkflowEngine(definition, HANDLERS)
    paused = engine.run()
    assert paused.waiting_nodes == {"review": "Approve the draft?", "second": "Second opinion?"}
    assert paused.checkpoint is not None
    one = engine.run_from_checkpoint(paused.checkpoint, resume_input={"v": 2}, node="second")
    assert one.waiting_nodes == {"review": "Approve the draft?"}
    assert one.state.workflow["second"] == {"v": 2}
    assert one.checkpoint is not None
    done = engine.run_from_checkpoint(one.checkpoint, resume_input={"outcome": "approved"})
    assert done.success
    assert done.state.workflow["review"] == {"outcome": "approved"}


def test_an_end_node_sets_the_result_and_needs_no_handler() -> None:
    definition = {
        "workflow_name": "end",
        "default_entry_node": "finish",
        "nodes": {"finish": {"kind": "end", "end": {"result": [1, {"a": None}]}, "outputs": {}}},
    }
    result = WorkflowEngine(definition, {}).run()
    assert result.success
    assert result.trace == ["finish"]
    assert result.state.workflow == {"result": [1, {"a": None}]}


def test_an_end_node_without_a_result_sets_none() -> None:
    definition = {
        "workflow_name": "end",
        "default_entry_node": "finish",
        "nodes": {"finish": {"kind": "end", "outputs": {}}},
    }
    assert WorkflowEngine(definition, {}).run().state.workflow == {"result": None}


def test_an_end_node_result_is_a_copy_each_run() -> None:
    definition = {
        "workflow_name": "end",
        "default_entry_node": "finish",
        "nodes": {"finish": {"kind": "end", "end": {"result": {"items": []}}, "outputs": {}}},
    }
    engine = WorkflowEngine(definition, {})
    first = engine.run()
    first.state.workflow["result"]["items"].append("mutated")
    assert engine.run().state.workflow["result"] == {"items": []}
    assert definition["nodes"]["finish"]["end"]["result"] == {"items": []}


def test_a_task_node_is_still_the_default_kind_and_needs_a_handler() -> None:
    definition = review_flow()
    definition["nodes"]["plain"] = {"outputs": {}}
    with pytest.raises(ValueError, match="node 'plain' missing 'handler'"):
        WorkflowEngine(definition, HANDLERS)


@pytest.mark.parametrize(
    ("node", "fragment"),
    [
        ({"kind": "nap", "outputs": {}}, "kind must be one of"),
        ({"kind": "sleep", "outputs": {}}, "sleep must be a dict"),
        ({"kind": "wait", "wait": "prompt", "outputs": {}}, "wait must be a dict"),
        ({"kind": "wait", "wait": {"prompt": 3}, "outputs": {}}, "wait.prompt must be a string"),
        ({"kind": "wait", "wait": {"resume_as": []}, "outputs": {}}, "wait.resume_as"),
        ({"kind": "end", "end": ["x"], "outputs": {}}, "end must be a dict"),
        ({"kind": "end", "end": {"result": {1, 2}}, "outputs": {}}, "JSON"),
        ({"kind": "wait", "wait": {}}, "missing 'outputs'"),
    ],
)
def test_bad_built_in_nodes_are_rejected_naming_the_node(node: Any, fragment: str) -> None:
    definition = review_flow()
    definition["nodes"]["odd"] = node
    with pytest.raises(ValueError) as info:
        WorkflowEngine(definition, HANDLERS)
    assert fragment in str(info.value)
    if fragment != "JSON":
        assert "node 'odd'" in str(info.value)
