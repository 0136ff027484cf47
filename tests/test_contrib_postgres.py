"""PostgresWorkflowStore on a real PostgreSQL: the SQLite store's behaviour, shared by processes.

The server is a throwaway cluster started by ``conftest.py``; every test gets
its own schema. Where a behaviour is the SQLite store's, the test runs the
same workflow through both and compares what they hold.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from _support import integration
from zeroflow import (
    HandlerResult,
    RunSnapshot,
    WorkflowContext,
    WorkflowEngine,
    WorkflowError,
    WorkflowState,
)
from zeroflow._errors import RunExistsError, RunLockedError, StoreError
from zeroflow._store import HistoryStore, JournalingStore, LeasingStore
from zeroflow.stores import SqliteWorkflowStore
from zeroflow.testing import STORE_CHECKS, check_lease_expiry

psycopg = integration("psycopg")
from zeroflow.contrib.postgres import PostgresWorkflowStore  # noqa: E402


class Clock:
    """A settable clock for lease expiry."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def schema() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


_OPEN: list[PostgresWorkflowStore] = []


@pytest.fixture
def store(postgres_dsn: str, schema: str, clock: Clock) -> Iterator[PostgresWorkflowStore]:
    s = PostgresWorkflowStore(postgres_dsn, schema=schema, lease_ttl_seconds=10, clock=clock)
    yield s
    while _OPEN:
        _OPEN.pop().close()
    s.drop_schema()


def other(
    store: PostgresWorkflowStore, clock: Clock | None = None, ttl: float = 10
) -> PostgresWorkflowStore:
    """A second store on the same schema: another process, as far as the database knows."""
    s = PostgresWorkflowStore(
        store.conninfo, schema=store.schema, lease_ttl_seconds=ttl, clock=clock
    )
    _OPEN.append(s)
    return s


def snapshot(run_id: str = "r1", workflow_name: str = "wf", status: str = "running") -> RunSnapshot:
    return RunSnapshot(
        run_id=run_id,
        workflow_name=workflow_name,
        wf_hash="abc",
        status=status,
        step=1,
        wave=1,
        ready_now=["b"],
        state=WorkflowState({"in": 1}, {"w": {"deep": [1]}}, {"a": {"n": 1}}),
        trace=["a"],
        last_node="a",
        last_error=WorkflowError("E", "m", "a"),
    )


def count(ctx: WorkflowContext) -> HandlerResult:
    n = int(ctx.state.workflow.get("n", 0)) + 1
    return HandlerResult(
        outputs=["again" if n < ctx.node_config["times"] else "done"],
        workflow_updates={"n": n, f"at_{n}": ctx.node_name},
    )


def approve(ctx: WorkflowContext) -> HandlerResult:
    answer = ctx.state.workflow.get("__resume__")
    if answer is None:
        return HandlerResult(outputs=[], waiting=True, waiting_prompt="approve?")
    return HandlerResult(outputs=["ok"], workflow_updates={"approved": answer})


def loop_def(times: int) -> dict[str, Any]:
    return {
        "workflow_name": "loop",
        "default_entry_node": "tick",
        "nodes": {
            "tick": {
                "handler": "count",
                "config": {"times": times},
                "outputs": {
                    "again": [{"target_node": "tick", "is_loopback": True}],
                    "done": [{"target_node": "gate"}],
                },
            },
            "gate": {"handler": "approve", "outputs": {"ok": []}},
        },
    }


def engine(store: Any, times: int = 3) -> WorkflowEngine:
    return WorkflowEngine(loop_def(times), {"count": count, "approve": approve}, store=store)


# ---------------------------------------------------------------- packaging


