"""Issue C: ``engine_policy.hitl: "branch"`` — several waits at once, resumed one by one."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from _support import Recorder, task
from zeroflow import (
    HandlerResult,
    InMemoryWorkflowStore,
    JsonFileWorkflowStore,
    WorkflowContext,
    WorkflowEngine,
)

APPROVERS = ["legal", "finance", "ops"]


def approvals(hitl: str = "branch", **policy: Any) -> dict[str, Any]:
    """s fans out to three approvers and a prep -> pack branch; ship joins the approvers."""
    nodes = {
        "s": task("step", *APPROVERS, "prep"),
        "prep": task("step", "pack"),
        "pack": task("step"),
        "ship": task("ship", join={"mode": "and", "wait_for": list(APPROVERS)}),
    }
    for name in APPROVERS:
        nodes[name] = task("approve", "ship")
    return {
        "workflow_name": "approvals",
        "default_entry_node": "s",
        "engine_policy": {"hitl": hitl, **policy},
        "nodes": nodes,
    }


def step(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"], node_updates={"done": True})


def approve(ctx: WorkflowContext) -> HandlerResult:
    if ctx.node_state.get("asked"):
        answer = ctx.state.workflow["__resume__"]
        return HandlerResult(
            outputs=["ok"], workflow_updates={"decisions": {ctx.node_name: answer}}
        )
    return HandlerResult(
        outputs=[],
        waiting=True,
        waiting_prompt=f"{ctx.node_name} approval?",
        node_updates={"asked": True},
    )


def ship(ctx: WorkflowContext) -> HandlerResult:
    decisions = ctx.state.workflow["decisions"]
    return HandlerResult(
        outputs=["ok"], workflow_updates={"shipped": sorted(decisions) == sorted(APPROVERS)}
    )


HANDLERS = {"step": step, "approve": approve, "ship": ship}


def engine(**kwargs: Any) -> WorkflowEngine:
    definition = kwargs.pop("definition", None) or approvals()
    return WorkflowEngine(definition, HANDLERS, **kwargs)


# ---------------------------------------------------------------- pausing branches


def test_a_waiting_node_pauses_only_its_branch() -> None:
    rec = Recorder()
    paused = engine(event_callback=rec).run()
    assert paused.status == "waiting"
    assert paused.waiting
    assert paused.trace == ["s", "legal", "finance", "ops", "prep", "pack"]
    assert paused.state.node["pack"] == {"done": True}
    assert paused.waiting_nodes == {
        "legal": "legal approval?",
        "finance": "finance approval?",
        "ops": "ops approval?",
    }
    assert paused.waiting_prompt in paused.waiting_nodes.values()
    waiting_events = rec.of("wf:waiting")
    assert len(waiting_events) == 1
    assert waiting_events[0].data["nodes"] == paused.waiting_nodes
    assert [(r.node, r.status) for r in paused.audit_trail if r.status == "waiting"] == [
        ("legal", "waiting"),
        ("finance", "waiting"),
        ("ops", "waiting"),
    ]


def test_run_mode_is_the_default_and_pauses_the_whole_run() -> None:
    definition = approvals()
    del definition["engine_policy"]
    paused = WorkflowEngine(definition, HANDLERS).run()
    assert paused.trace == ["s", "legal"]
    assert paused.waiting_nodes == {"legal": "legal approval?"}
    assert paused.waiting_prompt == "legal approval?"


def test_resuming_one_node_keeps_the_run_waiting_on_the_others() -> None:
    eng = engine()
    paused = eng.run()
    assert paused.checkpoint is not None
    after_legal = eng.run_from_checkpoint(paused.checkpoint, resume_input="yes", node="legal")
    assert after_legal.status == "waiting"
    assert set(after_legal.waiting_nodes) == {"finance", "ops"}
    assert after_legal.state.workflow["decisions"] == {"legal": "yes"}
    assert after_legal.trace[-1] == "legal"
    assert "ship" not in after_legal.trace


@pytest.mark.parametrize("order", list(itertools.permutations(APPROVERS)))
def test_approvals_resumed_in_any_order_give_the_same_final_state(order: tuple[str, ...]) -> None:
    eng = engine()
    result = eng.run(run_id="same")
    for i, name in enumerate(order):
        assert result.status == "waiting"
        assert set(result.waiting_nodes) == set(order[i:])
        assert result.checkpoint is not None
        result = eng.run_from_checkpoint(result.checkpoint, resume_input=f"ok-{name}", node=name)
    assert result.success, result.error
    assert result.trace[-1] == "ship"
    assert result.trace.count("ship") == 1
    workflow = dict(result.state.workflow)
    assert workflow.pop("__resume__") == f"ok-{order[-1]}"
    assert workflow == {
        "decisions": {"legal": "ok-legal", "finance": "ok-finance", "ops": "ok-ops"},
        "shipped": True,
    }
    assert result.state.node == {
        "s": {"done": True},
        "prep": {"done": True},
        "pack": {"done": True},
        "legal": {"asked": True},
        "finance": {"asked": True},
        "ops": {"asked": True},
    }


def test_branch_waits_work_with_parallel_batches() -> None:
    eng = engine(definition=approvals(max_concurrency=4))
    result = eng.run()
    assert set(result.waiting_nodes) == set(APPROVERS)
    assert result.state.node["pack"] == {"done": True}
    for name in ["ops", "legal", "finance"]:
        assert result.checkpoint is not None
        result = eng.run_from_checkpoint(result.checkpoint, resume_input=name, node=name)
    assert result.success
    assert result.state.workflow["shipped"] is True


# ---------------------------------------------------------------- choosing the node


def test_several_waiting_nodes_and_no_node_named_raises_listing_them() -> None:
    eng = engine()
    paused = eng.run()
    assert paused.checkpoint is not None
    with pytest.raises(ValueError) as info:
        eng.run_from_checkpoint(paused.checkpoint, resume_input="x")
    message = str(info.value)
    for name in APPROVERS:
        assert name in message
    assert "node=" in message


def test_resuming_a_node_that_is_not_waiting_is_a_clear_error() -> None:
    eng = engine()
    paused = eng.run()
    assert paused.checkpoint is not None
    with pytest.raises(ValueError, match=r"node 'pack' .*is not waiting.*finance, legal, ops"):
        eng.run_from_checkpoint(paused.checkpoint, resume_input="x", node="pack")
    with pytest.raises(ValueError, match=r"node 'nope' .*is not waiting"):
        eng.run_from_checkpoint(paused.checkpoint, resume_input="x", node="nope")


def test_resuming_an_already_resumed_node_is_refused() -> None:
    eng = engine()
    paused = eng.run()
    assert paused.checkpoint is not None
    once = eng.run_from_checkpoint(paused.checkpoint, resume_input="x", node="legal")
    assert once.checkpoint is not None
    with pytest.raises(ValueError, match=r"node 'legal' .*is not waiting"):
        eng.run_from_checkpoint(once.checkpoint, resume_input="x", node="legal")


def test_the_last_waiting_node_resumes_without_naming_it() -> None:
    eng = engine()
    result = eng.run()
    for name in ["legal", "finance"]:
        assert result.checkpoint is not None
        result = eng.run_from_checkpoint(result.checkpoint, resume_input=1, node=name)
    assert result.checkpoint is not None
    final = eng.run_from_checkpoint(result.checkpoint, resume_input=1)
    assert final.success


def test_naming_the_wrong_node_in_run_mode_is_a_clear_error() -> None:
    definition = approvals("run")
    eng = WorkflowEngine(definition, HANDLERS)
    paused = eng.run()
    assert paused.checkpoint is not None
    with pytest.raises(ValueError, match=r"node 'finance' .*is not waiting; waiting: legal"):
        eng.run_from_checkpoint(paused.checkpoint, resume_input="x", node="finance")
    resumed = eng.run_from_checkpoint(paused.checkpoint, resume_input="x", node="legal")
    assert resumed.waiting_nodes == {"finance": "finance approval?"}


# ---------------------------------------------------------------- through a store


def test_engine_resume_loads_leases_resumes_and_saves(tmp_path: Path) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    engine(store=store).run(run_id="order-1")
    assert store.load_snapshot("order-1").status == "waiting"
    for name in ["finance", "ops", "legal"]:
        fresh = engine(store=JsonFileWorkflowStore(tmp_path))
        result = fresh.resume("order-1", name, f"ok-{name}")
    assert result.success
    stored = JsonFileWorkflowStore(tmp_path).load_snapshot("order-1")
    assert stored.status == "succeeded"
    assert stored.state.workflow["shipped"] is True


def test_engine_resume_with_the_wrong_node_changes_nothing() -> None:
    store = InMemoryWorkflowStore()
    eng = engine(store=store)
    eng.run(run_id="o")
    before = store.load_snapshot("o").to_dict()
    with pytest.raises(ValueError, match="is not waiting"):
        eng.resume("o", "pack", "x")
    assert store.load_snapshot("o").to_dict() == before
    assert eng.resume("o", "legal", "x").status == "waiting"


def test_engine_resume_needs_a_store() -> None:
    with pytest.raises(RuntimeError, match="no store configured"):
        engine().resume("o", "legal", "x")


def test_an_unknown_hitl_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"engine_policy.hitl"):
        WorkflowEngine(approvals("node"), HANDLERS)
