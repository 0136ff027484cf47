"""Who answered: a resume's ``actor`` is kept with the run, its event and ``runs show``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from _support import FakeClock, Recorder
from zeroflow import (
    HandlerResult,
    InMemoryWorkflowStore,
    JsonFileWorkflowStore,
    WorkflowContext,
    WorkflowEngine,
)
from zeroflow._cli import main

APPROVAL: dict[str, Any] = {
    "workflow_name": "approval",
    "default_entry_node": "ask",
    "engine_policy": {"hitl": "branch"},
    "nodes": {
        "ask": {
            "handler": "start",
            "outputs": {"ok": [{"target_node": "legal"}, {"target_node": "finance"}]},
        },
        "legal": {"kind": "wait", "wait": {"prompt": "legal?"}, "outputs": {"ok": []}},
        "finance": {"kind": "wait", "wait": {"prompt": "finance?"}, "outputs": {"ok": []}},
    },
}


def start(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"])


def engine(store: Any, **kw: Any) -> WorkflowEngine:
    return WorkflowEngine(APPROVAL, {"start": start}, store=store, **kw)


def test_each_answer_is_recorded_with_who_gave_it_and_when() -> None:
    store, clock, heard = InMemoryWorkflowStore(), FakeClock(1_800_000_000), Recorder()
    engine(store, clock=clock, event_callback=heard).run(run_id="o1")
    engine(store, clock=clock, event_callback=heard).resume(
        "o1", "legal", {"ok": True}, actor="lee@example.com"
    )
    clock.now += 60
    done = engine(store, clock=clock, event_callback=heard).resume(
        "o1", "finance", {"ok": True}, actor="fran"
    )
    assert done.success
    answers = store.load_snapshot("o1").extra["answers"]
    assert [(a["node"], a["actor"]) for a in answers] == [
        ("legal", "lee@example.com"),
        ("finance", "fran"),
    ]
    assert answers[1]["at"] > answers[0]["at"]
    assert [e.data.get("actor") for e in heard.of("wf:resumed")] == ["lee@example.com", "fran"]


def test_a_resume_without_an_actor_records_no_answer() -> None:
    store = InMemoryWorkflowStore()
    engine(store).run(run_id="o1")
    engine(store).resume("o1", "legal", {"ok": True})
    assert "answers" not in store.load_snapshot("o1").extra


@pytest.mark.parametrize("bad", ["", "x" * 201, 5, "a\nb"])
def test_an_actor_that_is_not_a_short_line_of_text_is_refused(bad: Any) -> None:
    store = InMemoryWorkflowStore()
    engine(store).run(run_id="o1")
    with pytest.raises((TypeError, ValueError), match="actor"):
        engine(store).resume("o1", "legal", {"ok": True}, actor=bad)
    assert store.load_snapshot("o1").status == "waiting"  # nothing changed


def test_runs_resume_takes_an_actor_and_runs_show_lists_the_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    (tmp_path / "flow.json").write_text(json.dumps(APPROVAL))
    (tmp_path / "approval_handlers.py").write_text(
        "from zeroflow import HandlerResult\n"
        "HANDLERS = {'start': lambda ctx: HandlerResult(outputs=['ok'])}\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    engine(JsonFileWorkflowStore(tmp_path / "runs")).run(run_id="o1")
    driven = ["--workflow", "flow.json", "--handlers", "approval_handlers:HANDLERS"]
    code = main(
        ["runs", "resume", "o1", "--store", "runs", *driven, "--node", "legal", "--actor", "lee"]
    )
    assert code == 0
    capsys.readouterr()
    assert main(["runs", "show", "o1", "--store", "runs"]) == 0
    out = capsys.readouterr().out
    assert "answered:   legal by lee at " in out
