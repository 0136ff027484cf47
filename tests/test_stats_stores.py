"""Stats from the stores: ``StatsStore.run_summaries`` on every shipped store, and the CLI."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from zeroflow import (
    Event,
    HandlerResult,
    InMemoryWorkflowStore,
    JsonFileWorkflowStore,
    NodeStats,
    RunMetadata,
    RunSnapshot,
    SqliteWorkflowStore,
    StatsStore,
    WorkflowContext,
    WorkflowEngine,
)
from zeroflow._cli import main
from zeroflow.testing import FakeClock

KINDS = ["memory", "json", "sqlite", "postgres"]

ORDERS: dict[str, Any] = {
    "workflow_name": "orders",
    "default_entry_node": "charge",
    "nodes": {
        "charge": {
            "handler": "charge",
            "outputs": {"ok": [{"target_node": "ship"}]},
            "run_policy": {"max_retries": 2},
        },
        "ship": {"handler": "ship", "outputs": {"ok": []}},
    },
}
MAIL: dict[str, Any] = {
    "workflow_name": "mail",
    "default_entry_node": "ask",
    "nodes": {"ask": {"handler": "ask", "outputs": {"ok": []}}},
}


def _orders(store: Any, clock: FakeClock) -> WorkflowEngine:
    attempts: dict[str, int] = {}

    def charge(ctx: WorkflowContext) -> HandlerResult:
        attempts[ctx.run_id] = attempts.get(ctx.run_id, 0) + 1
        if ctx.state.input.get("flaky") and attempts[ctx.run_id] == 1:
            raise RuntimeError("card network hiccup")
        clock.advance(ctx.state.input.get("seconds", 1))
        return HandlerResult(outputs=["ok"])

    def ship(ctx: WorkflowContext) -> HandlerResult:
        if ctx.state.input.get("fail"):
            raise RuntimeError("no courier")
        return HandlerResult(outputs=["ok"])

    return WorkflowEngine(
        ORDERS, {"charge": charge, "ship": ship}, store=store, clock=clock, sleep=clock.sleep
    )


def _mail(store: Any, clock: FakeClock) -> WorkflowEngine:
    def ask(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(waiting=True, waiting_prompt="send?")

    return WorkflowEngine(MAIL, {"ask": ask}, store=store, clock=clock, sleep=clock.sleep)


def fill(store: Any, clock: FakeClock) -> None:
    """Four runs of ``orders`` (one flaky, one failed) and one waiting run of ``mail``."""
    orders = _orders(store, clock)
    orders.run({"seconds": 2}, "o-1")
    orders.run({"seconds": 4, "flaky": True}, "o-2")
    orders.run({"seconds": 6, "fail": True}, "o-3")
    clock.advance(3600)
    orders.run({"seconds": 8}, "o-4")
    _mail(store, clock).run({}, "m-1")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)  # 2027-01-15T08:00:00Z


@pytest.mark.parametrize("kind", KINDS)
def test_every_shipped_store_is_a_stats_store(kind: str, store_of: Callable[..., Any]) -> None:
    assert isinstance(store_of(kind), StatsStore)


@pytest.mark.parametrize("kind", KINDS)
def test_summaries_hold_status_times_and_node_figures(
    kind: str, store_of: Callable[..., Any], clock: FakeClock
) -> None:
    store = store_of(kind)
    fill(store, clock)
    summaries = store.run_summaries()
    assert [s.run_id for s in summaries] == ["m-1", "o-1", "o-2", "o-3", "o-4"]
    by_id = {s.run_id: s for s in summaries}
    assert {s.run_id: s.status for s in summaries} == {
        "m-1": "waiting",
        "o-1": "succeeded",
        "o-2": "succeeded",
        "o-3": "failed",
        "o-4": "succeeded",
    }
    o2 = by_id["o-2"]
    assert o2.workflow_name == "orders"
    assert o2.started_at == "2027-01-15T08:00:02+00:00"
    assert o2.updated_at == "2027-01-15T08:00:06+00:00"
    assert o2.nodes is not None
    charge = o2.nodes["charge"]
    assert (charge.executions, charge.failures, charge.retries) == (1, 0, 1)
    assert charge.max_duration_ms == charge.total_duration_ms >= 0
    o3 = by_id["o-3"].nodes
    assert o3 is not None and o3["ship"].failures == 1
    mail = by_id["m-1"].nodes
    assert mail is not None and mail["ask"] == NodeStats(
        "ask", 1, 0, 0, mail["ask"].total_duration_ms, mail["ask"].max_duration_ms
    )


@pytest.mark.parametrize("kind", KINDS)
def test_summaries_filter_by_workflow_and_start_time(
    kind: str, store_of: Callable[..., Any], clock: FakeClock
) -> None:
    store = store_of(kind)
    fill(store, clock)
    assert [s.run_id for s in store.run_summaries("mail")] == ["m-1"]
    assert store.run_summaries("nobody") == []
    later = [s.run_id for s in store.run_summaries(since="2027-01-15T08:30:00Z")]
    assert later == ["m-1", "o-4"]
    assert [s.run_id for s in store.run_summaries("orders", "2027-01-15T09:00:12+01:00")] == ["o-4"]
    with pytest.raises(ValueError, match="ISO-8601"):
        store.run_summaries(since="last tuesday")


@pytest.mark.parametrize("kind", KINDS)
def test_a_store_with_no_runs_has_no_summaries(kind: str, store_of: Callable[..., Any]) -> None:
    assert store_of(kind).run_summaries() == []


@pytest.mark.parametrize("kind", KINDS)
def test_a_resumed_run_is_summed_over_both_calls(
    kind: str, store_of: Callable[..., Any], clock: FakeClock
) -> None:
    store = store_of(kind)
    calls = {"n": 0}

    def ask(ctx: WorkflowContext) -> HandlerResult:
        calls["n"] += 1
        if "__resume__" not in ctx.state.workflow:
            return HandlerResult(waiting=True)
        return HandlerResult(outputs=["ok"])

    engine = WorkflowEngine(MAIL, {"ask": ask}, store=store, clock=clock, sleep=clock.sleep)
    engine.run({}, "m-1")
    engine.resume("m-1", resume_input={"send": True})
    (summary,) = store.run_summaries()
    assert summary.status == "succeeded"
    assert summary.nodes is not None and summary.nodes["ask"].executions == 2


def test_the_memory_store_is_current_for_a_run_still_running() -> None:
    """The memory store reads its records, not a saved summary: no lag."""
    store = InMemoryWorkflowStore()
    seen: list[Any] = []

    def ship(ctx: WorkflowContext) -> HandlerResult:
        (summary,) = store.run_summaries()
        seen.append(summary)
        return HandlerResult(outputs=["ok"])

    engine = WorkflowEngine(
        ORDERS, {"charge": lambda ctx: HandlerResult(outputs=["ok"]), "ship": ship}, store=store
    )
    engine.run({}, "o-1")
    (running,) = seen
    assert running.status == "running"
    assert running.nodes is not None and list(running.nodes) == ["charge"]


# ---------------------------------------------------------------- older stores, damage


def _strip_stats_column(path: Path) -> None:
    """Make ``path`` look like a schema 3 store: no ``runs.stats`` (nor the later due index)."""
    db = sqlite3.connect(path)
    db.execute("DROP INDEX runs_due")
    db.execute("DROP INDEX runs_by_updated")
    db.execute("DROP INDEX runs_by_status_updated")
    db.execute("ALTER TABLE runs DROP COLUMN due_at")
    db.execute("ALTER TABLE runs DROP COLUMN stats")
    db.execute("PRAGMA user_version=3")
    db.commit()
    db.close()


def test_a_schema_3_sqlite_store_opens_and_its_old_runs_count_without_figures(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "runs.db"
    store = SqliteWorkflowStore(path)
    _orders(store, clock).run({}, "old")
    store.close()
    _strip_stats_column(path)
    store = SqliteWorkflowStore(path)
    try:
        _orders(store, clock).run({}, "new")
        new, old = store.run_summaries()  # by run id
        assert (old.run_id, old.status, old.nodes) == ("old", "succeeded", None)
        assert new.nodes is not None and new.nodes["ship"].executions == 1
        assert store.load_snapshot("old").status == "succeeded"  # still reads
    finally:
        store.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 6


def test_a_schema_1_sqlite_store_migrates_and_lists_its_runs_without_figures(
    tmp_path: Path,
) -> None:
    fixture = Path(__file__).parent / "fixtures" / "sqlite_v1" / "runs.db"
    path = tmp_path / "runs.db"
    path.write_bytes(fixture.read_bytes())
    store = SqliteWorkflowStore(path)
    try:
        summaries = store.run_summaries()
        listed = store.list_metadata()
    finally:
        store.close()
    assert [s.run_id for s in summaries] == sorted(m.run_id or "" for m in listed)
    assert summaries and all(s.nodes is None for s in summaries)


def test_damaged_sqlite_figures_are_reported_and_the_run_still_counts(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "runs.db"
    reports: list[Event] = []
    store = SqliteWorkflowStore(path, on_report=reports.append)
    try:
        engine = _orders(store, clock)
        engine.run({}, "bad-json")
        engine.run({}, "bad-shape")
        engine.run({}, "bad-status")
        engine.run({}, "fine")
        db = sqlite3.connect(path)
        db.execute("UPDATE runs SET stats='{not json' WHERE run_id='bad-json'")
        db.execute("""UPDATE runs SET stats='{"format": 1, "nodes": 3}' WHERE run_id='bad-shape'""")
        db.execute("UPDATE runs SET status=x'07' WHERE run_id='bad-status'")
        db.commit()
        db.close()
        summaries = {s.run_id: s for s in store.run_summaries()}
    finally:
        store.close()
    assert sorted(summaries) == ["bad-json", "bad-shape", "fine"]
    assert summaries["bad-json"].nodes is None and summaries["bad-shape"].nodes is None
    assert summaries["fine"].nodes is not None
    assert sorted(e.run_id for e in reports) == ["bad-json", "bad-shape", "bad-status"]


def test_a_json_store_of_an_older_zeroflow_counts_its_runs_without_figures(
    tmp_path: Path, clock: FakeClock
) -> None:
    store = JsonFileWorkflowStore(tmp_path / "runs")
    _orders(store, clock).run({}, "old")
    meta = tmp_path / "runs" / "old" / "metadata.json"
    data = json.loads(meta.read_text())
    assert data["stats"]["nodes"]["charge"][0] == 1  # what this zeroflow writes
    del data["stats"]
    meta.write_text(json.dumps(data))
    (summary,) = JsonFileWorkflowStore(tmp_path / "runs").run_summaries()
    assert (summary.run_id, summary.status, summary.nodes) == ("old", "succeeded", None)


def test_damaged_json_figures_are_reported_and_a_damaged_summary_skipped(
    tmp_path: Path, clock: FakeClock
) -> None:
    store = JsonFileWorkflowStore(tmp_path / "runs")
    engine = _orders(store, clock)
    for run_id in ("bad-stats", "bad-meta", "fine"):
        engine.run({}, run_id)
    meta = tmp_path / "runs" / "bad-stats" / "metadata.json"
    data = json.loads(meta.read_text())
    data["stats"] = {"format": 1, "nodes": {"charge": [1, 5, 0, 1.0, 1.0]}}
    meta.write_text(json.dumps(data))
    (tmp_path / "runs" / "bad-meta" / "metadata.json").write_text("[1, 2")
    reports: list[Event] = []
    reader = JsonFileWorkflowStore(tmp_path / "runs", on_report=reports.append)
    summaries = {s.run_id: s for s in reader.run_summaries()}
    assert sorted(summaries) == ["bad-stats", "fine"]
    assert summaries["bad-stats"].nodes is None
    assert summaries["bad-stats"].status == "succeeded"
    assert sorted(e.run_id for e in reports) == ["bad-meta", "bad-stats"]


# ---------------------------------------------------------------- the CLI


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(params=["json", "sqlite"])
def filled(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> str:
    """The path of a JSON or SQLite store holding ``fill``'s runs."""
    if request.param == "json":
        path = tmp_path / "runs"
        fill(JsonFileWorkflowStore(path), clock)
    else:
        path = tmp_path / "runs.db"
        store = SqliteWorkflowStore(path)
        fill(store, clock)
        store.close()
    return str(path)


