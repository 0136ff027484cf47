"""zeroflow.plan: the layers the engine runs together, checked against the engine itself."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zeroflow
from zeroflow import Event, HandlerResult, WorkflowDefinitionError, WorkflowEngine
from zeroflow._plan import Plan
from zeroflow._planner import MAX_PLAN_WAVES

# ---------------------------------------------------------------- the engine's own batches


def engine_layers(events: list[Event]) -> list[list[str]]:
    """The batches a run took: each run of consecutive ``node:start`` events is one."""
    layers: list[list[str]] = []
    previous = None
    for event in events:
        if event.kind == "node:start":
            if previous != "node:start":
                layers.append([])
            layers[-1].append(str(event.node))
        previous = event.kind
    return layers


def plan_layers(plan: Plan, count: int) -> list[list[str]]:
    """The plan's layers, a repeating loop unrolled, until ``count`` nodes are listed."""
    waves = list(plan.waves)
    unrolled = iter(waves)
    if plan.repeats_wave is not None:
        unrolled = itertools.chain(waves, itertools.cycle(waves[plan.repeats_wave - 1 :]))
    layers: list[list[str]] = []
    total = 0
    for wave in unrolled:
        for layer in wave.layers:
            if total >= count:
                return layers
            layers.append(list(layer.nodes))
            total += len(layer.nodes)
    return layers


def drive(engine: WorkflowEngine, events: list[Event]) -> Any:
    """Run to the end, answering every wait (the first listed) as soon as it asks."""
    result = engine.run(run_id="r")
    for _ in range(200):
        if result.status != "waiting":
            return result
        first = next(iter(result.waiting_nodes))
        result = engine.run_from_checkpoint(result.checkpoint, {"ok": True}, node=first)
    raise AssertionError("the run kept waiting")


@st.composite
def random_graphs(draw: st.DrawFn, *, loops: bool) -> dict[str, Any]:
    """A random definition: forward edges only go right, loopbacks (if any) left."""
    n = draw(st.integers(2, 8))
    names = [f"n{i}" for i in range(n)]
    nodes: dict[str, Any] = {}
    for i, name in enumerate(names):
        kind = (
            draw(st.sampled_from(["task", "task", "task", "wait", "wait", "end"])) if i else "task"
        )
        wait = kind == "wait"
        labels = ("ok",) if kind != "task" else ("x", "y")
        outputs: dict[str, list[dict[str, Any]]] = {}
        for label in labels:
            edges: list[dict[str, Any]] = []
            if i + 1 < n:
                for _ in range(draw(st.integers(0, 2))):
                    edges.append({"target_node": names[draw(st.integers(i + 1, n - 1))]})
            if loops and draw(st.integers(0, 3)) == 0:
                edges.append({"target_node": names[draw(st.integers(0, i))], "is_loopback": True})
            outputs[label] = edges
        node: dict[str, Any] = {"outputs": outputs}
        if wait:
            node.update(kind="wait", wait={"prompt": f"answer {name}"})
        elif kind == "end":  # its edges are never taken: an end node returns no output
            node.update(kind="end", end={"result": name})
        else:
            node["handler"] = "all"
        nodes[name] = node
    for name in names[1:]:
        preds = sorted(
            {
                src
                for src, node in nodes.items()
                for edges in node["outputs"].values()
                for e in edges
                if e["target_node"] == name
            }
        )
        if len(preds) >= 2 and draw(st.booleans()):
            wait_for = draw(st.lists(st.sampled_from(preds), min_size=2, unique=True))
            nodes[name]["join"] = {"mode": "and", "wait_for": wait_for}
    policy: dict[str, Any] = {
        "max_concurrency": draw(st.integers(1, 4)),
        "hitl": draw(st.sampled_from(["run", "branch"])),
    }
    if loops:
        policy["max_steps"] = 40
    return {
        "workflow_name": "random",
        "default_entry_node": names[0],
        "nodes": nodes,
        "engine_policy": policy,
    }


def every_output(defn: dict[str, Any]) -> Any:
    labels = {name: list(node["outputs"]) for name, node in defn["nodes"].items()}

    def handler(ctx: Any) -> HandlerResult:
        return HandlerResult(outputs=labels[ctx.node_name])

    return handler


def run_with_events(defn: dict[str, Any]) -> tuple[Any, list[Event]]:
    events: list[Event] = []
    engine = WorkflowEngine(defn, {"all": every_output(defn)}, event_callback=events.append)
    return drive(engine, events), events


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_graphs(loops=False))
def test_an_acyclic_plan_is_the_batches_the_engine_runs(defn: dict[str, Any]) -> None:
    plan = zeroflow.plan(defn)
    result, events = run_with_events(defn)
    assert result.status == "succeeded"
    assert engine_layers(events) == [list(layer.nodes) for layer in plan.layers]
    assert result.trace == list(plan.steps)
    assert plan.repeats_wave is None and len(plan.waves) == 1
    # Every layer fits under the limit, and the widest fits with no limit.
    assert all(len(layer.nodes) <= plan.max_concurrency for layer in plan.layers)
    unlimited = zeroflow.plan(defn, max_concurrency=len(defn["nodes"]))
    assert plan.widest == max(len(layer.nodes) for layer in unlimited.layers)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_graphs(loops=True))
