"""Runs have one driver at a time, and a new run never silently overwrites a stored one."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from zeroflow import HandlerResult, WorkflowContext, WorkflowEngine
from zeroflow._errors import RunExistsError, RunLockedError
from zeroflow.stores import InMemoryWorkflowStore, JsonFileWorkflowStore, SqliteWorkflowStore

APPROVAL = {
    "workflow_name": "approval",
    "default_entry_node": "ask",
    "nodes": {
        "ask": {"handler": "ask", "outputs": {"yes": [{"target_node": "ship"}]}},
        "ship": {"handler": "ship", "outputs": {"ok": []}},
    },
}

Factory = Callable[[Path, Callable[[], float]], Any]
STORES: dict[str, Factory] = {
    "memory": lambda tmp, clock: InMemoryWorkflowStore(clock=clock),
    "json": lambda tmp, clock: JsonFileWorkflowStore(tmp / "runs", clock=clock),
    "sqlite": lambda tmp, clock: SqliteWorkflowStore(tmp / "runs.db", clock=clock),
}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def ask(ctx: WorkflowContext) -> HandlerResult:
    if "__resume__" not in ctx.state.workflow:
        return HandlerResult([], waiting=True, waiting_prompt="ship it?")
    return HandlerResult(["yes"])


@pytest.fixture(params=sorted(STORES))
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Any, Clock]:
    clock = Clock()
    return STORES[request.param](tmp_path, clock), clock


def engine(store: Any, ship: Callable[[WorkflowContext], HandlerResult] | None = None) -> Any:
    handlers = {"ask": ask, "ship": ship or (lambda ctx: HandlerResult(["ok"]))}
    return WorkflowEngine(APPROVAL, handlers, store=store)


def test_a_second_driver_of_a_run_in_flight_gets_run_locked(setup: tuple[Any, Clock]) -> None:
    store, _ = setup
    engine(store).run({}, run_id="order-7")
    entered, leave = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def slow_ship(ctx: WorkflowContext) -> HandlerResult:
        entered.set()
        leave.wait(5)
        return HandlerResult(["ok"])

    def first_click() -> None:
        snap = store.load_snapshot("order-7")
        outcome["first"] = engine(store, slow_ship).run_from_checkpoint(snap, {"ok": True})

    worker = threading.Thread(target=first_click)
    worker.start()
    try:
        assert entered.wait(5)
        with pytest.raises(RunLockedError, match="order-7") as info:
            engine(store).run_from_checkpoint(store.load_snapshot("order-7"), {"ok": True})
        assert info.value.run_id == "order-7"
    finally:
        leave.set()
        worker.join(5)
    assert outcome["first"].status == "succeeded"
    assert store.load_snapshot("order-7").trace == ["ask", "ask", "ship"]


def test_the_lease_is_released_when_the_call_returns_or_raises(setup: tuple[Any, Clock]) -> None:
    store, _ = setup
    engine(store).run({}, run_id="r")
    store.acquire_lease("r", "someone")  # free again after run() returned
    store.release_lease("r", "someone")

    def explode(event: Any) -> None:
        if event.kind == "node:start":
            raise RuntimeError("callback broke")

    broken = WorkflowEngine(
        APPROVAL,
        {"ask": ask, "ship": lambda ctx: HandlerResult(["ok"])},
        store=store,
        event_callback=explode,
    )
    with pytest.raises(RuntimeError, match="callback broke"):
        broken.run_from_checkpoint(store.load_snapshot("r"), {"ok": True})
    store.acquire_lease("r", "someone")


def test_a_lease_left_by_a_dead_driver_lapses(setup: tuple[Any, Clock]) -> None:
    store, clock = setup
    engine(store).run({}, run_id="r")
    store.acquire_lease("r", "killed-process")  # never released
    with pytest.raises(RunLockedError):
        engine(store).run_from_checkpoint(store.load_snapshot("r"), {"ok": True})
    clock.now += store.lease_ttl_seconds + 1
    result = engine(store).run_from_checkpoint(store.load_snapshot("r"), {"ok": True})
    assert result.status == "succeeded"


def test_break_lease_frees_a_run_at_once(setup: tuple[Any, Clock]) -> None:
    store, _ = setup
    engine(store).run({}, run_id="r")
    store.acquire_lease("r", "stuck")
    assert store.break_lease("r") is True
    assert store.break_lease("r") is False
    assert engine(store).run_from_checkpoint(store.load_snapshot("r"), 1).status == "succeeded"


def test_starting_a_stored_run_id_again_raises_run_exists(setup: tuple[Any, Clock]) -> None:
    store, _ = setup
    engine(store).run({"n": 1}, run_id="r")
    with pytest.raises(RunExistsError, match=r"'r'.*waiting"):
        engine(store).run({"n": 2}, run_id="r")
    assert store.load_snapshot("r").state.input == {"n": 1}


def test_replace_starts_a_stored_run_over(setup: tuple[Any, Clock]) -> None:
    store, _ = setup
    engine(store).run({"n": 1}, run_id="r")
    engine(store).run({"n": 2}, run_id="r", replace=True)
    snap = store.load_snapshot("r")
    assert snap.state.input == {"n": 2} and snap.trace == ["ask"]
    kinds = [e.kind for e in store.events("r")]
    assert kinds.count("wf:start") == 1


def test_replace_does_not_take_a_run_someone_drives(setup: tuple[Any, Clock]) -> None:
    store, _ = setup
    engine(store).run({"n": 1}, run_id="r")
    store.acquire_lease("r", "approver")
    with pytest.raises(RunLockedError, match="'r'"):
        engine(store).run({"n": 2}, run_id="r", replace=True)
    assert store.load_snapshot("r").state.input == {"n": 1}
