"""Fencing tokens, renewals and checkpoint identities of the SQLite and Postgres stores.

Every test runs against both backends (Postgres on the session's throwaway
server, never skipped with ``CI=true``). Lease time is an injected clock:
nothing here sleeps. "Another process" is a second store object on the same
database, or a real child process where the holder's death matters.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from _support import integration, step_delta
from zeroflow._errors import RunLockedError, StoreError
from zeroflow._models import Event, RunSnapshot
from zeroflow._store import DEFAULT_LEASE_TTL_SECONDS, CheckpointWrite
from zeroflow.stores import SqliteWorkflowStore
from zeroflow.testing import sample_snapshot

TTL = 10.0
RUN = "run-1"


class Clock:
    """A settable lease clock."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Backend:
    """Opens store objects on one database: each is another process, as far as leases go."""

    def __init__(self, kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.kind = kind
        self.path = tmp_path / "runs.db"
        self.schema = f"t_{uuid.uuid4().hex[:12]}"
        self.dsn = ""
        if kind == "postgres":
            integration("psycopg")
            self.dsn = request.getfixturevalue("postgres_dsn")
        self.opened: list[Any] = []

    def open(self, clock: Callable[[], float] | None, ttl: float | None = TTL, **kw: Any) -> Any:
        extra: dict[str, Any] = dict(kw)
        if ttl is not None:
            extra["lease_ttl_seconds"] = ttl
        if self.kind == "sqlite":
            store: Any = (
                SqliteWorkflowStore(self.path, clock=clock, **extra)
                if clock is not None
                else SqliteWorkflowStore(self.path, **extra)
            )
        else:
            from zeroflow.contrib.postgres import PostgresWorkflowStore

            store = PostgresWorkflowStore(self.dsn, schema=self.schema, clock=clock, **extra)
        self.opened.append(store)
        return store

    def child_script(self, body: str) -> str:
        """Python source for a child process: ``store`` opened on this database, then ``body``."""
        if self.kind == "sqlite":
            opener = (
                "from zeroflow.stores import SqliteWorkflowStore\n"
                f"store = SqliteWorkflowStore({str(self.path)!r})\n"
            )
        else:
            opener = (
                "from zeroflow.contrib.postgres import PostgresWorkflowStore\n"
                f"store = PostgresWorkflowStore({self.dsn!r}, schema={self.schema!r})\n"
            )
        return opener + textwrap.dedent(body)

    def close(self) -> None:
        for store in reversed(self.opened):
            try:
                if self.kind == "postgres" and store is self.opened[0]:
                    continue
                store.close()
            except Exception:
                pass
        if self.kind == "postgres" and self.opened:
            self.opened[0].drop_schema()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    b = Backend(request.param, tmp_path, request)
    yield b
    b.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def event(step: int, kind: str = "node:end") -> Event:
    return Event(RUN, step, 1, "a", kind, "2026-01-01T00:00:00+00:00", {"n": step})


def full(seq: int, step: int, status: str = "running", events: int = 1) -> CheckpointWrite:
    snap = sample_snapshot(status=status, step=step)
    return CheckpointWrite(seq, snapshot=snap, events=[event(step) for _ in range(events)])


def delta(seq: int, step: int) -> CheckpointWrite:
    return CheckpointWrite(seq, delta=step_delta(RUN, step), events=[event(step)])


def picture(store: Any) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """What a reader sees of the run: its snapshot, history and event log."""
    return (
        store.load_snapshot(RUN).to_dict(),
        [h.to_dict() for h in store.history(RUN)],
        [e.to_dict() for e in store.events(RUN)],
    )


def raw_driver_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [sqlite3.Error]
    try:
        import psycopg

        errors.append(psycopg.Error)
    except ImportError:
        pass
    return tuple(errors)


def assert_fenced(exc: BaseException) -> None:
    """A refusal by the fence: a ``RunLockedError`` naming the run, no raw driver error."""
    assert type(exc) is RunLockedError, repr(exc)
    assert RUN in str(exc)
    assert not isinstance(exc.__cause__, raw_driver_errors()), repr(exc.__cause__)
    assert not isinstance(exc.__context__, raw_driver_errors()), repr(exc.__context__)


# ---------------------------------------------------------------- tokens


def test_tokens_grow_across_acquire_release_break_delete_and_store_objects(
    backend: Backend, clock: Clock
) -> None:
    a, b = backend.open(clock), backend.open(clock)
    tokens = [a.acquire_lease(RUN, "a1")]
    a.release_lease(RUN, "a1")
    tokens.append(a.acquire_lease(RUN, "a2"))  # the same object, after its own release
    a.release_lease(RUN, "a2")
    tokens.append(b.acquire_lease(RUN, "b1"))  # another process on the same database
    assert b.break_lease(RUN) is True
    assert b.break_lease(RUN) is False  # broken once: no lease left to break
    tokens.append(a.acquire_lease(RUN, "a3"))
    clock.now += TTL + 1  # expired, never released
    tokens.append(b.acquire_lease(RUN, "b2"))
    tokens.append(b.acquire_lease(RUN, "b2"))  # the holder taking it again: a new token
    b.commit(RUN, "b2", tokens[-1], full(1, 1))
    b.release_lease(RUN, "b2")
    assert a.delete_run(RUN) is True  # a whole run deleted: its lease row and token stay
    tokens.append(a.acquire_lease(RUN, "a4"))
    assert all(isinstance(t, int) for t in tokens), tokens
    assert tokens == sorted(set(tokens)), f"tokens must grow strictly: {tokens}"
    with pytest.raises(RunLockedError):
        backend.open(clock).acquire_lease(RUN, "c")  # held by a4; a refusal issues no token
    a.release_lease(RUN, "a4")
    assert backend.open(clock).acquire_lease(RUN, "c") > tokens[-1]


def test_delete_run_by_its_driver_keeps_the_lease_and_its_token(
    backend: Backend, clock: Clock
) -> None:
    a, b = backend.open(clock), backend.open(clock)
    token = a.acquire_lease(RUN, "a")
    a.commit(RUN, "a", token, full(1, 1))
    a.commit(RUN, "a", token, delta(2, 2))
    assert a.delete_run(RUN, owner="a") is True  # replace=True: start the run over
    with pytest.raises(RunLockedError):
        b.acquire_lease(RUN, "b")  # still a's
    a.commit(RUN, "a", token, full(1, 1))  # the token still holds; numbering starts over
    assert a.latest_checkpoint(RUN) == 1
    a.release_lease(RUN, "a")
    assert b.acquire_lease(RUN, "b") > token


# ---------------------------------------------------------------- renewals


def test_renewal_after_another_owner_took_over_and_released_is_refused(
    backend: Backend, clock: Clock
) -> None:
    a, b = backend.open(clock), backend.open(clock)
    token = a.acquire_lease(RUN, "a")
    a.commit(RUN, "a", token, full(1, 1))
    clock.now += TTL + 1
    b.acquire_lease(RUN, "b")
    b.release_lease(RUN, "b")
    with pytest.raises(RunLockedError) as info:
        a.renew_lease(RUN, "a", token)
    assert_fenced(info.value)
    with pytest.raises(RunLockedError):
        a.renew_lease(RUN, "a")  # without the token too: the row is nobody's now
    # The refused renewals took nothing: a third caller gets the run at once.
    assert backend.open(clock).acquire_lease(RUN, "c") > token


def test_renewal_after_break_lease_is_refused_at_once(backend: Backend, clock: Clock) -> None:
    a, b = backend.open(clock), backend.open(clock)
    token = a.acquire_lease(RUN, "a")
    a.renew_lease(RUN, "a", token)
    assert b.break_lease(RUN) is True
    with pytest.raises(RunLockedError) as info:
        a.renew_lease(RUN, "a", token)  # no time passed: no throttle may hide the break
    assert_fenced(info.value)
    with pytest.raises(RunLockedError):
        a.commit(RUN, "a", token, full(1, 1))
    assert a.latest_checkpoint(RUN) is None


def test_an_expired_lease_nobody_took_is_still_renewable_with_its_token(
    backend: Backend, clock: Clock
) -> None:
    a = backend.open(clock)
    token = a.acquire_lease(RUN, "a")
    clock.now += TTL * 5
    a.renew_lease(RUN, "a", token)
    with pytest.raises(RunLockedError):
        a.renew_lease(RUN, "a", token - 1)  # a token that is not the current one
    with pytest.raises(RunLockedError):
        backend.open(clock).acquire_lease(RUN, "b")  # renewed: live again


# ---------------------------------------------------------------- fenced commits


def test_a_commit_with_a_stale_token_is_refused_and_writes_nothing(
    backend: Backend, clock: Clock
) -> None:
    a, b = backend.open(clock), backend.open(clock)
    old = a.acquire_lease(RUN, "a")
    a.commit(RUN, "a", old, full(1, 1, events=2))
    clock.now += TTL + 1  # a stalls; b takes over and writes checkpoint 2
    new = b.acquire_lease(RUN, "b")
    b.commit(RUN, "b", new, delta(2, 2))
    before = picture(backend.open(clock))
    for write in (full(2, 9, status="failed", events=3), delta(2, 9), full(3, 9), delta(3, 9)):
        with pytest.raises(RunLockedError) as info:
            a.commit(RUN, "a", old, write)
        assert_fenced(info.value)
    # Also with the current owner's name but the old token (an owner re-acquired elsewhere).
    with pytest.raises(RunLockedError) as info:
        b.commit(RUN, "b", old, delta(3, 3))
    assert_fenced(info.value)
    assert picture(backend.open(clock)) == before
    assert picture(a) == before  # the refusing instance left nothing queued either
    assert a.latest_checkpoint(RUN) == 2
    b.commit(RUN, "b", new, delta(3, 3))  # b's lease was not disturbed
    assert b.latest_checkpoint(RUN) == 3


def test_a_commit_whose_seq_does_not_follow_the_latest_is_refused(
    backend: Backend, clock: Clock
) -> None:
    a = backend.open(clock)
    token = a.acquire_lease(RUN, "a")
    with pytest.raises(RunLockedError):
        a.commit(RUN, "a", token, full(2, 1))  # a run's first checkpoint is 1
    a.commit(RUN, "a", token, full(1, 1))
    before = picture(backend.open(clock))
    for seq in (1, 3, 0, 7):
        with pytest.raises(RunLockedError) as info:
            a.commit(RUN, "a", token, delta(seq, 2))
        assert_fenced(info.value)
        with pytest.raises(RunLockedError):
            a.commit(RUN, "a", token, full(seq, 2))
    assert picture(backend.open(clock)) == before
    a.commit(RUN, "a", token, delta(2, 2))
    assert a.latest_checkpoint(RUN) == 2


def test_an_unleased_write_by_another_process_moves_a_driver_on(
    backend: Backend, clock: Clock
) -> None:
    a, b = backend.open(clock), backend.open(clock)
    token = a.acquire_lease(RUN, "a")
    a.commit(RUN, "a", token, full(1, 1))
    b.save_snapshot(sample_snapshot(step=5))  # an operator's save, no lease: checkpoint 2
    with pytest.raises(RunLockedError):
        a.commit(RUN, "a", token, delta(2, 2))
    a.commit(RUN, "a", token, delta(3, 6))  # a driver that knows the latest may go on
    assert a.latest_checkpoint(RUN) == 3
    assert a.load_snapshot(RUN).step == 6


def test_a_commit_renews_the_lease(backend: Backend, clock: Clock) -> None:
    a, b = backend.open(clock), backend.open(clock)
    token = a.acquire_lease(RUN, "a")
    for seq in range(1, 5):
        clock.now += TTL * 0.9
        a.commit(RUN, "a", token, full(seq, seq) if seq == 1 else delta(seq, seq))
    with pytest.raises(RunLockedError):
        b.acquire_lease(RUN, "b")


def test_a_commit_right_after_a_break_is_refused_though_no_renewal_was_due(
    backend: Backend, clock: Clock
) -> None:
    """Commits renew only once a third of the TTL has passed; every one is still fenced."""
    a, b = backend.open(clock), backend.open(clock)
    token = a.acquire_lease(RUN, "a")
    a.commit(RUN, "a", token, full(1, 1))
    a.commit(RUN, "a", token, delta(2, 2))
    assert b.break_lease(RUN)
    with pytest.raises(RunLockedError, match="lost its lease"):
        a.commit(RUN, "a", token, delta(3, 3))
    assert b.latest_checkpoint(RUN) == 2


# ---------------------------------------------------------------- checkpoint identities


def test_seqs_count_every_checkpoint_and_never_repeat(backend: Backend, clock: Clock) -> None:
    a, b = backend.open(clock), backend.open(clock)
    assert a.latest_checkpoint(RUN) is None
    seen: list[int] = []

    def latest() -> int:
        seq = backend.open(clock).latest_checkpoint(RUN)
        assert isinstance(seq, int)
        seen.append(seq)
        return seq

    b.save_snapshot(sample_snapshot(step=1))  # unleased: the store numbers it
    assert latest() == 1
    b.append_step(RUN, step_delta(RUN, 2))
    assert latest() == 2
    token = a.acquire_lease(RUN, "a")
    for step in range(3, 8):
        seq = latest() + 1
        a.commit(RUN, "a", token, full(seq, step) if step == 5 else delta(seq, step))
        assert latest() == seq
    a.release_lease(RUN, "a")
    b.save_snapshot(sample_snapshot(step=8, status="waiting"))
    assert latest() == 8
    b.append_step(RUN, step_delta(RUN, 8))  # a second checkpoint at step 8
    assert latest() == 9
    result = b.prune(keep_last=3)
    assert result.checkpoints.get(RUN) == 6
    assert latest() == 9  # trimming history renumbers nothing
    token = a.acquire_lease(RUN, "a")
    a.commit(RUN, "a", token, delta(10, 9))
    assert latest() == 10
    assert seen == sorted(seen) and sorted(set(seen)) == list(range(1, 11)), seen


def test_a_loaded_snapshot_carries_the_seq_of_its_own_checkpoint(
    backend: Backend, clock: Clock
) -> None:
    a = backend.open(clock)
    token = a.acquire_lease(RUN, "a")
    a.commit(RUN, "a", token, full(1, 1))
    for seq in range(2, 6):
        a.commit(RUN, "a", token, delta(seq, seq))  # steps 2..5, deltas on one full snapshot
    a.commit(RUN, "a", token, full(6, 6))
    a.commit(RUN, "a", token, delta(7, 7))
    a.release_lease(RUN, "a")
    reader = backend.open(clock)
    latest = reader.latest_checkpoint(RUN)
    assert latest == 7
    assert reader.load_snapshot(RUN).seq == latest
    for step in range(1, 7):
        snap = reader.load_snapshot(RUN, step=step)
        assert snap.step == step
        assert snap.seq == step < latest  # each checkpoint here is at step == seq
    # A snapshot saved with a wrong seq of its own is numbered by the store anyway.
    stray = sample_snapshot(step=8)
    stray.seq = 99
    reader.save_snapshot(stray)
    assert reader.load_snapshot(RUN).seq == reader.latest_checkpoint(RUN) == 8
    assert reader.load_snapshot(RUN, step=7).seq == 7


# ---------------------------------------------------------------- dead holders


def test_a_lease_whose_holder_process_died_on_this_host_is_taken_at_once(
    backend: Backend,
) -> None:
    clock = Clock(time.time())  # near the child's real clock; never moved
    store = backend.open(clock, ttl=None)  # the default TTL
    assert store.lease_ttl_seconds == DEFAULT_LEASE_TTL_SECONDS
    store.save_snapshot(sample_snapshot())
    script = backend.child_script(
        """
        print(store.acquire_lease("run-1", "the-dead-one"))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    dead_token = int(done.stdout.strip().splitlines()[-1])
    # The child exited holding a lease that has most of its 30 s left.
    with pytest.raises(RunLockedError):
        store.renew_lease(RUN, "someone-else")
    token = store.acquire_lease(RUN, "alive")
    assert token > dead_token
    # A live holder (this process) is waited out as before.
    with pytest.raises(RunLockedError):
        backend.open(clock, ttl=None).acquire_lease(RUN, "rival")
    store.release_lease(RUN, "alive")


# ---------------------------------------------------------------- failures


def test_a_failed_acquire_leaves_no_lease(
    backend: Backend, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = backend.open(clock)
    a.save_snapshot(sample_snapshot())

    def broken(run_id: str) -> Any:
        raise StoreError("reading the run failed")

    monkeypatch.setattr(a, "_load_writer", broken)
    with pytest.raises(StoreError, match="reading the run failed"):
        a.acquire_lease(RUN, "a")
    monkeypatch.undo()
    backend.open(clock).acquire_lease(RUN, "b")  # at once: nothing left behind


def test_sqlite_a_locked_database_is_a_store_error_and_leaves_no_lease(
    tmp_path: Path, clock: Clock
) -> None:
    path = tmp_path / "runs.db"
    a = SqliteWorkflowStore(path, clock=clock, lease_ttl_seconds=TTL, timeout_seconds=0.05)
    token = a.acquire_lease(RUN, "a")
    a.commit(RUN, "a", token, full(1, 1))
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        with pytest.raises(StoreError) as info:
            a.commit(RUN, "a", token, delta(2, 2))
        assert not isinstance(info.value, RunLockedError)
        assert isinstance(info.value.__cause__, sqlite3.OperationalError), info.value.__cause__
        assert "locked" in str(info.value)
        with pytest.raises(StoreError) as acquired:
            SqliteWorkflowStore(path, clock=clock, timeout_seconds=0.05).acquire_lease(RUN, "x")
        assert isinstance(acquired.value.__cause__, sqlite3.Error)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert a.latest_checkpoint(RUN) == 1  # nothing of the failed commit
    a.commit(RUN, "a", token, delta(2, 2))  # the lease survived; the retry goes in
    a.release_lease(RUN, "a")
    b = SqliteWorkflowStore(path, clock=clock, lease_ttl_seconds=TTL)
    b.acquire_lease(RUN, "b")  # no lease left behind by the failures
    b.release_lease(RUN, "b")


def test_sqlite_release_after_a_failed_write_still_frees_the_run(
    tmp_path: Path, clock: Clock
) -> None:
    path = tmp_path / "runs.db"
    a = SqliteWorkflowStore(path, clock=clock, lease_ttl_seconds=TTL, timeout_seconds=0.05)
    a.acquire_lease(RUN, "a")
    # Writes no longer wait for a release, so plant one that is still pending, as a
    # write interrupted mid-commit would leave it: a row the database refuses (NOT NULL).
    a._writers[RUN].pending_full = {**sample_snapshot().to_dict(), "status": None}
    with pytest.raises(StoreError):
        a.release_lease(RUN, "a")
    b = SqliteWorkflowStore(path, clock=clock, lease_ttl_seconds=TTL)
    b.acquire_lease(RUN, "b")  # the failed write did not keep the lease


# ---------------------------------------------------------------- schema


def _columns(path: Path, table: str) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
    finally:
        db.close()


def test_sqlite_a_schema_2_database_gets_the_token_column_and_keeps_its_leases(
    tmp_path: Path, clock: Clock
) -> None:
    from zeroflow.stores import sqlite as module

    path = tmp_path / "runs.db"
    db = sqlite3.connect(path, isolation_level=None)
    for statements in module._MIGRATIONS[:2]:
        for statement in statements:
            db.execute(statement)
    db.execute("PRAGMA user_version=2")
    db.execute("INSERT INTO leases VALUES (?, ?, ?)", (RUN, "old-driver", clock.now + 5))
    db.close()
    assert "token" not in _columns(path, "leases")
    store = SqliteWorkflowStore(path, clock=clock, lease_ttl_seconds=TTL)
    assert "token" in _columns(path, "leases") and "holder" in _columns(path, "leases")
    version = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]
    assert version == module.SCHEMA_VERSION == 6
    with pytest.raises(RunLockedError):
        store.acquire_lease(RUN, "new")  # the migrated lease still holds until it expires
    clock.now += 6
    first = store.acquire_lease(RUN, "new")
    store.release_lease(RUN, "new")
    assert store.acquire_lease(RUN, "newer") > first >= 1


def test_sqlite_the_schema_1_fixture_migrates_to_fenced_leases(
    tmp_path: Path, clock: Clock
) -> None:
    import shutil

    path = tmp_path / "runs.db"
    shutil.copy(Path(__file__).parent / "fixtures" / "sqlite_v1" / "runs.db", path)
    store = SqliteWorkflowStore(path, clock=clock, lease_ttl_seconds=TTL)
    assert "token" in _columns(path, "leases")
    run_id = store.list_metadata()[0].run_id
    latest = store.latest_checkpoint(run_id)
    assert latest is not None and store.load_snapshot(run_id).seq == latest
    owner = "driver"
    token = store.acquire_lease(run_id, owner)
    snap: RunSnapshot = store.load_snapshot(run_id)
    with pytest.raises(RunLockedError):
        store.commit(run_id, owner, token, CheckpointWrite(latest, snapshot=snap))
    store.commit(run_id, owner, token, CheckpointWrite(latest + 1, snapshot=snap))
    assert store.latest_checkpoint(run_id) == latest + 1


def test_postgres_a_schema_1_database_gets_the_token_column(
    request: pytest.FixtureRequest, clock: Clock
) -> None:
    psycopg = integration("psycopg")
    from zeroflow.contrib import postgres as module

    dsn = request.getfixturevalue("postgres_dsn")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"SET search_path TO {schema}")
        for statement in module._MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("CREATE TABLE zeroflow_schema (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO zeroflow_schema VALUES (1)")
        conn.execute("INSERT INTO leases VALUES (%s, %s, %s)", (RUN, "old-driver", clock.now + 5))
    store = module.PostgresWorkflowStore(dsn, schema=schema, clock=clock, lease_ttl_seconds=TTL)
    try:
        with psycopg.connect(dsn) as conn:
            cols = {
                row[0]
                for row in conn.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema=%s AND table_name='leases'",
                    (schema,),
                )
            }
            version = conn.execute(f"SELECT version FROM {schema}.zeroflow_schema").fetchone()
        assert {"token", "holder"} <= cols
        assert version is not None and version[0] == module.SCHEMA_VERSION == 6
        with pytest.raises(RunLockedError):
            store.acquire_lease(RUN, "new")
        clock.now += 6
        first = store.acquire_lease(RUN, "new")
        store.release_lease(RUN, "new")
        assert store.acquire_lease(RUN, "newer") > first >= 1
    finally:
        store.drop_schema()
