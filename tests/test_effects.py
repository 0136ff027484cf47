"""ctx.effect / ctx.aeffect / ctx.idempotency_key: side effects that happen once per visit."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from _support import killed_in_child
from zeroflow import (
    EVENT_EFFECT_DONE,
    EVENT_EFFECT_FAILED,
    EVENT_EFFECT_INTENT,
    ErrorCode,
    Event,
    HandlerResult,
    InMemoryWorkflowStore,
    WorkflowContext,
    WorkflowEngine,
    WorkflowState,
)
from zeroflow._cli import main as cli_main
from zeroflow.stores import SqliteWorkflowStore
from zeroflow.testing import STORE_CHECKS, crash_everywhere
from zeroflow.testing.kit import check_effects_kept

PAY: dict[str, Any] = {
    "workflow_name": "pay",
    "default_entry_node": "price",
    "nodes": {
        "price": {"handler": "price", "outputs": {"ok": [{"target_node": "pay"}]}},
        "pay": {
            "handler": "pay",
            "outputs": {"ok": [{"target_node": "ship"}]},
            "on_error": [{"codes": ["EFFECT_UNCERTAIN"], "target_node": "reconcile"}],
        },
        "ship": {"handler": "ship", "outputs": {"ok": []}},
        "reconcile": {"handler": "reconcile", "outputs": {"ok": []}},
    },
}


class Bank:
    """The outside world: counts each charge (in a file, so forked children count too)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.calls: list[int] = []

    def charge(self, amount: int) -> dict[str, Any]:
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(f"{amount}\n")
        self.calls.append(amount)
        return {"charge_id": f"ch-{amount}", "amount": amount}

    def count(self) -> int:
        if self.path is not None:
            return len(self.path.read_text().splitlines()) if self.path.exists() else 0
        return len(self.calls)


