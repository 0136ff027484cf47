"""The store's event log equals the callback stream, whatever path a run takes.

The engine now holds a call's events and hands them to the store in one
``append_events`` call per written checkpoint; these runs check that nothing
is lost, doubled or reordered on the way, for every shipped store.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from _support import FakeClock, Recorder, edge, make_store, stored, task
from zeroflow import HandlerResult, WorkflowContext, WorkflowEngine
from zeroflow.stores._common import event_dict

KINDS = ["memory", "json", "sqlite", "postgres"]
SRC = Path(__file__).resolve().parent.parent / "src"


def logged(rec: Recorder, run_id: str) -> list[dict[str, Any]]:
    """What the store should hold: the callback's events of the run, checkpoints as steps."""
    return [event_dict(e) for e in rec.events if e.run_id == run_id and "subflow" not in e.data]


def note(ctx: WorkflowContext, **data: Any) -> None:
    ctx.emit("note", {"at": ctx.node_name, **data})


# ---------------------------------------------------------------- definitions

WAITING = {
    "workflow_name": "waiting",
    "default_entry_node": "a",
    "nodes": {
        "a": task("a", "ask"),
        "ask": {"kind": "wait", "wait": {"prompt": "ok?"}, "outputs": {"ok": edge("b")}},
        "b": task("b"),
    },
}

RETRY_AND_CATCH = {
    "workflow_name": "retry_catch",
    "default_entry_node": "a",
    "default_error_node": "fix",
    "nodes": {
        "a": {
            "handler": "flaky",
            "outputs": {"ok": edge("b")},
            "run_policy": {"max_retries": 2, "retry_sleep_seconds": 0.5},
        },
        "b": task("boom", "c"),
        "c": task("b"),
        "fix": task("b"),
    },
}

FAN = {
    "workflow_name": "fan",
    "default_entry_node": "s",
    "engine_policy": {"max_concurrency": 3},
    "nodes": {
        "s": task("b", "x", "y", "z"),
        "x": task("branch", "j"),
        "y": task("branch", "j"),
        "z": task("branch", "j"),
        "j": {
            "handler": "b",
            "outputs": {"ok": []},
            "join": {"mode": "and", "wait_for": ["x", "y", "z"]},
        },
    },
}

MAP = {
    "workflow_name": "map",
    "default_entry_node": "each",
    "nodes": {
        "each": {
            "handler": "item",
            "map": {"over": "input.items", "max_concurrency": 2},
            "outputs": {"ok": edge("b")},
        },
        "b": task("b"),
    },
}

PARENT = {
    "workflow_name": "parent",
    "default_entry_node": "a",
    "nodes": {
        "a": task("a", "sub"),
        "sub": {"subflow": {"workflow": "child", "input": {}}, "outputs": {"ok": edge("b")}},
        "b": task("b"),
    },
}

CHILD = {
    "workflow_name": "child",
    "default_entry_node": "c1",
    "nodes": {
        "c1": task("a", "ask"),
        "ask": {"kind": "wait", "wait": {"prompt": "child?"}, "outputs": {"ok": edge("c2")}},
        "c2": task("b"),
    },
}


def a(ctx: WorkflowContext) -> HandlerResult:
    note(ctx)
    return HandlerResult(["ok"], workflow_updates={"a": ctx.step})


def b(ctx: WorkflowContext) -> HandlerResult:
    note(ctx)
    return HandlerResult(["ok"], node_updates={"seen": True})


def flaky_handler() -> Any:
    calls = {"n": 0}

    def flaky(ctx: WorkflowContext) -> HandlerResult:
        calls["n"] += 1
        note(ctx, attempt=ctx.attempt)
        if calls["n"] < 3:
            raise RuntimeError(f"flaky {calls['n']}")
        return HandlerResult(["ok"])

    return flaky


def boom(ctx: WorkflowContext) -> HandlerResult:
    note(ctx)
    raise ValueError("boom")


def branch(ctx: WorkflowContext) -> HandlerResult:
    note(ctx)
    return HandlerResult(["ok"], node_updates={"v": ctx.node_name})


def item(ctx: WorkflowContext) -> HandlerResult:
    note(ctx, index=ctx.map_index)
    return HandlerResult(["ok"], node_updates={"sq": ctx.item * ctx.item})


