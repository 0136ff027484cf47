"""Branch-scoped catchers and detached nodes: a failure that stays on its own branch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from _support import edge, make_store
from zeroflow import (
    HandlerResult,
    InMemoryWorkflowStore,
    WorkflowContext,
    WorkflowDefinitionError,
    WorkflowEngine,
    WorkflowStore,
    lint,
)
from zeroflow._definition import compile_workflow
from zeroflow._run.branches import branch_of
from zeroflow.testing import EventRecorder, crash_everywhere


def fan(scope: str = "branch", concurrency: int = 1) -> dict[str, Any]:
    """split -> (a | b -> b2) -> AND-join; a's failure is caught by fix_a, which rejoins."""
    return {
        "workflow_name": "fan",
        "default_entry_node": "split",
        "engine_policy": {"max_concurrency": concurrency},
        "nodes": {
            "split": {"handler": "ok", "outputs": {"ok": edge("a", "b")}},
            "a": {
                "handler": "boom",
                "outputs": {"ok": edge("join")},
                "on_error": [{"target_node": "fix_a", "scope": scope}],
            },
            "fix_a": {"handler": "ok", "outputs": {"ok": edge("join")}},
            "b": {"handler": "ok", "outputs": {"ok": edge("b2")}},
            "b2": {"handler": "ok", "outputs": {"ok": edge("join")}},
            "join": {
                "handler": "ok",
                "join": {"mode": "and", "wait_for": ["a", "b2"]},
                "outputs": {"ok": []},
            },
        },
    }


