"""Lint proves dataflow over declared state contracts (ZF201, ZF202), and the engine agrees."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from zeroflow import HandlerResult, WorkflowContext, WorkflowEngine, convert, lint
from zeroflow._dataflow import proven_keys, workflow_key
from zeroflow._definition import compile_workflow


def node(
    reads: list[str] | None = None,
    writes: list[str] | None = None,
    outputs: dict[str, list[dict[str, Any]]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {"handler": "h", "outputs": outputs or {"ok": []}, **extra}
    if reads is not None or writes is not None:
        out["state_contract"] = {"reads_from": reads or [], "writes_to": writes or []}
    return out


def to(*targets: str, label: str = "ok") -> dict[str, list[dict[str, Any]]]:
    return {label: [{"target_node": t} for t in targets]}


def wf(nodes: dict[str, Any], entry: str = "a", **extra: Any) -> dict[str, Any]:
    return {"workflow_name": "w", "default_entry_node": entry, "nodes": nodes, **extra}


def codes(defn: dict[str, Any], code: str) -> list[str]:
    return [f.message for f in lint(defn) if f.code == code]


def test_a_key_written_before_it_is_read_proves_nothing_wrong() -> None:
    defn = wf(
        {
            "a": node([], ["total"], to("b")),
            "b": node(["workflow.total", "input.order"], [], to()),
        }
    )
    assert codes(defn, "ZF201") == []
    assert codes(defn, "ZF202") == []


def test_a_branch_that_skips_the_write_is_named_with_its_path() -> None:
    defn = wf(
        {
            "a": node([], [], {"x": [{"target_node": "x"}], "y": [{"target_node": "y"}]}),
            "x": node([], ["total"], to("j")),
            "y": node([], [], to("j")),
            "j": node(["total"], [], to()),
        }
    )
    (message,) = codes(defn, "ZF201")
    assert "node 'j' reads 'total'" in message
    assert "a -> y -> j" in message
    finding = next(f for f in lint(defn) if f.code == "ZF201")
    assert finding.pointer == "/nodes/j/state_contract/reads_from/0"


def test_an_and_join_has_what_every_member_wrote() -> None:
    defn = wf(
        {
            "a": node([], [], to("x", "y")),
            "x": node([], ["k"], to("j")),
            "y": node([], ["m"], to("j")),
            "j": node(["k", "m"], [], to(), join={"mode": "and", "wait_for": ["x", "y"]}),
        }
    )
    assert codes(defn, "ZF201") == []


def test_a_catcher_sees_the_state_from_before_the_failed_node() -> None:
    defn = wf(
        {
            "a": node([], ["k"], to("b"), on_error=[{"target_node": "c"}]),
            "b": node(["k"], [], to()),
            "c": node(["k"], [], to()),
        }
    )
    (message,) = codes(defn, "ZF201")
    assert "node 'c' reads 'k'" in message and "a -> c" in message


def test_a_loop_reads_on_its_first_visit_what_it_only_writes_later() -> None:
    looping = {
        "again": [{"target_node": "l", "is_loopback": True}],
        "done": [{"target_node": "z"}],
    }
    bad = wf({"l": node(["n"], ["n"], looping), "z": node(["n"], [], to())}, entry="l")
    assert [m.split(",")[0] for m in codes(bad, "ZF201")] == ["node 'l' reads 'n'"]
    good = wf(
        {
            "s": node([], ["n"], to("l")),
            "l": node(["n"], ["n"], looping),
            "z": node(["n"], [], to()),
        },
        entry="s",
    )
    assert codes(good, "ZF201") == []


def test_a_wait_writes_its_resume_key_and_an_undeclared_node_is_not_doubted() -> None:
    defn = wf(
        {
            "ask": {"kind": "wait", "wait": {"resume_as": "answer"}, "outputs": to("use")},
            "use": node(["answer"], [], to("free")),
            "free": {"handler": "h", "outputs": to("last")},
            "last": node(["whatever"], [], to()),
        },
        entry="ask",
    )
    assert codes(defn, "ZF201") == []


def test_a_write_nothing_reads_is_reported_once_reads_are_declared() -> None:
    defn = wf({"a": node([], ["used", "stray"], to("b")), "b": node(["used"], [], to())})
    assert codes(defn, "ZF202") == ["node 'a' writes 'stray', which no node declares it reads"]
    no_reads = wf({"a": node([], ["stray"], to())})
    assert codes(no_reads, "ZF202") == []  # nothing declared to prove against


def test_zf1_and_legacy_spell_contracts_alike_and_lint_the_same() -> None:
    defn = wf(
        {
            "a": node([], [], {"x": [{"target_node": "x"}], "y": [{"target_node": "y"}]}),
            "x": node([], ["total"], to("j")),
            "y": node([], [], to("j")),
            "j": node(["total"], [], to()),
        }
    )
    zf1 = convert(defn, "zf/1").definition
    assert [(f.code, f.message) for f in lint(zf1) if f.code.startswith("ZF2")] == [
        (f.code, f.message) for f in lint(defn) if f.code.startswith("ZF2")
    ]


def test_contract_entries_name_workflow_keys() -> None:
    assert workflow_key("total") == "total"
    assert workflow_key("workflow.order.total") == "order"
    assert workflow_key("state.workflow.x") == "x"
    assert workflow_key("input.order") is None
    assert workflow_key("node.count") is None
    assert workflow_key("") is None
    assert workflow_key(3) is None


# ---------------------------------------------------------------- against the engine

KEYS = ["k0", "k1", "k2", "k3"]


@st.composite
def graphs(draw: Any) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """A random DAG (plus loopbacks and catchers) where every node declares its contract."""
    n = draw(st.integers(2, 7))
    names = [f"n{i}" for i in range(n)]
    nodes: dict[str, Any] = {}
    choices: dict[str, list[str]] = {}
    for i, name in enumerate(names):
        later = names[i + 1 :]
        outputs: dict[str, list[dict[str, Any]]] = {}
        for label in ("a", "b"):
            targets = (
                draw(st.lists(st.sampled_from(later), max_size=2, unique=True)) if later else []
            )
            outputs[label] = [{"target_node": t} for t in targets]
        if i > 0 and draw(st.booleans()):
            outputs["back"] = [
                {"target_node": draw(st.sampled_from(names[: i + 1])), "is_loopback": True}
            ]
        writes = draw(st.lists(st.sampled_from(KEYS), max_size=2, unique=True))
        reads = draw(st.lists(st.sampled_from(KEYS), max_size=2, unique=True))
        spec: dict[str, Any] = {
            "handler": "h",
            "outputs": outputs,
            "state_contract": {"reads_from": reads, "writes_to": writes},
        }
        if later and draw(st.booleans()):
            spec["on_error"] = [{"target_node": draw(st.sampled_from(later))}]
        nodes[name] = spec
        choices[name] = draw(
            st.lists(st.sampled_from(["a", "b", "back", "fail"]), min_size=6, max_size=6)
        )
    defn = {
        "workflow_name": "g",
        "default_entry_node": "n0",
        "engine_policy": {"max_steps": 60},
        "nodes": nodes,
    }
    return defn, choices


@settings(max_examples=150, deadline=None)
@given(graphs())
def test_a_key_the_linter_proves_present_is_present_whenever_the_engine_runs_the_node(
    drawn: tuple[dict[str, Any], dict[str, list[str]]],
) -> None:
    defn, choices = drawn
    proven = proven_keys(compile_workflow(defn), defn["nodes"])
    seen: list[tuple[str, set[str]]] = []

    def h(ctx: WorkflowContext) -> HandlerResult:
        name = ctx.node_name
        have = set(ctx.state.workflow)
        seen.append((name, have))
        visit = ctx.state.workflow.get(f"visits_{name}", 0)
        pick = choices[name][visit % len(choices[name])]
        spec = defn["nodes"][name]
        updates: dict[str, Any] = {k: True for k in spec["state_contract"]["writes_to"]}
        updates[f"visits_{name}"] = visit + 1
        if pick == "fail" or pick not in spec["outputs"]:
            raise RuntimeError("boom")
        return HandlerResult(outputs=[pick], workflow_updates=updates)

    engine = WorkflowEngine(defn, {"h": h})
    engine.run({}, run_id="r")
    for name, have in seen:
        missing = proven[name] - have
        assert not missing, (name, missing, defn)