def test_a_looping_plan_unrolled_is_what_the_engine_runs_until_max_steps(
    defn: dict[str, Any],
) -> None:
    plan = zeroflow.plan(defn)
    for fmt in ("text", "markdown"):  # and explain reads every random graph
        text = zeroflow.explain(defn, fmt)
        assert all(f"`{name}`: " in text for name in defn["nodes"])
    result, events = run_with_events(defn)
    ran = engine_layers(events)
    expected = plan_layers(plan, sum(len(layer) for layer in ran))
    if result.status == "failed":  # max_steps cut the last batch short
        assert result.error.code == "MAX_STEPS_EXCEEDED"
        assert ran[:-1] == expected[: len(ran) - 1]
        assert expected[len(ran) - 1][: len(ran[-1])] == ran[-1]
    else:
        assert plan.repeats_wave is None
        assert ran == expected
        assert result.trace == list(plan.steps)


# ---------------------------------------------------------------- named behaviours


def task(*targets: str, loop: str | None = None, **extra: Any) -> dict[str, Any]:
    outputs: dict[str, Any] = {"ok": [{"target_node": t} for t in targets]}
    if loop is not None:
        outputs["again"] = [{"target_node": loop, "is_loopback": True}]
    return {"handler": "h", "outputs": outputs, **extra}


def legacy(nodes: dict[str, Any], **policy: Any) -> dict[str, Any]:
    defn: dict[str, Any] = {
        "workflow_name": "w",
        "default_entry_node": next(iter(nodes)),
        "nodes": nodes,
    }
    if policy:
        defn["engine_policy"] = policy
    return defn


DIAMOND = {
    "start": task("left", "right"),
    "left": task("merge"),
    "right": task("merge"),
    "merge": task(join={"mode": "and", "wait_for": ["left", "right"]}),
}


def test_branches_share_a_layer_and_an_and_join_is_a_barrier_after_them() -> None:
    plan = zeroflow.plan(legacy(DIAMOND, max_concurrency=4))
    assert [layer.nodes for layer in plan.layers] == [("start",), ("left", "right"), ("merge",)]
    assert plan.layers[2].barriers == ("merge",)
    assert plan.widest == 2


def test_one_node_at_a_time_is_planned_as_one_node_per_layer_and_says_how_wide_it_could_go() -> (
    None
):
    plan = zeroflow.plan(legacy(DIAMOND))
    assert plan.max_concurrency == 1
    assert [layer.nodes for layer in plan.layers] == [("start",), ("left",), ("right",), ("merge",)]
    assert "With max_concurrency 2 or more, up to 2 nodes would run together." in str(plan)


def test_a_loopback_opens_a_wave_and_the_plan_says_the_next_one_repeats() -> None:
    defn = legacy(
        {"draft": task("check"), "check": task("publish", loop="draft"), "publish": task()}
    )
    plan = zeroflow.plan(defn)
    assert [w.number for w in plan.waves] == [1, 2]
    assert plan.waves[1].opened_by[0].to_dict() == {
        "source": "check",
        "output": "again",
        "target": "draft",
    }
    assert plan.repeats_wave == 2
    assert "wave 3 would run as wave 2 again" in plan.text()
    assert "max_steps" not in plan.text()
    capped = zeroflow.plan({**defn, "engine_policy": {"max_steps": 9}})
    assert capped.max_steps == 9
    assert "engine_policy.max_steps 9: a run that keeps going like this fails after step 9" in (
        capped.text()
    )
    assert "max_steps" not in zeroflow.plan(legacy(DIAMOND, max_steps=4)).text()  # 4 steps fit


def test_a_limit_smaller_than_the_queue_mixes_the_next_layer_in_as_the_engine_does() -> None:
    nodes = {"s": task("a", "b", "c"), "a": task("x"), "b": task(), "c": task(), "x": task()}
    plan = zeroflow.plan(legacy(nodes), max_concurrency=2)
    # a settles first, so x is queued behind c and runs with it.
    assert [layer.nodes for layer in plan.layers] == [("s",), ("a", "b"), ("c", "x")]


