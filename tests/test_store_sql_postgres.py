"""PostgresWorkflowStore under faults and damage: the SQLite store's guarantees, on a server.

Runs against the throwaway server of ``conftest.py`` (skipped locally when
PostgreSQL is not installed, never in CI). Faults are injected at the
statement level; damaged rows are written by hand.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from _support import LOOP, count_to, step_delta
from zeroflow import Event, WorkflowEngine
from zeroflow._errors import RunLockedError, StoreCorruptError, StoreError
from zeroflow._store import CheckpointWrite
from zeroflow.testing import sample_snapshot

psycopg = pytest.importorskip("psycopg", reason="psycopg is a dev dependency (uv sync)")
from zeroflow.contrib import postgres as module  # noqa: E402
from zeroflow.contrib.postgres import PostgresWorkflowStore  # noqa: E402

RUN = "run-1"


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def opened(postgres_dsn: str) -> Iterator[Callable[..., PostgresWorkflowStore]]:
    """``opened(**kw)``: a store on this test's schema; each call is another process."""
    schema = f"h_{uuid.uuid4().hex[:12]}"
    made: list[PostgresWorkflowStore] = []

    def make(**kw: Any) -> PostgresWorkflowStore:
        store = PostgresWorkflowStore(postgres_dsn, schema=schema, **kw)
        made.append(store)
        return store

    yield make
    for store in reversed(made[1:]):
        store.close()
    if made:
        made[0].drop_schema()


