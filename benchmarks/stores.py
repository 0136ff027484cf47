"""Store benchmark: median microseconds per node of a self-loop, with each shipped store.

One node loops on itself N times (100, 1,000, 10,000), writing a counter into
its node state every iteration, while the engine checkpoints every node to:

* ``memory``       ``InMemoryWorkflowStore()``;
* ``json``         ``JsonFileWorkflowStore(tmp)`` (default durability: flush);
* ``json-fsync``   ``JsonFileWorkflowStore(tmp, fsync=True)`` (100 and 1,000 only);
* ``sqlite``       ``SqliteWorkflowStore(tmp / "runs.db")`` (a file, WAL);

and the memory, JSON and SQLite stores again with ``durability="batch"``
(checkpoints grouped, at most 256 nodes or 10 ms apart) and ``"exit"``.

Each cell is the median of several runs, each in a fresh temporary folder,
timed around ``engine.run()`` (start, every node, the final save). The last
column is the ratio between the 10,000- and the 100-iteration figure: a
store whose cost per node grew with the run's length would show it there.

A second table measures the floors below which no store of that kind can
go, in the same temporary folder, just before: one line appended to a file
(``os.write``), a SQLite WAL transaction of one small ``INSERT`` (what the
SQLite store does once per node), one ``fsync``, and the engine with no store
at all. This machine's speed drifts from minute to minute; compare a store's
row with the floors of the same run.

A last line gives the bytes the in-memory store holds per step after a
10,000-iteration run (``tracemalloc``: what deleting the run gives back).

Usage::

    uv run python benchmarks/stores.py            # ~2 min
    uv run python benchmarks/stores.py --quick    # fewer repetitions
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zeroflow import HandlerResult, InMemoryWorkflowStore, JsonFileWorkflowStore, WorkflowEngine
from zeroflow.stores import SqliteWorkflowStore

SIZES = (100, 1_000, 10_000)
STORES: dict[str, Callable[[Path], Any]] = {
    "none": lambda tmp: None,
    "memory": lambda tmp: InMemoryWorkflowStore(),
    "json": lambda tmp: JsonFileWorkflowStore(tmp / "runs"),
    "json-fsync": lambda tmp: JsonFileWorkflowStore(tmp / "runs", fsync=True),
    "sqlite": lambda tmp: SqliteWorkflowStore(tmp / "runs.db"),
}
SKIP = {("json-fsync", 10_000)}
TABLE = [(name, "sync") for name in STORES if name != "none"] + [
    (name, mode) for mode in ("batch", "exit") for name in ("memory", "json", "sqlite")
]


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


def measure(store_name: str, iterations: int, durability: str = "sync") -> float:
    """Microseconds per node of one run, in a fresh temporary folder."""

    def tick(ctx: Any) -> HandlerResult:
        n = ctx.node_state.get("n", 0) + 1
        return HandlerResult(["again" if n < iterations else "done"], node_updates={"n": n})

    tmp = Path(tempfile.mkdtemp(prefix="zf-bench-"))
    try:
        store = STORES[store_name](tmp)
        engine = WorkflowEngine(
            loop_definition(), {"tick": tick}, store=store, durability=durability
        )
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


def held_per_step(iterations: int = 10_000) -> float:
    """Bytes the in-memory store holds per step of one run (freed when the run is deleted)."""

    def tick(ctx: Any) -> HandlerResult:
        n = ctx.node_state.get("n", 0) + 1
        return HandlerResult(["again" if n < iterations else "done"], node_updates={"n": n})

    store = InMemoryWorkflowStore()
    engine = WorkflowEngine(loop_definition(), {"tick": tick}, store=store)
    gc.collect()
    tracemalloc.start()
    try:
        engine.run({}, run_id="bench")
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0]
        store.delete_run("bench")
        gc.collect()
        return (kept - tracemalloc.get_traced_memory()[0]) / iterations
    finally:
        tracemalloc.stop()


def _floor_append(folder: Path, n: int) -> float:
    fd = os.open(folder / "lines.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    line = b'{"kind": "node:end", "data": {"node": "tick", "outputs": ["again"]}}\n'
    try:
        started = time.perf_counter()
        for _ in range(n):
            os.write(fd, line)
        return (time.perf_counter() - started) / n * 1e6
    finally:
        os.close(fd)


def _floor_sqlite(folder: Path, n: int) -> float:
    db = sqlite3.connect(folder / "floor.db", isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS t "
            "(run_id TEXT, seq INTEGER, body TEXT, PRIMARY KEY (run_id, seq))"
        )
        body = "x" * 100
        first = db.execute("SELECT count(*) FROM t").fetchone()[0]
        started = time.perf_counter()
        for seq in range(first, first + n):
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO t VALUES (?, ?, ?)", ("bench", seq, body))
            db.execute("COMMIT")
        return (time.perf_counter() - started) / n * 1e6
    finally:
        db.close()


def _floor_fsync(folder: Path, n: int) -> float:
    fd = os.open(folder / "synced", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        started = time.perf_counter()
        for _ in range(n):
            os.write(fd, b"x\n")
            os.fsync(fd)
        return (time.perf_counter() - started) / n * 1e6
    finally:
        os.close(fd)


def floors() -> list[tuple[str, float]]:
    """The floors table's rows: (what, median µs) in a fresh temporary folder."""
    tmp = Path(tempfile.mkdtemp(prefix="zf-floor-"))
    try:
        out = []
        for what, fn, n in (
            ("appended line (os.write)", _floor_append, 5_000),
            ("SQLite WAL transaction, one small INSERT", _floor_sqlite, 2_000),
            ("fsync", _floor_fsync, 100),
        ):
            out.append((what, statistics.median(fn(tmp, n) for _ in range(5))))
        measure("none", 100)
        out.append(
            (
                "engine, no store (µs/node, 1,000 it.)",
                statistics.median(measure("none", 1_000) for _ in range(5)),
            )
        )
        return out
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
    floor_rows = ["| floor | µs |", "|---|---|"]
    for what, value in floors():
        floor_rows.append(f"| {what} | {value:,.1f} |")
        print(f"floor {what}: {value:.1f} µs", file=sys.stderr)
    header = "| store | " + " | ".join(f"{n:,} it. µs/node" for n in SIZES) + " | 10k / 100 |"
    rows = [header, "|" + "---|" * (len(SIZES) + 2)]
    for name, mode in TABLE:
        cells: dict[int, float] = {}
        label = name if mode == "sync" else f"{name}, durability={mode}"
        for n in SIZES:
            if (name, n) in SKIP:
                continue
            measure(name, min(n, 100), mode)  # warm-up: imports, file system caches
            samples = [measure(name, n, mode) for _ in range(repetitions(n, args.quick))]
            cells[n] = statistics.median(samples)
            print(f"{label:26s} {n:>6,}: {cells[n]:8.1f} µs/node", file=sys.stderr)
        text = [f"{cells[n]:,.1f}" if n in cells else "—" for n in SIZES]
        ratio = f"{cells[10_000] / cells[100]:.2f}x" if 10_000 in cells else "—"
        rows.append(f"| {label} | " + " | ".join(text) + f" | {ratio} |")
    print("\n".join(rows))
    print()
    print("\n".join(floor_rows))
    held = held_per_step()
    print(f"\nmemory store, 10,000 it.: {held:,.0f} bytes held per step")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
