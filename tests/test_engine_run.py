"""SPEC A3-A8 and A13: how a run walks the graph, classifies outcomes, retries, stops and pauses."""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Callable
from typing import Any

import pytest

import zeroflow
from _support import FakeClock, Recorder
from zeroflow import (
    HandlerResult,
    InMemoryWorkflowStore,
    RunSnapshot,
    WorkflowContext,
    WorkflowEngine,
    WorkflowError,
)

# ---------------------------------------------------------------- helpers


def node(handler: str | None, *edges: Any, **extra: Any) -> dict[str, Any]:
    """A node whose "ok" output leads to ``edges`` (a name, or ``(name, "loop")``)."""
    return {
        "handler": handler,
        "outputs": {
            "ok": [
                {"target_node": e[0], "is_loopback": True}
                if isinstance(e, tuple)
                else {"target_node": e}
                for e in edges
            ]
        },
        **extra,
    }


def wf(nodes: dict[str, Any], entry: str | None = None, **top: Any) -> dict[str, Any]:
    return {
        "workflow_name": "wf",
        "default_entry_node": entry or next(iter(nodes)),
        "nodes": nodes,
        **top,
    }


def linear(*names: str, **top: Any) -> dict[str, Any]:
    """n0 -> n1 -> ... each with handler of the same name."""
    nodes = {n: node(n, *names[i + 1 : i + 2]) for i, n in enumerate(names)}
    return wf(nodes, **top)


