"""SQLite schema 2 (events in checkpoint rows), the migration from schema 1, fold requests."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sqlite3
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from _support import run_loop, step_delta
from zeroflow import CheckpointWrite, JsonFileWorkflowStore, WorkflowEngine
from zeroflow._journal import StepDelta
from zeroflow._models import Event, StepRecord
from zeroflow.stores import SqliteWorkflowStore
from zeroflow.stores.sqlite import SCHEMA_VERSION
from zeroflow.testing import sample_snapshot

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "sqlite_v1"


def _fixture_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sqlite_v1_fixture", FIXTURE / "make_fixture.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _schema_1_copy(tmp_path: Path) -> Path:
    path = tmp_path / "runs.db"
    shutil.copy(FIXTURE / "runs.db", path)
    return path


def _user_version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def test_a_schema_1_database_is_migrated_and_reads_back_the_same(tmp_path: Path) -> None:
    path = _schema_1_copy(tmp_path)
    assert _user_version(path) == 1
    expected: dict[str, Any] = json.loads((FIXTURE / "expected.json").read_text())
    store = SqliteWorkflowStore(path)
    for run_id, want in expected.items():
        loaded = store.load_snapshot(run_id).to_dict()
        # ``seq`` is the store's numbering of the checkpoint (schema 1 had it already).
        assert loaded.pop("seq") == store.latest_checkpoint(run_id), run_id
        assert loaded == want["snapshot"], run_id
        history = [h.to_dict() for h in store.history(run_id)]
        seqs = [h.pop("seq") for h in history]
        last = store.latest_checkpoint(run_id)
        assert seqs == list(range(last - len(seqs) + 1, last + 1)), run_id
        assert history == want["history"], run_id
        assert [e.to_dict() for e in store.events(run_id)] == want["events"], run_id
    store.close()
    assert _user_version(path) == SCHEMA_VERSION == 6


def test_a_migrated_waiting_run_resumes_and_its_log_continues(tmp_path: Path) -> None:
    fixture = _fixture_module()
    expected = json.loads((FIXTURE / "expected.json").read_text())["approval-waiting"]
    store = SqliteWorkflowStore(_schema_1_copy(tmp_path))
    handlers = {"draft": fixture.draft, "review": fixture.review, "ship": fixture.ship}
    engine = WorkflowEngine(fixture.APPROVAL, handlers, store=store)
    result = engine.resume("approval-waiting", resume_input="yes")
    assert result.status == "succeeded", result.error
    assert result.state.workflow == {
        "text": "v1 draft",
        "__resume__": "yes",
        "decision": "yes",
        "shipped": True,
    }
    events = store.events("approval-waiting")
    old = len(expected["events"])
    assert [e.to_dict() for e in events[:old]] == expected["events"]
    kinds = [e.kind for e in events[old:]]
    assert kinds[0] == "wf:resumed" and kinds[-1] == "checkpoint" and "wf:end" in kinds
    assert store.load_snapshot("approval-waiting").trace == ["draft", "review", "review", "ship"]


def test_a_database_is_migrated_once_and_then_opens_as_is(tmp_path: Path) -> None:
    path = _schema_1_copy(tmp_path)
    SqliteWorkflowStore(path).close()
    store = SqliteWorkflowStore(path)  # a second open finds schema 2: nothing to migrate
    assert store.load_snapshot("loop-done").state.node == {"tick": {"n": 40}}
    store.close()


def test_a_drivers_events_ride_in_its_checkpoint_rows(tmp_path: Path) -> None:
    store = SqliteWorkflowStore(tmp_path / "runs.db")
    run_loop(store, 30, "loop")
    db = store._db
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 0
    carried = db.execute(
        "SELECT count(*), sum(event_count) FROM checkpoints WHERE events IS NOT NULL"
    ).fetchone()
    events = store.events("loop")
    assert carried[0] == len(store.history("loop")) and carried[1] == len(events)
    assert [e.kind for e in events[:2]] == ["wf:start", "store:saved"]
    assert events[-1].kind == "checkpoint" and events[-2].kind == "store:saved"


def test_pruning_history_keeps_every_event(tmp_path: Path) -> None:
    store = SqliteWorkflowStore(tmp_path / "runs.db")
    run_loop(store, 40, "loop")
    before = [e.to_dict() for e in store.events("loop")]
    pruned = store.prune(keep_last=3, keep_events=True)
    assert pruned.checkpoints["loop"] == 40 + 2 - 3  # start + 40 nodes + end, 3 kept
    assert len(store.history("loop")) == 3
    assert [e.to_dict() for e in store.events("loop")] == before
    # and the log goes on after the prune, numbered after the moved events
    store.append_event("loop", Event("loop", 41, 41, None, "note", "t", {"after": "prune"}))
    assert [e.to_dict() for e in store.events("loop")] == [
        *before,
        {
            "run_id": "loop",
            "step": 41,
            "wave": 41,
            "node": None,
            "kind": "note",
            "ts": "t",
            "data": {"after": "prune"},
        },
    ]


def test_events_without_a_lease_go_to_the_events_table_in_order(tmp_path: Path) -> None:
    store = SqliteWorkflowStore(tmp_path / "runs.db")
    store.save_snapshot(sample_snapshot("r"))
    store.append_events("r", [Event("r", 1, 1, "a", "node:start", "t", {"node": "a"})])
    store.append_event("r", Event("r", 1, 1, "a", "node:end", "t", {"node": "a"}))
    assert [e.kind for e in store.events("r")] == ["node:start", "node:end"]
    assert store._db.execute("SELECT count(*) FROM events").fetchone()[0] == 2


@pytest.mark.parametrize("kind", ["json", "sqlite"])
def test_a_driver_sends_full_snapshots_when_the_store_asks(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store: Any = (
        JsonFileWorkflowStore(tmp_path / "runs")
        if kind == "json"
        else SqliteWorkflowStore(tmp_path / "runs.db")
    )

    def no_rebuild(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the store rebuilt the state although the driver holds it")

    monkeypatch.setattr(store, "_rebuild", no_rebuild)
    asked = []
    original = store.commit

    # A driver writes each checkpoint with ``commit``: count those that carry a full snapshot.
    def commit(run_id: str, owner: str, token: int, write: Any) -> bool:
        if write.snapshot is not None:
            asked.append(write.snapshot.status)
        return bool(original(run_id, owner, token, write))

    monkeypatch.setattr(store, "commit", commit)
    result = run_loop(store, 2000, "loop")
    assert result.success
    folds = asked.count("running") - 1  # the start is a full save too
    assert 2 <= folds <= 12, asked
    assert asked[-1] == "succeeded"
    monkeypatch.undo()
    assert store.load_snapshot("loop", step=1234).state.workflow == {"n": 1234}
    assert store.load_snapshot("loop").state.workflow == {"n": 2000}


def _delta(n: int) -> StepDelta:
    return step_delta(
        "r",
        n,
        ready_now=["a"],
        trace=["a"],
        records=[StepRecord(n, 1, "a", "succeeded", "t", ["ok"], None, False, 1.0)],
        ops=[("set", ("workflow", "n"), n)],
    )


@pytest.mark.parametrize("kind", ["json", "sqlite"])
def test_a_lease_holder_that_ignores_fold_requests_is_folded_anyway(
    kind: str, tmp_path: Path
) -> None:
    store: Any = (
        JsonFileWorkflowStore(tmp_path / "runs")
        if kind == "json"
        else SqliteWorkflowStore(tmp_path / "runs.db")
    )
    token = store.acquire_lease("r", "me")
    store.commit("r", "me", token, CheckpointWrite(1, snapshot=sample_snapshot("r")))
    asked = 0
    for n in range(1, 1501):
        events = [Event("r", n, 1, "a", "checkpoint", "t", {"step": n})]
        write = CheckpointWrite(n + 1, delta=_delta(n), events=events)
        asked += bool(store.commit("r", "me", token, write))
    store.release_lease("r", "me")
    assert asked > 0, "the store never asked for a full snapshot"
    assert store.load_snapshot("r").state.workflow["n"] == 1500
    assert store.load_snapshot("r", step=777).state.workflow["n"] == 777
    if kind == "sqlite":
        fulls = store._db.execute("SELECT count(*) FROM snapshots").fetchone()[0]
    else:
        fulls = len(list((tmp_path / "runs" / "r" / "journal").glob("*.snapshot.json"))) + 1
    assert 2 <= fulls <= 15, fulls
