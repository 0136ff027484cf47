"""SPEC A4, ``state_isolation: "private"``: handlers change what they receive, as in 0.1.0.

Mutations of ``ctx.state``, ``ctx.node_state``, ``ctx.node_config`` and
``ctx.item`` stay the handler's own (only returned updates reach the run), the
values are real ``dict`` / ``list`` instances, and nothing is deep-copied per node.
"""

from __future__ import annotations

import copy
import json
import pickle
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

from test_state_isolation import EXPECTED_STATE, MUTATIONS, SEED, run_probe, seed
from zeroflow import HandlerResult, WorkflowContext, WorkflowEngine
from zeroflow._grammar import check
from zeroflow._schema import check_instance, schema

PRIVATE = {"state_isolation": "private"}


def chain(*names: str, policy: dict[str, Any] | None = None, **config: Any) -> dict[str, Any]:
    """A chain of nodes, each with the handler of its own name; ``config`` per node name."""
    nodes: dict[str, Any] = {}
    for i, name in enumerate(names):
        edges = [{"target_node": names[i + 1]}] if i + 1 < len(names) else []
        nodes[name] = {"handler": name, "outputs": {"ok": edges}}
        if name in config:
            nodes[name]["config"] = config[name]
    return {
        "workflow_name": "private",
        "default_entry_node": names[0],
        "engine_policy": dict(PRIVATE if policy is None else policy),
        "nodes": nodes,
    }


def ok(**updates: Any) -> HandlerResult:
    return HandlerResult(outputs=["ok"], **updates)


# ------------------------------------------------------------------ mutations stay private


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_private_view_accepts_every_mutation_and_the_run_keeps_its_state(mutation: str) -> None:
    errors: list[BaseException] = []

    def probe(ctx: WorkflowContext) -> None:
        try:
            MUTATIONS[mutation](ctx)
        except Exception as exc:
            errors.append(exc)

    result, after_seen = run_probe(probe, "private")
    assert errors == []
    assert result.success
    assert after_seen == [EXPECTED_STATE]
    assert result.state.to_dict() == EXPECTED_STATE


def test_a_work_queue_popped_in_place_and_returned_becomes_the_new_queue() -> None:
    handled: list[Any] = []

    def fill(ctx: WorkflowContext) -> HandlerResult:
        return ok(workflow_updates={"queue": [{"id": 1}, {"id": 2}, {"id": 3}]})

    def work(ctx: WorkflowContext) -> HandlerResult:
        q = ctx.state.workflow["queue"]
        job = q.pop(0)
        job["done"] = True
        handled.append(job)
        label = "again" if q else "ok"
        return HandlerResult(outputs=[label], workflow_updates={"queue": q})

    wf = chain("fill", "work")
    wf["nodes"]["work"]["outputs"]["again"] = [{"target_node": "work", "is_loopback": True}]
    result = WorkflowEngine(wf, {"fill": fill, "work": work}).run()
    assert result.success, result.error
    assert handled == [{"id": 1, "done": True}, {"id": 2, "done": True}, {"id": 3, "done": True}]
    assert result.state.workflow["queue"] == []
    assert result.trace == ["fill", "work", "work", "work"]


def test_sorting_input_and_setdefault_on_input_stay_in_the_handler() -> None:
    seen: dict[str, Any] = {}

    def first(ctx: WorkflowContext) -> HandlerResult:
        items = ctx.state.input["items"]
        items.sort()
        seen["sorted"] = list(ctx.state.input["items"])
        opts = ctx.state.input["opts"].setdefault("retries", 3)
        ctx.state.input.setdefault("extra", {})["k"] = 1
        return ok(workflow_updates={"smallest": items[0], "retries": opts})

    def second(ctx: WorkflowContext) -> HandlerResult:
        seen["input"] = ctx.state.input
        return ok()

    result = WorkflowEngine(chain("first", "second"), {"first": first, "second": second}).run(
        initial_input={"items": [3, 1, 2], "opts": {}}
    )
    assert result.success, result.error
    assert seen["sorted"] == [1, 2, 3]
    assert seen["input"] == {"items": [3, 1, 2], "opts": {}}
    assert result.state.input == {"items": [3, 1, 2], "opts": {}}
    assert result.state.workflow == {"smallest": 1, "retries": 3}