def test_importing_zeroflow_imports_neither_psycopg_nor_celery() -> None:
    code = (
        "import sys, zeroflow, zeroflow.contrib, zeroflow.stores, zeroflow.core;"
        "bad = [m for m in ('psycopg', 'celery', 'kombu', 'redis') if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_store_has_every_optional_ability(store: PostgresWorkflowStore) -> None:
    assert isinstance(store, JournalingStore)
    assert isinstance(store, LeasingStore)
    assert isinstance(store, HistoryStore)


def test_an_unreachable_server_is_a_store_error_naming_the_schema() -> None:
    with pytest.raises(StoreError, match="postgres schema 'zeroflow': cannot open the store"):
        PostgresWorkflowStore("host=127.0.0.1 port=1 user=x dbname=x", connect_timeout_seconds=1)


def test_a_schema_name_that_is_not_an_identifier_is_refused(postgres_dsn: str) -> None:
    with pytest.raises(ValueError, match="plain SQL identifier"):
        PostgresWorkflowStore(postgres_dsn, schema="x; DROP TABLE runs")


# ---------------------------------------------------------------- the conformance kit


@pytest.fixture
def fresh_stores(postgres_dsn: str) -> Iterator[Callable[..., PostgresWorkflowStore]]:
    """A factory of fresh, empty stores (one schema each), all dropped afterwards."""
    made: list[PostgresWorkflowStore] = []

    def make(clock: Callable[[], float] | None = None) -> PostgresWorkflowStore:
        s = PostgresWorkflowStore(postgres_dsn, schema=f"k_{uuid.uuid4().hex[:12]}", clock=clock)
        made.append(s)
        return s

    yield make
    for s in made:
        s.drop_schema()


@pytest.mark.parametrize("check", STORE_CHECKS, ids=lambda c: c.__name__)
def test_the_store_passes_the_conformance_kit(
    check: Callable[[Callable[[], Any]], None],
    fresh_stores: Callable[..., PostgresWorkflowStore],
) -> None:
    check(fresh_stores)


def test_the_store_passes_the_lease_expiry_check(
    fresh_stores: Callable[..., PostgresWorkflowStore],
) -> None:
    check_lease_expiry(fresh_stores)


# ---------------------------------------------------------------- snapshots and listing


def test_a_saved_snapshot_loads_back_equal_from_another_connection(
    store: PostgresWorkflowStore,
) -> None:
    snap = snapshot()
    store.save_snapshot(snap)
    loaded = other(store).load_snapshot("r1")
    assert loaded.seq == 1  # the store numbers its checkpoints
    loaded.seq = None
    assert loaded.to_dict() == snap.to_dict()


def test_a_missing_run_is_a_key_error_naming_it(store: PostgresWorkflowStore) -> None:
    with pytest.raises(KeyError) as info:
        store.load_snapshot("missing-id")
    assert str(info.value) == "run 'missing-id' not found"
    assert store.run_status("missing-id") is None
    with pytest.raises(KeyError):
        store.history("missing-id")


def test_listing_filters_by_workflow_and_status_through_the_index(
    store: PostgresWorkflowStore,
) -> None:
    store.save_snapshot(snapshot("r1", "alpha", "waiting"))
    store.save_snapshot(snapshot("r2", "beta", "succeeded"))
    store.save_snapshot(snapshot("r3", "alpha", "failed"))
    assert [m.run_id for m in store.list_metadata()] == ["r1", "r2", "r3"]
    assert [m.run_id for m in store.list_metadata("alpha")] == ["r1", "r3"]
    [waiting] = store.list_metadata("alpha", status="waiting")
    assert (waiting.run_id, waiting.waiting, waiting.current_node) == ("r1", True, "a")
    assert waiting.last_error == WorkflowError("E", "m", "a")
    with store._tx() as cur:
        cur.execute("SET LOCAL enable_seqscan = off")  # a tiny table would be scanned anyway
        plan = " ".join(
            row[0]
            for row in cur.execute(
                "EXPLAIN SELECT run_id FROM runs WHERE workflow_name='alpha' AND status='waiting'"
            ).fetchall()
        )
    assert "Index Scan using runs_by_" in plan


# ---------------------------------------------------------------- engine runs and history


def test_a_run_is_stored_like_the_sqlite_store_stores_it(
    store: PostgresWorkflowStore, tmp_path: Path
) -> None:
    lite = SqliteWorkflowStore(tmp_path / "runs.db")
    ids = iter(["fixed-id"] * 2)
    results = []
    for s in (store, lite):
        e = WorkflowEngine(
            loop_def(4),
            {"count": count, "approve": approve},
            store=s,
            run_id_factory=lambda: next(ids),
            resume_token_factory=lambda: "same-token",  # determinism, as for run ids
        )
        results.append(e.run({"x": 1}))
    pg_snap, lite_snap = store.load_snapshot("fixed-id"), lite.load_snapshot("fixed-id")
    for snap in (pg_snap, lite_snap):
        snap.started_at = snap.updated_at = None
        for i, rec in enumerate(snap.audit_trail):
            snap.audit_trail[i] = type(rec)(**{**rec.to_dict(), "ts": "", "duration_ms": 0.0})
    assert pg_snap.to_dict() == lite_snap.to_dict()
    assert pg_snap.status == "waiting"
    assert [(c.step, c.status, c.node) for c in store.history("fixed-id")] == [
        (c.step, c.status, c.node) for c in lite.history("fixed-id")
    ]
    assert [e.kind for e in store.events("fixed-id")] == [e.kind for e in lite.events("fixed-id")]
    lite.close()


def test_a_waiting_run_resumes_through_another_connection(store: PostgresWorkflowStore) -> None:
    first = engine(store).run(run_id="hitl")
    assert first.waiting
    result = engine(other(store)).resume("hitl", resume_input="yes")
    assert result.success
    assert result.state.workflow["approved"] == "yes"
    assert store.load_snapshot("hitl").status == "succeeded"
    assert [m.status for m in store.list_metadata("loop")] == ["succeeded"]


def test_any_checkpoint_loads_by_step(store: PostgresWorkflowStore) -> None:
    engine(store, times=5).run(run_id="r")
    steps = [c.step for c in store.history("r")]
    assert steps[0] == 0 and max(steps) == 6
    assert store.load_snapshot("r", step=2).state.workflow["n"] == 2
    with pytest.raises(StoreError, match="has no checkpoint at step 99"):
        store.load_snapshot("r", step=99)


def test_a_long_run_folds_its_journal_and_still_loads_exactly(
    store: PostgresWorkflowStore,
) -> None:
    result = engine(store, times=260).run(run_id="long")
    loaded = store.load_snapshot("long")
    assert loaded.to_dict() == result.checkpoint.to_dict()  # type: ignore[union-attr]
    with store._tx() as cur:
        fulls = cur.execute("SELECT count(*) FROM snapshots WHERE run_id='long'").fetchone()
    assert fulls is not None and fulls[0] >= 3  # start, fold(s), waiting
    assert store.load_snapshot("long", step=150).state.workflow["n"] == 150


def test_starting_a_run_id_that_exists_is_refused(store: PostgresWorkflowStore) -> None:
    engine(store).run(run_id="dup")
    with pytest.raises(RunExistsError):
        engine(other(store)).run(run_id="dup")


# ---------------------------------------------------------------- leases


def test_a_second_owner_is_locked_out_until_the_lease_expires(
    store: PostgresWorkflowStore, clock: Clock
) -> None:
    store.acquire_lease("r", "alice")
    rival = other(store, clock)
    with pytest.raises(RunLockedError, match=r"run 'r' is being driven by another caller"):
        rival.acquire_lease("r", "bob")
    clock.now += 10.5
    rival.acquire_lease("r", "bob")
    with pytest.raises(RunLockedError, match="lost its lease"):
        store.renew_lease("r", "alice")  # renewal never takes the run back
    store.release_lease("r", "alice")  # not the holder: a no-op
    with pytest.raises(RunLockedError):
        store.acquire_lease("r", "carol")
    assert store.break_lease("r") is True
    assert store.break_lease("r") is False
    store.acquire_lease("r", "carol")


def test_the_server_clock_measures_leases_by_default(store: PostgresWorkflowStore) -> None:
    server_clocked = other(store, None, ttl=0.2)
    server_clocked.acquire_lease("r", "a")
    with pytest.raises(RunLockedError):
        other(store, None, ttl=0.2).acquire_lease("r", "b")
    threading.Event().wait(0.3)
    other(store, None, ttl=0.2).acquire_lease("r", "b")


def test_of_many_racing_owners_exactly_one_wins(store: PostgresWorkflowStore) -> None:
    rivals = [other(store) for _ in range(8)]
    barrier = threading.Barrier(len(rivals))
    winners: list[int] = []

    def race(i: int) -> None:
        barrier.wait()
        try:
            rivals[i].acquire_lease("hot", f"owner-{i}")
            winners.append(i)
        except RunLockedError:
            pass

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(rivals))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1


