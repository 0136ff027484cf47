"""Quickstart: three nodes and one conditional branch.

``plan`` decides whether the goal needs review; ``execute`` does the work;
``review`` only runs when ``plan`` routed through ``needs_review``.
Run it with ``uv run python examples/01_quickstart.py``.
"""

from __future__ import annotations

from typing import Any

from zeroflow import HandlerResult, WorkflowContext, WorkflowEngine

WORKFLOW: dict[str, Any] = {
    "workflow_name": "quickstart",
    "default_entry_node": "plan",
    "nodes": {
        "plan": {
            "handler": "plan",
            "outputs": {
                "simple": [{"target_node": "execute"}],
                "needs_review": [{"target_node": "review"}],
            },
        },
        "review": {"handler": "review", "outputs": {"ok": [{"target_node": "execute"}]}},
        "execute": {"handler": "execute", "outputs": {"done": []}},
    },
}


def plan(ctx: WorkflowContext) -> HandlerResult:
    goal = ctx.state.input["goal"]
    steps = goal.split()
    label = "needs_review" if len(steps) > 3 else "simple"
    return HandlerResult(outputs=[label], node_updates={"steps": steps})


def review(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"], workflow_updates={"reviewed": True}, tags=["reviewed"])


def execute(ctx: WorkflowContext) -> HandlerResult:
    steps = ctx.state.node["plan"]["steps"]
    return HandlerResult(outputs=["done"], workflow_updates={"done": [s.upper() for s in steps]})


HANDLERS = {"plan": plan, "review": review, "execute": execute}


def main() -> dict[str, Any]:
    """Run the workflow twice, once per branch, print and return what happened."""
    engine = WorkflowEngine(WORKFLOW, handlers=HANDLERS)
    out: dict[str, Any] = {}
    for goal in ("tidy imports", "refactor the storage module carefully"):
        result = engine.run(initial_input={"goal": goal})
        print(f"{goal!r}: success={result.success} trace={result.trace}")
        out[goal] = result
    return out


if __name__ == "__main__":
    main()
