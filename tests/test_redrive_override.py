"""redrive(override=...): a failed node marked done with a given result, without its handler."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from _support import edge, make_store
from zeroflow import (
    EVENT_NODE_OVERRIDE,
    HandlerResult,
    InMemoryWorkflowStore,
    InvalidTransitionError,
    OverrideError,
    WorkflowContext,
    WorkflowEngine,
)
from zeroflow._cli import main
from zeroflow.testing import EventRecorder

FLOW: dict[str, Any] = {
    "workflow_name": "invoice",
    "default_entry_node": "price",
    "nodes": {
        "price": {"handler": "price", "outputs": {"ok": edge("charge")}},
        "charge": {
            "handler": "charge",
            "outputs": {"paid": edge("receipt"), "waived": edge("note")},
        },
        "receipt": {"handler": "receipt", "outputs": {"ok": []}},
        "note": {"handler": "receipt", "outputs": {"ok": []}},
    },
}

HANDLERS_MODULE = """
from zeroflow import HandlerResult

CALLS = []

def price(ctx):
    return HandlerResult(outputs=["ok"], workflow_updates={"total": 40})

def charge(ctx):
    CALLS.append("charge")
    raise RuntimeError("gateway down")

def receipt(ctx):
    return HandlerResult(outputs=["ok"], node_updates={"sent": ctx.state.workflow.get("paid_by")})