def engine(store: Any, rec: Recorder, definition: dict[str, Any], **kw: Any) -> WorkflowEngine:
    clock = FakeClock()
    handlers = {
        "a": a,
        "b": b,
        "flaky": flaky_handler(),
        "boom": boom,
        "branch": branch,
        "item": item,
    }
    return WorkflowEngine(
        definition,
        handlers,
        event_callback=rec,
        store=store,
        clock=clock.time,
        sleep=clock.sleep,
        **kw,
    )


# ---------------------------------------------------------------- runs


@pytest.mark.parametrize("kind", KINDS)
def test_pause_and_resume_log_equals_the_callback_stream(kind: str, store_of: Any) -> None:
    store, rec = store_of(kind), Recorder()
    eng = engine(store, rec, WAITING)
    first = eng.run({}, run_id="r")
    assert first.waiting
    assert stored(store, "r") == logged(rec, "r")
    done = eng.resume("r", resume_input={"yes": True})
    assert done.success
    assert stored(store, "r") == logged(rec, "r")


@pytest.mark.parametrize("kind", KINDS)
def test_retries_and_error_routing_log_equals_the_callback_stream(kind: str, store_of: Any) -> None:
    store, rec = store_of(kind), Recorder()
    result = engine(store, rec, RETRY_AND_CATCH).run({}, run_id="r")
    assert result.success, result.error
    assert [e.kind for e in rec.of("node:retry")] == ["node:retry"] * 2
    assert stored(store, "r") == logged(rec, "r")


@pytest.mark.parametrize("kind", KINDS)
def test_parallel_batch_log_equals_the_callback_stream(kind: str, store_of: Any) -> None:
    store, rec = store_of(kind), Recorder()
    result = engine(store, rec, FAN).run({}, run_id="r")
    assert result.success, result.error
    assert stored(store, "r") == logged(rec, "r")


@pytest.mark.parametrize("kind", KINDS)
def test_map_log_equals_the_callback_stream(kind: str, store_of: Any) -> None:
    store, rec = store_of(kind), Recorder()
    result = engine(store, rec, MAP).run({"items": [1, 2, 3, 4, 5]}, run_id="r")
    assert result.success, result.error
    assert len(rec.of("note")) == 6  # five items, then b
    assert stored(store, "r") == logged(rec, "r")


@pytest.mark.parametrize("kind", KINDS)
def test_paused_subflow_log_equals_the_callback_stream(kind: str, store_of: Any) -> None:
    store, rec = store_of(kind), Recorder()
    eng = engine(store, rec, PARENT, subflows={"child": CHILD})
    assert eng.run({}, run_id="r").waiting
    assert eng.resume("r", resume_input="go").success
    assert stored(store, "r") == logged(rec, "r")


@pytest.mark.parametrize("kind", KINDS)
def test_cancel_log_equals_the_callback_stream(kind: str, store_of: Any) -> None:
    store, rec = store_of(kind), Recorder()
    holder: dict[str, WorkflowEngine] = {}

    def cancels(ctx: WorkflowContext) -> HandlerResult:
        note(ctx)
        holder["e"].cancel()
        return HandlerResult(["ok"])

    definition = {
        "workflow_name": "c",
        "default_entry_node": "x",
        "nodes": {"x": task("cancels", "y"), "y": task("b")},
    }
    eng = holder["e"] = WorkflowEngine(
        definition, {"cancels": cancels, "b": b}, event_callback=rec, store=store
    )
    assert eng.run({}, run_id="r").cancelled
    assert stored(store, "r") == logged(rec, "r")
    assert eng.resume("r").success
    assert stored(store, "r") == logged(rec, "r")


@pytest.mark.parametrize("kind", KINDS)
def test_async_run_log_equals_the_callback_stream(kind: str, store_of: Any) -> None:
    store, rec = store_of(kind), Recorder()

    async def slow(ctx: WorkflowContext) -> HandlerResult:
        await asyncio.sleep(0)
        note(ctx)
        return HandlerResult(["ok"], workflow_updates={ctx.node_name: 1})

    definition = {
        "workflow_name": "async",
        "default_entry_node": "x",
        "engine_policy": {"max_concurrency": 2},
        "nodes": {"x": task("slow", "y", "z"), "y": task("slow"), "z": task("slow")},
    }
    eng = WorkflowEngine(definition, {"slow": slow}, event_callback=rec, store=store)
    assert asyncio.run(eng.arun({}, run_id="r")).success
    assert stored(store, "r") == logged(rec, "r")