def test_a_run_under_a_live_lease_cannot_be_deleted_by_others(
    store: PostgresWorkflowStore, clock: Clock
) -> None:
    store.save_snapshot(snapshot("r"))
    store.acquire_lease("r", "alice")
    with pytest.raises(RunLockedError):
        other(store, clock).delete_run("r")
    assert store.delete_run("r", owner="alice") is True
    assert store.run_status("r") is None


def test_stale_runs_are_those_running_without_a_live_lease(
    store: PostgresWorkflowStore, clock: Clock
) -> None:
    store.save_snapshot(snapshot("orphan"))
    store.save_snapshot(snapshot("driven"))
    store.save_snapshot(snapshot("done", status="succeeded"))
    store.acquire_lease("orphan", "dead-worker")
    store.acquire_lease("driven", "live-worker")
    assert store.stale_runs() == []
    clock.now += 8
    store.renew_lease("driven", "live-worker")
    clock.now += 3
    assert store.stale_runs() == ["orphan"]


_KILLED_DRIVER = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from test_contrib_postgres import count, approve, loop_def
from zeroflow import WorkflowEngine
from zeroflow.contrib.postgres import PostgresWorkflowStore

calls = 0
def dies_on_third(ctx):
    global calls
    calls += 1
    if calls == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return count(ctx)