HANDLERS = {"price": price, "charge": charge, "receipt": receipt}
"""


@pytest.fixture
def handlers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    (tmp_path / "override_handlers.py").write_text(HANDLERS_MODULE, encoding="utf-8")
    (tmp_path / "flow.json").write_text(json.dumps(FLOW), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("override_handlers", None)
    import override_handlers  # type: ignore[import-not-found]

    return override_handlers


def failed_run(handlers: Any, store: Any, rec: EventRecorder | None = None) -> WorkflowEngine:
    engine = WorkflowEngine(FLOW, handlers.HANDLERS, store=store, event_callback=rec)
    assert engine.run(run_id="inv-1").status == "failed"
    handlers.CALLS.clear()
    return engine


@pytest.mark.parametrize("kind", ["memory", "json", "sqlite"])
def test_an_override_settles_the_failed_node_without_calling_it(
    handlers: Any, kind: str, tmp_path: Path
) -> None:
    rec = EventRecorder()
    engine = failed_run(handlers, make_store(kind, tmp_path), rec)
    result = engine.redrive(
        "inv-1",
        override={"charge": {"outputs": ["paid"], "workflow_updates": {"paid_by": "phone"}}},
        actor="ann",
        reason="customer paid by phone",
    )
    assert result.status == "succeeded"
    assert handlers.CALLS == []
    assert result.trace == ["price", "charge", "charge", "receipt"]
    assert result.state.node["receipt"] == {"sent": "phone"}
    row = result.audit_trail[-2]
    assert (row.node, row.status, row.kind, row.outputs) == (
        "charge",
        "succeeded",
        "override",
        ["paid"],
    )
    assert row.details == {"actor": "ann", "reason": "customer paid by phone"}
    (event,) = rec.of(EVENT_NODE_OVERRIDE)
    assert event.data == {"node": "charge", "actor": "ann", "reason": "customer paid by phone"}
    stored = engine.load_snapshot("inv-1")
    assert stored.audit_trail[-2].kind == "override" and "override" not in stored.extra


def test_an_override_without_actor_or_reason_records_none(handlers: Any) -> None:
    engine = failed_run(handlers, InMemoryWorkflowStore())
    result = engine.redrive("inv-1", override={"charge": {"outputs": ["waived"]}})
    assert result.trace[-1] == "note" and result.audit_trail[-2].details is None


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ({"charge": {"outputs": ["refunded"]}}, "declares no output 'refunded'"),
        ({"receipt": {"outputs": ["ok"]}}, "the node to redrive is 'charge'"),
        ({"charge": {"outputs": "paid"}}, "must be a list of output names"),
        ({"charge": {"outputs": ["paid"], "extra": 1}}, "must be a dict with some of"),
        ({"charge": {"workflow_updates": {"x": {1, 2}}}}, "workflow_updates cannot be stored"),
        ({"charge": {"node_updates": [1]}}, "node_updates must be a dict"),
        ({"charge": {}, "price": {}}, "one {node: result} pair"),
        ("paid", "one {node: result} pair"),
    ],
)
def test_a_bad_override_is_refused_before_anything_changes(
    handlers: Any, override: Any, needle: str
) -> None:
    store = InMemoryWorkflowStore()
    engine = failed_run(handlers, store)
    before = store.load_snapshot("inv-1").to_dict()
    with pytest.raises(OverrideError, match="inv-1") as info:
        engine.redrive("inv-1", override=override)
    assert needle in str(info.value)
    assert store.load_snapshot("inv-1").to_dict() == before
    assert handlers.CALLS == []


def test_only_a_failed_run_can_be_overridden(handlers: Any) -> None:
    store = InMemoryWorkflowStore()
    holder: dict[str, WorkflowEngine] = {}

    def price(ctx: WorkflowContext) -> HandlerResult:
        holder["e"].cancel()
        return HandlerResult(outputs=["ok"])

    holder["e"] = WorkflowEngine(FLOW, {**handlers.HANDLERS, "price": price}, store=store)
    assert holder["e"].run(run_id="c1").status == "cancelled"
    with pytest.raises(OverrideError, match="only a failed run"):
        holder["e"].redrive("c1", override={"charge": {"outputs": ["paid"]}})
    paid = {**handlers.HANDLERS, "charge": lambda ctx: HandlerResult(outputs=["paid"])}
    engine = WorkflowEngine(FLOW, paid, store=store)
    assert engine.run(run_id="s1").success
    with pytest.raises(InvalidTransitionError):
        engine.redrive("s1", override={"charge": {"outputs": ["paid"]}})


def test_aredrive_takes_the_override_too(handlers: Any) -> None:
    engine = failed_run(handlers, InMemoryWorkflowStore())
    result = asyncio.run(
        engine.aredrive("inv-1", override={"charge": {"outputs": ["paid"]}}, actor="bot")
    )
    assert result.success and result.audit_trail[-2].details == {"actor": "bot"}


def test_a_crash_after_the_override_resumes_past_it(handlers: Any) -> None:
    store = InMemoryWorkflowStore()
    engine = failed_run(handlers, store)
    crashing = dict(handlers.HANDLERS)

    def receipt(ctx: WorkflowContext) -> HandlerResult:
        raise KeyboardInterrupt  # the process dies while the next node runs

    crashing["receipt"] = receipt
    with pytest.raises(KeyboardInterrupt):
        WorkflowEngine(FLOW, crashing, store=store).redrive(
            "inv-1", override={"charge": {"outputs": ["paid"]}}, actor="ann"
        )
    stored = store.load_snapshot("inv-1")
    assert stored.status == "running" and stored.ready_now == ["receipt"]
    assert "override" not in stored.extra
    store.break_lease("inv-1")
    result = engine.resume("inv-1")
    assert result.success and handlers.CALLS == []
    assert [r.kind for r in result.audit_trail].count("override") == 1


def test_the_cli_redrives_with_an_override_file(
    handlers: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from zeroflow import JsonFileWorkflowStore

    failed_run(handlers, JsonFileWorkflowStore(tmp_path / "runs"))
    (tmp_path / "paid.json").write_text(json.dumps({"outputs": ["paid"]}), encoding="utf-8")
    common = [
        "--store",
        "runs",
        "--workflow",
        "flow.json",
        "--handlers",
        "override_handlers:HANDLERS",
    ]
    code = main(["runs", "redrive", "inv-1", *common, "--override", "charge=paid.json",
                 "--actor", "ann", "--reason", "phone"])  # fmt: skip
    out, _ = capsys.readouterr()
    assert code == 0 and "run inv-1: succeeded" in out
    row = JsonFileWorkflowStore(tmp_path / "runs").load_snapshot("inv-1").audit_trail[-2]
    assert row.kind == "override" and row.details == {"actor": "ann", "reason": "phone"}
    for bad, needle in (("charge", "NODE=FILE.json"), ("charge=nope.json", "no such file")):
        code = main(["runs", "redrive", "inv-1", *common, "--override", bad])
        _, err = capsys.readouterr()
        assert code != 0 and needle in err and err.count("\n") == 1
