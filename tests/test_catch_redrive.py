"""Issue A: ``on_error`` catchers, redrive of failed and cancelled runs, status guards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from _support import Recorder, make_store, task
from zeroflow import (
    HandlerResult,
    InMemoryWorkflowStore,
    RunSnapshot,
    WorkflowContext,
    WorkflowEngine,
    WorkflowError,
)

# ---------------------------------------------------------------- helpers


def ok(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"], workflow_updates={f"ran_{ctx.node_name}": True})


class Switch:
    """A handler that fails (raising ``exc`` or returning ``error``) while ``on`` is set."""

    def __init__(
        self, exc: Exception | None = None, error: WorkflowError | None = None, on: bool = True
    ) -> None:
        self.exc = exc
        self.error = error
        self.on = on
        self.calls = 0

    def __call__(self, ctx: WorkflowContext) -> HandlerResult:
        self.calls += 1
        if self.on:
            if self.exc is not None:
                raise self.exc
            return HandlerResult(outputs=[], error=self.error)
        return HandlerResult(
            outputs=["ok"], workflow_updates={f"ran_{ctx.node_name}": True, "seen": ctx.attempt}
        )


def catching(catchers: list[dict[str, Any]], **top: Any) -> dict[str, Any]:
    return {
        "workflow_name": "catch",
        "default_entry_node": "work",
        "nodes": {
            "work": task("work", "after", on_error=catchers),
            "after": task("ok"),
            "fix_io": task("ok"),
            "fix_key": task("ok"),
            "fix_rate": task("ok"),
            "fix_any": task("ok"),
            "fallback": task("ok"),
        },
        **top,
    }


class DiskFull(OSError):
    pass


# ---------------------------------------------------------------- catchers


def test_a_catcher_by_code_routes_a_returned_error_and_sets_error_in_state() -> None:
    error = WorkflowError("RATE_LIMITED", "slow down", "work", details={"retry_after": 3})
    definition = catching(
        [
            {"target_node": "fix_io", "codes": ["IO"]},
            {"target_node": "fix_rate", "codes": ["RATE_LIMITED", "QUOTA"]},
        ]
    )
    rec = Recorder()
    result = WorkflowEngine(
        definition, {"work": Switch(error=error), "ok": ok}, event_callback=rec
    ).run()
    assert result.success
    assert result.trace == ["work", "fix_rate"]
    caught = result.state.workflow["__error__"]
    assert caught["code"] == "RATE_LIMITED"
    assert caught["node"] == "work"
    assert caught["details"] == {"retry_after": 3}
    assert [r.status for r in result.audit_trail] == ["failed", "succeeded"]
    assert rec.of("node:error")[0].data["error"]["code"] == "RATE_LIMITED"


def test_a_catcher_by_exception_matches_subclasses() -> None:
    definition = catching(
        [
            {"target_node": "fix_key", "exceptions": ["KeyError"]},
            {"target_node": "fix_io", "exceptions": ["OSError"]},
        ]
    )
    result = WorkflowEngine(definition, {"work": Switch(exc=DiskFull("full")), "ok": ok}).run()
    assert result.success
    assert result.trace == ["work", "fix_io"]
    assert result.state.workflow["__error__"]["cause_type"] == "DiskFull"


def test_a_catcher_by_exception_matches_the_exact_class_name() -> None:
    definition = catching([{"target_node": "fix_key", "exceptions": ["KeyError"]}])
    result = WorkflowEngine(definition, {"work": Switch(exc=KeyError("k")), "ok": ok}).run()
    assert result.trace == ["work", "fix_key"]


def test_catchers_are_tried_in_order_and_the_first_match_wins() -> None:
    definition = catching(
        [
            {"target_node": "fix_io", "exceptions": ["OSError"]},
            {"target_node": "fix_any"},
        ]
    )
    result = WorkflowEngine(definition, {"work": Switch(exc=DiskFull()), "ok": ok}).run()
    assert result.trace == ["work", "fix_io"]
    result = WorkflowEngine(definition, {"work": Switch(exc=ValueError()), "ok": ok}).run()
    assert result.trace == ["work", "fix_any"]


def test_a_catcher_with_no_filter_catches_everything() -> None:
    definition = catching([{"target_node": "fix_any"}])
    err = WorkflowError("ANYTHING", "x", "work")
    for handler in (Switch(exc=RuntimeError()), Switch(error=err)):
        assert WorkflowEngine(definition, {"work": handler, "ok": ok}).run().trace == [
            "work",
            "fix_any",
        ]


def test_a_catcher_with_both_filters_needs_both_to_match() -> None:
    definition = catching(
        [{"target_node": "fix_key", "codes": ["HANDLER_EXCEPTION"], "exceptions": ["KeyError"]}],
        default_error_node="fallback",
    )
    result = WorkflowEngine(definition, {"work": Switch(exc=KeyError("k")), "ok": ok}).run()
    assert result.trace == ["work", "fix_key"]
    result = WorkflowEngine(definition, {"work": Switch(exc=ValueError("v")), "ok": ok}).run()
    assert result.trace == ["work", "fallback"]
    returned = WorkflowError("HANDLER_EXCEPTION", "returned, not raised", "work")
    result = WorkflowEngine(definition, {"work": Switch(error=returned), "ok": ok}).run()
    assert result.trace == ["work", "fallback"]


def test_no_matching_catcher_falls_back_to_the_default_error_node() -> None:
    definition = catching(
        [{"target_node": "fix_io", "codes": ["IO"]}], default_error_node="fallback"
    )
    result = WorkflowEngine(definition, {"work": Switch(exc=KeyError()), "ok": ok}).run()
    assert result.success
    assert result.trace == ["work", "fallback"]
    assert result.state.workflow["__error__"]["cause_type"] == "KeyError"


def test_no_matching_catcher_and_no_error_node_fails_the_run() -> None:
    definition = catching([{"target_node": "fix_io", "codes": ["IO"]}])
    result = WorkflowEngine(definition, {"work": Switch(exc=KeyError("k")), "ok": ok}).run()
    assert not result.success
    assert result.status == "failed"
    assert result.error is not None and result.error.cause_type == "KeyError"
    assert result.trace == ["work"]


def test_catchers_apply_after_retries_are_exhausted() -> None:
    definition = catching([{"target_node": "fix_io", "exceptions": ["OSError"]}])
    definition["nodes"]["work"]["run_policy"] = {"max_retries": 2, "retry_sleep_seconds": 0}
    handler = Switch(exc=DiskFull())
    result = WorkflowEngine(definition, {"work": handler, "ok": ok}, sleep=lambda s: None).run()
    assert handler.calls == 3
    assert result.trace == ["work", "fix_io"]


def test_a_catcher_sees_codes_of_engine_errors() -> None:
    definition = catching([{"target_node": "fix_any", "codes": ["UNDECLARED_OUTPUT"]}])

    def wrong_label(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(outputs=["nope"])

    result = WorkflowEngine(definition, {"work": wrong_label, "ok": ok}).run()
    assert result.trace == ["work", "fix_any"]
    assert result.state.workflow["__error__"]["code"] == "UNDECLARED_OUTPUT"


def test_a_caught_failure_drops_the_failed_nodes_other_queued_work() -> None:
    definition = {
        "workflow_name": "catch",
        "default_entry_node": "start",
        "nodes": {
            "start": task("ok", "work", "sibling"),
            "work": task("work", on_error=[{"target_node": "fix_any"}]),
            "sibling": task("ok"),
            "fix_any": task("ok"),
        },
    }
    result = WorkflowEngine(definition, {"work": Switch(exc=RuntimeError()), "ok": ok}).run()
    assert result.trace == ["start", "work", "fix_any"]


@pytest.mark.parametrize(
    ("catchers", "fragment"),
    [
        ("fix_io", "on_error"),
        ([{"codes": ["X"]}], "target_node"),
        ([{"target_node": "nowhere"}], "nowhere"),
        ([{"target_node": "fix_io", "codes": "IO"}], "codes"),
        ([{"target_node": "fix_io", "exceptions": [3]}], "exceptions"),
        (["fix_io"], "on_error[0]"),
    ],
)
def test_bad_catchers_are_rejected_naming_the_node_and_key(catchers: Any, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        WorkflowEngine(catching(catchers), {"work": ok, "ok": ok})
    assert "node 'work'" in str(info.value)
    assert fragment in str(info.value)


# ---------------------------------------------------------------- redrive


def chain(**top: Any) -> dict[str, Any]:
    return {
        "workflow_name": "chain",
        "default_entry_node": "a",
        "nodes": {"a": task("a", "b"), "b": task("b", "c"), "c": task("c")},
        **top,
    }


class Counting:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, ctx: WorkflowContext) -> HandlerResult:
        self.calls.append(ctx.node_name)
        return HandlerResult(outputs=["ok"], workflow_updates={f"ran_{ctx.node_name}": True})


def test_a_failed_result_carries_a_checkpoint() -> None:
    result = WorkflowEngine(chain(), {"a": ok, "b": Switch(exc=RuntimeError()), "c": ok}).run()
    assert result.status == "failed"
    assert isinstance(result.checkpoint, RunSnapshot)
    assert result.checkpoint.status == "failed"


def test_redrive_runs_the_failed_node_again_and_not_the_completed_ones() -> None:
    counting, flaky, rec = Counting(), Switch(exc=RuntimeError("down")), Recorder()
    engine = WorkflowEngine(chain(), {"a": counting, "b": flaky, "c": counting}, event_callback=rec)
    failed = engine.run(run_id="r1")
    assert failed.status == "failed"
    assert failed.state.workflow["__error__"]["code"] == "HANDLER_EXCEPTION"
    flaky.on = False
    rec.events.clear()
    assert failed.checkpoint is not None
    result = engine.redrive(failed.checkpoint)
    assert result.success
    assert result.run_id == "r1"
    assert counting.calls == ["a", "c"]
    assert flaky.calls == 2
    assert result.trace == ["a", "b", "b", "c"]
    assert "__error__" not in result.state.workflow
    assert result.state.workflow == {"ran_a": True, "ran_b": True, "seen": 1, "ran_c": True}
    rows = [(r.node, r.status) for r in result.audit_trail]
    assert rows == [("a", "succeeded"), ("b", "failed"), ("b", "succeeded"), ("c", "succeeded")]
    assert result.audit_trail[1].error is not None
    resumed = rec.of("wf:resumed")
    assert len(resumed) == 1 and resumed[0].data["redrive"] is True
    assert rec.events[0].kind == "wf:resumed"


def test_redrive_restores_the_queues_and_join_arrivals_from_before_the_failure() -> None:
    definition = {
        "workflow_name": "join",
        "default_entry_node": "s",
        "nodes": {
            "s": task("ok", "left", "right", "extra"),
            "left": task("ok", "join"),
            "right": task("right", "join"),
            "extra": task("ok"),
            "join": {
                "handler": "ok",
                "outputs": {"ok": []},
                "join": {"mode": "and", "wait_for": ["left", "right"]},
            },
        },
    }
    flaky = Switch(exc=RuntimeError())
    engine = WorkflowEngine(definition, {"ok": ok, "right": flaky})
    failed = engine.run()
    assert failed.trace == ["s", "left", "right"]
    cp = failed.checkpoint
    assert cp is not None
    flaky.on = False
    result = engine.redrive(cp)
    assert result.success
    assert result.trace == ["s", "left", "right", "right", "extra", "join"]


def test_redrive_accepts_the_snapshot_dict() -> None:
    flaky = Switch(exc=RuntimeError())
    engine = WorkflowEngine(chain(), {"a": ok, "b": flaky, "c": ok})
    failed = engine.run()
    assert failed.checkpoint is not None
    flaky.on = False
    assert engine.redrive(failed.checkpoint.to_dict()).trace == ["a", "b", "b", "c"]


def test_redrive_by_run_id_through_an_in_memory_store() -> None:
    store = InMemoryWorkflowStore()
    flaky = Switch(exc=RuntimeError())
    engine = WorkflowEngine(chain(), {"a": ok, "b": flaky, "c": ok}, store=store)
    engine.run(run_id="mem")
    assert store.load_snapshot("mem").status == "failed"
    flaky.on = False
    result = engine.redrive("mem")
    assert result.success
    assert store.load_snapshot("mem").status == "succeeded"
    assert store.load_snapshot("mem").trace == ["a", "b", "b", "c"]


def test_a_redriven_run_that_fails_again_can_be_redriven_again() -> None:
    flaky = Switch(exc=RuntimeError())
    engine = WorkflowEngine(chain(), {"a": ok, "b": flaky, "c": ok})
    first = engine.run()
    assert first.checkpoint is not None
    second = engine.redrive(first.checkpoint)
    assert second.status == "failed"
    assert second.checkpoint is not None
    flaky.on = False
    third = engine.redrive(second.checkpoint)
    assert third.success
    assert [r.status for r in third.audit_trail if r.node == "b"] == [
        "failed",
        "failed",
        "succeeded",
    ]


def test_redrive_after_a_workflow_timeout_gets_a_fresh_deadline() -> None:
    clock = {"now": 1000.0}
    calls: list[str] = []

    def slow_b(ctx: WorkflowContext) -> HandlerResult:
        calls.append("b")
        clock["now"] += 100
        return HandlerResult(outputs=["ok"])

    engine = WorkflowEngine(
        chain(engine_policy={"workflow_timeout_seconds": 50}),
        {"a": ok, "b": slow_b, "c": ok},
        clock=lambda: clock["now"],
    )
    failed = engine.run()
    assert failed.error is not None and failed.error.code == "WORKFLOW_TIMEOUT"
    assert failed.trace == ["a", "b"]
    assert failed.checkpoint is not None
    result = engine.redrive(failed.checkpoint)
    assert result.success
    assert result.trace == ["a", "b", "c"]
    assert calls == ["b"]


def test_redrive_continues_a_cancelled_run() -> None:
    engine_box: list[WorkflowEngine] = []

    def cancels(ctx: WorkflowContext) -> HandlerResult:
        engine_box[0].cancel()
        return HandlerResult(outputs=["ok"])

    counting = Counting()
    engine = WorkflowEngine(chain(), {"a": cancels, "b": counting, "c": counting})
    engine_box.append(engine)
    cancelled = engine.run()
    assert cancelled.status == "cancelled"
    assert cancelled.checkpoint is not None
    result = engine.redrive(cancelled.checkpoint)
    assert result.success
    assert result.trace == ["a", "b", "c"]
    assert counting.calls == ["b", "c"]


def test_redrive_of_a_caught_failure_that_later_failed_reruns_the_last_failed_node() -> None:
    definition = chain(default_error_node="c")
    flaky_b = Switch(exc=RuntimeError("b"))
    flaky_c = Switch(exc=RuntimeError("c"))
    engine = WorkflowEngine(definition, {"a": ok, "b": flaky_b, "c": flaky_c})
    failed = engine.run()
    assert failed.trace == ["a", "b", "c"]
    assert failed.error is not None and failed.error.node == "c"
    flaky_c.on = False
    assert failed.checkpoint is not None
    result = engine.redrive(failed.checkpoint)
    assert result.success
    assert result.trace == ["a", "b", "c", "c"]
    assert flaky_b.calls == 1


def test_redrive_refuses_a_succeeded_or_waiting_run() -> None:
    store = InMemoryWorkflowStore()
    engine = WorkflowEngine(chain(), {"a": ok, "b": ok, "c": ok}, store=store)
    engine.run(run_id="done")
    with pytest.raises(ValueError, match="succeeded"):
        engine.redrive("done")

    def waits(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(outputs=[], waiting=True, waiting_prompt="?")

    waiting = WorkflowEngine(chain(), {"a": waits, "b": ok, "c": ok}).run()
    assert waiting.checkpoint is not None
    with pytest.raises(ValueError, match="waiting"):
        WorkflowEngine(chain(), {"a": waits, "b": ok, "c": ok}).redrive(waiting.checkpoint)


def test_redrive_checks_the_hash_lock() -> None:
    failed = WorkflowEngine(chain(), {"a": ok, "b": Switch(exc=RuntimeError()), "c": ok}).run()
    changed = chain()
    changed["nodes"]["c"]["config"] = {"v": 2}
    assert failed.checkpoint is not None
    with pytest.raises(ValueError, match="workflow hash mismatch"):
        WorkflowEngine(changed, {"a": ok, "b": ok, "c": ok}).redrive(failed.checkpoint)


def test_run_from_checkpoint_on_a_failed_run_points_to_redrive() -> None:
    failed = WorkflowEngine(chain(), {"a": ok, "b": Switch(exc=RuntimeError()), "c": ok}).run()
    assert failed.checkpoint is not None
    engine = WorkflowEngine(chain(), {"a": ok, "b": ok, "c": ok})
    with pytest.raises(ValueError, match=r"redrive\("):
        engine.run_from_checkpoint(failed.checkpoint)


def test_run_from_checkpoint_on_a_succeeded_run_is_refused() -> None:
    store = InMemoryWorkflowStore()
    engine = WorkflowEngine(chain(), {"a": ok, "b": ok, "c": ok}, store=store)
    engine.run(run_id="done")
    with pytest.raises(ValueError, match="succeeded"):
        engine.run_from_checkpoint(store.load_snapshot("done"))


def test_a_running_snapshot_left_by_a_crashed_process_resumes() -> None:
    store = InMemoryWorkflowStore()
    counting = Counting()
    engine = WorkflowEngine(chain(), {"a": counting, "b": counting, "c": counting}, store=store)
    engine.run(run_id="crash")
    mid = store.load_snapshot("crash", step=1)
    assert mid.status == "running"
    assert mid.trace == ["a"]
    counting.calls.clear()
    fresh = WorkflowEngine(chain(), {"a": counting, "b": counting, "c": counting})
    result = fresh.run_from_checkpoint(mid)
    assert result.success
    assert result.trace == ["a", "b", "c"]
    assert counting.calls == ["b", "c"]


# ---------------------------------------------------------------- across processes

CHILD = textwrap.dedent(
    """
    import json, sys
    from zeroflow import HandlerResult, JsonFileWorkflowStore, WorkflowEngine
    from zeroflow.stores import SqliteWorkflowStore

    kind, path, definition, run_id = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
    store = JsonFileWorkflowStore(path) if kind == "json" else SqliteWorkflowStore(path)
    called = []

    def handler(ctx):
        called.append(ctx.node_name)
        return HandlerResult(outputs=["ok"], workflow_updates={"ran_" + ctx.node_name: True})

    engine = WorkflowEngine(definition, {"a": handler, "b": handler, "c": handler}, store=store)
    result = engine.redrive(run_id)
    print(json.dumps({"status": result.status, "called": called, "trace": result.trace}))
    """
)


def store_path(kind: str, where: Path) -> str:
    return str(where / "runs") if kind == "json" else str(where / "runs.db")


@pytest.mark.parametrize("kind", ["json", "sqlite"])
def test_redrive_from_a_new_process_through_a_file_store(kind: str, tmp_path: Path) -> None:
    store = make_store(kind, tmp_path)
    failing = Switch(exc=RuntimeError("db down"))
    engine = WorkflowEngine(chain(), {"a": ok, "b": failing, "c": ok}, store=store)
    assert engine.run(run_id="proc").status == "failed"
    if hasattr(store, "close"):
        store.close()

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            kind,
            store_path(kind, tmp_path),
            json.dumps(chain()),
            "proc",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {"status": "succeeded", "called": ["b", "c"], "trace": ["a", "b", "b", "c"]}

    reopened = make_store(kind, tmp_path)
    snap = reopened.load_snapshot("proc")
    assert snap.status == "succeeded"
    assert "__error__" not in snap.state.workflow
    assert [(r.node, r.status) for r in snap.audit_trail] == [
        ("a", "succeeded"),
        ("b", "failed"),
        ("b", "succeeded"),
        ("c", "succeeded"),
    ]


@pytest.mark.parametrize("kind", ["json", "sqlite"])
def test_redrive_with_a_fresh_engine_and_store_on_the_same_files(kind: str, tmp_path: Path) -> None:
    first = WorkflowEngine(
        chain(),
        {"a": ok, "b": Switch(exc=RuntimeError()), "c": ok},
        store=make_store(kind, tmp_path),
    )
    assert first.run(run_id="again").status == "failed"
    counting = Counting()
    second = WorkflowEngine(
        chain(), {"a": counting, "b": counting, "c": counting}, store=make_store(kind, tmp_path)
    )
    result = second.redrive(second.load_snapshot("again"))
    assert result.success
    assert counting.calls == ["b", "c"]


def handlers_named(*names: str, fn: Callable[[WorkflowContext], HandlerResult] = ok) -> dict:
    return dict.fromkeys(names, fn)
