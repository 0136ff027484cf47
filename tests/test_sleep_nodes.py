"""Durable timers: a ``sleep`` node pauses the run until a due time kept in the checkpoint.

``for_ms`` (legacy ``sleep.for_seconds``) counts from the engine's clock when
the node runs; ``until`` reads an ISO-8601 time from the state. A sleeping run
is ``waiting`` with reason ``timer``: no thread, no handler, nothing runs.
"""

from __future__ import annotations

from typing import Any

import pytest

from _support import Recorder
from zeroflow import (
    ERROR_SLEEP_UNTIL,
    HandlerResult,
    InMemoryWorkflowStore,
    WorkflowContext,
    WorkflowEngine,
    convert,
)
from zeroflow.testing import FakeClock

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00+00:00
CALLS: list[str] = []


def note(ctx: WorkflowContext) -> HandlerResult:
    CALLS.append(ctx.node_name)
    return HandlerResult(outputs=["ok"], workflow_updates=dict(ctx.node_config))


def flow(sleep: dict[str, Any], *, before: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "workflow_name": "nap",
        "default_entry_node": "prep",
        "nodes": {
            "prep": {
                "handler": "note",
                "config": before or {},
                "outputs": {"ok": [{"target_node": "nap"}]},
            },
            "nap": {"kind": "sleep", "sleep": sleep, "outputs": {"ok": [{"target_node": "after"}]}},
            "after": {"handler": "note", "outputs": {"ok": []}},
        },
    }


def engine(defn: dict[str, Any], store: Any, clock: FakeClock, **kw: Any) -> WorkflowEngine:
    return WorkflowEngine(defn, {"note": note}, store=store, clock=clock, **kw)


def test_a_sleep_pauses_with_reason_timer_and_its_due_time_in_snapshot_and_metadata() -> None:
    store, clock, heard = InMemoryWorkflowStore(), FakeClock(T0), Recorder()
    CALLS.clear()
    paused = engine(flow({"for_seconds": 90}), store, clock, event_callback=heard).run(run_id="s")
    assert paused.status == "waiting" and paused.trace == ["prep", "nap"]
    assert CALLS == ["prep"]
    assert store.load_snapshot("s").extra["timers"] == {"nap": {"due": T0 + 90, "kind": "sleep"}}
    (meta,) = store.list_metadata()
    assert (meta.status, meta.wait_reason, meta.due_at) == ("waiting", "timer", T0 + 90)
    waiting = heard.of("wf:waiting")[0].data
    assert waiting["reason"] == "timer" and waiting["due_at"] == T0 + 90


def test_a_woken_sleep_routes_ok_and_forgets_its_timer() -> None:
    store, clock = InMemoryWorkflowStore(), FakeClock(T0)
    CALLS.clear()
    engine(flow({"for_seconds": 90}), store, clock).run(run_id="s")
    clock.advance(90)
    done = engine(flow({"for_seconds": 90}), store, clock).resume("s")
    assert done.success and done.trace == ["prep", "nap", "nap", "after"]
    assert CALLS == ["prep", "after"]
    assert "timers" not in store.load_snapshot("s").extra


def test_a_zero_sleep_and_an_until_in_the_past_do_not_pause() -> None:
    store = InMemoryWorkflowStore()
    assert engine(flow({"for_seconds": 0}), store, FakeClock(T0)).run().success
    past = flow({"until": "workflow.at"}, before={"at": "2000-01-01T00:00:00Z"})
    assert engine(past, store, FakeClock(T0)).run().success


@pytest.mark.parametrize(
    ("value", "due"),
    [
        ("2027-01-15T09:00:00+00:00", T0 + 3600),
        ("2027-01-15T09:00:00Z", T0 + 3600),
        ("2027-01-15T09:00:00", T0 + 3600),  # no offset: UTC
        ("2027-01-15T10:00:00+01:00", T0 + 3600),
        ("2027-01-15T09:00:00.500000+00:00", T0 + 3600.5),
    ],
)
def test_until_reads_an_iso_time_from_the_state(value: str, due: float) -> None:
    store = InMemoryWorkflowStore()
    paused = engine(flow({"until": "workflow.at"}, before={"at": value}), store, FakeClock(T0)).run(
        run_id="u"
    )
    assert paused.waiting
    assert store.load_snapshot("u").extra["timers"]["nap"]["due"] == due


