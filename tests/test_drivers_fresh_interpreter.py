"""Drivers: lazy imports in fresh interpreters, async batches, batch timeouts.

``asyncio`` and ``concurrent.futures`` are imported on first need only, so the
paths that need them are exercised in a new interpreter where nothing
imported them before.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from zeroflow import HandlerResult, WorkflowContext, WorkflowEngine

SRC = Path(__file__).resolve().parent.parent / "src"

PRELUDE = textwrap.dedent(
    """
    import sys, threading, time
    from zeroflow import HandlerResult, WorkflowEngine

    def loaded():
        return sorted(m for m in ("asyncio", "concurrent.futures") if m in sys.modules)

    def fan(handler, n=4):
        leaves = [f"n{i}" for i in range(n)]
        edges = [{"target_node": x} for x in leaves]
        nodes = {"start": {"handler": "start", "outputs": {"ok": edges}}}
        for x in leaves:
            nodes[x] = {"handler": handler, "outputs": {"ok": []}}
        return {
            "workflow_name": "fan",
            "default_entry_node": "start",
            "engine_policy": {"max_concurrency": n},
            "nodes": nodes,
        }

    def start(ctx):
        return HandlerResult(["ok"])
    """
)


def run_fresh(body: str) -> list[str]:
    """Run ``PRELUDE + body`` in a new interpreter; its stdout lines."""
    done = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(body)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip().splitlines()


# ---------------------------------------------------------------- fresh interpreters


def test_a_plain_parallel_batch_loads_the_thread_pool_but_not_asyncio() -> None:
    out = run_fresh(
        """
        seen = set()
        def leaf(ctx):
            seen.add(threading.get_ident())
            time.sleep(0.05)
            return HandlerResult(["ok"], node_updates={"me": ctx.node_name})
        print(loaded())
        result = WorkflowEngine(fan("leaf"), {"start": start, "leaf": leaf}).run()
        print(result.status, len(result.trace), len(seen) > 1)
        print(loaded())
        """
    )
    assert out == ["[]", "succeeded 5 True", "['concurrent.futures']"]


def test_async_handlers_in_a_parallel_batch_under_sync_run_in_a_fresh_interpreter() -> None:
    """Worker threads need asyncio for the first time at once; each runs its own loop."""
    for _ in range(3):
        out = run_fresh(
            """
            async def leaf(ctx):
                import asyncio
                await asyncio.sleep(0.05)
                return HandlerResult(["ok"], workflow_updates={ctx.node_name: 1})
            result = WorkflowEngine(fan("leaf", 8), {"start": start, "leaf": leaf}).run()
            print(result.status, result.error and result.error.message)
            """
        )
        assert out == ["succeeded None"]


def test_async_handlers_in_a_parallel_batch_under_sync_run_each_get_a_loop() -> None:
    """The same batch once asyncio is imported: the handlers overlap in their own threads."""
    out = run_fresh(
        """
        import asyncio
        async def leaf(ctx):
            await asyncio.sleep(0.2)
            return HandlerResult(["ok"], workflow_updates={ctx.node_name: threading.get_ident()})
        started = time.monotonic()
        result = WorkflowEngine(fan("leaf", 8), {"start": start, "leaf": leaf}).run()
        took = time.monotonic() - started
        threads = {v for k, v in result.state.workflow.items() if k.startswith("n")}
        print(result.status, len(threads), took < 1.2)
        """
    )
    assert out == ["succeeded 8 True"]


def test_cancel_reaches_every_async_handler_of_a_batch_under_sync_run() -> None:
    out = run_fresh(
        """
        import asyncio
        stopped = []
        async def leaf(ctx):
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                stopped.append(ctx.node_name)
                raise
            return HandlerResult(["ok"])
        engine = WorkflowEngine(fan("leaf", 3), {"start": start, "leaf": leaf})
        threading.Timer(0.2, engine.cancel).start()
        started = time.monotonic()
        result = engine.run()
        print(result.status, sorted(stopped), time.monotonic() - started < 5)
        print(result.checkpoint.ready_now)
        """
    )
    assert out == ["cancelled ['n0', 'n1', 'n2'] True", "['n0', 'n1', 'n2']"]


def test_arun_from_asyncio_run_in_a_fresh_interpreter_with_a_mixed_batch() -> None:
    out = run_fresh(
        """
        import asyncio
        async def aleaf(ctx):
            await asyncio.sleep(0.01)
            return HandlerResult(["ok"], node_updates={"kind": "async"})
        def leaf(ctx):
            return HandlerResult(["ok"], node_updates={"kind": "plain"})
        flow = fan("leaf", 4)
        for name in ("n1", "n3"):
            flow["nodes"][name]["handler"] = "aleaf"
        engine = WorkflowEngine(flow, {"start": start, "leaf": leaf, "aleaf": aleaf})
        result = asyncio.run(engine.arun())
        print(result.status, [result.state.node[f"n{i}"]["kind"] for i in range(4)])
        """
    )
    assert out == ["succeeded ['plain', 'async', 'plain', 'async']"]


def test_run_with_async_handlers_from_a_worker_thread_of_a_running_loop_is_allowed() -> None:
    """The refusal is about this thread's loop: ``asyncio.to_thread(engine.run)`` works."""
    out = run_fresh(
        """
        import asyncio
        async def aleaf(ctx):
            await asyncio.sleep(0.01)
            return HandlerResult(["ok"])
        engine = WorkflowEngine(fan("aleaf", 2), {"start": start, "aleaf": aleaf})
        async def main():
            try:
                engine.run()
            except RuntimeError as exc:
                print("refused:", "await engine.arun" in str(exc), "aleaf" in str(exc))
            result = await asyncio.to_thread(engine.run)
            print(result.status)
        asyncio.run(main())
        """
    )
    assert out == ["refused: True True", "succeeded"]


