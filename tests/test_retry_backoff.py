"""Issue A: backoff, jitter, retry_on and retryable returned errors, on a fake clock."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from _support import FakeClock, Recorder, engine_for, ok
from zeroflow import HandlerResult, WorkflowContext, WorkflowEngine, WorkflowError

# ---------------------------------------------------------------- helpers


def one_node(**run_policy: Any) -> dict[str, Any]:
    """Node ``a`` (handler ``a``) with ``run_policy``, leading to ``b``."""
    return {
        "workflow_name": "retry",
        "default_entry_node": "a",
        "nodes": {
            "a": {
                "handler": "a",
                "outputs": {"ok": [{"target_node": "b"}]},
                "run_policy": run_policy,
            },
            "b": {"handler": "b", "outputs": {"ok": []}},
        },
    }


def failing(times: int, exc: Callable[[], Exception]) -> Callable[[WorkflowContext], HandlerResult]:
    """Raise ``exc()`` on the first ``times`` calls, then succeed."""
    calls = {"n": 0}

    def handler(ctx: WorkflowContext) -> HandlerResult:
        calls["n"] += 1
        if calls["n"] <= times:
            raise exc()
        return HandlerResult(outputs=["ok"], workflow_updates={"attempts": calls["n"]})

    return handler


def boom() -> Exception:
    return RuntimeError("boom")


# ---------------------------------------------------------------- backoff


def test_fixed_backoff_is_the_default_and_waits_the_same_each_time() -> None:
    clock, rec = FakeClock(), Recorder()
    definition = one_node(max_retries=3, retry_sleep_seconds=0.5)
    result = engine_for(definition, failing(3, boom), clock, rec).run()
    assert result.success
    assert result.state.workflow["attempts"] == 4
    assert clock.sleeps == [0.5, 0.5, 0.5]
    assert [e.data["delay_seconds"] for e in rec.of("node:retry")] == [0.5, 0.5, 0.5]


def test_exponential_backoff_doubles_by_default() -> None:
    clock, rec = FakeClock(), Recorder()
    definition = one_node(max_retries=4, retry_sleep_seconds=1.0, backoff="exponential")
    result = engine_for(definition, failing(4, boom), clock, rec).run()
    assert result.success
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0]
    retries = rec.of("node:retry")
    assert [e.data["delay_seconds"] for e in retries] == [1.0, 2.0, 4.0, 8.0]
    assert [e.data["attempt"] for e in retries] == [1, 2, 3, 4]
    assert all(e.data["max_retries"] == 4 for e in retries)
    assert all(e.data["error"] == "RuntimeError: boom" for e in retries)
    assert all(e.node == "a" for e in retries)


def test_exponential_backoff_uses_the_given_rate() -> None:
    clock = FakeClock()
    definition = one_node(
        max_retries=3, retry_sleep_seconds=0.5, backoff="exponential", backoff_rate=3
    )
    assert engine_for(definition, failing(3, boom), clock).run().success
    assert clock.sleeps == [0.5, 1.5, 4.5]


def test_exponential_backoff_is_capped_at_max_delay_seconds() -> None:
    clock, rec = FakeClock(), Recorder()
    definition = one_node(
        max_retries=5,
        retry_sleep_seconds=1.0,
        backoff="exponential",
        backoff_rate=2.0,
        max_delay_seconds=5.0,
    )
    assert engine_for(definition, failing(5, boom), clock, rec).run().success
    assert clock.sleeps == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert [e.data["delay_seconds"] for e in rec.of("node:retry")] == clock.sleeps


def test_max_delay_seconds_also_caps_a_fixed_delay() -> None:
    clock = FakeClock()
    definition = one_node(max_retries=2, retry_sleep_seconds=10.0, max_delay_seconds=3.0)
    assert engine_for(definition, failing(2, boom), clock).run().success
    assert clock.sleeps == [3.0, 3.0]


def test_full_jitter_waits_between_zero_and_the_computed_delay() -> None:
    clock, rec = FakeClock(), Recorder()
    definition = one_node(
        max_retries=6, retry_sleep_seconds=1.0, backoff="exponential", jitter="full"
    )
    assert engine_for(definition, failing(6, boom), clock, rec).run().success
    ceilings = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    assert len(clock.sleeps) == 6
    for slept, ceiling in zip(clock.sleeps, ceilings, strict=True):
        assert 0.0 <= slept <= ceiling
    assert clock.sleeps != ceilings
    assert [e.data["delay_seconds"] for e in rec.of("node:retry")] == clock.sleeps


def test_full_jitter_is_reproducible_with_a_seeded_rng() -> None:
    definition = one_node(max_retries=4, retry_sleep_seconds=1.0, jitter="full")
    first, second, other = FakeClock(), FakeClock(), FakeClock()
    engine_for(definition, failing(4, boom), first, seed=42).run()
    engine_for(definition, failing(4, boom), second, seed=42).run()
    engine_for(definition, failing(4, boom), other, seed=43).run()
    assert first.sleeps == second.sleeps
    assert first.sleeps != other.sleeps


def test_full_jitter_draws_uniformly_from_the_rng() -> None:
    definition = one_node(max_retries=3, retry_sleep_seconds=2.0, jitter="full")
    clock = FakeClock()
    engine_for(definition, failing(3, boom), clock, seed=5).run()
    rng = random.Random(5)
    assert clock.sleeps == [rng.uniform(0.0, 2.0) for _ in range(3)]


def test_attempt_number_is_visible_to_the_handler() -> None:
    seen: list[int] = []

    def handler(ctx: WorkflowContext) -> HandlerResult:
        seen.append(ctx.attempt)
        if ctx.attempt < 3:
            raise RuntimeError("again")
        return HandlerResult(outputs=["ok"])

    clock = FakeClock()
    assert engine_for(one_node(max_retries=5, retry_sleep_seconds=0), handler, clock).run().success
    assert seen == [1, 2, 3]


def test_retries_add_no_trace_entries_and_one_node_start() -> None:
    clock, rec = FakeClock(), Recorder()
    definition = one_node(max_retries=2, retry_sleep_seconds=1)
    result = engine_for(definition, failing(2, boom), clock, rec).run()
    assert result.trace == ["a", "b"]
    assert [e.node for e in rec.of("node:start")] == ["a", "b"]


def test_exhausted_retries_fail_with_the_last_exception() -> None:
    calls = {"n": 0}

    def handler(ctx: WorkflowContext) -> HandlerResult:
        calls["n"] += 1
        raise (KeyError if calls["n"] == 3 else RuntimeError)(f"attempt {calls['n']}")

    clock = FakeClock()
    definition = one_node(max_retries=2, retry_sleep_seconds=1, backoff="exponential")
    result = engine_for(definition, handler, clock).run()
    assert not result.success
    assert result.error is not None
    assert result.error.code == "HANDLER_EXCEPTION"
    assert result.error.cause_type == "KeyError"
    assert clock.sleeps == [1.0, 2.0]


# ---------------------------------------------------------------- retry_on


class TransientError(ConnectionError):
    pass


def test_retry_on_retries_a_named_exception() -> None:
    clock = FakeClock()
    definition = one_node(max_retries=2, retry_sleep_seconds=1, retry_on=["TransientError"])
    result = engine_for(definition, failing(2, lambda: TransientError("flaky")), clock).run()
    assert result.success
    assert clock.sleeps == [1.0, 1.0]


def test_retry_on_matches_subclasses_through_the_class_hierarchy() -> None:
    clock = FakeClock()
    definition = one_node(max_retries=3, retry_sleep_seconds=1, retry_on=["OSError"])
    result = engine_for(definition, failing(3, lambda: TransientError("flaky")), clock).run()
    assert result.success
    assert result.state.workflow["attempts"] == 4


def test_retry_on_does_not_retry_other_exceptions() -> None:
    clock, rec = FakeClock(), Recorder()
    definition = one_node(max_retries=5, retry_sleep_seconds=1, retry_on=["ConnectionError"])
    result = engine_for(definition, failing(5, lambda: ValueError("bad input")), clock, rec).run()
    assert not result.success
    assert result.error is not None
    assert result.error.code == "HANDLER_EXCEPTION"
    assert result.error.cause_type == "ValueError"
    assert clock.sleeps == []
    assert rec.of("node:retry") == []


def test_retry_on_does_not_match_a_parent_class_of_the_raised_one() -> None:
    clock = FakeClock()
    definition = one_node(max_retries=3, retry_sleep_seconds=1, retry_on=["TransientError"])
    result = engine_for(definition, failing(3, lambda: ConnectionError("plain")), clock).run()
    assert not result.success
    assert clock.sleeps == []


def test_retry_on_lists_several_names() -> None:
    clock = FakeClock()
    errors = iter([KeyError("k"), TimeoutError("t")])
    definition = one_node(
        max_retries=5, retry_sleep_seconds=1, retry_on=["KeyError", "TimeoutError"]
    )

    def handler(ctx: WorkflowContext) -> HandlerResult:
        err = next(errors, None)
        if err is not None:
            raise err
        return HandlerResult(outputs=["ok"])

    assert engine_for(definition, handler, clock).run().success
    assert clock.sleeps == [1.0, 1.0]


# ---------------------------------------------------------------- returned errors


def returning_errors(*errors: WorkflowError) -> Callable[[WorkflowContext], HandlerResult]:
    queue = list(errors)

    def handler(ctx: WorkflowContext) -> HandlerResult:
        if queue:
            return HandlerResult(outputs=[], error=queue.pop(0))
        return HandlerResult(outputs=["ok"], workflow_updates={"done": ctx.attempt})

    return handler


def test_a_returned_retryable_error_is_retried_like_an_exception() -> None:
    clock, rec = FakeClock(), Recorder()
    throttled = WorkflowError("RATE_LIMITED", "slow down", "a", retryable=True)
    definition = one_node(max_retries=3, retry_sleep_seconds=2, backoff="exponential")
    result = engine_for(definition, returning_errors(throttled, throttled), clock, rec).run()
    assert result.success
    assert result.state.workflow["done"] == 3
    assert clock.sleeps == [2.0, 4.0]
    retries = rec.of("node:retry")
    assert [e.data["attempt"] for e in retries] == [1, 2]
    assert all("RATE_LIMITED" in e.data["error"] for e in retries)
    assert [r.status for r in result.audit_trail] == ["succeeded", "succeeded"]


def test_a_returned_retryable_error_fails_with_that_error_when_retries_run_out() -> None:
    clock = FakeClock()
    throttled = WorkflowError("RATE_LIMITED", "slow down", "a", retryable=True)
    definition = one_node(max_retries=1, retry_sleep_seconds=1)
    result = engine_for(definition, returning_errors(throttled, throttled, throttled), clock).run()
    assert not result.success
    assert result.error is not None
    assert result.error.code == "RATE_LIMITED"
    assert result.error.retryable is True
    assert clock.sleeps == [1.0]
    failed = [r for r in result.audit_trail if r.status == "failed"]
    assert len(failed) == 1 and failed[0].node == "a"


def test_a_returned_non_retryable_error_fails_at_once() -> None:
    clock, rec = FakeClock(), Recorder()
    fatal = WorkflowError("BAD_REQUEST", "no", "a", retryable=False)
    definition = one_node(max_retries=3, retry_sleep_seconds=1)
    result = engine_for(definition, returning_errors(fatal), clock, rec).run()
    assert not result.success
    assert result.error is not None and result.error.code == "BAD_REQUEST"
    assert clock.sleeps == []
    assert rec.of("node:retry") == []
    assert result.state.workflow["__error__"]["code"] == "BAD_REQUEST"


def test_retry_on_does_not_block_a_returned_retryable_error() -> None:
    clock = FakeClock()
    throttled = WorkflowError("RATE_LIMITED", "slow down", "a", retryable=True)
    definition = one_node(max_retries=1, retry_sleep_seconds=1, retry_on=["KeyError"])
    assert engine_for(definition, returning_errors(throttled), clock).run().success
    assert clock.sleeps == [1.0]


# ---------------------------------------------------------------- cancel and deadline


def test_cancel_during_a_retry_wait_ends_the_run_cancelled() -> None:
    clock = FakeClock()
    definition = one_node(max_retries=3, retry_sleep_seconds=30)
    engine_box: list[WorkflowEngine] = []

    def cancelling_sleep(seconds: float) -> None:
        clock.sleep(seconds)
        engine_box[0].cancel()

    engine = WorkflowEngine(
        definition,
        {"a": failing(10, boom), "b": ok},
        clock=clock.time,
        sleep=cancelling_sleep,
    )
    engine_box.append(engine)
    result = engine.run()
    assert result.status == "cancelled"
    assert result.cancelled
    assert result.error is not None and result.error.code == "WORKFLOW_CANCELLED"
    assert clock.sleeps == [30.0]
    assert result.checkpoint is not None
    assert result.checkpoint.ready_now[0] == "a"


def test_a_real_retry_wait_is_interrupted_by_cancel() -> None:
    """Without an injected sleeper the engine waits on its cancel flag."""
    import threading
    import time

    definition = one_node(max_retries=1, retry_sleep_seconds=30)
    engine = WorkflowEngine(definition, {"a": failing(5, boom), "b": ok})
    timer = threading.Timer(0.05, engine.cancel)
    started = time.monotonic()
    timer.start()
    try:
        result = engine.run()
    finally:
        timer.cancel()
    assert result.status == "cancelled"
    assert time.monotonic() - started < 10


def test_a_retry_wait_never_sleeps_past_the_workflow_deadline() -> None:
    clock, rec = FakeClock(), Recorder()
    definition = one_node(max_retries=3, retry_sleep_seconds=100)
    definition["engine_policy"] = {"workflow_timeout_seconds": 5}
    result = engine_for(definition, failing(10, boom), clock, rec).run()
    assert not result.success
    assert result.error is not None and result.error.code == "WORKFLOW_TIMEOUT"
    assert clock.sleeps == [5.0]
    assert rec.of("node:retry")[0].data["delay_seconds"] == 5.0


def test_a_backoff_shorter_than_the_deadline_is_not_shortened() -> None:
    clock = FakeClock()
    definition = one_node(max_retries=2, retry_sleep_seconds=1, backoff="exponential")
    definition["engine_policy"] = {"workflow_timeout_seconds": 60}
    assert engine_for(definition, failing(2, boom), clock).run().success
    assert clock.sleeps == [1.0, 2.0]


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("policy", "key"),
    [
        ({"backoff": "linear"}, "backoff"),
        ({"backoff_rate": 0.5}, "backoff_rate"),
        ({"backoff_rate": "2"}, "backoff_rate"),
        ({"max_delay_seconds": -1}, "max_delay_seconds"),
        ({"max_delay_seconds": "5"}, "max_delay_seconds"),
        ({"jitter": "half"}, "jitter"),
        ({"retry_on": "KeyError"}, "retry_on"),
        ({"retry_on": [1]}, "retry_on"),
        ({"retry_on": [""]}, "retry_on"),
        ({"max_retries": -1}, "max_retries"),
        ({"retry_sleep_seconds": -0.1}, "retry_sleep_seconds"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
    ],
)
def test_bad_run_policy_keys_are_rejected_naming_node_and_key(
    policy: dict[str, Any], key: str
) -> None:
    with pytest.raises(ValueError) as info:
        WorkflowEngine(one_node(**policy), {"a": ok, "b": ok})
    assert "'a'" in str(info.value)
    assert key in str(info.value)


def test_a_non_dict_run_policy_is_rejected() -> None:
    definition = one_node()
    definition["nodes"]["a"]["run_policy"] = [1]
    with pytest.raises(ValueError, match=r"node 'a' run_policy"):
        WorkflowEngine(definition, {"a": ok, "b": ok})


def test_valid_backoff_keys_are_accepted() -> None:
    WorkflowEngine(
        one_node(
            max_retries=2,
            retry_sleep_seconds=0,
            backoff="exponential",
            backoff_rate=1,
            max_delay_seconds=0,
            jitter="full",
            retry_on=["KeyError"],
            timeout_seconds=0.5,
        ),
        {"a": ok, "b": ok},
    )
