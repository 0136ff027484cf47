"""lint(): one test per finding, pointers in the format the user wrote, silence on clean graphs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zeroflow._lint import LINT_CODES, LintFinding, lint

FIXTURES = Path(__file__).parent / "fixtures" / "v010"


def node(handler: str | None, **outputs: list[str]) -> dict[str, Any]:
    return {
        "handler": handler,
        "outputs": {k: [{"target_node": t} for t in v] for k, v in outputs.items()},
    }


def wf(nodes: dict[str, Any], entry: str = "a", **top: Any) -> dict[str, Any]:
    return {"workflow_name": "t", "default_entry_node": entry, "nodes": nodes, **top}


def codes(findings: list[LintFinding]) -> list[str]:
    return [f.code for f in findings]


def test_a_clean_workflow_has_no_findings() -> None:
    defn = wf({"a": node("a", ok=["b"]), "b": node("b")})
    assert lint(defn, {"a": print, "b": print}) == []


def test_the_0_1_0_fixtures_lint_without_errors() -> None:
    for path in FIXTURES.glob("*_workflow.json"):
        findings = lint(json.loads(path.read_text()))
        assert not [f for f in findings if f.severity == "error"], path.name


def test_an_unreachable_node_is_a_warning_pointing_at_the_node() -> None:
    [finding] = lint(wf({"a": node("a"), "orphan": node("o")}))
    assert (finding.code, finding.severity, finding.pointer) == (
        "ZF101",
        "warning",
        "/nodes/orphan",
    )
    assert "'orphan' is unreachable" in finding.message and finding.hint


def test_the_error_node_and_what_it_reaches_count_as_reachable() -> None:
    defn = wf(
        {"a": node("a"), "err": node("e", ok=["notify"]), "notify": node("n")},
        default_error_node="err",
    )
    assert lint(defn) == []


def test_an_outcome_that_routes_nowhere_on_a_routing_node_is_flagged() -> None:
    defn = wf({"a": node("a", ok=["b"], skip=[]), "b": node("b")})
    [finding] = lint(defn)
    assert (finding.code, finding.pointer) == ("ZF102", "/nodes/a/outputs/skip")


def test_terminal_nodes_may_declare_outcomes_that_end_the_run() -> None:
    assert lint(wf({"a": node("a", ok=["b"]), "b": node("b", done=[])})) == []


def test_an_and_join_fed_by_exclusive_branches_can_strand() -> None:
    defn = wf(
        {
            "a": node("a", yes=["b"], no=["c"]),
            "b": node("b", ok=["j"]),
            "c": node("c", ok=["j"]),
            "j": {**node("j"), "join": {"mode": "and", "wait_for": ["b", "c"]}},
        }
    )
    [finding] = lint(defn)
    assert (finding.code, finding.pointer) == ("ZF103", "/nodes/j/join")
    assert "'a' (yes vs no)" in finding.message


def test_an_and_join_fed_by_a_parallel_fan_out_is_fine() -> None:
    defn = wf(
        {
            "a": node("a", ok=["b", "c"]),
            "b": node("b", ok=["j"]),
            "c": node("c", ok=["j"]),
            "j": {**node("j"), "join": {"mode": "and", "wait_for": ["b", "c"]}},
        }
    )
    assert lint(defn) == []


def test_a_loop_with_no_exit_is_an_error() -> None:
    defn = wf(
        {
            "a": node("a", ok=["b"]),
            "b": node("b", ok=["c"]),
            "c": {
                "handler": "c",
                "outputs": {"again": [{"target_node": "b", "is_loopback": True}]},
            },
        }
    )
    [finding] = lint(defn)
    assert (finding.code, finding.severity, finding.pointer) == ("ZF104", "error", "/nodes/b")
    assert "'b', 'c'" in finding.message


def test_a_loop_with_an_exit_outcome_is_fine() -> None:
    defn = wf(
        {
            "a": node("a", ok=["b"]),
            "b": {
                "handler": "b",
                "outputs": {"again": [{"target_node": "b", "is_loopback": True}], "done": []},
            },
        }
    )
    assert lint(defn) == []


def test_an_error_node_that_routes_back_into_the_graph_is_flagged() -> None:
    defn = wf(
        {
            "a": node("a", ok=["b"]),
            "b": node("b"),
            "err": {
                "handler": "e",
                "outputs": {"retry": [{"target_node": "a", "is_loopback": True}]},
            },
        },
        default_error_node="err",
    )
    [finding] = lint(defn)
    assert (finding.code, finding.pointer) == ("ZF105", "/default_error_node")
    assert "'a'" in finding.message


def test_handler_names_missing_from_the_map_are_errors_with_a_suggestion() -> None:
    defn = wf({"a": node("a", ok=["b"]), "b": node("shipit")})
    [finding] = lint(defn, {"a": print, "ship_it": print})
    assert (finding.code, finding.severity, finding.pointer) == (
        "ZF106",
        "error",
        "/nodes/b/handler",
    )
    assert "did you mean 'ship_it'?" in finding.hint


def test_handlers_are_not_checked_without_a_map() -> None:
    assert lint(wf({"a": node("anything")})) == []


def test_a_task_without_a_handler_is_a_warning() -> None:
    [finding] = lint(wf({"a": node(None)}))
    assert (finding.code, finding.pointer) == ("ZF107", "/nodes/a/handler")


def test_an_invalid_definition_is_one_finding_not_an_exception() -> None:
    [finding] = lint({"workflow_name": "x", "default_entry_node": "a", "nodes": {"a": {}}})
    assert (finding.code, finding.severity) == ("ZF100", "error")
    assert "missing 'handler'" in finding.message


def test_zf1_findings_point_into_the_zf1_document() -> None:
    defn = {
        "version": "zf/1",
        "name": "t",
        "entry": "a",
        "error": "err",
        "nodes": {
            "a": {"handler": "a", "on": {"ok": "b", "skip": []}},
            "b": {"handler": "b"},
            "err": {"handler": "e", "on": {"again": {"to": "a", "loop": True}}},
            "ghost": {"kind": "end"},
        },
    }
    found = {f.code: f.pointer for f in lint(defn)}
    assert found == {
        "ZF101": "/nodes/ghost",
        "ZF102": "/nodes/a/on/skip",
        "ZF105": "/error",
    }


def test_errors_come_first_and_every_code_is_documented() -> None:
    defn = wf({"a": node("a", ok=["b"]), "b": node("b"), "orphan": node("o")})
    findings = lint(defn, ["a"])
    assert codes(findings) == ["ZF106", "ZF106", "ZF101"]
    assert {f.code for f in findings} <= set(LINT_CODES)
    assert findings[0].to_dict()["pointer"] == "/nodes/b/handler"
