"""Examples 03 (async agent) and 04 (parallel approvals) run and do what they say."""

from __future__ import annotations

from pathlib import Path

import pytest

from _support import load_example
from zeroflow import JsonFileWorkflowStore


def test_async_agent_loops_once_for_sources_then_answers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = load_example("03_async_agent").main()
    assert result.success
    tools = ["search", "calculator", "weather"]
    round_trace = ["plan", *tools, "critique"]
    assert result.trace == [*round_trace, *round_trace, "answer"]
    assert result.state.workflow["round"] == 2
    assert "with sources" in result.state.workflow["answer"]
    assert result.state.workflow["findings"]["weather"] == "sunny, 24 C"
    assert "success=True rounds=2" in capsys.readouterr().out


def test_async_agent_is_deterministic_across_runs() -> None:
    import asyncio

    module = load_example("03_async_agent")
    first, events = asyncio.run(module.run_agent("q"))
    second, _ = asyncio.run(module.run_agent("q"))
    assert first.trace == second.trace
    assert first.state == second.state
    assert [e.data["round"] for e in events] == [1, 2]
    assert module.WORKFLOW["engine_policy"]["max_concurrency"] == 3


def test_approvals_resume_each_approver_separately_from_the_json_store(tmp_path: Path) -> None:
    result = load_example("04_approvals").main(base_dir=tmp_path)
    assert result.success
    assert result.state.workflow["result"] == "shipped"
    assert result.state.workflow["legal"]["by"] == "lee"
    assert result.state.workflow["finance"]["limit"] == 200
    assert result.state.workflow["reserved"] == ["kettle", "mug"]
    assert sorted(result.tags) == ["finance:fran", "legal:lee"]
    assert result.trace[-2:] == ["decide", "fulfil"]
    stored = JsonFileWorkflowStore(tmp_path).load_snapshot("order-1001")
    assert stored.status == "succeeded"


def test_approvals_run_in_a_temporary_folder_by_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = load_example("04_approvals").main()
    assert result.success
    out = capsys.readouterr().out
    assert "waiting on legal" in out and "waiting on finance" in out
    assert "result=shipped" in out
