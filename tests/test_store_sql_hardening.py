"""The SQLite store under faults and damage: only zeroflow errors, no lost work, no stray lease.

Faults are made deterministic: a connection wrapper that fails chosen
statements, a second connection holding the write lock with a store timeout
of 0, ``PRAGMA max_page_count`` for a really full database, hand-edited rows
and overwritten pages. No test sleeps.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from _support import LOOP, count_to, step_delta
from zeroflow import Event, WorkflowEngine
from zeroflow._errors import (
    RunLockedError,
    RunNotFoundError,
    StoreCorruptError,
    StoreError,
)
from zeroflow._store import CheckpointWrite
from zeroflow.stores import SqliteWorkflowStore
from zeroflow.stores.sqlite import APPLICATION_ID, SCHEMA_VERSION, WAL_LIMIT_BYTES
from zeroflow.testing import sample_snapshot

RUN = "run-1"


class Clock:
    """A settable clock for leases and ``saved_at``."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Faulty:
    """A connection that raises ``error`` for statements ``fails(sql)`` picks, while armed."""

    def __init__(self, real: sqlite3.Connection) -> None:
        self.real = real
        self.error: BaseException | None = None
        self.fails: Callable[[str], bool] = lambda sql: True
        self.times = -1  # how many more failures; -1: until disarmed

    def arm(self, error: BaseException, fails: Callable[[str], bool], times: int = -1) -> None:
        self.error, self.fails, self.times = error, fails, times

    def disarm(self) -> None:
        self.error = None

    def _check(self, sql: str) -> None:
        if self.error is not None and self.fails(sql) and self.times != 0:
            self.times -= 1
            error = self.error
            if self.times == 0:
                self.error = None
            raise error

    def execute(self, sql: str, *args: Any) -> Any:
        self._check(sql)
        return self.real.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        self._check(sql)
        return self.real.executemany(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def faulty(store: SqliteWorkflowStore) -> Faulty:
    wrapper = Faulty(store._db)
    store._db = wrapper  # type: ignore[assignment]
    return wrapper


def full_disk() -> sqlite3.OperationalError:
    return sqlite3.OperationalError("database or disk is full")


def is_commit(sql: str) -> bool:
    return sql == "COMMIT"


def loop_engine(store: Any, limit: int = 30, **kw: Any) -> WorkflowEngine:
    return WorkflowEngine(LOOP, {"count": count_to(limit)}, store=store, **kw)


def resume_to_the_end(store: Any, run_id: str, limit: int = 30) -> int:
    """A new engine picks the stored run up at once and finishes it; the final count."""
    done = loop_engine(store, limit).run_from_checkpoint(store.load_snapshot(run_id))
    assert done.status == "succeeded"
    return int(done.state.workflow["n"])


def assert_zeroflow_error(exc: BaseException, path: Path | str, run_id: str | None) -> None:
    """A StoreError naming the file (and the run), the driver's error as its cause."""
    assert isinstance(exc, StoreError), repr(exc)
    assert str(path) in str(exc), str(exc)
    if run_id is not None:
        assert f"run '{run_id}'" in str(exc), str(exc)
    assert isinstance(exc.__cause__, sqlite3.Error), repr(exc.__cause__)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "runs.db"


# ---------------------------------------------------------------- 1. only zeroflow errors


def test_a_really_full_database_fails_the_run_with_a_store_error_and_it_resumes_later(
    path: Path,
) -> None:
    store = SqliteWorkflowStore(path)
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count={pages + 8}")
    with pytest.raises(StoreError) as info:
        loop_engine(store, 3000).run({}, run_id=RUN)
    assert_zeroflow_error(info.value, path, RUN)
    assert "free space" in str(info.value)
    kept = store.latest_step(RUN)
    assert kept is not None and kept > 0  # the checkpoints before the failure are kept
    store._db.execute("PRAGMA max_page_count=1073741823")
    assert resume_to_the_end(store, RUN, 3000) == 3000


def test_a_disk_full_at_commit_loses_nothing_and_leaves_no_lease(path: Path) -> None:
    store = SqliteWorkflowStore(path)
    db = faulty(store)
    seen: list[int] = []

    def fill_the_disk(event: Event) -> None:
        if event.kind == "node:end":
            seen.append(event.step)
            if len(seen) == 5:
                db.arm(full_disk(), is_commit)  # every write fails until space is freed

    with pytest.raises(StoreError) as info:
        loop_engine(store, event_callback=fill_the_disk).run({}, run_id=RUN)
    assert_zeroflow_error(info.value, path, RUN)
    db.disarm()
    assert store.latest_step(RUN) == 4  # the nodes checkpointed before the disk filled
    # No lease is left: another engine, in this process or another store object, goes on.
    assert resume_to_the_end(store, RUN) == 30
    other = SqliteWorkflowStore(path)
    other.acquire_lease(RUN, "someone")
    other.release_lease(RUN, "someone")


def test_a_lock_held_past_the_timeout_fails_the_run_and_leaves_no_lease(path: Path) -> None:
    store = SqliteWorkflowStore(path, timeout_seconds=0)
    blocker = sqlite3.connect(path, isolation_level=None)
    seen: list[int] = []

    def lock_the_database(event: Event) -> None:
        if event.kind == "node:end":
            seen.append(event.step)
            if len(seen) == 3:
                blocker.execute("BEGIN EXCLUSIVE")  # another process takes the write lock

    try:
        with pytest.raises(StoreError) as info:
            loop_engine(store, event_callback=lock_the_database).run({}, run_id=RUN)
        assert not isinstance(info.value, RunLockedError)
        assert_zeroflow_error(info.value, path, RUN)
        assert "locked" in str(info.value) and "timeout_seconds" in str(info.value)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert store.latest_step(RUN) == 2
    assert resume_to_the_end(store, RUN) == 30  # no RunLockedError: the lease is gone


def test_a_failure_inside_acquire_lease_leaves_no_lease_even_when_clearing_fails(
    path: Path,
) -> None:
    store = SqliteWorkflowStore(path)
    store.save_snapshot(sample_snapshot(RUN))
    db = faulty(store)
    damaged = sqlite3.DatabaseError("database disk image is malformed")
    # Reading the run after the lease was taken fails; so does the write that clears it.
    db.arm(damaged, lambda sql: sql.startswith("SELECT base_seq") or sql.startswith("UPDATE"))
    with pytest.raises(StoreCorruptError) as info:
        store.acquire_lease(RUN, "first")
    assert_zeroflow_error(info.value, path, RUN)
    db.disarm()
    token = store.acquire_lease(RUN, "second")  # at once, not after 30 s
    store.release_lease(RUN, "second")
    assert SqliteWorkflowStore(path).acquire_lease(RUN, "third") > token


@pytest.mark.parametrize(
    ("error", "kind", "hint"),
    [
        (sqlite3.OperationalError("database or disk is full"), StoreError, "free space"),
        (sqlite3.OperationalError("database is locked"), StoreError, "timeout_seconds"),
        (sqlite3.DatabaseError("database disk image is malformed"), StoreCorruptError, "backup"),
    ],
    ids=["full", "locked", "malformed"],
)
def test_every_public_method_lets_only_zeroflow_errors_out(
    path: Path, clock: Clock, error: sqlite3.Error, kind: type[StoreError], hint: str
) -> None:
    store = SqliteWorkflowStore(path, clock=clock)
    store.save_snapshot(sample_snapshot(RUN))
    token = store.acquire_lease("leased", "me")
    store.commit("leased", "me", token, CheckpointWrite(1, snapshot=sample_snapshot("leased")))
    db = faulty(store)
    note = Event(RUN, 1, 1, None, "note", "t", {})
    calls: dict[str, Callable[[], object]] = {
        "save_snapshot": lambda: store.save_snapshot(sample_snapshot(RUN, step=2)),
        "append_step": lambda: store.append_step(RUN, step_delta(RUN, 2)),
        "append_event": lambda: store.append_event(RUN, note),
        "append_events": lambda: store.append_events(RUN, [note]),
        "commit": lambda: store.commit(
            "leased", "me", token, CheckpointWrite(2, delta=step_delta("leased", 2))
        ),
        "load_snapshot": lambda: store.load_snapshot(RUN),
        "load_snapshot(step)": lambda: store.load_snapshot(RUN, step=1),
        "history": lambda: store.history(RUN),
        "events": lambda: store.events(RUN),
        "latest_checkpoint": lambda: store.latest_checkpoint(RUN),
        "latest_step": lambda: store.latest_step(RUN),
        "run_status": lambda: store.run_status(RUN),
        "acquire_lease": lambda: store.acquire_lease(RUN, "x"),
        "renew_lease": lambda: store.renew_lease("leased", "me", token),
        "break_lease": lambda: store.break_lease(RUN),
        "delete_run": lambda: store.delete_run(RUN),
    }
    for name, call in calls.items():
        store._writers.clear()  # each call reads the run afresh
        db.arm(error, lambda sql: True)
        with pytest.raises(kind) as info:
            call()
        db.disarm()
        assert_zeroflow_error(
            info.value, path, "leased" if name in ("commit", "renew_lease") else RUN
        )
        assert hint in str(info.value), (name, str(info.value))
    for name, call in {
        "list_metadata": lambda: store.list_metadata(),
        "prune(keep_last)": lambda: store.prune(keep_last=1),
        "prune(older_than)": lambda: store.prune(older_than=0),
    }.items():
        db.arm(error, lambda sql: True)
        with pytest.raises(kind) as info:
            call()
        db.disarm()
        assert_zeroflow_error(info.value, path, None)
        assert "the store" in str(info.value), name
    # release_lease frees the run even when the database refuses: no error, and no lease.
    db.arm(error, lambda sql: True)
    store.release_lease("leased", "me")
    db.disarm()
    store.acquire_lease("leased", "next")
    assert store.load_snapshot(RUN).step == 1  # nothing was lost on the way


def test_a_closed_store_says_so_instead_of_a_raw_sqlite_error(path: Path) -> None:
    store = SqliteWorkflowStore(path)
    store.save_snapshot(sample_snapshot(RUN))
    store.close()
    with pytest.raises(StoreError, match="closed") as info:
        store.load_snapshot(RUN)
    assert_zeroflow_error(info.value, path, RUN)


def test_a_write_lock_held_by_another_process_is_a_store_error_for_writes_only(
    path: Path,
) -> None:
    store = SqliteWorkflowStore(path, timeout_seconds=0)
    store.save_snapshot(sample_snapshot(RUN))
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        for call in (
            lambda: store.save_snapshot(sample_snapshot(RUN, step=2)),
            lambda: store.acquire_lease(RUN, "x"),
            lambda: store.delete_run(RUN),
            lambda: store.prune(older_than=0, statuses=["running"]),
        ):
            with pytest.raises(StoreError, match="locked") as info:
                call()
            assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        assert store.load_snapshot(RUN).step == 1  # readers are not blocked (WAL)
        assert [m.run_id for m in store.list_metadata()] == [RUN]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    store.acquire_lease(RUN, "y")


def _damage_pages(path: Path, keep_pages: int) -> None:
    """Overwrite every page after the first ``keep_pages`` with garbage, keeping the size."""
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for at in range(page * keep_pages, len(data)):
        data[at] = (at * 7 + 13) % 251
    path.write_bytes(bytes(data))


def test_a_damaged_database_file_is_store_corrupt_error_from_every_read(path: Path) -> None:
    store = SqliteWorkflowStore(path)
    for i in range(20):
        store.save_snapshot(sample_snapshot(f"r{i}", step=30))
    store.close()
    _damage_pages(path, keep_pages=1)  # the header and the schema page survive
    store = SqliteWorkflowStore(path)
    for call in (
        lambda: store.load_snapshot("r3"),
        lambda: store.history("r3"),
        lambda: store.events("r3"),
        lambda: store.latest_checkpoint("r3"),
        lambda: store.run_status("r3"),
        lambda: store.list_metadata(),
        lambda: store.save_snapshot(sample_snapshot("r3", step=31)),
    ):
        with pytest.raises(StoreCorruptError) as info:
            call()
        assert str(path) in str(info.value) and "damaged" in str(info.value)
        assert isinstance(info.value.__cause__, sqlite3.DatabaseError)


def test_a_database_whose_schema_page_is_damaged_is_refused_on_open(path: Path) -> None:
    SqliteWorkflowStore(path).close()
    data = bytearray(path.read_bytes())
    data[100:4096] = bytes(range(256)) * 15 + bytes(range(156))
    path.write_bytes(bytes(data))
    with pytest.raises(StoreCorruptError) as info:
        SqliteWorkflowStore(path)
    assert str(path) in str(info.value) and "restore it from a backup" in str(info.value).lower()
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)


