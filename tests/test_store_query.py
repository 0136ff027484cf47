"""``RunQueryStore.query_runs``: one page of run summaries, filtered and newest first."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zeroflow import RunPage, RunQuery, RunQueryStore, RunSnapshot
from zeroflow.stores import JsonFileWorkflowStore, SqliteWorkflowStore


@pytest.fixture(params=["json", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "json":
        yield JsonFileWorkflowStore(tmp_path / "runs")
        return
    if request.param == "sqlite":
        yield SqliteWorkflowStore(tmp_path / "runs.sqlite")
        return
    pytest.importorskip("psycopg", reason="psycopg is a dev dependency (uv sync)")
    from zeroflow.contrib.postgres import PostgresWorkflowStore

    made = PostgresWorkflowStore(
        request.getfixturevalue("postgres_dsn"), schema=f"q_{uuid.uuid4().hex[:12]}"
    )
    yield made
    made.drop_schema()


RUNS = [
    # run id, workflow, status, updated at
    ("a-1", "billing", "waiting", "2026-01-01T00:00:05+00:00"),
    ("a-2", "billing", "failed", "2026-01-01T00:00:03+00:00"),
    ("a_3", "reports", "succeeded", "2026-01-01T00:00:09+00:00"),
    ("a%4", "reports", "running", "2020-01-01T00:00:00+00:00"),
    ("b-1", "billing", "waiting", "2019-06-01T00:00:00+00:00"),
    ("b-2", "reports", "cancelled", "2026-01-01T00:00:05+00:00"),
]


def _fill(store: Any) -> None:
    for run_id, name, status, updated in RUNS:
        snap = RunSnapshot(run_id=run_id, workflow_name=name, wf_hash="h" * 64, status=status)
        snap.updated_at = updated
        if status == "waiting":
            snap.ready_now = ["review"]
        store.save_snapshot(snap)


def _ids(page: RunPage) -> list[str | None]:
    return [m.run_id for m in page.runs]


def test_every_durable_shipped_store_answers_run_queries(store: Any) -> None:
    assert isinstance(store, RunQueryStore)


def test_runs_come_newest_update_first_then_by_run_id_descending(store: Any) -> None:
    _fill(store)
    page = store.query_runs(RunQuery())
    assert _ids(page) == ["a_3", "b-2", "a-1", "a-2", "a%4", "b-1"]
    assert page.total == 6


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (RunQuery(workflow_name="billing"), ["a-1", "a-2", "b-1"]),
        (RunQuery(statuses=("waiting",)), ["a-1", "b-1"]),
        (RunQuery(statuses=("failed", "cancelled")), ["b-2", "a-2"]),
        (RunQuery(workflow_name="billing", statuses=("waiting",)), ["a-1", "b-1"]),
        (RunQuery(run_id_prefix="a-"), ["a-1", "a-2"]),
        (RunQuery(run_id_prefix="a_"), ["a_3"]),  # '_' is no wildcard
        (RunQuery(run_id_prefix="a%"), ["a%4"]),  # nor is '%'
        (RunQuery(run_id_prefix="zzz"), []),
        (RunQuery(run_id_prefix="a-1"), ["a-1"]),
        (RunQuery(updated_before="2025-01-01T00:00:00+00:00"), ["a%4", "b-1"]),
        (
            RunQuery(statuses=("running", "waiting"), updated_before="2025-01-01T00:00:00+00:00"),
            ["a%4", "b-1"],
        ),
        (RunQuery(workflow_name="nope"), []),
        (RunQuery(workflow_name="billing' OR '1'='1"), []),
    ],
)
def test_every_filter_must_hold(store: Any, query: RunQuery, expected: list[str]) -> None:
    _fill(store)
    page = store.query_runs(query)
    assert _ids(page) == expected
    assert page.total == len(expected)


def test_updated_before_reads_where_a_running_run_is_now_not_its_last_full_save(
    tmp_path: Path,
) -> None:
    import sqlite3

    from _support import run_loop

    store = SqliteWorkflowStore(tmp_path / "runs.sqlite")
    run_loop(store, 5, run_id="moving")
    db = sqlite3.connect(tmp_path / "runs.sqlite")
    with db:  # the summary row of a running run between folds: far behind its checkpoints
        db.execute("UPDATE runs SET updated_at='2020-01-01T00:00:00+00:00', status='running'")
    db.close()
    cut = "2025-01-01T00:00:00+00:00"
    assert store.query_runs(RunQuery(updated_before=cut)).total == 0
    assert store.query_runs(RunQuery(updated_before="2099-01-01T00:00:00+00:00")).total == 1


def test_pages_split_the_listing_without_gaps_or_repeats(store: Any) -> None:
    _fill(store)
    seen = []
    for offset in (0, 2, 4, 6):
        page = store.query_runs(RunQuery(limit=2, offset=offset))
        assert page.total == 6
        seen += _ids(page)
    assert seen == _ids(store.query_runs(RunQuery()))


def test_a_page_knows_what_a_waiting_run_waits_on_and_where_it_is(store: Any) -> None:
    _fill(store)
    (meta,) = store.query_runs(RunQuery(run_id_prefix="a-1")).runs
    assert meta.status == "waiting" and meta.waiting and meta.workflow_name == "billing"


@pytest.mark.parametrize(("limit", "offset"), [(0, 0), (1001, 0), (10, -1)])
def test_a_query_out_of_bounds_is_refused_when_it_is_made(limit: int, offset: int) -> None:
    with pytest.raises(ValueError, match="RunQuery"):
        RunQuery(limit=limit, offset=offset)
