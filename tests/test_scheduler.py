"""SPEC A3: the pure wave scheduler, driven directly and checked on random graphs."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zeroflow import HandlerResult, RunSnapshot, WorkflowEngine, subscribe
from zeroflow._definition import compile_workflow
from zeroflow._scheduler import Frontier, build_routes


def graph(nodes: dict[str, dict[str, list[Any]]], joins: dict[str, list[str]] | None = None):
    """Compile ``{node: {label: [target | (target, "loop")]}}`` with AND-joins ``joins``."""
    raw: dict[str, Any] = {}
    for name, outputs in nodes.items():
        raw[name] = {
            "handler": "h",
            "outputs": {
                label: [
                    {"target_node": t[0], "is_loopback": True}
                    if isinstance(t, tuple)
                    else {"target_node": t}
                    for t in targets
                ]
                for label, targets in outputs.items()
            },
        }
    for name, wait_for in (joins or {}).items():
        raw[name]["join"] = {"mode": "and", "wait_for": wait_for}
    compiled = compile_workflow(
        {"workflow_name": "g", "default_entry_node": next(iter(nodes)), "nodes": raw}
    )
    return compiled, build_routes(compiled)


DIAMOND = {
    "s": {"ok": ["l", "r"]},
    "l": {"ok": ["m"]},
    "r": {"ok": ["m"]},
    "m": {"ok": []},
}


# ---------------------------------------------------------------- take / waves


def test_take_is_fifo_and_marks_the_node_executed() -> None:
    fr = Frontier(ready_now=["a", "b"])
    assert fr.take() == "a"
    assert fr.ready_now == ["b"]
    assert list(fr.executed) == ["a"]
    assert fr.take() == "b"
    assert list(fr.executed) == ["a", "b"]


def test_take_opens_the_next_wave_when_the_current_one_is_empty() -> None:
    fr = Frontier(wave=1, ready_now=[], ready_next_wave=["x", "y"], executed=["a"])
    assert fr.take() == "x"
    assert fr.wave == 2
    assert fr.ready_now == ["y"]
    assert fr.ready_next_wave == []
    assert list(fr.executed) == ["x"]


def test_open_wave_moves_the_next_queue_and_clears_executed_marks() -> None:
    fr = Frontier(wave=3, ready_now=[], ready_next_wave=["a"], executed=["a", "b"])
    fr.open_wave()
    assert (fr.wave, fr.ready_now, fr.ready_next_wave, list(fr.executed)) == (4, ["a"], [], [])


def test_has_work_sees_both_queues() -> None:
    assert not Frontier().has_work()
    assert Frontier(ready_now=["a"]).has_work()
    assert Frontier(ready_next_wave=["a"]).has_work()


def test_take_from_an_empty_frontier_raises_index_error() -> None:
    with pytest.raises(IndexError):
        Frontier().take()


# ---------------------------------------------------------------- routing


def test_route_follows_labels_then_edges_in_declared_order() -> None:
    _, routes = graph(
        {"a": {"x": ["c", "b"], "y": ["d"]}, "b": {}, "c": {}, "d": {}},
    )
    fr = Frontier(ready_now=["a"])
    fr.take()
    fr.route("a", ["y", "x"], routes)
    assert fr.ready_now == ["d", "c", "b"]


def test_route_ignores_labels_without_edges() -> None:
    _, routes = graph({"a": {"ok": ["b"]}, "b": {}})
    fr = Frontier(ready_now=["a"])
    fr.take()
    fr.route("a", ["nothing"], routes)
    assert fr.ready_now == []


def test_or_join_target_reached_twice_is_queued_once() -> None:
    _, routes = graph(DIAMOND)
    fr = Frontier(ready_now=["l", "r"])
    fr.take()
    fr.route("l", ["ok"], routes)
    fr.take()
    fr.route("r", ["ok"], routes)
    assert fr.ready_now == ["m"]


def test_forward_edge_to_a_node_already_run_this_wave_is_dropped() -> None:
    _, routes = graph({"a": {"ok": ["b"]}, "b": {"ok": ["c"]}, "c": {}})
    fr = Frontier(ready_now=["b", "a"])
    fr.take()
    fr.take()
    fr.route("a", ["ok"], routes)
    assert fr.ready_now == []


def test_loopback_edge_queues_the_target_for_the_next_wave_even_if_it_ran() -> None:
    _, routes = graph({"a": {"ok": ["b"]}, "b": {"again": [("a", "loop")]}})
    fr = Frontier(ready_now=["a"])
    fr.take()
    fr.route("a", ["ok"], routes)
    fr.take()
    fr.route("b", ["again"], routes)
    assert fr.ready_now == []
    assert fr.ready_next_wave == ["a"]
    fr.route("b", ["again"], routes)
    assert fr.ready_next_wave == ["a"]


def test_and_join_records_arrivals_until_every_predecessor_arrived() -> None:
    _, routes = graph(DIAMOND, {"m": ["l", "r"]})
    fr = Frontier(ready_now=["l", "r"])
    fr.take()
    fr.route("l", ["ok"], routes)
    assert fr.ready_now == ["r"]
    assert fr.arrivals == {"1:m": ["l"]}
    fr.route("l", ["ok"], routes)
    assert fr.arrivals == {"1:m": ["l"]}
    fr.take()
    fr.route("r", ["ok"], routes)
    assert fr.ready_now == ["m"]
    assert fr.arrivals == {}


def test_and_join_with_duplicate_wait_for_entries_is_queued_once_all_arrived() -> None:
    _, routes = graph(DIAMOND, {"m": ["l", "l", "r"]})
    fr = Frontier(ready_now=["l", "r"])
    fr.take()
    fr.route("l", ["ok"], routes)
    fr.take()
    fr.route("r", ["ok"], routes)
    assert fr.ready_now == ["m"]


def test_and_join_arrivals_are_keyed_by_wave() -> None:
    _, routes = graph(DIAMOND, {"m": ["l", "r"]})
    fr = Frontier(wave=7, ready_now=["l"])
    fr.take()
    fr.route("l", ["ok"], routes)
    assert fr.arrivals == {"7:m": ["l"]}


def test_and_join_reached_by_loopback_counts_for_the_next_wave() -> None:
    _, routes = graph(
        {"s": {"ok": ["l", "r"]}, "l": {"ok": [("m", "loop")]}, "r": {"ok": ["m"]}, "m": {}},
        {"m": ["l", "r"]},
    )
    fr = Frontier(wave=1, ready_now=["l", "r"])
    fr.take()
    fr.route("l", ["ok"], routes)
    assert fr.arrivals == {"2:m": ["l"]}
    fr.take()
    fr.route("r", ["ok"], routes)
    assert fr.arrivals == {"2:m": ["l"], "1:m": ["r"]}
    assert fr.ready_now == []
    assert fr.ready_next_wave == []


def test_and_join_that_already_ran_this_wave_is_not_queued_again() -> None:
    _, routes = graph(DIAMOND, {"m": ["l", "r"]})
    fr = Frontier(ready_now=["l", "r"], executed=["m"])
    fr.take()
    fr.route("l", ["ok"], routes)
    fr.take()
    fr.route("r", ["ok"], routes)
    assert fr.ready_now == []


def test_push_front_puts_a_node_at_the_head_of_the_current_wave() -> None:
    fr = Frontier(ready_now=["b"])
    fr.push_front("a")
    assert fr.ready_now == ["a", "b"]


def test_reset_forgets_queues_arrivals_and_marks_but_keeps_the_wave() -> None:
    fr = Frontier(wave=2, ready_now=["a"], ready_next_wave=["b"], arrivals={"2:m": ["x"]})
    fr.take()
    fr.reset()
    assert fr.export() == {
        "wave": 2,
        "ready_now": [],
        "ready_next_wave": [],
        "arrivals": {},
        "executed_this_wave": [],
    }


def test_export_and_from_snapshot_round_trip_without_aliasing() -> None:
    snap = RunSnapshot(
        run_id="r",
        workflow_name="g",
        wf_hash="h",
        wave=3,
        ready_now=["a"],
        ready_next_wave=["b"],
        arrivals={"3:m": ["x"]},
        executed_this_wave=["z", "y"],
    )
    fr = Frontier.from_snapshot(snap)
    fr.take()
    fr.arrivals["3:m"].append("q")
    assert snap.ready_now == ["a"]
    assert snap.arrivals == {"3:m": ["x"]}
    exported = fr.export()
    assert exported["executed_this_wave"] == ["z", "y", "a"]
    exported["ready_next_wave"].append("c")
    assert fr.ready_next_wave == ["b"]


def test_stranded_joins_lists_partial_arrivals() -> None:
    compiled, routes = graph(DIAMOND, {"m": ["l", "r"]})
    fr = Frontier(ready_now=["l"])
    fr.take()
    fr.route("l", ["ok"], routes)
    assert fr.stranded_joins(compiled) == [("m", ["l"], ["r"])]


# ---------------------------------------------------------------- a reference model


def reference_trace(
    nodes: dict[str, dict[str, list[tuple[str, bool]]]],
    joins: dict[str, list[str]],
    entry: str,
    table: dict[str, list[list[str]]],
    max_steps: int,
) -> list[str]:
    """SPEC A3 written out plainly: what the engine's trace must be."""
    ready_now, ready_next, arrivals, executed = [entry], [], {}, set()
    wave, trace, visits = 1, [], Counter()
    while ready_now or ready_next:
        if not ready_now:
            ready_now, ready_next, wave, executed = ready_next, [], wave + 1, set()
        name = ready_now.pop(0)
        trace.append(name)
        executed.add(name)
        if len(trace) > max_steps:
            break
        outs = table[name][visits[name]] if visits[name] < len(table[name]) else []
        visits[name] += 1
        for label in outs:
            for target, loop in nodes[name][label]:
                if not loop and target in executed:
                    continue
                queue = ready_next if loop else ready_now
                if target in joins:
                    key = f"{wave + 1 if loop else wave}:{target}"
                    got = arrivals.setdefault(key, [])
                    if name not in got:
                        got.append(name)
                    if not all(w in got for w in joins[target]):
                        continue
                    del arrivals[key]
                if target not in queue:
                    queue.append(target)
    return trace


