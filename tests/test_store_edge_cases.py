"""Store edge cases: latest_step after kills, SQLite schema 2 under prune and migration, rivals."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from _support import LOOP, Recorder, count_to, integration, make_store, stored
from zeroflow import HandlerResult, StoreError, WorkflowContext, WorkflowEngine
from zeroflow._errors import RunLockedError
from zeroflow._models import Event
from zeroflow.stores import SqliteWorkflowStore
from zeroflow.stores._common import event_dict

SRC = Path(__file__).resolve().parent.parent / "src"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "sqlite_v1"


def logged(rec: Recorder, run_id: str) -> list[dict[str, Any]]:
    return [event_dict(e) for e in rec.events if e.run_id == run_id]


# ---------------------------------------------------------------- latest_step

KILLED_LOOP = textwrap.dedent(
    """
    import os, signal, sys
    from zeroflow import HandlerResult, JsonFileWorkflowStore, WorkflowEngine
    from zeroflow.stores import SqliteWorkflowStore

    kind, path, loop = sys.argv[1], sys.argv[2], eval(sys.argv[3])
    store = JsonFileWorkflowStore(path) if kind == "json" else SqliteWorkflowStore(path)

    def count(ctx):
        n = ctx.state.workflow.get("n", 0) + 1
        if n == 37:
            os.kill(os.getpid(), signal.SIGKILL)
        return HandlerResult(["again"], workflow_updates={"n": n})

    WorkflowEngine(loop, {"count": count}, store=store).run({}, run_id="k")
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.parametrize("kind", ["json", "sqlite"])
def test_latest_step_after_a_kill_is_the_last_committed_step(kind: str, tmp_path: Path) -> None:
    path = tmp_path / ("runs" if kind == "json" else "runs.db")
    done = subprocess.run(
        [sys.executable, "-c", KILLED_LOOP, kind, str(path), repr(LOOP)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    store = make_store(kind, tmp_path)
    assert store.latest_step("k") == store.load_snapshot("k").step == 36
    stale = store.load_snapshot("k", step=20)
    store.break_lease("k")
    # under the lease the store answers from its own counters: still the same step
    store.acquire_lease("k", "probe")
    assert store.latest_step("k") == 36
    store.release_lease("k", "probe")
    engine = WorkflowEngine(LOOP, {"count": count_to(50)}, store=store)
    with pytest.raises(RunLockedError, match="moved on"):
        engine.run_from_checkpoint(stale)
    result = engine.run_from_checkpoint(store.load_snapshot("k"))
    assert result.success and result.state.workflow == {"n": 50}
    assert store.latest_step("k") == store.load_snapshot("k").step == 50
    assert store.latest_step("missing") is None


# ---------------------------------------------------------------- SQLite: prune, then go on

GATED = {
    "workflow_name": "gated",
    "default_entry_node": "tick",
    "nodes": {
        "tick": {
            "handler": "tick",
            "outputs": {
                "again": [{"target_node": "tick", "is_loopback": True}],
                "ask": [{"target_node": "gate"}],
                "done": [],
            },
        },
        "gate": {
            "kind": "wait",
            "wait": {"prompt": "go on?"},
            "outputs": {"ok": [{"target_node": "tick", "is_loopback": True}]},
        },
    },
}


def tick(ctx: WorkflowContext) -> HandlerResult:
    n = ctx.state.workflow.get("n", 0) + 1
    ctx.emit("tick", {"n": n})
    label = "done" if n >= 60 else "ask" if n % 20 == 0 else "again"
    return HandlerResult([label], workflow_updates={"n": n})


def test_sqlite_prune_between_pauses_keeps_the_log_and_the_run_going(tmp_path: Path) -> None:
    store, rec = SqliteWorkflowStore(tmp_path / "runs.db"), Recorder()
    engine = WorkflowEngine(GATED, {"tick": tick}, event_callback=rec, store=store)
    result = engine.run({}, run_id="g")
    pruned = 0
    while result.waiting:
        before = stored(store, "g")
        pruned += store.prune(keep_last=2, keep_events=True).checkpoints.get("g", 0)
        assert stored(store, "g") == before
        assert len(store.history("g")) == 2
        assert store.latest_step("g") == result.checkpoint.step  # type: ignore[union-attr]
        # a second engine on another connection resumes the pruned run
        other = SqliteWorkflowStore(tmp_path / "runs.db")
        result = WorkflowEngine(GATED, {"tick": tick}, event_callback=rec, store=other).resume(
            "g", resume_input="go"
        )
        other.close()
    assert result.success and result.state.workflow["n"] == 60
    assert pruned > 40
    assert stored(store, "g") == logged(rec, "g")
    steps = [h.step for h in store.history("g")]
    assert steps == sorted(steps) and steps[-1] == store.latest_step("g")
    old = store.load_snapshot("g", step=steps[-3])
    assert old.step == steps[-3] and old.state.workflow["n"] == old.trace.count("tick")
    # pruning the finished run moves the events of its last rows too
    store.prune(keep_last=1, keep_events=True)
    assert stored(store, "g") == logged(rec, "g")


# ---------------------------------------------------------------- the migrated schema-1 fixture


def _fixture_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sqlite_v1_review", FIXTURE / "make_fixture.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_migrated_database_prunes_forks_and_redrives(tmp_path: Path) -> None:
    fixture = _fixture_module()
    shutil.copy(FIXTURE / "runs.db", tmp_path / "runs.db")
    expected: dict[str, Any] = json.loads((FIXTURE / "expected.json").read_text())
    store = SqliteWorkflowStore(tmp_path / "runs.db")
    rec = Recorder()
    approval = WorkflowEngine(
        fixture.APPROVAL,
        {"draft": fixture.draft, "review": fixture.review, "ship": fixture.ship},
        event_callback=rec,
        store=store,
    )
    assert approval.resume("approval-waiting", resume_input="yes").success
    # schema-1 event rows, then schema-2 checkpoint rows, one log
    approval_log = expected["approval-waiting"]["events"] + logged(rec, "approval-waiting")
    assert stored(store, "approval-waiting") == approval_log

    result = store.prune(keep_last=2, keep_events=True)
    assert result.checkpoints == {"approval-waiting": 5, "loop-done": 40, "loop-pruned": 1}
    assert stored(store, "approval-waiting") == approval_log
    for run_id in ("loop-done", "loop-pruned"):
        assert stored(store, run_id) == expected[run_id]["events"]
        kept = [h.to_dict() for h in store.history(run_id)]
        assert [h.pop("seq") for h in kept] == [h.seq for h in store.history(run_id)]
        assert kept == expected[run_id]["history"][-2:]
        assert store.latest_step(run_id) == 40
    assert {m.run_id: m.status for m in store.list_metadata()} == {
        "approval-waiting": "succeeded",
        "loop-done": "succeeded",
        "loop-pruned": "succeeded",
    }

    # fork a migrated, pruned run at a kept step; the fork fails, is redriven, succeeds
    calls = {"n": 0}

    def flaky_tick(ctx: WorkflowContext) -> HandlerResult:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("first try fails")
        return HandlerResult(["done"], node_updates={"n": ctx.node_state.get("n", 0) + 1})

    loop = WorkflowEngine(fixture.LOOP, {"tick": flaky_tick}, store=store)
    fork = loop.fork("loop-done", 40, new_run_id="fork")
    fork.ready_now = ["tick"]
    store.save_snapshot(fork)
    failed = loop.run_from_checkpoint(store.load_snapshot("fork"))
    assert failed.status == "failed"
    redriven = loop.redrive("fork")
    assert redriven.success and redriven.state.node["tick"] == {"n": 41}
    kinds = [e.kind for e in store.events("fork")]
    assert kinds.count("wf:resumed") == 2 and kinds[-3:] == ["wf:end", "store:saved", "checkpoint"]
    assert store.latest_step("fork") == 42


# ---------------------------------------------------------------- two stores on one file


def test_two_sqlite_stores_on_one_file_drive_runs_at_once(tmp_path: Path) -> None:
    stores = [SqliteWorkflowStore(tmp_path / "runs.db") for _ in range(2)]
    recs = [Recorder(), Recorder()]
    errors: list[BaseException] = []

    def drive(i: int) -> None:
        try:
            engine = WorkflowEngine(
                LOOP, {"count": count_to(250)}, store=stores[i], event_callback=recs[i]
            )
            assert engine.run({}, run_id=f"r{i}").success
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=drive, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    reader = SqliteWorkflowStore(tmp_path / "runs.db")
    while any(t.is_alive() for t in threads):
        for i in range(2):
            try:
                events = reader.events(f"r{i}")
            except KeyError:
                continue
            # a reader never sees half a commit: the log ends at a checkpoint event
            assert events[-1].kind == "checkpoint"
    for t in threads:
        t.join()
    assert errors == []
    for i in range(2):
        want = logged(recs[i], f"r{i}")
        assert stored(reader, f"r{i}") == want
        assert stored(stores[1 - i], f"r{i}") == want
        assert reader.latest_step(f"r{i}") == 250


# ---------------------------------------------------------------- a COMMIT that fails once


class _FailingCommit:
    """A connection whose ``fail_at``-th COMMIT raises (``rolled_back``: SQLite undid it first)."""

    def __init__(self, db: sqlite3.Connection, fail_at: int, rolled_back: bool = False) -> None:
        self.db, self.fail_at, self.rolled_back, self.commits = db, fail_at, rolled_back, 0

    def execute(self, sql: str, *args: Any) -> Any:
        if sql == "COMMIT":
            self.commits += 1
            if self.commits == self.fail_at:
                if self.rolled_back:
                    self.db.execute("ROLLBACK")
                raise sqlite3.OperationalError("database or disk is full")
        return self.db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


@pytest.mark.parametrize("fail_at", [3, 5, 7])
def test_a_failed_commit_is_rolled_back_and_the_run_resumes_at_once(
    fail_at: int, tmp_path: Path
) -> None:
    store, rec = SqliteWorkflowStore(tmp_path / "runs.db"), Recorder()
    store._db = _FailingCommit(store._db, fail_at)  # type: ignore[assignment]
    engine = WorkflowEngine(LOOP, {"count": count_to(5)}, store=store, event_callback=rec)
    with pytest.raises(StoreError, match="disk is full") as caught:
        engine.run({}, run_id="r")
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    # The failed checkpoint is not written (nor kept for later); what was committed stays,
    # its events with it, and the failed call leaves no lease behind.
    assert store.latest_step("r") == fail_at - 3
    assert stored(store, "r") == logged(rec, "r")[: len(stored(store, "r"))]
    assert store.load_snapshot("r").seq == store.latest_checkpoint("r")
    assert engine.resume("r").success
    assert store.load_snapshot("r").state.workflow == {"n": 5}
    kinds = [e["kind"] for e in stored(store, "r")]
    assert kinds.count("wf:end") == 1 and kinds.count("wf:resumed") == 1


# ---------------------------------------------------------------- bugs the review found


def test_a_commit_error_sqlite_rolled_back_itself_is_the_error_raised(
    tmp_path: Path,
) -> None:
    store = SqliteWorkflowStore(tmp_path / "runs.db")
    store._db = _FailingCommit(store._db, 3, rolled_back=True)  # type: ignore[assignment]
    engine = WorkflowEngine(LOOP, {"count": count_to(5)}, store=store)
    with pytest.raises(StoreError, match="disk is full") as caught:
        engine.run({}, run_id="r")
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)


@pytest.mark.parametrize("kind", ["json", "sqlite", "postgres"])
def test_an_event_appended_by_another_store_mid_run_is_kept_in_order(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    made: list[Any] = []

    def open_store() -> Any:
        if kind != "postgres":
            return make_store(kind, tmp_path)
        integration("psycopg")
        from zeroflow.contrib.postgres import PostgresWorkflowStore

        store = PostgresWorkflowStore(request.getfixturevalue("postgres_dsn"), schema=schema)
        made.append(store)
        return store

    def close_all() -> None:
        for store in made:
            store.close()

    schema = f"t_{uuid.uuid4().hex[:12]}"
    request.addfinalizer(close_all)
    driver = open_store()
    if kind == "postgres":
        request.addfinalizer(driver.drop_schema)
    monitor = open_store()

    def count(ctx: WorkflowContext) -> HandlerResult:
        n = ctx.state.workflow.get("n", 0) + 1
        if n == 3:
            monitor.append_event("r", Event("r", n, 1, None, "note", "t", {"from": "monitor"}))
        return HandlerResult(["again" if n < 5 else "done"], workflow_updates={"n": n})

    rec = Recorder()
    engine = WorkflowEngine(LOOP, {"count": count}, store=driver, event_callback=rec)
    assert engine.run({}, run_id="r").success
    before = stored(driver, "r")
    kinds = [e["kind"] for e in before]
    assert kinds.count("note") == 1
    # the note lands after the last checkpoint committed when it was written (node 2's),
    # before node 3's events, which are committed with node 3's checkpoint
    note_at = kinds.index("note")
    starts = [i for i, e in enumerate(before) if e["kind"] == "node:start"]
    assert starts[1] < note_at < starts[2], kinds
    seen = logged(rec, "r")
    assert before[:note_at] + before[note_at + 1 :] == seen
    if kind != "json":
        driver.prune(keep_last=1, keep_events=True)  # (SQLite) moves carried events
        assert stored(driver, "r") == before
    # a new driver taking the lease finds nothing to recover: the files end where they say
    fresh = open_store()
    fresh.acquire_lease("r", "someone")
    fresh.release_lease("r", "someone")
    assert stored(fresh, "r") == before


# ---------------------------------------------------------------- fold requests, mixed run

MIXED = {
    "workflow_name": "mixed",
    "default_entry_node": "grow",
    "nodes": {
        "grow": {
            "handler": "grow",
            "outputs": {
                "again": [{"target_node": "grow", "is_loopback": True}],
                "map": [{"target_node": "each"}],
                "ask": [{"target_node": "ask"}],
                "done": [],
            },
        },
        "each": {
            "handler": "item",
            "map": {"over": "workflow.items"},
            "outputs": {"ok": [{"target_node": "grow", "is_loopback": True}]},
        },
        "ask": {
            "kind": "wait",
            "wait": {"prompt": "?"},
            "outputs": {"ok": [{"target_node": "grow", "is_loopback": True}]},
        },
    },
}


def grow(ctx: WorkflowContext) -> HandlerResult:
    n = ctx.state.workflow.get("n", 0) + 1
    label = "done" if n >= 900 else "map" if n % 97 == 0 else "ask" if n % 250 == 0 else "again"
    return HandlerResult(
        [label],
        workflow_updates={"n": n, "items": list(range(n % 7 + 1)), "blob": {str(n % 50): "x" * 40}},
        node_updates={"last": n},
    )


def item(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(["ok"], node_updates={"v": ctx.item})


def _drive_mixed(store: Any) -> None:
    engine = WorkflowEngine(MIXED, {"grow": grow, "item": item}, store=store)
    result = engine.run({}, run_id="m")
    while result.waiting:
        result = engine.resume("m", resume_input="go")
    assert result.success, result.error


@pytest.mark.parametrize("kind", ["json", "sqlite"])
def test_fold_requests_across_maps_and_pauses_keep_every_historical_load(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = make_store("memory", tmp_path)
    _drive_mixed(reference)
    store = make_store(kind, tmp_path)
    saves: list[str] = []
    original = store.commit

    def counting(run_id: str, owner: str, token: int, write: Any) -> bool:
        if write.snapshot is not None:
            saves.append(write.snapshot.status)
        return bool(original(run_id, owner, token, write))

    monkeypatch.setattr(store, "commit", counting)
    _drive_mixed(store)
    monkeypatch.undo()
    lifecycle = 1 + 2 * 3 + 1  # start, three pauses and their resumes, end
    assert len(saves) > lifecycle, "the store never asked the driver for a full snapshot"
    store = make_store(kind, tmp_path)  # a fresh instance reads only what is on disk
    assert store.latest_step("m") == reference.latest_step("m")
    for step in range(0, reference.latest_step("m") + 1, 13):
        got, want = store.load_snapshot("m", step=step), reference.load_snapshot("m", step=step)
        assert (got.step, got.status, got.trace, got.ready_now, got.extra) == (
            want.step,
            want.status,
            want.trace,
            want.ready_now,
            want.extra,
        ), step
        assert got.state.to_dict() == want.state.to_dict(), step
