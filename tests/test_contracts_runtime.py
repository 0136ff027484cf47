"""engine_policy.contracts: a handler's writes outside its writes_to warn, or fail the node."""

from __future__ import annotations

from typing import Any

import pytest

from zeroflow import (
    HandlerResult,
    WorkflowContext,
    WorkflowDefinitionError,
    WorkflowEngine,
    convert,
)
from zeroflow.testing import EventRecorder


def flow(mode: str | None = None, writes: list[str] | None = None) -> dict[str, Any]:
    policy = {} if mode is None else {"contracts": mode}
    contract: dict[str, Any] = {"reads_from": []}
    if writes is not None:
        contract["writes_to"] = writes
    return {
        "workflow_name": "c",
        "default_entry_node": "draft",
        "engine_policy": policy,
        "nodes": {
            "draft": {
                "handler": "draft",
                "state_contract": contract,
                "outputs": {"ok": [{"target_node": "after"}]},
                "on_error": [{"target_node": "fix", "codes": ["CONTRACT_VIOLATION"]}],
            },
            "after": {"handler": "after", "outputs": {"ok": []}},
            "fix": {"handler": "after", "outputs": {"ok": []}},
        },
    }


def draft(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(
        outputs=["ok"], workflow_updates={"answer": 42, "stray": True, "order": {"total": 1}}
    )


def after(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"])


HANDLERS = {"draft": draft, "after": after}


def test_by_default_a_write_outside_writes_to_warns_and_is_kept() -> None:
    heard = EventRecorder()
    result = WorkflowEngine(flow(writes=["workflow.answer"]), HANDLERS, event_callback=heard).run()
    assert result.trace == ["draft", "after"]
    assert result.state.workflow["stray"] is True
    (warning,) = [e for e in heard.of("node:warning") if e.data.get("reason") == "contract"]
    assert warning.data["keys"] == ["order", "stray"]
    assert warning.data["writes_to"] == ["answer"]
    assert "outside its state_contract.writes_to (answer)" in warning.data["message"]


def test_enforce_fails_the_node_before_anything_is_merged() -> None:
    result = WorkflowEngine(flow("enforce", ["answer"]), HANDLERS).run()
    assert result.trace == ["draft", "fix"]  # the catcher took CONTRACT_VIOLATION
    assert "answer" not in result.state.workflow and "stray" not in result.state.workflow
    error = result.state.workflow["__error__"]
    assert error["code"] == "CONTRACT_VIOLATION"
    assert error["details"] == {"keys": ["order", "stray"], "writes_to": ["answer"]}


def test_off_and_an_undeclared_writes_to_check_nothing() -> None:
    heard = EventRecorder()
    for defn in (flow("off", ["answer"]), flow("enforce", None)):
        result = WorkflowEngine(defn, HANDLERS, event_callback=heard).run()
        assert result.trace == ["draft", "after"] and result.state.workflow["stray"] is True
    assert not [e for e in heard.of("node:warning") if e.data.get("reason") == "contract"]


def test_an_empty_writes_to_allows_no_write_and_writes_within_it_pass() -> None:
    assert WorkflowEngine(flow("enforce", []), HANDLERS).run().trace == ["draft", "fix"]
    fine = flow("enforce", ["answer", "stray", "workflow.order.total", "input.x", "node.y"])
    assert WorkflowEngine(fine, HANDLERS).run().trace == ["draft", "after"]


def test_zf1_spells_it_in_defaults_and_converts_both_ways() -> None:
    zf1 = convert(flow("enforce", ["answer"]), "zf/1").definition
    assert zf1["defaults"]["contracts"] == "enforce"
    assert WorkflowEngine(zf1, HANDLERS).run().trace == ["draft", "fix"]
    back = convert(zf1, "legacy").definition
    assert back["engine_policy"]["contracts"] == "enforce"


@pytest.mark.parametrize("bad", ["strict", True, 1])
def test_an_unknown_mode_is_refused_at_construction(bad: Any) -> None:
    defn = flow("warn", ["answer"])
    defn["engine_policy"]["contracts"] = bad
    with pytest.raises(WorkflowDefinitionError, match="contracts must be"):
        WorkflowEngine(defn, HANDLERS)
    zf1 = convert(flow("warn", ["answer"]), "zf/1").definition
    zf1["defaults"]["contracts"] = bad
    with pytest.raises(WorkflowDefinitionError, match="contracts must be"):
        WorkflowEngine(zf1, HANDLERS)


SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "integer", "minimum": 0}},
    "required": ["answer"],
}


def schema_flow(mode: str | None, schema: Any) -> dict[str, Any]:
    defn = flow(mode, None)
    defn["nodes"]["draft"]["state_contract"]["writes_schema"] = schema
    return defn


def test_a_writes_schema_refusal_fails_the_node_where_the_bad_output_was_made() -> None:
    def bad(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(outputs=["ok"], workflow_updates={"answer": "forty-two"})

    result = WorkflowEngine(schema_flow("enforce", SCHEMA), {**HANDLERS, "draft": bad}).run()
    assert result.trace == ["draft", "fix"]
    error = result.state.workflow["__error__"]
    assert error["code"] == "CONTRACT_VIOLATION" and "answer" not in result.state.workflow
    assert error["details"]["problems"][0]["at"] == "/answer"
    # the same output, matching, passes; under warn a refusal is a warning and is kept
    assert WorkflowEngine(schema_flow("enforce", SCHEMA), HANDLERS).run().trace == [
        "draft",
        "after",
    ]
    heard = EventRecorder()
    kept = WorkflowEngine(
        schema_flow(None, SCHEMA), {**HANDLERS, "draft": bad}, event_callback=heard
    ).run()
    assert kept.trace == ["draft", "after"] and kept.state.workflow["answer"] == "forty-two"
    assert [e.data["problems"] for e in heard.of("node:warning") if e.data.get("reason")]


def test_a_writes_schema_the_checker_cannot_honour_is_refused_at_construction() -> None:
    with pytest.raises(WorkflowDefinitionError, match="writes_schema uses 'maxLength'"):
        WorkflowEngine(schema_flow("warn", {"type": "object", "maxLength": 3}), HANDLERS)
    with pytest.raises(WorkflowDefinitionError, match="writes_schema must be a JSON Schema"):
        WorkflowEngine(schema_flow("warn", "strict"), HANDLERS)
    assert WorkflowEngine(schema_flow("enforce", False), HANDLERS).run().trace == ["draft", "fix"]
