"""Fork safety: forks from inside a driven run, grandchildren, odd stores, locks held at fork.

Each child reports through its exit code; ``signal.alarm`` ends a child that
hangs instead of the test run.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _support import (
    LOOP,
    Recorder,
    count_to,
    in_child,
    integration,
    lock_held_briefly,
    make_store,
    stored,
)
from zeroflow import HandlerResult, InMemoryWorkflowStore, WorkflowContext, WorkflowEngine
from zeroflow._errors import RunLockedError, StoreError
from zeroflow._models import Event
from zeroflow.stores import SqliteWorkflowStore
from zeroflow.stores._common import event_dict
from zeroflow.testing import sample_snapshot

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only"),
    pytest.mark.filterwarnings(
        "ignore:.*use of fork\\(\\) may lead to deadlocks:DeprecationWarning"
    ),
]

SRC = Path(__file__).resolve().parent.parent / "src"


# ---------------------------------------------------------------- fork from inside a driven run


@pytest.mark.parametrize("kind", ["json", "sqlite"])
def test_a_handler_that_forks_mid_run_leaves_the_run_to_the_parent(
    kind: str, tmp_path: Path
) -> None:
    """The child reads the parent's committed step, cannot take the run, drives its own."""
    store: Any = make_store(kind, tmp_path)
    codes: list[int] = []

    def count(ctx: WorkflowContext) -> HandlerResult:
        n = ctx.state.workflow.get("n", 0) + 1
        if n == 10:

            def child() -> int:
                if store.latest_step("parent") != 9:
                    return 3  # the parent's last committed checkpoint: 9 counts
                if store.load_snapshot("parent").state.workflow != {"n": 9}:
                    return 4
                try:
                    store.acquire_lease("parent", "child")
                    return 5  # the parent's lease must still hold in the child
                except RunLockedError:
                    pass
                other = WorkflowEngine(LOOP, {"count": count_to(25)}, store=store)
                return 0 if other.run({}, run_id="child").success else 6

            codes.append(in_child(child))
        return HandlerResult(["again" if n < 30 else "done"], workflow_updates={"n": n})

    rec = Recorder()
    result = WorkflowEngine(LOOP, {"count": count}, store=store, event_callback=rec).run(
        {}, run_id="parent"
    )
    assert codes == [0]
    assert result.success and result.state.workflow == {"n": 30}
    fresh: Any = make_store(kind, tmp_path)
    assert fresh.load_snapshot("child").state.workflow == {"n": 25}
    assert fresh.latest_step("parent") == 30
    assert stored(fresh, "parent") == [event_dict(e) for e in rec.events]
    if kind == "sqlite":
        db = sqlite3.connect(tmp_path / "runs.db")
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()


@pytest.mark.parametrize("kind", ["memory", "json", "sqlite"])
def test_a_grandchild_gets_its_own_store_state_too(kind: str, tmp_path: Path) -> None:
    store: Any = make_store(kind, tmp_path)
    WorkflowEngine(LOOP, {"count": count_to(3)}, store=store).run({}, run_id="p")

    def grandchild() -> int:
        result = WorkflowEngine(LOOP, {"count": count_to(7)}, store=store).run({}, run_id="g")
        return 0 if result.success and store.latest_step("p") is not None else 2

    def child() -> int:
        store.acquire_lease("c", "child")  # a lease, and with it a writer, when it forks
        store.save_snapshot(sample_snapshot("c"))
        if in_child(grandchild) != 0:
            return 3
        store.release_lease("c", "child")
        result = WorkflowEngine(LOOP, {"count": count_to(5)}, store=store).run({}, run_id="c2")
        if kind == "memory":  # a copy of the store: the grandchild's run stayed there
            return (
                0 if result.success and "g" not in {m.run_id for m in store.list_metadata()} else 4
            )
        return 0 if result.success and store.latest_step("g") is not None else 5

    assert in_child(child) == 0
    if kind != "memory":
        fresh: Any = make_store(kind, tmp_path)
        assert {m.run_id for m in fresh.list_metadata()} == {"p", "c", "c2", "g"}
        assert len(fresh.history("c")) == 1


def test_a_memory_sqlite_database_is_the_childs_own_copy() -> None:
    store = SqliteWorkflowStore(":memory:")
    WorkflowEngine(LOOP, {"count": count_to(4)}, store=store).run({}, run_id="p")

    def child() -> int:
        result = WorkflowEngine(LOOP, {"count": count_to(6)}, store=store).run({}, run_id="c")
        return 0 if result.success and store.latest_step("p") == 4 else 2

    assert in_child(child) == 0
    assert store.latest_step("c") is None  # the child wrote its copy only
    result = WorkflowEngine(LOOP, {"count": count_to(3)}, store=store).run({}, run_id="p2")
    assert result.success and store.latest_step("p2") == 3


