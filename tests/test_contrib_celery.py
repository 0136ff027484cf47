"""zeroflow.contrib.celery: tasks that drive runs against a shared store, safe to deliver twice.

The first tests apply the tasks in this process against a real PostgreSQL
(no broker). The fleet tests start real workers on a real Redis broker
through ``examples/05_celery_fleet/run_fleet.py``, resume approvals from a
separate process, and SIGKILL a worker mid-run.
"""

from __future__ import annotations

import importlib.util
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from _support import integration
from zeroflow import HandlerResult, WorkflowContext, WorkflowEngine, WorkflowStore

integration("psycopg")
celery = integration("celery")
from zeroflow.contrib.celery import (  # noqa: E402
    _EXPECTED,
    WorkflowTasks,
    _fingerprint,
    _GuardedStore,
    _MovedOn,
    register_tasks,
)
from zeroflow.contrib.postgres import PostgresWorkflowStore  # noqa: E402

FLEET = Path(__file__).resolve().parent.parent / "examples" / "05_celery_fleet"


FAILED_ONCE: set[str] = set()


def step(ctx: WorkflowContext) -> HandlerResult:
    if ctx.state.input.get("fail_at") == ctx.node_name and ctx.run_id not in FAILED_ONCE:
        FAILED_ONCE.add(ctx.run_id)  # fails the first time only: a flaky dependency
        raise RuntimeError("boom")
    return HandlerResult(outputs=["ok"], workflow_updates={ctx.node_name: True})


def gate(ctx: WorkflowContext) -> HandlerResult:
    answer = ctx.state.workflow.get("__resume__")
    if answer is None:
        return HandlerResult(outputs=[], waiting=True, waiting_prompt="ok?")
    return HandlerResult(outputs=["ok"], workflow_updates={"answer": answer})


DEFINITION = {
    "workflow_name": "flow",
    "default_entry_node": "a",
    "nodes": {
        "a": {"handler": "step", "outputs": {"ok": [{"target_node": "gate"}]}},
        "gate": {"handler": "gate", "outputs": {"ok": [{"target_node": "b"}]}},
        "b": {"handler": "step", "outputs": {"ok": []}},
    },
}


def build(store: WorkflowStore) -> WorkflowEngine:
    return WorkflowEngine(DEFINITION, {"step": step, "gate": gate}, store=store)


@pytest.fixture
def store(postgres_dsn: str) -> Iterator[PostgresWorkflowStore]:
    s = PostgresWorkflowStore(
        postgres_dsn, schema=f"c_{uuid.uuid4().hex[:12]}", lease_ttl_seconds=0.5
    )
    yield s
    s.drop_schema()


@pytest.fixture
def tasks(store: PostgresWorkflowStore) -> WorkflowTasks:
    app = celery.Celery("unit", set_as_current=False)
    return register_tasks(app, store, {"flow": build})


