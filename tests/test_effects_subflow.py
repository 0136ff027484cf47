"""ctx.effect inside a subflow's child run: as durable as the parent's own effects."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from _support import killed_in_child
from zeroflow import (
    HandlerResult,
    InMemoryWorkflowStore,
    WorkflowContext,
    WorkflowEngine,
)
from zeroflow.stores import SqliteWorkflowStore
from zeroflow.testing import crash_everywhere


def parent(*, nested: bool = False) -> dict[str, Any]:
    return {
        "workflow_name": "parent",
        "default_entry_node": "start",
        "nodes": {
            "start": {"handler": "start", "outputs": {"ok": [{"target_node": "sub"}]}},
            "sub": {
                "subflow": {
                    "workflow": "middle" if nested else "child",
                    "input": {"n": "workflow.n"},
                },
                "outputs": {"ok": [{"target_node": "finish"}]},
                "on_error": [{"codes": ["SUBFLOW_FAILED"], "target_node": "handle"}],
            },
            "finish": {"handler": "finish", "outputs": {"ok": []}},
            "handle": {"handler": "handle", "outputs": {"ok": []}},
        },
    }


MIDDLE: dict[str, Any] = {
    "workflow_name": "middle",
    "default_entry_node": "inner",
    "nodes": {
        "inner": {
            "subflow": {"workflow": "child", "input": {"n": "input.n"}},
            "outputs": {"ok": [{"target_node": "tail"}]},
        },
        "tail": {"handler": "lift", "outputs": {"ok": []}},
    },
}


def child(*, catches: bool = True) -> dict[str, Any]:
    pay: dict[str, Any] = {"handler": "pay", "outputs": {"ok": [{"target_node": "ship"}]}}
    if catches:
        pay["on_error"] = [{"codes": ["EFFECT_UNCERTAIN"], "target_node": "reconcile"}]
    return {
        "workflow_name": "child",
        "default_entry_node": "prep",
        "nodes": {
            "prep": {"handler": "prep", "outputs": {"ok": [{"target_node": "pay"}]}},
            "pay": pay,
            "ship": {"handler": "ship", "outputs": {"ok": []}},
            "reconcile": {"handler": "reconcile", "outputs": {"ok": []}},
        },
    }


class Bank:
    """Counts each charge (in a file, so a forked process counts too)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.calls = 0

    def charge(self, amount: int) -> dict[str, Any]:
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(f"{amount}\n")
        self.calls += 1
        return {"charge_id": f"ch-{amount}"}

    def count(self) -> int:
        if self.path is not None:
            return len(self.path.read_text().splitlines()) if self.path.exists() else 0
        return self.calls


