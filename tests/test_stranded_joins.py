"""Issue A: AND-joins left with some but not all arrivals when a run ends."""

from __future__ import annotations

from typing import Any

import pytest

from _support import Recorder
from zeroflow import HandlerResult, WorkflowContext, WorkflowEngine


def diamond(**top: Any) -> dict[str, Any]:
    """s fans out to l, m, r; j is an AND-join of all three; r may skip it."""
    return {
        "workflow_name": "diamond",
        "default_entry_node": "s",
        "nodes": {
            "s": {
                "handler": "ok",
                "outputs": {"ok": [{"target_node": n} for n in ("l", "m", "r")]},
            },
            "l": {"handler": "ok", "outputs": {"ok": [{"target_node": "j"}]}},
            "m": {"handler": "m", "outputs": {"ok": [{"target_node": "j"}], "skip": []}},
            "r": {"handler": "r", "outputs": {"ok": [{"target_node": "j"}], "skip": []}},
            "j": {
                "handler": "ok",
                "outputs": {"ok": []},
                "join": {"mode": "and", "wait_for": ["l", "m", "r"]},
            },
        },
        **top,
    }


def ok(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"])


def skip(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["skip"])


def test_a_stranded_and_join_warns_and_the_run_still_succeeds() -> None:
    rec = Recorder()
    result = WorkflowEngine(diamond(), {"ok": ok, "m": ok, "r": skip}, event_callback=rec).run()
    assert result.success
    assert result.trace == ["s", "l", "m", "r"]
    warnings = rec.of("node:warning")
    assert len(warnings) == 1
    assert warnings[0].node == "j"
    assert warnings[0].data == {
        "warning": "join_stranded",
        "node": "j",
        "arrived": ["l", "m"],
        "missing": ["r"],
    }


def test_the_warning_lists_every_missing_predecessor_in_wait_for_order() -> None:
    rec = Recorder()
    WorkflowEngine(diamond(), {"ok": ok, "m": skip, "r": skip}, event_callback=rec).run()
    (warning,) = rec.of("node:warning")
    assert warning.data["arrived"] == ["l"]
    assert warning.data["missing"] == ["m", "r"]


def test_the_warning_comes_before_the_end_of_the_run() -> None:
    rec = Recorder()
    WorkflowEngine(diamond(), {"ok": ok, "m": ok, "r": skip}, event_callback=rec).run()
    kinds = [e.kind for e in rec.events]
    assert kinds.index("node:warning") < kinds.index("wf:end")


def test_a_join_no_branch_reached_is_not_stranded() -> None:
    rec = Recorder()

    def s_skips(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(outputs=[])

    result = WorkflowEngine(diamond(), {"ok": s_skips, "m": ok, "r": ok}, event_callback=rec).run()
    assert result.success
    assert rec.of("node:warning") == []


def test_a_completed_join_is_not_stranded() -> None:
    rec = Recorder()
    result = WorkflowEngine(diamond(), {"ok": ok, "m": ok, "r": ok}, event_callback=rec).run()
    assert result.trace == ["s", "l", "m", "r", "j"]
    assert rec.of("node:warning") == []


def test_stranded_joins_fail_fails_the_run_with_join_stranded() -> None:
    rec = Recorder()
    definition = diamond(engine_policy={"stranded_joins": "fail"})
    result = WorkflowEngine(definition, {"ok": ok, "m": ok, "r": skip}, event_callback=rec).run()
    assert not result.success
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.code == "JOIN_STRANDED"
    assert result.error.node == "j"
    assert result.error.details == {"arrived": ["l", "m"], "missing": ["r"]}
    assert "'j'" in result.error.message and "r" in result.error.message
    assert len(rec.of("node:warning")) == 1
    assert result.checkpoint is not None


def test_stranded_joins_fail_does_not_fire_when_every_join_completes() -> None:
    definition = diamond(engine_policy={"stranded_joins": "fail"})
    assert WorkflowEngine(definition, {"ok": ok, "m": ok, "r": ok}).run().success


def test_stranded_joins_warn_is_the_explicit_default() -> None:
    definition = diamond(engine_policy={"stranded_joins": "warn"})
    assert WorkflowEngine(definition, {"ok": ok, "m": ok, "r": skip}).run().success


def test_a_join_stranded_in_an_earlier_wave_is_reported_once_the_run_ends() -> None:
    """A loop runs the fan-out twice; the first wave's partial join is still reported."""
    definition = diamond()
    definition["nodes"]["j"]["outputs"] = {"ok": []}
    definition["nodes"]["l"]["outputs"]["ok"].append({"target_node": "s", "is_loopback": True})
    calls = {"s": 0}

    def s_once_more(ctx: WorkflowContext) -> HandlerResult:
        calls["s"] += 1
        return HandlerResult(outputs=["ok"] if calls["s"] <= 2 else [])

    def l_loops_once(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(outputs=["ok"])

    rec = Recorder()
    result = WorkflowEngine(
        definition, {"ok": s_once_more, "m": ok, "r": skip}, event_callback=rec
    ).run()
    assert result.success
    stranded = [e.data for e in rec.of("node:warning") if e.data.get("warning") == "join_stranded"]
    assert stranded and all(d["node"] == "j" and d["missing"] == ["r"] for d in stranded)


def test_a_failed_run_does_not_report_stranded_joins() -> None:
    rec = Recorder()

    def boom(ctx: WorkflowContext) -> HandlerResult:
        raise RuntimeError("r broke")

    result = WorkflowEngine(diamond(), {"ok": ok, "m": ok, "r": boom}, event_callback=rec).run()
    assert result.status == "failed"
    assert result.error is not None and result.error.code == "HANDLER_EXCEPTION"
    assert rec.of("node:warning") == []


def test_an_unknown_stranded_joins_policy_is_rejected() -> None:
    with pytest.raises(ValueError, match="stranded_joins"):
        WorkflowEngine(diamond(engine_policy={"stranded_joins": "ignore"}), {"ok": ok})
