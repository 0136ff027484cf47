"""Issue A: ``engine.fork`` from any stored step and ``engine.migrate`` to a new definition."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from _support import Recorder, make_store, task
from zeroflow import (
    HandlerResult,
    InMemoryWorkflowStore,
    JsonFileWorkflowStore,
    StoreError,
    WorkflowContext,
    WorkflowEngine,
)

# ---------------------------------------------------------------- helpers


def chain() -> dict[str, Any]:
    return {
        "workflow_name": "chain",
        "default_entry_node": "a",
        "nodes": {"a": task("step", "b"), "b": task("step", "c"), "c": task("step")},
    }


class Steps:
    """Records calls; each node adds its name to ``workflow.path`` and doubles ``n``."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, ctx: WorkflowContext) -> HandlerResult:
        self.calls.append(ctx.node_name)
        path = [*ctx.state.workflow.get("path", []), ctx.node_name]
        n = ctx.state.workflow.get("n", 1)
        return HandlerResult(outputs=["ok"], workflow_updates={"path": path, "n": n * 2})


def supports_history(store: Any) -> bool:
    try:
        store.load_snapshot("__no_such_run__", step=1)
    except TypeError:
        return False
    except KeyError:
        return True
    return True


STORES = ["memory", "json", "sqlite"]


# ---------------------------------------------------------------- fork


@pytest.mark.parametrize("kind", STORES)
def test_fork_starts_a_new_run_from_the_checkpoint_after_a_step(kind: str, tmp_path: Path) -> None:
    store = make_store(kind, tmp_path)
    if not supports_history(store):
        pytest.skip(f"{type(store).__name__}.load_snapshot(run_id, step=N) is not supported yet")
    steps = Steps()
    engine = WorkflowEngine(chain(), {"step": steps}, store=store)
    original = engine.run(run_id="orig")
    assert original.state.workflow == {"path": ["a", "b", "c"], "n": 8}

    forked = engine.fork("orig", step=1, new_run_id="copy", workflow_updates={"n": 10})
    assert forked.run_id == "copy"
    assert forked.trace == ["a"]
    assert forked.step == 1
    assert forked.state.workflow == {"path": ["a"], "n": 10}
    assert store.load_snapshot("copy").run_id == "copy"

    steps.calls.clear()
    result = engine.run_from_checkpoint(forked)
    assert result.success
    assert result.run_id == "copy"
    assert steps.calls == ["b", "c"]
    assert result.trace == ["a", "b", "c"]
    assert result.state.workflow == {"path": ["a", "b", "c"], "n": 40}

    kept = store.load_snapshot("orig")
    assert kept.status == "succeeded"
    assert kept.state.workflow == {"path": ["a", "b", "c"], "n": 8}
    assert store.load_snapshot("copy").status == "succeeded"


@pytest.mark.parametrize("kind", ["json", "sqlite"])
def test_fork_in_a_fresh_engine_and_store_on_the_same_files(kind: str, tmp_path: Path) -> None:
    store = make_store(kind, tmp_path)
    if not supports_history(store):
        pytest.skip(f"{type(store).__name__}.load_snapshot(run_id, step=N) is not supported yet")
    WorkflowEngine(chain(), {"step": Steps()}, store=store).run(run_id="orig")
    steps = Steps()
    fresh = WorkflowEngine(chain(), {"step": steps}, store=make_store(kind, tmp_path))
    forked = fresh.fork("orig", step=2)
    assert forked.run_id != "orig"
    result = fresh.run_from_checkpoint(forked)
    assert result.success
    assert steps.calls == ["c"]


def test_fork_generates_a_run_id_and_keeps_the_waves() -> None:
    store = InMemoryWorkflowStore()
    engine = WorkflowEngine(
        chain(), {"step": Steps()}, store=store, run_id_factory=iter(["orig", "new"]).__next__
    )
    engine.run()
    forked = engine.fork("orig", step=2)
    assert forked.run_id == "new"
    assert forked.status == "running"
    assert forked.ready_now == ["c"]
    assert forked.wave == 1


