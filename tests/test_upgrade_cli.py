"""Issue 17 §2: ``zeroflow runs check-upgrade`` — the dry run, ``--json`` and ``--apply``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from test_fork_migrate import HANDLERS
from test_fork_migrate import approval_v1 as v1
from test_fork_migrate import approval_v2 as v2
from test_upgrade import approval_with_review as review
from zeroflow import JsonFileWorkflowStore, WorkflowEngine
from zeroflow._cli import main

HANDLERS_SPEC = "test_fork_migrate:HANDLERS"  # the same mapping, as --handlers names it


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Definition files and a JSON store with two runs v2 can take and one it cannot."""
    for name, definition in (("v1", v1()), ("v2", v2()), ("review", review())):
        (tmp_path / f"{name}.json").write_text(json.dumps(definition), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    store = JsonFileWorkflowStore(tmp_path / "runs")
    for run_id, definition in (("m1", v1()), ("m2", v1()), ("b1", review())):
        assert WorkflowEngine(definition, HANDLERS, store=store).run(run_id=run_id).waiting


def check(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    code = main(["runs", "check-upgrade", "v2.json", "--store", "runs", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def hashes() -> dict[str, str]:
    store = JsonFileWorkflowStore("runs")
    return {r: store.load_snapshot(r).wf_hash for r in ("m1", "m2", "b1")}


def digest(definition: dict[str, Any]) -> str:
    return WorkflowEngine(definition, {}).workflow_hash


def test_apply_migrates_the_two_migratable_runs_and_leaves_the_blocked_one(
    project: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = check(
        capsys,
        "--old",
        "v1.json",
        "--old",
        "review.json",
        "--apply",
        "--handlers",
        HANDLERS_SPEC,
    )
    assert code == 1, (out, err)  # one run stays blocked
    assert err == ""
    lines = out.splitlines()
    assert "  migratable  2" in lines and "  blocked     1" in lines
    assert any(
        line.startswith("b1") and "node 'review' (waiting) is missing" in line for line in lines
    )
    assert "migrated 2 run(s): m1, m2" in lines
    assert hashes() == {"m1": digest(v2()), "m2": digest(v2()), "b1": digest(review())}

    engine = WorkflowEngine(v2(), HANDLERS, store=JsonFileWorkflowStore("runs"))
    result = engine.resume("m1", resume_input="yes")
    assert result.success and result.trace[-1] == "announce"
    code, out, _ = check(capsys, "--old", "review.json")  # nothing left to migrate
    assert code == 1
    assert "  compatible  1" in out.splitlines()  # m2 (m1 has succeeded since)
    assert "  migratable  0" in out.splitlines()


def test_apply_skips_and_lists_a_run_another_caller_holds(
    project: None, capsys: pytest.CaptureFixture[str]
) -> None:
    JsonFileWorkflowStore("runs").acquire_lease("m2", "someone-else")
    code, out, _ = check(
        capsys, "--old", "v1.json", "--apply", "--handlers", HANDLERS_SPEC, "--json"
    )
    assert code == 1
    data = json.loads(out)
    assert data["counts"] == {"compatible": 0, "migratable": 2, "blocked": 1, "unknown": 0}
    assert data["applied"]["migrated"] == ["m1"]
    assert [r["run_id"] for r in data["applied"]["locked"]] == ["m2"]
    assert hashes()["m2"] == digest(v1())


def test_apply_cannot_migrate_a_run_without_its_old_definition(
    project: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = check(capsys, "--apply", "--handlers", HANDLERS_SPEC)
    assert code == 1
    assert "migrated 0 run(s)" in out
    assert f"not applied m1: its definition ({digest(v1())[:12]}) was not given" in out
    assert hashes()["m1"] == digest(v1())


def test_the_dry_run_writes_nothing_and_exits_0_when_nothing_is_blocked(
    project: None, capsys: pytest.CaptureFixture[str]
) -> None:
    JsonFileWorkflowStore("runs").delete_run("b1")
    code, out, _ = check(capsys, "--old", "v1.json")
    assert code == 0, out
    assert "  migratable  2" in out.splitlines()
    assert "dry run: nothing was written" in out
    store = JsonFileWorkflowStore("runs")
    assert {store.load_snapshot(r).wf_hash for r in ("m1", "m2")} == {digest(v1())}
    code, out, _ = check(capsys, "--old", "v1.json", "--json")
    data = json.loads(out)
    assert code == 0 and data["ok"] is True
    assert [(r["run_id"], r["verdict"]) for r in data["runs"]] == [
        ("m1", "migratable"),
        ("m2", "migratable"),
    ]


def test_apply_needs_handlers_and_bad_subflow_specs_are_one_line_errors(
    project: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = check(capsys, "--apply")
    assert code == 1 and err.count("\n") == 1 and "--apply needs --handlers" in err
    code, _, err = check(capsys, "--subflow", "child")
    assert code == 1 and "--subflow wants NAME=FILE" in err
