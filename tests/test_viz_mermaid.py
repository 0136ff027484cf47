"""Mermaid text: the 0.1.0 shape of `workflow_to_mermaid`, and reading it back."""

from __future__ import annotations

from typing import Any

from _support import plan_exec_review
from zeroflow.viz import workflow_to_mermaid
from zeroflow.viz._graph import graph_from_definition
from zeroflow.viz._mermaid import escape_label, parse_mermaid, unescape_label

WF: dict[str, Any] = plan_exec_review()


def test_mermaid_is_a_fenced_top_down_flowchart_with_spec_shapes() -> None:
    text = workflow_to_mermaid(WF)
    lines = text.splitlines()
    assert lines[0] == "```mermaid"
    assert lines[1] == "flowchart TD"
    assert lines[-1] == "```"
    assert not text.endswith("\n")
    assert '    plan(["plan"]):::pending' in lines
    assert '    exec["exec"]:::pending' in lines
    assert '    handle_error{{"handle_error"}}:::pending' in lines
    assert "    plan -->|ok| exec" in lines
    assert "    exec -.->|retry| exec" in lines


def test_unfenced_mermaid_starts_with_the_flowchart_header() -> None:
    text = workflow_to_mermaid(WF, fenced=False)
    assert text.startswith("flowchart TD\n")
    assert "```" not in text
    assert not text.endswith("\n") and text.splitlines()[-1].startswith("    classDef error ")


def test_classes_mark_done_active_and_pending_nodes() -> None:
    text = workflow_to_mermaid(WF, done_nodes=["plan"], active_node="exec")
    for name in ("pending", "active", "done", "error"):
        assert f"classDef {name} " in text
    assert '    plan(["plan"]):::done' in text
    assert '    exec["exec"]:::active' in text
    assert '    review["review"]:::pending' in text
    assert '    handle_error{{"handle_error"}}:::pending' in text
    assert "\n    class " not in text


def test_a_failed_active_node_gets_the_error_class() -> None:
    text = workflow_to_mermaid(WF, done_nodes=["plan"], active_node="exec", failed=True)
    assert '    exec["exec"]:::error' in text
    assert ":::active" not in text


def test_edges_without_a_target_are_skipped_and_nothing_is_validated() -> None:
    broken = {
        "workflow_name": "broken",
        "nodes": {
            "a": {"outputs": {"x": [{"target_node": None}, {"is_loopback": True}, "junk"]}},
            "b": {"outputs": "not a dict"},
            "c": "not a node",
        },
    }
    text = workflow_to_mermaid(broken, fenced=False)
    assert "-->" not in text and "-.->" not in text
    assert 'a["a"]:::pending' in text and 'c["c"]:::pending' in text


def test_undeclared_targets_are_still_drawn_so_the_mistake_is_visible() -> None:
    wf = {"nodes": {"a": {"outputs": {"ok": [{"target_node": "ghost"}]}}}}
    text = workflow_to_mermaid(wf, fenced=False)
    assert 'ghost["ghost"]:::pending' in text and "a -->|ok| ghost" in text


def test_metacharacter_names_are_quoted_and_ids_stay_safe() -> None:
    nasty = 'say "hi" <b>&</b> [x] {y} (z) | #1; end'
    wf = {
        "workflow_name": "meta",
        "default_entry_node": nasty,
        "nodes": {
            nasty: {"outputs": {'a|"b"': [{"target_node": "end"}]}},
            "end": {"outputs": {}},
        },
    }
    text = workflow_to_mermaid(wf, fenced=False)
    assert '"' not in text.split('n0(["', 1)[1].split('"])', 1)[0]
    assert "#quot;hi#quot;" in text
    assert "<b>" not in text
    assert 'n0 -->|"a|#quot;b#quot;"| n1' in text
    parsed = parse_mermaid(text)
    assert [n.label for n in parsed.graph.nodes] == [nasty, "end"]
    assert parsed.graph.edges[0].label == 'a|"b"'


def test_escaping_round_trips() -> None:
    for text in ['a"b', "#35;", "<>&", "x#quot;y", "plain"]:
        assert unescape_label(escape_label(text)) == text


