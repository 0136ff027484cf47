"""Stats: ``result.stats`` from the audit trail, and the pure figures of ``_stats``."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from zeroflow import (
    HandlerResult,
    NodeStats,
    RunSummary,
    StepRecord,
    WorkflowContext,
    WorkflowEngine,
    stats_report,
)
from zeroflow._stats import (
    decode_nodes,
    encode_nodes,
    node_stats,
    node_stats_of_dicts,
    percentile,
    since_key,
)
from zeroflow.testing import FakeClock


def ok(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"])


def flaky(failures: int) -> Any:
    """A handler raising on its first ``failures`` calls, then succeeding."""
    calls = {"n": 0}

    def handler(ctx: WorkflowContext) -> HandlerResult:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise RuntimeError(f"flaky {calls['n']}")
        return HandlerResult(outputs=["ok"])

    return handler


def two_nodes(retries: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "workflow_name": "pair",
        "default_entry_node": "a",
        "nodes": {
            "a": {
                "handler": "a",
                "outputs": {"ok": [{"target_node": "b"}]},
                "run_policy": {"max_retries": retries},
            },
            "b": {"handler": "b", "outputs": {"ok": []}},
            **extra,
        },
    }


def engine(defn: dict[str, Any], handlers: dict[str, Any], **kw: Any) -> WorkflowEngine:
    clock = FakeClock()
    return WorkflowEngine(defn, handlers, clock=clock, sleep=clock.sleep, **kw)


# ---------------------------------------------------------------- result.stats


def test_result_stats_counts_each_nodes_executions_retries_and_durations() -> None:
    result = engine(two_nodes(retries=3), {"a": flaky(2), "b": ok}).run()
    assert result.success
    stats = result.stats
    assert list(stats) == ["a", "b"]
    a = stats["a"]
    assert (a.node, a.executions, a.failures, a.retries) == ("a", 1, 0, 2)
    assert a.max_duration_ms == a.total_duration_ms >= 0
    assert stats["b"].retries == 0
    assert result.audit_trail[0].retries == 2


def test_a_failure_after_its_retries_counts_as_one_failed_execution_with_them() -> None:
    result = engine(two_nodes(retries=2), {"a": flaky(10), "b": ok}).run()
    assert result.status == "failed"
    assert result.stats["a"] == NodeStats(
        "a",
        1,
        1,
        2,
        result.audit_trail[0].duration_ms or 0.0,
        result.audit_trail[0].duration_ms or 0.0,
    )
    assert "b" not in result.stats


def test_a_loop_sums_every_visit_and_keeps_the_longest() -> None:
    defn = {
        "workflow_name": "loop",
        "default_entry_node": "tick",
        "nodes": {
            "tick": {
                "handler": "tick",
                "outputs": {"again": [{"target_node": "tick", "is_loopback": True}], "done": []},
            }
        },
    }

    def tick(ctx: WorkflowContext) -> HandlerResult:
        n = int(ctx.state.workflow.get("n", 0)) + 1
        return HandlerResult(outputs=["done" if n == 4 else "again"], workflow_updates={"n": n})

    result = engine(defn, {"tick": tick}).run()
    tick_stats = result.stats["tick"]
    assert tick_stats.executions == 4
    durations = [r.duration_ms or 0.0 for r in result.audit_trail]
    assert tick_stats.max_duration_ms == max(durations)
    assert math.isclose(tick_stats.total_duration_ms, sum(durations), abs_tol=0.01)
    assert math.isclose(tick_stats.mean_duration_ms, tick_stats.total_duration_ms / 4)


def test_a_resumed_runs_stats_cover_the_whole_run_pause_included() -> None:
    defn = two_nodes()
    defn["nodes"]["a"] = {"handler": "a", "outputs": {"ok": [{"target_node": "b"}]}}

    def ask(ctx: WorkflowContext) -> HandlerResult:
        if "__resume__" not in ctx.state.workflow:
            return HandlerResult(waiting=True, waiting_prompt="answer?")
        return HandlerResult(outputs=["ok"])

    eng = engine(defn, {"a": ask, "b": ok})
    paused = eng.run()
    assert paused.stats["a"].executions == 1
    assert paused.checkpoint is not None
    done = eng.run_from_checkpoint(paused.checkpoint, resume_input={"answer": 1})
    assert done.success
    assert done.stats["a"].executions == 2  # the pause and the resumed call
    assert done.stats["b"].executions == 1


def test_retries_of_map_items_add_up_on_the_map_node() -> None:
    defn = {
        "workflow_name": "mapped",
        "default_entry_node": "each",
        "nodes": {
            "each": {
                "handler": "item",
                "map": {"over": "input.items"},
                "outputs": {"ok": []},
                "run_policy": {"max_retries": 2},
            }
        },
    }
    seen: dict[Any, int] = {}

    def item(ctx: WorkflowContext) -> HandlerResult:
        seen[ctx.item] = seen.get(ctx.item, 0) + 1
        if seen[ctx.item] == 1 and ctx.item != 2:
            raise RuntimeError("first try fails")
        return HandlerResult(outputs=["ok"])

    result = engine(defn, {"item": item}).run({"items": [1, 2, 3]})
    assert result.success, result.error
    assert result.stats["each"].executions == 1
    assert result.stats["each"].retries == 2


def test_a_parallel_batch_keeps_each_nodes_retries_apart() -> None:
    defn = {
        "workflow_name": "fan",
        "default_entry_node": "start",
        "engine_policy": {"max_concurrency": 2},
        "nodes": {
            "start": {
                "handler": "ok",
                "outputs": {"ok": [{"target_node": "x"}, {"target_node": "y"}]},
            },
            "x": {"handler": "x", "outputs": {"ok": []}, "run_policy": {"max_retries": 3}},
            "y": {"handler": "ok", "outputs": {"ok": []}},
        },
    }
    result = engine(defn, {"ok": ok, "x": flaky(3)}).run()
    assert result.success, result.error
    assert result.stats["x"].retries == 3
    assert result.stats["y"].retries == 0
    assert result.stats["start"].retries == 0


def test_a_run_without_nodes_run_has_empty_stats() -> None:
    result = engine(two_nodes(), {"a": ok, "b": ok}).run()
    assert result.stats  # sanity: a normal run has some
    bare = result.__class__(
        run_id="r", success=True, status="succeeded", trace=[], tags=[], state=result.state,
        audit_trail=[],
    )  # fmt: skip
    assert bare.stats == {}


def test_node_stats_to_dict_names_every_figure() -> None:
    figures = NodeStats("a", 3, 1, 2, 12.5, 7.0)
    assert figures.to_dict() == {
        "node": "a",
        "executions": 3,
        "failures": 1,
        "retries": 2,
        "total_duration_ms": 12.5,
        "max_duration_ms": 7.0,
    }
    assert NodeStats("z").mean_duration_ms == 0.0


# ---------------------------------------------------------------- step records


def test_a_record_without_retries_keeps_the_0_1_0_keys() -> None:
    record = StepRecord(1, 1, "a", "succeeded", "t", ["ok"], None, False, 1.0)
    assert "retries" not in record.to_dict()
    assert StepRecord.from_dict(record.to_dict()).retries == 0


def test_a_record_with_retries_round_trips_them() -> None:
    record = StepRecord(1, 1, "a", "failed", "t", [], None, False, 1.0, 3)
    assert record.to_dict()["retries"] == 3
    assert StepRecord.from_dict(record.to_dict()) == record


# ---------------------------------------------------------------- node_stats


def test_node_stats_reads_dicts_and_skips_what_is_no_execution_or_damaged() -> None:
    trail: list[Any] = [
        {"node": "a", "status": "succeeded", "duration_ms": 2.0},
        {"node": "(migration)", "status": "migrated", "duration_ms": 0.0},
        {"node": "a", "status": "failed", "duration_ms": None, "retries": 1},
        {"node": "b", "status": "waiting", "duration_ms": float("nan"), "retries": True},
        {"node": "b", "status": "succeeded", "duration_ms": -5},
        {"node": 7, "status": "succeeded"},
        {"status": "succeeded"},
        "not a record",
    ]
    stats = node_stats_of_dicts(trail)
    assert stats == {
        "a": NodeStats("a", 2, 1, 1, 2.0, 2.0),
        "b": NodeStats("b", 2, 0, 0, 0.0, 0.0),
    }


def test_node_stats_of_records_skips_a_migration() -> None:
    trail = [
        StepRecord(1, 1, "a", "succeeded", "t", [], None, False, 1.5, 2),
        StepRecord(1, 1, "(migration)", "migrated", "t", [], None, False, 0.0),
        StepRecord(2, 1, "a", "failed", "t", [], None, False, None),
    ]
    assert node_stats(trail) == {"a": NodeStats("a", 2, 1, 2, 1.5, 1.5)}


def test_the_compact_form_round_trips() -> None:
    nodes = {"a": NodeStats("a", 2, 1, 1, 3.5, 2.0), "b": NodeStats("b", 1, 0, 0, 0.0, 0.0)}
    assert decode_nodes(encode_nodes(nodes)) == nodes
    assert decode_nodes(None) is None


def test_a_newer_compact_form_reads_as_absent() -> None:
    assert decode_nodes({"format": 99, "whatever": True}) is None


@pytest.mark.parametrize(
    "damaged",
    [
        [1, 2],
        {"nodes": {}},
        {"format": 1},
        {"format": 1, "nodes": {"a": [1, 0, 0, 1.0]}},
        {"format": 1, "nodes": {"a": [-1, 0, 0, 1.0, 1.0]}},
        {"format": 1, "nodes": {"a": [1, 0, 0, "x", 1.0]}},
        {"format": 1, "nodes": {"a": [1, 0, 0, 1.0, float("inf")]}},
        {"format": 1, "nodes": {"a": [1, 2, 0, 1.0, 1.0]}},
        {"format": 1, "nodes": {"a": [True, 0, 0, 1.0, 1.0]}},
    ],
)
def test_damaged_compact_figures_are_a_value_error_saying_what(damaged: Any) -> None:
    with pytest.raises(ValueError, match=r"node stats|count|duration"):
        decode_nodes(damaged)


# ---------------------------------------------------------------- percentiles and since

WEST = timezone(timedelta(hours=-1))


def test_percentile_is_nearest_rank() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 95) == 5.0
    assert percentile(values, 100) == 5.0
    assert percentile(values, 1) == 1.0
    assert percentile([7.0], 95) == 7.0
    assert percentile(list(range(1, 101)), 95) == 95
    assert percentile([], 50) is None


@pytest.mark.parametrize("q", [0, -1, 101, float("nan")])
def test_percentile_refuses_a_q_outside_0_to_100(q: float) -> None:
    with pytest.raises(ValueError, match="q must be"):
        percentile([1.0], q)


@pytest.mark.parametrize(
    ("given", "key"),
    [
        ("2026-01-01", "2026-01-01T00:00:00+00:00"),
        ("2026-01-01T12:30:00Z", "2026-01-01T12:30:00+00:00"),
        ("2026-01-01T12:30:00.75+02:00", "2026-01-01T10:30:00+00:00"),
        (datetime(2026, 1, 1, 12), "2026-01-01T12:00:00+00:00"),
        (datetime(2026, 1, 1, 12, tzinfo=WEST), "2026-01-01T13:00:00+00:00"),
        (None, None),
    ],
)
def test_since_is_compared_as_a_utc_stamp(given: Any, key: str | None) -> None:
    assert since_key(given) == key


def test_a_since_that_is_no_time_says_which_forms_work() -> None:
    with pytest.raises(ValueError, match="ISO-8601 date or time such as 2026-01-01"):
        since_key("yesterday")
    with pytest.raises(TypeError, match="ISO-8601 string or a datetime"):
        since_key(1700000000)  # type: ignore[arg-type]  # the mistake under test


# ---------------------------------------------------------------- stats_report


def _at(seconds: int) -> str:
    return (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)).isoformat()


def _summary(
    run_id: str,
    status: str,
    seconds: int | None,
    nodes: dict[str, NodeStats] | None,
    workflow: str = "orders",
) -> RunSummary:
    return RunSummary(
        run_id, workflow, status, _at(0), None if seconds is None else _at(seconds), nodes
    )


def test_the_report_counts_statuses_spreads_durations_and_ranks_nodes() -> None:
    summaries = [
        _summary("r1", "succeeded", 10, {"pay": NodeStats("pay", 1, 0, 0, 100.0, 100.0)}),
        _summary("r2", "succeeded", 20, {"pay": NodeStats("pay", 2, 1, 1, 40.0, 30.0)}),
        _summary("r3", "failed", 30, {"pay": NodeStats("pay", 1, 1, 2, 5.0, 5.0)}),
        _summary("r4", "running", 99, {"pay": NodeStats("pay", 1, 0, 0, 1.0, 1.0)}),
        _summary("r5", "succeeded", 40, None),
        _summary("s1", "succeeded", 2, {"mail": NodeStats("mail", 1, 0, 0, 500.0, 500.0)}, "mail"),
    ]
    report = stats_report(summaries)
    assert report["runs"] == 6
    assert report["by_status"] == {"failed": 1, "running": 1, "succeeded": 4}
    assert report["runs_without_node_stats"] == 1
    orders = report["workflows"]["orders"]
    assert orders["by_status"] == {"failed": 1, "running": 1, "succeeded": 3}
    # Finished runs only: the running one's 99 s is not a duration yet.
    assert orders["duration_seconds"] == {"count": 4, "p50": 20.0, "p95": 40.0, "max": 40.0}
    pay = orders["nodes"]["pay"]
    assert pay["executions"] == 5 and pay["failures"] == 2 and pay["retries"] == 3
    assert pay["max_ms"] == 100.0 and pay["total_ms"] == 146.0
    # Per run means: 100, 20, 5, 1 -> nearest rank.
    assert (pay["p50_ms"], pay["p95_ms"]) == (5.0, 100.0)
    assert [(r["workflow"], r["node"]) for r in report["slowest"]] == [
        ("mail", "mail"),
        ("orders", "pay"),
    ]
    assert [(r["node"], r["failures"]) for r in report["most_failing"]] == [("pay", 2)]


def test_the_report_of_no_runs_is_empty_not_an_error() -> None:
    assert stats_report([]) == {
        "runs": 0,
        "by_status": {},
        "runs_without_node_stats": 0,
        "workflows": {},
        "slowest": [],
        "most_failing": [],
    }


def test_stamps_that_are_no_time_give_no_duration() -> None:
    summaries = [
        RunSummary("a", "w", "succeeded", "garbage", _at(3), {}),
        RunSummary("b", "w", "succeeded", _at(5), _at(0), {}),  # ends before it starts
        RunSummary("c", "w", "failed", "2026-01-01T00:00:00", _at(4), {}),  # naive vs aware
        RunSummary("d", "w", "cancelled", None, None, {}),
    ]
    spread = stats_report(summaries)["workflows"]["w"]["duration_seconds"]
    assert spread == {"count": 0, "p50": None, "p95": None, "max": None}


def test_top_limits_both_lists() -> None:
    summaries = [
        _summary(f"r{i}", "failed", 1, {f"n{i}": NodeStats(f"n{i}", 1, 1, 0, float(i), float(i))})
        for i in range(8)
    ]
    report = stats_report(summaries, top=3)
    assert [r["node"] for r in report["slowest"]] == ["n7", "n6", "n5"]
    assert len(report["most_failing"]) == 3
    assert stats_report(summaries, top=0)["slowest"] == []


def test_a_summary_to_dict_holds_its_figures() -> None:
    summary = _summary("r1", "succeeded", 1, {"a": NodeStats("a", 1)})
    assert summary.to_dict()["nodes"] == {"a": NodeStats("a", 1).to_dict()}
    assert _summary("r2", "succeeded", 1, None).to_dict()["nodes"] is None