def test_changing_node_config_is_private_to_each_visit() -> None:
    configs: list[Any] = []

    def probe(ctx: WorkflowContext) -> HandlerResult:
        configs.append(copy.deepcopy(ctx.node_config))
        ctx.node_config["opt"]["list"].append(99)
        ctx.node_config.setdefault("added", True)
        ctx.node_config.pop("name")
        visits = ctx.node_state.get("visits", 0) + 1
        label = "again" if visits < 3 else "ok"
        return HandlerResult(outputs=[label], node_updates={"visits": visits})

    wf = chain("probe", probe={"opt": {"list": [1, 2]}, "name": "p"})
    wf["nodes"]["probe"]["outputs"]["again"] = [{"target_node": "probe", "is_loopback": True}]
    result = WorkflowEngine(wf, {"probe": probe}).run()
    assert result.success, result.error
    assert configs == [{"opt": {"list": [1, 2]}, "name": "p"}] * 3
    assert wf["nodes"]["probe"]["config"] == {"opt": {"list": [1, 2]}, "name": "p"}


def test_node_state_is_a_mutable_dict_of_the_same_kind_on_every_visit() -> None:
    kinds: list[type] = []

    def loop(ctx: WorkflowContext) -> HandlerResult:
        ns = ctx.node_state
        kinds.append(type(ns))
        ns["scratch"] = "mine"  # a private copy: never stored
        ns.setdefault("hist", []).append(ctx.step)
        count = ns.get("count", 0) + 1
        label = "again" if count < 3 else "ok"
        return HandlerResult(outputs=[label], node_updates={"count": count})

    wf = chain("loop")
    wf["nodes"]["loop"]["outputs"]["again"] = [{"target_node": "loop", "is_loopback": True}]
    result = WorkflowEngine(wf, {"loop": loop}).run()
    assert result.success, result.error
    assert len(kinds) == 3
    assert len(set(kinds)) == 1
    assert issubclass(kinds[0], dict)
    assert result.state.node == {"loop": {"count": 3}}


@pytest.mark.parametrize("isolation", ["readonly", "private"])
def test_node_state_before_and_after_the_first_write_is_the_same_kind(isolation: str) -> None:
    kinds: list[type] = []

    def loop(ctx: WorkflowContext) -> HandlerResult:
        kinds.append(type(ctx.node_state))
        count = ctx.state.node.get("loop", {}).get("count", 0) + 1
        return HandlerResult(
            outputs=["again" if count < 2 else "ok"], node_updates={"count": count}
        )

    wf = chain("loop", policy={"state_isolation": isolation})
    wf["nodes"]["loop"]["outputs"]["again"] = [{"target_node": "loop", "is_loopback": True}]
    assert WorkflowEngine(wf, {"loop": loop}).run().success
    assert len(kinds) == 2
    assert kinds[0] is kinds[1]


