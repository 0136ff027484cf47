"""SPEC A2: the legacy definition format is validated once, hashed like 0.1.0, never mutated."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

import zeroflow
from zeroflow import HandlerResult, WorkflowEngine
from zeroflow.core.validation import validate_workflow_definition

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "v010"


def ok(ctx: Any) -> HandlerResult:
    return HandlerResult(outputs=["ok"])


def base() -> dict[str, Any]:
    """a -ok-> b, b has no edges; a valid definition to break one key at a time."""
    return {
        "workflow_name": "wf",
        "default_entry_node": "a",
        "nodes": {
            "a": {"handler": "ok", "outputs": {"ok": [{"target_node": "b"}]}},
            "b": {"handler": "ok", "outputs": {"ok": []}},
        },
    }


def diamond(join: Any) -> dict[str, Any]:
    """s -> l, r -> m; ``join`` is m's join block."""
    return {
        "workflow_name": "wf",
        "default_entry_node": "s",
        "nodes": {
            "s": {"handler": "ok", "outputs": {"ok": [{"target_node": "l"}, {"target_node": "r"}]}},
            "l": {"handler": "ok", "outputs": {"ok": [{"target_node": "m"}]}},
            "r": {"handler": "ok", "outputs": {"ok": [{"target_node": "m"}]}},
            "m": {"handler": "ok", "outputs": {"ok": []}, "join": join},
            "c": {"handler": "ok", "outputs": {"ok": []}},
        },
    }


def chain(edges: dict[str, list[str]], loopbacks: frozenset[tuple[str, str]] = frozenset()) -> dict:
    nodes = {
        n: {
            "handler": "ok",
            "outputs": {
                "ok": [{"target_node": t, "is_loopback": (n, t) in loopbacks} for t in targets]
            },
        }
        for n, targets in edges.items()
    }
    return {"workflow_name": "wf", "default_entry_node": next(iter(edges)), "nodes": nodes}


def message_of(workflow_def: Any) -> str:
    with pytest.raises(ValueError) as info:
        WorkflowEngine(workflow_def, {"ok": ok})
    return str(info.value)


def test_a_valid_definition_builds_an_engine() -> None:
    engine = WorkflowEngine(base(), {"ok": ok})
    assert engine.run().trace == ["a", "b"]


def test_validation_errors_are_value_errors_of_our_hierarchy() -> None:
    with pytest.raises(zeroflow.WorkflowDefinitionError) as info:
        WorkflowEngine({}, {})
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, zeroflow.ZeroflowError)


def test_non_json_definition_is_rejected_with_the_json_message() -> None:
    wf = base()
    wf["nodes"]["a"]["config"] = {"s": {1, 2}}
    msg = message_of(wf)
    assert msg.startswith("workflow definition must be JSON-serializable")
    assert "set" in msg


@pytest.mark.parametrize(
    ("wf", "missing"),
    [
        ({}, "workflow_name, default_entry_node, nodes"),
        ({"workflow_name": "x"}, "default_entry_node, nodes"),
        ({"default_entry_node": "a", "nodes": {"a": {}}}, "workflow_name"),
        ({"workflow_name": "x", "default_entry_node": "a"}, "nodes"),
    ],
)
def test_missing_required_keys_are_named_in_fixed_order(wf: dict, missing: str) -> None:
    assert f"missing required keys: {missing}" in message_of(wf)


@pytest.mark.parametrize("nodes", [{}, [], "a", None])
def test_nodes_must_be_a_non_empty_dict(nodes: Any) -> None:
    wf = base()
    wf["nodes"] = nodes
    assert "'nodes' must be a non-empty dict" in message_of(wf)


def test_entry_node_must_exist() -> None:
    wf = base()
    wf["default_entry_node"] = "zz"
    assert "entry node 'zz' not in nodes" in message_of(wf)


def test_error_node_must_exist_when_given() -> None:
    wf = base()
    wf["default_error_node"] = "ee"
    assert "error node 'ee' not in nodes" in message_of(wf)


def test_error_node_none_is_accepted() -> None:
    wf = base()
    wf["default_error_node"] = None
    WorkflowEngine(wf, {"ok": ok})


def test_entry_error_is_reported_before_node_errors() -> None:
    wf = base()
    wf["default_entry_node"] = "zz"
    del wf["nodes"]["a"]["handler"]
    assert "entry node 'zz' not in nodes" in message_of(wf)


def test_node_without_handler_key_is_rejected() -> None:
    wf = base()
    del wf["nodes"]["a"]["handler"]
    assert "node 'a' missing 'handler'" in message_of(wf)


