"""Only zeroflow's documented errors escape, whatever malformed input comes in."""

from __future__ import annotations

import contextlib
import json
import tempfile
import uuid
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zeroflow import (
    HandlerResult,
    InMemoryWorkflowStore,
    JsonFileWorkflowStore,
    StoreError,
    WorkflowDefinitionError,
    WorkflowEngine,
    ZeroflowError,
)
from zeroflow._definition import compile_workflow
from zeroflow.stores import SqliteWorkflowStore
from zeroflow.testing import sample_snapshot

SCALARS = st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=3)
JSONISH = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=12,
)
NODE_KEYS = st.sampled_from(
    [
        "handler",
        "outputs",
        "join",
        "config",
        "run_policy",
        "on_error",
        "kind",
        "wait",
        "end",
        "subflow",
        "map",
        "state_contract",
    ]
)
NAMES = st.sampled_from(["a", "b", "c"])
EDGE = st.fixed_dictionaries(
    {"target_node": NAMES | SCALARS}, optional={"is_loopback": st.booleans() | SCALARS}
)
NODE = st.dictionaries(
    NODE_KEYS,
    JSONISH
    | st.dictionaries(st.text(max_size=2), st.lists(EDGE | JSONISH, max_size=2), max_size=2),
    max_size=6,
)
DEFINITION = st.fixed_dictionaries(
    {},
    optional={
        "workflow_name": SCALARS,
        "default_entry_node": NAMES | SCALARS,
        "default_error_node": NAMES | SCALARS,
        "engine_policy": st.dictionaries(
            st.sampled_from(
                [
                    "max_steps",
                    "workflow_timeout_seconds",
                    "strict_outputs",
                    "state_isolation",
                    "max_concurrency",
                    "hitl",
                    "stranded_joins",
                ]
            ),
            SCALARS,
            max_size=3,
        )
        | JSONISH,
        "nodes": st.dictionaries(NAMES, NODE | JSONISH, max_size=3) | JSONISH,
        "version": st.just("zf/1") | SCALARS,
    },
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DEFINITION)
def test_a_malformed_definition_raises_only_a_definition_error(definition: dict[str, Any]) -> None:
    with contextlib.suppress(WorkflowDefinitionError):
        compile_workflow(definition)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), JSONISH, max_size=6) | JSONISH)
def test_a_malformed_checkpoint_raises_only_zeroflow_errors(data: Any) -> None:
    engine = WorkflowEngine(
        {
            "workflow_name": "w",
            "default_entry_node": "a",
            "nodes": {"a": {"handler": "a", "outputs": {}}},
        },
        {"a": lambda ctx: HandlerResult(outputs=[])},
    )
    try:
        engine.run_from_checkpoint(data)
    except (ZeroflowError, TypeError) as exc:  # TypeError: not a snapshot or a dict at all
        assert str(exc)  # a message that says what is wrong


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=200) | JSONISH.map(lambda v: json.dumps(v).encode()))
def test_a_garbled_snapshot_file_raises_a_store_error_naming_the_file(
    tmp_path: Path, blob: bytes
) -> None:
    folder = tmp_path / "runs" / "r1"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "snapshot.json").write_bytes(blob)
    store = JsonFileWorkflowStore(tmp_path / "runs")
    try:
        store.load_snapshot("r1")
    except (StoreError, KeyError) as exc:
        assert "r1" in str(exc)


# ---------------------------------------------------------------- issue 14's hostile cases

HOSTILE_NUMBERS = st.sampled_from(
    [1e308, -1e308, float("inf"), float("-inf"), float("nan"), 10**400, 2**63, -(2**63), 1e-320]
)
HOSTILE = st.recursive(
    SCALARS | HOSTILE_NUMBERS | st.binary(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=3) | st.integers(0, 2), inner, max_size=3)
    ),
    max_leaves=12,
)


def nested(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = {"k": value} if i % 2 else [value]
    return value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(
        ["max_steps", "workflow_timeout_seconds", "max_concurrency", "max_subflow_depth"]
    ),
    st.sampled_from(["timeout_seconds", "retry_sleep_seconds", "max_retries", "max_delay_seconds"]),
    HOSTILE_NUMBERS | SCALARS,
    st.integers(0, 2000),
)
def test_hostile_numbers_and_depths_in_a_definition_raise_only_a_definition_error(
    engine_key: str, run_key: str, number: Any, depth: int
) -> None:
    definition = {
        "workflow_name": "w",
        "default_entry_node": "a",
        "engine_policy": {engine_key: number},
        "nodes": {
            "a": {
                "handler": "a",
                "outputs": {"ok": []},
                "run_policy": {run_key: number},
                "config": nested(depth),
            }
        },
    }
    with contextlib.suppress(WorkflowDefinitionError):
        compile_workflow(definition)


def waiting_snapshot() -> dict[str, Any]:
    engine = WorkflowEngine(APPROVAL, APPROVAL_HANDLERS)
    checkpoint = engine.run(run_id="w1").checkpoint
    assert checkpoint is not None
    return checkpoint.to_dict()


APPROVAL: dict[str, Any] = {
    "workflow_name": "approval",
    "default_entry_node": "ask",
    "nodes": {
        "ask": {"handler": "ask", "outputs": {"yes": [{"target_node": "pay"}]}},
        "pay": {"handler": "pay", "outputs": {"ok": []}},
    },
}
PAID: list[str] = []


