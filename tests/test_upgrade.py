"""Issue 17 §2: ``engine.check_upgrade`` — what a new definition does to stored runs."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from _support import task
from test_fork_migrate import HANDLERS, approval_v1, approval_v2
from zeroflow import (
    HandlerResult,
    InMemoryWorkflowStore,
    JsonFileWorkflowStore,
    UpgradeReport,
    UpgradeVerdict,
    WorkflowContext,
    WorkflowEngine,
)

# ---------------------------------------------------------------- an approval flow


def approval_without_approve() -> dict[str, Any]:
    v3 = copy.deepcopy(approval_v1())
    del v3["nodes"]["approve"]
    v3["nodes"]["draft"] = task("step", "publish")
    return v3


def approval_with_review() -> dict[str, Any]:
    """An older approval flow whose waiting node ``review`` the later ones do not have."""
    old = copy.deepcopy(approval_v1())
    old["nodes"]["review"] = old["nodes"].pop("approve")
    old["nodes"]["draft"] = task("step", "review")
    return old


def publish_fails(ctx: WorkflowContext) -> HandlerResult:
    raise RuntimeError("publisher down")


BROKEN = {**HANDLERS, "publish": publish_fails}


def waiting_run(store: Any, run_id: str, definition: dict[str, Any] | None = None) -> None:
    result = WorkflowEngine(definition or approval_v1(), HANDLERS, store=store).run(run_id=run_id)
    assert result.status == "waiting"


# ---------------------------------------------------------------- one test per class


def test_a_run_of_the_same_definition_is_compatible() -> None:
    store = InMemoryWorkflowStore()
    waiting_run(store, "w1")
    report = WorkflowEngine(approval_v1(), HANDLERS).check_upgrade(store)
    assert isinstance(report, UpgradeReport)
    assert report.counts == {"compatible": 1, "migratable": 0, "blocked": 0, "unknown": 0}
    verdict = report.verdict("w1")
    assert verdict == UpgradeVerdict(
        "w1", "waiting", "compatible", (), (), WorkflowEngine(approval_v1(), {}).workflow_hash
    )
    assert report.ok


def test_a_run_migrate_accepts_is_migratable_with_what_changes_for_it() -> None:
    store = InMemoryWorkflowStore()
    waiting_run(store, "w1")
    new = WorkflowEngine(approval_v2(), HANDLERS, store=store)
    report = new.check_upgrade(store, old_definitions=[approval_v1()])
    verdict = report.verdict("w1")
    assert verdict.verdict == "migratable"
    assert verdict.verified
    assert verdict.reasons == ()
    assert verdict.changes[0].startswith("definition ")
    assert "node 'announce' added" in verdict.changes
    assert "node 'publish': config, routes changed" in verdict.changes
    assert not any("draft" in c for c in verdict.changes)  # behind the run: not its change
    assert report.ok
    # migrate() agrees, and the migrated run finishes on the new definition
    new.migrate(store.load_snapshot("w1"), approval_v1())
    assert new.check_upgrade(store).verdict("w1").verdict == "compatible"
    result = new.resume("w1", resume_input="yes")
    assert result.success
    assert result.state.workflow["published_to"] == "email"
    assert result.trace[-1] == "announce"


def test_a_run_migrate_refuses_is_blocked_with_migrates_reasons() -> None:
    store = InMemoryWorkflowStore()
    waiting_run(store, "w1")
    new = WorkflowEngine(approval_without_approve(), HANDLERS)
    report = new.check_upgrade(store, old_definitions=[approval_v1()])
    verdict = report.verdict("w1")
    assert verdict.verdict == "blocked"
    assert verdict.reasons == ("node 'approve' (waiting) is missing from the new definition",)
    assert not report.ok
    with pytest.raises(ValueError) as info:
        new.migrate(store.load_snapshot("w1"), approval_v1())
    assert verdict.reasons[0] in str(info.value)


def test_a_run_whose_checkpoint_cannot_be_read_is_unknown(tmp_path: Path) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    waiting_run(store, "good")
    waiting_run(store, "damaged")
    waiting_run(store, "unlisted")
    for path in (tmp_path / "damaged").iterdir():
        if path.name != "metadata.json" and path.is_file() and path.suffix == ".json":
            path.write_text("{not json", encoding="utf-8")
    (tmp_path / "unlisted" / "metadata.json").write_text("[]", encoding="utf-8")
    reports: list[Any] = []
    store.on_report = reports.append  # the store's own reporter still hears of it
    report = WorkflowEngine(approval_v1(), HANDLERS).check_upgrade(store)
    assert report.counts == {"compatible": 1, "migratable": 0, "blocked": 0, "unknown": 2}
    assert report.verdict("good").verdict == "compatible"
    damaged = report.verdict("damaged")
    assert damaged.verdict == "unknown" and "no readable checkpoint" in damaged.reasons[0]
    unlisted = report.verdict("unlisted")
    assert unlisted.verdict == "unknown" and unlisted.status == "corrupt"
    assert "metadata.json" in unlisted.reasons[0]
    assert [e.run_id for e in reports] == ["unlisted"]
    assert store.on_report == reports.append
    assert report.ok  # nothing blocked: an unreadable run is not the deploy's doing


def test_a_checkpoint_with_a_bad_signature_is_unknown() -> None:
    store = InMemoryWorkflowStore()
    WorkflowEngine(approval_v1(), HANDLERS, store=store, checkpoint_key=b"k" * 32).run(run_id="s1")
    new = WorkflowEngine(approval_v2(), HANDLERS, checkpoint_key=b"o" * 32)
    verdict = new.check_upgrade(store, old_definitions=[approval_v1()]).verdict("s1")
    assert verdict.verdict == "unknown"
    assert "no readable checkpoint" in verdict.reasons[0]


# ---------------------------------------------------------------- which runs are judged


def test_finished_runs_are_skipped_and_unfinished_statuses_are_judged() -> None:
    store = InMemoryWorkflowStore()
    waiting_run(store, "waiting")
    answered = WorkflowEngine(approval_v1(), HANDLERS, store=store)
    answered.run(run_id="done")
    assert answered.resume("done", resume_input="yes").success
    broken = WorkflowEngine(approval_v1(), BROKEN, store=store)
    broken.run(run_id="failed")
    assert broken.resume("failed", resume_input="yes").status == "failed"
    snap = store.load_snapshot("failed")
    assert snap.extra.get("redrive")
    snap.run_id = "failed-early"
    snap.extra.pop("redrive")
    store.save_snapshot(snap)
    other = {**approval_v1(), "workflow_name": "other"}
    waiting_run(store, "elsewhere", other)

    report = WorkflowEngine(approval_v2(), HANDLERS).check_upgrade(
        store, old_definitions=[approval_v1()]
    )
    assert [(v.run_id, v.status, v.verdict) for v in report.verdicts] == [
        ("failed", "failed", "migratable"),
        ("waiting", "waiting", "migratable"),
    ]
    assert dict(report.skipped) == {
        "done": "succeeded",
        "failed-early": "failed with no redrive record: only a new run() can continue it",
    }
    renamed = WorkflowEngine(approval_v1(), HANDLERS).check_upgrade(store, "other")
    assert [v.run_id for v in renamed.verdicts] == ["elsewhere"]


def test_a_failed_run_whose_redrive_needs_a_removed_node_is_blocked() -> None:
    store = InMemoryWorkflowStore()
    broken = WorkflowEngine(approval_v1(), BROKEN, store=store)
    broken.run(run_id="f1")
    assert broken.resume("f1", resume_input="yes").status == "failed"
    v3 = copy.deepcopy(approval_v1())
    del v3["nodes"]["publish"]
    v3["nodes"]["approve"] = task("approve")
    new = WorkflowEngine(v3, HANDLERS, store=store)
    verdict = new.check_upgrade(store, old_definitions=[approval_v1()]).verdict("f1")
    assert verdict.verdict == "blocked"
    assert verdict.reasons == (
        "node 'publish' (queued for a redrive) is missing from the new definition",
    )
    with pytest.raises(ValueError, match="queued for a redrive"):
        new.migrate(store.load_snapshot("f1"), approval_v1())


def test_without_the_old_definition_a_run_is_judged_on_its_own_records() -> None:
    store = InMemoryWorkflowStore()
    waiting_run(store, "w1")
    fine = WorkflowEngine(approval_v2(), HANDLERS).check_upgrade(store).verdict("w1")
    assert fine.verdict == "migratable"
    assert not fine.verified
    assert fine.reasons[0].startswith("unverified: its definition ")
    assert "was not given" in fine.reasons[0]
    assert len(fine.changes) == 1 and fine.changes[0].startswith("definition ")

    gone = WorkflowEngine(approval_without_approve(), HANDLERS).check_upgrade(store)
    assert gone.verdict("w1").verdict == "blocked"
    assert gone.verdict("w1").reasons == (
        "node 'approve' (waiting) is missing from the new definition",
    )

    ended = copy.deepcopy(approval_v1())
    ended["nodes"]["approve"] = {"kind": "end", "outputs": {}}
    now_end = WorkflowEngine(ended, HANDLERS).check_upgrade(store).verdict("w1")
    assert now_end.verdict == "blocked"
    assert "is an end node now" in now_end.reasons[0]


def test_the_report_is_frozen_and_prints_a_table() -> None:
    store = InMemoryWorkflowStore()
    waiting_run(store, "a-ok", approval_v2())
    waiting_run(store, "b-moves")
    review = approval_with_review()
    waiting_run(store, "c-stuck", review)
    report = WorkflowEngine(approval_v2(), HANDLERS).check_upgrade(
        store, old_definitions=[approval_v1(), review]
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.verdicts = ()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.verdicts[0].verdict = "compatible"  # type: ignore[misc]
    assert report.counts == {"compatible": 1, "migratable": 1, "blocked": 1, "unknown": 0}
    assert [v.run_id for v in report.blocked] == ["c-stuck"]
    lines = report.table().splitlines()
    assert lines[0].startswith("workflow 'approval', new definition ")
    assert lines[1:5] == [
        "  compatible  1",
        "  migratable  1",
        "  blocked     1",
        "  unknown     0",
    ]
    assert not any(line.startswith("a-ok") for line in lines)
    moves = next(line for line in lines if line.startswith("b-moves"))
    assert "migratable" in moves and "node 'announce' added" in moves
    stuck = next(line for line in lines if line.startswith("c-stuck"))
    assert "blocked" in stuck and "node 'review' (waiting) is missing" in stuck
    assert json.loads(json.dumps(report.to_dict()))["counts"] == report.counts
    with pytest.raises(KeyError, match="no verdict for run 'nope'"):
        report.verdict("nope")