def test_node_without_outputs_key_is_rejected() -> None:
    wf = base()
    del wf["nodes"]["a"]["outputs"]
    assert "node 'a' missing 'outputs'" in message_of(wf)


def test_node_that_is_not_a_dict_is_rejected_naming_the_node() -> None:
    wf = base()
    wf["nodes"]["a"] = "x"
    assert "node 'a'" in message_of(wf)


def test_handler_none_passes_construction() -> None:
    wf = base()
    wf["nodes"]["b"]["handler"] = None
    WorkflowEngine(wf, {"ok": ok})


def test_outputs_must_be_a_dict() -> None:
    wf = base()
    wf["nodes"]["a"]["outputs"] = []
    assert "node 'a' outputs must be a dict" in message_of(wf)


def test_empty_outputs_dict_is_accepted() -> None:
    wf = base()
    wf["nodes"]["b"]["outputs"] = {}
    WorkflowEngine(wf, {"ok": ok})


def test_output_value_must_be_a_list() -> None:
    wf = base()
    wf["nodes"]["a"]["outputs"] = {"ok": {"target_node": "b"}}
    assert "node 'a' output 'ok' must be a list" in message_of(wf)


def test_edge_must_be_a_dict() -> None:
    wf = base()
    wf["nodes"]["a"]["outputs"] = {"ok": ["b"]}
    assert "node 'a' output 'ok' edge must be a dict" in message_of(wf)


def test_edge_must_have_target_node() -> None:
    wf = base()
    wf["nodes"]["a"]["outputs"] = {"ok": [{}]}
    assert "node 'a' output 'ok' edge missing 'target_node'" in message_of(wf)


@pytest.mark.parametrize("target", ["", None, 3])
def test_target_node_must_be_a_non_empty_string(target: Any) -> None:
    wf = base()
    wf["nodes"]["a"]["outputs"] = {"ok": [{"target_node": target}]}
    assert "node 'a' output 'ok' target_node must be a non-empty string" in message_of(wf)


def test_target_node_must_exist() -> None:
    wf = base()
    wf["nodes"]["a"]["outputs"] = {"ok": [{"target_node": "q"}]}
    assert "node 'a' output 'ok' references unknown target 'q'" in message_of(wf)


@pytest.mark.parametrize(
    "contract",
    [
        {"reads_from": "x", "writes_to": []},
        {"reads_from": [], "writes_to": "x"},
    ],
)
def test_state_contract_lists_are_checked(contract: dict) -> None:
    wf = base()
    wf["nodes"]["a"]["state_contract"] = contract
    assert "node 'a' state_contract.reads_from and writes_to must be lists" in message_of(wf)


def test_state_contract_with_only_reads_from_is_accepted() -> None:
    wf = base()
    wf["nodes"]["a"]["state_contract"] = {"reads_from": ["x"]}
    WorkflowEngine(wf, {"ok": ok})


def test_state_contract_that_is_not_a_dict_raises_value_error_not_attribute_error() -> None:
    wf = base()
    wf["nodes"]["a"]["state_contract"] = "x"
    assert "node 'a'" in message_of(wf)


def test_join_that_is_not_a_dict_raises_value_error_not_attribute_error() -> None:
    assert "node 'm'" in message_of(diamond("x"))


@pytest.mark.parametrize("mode", ["xor", "AND"])
def test_join_mode_must_be_or_or_and(mode: str) -> None:
    assert f"node 'm' join.mode must be 'or' or 'and', got '{mode}'" in message_of(
        diamond({"mode": mode, "wait_for": ["l", "r"]})
    )


def test_join_mode_none_is_shown_as_its_repr() -> None:
    assert "node 'm' join.mode must be 'or' or 'and', got None" in message_of(
        diamond({"mode": None})
    )


@pytest.mark.parametrize("join", [{"mode": "and"}, {"mode": "and", "wait_for": []}])
def test_and_join_needs_a_non_empty_wait_for(join: dict) -> None:
    assert "node 'm' join.mode='and' requires a non-empty wait_for list" in message_of(
        diamond(join)
    )


def test_and_join_with_a_string_wait_for_is_rejected() -> None:
    assert "node 'm' join.mode='and' requires a non-empty wait_for list" in message_of(
        diamond({"mode": "and", "wait_for": "l"})
    )


def test_wait_for_must_name_existing_nodes() -> None:
    assert "node 'm' wait_for references unknown node 'zz'" in message_of(
        diamond({"mode": "and", "wait_for": ["l", "zz"]})
    )


