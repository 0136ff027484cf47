"""Saga compensation: a run that fails for good undoes its completed visits, newest first."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from _support import edge, make_store
from zeroflow import (
    EVENT_NODE_COMPENSATE,
    EVENT_NODE_COMPENSATED,
    EVENT_NODE_COMPENSATION_FAILED,
    HandlerResult,
    InMemoryWorkflowStore,
    InvalidTransitionError,
    OverrideError,
    WorkflowContext,
    WorkflowDefinitionError,
    WorkflowEngine,
    WorkflowError,
    WorkflowStore,
    convert,
    lint,
)
from zeroflow.testing import EventRecorder, FakeClock, crash_everywhere

Handlers = dict[str, Callable[[WorkflowContext], HandlerResult]]


def trip(**pay: Any) -> dict[str, Any]:
    """hotel -> flight -> pay; hotel and flight can be undone, pay fails."""
    return {
        "workflow_name": "trip",
        "default_entry_node": "hotel",
        "nodes": {
            "hotel": {"handler": "book", "compensate": "cancel", "outputs": {"ok": edge("flight")}},
            "flight": {
                "handler": "book",
                "compensate": "cancel",
                "outputs": {"ok": edge("pay")},
                "run_policy": {"max_retries": 2, "retry_sleep_seconds": 5},
            },
            "pay": {"handler": "charge", "outputs": {"ok": []}, **pay},
        },
    }


def handlers(log: list[str], *, cancel_fails: int = 0, charge_ok: bool = False) -> Handlers:
    failures = {"left": cancel_fails}

    def book(ctx: WorkflowContext) -> HandlerResult:
        log.append(f"book {ctx.node_name}")
        return HandlerResult(outputs=["ok"], workflow_updates={ctx.node_name: "booked"})

    def charge(ctx: WorkflowContext) -> HandlerResult:
        if charge_ok:
            return HandlerResult(outputs=["ok"])
        raise RuntimeError("card declined")

    def cancel(ctx: WorkflowContext) -> HandlerResult:
        visit = ctx.state.workflow["__compensation__"]
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("airline down")
        log.append(f"cancel {visit['node']}@{visit['step']}")
        return HandlerResult(outputs=[], workflow_updates={visit["node"]: "cancelled"})

    return {"book": book, "charge": charge, "cancel": cancel}


def engine(
    defn: dict[str, Any],
    hs: Handlers,
    store: WorkflowStore | None = None,
    rec: EventRecorder | None = None,
    clock: FakeClock | None = None,
) -> WorkflowEngine:
    clock = clock or FakeClock()
    return WorkflowEngine(
        defn, hs, store=store, event_callback=rec, clock=clock.time, sleep=clock.sleep
    )


def test_a_failed_run_undoes_its_completed_nodes_in_reverse_order() -> None:
    log: list[str] = []
    rec = EventRecorder()
    result = engine(trip(), handlers(log), rec=rec).run()
    assert result.status == "failed" and not result.success
    assert result.compensated and result.compensation_failed is None
    assert log == ["book hotel", "book flight", "cancel flight@2", "cancel hotel@1"]
    assert result.error is not None and result.error.code == "HANDLER_EXCEPTION"
    assert result.error.details["compensated"] is True
    assert result.state.workflow["hotel"] == result.state.workflow["flight"] == "cancelled"
    assert "__compensation__" not in result.state.workflow
    rows = [(r.node, r.status, r.kind, r.details) for r in result.audit_trail[3:]]
    assert rows == [
        ("flight", "succeeded", "compensation", {"step": 2}),
        ("hotel", "succeeded", "compensation", {"step": 1}),
    ]
    assert result.trace == ["hotel", "flight", "pay"]  # compensations are not taken nodes
    kinds = [e.kind for e in rec.events if e.kind.startswith("node:comp")]
    assert kinds == [EVENT_NODE_COMPENSATE, EVENT_NODE_COMPENSATED] * 2
    assert [e.data for e in rec.of(EVENT_NODE_COMPENSATE)] == [
        {"node": "flight", "step": 2},
        {"node": "hotel", "step": 1},
    ]
    assert rec.kinds()[-2:] == ["wf:end", "checkpoint"]


def test_a_looped_node_is_compensated_once_per_completed_visit_most_recent_first() -> None:
    log: list[str] = []
    defn = {
        "workflow_name": "loop",
        "default_entry_node": "reserve",
        "nodes": {
            "reserve": {
                "handler": "reserve",
                "compensate": "cancel",
                "outputs": {
                    "again": [{"target_node": "reserve", "is_loopback": True}],
                    "done": edge("pay"),
                },
            },
            "pay": {"handler": "charge", "outputs": {"ok": []}},
        },
    }

    def reserve(ctx: WorkflowContext) -> HandlerResult:
        n = ctx.state.workflow.get("n", 0) + 1
        return HandlerResult(outputs=["again" if n < 3 else "done"], workflow_updates={"n": n})

    hs = handlers(log)
    hs["reserve"] = reserve
    result = engine(defn, hs).run()
    assert result.compensated
    assert log == ["cancel reserve@3", "cancel reserve@2", "cancel reserve@1"]


def test_no_compensation_when_the_run_succeeds_or_the_failure_is_caught() -> None:
    log: list[str] = []
    assert engine(trip(), handlers(log, charge_ok=True)).run().success
    caught = trip(on_error=[{"target_node": "sorry"}])
    caught["nodes"]["sorry"] = {"handler": "book", "outputs": {"ok": []}}
    result = engine(caught, handlers(log)).run()
    assert result.success and not result.compensated
    assert not any(line.startswith("cancel") for line in log)


def test_a_run_without_compensable_work_fails_plainly() -> None:
    defn = trip()
    for node in defn["nodes"].values():
        node.pop("compensate", None)
    result = engine(defn, handlers([])).run()
    assert result.status == "failed" and not result.compensated
    assert "compensated" not in result.error.details  # type: ignore[union-attr]


def test_a_compensation_is_retried_by_its_nodes_retry_policy() -> None:
    log: list[str] = []
    clock = FakeClock()
    rec = EventRecorder()
    result = engine(trip(), handlers(log, cancel_fails=2), rec=rec, clock=clock).run()
    assert result.compensated
    assert [e.data["attempt"] for e in rec.of("node:retry")] == [1, 2]
    assert clock.sleeps == [5, 5]  # flight's run_policy
    assert log[-2:] == ["cancel flight@2", "cancel hotel@1"]


def test_a_compensation_that_gives_up_stops_the_undoing_and_is_reported() -> None:
    log: list[str] = []
    rec = EventRecorder()
    store = InMemoryWorkflowStore()
    result = engine(trip(), handlers(log, cancel_fails=3), store, rec).run(run_id="t1")
    assert result.status == "failed" and not result.compensated
    failed = result.compensation_failed
    assert failed is not None and failed.code == "HANDLER_EXCEPTION"
    assert failed.node == "flight" and failed.cause_type == "ConnectionError"
    assert result.error is not None and result.error.code == "HANDLER_EXCEPTION"  # the run's own
    assert not any(line.startswith("cancel") for line in log)  # hotel was not undone
    last = result.audit_trail[-1]
    assert (last.node, last.status, last.kind) == ("flight", "failed", "compensation")
    assert rec.of(EVENT_NODE_COMPENSATION_FAILED)[0].data["error"]["node"] == "flight"
    meta = store.list_metadata()[0]
    assert meta.compensation_failed == failed and not meta.compensated


def test_a_redrive_retries_the_failed_compensation_then_the_rest() -> None:
    log: list[str] = []
    store = InMemoryWorkflowStore()
    hs = handlers(log, cancel_fails=3)
    first = engine(trip(), hs, store).run(run_id="t1")
    assert first.compensation_failed is not None
    with pytest.raises(OverrideError, match="without override"):
        engine(trip(), hs, store).redrive("t1", override={"pay": {"outputs": ["ok"]}})
    again = engine(trip(), hs, store).redrive("t1")
    assert again.status == "failed" and again.compensated
    assert again.compensation_failed is None
    assert log[-2:] == ["cancel flight@2", "cancel hotel@1"]
    assert again.trace == ["hotel", "flight", "pay"]  # no forward node ran again
    with pytest.raises(InvalidTransitionError, match="compensated"):
        engine(trip(), hs, store).redrive("t1")


def test_an_unregistered_compensate_handler_fails_the_compensation_at_run_time() -> None:
    defn = trip()
    defn["nodes"]["flight"]["compensate"] = "refund"
    hs = handlers([])
    result = engine(defn, hs).run()
    assert result.compensation_failed is not None
    assert result.compensation_failed.code == "HANDLER_NOT_REGISTERED"
    codes = {(f.code, f.pointer) for f in lint(defn, hs)}
    assert ("ZF106", "/nodes/flight/compensate") in codes


def test_a_workflow_timeout_does_not_cut_the_compensations_short() -> None:
    clock = FakeClock()
    defn = trip()
    defn["engine_policy"] = {"workflow_timeout_seconds": 10}
    hs = handlers([])

    def slow(ctx: WorkflowContext) -> HandlerResult:
        clock.now += 60
        return HandlerResult(outputs=["ok"])

    hs["charge"] = slow
    defn["nodes"]["pay"]["outputs"] = {"ok": edge("after")}
    defn["nodes"]["after"] = {"handler": "book", "outputs": {"ok": []}}
    result = engine(defn, hs, clock=clock).run()
    assert result.error is not None and result.error.code == "WORKFLOW_TIMEOUT"
    assert result.compensated


def test_a_compensation_cannot_wait() -> None:
    hs = handlers([])
    hs["cancel"] = lambda ctx: HandlerResult(outputs=[], waiting=True)
    result = engine(trip(), hs).run()
    assert result.compensation_failed is not None
    assert result.compensation_failed.code == "INVALID_HANDLER_RESULT"


def test_a_cancel_during_a_compensation_retry_leaves_it_to_resume() -> None:
    log: list[str] = []
    store = InMemoryWorkflowStore()
    holder: dict[str, WorkflowEngine] = {}

    def cancelling_sleep(seconds: float) -> None:
        holder["e"].cancel()

    hs = handlers(log, cancel_fails=1)
    holder["e"] = WorkflowEngine(trip(), hs, store=store, sleep=cancelling_sleep)
    first = holder["e"].run(run_id="t1")
    assert first.status == "cancelled"
    again = engine(trip(), hs, store).resume("t1")
    assert again.status == "failed" and again.compensated
    assert log[-2:] == ["cancel flight@2", "cancel hotel@1"]


@pytest.mark.parametrize("kind", ["memory", "json", "sqlite"])
def test_the_outcome_is_in_the_stored_metadata(kind: str, tmp_path: Path) -> None:
    store = make_store(kind, tmp_path)
    engine(trip(), handlers([]), store).run(run_id="t1")
    (meta,) = store.list_metadata()
    assert meta.status == "failed" and meta.compensated
    assert store.load_snapshot("t1").metadata().compensated


@pytest.mark.parametrize("kind", ["memory", "json", "sqlite"])
def test_a_crash_anywhere_during_compensation_resumes_where_it_stopped(
    kind: str, tmp_path: Path
) -> None:
    made: dict[str, WorkflowStore] = {}

    def stores(name: str) -> WorkflowStore:
        if name not in made:
            (tmp_path / name).mkdir()
            made[name] = make_store(kind, tmp_path / name)
        return made[name]

    report = crash_everywhere(lambda store: engine(trip(), handlers([]), store), stores)
    assert report.status == "failed"
    assert report.failures == [], report.table()
    # a compensation runs again only when the crash fell while it was in flight
    assert report.repeated().get("flight:compensate", 0) <= 1
    assert report.repeated().get("hotel:compensate", 0) <= 1
    assert any(
        o.node in ("flight", "hotel") and o.where.startswith("after") for o in report.outcomes
    )
    for outcome in report.outcomes:
        assert outcome.runs.get("flight:compensate", 0) <= 2
        assert outcome.runs.get("hotel:compensate", 0) <= 2
    done = [o for o in report.outcomes if o.where.startswith("after") and o.node == "hotel"]
    assert done and all("hotel:compensate" not in o.repeated for o in done)


def test_compensate_only_on_nodes_that_do_work() -> None:
    for kind, extra in (("wait", {"wait": {"prompt": "ok?"}}), ("end", {})):
        defn = trip()
        defn["nodes"]["hotel"] = {
            "kind": kind,
            "compensate": "cancel",
            "outputs": {"ok": edge("flight")},
            **extra,
        }
        with pytest.raises(WorkflowDefinitionError, match=f"{kind} node and cannot have"):
            WorkflowEngine(defn, handlers([]))
    defn = trip()
    defn["nodes"]["hotel"]["compensate"] = ""
    with pytest.raises(WorkflowDefinitionError, match="compensate must be the name"):
        WorkflowEngine(defn, handlers([]))


def test_zf1_spells_compensate_and_detached_and_converts_both_ways() -> None:
    zf1 = convert(trip()).definition
    assert zf1["nodes"]["flight"]["compensate"] == "cancel"
    back = convert(zf1, "legacy").definition
    assert back["nodes"]["hotel"]["compensate"] == "cancel"
    log: list[str] = []
    assert engine(zf1, handlers(log)).run().compensated
    zf1["nodes"]["hotel"]["detached"] = "yes"
    with pytest.raises(WorkflowDefinitionError, match="'detached' must be true or false"):
        WorkflowEngine(zf1, handlers([]))
    wait = {"version": "zf/1", "name": "w", "entry": "w", "nodes": {}}
    wait["nodes"] = {"w": {"kind": "wait", "compensate": "cancel"}}
    with pytest.raises(WorkflowDefinitionError, match="'compensate' belongs to task / subflow"):
        WorkflowEngine(wait, {})


def test_metadata_reads_the_outcome_from_the_error_it_keeps() -> None:
    error = WorkflowError(
        "X", "x", "n", details={"compensation_failed": {"code": "Y", "message": "y"}}
    )
    from zeroflow import RunMetadata

    meta = RunMetadata("w", "h", "failed", last_error=error)
    assert not meta.compensated and meta.compensation_failed == WorkflowError("Y", "y")
    assert RunMetadata.from_dict(meta.to_dict()).compensation_failed == WorkflowError("Y", "y")


def test_in_a_batch_only_the_nodes_settled_before_the_failure_are_compensated() -> None:
    log: list[str] = []
    defn = {
        "workflow_name": "batch",
        "default_entry_node": "start",
        "engine_policy": {"max_concurrency": 3},
        "nodes": {
            "start": {"handler": "book", "outputs": {"ok": edge("a", "pay", "c")}},
            "a": {"handler": "book", "compensate": "cancel", "outputs": {"ok": []}},
            "pay": {"handler": "charge", "outputs": {"ok": []}},
            "c": {"handler": "book", "compensate": "cancel", "outputs": {"ok": []}},
        },
    }
    result = engine(defn, handlers(log)).run()
    assert result.compensated
    # c ran in the batch, but the failure before it stopped the settling: it did not count
    assert [line for line in log if line.startswith("cancel")] == ["cancel a@2"]


def test_compensations_are_never_held_for_a_group_commit() -> None:
    made: dict[str, WorkflowStore] = {}

    def stores(name: str) -> WorkflowStore:
        return made.setdefault(name, InMemoryWorkflowStore())

    def batched(store: WorkflowStore) -> WorkflowEngine:
        return WorkflowEngine(trip(), handlers([]), store=store, durability="batch")

    report = crash_everywhere(batched, stores)
    assert report.failures == [], report.table()
    for node in ("flight", "hotel"):
        assert report.repeated().get(f"{node}:compensate", 0) <= 1


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_sigkill_during_compensation_resumes_it_from_the_json_store(tmp_path: Path) -> None:
    from zeroflow import JsonFileWorkflowStore

    report = crash_everywhere(
        lambda store: engine(trip(), handlers([]), store),
        lambda name: JsonFileWorkflowStore(tmp_path / name),
        mode="kill",
    )
    assert report.status == "failed" and report.failures == [], report.table()
    assert report.repeated().get("hotel:compensate", 0) <= 1
