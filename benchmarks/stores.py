"""Store benchmark: median microseconds per node of a self-loop, with each shipped store.

One node loops on itself N times (100, 1,000, 10,000), writing a counter into
its node state every iteration, while the engine checkpoints every node to:

* ``memory``       ``InMemoryWorkflowStore()``;
* ``json``         ``JsonFileWorkflowStore(tmp)`` (default durability: flush);
* ``json-fsync``   ``JsonFileWorkflowStore(tmp, fsync=True)`` (100 and 1,000 only);
* ``sqlite``       ``SqliteWorkflowStore(tmp / "runs.db")`` (a file, WAL).

Each cell is the median of several runs, each in a fresh temporary folder,
timed around ``engine.run()`` (start, every node, the final save). The last
column is the ratio between the 10,000- and the 100-iteration figure: a
store whose cost per node grew with the run's length would show it there.

Usage::

    uv run python benchmarks/stores.py            # ~2 min
    uv run python benchmarks/stores.py --quick    # fewer repetitions
"""

from __future__ import annotations

import argparse
import gc
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zeroflow import HandlerResult, InMemoryWorkflowStore, JsonFileWorkflowStore, WorkflowEngine
from zeroflow.stores import SqliteWorkflowStore

SIZES = (100, 1_000, 10_000)
STORES: dict[str, Callable[[Path], Any]] = {
    "memory": lambda tmp: InMemoryWorkflowStore(),
    "json": lambda tmp: JsonFileWorkflowStore(tmp / "runs"),
    "json-fsync": lambda tmp: JsonFileWorkflowStore(tmp / "runs", fsync=True),
    "sqlite": lambda tmp: SqliteWorkflowStore(tmp / "runs.db"),
}
SKIP = {("json-fsync", 10_000)}


def loop_definition() -> dict[str, Any]:
    return {
        "workflow_name": "self_loop",
        "default_entry_node": "tick",
        "nodes": {
            "tick": {
                "handler": "tick",
                "outputs": {"again": [{"target_node": "tick", "is_loopback": True}], "done": []},
            }
        },
    }


def measure(store_name: str, iterations: int) -> float:
    """Microseconds per node of one run, in a fresh temporary folder."""

    def tick(ctx: Any) -> HandlerResult:
        n = ctx.node_state.get("n", 0) + 1
        return HandlerResult(["again" if n < iterations else "done"], node_updates={"n": n})

    tmp = Path(tempfile.mkdtemp(prefix="zf-bench-"))
    try:
        store = STORES[store_name](tmp)
        engine = WorkflowEngine(loop_definition(), {"tick": tick}, store=store)
        gc.collect()
        started = time.perf_counter()
        result = engine.run({}, run_id="bench")
        elapsed = time.perf_counter() - started
        assert result.success and len(result.trace) == iterations, result.status
        close = getattr(store, "close", None)
        if close is not None:
            close()
        return elapsed / iterations * 1e6
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def repetitions(iterations: int, quick: bool) -> int:
    base = {100: 15, 1_000: 11, 10_000: 5}[iterations]
    return max(1, base // 3) if quick else base


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args(argv)
    print(
        f"python {platform.python_version()} on {platform.platform()}, "
        f"temp dir {tempfile.gettempdir()}",
        file=sys.stderr,
    )
    header = "| store | " + " | ".join(f"{n:,} it. µs/node" for n in SIZES) + " | 10k / 100 |"
    rows = [header, "|" + "---|" * (len(SIZES) + 2)]
    for name in STORES:
        cells: dict[int, float] = {}
        for n in SIZES:
            if (name, n) in SKIP:
                continue
            measure(name, min(n, 100))  # warm-up: imports, file system caches
            samples = [measure(name, n) for _ in range(repetitions(n, args.quick))]
            cells[n] = statistics.median(samples)
            print(f"{name:10s} {n:>6,}: {cells[n]:8.1f} µs/node", file=sys.stderr)
        text = [f"{cells[n]:,.1f}" if n in cells else "—" for n in SIZES]
        ratio = f"{cells[10_000] / cells[100]:.2f}x" if 10_000 in cells else "—"
        rows.append(f"| {name} | " + " | ".join(text) + f" | {ratio} |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
