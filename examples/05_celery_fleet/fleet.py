"""The Celery app of the fleet: two workflows, a shared Postgres store, zeroflow's tasks.

Workers run ``celery -A fleet worker``; any process that imports this module
(or only knows the broker URL) can send work. Settings come from the
environment, as a deployment would pass them:

- ``ZF_PG_DSN``: PostgreSQL conninfo of the shared store (required);
- ``ZF_BROKER_URL``: the Redis broker (default ``redis://127.0.0.1:6379/0``);
- ``ZF_SCHEMA``: the store's schema (default ``zeroflow``);
- ``ZF_LEASE_TTL``: lease TTL in seconds (default 30);
- ``ZF_VISIBILITY_TIMEOUT``: seconds before Redis gives an unacknowledged task
  to another worker (default 120; keep it above the lease TTL and the longest
  task);
- ``ZF_NODE_SLEEP``: seconds each pipeline node works (default 0);
- ``ZF_EXEC_LOG``: a file where each handler execution appends
  ``<run_id> <node> <pid>`` (to count re-executions after a crash).
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery

from zeroflow import HandlerResult, WorkflowContext, WorkflowEngine, WorkflowStore
from zeroflow.contrib.celery import register_tasks
from zeroflow.contrib.postgres import PostgresWorkflowStore

DSN = os.environ.get("ZF_PG_DSN", "")
BROKER = os.environ.get("ZF_BROKER_URL", "redis://127.0.0.1:6379/0")
SCHEMA = os.environ.get("ZF_SCHEMA", "zeroflow")
LEASE_TTL = float(os.environ.get("ZF_LEASE_TTL", "30"))
VISIBILITY_TIMEOUT = float(os.environ.get("ZF_VISIBILITY_TIMEOUT", "120"))
NODE_SLEEP = float(os.environ.get("ZF_NODE_SLEEP", "0"))
EXEC_LOG = os.environ.get("ZF_EXEC_LOG")

app = Celery("fleet", broker=BROKER)
app.conf.update(
    task_acks_late=True,  # a task is acknowledged when it ends, so a killed worker's comes back
    task_reject_on_worker_lost=True,  # ... also when a prefork child dies
    worker_prefetch_multiplier=1,  # a worker holds one unacknowledged task per process
    task_ignore_result=True,  # progress lives in the store, not in a result backend
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    broker_transport_options={
        "visibility_timeout": VISIBILITY_TIMEOUT,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    },
)


def _record(ctx: WorkflowContext) -> None:
    if EXEC_LOG:
        with open(EXEC_LOG, "a", encoding="utf-8") as log:
            log.write(f"{ctx.run_id} {ctx.node_name} {os.getpid()}\n")


def work(ctx: WorkflowContext) -> HandlerResult:
    """A pipeline step: sleeps ``ZF_NODE_SLEEP`` and counts itself."""
    _record(ctx)
    if NODE_SLEEP:
        time.sleep(NODE_SLEEP)
    done = int(ctx.state.workflow.get("done", 0)) + 1
    return HandlerResult(outputs=["next"], workflow_updates={"done": done})


def intake(ctx: WorkflowContext) -> HandlerResult:
    _record(ctx)
    amount = float(ctx.state.input.get("amount", 0))
    return HandlerResult(outputs=["ok"], workflow_updates={"amount": amount})


def score(ctx: WorkflowContext) -> HandlerResult:
    _record(ctx)
    risk = "high" if ctx.state.workflow["amount"] > 1000 else "low"
    return HandlerResult(outputs=["ok"], workflow_updates={"risk": risk})


def approve(ctx: WorkflowContext) -> HandlerResult:
    """Waits for a human: the answer arrives as ``__resume__`` from another process."""
    _record(ctx)
    answer = ctx.state.workflow.get("__resume__")
    if answer is None:
        prompt = f"approve {ctx.state.workflow['amount']:.2f} ({ctx.state.workflow['risk']} risk)?"
        return HandlerResult(outputs=[], waiting=True, waiting_prompt=prompt)
    label = "yes" if answer.get("approved") else "no"
    return HandlerResult(outputs=[label], workflow_updates={"approver": answer.get("by")})


def book(ctx: WorkflowContext) -> HandlerResult:
    _record(ctx)
    return HandlerResult(outputs=["ok"], workflow_updates={"booked": True})


def reject(ctx: WorkflowContext) -> HandlerResult:
    _record(ctx)
    return HandlerResult(outputs=["ok"], workflow_updates={"booked": False})


def notify(ctx: WorkflowContext) -> HandlerResult:
    _record(ctx)
    return HandlerResult(outputs=["ok"], tags=["notified"])


APPROVAL: dict[str, Any] = {
    "workflow_name": "approval",
    "default_entry_node": "intake",
    "nodes": {
        "intake": {"handler": "intake", "outputs": {"ok": [{"target_node": "score"}]}},
        "score": {"handler": "score", "outputs": {"ok": [{"target_node": "approve"}]}},
        "approve": {
            "handler": "approve",
            "outputs": {"yes": [{"target_node": "book"}], "no": [{"target_node": "reject"}]},
        },
        "book": {"handler": "book", "outputs": {"ok": [{"target_node": "notify"}]}},
        "reject": {"handler": "reject", "outputs": {"ok": [{"target_node": "notify"}]}},
        "notify": {"handler": "notify", "outputs": {"ok": []}},
    },
}


def pipeline(length: int = 10) -> dict[str, Any]:
    """A straight line of ``length`` ``work`` nodes."""
    names = [f"n{i:02d}" for i in range(1, length + 1)]
    nodes: dict[str, Any] = {}
    for here, after in zip(names, [*names[1:], None], strict=True):
        edges = [] if after is None else [{"target_node": after}]
        nodes[here] = {"handler": "work", "outputs": {"next": edges}}
    return {"workflow_name": "pipeline10", "default_entry_node": names[0], "nodes": nodes}


HANDLERS = {
    "work": work,
    "intake": intake,
    "score": score,
    "approve": approve,
    "book": book,
    "reject": reject,
    "notify": notify,
}


def make_store() -> PostgresWorkflowStore:
    """The shared store; each worker process opens its own connection."""
    if not DSN:
        raise RuntimeError("set ZF_PG_DSN to the PostgreSQL conninfo of the shared store")
    return PostgresWorkflowStore(DSN, schema=SCHEMA, lease_ttl_seconds=LEASE_TTL)


def approval_engine(store: WorkflowStore) -> WorkflowEngine:
    return WorkflowEngine(APPROVAL, HANDLERS, store=store)


def pipeline_engine(store: WorkflowStore) -> WorkflowEngine:
    return WorkflowEngine(pipeline(10), HANDLERS, store=store)


tasks = register_tasks(
    app,
    make_store,
    {"approval": approval_engine, "pipeline10": pipeline_engine},
    locked_retry_seconds=min(1.0, LEASE_TTL / 3),
)
