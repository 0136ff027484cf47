"""Definition validation, zf/1 normalisation, conversion and schema agreement: edge cases."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from zeroflow import WorkflowDefinitionError, WorkflowEngine, convert, lint
from zeroflow._definition import compile_workflow
from zeroflow._grammar import check
from zeroflow._schema import check_instance, schema


def legacy(**top: Any) -> dict[str, Any]:
    return {
        "workflow_name": "w",
        "default_entry_node": "a",
        "nodes": {
            "a": {"handler": "a", "outputs": {"ok": [{"target_node": "b"}]}},
            "b": {"handler": "b", "outputs": {}},
        },
        **top,
    }


def zf1(**top: Any) -> dict[str, Any]:
    return {
        "version": "zf/1",
        "name": "w",
        "entry": "a",
        "nodes": {"a": {"handler": "a", "on": {"ok": "b"}}, "b": {"handler": "b"}},
        **top,
    }


def with_node(defn: dict[str, Any], node: str, **keys: Any) -> dict[str, Any]:
    out = copy.deepcopy(defn)
    out["nodes"][node].update(keys)
    return out


def _valid(defn: Any) -> bool:
    try:
        compile_workflow(defn)
    except WorkflowDefinitionError:
        return False
    return True


# ---------------------------------------------------------------- validation never crashes


@pytest.mark.parametrize(
    "top",
    [{"default_entry_node": ["a"]}, {"default_entry_node": {}}, {"default_error_node": ["b"]}],
)
def test_an_unhashable_entry_or_error_node_is_a_definition_error(top: dict[str, Any]) -> None:
    defn = legacy(**top)
    with pytest.raises(WorkflowDefinitionError, match="not in nodes"):
        WorkflowEngine(defn, {})
    [finding] = lint(defn)  # lint promises never to raise for a bad definition
    assert finding.code == "ZF100"


def test_a_null_state_contract_in_zf1_is_rejected_or_ignored_never_a_type_error() -> None:
    defn = with_node(zf1(), "a", state_contract=None)
    problems = check(defn)
    if problems:  # rejecting it is fine ...
        with pytest.raises(WorkflowDefinitionError):
            compile_workflow(defn)
    else:  # ... and so is accepting it, but then it must compile, lint and convert
        compile_workflow(defn)
        assert [f.code for f in lint(defn)] == []
        convert(defn, to="legacy")


def test_a_null_state_contract_in_legacy_converts_to_zf1() -> None:
    defn = with_node(legacy(), "a", state_contract=None)
    compile_workflow(defn)  # 0.1.0 accepts it
    result = convert(defn, to="zf/1")
    compile_workflow(result.definition)


# ---------------------------------------------------------------- pointers


def test_legacy_error_paths_escape_slashes_and_tildes_in_node_ids() -> None:
    defn = {
        "workflow_name": "w",
        "default_entry_node": "a/b",
        "nodes": {"a/b": {"handler": "h", "outputs": {"ok": [{"target_node": "nope"}]}}},
    }
    with pytest.raises(WorkflowDefinitionError) as info:
        compile_workflow(defn)
    assert info.value.path == "/nodes/a~1b/outputs/ok/0/target_node"
    defn = {
        "workflow_name": "w",
        "default_entry_node": "x~y",
        "nodes": {"x~y": {"handler": "h", "outputs": {}, "run_policy": {"max_retries": -1}}},
    }
    with pytest.raises(WorkflowDefinitionError) as info:
        compile_workflow(defn)
    assert info.value.path == "/nodes/x~0y/run_policy"


def test_the_cycle_fix_for_a_zf1_definition_names_the_zf1_key() -> None:
    defn = with_node(zf1(), "b", on={"ok": "a"})
    with pytest.raises(WorkflowDefinitionError, match="cycle detected") as info:
        compile_workflow(defn)
    assert "loop" in str(info.value) and "is_loopback" not in str(info.value)


# ---------------------------------------------------------------- schema vs validator


@pytest.mark.parametrize("key", ["max_concurrency", "max_subflow_depth"])
@pytest.mark.parametrize("fmt", ["zf/1", "legacy"])
def test_a_null_engine_limit_is_judged_alike_by_schema_and_validator(fmt: str, key: str) -> None:
    defn = zf1(defaults={key: None}) if fmt == "zf/1" else legacy(engine_policy={key: None})
    schema_ok = check_instance(defn, schema(fmt)) == []
    assert schema_ok == _valid(defn)
    if fmt == "zf/1" and not schema_ok:
        assert [e.path for e in check(defn)] == [f"/defaults/{key}"]


def test_a_null_backoff_is_judged_alike_by_schema_and_validator() -> None:
    defn = with_node(zf1(), "a", retry={"max_attempts": 2, "backoff": None})
    assert (check_instance(defn, schema("zf/1")) == []) == _valid(defn)


# ---------------------------------------------------------------- conversion


@pytest.mark.parametrize(
    "defn",
    [
        legacy(workflow_name=""),
        legacy(workflow_name=7),
        legacy(description=3),
        with_node(legacy(), "a", label=5),
        with_node(legacy(), "a", meta="notes"),
        with_node(legacy(), "a", map={"over": "input.items", "batch": 10}),
        legacy(
            nodes={"a": {"kind": "subflow", "subflow": {"workflow": ""}, "outputs": {}}},
        ),
    ],
    ids=["empty-name", "int-name", "int-description", "int-label", "str-meta", "map-key", "sub"],
)
def test_legacy_to_zf1_yields_valid_zf1_or_reports_a_loss(defn: dict[str, Any]) -> None:
    compile_workflow(defn)  # valid legacy
    result = convert(defn, to="zf/1")
    assert result.losses or check(result.definition) == []


@pytest.mark.parametrize(
    "defn",
    [
        with_node(legacy(), "a", outputs={"ok": [{"target_node": "b", "note": "why"}]}),
        with_node(legacy(), "a", run_policy={"max_retries": 2, "retry_sleep": 5}),
        with_node(legacy(), "a", on_error=[{"target_node": "b", "owner": "ops"}]),
        with_node(legacy(), "b", join={"mode": "and", "wait_for": ["a"], "timeout": 5}),
    ],
    ids=["edge", "run_policy", "catcher", "join"],
)
def test_legacy_keys_dropped_inside_nested_objects_are_reported(defn: dict[str, Any]) -> None:
    assert convert(defn, to="zf/1").losses != ()
