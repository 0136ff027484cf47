"""Counts written as text in a legacy definition: honoured as 0.1.0 did, with a lint warning."""

from __future__ import annotations

from typing import Any

import pytest

from zeroflow import HandlerResult, WorkflowContext, WorkflowDefinitionError, WorkflowEngine, lint


def looping(max_steps: Any) -> dict[str, Any]:
    return {
        "workflow_name": "loop",
        "default_entry_node": "a",
        "engine_policy": {"max_steps": max_steps},
        "nodes": {
            "a": {"handler": "a", "outputs": {"ok": [{"target_node": "a", "is_loopback": True}]}}
        },
    }


def again(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"])


@pytest.mark.parametrize(("given", "limit"), [("2", 2), ("20", 20), (3.0, 3), (" 4 ", 4), (5, 5)])
def test_max_steps_written_as_text_or_a_whole_float_is_honoured(given: Any, limit: int) -> None:
    result = WorkflowEngine(looping(given), {"a": again}).run()
    assert result.error is not None and result.error.code == "MAX_STEPS_EXCEEDED"
    assert len(result.trace) == limit + 1  # as 0.1.0: "2" gave a trace of 3, then the stop
    assert result.trace == WorkflowEngine(looping(limit), {"a": again}).run().trace


def test_max_retries_written_as_text_is_honoured() -> None:
    attempts: list[int] = []

    def boom(ctx: WorkflowContext) -> HandlerResult:
        attempts.append(ctx.attempt)
        raise RuntimeError("down")

    definition = {
        "workflow_name": "retry",
        "default_entry_node": "a",
        "nodes": {"a": {"handler": "a", "outputs": {}, "run_policy": {"max_retries": "2"}}},
    }
    result = WorkflowEngine(definition, {"a": boom}, sleep=lambda seconds: None).run()
    assert result.status == "failed" and attempts == [1, 2, 3]  # three attempts, as 0.1.0


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("abc", "got 'abc', a string"),
        ("3.0", "got '3.0', a string"),
        (2.7, "got 2.7, a fraction"),
        (True, "got True, a boolean"),
        (0, "got 0"),
        ("-1", "got '-1', a string"),
    ],
)
def test_a_refused_count_says_what_was_given(given: Any, said: str) -> None:
    with pytest.raises(WorkflowDefinitionError) as info:
        WorkflowEngine(looping(given), {"a": again})
    assert "engine_policy.max_steps must be > 0" in str(info.value)
    assert said in str(info.value)


def test_the_linter_warns_about_counts_written_as_text() -> None:
    definition = looping("3")
    definition["nodes"]["a"]["run_policy"] = {"max_retries": 2.0}
    warnings = [f for f in lint(definition) if f.code == "ZF108"]
    assert [(f.severity, f.pointer) for f in warnings] == [
        ("warning", "/engine_policy/max_steps"),
        ("warning", "/nodes/a/run_policy/max_retries"),
    ]
    assert "'3', not an int: it is read as 3" in warnings[0].message
    assert [w.hint for w in warnings] == ["write 3", "write 2"]
    assert not [f for f in lint(looping(3)) if f.code == "ZF108"]


def test_zf1_stays_strict_about_counts() -> None:
    zf1 = {
        "version": "zf/1",
        "name": "loop",
        "entry": "a",
        "defaults": {"max_steps": "3"},
        "nodes": {"a": {"handler": "a", "on": {"ok": {"to": "a", "loop": True}}}},
    }
    with pytest.raises(WorkflowDefinitionError):
        WorkflowEngine(zf1, {"a": again})
