"""One driver per run across processes: two resumes at one instant, a lease lapsing mid-node.

Children are forked (cheap enough to repeat 300 times) and released at the
same instant through a pipe; each reports through its exit code.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from test_one_driver import CHAIN
from zeroflow import (
    HandlerResult,
    JsonFileWorkflowStore,
    RunLockedError,
    SqliteWorkflowStore,
    WorkflowContext,
    WorkflowEngine,
)

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

TRIES = 300
PROCEEDED, REFUSED, BROKEN = 0, 3, 4

APPROVAL: dict[str, Any] = {
    "workflow_name": "approval",
    "default_entry_node": "ask",
    "nodes": {
        "ask": {"handler": "ask", "outputs": {"yes": [{"target_node": "pay"}]}},
        "pay": {"handler": "pay", "outputs": {"ok": []}},
    },
}


def ask(ctx: WorkflowContext) -> HandlerResult:
    if ctx.state.workflow.get("__resume__") is None:
        return HandlerResult([], waiting=True, waiting_prompt="approve?")
    return HandlerResult(["yes"])


def open_store(kind: str, where: Path) -> Any:
    if kind == "json":
        return JsonFileWorkflowStore(where / "runs")
    return SqliteWorkflowStore(where / "runs.db")


def fork_waiting_on(gate: tuple[int, int], body: Any) -> int:
    """A child that blocks until the pipe ``gate`` closes, runs ``body``, exits with its code."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, reported through the exit code
        signal.alarm(30)
        code = BROKEN
        try:
            os.close(gate[1])
            os.read(gate[0], 1)  # returns once the parent closes its write end
            code = body()
        except BaseException as exc:
            sys.stderr.write(f"child failed: {exc!r}\n")
        finally:
            os._exit(code)
    return pid


@pytest.mark.parametrize("kind", ["json", "sqlite"])
def test_two_processes_resuming_one_waiting_run_at_once_never_both_proceed(
    kind: str, tmp_path: Path
) -> None:
    paid = tmp_path / "paid.txt"

    def pay(ctx: WorkflowContext) -> HandlerResult:
        with open(paid, "a", encoding="utf-8") as f:
            f.write(ctx.run_id + "\n")
        return HandlerResult(["ok"])

    store = open_store(kind, tmp_path)
    engine = WorkflowEngine(APPROVAL, {"ask": ask, "pay": pay}, store=store)
    outcomes: dict[tuple[int, ...], int] = {}
    for i in range(TRIES):
        run_id = f"order-{i}"
        engine.run(run_id=run_id)
        checkpoint = engine.load_snapshot(run_id)

        def resume(checkpoint: Any = checkpoint) -> int:
            try:
                result = engine.run_from_checkpoint(checkpoint, {"ok": True})
            except RunLockedError:
                return REFUSED
            return PROCEEDED if result.success else BROKEN

        read, write = os.pipe()
        pids = [fork_waiting_on((read, write), resume) for _ in range(2)]
        os.close(write)  # both children wake at once
        codes = tuple(sorted(os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids))
        os.close(read)
        outcomes[codes] = outcomes.get(codes, 0) + 1
        assert codes == (PROCEEDED, REFUSED), f"try {i}: exit codes {codes}"
        kinds = [e.kind for e in store.events(run_id)]
        assert kinds.count("wf:end") == 1 and kinds.count("wf:resumed") == 1, kinds
    assert paid.read_text(encoding="utf-8").split() == [f"order-{i}" for i in range(TRIES)]
    assert outcomes == {(PROCEEDED, REFUSED): TRIES}


@pytest.mark.parametrize("kind", ["json", "sqlite"])
def test_a_driver_whose_lease_lapsed_stops_when_another_process_finished_the_run(
    kind: str, tmp_path: Path
) -> None:
    """A drives in this process; its slow node lets the lease lapse; a child finishes the run."""
    log = tmp_path / "ran.txt"
    now = [1_000_000.0]

    def clock() -> float:
        return now[0]

    def note(name: str) -> None:
        with open(log, "a", encoding="utf-8") as f:
            f.write(name + "\n")

    def work(ctx: WorkflowContext) -> HandlerResult:
        note(ctx.node_name)
        return HandlerResult(["ok"])

    def quick(ctx: WorkflowContext) -> HandlerResult:
        note(ctx.node_name)
        return HandlerResult(["ok"])

    store_b_where = tmp_path

    def slow(ctx: WorkflowContext) -> HandlerResult:
        note(ctx.node_name)
        now[0] += 3600  # A's lease lapses while this node runs

        def finish() -> int:
            store = (
                JsonFileWorkflowStore(store_b_where / "runs", clock=clock)
                if kind == "json"
                else SqliteWorkflowStore(store_b_where / "runs.db", clock=clock)
            )
            other = WorkflowEngine(CHAIN, {"work": work, "slow": quick}, store=store)
            return PROCEEDED if other.resume(ctx.run_id).success else BROKEN

        read, write = os.pipe()
        pid = fork_waiting_on((read, write), finish)
        os.close(write)
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        os.close(read)
        assert code == PROCEEDED
        return HandlerResult(["ok"])

    store = (
        JsonFileWorkflowStore(tmp_path / "runs", clock=clock)
        if kind == "json"
        else SqliteWorkflowStore(tmp_path / "runs.db", clock=clock)
    )
    engine = WorkflowEngine(CHAIN, {"work": work, "slow": slow}, store=store)
    with pytest.raises(RunLockedError, match="lost its lease"):
        engine.run(run_id="r1")
    assert log.read_text(encoding="utf-8").split() == ["a", "slow", "slow", "c", "d"]
    reader = open_store(kind, tmp_path)
    stored = reader.load_snapshot("r1")
    assert stored.status == "succeeded" and stored.trace == ["a", "slow", "c", "d"]
    kinds = [e.kind for e in reader.events("r1")]
    assert kinds.count("wf:end") == 1 and kinds.count("node:end") == 4, kinds
