"""Console benchmark: how long one runs page takes over 100,000 runs (SQLite, JSON files).

A SQLite store gets a few dozen real runs (started, paused, failed and
finished through the engine, of three workflows), which are then copied, row
for row and table for table, to ``--runs`` run ids with spread-out update
times: the same rows the store writes, many times over. Then, median of
``--repeat`` calls each:

* ``query_runs`` (``RunQueryStore``): the first page, a deep page, each filter
  of the runs page (status, workflow, run-id prefix, due);
* the whole runs page over HTTP (``GET /`` of ``zeroflow.console``: the query,
  the step of each listed run, the HTML);
* for comparison, ``list_metadata()``, which loads every run's summary.

``--store json`` does the same over a JSON file store: the seed runs' latest
snapshots are saved again through the store (``save_snapshot``) under
``--runs`` run ids with spread-out update times, so every run folder and
every line of ``listing.jsonl`` is one the store wrote. The first page is
also timed on a fresh store instance (``cold``: the index read from disk).

Usage::

    uv run python benchmarks/console.py                 # 100,000 runs, SQLite (~1 min)
    uv run python benchmarks/console.py --store json    # 100,000 JSON runs (~2 min)
    uv run python benchmarks/console.py --runs 10000 --repeat 3
"""

from __future__ import annotations

import argparse
import http.client
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zeroflow import HandlerResult, RunQuery, WorkflowContext, WorkflowEngine
from zeroflow.console import make_server
from zeroflow.stores import JsonFileWorkflowStore, SqliteWorkflowStore


def _flow(name: str) -> dict[str, Any]:
    return {
        "workflow_name": name,
        "default_entry_node": "fetch",
        "nodes": {
            "fetch": {"handler": "fetch", "outputs": {"ok": [{"target_node": "review"}]}},
            "review": {
                "kind": "wait",
                "wait": {"prompt": "ok?", "resume_as": "review"},
                "outputs": {"ok": [{"target_node": "store"}]},
            },
            "store": {"handler": "store", "outputs": {}},
        },
    }


def fetch(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"], workflow_updates={"rows": list(range(20))})


def store_rows(ctx: WorkflowContext) -> HandlerResult:
    if ctx.state.workflow.get("review", {}).get("fail"):
        raise RuntimeError("disk full")
    return HandlerResult(outputs=[])


def seed(path: Path, total: int) -> int:
    """Real runs through the engine, then copies of their rows up to ``total`` runs."""
    store = SqliteWorkflowStore(path)
    handlers = {"fetch": fetch, "store": store_rows}
    seeds = 0
    for name in ("billing", "onboarding", "reports"):
        engine = WorkflowEngine(_flow(name), handlers, store=store)
        for i in range(10):
            run_id = f"seed-{name}-{i}"
            engine.run(run_id=run_id)
            if i % 3 == 1:
                engine.resume(run_id, resume_input={"fail": i % 2 == 0})
            seeds += 1
    store.close()
    db = sqlite3.connect(path)
    with db:
        ids = [r[0] for r in db.execute("SELECT run_id FROM runs")]
        copies = [(f"run-{n:07d}", ids[n % len(ids)], n) for n in range(total - len(ids))]
        db.execute("CREATE TEMP TABLE copies (new TEXT, old TEXT, n INTEGER)")
        db.executemany("INSERT INTO copies VALUES (?, ?, ?)", copies)
        db.execute(
            "INSERT INTO runs SELECT c.new, r.workflow_name, r.workflow_hash, r.status, "
            "r.started_at, strftime('%Y-%m-%dT%H:%M:%S+00:00', 1700000000 + c.n * 7, "
            "'unixepoch'), r.current_node, r.last_error, r.base_seq, r.saved_at "
            "FROM copies c JOIN runs r ON r.run_id = c.old"
        )
        for table in ("checkpoints", "snapshots"):
            cols = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
            rest = ", ".join(f"t.{c}" for c in cols[1:])
            db.execute(
                f"INSERT INTO {table} SELECT c.new, {rest} FROM copies c "
                f"JOIN {table} t ON t.run_id = c.old"
            )
    db.execute("ANALYZE")
    db.close()
    return seeds


def seed_json(path: Path, total: int) -> int:
    """Real runs through the engine, then their latest snapshots saved under ``total`` ids."""
    store = JsonFileWorkflowStore(path)
    handlers = {"fetch": fetch, "store": store_rows}
    seeds = []
    for name in ("billing", "onboarding", "reports"):
        engine = WorkflowEngine(_flow(name), handlers, store=store)
        for i in range(10):
            run_id = f"seed-{name}-{i}"
            engine.run(run_id=run_id)
            if i % 3 == 1:
                engine.resume(run_id, resume_input={"fail": i % 2 == 0})
            seeds.append(store.load_snapshot(run_id))
    for n in range(total - len(seeds)):
        snap = seeds[n % len(seeds)]
        snap.run_id = f"run-{n:07d}"
        snap.seq = None
        snap.updated_at = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(1700000000 + n * 7))
        store.save_snapshot(snap)
    store.close()
    return len(seeds)