@pytest.mark.parametrize(
    "value",
    ["tomorrow", "", "2027-13-45T00:00:00", 1_900_000_000, None, ["2027-01-15"], "x" * 10_000],
)
def test_an_until_that_is_not_an_iso_time_fails_the_node_with_its_own_code(value: Any) -> None:
    defn = flow({"until": "workflow.at"}, before={"at": value})
    failed = engine(defn, InMemoryWorkflowStore(), FakeClock(T0)).run()
    assert failed.status == "failed"
    assert failed.error is not None and failed.error.code == ERROR_SLEEP_UNTIL
    assert failed.error.node == "nap" and "ISO-8601" in failed.error.message


def test_an_until_path_missing_from_the_state_fails_the_node_too() -> None:
    failed = engine(flow({"until": "input.when"}), None, FakeClock(T0)).run()
    assert failed.error is not None and failed.error.code == ERROR_SLEEP_UNTIL
    assert "holds nothing" in failed.error.message


@pytest.mark.parametrize(
    ("sleep", "fragment"),
    [
        ({"for_seconds": -1}, "sleep.for_seconds must be a number >= 0"),
        ({"for_seconds": "5"}, "sleep.for_seconds must be a number >= 0"),
        ({"for_seconds": True}, "sleep.for_seconds must be a number >= 0"),
        ({"for_seconds": float("inf")}, "sleep.for_seconds must be a number >= 0"),
        ({}, "exactly one of 'for_seconds' and 'until'"),
        ({"for_seconds": 1, "until": "workflow.at"}, "exactly one of"),
        ({"until": "somewhere"}, "must start with input., workflow. or node."),
        ({"until": 5}, "must be a state path"),
    ],
)
def test_bad_sleeps_are_refused_at_construction(sleep: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        WorkflowEngine(flow(sleep), {"note": note})


def test_a_sleep_node_written_without_its_spec_is_refused() -> None:
    defn = flow({"for_seconds": 1})
    del defn["nodes"]["nap"]["sleep"]
    with pytest.raises(ValueError, match="sleep must be a dict"):
        WorkflowEngine(defn, {"note": note})


ZF1: dict[str, Any] = {
    "version": "zf/1",
    "name": "nap",
    "entry": "nap",
    "nodes": {
        "nap": {"kind": "sleep", "for_ms": 1500, "on": {"ok": "after"}},
        "after": {"handler": "note", "on": {"ok": []}},
    },
}


def test_zf1_for_ms_and_until_convert_both_ways() -> None:
    store = InMemoryWorkflowStore()
    engine(ZF1, store, FakeClock(T0)).run(run_id="z")
    assert store.load_snapshot("z").extra["timers"]["nap"]["due"] == T0 + 1.5
    legacy = convert(ZF1, "legacy").definition
    assert legacy["nodes"]["nap"]["sleep"] == {"for_seconds": 1.5}
    assert convert(legacy, "zf/1").definition["nodes"]["nap"]["for_ms"] == 1500
    until = {**ZF1, "nodes": {**ZF1["nodes"], "nap": {"kind": "sleep", "until": "input.at"}}}
    assert convert(until, "legacy").definition["nodes"]["nap"]["sleep"] == {"until": "input.at"}


@pytest.mark.parametrize(
    ("node", "fragment"),
    [
        ({"kind": "sleep", "for_ms": -1}, "for_ms"),
        ({"kind": "sleep"}, "exactly one of 'for_ms' and 'until'"),
        ({"kind": "sleep", "for_ms": 5, "until": "input.at"}, "exactly one of"),
        ({"kind": "sleep", "until": "later"}, "must be a state path"),
        ({"kind": "sleep", "for_ms": 5, "handler": "note"}, "unknown key 'handler'"),
    ],
)
def test_zf1_bad_sleeps_are_refused(node: dict[str, Any], fragment: str) -> None:
    defn = {**ZF1, "nodes": {**ZF1["nodes"], "nap": node}}
    with pytest.raises(ValueError, match=fragment):
        WorkflowEngine(defn, {"note": note})


def test_lint_warns_about_a_sleep_output_other_than_ok() -> None:
    from zeroflow import lint

    defn = flow({"for_seconds": 1})
    defn["nodes"]["nap"]["outputs"]["late"] = [{"target_node": "after"}]
    assert [f.pointer for f in lint(defn) if f.code == "ZF110"] == ["/nodes/nap/outputs/late"]
