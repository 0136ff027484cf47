"""Approvals: legal and finance sign off an order in parallel, each resumed on its own.

With ``engine_policy.hitl: "branch"`` a waiting node pauses only its own
branch, so ``legal`` and ``finance`` (built-in ``wait`` nodes, no handler)
wait at the same time while ``reserve_stock`` goes on. ``result.waiting_nodes``
lists who is waiting and with which prompt. Each approval arrives later, as a
webhook would deliver it: a fresh engine and ``JsonFileWorkflowStore`` on the
same folder call ``engine.resume(run_id, node, payload)``. ``decide`` (an
AND-join) runs once both have answered; a built-in ``end`` node records the
outcome.

Run it with ``uv run python examples/04_approvals.py``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from zeroflow import (
    HandlerResult,
    JsonFileWorkflowStore,
    WorkflowContext,
    WorkflowEngine,
    WorkflowResult,
)

APPROVERS = ["legal", "finance"]

WORKFLOW: dict[str, Any] = {
    "workflow_name": "order_approvals",
    "default_entry_node": "receive",
    "engine_policy": {"hitl": "branch"},
    "nodes": {
        "receive": {
            "handler": "receive",
            "outputs": {
                "ok": [
                    {"target_node": "legal"},
                    {"target_node": "finance"},
                    {"target_node": "reserve_stock"},
                ]
            },
        },
        "legal": {
            "kind": "wait",
            "wait": {"prompt": "Legal: may we ship to this country?", "resume_as": "legal"},
            "outputs": {"ok": [{"target_node": "decide"}]},
        },
        "finance": {
            "kind": "wait",
            "wait": {"prompt": "Finance: approve the credit limit?", "resume_as": "finance"},
            "outputs": {"ok": [{"target_node": "decide"}]},
        },
        "reserve_stock": {"handler": "reserve_stock", "outputs": {"ok": []}},
        "decide": {
            "handler": "decide",
            "join": {"mode": "and", "wait_for": APPROVERS},
            "outputs": {
                "approved": [{"target_node": "fulfil"}],
                "rejected": [{"target_node": "cancel"}],
            },
        },
        "fulfil": {"kind": "end", "end": {"result": "shipped"}, "outputs": {}},
        "cancel": {"kind": "end", "end": {"result": "cancelled"}, "outputs": {}},
    },
}


def receive(ctx: WorkflowContext) -> HandlerResult:
    order = ctx.state.input["order"]
    total = sum(line["qty"] * line["price"] for line in order["lines"])
    return HandlerResult(outputs=["ok"], workflow_updates={"total": total})


def reserve_stock(ctx: WorkflowContext) -> HandlerResult:
    skus = [line["sku"] for line in ctx.state.input["order"]["lines"]]
    return HandlerResult(outputs=["ok"], workflow_updates={"reserved": skus})


def decide(ctx: WorkflowContext) -> HandlerResult:
    answers = {name: ctx.state.workflow[name] for name in APPROVERS}
    ok = all(a.get("outcome") == "approved" for a in answers.values())
    signed = sorted(f"{name}:{a.get('by', '?')}" for name, a in answers.items())
    return HandlerResult(outputs=["approved" if ok else "rejected"], tags=signed)


HANDLERS = {"receive": receive, "reserve_stock": reserve_stock, "decide": decide}

ORDER = {
    "id": "order-1001",
    "lines": [{"sku": "kettle", "qty": 2, "price": 40}, {"sku": "mug", "qty": 6, "price": 8}],
}


def _engine(base_dir: Path) -> WorkflowEngine:
    """What each process (web request, webhook) builds: an engine over the shared folder."""
    return WorkflowEngine(WORKFLOW, HANDLERS, store=JsonFileWorkflowStore(base_dir))


def _run(base_dir: Path) -> WorkflowResult:
    run_id = ORDER["id"]
    started = _engine(base_dir).run({"order": ORDER}, run_id=run_id)
    print(f"started {run_id}: status={started.status} total={started.state.workflow['total']}")
    for node, prompt in started.waiting_nodes.items():
        print(f"  waiting on {node}: {prompt}")

    finance = _engine(base_dir).resume(
        run_id, "finance", {"outcome": "approved", "by": "fran", "limit": 200}
    )
    print(f"finance answered: status={finance.status} still waiting={list(finance.waiting_nodes)}")

    final = _engine(base_dir).resume(run_id, "legal", {"outcome": "approved", "by": "lee"})
    print(f"legal answered: status={final.status} result={final.state.workflow['result']}")
    print(f"trace: {' -> '.join(final.trace)}")
    return final


def main(base_dir: str | Path | None = None) -> WorkflowResult:
    """Run the order to completion in ``base_dir`` (a temporary folder by default)."""
    if base_dir is not None:
        return _run(Path(base_dir))
    with tempfile.TemporaryDirectory(prefix="zeroflow-approvals-") as tmp:
        return _run(Path(tmp))


if __name__ == "__main__":
    main()
