"""Issue 14: an async handler that swallows its cancellation cannot hang the run.

The node deadline comes from an injected clock the handler moves past; the
grace period (``CANCEL_GRACE_SECONDS``) is made tiny, and the assertions are
about the outcome, not about how long anything took.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from _support import FakeClock, ok
from zeroflow import HandlerResult, WorkflowContext, WorkflowEngine
from zeroflow import _constants as C


@pytest.fixture(autouse=True)
def tiny_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(C, "CANCEL_GRACE_SECONDS", 0.01, raising=False)


def timed_flow() -> dict[str, Any]:
    return {
        "workflow_name": "stubborn",
        "default_entry_node": "a",
        "nodes": {
            "a": {
                "handler": "a",
                "outputs": {"ok": [{"target_node": "b"}]},
                "run_policy": {"timeout_seconds": 5},
                "on_error": [{"target_node": "recover", "codes": ["NODE_TIMEOUT"]}],
            },
            "b": {"handler": "ok", "outputs": {"ok": []}},
            "recover": {"handler": "ok", "outputs": {"ok": []}},
        },
    }


def stubborn(clock: FakeClock, swallowed: list[bool]) -> Any:
    """Moves past its deadline, swallows the cancel, and keeps waiting (until the loop ends)."""

    async def handler(ctx: WorkflowContext) -> HandlerResult:
        clock.now += 60  # past the 5 s node deadline
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            swallowed.append(True)  # ... and goes on as if nothing happened
        await asyncio.Event().wait()
        return HandlerResult(outputs=["ok"])

    return handler


def test_a_handler_that_swallows_cancel_still_times_out_under_arun() -> None:
    clock = FakeClock()
    swallowed: list[bool] = []
    engine = WorkflowEngine(timed_flow(), {"a": stubborn(clock, swallowed), "ok": ok}, clock=clock)

    async def main() -> Any:
        return await asyncio.wait_for(engine.arun(), timeout=10)

    result = asyncio.run(main())
    assert swallowed == [True]
    assert result.success
    assert result.trace == ["a", "recover"]
    assert result.state.workflow["__error__"]["code"] == "NODE_TIMEOUT"


def test_a_handler_that_swallows_cancel_still_times_out_under_sync_run() -> None:
    clock = FakeClock()
    swallowed: list[bool] = []
    engine = WorkflowEngine(timed_flow(), {"a": stubborn(clock, swallowed), "ok": ok}, clock=clock)
    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.append(engine.run()), daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "run() hung on a handler that swallowed its cancellation"
    (result,) = results
    assert swallowed == [True]
    assert result.trace == ["a", "recover"]
    assert result.state.workflow["__error__"]["code"] == "NODE_TIMEOUT"


def test_engine_cancel_ends_the_run_even_if_the_handler_swallows_it() -> None:
    swallowed: list[bool] = []
    box: list[WorkflowEngine] = []

    async def ignores_cancel(ctx: WorkflowContext) -> HandlerResult:
        box[0].cancel()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            swallowed.append(True)
        await asyncio.Event().wait()
        return HandlerResult(outputs=["ok"])

    definition = timed_flow()
    del definition["nodes"]["a"]["run_policy"]
    engine = WorkflowEngine(definition, {"a": ignores_cancel, "ok": ok})
    box.append(engine)

    async def main() -> Any:
        return await asyncio.wait_for(engine.arun(), timeout=10)

    result = asyncio.run(main())
    assert swallowed == [True]
    assert result.status == "cancelled"
    assert result.checkpoint is not None
    assert result.checkpoint.ready_now[0] == "a"


def test_a_handler_that_swallows_every_cancel_cannot_hang_sync_run() -> None:
    clock = FakeClock()
    swallowed: list[bool] = []

    async def never_stops(ctx: WorkflowContext) -> HandlerResult:
        clock.now += 60  # past the 5 s node deadline
        while True:  # every cancel caught, including the event loop's own at its end
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                swallowed.append(True)

    engine = WorkflowEngine(timed_flow(), {"a": never_stops, "ok": ok}, clock=clock)
    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.append(engine.run()), daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "run() hung on a handler that swallows every cancellation"
    (result,) = results
    assert len(swallowed) >= 2
    assert result.trace == ["a", "recover"]
    assert result.state.workflow["__error__"]["code"] == "NODE_TIMEOUT"
