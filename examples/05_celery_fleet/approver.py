"""The humans: a separate process that answers waiting approvals through the broker.

It reads the shared store to find runs waiting at ``approve`` (as a review
screen would) and answers each with ``send_resume``, which needs only the
broker: this process registers no tasks and builds no engine. Run ids ending
in ``0`` are rejected, the others approved.

    python approver.py --expect 200   # ZF_PG_DSN and ZF_BROKER_URL as for the workers
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from celery import Celery

from zeroflow.contrib.celery import send_resume
from zeroflow.contrib.postgres import PostgresWorkflowStore


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--expect", type=int, required=True, help="answers to send, then exit")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    app = Celery("approver", broker=os.environ.get("ZF_BROKER_URL", "redis://127.0.0.1:6379/0"))
    store = PostgresWorkflowStore(
        os.environ["ZF_PG_DSN"], schema=os.environ.get("ZF_SCHEMA", "zeroflow")
    )
    answered: set[str] = set()
    deadline = time.monotonic() + args.timeout
    try:
        while len(answered) < args.expect:
            if time.monotonic() > deadline:
                print(f"approver: timed out after {len(answered)} answers", file=sys.stderr)
                return 1
            waiting = store.list_metadata("approval", status="waiting")
            fresh = [m.run_id for m in waiting if m.run_id and m.run_id not in answered]
            for run_id in fresh:
                answer = {"approved": not run_id.endswith("0"), "by": f"approver-{os.getpid()}"}
                send_resume(app, run_id, answer, node="approve")
                answered.add(run_id)
            if not fresh:
                time.sleep(0.05)
    finally:
        store.close()
    print(f"approver: sent {len(answered)} answers")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
