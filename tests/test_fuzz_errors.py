"""Only zeroflow's documented errors escape, whatever malformed input comes in."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zeroflow import (
    HandlerResult,
    JsonFileWorkflowStore,
    StoreError,
    WorkflowDefinitionError,
    WorkflowEngine,
    ZeroflowError,
)
from zeroflow._definition import compile_workflow

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
