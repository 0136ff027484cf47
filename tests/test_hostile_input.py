"""Issue 14: bad input that would poison a run is refused where it enters, never written.

Depth (``MAX_DEPTH``), malformed handler results, policy values that overflow,
and branch-HITL node names that could not be resumed by name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from _support import FakeClock
from zeroflow import (
    HandlerResult,
    InMemoryWorkflowStore,
    JsonFileWorkflowStore,
    RunNotFoundError,
    WorkflowContext,
    WorkflowDefinitionError,
    WorkflowEngine,
    WorkflowError,
)

MAX_DEPTH = 200  # the documented limit (zeroflow._constants.MAX_DEPTH)

# ---------------------------------------------------------------- helpers


def nest(levels: int) -> dict[str, Any]:
    """A dict ``levels`` containers deep: ``nest(1) == {}``, ``nest(2) == {"k": {}}``."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"k": value}
    return value


def flow(**top: Any) -> dict[str, Any]:
    """``a`` -> ``b``, with a default error node ``e`` that catches any failure."""
    return {
        "workflow_name": "hostile",
        "default_entry_node": "a",
        "default_error_node": "e",
        "nodes": {
            "a": {"handler": "a", "outputs": {"ok": [{"target_node": "b"}]}},
            "b": {"handler": "ok", "outputs": {"ok": []}},
            "e": {"handler": "ok", "outputs": {"ok": []}},
        },
        **top,
    }