def raw(store: PostgresWorkflowStore, query: str, *args: Any) -> list[Any]:
    """Run ``query`` on a connection of its own, in the store's schema."""
    with psycopg.connect(store.conninfo, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {store.schema}")
        cur = conn.execute(query, args or None)
        return cur.fetchall() if cur.description else []


class Faults:
    """Makes the store's statements fail while armed (``fails`` picks which)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.error: Exception | None = None
        self.fails: Callable[[str], bool] = lambda q: True
        original = module._Statements.execute

        def execute(statements: Any, query: Any, parameters: Any = None, /) -> Any:
            if self.error is not None and isinstance(query, str) and self.fails(query):
                raise self.error
            return original(statements, query, parameters)

        monkeypatch.setattr(module._Statements, "execute", execute)


def is_write(query: str) -> bool:
    return query.lstrip().split(" ", 1)[0] in ("INSERT", "UPDATE", "DELETE", "WITH")


def loop_engine(store: Any, limit: int = 30, **kw: Any) -> WorkflowEngine:
    return WorkflowEngine(LOOP, {"count": count_to(limit)}, store=store, **kw)


# ---------------------------------------------------------------- faults


def test_postgres_a_full_disk_fails_the_run_naming_it_and_leaves_no_lease(
    opened: Callable[..., PostgresWorkflowStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = opened()
    faults = Faults(monkeypatch)
    seen: list[int] = []

    def fill_the_disk(event: Event) -> None:
        if event.kind == "node:end":
            seen.append(event.step)
            if len(seen) == 5:
                faults.fails = is_write
                faults.error = psycopg.errors.DiskFull("could not extend file")

    with pytest.raises(StoreError) as info:
        loop_engine(store, event_callback=fill_the_disk).run({}, run_id=RUN)
    assert not isinstance(info.value, RunLockedError)
    assert f"run '{RUN}'" in str(info.value) and store.schema in str(info.value)
    assert "SQLSTATE 53100" in str(info.value)
    assert isinstance(info.value.__cause__, psycopg.errors.DiskFull)
    faults.error = None
    assert store.latest_step(RUN) == 4
    done = loop_engine(store).run_from_checkpoint(store.load_snapshot(RUN))  # at once
    assert done.status == "succeeded" and done.state.workflow["n"] == 30


def test_postgres_every_read_names_the_run_on_a_database_error(
    opened: Callable[..., PostgresWorkflowStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = opened()
    store.save_snapshot(sample_snapshot(RUN))
    faults = Faults(monkeypatch)
    faults.error = psycopg.errors.DataCorrupted("invalid page in block 7")
    for call in (
        lambda: store.load_snapshot(RUN),
        lambda: store.history(RUN),
        lambda: store.events(RUN),
        lambda: store.latest_checkpoint(RUN),
        lambda: store.run_status(RUN),
        lambda: store.delete_run(RUN),
    ):
        with pytest.raises(StoreCorruptError) as info:
            call()
        assert f"run '{RUN}'" in str(info.value) and "backup" in str(info.value)
        assert isinstance(info.value.__cause__, psycopg.errors.DataCorrupted)
    faults.error = None
    assert store.load_snapshot(RUN).step == 1


# ---------------------------------------------------------------- one bad run


def test_postgres_a_malformed_runs_row_is_skipped_and_reported(
    opened: Callable[..., PostgresWorkflowStore], clock: Clock
) -> None:
    got: list[Event] = []
    store = opened(clock=clock, on_report=got.append)
    for run_id in ("a", "bad", "nan"):
        store.save_snapshot(sample_snapshot(run_id, status="succeeded"))
    raw(store, "UPDATE runs SET last_error='{' WHERE run_id='bad'")
    raw(store, "UPDATE runs SET saved_at='NaN' WHERE run_id='nan'")
    assert [m.run_id for m in store.list_metadata()] == ["a", "nan"]
    assert [(e.kind, e.run_id) for e in got] == [("store:corrupt", "bad")]
    clock.now += 3600
    assert store.prune(older_than=60).runs == ("a", "bad")
    assert [e.run_id for e in got[1:]] == ["nan"]
    assert store.run_status("nan") == "succeeded"


# ---------------------------------------------------------------- lease expiry


@pytest.mark.parametrize("expiry", [1e300, math.inf], ids=["absurd", "inf"])
def test_postgres_a_lease_with_an_absurd_expiry_counts_as_expired(
    opened: Callable[..., PostgresWorkflowStore], clock: Clock, expiry: float
) -> None:
    store = opened(clock=clock)
    store.save_snapshot(sample_snapshot(RUN, status="succeeded"))
    raw(
        store,
        "INSERT INTO leases VALUES (%s, 'ghost', %s, 4, %s)",
        RUN,
        expiry,
        '{"host": "elsewhere", "pid": 1}',
    )
    assert store.acquire_lease(RUN, "me") == 5
    store.release_lease(RUN, "me")
    raw(store, "UPDATE leases SET owner='ghost', expires_at=%s", expiry)
    clock.now += 3600
    assert store.prune(older_than=60).runs == (RUN,)


# ---------------------------------------------------------------- prune


def test_postgres_prune_drops_old_events_unless_asked_and_estimates_bytes_freed(
    opened: Callable[..., PostgresWorkflowStore],
) -> None:
    store = opened()
    loop_engine(store, 60).run({}, run_id="loop")
    events = len(store.events("loop"))
    result = store.prune(keep_last=1)
    left = len(store.events("loop"))
    assert 0 < left < 10 and result.events["loop"] == events - left
    assert result.bytes_freed > 0
    assert store.load_snapshot("loop").state.workflow["n"] == 60
    # keep_events: trimmed, every event stays
    loop_engine(store, 60).run({}, run_id="again")
    before = [e.to_dict() for e in store.events("again")]
    again = store.prune(keep_last=1, keep_events=True)
    assert again.checkpoints == {"again": 61} and "again" not in again.events
    assert [e.to_dict() for e in store.events("again")] == before


# ---------------------------------------------------------------- consistent reads


def test_postgres_load_snapshot_by_step_reads_one_consistent_checkpoint(
    opened: Callable[..., PostgresWorkflowStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = opened()
    loop_engine(store, 20).run({}, run_id="loop")
    other = opened()
    original = store._rebuild
    done: list[bool] = []

    def rebuild(db: Any, run_id: str, seq: int) -> dict[str, Any]:
        if not done:
            done.append(True)
            other.prune(keep_last=1)  # another process prunes between the SELECTs
        return original(db, run_id, seq)

    monkeypatch.setattr(store, "_rebuild", rebuild)
    snap = store.load_snapshot("loop", step=5)
    assert snap.step == 5 and snap.state.workflow["n"] == 5


def test_postgres_a_drivers_damaged_expiry_is_rewritten_at_its_next_commit(
    opened: Callable[..., PostgresWorkflowStore], clock: Clock
) -> None:
    store = opened(clock=clock, lease_ttl_seconds=30)
    token = store.acquire_lease(RUN, "me")
    store.commit(RUN, "me", token, CheckpointWrite(1, snapshot=sample_snapshot(RUN)))
    raw(store, "UPDATE leases SET expires_at='Infinity'")
    store.commit(RUN, "me", token, CheckpointWrite(2, delta=step_delta(RUN, 2)))
    assert raw(store, "SELECT expires_at FROM leases") == [(clock.now + 30,)]
