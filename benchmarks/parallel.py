"""Parallel benchmarks: async fan-out wall time and map cost per item.

Workloads:

* ``fanout-async``  a start node fanning out to 50 branches, each handler
  awaiting ``asyncio.sleep(0.05)``, run with ``await engine.arun()`` and
  ``max_concurrency: 50`` (goal: < 0.1 s wall) and with ``max_concurrency: 1``
  (the serial baseline, about 2.5 s);
* ``map-10000``     one map node over 10,000 items with a trivial handler and
  an ``InMemoryWorkflowStore`` (goal: <= 15 µs per item), plus the same map
  without a store and with ``map.max_concurrency: 16`` for comparison.

Each workload runs ``--reps`` times; the table shows the median. Nothing here
is asserted by the test suite: the goals are printed next to the numbers.

Usage::

    uv run python benchmarks/parallel.py            # full sizes
    uv run python benchmarks/parallel.py --quick    # smaller, for a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from zeroflow import HandlerResult, InMemoryWorkflowStore, WorkflowContext, WorkflowEngine


@dataclass(frozen=True)
class Row:
    workload: str
    detail: str
    median: float
    unit: str
    goal: str

    def verdict(self) -> str:
        if not self.goal:
            return ""
        limit = float(self.goal.split()[1])
        return "ok" if self.median <= limit else "MISSED"


def fanout_definition(branches: int, concurrency: int) -> dict[str, Any]:
    names = [f"b{i}" for i in range(branches)]
    nodes: dict[str, Any] = {
        "start": {"handler": "start", "outputs": {"ok": [{"target_node": n} for n in names]}},
        "join": {
            "handler": "start",
            "join": {"mode": "and", "wait_for": names},
            "outputs": {"ok": []},
        },
    }
    for n in names:
        nodes[n] = {"handler": "branch", "outputs": {"ok": [{"target_node": "join"}]}}
    return {
        "workflow_name": "bench_fanout",
        "default_entry_node": "start",
        "engine_policy": {"max_concurrency": concurrency},
        "nodes": nodes,
    }


def start(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"])


def make_branch(sleep_seconds: float) -> Callable[..., Any]:
    async def branch(ctx: WorkflowContext) -> HandlerResult:
        await asyncio.sleep(sleep_seconds)
        return HandlerResult(outputs=["ok"], node_updates={"done": True})

    return branch


def time_fanout(branches: int, concurrency: int, sleep_seconds: float) -> float:
    engine = WorkflowEngine(
        fanout_definition(branches, concurrency),
        {"start": start, "branch": make_branch(sleep_seconds)},
    )
    began = time.perf_counter()
    result = asyncio.run(engine.arun())
    elapsed = time.perf_counter() - began
    if not result.success or len(result.trace) != branches + 2:
        raise RuntimeError(f"fan-out run did not complete: {result.status} {result.error}")
    return elapsed


def map_definition(concurrency: int) -> dict[str, Any]:
    return {
        "workflow_name": "bench_map",
        "default_entry_node": "each",
        "nodes": {
            "each": {
                "handler": "item",
                "map": {"over": "input.items", "max_concurrency": concurrency},
                "outputs": {"ok": []},
            }
        },
    }


def item(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"], node_updates={"v": ctx.item + 1})


def time_map(items: int, concurrency: int, with_store: bool) -> float:
    """Microseconds per item for one run of the map."""
    store = InMemoryWorkflowStore() if with_store else None
    engine = WorkflowEngine(map_definition(concurrency), {"item": item}, store=store)
    data = {"items": list(range(items))}
    gc.collect()
    began = time.perf_counter()
    result = engine.run(data)
    elapsed = time.perf_counter() - began
    results = result.state.node["each"]["results"]
    if not result.success or len(results) != items or results[-1] != {"v": items}:
        raise RuntimeError(f"map run did not complete: {result.status} {result.error}")
    return elapsed / items * 1e6


def median_of(reps: int, fn: Callable[[], float]) -> float:
    return statistics.median(fn() for _ in range(reps))


def measure(quick: bool, reps: int) -> list[Row]:
    branches, sleep_seconds = 50, 0.05
    items = 1_000 if quick else 10_000
    rows = [
        Row(
            "fanout-async",
            f"{branches} branches x asyncio.sleep({sleep_seconds}), max_concurrency {branches}",
            median_of(reps, lambda: time_fanout(branches, branches, sleep_seconds)),
            "s wall",
            "<= 0.1 s",
        ),
        Row(
            "fanout-async",
            f"{branches} branches x asyncio.sleep({sleep_seconds}), max_concurrency 1",
            median_of(1, lambda: time_fanout(branches, 1, sleep_seconds)),
            "s wall",
            "",
        ),
        Row(
            f"map-{items}",
            "trivial items, InMemoryWorkflowStore, map.max_concurrency 1",
            median_of(reps, lambda: time_map(items, 1, True)),
            "µs/item",
            "<= 15 µs",
        ),
        Row(
            f"map-{items}",
            "trivial items, no store, map.max_concurrency 1",
            median_of(reps, lambda: time_map(items, 1, False)),
            "µs/item",
            "",
        ),
        Row(
            f"map-{items}",
            "trivial items, InMemoryWorkflowStore, map.max_concurrency 16 (threads)",
            median_of(reps, lambda: time_map(items, 16, True)),
            "µs/item",
            "",
        ),
    ]
    return rows


def render(rows: list[Row]) -> str:
    lines = [
        "| workload | detail | median | goal | |",
        "|---|---|---:|---|---|",
    ]
    for row in rows:
        value = (
            f"{row.median:.3f} {row.unit}"
            if row.unit.startswith("s")
            else (f"{row.median:.2f} {row.unit}")
        )
        lines.append(f"| {row.workload} | {row.detail} | {value} | {row.goal} | {row.verdict()} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller map, one repetition")
    parser.add_argument("--reps", type=int, default=5, help="repetitions per workload")
    args = parser.parse_args(argv)
    reps = 1 if args.quick else max(1, args.reps)
    print(f"zeroflow parallel benchmarks — Python {platform.python_version()} on {sys.platform}")
    print()
    print(render(measure(args.quick, reps)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
