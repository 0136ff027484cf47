"""A full save hands the store the live run's snapshot: every store keeps its own copy.

The recorder no longer exports a copy before a full save (the store copies what
it is given, ``save_snapshot``'s contract); a store that kept the object itself
would see the run's later merges, trace and queues change its first checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from zeroflow import HandlerResult, WorkflowContext, WorkflowEngine

CHAIN = {
    "workflow_name": "chain",
    "default_entry_node": "a",
    "nodes": {
        "a": {"handler": "step", "outputs": {"ok": [{"target_node": "b"}]}},
        "b": {"handler": "step", "outputs": {"ok": [{"target_node": "c"}]}},
        "c": {"handler": "step", "outputs": {"ok": []}},
    },
}


def step(ctx: WorkflowContext) -> HandlerResult:
    seen = ctx.state.workflow.get("seen", {})
    return HandlerResult(
        outputs=["ok"],
        workflow_updates={"seen": {**seen, ctx.node_name: ctx.step}},
        node_updates={"visits": ctx.step},
    )


@pytest.mark.parametrize("kind", ["memory", "json", "sqlite", "postgres"])
def test_the_first_checkpoint_stays_as_it_was_saved(
    store_of: Callable[..., Any], kind: str
) -> None:
    store = store_of(kind)
    result = WorkflowEngine(CHAIN, {"step": step}, store=store).run({"n": 1}, run_id="r1")
    assert result.success and result.trace == ["a", "b", "c"]
    first = store.load_snapshot("r1", seq=1)
    assert first.step == 0 and first.trace == [] and first.ready_now == ["a"]
    assert first.state.workflow == {} and first.state.node == {}
    last = store.load_snapshot("r1")
    assert last.state.workflow == {"seen": {"a": 1, "b": 2, "c": 3}}
    assert last.state.node == {"a": {"visits": 1}, "b": {"visits": 2}, "c": {"visits": 3}}
