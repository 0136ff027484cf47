"""Issue C: subflow nodes — child runs, their output, failures, pauses and hash locks."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
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
from zeroflow.stores import SqliteWorkflowStore


def parent(**top: Any) -> dict[str, Any]:
    return {
        "workflow_name": "parent",
        "default_entry_node": "start",
        "default_error_node": "err",
        "nodes": {
            "start": task("start", "sub"),
            "sub": {
                "subflow": {"workflow": "child", "input": {"n": "workflow.n", "who": "input.who"}},
                "outputs": {"ok": [{"target_node": "finish"}]},
            },
            "finish": task("finish"),
            "err": task("err"),
        },
        **top,
    }


def child(*, waits: bool = False) -> dict[str, Any]:
    nodes = {
        "double": task("double", "ask" if waits else "done"),
        "done": task("done"),
    }
    if waits:
        nodes["ask"] = task("ask", "done")
    return {"workflow_name": "child", "default_entry_node": "double", "nodes": nodes}


def start(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"], workflow_updates={"n": 21, "parent_only": True})


def double(ctx: WorkflowContext) -> HandlerResult:
    if ctx.services.get("broken"):
        raise RuntimeError("child broke")
    return HandlerResult(
        outputs=["ok"],
        workflow_updates={
            "doubled": ctx.state.input["n"] * 2,
            "saw_parent_state": "parent_only" in ctx.state.workflow,
            "input": dict(ctx.state.input),
        },
    )


def ask(ctx: WorkflowContext) -> HandlerResult:
    answer = ctx.state.workflow.get("__resume__")
    if answer is None:
        return HandlerResult(outputs=[], waiting=True, waiting_prompt="approve child?")
    return HandlerResult(outputs=["ok"], workflow_updates={"answer": answer})


def done(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"], workflow_updates={"child_done": True})


def finish(ctx: WorkflowContext) -> HandlerResult:
    output = ctx.state.node["sub"]["output"]
    return HandlerResult(outputs=["ok"], workflow_updates={"final": output.get("doubled")})


def err(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"], workflow_updates={"recovered": True})


HANDLERS = {
    "start": start,
    "double": double,
    "ask": ask,
    "done": done,
    "finish": finish,
    "err": err,
}


def make(waits: bool = False, **kwargs: Any) -> WorkflowEngine:
    return WorkflowEngine(parent(), HANDLERS, subflows={"child": child(waits=waits)}, **kwargs)


WHO = {"who": "x"}


# ---------------------------------------------------------------- running a child


def test_the_childs_final_workflow_state_lands_under_output_and_routes_on_ok() -> None:
    result = make().run({"who": "ada"})
    assert result.success, result.error
    assert result.trace == ["start", "sub", "finish"]
    output = result.state.node["sub"]["output"]
    assert output == {
        "doubled": 42,
        "saw_parent_state": False,
        "input": {"n": 21, "who": "ada"},
        "child_done": True,
    }
    assert result.state.workflow["final"] == 42


def test_the_child_uses_the_parents_services() -> None:
    result = make(services={"broken": True}).run({"who": "x"})
    assert result.trace == ["start", "sub", "err"]


def test_a_missing_input_path_fails_the_subflow_node() -> None:
    definition = parent()
    definition["nodes"]["sub"]["subflow"]["input"] = {"n": "workflow.nope"}
    del definition["default_error_node"]
    result = WorkflowEngine(definition, HANDLERS, subflows={"child": child()}).run()
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.code == "SUBFLOW_FAILED"
    assert "workflow.nope" in result.error.message


def test_child_events_reach_the_parent_callback_tagged_with_their_path() -> None:
    rec = Recorder()
    make(event_callback=rec).run({"who": "x"})
    tagged = [(e.kind, e.data.get("subflow")) for e in rec.events if "subflow" in e.data]
    assert ("node:start", "sub/double") in tagged
    assert ("node:end", "sub/done") in tagged
    untagged_nodes = {e.node for e in rec.of("node:start") if "subflow" not in e.data}
    assert untagged_nodes == {"start", "sub", "finish"}
    assert [e.data["node"] for e in rec.of("node:end") if "subflow" not in e.data] == [
        "start",
        "sub",
        "finish",
    ]


def test_nested_subflow_events_carry_the_whole_path() -> None:
    outer = parent()
    middle = {
        "workflow_name": "middle",
        "default_entry_node": "inner",
        "nodes": {
            "inner": {
                "subflow": {"workflow": "child", "input": {"n": "input.n"}},
                "outputs": {"ok": []},
            }
        },
    }
    outer["nodes"]["sub"]["subflow"] = {"workflow": "middle", "input": {"n": "workflow.n"}}
    rec = Recorder()
    result = WorkflowEngine(
        outer, HANDLERS, event_callback=rec, subflows={"middle": middle, "child": child()}
    ).run()
    assert result.success, result.error
    assert result.state.node["sub"]["output"] == {}
    paths = {e.data["subflow"] for e in rec.of("node:start") if "subflow" in e.data}
    assert {"sub/inner", "sub/inner/double", "sub/inner/done"} <= paths


def test_a_child_failure_fails_the_parent_node_with_subflow_failed() -> None:
    definition = parent()
    del definition["default_error_node"]
    result = WorkflowEngine(
        definition, HANDLERS, services={"broken": True}, subflows={"child": child()}
    ).run(WHO)
    assert result.status == "failed"
    error = result.error
    assert error is not None
    assert error.code == "SUBFLOW_FAILED"
    assert error.node == "sub"
    assert error.details["workflow"] == "child"
    assert error.details["child_error"]["code"] == "HANDLER_EXCEPTION"
    assert error.details["child_error"]["node"] == "double"
    assert error.details["child_error"]["message"] == "child broke"


def test_a_child_failure_is_routed_to_the_parents_error_node() -> None:
    result = make(services={"broken": True}).run(WHO)
    assert result.success
    assert result.trace == ["start", "sub", "err"]
    assert result.state.workflow["recovered"] is True
    assert result.state.workflow["__error__"]["code"] == "SUBFLOW_FAILED"


def test_a_child_failure_can_be_caught_by_code() -> None:
    definition = parent()
    definition["nodes"]["sub"]["on_error"] = [
        {"target_node": "finish", "codes": ["SUBFLOW_FAILED"]}
    ]
    definition["nodes"]["finish"] = task("err")
    result = WorkflowEngine(
        definition, HANDLERS, services={"broken": True}, subflows={"child": child()}
    ).run(WHO)
    assert result.trace == ["start", "sub", "finish"]


# ---------------------------------------------------------------- pausing


def test_a_waiting_child_makes_the_parent_wait_and_resumes_with_the_payload() -> None:
    engine = make(waits=True)
    paused = engine.run({"who": "x"})
    assert paused.status == "waiting"
    assert paused.waiting_prompt == "approve child?"
    assert paused.trace == ["start", "sub"]
    assert paused.checkpoint is not None

    result = engine.run_from_checkpoint(paused.checkpoint, resume_input={"ok": True})
    assert result.success, result.error
    assert result.trace == ["start", "sub", "sub", "finish"]
    output = result.state.node["sub"]["output"]
    assert output["answer"] == {"ok": True}
    assert output["child_done"] is True
    assert output["__resume__"] == {"ok": True}


def test_a_resumed_child_does_not_rerun_its_finished_nodes() -> None:
    calls: list[str] = []

    def counting(name: str) -> Any:
        def handler(ctx: WorkflowContext) -> HandlerResult:
            calls.append(name)
            return HANDLERS[name](ctx)

        return handler

    handlers = {name: counting(name) for name in HANDLERS}
    engine = WorkflowEngine(parent(), handlers, subflows={"child": child(waits=True)})
    paused = engine.run(WHO)
    assert calls == ["start", "double", "ask"]
    calls.clear()
    assert paused.checkpoint is not None
    engine.run_from_checkpoint(paused.checkpoint, resume_input="yes")
    assert calls == ["ask", "done", "finish"]


def test_a_paused_child_survives_a_store_round_trip_in_memory() -> None:
    store = InMemoryWorkflowStore()
    engine = make(waits=True, store=store)
    engine.run(WHO, run_id="p")
    again = make(waits=True, store=store)
    result = again.resume("p", resume_input="fine")
    assert result.success
    assert result.state.node["sub"]["output"]["answer"] == "fine"


RESUMING_CHILD = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[4])
    from zeroflow import JsonFileWorkflowStore, WorkflowEngine
    from zeroflow.stores import SqliteWorkflowStore
    import test_subflows as t

    kind, path = sys.argv[1], sys.argv[2]
    store = JsonFileWorkflowStore(path) if kind == "json" else SqliteWorkflowStore(path)
    engine = t.make(waits=True, store=store)
    result = engine.resume(sys.argv[3], resume_input="from another process")
    print(json.dumps({"status": result.status, "trace": result.trace,
                      "output": result.state.node["sub"]["output"]}))
    """
)