def test_fork_of_a_failed_run_before_the_failure_runs_again() -> None:
    store = InMemoryWorkflowStore()
    calls: list[str] = []

    def picky(ctx: WorkflowContext) -> HandlerResult:
        calls.append(ctx.node_name)
        if ctx.node_name == "b" and not ctx.state.workflow.get("fixed"):
            raise RuntimeError("needs the fix")
        return HandlerResult(outputs=["ok"])

    engine = WorkflowEngine(chain(), {"step": picky}, store=store)
    assert engine.run(run_id="orig").status == "failed"
    forked = engine.fork("orig", step=1, new_run_id="fixed", workflow_updates={"fixed": True})
    calls.clear()
    result = engine.run_from_checkpoint(forked)
    assert result.success
    assert calls == ["b", "c"]
    assert store.load_snapshot("orig").status == "failed"


def test_fork_of_a_waiting_step_stays_waiting_and_resumes() -> None:
    store = InMemoryWorkflowStore()

    def approve(ctx: WorkflowContext) -> HandlerResult:
        answer = ctx.state.workflow.get("__resume__")
        if answer is None:
            return HandlerResult(outputs=[], waiting=True, waiting_prompt="ok?")
        return HandlerResult(outputs=["ok"], workflow_updates={"answer": answer})

    definition = chain()
    definition["nodes"]["b"]["handler"] = "approve"
    engine = WorkflowEngine(definition, {"step": Steps(), "approve": approve}, store=store)
    assert engine.run(run_id="orig").waiting
    history = store.history("orig")
    waiting_step = max(info.step for info in history)
    forked = engine.fork("orig", step=waiting_step, new_run_id="alt")
    assert forked.status == "waiting"
    alt = engine.run_from_checkpoint(forked, resume_input="yes")
    orig = engine.run_from_checkpoint(store.load_snapshot("orig"), resume_input="no")
    assert alt.state.workflow["answer"] == "yes"
    assert orig.state.workflow["answer"] == "no"


def test_fork_of_an_unknown_step_or_run_raises() -> None:
    store = InMemoryWorkflowStore()
    engine = WorkflowEngine(chain(), {"step": Steps()}, store=store)
    engine.run(run_id="orig")
    with pytest.raises(KeyError):
        engine.fork("nope", step=1)
    with pytest.raises(StoreError, match="no checkpoint at step 99; its history holds steps 0"):
        engine.fork("orig", step=99)


def test_fork_needs_a_store() -> None:
    engine = WorkflowEngine(chain(), {"step": Steps()})
    with pytest.raises(RuntimeError, match="no store configured"):
        engine.fork("orig", step=1)


def test_fork_refuses_non_json_updates() -> None:
    store = InMemoryWorkflowStore()
    engine = WorkflowEngine(chain(), {"step": Steps()}, store=store)
    engine.run(run_id="orig")
    with pytest.raises(TypeError, match="JSON"):
        engine.fork("orig", step=1, workflow_updates={"bad": object()})


def test_fork_of_another_definitions_run_is_refused_with_the_hash_lock() -> None:
    store = InMemoryWorkflowStore()
    WorkflowEngine(chain(), {"step": Steps()}, store=store).run(run_id="orig")
    changed = chain()
    changed["nodes"]["c"]["config"] = {"v": 2}
    with pytest.raises(ValueError, match="workflow hash mismatch"):
        WorkflowEngine(changed, {"step": Steps()}, store=store).fork("orig", step=1)


# ---------------------------------------------------------------- migrate


def approval_v1() -> dict[str, Any]:
    return {
        "workflow_name": "approval",
        "default_entry_node": "draft",
        "nodes": {
            "draft": task("step", "approve"),
            "approve": task("approve", "publish"),
            "publish": task("publish", config={"channel": "web"}),
        },
    }


def approve(ctx: WorkflowContext) -> HandlerResult:
    answer = ctx.state.workflow.get("__resume__")
    if answer is None:
        return HandlerResult(outputs=[], waiting=True, waiting_prompt="publish?")
    return HandlerResult(outputs=["ok"], workflow_updates={"approved": answer})