def test_node_state_is_a_fresh_copy_sharing_nested_data_with_state_node_as_in_0_1_0() -> None:
    seen: dict[str, Any] = {}

    def write(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(outputs=["again"], node_updates={"items": [1], "n": 0})

    def probe(ctx: WorkflowContext) -> HandlerResult:
        ctx.node_state["n"] = 5  # top level of a copy: lost at the next access
        ctx.node_state["items"].append(2)  # nested: shared, as with 0.1.0's dict(...)
        seen["node_state"] = ctx.node_state
        seen["state_node"] = ctx.state.node["probe"]
        return ok(node_updates={"items": ctx.node_state["items"]})

    calls = {"probe": 0}

    def both(ctx: WorkflowContext) -> HandlerResult:
        calls["probe"] += 1
        return write(ctx) if calls["probe"] == 1 else probe(ctx)

    wf = chain("probe")
    wf["nodes"]["probe"]["outputs"]["again"] = [{"target_node": "probe", "is_loopback": True}]
    result = WorkflowEngine(wf, {"probe": both}).run()
    assert result.success, result.error
    assert seen["node_state"] == {"items": [1, 2], "n": 0}
    assert seen["state_node"] == {"items": [1, 2], "n": 0}
    assert result.state.node == {"probe": {"items": [1, 2], "n": 0}}


# ------------------------------------------------------------------ real containers

READERS: dict[str, Callable[[Any], Any] | None] = {
    "json.dumps": lambda v: json.loads(json.dumps(v)),
    "json.dumps indent": lambda v: json.loads(json.dumps(v, indent=1, sort_keys=True)),
    "pickle": lambda v: pickle.loads(pickle.dumps(v)),
    "deepcopy": copy.deepcopy,
    "copy.copy": copy.copy,
    "dict()": dict,
    "unpack": lambda v: {**v},
    "copy()": lambda v: v.copy(),
    "or": lambda v: v | {},
    "ror": lambda v: {} | v,
    "eq": lambda v: SEED if v == SEED else None,
    "repr": lambda v: eval(repr(v)),
    "items": lambda v: {k: x for k, x in v.items()},  # the method
    "to_dict of state": None,  # handled below
}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_view_nothing_has_read_yet_gives_the_right_data_to_every_reader(reader: str) -> None:
    seen: list[Any] = []

    def probe(ctx: WorkflowContext) -> None:
        read = READERS[reader]
        if read is None:
            seen.append(ctx.state.to_dict()["workflow"])
        else:
            seen.append(read(ctx.state.workflow))

    _, after_seen = run_probe(probe, "private")
    assert seen == [SEED]
    assert after_seen == [EXPECTED_STATE]


def test_private_values_are_real_dicts_and_lists() -> None:
    seen: dict[str, Any] = {}

    def probe(ctx: WorkflowContext) -> None:
        wf = ctx.state.workflow
        tags = wf["cfg"]["tags"]
        seen["isinstance"] = [
            isinstance(x, dict) for x in (wf, wf["cfg"], ctx.state.input, ctx.node_config)
        ] + [isinstance(tags, list)]
        seen["sorted"] = sorted(tags, reverse=True)
        seen["concat"] = [*tags, "c"]
        seen["unpacked"] = dict(**wf["cfg"]["inner"])

    _, after_seen = run_probe(probe, "private")
    assert seen["isinstance"] == [True] * 5
    assert seen["sorted"] == ["b", "a"]
    assert seen["concat"] == ["a", "b", "c"]
    assert seen["unpacked"] == {"k": 1}
    assert after_seen == [EXPECTED_STATE]


# Every way of reaching a child container: what it hands out must be mutable,
# and mutating it must never reach the run.
REACH: dict[str, Callable[[WorkflowContext], Any]] = {
    "dict values": lambda c: next(iter(c.state.workflow.values())),
    "dict items": lambda c: next(iter(c.state.workflow.items()))[1],
    "dict get": lambda c: c.state.workflow.get("cfg"),
    "dict setdefault": lambda c: c.state.workflow.setdefault("cfg", {}),
    "dict pop": lambda c: c.state.workflow.pop("cfg"),
    "dict popitem": lambda c: c.state.workflow.popitem()[1],
    "dict copy": lambda c: c.state.workflow.copy()["cfg"],
    "copy.copy": lambda c: copy.copy(c.state.workflow)["cfg"],
    "dict()": lambda c: dict(c.state.workflow)["cfg"],
    "unpack": lambda c: {**c.state.workflow}["cfg"],
    "or": lambda c: (c.state.workflow | {})["cfg"],
    "ror": lambda c: ({} | c.state.workflow)["cfg"],
    "update into plain": lambda c: _updated(c.state.workflow)["cfg"],
    "list index": lambda c: c.state.workflow["rows"][0],
    "list negative index": lambda c: c.state.workflow["rows"][-1],
    "list slice": lambda c: c.state.workflow["rows"][0:1][0],
    "list iter": lambda c: next(iter(c.state.workflow["rows"])),
    "list reversed": lambda c: next(reversed(c.state.workflow["rows"])),
    "list unpack": lambda c: [*c.state.workflow["rows"]][1],
    "list()": lambda c: list(c.state.workflow["rows"])[1],
    "list pop": lambda c: c.state.workflow["rows"].pop(),
    "list copy": lambda c: c.state.workflow["rows"].copy()[0],
    "list add": lambda c: (c.state.workflow["rows"] + [])[0],
    "list radd": lambda c: ([] + c.state.workflow["rows"])[0],
    "list mul": lambda c: (c.state.workflow["rows"] * 2)[1],
    "list rmul": lambda c: (2 * c.state.workflow["rows"])[1],
    "list extend into plain": lambda c: _extended(c.state.workflow["rows"])[0],
    "list sort key": lambda c: _sorted_key(c.state.workflow["rows"]),
    "sorted": lambda c: sorted(c.state.workflow["rows"], key=lambda r: r["id"])[0],
    "input": lambda c: c.state.input["in"],
    "node entry": lambda c: c.state.node["seed"]["mine"],
    "node_state": lambda c: c.node_state,
    "node_config": lambda c: c.node_config["opt"],
}


def _updated(view: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out.update(view)
    return out


def _extended(view: list[Any]) -> list[Any]:
    out: list[Any] = []
    out.extend(view)
    return out


def _sorted_key(rows: list[Any]) -> Any:
    found: list[Any] = []
    rows.sort(key=lambda r: found.append(r) or r["id"])
    return found[0]


def _mutate(value: Any) -> None:
    if isinstance(value, dict):
        value["mutated"] = True
        for child in value.values():
            if isinstance(child, dict | list):
                _mutate(child)
    else:
        value.append("mutated")
        for child in value:
            if isinstance(child, dict | list):
                _mutate(child)


@pytest.mark.parametrize("way", sorted(REACH))
def test_every_way_of_reaching_a_child_hands_out_private_mutable_data(way: str) -> None:
    errors: list[BaseException] = []
    rows = [{"id": 2, "tags": ["x"]}, {"id": 1, "tags": ["y"]}]
    expected = copy.deepcopy(EXPECTED_STATE)
    expected["workflow"]["rows"] = copy.deepcopy(rows)

    def seed_rows(ctx: WorkflowContext) -> HandlerResult:
        result = seed(ctx)
        assert result.workflow_updates is not None
        return ok(
            workflow_updates={**result.workflow_updates, "rows": rows},
            node_updates=result.node_updates,
        )

    after_seen: list[Any] = []

    def probe(ctx: WorkflowContext) -> HandlerResult:
        try:
            _mutate(REACH[way](ctx))
        except Exception as exc:
            errors.append(exc)
        return ok()

    def after(ctx: WorkflowContext) -> HandlerResult:
        after_seen.append(json.loads(json.dumps(ctx.state.to_dict())))
        return ok()

    wf = chain("seed", "probe", "after", probe={"opt": {"list": [1, 2]}})
    wf["nodes"]["seed"]["handler"] = "seed_rows"
    engine = WorkflowEngine(wf, {"seed_rows": seed_rows, "probe": probe, "after": after})
    result = engine.run(initial_input={"in": {"x": [1]}})
    assert errors == []
    assert result.success, result.error
    assert after_seen == [expected]
    assert result.state.to_dict() == expected


def test_state_sections_can_be_reassigned_inside_the_handler_only() -> None:
    def probe(ctx: WorkflowContext) -> None:
        ctx.state.workflow = {"replaced": True}
        ctx.state.node = {}
        assert ctx.state.workflow == {"replaced": True}

    _, after_seen = run_probe(probe, "private")
    assert after_seen == [EXPECTED_STATE]


def test_returning_private_values_as_updates_stores_what_the_handler_saw() -> None:
    def probe(ctx: WorkflowContext) -> HandlerResult:
        cfg = ctx.state.workflow["cfg"]
        cfg["tags"].append("c")
        return ok(workflow_updates={"cfg": cfg, "whole": ctx.state.workflow, "n": ctx.node_config})

    after = lambda ctx: ok()  # noqa: E731
    wf = chain("seed", "probe", "after", probe={"opt": {"list": [1, 2]}})
    result = WorkflowEngine(wf, {"seed": seed, "probe": probe, "after": after}).run()
    assert result.success, result.error
    cfg = {"tags": ["a", "b", "c"], "inner": {"k": 1}}
    assert result.state.workflow["cfg"] == cfg
    assert result.state.workflow["whole"] == {**SEED, "cfg": cfg}
    assert result.state.workflow["n"] == {"opt": {"list": [1, 2]}}
    assert type(result.state.workflow["whole"]["cfg"]["tags"]) is list


def test_map_items_are_private_to_each_call() -> None:
    seen: list[Any] = []

    def each(ctx: WorkflowContext) -> HandlerResult:
        ctx.item["seen"] = True
        ctx.item["tags"].append("x")
        seen.append(ctx.item)
        return ok(node_updates={"n": len(ctx.item["tags"])})

    wf = chain("each", "after")
    wf["nodes"]["each"]["map"] = {"over": "input.items"}
    items = [{"tags": []}, {"tags": ["a"]}]
    result = WorkflowEngine(wf, {"each": each, "after": lambda ctx: ok()}).run(
        initial_input={"items": items}
    )
    assert result.success, result.error
    assert seen == [{"tags": ["x"], "seen": True}, {"tags": ["a", "x"], "seen": True}]
    assert result.state.input == {"items": [{"tags": []}, {"tags": ["a"]}]}


def test_nodes_of_a_parallel_batch_each_change_their_own_view() -> None:
    seen: dict[str, Any] = {}

    def start(ctx: WorkflowContext) -> HandlerResult:
        return ok(workflow_updates={"shared": {"list": [0]}})

    def branch(ctx: WorkflowContext) -> HandlerResult:
        shared = ctx.state.workflow["shared"]
        shared["list"].append(ctx.node_name)
        seen[ctx.node_name] = copy.deepcopy(shared)
        return ok()

    wf = {
        "workflow_name": "batch",
        "default_entry_node": "start",
        "engine_policy": {**PRIVATE, "max_concurrency": 2},
        "nodes": {
            "start": {
                "handler": "start",
                "outputs": {"ok": [{"target_node": "a"}, {"target_node": "b"}]},
            },
            "a": {"handler": "branch", "outputs": {"ok": []}},
            "b": {"handler": "branch", "outputs": {"ok": []}},
        },
    }
    result = WorkflowEngine(wf, {"start": start, "branch": branch}).run()
    assert result.success, result.error
    assert seen == {"a": {"list": [0, "a"]}, "b": {"list": [0, "b"]}}
    assert result.state.workflow == {"shared": {"list": [0]}}


# ------------------------------------------------------------------ no deep copy


def test_a_node_reading_one_key_of_a_large_state_allocates_far_less_than_the_state() -> None:
    big = {f"row{i}": {"id": i, "text": "x" * 100, "tags": ["a", "b"]} for i in range(5000)}
    peaks: list[int] = []

    def fill(ctx: WorkflowContext) -> HandlerResult:
        tracemalloc.start()
        return ok()

    def read(ctx: WorkflowContext) -> HandlerResult:
        value = ctx.state.input["small"]["k"] + len(ctx.node_state)
        return ok(node_updates={"v": value})

    def measure(ctx: WorkflowContext) -> HandlerResult:
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        return ok()

    wf = chain("fill", "read", "measure")
    engine = WorkflowEngine(wf, {"fill": fill, "read": read, "measure": measure})
    result = engine.run(initial_input={"small": {"k": 1}, "big": big})
    assert result.success, result.error
    size = len(json.dumps(big))
    assert size > 500_000
    assert peaks[0] < size // 20, f"peak {peaks[0]} bytes for a state of {size}"


# ------------------------------------------------------------------ the policy value


def test_private_is_a_valid_state_isolation_in_both_formats_and_the_schemas() -> None:
    zf1 = {
        "version": "zf/1",
        "name": "p",
        "entry": "a",
        "defaults": {"state_isolation": "private"},
        "nodes": {"a": {"kind": "task", "handler": "a", "on": {"ok": []}}},
    }
    assert check(zf1) == []
    assert check_instance(zf1, schema("zf/1")) == []
    legacy = chain("a")
    assert check_instance(legacy, schema("legacy")) == []
    assert WorkflowEngine(legacy, {"a": lambda ctx: ok()}).run().success
    assert WorkflowEngine(zf1, {"a": lambda ctx: ok()}).run().success