def ok(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"])


def boom(ctx: WorkflowContext) -> HandlerResult:
    raise RuntimeError(f"boom in {ctx.node_name}")


def returning(**kwargs: Any) -> Callable[[WorkflowContext], HandlerResult]:
    def handler(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(**kwargs)

    return handler


def oks(*names: str) -> dict[str, Any]:
    return dict.fromkeys(names, ok)


# ---------------------------------------------------------------- construction


def test_non_dict_definition_is_rejected_with_a_value_error() -> None:
    for bad in ("wf.json", ["a"], None):
        with pytest.raises(ValueError, match="dict"):
            WorkflowEngine(bad, {})  # type: ignore[arg-type]


def test_handlers_must_be_a_mapping() -> None:
    with pytest.raises(TypeError, match="mapping"):
        WorkflowEngine(linear("a"), [ok])  # type: ignore[arg-type]


def test_handlers_must_be_callable_and_the_error_names_the_handler() -> None:
    with pytest.raises(TypeError, match="'a'"):
        WorkflowEngine(linear("a"), {"a": "not a function"})  # type: ignore[dict-item]


def test_unregistered_handler_passes_construction() -> None:
    WorkflowEngine(linear("a"), {})


# ---------------------------------------------------------------- routing and waves


def test_linear_run_succeeds_with_trace_steps_and_audit() -> None:
    result = WorkflowEngine(linear("a", "b", "c"), oks("a", "b", "c")).run()
    assert result.success is True
    assert result.status == "succeeded"
    assert result.error is None
    assert result.waiting is False
    assert result.cancelled is False
    assert result.trace == ["a", "b", "c"]
    rows = [
        (r.step, r.wave, r.node, r.status, r.outputs, r.error, r.waiting)
        for r in result.audit_trail
    ]
    assert rows == [
        (1, 1, "a", "succeeded", ["ok"], None, False),
        (2, 1, "b", "succeeded", ["ok"], None, False),
        (3, 1, "c", "succeeded", ["ok"], None, False),
    ]
    assert all(
        isinstance(r.duration_ms, int | float) and r.duration_ms >= 0 for r in result.audit_trail
    )


def test_outputs_route_label_by_label_and_edge_by_edge_in_order() -> None:
    nodes = {
        "a": {
            "handler": "a",
            "outputs": {
                "x": [{"target_node": "c"}, {"target_node": "b"}],
                "y": [{"target_node": "d"}],
            },
        },
        "b": node("ok"),
        "c": node("ok"),
        "d": node("ok"),
    }
    engine = WorkflowEngine(wf(nodes), {"a": returning(outputs=["y", "x"]), "ok": ok})
    assert engine.run().trace == ["a", "d", "c", "b"]


def test_a_node_returning_no_outputs_ends_its_branch() -> None:
    engine = WorkflowEngine(linear("a", "b"), {"a": returning(outputs=[]), "b": ok})
    result = engine.run()
    assert result.success
    assert result.trace == ["a"]


def test_or_join_target_reached_twice_in_a_wave_runs_once() -> None:
    nodes = {
        "s": node("ok", "l", "r"),
        "l": node("ok", "m"),
        "r": node("ok", "m"),
        "m": node("ok"),
    }
    assert WorkflowEngine(wf(nodes), {"ok": ok}).run().trace == ["s", "l", "r", "m"]


def test_or_join_runs_on_the_first_arrival_and_drops_later_ones() -> None:
    nodes = {
        "s": node("ok", "l", "r"),
        "l": node("ok", "m"),
        "r": node("ok", "x"),
        "x": node("ok", "m"),
        "m": node("ok"),
    }
    assert WorkflowEngine(wf(nodes), {"ok": ok}).run().trace == ["s", "l", "r", "m", "x"]


def test_and_join_waits_for_every_predecessor() -> None:
    nodes = {
        "s": node("ok", "l", "r"),
        "l": node("ok", "m"),
        "r": node("ok", "x"),
        "x": node("ok", "m"),
        "m": node("ok", join={"mode": "and", "wait_for": ["l", "x"]}),
    }
    assert WorkflowEngine(wf(nodes), {"ok": ok}).run().trace == ["s", "l", "r", "x", "m"]


def test_and_join_never_runs_when_a_predecessor_does_not_arrive() -> None:
    nodes = {
        "s": node("ok", "l", "r"),
        "l": node("ok", "m"),
        "r": node("none", "m"),
        "m": node("ok", join={"mode": "and", "wait_for": ["l", "r"]}),
    }
    engine = WorkflowEngine(wf(nodes), {"ok": ok, "none": returning(outputs=[])})
    result = engine.run()
    assert result.success
    assert result.trace == ["s", "l", "r"]


def test_and_join_arrivals_are_kept_in_the_snapshot_until_the_join_is_queued() -> None:
    nodes = {
        "s": node("ok", "l", "r"),
        "l": node("ok", "m"),
        "r": node("ask", "m"),
        "m": node("ok", join={"mode": "and", "wait_for": ["l", "r"]}),
    }

    def ask(ctx: WorkflowContext) -> HandlerResult:
        if "__resume__" in ctx.state.workflow:
            return HandlerResult(outputs=["ok"])
        return HandlerResult(outputs=[], waiting=True)

    engine = WorkflowEngine(wf(nodes), {"ok": ok, "ask": ask})
    paused = engine.run()
    assert paused.checkpoint is not None
    assert paused.checkpoint.arrivals == {"1:m": ["l"]}
    done = engine.run_from_checkpoint(paused.checkpoint, resume_input={"go": 1})
    assert done.trace == ["s", "l", "r", "r", "m"]
    assert done.success


def test_or_join_mode_declared_explicitly_behaves_like_no_join() -> None:
    nodes = {
        "s": node("ok", "l", "r"),
        "l": node("ok", "m"),
        "r": node("ok", "m"),
        "m": node("ok", join={"mode": "or", "wait_for": ["l", "r"]}),
    }
    assert WorkflowEngine(wf(nodes), {"ok": ok}).run().trace == ["s", "l", "r", "m"]


def looping(times: int) -> Callable[[WorkflowContext], HandlerResult]:
    """Loops back while it has run fewer than ``times`` times, then says "done"."""

    def handler(ctx: WorkflowContext) -> HandlerResult:
        count = ctx.node_state.get("count", 0) + 1
        return HandlerResult(
            outputs=["again"] if count < times else ["done"], node_updates={"count": count}
        )

    return handler


def loop_def(**top: Any) -> dict[str, Any]:
    return wf(
        {
            "a": node("wave", "b"),
            "b": {
                "handler": "loop",
                "outputs": {
                    "again": [{"target_node": "a", "is_loopback": True}],
                    "done": [{"target_node": "c"}],
                },
            },
            "c": node("wave"),
        },
        **top,
    )


def test_loopback_runs_the_target_again_in_the_next_wave() -> None:
    waves: list[tuple[str, int, int]] = []

    def wave(ctx: WorkflowContext) -> HandlerResult:
        waves.append((ctx.node_name, ctx.wave, ctx.step))
        return HandlerResult(outputs=["ok"])

    result = WorkflowEngine(loop_def(), {"wave": wave, "loop": looping(3)}).run()
    assert result.trace == ["a", "b", "a", "b", "a", "b", "c"]
    assert waves == [("a", 1, 1), ("a", 2, 3), ("a", 3, 5), ("c", 3, 7)]
    assert [r.wave for r in result.audit_trail] == [1, 1, 2, 2, 3, 3, 3]
    assert result.state.node["b"] == {"count": 3}


def test_loopback_target_reached_twice_is_queued_once_for_the_next_wave() -> None:
    nodes = {
        "s": node("ok", "l", "r"),
        "l": node("once", ("s", "loop")),
        "r": node("once", ("s", "loop")),
    }

    def once(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(outputs=["ok"] if ctx.wave == 1 else [])

    result = WorkflowEngine(wf(nodes), {"ok": ok, "once": once}).run()
    assert result.trace == ["s", "l", "r", "s", "l", "r"]


def test_trace_length_equals_step_in_every_checkpoint() -> None:
    rec = Recorder()
    WorkflowEngine(loop_def(), {"wave": ok, "loop": looping(2)}, event_callback=rec).run()
    states = [e.data["state"] for e in rec.of("checkpoint")]
    assert states
    assert all(len(s["trace"]) == s["step"] for s in states)
    assert states[-1]["wave"] == 2


def test_a_run_starts_at_wave_one_step_zero_with_the_entry_queued() -> None:
    rec = Recorder()
    WorkflowEngine(linear("a"), oks("a"), event_callback=rec).run()
    first = rec.of("checkpoint")[0].data["state"]
    assert (first["wave"], first["step"], first["ready_now"], first["trace"]) == (1, 0, ["a"], [])
    assert first["status"] == "running"


# ---------------------------------------------------------------- state and tags


def test_initial_input_lands_in_state_input_and_is_copied() -> None:
    data = {"doc": {"id": 1}}
    seen: list[Any] = []

    def spy(ctx: WorkflowContext) -> HandlerResult:
        seen.append(ctx.state.input)
        return HandlerResult(outputs=["ok"])

    result = WorkflowEngine(linear("a"), {"a": spy}).run(initial_input=data)
    data["doc"]["id"] = 2
    assert seen == [{"doc": {"id": 1}}]
    assert result.state.input == {"doc": {"id": 1}}


def test_workflow_updates_deep_merge_dicts_and_replace_everything_else() -> None:
    handlers = {
        "a": returning(
            outputs=["ok"], workflow_updates={"cfg": {"x": 1, "y": {"p": 1}}, "l": [1, 2]}
        ),
        "b": returning(outputs=["ok"], workflow_updates={"cfg": {"y": {"q": 2}, "z": 3}, "l": [3]}),
        "c": returning(outputs=["ok"], workflow_updates={"cfg": "flat"}),
    }
    result = WorkflowEngine(linear("a", "b"), handlers).run()
    assert result.state.workflow == {"cfg": {"x": 1, "y": {"p": 1, "q": 2}, "z": 3}, "l": [3]}
    replaced = WorkflowEngine(linear("a", "b", "c"), handlers).run()
    assert replaced.state.workflow == {"cfg": "flat", "l": [3]}


def test_node_updates_merge_into_the_nodes_own_entry() -> None:
    handlers = {
        "a": returning(outputs=["ok"], node_updates={"n": 1, "d": {"x": 1}}),
        "b": returning(outputs=["ok"], node_updates={"n": 2}),
    }
    result = WorkflowEngine(linear("a", "b"), handlers).run()
    assert result.state.node == {"a": {"n": 1, "d": {"x": 1}}, "b": {"n": 2}}


def test_node_updates_of_a_revisited_node_deep_merge() -> None:
    calls = iter([{"d": {"x": 1}, "k": 1}, {"d": {"y": 2}}])

    def upd(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(outputs=["again"] if ctx.wave == 1 else [], node_updates=next(calls))

    nodes = {
        "a": {"handler": "u", "outputs": {"again": [{"target_node": "a", "is_loopback": True}]}}
    }
    result = WorkflowEngine(wf(nodes), {"u": upd}).run()
    assert result.state.node["a"] == {"d": {"x": 1, "y": 2}, "k": 1}


def test_node_state_is_the_nodes_entry_or_empty() -> None:
    seen: list[Any] = []

    def spy(ctx: WorkflowContext) -> HandlerResult:
        seen.append(dict(ctx.node_state))
        return HandlerResult(outputs=["ok"], node_updates={"v": ctx.wave})

    nodes = {"a": node("spy", ("a", "loop"))}
    engine = WorkflowEngine(wf(nodes, engine_policy={"max_steps": 2}), {"spy": spy})
    engine.run()
    assert seen == [{}, {"v": 1}]


def test_tags_extend_the_run_tags_in_order() -> None:
    handlers = {
        "a": returning(outputs=["ok"], tags=["x", "y"]),
        "b": returning(outputs=["ok"], tags=["x"]),
    }
    assert WorkflowEngine(linear("a", "b"), handlers).run().tags == ["x", "y", "x"]


def test_handler_sees_context_fields() -> None:
    seen: dict[str, Any] = {}

    def spy(ctx: WorkflowContext) -> HandlerResult:
        seen.update(
            workflow_name=ctx.workflow_name,
            workflow_hash=ctx.workflow_hash,
            run_id=ctx.run_id,
            node_name=ctx.node_name,
            node_config=dict(ctx.node_config),
            step=ctx.step,
            wave=ctx.wave,
            services=ctx.services,
            deadline_ts=ctx.deadline_ts,
            remaining=ctx.remaining_seconds(),
            timed_out=ctx.is_timed_out(),
        )
        return HandlerResult(outputs=["ok"])

    definition = wf({"a": node("ok", "b"), "b": node("spy", config={"k": 1})})
    engine = WorkflowEngine(definition, {"ok": ok, "spy": spy}, services={"db": "conn"})
    engine.run(run_id="rid")
    assert seen == {
        "workflow_name": "wf",
        "workflow_hash": engine.workflow_hash,
        "run_id": "rid",
        "node_name": "b",
        "node_config": {"k": 1},
        "step": 2,
        "wave": 1,
        "services": {"db": "conn"},
        "deadline_ts": None,
        "remaining": None,
        "timed_out": False,
    }


def test_services_default_to_an_empty_mapping_and_config_to_an_empty_dict() -> None:
    seen: list[Any] = []

    def spy(ctx: WorkflowContext) -> HandlerResult:
        seen.append((dict(ctx.services), ctx.node_config))
        return HandlerResult(outputs=["ok"])

    WorkflowEngine(linear("a"), {"a": spy}).run()
    assert seen == [({}, {})]


def test_the_given_run_id_is_used_and_a_default_one_is_32_hex_chars() -> None:
    engine = WorkflowEngine(linear("a"), oks("a"))
    assert engine.run(run_id="mine").run_id == "mine"
    first, second = engine.run().run_id, engine.run().run_id
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != second


def test_run_id_factory_supplies_default_run_ids() -> None:
    ids = iter(["r1", "r2"])
    engine = WorkflowEngine(linear("a"), oks("a"), run_id_factory=lambda: next(ids))
    assert [engine.run().run_id, engine.run().run_id] == ["r1", "r2"]


def test_non_json_initial_input_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="JSON"):
        WorkflowEngine(linear("a"), oks("a")).run(initial_input={"s": {1}})


# ---------------------------------------------------------------- outputs


def test_an_undeclared_output_names_the_handler_and_the_node_when_they_differ() -> None:
    definition = {
        "workflow_name": "w",
        "default_entry_node": "charge",
        "nodes": {"charge": {"handler": "stripe", "outputs": {"ok": []}}},
    }
    result = WorkflowEngine(definition, {"stripe": returning(outputs=["paid"])}).run()
    assert result.error is not None and result.error.code == "UNDECLARED_OUTPUT"
    assert result.error.message == (
        "handler 'stripe' of node 'charge' emitted undeclared outputs: paid"
    )


def test_strict_outputs_fails_on_an_undeclared_output() -> None:
    handlers = {
        "n0": returning(outputs=["ok", "bad", "abc"], workflow_updates={"x": 1}, tags=["t"])
    }
    result = WorkflowEngine(linear("n0"), handlers).run()
    assert result.status == "failed"
    assert result.error == WorkflowError(
        "UNDECLARED_OUTPUT",
        "handler 'n0' emitted undeclared outputs: abc, bad",
        "n0",
        details={"outputs": ["abc", "bad"]},
    )
    assert "x" not in result.state.workflow
    assert result.tags == []
    assert [(r.status, r.outputs) for r in result.audit_trail] == [("failed", ["ok", "bad", "abc"])]


def test_without_strict_outputs_undeclared_outputs_warn_and_the_run_goes_on() -> None:
    rec = Recorder()
    handlers = {"n0": returning(outputs=["ok", "zzz", "aaa"]), "n1": ok}
    engine = WorkflowEngine(
        linear("n0", "n1", engine_policy={"strict_outputs": False}), handlers, event_callback=rec
    )
    result = engine.run()
    assert result.success
    assert result.trace == ["n0", "n1"]
    assert [e.data for e in rec.of("node:warning")] == [{"node": "n0", "warning": ["aaa", "zzz"]}]
    assert result.audit_trail[0].outputs == ["ok", "zzz", "aaa"]


def test_outputs_given_as_a_string_are_an_invalid_handler_result() -> None:
    result = WorkflowEngine(linear("a"), {"a": returning(outputs="ok")}).run()
    assert result.error is not None
    assert result.error.code == "INVALID_HANDLER_RESULT"


# ---------------------------------------------------------------- A5 failures


def test_raised_exception_is_handler_exception_with_cause_type() -> None:
    def key_error(ctx: WorkflowContext) -> HandlerResult:
        raise KeyError("k")

    result = WorkflowEngine(linear("a"), {"a": key_error}).run()
    assert result.status == "failed"
    assert result.success is False
    assert result.error == WorkflowError(
        "HANDLER_EXCEPTION", "'k'", "a", details={"handler": "a"}, cause_type="KeyError"
    )
    assert [(r.status, r.outputs, r.error) for r in result.audit_trail] == [
        ("failed", [], result.error)
    ]


def test_handler_details_name_the_registry_entry_not_the_node() -> None:
    definition = wf({"n": node("boom")})
    result = WorkflowEngine(definition, {"boom": boom}).run()
    assert result.error is not None
    assert result.error.details == {"handler": "boom"}
    assert result.error.message == "boom in n"


def test_unregistered_handler_fails_at_run_time() -> None:
    result = WorkflowEngine(wf({"a": node("nope")}), {}).run()
    assert result.error is not None
    assert result.error.code == "HANDLER_NOT_REGISTERED"
    assert result.error.message.startswith("handler 'nope' not registered")
    assert result.error.details == {"handler": "nope"}
    assert result.error.node == "a"
    assert result.audit_trail[0].outputs == []


def test_unregistered_handler_is_routed_like_any_failure() -> None:
    definition = wf({"a": node("nope"), "err": node("ok")}, default_error_node="err")
    result = WorkflowEngine(definition, {"ok": ok}).run()
    assert result.success
    assert result.trace == ["a", "err"]
    assert result.state.workflow["__error__"]["code"] == "HANDLER_NOT_REGISTERED"


def test_handler_none_fails_with_handler_type_not_declared() -> None:
    result = WorkflowEngine(wf({"n1": node(None)}), {}).run()
    assert result.error == WorkflowError(
        "HANDLER_TYPE_NOT_DECLARED", "node 'n1' missing handler declaration", "n1"
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"workflow_updates": {"s": {1, 2}}},
        {"node_updates": {"s": {1, 2}}},
        {"workflow_updates": {"deep": [{"f": object()}]}},
        {"tags": [object()]},
    ],
)
def test_non_json_updates_fail_with_state_serialization(kwargs: dict[str, Any]) -> None:
    result = WorkflowEngine(linear("a"), {"a": returning(outputs=["ok"], **kwargs)}).run()
    assert result.error is not None
    assert result.error.code == "STATE_SERIALIZATION"
    assert result.error.message == "workflow state is not JSON-serializable"
    assert result.error.cause_type == "TypeError"
    assert result.error.node == "a"
    assert isinstance(result.error.details["reason"], str) and result.error.details["reason"]
    assert result.state.workflow.keys() == {"__error__"}
    assert result.state.node == {}
    assert [(r.status, r.outputs) for r in result.audit_trail] == [("failed", ["ok"])]


def test_handler_returned_error_is_used_with_its_node_and_nothing_is_merged() -> None:
    error = WorkflowError("MY_CODE", "custom msg", details={"a": 1})
    handler = returning(outputs=["ok"], error=error, workflow_updates={"x": 1}, tags=["t"])
    result = WorkflowEngine(linear("a", "b"), {"a": handler, "b": ok}).run()
    # as returned, with the node filled in (0.1.0 left it None: an error node could not tell)
    assert result.error == dataclasses.replace(error, node="a")
    assert result.trace == ["a"]
    assert result.tags == []
    assert "x" not in result.state.workflow
    assert [(r.status, r.outputs, r.error) for r in result.audit_trail] == [
        ("failed", ["ok"], result.error)
    ]


def test_handler_returned_error_is_not_retried() -> None:
    calls: list[int] = []

    def handler(ctx: WorkflowContext) -> HandlerResult:
        calls.append(1)
        return HandlerResult(outputs=[], error=WorkflowError("E", "no"))

    definition = wf({"a": node("a", run_policy={"max_retries": 3, "retry_sleep_seconds": 0})})
    WorkflowEngine(definition, {"a": handler}, sleep=lambda s: None).run()
    assert calls == [1]


@pytest.mark.parametrize(
    ("returned", "type_name"), [(None, "NoneType"), ({"outputs": ["ok"]}, "dict"), ("ok", "str")]
)
def test_a_handler_returning_a_non_handler_result_fails_naming_handler_and_type(
    returned: Any, type_name: str
) -> None:
    definition = wf({"a": node("weird")})
    result = WorkflowEngine(definition, {"weird": lambda ctx: returned}).run()
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.code == "INVALID_HANDLER_RESULT"
    assert result.error.node == "a"
    assert "'weird'" in result.error.message
    assert type_name in result.error.message


def test_a_wrong_return_type_is_routed_to_the_error_node() -> None:
    definition = wf({"a": node("weird"), "err": node("ok")}, default_error_node="err")
    result = WorkflowEngine(definition, {"weird": lambda ctx: {}, "ok": ok}).run()
    assert result.success
    assert result.trace == ["a", "err"]
    assert result.state.workflow["__error__"]["code"] == "INVALID_HANDLER_RESULT"


# ---------------------------------------------------------------- A5 classification order


def test_an_exception_wins_over_everything_else() -> None:
    result = WorkflowEngine(linear("a"), {"a": boom}).run()
    assert result.error is not None and result.error.code == "HANDLER_EXCEPTION"


def test_a_returned_error_wins_over_undeclared_outputs_and_bad_updates() -> None:
    handler = returning(
        outputs=["undeclared"], error=WorkflowError("MINE", "m"), workflow_updates={"s": {1}}
    )
    result = WorkflowEngine(linear("a"), {"a": handler}).run()
    assert result.error is not None and result.error.code == "MINE"


def test_undeclared_outputs_win_over_bad_updates() -> None:
    handler = returning(outputs=["undeclared"], workflow_updates={"s": {1}})
    result = WorkflowEngine(linear("a"), {"a": handler}).run()
    assert result.error is not None and result.error.code == "UNDECLARED_OUTPUT"


def test_bad_updates_win_over_waiting() -> None:
    handler = returning(outputs=[], waiting=True, workflow_updates={"s": {1}})
    result = WorkflowEngine(linear("a"), {"a": handler}).run()
    assert result.status == "failed"
    assert result.error is not None and result.error.code == "STATE_SERIALIZATION"


def test_undeclared_outputs_win_over_waiting() -> None:
    handler = returning(outputs=["nope"], waiting=True)
    result = WorkflowEngine(linear("a"), {"a": handler}).run()
    assert result.status == "failed"
    assert result.error is not None and result.error.code == "UNDECLARED_OUTPUT"


# ---------------------------------------------------------------- failure handling


def error_def(**top: Any) -> dict[str, Any]:
    """s fans out to a (fails) and b; err is the error node."""
    return wf(
        {
            "s": node("ok", "a", "b"),
            "a": node("bad", "c"),
            "b": node("ok"),
            "c": node("ok"),
            "err": node("err"),
        },
        default_error_node="err",
        **top,
    )


def test_failure_is_routed_to_the_error_node_and_clears_pending_work() -> None:
    seen: list[Any] = []

    def err(ctx: WorkflowContext) -> HandlerResult:
        seen.append(ctx.state.workflow["__error__"])
        return HandlerResult(outputs=["ok"])

    result = WorkflowEngine(error_def(), {"ok": ok, "bad": boom, "err": err}).run()
    assert result.success is True
    assert result.status == "succeeded"
    assert result.error is None
    assert result.trace == ["s", "a", "err"]
    error = {
        "code": "HANDLER_EXCEPTION",
        "message": "boom in a",
        "node": "a",
        "retryable": False,
        "details": {"handler": "bad"},
        "cause_type": "RuntimeError",
    }
    assert seen == [error]
    assert result.state.workflow["__error__"] == error
    assert [(r.node, r.status) for r in result.audit_trail] == [
        ("s", "succeeded"),
        ("a", "failed"),
        ("err", "succeeded"),
    ]


def test_a_failed_node_records_one_failed_row_and_merges_nothing() -> None:
    handler = returning(
        outputs=["bogus"], workflow_updates={"x": 1}, node_updates={"y": 2}, tags=["t"]
    )
    rec = Recorder()
    engine = WorkflowEngine(error_def(), {"ok": ok, "bad": handler, "err": ok}, event_callback=rec)
    result = engine.run()
    assert [(r.node, r.status) for r in result.audit_trail if r.node == "a"] == [("a", "failed")]
    assert "x" not in result.state.workflow
    assert "a" not in result.state.node
    assert result.tags == []
    assert [e.data["node"] for e in rec.of("node:end")] == ["s", "err"]


def test_the_error_nodes_failure_fails_the_run_with_its_own_error() -> None:
    result = WorkflowEngine(error_def(), {"ok": ok, "bad": boom, "err": boom}).run()
    assert result.status == "failed"
    assert result.trace == ["s", "a", "err"]
    assert result.error is not None
    assert (result.error.node, result.error.message) == ("err", "boom in err")
    assert [(r.node, r.status) for r in result.audit_trail] == [
        ("s", "succeeded"),
        ("a", "failed"),
        ("err", "failed"),
    ]


def test_a_failing_error_node_is_not_routed_to_itself() -> None:
    definition = wf({"a": node("bad")}, default_error_node="a")
    result = WorkflowEngine(definition, {"bad": boom}).run()
    assert result.status == "failed"
    assert result.trace == ["a"]
    assert result.error is not None and result.error.node == "a"


def test_failure_without_error_node_fails_the_run_with_a_checkpoint() -> None:
    definition = wf({"s": node("ok", "a", "b"), "a": node("bad"), "b": node("ok")})
    result = WorkflowEngine(definition, {"ok": ok, "bad": boom}).run(run_id="r")
    assert result.status == "failed"
    assert result.success is False
    assert result.trace == ["s", "a"]
    assert result.error is not None and result.error.code == "HANDLER_EXCEPTION"
    assert result.state.workflow["__error__"] == result.error.to_dict()
    snap = result.checkpoint
    assert isinstance(snap, RunSnapshot)
    assert snap.status == "failed"
    assert snap.last_error == result.error
    assert (snap.ready_now, snap.ready_next_wave, snap.arrivals, snap.executed_this_wave) == (
        [],
        [],
        {},
        [],
    )


def test_failure_clears_arrivals_and_executed_marks_before_the_error_node() -> None:
    nodes = {
        "s": node("ok", "l", "r"),
        "l": node("ok", "m"),
        "r": node("bad", "m"),
        "m": node("ok", join={"mode": "and", "wait_for": ["l", "r"]}),
        "err": node("err", "s"),
    }
    states: list[dict[str, Any]] = []

    def err(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(outputs=[])

    rec = Recorder()
    engine = WorkflowEngine(
        wf(nodes, default_error_node="err", engine_policy={"max_steps": 20}),
        {"ok": ok, "bad": boom, "err": err},
        event_callback=rec,
    )
    engine.run()
    for e in rec.of("checkpoint"):
        if e.data["state"]["trace"] == ["s", "l", "r"]:
            states.append(e.data["state"])
    assert states
    assert states[-1]["arrivals"] == {}
    assert states[-1]["ready_now"] == ["err"]
    assert states[-1]["executed_this_wave"] == []


def test_last_error_stays_set_when_the_error_node_recovers() -> None:
    store = InMemoryWorkflowStore()
    engine = WorkflowEngine(error_def(), {"ok": ok, "bad": boom, "err": ok}, store=store)
    engine.run(run_id="r")
    snap = store.load_snapshot("r")
    assert snap.status == "succeeded"
    assert snap.last_error is not None and snap.last_error.node == "a"


# ---------------------------------------------------------------- retries


def flaky(failures: int, exc: type[Exception] = ValueError) -> Callable[..., HandlerResult]:
    count = {"n": 0}

    def handler(ctx: WorkflowContext) -> HandlerResult:
        count["n"] += 1
        if count["n"] <= failures:
            raise exc(f"fail {count['n']}")
        return HandlerResult(outputs=["ok"])

    return handler


def retry_def(retries: int, sleep: float = 0.01, **policy: Any) -> dict[str, Any]:
    run_policy = {"max_retries": retries, "retry_sleep_seconds": sleep, **policy}
    return wf({"a": node("a", run_policy=run_policy)})


def test_retries_give_n_plus_one_attempts_without_trace_entries() -> None:
    slept: list[float] = []
    rec = Recorder()
    engine = WorkflowEngine(retry_def(2), {"a": flaky(2)}, event_callback=rec, sleep=slept.append)
    result = engine.run()
    assert result.success
    assert result.trace == ["a"]
    assert slept == [0.01, 0.01]
    assert [e.data for e in rec.of("node:retry")] == [
        {"node": "a", "attempt": 1, "max_retries": 2, "error": "ValueError: fail 1"}
        | ({"delay_seconds": 0.01} if "delay_seconds" in rec.of("node:retry")[0].data else {}),
        {"node": "a", "attempt": 2, "max_retries": 2, "error": "ValueError: fail 2"}
        | ({"delay_seconds": 0.01} if "delay_seconds" in rec.of("node:retry")[1].data else {}),
    ]
    assert len(rec.of("node:start")) == 1
    assert [(r.status, r.step) for r in result.audit_trail] == [("succeeded", 1)]


def test_exhausted_retries_fail_with_the_last_exception() -> None:
    slept: list[float] = []

    class Third(Exception):
        pass

    errors = iter([ValueError("first"), KeyError("second"), Third("third")])

    def handler(ctx: WorkflowContext) -> HandlerResult:
        raise next(errors)

    result = WorkflowEngine(retry_def(2), {"a": handler}, sleep=slept.append).run()
    assert result.error is not None
    assert (result.error.code, result.error.message, result.error.cause_type) == (
        "HANDLER_EXCEPTION",
        "third",
        "Third",
    )
    assert result.error.retryable is False
    assert result.trace == ["a"]
    assert len(slept) == 2
    assert [r.status for r in result.audit_trail] == ["failed"]


def test_no_retries_by_default() -> None:
    slept: list[float] = []
    handler = flaky(1)
    result = WorkflowEngine(linear("a"), {"a": handler}, sleep=slept.append).run()
    assert result.status == "failed"
    assert slept == []


def test_retry_sleep_defaults_to_a_tenth_of_a_second() -> None:
    slept: list[float] = []
    definition = wf({"a": node("a", run_policy={"max_retries": 1})})
    WorkflowEngine(definition, {"a": flaky(1)}, sleep=slept.append).run()
    assert slept == [0.1]


def test_exponential_backoff_grows_and_is_capped() -> None:
    slept: list[float] = []
    definition = retry_def(4, 1.0, backoff="exponential", backoff_rate=2.0, max_delay_seconds=5.0)
    WorkflowEngine(definition, {"a": flaky(4)}, sleep=slept.append).run()
    assert slept == [1.0, 2.0, 4.0, 5.0]


def test_full_jitter_draws_from_the_injected_rng() -> None:
    import random

    def delays(seed: int) -> list[float]:
        slept: list[float] = []
        definition = retry_def(3, 1.0, jitter="full")
        engine = WorkflowEngine(
            definition, {"a": flaky(3)}, sleep=slept.append, rng=random.Random(seed)
        )
        engine.run()
        return slept

    first = delays(7)
    assert first == delays(7)
    assert all(0.0 <= d <= 1.0 for d in first)


def test_retry_on_limits_retries_to_the_named_exceptions() -> None:
    slept: list[float] = []
    definition = retry_def(3, retry_on=["KeyError"])
    result = WorkflowEngine(definition, {"a": flaky(1, ValueError)}, sleep=slept.append).run()
    assert result.status == "failed"
    assert slept == []
    ok_result = WorkflowEngine(definition, {"a": flaky(1, KeyError)}, sleep=slept.append).run()
    assert ok_result.success
    assert slept == [0.01]


# ---------------------------------------------------------------- cancel


def test_cancel_from_a_handler_finishes_that_node_and_stops_before_the_next() -> None:
    engine: WorkflowEngine

    def cancel_me(ctx: WorkflowContext) -> HandlerResult:
        engine.cancel()
        return HandlerResult(outputs=["ok"], node_updates={"done": True})

    engine = WorkflowEngine(linear("n0", "n1", "n2"), {"n0": ok, "n1": cancel_me, "n2": ok})
    result = engine.run()
    assert result.status == "cancelled"
    assert result.cancelled is True
    assert result.success is False
    assert result.error == WorkflowError("WORKFLOW_CANCELLED", "workflow was cancelled", "n1")
    assert result.trace == ["n0", "n1"]
    assert result.state.node == {"n1": {"done": True}}
    assert "__error__" not in result.state.workflow
    snap = result.checkpoint
    assert snap is not None
    assert (snap.status, snap.ready_now, snap.last_error) == ("cancelled", ["n2"], result.error)


def test_a_cancelled_run_resumes_and_finishes() -> None:
    engine: WorkflowEngine
    first = {"call": True}

    def cancel_once(ctx: WorkflowContext) -> HandlerResult:
        if first.pop("call", False):
            engine.cancel()
        return HandlerResult(outputs=["ok"])

    engine = WorkflowEngine(linear("n0", "n1", "n2"), {"n0": ok, "n1": cancel_once, "n2": ok})
    cancelled = engine.run()
    assert cancelled.checkpoint is not None
    resumed = engine.run_from_checkpoint(cancelled.checkpoint)
    assert resumed.status == "succeeded"
    assert resumed.trace == ["n0", "n1", "n2"]


def test_cancel_from_another_thread_stops_the_run() -> None:
    started = threading.Event()
    release = threading.Event()

    def slow(ctx: WorkflowContext) -> HandlerResult:
        started.set()
        assert release.wait(5)
        return HandlerResult(outputs=["ok"])

    engine = WorkflowEngine(linear("a", "b"), {"a": slow, "b": ok})
    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.append(engine.run()))
    worker.start()
    assert started.wait(5)
    engine.cancel()
    release.set()
    worker.join(5)
    assert not worker.is_alive()
    assert results[0].status == "cancelled"
    assert results[0].trace == ["a"]
    assert results[0].checkpoint.ready_now == ["b"]


def test_run_clears_a_cancel_requested_before_it_started() -> None:
    engine = WorkflowEngine(linear("a", "b"), oks("a", "b"))
    engine.cancel()
    assert engine.run().status == "succeeded"


def test_cancel_during_a_retry_wait_ends_cancelled_and_resumable() -> None:
    engine: WorkflowEngine
    slept: list[float] = []
    rec = Recorder()

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 1:
            engine.cancel()

    engine = WorkflowEngine(
        wf(
            {
                "a": node("a", "b", run_policy={"max_retries": 3, "retry_sleep_seconds": 5}),
                "b": node("ok"),
            }
        ),
        {"a": flaky(1), "ok": ok},
        event_callback=rec,
        sleep=sleep,
    )
    result = engine.run()
    assert result.status == "cancelled"
    assert result.cancelled is True
    assert result.error is not None and result.error.code == "WORKFLOW_CANCELLED"
    assert result.error.node == "a"
    assert "__error__" not in result.state.workflow
    assert "node:error" not in rec.kinds()
    assert "wf:cancelled" in rec.kinds()
    assert result.checkpoint is not None
    assert result.checkpoint.ready_now[0] == "a"
    resumed = engine.run_from_checkpoint(result.checkpoint)
    assert resumed.status == "succeeded"
    assert resumed.trace == ["a", "a", "b"]


# ---------------------------------------------------------------- timeout and max steps


def test_timeout_between_nodes_fails_without_routing() -> None:
    clock = FakeClock()

    def slow(ctx: WorkflowContext) -> HandlerResult:
        clock.now += 10
        return HandlerResult(outputs=["ok"])

    definition = wf(
        {"a": node("slow", "b"), "b": node("ok"), "err": node("ok")},
        default_error_node="err",
        engine_policy={"workflow_timeout_seconds": 5},
    )
    rec = Recorder()
    result = WorkflowEngine(
        definition, {"slow": slow, "ok": ok}, event_callback=rec, clock=clock
    ).run()
    assert result.status == "failed"
    assert result.error == WorkflowError("WORKFLOW_TIMEOUT", "workflow timeout exceeded", "a")
    assert result.trace == ["a"]
    assert "__error__" not in result.state.workflow
    assert [r.node for r in result.audit_trail] == ["a"]
    assert "node:error" not in rec.kinds()


def test_deadline_is_start_plus_timeout_and_visible_to_handlers() -> None:
    clock = FakeClock(500.0)
    seen: list[Any] = []

    def spy(ctx: WorkflowContext) -> HandlerResult:
        seen.append(ctx.deadline_ts)
        return HandlerResult(outputs=["ok"])

    definition = wf({"a": node("spy")}, engine_policy={"workflow_timeout_seconds": 2.5})
    WorkflowEngine(definition, {"spy": spy}, clock=clock).run()
    assert seen == [502.5]


def test_a_long_retry_wait_ends_in_workflow_timeout() -> None:
    clock = FakeClock()
    rec = Recorder()
    definition = wf(
        {"a": node("a", run_policy={"max_retries": 5, "retry_sleep_seconds": 100})},
        engine_policy={"workflow_timeout_seconds": 30},
    )
    engine = WorkflowEngine(
        definition, {"a": flaky(5)}, event_callback=rec, clock=clock, sleep=clock.sleep
    )
    result = engine.run()
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.code == "WORKFLOW_TIMEOUT"
    assert result.error.node == "a"
    assert [r.status for r in result.audit_trail] == ["failed"]
    assert result.state.workflow["__error__"]["code"] == "WORKFLOW_TIMEOUT"
    assert len(rec.of("node:retry")) == 1


def test_max_steps_exceeded_fails_without_running_or_routing() -> None:
    rec = Recorder()
    definition = wf(
        {"a": node("a", ("a", "loop")), "err": node("ok")},
        default_error_node="err",
        engine_policy={"max_steps": 3},
    )
    result = WorkflowEngine(definition, {"a": ok, "ok": ok}, event_callback=rec).run()
    assert result.status == "failed"
    assert result.error == WorkflowError("MAX_STEPS_EXCEEDED", "max steps exceeded: limit=3", "a")
    assert result.trace == ["a", "a", "a", "a"]
    assert len(result.audit_trail) == 3
    assert len(rec.of("node:start")) == 3
    assert "node:error" not in rec.kinds()
    assert "__error__" not in result.state.workflow
    assert result.checkpoint is not None and result.checkpoint.step == 4


def test_max_steps_equal_to_the_run_length_is_fine() -> None:
    definition = linear("a", "b", "c", engine_policy={"max_steps": 3})
    assert WorkflowEngine(definition, oks("a", "b", "c")).run().success


# ---------------------------------------------------------------- human in the loop


def review(ctx: WorkflowContext) -> HandlerResult:
    resume = ctx.state.workflow.get("__resume__")
    if resume is None:
        return HandlerResult(
            outputs=[],
            waiting=True,
            waiting_prompt="approve?",
            workflow_updates={"asked": True},
            tags=["asked"],
        )
    return HandlerResult(outputs=["ok"], workflow_updates={"approved": resume["ok"]})


def hitl_engine(**kwargs: Any) -> WorkflowEngine:
    return WorkflowEngine(linear("a", "ask", "z"), {"a": ok, "ask": review, "z": ok}, **kwargs)


def test_waiting_pauses_the_run_and_returns_a_checkpoint() -> None:
    result = hitl_engine().run(run_id="h")
    assert result.status == "waiting"
    assert result.waiting is True
    assert result.success is False
    assert result.waiting_prompt == "approve?"
    assert result.error is None
    assert result.trace == ["a", "ask"]
    assert result.tags == ["asked"]
    assert result.state.workflow == {"asked": True}
    assert [(r.node, r.status, r.waiting) for r in result.audit_trail] == [
        ("a", "succeeded", False),
        ("ask", "waiting", True),
    ]
    snap = result.checkpoint
    assert isinstance(snap, RunSnapshot)
    assert (snap.status, snap.ready_now, snap.step, snap.last_node, snap.waiting_prompt) == (
        "waiting",
        ["ask"],
        2,
        "ask",
        "approve?",
    )
    assert snap.executed_this_wave == ["a", "ask"]


def test_resume_runs_the_waiting_node_again_with_resume_input() -> None:
    engine = hitl_engine()
    paused = engine.run(run_id="h")
    assert paused.checkpoint is not None
    done = engine.run_from_checkpoint(paused.checkpoint, resume_input={"ok": True})
    assert done.status == "succeeded"
    assert done.trace == ["a", "ask", "ask", "z"]
    assert done.tags == ["asked"]
    assert done.state.workflow == {"asked": True, "__resume__": {"ok": True}, "approved": True}
    assert [(r.step, r.node, r.status) for r in done.audit_trail] == [
        (1, "a", "succeeded"),
        (2, "ask", "waiting"),
        (3, "ask", "succeeded"),
        (4, "z", "succeeded"),
    ]


def test_resume_without_input_leaves_no_resume_key_and_may_pause_again() -> None:
    engine = hitl_engine()
    paused = engine.run()
    assert paused.checkpoint is not None
    again = engine.run_from_checkpoint(paused.checkpoint)
    assert again.status == "waiting"
    assert "__resume__" not in again.state.workflow
    assert again.trace == ["a", "ask", "ask"]


def test_resume_does_not_change_the_checkpoint_it_was_given() -> None:
    engine = hitl_engine()
    paused = engine.run()
    cp = paused.checkpoint
    assert cp is not None
    before = cp.to_dict()
    first = engine.run_from_checkpoint(cp, resume_input={"ok": True})
    second = engine.run_from_checkpoint(cp, resume_input={"ok": False})
    assert cp.to_dict() == before
    assert first.state.workflow["approved"] is True
    assert second.state.workflow["approved"] is False


def test_resume_accepts_a_snapshot_dict() -> None:
    engine = hitl_engine()
    paused = engine.run()
    assert paused.checkpoint is not None
    done = engine.run_from_checkpoint(paused.checkpoint.to_dict(), resume_input={"ok": True})
    assert done.success


def test_resume_from_a_store_in_a_new_engine() -> None:
    store = InMemoryWorkflowStore()
    hitl_engine(store=store).run(run_id="h")
    fresh = hitl_engine(store=store)
    snap = fresh.load_snapshot("h")
    assert snap.status == "waiting"
    done = fresh.run_from_checkpoint(snap, resume_input={"ok": True})
    assert done.success
    assert store.load_snapshot("h").status == "succeeded"


def test_resume_with_a_different_workflow_is_rejected_with_short_hashes() -> None:
    paused = hitl_engine().run()
    other = WorkflowEngine(linear("a", "ask"), {"a": ok, "ask": review})
    assert paused.checkpoint is not None
    with pytest.raises(ValueError) as info:
        other.run_from_checkpoint(paused.checkpoint)
    err = info.value
    assert isinstance(err, zeroflow.HashMismatchError)
    cp_hash, cur_hash = paused.checkpoint.wf_hash, other.workflow_hash
    assert str(err).startswith(
        f"workflow hash mismatch: checkpoint={cp_hash[:12]}, current={cur_hash[:12]}; "
    )
    assert "migrate(" in str(err)
    assert (err.checkpoint_hash, err.current_hash) == (cp_hash, cur_hash)


def test_resuming_a_succeeded_run_is_an_invalid_transition() -> None:
    store = InMemoryWorkflowStore()
    engine = hitl_engine(store=store)
    paused = engine.run(run_id="h")
    assert paused.checkpoint is not None
    engine.run_from_checkpoint(paused.checkpoint, resume_input={"ok": True})
    with pytest.raises(zeroflow.InvalidTransitionError) as info:
        engine.run_from_checkpoint(store.load_snapshot("h"))
    assert isinstance(info.value, ValueError)
    assert "succeeded" in str(info.value)


def test_resuming_a_failed_run_is_an_invalid_transition_pointing_to_redrive() -> None:
    result = WorkflowEngine(linear("a"), {"a": boom}).run()
    assert result.checkpoint is not None
    with pytest.raises(zeroflow.InvalidTransitionError) as info:
        WorkflowEngine(linear("a"), {"a": boom}).run_from_checkpoint(result.checkpoint)
    assert "redrive" in str(info.value)
    assert "failed" in str(info.value)


def test_load_snapshot_without_a_store_is_a_runtime_error() -> None:
    with pytest.raises(RuntimeError, match="no store configured"):
        hitl_engine().load_snapshot("x")


def test_load_snapshot_of_a_missing_run_is_a_key_error_naming_it() -> None:
    with pytest.raises(KeyError) as info:
        hitl_engine(store=InMemoryWorkflowStore()).load_snapshot("missing-id")
    assert info.value.args == ("run 'missing-id' not found",)


def test_context_deadline_helpers_use_the_engines_clock() -> None:
    clock = FakeClock(500.0)
    seen: list[Any] = []

    def spy(ctx: WorkflowContext) -> HandlerResult:
        seen.append((ctx.is_timed_out(), ctx.remaining_seconds()))
        return HandlerResult(outputs=["ok"])

    definition = wf({"a": node("spy")}, engine_policy={"workflow_timeout_seconds": 10})
    WorkflowEngine(definition, {"spy": spy}, clock=clock).run()
    assert seen == [(False, 10.0)]


def test_remaining_seconds_is_clamped_at_zero_and_none_without_deadline() -> None:
    ctx = WorkflowContext("wf", "h", "r", "a", {}, 1, 1, zeroflow.WorkflowState(), {}, 1.0, print)
    assert ctx.remaining_seconds() == 0.0
    assert ctx.is_timed_out() is True
    free = WorkflowContext("wf", "h", "r", "a", {}, 1, 1, zeroflow.WorkflowState(), {}, None, print)
    assert free.remaining_seconds() is None
    assert free.is_timed_out() is False


def test_run_from_checkpoint_clears_a_cancel_requested_before_it_started() -> None:
    engine = hitl_engine()
    paused = engine.run()
    assert paused.checkpoint is not None
    engine.cancel()
    assert engine.run_from_checkpoint(paused.checkpoint, resume_input={"ok": True}).success


def test_a_returned_error_wins_over_waiting() -> None:
    handler = returning(outputs=[], waiting=True, error=WorkflowError("MINE", "m"))
    result = WorkflowEngine(linear("a"), {"a": handler}).run()
    assert result.status == "failed"
    assert result.error is not None and result.error.code == "MINE"


def test_non_json_resume_input_is_a_type_error() -> None:
    engine = hitl_engine()
    paused = engine.run()
    assert paused.checkpoint is not None
    with pytest.raises(TypeError, match="JSON"):
        engine.run_from_checkpoint(paused.checkpoint, resume_input={"s": {1}})


def test_duplicate_wait_for_entries_are_accepted_and_the_join_runs() -> None:
    nodes = {
        "s": node("ok", "l", "r"),
        "l": node("ok", "m"),
        "r": node("ok", "m"),
        "m": node("ok", join={"mode": "and", "wait_for": ["l", "l", "r"]}),
    }
    assert WorkflowEngine(wf(nodes), {"ok": ok}).run().trace == ["s", "l", "r", "m"]


def test_update_keys_are_normalised_like_json() -> None:
    handler = returning(outputs=["ok"], workflow_updates={"t": (1, 2), "nested": {1: "one"}})
    result = WorkflowEngine(linear("a"), {"a": handler}).run()
    assert result.state.workflow == {"t": [1, 2], "nested": {"1": "one"}}


# ---------------------------------------------------------------- beyond 0.1.0, lightly


def test_on_error_catcher_routes_matching_failures_before_the_default_error_node() -> None:
    definition = wf(
        {
            "a": node("bad", on_error=[{"target_node": "fix", "exceptions": ["RuntimeError"]}]),
            "fix": node("ok"),
            "err": node("ok"),
        },
        default_error_node="err",
    )
    result = WorkflowEngine(definition, {"bad": boom, "ok": ok}).run()
    assert result.trace == ["a", "fix"]
    assert result.success


def test_on_error_catcher_that_does_not_match_falls_back_to_the_error_node() -> None:
    definition = wf(
        {
            "a": node("bad", on_error=[{"target_node": "fix", "codes": ["UNDECLARED_OUTPUT"]}]),
            "fix": node("ok"),
            "err": node("ok"),
        },
        default_error_node="err",
    )
    result = WorkflowEngine(definition, {"bad": boom, "ok": ok}).run()
    assert result.trace == ["a", "err"]


def test_stranded_join_warns_by_default_and_fails_when_asked() -> None:
    nodes = {
        "s": node("ok", "l", "r"),
        "l": node("ok", "m"),
        "r": node("none", "m"),
        "m": node("ok", join={"mode": "and", "wait_for": ["l", "r"]}),
    }
    handlers = {"ok": ok, "none": returning(outputs=[])}
    rec = Recorder()
    assert WorkflowEngine(wf(nodes), handlers, event_callback=rec).run().success
    warnings = [e.data for e in rec.of("node:warning")]
    assert warnings and warnings[0]["node"] == "m"
    strict = wf(nodes, engine_policy={"stranded_joins": "fail"})
    result = WorkflowEngine(strict, handlers).run()
    assert result.status == "failed"
    assert result.error is not None and result.error.code == "JOIN_STRANDED"


def test_importing_zeroflow_leaves_asyncio_and_thread_pools_unloaded() -> None:
    """A CLI or a Lambda function with plain handlers does not pay for them at import."""
    import subprocess
    import sys

    code = (
        "import sys, zeroflow\n"
        "print(sorted(m for m in ('asyncio', 'concurrent.futures', 'importlib.resources')"
        " if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stdout


def test_an_async_handler_under_run_loads_asyncio_when_needed() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from zeroflow import HandlerResult, WorkflowEngine\n"
        "async def h(ctx):\n"
        "    return HandlerResult(['ok'], workflow_updates={'done': True})\n"
        "flow = {'workflow_name': 'w', 'default_entry_node': 'a', 'nodes': {'a': "
        "{'handler': 'h', 'outputs': {'ok': [{'target_node': 'b'}]}}, 'b': "
        "{'handler': 'h', 'outputs': {'ok': []}}}}\n"
        "before = 'asyncio' in sys.modules\n"
        "result = WorkflowEngine(flow, {'h': h}).run()\n"
        "print(before, result.status, result.state.workflow)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False succeeded {'done': True}", out.stdout + out.stderr
