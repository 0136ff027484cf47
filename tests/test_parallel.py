"""Issue B: ``engine_policy.max_concurrency`` — parallel batches that stay deterministic."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from _support import Recorder
from zeroflow import HandlerResult, InMemoryWorkflowStore, WorkflowContext, WorkflowEngine

BRANCHES = ["b1", "b2", "b3", "b4", "b5"]


def fan(concurrency: int, branches: list[str] = BRANCHES, **top: Any) -> dict[str, Any]:
    """s fans out to ``branches`` (handler ``branch``), which meet in the AND-join j."""
    policy = {"max_concurrency": concurrency, **top.pop("engine_policy", {})}
    nodes: dict[str, Any] = {
        "s": {"handler": "start", "outputs": {"ok": [{"target_node": b} for b in branches]}},
        "j": {
            "handler": "join",
            "outputs": {"ok": []},
            "join": {"mode": "and", "wait_for": list(branches)},
        },
    }
    for b in branches:
        nodes[b] = {"handler": "branch", "outputs": {"ok": [{"target_node": "j"}]}}
    return {
        "workflow_name": "fan",
        "default_entry_node": "s",
        "engine_policy": policy,
        "nodes": nodes,
        **top,
    }


def start(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"], workflow_updates={"started": True})


def join(ctx: WorkflowContext) -> HandlerResult:
    got = {b: ctx.state.node.get(b, {}).get("value") for b in ctx.state.node if b.startswith("b")}
    return HandlerResult(outputs=["ok"], workflow_updates={"joined": got})


def branch_result(ctx: WorkflowContext) -> HandlerResult:
    name = ctx.node_name
    return HandlerResult(
        outputs=["ok"],
        workflow_updates={"last": name, "saw_last": ctx.state.workflow.get("last")},
        node_updates={"value": name.upper()},
        tags=[name],
    )


def handlers(branch: Callable[..., Any]) -> dict[str, Any]:
    return {"start": start, "join": join, "branch": branch}


# ---------------------------------------------------------------- running together


def test_sync_handlers_of_a_batch_run_at_the_same_time_in_threads() -> None:
    barrier = threading.Barrier(len(BRANCHES), timeout=5)

    def meets(ctx: WorkflowContext) -> HandlerResult:
        barrier.wait()
        return branch_result(ctx)

    result = WorkflowEngine(fan(len(BRANCHES)), handlers(meets)).run()
    assert result.success, result.error
    assert result.trace == ["s", *BRANCHES, "j"]


def test_async_handlers_of_a_batch_run_at_the_same_time_under_arun() -> None:
    arrived: list[str] = []

    async def meets(ctx: WorkflowContext) -> HandlerResult:
        arrived.append(ctx.node_name)
        for _ in range(200):
            if len(arrived) == len(BRANCHES):
                break
            await asyncio.sleep(0.01)
        else:
            raise RuntimeError(f"only {arrived} started together")
        return branch_result(ctx)

    result = asyncio.run(WorkflowEngine(fan(len(BRANCHES)), handlers(meets)).arun())
    assert result.success, result.error
    assert result.trace == ["s", *BRANCHES, "j"]


def test_plain_handlers_run_in_threads_during_an_async_batch() -> None:
    barrier = threading.Barrier(3, timeout=5)

    def meets(ctx: WorkflowContext) -> HandlerResult:
        barrier.wait()
        return branch_result(ctx)

    definition = fan(3, ["b1", "b2", "b3"])
    result = asyncio.run(WorkflowEngine(definition, handlers(meets)).arun())
    assert result.success, result.error


def counting_live_calls(pause: float) -> tuple[Callable[..., Any], dict[str, int]]:
    """A branch handler that holds for ``pause`` seconds, and the most calls live at once."""
    lock = threading.Lock()
    live = {"now": 0, "max": 0}

    def counted(ctx: WorkflowContext) -> HandlerResult:
        with lock:
            live["now"] += 1
            live["max"] = max(live["max"], live["now"])
        time.sleep(pause)
        with lock:
            live["now"] -= 1
        return branch_result(ctx)

    return counted, live


def test_a_batch_takes_at_most_max_concurrency_nodes() -> None:
    counted, live = counting_live_calls(pause=0.02)
    result = WorkflowEngine(fan(2), handlers(counted)).run()
    assert result.success
    assert live["max"] == 2
    assert result.trace == ["s", *BRANCHES, "j"]


def test_max_concurrency_defaults_to_one_node_at_a_time() -> None:
    counted, live = counting_live_calls(pause=0.005)
    definition = fan(1)
    del definition["engine_policy"]
    result = WorkflowEngine(definition, handlers(counted)).run()
    assert live["max"] == 1
    assert result.state.workflow["saw_last"] == "b4"


# ---------------------------------------------------------------- ordering and isolation


def test_every_node_of_a_batch_sees_the_state_as_of_batch_start() -> None:
    result = WorkflowEngine(fan(len(BRANCHES)), handlers(branch_result)).run()
    assert result.success
    assert result.state.workflow["saw_last"] is None
    assert result.state.workflow["last"] == "b5"


def test_results_are_applied_in_queue_order_whatever_order_handlers_finish() -> None:
    delays = {"b1": 0.06, "b2": 0.0, "b3": 0.04, "b4": 0.01, "b5": 0.02}

    def uneven(ctx: WorkflowContext) -> HandlerResult:
        time.sleep(delays[ctx.node_name])
        return branch_result(ctx)

    rec = Recorder()
    result = WorkflowEngine(fan(5), handlers(uneven), event_callback=rec).run()
    assert result.trace == ["s", *BRANCHES, "j"]
    assert result.tags == BRANCHES
    assert result.state.workflow["last"] == "b5"
    assert [r.node for r in result.audit_trail] == ["s", *BRANCHES, "j"]
    assert [r.step for r in result.audit_trail] == [1, 2, 3, 4, 5, 6, 7]
    assert [e.node for e in rec.of("node:end")] == ["s", *BRANCHES, "j"]
    assert [e.node for e in rec.of("node:start")] == ["s", *BRANCHES, "j"]
    assert result.state.workflow["joined"] == {b: b.upper() for b in BRANCHES}


def test_custom_events_of_a_batch_are_delivered_in_queue_order() -> None:
    delays = {"b1": 0.05, "b2": 0.0, "b3": 0.03, "b4": 0.0, "b5": 0.01}

    def chatty(ctx: WorkflowContext) -> HandlerResult:
        ctx.emit("tick", {"n": 1})
        time.sleep(delays[ctx.node_name])
        ctx.emit("tick", {"n": 2})
        return branch_result(ctx)

    rec = Recorder()
    WorkflowEngine(fan(5), handlers(chatty), event_callback=rec).run()
    assert [(e.node, e.data["n"]) for e in rec.of("tick")] == [
        (b, n) for b in BRANCHES for n in (1, 2)
    ]
    kinds = [(e.kind, e.node) for e in rec.events if e.kind in ("tick", "node:end")]
    for b in BRANCHES:
        assert kinds.index(("tick", b)) < kinds.index(("node:end", b))


def normalise(value: Any) -> Any:
    """Drop wall-clock fields so runs can be compared."""
    if isinstance(value, dict):
        return {
            k: normalise(v)
            for k, v in value.items()
            if k not in ("ts", "started_at", "updated_at", "duration_ms")
        }
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def signature(result: Any, rec: Recorder) -> Any:
    events = [normalise(e.to_dict()) for e in rec.events]
    return (
        result.trace,
        result.tags,
        normalise(result.state.workflow),
        result.state.node,
        [normalise(r.to_dict()) for r in result.audit_trail],
        events,
    )


def jittery(seed: int, asynchronous: bool) -> Callable[..., Any]:
    rng = random.Random(seed)
    delays = {b: rng.uniform(0, 0.004) for b in BRANCHES}

    def sync_branch(ctx: WorkflowContext) -> HandlerResult:
        ctx.emit("tick", {"at": "start"})
        time.sleep(delays[ctx.node_name])
        ctx.emit("tick", {"at": "end"})
        return branch_result(ctx)

    async def async_branch(ctx: WorkflowContext) -> HandlerResult:
        ctx.emit("tick", {"at": "start"})
        await asyncio.sleep(delays[ctx.node_name])
        ctx.emit("tick", {"at": "end"})
        return branch_result(ctx)

    return async_branch if asynchronous else sync_branch


@pytest.mark.parametrize("asynchronous", [False, True], ids=["threads", "asyncio"])
def test_trace_events_state_and_checkpoints_are_identical_across_many_runs(
    asynchronous: bool,
) -> None:
    signatures = []
    stored = []
    for seed in range(12):
        rec = Recorder()
        store = InMemoryWorkflowStore()
        engine = WorkflowEngine(
            fan(3), handlers(jittery(seed, asynchronous)), event_callback=rec, store=store
        )
        if asynchronous:
            result = asyncio.run(engine.arun(run_id="same"))
        else:
            result = engine.run(run_id="same")
        assert result.success
        signatures.append(signature(result, rec))
        stored.append(
            [
                normalise(store.load_snapshot("same", step=i.step).to_dict())
                for i in store.history("same")
            ]
        )
    assert all(s == signatures[0] for s in signatures[1:])
    assert all(s == stored[0] for s in stored[1:])
    checkpoints = [e for e in signatures[0][5] if e["kind"] == "checkpoint"]
    assert checkpoints, "the callback should have received checkpoint events"


def test_sync_and_async_batches_give_the_same_run() -> None:
    rec_sync, rec_async = Recorder(), Recorder()
    ids = iter(["r", "r"])
    sync_engine = WorkflowEngine(
        fan(5), handlers(jittery(1, False)), event_callback=rec_sync, run_id_factory=ids.__next__
    )
    async_engine = WorkflowEngine(
        fan(5), handlers(jittery(2, True)), event_callback=rec_async, run_id_factory=ids.__next__
    )
    from_sync = sync_engine.run()
    from_async = asyncio.run(async_engine.arun())
    assert signature(from_sync, rec_sync) == signature(from_async, rec_async)


# ---------------------------------------------------------------- failures and waits


def failing_branch(bad: str) -> Callable[..., Any]:
    def handler(ctx: WorkflowContext) -> HandlerResult:
        if ctx.node_name == bad:
            raise RuntimeError(f"{bad} broke")
        return branch_result(ctx)

    return handler


def test_a_failure_in_a_batch_is_handled_after_the_batch_in_queue_order() -> None:
    calls: list[str] = []
    lock = threading.Lock()

    def tracked(ctx: WorkflowContext) -> HandlerResult:
        with lock:
            calls.append(ctx.node_name)
        return failing_branch("b2")(ctx)

    rec = Recorder()
    result = WorkflowEngine(fan(3), handlers(tracked), event_callback=rec).run()
    assert result.status == "failed"
    assert result.error is not None and result.error.node == "b2"
    assert sorted(calls) == ["b1", "b2", "b3"]
    assert result.trace == ["s", "b1", "b2"]
    assert result.state.node == {"b1": {"value": "B1"}}
    assert [(r.node, r.status) for r in result.audit_trail] == [
        ("s", "succeeded"),
        ("b1", "succeeded"),
        ("b2", "failed"),
    ]
    assert [e.node for e in rec.of("node:end")] == ["s", "b1"]


def test_a_failed_batch_redrives_the_failed_node_and_the_unsettled_ones() -> None:
    broken = {"on": True}

    def handler(ctx: WorkflowContext) -> HandlerResult:
        if ctx.node_name == "b2" and broken["on"]:
            raise RuntimeError("b2 broke")
        return branch_result(ctx)

    engine = WorkflowEngine(fan(3), handlers(handler))
    failed = engine.run()
    assert failed.checkpoint is not None
    broken["on"] = False
    result = engine.redrive(failed.checkpoint)
    assert result.success
    assert result.trace == ["s", "b1", "b2", "b2", "b3", "b4", "b5", "j"]
    assert result.state.workflow["joined"] == {b: b.upper() for b in BRANCHES}


def error_routed_fan(**policy: Any) -> dict[str, Any]:
    """fan(3) with an error node, and b3 also leading to a plain node ``tail``."""
    definition = fan(3, default_error_node="err", engine_policy=policy)
    definition["nodes"]["err"] = {"handler": "err", "outputs": {"ok": []}}
    definition["nodes"]["tail"] = {"handler": "err", "outputs": {"ok": []}}
    definition["nodes"]["b3"]["outputs"]["ok"].append({"target_node": "tail"})
    return definition


def err(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"], workflow_updates={"handled_by": ctx.node_name})


def test_a_failure_in_a_batch_is_routed_to_the_error_node() -> None:
    result = WorkflowEngine(
        error_routed_fan(), {**handlers(failing_branch("b2")), "err": err}
    ).run()
    assert result.success
    assert result.state.workflow["__error__"]["node"] == "b2"
    assert result.trace[:3] == ["s", "b1", "b2"]
    assert "err" in result.trace
    assert "j" not in result.trace
    assert "b4" not in result.trace and "b5" not in result.trace


def test_error_routing_in_a_batch_clears_the_work_queued_by_later_batch_nodes() -> None:
    definition = error_routed_fan()
    all_handlers = {**handlers(failing_branch("b2")), "err": err}
    serial = error_routed_fan(max_concurrency=1)
    assert WorkflowEngine(serial, all_handlers).run().trace == ["s", "b1", "b2", "err"]
    result = WorkflowEngine(definition, all_handlers).run()
    assert "tail" not in result.trace
    assert result.trace[-1] == "err"


def test_error_routing_in_a_batch_leaves_no_stranded_join() -> None:
    rec = Recorder()
    definition = error_routed_fan(stranded_joins="fail")
    result = WorkflowEngine(
        definition, {**handlers(failing_branch("b2")), "err": err}, event_callback=rec
    ).run()
    assert [e.data for e in rec.of("node:warning")] == []
    assert result.success


def test_a_waiting_node_pauses_the_run_after_the_batch() -> None:
    def b2_waits(ctx: WorkflowContext) -> HandlerResult:
        if ctx.node_name == "b2" and "__resume__" not in ctx.state.workflow:
            return HandlerResult(outputs=[], waiting=True, waiting_prompt="b2?")
        return branch_result(ctx)

    rec = Recorder()
    engine = WorkflowEngine(fan(3), handlers(b2_waits), event_callback=rec)
    paused = engine.run()
    assert paused.status == "waiting"
    assert paused.waiting_prompt == "b2?"
    assert paused.trace == ["s", "b1", "b2", "b3"]
    assert set(paused.state.node) == {"b1", "b3"}
    assert paused.checkpoint is not None
    assert paused.checkpoint.ready_now[0] == "b2"
    assert [e.data["node"] for e in rec.of("wf:waiting")] == ["b2"]

    result = engine.run_from_checkpoint(paused.checkpoint, resume_input="yes")
    assert result.success
    assert result.trace == ["s", "b1", "b2", "b3", "b2", "b4", "b5", "j"]
    assert result.state.workflow["joined"] == {b: b.upper() for b in BRANCHES}


def test_a_batch_stops_at_max_steps() -> None:
    definition = fan(5, engine_policy={"max_steps": 3})
    calls: list[str] = []
    lock = threading.Lock()

    def tracked(ctx: WorkflowContext) -> HandlerResult:
        with lock:
            calls.append(ctx.node_name)
        return branch_result(ctx)

    result = WorkflowEngine(definition, handlers(tracked)).run()
    assert result.status == "failed"
    assert result.error is not None and result.error.code == "MAX_STEPS_EXCEEDED"
    assert sorted(calls) == ["b1", "b2"]
    assert result.trace[:3] == ["s", "b1", "b2"]


def test_cancel_during_a_batch_ends_cancelled_after_the_batch() -> None:
    engine_box: list[WorkflowEngine] = []

    def cancels(ctx: WorkflowContext) -> HandlerResult:
        if ctx.node_name == "b1":
            engine_box[0].cancel()
        return branch_result(ctx)

    engine = WorkflowEngine(fan(2), handlers(cancels))
    engine_box.append(engine)
    result = engine.run()
    assert result.status == "cancelled"
    assert result.trace == ["s", "b1", "b2"]
    assert result.checkpoint is not None
    resumed = engine.run_from_checkpoint(result.checkpoint)
    assert resumed.success
    assert resumed.trace == ["s", *BRANCHES, "j"]


@pytest.mark.parametrize("bad", [0, -1, "2", True, 1.5])
def test_max_concurrency_must_be_a_positive_int(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_concurrency"):
        WorkflowEngine(fan(1, engine_policy={"max_concurrency": bad}), handlers(branch_result))


def test_a_batch_records_step_numbers_and_durations_as_a_serial_run_would() -> None:
    def branch(ctx: WorkflowContext) -> HandlerResult:
        if ctx.node_name == "b3":  # the slow one: CPU work, no sleep
            total = 0
            for i in range(3_000_000):
                total += i
        return HandlerResult(outputs=["ok"], node_updates={"step": ctx.step})

    serial = Recorder()
    WorkflowEngine(fan(1), handlers(branch), event_callback=serial).run()
    rec = Recorder()
    result = WorkflowEngine(fan(5), handlers(branch), event_callback=rec).run()

    def steps(r: Recorder, kind: str) -> list[tuple[str | None, int]]:
        return [(e.node, e.step) for e in r.of(kind)]

    assert steps(rec, "node:start") == steps(serial, "node:start")
    assert steps(rec, "node:end") == steps(serial, "node:end")
    assert steps(rec, "node:start") == steps(rec, "node:end")
    assert {b: result.state.node[b]["step"] for b in BRANCHES} == {
        e.node: e.step for e in rec.of("node:end") if e.node in BRANCHES
    }
    took = {r.node: r.duration_ms for r in result.audit_trail if r.node in BRANCHES}
    assert all(took[b] < took["b3"] for b in BRANCHES if b != "b3"), took
