"""state_contract.input_schema: a run's initial_input checked before the run exists."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import zeroflow
from zeroflow import (
    HandlerResult,
    InitialInputError,
    WorkflowContext,
    WorkflowDefinitionError,
    WorkflowEngine,
    convert,
    lint,
)
from zeroflow.stores.memory import InMemoryWorkflowStore
from zeroflow.testing import EventRecorder

ORDER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["order", "customer"],
    "properties": {
        "order": {
            "type": "object",
            "required": ["id"],
            "properties": {
                "id": {"type": "integer", "minimum": 1},
                "lines": {"type": "array", "items": {"type": "object", "required": ["sku"]}},
            },
        },
        "customer": {"type": "string", "minLength": 1},
    },
    "additionalProperties": False,
}
GOOD = {"order": {"id": 7, "lines": [{"sku": "a"}]}, "customer": "ada"}


def flow(mode: str | None = None, schema: Any = ORDER_SCHEMA) -> dict[str, Any]:
    defn: dict[str, Any] = {
        "workflow_name": "orders",
        "default_entry_node": "take",
        "state_contract": {"input_schema": schema},
        "nodes": {"take": {"handler": "take", "outputs": {"ok": []}}},
    }
    if mode is not None:
        defn["engine_policy"] = {"contracts": mode}
    return defn


calls: list[str] = []


def take(ctx: WorkflowContext) -> HandlerResult:
    calls.append(ctx.run_id)
    return HandlerResult(outputs=["ok"])


def engine(mode: str | None = None, schema: Any = ORDER_SCHEMA, **kw: Any) -> WorkflowEngine:
    return WorkflowEngine(flow(mode, schema), {"take": take}, **kw)


def test_a_matching_input_runs() -> None:
    assert engine().run(GOOD).status == "succeeded"


def test_a_bad_input_is_refused_before_anything_is_stored_or_run() -> None:
    store = InMemoryWorkflowStore()
    heard = EventRecorder()
    calls.clear()
    bad = {"order": {"id": "seven", "lines": [{}]}, "extra": 1}
    with pytest.raises(InitialInputError) as caught:
        engine(store=store, event_callback=heard).run(bad, run_id="r1")
    err = caught.value
    assert isinstance(err, ValueError) and isinstance(err, zeroflow.ZeroflowError)
    assert err.code == "CONTRACT_VIOLATION"
    assert sorted(err.problems) == [
        ("", "missing required key 'customer'"),
        ("/extra", "unknown key 'extra'"),
        ("/order/id", "'seven' is not of type integer"),
        ("/order/lines/0", "missing required key 'sku'"),
    ]
    assert "/order/id" in str(err) and "no run was started" in str(err)
    assert calls == [] and heard.events == []
    assert store.list_metadata() == []
    with pytest.raises(zeroflow.RunNotFoundError):
        store.load_snapshot("r1")
    # the same id is free for a good input afterwards
    assert engine(store=store).run(GOOD, run_id="r1").status == "succeeded"


def test_every_problem_is_reported_and_the_message_stays_short() -> None:
    schema = {"type": "object", "additionalProperties": {"type": "integer"}}
    bad = {f"k{i}": "x" * 10_000 for i in range(5_000)}
    with pytest.raises(InitialInputError) as caught:
        engine(schema=schema).run(bad)
    assert len(caught.value.problems) == 5_000
    assert {at for at, _ in caught.value.problems} == {f"/k{i}" for i in range(5_000)}
    message = str(caught.value)
    assert len(message) < 3_000 and "5000 problems" in message and "and 4990 more" in message


def test_a_deep_input_is_checked_to_the_bottom() -> None:
    tree = {"$defs": {"t": {"type": "object", "properties": {"c": {"$ref": "#/$defs/t"}}}}}
    schema = {**tree, "$ref": "#/$defs/t"}
    deep: Any = "leaf"
    for _ in range(150):
        deep = {"c": deep}
    with pytest.raises(InitialInputError) as caught:
        engine(schema=schema).run(deep)
    ((at, problem),) = caught.value.problems
    assert at == "/c" * 150 and "not of type object" in problem
    fine: Any = {}
    for _ in range(150):
        fine = {"c": fine}
    assert engine(schema=schema).run(fine).status == "succeeded"


def test_under_warn_the_run_starts_and_a_warning_lists_the_problems() -> None:
    heard = EventRecorder()
    result = engine("warn", event_callback=heard).run({"order": {"id": 0}})
    assert result.status == "succeeded"
    (warning,) = heard.of("node:warning")
    assert warning.node is None and warning.data["contract"] == "input_schema"
    assert warning.data["problem_count"] == 2
    assert {p["at"] for p in warning.data["problems"]} == {"", "/order/id"}
    assert [e.kind for e in heard.events[:2]] == ["wf:start", "node:warning"]


def test_off_checks_nothing_and_true_is_no_schema() -> None:
    assert engine("off").run({"anything": 1}).status == "succeeded"
    assert engine(schema=True).run({"anything": 1}).status == "succeeded"
    with pytest.raises(InitialInputError, match="the schema is false"):
        engine(schema=False).run({})


def test_stream_and_astream_refuse_at_the_call() -> None:
    with pytest.raises(InitialInputError):
        engine().stream({"order": {}})
    with pytest.raises(InitialInputError):
        engine().astream({"order": {}})

    async def arun() -> str:
        return (await engine().arun(GOOD)).status

    assert asyncio.run(arun()) == "succeeded"
    with pytest.raises(InitialInputError):
        asyncio.run(engine().arun({}))


def test_a_resume_does_not_check_the_input_again() -> None:
    store = InMemoryWorkflowStore()
    defn = flow("warn")
    defn["nodes"] = {
        "take": {"handler": "take", "outputs": {"ok": [{"target_node": "ask"}]}},
        "ask": {"kind": "wait", "outputs": {"ok": []}},
    }
    heard = EventRecorder()
    started = WorkflowEngine(defn, {"take": take}, store=store, event_callback=heard)
    assert started.run({}, run_id="w").status == "waiting"
    assert len(heard.of("node:warning")) == 1
    later = EventRecorder()
    resumed = WorkflowEngine(defn, {"take": take}, store=store, event_callback=later)
    assert resumed.resume("w", resume_input={}).status == "succeeded"
    assert later.of("node:warning") == []


@pytest.mark.parametrize(
    ("schema", "where", "what"),
    [
        ("strict", "/state_contract/input_schema", "must be a JSON Schema"),
        ({"type": "strnig"}, "/state_contract/input_schema/type", "'type' must be one of"),
        ({"maxLength": 3}, "/state_contract/input_schema/maxLength", "does not support"),
        ({"pattern": "("}, "/state_contract/input_schema/pattern", "does not compile"),
        ({"$ref": "#/$defs/nope"}, "/state_contract/input_schema/$ref", "points at nothing"),
        ({"$ref": "http://x/s.json"}, "/state_contract/input_schema/$ref", "local reference"),
        ({"$ref": "#"}, "/state_contract/input_schema", "leads back"),
        (
            {"$defs": {"a": {"allOf": [{"$ref": "#/$defs/b"}]}, "b": {"$ref": "#/$defs/a"}}},
            "/state_contract/input_schema/$defs/",
            "leads back",
        ),
        ({"required": "order"}, "/state_contract/input_schema/required", "list of key names"),
        ({"minLength": -1}, "/state_contract/input_schema/minLength", "integer >= 0"),
        ({"minimum": "1"}, "/state_contract/input_schema/minimum", "must be a number"),
        ({"items": [{}]}, "/state_contract/input_schema/items", "one schema"),
        ({"anyOf": []}, "/state_contract/input_schema/anyOf", "non-empty list"),
        ({"properties": {"a": 3}}, "/state_contract/input_schema/properties/a", "JSON object"),
        ({"properties": []}, "/state_contract/input_schema/properties", "name -> schema"),
    ],
)
def test_a_schema_that_is_not_a_schema_is_a_definition_error(
    schema: Any, where: str, what: str
) -> None:
    for defn in (flow(schema=schema), convert_to_zf1(flow(schema=schema))):
        with pytest.raises(WorkflowDefinitionError, match="input_schema") as caught:
            WorkflowEngine(defn, {"take": take})
        assert what in str(caught.value)
        assert caught.value.path.startswith(where)


def convert_to_zf1(legacy: dict[str, Any]) -> dict[str, Any]:
    """The zf/1 spelling of ``legacy``, written by hand (convert refuses a broken schema)."""
    return {
        "version": "zf/1",
        "name": legacy["workflow_name"],
        "entry": legacy["default_entry_node"],
        "state_contract": legacy["state_contract"],
        "nodes": {"take": {"handler": "take", "on": {"ok": []}}},
    }


def test_a_shared_sub_schema_is_not_a_loop() -> None:
    shared = {"$defs": {"s": {"type": "string"}}}
    schema = {
        **shared,
        "allOf": [{"$ref": "#/$defs/s"}, {"$ref": "#/$defs/s"}],
        "anyOf": [{"$ref": "#/$defs/s"}],
    }
    with pytest.raises(InitialInputError) as caught:  # it compiles, and checks
        engine(schema=schema).run({})
    assert len(caught.value.problems) == 3
    tree = {"$defs": {"t": {"properties": {"c": {"$ref": "#/$defs/t"}}}}, "$ref": "#/$defs/t"}
    WorkflowEngine(flow(schema=tree), {"take": take})


def test_boolean_sub_schemas_are_checked_not_crashed_on() -> None:
    schema = {"type": "object", "properties": {"never": False, "any": True}}
    with pytest.raises(InitialInputError) as caught:
        engine(schema=schema).run({"never": 1, "any": [1]})
    assert caught.value.problems == [("/never", "no value is allowed here (the schema is false)")]


def test_zf1_spells_it_the_same_and_is_strict_about_it() -> None:
    zf1 = convert(flow()).definition
    assert zf1["state_contract"] == {"input_schema": ORDER_SCHEMA}
    with pytest.raises(InitialInputError):
        WorkflowEngine(zf1, {"take": take}).run({})
    zf1["state_contract"]["output_schema"] = {}
    with pytest.raises(WorkflowDefinitionError, match="unknown key 'output_schema'"):
        WorkflowEngine(zf1, {"take": take})
    zf1["state_contract"] = None
    with pytest.raises(WorkflowDefinitionError, match="state_contract must be an object"):
        WorkflowEngine(zf1, {"take": take})
    legacy = flow()
    legacy["state_contract"] = ["input_schema"]
    with pytest.raises(WorkflowDefinitionError, match="state_contract must be an object"):
        WorkflowEngine(legacy, {"take": take})
    legacy["state_contract"] = None  # legacy null: absent, as elsewhere in the legacy dict
    assert WorkflowEngine(legacy, {"take": take}).run({}).status == "succeeded"


def test_lint_holds_input_reads_to_what_the_input_schema_requires() -> None:
    defn = flow()
    defn["nodes"]["take"]["state_contract"] = {
        "reads_from": ["input.order.id", "input.coupon", "state.input.customer"]
    }
    found = [f for f in lint(defn) if f.code == "ZF203"]
    assert [(f.pointer, f.message) for f in found] == [
        (
            "/nodes/take/state_contract/reads_from/1",
            "node 'take' reads input key 'coupon', which the workflow's input_schema does not "
            "require, so a run may start without it",
        )
    ]
    del defn["state_contract"]
    assert [f for f in lint(defn) if f.code == "ZF203"] == []  # no schema: input not analysed


def subflow_parent() -> dict[str, Any]:
    return {
        "workflow_name": "parent",
        "default_entry_node": "sub",
        "nodes": {
            "sub": {
                "subflow": {"workflow": "orders", "input": {"order": "input.order"}},
                "outputs": {"ok": []},
                "on_error": [{"target_node": "fix", "codes": ["CONTRACT_VIOLATION"]}],
            },
            "fix": {"handler": "take", "outputs": {"ok": []}},
        },
    }


def test_a_subflow_child_is_held_to_its_own_input_schema() -> None:
    calls.clear()
    parent = WorkflowEngine(subflow_parent(), {"take": take}, subflows={"orders": flow()})
    result = parent.run({"order": {"id": "x"}})
    assert result.trace == ["sub", "fix"]
    error = result.state.workflow["__error__"]
    assert error["code"] == "CONTRACT_VIOLATION" and error["node"] == "sub"
    assert {p["at"] for p in error["details"]["problems"]} == {"", "/order/id"}
    assert "subflow 'orders'" in error["message"]
    assert len(calls) == 1  # only the catcher ran: the child never started
    heard = EventRecorder()
    warned = WorkflowEngine(
        subflow_parent(), {"take": take}, subflows={"orders": flow("warn")}, event_callback=heard
    ).run({"order": {"id": 1}})
    assert warned.trace == ["sub"] and warned.status == "succeeded"
    (warning,) = [e for e in heard.of("node:warning") if e.data.get("contract")]
    assert warning.node == "sub" and warning.data["problem_count"] == 1