def handlers(bank: Bank, charge: Callable[[int], Any] | None = None) -> dict[str, Any]:
    do = charge or bank.charge

    def start(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(["ok"], workflow_updates={"n": 42})

    def prep(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(["ok"], workflow_updates={"amount": ctx.state.input["n"]})

    def pay(ctx: WorkflowContext) -> HandlerResult:
        receipt = ctx.effect("charge", do, ctx.state.workflow["amount"])
        return HandlerResult(["ok"], workflow_updates={"receipt": receipt})

    def ship(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(["ok"], workflow_updates={"shipped": True})

    def reconcile(ctx: WorkflowContext) -> HandlerResult:
        err = ctx.state.workflow["__error__"]
        return HandlerResult(["ok"], workflow_updates={"reconciled": err["code"]})

    def finish(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(["ok"], workflow_updates={"finished": True})

    def lift(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(["ok"], workflow_updates={"inner": ctx.state.node["inner"]["output"]})

    def handle(ctx: WorkflowContext) -> HandlerResult:
        err = ctx.state.workflow["__error__"]
        return HandlerResult(
            ["ok"], workflow_updates={"handled": err["details"]["child_error"]["code"]}
        )

    return {
        "start": start,
        "prep": prep,
        "pay": pay,
        "ship": ship,
        "reconcile": reconcile,
        "finish": finish,
        "handle": handle,
        "lift": lift,
    }


def _engine(bank: Bank, *, nested: bool, catches: bool) -> Callable[[Any], WorkflowEngine]:
    subflows = {"child": child(catches=catches), "middle": MIDDLE}

    def make(store: Any) -> WorkflowEngine:
        return WorkflowEngine(parent(nested=nested), handlers(bank), store=store, subflows=subflows)

    return make


def _child_workflow(end: Any, nested: bool) -> dict[str, Any]:
    output = dict(end.state.node["sub"]["output"])
    return dict(output["inner"]) if nested else output


@pytest.mark.parametrize(
    ("nested", "catches"), [(False, True), (False, False), (True, True)], ids=str
)
def test_crash_everywhere_never_repeats_a_child_effect(nested: bool, catches: bool) -> None:
    bank = Bank()
    stores: dict[str, InMemoryWorkflowStore] = {}
    points: list[int] = []

    def make_store(name: str) -> InMemoryWorkflowStore:
        if name not in stores:
            stores[name] = InMemoryWorkflowStore()
            points.append(bank.count())
        return stores[name]

    report = crash_everywhere(_engine(bank, nested=nested, catches=catches), make_store, {})
    assert report.status == "succeeded" and report.points >= 8
    boundaries = [*points[1:], bank.count()]
    counts = {o.where: boundaries[i + 1] - boundaries[i] for i, o in enumerate(report.outcomes)}
    assert set(counts.values()) <= {0, 1}, counts  # never charged twice
    uncertain = [o for o in report.outcomes if not o.ok]
    # Only the crashes between the intent's commit and the receipt's are uncertain.
    assert [(o.where[:5], counts[o.where]) for o in uncertain] == [("after", 0), ("befor", 1)]
    assert uncertain[1].point == uncertain[0].point + 1
    for o in uncertain:
        assert o.error is None and o.same_status and not o.same_state
        end = stores[f"crash-test-crash-{o.point}"].load_snapshot("crash-test")
        assert end.status == "succeeded"
        if catches:  # the child's own catcher routes it; the parent goes on as usual
            assert end.trace == ["start", "sub", "finish"]
            output = _child_workflow(end, nested)
            assert output["reconciled"] == "EFFECT_UNCERTAIN" and "receipt" not in output
        else:  # the child fails: SUBFLOW_FAILED to the parent's catcher
            assert end.trace == ["start", "sub", "handle"]
            assert end.state.workflow["handled"] == "EFFECT_UNCERTAIN"
        assert "subflows" not in end.extra
    assert all(o.ok and counts[o.where] == 1 for o in report.outcomes if o not in uncertain)


def test_a_child_effect_is_written_inside_the_parent_with_the_subflow_node_queued() -> None:
    store = InMemoryWorkflowStore()
    seen: list[Any] = []
    bank = Bank()

    def charge(amount: int) -> dict[str, Any]:
        snap = store.load_snapshot("r")
        seen.append(snap)
        return bank.charge(amount)

    subflows = {"child": child()}
    engine = WorkflowEngine(parent(), handlers(bank, charge), store=store, subflows=subflows)
    assert engine.run({}, run_id="r").status == "succeeded"
    (snap,) = seen
    assert snap.status == "running" and snap.ready_now[0] == "sub"
    assert snap.trace == ["start"]
    held = snap.extra["subflows"]["sub"]
    assert held["status"] == "running" and held["ready_now"][0] == "pay"
    assert held["trace"] == ["prep"]
    assert held["zeroflow"]["effects"]["pay"]["keys"]["charge"] == {"state": "intent"}
    assert bank.count() == 1
    assert "subflows" not in store.load_snapshot("r").extra


@pytest.mark.skipif(sys.platform == "win32", reason="needs os.fork")
def test_a_sigkill_inside_a_child_effect_is_uncertain_in_the_child(tmp_path: Path) -> None:
    bank = Bank(tmp_path / "charges.txt")
    db = tmp_path / "runs.db"

    def charge_then_die(amount: int) -> dict[str, Any]:
        bank.charge(amount)
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("dead")

    subflows = {"child": child()}
    assert killed_in_child(
        lambda: WorkflowEngine(
            parent(),
            handlers(bank, charge_then_die),
            store=SqliteWorkflowStore(db),
            subflows=subflows,
        ).run({}, run_id="k")
    )
    assert bank.count() == 1
    store = SqliteWorkflowStore(db)
    result = WorkflowEngine(parent(), handlers(bank), store=store, subflows=subflows).resume("k")
    assert result.status == "succeeded", result.error
    assert result.trace == ["start", "sub", "finish"]
    output = result.state.node["sub"]["output"]
    assert output["reconciled"] == "EFFECT_UNCERTAIN" and "receipt" not in output
    assert output["amount"] == 42  # the child continued: prep did not run again
    assert bank.count() == 1
