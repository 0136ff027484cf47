"""SPEC A9: the records round-trip through JSON with 0.1.0's keys; helpers behave as documented."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from zeroflow import (
    EnginePolicy,
    Event,
    HandlerResult,
    RunMetadata,
    RunSnapshot,
    StepRecord,
    WorkflowError,
    WorkflowResult,
    WorkflowState,
    json_clone,
    now_iso,
)

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")


def through_json(data: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(json.dumps(data))
    return loaded


ERROR = WorkflowError(
    "HANDLER_EXCEPTION",
    "kaboom",
    "b",
    retryable=True,
    details={"handler": "boom", "n": [1, {"x": None}]},
    cause_type="RuntimeError",
)
RECORD = StepRecord(2, 1, "b", "failed", "2026-01-01T00:00:00+00:00", ["ok"], ERROR, False, 12.5)


def full_snapshot() -> RunSnapshot:
    return RunSnapshot(
        run_id="r1",
        workflow_name="wf",
        wf_hash="h" * 64,
        status="waiting",
        step=2,
        wave=3,
        ready_now=["ask"],
        ready_next_wave=["a"],
        state=WorkflowState({"doc": 1}, {"w": {"deep": [1, 2]}}, {"a": {"n": 1}}),
        trace=["a", "ask"],
        tags=["t"],
        audit_trail=[RECORD, StepRecord(3, 3, "ask", "waiting", "ts", [], None, True, 0)],
        arrivals={"3:m": ["l"]},
        executed_this_wave=["a", "ask"],
        last_node="ask",
        waiting_prompt="approve?",
        last_error=ERROR,
        started_at="2026-01-01T00:00:00+00:00",
        updated_at="2026-01-01T00:00:01+00:00",
        deadline_ts=1234.5,
    )


def test_workflow_error_to_dict_has_0_1_0_keys_in_order() -> None:
    assert list(ERROR.to_dict()) == [
        "code",
        "message",
        "node",
        "retryable",
        "details",
        "cause_type",
    ]


def test_workflow_error_round_trips_through_json() -> None:
    assert WorkflowError.from_dict(through_json(ERROR.to_dict())) == ERROR


def test_workflow_error_from_dict_needs_only_code_and_message() -> None:
    error = WorkflowError.from_dict({"code": "C", "message": "m"})
    assert error == WorkflowError("C", "m")
    assert (error.node, error.retryable, error.details, error.cause_type) == (None, False, {}, None)


def test_workflow_error_defaults_do_not_share_details() -> None:
    first, second = WorkflowError("a", "b"), WorkflowError("a", "b")
    assert first.details == {} and first.details is not second.details


def test_step_record_to_dict_has_0_1_0_keys_in_order_and_nests_the_error() -> None:
    data = RECORD.to_dict()
    assert list(data) == [
        "step",
        "wave",
        "node",
        "status",
        "ts",
        "outputs",
        "error",
        "waiting",
        "duration_ms",
    ]
    assert data["error"] == ERROR.to_dict()


def test_step_record_round_trips_through_json() -> None:
    assert StepRecord.from_dict(through_json(RECORD.to_dict())) == RECORD


def test_step_record_from_dict_needs_only_the_five_required_keys() -> None:
    record = StepRecord.from_dict(
        {"step": 1, "wave": 1, "node": "a", "status": "succeeded", "ts": "t"}
    )
    assert record == StepRecord(1, 1, "a", "succeeded", "t")
    assert (record.outputs, record.error, record.waiting, record.duration_ms) == (
        [],
        None,
        False,
        None,
    )


def test_step_record_keeps_an_integer_duration_from_0_1_0_equal() -> None:
    record = StepRecord.from_dict(
        {"step": 1, "wave": 1, "node": "a", "status": "succeeded", "ts": "t", "duration_ms": 20}
    )
    assert record.duration_ms == 20


def test_workflow_state_round_trips_and_from_empty_dict_is_empty() -> None:
    state = WorkflowState({"i": 1}, {"w": [1]}, {"n": {"k": "v"}})
    assert state.to_dict() == {"input": {"i": 1}, "workflow": {"w": [1]}, "node": {"n": {"k": "v"}}}
    assert WorkflowState.from_dict(through_json(state.to_dict())) == state
    assert WorkflowState.from_dict({}) == WorkflowState({}, {}, {})


def test_workflow_state_defaults() -> None:
    state = WorkflowState(input={"x": 1})
    assert (state.workflow, state.node) == ({}, {})


SNAPSHOT_KEYS = [
    "run_id",
    "workflow_name",
    "wf_hash",
    "status",
    "step",
    "wave",
    "ready_now",
    "ready_next_wave",
    "state",
    "trace",
    "tags",
    "audit_trail",
    "arrivals",
    "executed_this_wave",
    "last_node",
    "waiting_prompt",
    "last_error",
    "started_at",
    "updated_at",
    "deadline_ts",
]


def test_run_snapshot_to_dict_has_the_a3_keys_in_order() -> None:
    data = full_snapshot().to_dict()
    assert list(data)[: len(SNAPSHOT_KEYS)] == SNAPSHOT_KEYS
    assert data["state"] == {
        "input": {"doc": 1},
        "workflow": {"w": {"deep": [1, 2]}},
        "node": {"a": {"n": 1}},
    }
    assert data["audit_trail"][0] == RECORD.to_dict()
    assert data["last_error"] == ERROR.to_dict()


def test_run_snapshot_round_trips_through_json() -> None:
    snap = full_snapshot()
    again = RunSnapshot.from_dict(through_json(snap.to_dict()))
    assert again == snap
    assert again.to_dict() == snap.to_dict()


def test_run_snapshot_from_dict_accepts_only_the_required_fields() -> None:
    data = {
        "run_id": "r",
        "workflow_name": "wf",
        "wf_hash": "h",
        "status": "running",
        "step": 0,
        "wave": 1,
        "ready_now": ["a"],
        "ready_next_wave": [],
        "state": {"input": {}},
        "trace": [],
        "tags": [],
        "audit_trail": [],
    }
    snap = RunSnapshot.from_dict(data)
    assert (snap.arrivals, snap.executed_this_wave, snap.last_node) == ({}, [], None)
    assert (snap.waiting_prompt, snap.last_error, snap.deadline_ts) == (None, None, None)
    assert snap.state == WorkflowState({}, {}, {})
    assert snap.ready_now == ["a"]


def test_run_snapshot_is_mutable() -> None:
    snap = full_snapshot()
    snap.status = "running"
    snap.ready_now.append("x")
    assert snap.status == "running"
    assert snap.ready_now == ["ask", "x"]


def test_run_snapshot_default_timestamps_are_iso_utc() -> None:
    snap = RunSnapshot(run_id="r", workflow_name="wf", wf_hash="h")
    assert snap.started_at is not None and ISO.fullmatch(snap.started_at)
    assert snap.updated_at is not None and ISO.fullmatch(snap.updated_at)


def test_run_snapshot_metadata_summarises_the_run() -> None:
    meta = full_snapshot().metadata()
    assert isinstance(meta, RunMetadata)
    assert (meta.workflow_name, meta.workflow_hash, meta.status) == ("wf", "h" * 64, "waiting")
    assert (meta.started_at, meta.updated_at) == (
        "2026-01-01T00:00:00+00:00",
        "2026-01-01T00:00:01+00:00",
    )
    assert (meta.current_node, meta.waiting, meta.last_error) == ("ask", True, ERROR)


def test_metadata_waiting_is_false_for_other_statuses() -> None:
    snap = full_snapshot()
    snap.status = "cancelled"
    assert snap.metadata().waiting is False


def test_run_metadata_to_dict_has_0_1_0_keys_and_round_trips() -> None:
    meta = full_snapshot().metadata()
    data = meta.to_dict()
    assert list(data)[:8] == [
        "workflow_name",
        "workflow_hash",
        "status",
        "started_at",
        "updated_at",
        "current_node",
        "waiting",
        "last_error",
    ]
    assert data["last_error"] == ERROR.to_dict()
    assert RunMetadata.from_dict(through_json(data)) == meta


def test_run_metadata_from_a_0_1_0_metadata_file() -> None:
    data = {
        "current_node": "n1",
        "last_error": None,
        "started_at": "2026-11-25T11:58:33+00:00",
        "status": "succeeded",
        "updated_at": "2026-11-25T11:58:33+00:00",
        "waiting": False,
        "workflow_hash": "9f57",
        "workflow_name": "lin",
    }
    meta = RunMetadata.from_dict(data)
    assert (meta.workflow_name, meta.status, meta.current_node, meta.waiting) == (
        "lin",
        "succeeded",
        "n1",
        False,
    )


def test_event_round_trips_through_json() -> None:
    event = Event("r", 3, 2, "a", "node:end", "2026-01-01T00:00:00+00:00", {"outputs": ["ok"]})
    assert Event.from_dict(through_json(event.to_dict())) == event
    assert set(event.to_dict()) == {"run_id", "step", "wave", "node", "kind", "ts", "data"}


def test_event_is_frozen() -> None:
    event = Event("r", 0, 1, None, "wf:start", "t", {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.kind = "x"  # type: ignore[misc]


def test_engine_policy_from_none_gives_0_1_0_defaults() -> None:
    policy = EnginePolicy.from_dict(None)
    assert (
        policy.strict_outputs,
        policy.max_steps,
        policy.workflow_timeout_seconds,
        policy.persist_checkpoints,
    ) == (True, None, None, True)
    assert policy == EnginePolicy()


def test_engine_policy_from_dict_ignores_unknown_keys_and_makes_timeouts_float() -> None:
    policy = EnginePolicy.from_dict(
        {"workflow_timeout_seconds": 2, "max_steps": 5, "strict_outputs": False, "zzz": 1}
    )
    assert policy.workflow_timeout_seconds == 2.0
    assert isinstance(policy.workflow_timeout_seconds, float)
    assert (policy.max_steps, policy.strict_outputs) == (5, False)


def test_engine_policy_from_dict_rejects_bad_values_with_value_error() -> None:
    with pytest.raises(ValueError, match=r"engine_policy\.max_steps must be > 0"):
        EnginePolicy.from_dict({"max_steps": 0})


def test_engine_policy_round_trips_through_json() -> None:
    policy = EnginePolicy.from_dict({"max_steps": 3, "workflow_timeout_seconds": 1.5})
    assert EnginePolicy.from_dict(through_json(policy.to_dict())) == policy


def test_handler_result_defaults_and_frozenness() -> None:
    result = HandlerResult(outputs=["ok"])
    assert (result.workflow_updates, result.node_updates, result.tags, result.error) == (
        None,
        None,
        None,
        None,
    )
    assert (result.waiting, result.waiting_prompt) == (False, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.waiting = True  # type: ignore[misc]


def test_workflow_result_defaults_and_frozenness() -> None:
    result = WorkflowResult("r", True, "succeeded", [], [], WorkflowState(), [])
    assert (result.error, result.waiting, result.waiting_prompt) == (None, False, None)
    assert (result.checkpoint, result.cancelled) == (None, False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.success = False  # type: ignore[misc]


def test_workflow_error_and_step_record_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ERROR.code = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        RECORD.step = 9  # type: ignore[misc]


# ---------------------------------------------------------------- helpers


def test_json_clone_returns_an_independent_json_copy() -> None:
    value = {"a": [1, {"b": (2, 3)}], "c": None}
    clone = json_clone(value)
    assert clone == {"a": [1, {"b": [2, 3]}], "c": None}
    clone["a"][1]["b"].append(4)
    assert value["a"][1]["b"] == (2, 3)


def test_json_clone_accepts_nan_like_json_dumps() -> None:
    assert math.isnan(json_clone([float("nan")])[0])


@pytest.mark.parametrize("bad", [{1, 2}, {"x": object()}, b"bytes", [datetime.now(UTC)]])
def test_json_clone_rejects_non_json_with_a_type_error(bad: Any) -> None:
    with pytest.raises(TypeError, match="JSON-serializable"):
        json_clone(bad)


def test_now_iso_is_utc_with_seconds_precision() -> None:
    before = int(time.time())
    text = now_iso()
    after = int(time.time())
    assert ISO.fullmatch(text)
    parsed = datetime.fromisoformat(text).timestamp()
    assert before <= parsed <= after


def test_now_iso_formats_a_given_timestamp() -> None:
    assert now_iso(0) == "1970-01-01T00:00:00+00:00"
    assert now_iso(1_700_000_000.9) == "2023-11-14T22:13:20+00:00"


def test_a_minimal_0_1_0_snapshot_dict_gets_its_time_stamps_filled_in() -> None:
    minimal = {"run_id": "r", "workflow_name": "w", "wf_hash": "h", "status": "running"}
    snap = RunSnapshot.from_dict(minimal)
    assert snap.started_at is not None and snap.updated_at is not None
    assert snap.started_at.endswith("+00:00")
    kept = RunSnapshot.from_dict({**minimal, "started_at": None, "updated_at": "2026-01-01"})
    assert (kept.started_at, kept.updated_at) == (None, "2026-01-01")