def test_stores_by_the_thousand_register_one_hook_and_are_forgotten() -> None:
    code = textwrap.dedent(
        """
        import gc, os
        calls = []
        real = os.register_at_fork
        os.register_at_fork = lambda **kw: (calls.append(kw), real(**kw))
        from zeroflow import InMemoryWorkflowStore, JsonFileWorkflowStore
        from zeroflow.stores import SqliteWorkflowStore, _common
        import tempfile
        tmp = tempfile.mkdtemp()
        for i in range(500):
            InMemoryWorkflowStore()
            JsonFileWorkflowStore(tmp + "/runs")
            SqliteWorkflowStore(":memory:").close()
        gc.collect()
        kept = InMemoryWorkflowStore()
        hook = _common._after_fork_in_child
        ours = sum(1 for kw in calls if kw.get("after_in_child") is hook)
        print(ours, len(_common._FORK_WATCHED))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    assert out.stdout.split() == ["1", "1"], out.stdout + out.stderr


# ---------------------------------------------------------------- bugs


def test_a_child_keeps_its_writes_when_the_parent_closes_its_sqlite_store(
    tmp_path: Path,
) -> None:
    store = SqliteWorkflowStore(tmp_path / "runs.db")
    WorkflowEngine(LOOP, {"count": count_to(3)}, store=store).run({}, run_id="p")
    go_r, go_w = os.pipe()
    ready_r, ready_w = os.pipe()

    def child() -> int:
        os.close(go_w)
        os.close(ready_r)
        os.write(ready_w, b"r")  # the at-fork hook has reopened the store's connection
        os.read(go_r, 1)  # the parent has closed its store
        result = WorkflowEngine(LOOP, {"count": count_to(40)}, store=store).run({}, run_id="c")
        return 0 if result.success else 2

    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, reported through the exit code
        signal.alarm(20)
        code = 99
        try:
            code = child()
        finally:
            os._exit(code)
    os.close(go_r)
    os.close(ready_w)
    try:
        assert os.read(ready_r, 1) == b"r"
        store.close()
        os.write(go_w, b"x")
    finally:
        os.close(go_w)
        os.close(ready_r)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    fresh = SqliteWorkflowStore(tmp_path / "runs.db")
    assert fresh.latest_step("c") == 40  # None: the child's run was written to a deleted WAL


@pytest.mark.parametrize("where", ["file", ":memory:"])
def test_a_child_forked_during_another_threads_sqlite_transaction_can_write_afterwards(
    where: str, tmp_path: Path
) -> None:
    path = tmp_path / "runs.db" if where == "file" else ":memory:"
    store = SqliteWorkflowStore(path, timeout_seconds=2)
    WorkflowEngine(LOOP, {"count": count_to(3)}, store=store).run({}, run_id="p")
    held, done = threading.Event(), threading.Event()

    def write_slowly() -> None:
        with store._tx() as db:  # what a driver's commit holds, made long
            db.execute("DELETE FROM leases WHERE run_id='nobody'")
            held.set()
            done.wait(30)

    thread = threading.Thread(target=write_slowly)
    thread.start()
    held.wait(10)
    timer = threading.Timer(0.2, done.set)  # the parent commits shortly after the fork
    timer.start()
    try:

        def child() -> int:
            result = WorkflowEngine(LOOP, {"count": count_to(3)}, store=store).run({}, run_id="c")
            return 0 if result.success else 2

        code = in_child(child)
    finally:
        done.set()
        timer.cancel()
        thread.join()
    assert code == 0
    if where == "file":
        assert SqliteWorkflowStore(path).latest_step("c") == 3


def test_a_store_whose_constructor_failed_does_not_break_the_fork_hook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "not-a-database"
    bad.write_bytes(b"x" * 4096)
    with pytest.raises(StoreError) as failed:  # the traceback keeps the half-built store alive
        SqliteWorkflowStore(bad)
    stores = [InMemoryWorkflowStore() for _ in range(2000)]
    locks = [s._lock for s in stores]
    errors: list[BaseException | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: errors.append(u.exc_value))

    def child() -> int:
        if errors:
            return 2  # the at-fork hook raised
        return 0 if all(s._lock is not lock for s, lock in zip(stores, locks, strict=True)) else 3

    assert in_child(child) == 0
    assert failed.value is not None


# ---------------------------------------------------------------- PostgreSQL


@pytest.fixture
def pg_store(request: pytest.FixtureRequest) -> Iterator[Any]:
    integration("psycopg")
    from zeroflow.contrib.postgres import PostgresWorkflowStore

    dsn = request.getfixturevalue("postgres_dsn")
    store = PostgresWorkflowStore(dsn, schema=f"t_{uuid.uuid4().hex[:12]}")
    yield store
    store.drop_schema()
    store.close()


def test_a_postgres_child_drives_its_own_run_while_the_parent_holds_a_lease(
    pg_store: Any,
) -> None:
    store = pg_store
    store.acquire_lease("parent", "p")
    store.save_snapshot(sample_snapshot("parent"))

    def child() -> int:
        result = WorkflowEngine(LOOP, {"count": count_to(5)}, store=store).run({}, run_id="c")
        return 0 if result.success else 2

    assert in_child(child) == 0
    store.release_lease("parent", "p")
    assert store.latest_step("c") == 5
    assert len(store.history("parent")) == 1


def test_a_postgres_child_that_first_lists_runs_leaves_the_parents_pending_writes(
    pg_store: Any,
) -> None:
    store = pg_store
    store.acquire_lease("parent", "p")
    store.save_snapshot(sample_snapshot("parent"))
    store.append_events("parent", [Event("parent", 1, 1, "a", "node:start", "t", {"node": "a"})])

    def child() -> int:
        store.list_metadata()
        return 0

    assert in_child(child) == 0
    store.release_lease("parent", "p")  # raises StoreError: UniqueViolation
    assert [e.kind for e in store.events("parent")] == ["node:start"]


def test_a_postgres_child_forked_while_another_thread_held_the_lock_does_not_hang(
    pg_store: Any,
) -> None:
    store = pg_store

    def child() -> int:
        engine = WorkflowEngine(LOOP, {"count": count_to(3)}, store=store)
        return 0 if engine.run({}, run_id="child").success else 2

    with lock_held_briefly(store):
        code = in_child(child, alarm=5)
    assert code == 0
