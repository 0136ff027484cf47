"""Paired A/B: the self-loop's µs per node under two (or more) source trees, alternating.

Each round runs every tree once, in a fresh interpreter with
``PYTHONPATH=<tree>/src``, in alternating order, so a slow minute of this
shared machine hits every tree alike; the table shows each tree's median and
its ratio to the first. Typical use, against the commit a change started from::

    git worktree add /tmp/base <commit>
    uv run python benchmarks/ab.py /tmp/base . --store json --iterations 1000 --rounds 8

A tree may name the ``state_isolation`` its runs use (``TREE@readonly``), and
``--handler state`` swaps the counting handler for ``run.py``'s loop handler,
which reads ``state.node`` and ``state.input`` (what a private view copies)::

    uv run python benchmarks/ab.py /tmp/base@readonly .@private --handler state
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STORES = ("none", "memory", "json", "sqlite")


def _worker(
    store_kind: str, iterations: int, reps: int, isolation: str | None, handler: str
) -> float:
    """Median µs per node of ``reps`` self-loops with ``store_kind`` (runs in the child)."""
    from zeroflow import HandlerResult, InMemoryWorkflowStore, JsonFileWorkflowStore, WorkflowEngine
    from zeroflow.stores import SqliteWorkflowStore

    loop = {
        "workflow_name": "loop",
        "default_entry_node": "a",
        "nodes": {
            "a": {
                "handler": "count",
                "outputs": {"again": [{"target_node": "a", "is_loopback": True}], "done": []},
            }
        },
    }

    if isolation is not None:
        loop["engine_policy"] = {"state_isolation": isolation}

    def count(ctx: Any) -> HandlerResult:
        if handler == "state":  # run.py's loop handler: three levels of state read
            k = ctx.state.node.get(ctx.node_name, {}).get("k", 0) + 1
            label = "again" if k < ctx.state.input["iterations"] else "done"
            return HandlerResult([label], node_updates={"k": k})
        k = ctx.node_state.get("k", 0) + 1
        return HandlerResult(["again" if k < iterations else "done"], node_updates={"k": k})

    samples = []
    for rep in range(reps):
        tmp = Path(tempfile.mkdtemp(prefix="zf-ab-"))
        store: Any = None
        if store_kind == "memory":
            store = InMemoryWorkflowStore()
        elif store_kind == "json":
            store = JsonFileWorkflowStore(tmp / "runs")
        elif store_kind == "sqlite":
            store = SqliteWorkflowStore(tmp / "runs.db")
        engine = WorkflowEngine(loop, {"count": count}, store=store)
        gc.collect()
        started = time.perf_counter()
        result = engine.run({"iterations": iterations}, run_id=f"r{rep}")
        samples.append((time.perf_counter() - started) / iterations * 1e6)
        assert result.success
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("trees", nargs="+", help="source trees (each holding src/zeroflow)")
    parser.add_argument("--store", choices=STORES, default="none")
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--reps", type=int, default=3, help="loops per interpreter")
    parser.add_argument("--handler", choices=("count", "state"), default="count")
    parser.add_argument("--isolation", help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(_worker(args.store, args.iterations, args.reps, args.isolation, args.handler))
        return 0
    trees: list[tuple[str, str]] = []  # (tree, its state_isolation or "")
    for spec in args.trees:
        tree, _, isolation = spec.partition("@")
        trees.append((str(Path(tree).resolve()), isolation))
    results: dict[tuple[str, str], list[float]] = {t: [] for t in trees}
    for round_ in range(args.rounds):
        for tree, isolation in trees if round_ % 2 == 0 else trees[::-1]:
            env = dict(os.environ, PYTHONPATH=f"{tree}/src")
            command = [sys.executable, __file__, tree, "--worker", "--store", args.store]
            command += ["--iterations", str(args.iterations), "--reps", str(args.reps)]
            command += ["--handler", args.handler]
            if isolation:
                command += ["--isolation", isolation]
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            results[(tree, isolation)].append(float(done.stdout))
    first = statistics.median(results[trees[0]])
    print(f"| tree | store | µs/node (median of {args.rounds}) | ratio |")
    print("|---|---|---|---|")
    for tree, isolation in trees:
        median = statistics.median(results[(tree, isolation)])
        shown = f"{tree}@{isolation}" if isolation else tree
        print(f"| {shown} | {args.store} | {median:.1f} | {median / first:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