def _raw(path: Path, sql: str, *args: Any) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute(sql, args)
    finally:
        db.close()


def test_a_hand_written_non_integer_step_is_store_corrupt_error_naming_run_and_file(
    path: Path,
) -> None:
    store = SqliteWorkflowStore(path)
    store.save_snapshot(sample_snapshot(RUN))
    _raw(path, "UPDATE checkpoints SET step='three' WHERE run_id=?", RUN)
    for call in (lambda: store.history(RUN), lambda: store.latest_step(RUN)):
        with pytest.raises(StoreCorruptError, match="'three'") as info:
            call()
        assert f"run '{RUN}'" in str(info.value) and str(path) in str(info.value)


def test_a_hand_written_non_integer_seq_or_token_is_store_corrupt_error(path: Path) -> None:
    store = SqliteWorkflowStore(path)
    store.save_snapshot(sample_snapshot(RUN))
    store.acquire_lease(RUN, "a")
    store.release_lease(RUN, "a")
    _raw(path, "UPDATE leases SET token='many' WHERE run_id=?", RUN)
    with pytest.raises(StoreCorruptError, match="fencing token 'many'"):
        store.acquire_lease(RUN, "b")
    _raw(path, "UPDATE checkpoints SET seq='x' WHERE run_id=?", RUN)
    with pytest.raises(StoreCorruptError, match="not an integer"):
        store.latest_checkpoint(RUN)