def test_reading_back_gives_the_same_graph() -> None:
    parsed = parse_mermaid(workflow_to_mermaid(WF, done_nodes=["plan"], active_node="exec"))
    graph = graph_from_definition(WF)
    assert [(n.label, n.shape) for n in parsed.graph.nodes] == [
        (n.label, n.shape) for n in graph.nodes
    ]
    assert [(e.source, e.target, e.label, e.loopback) for e in parsed.graph.edges] == [
        (e.source, e.target, e.label, e.loopback) for e in graph.edges
    ]
    assert parsed.node_classes["plan"] == ["done"]
    assert parsed.node_classes["exec"] == ["active"]
    assert parsed.class_defs["done"]["fill"] == "#dcfce7"


def test_kinds_have_their_own_shapes_and_read_back() -> None:
    wf = {
        "default_entry_node": "start",
        "nodes": {
            "start": {"outputs": {"ok": [{"target_node": "ask"}]}},
            "ask": {"kind": "wait", "outputs": {"ok": [{"target_node": "child"}]}},
            "child": {"subflow": "other", "outputs": {"ok": [{"target_node": "each"}]}},
            "each": {"map": {"over": "items"}, "outputs": {}},
        },
    }
    text = workflow_to_mermaid(wf, fenced=False)
    assert 'ask("ask")' in text and 'child[["child"]]' in text and 'each[/"each"\\]' in text
    kinds = [n.kind for n in parse_mermaid(text).graph.nodes]
    assert kinds == ["task", "wait", "subflow", "map"]


def test_hand_written_mermaid_variants_are_understood() -> None:
    source = """
    graph LR
      %% a comment
      A[Start] --> B{Choose}
      B -- yes --> C(Done)
      B -.->|"no"| A
      C --> D & E
      D:::hot --- E
      style E fill:#ff0000
      classDef hot fill:#ffeeee
      linkStyle 0 stroke:red
    """
    parsed = parse_mermaid(source)
    labels = {n.id: n.label for n in parsed.graph.nodes}
    assert labels["A"] == "Start" and labels["B"] == "Choose" and labels["C"] == "Done"
    edges = [(e.source, e.target, e.label, e.loopback) for e in parsed.graph.edges]
    assert ("A", "B", "", False) in edges
    assert ("B", "C", "yes", False) in edges
    assert ("B", "A", "no", True) in edges
    assert parsed.node_classes["D"] == ["hot"]
    assert parsed.node_css["E"]["fill"] == "#ff0000"


def test_garbage_input_gives_an_empty_graph_not_an_error() -> None:
    for junk in ["", "```mermaid\n```", "sequenceDiagram\n  A->>B: hi", "-->|x|", "(((("]:
        parse_mermaid(junk)
    assert parse_mermaid("sequenceDiagram\n  A->>B: hi").graph.nodes == ()


def test_node_level_kind_wait_and_subflow_are_recognised() -> None:
    wf = {
        "default_entry_node": "a",
        "nodes": {
            "a": {"outputs": {"ok": [{"target_node": "w"}]}},
            "w": {"kind": "wait", "outputs": {"ok": [{"target_node": "s"}]}},
            "s": {"kind": "subflow", "outputs": {}},
        },
    }
    kinds = [n.kind for n in graph_from_definition(wf).nodes]
    assert kinds == ["task", "wait", "subflow"]


def test_a_versioned_zf1_definition_is_drawn_through_the_grammar() -> None:
    zf1 = {
        "version": "zf/1",
        "name": "publish",
        "entry": "draft",
        "error": "alert",
        "nodes": {
            "draft": {"handler": "draft", "on": {"ok": "review"}},
            "review": {
                "kind": "wait",
                "prompt": "Publish?",
                "on": {"approve": "publish", "revise": {"to": "draft", "loop": True}},
            },
            "publish": {"handler": "publish"},
            "alert": {"handler": "alert"},
        },
    }
    graph = graph_from_definition(zf1)
    assert graph.name == "publish"
    assert [(n.id, n.shape) for n in graph.nodes] == [
        ("draft", "stadium"),
        ("review", "wait"),
        ("publish", "rect"),
        ("alert", "hexagon"),
    ]
    assert ("review", "draft", "revise", True) in [
        (e.source, e.target, e.label, e.loopback) for e in graph.edges
    ]
    assert 'review("review"):::pending' in workflow_to_mermaid(zf1)