def test_runs_stats_prints_statuses_durations_and_nodes(
    filled: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "runs", "stats", "--store", filled)
    assert code == 0, err
    assert "runs: 5 (failed 1, succeeded 3, waiting 1)" in out
    assert "workflow orders: 4 runs (failed 1, succeeded 3)" in out
    assert "duration of 4 finished runs: p50 4 s, p95 8 s, max 8 s" in out
    assert "duration of 0 finished runs: p50 -, p95 -, max -" in out  # mail: only waiting
    assert "slowest nodes (by p95)" in out
    failing = out.split("most-failing nodes", 1)[1]
    assert "orders" in failing and "ship" in failing and "charge" not in failing


def test_runs_stats_json_filters_by_workflow_and_since(
    filled: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(
        capsys, "runs", "stats", "--store", filled, "--workflow", "orders", "--json"
    )
    assert code == 0
    report = json.loads(out)
    assert report["runs"] == 4 and list(report["workflows"]) == ["orders"]
    charge = report["workflows"]["orders"]["nodes"]["charge"]
    assert (charge["executions"], charge["retries"], charge["failures"]) == (4, 1, 0)
    code, out, _ = run_cli(
        capsys, "runs", "stats", "--store", filled, "--since", "2027-01-15T08:30:00Z", "--json"
    )
    assert code == 0 and json.loads(out)["by_status"] == {"succeeded": 1, "waiting": 1}


def test_runs_stats_of_no_matching_runs_says_so(
    filled: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "runs", "stats", "--store", filled, "--workflow", "nobody")
    assert (code, out) == (0, "no runs\n")


def test_runs_stats_refuses_a_since_that_is_no_time(
    filled: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "runs", "stats", "--store", filled, "--since", "soon")
    assert code == 1
    assert "since must be an ISO-8601 date or time" in err and "Traceback" not in err


def test_runs_stats_refuses_a_negative_top(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "runs", "stats", "--store", filled, "--top", "-1")
    assert code == 1 and "--top must be 0 or more" in err


class _PlainStore:
    """0.1.0's four methods and nothing else: no summaries to read."""

    def save_snapshot(self, snapshot: RunSnapshot) -> None: ...

    def load_snapshot(self, run_id: str) -> RunSnapshot:
        raise KeyError(run_id)

    def append_event(self, run_id: str, event: Event) -> None: ...

    def list_metadata(self, workflow_name: str | None = None) -> list[RunMetadata]:
        raise AssertionError("stats must not list (nor load) every run")


def test_runs_stats_refuses_a_store_without_summaries_rather_than_loading_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import zeroflow._cli_runs as cli_runs

    monkeypatch.setattr(cli_runs, "_open_store", lambda path, on_report=None: _PlainStore())
    code, out, err = run_cli(capsys, "runs", "stats", "--store", str(tmp_path))
    assert code == 1 and out == ""
    assert "keeps no run summaries" in err and "StatsStore" in err


def test_runs_stats_warns_about_damaged_runs_on_stderr(
    tmp_path: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    store = JsonFileWorkflowStore(tmp_path / "runs")
    _orders(store, clock).run({}, "fine")
    _orders(store, clock).run({}, "broken")
    (tmp_path / "runs" / "broken" / "metadata.json").write_text("{")
    code, out, err = run_cli(capsys, "runs", "stats", "--store", str(tmp_path / "runs"))
    assert code == 0
    assert "runs: 1 (succeeded 1)" in out
    assert "run 'broken'" in err


def test_the_stats_help_names_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, text, _ = run_cli(capsys, "runs", "stats", "--help")
    assert code == 0
    for option in ("--store", "--workflow", "--since", "--json", "--top"):
        assert option in text


@pytest.mark.parametrize("kind", ["json", "sqlite", "postgres"])
def test_a_run_still_running_counts_with_the_figures_of_its_last_full_save(
    kind: str, store_of: Callable[..., Any]
) -> None:
    store = store_of(kind)
    seen: list[Any] = []

    def ship(ctx: WorkflowContext) -> HandlerResult:
        seen.extend(store.run_summaries())
        return HandlerResult(outputs=["ok"])

    engine = WorkflowEngine(
        ORDERS, {"charge": lambda ctx: HandlerResult(outputs=["ok"]), "ship": ship}, store=store
    )
    engine.run({}, "o-1")
    (running,) = seen
    # Written at its start: no node had run yet. The end's full save brings it up to date.
    assert (running.run_id, running.status, running.nodes) == ("o-1", "running", {})
    (done,) = store.run_summaries()
    assert done.status == "succeeded"
    assert done.nodes is not None and sorted(done.nodes) == ["charge", "ship"]
