"""Async agent: plan -> parallel tool calls -> critique -> loop until the answer is good.

``plan`` writes a query for this round; three ``async def`` tools (``search``,
``calculator``, ``weather``) run at the same time (``max_concurrency: 3``) and
meet in ``critique``, an AND-join. ``critique`` either accepts the evidence and
routes to ``answer`` or sends the agent round again through a loopback edge.
The tools are fakes that ``await asyncio.sleep``: swap in real clients and the
workflow stays the same. The run is deterministic: whatever order the tools
finish in, their results are applied in queue order.

Run it with ``uv run python examples/03_async_agent.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from zeroflow import Event, HandlerResult, WorkflowContext, WorkflowEngine, WorkflowResult

TOOLS = ["search", "calculator", "weather"]

WORKFLOW: dict[str, Any] = {
    "workflow_name": "async_agent",
    "default_entry_node": "plan",
    "engine_policy": {"max_concurrency": 3, "max_steps": 50},
    "nodes": {
        "plan": {
            "handler": "plan",
            "outputs": {"ok": [{"target_node": tool} for tool in TOOLS]},
        },
        **{
            tool: {
                "handler": tool,
                "outputs": {"ok": [{"target_node": "critique"}]},
                "run_policy": {"timeout_seconds": 5, "max_retries": 1, "retry_sleep_seconds": 0},
            }
            for tool in TOOLS
        },
        "critique": {
            "handler": "critique",
            "join": {"mode": "and", "wait_for": TOOLS},
            "outputs": {
                "revise": [{"target_node": "plan", "is_loopback": True}],
                "accept": [{"target_node": "answer"}],
            },
        },
        "answer": {"handler": "answer", "outputs": {"done": []}},
    },
}


async def plan(ctx: WorkflowContext) -> HandlerResult:
    """Write this round's query; a critique from the last round sharpens it."""
    round_no = ctx.state.workflow.get("round", 0) + 1
    query = ctx.state.input["question"]
    feedback = ctx.state.workflow.get("feedback")
    if feedback:
        query = f"{query} ({feedback})"
    ctx.emit("agent:plan", {"round": round_no, "query": query})
    await asyncio.sleep(0.005)
    return HandlerResult(outputs=["ok"], workflow_updates={"round": round_no, "query": query})


async def _tool(ctx: WorkflowContext, latency: float, answer: str) -> HandlerResult:
    await asyncio.sleep(latency)
    round_no = ctx.state.workflow["round"]
    return HandlerResult(
        outputs=["ok"],
        node_updates={"round": round_no, "finding": answer},
    )


async def search(ctx: WorkflowContext) -> HandlerResult:
    detail = "with sources" if "sources" in ctx.state.workflow["query"] else "no sources"
    return await _tool(ctx, 0.03, f"3 articles about the trip ({detail})")


async def calculator(ctx: WorkflowContext) -> HandlerResult:
    return await _tool(ctx, 0.01, "budget: 3 nights x 120 = 360")


async def weather(ctx: WorkflowContext) -> HandlerResult:
    return await _tool(ctx, 0.02, "sunny, 24 C")


def critique(ctx: WorkflowContext) -> HandlerResult:
    """A plain handler: ask for sources once, then accept."""
    findings = {tool: ctx.state.node[tool]["finding"] for tool in TOOLS}
    if "no sources" in findings["search"]:
        return HandlerResult(outputs=["revise"], workflow_updates={"feedback": "cite sources"})
    return HandlerResult(outputs=["accept"], workflow_updates={"findings": findings})


async def answer(ctx: WorkflowContext) -> HandlerResult:
    findings = ctx.state.workflow["findings"]
    text = "; ".join(f"{tool}: {findings[tool]}" for tool in TOOLS)
    return HandlerResult(outputs=["done"], workflow_updates={"answer": text})


HANDLERS = {
    "plan": plan,
    "search": search,
    "calculator": calculator,
    "weather": weather,
    "critique": critique,
    "answer": answer,
}


async def run_agent(question: str) -> tuple[WorkflowResult, list[Event]]:
    """Run the agent on the running event loop; return the result and the custom events."""
    events: list[Event] = []

    def on_event(event: Event) -> None:
        if event.kind.startswith("agent:"):
            events.append(event)

    engine = WorkflowEngine(WORKFLOW, HANDLERS, event_callback=on_event)
    result = await engine.arun({"question": question})
    return result, events


def main() -> WorkflowResult:
    """Run the agent once, print a short summary and return the result."""
    result, events = asyncio.run(run_agent("plan a weekend in Lisbon"))
    print(f"success={result.success} rounds={result.state.workflow['round']}")
    print(f"trace: {' -> '.join(result.trace)}")
    for event in events:
        print(f"  round {event.data['round']}: {event.data['query']}")
    print(f"answer: {result.state.workflow['answer']}")
    return result


if __name__ == "__main__":
    main()
