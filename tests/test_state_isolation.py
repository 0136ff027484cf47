"""SPEC A4: handlers can never change the run's state except through HandlerResult."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from zeroflow import HandlerResult, InMemoryWorkflowStore, WorkflowContext, WorkflowEngine

SEED = {"cfg": {"tags": ["a", "b"], "inner": {"k": 1}}, "count": 1}


def definition(isolation: str | None = None) -> dict[str, Any]:
    wf: dict[str, Any] = {
        "workflow_name": "iso",
        "default_entry_node": "seed",
        "nodes": {
            "seed": {"handler": "seed", "outputs": {"ok": [{"target_node": "probe"}]}},
            "probe": {
                "handler": "probe",
                "outputs": {"ok": [{"target_node": "after"}]},
                "config": {"opt": {"list": [1, 2]}},
            },
            "after": {"handler": "after", "outputs": {"ok": []}},
        },
    }
    if isolation is not None:
        wf["engine_policy"] = {"state_isolation": isolation}
    return wf


def seed(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(
        outputs=["ok"], workflow_updates=copy.deepcopy(SEED), node_updates={"mine": {"v": [1]}}
    )


def run_probe(
    probe: Callable[[WorkflowContext], Any], isolation: str | None = None
) -> tuple[Any, list[Any]]:
    after_seen: list[Any] = []

    def after(ctx: WorkflowContext) -> HandlerResult:
        after_seen.append(json.loads(json.dumps(ctx.state.to_dict())))
        return HandlerResult(outputs=["ok"])

    def wrapped(ctx: WorkflowContext) -> HandlerResult:
        probe(ctx)
        return HandlerResult(outputs=["ok"])

    engine = WorkflowEngine(definition(isolation), {"seed": seed, "probe": wrapped, "after": after})
    return engine.run(initial_input={"in": {"x": [1]}}), after_seen


EXPECTED_STATE = {
    "input": {"in": {"x": [1]}},
    "workflow": SEED,
    "node": {"seed": {"mine": {"v": [1]}}},
}

MUTATIONS: dict[str, Callable[[WorkflowContext], Any]] = {
    "set workflow key": lambda c: c.state.workflow.__setitem__("new", 1),
    "delete workflow key": lambda c: c.state.workflow.__delitem__("count"),
    "update workflow": lambda c: c.state.workflow.update({"count": 2}),
    "setdefault": lambda c: c.state.workflow.setdefault("z", 1),
    "pop": lambda c: c.state.workflow.pop("count"),
    "popitem": lambda c: c.state.workflow.popitem(),
    "clear": lambda c: c.state.workflow.clear(),
    "ior": lambda c: c.state.workflow.__ior__({"x": 1}),
    "nested dict set": lambda c: c.state.workflow["cfg"]["inner"].__setitem__("k", 2),
    "nested list append": lambda c: c.state.workflow["cfg"]["tags"].append("c"),
    "nested list extend": lambda c: c.state.workflow["cfg"]["tags"].extend(["c"]),
    "nested list setitem": lambda c: c.state.workflow["cfg"]["tags"].__setitem__(0, "z"),
    "nested list delitem": lambda c: c.state.workflow["cfg"]["tags"].__delitem__(0),
    "nested list iadd": lambda c: c.state.workflow["cfg"]["tags"].__iadd__(["c"]),
    "nested list imul": lambda c: c.state.workflow["cfg"]["tags"].__imul__(2),
    "nested list insert": lambda c: c.state.workflow["cfg"]["tags"].insert(0, "c"),
    "nested list pop": lambda c: c.state.workflow["cfg"]["tags"].pop(),
    "nested list remove": lambda c: c.state.workflow["cfg"]["tags"].remove("a"),
    "nested list sort": lambda c: c.state.workflow["cfg"]["tags"].sort(),
    "nested list reverse": lambda c: c.state.workflow["cfg"]["tags"].reverse(),
    "nested list clear": lambda c: c.state.workflow["cfg"]["tags"].clear(),
    "input": lambda c: c.state.input.__setitem__("in", 0),
    "input nested": lambda c: c.state.input["in"]["x"].append(2),
    "node": lambda c: c.state.node.__setitem__("probe", {}),
    "node nested": lambda c: c.state.node["seed"]["mine"].__setitem__("v", 0),
    "node_state": lambda c: c.state.node["seed"].__setitem__("w", 0),
    "node_config": lambda c: c.node_config.__setitem__("opt", 0),
    "node_config nested": lambda c: c.node_config["opt"]["list"].append(3),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_readonly_state_refuses_every_mutation_with_a_helpful_type_error(mutation: str) -> None:
    errors: list[BaseException] = []

    def probe(ctx: WorkflowContext) -> None:
        try:
            MUTATIONS[mutation](ctx)
        except TypeError as exc:
            errors.append(exc)

    result, after_seen = run_probe(probe, "readonly")
    assert len(errors) == 1, "mutation was accepted"
    message = str(errors[0])
    assert "HandlerResult" in message
    assert "state_isolation" in message
    assert '"private"' in message  # the mode that lets a handler change its own view
    assert result.success
    assert after_seen == [EXPECTED_STATE]


@pytest.mark.parametrize("attr", ["workflow", "input", "node"])
def test_reassigning_a_state_attribute_is_refused_with_the_same_hint(attr: str) -> None:
    errors: list[BaseException] = []

    def probe(ctx: WorkflowContext) -> None:
        try:
            setattr(ctx.state, attr, {})
        except TypeError as exc:
            errors.append(exc)

    _, after_seen = run_probe(probe, "readonly")
    assert len(errors) == 1
    assert "HandlerResult" in str(errors[0])
    assert "state_isolation" in str(errors[0])
    assert after_seen == [EXPECTED_STATE]


def test_readonly_views_behave_like_plain_dicts_and_lists_for_reading() -> None:
    seen: dict[str, Any] = {}

    def probe(ctx: WorkflowContext) -> None:
        wf = ctx.state.workflow
        tags = wf["cfg"]["tags"]
        seen["isinstance"] = (
            isinstance(wf, dict),
            isinstance(tags, list),
            isinstance(ctx.node_config, dict),
        )
        seen["eq"] = (wf == SEED, tags == ["a", "b"], ctx.node_config == {"opt": {"list": [1, 2]}})
        seen["json"] = json.loads(json.dumps(wf))
        plain = dict(wf)
        plain["extra"] = 1
        seen["dict"] = plain
        seen["concat"] = tags + ["c"]  # noqa: RUF005 - list.__add__ on a view is the point
        seen["unpack"] = {**wf, "count": 9}
        deep = copy.deepcopy(wf)
        deep["cfg"]["tags"].append("c")
        seen["deepcopy"] = deep
        seen["deepcopy_types"] = (type(deep), type(deep["cfg"]["tags"]))
        shallow = copy.copy(tags)
        shallow.append("d")
        seen["copy"] = shallow
        seen["list"] = [*list(tags), "e"]
        seen["get"] = (wf.get("count"), wf.get("missing", 0), "cfg" in wf, len(tags))
        seen["sorted"] = sorted(tags, reverse=True)
        seen["node_state"] = dict(ctx.node_state)

    result, after_seen = run_probe(probe, "readonly")
    assert seen["isinstance"] == (True, True, True)
    assert seen["eq"] == (True, True, True)
    assert seen["json"] == SEED
    assert seen["dict"] == {**SEED, "extra": 1}
    assert seen["concat"] == ["a", "b", "c"]
    assert seen["unpack"] == {**SEED, "count": 9}
    assert seen["deepcopy"]["cfg"]["tags"] == ["a", "b", "c"]
    assert seen["deepcopy_types"] == (dict, list)
    assert seen["copy"] == ["a", "b", "d"]
    assert seen["list"] == ["a", "b", "e"]
    assert seen["get"] == (1, 0, True, 2)
    assert seen["sorted"] == ["b", "a"]
    assert seen["node_state"] == {}
    assert after_seen == [EXPECTED_STATE]
    assert result.state.to_dict() == EXPECTED_STATE


def test_copy_isolation_gives_each_handler_a_private_mutable_copy() -> None:
    seen: dict[str, Any] = {}

    def probe(ctx: WorkflowContext) -> None:
        wf = ctx.state.workflow
        seen["types"] = (type(wf), type(wf["cfg"]["tags"]), type(ctx.node_config))
        wf["new"] = 1
        wf["cfg"]["tags"].append("c")
        del wf["count"]
        ctx.state.input["in"]["x"].append(2)
        ctx.state.node["seed"]["mine"]["v"] = 0
        ctx.node_config["opt"]["list"].append(3)
        ctx.state.workflow = {}

    result, after_seen = run_probe(probe, "copy")
    assert seen["types"] == (dict, list, dict)
    assert after_seen == [EXPECTED_STATE]
    assert result.state.to_dict() == EXPECTED_STATE


def test_copy_isolation_gives_a_fresh_node_config_each_time() -> None:
    configs: list[Any] = []

    def probe(ctx: WorkflowContext) -> None:
        configs.append(ctx.node_config["opt"]["list"][:])
        ctx.node_config["opt"]["list"].append(99)

    wf = definition("copy")
    wf["nodes"]["probe"]["outputs"]["ok"].append({"target_node": "probe", "is_loopback": True})
    wf["engine_policy"]["max_steps"] = 4

    def wrapped(ctx: WorkflowContext) -> HandlerResult:
        probe(ctx)
        return HandlerResult(outputs=["ok"] if ctx.wave == 1 else [])

    after = lambda ctx: HandlerResult(outputs=["ok"])  # noqa: E731
    WorkflowEngine(wf, {"seed": seed, "probe": wrapped, "after": after}).run()
    assert configs == [[1, 2], [1, 2]]


def test_unknown_isolation_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="state_isolation"):
        WorkflowEngine(definition("shared"), {})


@pytest.mark.parametrize("isolation", ["readonly", "private", "copy"])
def test_result_state_checkpoint_and_store_hold_plain_independent_data(isolation: str) -> None:
    store = InMemoryWorkflowStore()

    def ask(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(outputs=[], waiting=True)

    wf = definition(isolation)
    engine = WorkflowEngine(wf, {"seed": seed, "probe": ask, "after": ask}, store=store)
    result = engine.run(initial_input={"in": {"x": [1]}}, run_id="r")
    cp = result.checkpoint
    assert cp is not None
    for state in (result.state, cp.state):
        assert type(state.workflow) is dict
        assert type(state.workflow["cfg"]) is dict
        assert type(state.workflow["cfg"]["tags"]) is list
        assert type(state.input["in"]["x"]) is list
        assert type(state.node["seed"]) is dict
    result.state.workflow["cfg"]["tags"].append("r")
    cp.state.workflow["cfg"]["tags"].append("c")
    cp.ready_now.append("zzz")
    stored = store.load_snapshot("r")
    assert type(stored.state.workflow["cfg"]["tags"]) is list
    assert stored.state.workflow == SEED
    assert stored.ready_now == ["probe"]
    stored.state.workflow["count"] = 100
    assert store.load_snapshot("r").state.workflow == SEED
    assert result.state.workflow["cfg"]["tags"] == ["a", "b", "r"]
    assert cp.state.workflow["cfg"]["tags"] == ["a", "b", "c"]


@pytest.mark.parametrize("isolation", ["readonly", "private", "copy"])
def test_mutating_a_handlers_own_update_after_returning_never_leaks(isolation: str) -> None:
    kept: dict[str, Any] = {}

    def leaky(ctx: WorkflowContext) -> HandlerResult:
        update = {"cfg": {"tags": ["a"]}}
        node_update = {"v": [1]}
        tags = ["t1"]
        kept.update(update=update, node_update=node_update, tags=tags)
        return HandlerResult(
            outputs=["ok"], workflow_updates=update, node_updates=node_update, tags=tags
        )

    def mutate_then_continue(ctx: WorkflowContext) -> HandlerResult:
        kept["update"]["cfg"]["tags"].append("LEAK")
        kept["update"]["new"] = "LEAK"
        kept["node_update"]["v"].append("LEAK")
        kept["tags"].append("LEAK")
        return HandlerResult(outputs=["ok"])

    seen: list[Any] = []

    def after(ctx: WorkflowContext) -> HandlerResult:
        seen.append(ctx.state.to_dict())
        return HandlerResult(outputs=["ok"])

    wf = definition(isolation)
    engine = WorkflowEngine(wf, {"seed": leaky, "probe": mutate_then_continue, "after": after})
    result = engine.run()
    expected = {"input": {}, "workflow": {"cfg": {"tags": ["a"]}}, "node": {"seed": {"v": [1]}}}
    assert seen == [expected]
    assert result.state.to_dict() == expected
    assert result.tags == ["t1"]


@pytest.mark.parametrize("isolation", ["readonly", "private", "copy"])
def test_a_handler_can_pass_state_values_back_as_updates(isolation: str) -> None:
    def reuse(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(
            outputs=["ok"],
            workflow_updates={"copy_of_cfg": ctx.state.workflow["cfg"], "n": ctx.node_config},
        )

    after = lambda ctx: HandlerResult(outputs=["ok"])  # noqa: E731
    wf = definition(isolation)
    result = WorkflowEngine(wf, {"seed": seed, "probe": reuse, "after": after}).run()
    assert result.success
    assert result.state.workflow["copy_of_cfg"] == SEED["cfg"]
    assert result.state.workflow["n"] == {"opt": {"list": [1, 2]}}
    assert type(result.state.workflow["copy_of_cfg"]["tags"]) is list


def test_the_definitions_config_is_not_aliased_in_copy_mode() -> None:
    wf = definition("copy")

    def probe(ctx: WorkflowContext) -> HandlerResult:
        ctx.node_config["opt"]["list"].append(3)
        return HandlerResult(outputs=["ok"])

    after = lambda ctx: HandlerResult(outputs=["ok"])  # noqa: E731
    WorkflowEngine(wf, {"seed": seed, "probe": probe, "after": after}).run()
    assert wf["nodes"]["probe"]["config"] == {"opt": {"list": [1, 2]}}
