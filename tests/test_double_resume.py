"""A waiting run resumed twice from the same loaded checkpoint proceeds only once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from zeroflow import (
    HandlerResult,
    InMemoryWorkflowStore,
    JsonFileWorkflowStore,
    RunLockedError,
    SqliteWorkflowStore,
    WorkflowContext,
    WorkflowEngine,
    WorkflowStore,
)

APPROVAL: dict[str, Any] = {
    "workflow_name": "approval",
    "default_entry_node": "ask",
    "nodes": {
        "ask": {"handler": "ask", "outputs": {"yes": [{"target_node": "pay"}], "no": []}},
        "pay": {"handler": "pay", "outputs": {"ok": []}},
    },
}


def ask(ctx: WorkflowContext) -> HandlerResult:
    answer = ctx.state.workflow.get("__resume__")
    if answer is None:
        return HandlerResult(outputs=[], waiting=True, waiting_prompt="approve?")
    return HandlerResult(outputs=["yes" if answer["ok"] else "no"])


def make_store(kind: str, tmp_path: Path) -> WorkflowStore:
    if kind == "memory":
        return InMemoryWorkflowStore()
    if kind == "json":
        return JsonFileWorkflowStore(tmp_path / "runs")
    return SqliteWorkflowStore(tmp_path / "runs.sqlite")


@pytest.mark.parametrize("kind", ["memory", "json", "sqlite"])
def test_a_second_resume_of_the_same_checkpoint_is_refused(kind: str, tmp_path: Path) -> None:
    paid: list[str] = []

    def pay(ctx: WorkflowContext) -> HandlerResult:
        paid.append(ctx.run_id)
        return HandlerResult(outputs=["ok"])

    engine = WorkflowEngine(APPROVAL, {"ask": ask, "pay": pay}, store=make_store(kind, tmp_path))
    engine.run(run_id="order-1")
    first_click = engine.load_snapshot("order-1")
    second_click = engine.load_snapshot("order-1")

    done = engine.run_from_checkpoint(first_click, {"ok": True})
    assert done.success and done.trace == ["ask", "ask", "pay"]

    with pytest.raises(RunLockedError, match="moved on since this checkpoint"):
        engine.run_from_checkpoint(second_click, {"ok": True})
    assert paid == ["order-1"]
    assert engine.load_snapshot("order-1").status == "succeeded"


@pytest.mark.parametrize("kind", ["memory", "json", "sqlite"])
def test_resuming_a_current_checkpoint_does_not_load_the_run_again(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store: Any = make_store(kind, tmp_path)
    engine = WorkflowEngine(
        APPROVAL, {"ask": ask, "pay": lambda ctx: HandlerResult(["ok"])}, store=store
    )
    engine.run(run_id="order-1")
    checkpoint = engine.load_snapshot("order-1")
    loads: list[str] = []
    original = store.load_snapshot

    def counting(run_id: str, *args: Any, **kwargs: Any) -> Any:
        loads.append(run_id)
        return original(run_id, *args, **kwargs)

    monkeypatch.setattr(store, "load_snapshot", counting)
    assert engine.run_from_checkpoint(checkpoint, {"ok": True}).success
    assert loads == [], "the stale-checkpoint check read the whole stored run"
