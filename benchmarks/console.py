"""Console benchmark: how long one runs page takes over 100,000 runs in a SQLite store.

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

Usage::

    uv run python benchmarks/console.py                 # 100,000 runs (~1 min)
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
from zeroflow.stores import SqliteWorkflowStore


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
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "runs.sqlite"
        start = time.perf_counter()
        seed(path, args.runs)
        print(f"seeded {args.runs:,} runs in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        store = SqliteWorkflowStore(path)
        deep = (args.runs // 2) // 50 * 50
        queries = {
            "first page (50 newest)": RunQuery(),
            f"deep page (offset {deep:,})": RunQuery(offset=deep),
            "status=waiting": RunQuery(statuses=("waiting",)),
            "status=failed, page 20": RunQuery(statuses=("failed",), offset=950),
            "workflow=billing": RunQuery(workflow_name="billing"),
            "run id prefix 'run-00123'": RunQuery(run_id_prefix="run-00123"),
            "due (running/waiting, old)": RunQuery(
                statuses=("running", "waiting"), updated_before="2023-11-20T00:00:00+00:00"
            ),
        }
        rows = []
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
    print(f"| {args.runs:,} runs, SQLite | median ms | rows |")
    print("|---|---:|---|")
    for label, ms, note in rows:
        print(f"| {label} | {ms:.1f} | {note} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