store = PostgresWorkflowStore({dsn!r}, schema={schema!r}, lease_ttl_seconds=60.0)
WorkflowEngine(loop_def(4), {{"count": dies_on_third, "approve": approve}}, store=store).run(
    run_id="crash"
)
"""


def test_a_driver_killed_mid_run_leaves_a_run_another_process_continues(
    store: PostgresWorkflowStore, tmp_path: Path
) -> None:
    script = tmp_path / "driver.py"
    script.write_text(
        _KILLED_DRIVER.format(
            tests=str(Path(__file__).parent), dsn=store.conninfo, schema=store.schema
        )
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, timeout=60)
    assert done.returncode == -9, done.stderr
    # The lease is still unexpired, but its holder process is gone from this host: another
    # process takes the run over at once instead of waiting for the TTL.
    rival = other(store, None, ttl=60.0)
    snap = rival.load_snapshot("crash")
    assert (snap.status, snap.trace) == ("running", ["tick", "tick"])
    result = engine(rival, 4).run_from_checkpoint(snap)
    assert result.waiting
    assert result.trace == ["tick"] * 4 + ["gate"]
    assert [r.node for r in result.audit_trail if r.status == "succeeded"] == ["tick"] * 4


# ---------------------------------------------------------------- prune


def test_prune_trims_histories_and_deletes_old_finished_runs(
    store: PostgresWorkflowStore, clock: Clock
) -> None:
    engine(store, times=5).run(run_id="a")
    engine(store, times=5).resume("a", resume_input=1)
    engine(store, times=2).run(run_id="b")
    before = len(store.history("b"))
    result = store.prune(keep_last=2)
    assert result.checkpoints["b"] == before - 2
    assert len(store.history("b")) == 2
    assert store.load_snapshot("b").status == "waiting"
    clock.now += 3600
    result = store.prune(older_than=60)
    assert result.runs == ("a",)
    assert store.run_status("a") is None and store.run_status("b") == "waiting"


# ---------------------------------------------------------------- one round trip


class Statements:
    """Counts what the store sends the server: statements, batches and transaction blocks."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        for cls, name in (
            (psycopg.Cursor, "execute"),
            (psycopg.Cursor, "executemany"),
            (psycopg.Connection, "transaction"),
        ):
            original = getattr(cls, name)

            def counted(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
                self.count += 1
                return _original(*args, **kwargs)

            monkeypatch.setattr(cls, name, counted)


def test_a_node_checkpoint_is_one_statement_to_the_server(
    store: PostgresWorkflowStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    short, long = engine(store, times=5), engine(store, times=45)
    sent = Statements(monkeypatch)
    short.run({}, run_id="short")
    few = sent.count
    sent.count = 0
    long.run({}, run_id="long")
    # 40 more nodes, 40 more checkpoints: one statement each (its own transaction)
    assert sent.count - few == 40, (few, sent.count)
    assert store.load_snapshot("long").state.workflow["n"] == 45
    assert [e.kind for e in store.events("long")].count("node:end") == 45


def test_a_one_statement_commit_after_the_lease_was_taken_writes_nothing(
    store: PostgresWorkflowStore, clock: Clock
) -> None:
    from zeroflow._store import CheckpointWrite

    engine(store, times=2).run({}, run_id="r")  # waits at the gate
    token = store.acquire_lease("r", "alice")
    latest = store.latest_checkpoint("r")
    assert latest is not None
    clock.now += 10.5  # alice's lease lapses; bob takes the run
    rival = other(store, clock)
    rival.acquire_lease("r", "bob")
    snap = store.load_snapshot("r")
    from zeroflow._live import LiveRun

    live = LiveRun(snap, journaling=True)
    live.snap.step += 1
    write = CheckpointWrite(latest + 1, delta=live.delta(), events=[])
    with pytest.raises(RunLockedError, match=r"lost its lease|being driven"):
        store.commit("r", "alice", token, write)
    assert store.latest_checkpoint("r") == latest


def test_events_an_operator_logged_meanwhile_are_kept_and_the_run_goes_on(
    store: PostgresWorkflowStore,
) -> None:
    from zeroflow import Event

    calls = {"n": 0}

    def noting(ctx: WorkflowContext) -> HandlerResult:
        calls["n"] += 1
        if calls["n"] == 3:  # another process logs a note while the run is driven
            other(store).append_event(
                "r", Event("r", 3, 0, None, "note", "2026-01-01T00:00:00Z", {"by": "ops"})
            )
        return count(ctx)

    e = WorkflowEngine(loop_def(6), {"count": noting, "approve": approve}, store=store)
    assert e.run({}, run_id="r").status == "waiting"
    kinds = [ev.kind for ev in store.events("r")]
    assert kinds.count("note") == 1
    assert kinds.count("node:end") == 6  # every tick's end, none lost to the collision
    assert kinds.count("wf:waiting") + kinds.count("node:waiting") >= 1


def test_the_cli_opens_a_postgres_store_from_its_url(
    store: PostgresWorkflowStore, capsys: pytest.CaptureFixture[str]
) -> None:
    from zeroflow._cli import main

    engine(store, times=2).run({}, run_id="via-url")
    info = dict(part.split("=", 1) for part in store.conninfo.split())
    url = (
        f"postgresql://{info['user']}@{info['host']}:{info['port']}/{info['dbname']}"
        f"?schema={store.schema}"
    )
    assert main(["runs", "list", "--store", url]) == 0
    listed = capsys.readouterr().out
    assert "via-url" in listed and "waiting" in listed
    assert main(["runs", "why", "via-url", "--store", url]) == 0
    assert "waits for an answer" in capsys.readouterr().out
