"""Pictures draw every edge the engine can take, with kinds read from the compiled workflow.

``on_error`` catchers, the route to the error node, ``kind: "end"`` nodes and
the run overlay's taken edges, in SVG, HTML, DOT and Mermaid; and the linter
reading kinds from the same compiled workflow.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from zeroflow import HandlerResult, WorkflowContext, WorkflowEngine
from zeroflow._lint import lint
from zeroflow.viz import workflow_to_dot, workflow_to_html, workflow_to_mermaid, workflow_to_svg
from zeroflow.viz._graph import DIRECT_FAILURE_EDGES, MARKER_LABEL, graph_from_definition
from zeroflow.viz._mermaid import parse_mermaid

SVG = "{http://www.w3.org/2000/svg}"

ZF1: dict[str, Any] = {
    "version": "zf/1",
    "name": "publish",
    "entry": "fetch",
    "error": "alert",
    "nodes": {
        "fetch": {
            "handler": "fetch",
            "on": {"ok": "review"},
            "on_error": [
                {"to": "use_cache", "codes": ["TIMEOUT"]},
                {"to": "use_cache", "exceptions": ["ConnectionError"]},
            ],
        },
        "use_cache": {"handler": "ok", "on": {"ok": "review"}},
        "review": {
            "kind": "wait",
            "prompt": "Publish?",
            "on": {"ok": "publish", "revise": {"to": "fetch", "loop": True}},
        },
        "publish": {"handler": "ok", "on": {"ok": "done"}, "on_error": "rollback"},
        "rollback": {"handler": "ok", "on": {"ok": "done"}},
        "done": {"kind": "end", "result": {"ok": True}},
        "alert": {"handler": "ok", "on": {"ok": "failed_end"}},
        "failed_end": {"kind": "end"},
    },
}


def _edge(target: str, loop: bool = False) -> dict[str, Any]:
    return {"target_node": target, "is_loopback": loop}


def orders(extra_tasks: int = 0) -> dict[str, Any]:
    """A legacy workflow with a coded catcher, an error node and an end node."""
    nodes: dict[str, Any] = {
        "receive": {"handler": "ok", "outputs": {"ok": [_edge("charge")]}},
        "charge": {
            "handler": "charge",
            "outputs": {"ok": [_edge("finish")]},
            "on_error": [{"target_node": "retry_later", "codes": ["CARD_DECLINED"]}],
        },
        "retry_later": {"handler": "ok", "outputs": {"ok": [_edge("finish")]}},
        "finish": {"kind": "end", "outputs": {}},
        "notify_ops": {"handler": "ok", "outputs": {"ok": [_edge("finish")]}},
    }
    for i in range(extra_tasks):
        nodes[f"extra_{i}"] = {"handler": "ok", "outputs": {"ok": [_edge("finish")]}}
    return {
        "workflow_name": "orders",
        "default_entry_node": "receive",
        "default_error_node": "notify_ops",
        "nodes": nodes,
    }


def ok(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"])


def refuse(ctx: WorkflowContext) -> HandlerResult:
    raise ConnectionError("the origin is down")


def crash(ctx: WorkflowContext) -> HandlerResult:
    raise RuntimeError("boom")


def _svg_paths(svg: str) -> list[ET.Element]:
    root = ET.fromstring(svg)
    return [p for p in root.iter(f"{SVG}path") if "edge" in (p.get("class") or "").split()]


def _svg_groups(svg: str, cls: str) -> dict[str, ET.Element]:
    root = ET.fromstring(svg)
    return {g.attrib["data-id"]: g for g in root.iter(f"{SVG}g") if g.get("class") == cls}


def _pairs(svg: str, route: str | None = None) -> list[tuple[str, str, str]]:
    return [
        (p.attrib["data-source"], p.attrib["data-target"], p.attrib["data-label"])
        for p in _svg_paths(svg)
        if route is None or p.attrib["data-route"] == route
    ]


# ---------------------------------------------------------------- catchers


def test_svg_draws_each_catcher_as_a_labelled_error_route_into_its_target() -> None:
    svg = workflow_to_svg(ZF1)
    catches = _pairs(svg, "catch")
    assert ("fetch", "use_cache", "TIMEOUT") in catches
    assert ("fetch", "use_cache", "ConnectionError") in catches
    assert ("publish", "rollback", "error") in catches  # a catch-all says "error"
    for path in _svg_paths(svg):
        if path.attrib["data-route"] != "output":
            assert "error-route" in path.attrib["class"].split()
            assert path.attrib["stroke"] == "#dc2626" and path.get("stroke-dasharray")
    # No node floats: every node but the entry has an incoming edge (not a loopback).
    targets = {
        p.attrib["data-target"]
        for p in _svg_paths(svg)
        if "loopback" not in p.attrib["class"].split()
    }
    assert set(_svg_groups(svg, "node")) - targets == {"fetch"}


def test_dot_and_mermaid_draw_the_same_catchers_and_error_routes() -> None:
    dot = workflow_to_dot(ZF1)
    ids = dict(re.findall(r'  (n\d+) \[label="([^"\\]+)', dot))
    name = {v: k for k, v in ids.items()}
    assert (
        f'{name["fetch"]} -> {name["use_cache"]} [label="ConnectionError", style="dashed", '
        'color="#dc2626"'
    ) in dot
    assert f'{name["publish"]} -> {name["rollback"]} [label="error", style="dashed"' in dot
    assert f'{name["fetch"]} -> {name["alert"]} [label="on failure"' in dot
    mermaid = workflow_to_mermaid(ZF1, fenced=False)
    lines = mermaid.splitlines()
    assert "    fetch -.->|TIMEOUT| use_cache" in lines
    assert "    fetch -.->|ConnectionError| use_cache" in lines
    assert "    publish -.->|error| rollback" in lines
    assert "    fetch -.->|on failure| alert" in lines
    edges = [ln for ln in lines if re.match(r"    \S+ (-->|-\.->)", ln)]
    styled = next(ln for ln in lines if ln.strip().startswith("linkStyle"))
    indexes = [int(i) for i in styled.split()[1].split(",")]
    assert len(indexes) == 6  # two coded catchers, a catch-all, three routes to 'alert'
    assert {edges[i].split()[1].split("|")[0] for i in indexes} == {"-.->"}
    assert {edges[i].split()[0] for i in indexes} >= {"fetch", "publish"}
    # Our own reader gets the error routes back (not as loopbacks), and the end nodes.
    parsed = parse_mermaid(mermaid)
    back = {(e.source, e.target, e.label): e for e in parsed.graph.edges}
    assert back[("fetch", "use_cache", "TIMEOUT")].route == "catch"
    assert not back[("fetch", "use_cache", "TIMEOUT")].loopback
    assert back[("fetch", "alert", "on failure")].route == "failure"
    assert back[("review", "fetch", "revise")].loopback
    assert parsed.graph.node("done").kind == "end"


def test_the_html_page_draws_the_catchers_too(tmp_path: Path) -> None:
    page = workflow_to_html(ZF1, tmp_path / "p.html").read_text(encoding="utf-8")
    svg = page[page.index("<svg") : page.index("</svg>") + 6]
    assert ("fetch", "use_cache", "ConnectionError") in _pairs(svg, "catch")
    assert "fetch -.-&gt;|ConnectionError| use_cache" in page  # the Mermaid source below


# ---------------------------------------------------------------- the error node


def test_few_failing_nodes_each_get_an_edge_to_the_error_node() -> None:
    # receive, charge and retry_later can fail; notify_ops is the error node itself
    # and the end node runs no code.
    svg = workflow_to_svg(orders())
    assert sorted(_pairs(svg, "failure")) == [
        ("charge", "notify_ops", "on failure"),
        ("receive", "notify_ops", "on failure"),
        ("retry_later", "notify_ops", "on failure"),
    ]
    assert not _svg_groups(svg, "marker")


def test_many_failing_nodes_share_one_any_failure_marker() -> None:
    wf = orders(extra_tasks=DIRECT_FAILURE_EDGES)
    svg = workflow_to_svg(wf)
    markers = _svg_groups(svg, "marker")
    assert len(markers) == 1
    (marker_id, marker) = next(iter(markers.items()))
    assert marker_id not in wf["nodes"]
    assert MARKER_LABEL in "".join(marker.itertext())
    assert "extra_0" in marker.find(f"{SVG}title").text  # type: ignore[union-attr, operator]
    assert _pairs(svg, "failure") == [(marker_id, "notify_ops", "")]
    # The node groups stay the workflow's nodes.
    assert sorted(_svg_groups(svg, "node")) == sorted(wf["nodes"])
    mermaid = workflow_to_mermaid(wf, fenced=False)
    assert f'>"{MARKER_LABEL}"]' in mermaid and "-.-> notify_ops" in mermaid
    assert "shape=box" in workflow_to_dot(wf) and '"any failure"' in workflow_to_dot(wf)


def test_a_catch_all_catcher_keeps_its_node_off_the_error_route() -> None:
    graph = graph_from_definition(ZF1)
    sources = {e.source for e in graph.edges if e.route == "failure"}
    assert "publish" not in sources  # on_error "rollback" catches everything
    assert "alert" not in sources  # the engine never routes the error node to itself
    assert "review" not in sources and "done" not in sources  # wait and end run no code
    assert sources == {"fetch", "use_cache", "rollback"}


# ---------------------------------------------------------------- kinds


def test_end_nodes_are_drawn_as_terminals_in_every_format() -> None:
    svg = workflow_to_svg(ZF1)
    nodes = _svg_groups(svg, "node")
    assert nodes["done"].attrib["data-kind"] == "end"
    assert nodes["done"].attrib["data-shape"] == "end"
    assert len(nodes["done"].findall(f"{SVG}rect")) == 2  # a double outline
    assert nodes["fetch"].attrib["data-shape"] == "stadium"
    assert re.search(
        r'label="done", shape=box, style="rounded,filled", peripheries=2', (workflow_to_dot(ZF1))
    )
    assert '    done((("done"))):::pending' in workflow_to_mermaid(ZF1).splitlines()
    legacy = orders()
    assert '    finish((("finish"))):::pending' in workflow_to_mermaid(legacy).splitlines()


def test_config_kind_is_the_handlers_business_and_kind_wait_is_a_wait() -> None:
    wf = {
        "workflow_name": "w",
        "default_entry_node": "a",
        "nodes": {
            "a": {"handler": "h", "outputs": {"ok": [_edge("cfg")]}},
            "cfg": {"handler": "h", "config": {"kind": "wait"}, "outputs": {"ok": [_edge("w")]}},
            "w": {"kind": "wait", "outputs": {}},
        },
    }
    nodes = _svg_groups(workflow_to_svg(wf), "node")
    assert nodes["cfg"].attrib["data-kind"] == "task"
    assert nodes["cfg"].attrib["data-shape"] == "rect"
    assert nodes["w"].attrib["data-shape"] == "wait"
    text = workflow_to_mermaid(wf, fenced=False)
    assert '    cfg["cfg"]:::pending' in text and '    w("w"):::pending' in text
    # The engine agrees: the config-"wait" node runs its handler and does not pause.
    result = WorkflowEngine(wf, {"h": ok}).run()
    assert [r.node for r in result.audit_trail][:2] == ["a", "cfg"]
    assert result.audit_trail[1].status == "succeeded"


def test_a_definition_that_does_not_compile_is_still_drawn_leniently() -> None:
    broken = {
        "workflow_name": "broken",
        "default_entry_node": "a",
        "default_error_node": "err",
        "nodes": {
            "a": {"outputs": {"ok": [_edge("b")]}, "on_error": [{"target_node": "fix"}]},
            "b": {"kind": "end", "outputs": {"x": [_edge("ghost")]}},
            "fix": {"outputs": {}},
            "err": {"outputs": {}},
        },
    }
    graph = graph_from_definition(broken)  # 'a' has no handler: compile_workflow refuses it
    assert [(e.source, e.target, e.route) for e in graph.edges] == [
        ("a", "b", "output"),
        ("a", "fix", "catch"),
        ("b", "ghost", "output"),
    ]
    assert graph.node("b").kind == "end" and graph.node("ghost").kind == "task"
    assert graph.node("err").shape == "hexagon"
    workflow_to_svg(broken)  # draws


# ---------------------------------------------------------------- run overlays


def test_the_catcher_the_run_took_is_highlighted() -> None:
    result = WorkflowEngine(ZF1, {"fetch": refuse, "ok": ok}).run()
    assert [r.node for r in result.audit_trail] == ["fetch", "use_cache", "review"]
    svg = workflow_to_svg(ZF1, run=result)
    taken = {
        (p.attrib["data-source"], p.attrib["data-target"], p.attrib["data-label"])
        for p in _svg_paths(svg)
        if p.get("data-taken") == "true"
    }
    assert taken == {("fetch", "use_cache", "ConnectionError"), ("use_cache", "review", "ok")}
    for path in _svg_paths(svg):
        if path.get("data-taken") == "true":
            assert "taken" in path.attrib["class"].split()
            assert float(path.attrib["stroke-width"]) >= 3
        else:
            assert path.get("opacity") is not None
    nodes = _svg_groups(svg, "node")
    assert nodes["fetch"].attrib["data-status"] == "failed"
    assert nodes["use_cache"].attrib["data-status"] == "succeeded"
    dot = workflow_to_dot(ZF1, run=result)
    assert re.search(r'\[label="ConnectionError", [^\]]*penwidth=3\]', dot)
    assert not re.search(r'\[label="TIMEOUT", [^\]]*penwidth=3\]', dot)


def test_a_coded_catcher_is_taken_by_its_code() -> None:
    def declined(ctx: WorkflowContext) -> HandlerResult:
        from zeroflow import WorkflowError

        return HandlerResult(outputs=[], error=WorkflowError("CARD_DECLINED", "no", None))

    result = WorkflowEngine(orders(), {"ok": ok, "charge": declined}).run()
    svg = workflow_to_svg(orders(), run=result)
    taken = {(p.attrib["data-source"], p.attrib["data-target"]) for p in _svg_paths(svg)}
    highlighted = {
        (p.attrib["data-source"], p.attrib["data-target"])
        for p in _svg_paths(svg)
        if p.get("data-taken") == "true"
    }
    assert ("charge", "notify_ops") in taken and ("charge", "notify_ops") not in highlighted
    assert highlighted == {
        ("receive", "charge"),
        ("charge", "retry_later"),
        ("retry_later", "finish"),
    }


@pytest.mark.parametrize("extra", [0, DIRECT_FAILURE_EDGES], ids=["direct", "marker"])
def test_the_route_to_the_error_node_the_run_took_is_highlighted(extra: int) -> None:
    wf = orders(extra_tasks=extra)
    result = WorkflowEngine(wf, {"ok": ok, "charge": crash}).run()
    assert [r.node for r in result.audit_trail] == ["receive", "charge", "notify_ops", "finish"]
    svg = workflow_to_svg(wf, run=result)
    highlighted = [
        (p.attrib["data-source"], p.attrib["data-target"], p.attrib["data-route"])
        for p in _svg_paths(svg)
        if p.get("data-taken") == "true"
    ]
    into_error = [h for h in highlighted if h[1] == "notify_ops"]
    assert len(into_error) == 1 and into_error[0][2] == "failure"
    if not extra:
        assert into_error[0][0] == "charge"
    assert ("notify_ops", "finish", "output") in highlighted
    assert ("charge", "retry_later", "catch") not in highlighted


def test_a_failure_that_ends_the_run_takes_no_route() -> None:
    wf = orders()
    del wf["default_error_node"]
    result = WorkflowEngine(wf, {"ok": ok, "charge": crash}).run()
    assert result.status == "failed"
    svg = workflow_to_svg(wf, run=result)
    highlighted = [p.attrib["data-target"] for p in _svg_paths(svg) if p.get("data-taken")]
    assert highlighted == ["charge"]


# ---------------------------------------------------------------- the linter


def test_lint_reads_kinds_from_the_compiled_workflow() -> None:
    # A node with a 'subflow' key and no 'kind' is a subflow node to the engine,
    # so it needs no handler (the linter used to call it a task without one).
    wf: dict[str, Any] = {
        "workflow_name": "p",
        "default_entry_node": "a",
        "nodes": {
            "a": {"handler": "h", "outputs": {"ok": [_edge("child")]}},
            "child": {"subflow": {"workflow": "c"}, "handler": None, "outputs": {}},
        },
    }
    assert [f.code for f in lint(wf)] == []
    # A config "kind" does not make a task handlerless: still ZF107.
    wf["nodes"]["child"] = {"handler": None, "config": {"kind": "wait"}, "outputs": {}}
    assert [f.code for f in lint(wf)] == ["ZF107"]


# ---------------------------------------------------------------- geometry


@pytest.mark.parametrize(
    "wf", [ZF1, orders(), orders(extra_tasks=4)], ids=["zf1", "direct", "marker"]
)
def test_error_routes_and_markers_keep_the_drawing_sound(wf: dict[str, Any]) -> None:
    from test_viz_svg import _box, _ends, _on_boundary, _overlap

    root = ET.fromstring(workflow_to_svg(wf))
    groups = {
        g.attrib["data-id"]: g for g in root.iter(f"{SVG}g") if g.get("class") in ("node", "marker")
    }
    boxes = {k: _box(g) for k, g in groups.items()}
    names = sorted(boxes)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not _overlap(boxes[a], boxes[b]), (a, b)
    for p in _svg_paths(workflow_to_svg(wf)):
        start, end = _ends(p.attrib["d"])
        src, dst = p.attrib["data-source"], p.attrib["data-target"]
        assert _on_boundary(groups[src].attrib["data-shape"], boxes[src], start), (src, start)
        assert _on_boundary(groups[dst].attrib["data-shape"], boxes[dst], end), (dst, end)
    labels = [
        _box(g) for g in root.iter(f"{SVG}g") if "edge-label" in (g.get("class") or "").split()
    ]
    for lab in labels:
        for name, box in boxes.items():
            assert not _overlap(lab, box), (lab, name)
    for i, a_box in enumerate(labels):
        for b_box in labels[i + 1 :]:
            assert not _overlap(a_box, b_box)