def test_wait_for_node_must_have_an_edge_to_the_join() -> None:
    assert "node 'm' wait_for includes 'c' but no declared edge reaches 'm'" in message_of(
        diamond({"mode": "and", "wait_for": ["l", "c"]})
    )


def test_empty_join_block_is_accepted_as_or() -> None:
    WorkflowEngine(diamond({}), {"ok": ok})


CYCLE_TAIL = ". Mark the closing edge with 'is_loopback': true if the loop is intentional."


def test_two_node_forward_cycle_gives_the_exact_message() -> None:
    msg = message_of(chain({"a": ["b"], "b": ["a"]}))
    assert msg == "cycle detected in forward edges: a -> b -> a" + CYCLE_TAIL


@pytest.mark.parametrize(
    ("edges", "cycle"),
    [
        ({"a": ["b"], "b": ["b"]}, "b -> b"),
        ({"a": ["b"], "b": ["c"], "c": ["b"]}, "b -> c -> b"),
        ({"a": [], "x": ["y"], "y": ["x"]}, "x -> y -> x"),
    ],
)
def test_forward_cycles_are_found_anywhere_and_shown(edges: dict, cycle: str) -> None:
    msg = message_of(chain(edges))
    assert msg.startswith("cycle detected in forward edges: ")
    assert cycle in msg
    assert msg.endswith(CYCLE_TAIL)


def test_cycle_message_includes_the_dfs_prefix_like_0_1_0() -> None:
    msg = message_of(chain({"a": ["b"], "b": ["b"]}))
    assert "cycle detected in forward edges: a -> b -> b." in msg


def test_a_cycle_closed_by_a_loopback_edge_is_accepted() -> None:
    WorkflowEngine(chain({"a": ["b"], "b": ["a"]}, frozenset({("b", "a")})), {"ok": ok})


def test_a_self_loopback_is_accepted() -> None:
    WorkflowEngine(chain({"a": ["a"]}, frozenset({("a", "a")})), {"ok": ok})


@pytest.mark.parametrize("value", [0, -1])
def test_max_steps_must_be_positive(value: int) -> None:
    wf = base()
    wf["engine_policy"] = {"max_steps": value}
    assert "engine_policy.max_steps must be > 0" in message_of(wf)


@pytest.mark.parametrize("value", [0, -1, 0.0])
def test_workflow_timeout_must_be_positive(value: float) -> None:
    wf = base()
    wf["engine_policy"] = {"workflow_timeout_seconds": value}
    assert "engine_policy.workflow_timeout_seconds must be > 0" in message_of(wf)


def test_bad_max_steps_is_reported_before_bad_timeout() -> None:
    wf = base()
    wf["engine_policy"] = {"max_steps": 0, "workflow_timeout_seconds": 0}
    assert "engine_policy.max_steps must be > 0" in message_of(wf)


def test_cycles_are_reported_before_engine_policy() -> None:
    wf = chain({"a": ["b"], "b": ["a"]})
    wf["engine_policy"] = {"max_steps": 0}
    assert "cycle detected" in message_of(wf)


def test_null_policy_values_are_accepted() -> None:
    wf = base()
    wf["engine_policy"] = {"max_steps": None, "workflow_timeout_seconds": None}
    WorkflowEngine(wf, {"ok": ok})


def test_unknown_keys_are_ignored_everywhere() -> None:
    wf = base()
    wf["owner"] = "team"
    wf["nodes"]["a"]["description"] = "first"
    wf["nodes"]["a"]["outputs"]["ok"][0]["label"] = "go"
    wf["engine_policy"] = {"colour": "blue"}
    assert WorkflowEngine(wf, {"ok": ok}).run().trace == ["a", "b"]


def test_validate_workflow_definition_raises_the_same_errors() -> None:
    wf = base()
    wf["default_entry_node"] = "zz"
    with pytest.raises(ValueError, match="entry node 'zz' not in nodes"):
        validate_workflow_definition(wf)
    assert validate_workflow_definition(base()) is None
    assert zeroflow.validate_workflow_definition is validate_workflow_definition


def test_validation_runs_at_construction_not_at_run() -> None:
    wf = base()
    wf["nodes"]["a"]["outputs"] = {"ok": [{"target_node": "q"}]}
    with pytest.raises(ValueError):
        WorkflowEngine(wf, {"ok": ok})


# ---------------------------------------------------------------- hashing


@pytest.mark.parametrize(
    "name", sorted(json.loads((FIXTURES / "hashes.json").read_text(encoding="utf-8")))
)
def test_workflow_hash_equals_the_hash_0_1_0_printed(name: str) -> None:
    expected = json.loads((FIXTURES / "hashes.json").read_text(encoding="utf-8"))[name]
    engine = WorkflowEngine.from_files(FIXTURES / name, {})
    assert engine.workflow_hash == expected