@pytest.mark.parametrize("kind", KINDS)
def test_no_persisted_checkpoints_still_logs_every_event(kind: str, store_of: Any) -> None:
    store, rec = store_of(kind), Recorder()
    definition = {**WAITING, "engine_policy": {"persist_checkpoints": False}}
    eng = engine(store, rec, definition)
    first = eng.run({}, run_id="r")
    assert first.waiting
    assert stored(store, "r") == logged(rec, "r")
    assert eng.run_from_checkpoint(first.checkpoint, "yes").success
    assert stored(store, "r") == logged(rec, "r")


# ---------------------------------------------------------------- a kill inside a map node

KILLED_MAP = textwrap.dedent(
    """
    import os, signal, sys
    from zeroflow import HandlerResult, JsonFileWorkflowStore, WorkflowEngine
    from zeroflow.stores import SqliteWorkflowStore

    kind, path = sys.argv[1], sys.argv[2]
    store = JsonFileWorkflowStore(path) if kind == "json" else SqliteWorkflowStore(path)
    WF = {
        "workflow_name": "map",
        "default_entry_node": "each",
        "nodes": {
            "each": {"handler": "item", "map": {"over": "input.items"}, "outputs": {"ok": []}},
        },
    }

    def item(ctx):
        if ctx.map_index == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        ctx.emit("item:done", {"index": ctx.map_index})
        return HandlerResult(outputs=["ok"], node_updates={"sq": ctx.item * ctx.item})

    WorkflowEngine(WF, {"item": item}, store=store).run({"items": list(range(6))}, run_id="m")
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.parametrize("kind", ["json", "sqlite"])
def test_map_items_kept_by_a_quiet_checkpoint_keep_their_events(kind: str, tmp_path: Path) -> None:
    path = tmp_path / ("runs" if kind == "json" else "runs.db")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-c", KILLED_MAP, kind, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    store: Any = make_store(kind, tmp_path)
    snap = store.load_snapshot("m")
    kept = sorted(int(i) for i in snap.extra["map"]["each"]["results"])
    assert kept == [0, 1, 2]  # map progress reached the store: these items will not run again
    logged_items = [e.data["index"] for e in store.events("m") if e.kind == "item:done"]
    assert logged_items == kept  # ... so their events must be in the log by now


class _Abort(BaseException):
    """Not an ``Exception``: the engine does not turn it into a node failure."""


@pytest.mark.parametrize("kind", KINDS)
def test_a_call_aborted_mid_node_logs_up_to_its_last_checkpoint_like_a_crash(
    kind: str, store_of: Any
) -> None:
    store, rec = store_of(kind), Recorder()
    calls = {"n": 0}

    def aborts_once(ctx: WorkflowContext) -> HandlerResult:
        calls["n"] += 1
        note(ctx, call=calls["n"])
        if calls["n"] == 2:
            raise _Abort()
        return HandlerResult(["ok"], workflow_updates={ctx.node_name: calls["n"]})

    definition = {
        "workflow_name": "abort",
        "default_entry_node": "x",
        "nodes": {"x": task("h", "y"), "y": task("h", "z"), "z": task("h")},
    }
    eng = WorkflowEngine(definition, {"h": aborts_once}, event_callback=rec, store=store)
    with pytest.raises(_Abort):
        eng.run({}, run_id="r")
    seen = logged(rec, "r")
    last_checkpoint = max(i for i, e in enumerate(seen) if e["kind"] == "checkpoint")
    # the interrupted node's events (node:start, note) are dropped as a crash would drop them
    # (a store that takes events one by one, without append_events, keeps them)
    assert stored(store, "r") == seen[: last_checkpoint + 1]
    assert store.load_snapshot("r").trace == ["x"]
    assert store.latest_step("r") == 1
    result = eng.resume("r")
    assert result.success and result.trace == ["x", "y", "z"]
    resumed = logged(rec, "r")[len(seen) :]
    assert stored(store, "r")[-len(resumed) :] == resumed
    assert "store:recovered" not in [e["kind"] for e in stored(store, "r")]
