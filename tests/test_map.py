"""Issue B: ``map`` fan-out — per-item calls, ordered results, tolerated failures, resumable."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from _support import Recorder
from zeroflow import (
    HandlerResult,
    InMemoryWorkflowStore,
    JsonFileWorkflowStore,
    WorkflowContext,
    WorkflowEngine,
)
from zeroflow.stores import SqliteWorkflowStore


def mapping(over: str = "input.items", **spec: Any) -> dict[str, Any]:
    """``each`` maps handler ``item`` over ``over``, then ``after`` runs."""
    return {
        "workflow_name": "map",
        "default_entry_node": "each",
        "nodes": {
            "each": {
                "handler": "item",
                "map": {"over": over, **spec},
                "outputs": {"ok": [{"target_node": "after"}]},
            },
            "after": {"handler": "after", "outputs": {"ok": []}},
            "err": {"handler": "after", "outputs": {"ok": []}},
        },
    }


def after(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(
        outputs=["ok"], workflow_updates={"collected": ctx.state.node["each"]["results"]}
    )


def square(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(
        outputs=["ok"], node_updates={"i": ctx.map_index, "square": ctx.item * ctx.item}
    )


def engine(definition: dict[str, Any], item: Callable[..., Any], **kwargs: Any) -> WorkflowEngine:
    return WorkflowEngine(definition, {"item": item, "after": after}, **kwargs)


# ---------------------------------------------------------------- results


def test_the_handler_runs_once_per_item_and_results_keep_item_order() -> None:
    rec = Recorder()
    result = engine(mapping(), square, event_callback=rec).run({"items": [3, 1, 2]})
    assert result.success
    assert result.trace == ["each", "after"]
    assert result.state.node["each"] == {
        "results": [{"i": 0, "square": 9}, {"i": 1, "square": 1}, {"i": 2, "square": 4}],
        "errors": [],
    }
    assert result.state.workflow["collected"][0] == {"i": 0, "square": 9}
    assert [e.node for e in rec.of("node:start")] == ["each", "after"]
    assert [e.data["outputs"] for e in rec.of("node:end")] == [["ok"], ["ok"]]


def test_items_can_come_from_workflow_or_node_state() -> None:
    definition = mapping("node.load.rows")
    definition["default_entry_node"] = "load"
    definition["nodes"]["load"] = {"handler": "load", "outputs": {"ok": [{"target_node": "each"}]}}

    def load(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(outputs=["ok"], node_updates={"rows": [2, 4]})

    result = WorkflowEngine(definition, {"item": square, "after": after, "load": load}).run()
    assert [r["square"] for r in result.state.node["each"]["results"]] == [4, 16]

    by_workflow = engine(mapping("workflow.todo"), square)
    assert by_workflow.run().status == "failed"


def test_an_empty_list_maps_to_empty_results() -> None:
    result = engine(mapping(), square).run({"items": []})
    assert result.success
    assert result.state.node["each"] == {"results": [], "errors": []}


def test_items_of_any_json_type_reach_ctx_item() -> None:
    seen: list[Any] = []
    lock = threading.Lock()

    def spy(ctx: WorkflowContext) -> HandlerResult:
        with lock:
            seen.append((ctx.map_index, ctx.item))
        return HandlerResult(outputs=["ok"])

    items = [{"a": [1, 2]}, "x", None, 2.5, [True]]
    result = engine(mapping(), spy).run({"items": items})
    assert result.success
    assert sorted(seen, key=lambda p: p[0]) == list(enumerate(items))
    assert result.state.node["each"]["results"] == [None] * 5


def test_a_handler_sees_the_state_as_of_map_start() -> None:
    def peeks(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(
            outputs=["ok"], node_updates={"seen": dict(ctx.state.node.get("each", {}))}
        )

    result = engine(mapping(), peeks).run({"items": [1, 2, 3]})
    assert [r["seen"] for r in result.state.node["each"]["results"]] == [{}, {}, {}]


# ---------------------------------------------------------------- failures


def fails_on(*bad: int) -> Callable[..., Any]:
    def handler(ctx: WorkflowContext) -> HandlerResult:
        if ctx.map_index in bad:
            raise ValueError(f"bad item {ctx.item}")
        return square(ctx)

    return handler


def test_tolerated_failures_leave_none_slots_and_list_errors() -> None:
    result = engine(mapping(tolerated_failures=2), fails_on(1, 3)).run({"items": [1, 2, 3, 4]})
    assert result.success
    state = result.state.node["each"]
    assert state["results"] == [{"i": 0, "square": 1}, None, {"i": 2, "square": 9}, None]
    assert [e["index"] for e in state["errors"]] == [1, 3]
    assert state["errors"][0]["error"]["code"] == "HANDLER_EXCEPTION"
    assert state["errors"][0]["error"]["cause_type"] == "ValueError"
    assert state["errors"][0]["error"]["message"] == "bad item 2"
    assert result.trace == ["each", "after"]


def test_more_failures_than_tolerated_fail_the_node_with_map_failed() -> None:
    rec = Recorder()
    result = engine(mapping(tolerated_failures=1), fails_on(0, 2), event_callback=rec).run(
        {"items": [1, 2, 3]}
    )
    assert result.status == "failed"
    error = result.error
    assert error is not None
    assert error.code == "MAP_FAILED"
    assert error.node == "each"
    assert [e["index"] for e in error.details["errors"]] == [0, 2]
    assert error.details["results"] == [None, {"i": 1, "square": 4}, None]
    assert "each" not in result.state.node
    assert rec.of("node:error")[0].data["error"]["code"] == "MAP_FAILED"


def test_zero_tolerated_failures_is_the_default() -> None:
    result = engine(mapping(), fails_on(2)).run({"items": [1, 2, 3]})
    assert result.error is not None and result.error.code == "MAP_FAILED"


def test_map_failed_can_be_caught() -> None:
    definition = mapping()
    definition["nodes"]["each"]["on_error"] = [{"target_node": "err", "codes": ["MAP_FAILED"]}]
    result = engine(definition, fails_on(0)).run({"items": [1]})
    assert result.trace == ["each", "err"]


@pytest.mark.parametrize(
    ("items", "found"),
    [
        (None, "nothing"),
        ({"a": 1}, "dict"),
        ("abc", "str"),
        (3, "int"),
    ],
)
def test_a_missing_or_non_list_path_fails_with_map_input(items: Any, found: str) -> None:
    calls: list[int] = []

    def never(ctx: WorkflowContext) -> HandlerResult:
        calls.append(1)
        return HandlerResult(outputs=["ok"])

    run_input = {} if items is None else {"items": items}
    result = engine(mapping(), never).run(run_input)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.code == "MAP_INPUT"
    assert "input.items" in result.error.message
    assert found in result.error.message
    assert calls == []


def test_per_item_retries_follow_the_run_policy() -> None:
    attempts: dict[int, int] = {}
    lock = threading.Lock()

    def flaky(ctx: WorkflowContext) -> HandlerResult:
        with lock:
            attempts[ctx.map_index] = attempts.get(ctx.map_index, 0) + 1
        if ctx.map_index == 1 and ctx.attempt < 3:
            raise ConnectionError("flaky")
        return square(ctx)

    definition = mapping()
    definition["nodes"]["each"]["run_policy"] = {
        "max_retries": 2,
        "retry_sleep_seconds": 1,
        "backoff": "exponential",
    }
    slept: list[float] = []
    rec = Recorder()
    result = engine(definition, flaky, sleep=slept.append, event_callback=rec).run(
        {"items": [1, 2, 3]}
    )
    assert result.success
    assert attempts == {0: 1, 1: 3, 2: 1}
    assert slept == [1.0, 2.0]
    assert [e.data["attempt"] for e in rec.of("node:retry")] == [1, 2]
    assert result.state.node["each"]["errors"] == []


def test_a_returned_error_fails_only_its_item() -> None:
    from zeroflow import WorkflowError

    def picky(ctx: WorkflowContext) -> HandlerResult:
        if ctx.item < 0:
            return HandlerResult(outputs=[], error=WorkflowError("NEGATIVE", "no", "each"))
        return square(ctx)

    result = engine(mapping(tolerated_failures=1), picky).run({"items": [1, -1]})
    assert result.success
    assert result.state.node["each"]["errors"][0]["error"]["code"] == "NEGATIVE"


# ---------------------------------------------------------------- concurrency


def test_items_run_k_at_a_time() -> None:
    barrier = threading.Barrier(3, timeout=5)
    lock = threading.Lock()
    live = {"now": 0, "max": 0}

    def together(ctx: WorkflowContext) -> HandlerResult:
        with lock:
            live["now"] += 1
            live["max"] = max(live["max"], live["now"])
        barrier.wait()
        with lock:
            live["now"] -= 1
        return square(ctx)

    result = engine(mapping(max_concurrency=3), together).run({"items": list(range(9))})
    assert result.success, result.error
    assert live["max"] == 3
    assert [r["square"] for r in result.state.node["each"]["results"]] == [i * i for i in range(9)]


def test_async_items_run_together_under_arun() -> None:
    started: list[int] = []

    async def together(ctx: WorkflowContext) -> HandlerResult:
        started.append(ctx.map_index)
        for _ in range(200):
            if len(started) >= 4:
                break
            await asyncio.sleep(0.01)
        else:
            raise RuntimeError("items did not run together")
        return square(ctx)

    result = asyncio.run(engine(mapping(max_concurrency=4), together).arun({"items": [1, 2, 3, 4]}))
    assert result.success, result.error
    assert [r["square"] for r in result.state.node["each"]["results"]] == [1, 4, 9, 16]


def test_map_results_are_identical_whatever_order_items_finish() -> None:
    outcomes = []
    for seed in range(8):
        rng = random.Random(seed)
        delays = [rng.uniform(0, 0.003) for _ in range(8)]

        def jittery(ctx: WorkflowContext, delays: list[float] = delays) -> HandlerResult:
            time.sleep(delays[ctx.map_index])
            if ctx.map_index == 5:
                raise ValueError("five")
            return square(ctx)

        result = engine(mapping(max_concurrency=4, tolerated_failures=1), jittery).run(
            {"items": list(range(8))}, run_id="same"
        )
        outcomes.append((result.trace, result.state.node, [r.outputs for r in result.audit_trail]))
    assert all(o == outcomes[0] for o in outcomes[1:])


# ---------------------------------------------------------------- resumable


def test_cancel_mid_map_resumes_only_the_unfinished_items() -> None:
    store = InMemoryWorkflowStore()
    calls: list[int] = []
    engine_box: list[WorkflowEngine] = []

    def cancels_at_three(ctx: WorkflowContext) -> HandlerResult:
        calls.append(ctx.map_index)
        if ctx.map_index == 3 and len(calls) == 4:
            engine_box[0].cancel()
        return square(ctx)

    eng = engine(mapping(), cancels_at_three, store=store)
    engine_box.append(eng)
    cancelled = eng.run({"items": list(range(8))}, run_id="m")
    assert cancelled.status == "cancelled"
    assert calls == [0, 1, 2, 3]
    assert store.load_snapshot("m").status == "cancelled"

    calls.clear()
    result = eng.run_from_checkpoint(store.load_snapshot("m"))
    assert result.success
    assert calls == [4, 5, 6, 7]
    assert [r["square"] for r in result.state.node["each"]["results"]] == [i * i for i in range(8)]
    assert result.trace == ["each", "each", "after"]


@pytest.mark.parametrize("kind", ["json", "sqlite"])
def test_each_finished_item_is_checkpointed_to_a_durable_store(kind: str, tmp_path: Path) -> None:
    store: Any = (
        JsonFileWorkflowStore(tmp_path / "runs")
        if kind == "json"
        else SqliteWorkflowStore(tmp_path / "runs.sqlite")
    )
    seen_progress: list[int] = []

    def peeks_at_store(ctx: WorkflowContext) -> HandlerResult:
        snap = store.load_snapshot("p")
        progress = snap.extra.get("map", {}).get("each", {}).get("results", {})
        seen_progress.append(len(progress))
        return square(ctx)

    engine(mapping(), peeks_at_store, store=store).run({"items": [1, 2, 3, 4]}, run_id="p")
    assert seen_progress == [0, 1, 2, 3]


def test_the_in_memory_store_gets_map_progress_with_the_nodes_checkpoint_only() -> None:
    """Progress held in this process's memory cannot outlive a crash: no per-item writes."""
    store = InMemoryWorkflowStore()
    seen_progress: list[int] = []

    def peeks_at_store(ctx: WorkflowContext) -> HandlerResult:
        snap = store.load_snapshot("p")
        seen_progress.append(len(snap.extra.get("map", {}).get("each", {}).get("results", {})))
        return square(ctx)

    result = engine(mapping(), peeks_at_store, store=store).run({"items": [1, 2, 3]}, run_id="p")
    assert seen_progress == [0, 0, 0]
    assert [r["square"] for r in result.state.node["each"]["results"]] == [1, 4, 9]