# ---------------------------------------------------------------- 2. foreign and empty files


def _foreign_db(path: Path, user_version: int) -> None:
    """Someone's ``app.db``: a table of theirs, rows, and a schema version of their own."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    db.execute("INSERT INTO users (name) VALUES ('ada')")
    db.execute(f"PRAGMA user_version={user_version}")
    db.close()


@pytest.mark.parametrize("user_version", [0, 5])
def test_a_foreign_sqlite_database_is_refused_and_never_written(
    tmp_path: Path, user_version: int
) -> None:
    app = tmp_path / "app.db"
    _foreign_db(app, user_version)
    before = app.read_bytes()
    with pytest.raises(StoreCorruptError, match="not a zeroflow store") as info:
        SqliteWorkflowStore(app)
    assert "users" in str(info.value) and "newer" not in str(info.value)
    assert info.value.path == str(app)
    assert app.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]  # no -wal, no -shm
    db = sqlite3.connect(app)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["users"]
    db.close()


def test_a_database_marked_as_another_programs_is_refused(tmp_path: Path) -> None:
    app = tmp_path / "other.db"
    _raw(app, "PRAGMA application_id=1234")
    before = app.read_bytes()
    with pytest.raises(StoreCorruptError, match=r"not a zeroflow store.*application_id 0x4d2"):
        SqliteWorkflowStore(app)
    assert app.read_bytes() == before


def test_a_zero_byte_file_is_refused_not_made_a_fresh_store(path: Path) -> None:
    path.touch()
    with pytest.raises(StoreCorruptError, match="empty \\(0 bytes\\): not a zeroflow store"):
        SqliteWorkflowStore(path)
    assert path.stat().st_size == 0
    assert sorted(p.name for p in path.parent.iterdir()) == ["runs.db"]


def test_an_empty_sqlite_database_someone_made_is_refused(path: Path) -> None:
    _raw(path, "VACUUM")  # a valid database with no tables
    before = path.read_bytes()
    with pytest.raises(StoreCorruptError, match="not a zeroflow store"):
        SqliteWorkflowStore(path)
    assert path.read_bytes() == before


def test_a_new_path_is_created_as_a_marked_store_with_incremental_vacuum(path: Path) -> None:
    SqliteWorkflowStore(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()
    assert sorted(p.name for p in path.parent.iterdir()) == ["runs.db"]  # no temporary left
    SqliteWorkflowStore(path).close()  # and it opens again as a store


def test_a_store_made_before_the_mark_is_recognised_by_its_tables_and_marked(
    path: Path,
) -> None:
    from zeroflow.stores import sqlite as module

    db = sqlite3.connect(path, isolation_level=None)
    for statements in module._MIGRATIONS:
        for statement in statements:
            db.execute(statement)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    db.close()
    store = SqliteWorkflowStore(path)
    store.save_snapshot(sample_snapshot(RUN))
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    db.close()


# ---------------------------------------------------------------- 3. one bad run


def _reports() -> tuple[list[Event], Callable[[Event], None]]:
    got: list[Event] = []
    return got, got.append


@pytest.mark.parametrize(
    ("column", "value"),
    [("last_error", "{not json"), ("last_error", "[1, 2]"), ("workflow_name", b"\xff")],
)
def test_a_malformed_runs_row_is_skipped_and_reported_by_list_metadata(
    path: Path, column: str, value: object
) -> None:
    got, report = _reports()
    store = SqliteWorkflowStore(path, on_report=report)
    for run_id in ("a", "bad", "c"):
        store.save_snapshot(sample_snapshot(run_id))
    _raw(path, f"UPDATE runs SET {column}=? WHERE run_id='bad'", value)
    assert [m.run_id for m in store.list_metadata()] == ["a", "c"]
    assert [(e.kind, e.run_id, e.data["where"]) for e in got] == [
        ("store:corrupt", "bad", str(path))
    ]
    assert column in got[0].data["reason"]


def test_without_a_reporter_a_skipped_run_is_logged(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SqliteWorkflowStore(path)
    store.save_snapshot(sample_snapshot("bad"))
    _raw(path, "UPDATE runs SET last_error='{' WHERE run_id='bad'")
    with caplog.at_level(logging.WARNING, logger="zeroflow.stores"):
        assert store.list_metadata() == []
    assert "'bad'" in caplog.text and "corrupt" in caplog.text


def test_prune_by_age_neither_trips_on_nor_silently_skips_a_malformed_row(
    path: Path, clock: Clock
) -> None:
    got, report = _reports()
    store = SqliteWorkflowStore(path, clock=clock, on_report=report)
    for run_id in ("old", "bad", "bad-error"):
        store.save_snapshot(sample_snapshot(run_id, status="succeeded"))
    _raw(path, "UPDATE runs SET saved_at='last week' WHERE run_id='bad'")
    _raw(path, "UPDATE runs SET last_error='{' WHERE run_id='bad-error'")
    clock.now += 3600
    result = store.prune(older_than=60)
    assert result.runs == ("bad-error", "old")  # a bad last_error does not stop the prune
    assert [(e.run_id, e.kind) for e in got] == [("bad", "store:corrupt")]
    assert "saved_at='last week'" in got[0].data["reason"]
    assert store.run_status("bad") == "succeeded"  # kept, not deleted blind


def test_prune_keep_last_skips_and_reports_a_run_it_cannot_rebuild(path: Path) -> None:
    got, report = _reports()
    store = SqliteWorkflowStore(path, on_report=report)
    for run_id in ("good", "bad"):
        store.save_snapshot(sample_snapshot(run_id))
        for step in range(2, 6):
            store.append_step(run_id, step_delta(run_id, step))
    _raw(path, "UPDATE checkpoints SET delta='{oops' WHERE run_id='bad' AND seq=3")
    result = store.prune(keep_last=1)
    assert result.checkpoints == {"good": 4}
    assert [(e.run_id, e.kind) for e in got] == [("bad", "store:corrupt")]
    assert len(store.history("bad")) == 5  # left as it was


# ---------------------------------------------------------------- 4. lease expiry


@pytest.mark.parametrize("expiry", ["1e300", "'soon'"], ids=["absurd", "text"])
def test_a_lease_with_a_non_finite_or_absurd_expiry_counts_as_expired(
    path: Path, clock: Clock, expiry: str
) -> None:
    store = SqliteWorkflowStore(path, clock=clock)
    store.save_snapshot(sample_snapshot(RUN, status="succeeded"))
    _raw(
        path,
        "INSERT INTO leases VALUES (?, 'ghost', " + expiry + ", 4, ?)",
        RUN,
        '{"host": "elsewhere", "pid": 1, "start": null}',
    )
    assert store.acquire_lease(RUN, "me") == 5
    store.release_lease(RUN, "me")
    _raw(path, "UPDATE leases SET owner='ghost', expires_at=" + expiry + " WHERE run_id=?", RUN)
    clock.now += 3600
    assert store.prune(older_than=60).runs == (RUN,)  # not held forever by the ghost


def test_a_drivers_damaged_expiry_is_rewritten_at_its_next_commit(path: Path, clock: Clock) -> None:
    store = SqliteWorkflowStore(path, clock=clock, lease_ttl_seconds=30)
    token = store.acquire_lease(RUN, "me")
    store.commit(RUN, "me", token, CheckpointWrite(1, snapshot=sample_snapshot(RUN)))
    _raw(path, "UPDATE leases SET expires_at=9e999 WHERE run_id=?", RUN)
    store.commit(RUN, "me", token, CheckpointWrite(2, delta=step_delta(RUN, 2)))
    db = sqlite3.connect(path)
    assert db.execute("SELECT expires_at FROM leases").fetchone()[0] == clock.now + 30
    db.close()
    with pytest.raises(RunLockedError):
        SqliteWorkflowStore(path, clock=clock).acquire_lease(RUN, "rival")


# ---------------------------------------------------------------- 5. disk use


def _disk(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def test_prune_keep_last_gives_the_space_back_and_reports_it(path: Path) -> None:
    store = SqliteWorkflowStore(path)
    loop_engine(store, 2000).run({}, run_id="loop")
    events_before = len(store.events("loop"))
    before = _disk(path)
    result = store.prune(keep_last=1)
    after = _disk(path)
    assert result.checkpoints == {"loop": 2000 + 2 - 1}
    assert after < before / 4
    assert result.bytes_freed == before - after > 0
    assert Path(f"{path}-wal").stat().st_size == 0  # the log was emptied too
    # The events logged before the kept checkpoint went with the checkpoints.
    left = store.events("loop")
    assert result.events == {"loop": events_before - len(left)}
    assert 0 < len(left) < 10
    assert store.load_snapshot("loop").state.workflow["n"] == 2000


def test_prune_drops_only_events_logged_before_the_first_kept_checkpoint(
    tmp_path: Path,
) -> None:
    kinds: dict[bool, list[str]] = {}
    for keep_events in (False, True):
        store = SqliteWorkflowStore(tmp_path / f"{keep_events}.db")
        store.save_snapshot(sample_snapshot(RUN))
        store.append_events(RUN, [Event(RUN, 1, 1, None, "early", "t", {})])
        store.append_step(RUN, step_delta(RUN, 2))
        store.append_events(RUN, [Event(RUN, 2, 1, None, "late", "t", {})])
        store.append_step(RUN, step_delta(RUN, 3))
        result = store.prune(keep_last=2, keep_events=keep_events)
        assert result.events == ({} if keep_events else {RUN: 1})
        store.append_event(RUN, Event(RUN, 3, 1, None, "after", "t", {}))
        kinds[keep_events] = [e.kind for e in store.events(RUN)]
    assert kinds == {False: ["late", "after"], True: ["early", "late", "after"]}


def test_prune_by_age_gives_the_space_back(path: Path, clock: Clock) -> None:
    store = SqliteWorkflowStore(path, clock=clock)
    loop_engine(store, 500).run({}, run_id="old")
    before = _disk(path)
    clock.now += 3600
    result = store.prune(older_than=60)
    assert result.runs == ("old",)
    assert 0 < result.bytes_freed == before - _disk(path)


def test_a_store_made_without_auto_vacuum_is_converted_at_its_first_prune(path: Path) -> None:
    store = SqliteWorkflowStore(path)
    store._db.execute("PRAGMA auto_vacuum=NONE")
    store._db.execute("VACUUM")  # as stores made before this change are
    assert store._db.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    loop_engine(store, 800).run({}, run_id="loop")
    before = _disk(path)
    result = store.prune(keep_last=1)
    assert store._db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
    assert 0 < result.bytes_freed == before - _disk(path)


def test_a_memory_store_reports_the_pages_it_freed() -> None:
    store = SqliteWorkflowStore(":memory:")
    loop_engine(store, 500).run({}, run_id="loop")
    assert store.prune(keep_last=1).bytes_freed > 0


# ---------------------------------------------------------------- 6. the write-ahead log


def test_the_wal_is_cut_back_after_a_reader_held_it_open_during_many_commits(
    path: Path,
) -> None:
    store = SqliteWorkflowStore(path)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM runs").fetchall()  # a read transaction stays open
    big = sample_snapshot(RUN)
    big.state.workflow["blob"] = "x" * 100_000
    for _ in range(120):
        store.save_snapshot(big)
    wal = Path(f"{path}-wal")
    assert wal.stat().st_size > WAL_LIMIT_BYTES  # it could not be checkpointed meanwhile
    reader.execute("COMMIT")
    reader.close()
    store.save_snapshot(big)  # the next commits checkpoint it and start it over
    store.save_snapshot(big)
    assert wal.stat().st_size <= WAL_LIMIT_BYTES


# ---------------------------------------------------------------- 7. consistent reads


def _commit_in_between(
    store: SqliteWorkflowStore, monkeypatch: pytest.MonkeyPatch, write: Callable[[], object]
) -> None:
    """Run ``write`` (another store object) between the SELECTs of the store's next read."""
    original = store._rebuild
    done: list[bool] = []

    def rebuild(db: Any, run_id: str, seq: int) -> dict[str, Any]:
        if not done:
            done.append(True)
            write()
        return original(db, run_id, seq)

    monkeypatch.setattr(store, "_rebuild", rebuild)


def test_load_snapshot_by_step_reads_one_consistent_checkpoint(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Verifies (it held before too): a SQLite read is one transaction, so a prune by
    # another connection between its SELECTs changes nothing it sees.
    store = SqliteWorkflowStore(path)
    loop_engine(store, 20).run({}, run_id="loop")
    other = SqliteWorkflowStore(path)
    _commit_in_between(store, monkeypatch, lambda: other.prune(keep_last=1))
    snap = store.load_snapshot("loop", step=5)  # its checkpoint is pruned mid-read
    assert snap.step == 5 and snap.state.workflow["n"] == 5
    with pytest.raises(RunNotFoundError):
        store.load_snapshot("nope")