def test_workflow_hash_is_sha256_of_sorted_json_with_ascii_escapes() -> None:
    wf = base()
    wf["workflow_name"] = "café €"
    wf["nodes"]["b"]["config"] = {"z": 1, "a": [1.5, None, True]}
    expected = hashlib.sha256(json.dumps(wf, sort_keys=True).encode("utf-8")).hexdigest()
    assert WorkflowEngine(wf, {"ok": ok}).workflow_hash == expected


def test_workflow_hash_ignores_key_order_but_not_content() -> None:
    wf = base()
    reordered = dict(reversed(list(wf.items())))
    assert WorkflowEngine(wf, {}).workflow_hash == WorkflowEngine(reordered, {}).workflow_hash
    changed = base()
    changed["workflow_name"] = "other"
    assert WorkflowEngine(changed, {}).workflow_hash != WorkflowEngine(wf, {}).workflow_hash


# ---------------------------------------------------------------- never mutated


def test_engine_never_mutates_the_definition() -> None:
    wf = diamond({"mode": "and", "wait_for": ["l", "r"]})
    wf["default_error_node"] = "c"
    wf["engine_policy"] = {"max_steps": 50}
    wf["nodes"]["s"]["config"] = {"nested": {"list": [1, 2]}}
    wf["nodes"]["s"]["run_policy"] = {"max_retries": 1, "retry_sleep_seconds": 0}
    before = copy.deepcopy(wf)
    engine = WorkflowEngine(wf, {"ok": ok})
    engine.run()
    assert wf == before


def test_one_definition_builds_many_engines() -> None:
    wf = base()
    engines = [WorkflowEngine(wf, {"ok": ok}) for _ in range(3)]
    assert {e.workflow_hash for e in engines} == {engines[0].workflow_hash}
    assert all(e.run().success for e in engines)


def test_mutating_the_definition_after_construction_does_not_change_the_engine() -> None:
    wf = base()
    engine = WorkflowEngine(wf, {"ok": ok})
    digest = engine.workflow_hash
    wf["nodes"]["a"]["outputs"]["ok"] = []
    assert engine.workflow_hash == digest
    assert engine.run().trace == ["a", "b"]


def test_config_passed_to_handlers_is_not_the_definitions_dict() -> None:
    wf = base()
    wf["nodes"]["a"]["config"] = {"k": [1]}
    seen: list[Any] = []

    def spy(ctx: Any) -> HandlerResult:
        seen.append(ctx.node_config)
        return HandlerResult(outputs=["ok"])

    WorkflowEngine(wf, {"ok": spy}).run()
    assert seen[0] == {"k": [1]}
    assert seen[0] is not wf["nodes"]["a"]["config"]


# ---------------------------------------------------------------- from_files


def test_from_files_reads_a_utf8_json_file(tmp_path: Path) -> None:
    wf = base()
    wf["workflow_name"] = "naïve ✓"
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(wf, ensure_ascii=False), encoding="utf-8")
    engine = WorkflowEngine.from_files(path, {"ok": ok})
    assert engine.workflow_hash == WorkflowEngine(wf, {"ok": ok}).workflow_hash
    assert engine.run().success


def test_from_files_accepts_a_string_path_and_passes_the_other_arguments(tmp_path: Path) -> None:
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(base()), encoding="utf-8")
    events: list[Any] = []
    store = zeroflow.InMemoryWorkflowStore()
    engine = WorkflowEngine.from_files(str(path), {"ok": ok}, {"svc": 1}, events.append, store)
    result = engine.run(run_id="r")
    assert result.success
    assert events
    assert store.load_snapshot("r").status == "succeeded"


def test_from_files_with_bad_json_raises_value_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"workflow_name": ', encoding="utf-8")
    with pytest.raises(ValueError) as info:
        WorkflowEngine.from_files(path, {"ok": ok})
    assert "broken.json" in str(info.value)


def test_from_files_with_a_missing_file_raises_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises((OSError, ValueError)) as info:
        WorkflowEngine.from_files(path, {"ok": ok})
    assert "nope.json" in str(info.value)


def test_from_files_validates_the_definition(tmp_path: Path) -> None:
    wf = base()
    wf["default_entry_node"] = "zz"
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(wf), encoding="utf-8")
    with pytest.raises(ValueError, match="entry node 'zz' not in nodes"):
        WorkflowEngine.from_files(path, {"ok": ok})
