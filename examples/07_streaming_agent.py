"""A streaming agent: tokens as they are written, a human approval, then the rest streamed.

``draft`` is an ``async def`` handler standing in for an LLM call: it emits
each token with ``ctx.emit("token", {"text": ...})`` as it "arrives". The
caller reads them with ``async for event in engine.astream(...)`` and prints
them as they come. Tokens are live only: the SQLite store keeps the run's
checkpoints and its other events, not one row per token. ``review`` is a
built-in ``wait`` node; the approval arrives later (a fresh engine on the
same database, as a webhook would) and the rest of the run is streamed
again with ``astream_resume``.

Run it with ``uv run python examples/07_streaming_agent.py``.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from zeroflow import HandlerResult, WorkflowContext, WorkflowEngine
from zeroflow.stores import SqliteWorkflowStore

WORKFLOW: dict[str, Any] = {
    "workflow_name": "streaming_agent",
    "default_entry_node": "draft",
    "nodes": {
        "draft": {"handler": "draft", "outputs": {"ok": [{"target_node": "review"}]}},
        "review": {
            "kind": "wait",
            "wait": {"prompt": "Send this answer?", "resume_as": "review"},
            "outputs": {"ok": [{"target_node": "send"}]},
        },
        "send": {"handler": "send", "outputs": {"ok": []}},
    },
}


async def draft(ctx: WorkflowContext) -> HandlerResult:
    """Write the answer token by token, as a model would stream it."""
    question = ctx.state.input["question"]
    words = ["Workflows", " are", " graphs", " of", " steps", ":", f" {question}", "."]
    for word in words:
        await asyncio.sleep(0)  # the next token "arrives"
        ctx.emit("token", {"text": word})
    return HandlerResult(outputs=["ok"], workflow_updates={"answer": "".join(words)})


def send(ctx: WorkflowContext) -> HandlerResult:
    verdict = ctx.state.workflow["review"]
    sent = bool(verdict.get("approved"))
    ctx.emit("sent", {"approved": sent})
    return HandlerResult(outputs=["ok"], workflow_updates={"sent": sent})


HANDLERS = {"draft": draft, "send": send}


async def ask(db: Path, question: str, echo: bool) -> tuple[str, list[str]]:
    """Start the run and stream its tokens; return the run id and the tokens."""
    engine = WorkflowEngine(WORKFLOW, HANDLERS, store=SqliteWorkflowStore(db))
    tokens: list[str] = []
    async with engine.astream({"question": question}, kinds=["token", "wf:waiting"]) as stream:
        async for event in stream:
            if event.kind == "token":
                tokens.append(event.data["text"])
                if echo:
                    print(event.data["text"], end="", flush=True)
    result = stream.result
    if echo:
        print(f"\n[{result.status}] {result.waiting_prompt}")
    return result.run_id, tokens


async def approve(db: Path, run_id: str, echo: bool) -> dict[str, Any]:
    """Later, elsewhere: answer the review and stream the rest of the run."""
    engine = WorkflowEngine(WORKFLOW, HANDLERS, store=SqliteWorkflowStore(db))
    async with engine.astream_resume(
        run_id, resume_input={"approved": True}, actor="alice@example.com"
    ) as stream:
        async for event in stream:
            if echo and event.kind in ("sent", "wf:end"):
                print(f"{event.kind}: {event.data}")
    return dict(stream.result.state.workflow)


def main(echo: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "runs.db"
        run_id, tokens = asyncio.run(ask(db, "what is zeroflow", echo))
        final = asyncio.run(approve(db, run_id, echo))
        logged = [e.kind for e in SqliteWorkflowStore(db).events(run_id)]
    return {"tokens": tokens, "final": final, "logged": logged}


if __name__ == "__main__":
    main(echo=True)
