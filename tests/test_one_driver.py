"""One driver per run: a caller that lost its lease stops at its next checkpoint, writing nothing.

Each test sets up what an adversary would: a node that outlives the lease,
an operator who breaks a live lease, a fork onto a taken run id, a resume
from a checkpoint that is no longer the latest. Time comes from injected
clocks; nothing sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from _support import FakeClock, integration
from zeroflow import (
    HandlerResult,
    InMemoryWorkflowStore,
    JsonFileWorkflowStore,
    RunExistsError,
    RunLockedError,
    SqliteWorkflowStore,
    WorkflowContext,
    WorkflowEngine,
)

KINDS = ["memory", "json", "sqlite", "postgres"]

CHAIN: dict[str, Any] = {
    "workflow_name": "chain",
    "default_entry_node": "a",
    "nodes": {
        "a": {"handler": "work", "outputs": {"ok": [{"target_node": "slow"}]}},
        "slow": {"handler": "slow", "outputs": {"ok": [{"target_node": "c"}]}},
        "c": {"handler": "work", "outputs": {"ok": [{"target_node": "d"}]}},
        "d": {"handler": "work", "outputs": {"ok": []}},
    },
}


def open_store(kind: str, where: Path, clock: FakeClock, request: pytest.FixtureRequest) -> Any:
    """A store of ``kind`` whose leases follow ``clock``; ``where`` is shared by a second one."""
    if kind == "memory":
        return InMemoryWorkflowStore(clock=clock)
    if kind == "json":
        return JsonFileWorkflowStore(where / "runs", clock=clock)
    if kind == "sqlite":
        return SqliteWorkflowStore(where / "runs.db", clock=clock)
    integration("psycopg")
    from zeroflow.contrib.postgres import PostgresWorkflowStore

    dsn = request.getfixturevalue("postgres_dsn")
    schema = f"one_driver_{abs(hash(str(where))) % 10**9}"
    store = PostgresWorkflowStore(dsn, schema=schema, clock=clock)
    request.addfinalizer(store.close)
    return store


def pair(
    kind: str, tmp_path: Path, clock: FakeClock, request: pytest.FixtureRequest, shared: bool
) -> tuple[Any, Any]:
    first = open_store(kind, tmp_path, clock, request)
    if shared or kind == "memory":
        return first, first
    return first, open_store(kind, tmp_path, clock, request)


def kinds_of_events(store: Any, run_id: str) -> list[str]:
    return [e.kind for e in store.events(run_id)]


class Takeover:
    """Inside ``slow``, the first time: ``before`` (let the lease go), then B finishes the run."""

    def __init__(self, store_b: Any, before: Callable[[], None]) -> None:
        self.store_b = store_b
        self.before = before
        self.runs: list[str] = []
        self.b_result: Any = None
        self.taken = False

    def handlers(self) -> dict[str, Any]:
        def work(ctx: WorkflowContext) -> HandlerResult:
            self.runs.append(ctx.node_name)
            return HandlerResult(["ok"], workflow_updates={ctx.node_name: len(self.runs)})

        def slow(ctx: WorkflowContext) -> HandlerResult:
            self.runs.append(ctx.node_name)
            if not self.taken:
                self.taken = True
                self.before()
                engine_b = WorkflowEngine(CHAIN, self.handlers(), store=self.store_b)
                self.b_result = engine_b.resume(ctx.run_id)
            return HandlerResult(["ok"])

        return {"work": work, "slow": slow}


@pytest.mark.parametrize("shared", [True, False], ids=["one-store-object", "two-store-objects"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_driver_whose_lease_lapsed_mid_node_stops_and_writes_nothing(
    kind: str, shared: bool, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    clock = FakeClock()
    store_a, store_b = pair(kind, tmp_path, clock, request, shared)

    def lapse() -> None:
        clock.now += store_a.lease_ttl_seconds + 1

    takeover = Takeover(store_b, lapse)
    engine_a = WorkflowEngine(CHAIN, takeover.handlers(), store=store_a)
    with pytest.raises(RunLockedError, match="lost its lease"):
        engine_a.run(run_id="r1")

    assert takeover.b_result.success
    # B re-ran the node in flight (A never checkpointed it); nothing after it ran twice.
    assert takeover.runs == ["a", "slow", "slow", "c", "d"]
    stored = store_b.load_snapshot("r1")
    assert stored.status == "succeeded"
    assert stored.trace == ["a", "slow", "c", "d"]
    assert kinds_of_events(store_b, "r1").count("wf:end") == 1
    assert store_b.load_snapshot("r1").to_dict() == store_a.load_snapshot("r1").to_dict()


@pytest.mark.parametrize("kind", KINDS)
def test_break_lease_on_a_live_driver_stops_it_at_its_next_checkpoint(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    clock = FakeClock()
    store_a, store_b = pair(kind, tmp_path, clock, request, shared=False)
    takeover = Takeover(store_b, lambda: store_b.break_lease("r1"))
    engine_a = WorkflowEngine(CHAIN, takeover.handlers(), store=store_a)
    with pytest.raises(RunLockedError, match="lost its lease"):
        engine_a.run(run_id="r1")
    assert takeover.runs == ["a", "slow", "slow", "c", "d"]
    assert store_b.load_snapshot("r1").trace == ["a", "slow", "c", "d"]
    assert kinds_of_events(store_b, "r1").count("wf:end") == 1


@pytest.mark.parametrize("kind", KINDS)
def test_a_renewal_never_takes_a_lease_another_caller_took_and_released(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    clock = FakeClock()
    store = open_store(kind, tmp_path, clock, request)
    store.acquire_lease("r", "old")
    clock.now += store.lease_ttl_seconds + 1
    store.acquire_lease("r", "new")
    store.release_lease("r", "new")
    with pytest.raises(RunLockedError):
        store.renew_lease("r", "old")


WAIT_THEN_PAY: dict[str, Any] = {
    "workflow_name": "approval",
    "default_entry_node": "ask",
    "nodes": {
        "ask": {"handler": "ask", "outputs": {"yes": [{"target_node": "pay"}]}},
        "pay": {"handler": "pay", "outputs": {"ok": []}},
    },
}


def approval_handlers(paid: list[str]) -> dict[str, Any]:
    def ask(ctx: WorkflowContext) -> HandlerResult:
        if ctx.state.workflow.get("__resume__") is None:
            return HandlerResult([], waiting=True, waiting_prompt="approve?")
        return HandlerResult(["yes"])

    def pay(ctx: WorkflowContext) -> HandlerResult:
        paid.append(ctx.run_id)
        return HandlerResult(["ok"])

    return {"ask": ask, "pay": pay}


@pytest.mark.parametrize("kind", KINDS)
def test_checkpoints_have_identities_that_never_repeat(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    clock = FakeClock()
    store = open_store(kind, tmp_path, clock, request)
    paid: list[str] = []
    engine = WorkflowEngine(WAIT_THEN_PAY, approval_handlers(paid), store=store, clock=clock)
    waiting = engine.run(run_id="o1")
    assert waiting.checkpoint is not None and waiting.checkpoint.seq is not None
    assert waiting.checkpoint.seq == store.latest_checkpoint("o1")
    done = engine.resume("o1", resume_input={"ok": True})
    assert done.success and paid == ["o1"]
    seqs = [store.load_snapshot("o1", step=info.step).seq for info in store.history("o1")]
    assert store.latest_checkpoint("o1") == max(s for s in seqs if s is not None)
    # The waiting checkpoint and the resumed one share step 1 but not their identity.
    assert waiting.checkpoint.seq < store.latest_checkpoint("o1")


@pytest.mark.parametrize("kind", KINDS)
def test_resuming_a_checkpoint_that_is_not_the_latest_is_refused(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    clock = FakeClock()
    store = open_store(kind, tmp_path, clock, request)
    paid: list[str] = []
    engine = WorkflowEngine(WAIT_THEN_PAY, approval_handlers(paid), store=store, clock=clock)
    first = engine.run(run_id="o1").checkpoint
    assert first is not None
    assert engine.run_from_checkpoint(first, {"ok": True}).success
    with pytest.raises(RunLockedError, match="moved on"):
        engine.run_from_checkpoint(first, {"ok": True})
    assert paid == ["o1"]
    assert store.load_snapshot("o1").status == "succeeded"
    assert kinds_of_events(store, "o1").count("wf:end") == 1


MAP: dict[str, Any] = {
    "workflow_name": "items",
    "default_entry_node": "each",
    "nodes": {
        "each": {
            "handler": "item",
            "map": {"over": "input.items"},
            "outputs": {"ok": []},
        }
    },
}


@pytest.mark.parametrize("kind", ["json", "sqlite"])
def test_a_map_is_not_resumed_from_an_older_progress_checkpoint(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    clock = FakeClock()
    store = open_store(kind, tmp_path, clock, request)
    done: list[int] = []
    engine: WorkflowEngine

    def item(ctx: WorkflowContext) -> HandlerResult:
        done.append(ctx.item)
        if ctx.item == 3:
            engine.cancel()
        return HandlerResult(["ok"], node_updates={"v": ctx.item})

    engine = WorkflowEngine(MAP, {"item": item}, store=store, clock=clock)
    cancelled = engine.run({"items": [1, 2, 3, 4, 5]}, run_id="m1")
    assert cancelled.status == "cancelled"
    # The checkpoint before the map ran: resuming it would run every item again.
    stale = store.load_snapshot("m1", step=store.history("m1")[0].step)
    assert stale.seq is not None and stale.seq < store.latest_checkpoint("m1")
    with pytest.raises(RunLockedError, match="moved on"):
        engine.run_from_checkpoint(stale)
    resumed = engine.resume("m1")
    assert resumed.success
    assert sorted(done) == [1, 2, 3, 4, 5]  # no finished item ran again


@pytest.mark.parametrize("kind", KINDS)
def test_fork_onto_an_existing_run_id_is_refused_unless_replace(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    clock = FakeClock()
    store = open_store(kind, tmp_path, clock, request)
    paid: list[str] = []
    engine = WorkflowEngine(WAIT_THEN_PAY, approval_handlers(paid), store=store, clock=clock)
    engine.run(run_id="o1")
    engine.resume("o1", resume_input={"ok": True})
    engine.run(run_id="o2")
    before = store.load_snapshot("o1").to_dict()
    with pytest.raises(RunExistsError, match="o1"):
        engine.fork("o2", 1, new_run_id="o1")
    assert store.load_snapshot("o1").to_dict() == before
    forked = engine.fork("o2", 1, new_run_id="o1", replace=True)
    assert forked.run_id == "o1" and store.load_snapshot("o1").status == "waiting"
    assert store.load_snapshot("o1").extra["forked_from"] == {"run_id": "o2", "step": 1}


@pytest.mark.parametrize("kind", KINDS)
def test_migrate_of_a_run_another_caller_holds_is_refused(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    clock = FakeClock()
    store = open_store(kind, tmp_path, clock, request)
    paid: list[str] = []
    old = WorkflowEngine(WAIT_THEN_PAY, approval_handlers(paid), store=store, clock=clock)
    checkpoint = old.run(run_id="o1").checkpoint
    assert checkpoint is not None
    newer = {**WAIT_THEN_PAY, "workflow_name": "approval v2"}
    engine = WorkflowEngine(newer, approval_handlers(paid), store=store, clock=clock)
    store.acquire_lease("o1", "somebody-else")
    with pytest.raises(RunLockedError):
        engine.migrate(checkpoint, WAIT_THEN_PAY)
    assert store.load_snapshot("o1").wf_hash == old.workflow_hash
    store.release_lease("o1", "somebody-else")
    moved = engine.migrate(checkpoint, WAIT_THEN_PAY)
    assert store.load_snapshot("o1").wf_hash == engine.workflow_hash
    assert engine.run_from_checkpoint(moved, {"ok": True}).success


def test_lease_owners_come_from_the_injected_factory(tmp_path: Path) -> None:
    owners: list[str] = []

    class Spy(InMemoryWorkflowStore):
        def acquire_lease(self, run_id: str, owner: str) -> int:
            owners.append(owner)
            return super().acquire_lease(run_id, owner)

    names = iter(["owner-1", "owner-2"])
    paid: list[str] = []
    engine = WorkflowEngine(
        WAIT_THEN_PAY,
        approval_handlers(paid),
        store=Spy(),
        lease_owner_factory=lambda: next(names),
    )
    engine.run(run_id="o1")
    engine.resume("o1", resume_input={"ok": True})
    assert owners == ["owner-1", "owner-2"]


def test_a_subflow_child_is_stamped_with_the_engine_clock() -> None:
    child: dict[str, Any] = {
        "workflow_name": "child",
        "default_entry_node": "w",
        "nodes": {"w": {"handler": "ask", "outputs": {"yes": []}}},
    }
    parent: dict[str, Any] = {
        "workflow_name": "parent",
        "default_entry_node": "sub",
        "nodes": {"sub": {"subflow": {"workflow": "child"}, "outputs": {"ok": []}}},
    }
    clock = FakeClock(now=86_400.0)
    paid: list[str] = []
    engine = WorkflowEngine(parent, approval_handlers(paid), subflows={"child": child}, clock=clock)
    result = engine.run(run_id="p1")
    assert result.checkpoint is not None
    saved = result.checkpoint.extra["subflows"]["sub"]
    assert saved["started_at"].startswith("1970-01-02")
    assert saved["updated_at"].startswith("1970-01-02")