def test_catchers_and_the_error_node_are_planned_off_the_main_plan() -> None:
    nodes = {
        "charge": task("receipt", on_error=[{"target_node": "refund", "codes": ["X"]}]),
        "receipt": task(),
        "refund": task("notify"),
        "notify": task(),
        "alert": task(),
        "orphan": task(),
    }
    defn = legacy(nodes)
    defn["default_error_node"] = "alert"
    plan = zeroflow.plan(defn)
    assert plan.steps == ("charge", "receipt")
    assert [layer.nodes for w in plan.recovery["refund"] for layer in w.layers] == [
        ("refund",),
        ("notify",),
    ]
    assert ("charge", "refund", ("X",), False) in [
        (r.node, r.target, r.codes, r.default) for r in plan.error_routes
    ]
    assert not any(r.node == "alert" for r in plan.error_routes)  # never its own catcher
    assert plan.unreached == ("orphan",)
    text = plan.text()
    assert "`charge` fails: codes `X` -> `refund`; any other failure -> `alert`" in text
    assert "Never reached: `orphan`" in text


def test_a_wait_pauses_the_run_and_runs_again_first_when_answered() -> None:
    nodes = {
        "s": task("ask", "b"),
        "ask": {"kind": "wait", "wait": {"prompt": "?"}, "outputs": {"ok": [{"target_node": "c"}]}},
        "b": task(),
        "c": task(),
    }
    plan = zeroflow.plan(legacy(nodes, max_concurrency=2))
    assert [(layer.nodes, layer.pauses, layer.resumed) for layer in plan.layers] == [
        (("s",), (), ()),
        (("ask", "b"), ("ask",), ()),
        (("ask",), (), ("ask",)),
        (("c",), (), ()),
    ]
    assert "the run pauses here" in plan.text()


def test_an_and_join_whose_input_comes_only_from_a_later_wave_is_reported_stranded() -> None:
    nodes = {
        "a": task("j", "b"),
        "b": task(loop="j"),
        "j": task(join={"mode": "and", "wait_for": ["a", "b"]}),
    }
    plan = zeroflow.plan(legacy(nodes))
    assert "j" in plan.stranded
    assert "AND-joins the plan never completes: `j`" in plan.text()


def test_legacy_and_zf1_give_the_same_plan() -> None:
    zf1 = {
        "version": "zf/1",
        "name": "w",
        "entry": "start",
        "nodes": {
            "start": {"handler": "h", "on": {"ok": ["left", "right"]}},
            "left": {"handler": "h", "on": {"ok": "merge"}},
            "right": {"handler": "h", "on": {"ok": "merge"}},
            "merge": {"handler": "h", "join": ["left", "right"], "on": {"ok": []}},
        },
    }
    assert zeroflow.plan(zf1).to_dict() == zeroflow.plan(legacy(DIAMOND)).to_dict()


def test_to_dict_is_plain_json() -> None:
    plan = zeroflow.plan(legacy(DIAMOND, max_concurrency=2))
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["waves"][0]["layers"][1]["nodes"] == ["left", "right"]
    assert data["max_concurrency"] == 2 and data["repeats_wave"] is None


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "2"])
def test_a_bad_concurrency_is_refused_with_the_fix(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_concurrency must be an int >= 1"):
        zeroflow.plan(legacy(DIAMOND), max_concurrency=bad)


def test_an_invalid_definition_raises_the_definition_error() -> None:
    with pytest.raises(WorkflowDefinitionError, match="entry node 'nope' not in nodes"):
        zeroflow.plan({"workflow_name": "w", "default_entry_node": "nope", "nodes": DIAMOND})


def test_a_loop_that_never_settles_is_cut_and_says_so() -> None:
    # Each wave starts one node further along a ring of loopbacks: no wave repeats
    # exactly until the ring closes, so a ring longer than the limit is cut.
    size = MAX_PLAN_WAVES + 5
    names = [f"n{i}" for i in range(size)]
    nodes = {
        name: {
            "handler": "h",
            "outputs": {"ok": [{"target_node": names[(i + 1) % size], "is_loopback": True}]},
        }
        for i, name in enumerate(names)
    }
    plan = zeroflow.plan(legacy(nodes))
    assert plan.truncated and len(plan.waves) == MAX_PLAN_WAVES
    assert "the plan stops here" in plan.text()


def test_hostile_names_stay_on_their_line() -> None:
    nodes = {"s": task("x\n## forged"), "x\n## forged": task()}
    text = zeroflow.plan(legacy(nodes)).text()
    assert "\n## forged" not in text
    assert "`x\\n## forged`" in text


def test_branch_waits_pause_their_branches_and_are_answered_in_the_order_they_asked() -> None:
    nodes = {
        "s": task("a", "b"),
        "a": {"kind": "wait", "wait": {}, "outputs": {"ok": [{"target_node": "c"}]}},
        "b": {"kind": "wait", "wait": {}, "outputs": {"ok": [{"target_node": "d"}]}},
        "c": task(),
        "d": task(),
    }
    plan = zeroflow.plan(legacy(nodes, hitl="branch"))
    assert [layer.nodes for layer in plan.layers] == [
        ("s",), ("a",), ("b",), ("a",), ("c",), ("b",), ("d",)
    ]  # fmt: skip
    assert plan.layers[1].pauses == ("a",) and plan.layers[3].resumed == ("a",)
    assert "its branch pauses here" in plan.text()
