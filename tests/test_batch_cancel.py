"""A cancel during a parallel batch keeps the batch's nodes queued once, in order."""

from __future__ import annotations

import asyncio
from typing import Any

from zeroflow import HandlerResult, WorkflowContext, WorkflowEngine

BATCH: dict[str, Any] = {
    "workflow_name": "batch",
    "default_entry_node": "s",
    "engine_policy": {"max_concurrency": 3},
    "nodes": {
        "s": {
            "handler": "ok",
            "outputs": {"ok": [{"target_node": n} for n in ("a", "b", "c")]},
        },
        **{n: {"handler": "slow", "outputs": {"ok": []}} for n in ("a", "b", "c")},
    },
}


def test_cancelling_a_batch_resumes_each_node_once_in_queue_order() -> None:
    hold = {"on": True}

    async def slow(ctx: WorkflowContext) -> HandlerResult:
        while hold["on"]:
            await asyncio.sleep(0.01)
        return HandlerResult(outputs=["ok"])

    engine = WorkflowEngine(BATCH, {"ok": lambda ctx: HandlerResult(outputs=["ok"]), "slow": slow})

    async def scenario() -> tuple[Any, Any]:
        asyncio.get_running_loop().call_later(0.05, engine.cancel)
        cancelled = await engine.arun()
        hold["on"] = False
        assert cancelled.checkpoint is not None
        return cancelled, await engine.arun_from_checkpoint(cancelled.checkpoint)

    cancelled, resumed = asyncio.run(scenario())
    assert cancelled.status == "cancelled"
    assert cancelled.checkpoint.ready_now == ["a", "b", "c"]
    assert resumed.success
    assert resumed.trace[cancelled.checkpoint.step :] == ["a", "b", "c"]