def ok(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"])


def returning(result: Any) -> Callable[[WorkflowContext], Any]:
    return lambda ctx: result


def waits(ctx: WorkflowContext) -> HandlerResult:
    if "__resume__" in ctx.state.workflow:
        return HandlerResult(outputs=["ok"])
    return HandlerResult(outputs=[], waiting=True, waiting_prompt="go?")


def assert_failed_and_routed(store: Any, run_id: str, code: str) -> WorkflowError:
    """The node ``a`` failed with ``code``, was recorded, and ``e`` took over."""
    snap = store.load_snapshot(run_id)  # the run stays loadable
    assert snap.status == "succeeded"
    assert snap.trace == ["a", "e"]
    failed = [r for r in snap.audit_trail if r.status == "failed"]
    assert [r.node for r in failed] == ["a"]
    error = failed[0].error
    assert error is not None
    assert error.code == code
    assert snap.state.workflow["__error__"]["code"] == code
    return error


# ---------------------------------------------------------------- depth


def test_initial_input_at_the_depth_limit_runs_and_one_level_more_is_refused() -> None:
    store = InMemoryWorkflowStore()
    engine = WorkflowEngine(flow(), {"a": ok, "ok": ok}, store=store)
    assert engine.run({"x": nest(MAX_DEPTH - 1)}, run_id="fits").success
    assert store.load_snapshot("fits").state.input == {"x": nest(MAX_DEPTH - 1)}
    with pytest.raises(TypeError, match=f"deeper than {MAX_DEPTH} levels"):
        engine.run({"x": nest(MAX_DEPTH)}, run_id="too-deep")
    with pytest.raises(RunNotFoundError):
        store.load_snapshot("too-deep")


def test_the_documented_depth_limit_is_the_engines() -> None:
    from zeroflow import _constants

    assert _constants.MAX_DEPTH == MAX_DEPTH


def test_a_600_level_input_is_refused_before_anything_is_written() -> None:
    store = InMemoryWorkflowStore()
    engine = WorkflowEngine(flow(), {"a": ok, "ok": ok}, store=store)
    with pytest.raises(TypeError, match="initial_input") as caught:
        engine.run(nest(600), run_id="poison")
    assert len(str(caught.value)) < 600  # the path is shortened, not 600 keys long
    assert store.list_metadata() == []
    with pytest.raises(RunNotFoundError):
        store.load_snapshot("poison")


@pytest.mark.parametrize("field", ["workflow_updates", "node_updates"])
def test_handler_updates_199_deep_are_kept_and_201_deep_fail_the_node(field: str) -> None:
    store = InMemoryWorkflowStore()
    update = {field: nest(MAX_DEPTH - 1)}
    engine = WorkflowEngine(
        flow(), {"a": returning(HandlerResult(outputs=["ok"], **update)), "ok": ok}, store=store
    )
    assert engine.run(run_id="fits").success
    deep = {field: nest(MAX_DEPTH + 1)}
    engine = WorkflowEngine(
        flow(), {"a": returning(HandlerResult(outputs=["ok"], **deep)), "ok": ok}, store=store
    )
    engine.run(run_id="deep")
    error = assert_failed_and_routed(store, "deep", "STATE_SERIALIZATION")
    assert f"deeper than {MAX_DEPTH} levels" in error.details["reason"]


def test_a_600_level_update_fails_its_node_and_the_run_stays_loadable(tmp_path: Path) -> None:
    store = JsonFileWorkflowStore(tmp_path / "runs")
    handlers = {"a": returning(HandlerResult(outputs=["ok"], workflow_updates=nest(600))), "ok": ok}
    WorkflowEngine(flow(), handlers, store=store).run(run_id="r")
    assert_failed_and_routed(store, "r", "STATE_SERIALIZATION")
    again = JsonFileWorkflowStore(tmp_path / "runs").load_snapshot("r")
    assert "k" not in again.state.workflow


def test_resume_input_deeper_than_the_limit_is_refused_and_the_run_still_waits() -> None:
    store = InMemoryWorkflowStore()
    engine = WorkflowEngine(flow(), {"a": waits, "ok": ok}, store=store)
    assert engine.run(run_id="w").waiting
    with pytest.raises(TypeError, match=f"resume_input.*deeper than {MAX_DEPTH} levels"):
        engine.resume("w", resume_input=nest(MAX_DEPTH + 1))
    assert store.load_snapshot("w").status == "waiting"
    assert engine.resume("w", resume_input=nest(MAX_DEPTH - 1)).success


@pytest.mark.parametrize("field", ["node_updates", "resume_input"])
def test_a_run_holding_data_at_the_limit_can_be_resumed_again(field: str) -> None:
    store = InMemoryWorkflowStore()
    first = {"a": 1}

    def pauses_twice(ctx: WorkflowContext) -> HandlerResult:
        done = ctx.state.workflow.get("__resume__")
        if done == "second":
            return HandlerResult(outputs=["ok"])
        if field == "node_updates" and done is None:
            return HandlerResult(waiting=True, node_updates=nest(MAX_DEPTH))
        return HandlerResult(waiting=True)

    engine = WorkflowEngine(flow(), {"a": pauses_twice, "ok": ok}, store=store)
    engine.run(run_id="r")
    payload = nest(MAX_DEPTH) if field == "resume_input" else first
    assert engine.resume("r", resume_input=payload).waiting
    assert engine.resume("r", resume_input="second").success


def test_custom_event_data_deeper_than_the_limit_fails_the_emitting_node() -> None:
    def emits(ctx: WorkflowContext) -> HandlerResult:
        ctx.emit("deep", nest(600))
        return HandlerResult(outputs=["ok"])

    store = InMemoryWorkflowStore()
    WorkflowEngine(flow(), {"a": emits, "ok": ok}, store=store).run(run_id="r")
    error = assert_failed_and_routed(store, "r", "HANDLER_EXCEPTION")
    assert "deeper than" in error.message
    assert "deep" not in [e.kind for e in store.events("r")]


def test_a_definition_at_the_depth_limit_compiles_and_one_level_more_is_refused() -> None:
    # definition 1, nodes 2, node 3, config 4: a config nest(197) reaches level 200.
    fits = flow()
    fits["nodes"]["a"]["config"] = nest(MAX_DEPTH - 3)
    WorkflowEngine(fits, {"a": ok, "ok": ok})
    deeper = flow()
    deeper["nodes"]["a"]["config"] = nest(MAX_DEPTH - 2)
    with pytest.raises(WorkflowDefinitionError, match=f"deeper than {MAX_DEPTH} levels"):
        WorkflowEngine(deeper, {"a": ok, "ok": ok})


@pytest.mark.parametrize("where", ["config", "unknown_key"])
def test_a_5000_level_definition_raises_a_definition_error_not_recursion_error(
    where: str,
) -> None:
    definition = flow()
    definition["nodes"]["a"][where] = nest(5000)
    with pytest.raises(WorkflowDefinitionError, match="MAX_DEPTH"):
        WorkflowEngine(definition, {"a": ok, "ok": ok})


# ---------------------------------------------------------------- handler results

BAD_RESULTS = [
    pytest.param(
        HandlerResult(outputs=["ok"], error="boom"), "INVALID_HANDLER_RESULT", id="str-error"
    ),  # type: ignore[arg-type]
    pytest.param(HandlerResult(outputs=[[]]), "INVALID_HANDLER_RESULT", id="list-in-outputs"),  # type: ignore[list-item]
    pytest.param(HandlerResult(outputs=[b"ok"]), "INVALID_HANDLER_RESULT", id="bytes-in-outputs"),  # type: ignore[list-item]
    pytest.param(HandlerResult(outputs=[None]), "INVALID_HANDLER_RESULT", id="none-in-outputs"),  # type: ignore[list-item]
    pytest.param(
        HandlerResult(outputs=[], waiting=b"yes"), "INVALID_HANDLER_RESULT", id="bytes-waiting"
    ),  # type: ignore[arg-type]
    pytest.param(
        HandlerResult(outputs=[], waiting=True, waiting_prompt=b"ok?"),  # type: ignore[arg-type]
        "INVALID_HANDLER_RESULT",
        id="bytes-prompt",
    ),
    pytest.param(
        HandlerResult(outputs=["ok"], tags="abc"), "INVALID_HANDLER_RESULT", id="str-tags"
    ),  # type: ignore[arg-type]
    pytest.param(
        HandlerResult(outputs=["ok"], tags=[None]), "INVALID_HANDLER_RESULT", id="none-tag"
    ),  # type: ignore[list-item]
    pytest.param(
        HandlerResult(outputs=["ok"], tags=[{"a": 1}]), "INVALID_HANDLER_RESULT", id="dict-tag"
    ),  # type: ignore[list-item]
    pytest.param(
        HandlerResult(outputs=["ok"], workflow_updates={1: "a", "1": "b"}),  # type: ignore[dict-item]
        "STATE_SERIALIZATION",
        id="colliding-keys",
    ),
    pytest.param(
        HandlerResult(outputs=["ok"], node_updates={"n": {True: 1, "true": 2}}),  # type: ignore[dict-item]
        "STATE_SERIALIZATION",
        id="colliding-nested-keys",
    ),
    pytest.param(
        HandlerResult(outputs=["ok"], error=WorkflowError("X", "m", details={"o": object()})),
        "INVALID_HANDLER_RESULT",
        id="error-details-not-json",
    ),
    pytest.param(
        HandlerResult(outputs=["ok"], error=WorkflowError(5, "m")),  # type: ignore[arg-type]
        "INVALID_HANDLER_RESULT",
        id="error-code-not-str",
    ),
    pytest.param(
        HandlerResult(outputs=["ok"], error=WorkflowError("X", "m", details=nest(600))),
        "INVALID_HANDLER_RESULT",
        id="error-details-too-deep",
    ),
]


def _json_store(tmp_path: Path) -> Any:
    return JsonFileWorkflowStore(tmp_path / "runs")


def _memory_store(tmp_path: Path) -> Any:
    return InMemoryWorkflowStore()


@pytest.mark.parametrize(
    "make_store",
    [pytest.param(_memory_store, id="memory"), pytest.param(_json_store, id="json")],
)
@pytest.mark.parametrize(("result", "code"), BAD_RESULTS)
def test_a_malformed_handler_result_is_a_node_failure_routed_like_any_other(
    result: Any, code: str, make_store: Callable[[Path], Any], tmp_path: Path
) -> None:
    store = make_store(tmp_path)
    engine = WorkflowEngine(flow(), {"a": returning(result), "ok": ok}, store=store)
    outcome = engine.run(run_id="r")
    assert outcome.success  # the error node's outcome decides
    error = assert_failed_and_routed(store, "r", code)
    assert error.node == "a"
    assert outcome.tags == []


def test_the_invalid_result_message_says_what_is_wrong_and_how_to_fix_it() -> None:
    bad = HandlerResult(outputs=["ok"], tags="abc")  # type: ignore[arg-type]
    result = WorkflowEngine(flow(), {"a": returning(bad), "ok": ok}).run()
    error = result.state.workflow["__error__"]
    assert error["message"] == (
        "handler 'a' of node 'a' returned tags of type str ('abc'); "
        "use a list of strings, e.g. tags=['vip']"
    )


def test_an_error_node_on_error_catcher_catches_an_invalid_result() -> None:
    definition = flow()
    del definition["default_error_node"]
    definition["nodes"]["a"]["on_error"] = [
        {"target_node": "e", "codes": ["INVALID_HANDLER_RESULT"]}
    ]
    bad = HandlerResult(outputs=[b"ok"])  # type: ignore[list-item]
    result = WorkflowEngine(definition, {"a": returning(bad), "ok": ok}).run()
    assert result.success
    assert result.trace == ["a", "e"]


def test_a_returned_error_with_junk_outputs_keeps_the_handlers_error() -> None:
    bad = HandlerResult(outputs=5, error=WorkflowError("PAYMENT_DECLINED", "no"))  # type: ignore[arg-type]
    store = InMemoryWorkflowStore()
    WorkflowEngine(flow(), {"a": returning(bad), "ok": ok}, store=store).run(run_id="r")
    assert_failed_and_routed(store, "r", "PAYMENT_DECLINED")


def test_a_returned_error_without_a_node_names_the_node_that_failed() -> None:
    nameless = HandlerResult(outputs=[], error=WorkflowError("PAYMENT_DECLINED", "no"))
    result = WorkflowEngine(flow(), {"a": returning(nameless), "ok": ok}).run()
    assert result.trace == ["a", "e"]
    assert result.state.workflow["__error__"]["node"] == "a"
    assert result.audit_trail[0].error is not None and result.audit_trail[0].error.node == "a"
    unrouted = dict(flow())
    del unrouted["default_error_node"]
    failed = WorkflowEngine(unrouted, {"a": returning(nameless), "ok": ok}).run()
    assert failed.error is not None and failed.error.node == "a"


def test_number_tags_and_non_string_keys_keep_their_json_spelling() -> None:
    kept = HandlerResult(outputs=["ok"], tags=["vip", 42], workflow_updates={1: "a", "x": {2: 3}})  # type: ignore[list-item,dict-item]
    result = WorkflowEngine(flow(), {"a": returning(kept), "ok": ok}).run()
    assert result.trace == ["a", "b"]
    assert result.tags == ["vip", "42"]
    assert result.state.workflow == {"1": "a", "x": {"2": 3}}
    collide = HandlerResult(outputs=["ok"], workflow_updates={"x": {2: 3, "2": 4}})  # type: ignore[dict-item]
    failed = WorkflowEngine(flow(), {"a": returning(collide), "ok": ok}).run()
    assert failed.trace == ["a", "e"]
    reason = failed.state.workflow["__error__"]["details"]["reason"]
    assert "keys 2 and '2' both become the JSON key '2'" in reason


# ---------------------------------------------------------------- policies


def with_run_policy(**policy: Any) -> dict[str, Any]:
    definition = flow()
    definition["nodes"]["a"]["run_policy"] = policy
    return definition


OVERFLOWING = [
    pytest.param(
        with_run_policy(retry_sleep_seconds=1e308), "retry_sleep_seconds", id="sleep-1e308"
    ),
    pytest.param(
        with_run_policy(retry_sleep_seconds=10**400), "retry_sleep_seconds", id="sleep-huge-int"
    ),
    pytest.param(
        with_run_policy(max_delay_seconds=1e308), "max_delay_seconds", id="max-delay-1e308"
    ),
    pytest.param(with_run_policy(timeout_seconds=1e308), "timeout_seconds", id="timeout-1e308"),
    pytest.param(
        with_run_policy(timeout_seconds=10**400), "timeout_seconds", id="timeout-huge-int"
    ),
    pytest.param(
        with_run_policy(timeout_seconds=float("nan")), "timeout_seconds", id="timeout-nan"
    ),
    pytest.param(
        with_run_policy(max_retries=3000, backoff="exponential", backoff_rate=2),
        "max_delay_seconds",
        id="backoff-grows-to-inf",
    ),
    pytest.param(
        with_run_policy(max_retries=40, retry_sleep_seconds=1, backoff="exponential"),
        "max_delay_seconds",
        id="backoff-grows-past-30-days",
    ),
    pytest.param(
        flow(engine_policy={"workflow_timeout_seconds": 1e308}),
        "workflow_timeout_seconds",
        id="workflow-timeout-1e308",
    ),
    pytest.param(
        flow(engine_policy={"workflow_timeout_seconds": float("inf")}),
        "workflow_timeout_seconds",
        id="workflow-timeout-inf",
    ),
    pytest.param(
        {
            "version": "zf/1",
            "name": "z",
            "entry": "a",
            "nodes": {"a": {"handler": "a", "timeout_ms": 1e308}},
        },
        "timeout_ms",
        id="zf1-timeout-ms",
    ),
    pytest.param(
        {
            "version": "zf/1",
            "name": "z",
            "entry": "a",
            "nodes": {
                "a": {"handler": "a", "retry": {"max_attempts": 2, "backoff": {"delay_ms": 1e300}}}
            },
        },
        "delay_ms",
        id="zf1-delay-ms",
    ),
]


@pytest.mark.parametrize(("definition", "field"), OVERFLOWING)
def test_policy_values_that_overflow_are_refused_at_construction(
    definition: dict[str, Any], field: str
) -> None:
    with pytest.raises(WorkflowDefinitionError, match=field) as caught:
        WorkflowEngine(definition, {"a": ok, "ok": ok})
    assert "at most" in str(caught.value) or "cap the delay" in str(caught.value)


def test_the_largest_allowed_values_still_compile() -> None:
    WorkflowEngine(
        with_run_policy(retry_sleep_seconds=30 * 86400, timeout_seconds=3650 * 86400),
        {"a": ok, "ok": ok},
    )
    with pytest.raises(WorkflowDefinitionError, match="retry_sleep_seconds"):
        WorkflowEngine(with_run_policy(retry_sleep_seconds=30 * 86400 + 1), {"a": ok, "ok": ok})


def test_a_capped_exponential_backoff_never_overflows_however_many_retries() -> None:
    calls = {"n": 0}

    def flaky(ctx: WorkflowContext) -> HandlerResult:
        calls["n"] += 1
        raise ConnectionError("down")

    clock = FakeClock()
    definition = with_run_policy(
        max_retries=4,
        retry_sleep_seconds=1,
        backoff="exponential",
        backoff_rate=1e200,
        max_delay_seconds=5,
    )
    engine = WorkflowEngine(definition, {"a": flaky, "ok": ok}, clock=clock, sleep=clock.sleep)
    result = engine.run()
    assert calls["n"] == 5
    assert clock.sleeps == [1, 5, 5, 5]
    assert result.trace == ["a", "e"]


# ---------------------------------------------------------------- branch HITL names


@pytest.mark.parametrize("hitl", ["branch", "run"])
def test_a_waiting_node_whose_name_holds_a_slash_resumes_by_its_name(hitl: str) -> None:
    def ask(ctx: WorkflowContext) -> HandlerResult:
        if ctx.state.workflow.get("__resume__") is None:
            return HandlerResult(outputs=[], waiting=True, waiting_prompt=ctx.node_name)
        return HandlerResult(outputs=["ok"], workflow_updates={ctx.node_name: True})

    waits = ["approve/legal", "approve/finance"] if hitl == "branch" else ["approve/legal"]
    definition = flow(engine_policy={"hitl": hitl})
    for name in waits:
        definition["nodes"][name] = {"handler": "ask", "outputs": {"ok": []}}
        definition["nodes"]["a"]["outputs"]["ok"].append({"target_node": name})
    store = InMemoryWorkflowStore()
    engine = WorkflowEngine(definition, {"a": ok, "ok": ok, "ask": ask}, store=store)
    paused = engine.run(run_id="s1")
    assert sorted(paused.waiting_nodes) == sorted(waits)
    for name in waits:
        result = engine.resume("s1", node=name, resume_input={"ok": True})
    assert result.success and all(result.state.workflow[name] for name in waits)