def handlers(bank: Bank, *, after: Callable[[], None] | None = None) -> dict[str, Any]:
    def price(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(["ok"], workflow_updates={"amount": 42})

    def pay(ctx: WorkflowContext) -> HandlerResult:
        receipt = ctx.effect("charge", bank.charge, ctx.state.workflow["amount"])
        if after is not None:
            after()
        return HandlerResult(["ok"], workflow_updates={"receipt": receipt})

    def ship(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(["ok"], workflow_updates={"shipped": True})

    def reconcile(ctx: WorkflowContext) -> HandlerResult:
        err = ctx.state.workflow["__error__"]
        return HandlerResult(["ok"], workflow_updates={"reconciled": err["details"]["key"]})

    return {"price": price, "pay": pay, "ship": ship, "reconcile": reconcile}


# ---------------------------------------------------------------- the basics


def test_an_effect_returns_its_receipt_and_emits_intent_and_done() -> None:
    bank = Bank()
    events: list[Event] = []
    engine = WorkflowEngine(
        PAY, handlers(bank), store=InMemoryWorkflowStore(), event_callback=events.append
    )
    result = engine.run({}, run_id="r1")
    assert result.status == "succeeded", result.error
    assert result.state.workflow["receipt"] == {"charge_id": "ch-42", "amount": 42}
    assert bank.calls == [42]
    kinds = [(e.kind, e.data.get("key")) for e in events if e.kind.startswith("effect:")]
    assert kinds == [(EVENT_EFFECT_INTENT, "charge"), (EVENT_EFFECT_DONE, "charge")]
    done = next(e for e in events if e.kind == EVENT_EFFECT_DONE)
    assert done.data["receipt"] == {"charge_id": "ch-42", "amount": 42} and done.node == "pay"
    intent = next(e for e in events if e.kind == EVENT_EFFECT_INTENT)
    assert intent.data["idempotency_key"] == "r1/pay/2"
    # The visit is over: the stored run no longer carries the node's effects.
    assert "effects" not in engine.load_snapshot("r1").extra


def test_effects_work_without_a_store() -> None:
    bank = Bank()
    events: list[Event] = []
    result = WorkflowEngine(PAY, handlers(bank), event_callback=events.append).run({})
    assert result.status == "succeeded" and bank.calls == [42]
    assert [e.kind for e in events if e.kind.startswith("effect:")] == [
        EVENT_EFFECT_INTENT,
        EVENT_EFFECT_DONE,
    ]


def test_retries_reuse_the_receipt() -> None:
    bank = Bank()
    attempts: list[int] = []
    keys: list[str] = []
    defn = json.loads(json.dumps(PAY))
    defn["nodes"]["pay"]["run_policy"] = {"max_retries": 2, "retry_sleep_seconds": 0}

    def pay(ctx: WorkflowContext) -> HandlerResult:
        receipt = ctx.effect("charge", bank.charge, 7)
        keys.append(ctx.idempotency_key)
        attempts.append(ctx.attempt)
        receipt["mutated"] = True  # a private copy: the record keeps the original
        if ctx.attempt < 3:
            raise ConnectionError("the shipping API after the charge is down")
        return HandlerResult(["ok"], workflow_updates={"receipt": receipt})

    hs = handlers(bank)
    hs["pay"] = pay
    result = WorkflowEngine(PAY | {"nodes": defn["nodes"]}, hs, store=InMemoryWorkflowStore()).run(
        {}, run_id="r"
    )
    assert result.status == "succeeded", result.error
    assert attempts == [1, 2, 3] and bank.calls == [7]
    assert len(set(keys)) == 1 and keys[0] == "r/pay/2"
    assert result.state.workflow["receipt"] == {"charge_id": "ch-7", "amount": 7, "mutated": True}


def test_an_effect_that_raised_did_not_happen_and_a_retry_calls_it_again() -> None:
    calls: list[int] = []
    events: list[Event] = []
    defn = json.loads(json.dumps(PAY))
    defn["nodes"]["pay"]["run_policy"] = {"max_retries": 1, "retry_sleep_seconds": 0}

    def flaky(n: int) -> dict[str, int]:
        calls.append(n)
        if len(calls) == 1:
            raise TimeoutError("declined at the gateway")
        return {"ok": n}

    def pay(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(["ok"], workflow_updates={"r": ctx.effect("charge", flaky, 1)})

    hs = handlers(Bank()) | {"pay": pay}
    store = InMemoryWorkflowStore()
    result = WorkflowEngine(defn, hs, store=store, event_callback=events.append).run({}, run_id="r")
    assert result.status == "succeeded" and calls == [1, 1]
    kinds = [e.kind for e in events if e.kind.startswith("effect:")]
    assert kinds == [
        EVENT_EFFECT_INTENT,
        EVENT_EFFECT_FAILED,
        EVENT_EFFECT_INTENT,
        EVENT_EFFECT_DONE,
    ]


def test_a_receipt_json_cannot_hold_fails_the_node_with_state_serialization() -> None:
    calls: list[int] = []

    def charge() -> object:
        calls.append(1)
        return object()

    defn = json.loads(json.dumps(PAY))
    defn["nodes"]["pay"]["run_policy"] = {"max_retries": 3, "retry_sleep_seconds": 0}

    def pay(ctx: WorkflowContext) -> HandlerResult:
        ctx.effect("charge", charge)
        raise AssertionError("not reached")

    hs = handlers(Bank()) | {"pay": pay}
    result = WorkflowEngine(defn, hs, store=InMemoryWorkflowStore()).run({}, run_id="r")
    assert result.status == "failed"
    assert result.error is not None and result.error.code == ErrorCode.STATE_SERIALIZATION
    assert result.error.details["key"] == "charge" and calls == [1]  # not retried
    # The effect happened but left no receipt: a redrive must not call it blindly.
    assert result.checkpoint is not None
    assert result.checkpoint.extra["effects"]["pay"]["keys"]["charge"] == {"state": "intent"}


def test_a_context_built_by_hand_just_calls_the_function() -> None:
    ctx = WorkflowContext("wf", "h", "r", "a", {}, 3, 1, WorkflowState(), {}, None, print)
    assert ctx.effect("k", lambda x: x + 1, 1) == 2
    assert ctx.idempotency_key == "r/a/3"


def test_aeffect_records_an_async_function_once() -> None:
    bank = Bank()

    async def charge(n: int) -> dict[str, int]:
        bank.calls.append(n)
        return {"id": n}

    async def pay(ctx: WorkflowContext) -> HandlerResult:
        first = await ctx.aeffect("charge", charge, 5)
        again = await ctx.aeffect("charge", charge, 5)  # same key, same visit: the receipt
        return HandlerResult(["ok"], workflow_updates={"r": [first, again]})

    hs = handlers(bank) | {"pay": pay}
    engine = WorkflowEngine(PAY, hs, store=InMemoryWorkflowStore())
    result = asyncio.run(engine.arun({}, run_id="a"))
    assert result.status == "succeeded", result.error
    assert bank.calls == [5] and result.state.workflow["r"] == [{"id": 5}, {"id": 5}]


# ---------------------------------------------------------------- uncertain intents


def test_an_intent_without_a_receipt_fails_effect_uncertain_to_the_catcher() -> None:
    """A process that died after the intent: the stored run holds an intent, no receipt."""
    bank = Bank()
    store = InMemoryWorkflowStore()

    class Died(BaseException):
        pass

    def dies(amount: int) -> dict[str, Any]:
        bank.charge(amount)
        raise Died()  # a BaseException: the process is gone, nothing is withdrawn

    def pay(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(["ok"], workflow_updates={"r": ctx.effect("charge", dies, 42)})

    with pytest.raises(Died):
        WorkflowEngine(PAY, handlers(bank) | {"pay": pay}, store=store).run({}, run_id="u")
    stored = store.load_snapshot("u")
    assert stored.extra["effects"]["pay"]["keys"]["charge"] == {"state": "intent"}
    assert stored.ready_now == ["pay"] and stored.trace == ["price"]
    store.break_lease("u")
    result = WorkflowEngine(PAY, handlers(bank), store=store).resume("u")
    assert result.status == "succeeded", result.error
    assert result.trace == ["price", "pay", "reconcile"]
    assert result.state.workflow["reconciled"] == "charge"
    assert result.state.workflow["__error__"]["code"] == ErrorCode.EFFECT_UNCERTAIN
    assert bank.calls == [42]  # never called blindly again
    assert "effects" not in store.load_snapshot("u").extra  # caught: the visit is over


def test_an_uncaught_uncertain_effect_fails_the_run_and_a_redrive_fails_again() -> None:
    bank = Bank()
    defn = json.loads(json.dumps(PAY))
    del defn["nodes"]["pay"]["on_error"]
    store = InMemoryWorkflowStore()

    def pay(ctx: WorkflowContext) -> HandlerResult:
        raise AssertionError("never reached")

    engine = WorkflowEngine(defn, handlers(bank), store=store)
    engine.run({}, run_id="x")
    snap = store.load_snapshot("x")
    assert snap.status == "succeeded"
    # A stored run (from a crashed process) whose pay node holds a bare intent:
    snap.status = "running"
    snap.ready_now = ["pay"]
    snap.trace = ["price"]
    snap.step = 1
    snap.extra["effects"] = {"pay": {"visit": 2, "keys": {"charge": {"state": "intent"}}}}
    failed = engine.run_from_checkpoint(snap)
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.code == "EFFECT_UNCERTAIN" and failed.error.details == {"key": "charge"}
    again = engine.redrive("x")
    assert again.status == "failed" and again.error is not None
    assert again.error.code == "EFFECT_UNCERTAIN" and bank.calls == [42]  # the first run's only


# ---------------------------------------------------------------- resume, redrive, visits


def test_a_redrive_of_a_failed_node_returns_the_receipt_and_keeps_the_idempotency_key() -> None:
    bank = Bank()
    keys: list[str] = []
    fail = [True]
    defn = json.loads(json.dumps(PAY))
    del defn["nodes"]["pay"]["on_error"]

    def pay(ctx: WorkflowContext) -> HandlerResult:
        keys.append(ctx.idempotency_key)
        receipt = ctx.effect("charge", bank.charge, 9)
        if fail[0]:
            raise RuntimeError("label printer jammed")
        return HandlerResult(["ok"], workflow_updates={"receipt": receipt})

    store = InMemoryWorkflowStore()
    engine = WorkflowEngine(defn, handlers(bank) | {"pay": pay}, store=store)
    assert engine.run({}, run_id="d").status == "failed"
    assert store.load_snapshot("d").extra["effects"]["pay"]["keys"]["charge"]["state"] == "done"
    fail[0] = False
    done = engine.redrive("d")
    assert done.status == "succeeded", done.error
    assert bank.calls == [9] and done.state.workflow["receipt"]["charge_id"] == "ch-9"
    assert keys == ["d/pay/2", "d/pay/2"]


def test_the_idempotency_key_differs_on_the_next_visit_and_survives_a_pause() -> None:
    loop_def: dict[str, Any] = {
        "workflow_name": "loop",
        "default_entry_node": "send",
        "nodes": {
            "send": {
                "handler": "send",
                "outputs": {"again": [{"target_node": "send", "is_loopback": True}], "ok": []},
            },
        },
    }
    keys: list[tuple[int, str]] = []
    sent: list[str] = []

    def send(ctx: WorkflowContext) -> HandlerResult:
        key = ctx.idempotency_key
        ctx.effect("mail", sent.append, key)
        keys.append((ctx.step, key))
        visits = ctx.node_state.get("n", 0) + 1
        return HandlerResult(["again" if visits < 3 else "ok"], node_updates={"n": visits})

    result = WorkflowEngine(loop_def, {"send": send}, store=InMemoryWorkflowStore()).run(
        {}, run_id="L"
    )
    assert result.status == "succeeded", result.error
    assert [k for _, k in keys] == ["L/send/1", "L/send/2", "L/send/3"]
    assert sent == ["L/send/1", "L/send/2", "L/send/3"]


def test_a_node_that_waits_keeps_its_receipts_for_its_resume() -> None:
    bank = Bank()
    keys: list[str] = []
    defn: dict[str, Any] = {
        "workflow_name": "ask",
        "default_entry_node": "pay",
        "nodes": {"pay": {"handler": "pay", "outputs": {"ok": []}}},
    }

    def pay(ctx: WorkflowContext) -> HandlerResult:
        keys.append(ctx.idempotency_key)
        ctx.effect("charge", bank.charge, 1)
        if "__resume__" not in ctx.state.workflow:
            return HandlerResult([], waiting=True, waiting_prompt="confirm?")
        return HandlerResult(["ok"])

    store = InMemoryWorkflowStore()
    engine = WorkflowEngine(defn, {"pay": pay}, store=store)
    assert engine.run({}, run_id="w").status == "waiting"
    done = engine.resume("w", resume_input={"yes": True})
    assert done.status == "succeeded" and bank.calls == [1]
    assert keys[0] == keys[1] == "w/pay/1"


# ---------------------------------------------------------------- maps and batches


def test_effects_inside_map_items_are_kept_per_item() -> None:
    defn: dict[str, Any] = {
        "workflow_name": "m",
        "default_entry_node": "each",
        "nodes": {
            "each": {
                "handler": "item",
                "map": {"over": "input.items", "max_concurrency": 2},
                "outputs": {"ok": []},
            }
        },
    }
    sent: list[Any] = []
    keys: list[str] = []
    fail_once = {1}

    def item(ctx: WorkflowContext) -> HandlerResult:
        keys.append(ctx.idempotency_key)
        r = ctx.effect("send", lambda v: sent.append(v) or {"sent": v}, ctx.item)
        if ctx.map_index in fail_once:
            fail_once.discard(ctx.map_index)
            raise RuntimeError("after the send")
        return HandlerResult(["ok"], node_updates=r)

    defn["nodes"]["each"]["run_policy"] = {"max_retries": 1, "retry_sleep_seconds": 0}
    result = WorkflowEngine(defn, {"item": item}, store=InMemoryWorkflowStore()).run(
        {"items": ["a", "b", "c"]}, run_id="M"
    )
    assert result.status == "succeeded", result.error
    assert sorted(sent) == ["a", "b", "c"]
    assert result.state.node["each"]["results"] == [{"sent": "a"}, {"sent": "b"}, {"sent": "c"}]
    assert set(keys) == {"M/each/1/0", "M/each/1/1", "M/each/1/2"}


def test_effects_in_a_parallel_batch_are_recorded_with_the_batch_still_queued() -> None:
    defn: dict[str, Any] = {
        "workflow_name": "par",
        "default_entry_node": "start",
        "engine_policy": {"max_concurrency": 2},
        "nodes": {
            "start": {
                "handler": "start",
                "outputs": {"ok": [{"target_node": "a"}, {"target_node": "b"}]},
            },
            "a": {"handler": "side", "outputs": {"ok": []}},
            "b": {"handler": "side", "outputs": {"ok": []}},
        },
    }
    seen: list[tuple[str, list[str], int]] = []
    store = InMemoryWorkflowStore()

    def side(ctx: WorkflowContext) -> HandlerResult:
        r = ctx.effect("poke", lambda: {"node": ctx.node_name})
        return HandlerResult(["ok"], workflow_updates={ctx.node_name: r})

    def start(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(["ok"])

    def spy(event: Event) -> None:
        if event.kind == EVENT_EFFECT_DONE and event.node == "b":
            snap = store.load_snapshot("P")
            seen.append((event.node, snap.ready_now, snap.step))

    engine = WorkflowEngine(defn, {"start": start, "side": side}, store=store, event_callback=spy)
    result = engine.run({}, run_id="P")
    assert result.status == "succeeded", result.error
    assert result.state.workflow["a"] == {"node": "a"} and result.state.workflow["b"] == {
        "node": "b"
    }
    # b's intent was stored with the batch still queued, before any of it settled.
    assert seen and all(q[:2] == ["a", "b"] and step == 1 for _, q, step in seen), seen
    assert "effects" not in store.load_snapshot("P").extra


# ---------------------------------------------------------------- crashes


def _make_engine(bank: Bank) -> Callable[[Any], WorkflowEngine]:
    return lambda store: WorkflowEngine(PAY, handlers(bank), store=store)


def test_crash_everywhere_inprocess_never_repeats_the_effect() -> None:
    bank = Bank()
    stores: dict[str, InMemoryWorkflowStore] = {}
    counts: dict[str, int] = {}
    points: list[int] = []

    def make_store(name: str) -> InMemoryWorkflowStore:
        if name not in stores:
            stores[name] = InMemoryWorkflowStore()
            points.append(bank.count())
        return stores[name]

    report = crash_everywhere(_make_engine(bank), make_store, {})
    assert report.status == "succeeded" and report.points >= 8
    # Charges per crashed-and-resumed run: the store is made right before each run starts.
    boundaries = [*points[1:], bank.count()]
    for i, outcome in enumerate(report.outcomes):
        counts[outcome.where] = boundaries[i + 1] - boundaries[i]
    assert set(counts.values()) <= {0, 1}, counts
    uncertain = [o for o in report.outcomes if not o.ok]
    # Only the two crashes between the intent and the receipt end elsewhere: in the catcher
    # (after the intent's commit: not charged; before the receipt's commit: charged once).
    assert [(o.where, counts[o.where]) for o in uncertain] == [
        (uncertain[0].where, 0),
        (uncertain[1].where, 1),
    ]
    assert uncertain[0].where.startswith("after") and uncertain[1].where.startswith("before")
    assert uncertain[1].point == uncertain[0].point + 1
    assert all(o.same_status and o.error is None and not o.same_trace for o in uncertain)
    # Everywhere else the charge happened exactly once and the run ended as uninterrupted.
    assert all(o.ok and counts[o.where] == 1 for o in report.outcomes if o not in uncertain)


@pytest.mark.skipif(sys.platform == "win32", reason="needs os.fork")
def test_a_sigkill_between_the_call_and_its_receipt_is_effect_uncertain(tmp_path: Path) -> None:
    bank = Bank(tmp_path / "charges.txt")
    db = tmp_path / "runs.db"

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def charge_then_die(amount: int) -> dict[str, Any]:
        bank.charge(amount)
        die()
        raise AssertionError("dead")

    def pay(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(
            ["ok"], workflow_updates={"r": ctx.effect("charge", charge_then_die, 42)}
        )

    assert killed_in_child(
        lambda: WorkflowEngine(
            PAY, handlers(bank) | {"pay": pay}, store=SqliteWorkflowStore(db)
        ).run({}, run_id="k")
    )
    assert bank.count() == 1
    store = SqliteWorkflowStore(db)
    result = WorkflowEngine(PAY, handlers(bank), store=store).resume("k")
    assert result.status == "succeeded", result.error
    assert result.trace == ["price", "pay", "reconcile"]
    assert result.state.workflow["__error__"]["code"] == "EFFECT_UNCERTAIN"
    assert result.state.workflow["__error__"]["details"] == {"key": "charge"}
    assert bank.count() == 1


@pytest.mark.skipif(sys.platform == "win32", reason="needs os.fork")
def test_a_sigkill_after_the_receipt_returns_it_without_calling_again(tmp_path: Path) -> None:
    bank = Bank(tmp_path / "charges.txt")
    db = tmp_path / "runs.db"

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    assert killed_in_child(
        lambda: WorkflowEngine(PAY, handlers(bank, after=die), store=SqliteWorkflowStore(db)).run(
            {}, run_id="k"
        )
    )
    assert bank.count() == 1
    store = SqliteWorkflowStore(db)
    stored = store.load_snapshot("k")
    assert stored.extra["effects"]["pay"]["keys"]["charge"]["state"] == "done"
    result = WorkflowEngine(PAY, handlers(bank), store=store).resume("k")
    assert result.status == "succeeded", result.error
    assert result.trace == ["price", "pay", "ship"]
    assert result.state.workflow["receipt"] == {"charge_id": "ch-42", "amount": 42}
    assert bank.count() == 1


# ---------------------------------------------------------------- shown, forked, kept


FAILING = json.loads(json.dumps(PAY))
del FAILING["nodes"]["pay"]["on_error"]


def _failed_after_charge(store: Any, bank: Bank) -> WorkflowEngine:
    defn = FAILING

    def pay(ctx: WorkflowContext) -> HandlerResult:
        ctx.effect("charge", bank.charge, 3)
        raise RuntimeError("after the charge")

    engine = WorkflowEngine(defn, handlers(bank) | {"pay": pay}, store=store)
    assert engine.run({}, run_id="f").status == "failed"
    return engine


def test_runs_show_lists_the_effects_of_a_run(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    _failed_after_charge(SqliteWorkflowStore(db), Bank())
    out = io.StringIO()
    sys_stdout = sys.stdout
    try:
        sys.stdout = out
        code = cli_main(["runs", "show", "f", "--store", str(db)])
    finally:
        sys.stdout = sys_stdout
    text = out.getvalue()
    assert code == 0, text
    assert (
        "effects:" in text
        and 'pay charge: done, receipt {"amount": 3, "charge_id": "ch-3"}' in text
    )


def test_a_fork_drops_open_effects_unless_asked_to_keep_them() -> None:
    bank = Bank()
    store = InMemoryWorkflowStore()
    engine = _failed_after_charge(store, bank)
    # The last checkpoint at step 1 (price done, pay queued) holds pay's receipt.
    dropped = engine.fork("f", 1, "fork-drop")
    assert "effects" not in dropped.extra and dropped.ready_now == ["pay"]
    kept = engine.fork("f", 1, "fork-keep", keep_effects=True)
    assert kept.extra["effects"]["pay"]["keys"]["charge"]["receipt"]["charge_id"] == "ch-3"
    runner = WorkflowEngine(FAILING, handlers(bank), store=store)
    done = runner.run_from_checkpoint(store.load_snapshot("fork-keep"))
    assert done.status == "succeeded" and done.state.workflow["receipt"]["charge_id"] == "ch-3"
    assert bank.calls == [3]  # the kept receipt: not charged again
    assert runner.run_from_checkpoint(store.load_snapshot("fork-drop")).status == "succeeded"
    assert bank.calls == [3, 42]  # a fork is a new run and does its own effects


def test_the_conformance_kit_checks_that_stores_keep_effects(tmp_path: Path) -> None:
    assert check_effects_kept in STORE_CHECKS
    check_effects_kept(InMemoryWorkflowStore)
    check_effects_kept(
        lambda: SqliteWorkflowStore(tmp_path / f"{len(list(tmp_path.iterdir()))}.db")
    )
