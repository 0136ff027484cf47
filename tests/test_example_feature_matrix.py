"""examples/02_feature_matrix.py: every demo ends the way its docstring says."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "02_feature_matrix.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_02_feature_matrix", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("matrix")
    out: dict[str, Any] = _load().main(base)
    out["_base"] = base
    return out


def test_routing_takes_the_branch_the_handler_names(results: dict[str, Any]) -> None:
    assert results["routing"]["small"] == ["classify", "ship"]
    assert results["routing"]["large"] == ["classify", "approve", "ship"]


def test_loopback_repeats_the_loop_in_new_waves_until_it_exits(results: dict[str, Any]) -> None:
    loop = results["loopback"]
    assert loop["trace"] == ["draft", "check"] * 3 + ["publish"]
    assert loop["waves"] == [1, 2, 3]
    assert loop["version"] == 3


def test_and_join_runs_once_after_both_branches(results: dict[str, Any]) -> None:
    assert results["and_join"]["trace"] == ["start", "price", "stock", "quote"]
    assert results["and_join"]["total"] == 36


def test_retry_succeeds_on_the_third_attempt_without_new_trace_entries(
    results: dict[str, Any],
) -> None:
    retry = results["retry"]
    assert retry["status"] == "succeeded"
    assert retry["attempts"] == 3
    assert retry["retry_events"] == [1, 2]
    assert retry["trace"] == ["fetch"]


def test_errors_go_to_the_matching_catcher_else_the_default_error_node(
    results: dict[str, Any],
) -> None:
    errors = results["error_routing"]
    assert errors["good"] == {"success": True, "trace": ["charge", "receipt"]}
    assert errors["blocked"] == {"success": True, "trace": ["charge", "refuse"]}
    assert errors["broken"] == {"success": True, "trace": ["charge", "alert"]}


def test_hitl_pauses_and_a_fresh_process_resumes_from_the_json_store(
    results: dict[str, Any],
) -> None:
    hitl = results["hitl"]
    assert hitl["paused_status"] == "waiting"
    assert hitl["prompt"] == "Deploy v2.0?"
    assert hitl["resumed"] == {
        "status": "succeeded",
        "trace": ["prepare", "approve", "approve", "deploy"],
        "deployed": True,
        "approved_by": "ana",
    }
    assert hitl["stored_status"] == "succeeded"
    run_dir = results["_base"] / "runs" / "release-42"
    assert (run_dir / "snapshot.json").is_file()
    assert (run_dir / "events.jsonl").is_file()


def test_custom_events_reach_the_callback_tagged_with_their_node(
    results: dict[str, Any],
) -> None:
    assert results["custom_events"]["progress"] == [
        {"done": 1, "total": 3, "node": "import_rows"},
        {"done": 2, "total": 3, "node": "import_rows"},
        {"done": 3, "total": 3, "node": "import_rows"},
    ]


def test_main_without_a_folder_uses_a_temporary_one(capsys: pytest.CaptureFixture[str]) -> None:
    out = _load().main()
    assert out["hitl"]["resumed"]["status"] == "succeeded"
    assert "resumed in a new process: succeeded" in capsys.readouterr().out
