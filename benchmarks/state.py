"""State isolation benchmark: per-node cost of each ``state_isolation``, 1 KB vs 1 MB state.

Two tables, every cell the median of several samples, the modes of one row
measured in alternation (A, B, A, B, ...) so that a slow minute hits both:

* ``isolation``: the ``chain-1000`` and ``loop-1000`` workloads of ``run.py``
  (same definitions, same handlers), timed around ``engine.run()``, under
  ``"readonly"``, ``"private"`` and ``"copy"``; target: private within 1.2x of
  readonly.
* ``state size``: a chain of nodes whose handler reads one key of
  ``ctx.state.input`` (``input["key"]``), while the input also holds a list of
  records of about 1 KB or 1 MB of JSON. The per-node figure comes from the
  handlers' own clock (first to last node), so the run's one-off costs (freezing
  the 1 MB input at the start, thawing it into the result) are left out; target:
  private with 1 MB within 1.5x of private with 1 KB. ``"copy"`` pays a deep copy
  per node, as 0.1.0 did (a shorter chain: it is slow).

Usage::

    uv run python benchmarks/state.py            # ~1 min
    uv run python benchmarks/state.py --quick    # fewer repetitions
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from zeroflow import HandlerResult, WorkflowEngine

ISOLATION_LIMIT = 1.2
SIZE_LIMIT = 1.5
MODES = ("readonly", "private", "copy")


def chain_step(ctx: Any) -> HandlerResult:
    """``run.py``'s chain handler: record the step in this node's state, route on ``ok``."""
    return HandlerResult(outputs=["ok"], node_updates={"v": ctx.step})


def loop_step(ctx: Any) -> HandlerResult:
    """``run.py``'s self-loop handler: bump ``count`` in node state until the input's N."""
    count = ctx.state.node.get(ctx.node_name, {}).get("count", 0) + 1
    label = "again" if count < ctx.state.input["iterations"] else "done"
    return HandlerResult(outputs=[label], node_updates={"count": count})


def chain_definition(n: int, mode: str, handler: str = "chain") -> dict[str, Any]:
    nodes: dict[str, Any] = {}
    for i in range(n):
        edges = [{"target_node": f"n{i + 1}"}] if i < n - 1 else []
        nodes[f"n{i}"] = {"handler": handler, "outputs": {"ok": edges}}
    return {
        "workflow_name": f"bench-chain-{n}",
        "default_entry_node": "n0",
        "engine_policy": {"state_isolation": mode},
        "nodes": nodes,
    }


def loop_definition(mode: str) -> dict[str, Any]:
    return {
        "workflow_name": "bench-loop",
        "default_entry_node": "loop",
        "engine_policy": {"state_isolation": mode},
        "nodes": {
            "loop": {
                "handler": "loop",
                "outputs": {
                    "again": [{"target_node": "loop", "is_loopback": True}],
                    "done": [],
                },
            }
        },
    }


def records(target_bytes: int) -> list[dict[str, Any]]:
    """Records of about 100 bytes of JSON each, ``target_bytes`` in all."""
    row = {"id": 0, "name": "record", "text": "x" * 40, "tags": ["a", "b"], "ok": True}
    per_row = len(json.dumps(row)) + 2
    return [{**row, "id": i, "tags": ["a", "b"]} for i in range(max(1, target_bytes // per_row))]


# --------------------------------------------------------------------------- isolation


def isolation_sample(kind: str, mode: str) -> Callable[[], float]:
    """``sample() -> µs/node`` of one run of ``kind`` (chain-1000, loop-1000) under ``mode``."""
    if kind == "chain-1000":
        engine = WorkflowEngine(chain_definition(1000, mode), handlers={"chain": chain_step})
        initial: dict[str, Any] = {}
    else:
        engine = WorkflowEngine(loop_definition(mode), handlers={"loop": loop_step})
        initial = {"iterations": 1000}

    def sample() -> float:
        gc.collect()
        start = time.perf_counter()
        result = engine.run(initial_input=initial)
        elapsed = time.perf_counter() - start
        if not result.success or len(result.trace) != 1000:
            raise RuntimeError(f"{kind}/{mode}: {result.status} {result.error}")
        return elapsed * 1e6 / 1000

    return sample


# --------------------------------------------------------------------------- state size


def size_sample(mode: str, state_bytes: int, nodes: int) -> Callable[[], float]:
    """``sample() -> µs/node`` between the first and the last handler of a chain reading one key."""
    stamps: list[float] = []
    clock = time.perf_counter

    def read_one(ctx: Any) -> HandlerResult:
        stamps.append(clock())
        return HandlerResult(outputs=["ok"], node_updates={"v": ctx.state.input["key"]})

    engine = WorkflowEngine(chain_definition(nodes, mode, "read"), handlers={"read": read_one})
    initial = {"key": 1, "rows": records(state_bytes)}

    def sample() -> float:
        stamps.clear()
        gc.collect()
        result = engine.run(initial_input=initial)
        if not result.success or len(stamps) != nodes:
            raise RuntimeError(f"state {state_bytes}/{mode}: {result.status} {result.error}")
        return (stamps[-1] - stamps[0]) * 1e6 / (nodes - 1)

    return sample


# --------------------------------------------------------------------------- running


def alternate(samplers: dict[str, Callable[[], float]], reps: int, warmup: int) -> dict[str, float]:
    """Median µs/node of each sampler, taking one sample of each in turn."""
    got: dict[str, list[float]] = {name: [] for name in samplers}
    for i in range(warmup + reps):
        for name, sample in samplers.items():
            value = sample()
            if i >= warmup:
                got[name].append(value)
    return {name: statistics.median(values) for name, values in got.items()}


def _fmt(value: float) -> str:
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args(argv)
    reps, warmup = (3, 1) if args.quick else (9, 2)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"Python {platform.python_version()} · {os.cpu_count()} CPUs · 1-minute load {load:.2f}",
        file=sys.stderr,
    )

    print("| workload | readonly µs/node | private µs/node | copy µs/node | private / readonly |")
    print("|---|---|---|---|---|")
    for kind in ("chain-1000", "loop-1000"):
        med = alternate({m: isolation_sample(kind, m) for m in MODES}, reps, warmup)
        ratio = med["private"] / med["readonly"]
        verdict = "✓" if ratio <= ISOLATION_LIMIT else "✗ (missed)"
        cells = [_fmt(med[m]) for m in MODES]
        print(f"| {kind} | {' | '.join(cells)} | {ratio:.2f}x (≤ {ISOLATION_LIMIT}x {verdict}) |")

    print()
    print("| mode | nodes | 1 KB state µs/node | 1 MB state µs/node | 1 MB / 1 KB |")
    print("|---|---|---|---|---|")
    for mode in MODES:
        nodes = 20 if mode == "copy" else 1000
        mode_reps, mode_warmup = (min(reps, 3), 1) if mode == "copy" else (reps, warmup)
        samplers = {
            "1kb": size_sample(mode, 1_000, nodes),
            "1mb": size_sample(mode, 1_000_000, nodes),
        }
        med = alternate(samplers, mode_reps, mode_warmup)
        ratio = med["1mb"] / med["1kb"]
        target = ""
        if mode == "private":
            target = f" (≤ {SIZE_LIMIT}x {'✓' if ratio <= SIZE_LIMIT else '✗ (missed)'})"
        print(
            f"| {mode} | {nodes} | {_fmt(med['1kb'])} | {_fmt(med['1mb'])} | {ratio:.2f}x{target} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
