"""durability="batch" / "exit": checkpoints grouped into fewer commits, never beyond the window.

Each guarantee is tried against a store that counts its commits: a group is
written at most ``max_nodes`` nodes or ``max_ms`` apart, and always at a
pause, an end, a failure, an effect and before a third of the lease time;
a crash anywhere resumes to the uninterrupted end, re-running at most one
window of nodes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from zeroflow import (
    Durability,
    HandlerResult,
    InMemoryWorkflowStore,
    JsonFileWorkflowStore,
    WorkflowContext,
    WorkflowEngine,
    WorkflowStore,
)
from zeroflow._store import CheckpointWrite
from zeroflow.stores import SqliteWorkflowStore
from zeroflow.testing import FakeClock, crash_everywhere


def loop(n: int) -> dict[str, Any]:
    """A self-loop (its handlers decide how many visits, and where it pauses or fails)."""
    return {
        "workflow_name": "loop",
        "default_entry_node": "count",
        "nodes": {
            "count": {
                "handler": "count",
                "outputs": {"again": [{"target_node": "count", "is_loopback": True}], "done": []},
                "on_error": [{"target_node": "recover"}],
            },
            "recover": {
                "handler": "recover",
                "outputs": {"ok": [{"target_node": "count", "is_loopback": True}]},
            },
        },
    }


def handlers(
    n: int,
    *,
    wait_at: int | None = None,
    fail_at: int | None = None,
    calls: list[int] | None = None,
    tick: Callable[[], None] | None = None,
) -> dict[str, Callable[[WorkflowContext], HandlerResult]]:
    def count(ctx: WorkflowContext) -> HandlerResult:
        i = int(ctx.state.workflow.get("i", 0)) + 1
        if calls is not None:
            calls.append(i)
        if tick is not None:
            tick()
        if i == wait_at and "__resume__" not in ctx.state.workflow:
            return HandlerResult(outputs=[], waiting=True, waiting_prompt=f"go on after {i}?")
        if i == fail_at and not ctx.state.workflow.get("recovered"):
            raise RuntimeError(f"boom at {i}")
        return HandlerResult(outputs=["again" if i < n else "done"], workflow_updates={"i": i})

    def recover(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(outputs=["ok"], workflow_updates={"recovered": True})

    return {"count": count, "recover": recover}


class CountingSqlite(SqliteWorkflowStore):
    """A SQLite store that remembers, per commit, the step it wrote."""

    def __init__(self, path: Path, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self.committed: list[int] = []

    def commit(self, run_id: str, owner: str, token: int, write: CheckpointWrite) -> bool:
        asked = super().commit(run_id, owner, token, write)
        snap = write.snapshot
        self.committed.append(snap.step if snap is not None else write.delta.step)  # type: ignore[union-attr]
        return asked


def test_sync_commits_every_node_and_batch_groups_them_by_max_nodes(tmp_path: Path) -> None:
    sync_store = CountingSqlite(tmp_path / "sync.db")
    WorkflowEngine(loop(100), handlers(100), store=sync_store).run(run_id="r")
    batch_store = CountingSqlite(tmp_path / "batch.db")
    engine = WorkflowEngine(
        loop(100), handlers(100), store=batch_store, durability=Durability("batch", max_nodes=10)
    )
    result = engine.run(run_id="r")
    assert result.status == "succeeded"
    assert len(sync_store.committed) >= 100
    # the opening checkpoint, one commit per 10 nodes, the end
    steps = batch_store.committed
    assert len(steps) <= 100 // 10 + 3, steps
    assert all(b - a <= 10 for a, b in itertools.pairwise(steps)), steps
    # what the store holds is the whole run, identical to the sync run's
    assert batch_store.load_snapshot("r").state.workflow == {"i": 100}
    assert batch_store.load_snapshot("r").trace == sync_store.load_snapshot("r").trace


def test_the_event_log_of_a_batched_run_holds_every_node(tmp_path: Path) -> None:
    store = SqliteWorkflowStore(tmp_path / "s.db")
    WorkflowEngine(loop(30), handlers(30), store=store, durability="batch").run(run_id="r")
    ends = [e for e in store.events("r") if e.kind == "node:end"]
    assert len(ends) == 30


def test_batch_commits_once_the_window_time_has_passed(tmp_path: Path) -> None:
    clock = FakeClock()
    store = CountingSqlite(tmp_path / "s.db", clock=clock)
    engine = WorkflowEngine(
        loop(20),
        handlers(20, tick=lambda: clock.advance(0.002)),  # each node takes 2 ms
        store=store,
        clock=clock,
        durability=Durability("batch", max_nodes=1000, max_ms=5.0),
    )
    assert engine.run(run_id="r").status == "succeeded"
    steps = store.committed
    # a group spans at most the 5 ms window: three or four nodes of 2 ms
    assert all(b - a <= 4 for a, b in itertools.pairwise(steps)), steps
    assert len(steps) >= 20 // 4


def test_exit_commits_only_at_the_ends_and_before_the_lease_could_lapse(tmp_path: Path) -> None:
    clock = FakeClock()
    store = CountingSqlite(tmp_path / "s.db", clock=clock, lease_ttl_seconds=30.0)
    engine = WorkflowEngine(loop(50), handlers(50), store=store, clock=clock, durability="exit")
    engine.run(run_id="quick")
    assert len(store.committed) == 2  # the opening checkpoint and the end

    slow = CountingSqlite(tmp_path / "slow.db", clock=clock, lease_ttl_seconds=30.0)
    engine = WorkflowEngine(
        loop(50),
        handlers(50, tick=lambda: clock.advance(1.0)),  # 50 s in all, lease 30 s
        store=slow,
        clock=clock,
        durability="exit",
    )
    assert engine.run(run_id="slow").status == "succeeded"
    steps = slow.committed
    # a commit at least every 10 s (a third of the lease): the lease never lapsed
    assert all(b - a <= 10 for a, b in itertools.pairwise(steps)), steps
    assert len(steps) > 2


@pytest.mark.parametrize("mode", ["batch", "exit"])
def test_a_pause_is_committed_with_every_node_before_it(mode: str, tmp_path: Path) -> None:
    store = CountingSqlite(tmp_path / "s.db")
    engine = WorkflowEngine(loop(40), handlers(40, wait_at=25), store=store, durability=mode)
    paused = engine.run(run_id="r")
    assert paused.status == "waiting"
    stored = SqliteWorkflowStore(tmp_path / "s.db").load_snapshot("r")  # another process's view
    assert stored.status == "waiting"
    assert stored.state.workflow == {"i": 24}
    assert stored.trace.count("count") == 25
    done = engine.resume("r", resume_input={"ok": True})
    assert done.status == "succeeded"
    assert done.state.workflow["i"] == 40


@pytest.mark.parametrize("mode", ["batch", "exit"])
def test_a_caught_failure_is_committed_at_once(mode: str, tmp_path: Path) -> None:
    store = CountingSqlite(tmp_path / "s.db")
    engine = WorkflowEngine(loop(30), handlers(30, fail_at=7), store=store, durability=mode)
    assert engine.run(run_id="r").status == "succeeded"
    # the failed visit (step 7) has a commit of its own, not held with later nodes
    assert 7 in store.committed, store.committed


def test_a_failed_run_is_stored_whole(tmp_path: Path) -> None:
    def count(ctx: WorkflowContext) -> HandlerResult:
        i = int(ctx.state.workflow.get("i", 0)) + 1
        if i == 12:
            raise RuntimeError("down")
        return HandlerResult(outputs=["again"], workflow_updates={"i": i})

    defn = loop(100)
    del defn["nodes"]["count"]["on_error"]
    store = SqliteWorkflowStore(tmp_path / "s.db")
    engine = WorkflowEngine(
        defn, {"count": count, "recover": count}, store=store, durability="exit"
    )
    assert engine.run(run_id="r").status == "failed"
    stored = SqliteWorkflowStore(tmp_path / "s.db").load_snapshot("r")
    assert stored.status == "failed"
    assert stored.state.workflow["i"] == 11
    assert stored.state.workflow["__error__"]["message"] == "down"
    assert len(stored.audit_trail) == 12


def test_an_effect_intent_is_committed_before_the_effect_even_in_exit_mode(
    tmp_path: Path,
) -> None:
    seen: list[int] = []

    def count(ctx: WorkflowContext) -> HandlerResult:
        i = int(ctx.state.workflow.get("i", 0)) + 1
        if i == 5:
            stored = SqliteWorkflowStore(tmp_path / "s.db").load_snapshot("r")
            seen.append(stored.state.workflow.get("i", 0))
            ctx.effect("charge", lambda: seen.append(-1) or {"ok": True})
            stored = SqliteWorkflowStore(tmp_path / "s.db").load_snapshot("r")
            seen.append(stored.state.workflow.get("i", 0))
        return HandlerResult(outputs=["again" if i < 8 else "done"], workflow_updates={"i": i})

    store = SqliteWorkflowStore(tmp_path / "s.db")
    engine = WorkflowEngine(
        loop(8), {"count": count, "recover": count}, store=store, durability="exit"
    )
    assert engine.run(run_id="r").status == "succeeded"
    # before the effect: nothing of steps 1-4 stored yet; with its intent: all four
    assert seen == [0, -1, 4]


StoreMaker = Callable[[Path], Callable[[str], WorkflowStore]]


def _memory(tmp_path: Path) -> Callable[[str], WorkflowStore]:
    made: dict[str, WorkflowStore] = {}
    return lambda name: made.setdefault(name, InMemoryWorkflowStore())


def _json(tmp_path: Path) -> Callable[[str], WorkflowStore]:
    return lambda name: JsonFileWorkflowStore(tmp_path / name)


def _sqlite(tmp_path: Path) -> Callable[[str], WorkflowStore]:
    return lambda name: SqliteWorkflowStore(tmp_path / f"{name}.db")


@pytest.mark.parametrize("stores", [_memory, _json, _sqlite], ids=["memory", "json", "sqlite"])
@pytest.mark.parametrize("mode", ["sync", "batch", "exit"])
def test_every_crash_point_resumes_to_the_end_rerunning_at_most_one_window(
    mode: str, stores: StoreMaker, tmp_path: Path
) -> None:
    durability = Durability(mode, max_nodes=4)  # type: ignore[arg-type]

    def make(store: WorkflowStore) -> WorkflowEngine:
        return WorkflowEngine(
            loop(12),
            handlers(12, wait_at=6, fail_at=9),
            store=store,
            durability=durability,
        )

    report = crash_everywhere(make, stores(tmp_path), answers={"count": {"ok": True}})
    assert report.status == "succeeded"
    assert report.failures == [], report.table()
    window = {"sync": 1, "batch": 4, "exit": 12}[mode]
    assert max(report.repeated().values(), default=0) <= window, report.repeated()


@pytest.mark.parametrize("mode", ["batch", "exit"])
def test_sigkill_anywhere_in_a_batched_run_resumes_in_the_parent(mode: str, tmp_path: Path) -> None:
    if not hasattr(__import__("os"), "fork"):
        pytest.skip("needs os.fork")

    def make(store: WorkflowStore) -> WorkflowEngine:
        return WorkflowEngine(loop(10), handlers(10, wait_at=5), store=store, durability=mode)

    report = crash_everywhere(make, _sqlite(tmp_path), answers={"count": {"ok": True}}, mode="kill")
    assert report.failures == [], report.table()


@pytest.mark.parametrize(
    "bad",
    ["fast", "", None, 3, "SYNC"],
)
def test_an_unknown_durability_is_refused_with_the_choices(bad: Any) -> None:
    with pytest.raises(ValueError, match="'sync', 'batch', 'exit'"):
        WorkflowEngine(loop(1), handlers(1), durability=bad)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"mode": "later"}, "durability mode must be one of"),
        ({"mode": "batch", "max_nodes": 0}, "max_nodes must be an integer >= 1"),
        ({"mode": "batch", "max_nodes": 2.5}, "max_nodes must be an integer >= 1"),
        ({"mode": "batch", "max_ms": -1}, "max_ms must be a finite number"),
        ({"mode": "batch", "max_ms": float("nan")}, "max_ms must be a finite number"),
    ],
)
def test_a_bad_durability_record_says_what_is_wrong(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        Durability(**kwargs)


def test_a_durability_is_an_immutable_value() -> None:
    a, b = Durability("batch", max_nodes=8), Durability("batch", max_nodes=8)
    assert a == b and hash(a) == hash(b) and a != Durability("batch")
    assert repr(a) == "Durability(mode='batch', max_nodes=8, max_ms=10.0)"
    with pytest.raises(AttributeError, match="immutable"):
        a.mode = "sync"  # type: ignore[misc]
