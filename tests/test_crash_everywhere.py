"""zeroflow.testing.crash_everywhere: a workflow crashed at every crash point resumes to its end."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from zeroflow import (
    HandlerResult,
    InMemoryWorkflowStore,
    JsonFileWorkflowStore,
    WorkflowContext,
    WorkflowEngine,
    WorkflowStore,
)
from zeroflow.stores import SqliteWorkflowStore
from zeroflow.testing import assert_crash_safe, crash_everywhere

ORDER: dict[str, Any] = {
    "workflow_name": "order",
    "default_entry_node": "price",
    "nodes": {
        "price": {"handler": "price", "outputs": {"ok": [{"target_node": "approve"}]}},
        "approve": {
            "handler": "approve",
            "outputs": {"yes": [{"target_node": "pay"}], "no": [{"target_node": "cancel"}]},
        },
        "pay": {"handler": "pay", "outputs": {"ok": [{"target_node": "ship"}]}},
        "ship": {"handler": "ship", "outputs": {"ok": []}},
        "cancel": {"handler": "cancel", "outputs": {"ok": []}},
    },
}


def handlers(charges: list[int]) -> dict[str, Callable[[WorkflowContext], HandlerResult]]:
    def price(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(outputs=["ok"], workflow_updates={"total": 42})

    def approve(ctx: WorkflowContext) -> HandlerResult:
        answer = ctx.state.workflow.get("__resume__")
        if answer is None:
            return HandlerResult(outputs=[], waiting=True, waiting_prompt="pay 42?")
        return HandlerResult(outputs=["yes" if answer["ok"] else "no"])

    def pay(ctx: WorkflowContext) -> HandlerResult:
        charges.append(ctx.state.workflow["total"])  # the side effect a crash may repeat
        return HandlerResult(outputs=["ok"], workflow_updates={"paid": True})

    def ship(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(outputs=["ok"], node_updates={"label": "L1"})

    def cancel(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(outputs=["ok"])

    return {"price": price, "approve": approve, "pay": pay, "ship": ship, "cancel": cancel}


def memory_stores() -> Callable[[str], WorkflowStore]:
    made: dict[str, WorkflowStore] = {}
    return lambda name: made.setdefault(name, InMemoryWorkflowStore())


def order_engine(charges: list[int]) -> Callable[[WorkflowStore], WorkflowEngine]:
    return lambda store: WorkflowEngine(ORDER, handlers(charges), store=store)


def test_every_crash_point_resumes_to_the_uninterrupted_end() -> None:
    report = crash_everywhere(
        order_engine([]), memory_stores(), {"order": 7}, answers={"approve": {"ok": True}}
    )
    assert report.status == "succeeded"
    assert report.trace == ["price", "approve", "approve", "pay", "ship"]
    assert report.points >= 2 * len(report.trace)  # two points per written checkpoint
    assert report.failures == [], report.table()
    assert all(o.reached for o in report.outcomes)


def test_the_report_names_the_node_whose_side_effect_repeated() -> None:
    charges: list[int] = []
    report = crash_everywhere(
        order_engine(charges), memory_stores(), answers={"approve": {"ok": True}}
    )
    before_pay = [o for o in report.outcomes if o.node == "pay" and o.where.startswith("before")]
    assert len(before_pay) == 1 and before_pay[0].repeated == {"pay": 1}
    others = [o for o in report.outcomes if o is not before_pay[0]]
    assert all("pay" not in o.repeated for o in others)
    # a crash between a handler's return and its checkpoint runs that handler again
    assert report.repeated() == {"price": 1, "approve": 1, "pay": 1, "ship": 1}
    # one charge per run (all reach pay), plus the repeat before pay's checkpoint
    assert len(charges) == 1 + report.points + 1


def test_assert_crash_safe_raises_with_a_table_when_a_once_only_node_ran_twice() -> None:
    with pytest.raises(AssertionError) as info:
        assert_crash_safe(
            order_engine([]), memory_stores(), answers={"approve": {"ok": True}}, once=["pay"]
        )
    text = str(info.value)
    assert text.startswith("1 of ") and "crash points did not end as the uninterrupted run" in text
    header, row = text.splitlines()[1:3]
    assert header.split()[:3] == ["crash", "point", "node"]
    assert row.split()[:4] == ["before", "checkpoint", row.split()[2], "pay"]
    assert row.endswith("pay x1")


def test_a_result_that_depends_on_how_often_a_handler_ran_is_caught() -> None:
    calls = {"n": 0}

    def counting(ctx: WorkflowContext) -> HandlerResult:
        calls["n"] += 1
        return HandlerResult(outputs=["ok"], workflow_updates={"calls": calls["n"]})

    definition = {
        "workflow_name": "counts",
        "default_entry_node": "a",
        "nodes": {"a": {"handler": "count", "outputs": {"ok": []}}},
    }
    report = crash_everywhere(
        lambda store: WorkflowEngine(definition, {"count": counting}, store=store),
        memory_stores(),
    )
    assert report.failures and all(not o.same_state for o in report.failures)


def test_answers_must_cover_every_wait() -> None:
    with pytest.raises(ValueError, match="answers has no payload for it"):
        crash_everywhere(order_engine([]), memory_stores())


def file_stores(kind: str, where: Path) -> Callable[[str], WorkflowStore]:
    def stores(name: str) -> WorkflowStore:
        if kind == "json":
            return JsonFileWorkflowStore(where / name)
        return SqliteWorkflowStore(where / f"{name}.db")

    return stores


@pytest.mark.parametrize("kind", ["json", "sqlite"])
def test_in_process_crashes_on_the_file_stores(kind: str, tmp_path: Path) -> None:
    report = assert_crash_safe(
        order_engine([]), file_stores(kind, tmp_path), answers={"approve": {"ok": False}}
    )
    assert report.trace == ["price", "approve", "approve", "cancel"]


@pytest.mark.skipif(sys.platform == "win32", reason="mode='kill' forks")
@pytest.mark.parametrize("kind", ["json", "sqlite"])
def test_sigkill_crashes_resume_in_the_parent(kind: str, tmp_path: Path) -> None:
    report = crash_everywhere(
        order_engine([]),
        file_stores(kind, tmp_path),
        answers={"approve": {"ok": True}},
        mode="kill",
    )
    assert report.failures == [], report.table()
    assert all(o.reached for o in report.outcomes)
    assert report.repeated()["pay"] == 1  # killed between pay's return and its checkpoint


def test_the_approvals_example_resumes_to_its_end_from_every_crash_point(tmp_path: Path) -> None:
    from _support import load_example

    example = load_example("04_approvals")
    answers = {
        "legal": {"outcome": "approved", "by": "lee"},
        "finance": {"outcome": "approved", "by": "fran", "limit": 200},
    }
    report = assert_crash_safe(
        lambda store: WorkflowEngine(example.WORKFLOW, example.HANDLERS, store=store),
        file_stores("json", tmp_path),
        {"order": example.ORDER},
        answers=answers,
    )
    assert report.status == "succeeded" and report.points > 10
    assert "decide" in report.trace


def test_the_snippets_of_docs_testing_md_run() -> None:
    import re
    import subprocess
    import sys as _sys

    text = (Path(__file__).resolve().parent.parent / "docs" / "TESTING.md").read_text("utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert len(blocks) == 3
    for block in blocks:
        done = subprocess.run(
            [_sys.executable, "-c", block], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
    assert "14 crash points, 0 failed" in done.stdout


def tour_workflow(name: str) -> dict[str, Any]:
    """A workflow of examples/tour.py with its pretend work switched off."""
    from _support import load_example

    tour = load_example("tour")
    (found,) = [w for w in tour.workflows() if w["workflow_name"] == name]
    for node in found["nodes"].values():
        node["config"] = {**node.get("config", {}), "work_ms": 0}
    return found


@pytest.mark.parametrize("name", ["06_nightly_etl", "07_support_agent"])
def test_the_tour_workflows_resume_to_their_end_from_every_crash_point(name: str) -> None:
    from _support import load_example

    step = load_example("tour").step
    definition = tour_workflow(name)
    report = assert_crash_safe(
        lambda store: WorkflowEngine(
            definition, {"step": step}, store=store, sleep=lambda seconds: None
        ),
        memory_stores(),
        {"tour": True},
    )
    assert report.points >= 2 * len(set(report.trace))
    if name == "06_nightly_etl":  # load_warehouse fails twice, and the error node takes over
        assert report.status == "succeeded" and "handle_error" in report.trace
