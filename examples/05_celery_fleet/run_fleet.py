"""Start N Celery workers and R runs against a shared Postgres store; report what happened.

    # against your servers
    ZF_PG_DSN=... ZF_BROKER_URL=... python run_fleet.py --workers 4 --runs 200
    # or with a throwaway PostgreSQL + Redis on loopback (a checkout with them installed)
    python run_fleet.py --throwaway --workers 4 --runs 200
    # the benchmark: 10-node pipeline runs through 2 workers
    python run_fleet.py --throwaway --workflow pipeline10 --workers 2 --runs 500
    # the fault drill: SIGKILL worker 0 after 60 handler executions
    python run_fleet.py --throwaway --workflow pipeline10 --node-sleep 0.02 --kill-after 60

``approval`` runs wait for a human at ``approve``; ``approver.py`` answers
them from another process. The script waits until every run has ended and
prints one JSON line: timings, statuses, and how many handler executions
repeated (only the node in flight in a killed worker may run twice).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TERMINAL = ("succeeded", "failed", "cancelled")


@contextmanager
def throwaway_servers() -> Iterator[tuple[str, str]]:
    """PostgreSQL + Redis on free loopback ports (the test suite's helper)."""
    sys.path.insert(0, str(HERE.parent.parent / "tests"))
    from _servers import postgres_server, redis_server

    with postgres_server() as dsn, redis_server() as broker:
        yield dsn, broker


def start_workers(count: int, env: dict[str, str], logs: Path, pool: str = "solo") -> list[Any]:
    """Start ``count`` ``celery -A fleet worker`` processes, one task at a time each."""
    workers = []
    for i in range(count):
        cmd = [sys.executable, "-m", "celery", "-A", "fleet", "worker", f"--pool={pool}"]
        cmd += ["--concurrency=1", f"--hostname=w{i}@%h", "--loglevel=WARNING"]
        cmd += ["--without-gossip", "--without-mingle"]
        with open(logs / f"worker{i}.log", "w") as log:  # the child keeps its own descriptor
            workers.append(
                subprocess.Popen(cmd, cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT)
            )
    return workers


def wait_ready(app: Any, count: int, timeout: float = 60.0) -> None:
    """Wait until ``count`` workers answer a ping."""
    deadline = time.monotonic() + timeout
    while len(app.control.ping(timeout=0.5) or []) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"fewer than {count} workers came up in {timeout:.0f} s")


def stop(processes: list[Any]) -> None:
    for proc in processes:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in processes:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def executions(log: Path) -> list[tuple[str, str, int]]:
    if not log.exists():
        return []
    rows = []
    for line in log.read_text().splitlines():
        fields = line.split()
        if len(fields) != 3 or not fields[2].isdigit():
            continue  # a line torn by the SIGKILL of its writer
        run_id, node, pid = fields
        rows.append((run_id, node, int(pid)))
    return rows