OUTPUT_CHOICES = (["x"], ["y"], ["x", "y"], ["y", "x"], [])


@st.composite
def random_workflows(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(2, 8))
    names = [f"n{i}" for i in range(n)]
    nodes: dict[str, dict[str, list[tuple[str, bool]]]] = {}
    for i, name in enumerate(names):
        outputs: dict[str, list[tuple[str, bool]]] = {}
        for label in ("x", "y"):
            edges: list[tuple[str, bool]] = []
            if i + 1 < n:
                for _ in range(draw(st.integers(1, 3))):
                    edges.append((names[draw(st.integers(i + 1, n - 1))], False))
            if draw(st.integers(0, 2)) == 0:
                edges.append((names[draw(st.integers(0, i))], True))
            outputs[label] = edges
        nodes[name] = outputs
    joins: dict[str, list[str]] = {}
    for name in names[1:]:
        preds = sorted(
            {src for src, outs in nodes.items() for es in outs.values() for t, _ in es if t == name}
        )
        if len(preds) >= 2 and draw(st.booleans()):
            joins[name] = draw(st.lists(st.sampled_from(preds), min_size=2, unique=True))
    # What each node returns on its 1st, 2nd, ... visit (then nothing): a seeded table.
    table = {
        name: draw(st.lists(st.sampled_from(OUTPUT_CHOICES), min_size=1, max_size=4))
        for name in names
    }
    return {"nodes": nodes, "joins": joins, "table": table, "names": names}


