"""One engine, many threads: runs of the same engine never see each other's data."""

from __future__ import annotations

import threading
from typing import Any

from zeroflow import HandlerResult, InMemoryWorkflowStore, WorkflowContext, WorkflowEngine

LOOP: dict[str, Any] = {
    "workflow_name": "counter",
    "default_entry_node": "count",
    "nodes": {
        "count": {
            "handler": "count",
            "outputs": {
                "again": [{"target_node": "count", "is_loopback": True}],
                "done": [{"target_node": "report"}],
            },
        },
        "report": {"handler": "report", "outputs": {"ok": []}},
    },
}


def count(ctx: WorkflowContext) -> HandlerResult:
    seen = ctx.node_state.get("n", 0) + 1
    limit = ctx.state.input["limit"]
    return HandlerResult(outputs=["again" if seen < limit else "done"], node_updates={"n": seen})


def report(ctx: WorkflowContext) -> HandlerResult:
    total = ctx.state.node["count"]["n"]
    return HandlerResult(outputs=["ok"], workflow_updates={"total": total, "who": ctx.run_id})


def test_threads_driving_different_runs_of_one_engine_keep_their_own_state() -> None:
    store = InMemoryWorkflowStore()
    engine = WorkflowEngine(LOOP, {"count": count, "report": report}, store=store)
    results: dict[str, Any] = {}
    errors: list[BaseException] = []

    def drive(i: int) -> None:
        try:
            results[f"r{i}"] = engine.run({"limit": 20 + i}, run_id=f"r{i}")
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=drive, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for i in range(8):
        result = results[f"r{i}"]
        assert result.success
        assert result.state.workflow == {"total": 20 + i, "who": f"r{i}"}
        assert len(result.trace) == 20 + i + 1
        stored = store.load_snapshot(f"r{i}")
        assert stored.state.workflow == result.state.workflow
        assert stored.trace == result.trace