def run_fleet(
    dsn: str,
    broker: str,
    *,
    workers: int = 4,
    runs: int = 200,
    workflow: str = "approval",
    lease_ttl: float = 30.0,
    visibility_timeout: float = 120.0,
    node_sleep: float = 0.0,
    kill_after: int | None = None,
    timeout: float = 600.0,
    schema: str = "fleet",
) -> dict[str, Any]:
    """Drive ``runs`` runs of ``workflow`` through ``workers`` workers; return the numbers."""
    from celery import Celery

    from zeroflow.contrib.celery import send_start
    from zeroflow.contrib.postgres import PostgresWorkflowStore

    work = Path(tempfile.mkdtemp(prefix="zf-fleet-"))
    exec_log = work / "executions.log"
    env = {
        **os.environ,
        "ZF_PG_DSN": dsn,
        "ZF_BROKER_URL": broker,
        "ZF_SCHEMA": schema,
        "ZF_LEASE_TTL": str(lease_ttl),
        "ZF_VISIBILITY_TIMEOUT": str(visibility_timeout),
        "ZF_NODE_SLEEP": str(node_sleep),
        "ZF_EXEC_LOG": str(exec_log),
    }
    store = PostgresWorkflowStore(dsn, schema=schema, lease_ttl_seconds=lease_ttl)
    store.drop_schema()  # a fresh schema for every fleet run
    store = PostgresWorkflowStore(dsn, schema=schema, lease_ttl_seconds=lease_ttl)
    app = Celery("driver", broker=broker)
    app.conf.broker_connection_retry_on_startup = True
    with ExitStack() as stack:
        procs = start_workers(workers, env, work)
        stack.callback(stop, procs)
        wait_ready(app, workers)
        approvals = 0 if workflow != "pipeline10" else None
        if workflow == "approval":
            approver = subprocess.Popen(
                [sys.executable, "approver.py", "--expect", str(runs), "--timeout", str(timeout)],
                cwd=HERE,
                env=env,
            )
            stack.callback(stop, [approver])
        began = time.perf_counter()
        for i in range(runs):
            send_start(app, workflow, {"amount": 100.0 * (i % 25)}, run_id=f"r{i:04d}")
        sent = time.perf_counter()
        killed: dict[str, Any] | None = None
        deadline = time.monotonic() + timeout
        while True:
            if kill_after is not None and killed is None:
                done_so_far = executions(exec_log)
                if len(done_so_far) >= kill_after:
                    victim = procs[0]
                    os.kill(victim.pid, signal.SIGKILL)
                    victim.wait()
                    # Read the log again after the kill: the victim may have started
                    # another node between the read above and the signal.
                    after_kill = executions(exec_log)
                    in_flight = [r for r in after_kill if r[2] == victim.pid][-1:]
                    killed = {
                        "pid": victim.pid,
                        "after_executions": len(after_kill),
                        "last_started": list(in_flight[0][:2]) if in_flight else None,
                        "at_seconds": round(time.perf_counter() - began, 3),
                    }
            ended = sum(len(store.list_metadata(workflow, status=s)) for s in TERMINAL)
            if ended >= runs:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {ended} of {runs} runs ended within {timeout:.0f} s")
            time.sleep(0.05)
        elapsed = time.perf_counter() - began
        if workflow == "approval":
            approver.wait(timeout=30)
            approvals = runs
    statuses = collections.Counter(m.status for m in store.list_metadata(workflow))
    per_node = collections.Counter((r, n) for r, n, _ in executions(exec_log))
    # Each execution the run kept left one audit record (a wait, then the answer's, for
    # ``approve``); an execution beyond those is one a crash made the fleet repeat.
    recorded: collections.Counter[tuple[str, str]] = collections.Counter()
    for i in range(runs):
        run_id = f"r{i:04d}"
        recorded.update((run_id, rec.node) for rec in store.load_snapshot(run_id).audit_trail)
    repeated = sorted(
        [r, n, c - recorded[r, n]] for (r, n), c in per_node.items() if c > recorded[r, n]
    )
    store.close()
    return {
        "workflow": workflow,
        "workers": workers,
        "runs": runs,
        "statuses": dict(statuses),
        "approvals": approvals,
        "seconds": round(elapsed, 3),
        "send_seconds": round(sent - began, 3),
        "runs_per_second": round(runs / elapsed, 1),
        "handler_executions": sum(per_node.values()),
        "repeated_executions": repeated,
        "killed": killed,
        "logs": str(work),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--workflow", choices=["approval", "pipeline10"], default="approval")
    parser.add_argument("--throwaway", action="store_true", help="start PostgreSQL + Redis here")
    parser.add_argument("--lease-ttl", type=float, default=30.0)
    parser.add_argument("--visibility-timeout", type=float, default=120.0)
    parser.add_argument("--node-sleep", type=float, default=0.0)
    parser.add_argument("--kill-after", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    options = {
        "workers": args.workers,
        "runs": args.runs,
        "workflow": args.workflow,
        "lease_ttl": args.lease_ttl,
        "visibility_timeout": args.visibility_timeout,
        "node_sleep": args.node_sleep,
        "kill_after": args.kill_after,
        "timeout": args.timeout,
    }
    if args.throwaway:
        with throwaway_servers() as (dsn, broker):
            report = run_fleet(dsn, broker, **options)
    else:
        report = run_fleet(
            os.environ["ZF_PG_DSN"],
            os.environ.get("ZF_BROKER_URL", "redis://127.0.0.1:6379/0"),
            **options,
        )
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
