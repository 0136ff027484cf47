"""The SQLite store: versioned schema, O(change) history, typed errors, several processes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from _support import LOOP, run_loop
from zeroflow._errors import RunNotFoundError, StoreCorruptError
from zeroflow.stores import SqliteWorkflowStore
from zeroflow.stores.sqlite import SCHEMA_VERSION
from zeroflow.testing import sample_snapshot

SRC = Path(__file__).resolve().parent.parent / "src"


def test_a_new_database_gets_the_current_schema_in_wal_mode(tmp_path: Path) -> None:
    store = SqliteWorkflowStore(tmp_path / "deep" / "runs.db")
    store.close()
    db = sqlite3.connect(tmp_path / "deep" / "runs.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_a_database_from_a_newer_zeroflow_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreCorruptError, match="newer") as info:
        SqliteWorkflowStore(path)
    assert info.value.path == str(path)


def test_a_file_that_is_not_a_database_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreCorruptError, match="not a SQLite database"):
        SqliteWorkflowStore(path)


def test_a_damaged_snapshot_row_is_a_typed_error_naming_the_run(tmp_path: Path) -> None:
    store = SqliteWorkflowStore(tmp_path / "runs.db")
    store.save_snapshot(sample_snapshot("r"))
    store._db.execute("UPDATE snapshots SET body='{\"run_id\": ' WHERE run_id='r'")
    with pytest.raises(StoreCorruptError, match="run 'r'"):
        store.load_snapshot("r")


def test_history_is_kept_with_few_full_snapshots(tmp_path: Path) -> None:
    store = SqliteWorkflowStore(tmp_path / "runs.db")
    run_loop(store, 1500, "loop")
    history = store.history("loop")
    # start, one checkpoint per node, the end (wave openings are announced, not written)
    assert len(history) == 1 + 1500 + 1
    assert history[0].step == 0 and history[-1].status == "succeeded"
    fulls = store._db.execute("SELECT count(*) FROM snapshots").fetchone()[0]
    assert fulls <= 15, f"{fulls} full snapshots for one run: storage grows with the square"
    for step in (1, 700, 1499):
        assert store.load_snapshot("loop", step=step).state.workflow == {"n": step}
    assert store.load_snapshot("loop").state.workflow == {"n": 1500}


def test_prune_by_age_takes_timedeltas_and_spares_unfinished_runs(tmp_path: Path) -> None:
    now = [1_000_000.0]
    store = SqliteWorkflowStore(tmp_path / "runs.db", clock=lambda: now[0])
    run_loop(store, 3, "done-old")
    store.save_snapshot(sample_snapshot("waiting-old", status="waiting"))
    now[0] += 7200
    run_loop(store, 3, "done-new")
    result = store.prune(older_than=timedelta(hours=1))
    assert result.runs == ("done-old",)
    assert sorted(m.run_id or "" for m in store.list_metadata()) == ["done-new", "waiting-old"]
    with pytest.raises(RunNotFoundError):
        store.events("done-old")


def test_listing_by_workflow_and_status_uses_an_index(tmp_path: Path) -> None:
    store = SqliteWorkflowStore(tmp_path / "runs.db")
    plan = store._db.execute(
        "EXPLAIN QUERY PLAN SELECT run_id FROM runs WHERE workflow_name=? AND status=?",
        ("w", "waiting"),
    ).fetchall()
    assert "runs_by_workflow" in str(plan)


def test_several_processes_write_different_runs_while_a_reader_reads(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    SqliteWorkflowStore(path).close()
    writer = textwrap.dedent(
        """
        import sys
        from zeroflow import HandlerResult, WorkflowEngine
        from zeroflow.stores import SqliteWorkflowStore
        LOOP = {loop!r}
        def count(ctx):
            n = ctx.state.workflow.get("n", 0) + 1
            return HandlerResult(["again" if n < 300 else "done"], workflow_updates={{"n": n}})
        store = SqliteWorkflowStore(sys.argv[1])
        WorkflowEngine(LOOP, {{"count": count}}, store=store).run({{}}, run_id=sys.argv[2])
        """
    ).format(loop=LOOP)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    procs = [
        subprocess.Popen([sys.executable, "-c", writer, str(path), f"run-{i}"], env=env)
        for i in range(3)
    ]
    reader = SqliteWorkflowStore(path)
    seen = 0
    while any(p.poll() is None for p in procs):
        for meta in reader.list_metadata("loop"):
            snap = reader.load_snapshot(meta.run_id or "")
            assert len(snap.trace) == snap.state.workflow.get("n", 0)
            seen += 1
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    for i in range(3):
        assert reader.load_snapshot(f"run-{i}").state.workflow == {"n": 300}
    assert seen > 0
    reader.close()


def test_a_memory_database_works_for_tests(tmp_path: Path) -> None:
    store = SqliteWorkflowStore(":memory:")
    assert run_loop(store, 10, "loop").status == "succeeded"
    assert store.load_snapshot("loop").state.workflow == {"n": 10}