def build_engine(spec: dict[str, Any], events: list[Any]) -> WorkflowEngine:
    raw: dict[str, Any] = {}
    for name, outputs in spec["nodes"].items():
        raw[name] = {
            "handler": "table",
            "outputs": {
                label: [{"target_node": t, "is_loopback": loop} for t, loop in edges]
                for label, edges in outputs.items()
            },
        }
        if name in spec["joins"]:
            raw[name]["join"] = {"mode": "and", "wait_for": spec["joins"][name]}
    wf = {
        "workflow_name": "random",
        "default_entry_node": spec["names"][0],
        "nodes": raw,
        "engine_policy": {"max_steps": 60},
    }
    table = spec["table"]

    def handler(ctx: Any) -> HandlerResult:
        visits = ctx.state.node.get(ctx.node_name, {}).get("visits", 0)
        outs = table[ctx.node_name][visits] if visits < len(table[ctx.node_name]) else []
        return HandlerResult(outputs=list(outs), node_updates={"visits": visits + 1})

    return WorkflowEngine(
        wf, {"table": handler}, event_callback=subscribe(events.append, "checkpoint")
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_workflows())
def test_random_graphs_follow_the_wave_rules(spec: dict[str, Any]) -> None:
    events: list[Any] = []
    engine = build_engine(spec, events)
    result = engine.run(run_id="r")
    snapshots = [e.data["state"] for e in events]
    final = snapshots[-1]

    # The trace is exactly what SPEC A3 prescribes.
    expected = reference_trace(
        spec["nodes"], spec["joins"], spec["names"][0], spec["table"], max_steps=60
    )
    assert result.trace == expected

    # len(trace) == step at every checkpoint.
    for snap in snapshots:
        assert len(snap["trace"]) == snap["step"]

    records = [r for r in result.audit_trail if r.status == "succeeded"]
    # A node runs at most once per wave (a loopback re-runs it in the next wave).
    per_wave = Counter((r.wave, r.node) for r in records)
    assert all(count == 1 for count in per_wave.values()), per_wave

    # An AND-join never runs before every wait_for node arrived in that wave.
    edges = spec["nodes"]
    for rec in records:
        if rec.node not in spec["joins"]:
            continue
        for pred in spec["joins"][rec.node]:
            assert any(
                earlier.node == pred
                and earlier.step < rec.step
                and any(
                    target == rec.node
                    and (earlier.wave == rec.wave - 1 if loop else earlier.wave == rec.wave)
                    for label in earlier.outputs
                    for target, loop in edges[pred][label]
                )
                for earlier in records
            ), (rec, pred)

    # Same inputs, same trace, same audit trail (timestamps aside).
    again = build_engine(spec, []).run(run_id="r")
    assert again.trace == result.trace
    assert [(r.step, r.wave, r.node, r.status, r.outputs) for r in again.audit_trail] == [
        (r.step, r.wave, r.node, r.status, r.outputs) for r in result.audit_trail
    ]
    assert final["step"] == len(result.trace)


def test_reference_model_agrees_on_the_0_1_0_join_loop_trace() -> None:
    nodes = {
        "start": {"ok": [("left", False), ("right", False)]},
        "left": {"ok": [("merge", False)]},
        "right": {"ok": [("merge", False)]},
        "merge": {"ok": [("check", False)]},
        "check": {"again": [("start", True)], "done": [("end", False)]},
        "end": {"ok": []},
    }
    table = {n: [["ok"]] * 2 for n in nodes}
    table["check"] = [["again"], ["done"]]
    trace = reference_trace(nodes, {"merge": ["left", "right"]}, "start", table, 100)
    one_wave = ["start", "left", "right", "merge", "check"]
    assert trace == [*one_wave, *one_wave, "end"]