def apply(task: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    result = task.apply(args=args, kwargs=kwargs)
    assert result.successful(), result.traceback
    value: dict[str, Any] = result.get()
    return value


# ---------------------------------------------------------------- in-process


def test_the_tasks_are_registered_late_acknowledged(tasks: WorkflowTasks) -> None:
    names = {"zeroflow.start", "zeroflow.resume", "zeroflow.redrive", "zeroflow.continue"}
    assert names | {"zeroflow.recover"} <= set(tasks.app.tasks)
    for name in names:
        task = tasks.app.tasks[name]
        assert task.acks_late and task.reject_on_worker_lost


def test_a_started_run_that_waits_frees_the_task_and_reports_the_wait(
    tasks: WorkflowTasks, store: PostgresWorkflowStore
) -> None:
    report = apply(tasks.start, "flow", {}, run_id="r1")
    assert report == {
        "run_id": "r1",
        "action": "started",
        "status": "waiting",
        "success": False,
        "waiting_nodes": ["gate"],
        "waiting_prompt": "ok?",
    }
    assert store.run_status("r1") == "waiting"


def test_a_start_delivered_twice_starts_the_run_once(
    tasks: WorkflowTasks, store: PostgresWorkflowStore
) -> None:
    apply(tasks.start, "flow", {}, run_id="r1")
    again = apply(tasks.start, "flow", {}, run_id="r1")
    assert (again["action"], again["status"]) == ("skipped", "waiting")
    assert store.load_snapshot("r1").trace == ["a", "gate"]


def test_a_resume_delivered_twice_resumes_once(
    tasks: WorkflowTasks, store: PostgresWorkflowStore
) -> None:
    apply(tasks.start, "flow", {}, run_id="r1")
    first = apply(tasks.resume, "r1", {"ok": 1}, node="gate")
    assert (first["action"], first["status"], first["success"]) == ("resumed", "succeeded", True)
    again = apply(tasks.resume, "r1", {"ok": 2}, node="gate")
    assert (again["action"], again["status"]) == ("skipped", "succeeded")
    snap = store.load_snapshot("r1")
    assert snap.state.workflow["answer"] == {"ok": 1}
    assert snap.trace == ["a", "gate", "gate", "b"]


def test_a_resume_for_a_node_that_is_not_waiting_is_skipped(
    tasks: WorkflowTasks, store: PostgresWorkflowStore
) -> None:
    apply(tasks.start, "flow", {}, run_id="r1")
    report = apply(tasks.resume, "r1", "x", node="b")
    assert (report["action"], report["status"]) == ("skipped", "waiting")
    assert apply(tasks.resume, "nobody", "x")["action"] == "missing"


def test_a_failed_run_is_redriven_once(tasks: WorkflowTasks, store: PostgresWorkflowStore) -> None:
    run_id = uuid.uuid4().hex
    apply(tasks.start, "flow", {"fail_at": "b"}, run_id=run_id)
    failed = apply(tasks.resume, run_id, "go", node="gate")
    assert (failed["status"], failed["error"]["code"]) == ("failed", "HANDLER_EXCEPTION")
    redriven = apply(tasks.redrive, run_id)
    assert (redriven["action"], redriven["status"]) == ("redriven", "succeeded")
    assert apply(tasks.redrive, run_id)["action"] == "skipped"


def test_continue_drives_a_run_whose_driver_died_and_leaves_live_ones_alone(
    tasks: WorkflowTasks, store: PostgresWorkflowStore
) -> None:
    apply(tasks.start, "flow", {}, run_id="r1")
    apply(tasks.resume, "r1", "go", node="gate")
    # Stage a run a dead worker left: running, leased by an owner that never comes back.
    waiting = apply(tasks.start, "flow", {}, run_id="r2")
    assert waiting["status"] == "waiting"
    stuck = store.load_snapshot("r2")
    stuck.status = "running"
    store.save_snapshot(stuck)
    store.acquire_lease("r2", "dead-worker")
    store._writers.clear()
    assert apply(tasks.cont, "r2")["action"] == "locked"
    assert tasks.stale_runs() == []
    time.sleep(0.6)
    assert tasks.stale_runs() == ["r2"]
    report = apply(tasks.cont, "r2")
    assert (report["action"], report["status"]) == ("continued", "waiting")
    assert apply(tasks.cont, "r1")["action"] == "skipped"


def test_a_run_that_moved_on_between_load_and_lease_is_not_driven_twice(
    store: PostgresWorkflowStore,
) -> None:
    build(store).run(run_id="r1")
    loaded = store.load_snapshot("r1")
    build(store).resume("r1", resume_input="first")  # another delivery got there first
    guarded = _GuardedStore(store)
    token = _EXPECTED.set(("r1", _fingerprint(loaded)))
    try:
        with pytest.raises(_MovedOn):
            guarded.acquire_lease("r1", "late")
    finally:
        _EXPECTED.reset(token)
    store.acquire_lease("r1", "someone-else")  # the late task let the lease go


def test_an_unknown_workflow_names_the_registered_ones(tasks: WorkflowTasks) -> None:
    with pytest.raises(KeyError, match=r"no engine registered for workflow 'nope' \(flow\)"):
        tasks.engine("nope")


# ---------------------------------------------------------------- the fleet


def load_fleet_runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fleet_runner", FLEET / "run_fleet.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_a_fleet_drives_approvals_resumed_from_another_process(
    postgres_dsn: str, redis_url: str
) -> None:
    report = load_fleet_runner().run_fleet(
        postgres_dsn, redis_url, workers=2, runs=30, workflow="approval", timeout=60
    )
    assert report["statuses"] == {"succeeded": 30}
    assert report["approvals"] == 30
    assert report["repeated_executions"] == []
    # intake, score, approve (waits), approve (answered), book or reject, notify
    assert report["handler_executions"] == 30 * 6


def test_a_worker_killed_mid_run_loses_no_run_and_repeats_at_most_the_node_in_flight(
    postgres_dsn: str, redis_url: str
) -> None:
    report = load_fleet_runner().run_fleet(
        postgres_dsn,
        redis_url,
        workers=2,
        runs=200,
        workflow="pipeline10",
        node_sleep=0.005,
        kill_after=300,
        lease_ttl=1.5,
        visibility_timeout=3.0,
        timeout=120,
        schema="fault",
    )
    assert report["killed"] is not None
    assert report["statuses"] == {"succeeded": 200}
    repeated = report["repeated_executions"]
    assert len(repeated) <= 1  # one worker killed, one task in flight there
    if repeated:
        [[run_id, node, extra]] = repeated
        assert extra == 1
        assert [run_id, node] == report["killed"]["last_started"]
    assert report["handler_executions"] == 200 * 10 + len(repeated)
