"""Checkpoint signatures: an engine with ``checkpoint_key`` refuses unsigned or altered snapshots.

A waiting approval's checkpoint that travels (a Lambda event, a queue, a
browser) can be edited to skip the approval (``ready_now=["pay"]``); the
signature makes that an ``InvalidCheckpointError``. Without a key, a crafted
snapshot naming nodes the definition lacks is refused the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from _support import Recorder, make_store
from zeroflow import (
    HandlerResult,
    InvalidCheckpointError,
    RunSnapshot,
    WorkflowContext,
    WorkflowEngine,
)

KEY = b"k" * 32

APPROVAL: dict[str, Any] = {
    "workflow_name": "approval",
    "default_entry_node": "prepare",
    "nodes": {
        "prepare": {"handler": "prepare", "outputs": {"ok": [{"target_node": "ask"}]}},
        "ask": {"handler": "ask", "outputs": {"yes": [{"target_node": "pay"}], "no": []}},
        "pay": {"handler": "pay", "outputs": {"ok": []}},
    },
}


class Bank:
    def __init__(self) -> None:
        self.paid: list[str] = []

    def handlers(self) -> dict[str, Any]:
        def prepare(ctx: WorkflowContext) -> HandlerResult:
            return HandlerResult(outputs=["ok"], workflow_updates={"amount": 100})

        def ask(ctx: WorkflowContext) -> HandlerResult:
            answer = ctx.state.workflow.get("__resume__")
            if answer is None:
                return HandlerResult(outputs=[], waiting=True, waiting_prompt="approve?")
            return HandlerResult(outputs=["yes" if answer["ok"] else "no"])

        def pay(ctx: WorkflowContext) -> HandlerResult:
            self.paid.append(ctx.run_id)
            return HandlerResult(outputs=["ok"])

        return {"prepare": prepare, "ask": ask, "pay": pay}


def engine(bank: Bank, key: bytes | None = KEY, **kw: Any) -> WorkflowEngine:
    return WorkflowEngine(APPROVAL, bank.handlers(), checkpoint_key=key, **kw)


def waiting_checkpoint(bank: Bank) -> dict[str, Any]:
    result = engine(bank).run(run_id="order-1")
    assert result.waiting and result.checkpoint is not None
    return result.checkpoint.to_dict()


def test_a_signed_checkpoint_resumes_after_a_round_trip_through_json() -> None:
    bank = Bank()
    travelled = json.loads(json.dumps(waiting_checkpoint(bank)))
    assert travelled["zeroflow"]["signature"].startswith("hmac-sha256:")
    done = engine(bank).run_from_checkpoint(travelled, {"ok": True})
    assert done.success and bank.paid == ["order-1"]


def test_a_checkpoint_edited_to_skip_the_approval_is_refused() -> None:
    bank = Bank()
    crafted = waiting_checkpoint(bank)
    crafted["ready_now"] = ["pay"]
    crafted["status"] = "running"
    with pytest.raises(InvalidCheckpointError, match="changed after it was signed"):
        engine(bank).run_from_checkpoint(crafted)
    assert bank.paid == []


def test_a_state_edit_is_refused() -> None:
    bank = Bank()
    crafted = waiting_checkpoint(bank)
    crafted["state"]["workflow"]["amount"] = 1_000_000
    with pytest.raises(InvalidCheckpointError):
        engine(bank).run_from_checkpoint(crafted, {"ok": True})
    assert bank.paid == []


def test_an_unsigned_checkpoint_is_refused() -> None:
    bank = Bank()
    unsigned = waiting_checkpoint(bank)
    del unsigned["zeroflow"]["signature"]
    with pytest.raises(InvalidCheckpointError, match="not signed"):
        engine(bank).run_from_checkpoint(unsigned, {"ok": True})
    plain = engine(bank, key=None).run(run_id="order-2").checkpoint
    assert plain is not None
    with pytest.raises(InvalidCheckpointError, match="not signed"):
        engine(bank).run_from_checkpoint(plain, {"ok": True})
    assert bank.paid == []


def test_a_checkpoint_signed_with_another_key_is_refused() -> None:
    bank = Bank()
    theirs = engine(bank, key=b"x" * 32).run(run_id="order-1").checkpoint
    assert theirs is not None
    with pytest.raises(InvalidCheckpointError):
        engine(bank).run_from_checkpoint(theirs, {"ok": True})


def test_checkpoint_events_carry_signed_snapshots() -> None:
    bank = Bank()
    heard = Recorder()
    engine(bank, event_callback=heard).run(run_id="order-1")
    last = heard.of("checkpoint")[-1].data["state"]
    done = engine(bank).run_from_checkpoint(json.loads(json.dumps(last)), {"ok": True})
    assert done.success and bank.paid == ["order-1"]


@pytest.mark.parametrize("kind", ["memory", "json", "sqlite"])
def test_stored_runs_are_signed_and_resume_by_id(kind: str, tmp_path: Path) -> None:
    bank = Bank()
    store = make_store(kind, tmp_path)
    engine(bank, store=store).run(run_id="order-1")
    stored = store.load_snapshot("order-1")
    assert stored.extra["signature"].startswith("hmac-sha256:")
    done = engine(bank, store=store).resume("order-1", resume_input={"ok": True})
    assert done.success and bank.paid == ["order-1"]
    forked = engine(bank, store=store).fork("order-1", 1, new_run_id="order-1b")
    assert forked.extra["signature"].startswith("hmac-sha256:")


def test_a_run_edited_in_its_store_folder_is_refused(tmp_path: Path) -> None:
    bank = Bank()
    store = make_store("json", tmp_path)
    engine(bank, store=store).run(run_id="order-1")
    folder = tmp_path / "runs" / "order-1"
    snap = store.load_snapshot("order-1").to_dict()
    snap["ready_now"] = ["pay"]
    snap["status"] = "running"
    # An attacker with write access to the folder replaces the snapshot outright.
    for journal in (folder / "journal").glob("*") if (folder / "journal").exists() else ():
        journal.unlink()
    (folder / "snapshot.json").write_text(json.dumps(snap))
    with pytest.raises(InvalidCheckpointError):
        engine(bank, store=store).resume("order-1")
    with pytest.raises(InvalidCheckpointError):
        engine(bank, store=store).load_snapshot("order-1")
    assert bank.paid == []


def test_a_short_or_non_bytes_key_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        engine(Bank(), key=b"short")
    with pytest.raises(TypeError, match="must be bytes"):
        engine(Bank(), key="a string key" * 3)  # type: ignore[arg-type]


# ---------------------------------------------------------------- crafted snapshots, no key


@pytest.mark.parametrize(
    "field, value",
    [
        ("ready_now", ["nope"]),
        ("ready_next_wave", ["nope"]),
        ("arrivals", {"join:nope": ["ask"]}),
        ("arrivals", {"join:pay": ["nope"]}),
        ("zeroflow", {"waiting": {"nope": {"prompt": "x"}}}),
    ],
)
def test_a_snapshot_naming_an_unknown_node_is_an_invalid_checkpoint(field: str, value: Any) -> None:
    bank = Bank()
    crafted = engine(bank, key=None).run(run_id="order-1").checkpoint
    assert crafted is not None
    data = crafted.to_dict()
    data[field] = value
    with pytest.raises(InvalidCheckpointError, match="nope"):
        engine(bank, key=None).run_from_checkpoint(data, {"ok": True})
    assert bank.paid == []


def test_a_damaged_redrive_record_is_an_invalid_checkpoint() -> None:
    def boom(ctx: WorkflowContext) -> HandlerResult:
        raise RuntimeError("down")

    handlers = {**Bank().handlers(), "prepare": boom}
    failed = WorkflowEngine(APPROVAL, handlers).run(run_id="order-1").checkpoint
    assert isinstance(failed, RunSnapshot) and failed.status == "failed"
    data = failed.to_dict()
    data["zeroflow"]["redrive"] = {"wave": 1}
    with pytest.raises(InvalidCheckpointError, match="redrive record"):
        WorkflowEngine(APPROVAL, handlers).redrive(data)
    data["zeroflow"]["redrive"] = {
        "wave": 1,
        "ready_now": ["nope"],
        "ready_next_wave": [],
        "arrivals": {},
        "executed_this_wave": [],
    }
    with pytest.raises(InvalidCheckpointError, match="nope"):
        WorkflowEngine(APPROVAL, handlers).redrive(data)


def test_a_payload_passed_where_the_node_goes_is_a_type_error_naming_both(tmp_path: Path) -> None:
    bank = Bank()
    store = make_store("memory", tmp_path)
    engine(bank, key=None, store=store).run(run_id="order-1")
    with pytest.raises(TypeError, match="resume_input="):
        engine(bank, key=None, store=store).resume("order-1", {"ok": True})  # type: ignore[arg-type]
    done = engine(bank, key=None, store=store).resume("order-1", resume_input={"ok": True})
    assert done.success and bank.paid == ["order-1"]
