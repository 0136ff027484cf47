"""Issue 17 §2: ``check_upgrade`` on the runs that pause mid-graph — branch HITL waits, paused
subflows with a changed child, half-arrived AND-joins and map progress."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from _support import task
from zeroflow import HandlerResult, InMemoryWorkflowStore, WorkflowContext, WorkflowEngine


def step(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"], node_updates={"done": True})


def ask(ctx: WorkflowContext) -> HandlerResult:
    if ctx.node_state.get("asked"):
        answer = ctx.state.workflow["__resume__"]
        return HandlerResult(outputs=["ok"], workflow_updates={"answers": {ctx.node_name: answer}})
    return HandlerResult(
        outputs=[], waiting=True, waiting_prompt=f"{ctx.node_name}?", node_updates={"asked": True}
    )


# ---------------------------------------------------------------- branch HITL


APPROVERS = ["legal", "finance", "ops"]


def approvals() -> dict[str, Any]:
    nodes: dict[str, Any] = {
        "s": task("step", *APPROVERS),
        "ship": task("step", join={"mode": "and", "wait_for": list(APPROVERS)}),
    }
    for name in APPROVERS:
        nodes[name] = task("ask", "ship")
    return {
        "workflow_name": "approvals",
        "default_entry_node": "s",
        "engine_policy": {"hitl": "branch"},
        "nodes": nodes,
    }


def mark(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"], workflow_updates={ctx.node_name: True})


BRANCH = {"step": step, "ask": ask, "mark": mark}


def branch_store() -> InMemoryWorkflowStore:
    store = InMemoryWorkflowStore()
    engine = WorkflowEngine(approvals(), BRANCH, store=store)
    assert engine.run(run_id="b1").status == "waiting"
    assert engine.resume("b1", node="legal", resume_input="yes").status == "waiting"
    assert sorted(store.load_snapshot("b1").extra["waiting"]) == ["finance", "ops"]
    return store


def test_branch_waits_each_waiting_node_must_survive() -> None:
    store = branch_store()
    without_ops = copy.deepcopy(approvals())
    del without_ops["nodes"]["ops"]
    without_ops["nodes"]["s"] = task("step", "legal", "finance")
    without_ops["nodes"]["ship"]["join"]["wait_for"] = ["legal", "finance"]
    verdict = (
        WorkflowEngine(without_ops, BRANCH)
        .check_upgrade(store, old_definitions=[approvals()])
        .verdict("b1")
    )
    assert verdict.verdict == "blocked"
    assert "node 'ops' (waiting) is missing from the new definition" in verdict.reasons
    assert "node 'ship' (an AND-join with arrivals) changed its join specification" in (
        verdict.reasons
    )


def test_branch_waits_migrate_and_each_resumes_on_the_new_definition() -> None:
    store = branch_store()
    v2 = copy.deepcopy(approvals())
    v2["nodes"]["finance"]["config"] = {"limit": 10}
    v2["engine_policy"]["max_steps"] = 100
    new = WorkflowEngine(v2, BRANCH, store=store)
    verdict = new.check_upgrade(store, old_definitions=[approvals()]).verdict("b1")
    assert verdict.verdict == "migratable"
    assert "node 'finance' (waiting): config changed" in verdict.changes
    assert "engine_policy: max_steps changed" in verdict.changes
    assert not any("legal" in c for c in verdict.changes)  # resumed already, unchanged
    new.migrate(store.load_snapshot("b1"), approvals())
    assert new.resume("b1", node="finance", resume_input="ok").status == "waiting"
    done = new.resume("b1", node="ops", resume_input="fine")
    assert done.success
    assert done.state.workflow["answers"] == {"legal": "yes", "finance": "ok", "ops": "fine"}


# ---------------------------------------------------------------- subflows


def parent() -> dict[str, Any]:
    return {
        "workflow_name": "parent",
        "default_entry_node": "start",
        "nodes": {
            "start": task("step", "sub"),
            "sub": {"subflow": {"workflow": "child"}, "outputs": {"ok": [{"target_node": "end"}]}},
            "end": task("step"),
        },
    }


def child(*, extra: bool = False, without_ask: bool = False) -> dict[str, Any]:
    nodes: dict[str, Any] = {"prep": task("step", "ask"), "ask": task("ask", "fin")}
    nodes["fin"] = task("mark", "audit") if extra else task("mark")
    if extra:
        nodes["audit"] = task("mark")
    if without_ask:
        del nodes["ask"]
        nodes["prep"] = task("step", "fin")
    return {"workflow_name": "child", "default_entry_node": "prep", "nodes": nodes}


def paused_parent() -> InMemoryWorkflowStore:
    store = InMemoryWorkflowStore()
    engine = WorkflowEngine(parent(), BRANCH, store=store, subflows={"child": child()})
    assert engine.run(run_id="p1").status == "waiting"
    return store


def test_a_changed_child_is_migratable_when_the_paused_child_run_fits_it() -> None:
    store = paused_parent()
    new = WorkflowEngine(parent(), BRANCH, store=store, subflows={"child": child(extra=True)})
    report = new.check_upgrade(store, old_definitions=[child()])
    verdict = report.verdict("p1")
    assert verdict.verdict == "migratable"
    assert verdict.reasons == ()
    assert len(verdict.changes) == 1
    assert verdict.changes[0].startswith("subflow definition 'child' changed (")
    assert verdict.verified
    unchecked = new.check_upgrade(store).verdict("p1")  # the old child definition not given
    assert unchecked.verdict == "migratable" and not unchecked.verified
    assert unchecked.reasons[0].startswith("unverified: paused subflow 'sub' ran child ")
    with pytest.raises(ValueError, match="subflow 'child'"):
        new.resume("p1", resume_input="go")  # the child hash lock, before migrating
    new.migrate(store.load_snapshot("p1"), parent())  # the parent's definition did not change
    assert new.check_upgrade(store).verdict("p1").verdict == "compatible"
    result = new.resume("p1", resume_input="go")
    assert result.success
    assert result.state.node["sub"]["output"]["audit"] is True  # the new child's node ran


def test_a_changed_child_that_drops_the_paused_childs_wait_is_blocked() -> None:
    store = paused_parent()
    new = WorkflowEngine(parent(), BRANCH, subflows={"child": child(without_ask=True)})
    for olds in ([child()], []):  # with the old child definition, and judged on the records
        verdict = new.check_upgrade(store, old_definitions=olds).verdict("p1")
        assert verdict.verdict == "blocked"
        assert verdict.reasons == (
            "paused subflow 'sub' (workflow 'child'): node 'ask' (waiting) is missing from the "
            "new definition",
        )
    with pytest.raises(ValueError, match="paused subflow 'sub'"):
        new.migrate(store.load_snapshot("p1"), parent())


def test_a_paused_subflow_node_that_is_no_longer_a_subflow_is_blocked() -> None:
    store = paused_parent()
    flat = copy.deepcopy(parent())
    flat["nodes"]["sub"] = task("step", "end")
    new = WorkflowEngine(flat, BRANCH)
    with_old = new.check_upgrade(store, old_definitions=[parent()]).verdict("p1")
    assert with_old.reasons == ("node 'sub' (waiting) changed its kind",)
    on_records = new.check_upgrade(store).verdict("p1")
    assert on_records.verdict == "blocked"
    assert on_records.reasons == ("node 'sub' (waiting) is no longer a subflow node",)


# ---------------------------------------------------------------- half-arrived AND-joins


def joins() -> dict[str, Any]:
    return {
        "workflow_name": "joins",
        "default_entry_node": "s",
        "nodes": {
            "s": task("step", "l", "r"),
            "l": task("step", "j"),
            "r": task("ask", "j"),
            "j": task("step", join={"mode": "and", "wait_for": ["l", "r"]}),
        },
    }


def half_arrived() -> InMemoryWorkflowStore:
    store = InMemoryWorkflowStore()
    assert WorkflowEngine(joins(), BRANCH, store=store).run(run_id="j1").status == "waiting"
    assert store.load_snapshot("j1").arrivals == {"1:j": ["l"]}
    return store


def test_a_half_arrived_join_whose_join_changed_is_blocked() -> None:
    store = half_arrived()
    v2 = copy.deepcopy(joins())
    v2["nodes"]["s"] = task("step", "x", "r")
    v2["nodes"]["x"] = task("step", "j")
    v2["nodes"]["j"]["join"]["wait_for"] = ["x", "r"]
    new = WorkflowEngine(v2, BRANCH)
    with_old = new.check_upgrade(store, old_definitions=[joins()]).verdict("j1")
    assert with_old.verdict == "blocked"
    assert with_old.reasons == (
        "node 'j' (an AND-join with arrivals) changed its join specification",
    )
    on_records = new.check_upgrade(store).verdict("j1")
    assert on_records.verdict == "blocked"
    assert on_records.reasons == (
        "node 'j' (an AND-join with arrivals) no longer waits for 'l', which arrived",
    )


def test_a_half_arrived_join_migrates_and_completes_when_the_join_is_kept() -> None:
    store = half_arrived()
    v2 = copy.deepcopy(joins())
    v2["nodes"]["j"]["config"] = {"v": 2}
    new = WorkflowEngine(v2, BRANCH, store=store)
    verdict = new.check_upgrade(store, old_definitions=[joins()]).verdict("j1")
    assert verdict.verdict == "migratable"
    assert "node 'j' (an AND-join with arrivals): config changed" in verdict.changes
    new.migrate(store.load_snapshot("j1"), joins())
    result = new.resume("j1", resume_input="yes")
    assert result.success
    assert result.trace[-1] == "j"


# ---------------------------------------------------------------- map progress


def mapping(over: str = "input.items", **node: Any) -> dict[str, Any]:
    return {
        "workflow_name": "mapper",
        "default_entry_node": "m",
        "nodes": {
            "m": {
                "handler": "item",
                "map": {"over": over},
                "outputs": {"ok": [{"target_node": "z"}]},
                **node,
            },
            "z": task("step"),
        },
    }


class Items:
    """Doubles each item; cancels its engine after ``stop_after`` calls."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.seen: list[int] = []
        self.stop_after = stop_after
        self.engine: WorkflowEngine | None = None

    def __call__(self, ctx: WorkflowContext) -> HandlerResult:
        self.seen.append(ctx.item)
        if self.engine is not None and len(self.seen) == self.stop_after:
            self.engine.cancel()
        return HandlerResult(outputs=["ok"], node_updates={"v": ctx.item * 2})


