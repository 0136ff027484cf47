"""Issue A: per-node ``timeout_seconds`` — deadlines, late sync handlers, cancelled async ones."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from _support import FakeClock, Recorder, engine_for, ok
from zeroflow import HandlerResult, WorkflowContext, WorkflowEngine

# ---------------------------------------------------------------- helpers


def timed(
    run_policy: dict[str, Any],
    engine_policy: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "workflow_name": "timeouts",
        "default_entry_node": "a",
        "nodes": {
            "a": {
                "handler": "a",
                "outputs": {"ok": [{"target_node": "b"}]},
                "run_policy": run_policy,
                **extra,
            },
            "b": {"handler": "b", "outputs": {"ok": []}},
            "recover": {"handler": "b", "outputs": {"ok": []}},
        },
    }
    if engine_policy:
        definition["engine_policy"] = engine_policy
    return definition


# rng only feeds jitter, which no test here uses; the seed is kept as it was
fake_engine = partial(engine_for, seed=1)


# ---------------------------------------------------------------- deadlines seen by handlers


@pytest.mark.parametrize(
    ("node_timeout", "workflow_timeout", "first"),
    [
        pytest.param(5, 100, 5, id="the-node-deadline-comes-first"),
        pytest.param(50, 10, 10, id="the-workflow-deadline-comes-first"),
    ],
)
def test_ctx_deadline_is_the_node_or_workflow_deadline_whichever_comes_first(
    node_timeout: float, workflow_timeout: float, first: float
) -> None:
    clock = FakeClock()
    seen: list[float | None] = []

    def handler(ctx: WorkflowContext) -> HandlerResult:
        seen.append(ctx.deadline_ts)
        return HandlerResult(outputs=["ok"])

    definition = timed(
        {"timeout_seconds": node_timeout}, {"workflow_timeout_seconds": workflow_timeout}
    )
    start = clock.now
    assert fake_engine(definition, handler, clock).run().success
    assert seen == [start + first]
    assert clock.now == start  # the deadline is measured from the unmoved start


def test_ctx_deadline_is_none_without_any_timeout() -> None:
    clock = FakeClock()
    seen: list[Any] = []

    def handler(ctx: WorkflowContext) -> HandlerResult:
        seen.append((ctx.deadline_ts, ctx.remaining_seconds(), ctx.is_timed_out()))
        return HandlerResult(outputs=["ok"])

    assert fake_engine(timed({}), handler, clock).run().success
    assert seen == [(None, None, False)]


def test_each_attempt_gets_a_fresh_node_deadline() -> None:
    clock = FakeClock()
    seen: list[float | None] = []

    def handler(ctx: WorkflowContext) -> HandlerResult:
        seen.append(ctx.deadline_ts)
        if ctx.attempt < 3:
            raise RuntimeError("again")
        return HandlerResult(outputs=["ok"])

    start = clock.now
    definition = timed({"timeout_seconds": 5, "max_retries": 2, "retry_sleep_seconds": 1})
    assert fake_engine(definition, handler, clock).run().success
    assert seen == [start + 5, start + 6, start + 7]


def test_remaining_seconds_counts_down_to_the_node_deadline_on_the_real_clock() -> None:
    seen: list[Any] = []

    def handler(ctx: WorkflowContext) -> HandlerResult:
        seen.append((ctx.remaining_seconds(), ctx.is_timed_out()))
        return HandlerResult(outputs=["ok"])

    engine = WorkflowEngine(
        timed({"timeout_seconds": 30}, {"workflow_timeout_seconds": 600}), {"a": handler, "b": ok}
    )
    assert engine.run().success
    remaining, timed_out = seen[0]
    assert 25 < remaining <= 30
    assert timed_out is False


def test_remaining_seconds_follows_the_injected_clock() -> None:
    clock = FakeClock()
    seen: list[Any] = []

    def handler(ctx: WorkflowContext) -> HandlerResult:
        clock.now += 2
        seen.append((ctx.remaining_seconds(), ctx.is_timed_out()))
        return HandlerResult(outputs=["ok"])

    assert fake_engine(timed({"timeout_seconds": 5}), handler, clock).run().success
    assert seen == [(3.0, False)]


# ---------------------------------------------------------------- late sync handlers


def test_a_sync_handler_that_returns_late_fails_with_node_timeout() -> None:
    clock, rec = FakeClock(), Recorder()

    def slow(ctx: WorkflowContext) -> HandlerResult:
        clock.now += 10
        return HandlerResult(outputs=["ok"], workflow_updates={"late": True})

    result = fake_engine(timed({"timeout_seconds": 5}), slow, clock, rec).run()
    assert not result.success
    assert result.error is not None
    assert result.error.code == "NODE_TIMEOUT"
    assert result.error.node == "a"
    assert result.error.retryable is True
    assert "late" not in result.state.workflow
    assert result.trace == ["a"]
    assert [r.status for r in result.audit_trail] == ["failed"]
    assert rec.of("node:end") == []
    assert rec.of("node:error")[0].data["error"]["code"] == "NODE_TIMEOUT"


def test_a_handler_that_returns_just_in_time_succeeds() -> None:
    clock = FakeClock()

    def on_time(ctx: WorkflowContext) -> HandlerResult:
        clock.now += 5
        return HandlerResult(outputs=["ok"])

    assert fake_engine(timed({"timeout_seconds": 5}), on_time, clock).run().success


def test_a_late_sync_handler_is_retried_under_the_run_policy() -> None:
    clock, rec = FakeClock(), Recorder()
    durations = iter([10, 10, 1])

    def sometimes_slow(ctx: WorkflowContext) -> HandlerResult:
        clock.now += next(durations)
        return HandlerResult(outputs=["ok"], workflow_updates={"attempt": ctx.attempt})

    definition = timed(
        {"timeout_seconds": 5, "max_retries": 2, "retry_sleep_seconds": 1, "backoff": "exponential"}
    )
    result = fake_engine(definition, sometimes_slow, clock, rec).run()
    assert result.success
    assert result.state.workflow["attempt"] == 3
    assert clock.sleeps == [1.0, 2.0]
    assert all("NODE_TIMEOUT" in e.data["error"] for e in rec.of("node:retry"))


def test_node_timeout_retries_honour_retry_on() -> None:
    """A late return counts as a NodeTimeoutError (a TimeoutError) for retry_on."""
    for retry_on, succeeds in ((["TimeoutError"], True), (["KeyError"], False)):
        clock = FakeClock()
        durations = iter([10, 1])

        def slow_once(ctx: WorkflowContext, durations: Any = durations, clock: Any = clock) -> Any:
            clock.now += next(durations)
            return HandlerResult(outputs=["ok"])

        definition = timed(
            {"timeout_seconds": 5, "max_retries": 1, "retry_sleep_seconds": 0, "retry_on": retry_on}
        )
        result = fake_engine(definition, slow_once, clock).run()
        assert result.success is succeeds
        if not succeeds:
            assert result.error is not None and result.error.code == "NODE_TIMEOUT"


def test_a_node_timeout_is_caught_by_an_on_error_catcher() -> None:
    clock = FakeClock()

    def slow(ctx: WorkflowContext) -> HandlerResult:
        clock.now += 10
        return HandlerResult(outputs=["ok"])

    definition = timed(
        {"timeout_seconds": 1},
        on_error=[{"target_node": "recover", "codes": ["NODE_TIMEOUT"]}],
    )
    result = fake_engine(definition, slow, clock).run()
    assert result.success
    assert result.trace == ["a", "recover"]
    assert result.state.workflow["__error__"]["code"] == "NODE_TIMEOUT"


def test_a_node_timeout_does_not_end_the_workflow_deadline() -> None:
    clock = FakeClock()

    def slow(ctx: WorkflowContext) -> HandlerResult:
        clock.now += 3
        return HandlerResult(outputs=["ok"])

    definition = timed({"timeout_seconds": 1}, {"workflow_timeout_seconds": 1000})
    result = fake_engine(definition, slow, clock).run()
    assert result.error is not None and result.error.code == "NODE_TIMEOUT"


# ---------------------------------------------------------------- async handlers


def hangs_until_cancelled(cancelled: list[bool], seconds: float) -> Callable[..., Any]:
    """An async handler that sleeps ``seconds`` and notes in ``cancelled`` if it was cancelled."""

    async def hangs(ctx: WorkflowContext) -> HandlerResult:
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return HandlerResult(outputs=["ok"])

    return hangs


def test_an_async_handler_is_cancelled_at_its_node_deadline_under_arun() -> None:
    cancelled: list[bool] = []
    hangs = hangs_until_cancelled(cancelled, 30)
    engine = WorkflowEngine(timed({"timeout_seconds": 0.05}), {"a": hangs, "b": ok})
    started = time.monotonic()
    result = asyncio.run(engine.arun())
    assert time.monotonic() - started < 10
    assert cancelled == [True]
    assert result.error is not None
    assert result.error.code == "NODE_TIMEOUT"
    assert result.error.retryable is True


def test_an_async_handler_is_cancelled_at_its_node_deadline_under_sync_run() -> None:
    cancelled: list[bool] = []
    hangs = hangs_until_cancelled(cancelled, 30)
    engine = WorkflowEngine(timed({"timeout_seconds": 0.05}), {"a": hangs, "b": ok})
    result = engine.run()
    assert cancelled == [True]
    assert result.error is not None and result.error.code == "NODE_TIMEOUT"


def test_a_cancelled_async_attempt_is_retried_and_can_then_succeed() -> None:
    async def slow_first(ctx: WorkflowContext) -> HandlerResult:
        if ctx.attempt == 1:
            await asyncio.sleep(30)
        return HandlerResult(outputs=["ok"], workflow_updates={"attempt": ctx.attempt})

    rec = Recorder()
    engine = WorkflowEngine(
        timed({"timeout_seconds": 0.05, "max_retries": 1, "retry_sleep_seconds": 0}),
        {"a": slow_first, "b": ok},
        event_callback=rec,
    )
    result = asyncio.run(engine.arun())
    assert result.success
    assert result.state.workflow["attempt"] == 2
    assert result.trace == ["a", "b"]
    assert [e.data["attempt"] for e in rec.of("node:retry")] == [1]


def test_an_async_handler_that_finishes_in_time_is_not_cancelled() -> None:
    async def quick(ctx: WorkflowContext) -> HandlerResult:
        await asyncio.sleep(0)
        return HandlerResult(outputs=["ok"])

    engine = WorkflowEngine(timed({"timeout_seconds": 5}), {"a": quick, "b": ok})
    assert asyncio.run(engine.arun()).success


def test_an_async_timeout_is_not_mistaken_for_a_handler_raising_timeout_error() -> None:
    async def raises_timeout(ctx: WorkflowContext) -> HandlerResult:
        raise TimeoutError("upstream timed out")

    engine = WorkflowEngine(timed({"timeout_seconds": 5}), {"a": raises_timeout, "b": ok})
    result = asyncio.run(engine.arun())
    assert result.error is not None
    assert result.error.code == "HANDLER_EXCEPTION"
    assert result.error.cause_type == "TimeoutError"


def test_an_async_handler_is_cancelled_at_the_workflow_deadline_when_it_comes_first() -> None:
    cancelled: list[bool] = []
    slow = hangs_until_cancelled(cancelled, 1.0)
    definition = timed({"timeout_seconds": 30}, {"workflow_timeout_seconds": 0.1})
    result = asyncio.run(WorkflowEngine(definition, {"a": slow, "b": ok}).arun())
    assert cancelled == [True]
    assert not result.success
