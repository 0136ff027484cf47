"""Issue B: async handlers under ``arun`` and ``run``, cancellation, async resume and redrive."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from _support import Recorder
from zeroflow import HandlerResult, InMemoryWorkflowStore, WorkflowContext, WorkflowEngine


def chain(*names: str, **top: Any) -> dict[str, Any]:
    nodes = {
        n: {
            "handler": n,
            "outputs": {"ok": [{"target_node": names[i + 1]}] if i + 1 < len(names) else []},
        }
        for i, n in enumerate(names)
    }
    return {"workflow_name": "async", "default_entry_node": names[0], "nodes": nodes, **top}


async def async_step(ctx: WorkflowContext) -> HandlerResult:
    await asyncio.sleep(0)
    seen = [*ctx.state.workflow.get("seen", []), f"async:{ctx.node_name}"]
    return HandlerResult(outputs=["ok"], workflow_updates={"seen": seen})


def sync_step(ctx: WorkflowContext) -> HandlerResult:
    seen = [*ctx.state.workflow.get("seen", []), f"sync:{ctx.node_name}"]
    return HandlerResult(outputs=["ok"], workflow_updates={"seen": seen})


def test_arun_accepts_async_and_plain_handlers() -> None:
    engine = WorkflowEngine(
        chain("a", "b", "c"), {"a": async_step, "b": sync_step, "c": async_step}
    )
    result = asyncio.run(engine.arun({"x": 1}))
    assert result.success
    assert result.trace == ["a", "b", "c"]
    assert result.state.workflow["seen"] == ["async:a", "sync:b", "async:c"]
    assert result.state.input == {"x": 1}


def test_arun_and_run_give_the_same_result() -> None:
    handlers = {"a": async_step, "b": sync_step, "c": async_step}
    ids = iter(["r", "r"])
    engine = WorkflowEngine(chain("a", "b", "c"), handlers, run_id_factory=ids.__next__)
    from_async = asyncio.run(engine.arun())
    from_sync = engine.run()
    assert from_async.trace == from_sync.trace
    assert from_async.state == from_sync.state
    assert [(r.node, r.status, r.outputs) for r in from_async.audit_trail] == [
        (r.node, r.status, r.outputs) for r in from_sync.audit_trail
    ]


def test_sync_run_drives_an_async_handler_when_no_loop_is_running() -> None:
    engine = WorkflowEngine(chain("a", "b"), {"a": async_step, "b": async_step})
    result = engine.run()
    assert result.success
    assert result.state.workflow["seen"] == ["async:a", "async:b"]


def test_sync_run_inside_a_running_loop_is_refused_pointing_to_arun() -> None:
    store = InMemoryWorkflowStore()
    engine = WorkflowEngine(chain("a", "b"), {"a": async_step, "b": sync_step}, store=store)

    async def main() -> Any:
        return engine.run(run_id="inside")

    with pytest.raises(RuntimeError) as info:
        asyncio.run(main())
    message = str(info.value)
    assert "(a)" in message
    assert "running event loop" in message
    assert "engine.arun(" in message
    assert store.list_metadata() == []


def test_a_plain_handler_returning_a_coroutine_inside_a_loop_fails_its_node() -> None:
    """Undetectable up front: the node fails and the message points to arun()."""

    def sneaky(ctx: WorkflowContext) -> Any:
        return async_step(ctx)

    engine = WorkflowEngine(chain("a", "b"), {"a": sneaky, "b": sync_step})

    async def main() -> Any:
        return engine.run()

    result = asyncio.run(main())
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.node == "a"
    assert result.error.code == "HANDLER_EXCEPTION"
    assert result.error.cause_type == "RuntimeError"
    assert "arun" in result.error.message
    assert "running event loop" in result.error.message


def test_a_plain_handler_returning_a_coroutine_is_awaited_by_sync_run() -> None:
    def sneaky(ctx: WorkflowContext) -> Any:
        return async_step(ctx)

    assert WorkflowEngine(chain("a"), {"a": sneaky}).run().success


def test_sync_run_inside_a_running_loop_still_runs_plain_handlers() -> None:
    engine = WorkflowEngine(chain("a", "b"), {"a": sync_step, "b": sync_step})

    async def main() -> Any:
        return engine.run()

    assert asyncio.run(main()).success


def test_an_async_handler_can_emit_custom_events() -> None:
    async def talks(ctx: WorkflowContext) -> HandlerResult:
        ctx.emit("progress", {"pct": 50})
        await asyncio.sleep(0)
        ctx.emit("progress", {"pct": 100})
        return HandlerResult(outputs=["ok"])

    rec = Recorder()
    engine = WorkflowEngine(chain("a"), {"a": talks}, event_callback=rec)
    asyncio.run(engine.arun())
    assert [e.data for e in rec.of("progress")] == [
        {"pct": 50, "node": "a"},
        {"pct": 100, "node": "a"},
    ]


def test_an_async_handler_exception_is_a_handler_exception_and_is_retried() -> None:
    calls = {"n": 0}

    async def flaky(ctx: WorkflowContext) -> HandlerResult:
        calls["n"] += 1
        await asyncio.sleep(0)
        if calls["n"] < 3:
            raise ConnectionError("try again")
        return HandlerResult(outputs=["ok"])

    definition = chain("a")
    definition["nodes"]["a"]["run_policy"] = {"max_retries": 2, "retry_sleep_seconds": 7}
    slept: list[float] = []
    engine = WorkflowEngine(definition, {"a": flaky}, sleep=slept.append)
    assert asyncio.run(engine.arun()).success
    assert slept == [7.0, 7.0]

    calls["n"] = -10
    failed = asyncio.run(engine.arun())
    assert failed.error is not None
    assert failed.error.code == "HANDLER_EXCEPTION"
    assert failed.error.cause_type == "ConnectionError"


def test_cancel_interrupts_a_running_async_handler_under_arun() -> None:
    cancelled_inside: list[bool] = []
    engine_box: list[WorkflowEngine] = []

    async def hangs(ctx: WorkflowContext) -> HandlerResult:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled_inside.append(True)
            raise
        return HandlerResult(outputs=["ok"])

    engine = WorkflowEngine(chain("a", "b"), {"a": hangs, "b": sync_step})
    engine_box.append(engine)

    async def main() -> Any:
        task = asyncio.ensure_future(engine.arun())
        await asyncio.sleep(0.05)
        engine.cancel()
        return await task

    started = time.monotonic()
    result = asyncio.run(main())
    assert time.monotonic() - started < 10
    assert result.status == "cancelled"
    assert result.cancelled
    assert cancelled_inside == [True]
    assert result.checkpoint is not None
    assert result.checkpoint.ready_now[0] == "a"
    assert [r.status for r in result.audit_trail] == []


def test_cancel_from_another_thread_interrupts_an_async_handler_under_sync_run() -> None:
    cancelled_inside: list[bool] = []

    async def hangs(ctx: WorkflowContext) -> HandlerResult:
        try:
            await asyncio.sleep(2)
        except asyncio.CancelledError:
            cancelled_inside.append(True)
            raise
        return HandlerResult(outputs=["ok"])

    engine = WorkflowEngine(chain("a", "b"), {"a": hangs, "b": sync_step})
    timer = threading.Timer(0.05, engine.cancel)
    timer.start()
    started = time.monotonic()
    try:
        result = engine.run()
    finally:
        timer.cancel()
    assert result.status == "cancelled"
    assert cancelled_inside == [True]
    assert time.monotonic() - started < 1.5


def test_a_cancelled_async_run_resumes_with_arun_from_checkpoint() -> None:
    release = {"hang": True}

    async def maybe_hangs(ctx: WorkflowContext) -> HandlerResult:
        if release["hang"]:
            await asyncio.sleep(30)
        return HandlerResult(outputs=["ok"], workflow_updates={"done": True})

    engine = WorkflowEngine(chain("a", "b"), {"a": maybe_hangs, "b": async_step})

    async def main() -> Any:
        task = asyncio.ensure_future(engine.arun())
        await asyncio.sleep(0.05)
        engine.cancel()
        cancelled = await task
        release["hang"] = False
        return await engine.arun_from_checkpoint(cancelled.checkpoint)

    result = asyncio.run(main())
    assert result.success
    assert result.trace == ["a", "a", "b"]
    assert [(r.node, r.status) for r in result.audit_trail] == [
        ("a", "succeeded"),
        ("b", "succeeded"),
    ]
    assert result.state.workflow["done"] is True


def test_arun_from_checkpoint_resumes_a_waiting_async_handler() -> None:
    async def asks(ctx: WorkflowContext) -> HandlerResult:
        answer = ctx.state.workflow.get("__resume__")
        if answer is None:
            return HandlerResult(outputs=[], waiting=True, waiting_prompt="name?")
        return HandlerResult(outputs=["ok"], workflow_updates={"name": answer})

    engine = WorkflowEngine(chain("a", "b"), {"a": asks, "b": async_step})

    async def main() -> Any:
        paused = await engine.arun()
        assert paused.waiting and paused.waiting_prompt == "name?"
        return await engine.arun_from_checkpoint(paused.checkpoint, resume_input="Ada")

    result = asyncio.run(main())
    assert result.success
    assert result.state.workflow["name"] == "Ada"


def test_aresume_loads_leases_and_saves_through_the_store() -> None:
    async def asks(ctx: WorkflowContext) -> HandlerResult:
        if "__resume__" not in ctx.state.workflow:
            return HandlerResult(outputs=[], waiting=True, waiting_prompt="?")
        return HandlerResult(outputs=["ok"])

    store = InMemoryWorkflowStore()
    engine = WorkflowEngine(chain("a", "b"), {"a": asks, "b": async_step}, store=store)

    async def main() -> Any:
        await engine.arun(run_id="w")
        return await engine.aresume("w", resume_input=True)

    assert asyncio.run(main()).success
    assert store.load_snapshot("w").status == "succeeded"


def test_aredrive_continues_a_failed_async_run() -> None:
    broken = {"on": True}
    calls: list[str] = []

    async def flaky(ctx: WorkflowContext) -> HandlerResult:
        calls.append(ctx.node_name)
        if broken["on"]:
            raise RuntimeError("down")
        return HandlerResult(outputs=["ok"])

    async def counted(ctx: WorkflowContext) -> HandlerResult:
        calls.append(ctx.node_name)
        return HandlerResult(outputs=["ok"])

    store = InMemoryWorkflowStore()
    engine = WorkflowEngine(
        chain("a", "b", "c"), {"a": counted, "b": flaky, "c": counted}, store=store
    )

    async def main() -> Any:
        failed = await engine.arun(run_id="f")
        assert failed.status == "failed"
        broken["on"] = False
        return await engine.aredrive("f")

    result = asyncio.run(main())
    assert result.success
    assert calls == ["a", "b", "b", "c"]
    assert store.load_snapshot("f").status == "succeeded"


def test_an_async_handler_returning_a_non_result_is_reported() -> None:
    async def wrong(ctx: WorkflowContext) -> Any:
        return {"outputs": ["ok"]}

    result = asyncio.run(WorkflowEngine(chain("a"), {"a": wrong}).arun())
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.code == "INVALID_HANDLER_RESULT"


def test_two_runs_of_one_engine_can_share_an_event_loop() -> None:
    async def slow(ctx: WorkflowContext) -> HandlerResult:
        await asyncio.sleep(0.02)
        return HandlerResult(outputs=["ok"], workflow_updates={"who": ctx.state.input["who"]})

    engine = WorkflowEngine(chain("a", "b"), {"a": slow, "b": slow})

    async def main() -> Any:
        return await asyncio.gather(engine.arun({"who": 1}), engine.arun({"who": 2}))

    first, second = asyncio.run(main())
    assert first.success and second.success
    assert first.state.workflow["who"] == 1
    assert second.state.workflow["who"] == 2