def ok(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"], workflow_updates={ctx.node_name: True})


def boom(ctx: WorkflowContext) -> HandlerResult:
    raise RuntimeError(f"{ctx.node_name} is down")


HANDLERS = {"ok": ok, "boom": boom}


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_branch_catcher_keeps_the_siblings_and_rejoins_as_the_failed_member(
    concurrency: int,
) -> None:
    rec = EventRecorder()
    result = WorkflowEngine(fan(concurrency=concurrency), HANDLERS, event_callback=rec).run()
    assert result.status == "succeeded"
    assert result.trace == ["split", "a", "b", "fix_a", "b2", "join"]
    for node in ("b", "b2", "fix_a", "join"):
        assert result.state.workflow[node] is True
    assert not rec.of("node:warning")  # no join stranded
    assert "stand_ins" not in result.audit_trail[-1].to_dict()


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_run_scoped_catcher_still_clears_every_queue(concurrency: int) -> None:
    rec = EventRecorder()
    result = WorkflowEngine(fan("run", concurrency), HANDLERS, event_callback=rec).run()
    assert "b2" not in result.trace and "join" not in result.trace
    assert [e.data["node"] for e in rec.of("node:warning")] == ["join"]  # stranded


def test_branch_scope_does_not_keep_arrivals_of_the_failed_branch_itself() -> None:
    graph = compile_workflow(
        {
            "workflow_name": "chain",
            "default_entry_node": "s",
            "nodes": {
                "s": {"handler": "ok", "outputs": {"ok": edge("a", "x")}},
                "a": {"handler": "ok", "outputs": {"ok": edge("a2")}},
                "a2": {"handler": "ok", "outputs": {"ok": edge("a3"), "loop": []}},
                "a3": {"handler": "ok", "outputs": {"ok": edge("j")}},
                "x": {"handler": "ok", "outputs": {"ok": edge("j")}},
                "j": {"handler": "ok", "outputs": {"ok": []}},
            },
        }
    )
    assert branch_of(graph, "a") == {"a2", "a3"}  # up to the join j, which x also feeds
    assert branch_of(graph, "x") == frozenset()


def test_the_scope_is_checked_in_both_grammars() -> None:
    bad = fan("sideways")
    with pytest.raises(WorkflowDefinitionError, match="scope must be 'run' or 'branch'"):
        WorkflowEngine(bad, HANDLERS)
    zf1 = {
        "version": "zf/1",
        "name": "z",
        "entry": "a",
        "nodes": {
            "a": {"handler": "boom", "on": {"ok": "b"}, "on_error": [{"to": "b", "scope": "x"}]},
            "b": {"handler": "ok"},
        },
    }
    with pytest.raises(WorkflowDefinitionError, match=r"on_error\[0\].scope must be"):
        WorkflowEngine(zf1, HANDLERS)
    zf1["nodes"]["a"]["on_error"][0]["scope"] = "branch"  # type: ignore[index]
    assert WorkflowEngine(zf1, HANDLERS).run().trace == ["a", "b"]


def test_lint_warns_where_a_run_scoped_catcher_strands_a_join_or_drops_siblings() -> None:
    found = [f for f in lint(fan("run")) if f.code == "ZF109"]
    assert [f.pointer for f in found] == ["/nodes/a/on_error/0"]
    assert "AND-join 'join' strands" in found[0].message and "scope" in found[0].hint
    assert not [f for f in lint(fan("branch")) if f.code == "ZF109"]
    siblings = fan("run")
    siblings["nodes"]["join"].pop("join")
    (finding,) = [f for f in lint(siblings) if f.code == "ZF109"]
    assert "sibling branches" in finding.message
    chain = {
        "workflow_name": "chain",
        "default_entry_node": "a",
        "nodes": {
            "a": {"handler": "boom", "outputs": {"ok": []}, "on_error": [{"target_node": "b"}]},
            "b": {"handler": "ok", "outputs": {"ok": []}},
        },
    }
    assert not [f for f in lint(chain) if f.code == "ZF109"]


# ---------------------------------------------------------------- detached nodes


def notify_flow(**notify: Any) -> dict[str, Any]:
    return {
        "workflow_name": "order",
        "default_entry_node": "take",
        "nodes": {
            "take": {"handler": "ok", "outputs": {"ok": edge("notify", "ship")}},
            "notify": {
                "handler": "boom",
                "detached": True,
                "outputs": {"ok": edge("audit")},
                **notify,
            },
            "audit": {"handler": "ok", "outputs": {"ok": []}},
            "ship": {"handler": "ok", "outputs": {"ok": []}},
        },
    }


def test_a_detached_failure_is_a_warning_that_never_stops_the_run() -> None:
    rec = EventRecorder()
    result = WorkflowEngine(notify_flow(), HANDLERS, event_callback=rec).run()
    assert result.status == "succeeded" and result.success
    assert result.trace == ["take", "notify", "ship"]  # its outputs route nowhere on failure
    (warning,) = result.warnings
    assert warning.node == "notify" and warning.code == "HANDLER_EXCEPTION"
    assert "__error__" not in result.state.workflow
    row = next(r for r in result.audit_trail if r.node == "notify")
    assert (row.status, row.kind) == ("failed", "detached")
    (event,) = rec.of("node:warning")
    assert event.data["warning"] == "detached_failed" and event.data["error"]["node"] == "notify"
    assert rec.kinds().index("node:warning") + 1 == rec.kinds().index("node:error")
    assert rec.kinds()[-2:] == ["wf:end", "checkpoint"] and result.error is None


def test_a_detached_success_routes_as_any_node() -> None:
    result = WorkflowEngine(notify_flow(handler="ok"), HANDLERS).run()
    assert result.trace == ["take", "notify", "ship", "audit"] and result.warnings == []


def test_a_detached_node_is_retried_and_never_compensated() -> None:
    calls = {"n": 0}

    def flaky(ctx: WorkflowContext) -> HandlerResult:
        calls["n"] += 1
        raise ConnectionError("smtp")

    defn = notify_flow(run_policy={"max_retries": 2, "retry_sleep_seconds": 0})
    result = WorkflowEngine(defn, {**HANDLERS, "boom": flaky}).run()
    assert calls["n"] == 3 and result.success and not result.compensated


def test_detached_is_a_definition_error_with_on_error_or_on_a_wait_node() -> None:
    with pytest.raises(WorkflowDefinitionError, match="is detached"):
        WorkflowEngine(notify_flow(on_error=[{"target_node": "audit"}]), HANDLERS)
    defn = notify_flow()
    defn["nodes"]["notify"] = {"kind": "wait", "detached": True, "outputs": {"ok": []}}
    with pytest.raises(WorkflowDefinitionError, match="wait node and cannot have 'detached'"):
        WorkflowEngine(defn, HANDLERS)


@pytest.mark.parametrize("kind", ["memory", "json", "sqlite"])
def test_branch_scope_and_detached_survive_a_crash_anywhere(kind: str, tmp_path: Path) -> None:
    made: dict[str, WorkflowStore] = {}

    def stores(name: str) -> WorkflowStore:
        if name not in made:
            (tmp_path / name).mkdir()
            made[name] = make_store(kind, tmp_path / name)
        return made[name]

    defn = fan()
    defn["nodes"]["join"]["outputs"] = {"ok": edge("notify")}
    defn["nodes"]["notify"] = {"handler": "boom", "detached": True, "outputs": {"ok": []}}
    report = crash_everywhere(lambda store: WorkflowEngine(defn, HANDLERS, store=store), stores)
    assert report.status == "succeeded"
    assert report.trace == ["split", "a", "b", "fix_a", "b2", "join", "notify"]
    assert report.failures == [], report.table()


def test_scope_and_detached_convert_both_ways_and_match_the_schemas() -> None:
    from zeroflow import convert
    from zeroflow._schema import check_instance, schema

    legacy = notify_flow()
    legacy["nodes"].update(fan()["nodes"])
    zf1 = convert(legacy).definition
    assert zf1["nodes"]["a"]["on_error"] == [{"to": "fix_a", "scope": "branch"}]
    assert zf1["nodes"]["notify"]["detached"] is True
    assert check_instance(zf1, schema("zf/1")) == []
    assert check_instance(legacy, schema("legacy")) == []
    back = convert(zf1, "legacy").definition
    assert back["nodes"]["a"]["on_error"] == [{"target_node": "fix_a", "scope": "branch"}]
    assert back["nodes"]["notify"]["detached"] is True
    run_scoped = convert(fan("run")).definition
    assert run_scoped["nodes"]["a"]["on_error"] == [{"to": "fix_a"}]  # the default is not written


def test_a_branch_catch_inside_a_batch_survives_a_crash_anywhere() -> None:
    made: dict[str, WorkflowStore] = {}
    report = crash_everywhere(
        lambda store: WorkflowEngine(fan(concurrency=4), HANDLERS, store=store),
        lambda name: made.setdefault(name, InMemoryWorkflowStore()),
    )
    assert report.status == "succeeded" and report.trace[-1] == "join"
    assert report.failures == [], report.table()


def test_a_branch_catcher_that_fails_in_turn_hands_its_stand_in_on() -> None:
    defn = fan()
    defn["nodes"]["fix_a"] = {
        "handler": "boom",
        "outputs": {"ok": edge("join")},
        "on_error": [{"target_node": "last_resort", "scope": "branch"}],
    }
    defn["nodes"]["last_resort"] = {"handler": "ok", "outputs": {"ok": edge("join")}}
    result = WorkflowEngine(defn, HANDLERS).run()
    assert result.success
    assert result.trace == ["split", "a", "b", "fix_a", "b2", "last_resort", "join"]


def test_lint_sees_a_run_scoped_catcher_deeper_in_a_branch() -> None:
    defn = {
        "workflow_name": "deep",
        "default_entry_node": "split",
        "nodes": {
            "split": {"handler": "ok", "outputs": {"ok": edge("a", "b")}},
            "a": {"handler": "ok", "outputs": {"ok": edge("a2")}},
            "a2": {"handler": "boom", "outputs": {"ok": []}, "on_error": [{"target_node": "c"}]},
            "b": {"handler": "ok", "outputs": {"ok": []}},
            "c": {"handler": "ok", "outputs": {"ok": []}},
        },
    }
    (finding,) = [f for f in lint(defn) if f.code == "ZF109"]
    assert finding.pointer == "/nodes/a2/on_error/0" and "sibling branches" in finding.message
