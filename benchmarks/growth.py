"""Growth: does a node cost more late in a long run, and what does each step leave behind?

For every store (none, memory, JSON, SQLite) and durability (``sync``,
``batch``), one self-loop runs 1,000 and then 100,000 iterations, each in a
fresh interpreter. The table shows µs per node at both lengths and their
ratio (the issue's bar: within 1.2x), the resident memory the process grew
by per step (RSS from ``/proc/self/statm``, after the run, the engine and
the result still alive), and the bytes per step the store left on disk.

Usage::

    uv run python benchmarks/growth.py                 # ~2 min
    uv run python benchmarks/growth.py --short 1000 --long 20000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STORES = ("none", "memory", "json", "sqlite")
MODES = ("sync", "batch")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _worker(store_kind: str, mode: str, iterations: int) -> dict[str, float]:
    """One run in this (fresh) process: µs per node, RSS growth and disk bytes per step."""
    from zeroflow import HandlerResult, InMemoryWorkflowStore, JsonFileWorkflowStore, WorkflowEngine
    from zeroflow.stores import SqliteWorkflowStore

    definition = {
        "workflow_name": "growth",
        "default_entry_node": "tick",
        "nodes": {
            "tick": {
                "handler": "tick",
                "outputs": {"again": [{"target_node": "tick", "is_loopback": True}], "done": []},
            }
        },
    }

    def tick(ctx: Any) -> HandlerResult:
        n = ctx.node_state.get("n", 0) + 1
        return HandlerResult(["again" if n < iterations else "done"], node_updates={"n": n})

    tmp = Path(tempfile.mkdtemp(prefix="zf-growth-"))
    try:
        store: Any = {
            "none": lambda: None,
            "memory": InMemoryWorkflowStore,
            "json": lambda: JsonFileWorkflowStore(tmp / "runs"),
            "sqlite": lambda: SqliteWorkflowStore(tmp / "runs.db"),
        }[store_kind]()
        engine = WorkflowEngine(definition, {"tick": tick}, store=store, durability=mode)
        before = _rss_bytes()
        started = time.perf_counter()
        result = engine.run({}, run_id="growth")
        elapsed = time.perf_counter() - started
        grown = _rss_bytes() - before
        assert result.success and len(result.trace) == iterations, result.status
        disk = _disk_bytes(tmp)
        return {
            "us_per_node": elapsed / iterations * 1e6,
            "rss_per_step": grown / iterations,
            "disk_per_step": disk / iterations,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(store_kind: str, mode: str, iterations: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", store_kind, mode, str(iterations)],
        check=True,
        capture_output=True,
        text=True,
    )
    data: dict[str, float] = json.loads(out.stdout)
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", type=int, default=1_000, help="iterations of the short run")
    parser.add_argument("--long", type=int, default=100_000, help="iterations of the long run")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, mode, n = args.worker
        print(json.dumps(_worker(kind, mode, int(n))))
        return 0
    rows = [
        f"| store | durability | {args.short:,} it. µs/node | {args.long:,} it. µs/node | "
        "long / short | RSS bytes/step | disk bytes/step |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for kind in STORES:
        for mode in MODES if kind != "none" else ("sync",):
            short = _run(kind, mode, args.short)
            long = _run(kind, mode, args.long)
            ratio = long["us_per_node"] / short["us_per_node"]
            print(
                f"{kind:7s} {mode:5s} {short['us_per_node']:7.1f} {long['us_per_node']:7.1f} "
                f"{ratio:5.2f}x",
                file=sys.stderr,
            )
            rows.append(
                f"| {kind} | {mode if kind != 'none' else '—'} | {short['us_per_node']:,.1f} | "
                f"{long['us_per_node']:,.1f} | {ratio:.2f}x | {long['rss_per_step']:,.0f} | "
                f"{long['disk_per_step']:,.0f} |"
            )
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
