"""Machine instructions per node, counted by valgrind: a measure a busy machine cannot move.

Wall-clock figures on a shared 2-vCPU VM drift by 2-3x from minute to minute;
an instruction count does not. Each workload runs under ``valgrind
--tool=callgrind`` twice, at ``--small`` and ``--large`` nodes, in a fresh
interpreter with ``PYTHONHASHSEED=0``; the difference divided by the extra nodes
is what one more node costs, start-up and the run's one-off work cancelled out.
The floor is the handler itself, called in a bare loop with a minimal stand-in
context (as ``run.py``'s ``floor-1000``), so the ratio column says how many bare
calls of the same handler a node costs. Instructions are not time (cache misses,
allocation and the garbage collector's pauses weigh differently), so the
timed benchmarks stay the reference; this one shows whether a change made the
per-node path longer or shorter, exactly, and by how much.

Usage::

    uv run python benchmarks/instructions.py                 # every workload (~3 min)
    uv run python benchmarks/instructions.py --only none --only memory
    uv run python benchmarks/instructions.py --tree /tmp/base   # another checkout's src/
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

WORKLOADS = {
    "floor": "the loop handler in a bare Python loop (the floor)",
    "none": "self-loop, no store, state_isolation private (the default)",
    "readonly": "self-loop, no store, state_isolation readonly",
    "memory": "self-loop, InMemoryWorkflowStore",
    "json": "self-loop, JsonFileWorkflowStore (durability sync)",
    "sqlite": "self-loop, SqliteWorkflowStore (durability sync)",
    "memory-batch": "self-loop, InMemoryWorkflowStore, durability batch",
    "json-batch": "self-loop, JsonFileWorkflowStore, durability batch",
    "sqlite-batch": "self-loop, SqliteWorkflowStore, durability batch",
    "map": "map over trivial items, InMemoryWorkflowStore, max_concurrency 1 (per item)",
}


def _worker(kind: str, n: int) -> None:
    """Run one workload of ``n`` nodes (in the child, under valgrind)."""
    from zeroflow import (
        Durability,
        HandlerResult,
        InMemoryWorkflowStore,
        JsonFileWorkflowStore,
        WorkflowEngine,
    )
    from zeroflow.stores import SqliteWorkflowStore

    def count(ctx: Any) -> HandlerResult:
        k = ctx.node_state.get("k", 0) + 1
        return HandlerResult(["again" if k < n else "done"], node_updates={"k": k})

    if kind == "floor":

        class Ctx:
            __slots__ = ("node_state",)

            def __init__(self) -> None:
                self.node_state: dict[str, Any] = {}

        for _ in range(n):
            count(Ctx())
        return
    if kind == "map":
        mapped = {
            "workflow_name": "map",
            "default_entry_node": "each",
            "nodes": {
                "each": {
                    "handler": "item",
                    "map": {"over": "input.items", "max_concurrency": 1},
                    "outputs": {"ok": []},
                }
            },
        }

        def item(ctx: Any) -> HandlerResult:
            return HandlerResult(outputs=["ok"], node_updates={"v": ctx.item + 1})

        engine = WorkflowEngine(mapped, {"item": item}, store=InMemoryWorkflowStore())
        assert engine.run({"items": list(range(n))}).success
        return
    loop: dict[str, Any] = {
        "workflow_name": "loop",
        "default_entry_node": "a",
        "nodes": {
            "a": {
                "handler": "count",
                "outputs": {"again": [{"target_node": "a", "is_loopback": True}], "done": []},
            }
        },
    }
    if kind == "readonly":
        loop["engine_policy"] = {"state_isolation": "readonly"}
    tmp = Path(tempfile.mkdtemp(prefix="zf-instr-"))
    store: Any = None
    kind, _, mode = kind.partition("-")
    if kind == "memory":
        store = InMemoryWorkflowStore()
    elif kind == "json":
        store = JsonFileWorkflowStore(tmp / "runs")
    elif kind == "sqlite":
        store = SqliteWorkflowStore(tmp / "runs.db")
    try:
        # batch: 256 nodes a commit, as on a machine where 256 nodes take under 10 ms
        # (valgrind runs 50x slower: the time bound would commit every few nodes).
        durability = Durability(mode, max_ms=1e9) if mode else "sync"
        engine = WorkflowEngine(loop, {"count": count}, store=store, durability=durability)
        assert engine.run().success
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _count(tree: Path, kind: str, n: int) -> int:
    """Instructions valgrind counted for one child running ``kind`` at ``n`` nodes."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(tree / "src")}
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--worker",
            kind,
            str(n),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{kind} at {n} nodes failed: {done.stderr[-2000:]}")
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"valgrind printed no count for {kind}: {done.stderr[-500:]}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--only", action="append", choices=sorted(WORKLOADS))
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=3000)
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker[0], int(args.worker[1]))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    kinds = args.only or list(WORKLOADS)
    if "floor" not in kinds:
        kinds = ["floor", *kinds]
    jobs = [(kind, n) for kind in kinds for n in (args.small, args.large)]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        counts = dict(zip(jobs, pool.map(lambda job: _count(args.tree, *job), jobs), strict=True))
    extra = args.large - args.small
    per = {k: (counts[(k, args.large)] - counts[(k, args.small)]) / extra for k in kinds}
    python = sys.version.split()[0]
    print(f"tree: {args.tree} · {args.small} and {args.large} nodes · Python {python}")
    print()
    print("| workload | instructions per node | x floor | what |")
    print("|---|---:|---:|---|")
    for kind in kinds:
        ratio = per[kind] / per["floor"]
        print(f"| {kind} | {per[kind]:,.0f} | {ratio:.1f}x | {WORKLOADS[kind]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
