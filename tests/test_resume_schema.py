"""Typed answers: a wait node's ``resume_schema`` refuses a payload before anything changes."""

from __future__ import annotations

from typing import Any

import pytest

from zeroflow import (
    HandlerResult,
    InMemoryWorkflowStore,
    ResumeInputError,
    WorkflowContext,
    WorkflowDefinitionError,
    WorkflowEngine,
)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["approved", "by"],
    "properties": {"approved": {"type": "boolean"}, "by": {"type": "string", "minLength": 1}},
    "additionalProperties": False,
}


def approval(schema: Any = SCHEMA) -> dict[str, Any]:
    return {
        "workflow_name": "approval",
        "default_entry_node": "prepare",
        "nodes": {
            "prepare": {"handler": "prepare", "outputs": {"ok": [{"target_node": "review"}]}},
            "review": {
                "kind": "wait",
                "wait": {"prompt": "approve?", "resume_as": "review", "resume_schema": schema},
                "outputs": {"ok": []},
            },
        },
    }


def prepare(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"])


def test_a_payload_that_matches_resumes_the_wait() -> None:
    store = InMemoryWorkflowStore()
    engine = WorkflowEngine(approval(), {"prepare": prepare}, store=store)
    engine.run(run_id="r1")
    done = engine.resume("r1", resume_input={"approved": True, "by": "lee"})
    assert done.success and done.state.workflow["review"] == {"approved": True, "by": "lee"}


def test_a_payload_that_does_not_match_is_refused_listing_every_problem_and_changes_nothing() -> (
    None
):
    store = InMemoryWorkflowStore()
    engine = WorkflowEngine(approval(), {"prepare": prepare}, store=store)
    engine.run(run_id="r1")
    before = store.load_snapshot("r1").to_dict()
    with pytest.raises(ResumeInputError) as info:
        engine.resume("r1", resume_input={"approved": "yes", "extra": 1})
    assert info.value.problems == [
        ("", "missing required key 'by'"),
        ("/approved", "'yes' is not of type boolean"),
        ("/extra", "unknown key 'extra'"),
    ]
    assert "the run still waits" in str(info.value)
    assert store.load_snapshot("r1").to_dict() == before  # nothing written, no lease left
    assert engine.resume("r1", resume_input={"approved": False, "by": "fran"}).success


def test_zf1_spells_it_on_the_wait_node() -> None:
    zf1 = {
        "version": "zf/1",
        "name": "approval",
        "entry": "review",
        "nodes": {"review": {"kind": "wait", "prompt": "ok?", "resume_schema": SCHEMA}},
    }
    engine = WorkflowEngine(zf1, {}, store=InMemoryWorkflowStore())
    engine.run(run_id="r1")
    with pytest.raises(ResumeInputError):
        engine.resume("r1", resume_input={"approved": True})


@pytest.mark.parametrize(
    ("schema", "said"),
    [
        ({"type": "string", "maxLength": 3}, "'maxLength'"),
        ({"properties": {"a": {"format": "email"}}}, "'format'"),
        ("not a schema", "must be a JSON Schema object"),
    ],
)
def test_a_schema_the_checker_cannot_honour_is_refused_at_construction(
    schema: Any, said: str
) -> None:
    with pytest.raises(WorkflowDefinitionError, match=said):
        WorkflowEngine(approval(schema), {"prepare": prepare})
