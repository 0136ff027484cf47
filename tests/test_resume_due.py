"""Waking what is due: ``engine.resume_due``, the stores' due index and ``runs tick``.

Time comes from ``now=`` and fake clocks; nothing here sleeps.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from zeroflow import (
    HandlerResult,
    InMemoryWorkflowStore,
    JsonFileWorkflowStore,
    RunSnapshot,
    StoreError,
    WorkflowContext,
    WorkflowEngine,
)
from zeroflow._cli import main
from zeroflow._tick import tick_loop
from zeroflow.stores import SqliteWorkflowStore
from zeroflow.testing import FakeClock

T0 = 1_800_000_000.0


def nap_flow(seconds: float = 60, name: str = "naps") -> dict[str, Any]:
    return {
        "workflow_name": name,
        "default_entry_node": "nap",
        "nodes": {
            "nap": {
                "kind": "sleep",
                "sleep": {"for_seconds": seconds},
                "outputs": {"ok": [{"target_node": "after"}]},
            },
            "after": {"handler": "after", "outputs": {"ok": []}},
        },
    }


CALLS: list[str] = []


def after(ctx: WorkflowContext) -> HandlerResult:
    CALLS.append(ctx.run_id)
    return HandlerResult(outputs=["ok"], workflow_updates={"woke_at_step": ctx.step})


def engine(store: Any, clock: FakeClock, defn: dict[str, Any] | None = None) -> WorkflowEngine:
    return WorkflowEngine(defn or nap_flow(), {"after": after}, store=store, clock=clock)


def start(store: Any, clock: FakeClock, ids: list[str], **kw: Any) -> None:
    eng = engine(store, clock, **kw)
    for run_id in ids:
        assert eng.run(run_id=run_id).waiting


STORES = {
    "memory": lambda tmp: InMemoryWorkflowStore(),
    "json": lambda tmp: JsonFileWorkflowStore(tmp / "json"),
    "sqlite": lambda tmp: SqliteWorkflowStore(tmp / "runs.db"),
}


@pytest.mark.parametrize("kind", sorted(STORES))
def test_resume_due_wakes_only_what_is_due_in_due_order(kind: str, tmp_path: Path) -> None:
    store, clock = STORES[kind](tmp_path), FakeClock(T0)
    CALLS.clear()
    start(store, clock, ["b", "a"])
    clock.advance(30)
    start(store, clock, ["c"])  # due 30 s later than a and b
    assert engine(store, clock).resume_due(now=T0 + 59) == []
    woken = engine(store, clock).resume_due(now=T0 + 60)
    assert [r.run_id for r in woken] == ["a", "b"]  # equal due: by run id
    assert all(r.success for r in woken) and CALLS == ["a", "b"]
    assert [r.run_id for r in engine(store, clock).resume_due(now=T0 + 1000)] == ["c"]
    assert engine(store, clock).resume_due(now=T0 + 5000) == []
    assert CALLS == ["a", "b", "c"]


def test_now_defaults_to_the_engine_clock_and_limit_caps_the_wakeups() -> None:
    store, clock = InMemoryWorkflowStore(), FakeClock(T0)
    start(store, clock, ["r1", "r2", "r3"])
    assert engine(store, clock).resume_due() == []
    clock.advance(60)
    assert [r.run_id for r in engine(store, clock).resume_due(limit=2)] == ["r1", "r2"]
    assert [r.run_id for r in engine(store, clock).resume_due()] == ["r3"]
    with pytest.raises(ValueError, match="limit must be None"):
        engine(store, clock).resume_due(limit=0)
    with pytest.raises(TypeError, match="now must be a finite number"):
        engine(store, clock).resume_due(now=float("inf"))


def test_a_run_another_caller_holds_is_skipped_not_an_error() -> None:
    store, clock = InMemoryWorkflowStore(), FakeClock(T0)
    start(store, clock, ["held", "free"])
    store.acquire_lease("held", "someone-else")
    woken = engine(store, clock).resume_due(now=T0 + 60)
    assert [r.run_id for r in woken] == ["free"]
    assert store.load_snapshot("held").status == "waiting"
    store.release_lease("held", "someone-else")
    assert [r.run_id for r in engine(store, clock).resume_due(now=T0 + 60)] == ["held"]


def test_a_stale_checkpoint_is_not_woken_twice() -> None:
    # Two callers read the index and loaded the same run; the first wakes it, the second's
    # wake-up starts from a checkpoint that is no longer the latest and is skipped.
    store, clock = InMemoryWorkflowStore(), FakeClock(T0)
    CALLS.clear()
    start(store, clock, ["r"])
    first, second = engine(store, clock), engine(store, clock)
    late = list(second._wakeups(T0 + 60, None))  # loaded now, driven after the first
    assert [r.run_id for r in first.resume_due(now=T0 + 60)] == ["r"]
    from zeroflow import RunLockedError

    with pytest.raises(RunLockedError):
        second._drive_sync(late[0])
    assert CALLS == ["r"]


def test_runs_of_other_workflows_and_unarmed_waits_are_left_alone() -> None:
    store, clock = InMemoryWorkflowStore(), FakeClock(T0)
    start(store, clock, ["mine"])
    start(store, clock, ["theirs"], defn=nap_flow(name="other"))
    woken = engine(store, clock).resume_due(now=T0 + 3600)
    assert [r.run_id for r in woken] == ["mine"]
    assert store.load_snapshot("theirs").status == "waiting"


def test_a_due_wait_deadline_applies_its_on_timeout() -> None:
    defn: dict[str, Any] = {
        "workflow_name": "approve",
        "default_entry_node": "ask",
        "nodes": {
            "ask": {
                "kind": "wait",
                "wait": {"prompt": "ok?", "timeout_seconds": 3600},
                "outputs": {"ok": [], "timeout": [{"target_node": "after"}]},
            },
            "after": {"handler": "after", "outputs": {"ok": []}},
        },
    }
    store, clock = InMemoryWorkflowStore(), FakeClock(T0)
    start(store, clock, ["x"], defn=defn)
    assert engine(store, clock, defn).resume_due(now=T0 + 3599) == []
    (woken,) = engine(store, clock, defn).resume_due(now=T0 + 3600)
    assert woken.success and woken.trace == ["ask", "ask", "after"]


def test_resume_due_needs_a_store_that_knows_what_is_due() -> None:
    from zeroflow import StoreNotConfiguredError

    with pytest.raises(StoreNotConfiguredError):
        WorkflowEngine(nap_flow(), {"after": after}).resume_due()

    class Plain:
        def save_snapshot(self, snapshot: RunSnapshot) -> None: ...
        def load_snapshot(self, run_id: str) -> RunSnapshot:
            raise KeyError(run_id)

        def append_event(self, run_id: str, event: Any) -> None: ...
        def list_metadata(self, workflow_name: str | None = None) -> list[Any]:
            return []

    with pytest.raises(StoreError, match="cannot tell which runs are due"):
        WorkflowEngine(nap_flow(), {"after": after}, store=Plain()).resume_due()


def test_aresume_due_is_the_async_twin() -> None:
    store, clock = InMemoryWorkflowStore(), FakeClock(T0)
    start(store, clock, ["r"])
    woken = asyncio.run(engine(store, clock).aresume_due(now=T0 + 60))
    assert [r.run_id for r in woken] == ["r"] and woken[0].success


def test_a_fork_of_a_sleeping_run_sleeps_on_its_own_timer_and_is_woken_too() -> None:
    store, clock = InMemoryWorkflowStore(), FakeClock(T0)
    CALLS.clear()
    start(store, clock, ["orig"])
    forked = engine(store, clock).fork("orig", 1, new_run_id="copy")
    assert forked.status == "waiting" and forked.extra["timers"]["nap"]["due"] == T0 + 60
    assert [m.run_id for m in store.due_runs(T0 + 60)] == ["copy", "orig"]
    woken = engine(store, clock).resume_due(now=T0 + 60)
    assert sorted(r.run_id for r in woken) == ["copy", "orig"]
    assert sorted(CALLS) == ["copy", "orig"]


def test_a_redrive_after_a_timer_woke_the_run_does_not_sleep_again() -> None:
    fails = [True]

    def flaky(ctx: WorkflowContext) -> HandlerResult:
        CALLS.append(ctx.run_id)
        if fails[0]:
            raise RuntimeError("downstream is down")
        return HandlerResult(outputs=["ok"])

    store, clock = InMemoryWorkflowStore(), FakeClock(T0)
    CALLS.clear()
    eng = WorkflowEngine(nap_flow(), {"after": flaky}, store=store, clock=clock)
    eng.run(run_id="r")
    (failed,) = eng.resume_due(now=T0 + 60)
    assert failed.status == "failed" and store.due_runs(T0 + 10_000) == []
    fails[0] = False
    done = eng.redrive("r")
    assert done.success and done.trace == ["nap", "nap", "after", "after"]
    assert CALLS == ["r", "r"]


# ---------------------------------------------------------------- several processes at once

WORKERS = 4
RUNS = 200


def _open(kind: str, where: Path) -> Any:
    return (
        SqliteWorkflowStore(where / "runs.db")
        if kind == "sqlite"
        else JsonFileWorkflowStore(where / "runs")
    )


def _wake_in_child(kind: str, where: Path, log: Path) -> int:
    """A worker process: its own store and engine; each handler call appends one line."""

    def counted(ctx: WorkflowContext) -> HandlerResult:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{ctx.run_id}\n".encode())
        finally:
            os.close(fd)
        return HandlerResult(outputs=["ok"])

    store = _open(kind, where)
    eng = WorkflowEngine(nap_flow(), {"after": counted}, store=store, clock=FakeClock(T0))
    eng.resume_due(now=T0 + 60)
    return 0


@pytest.mark.skipif(sys.platform == "win32", reason="uses fork")
@pytest.mark.parametrize(("kind", "runs"), [("sqlite", RUNS), ("json", 60)])
def test_four_processes_wake_two_hundred_due_runs_each_exactly_once(
    kind: str, runs: int, tmp_path: Path
) -> None:
    # The JSON store's variant is smaller (its writes cost more), with the same contention.
    log = tmp_path / "calls.log"
    start(_open(kind, tmp_path), FakeClock(T0), [f"run-{i:03d}" for i in range(runs)])
    pids = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        for _ in range(WORKERS):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child reports through its exit code
                signal.alarm(60)
                code = 99
                try:
                    code = _wake_in_child(kind, tmp_path, log)
                except BaseException as exc:
                    sys.stderr.write(f"child failed: {exc!r}\n")
                finally:
                    os._exit(code)
            pids.append(pid)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    assert codes == [0] * WORKERS
    calls = log.read_text().split()
    counts = {run_id: calls.count(run_id) for run_id in set(calls)}
    assert len(calls) == runs and set(counts.values()) == {1}, counts
    store = _open(kind, tmp_path)
    assert {m.status for m in store.list_metadata()} == {"succeeded"}
    assert store.due_runs(T0 + 10_000) == []


# ---------------------------------------------------------------- the JSON store's due index


def test_the_json_due_index_is_one_small_file_that_empties_as_runs_wake(tmp_path: Path) -> None:
    store, clock = JsonFileWorkflowStore(tmp_path / "s"), FakeClock(T0)
    start(store, clock, ["a", "b"])
    index = json.loads((tmp_path / "s" / "due.json").read_text())
    assert index == {"format": 1, "due": {"a": T0 + 60, "b": T0 + 60}}
    assert [m.run_id for m in store.list_metadata()] == ["a", "b"]  # the index is no run
    engine(store, clock).resume_due(now=T0 + 60)
    assert json.loads((tmp_path / "s" / "due.json").read_text())["due"] == {}


def test_a_damaged_json_due_index_is_rebuilt_from_the_runs(tmp_path: Path) -> None:
    reports: list[Any] = []
    store = JsonFileWorkflowStore(tmp_path / "s", on_report=reports.append)
    clock = FakeClock(T0)
    start(store, clock, ["a", "b"])
    (tmp_path / "s" / "due.json").write_text('{"format": 1, "due": {"a": ')
    assert [m.run_id for m in store.due_runs(T0 + 60)] == ["a", "b"]
    assert reports and "due index is damaged" in str(reports[0].data)


def test_a_stale_or_crafted_json_index_entry_is_never_trusted(tmp_path: Path) -> None:
    store, clock = JsonFileWorkflowStore(tmp_path / "s"), FakeClock(T0)
    start(store, clock, ["a"])
    body = {"format": 1, "due": {"a": 1.0, "../../etc": 1.0, "ghost": 1.0, "due.json": 1.0}}
    (tmp_path / "s" / "due.json").write_text(json.dumps(body))
    # 'a' is listed under its real due time only: its metadata says T0 + 60.
    assert store.due_runs(T0) == []
    assert [m.run_id for m in store.due_runs(T0 + 60)] == ["a"]


def test_the_json_store_refuses_the_run_ids_its_index_uses(tmp_path: Path) -> None:
    store = JsonFileWorkflowStore(tmp_path / "s")
    for reserved in ("due.json", "due.lock"):
        with pytest.raises(StoreError, match="due index"):
            engine(store, FakeClock(T0)).run(run_id=reserved)


# ---------------------------------------------------------------- the CLI


def _cli_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    (tmp_path / "naps.json").write_text(json.dumps(nap_flow()))
    (tmp_path / "nap_handlers.py").write_text(
        "from zeroflow import HandlerResult\n"
        "HANDLERS = {'after': lambda ctx: HandlerResult(outputs=['ok'])}\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return ["--store", "runs", "--workflow", "naps.json", "--handlers", "nap_handlers:HANDLERS"]


def test_runs_list_due_and_runs_tick_wake_what_is_due(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = _cli_setup(tmp_path, monkeypatch)
    # Runs started in 2001 (by the real clock, their 60 s timers are due) and in 2096.
    start(JsonFileWorkflowStore(tmp_path / "runs"), FakeClock(1e9), ["n1", "n2"])
    start(JsonFileWorkflowStore(tmp_path / "runs"), FakeClock(4e9), ["later"])
    assert main(["runs", "list", "--due", "--store", "runs"]) == 0
    out = capsys.readouterr().out
    assert "n1" in out and "n2" in out and "later" not in out and "timer" in out
    assert main(["runs", "list", "--due", "--store", "runs", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in rows] == ["n1", "n2"] and rows[0]["wait_reason"] == "timer"
    assert main(["runs", "tick", *args]) == 0
    assert capsys.readouterr().out.splitlines() == ["woke n1: succeeded", "woke n2: succeeded"]
    assert main(["runs", "tick", *args, "--json"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["runs", "tick", *args]) == 0
    assert capsys.readouterr().out == "nothing due\n"
    assert main(["runs", "tick", *args, "--now", "4.1e9", "--json"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["run_id"] == "later" and row["status"] == "succeeded"


def test_tick_every_repeats_until_interrupted_without_real_sleeps() -> None:
    import io

    ticks: list[int] = []
    slept: list[float] = []

    def once() -> list[Any]:
        ticks.append(1)
        return []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            raise KeyboardInterrupt

    out = io.StringIO()
    assert tick_loop(once, out, every=30.0, sleep=sleep) == 0
    assert len(ticks) == 3 and slept == [30.0, 30.0, 30.0]
    with pytest.raises(ValueError, match="--every must be"):
        tick_loop(once, out, every=0, sleep=sleep)


def test_a_schema_3_sqlite_database_keeps_opening_and_gains_the_due_index(
    tmp_path: Path,
) -> None:
    import sqlite3

    from zeroflow.stores import sqlite as module

    path = tmp_path / "old.db"
    start(SqliteWorkflowStore(path), FakeClock(T0), ["old"])
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP INDEX runs_due")
    db.execute("DROP INDEX runs_by_updated")
    db.execute("DROP INDEX runs_by_status_updated")
    db.execute("ALTER TABLE runs DROP COLUMN due_at")  # what a schema-4 database holds
    db.execute("PRAGMA user_version=4")
    db.close()
    store = SqliteWorkflowStore(path)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 6
    assert module.SCHEMA_VERSION == 6
    assert store.load_snapshot("old").status == "waiting"
    assert store.due_runs(T0 + 60) == []  # written before the index: found once saved again
    start(store, FakeClock(T0), ["new"])
    assert [m.run_id for m in store.due_runs(T0 + 60)] == ["new"]
    plan = sqlite3.connect(path).execute(
        "EXPLAIN QUERY PLAN SELECT run_id FROM runs WHERE due_at IS NOT NULL AND due_at<=? "
        "ORDER BY due_at, run_id",
        (T0,),
    )
    assert "runs_due" in " ".join(str(row) for row in plan)


def test_a_pause_whose_snapshot_write_failed_leaves_an_index_entry_that_wakes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The index learns of the timer before the snapshot is written; the write then fails
    # (a full disk). The entry is one too many, never one too few, and wakes nothing.
    from zeroflow.stores import jsonfile

    store, clock = JsonFileWorkflowStore(tmp_path / "s"), FakeClock(T0)
    real = jsonfile.write_atomic

    def failing(path: Path, data: Any, **kw: Any) -> None:
        if Path(path).name == "snapshot.json" and b'"timers"' in (
            data.encode() if isinstance(data, str) else data
        ):
            raise OSError(28, "No space left on device")
        real(path, data, **kw)

    monkeypatch.setattr(jsonfile, "write_atomic", failing)
    with pytest.raises(StoreError):
        engine(store, clock).run(run_id="r")
    monkeypatch.setattr(jsonfile, "write_atomic", real)
    assert "r" in json.loads((tmp_path / "s" / "due.json").read_text())["due"]
    fresh = JsonFileWorkflowStore(tmp_path / "s")
    assert fresh.due_runs(T0 + 60) == []
    assert engine(fresh, clock).resume_due(now=T0 + 60) == []


def test_signed_checkpoints_are_verified_when_woken() -> None:
    key = b"k" * 32
    store, clock = InMemoryWorkflowStore(), FakeClock(T0)
    eng = WorkflowEngine(nap_flow(), {"after": after}, store=store, clock=clock, checkpoint_key=key)
    eng.run(run_id="s")
    (woken,) = eng.resume_due(now=T0 + 60)
    assert woken.success
    eng.run(run_id="t")
    other = WorkflowEngine(
        nap_flow(), {"after": after}, store=store, clock=clock, checkpoint_key=b"x" * 32
    )
    from zeroflow import InvalidCheckpointError

    with pytest.raises(InvalidCheckpointError):
        other.resume_due(now=T0 + 60)


# ---------------------------------------------------------------- timers inside a subflow

CHILD: dict[str, Any] = {
    "workflow_name": "child",
    "default_entry_node": "nap",
    "nodes": {
        "nap": {
            "kind": "sleep",
            "sleep": {"for_seconds": 60},
            "outputs": {"ok": [{"target_node": "ask"}]},
        },
        "ask": {
            "kind": "wait",
            "wait": {"timeout_seconds": 3600, "on_timeout": "default", "timeout_payload": {"v": 0}},
            "outputs": {"ok": [{"target_node": "after"}]},
        },
        "after": {"handler": "after", "outputs": {"ok": []}},
    },
}
PARENT: dict[str, Any] = {
    "workflow_name": "parent",
    "default_entry_node": "sub",
    "nodes": {
        "sub": {
            "kind": "subflow",
            "subflow": {"workflow": "child"},
            "outputs": {"ok": [{"target_node": "tail"}]},
        },
        "tail": {"handler": "after", "outputs": {"ok": []}},
    },
}


def test_a_subflow_childs_sleep_and_deadline_are_woken_through_the_parent() -> None:
    store, clock = InMemoryWorkflowStore(), FakeClock(T0)
    CALLS.clear()

    def eng() -> WorkflowEngine:
        return WorkflowEngine(
            PARENT, {"after": after}, store=store, clock=clock, subflows={"child": CHILD}
        )

    paused = eng().run(run_id="p")
    assert paused.waiting
    (meta,) = store.list_metadata()
    assert (meta.due_at, meta.wait_reason) == (T0 + 60, "timer")
    assert eng().resume_due(now=T0 + 59) == []
    clock.advance(60)
    (asked,) = eng().resume_due()
    assert asked.waiting and store.list_metadata()[0].due_at == T0 + 60 + 3600
    assert store.list_metadata()[0].wait_reason == "input"
    (done,) = eng().resume_due(now=T0 + 60 + 3600)
    assert done.success and CALLS == ["p.sub", "p"]
    assert done.state.node["sub"]["output"]["__resume__"] == {"v": 0}  # the deadline's payload


def test_a_late_answer_to_a_subflow_childs_wait_loses_to_its_deadline() -> None:
    store, clock = InMemoryWorkflowStore(), FakeClock(T0)
    CALLS.clear()

    def eng() -> WorkflowEngine:
        return WorkflowEngine(
            PARENT, {"after": after}, store=store, clock=clock, subflows={"child": CHILD}
        )

    for run_id in ("early", "late"):
        eng().run(run_id=run_id)
    clock.advance(60)
    eng().resume_due()  # both now wait at the child's 'ask'
    on_time = eng().resume("early", "sub/ask", {"v": 1})
    assert on_time.success and on_time.state.node["sub"]["output"]["__resume__"] == {"v": 1}
    clock.advance(3600)
    late = eng().resume("late", "sub/ask", {"v": 1})
    assert late.success and late.state.node["sub"]["output"]["__resume__"] == {"v": 0}


def test_a_json_store_whose_runs_never_had_a_timer_has_no_index_files(tmp_path: Path) -> None:
    defn: dict[str, Any] = {
        "workflow_name": "plain",
        "default_entry_node": "after",
        "nodes": {"after": {"handler": "after", "outputs": {"ok": []}}},
    }
    store = JsonFileWorkflowStore(tmp_path / "s")
    assert engine(store, FakeClock(T0), defn).run(run_id="p").success
    store.delete_run("p")
    assert not (tmp_path / "s" / "due.json").exists()
    assert not (tmp_path / "s" / "due.lock").exists()
    assert store.due_runs(T0 + 10**6) == []