def map_in_progress() -> InMemoryWorkflowStore:
    store = InMemoryWorkflowStore()
    items = Items(stop_after=2)
    engine = WorkflowEngine(mapping(), {"item": items, "step": step}, store=store)
    items.engine = engine
    assert engine.run({"items": [1, 2, 3, 4]}, run_id="m1").status == "cancelled"
    assert len(store.load_snapshot("m1").extra["map"]["m"]["results"]) == 2
    return store


def test_map_progress_over_another_list_is_blocked() -> None:
    store = map_in_progress()
    new = WorkflowEngine(mapping("input.others"), {"item": Items(), "step": step})
    verdict = new.check_upgrade(store, old_definitions=[mapping()]).verdict("m1")
    assert verdict.status == "cancelled"
    assert verdict.verdict == "blocked"
    assert verdict.reasons == (
        "node 'm' (queued) maps over 'input.others' instead of 'input.items': its 2 finished "
        "item(s) would be matched to other items",
    )


def test_map_progress_on_a_node_that_is_no_longer_a_map_is_blocked() -> None:
    store = map_in_progress()
    plain = copy.deepcopy(mapping())
    plain["nodes"]["m"] = task("item", "z")
    verdict = WorkflowEngine(plain, {"item": Items(), "step": step}).check_upgrade(store)
    assert verdict.verdict("m1").verdict == "blocked"
    assert verdict.verdict("m1").reasons == (
        "node 'm' (queued) is no longer a map node: its 2 finished item(s) would be lost",
    )


def test_map_progress_migrates_and_only_the_remaining_items_run() -> None:
    store = map_in_progress()
    items = Items()
    v2 = mapping(config={"v": 2})
    new = WorkflowEngine(v2, {"item": items, "step": step}, store=store)
    verdict = new.check_upgrade(store, old_definitions=[mapping()]).verdict("m1")
    assert verdict.verdict == "migratable"
    assert "node 'm' (queued): config changed" in verdict.changes
    new.migrate(store.load_snapshot("m1"), mapping())
    result = new.resume("m1")
    assert result.success
    assert items.seen == [3, 4]
    assert result.state.node["m"]["results"] == [{"v": 2}, {"v": 4}, {"v": 6}, {"v": 8}]