def median_ms(work: Callable[[], object], repeat: int) -> float:
    work()  # warm the page cache
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--store", choices=("sqlite", "json"), default="sqlite")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        store: Any
        rows: list[tuple[str, float, str]] = []
        if args.store == "json":
            path = Path(tmp) / "runs"
            seed_json(path, args.runs)
            kind = "JSON files"

            def cold() -> None:
                JsonFileWorkflowStore(path).query_runs(RunQuery())

            store = JsonFileWorkflowStore(path)
        else:
            path = Path(tmp) / "runs.sqlite"
            seed(path, args.runs)
            kind = "SQLite"
            store = SqliteWorkflowStore(path)
        print(f"seeded {args.runs:,} runs in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        if args.store == "json":
            rows.append(("query_runs: first page, fresh store (cold)", median_ms(cold, 3), ""))
        deep = (args.runs // 2) // 50 * 50
        deepest = max(0, (args.runs - 50) // 50 * 50)
        queries = {
            "first page (50 newest)": RunQuery(),
            f"deep page (offset {deep:,})": RunQuery(offset=deep),
            f"last page (offset {deepest:,})": RunQuery(offset=deepest),
            "status=waiting": RunQuery(statuses=("waiting",)),
            "status=failed, page 20": RunQuery(statuses=("failed",), offset=950),
            "workflow=billing": RunQuery(workflow_name="billing"),
            "workflow=billing, status=failed": RunQuery(
                workflow_name="billing", statuses=("failed",)
            ),
            "run id prefix 'run-00123'": RunQuery(run_id_prefix="run-00123"),
            "due (running/waiting, old)": RunQuery(
                statuses=("running", "waiting"), updated_before="2023-11-20T00:00:00+00:00"
            ),
        }
        for label, query in queries.items():
            page = store.query_runs(query)
            ms = median_ms(lambda q=query: store.query_runs(q), args.repeat)  # type: ignore[misc]
            rows.append((f"query_runs: {label}", ms, f"{len(page.runs)} of {page.total:,}"))
        server = make_server(store, port=0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        host, port = str(server.server_address[0]), int(server.server_address[1])

        def get(path: str) -> None:
            conn = http.client.HTTPConnection(host, port, timeout=60)
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200, resp.status
            conn.close()

        for path in ("/", "/?status=waiting&page=40", f"/?page={deep // 50 + 1}"):
            rows.append(
                (f"GET {path} (whole page)", median_ms(lambda p=path: get(p), args.repeat), "")
            )  # type: ignore[misc]
        server.shutdown()
        server.server_close()
        rows.append(
            (
                "list_metadata() (every run)",
                median_ms(store.list_metadata, max(1, args.repeat // 3)),
                "",
            )
        )
        store.close()
    print(f"| {args.runs:,} runs, {kind} | median ms | rows |")
    print("|---|---:|---|")
    for label, ms, note in rows:
        print(f"| {label} | {ms:.1f} | {note} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