@pytest.mark.parametrize("kind", ["json", "sqlite"])
def test_a_parent_with_a_waiting_child_resumes_in_a_new_process(kind: str, tmp_path: Path) -> None:
    path = tmp_path / ("runs" if kind == "json" else "runs.db")
    store = JsonFileWorkflowStore(path) if kind == "json" else SqliteWorkflowStore(path)
    paused = make(waits=True, store=store).run({"who": "x"}, run_id="xp")
    assert paused.waiting
    if hasattr(store, "close"):
        store.close()

    tests_dir = str(Path(__file__).resolve().parent)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.run(
        [sys.executable, "-c", RESUMING_CHILD, kind, str(path), "xp", tests_dir],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["status"] == "succeeded"
    assert report["trace"] == ["start", "sub", "sub", "finish"]
    assert report["output"]["answer"] == "from another process"
    assert report["output"]["doubled"] == 42

    reopened = JsonFileWorkflowStore(path) if kind == "json" else SqliteWorkflowStore(path)
    assert reopened.load_snapshot("xp").status == "succeeded"


def test_the_parent_checkpoint_carries_the_child_snapshot_and_hashes() -> None:
    engine = make(waits=True)
    paused = engine.run(WHO)
    assert paused.checkpoint is not None
    data = json.loads(json.dumps(paused.checkpoint.to_dict()))
    child_hash = WorkflowEngine(child(waits=True), HANDLERS).workflow_hash
    assert child_hash in json.dumps(data)
    resumed = engine.run_from_checkpoint(data, resume_input="via dict")
    assert resumed.success


def test_resuming_against_a_changed_child_is_rejected_naming_the_child() -> None:
    paused = make(waits=True).run(WHO)
    assert paused.checkpoint is not None
    changed = child(waits=True)
    changed["nodes"]["done"]["config"] = {"v": 2}
    engine = WorkflowEngine(parent(), HANDLERS, subflows={"child": changed})
    with pytest.raises(ValueError, match="workflow hash mismatch") as info:
        engine.run_from_checkpoint(paused.checkpoint, resume_input="x")
    assert "'child'" in str(info.value)


def test_a_cancel_inside_the_child_cancels_the_parent_and_resumes_it() -> None:
    engine_box: list[WorkflowEngine] = []
    armed = {"on": True}

    def cancels(ctx: WorkflowContext) -> HandlerResult:
        if armed["on"]:
            engine_box[0].cancel()
        return double(ctx)

    handlers = {**HANDLERS, "double": cancels}
    engine = WorkflowEngine(parent(), handlers, subflows={"child": child()})
    engine_box.append(engine)
    cancelled = engine.run(WHO)
    assert cancelled.status == "cancelled"
    armed["on"] = False
    assert cancelled.checkpoint is not None
    result = engine.run_from_checkpoint(cancelled.checkpoint)
    assert result.success, result.error
    assert result.state.workflow["final"] == 42


# ---------------------------------------------------------------- construction


def test_subflows_can_be_loaded_from_files(tmp_path: Path) -> None:
    (tmp_path / "parent.json").write_text(json.dumps(parent()), encoding="utf-8")
    (tmp_path / "child.json").write_text(json.dumps(child()), encoding="utf-8")
    engine = WorkflowEngine.from_files(
        tmp_path / "parent.json", HANDLERS, subflows={"child": tmp_path / "child.json"}
    )
    assert engine.run(WHO).state.workflow["final"] == 42


def test_an_unregistered_child_is_rejected_at_construction() -> None:
    with pytest.raises(ValueError, match=r"subflow 'child'.*not registered"):
        WorkflowEngine(parent(), HANDLERS)


def test_an_invalid_child_definition_is_rejected_at_construction() -> None:
    broken = child()
    del broken["nodes"]["done"]["outputs"]
    with pytest.raises(ValueError, match=r"subflow 'child'.*node 'done' missing 'outputs'"):
        WorkflowEngine(parent(), HANDLERS, subflows={"child": broken})


@pytest.mark.parametrize(
    "spec",
    [
        "child",
        {"input": {}},
        {"workflow": "child", "input": ["n"]},
        {"workflow": "child", "input": {"n": "n"}},
    ],
)
def test_bad_subflow_specs_are_rejected_naming_the_node(spec: Any) -> None:
    definition = parent()
    definition["nodes"]["sub"]["subflow"] = spec
    with pytest.raises(ValueError, match=r"node 'sub'.*subflow"):
        WorkflowEngine(definition, HANDLERS, subflows={"child": child()})


def looping(name: str, runs: str) -> dict[str, Any]:
    return {
        "workflow_name": name,
        "default_entry_node": "call",
        "nodes": {
            "call": {"subflow": {"workflow": runs, "input": {}}, "outputs": {"ok": []}},
        },
    }


def test_a_subflow_cycle_is_rejected_with_the_cycle_in_the_message() -> None:
    definition = parent()
    definition["nodes"]["sub"]["subflow"] = {"workflow": "b", "input": {}}
    with pytest.raises(ValueError, match="subflow cycle detected: b -> c -> b"):
        WorkflowEngine(
            definition, HANDLERS, subflows={"b": looping("b", "c"), "c": looping("c", "b")}
        )


def test_a_subflow_that_runs_itself_is_rejected() -> None:
    definition = parent()
    definition["nodes"]["sub"]["subflow"] = {"workflow": "b", "input": {}}
    with pytest.raises(ValueError, match="subflow cycle detected: b -> b"):
        WorkflowEngine(definition, HANDLERS, subflows={"b": looping("b", "b")})


def nest(levels: int, policy: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict]:
    """A root with ``levels`` nested subflows l1 -> l2 -> ... -> leaf."""
    children: dict[str, Any] = {}
    for i in range(1, levels + 1):
        runs = f"l{i + 1}" if i < levels else None
        if runs is None:
            children[f"l{i}"] = {
                "workflow_name": f"l{i}",
                "default_entry_node": "leaf",
                "nodes": {"leaf": task("done")},
            }
        else:
            children[f"l{i}"] = looping(f"l{i}", runs)
    root = looping("root", "l1")
    if policy:
        root["engine_policy"] = policy
    return root, children


def test_nesting_up_to_the_default_depth_of_eight_runs() -> None:
    root, children = nest(8)
    result = WorkflowEngine(root, HANDLERS, subflows=children).run()
    assert result.success, result.error


def test_nesting_deeper_than_max_subflow_depth_is_rejected() -> None:
    root, children = nest(9)
    with pytest.raises(ValueError, match="max_subflow_depth=8"):
        WorkflowEngine(root, HANDLERS, subflows=children)
    root, children = nest(3, {"max_subflow_depth": 2})
    with pytest.raises(ValueError, match="max_subflow_depth=2: root -> l1 -> l2"):
        WorkflowEngine(root, HANDLERS, subflows=children)


def test_max_subflow_depth_counts_nested_subflow_levels() -> None:
    root, children = nest(2, {"max_subflow_depth": 2})
    assert WorkflowEngine(root, HANDLERS, subflows=children).run().success


def test_max_subflow_depth_one_allows_one_level_of_subflow() -> None:
    root, children = nest(1, {"max_subflow_depth": 1})
    assert WorkflowEngine(root, HANDLERS, subflows=children).run().success


@pytest.mark.parametrize("bad", [0, -1, "3", True])
def test_max_subflow_depth_must_be_a_positive_int(bad: Any) -> None:
    root, children = nest(1, {"max_subflow_depth": bad})
    with pytest.raises(ValueError, match="max_subflow_depth"):
        WorkflowEngine(root, HANDLERS, subflows=children)


def test_registering_children_does_not_change_the_parent_hash() -> None:
    plain = WorkflowEngine(copy.deepcopy(child()), HANDLERS)
    with_children = WorkflowEngine(copy.deepcopy(child()), HANDLERS, subflows={"x": child()})
    assert plain.workflow_hash == with_children.workflow_hash


def test_a_child_waiting_on_several_branches_can_be_resumed_node_by_node() -> None:
    two_waits = {
        "workflow_name": "child",
        "default_entry_node": "double",
        "engine_policy": {"hitl": "branch"},
        "nodes": {
            "double": task("double", "w1", "w2"),
            "w1": {"kind": "wait", "wait": {"prompt": "p1", "resume_as": "a1"}, "outputs": {}},
            "w2": {"kind": "wait", "wait": {"prompt": "p2", "resume_as": "a2"}, "outputs": {}},
        },
    }
    engine = WorkflowEngine(parent(), HANDLERS, subflows={"child": two_waits})
    result = engine.run(WHO)
    assert result.waiting
    for name in ("sub/w1", "sub/w2"):
        assert result.checkpoint is not None
        result = engine.run_from_checkpoint(result.checkpoint, resume_input=name, node=name)
    assert result.success