# ---------------------------------------------------------------- node timeouts in a batch


def batch_with_a_slow_node(handler: Any) -> WorkflowEngine:
    leaves = ["n0", "n1", "n2"]
    nodes: dict[str, Any] = {
        "start": {"handler": "start", "outputs": {"ok": [{"target_node": x} for x in leaves]}}
    }
    for x in leaves:
        nodes[x] = {
            "handler": "leaf",
            "outputs": {"ok": []},
            "run_policy": {"timeout_seconds": 0.15},
        }
    flow = {
        "workflow_name": "fan",
        "default_entry_node": "start",
        "engine_policy": {"max_concurrency": 3},
        "nodes": nodes,
    }
    return WorkflowEngine(flow, {"start": lambda ctx: HandlerResult(["ok"]), "leaf": handler})


def slow_sync(ctx: WorkflowContext) -> HandlerResult:
    time.sleep(0.4 if ctx.node_name == "n1" else 0)
    return HandlerResult(["ok"])


async def slow_async(ctx: WorkflowContext) -> HandlerResult:
    await asyncio.sleep(30 if ctx.node_name == "n1" else 0)
    return HandlerResult(["ok"])


@pytest.mark.parametrize("how", ["sync-run", "async-run", "async-arun"])
def test_only_the_slow_node_of_a_batch_times_out(how: str) -> None:
    if how == "sync-run":
        result = batch_with_a_slow_node(slow_sync).run()
    elif how == "async-run":
        result = batch_with_a_slow_node(slow_async).run()
    else:
        result = asyncio.run(batch_with_a_slow_node(slow_async).arun())
    assert result.error is not None and result.error.code == "NODE_TIMEOUT"
    assert result.error.node == "n1", result.error.message
    assert [(r.node, r.status) for r in result.audit_trail] == [
        ("start", "succeeded"),
        ("n0", "succeeded"),
        ("n1", "failed"),
    ]