def _ask(ctx: Any) -> HandlerResult:
    if ctx.state.workflow.get("__resume__") is None:
        return HandlerResult(outputs=[], waiting=True, waiting_prompt="ok?")
    return HandlerResult(outputs=["yes"])


def _pay(ctx: Any) -> HandlerResult:
    PAID.append(ctx.run_id)
    return HandlerResult(outputs=["ok"])


APPROVAL_HANDLERS = {"ask": _ask, "pay": _pay}
SNAPSHOT_FIELDS = st.sampled_from(
    [
        "ready_now",
        "ready_next_wave",
        "arrivals",
        "executed_this_wave",
        "status",
        "step",
        "wave",
        "state",
        "trace",
        "audit_trail",
        "zeroflow",
        "last_error",
        "deadline_ts",
        "seq",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        SNAPSHOT_FIELDS,
        HOSTILE | st.lists(st.sampled_from(["ask", "pay", "nope", "a/b"]), max_size=3),
        max_size=3,
    ),
    st.booleans(),
)
def test_a_crafted_snapshot_resumes_or_raises_only_zeroflow_errors(
    changes: dict[str, Any], signed: bool
) -> None:
    data = waiting_snapshot()
    data.update(changes)
    key = b"k" * 32 if signed else None
    engine = WorkflowEngine(APPROVAL, APPROVAL_HANDLERS, checkpoint_key=key)
    try:
        engine.run_from_checkpoint(data, {"ok": True})
    except (ZeroflowError, TypeError) as exc:
        assert str(exc)
    else:
        # a signing engine never accepts an edited snapshot (every run here is unsigned)
        assert not signed


HANDLER_RESULT = st.builds(
    HandlerResult,
    outputs=st.lists(st.sampled_from(["ok"]) | HOSTILE, max_size=2) | HOSTILE,
    workflow_updates=st.none() | st.dictionaries(st.text(max_size=2) | st.integers(0, 2), HOSTILE),
    node_updates=st.none() | HOSTILE,
    tags=st.none() | HOSTILE,
    waiting=st.booleans() | HOSTILE,
    waiting_prompt=st.none() | HOSTILE,
)


@settings(max_examples=300, deadline=None)
@given(HANDLER_RESULT)
def test_a_malformed_handler_result_fails_its_node_and_never_escapes(
    result: HandlerResult,
) -> None:
    definition = {
        "workflow_name": "w",
        "default_entry_node": "a",
        "default_error_node": "e",
        "nodes": {
            "a": {"handler": "a", "outputs": {"ok": []}},
            "e": {"handler": "e", "outputs": {}},
        },
    }
    done = WorkflowEngine(
        definition,
        {"a": lambda ctx: result, "e": lambda ctx: HandlerResult(outputs=[])},
    ).run()
    assert done.status in ("succeeded", "waiting", "failed")
    if done.trace[-1:] == ["e"]:
        code = done.state.workflow["__error__"]["code"]
        assert code in ("INVALID_HANDLER_RESULT", "STATE_SERIALIZATION", "UNDECLARED_OUTPUT")


STORE_ROOT = Path(tempfile.mkdtemp(prefix="zf-fuzz-"))
ID_STORES = (
    InMemoryWorkflowStore(),
    JsonFileWorkflowStore(STORE_ROOT / "json"),
    SqliteWorkflowStore(STORE_ROOT / "ids.db"),
)


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=12)
    | st.sampled_from(["CON", "nul.txt", "a.", "..", "x" * 300, "a\u202eb", "\ud800", "a\nb"])
)
def test_any_run_id_gets_the_same_verdict_from_every_store(run_id: str) -> None:
    verdicts = []
    for store in ID_STORES:
        try:
            store.save_snapshot(sample_snapshot(run_id=run_id))
        except StoreError as exc:
            assert "run id" in str(exc)
            verdicts.append("refused")
        else:
            assert store.load_snapshot(run_id).run_id == run_id
            verdicts.append("kept")
    assert len(set(verdicts)) == 1, (run_id, verdicts)


RUN_FILES = st.sampled_from(["metadata.json", "lease.json", "events.jsonl", "journal"])


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(RUN_FILES, st.binary(max_size=120) | HOSTILE.map(lambda v: repr(v).encode()))
def test_a_garbled_run_file_gives_only_zeroflow_errors_and_spares_the_other_runs(
    tmp_path: Path, name: str, blob: bytes
) -> None:
    base = tmp_path / f"runs-{uuid.uuid4().hex}"
    store = JsonFileWorkflowStore(base)
    engine = WorkflowEngine(APPROVAL, APPROVAL_HANDLERS, store=store)
    engine.run(run_id="bad")
    engine.run(run_id="good")
    target = base / "bad" / name
    if name == "journal":
        target.mkdir(exist_ok=True)
        target = target / "00000000000000000001.jsonl"
    target.write_bytes(blob)
    fresh = JsonFileWorkflowStore(base, on_report=lambda event: None)
    calls = (
        lambda: fresh.load_snapshot("bad"),
        lambda: fresh.events("bad"),
        lambda: fresh.history("bad"),
        lambda: WorkflowEngine(APPROVAL, APPROVAL_HANDLERS, store=fresh).resume(
            "bad", resume_input={"ok": True}
        ),
    )
    for call in calls:
        with contextlib.suppress(ZeroflowError):
            call()
    assert "good" in {m.run_id for m in fresh.list_metadata()}
    done = WorkflowEngine(APPROVAL, APPROVAL_HANDLERS, store=fresh).resume(
        "good", resume_input={"ok": True}
    )
    assert done.success