def publish(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(
        outputs=["ok"], workflow_updates={"published_to": ctx.node_config["channel"]}
    )


def announce(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"], workflow_updates={"announced": True})


HANDLERS = {"step": Steps(), "approve": approve, "publish": publish, "announce": announce}


def approval_v2() -> dict[str, Any]:
    """v1 plus an ``announce`` node after ``publish``, and a new publish channel."""
    v2 = copy.deepcopy(approval_v1())
    v2["nodes"]["publish"] = task("publish", "announce", config={"channel": "email"})
    v2["nodes"]["announce"] = task("announce")
    return v2


def test_a_waiting_run_survives_an_added_node_and_a_changed_config() -> None:
    waiting = WorkflowEngine(approval_v1(), HANDLERS).run(run_id="m1")
    assert waiting.waiting and waiting.checkpoint is not None

    rec = Recorder()
    new_engine = WorkflowEngine(approval_v2(), HANDLERS, event_callback=rec)
    with pytest.raises(ValueError, match="workflow hash mismatch"):
        new_engine.run_from_checkpoint(waiting.checkpoint, resume_input="yes")

    migrated = new_engine.migrate(waiting.checkpoint, approval_v1())
    assert migrated.wf_hash == new_engine.workflow_hash
    assert migrated.status == "waiting"
    assert migrated.audit_trail[-1].node == "(migration)"
    moved = rec.of("wf:migrated")
    assert len(moved) == 1
    assert moved[0].run_id == "m1"
    assert moved[0].data["from"] == WorkflowEngine(approval_v1(), HANDLERS).workflow_hash
    assert moved[0].data["to"] == new_engine.workflow_hash

    result = new_engine.run_from_checkpoint(migrated, resume_input="yes")
    assert result.success
    assert result.trace == ["draft", "approve", "approve", "publish", "announce"]
    assert result.state.workflow["published_to"] == "email"
    assert result.state.workflow["announced"] is True
    assert any(r.node == "(migration)" for r in result.audit_trail)


def test_migrate_leaves_the_given_checkpoint_untouched() -> None:
    waiting = WorkflowEngine(approval_v1(), HANDLERS).run()
    assert waiting.checkpoint is not None
    before = waiting.checkpoint.to_dict()
    WorkflowEngine(approval_v2(), HANDLERS).migrate(waiting.checkpoint, approval_v1())
    assert waiting.checkpoint.to_dict() == before


def test_migrate_saves_to_the_store_so_resume_by_run_id_works(tmp_path: Path) -> None:
    WorkflowEngine(approval_v1(), HANDLERS, store=JsonFileWorkflowStore(tmp_path)).run(run_id="m2")
    new_engine = WorkflowEngine(approval_v2(), HANDLERS, store=JsonFileWorkflowStore(tmp_path))
    new_engine.migrate(new_engine.load_snapshot("m2"), approval_v1())
    assert new_engine.load_snapshot("m2").wf_hash == new_engine.workflow_hash
    result = new_engine.resume("m2", resume_input="ok")
    assert result.success
    assert result.trace[-1] == "announce"


def test_migration_that_removes_the_waiting_node_is_refused() -> None:
    waiting = WorkflowEngine(approval_v1(), HANDLERS).run()
    assert waiting.checkpoint is not None
    v3 = copy.deepcopy(approval_v1())
    del v3["nodes"]["approve"]
    v3["nodes"]["draft"] = task("step", "publish")
    with pytest.raises(ValueError) as info:
        WorkflowEngine(v3, HANDLERS).migrate(waiting.checkpoint, approval_v1())
    assert "node 'approve' (waiting) is missing from the new definition" in str(info.value)


def test_migration_lists_every_incompatibility() -> None:
    v1 = {
        "workflow_name": "joins",
        "default_entry_node": "s",
        "nodes": {
            "s": task("step", "l", "r"),
            "l": task("step", "j"),
            "r": task("wait", "j"),
            "j": {
                "handler": "step",
                "outputs": {"ok": []},
                "join": {"mode": "and", "wait_for": ["l", "r"]},
            },
        },
    }

    def wait(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(outputs=[], waiting=True, waiting_prompt="?")

    handlers = {"step": Steps(), "wait": wait}
    waiting = WorkflowEngine(v1, handlers).run()
    assert waiting.checkpoint is not None
    assert waiting.checkpoint.arrivals == {"1:j": ["l"]}
    v2 = copy.deepcopy(v1)
    del v2["nodes"]["r"]
    v2["nodes"]["s"] = task("step", "l")
    v2["nodes"]["j"] = task("step")
    with pytest.raises(ValueError) as info:
        WorkflowEngine(v2, handlers).migrate(waiting.checkpoint, v1)
    message = str(info.value)
    assert "'r'" in message
    assert "'j'" in message and "join" in message


def test_migrate_needs_the_definition_the_run_was_started_with() -> None:
    waiting = WorkflowEngine(approval_v1(), HANDLERS).run()
    assert waiting.checkpoint is not None
    with pytest.raises(ValueError, match="workflow hash mismatch"):
        WorkflowEngine(approval_v2(), HANDLERS).migrate(waiting.checkpoint, approval_v2())