def test_cancel_mid_chunk_keeps_the_items_that_already_finished() -> None:
    store = InMemoryWorkflowStore()
    calls: list[int] = []
    hang = {"on": True}

    async def item(ctx: WorkflowContext) -> HandlerResult:
        calls.append(ctx.map_index)
        if ctx.map_index == 0 and hang["on"]:
            await asyncio.sleep(30)
        return square(ctx)

    eng = engine(mapping(max_concurrency=4), item, store=store)

    async def main() -> Any:
        task = asyncio.ensure_future(eng.arun({"items": [1, 2, 3, 4]}, run_id="c"))
        await asyncio.sleep(0.1)
        eng.cancel()
        first = await task
        assert first.status == "cancelled"
        hang["on"] = False
        calls.clear()
        return await eng.arun_from_checkpoint(store.load_snapshot("c"))

    result = asyncio.run(main())
    assert result.success
    assert calls == [0]


CRASHING_CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    from pathlib import Path
    from zeroflow import HandlerResult, JsonFileWorkflowStore, WorkflowEngine
    from zeroflow.stores import SqliteWorkflowStore

    kind, path, definition, log = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
    size, kill_at = int(sys.argv[5]), int(sys.argv[6])
    store = JsonFileWorkflowStore(path) if kind == "json" else SqliteWorkflowStore(path)

    def item(ctx):
        with open(log, "a") as fh:
            fh.write(f"child {ctx.map_index}\\n")
        if ctx.map_index == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return HandlerResult(outputs=["ok"], node_updates={"square": ctx.item * ctx.item})

    def after(ctx):
        return HandlerResult(outputs=["ok"])

    WorkflowEngine(definition, {"item": item, "after": after}, store=store).run(
        {"items": list(range(size))}, run_id="crash"
    )
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.parametrize("kind", ["json", "sqlite"])
def test_a_killed_process_mid_map_reruns_only_the_item_in_flight(kind: str, tmp_path: Path) -> None:
    size, kill_at = 1000, 637
    path = tmp_path / ("runs" if kind == "json" else "runs.db")
    log = tmp_path / "calls.log"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    argv = [kind, str(path), json.dumps(mapping()), str(log), str(size), str(kill_at)]
    proc = subprocess.run(
        [sys.executable, "-c", CRASHING_CHILD, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert log.read_text().split("\n")[:-1] == [f"child {i}" for i in range(kill_at + 1)]

    store = JsonFileWorkflowStore(path) if kind == "json" else SqliteWorkflowStore(path)
    snap = store.load_snapshot("crash")
    assert snap.status == "running"
    store.break_lease("crash")
    calls: list[int] = []

    def item(ctx: WorkflowContext) -> HandlerResult:
        calls.append(ctx.map_index)
        return HandlerResult(outputs=["ok"], node_updates={"square": ctx.item * ctx.item})

    result = engine(mapping(), item, store=store).run_from_checkpoint(snap)
    assert result.success
    assert calls == list(range(kill_at, size))  # the finished items did not run again
    assert result.state.node["each"]["results"] == [{"square": i * i} for i in range(size)]
    assert store.load_snapshot("crash").status == "succeeded"


def test_a_cancel_mid_map_of_a_thousand_items_resumes_with_the_rest_only() -> None:
    store = InMemoryWorkflowStore()
    calls: list[int] = []
    box: list[WorkflowEngine] = []

    def item(ctx: WorkflowContext) -> HandlerResult:
        calls.append(ctx.map_index)
        if ctx.map_index == 500 and len(calls) == 501:
            box[0].cancel()
        return HandlerResult(outputs=["ok"], node_updates={"square": ctx.item * ctx.item})

    box.append(engine(mapping(), item, store=store))
    cancelled = box[0].run({"items": list(range(1000))}, run_id="big")
    assert cancelled.status == "cancelled"
    assert calls == list(range(501))
    calls.clear()
    result = box[0].run_from_checkpoint(store.load_snapshot("big"))
    assert result.success
    assert calls == list(range(501, 1000))
    assert result.state.node["each"]["results"] == [{"square": i * i} for i in range(1000)]


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("input.items", "map must be a dict"),
        ({}, "map.over"),
        ({"over": "items"}, "map.over"),
        ({"over": "state.items"}, "map.over"),
        ({"over": "input."}, "map.over"),
        ({"over": "input.items", "max_concurrency": 0}, "map.max_concurrency"),
        ({"over": "input.items", "max_concurrency": "2"}, "map.max_concurrency"),
        ({"over": "input.items", "tolerated_failures": -1}, "map.tolerated_failures"),
        ({"over": "input.items", "tolerated_failures": 1.5}, "map.tolerated_failures"),
    ],
)
def test_bad_map_specs_are_rejected_naming_the_node_and_key(spec: Any, fragment: str) -> None:
    definition = mapping()
    definition["nodes"]["each"]["map"] = spec
    with pytest.raises(ValueError) as info:
        engine(definition, square)
    assert "node 'each'" in str(info.value)
    assert fragment in str(info.value)
