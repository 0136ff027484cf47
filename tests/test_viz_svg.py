"""The SVG picture: well-formed, geometrically sound, deterministic, and overlaid by runs."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

import pytest

import zeroflow
from zeroflow.viz import workflow_to_svg
from zeroflow.viz._layout import HEX_INSET, MAP_OFFSET, RECT_RADIUS, WAIT_RADIUS
from zeroflow.viz._palette import STATUS_STYLES

SVG = "{http://www.w3.org/2000/svg}"


def _edge(target: str, loop: bool = False) -> dict[str, Any]:
    return {"target_node": target, "is_loopback": loop}


WF: dict[str, Any] = {
    "workflow_name": "review",
    "default_entry_node": "plan",
    "default_error_node": "handle_error",
    "nodes": {
        "plan": {"handler": "h", "outputs": {"ok": [_edge("exec")]}},
        "exec": {
            "handler": "h",
            "outputs": {"ok": [_edge("review")], "retry": [_edge("exec", True)]},
        },
        "review": {
            "handler": "h",
            "outputs": {"ok": [_edge("publish")], "again": [_edge("plan", True)]},
        },
        "publish": {"handler": "h", "outputs": {}},
        "approve": {"kind": "wait", "outputs": {}},
        "child": {"handler": "h", "subflow": "x", "outputs": {"ok": [_edge("each")]}},
        "each": {"handler": "h", "map": {}, "outputs": {}},
        "handle_error": {"handler": "h", "outputs": {"ok": [_edge("approve")]}},
    },
}


def big_workflow(n: int = 30) -> dict[str, Any]:
    """A branching, joining, looping workflow of `n` nodes."""
    names = [f"step_{i:02d}" for i in range(n)]
    nodes: dict[str, Any] = {}
    for i, name in enumerate(names):
        outs: dict[str, list[dict[str, Any]]] = {}
        if i + 1 < n:
            outs["ok"] = [_edge(names[i + 1])]
        if i + 3 < n and i % 3 == 0:
            outs["skip"] = [_edge(names[i + 3])]
        if i % 7 == 6:
            outs["retry"] = [_edge(names[i - 4], True)]
        nodes[name] = {"handler": "h", "outputs": outs}
    return {"workflow_name": "big", "default_entry_node": names[0], "nodes": nodes}


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def _nodes(root: ET.Element) -> dict[str, ET.Element]:
    return {g.attrib["data-id"]: g for g in root.iter(f"{SVG}g") if g.get("class") == "node"}


def _box(el: ET.Element) -> tuple[float, float, float, float]:
    return tuple(float(el.attrib[k]) for k in ("data-x", "data-y", "data-w", "data-h"))  # type: ignore[return-value]


def _ends(d: str) -> tuple[tuple[float, float], tuple[float, float]]:
    nums = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", d)]
    return (nums[0], nums[1]), (nums[-2], nums[-1])


def _on_boundary(
    shape: str, box: tuple[float, float, float, float], p: tuple[float, float]
) -> bool:
    x, y, w, h = box
    inset = {"stadium": h / 2, "hexagon": HEX_INSET, "map": MAP_OFFSET + 2, "wait": WAIT_RADIUS}
    i = min(inset.get(shape, RECT_RADIUS), w / 2 - 1)
    px, py = p
    return (
        abs(py - y) < 0.02 or abs(py - (y + h)) < 0.02
    ) and x + i - 0.02 <= px <= x + w - i + 0.02


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


@pytest.mark.parametrize("wf", [WF, big_workflow(30), big_workflow(12)], ids=["mixed", "30", "12"])
def test_svg_is_sound_xml_with_non_overlapping_nodes_edges_on_boundaries_and_free_labels(
    wf: dict[str, Any],
) -> None:
    root = _parse(workflow_to_svg(wf))
    assert root.tag == f"{SVG}svg"
    nodes = _nodes(root)
    assert sorted(nodes) == sorted(wf["nodes"])
    boxes = {k: _box(v) for k, v in nodes.items()}
    names = sorted(boxes)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not _overlap(boxes[a], boxes[b]), (a, b)
    edges = [p for p in root.iter(f"{SVG}path") if "edge" in (p.get("class") or "").split()]
    expected = sum(len(v) for n in wf["nodes"].values() for v in n["outputs"].values())
    assert len(edges) == expected
    for p in edges:
        start, end = _ends(p.attrib["d"])
        src, dst = p.attrib["data-source"], p.attrib["data-target"]
        assert _on_boundary(nodes[src].attrib["data-shape"], boxes[src], start), (src, start)
        assert _on_boundary(nodes[dst].attrib["data-shape"], boxes[dst], end), (dst, end)
    labels = [_box(g) for g in root.iter(f"{SVG}g") if g.get("class") == "edge-label"]
    assert len(labels) == expected
    for lab in labels:
        for name, box in boxes.items():
            assert not _overlap(lab, box), (lab, name)
    for i, a_box in enumerate(labels):
        for b_box in labels[i + 1 :]:
            assert not _overlap(a_box, b_box)
    width, height = float(root.attrib["width"]), float(root.attrib["height"])
    for x, y, w, h in boxes.values():
        assert x >= 0 and x + w <= width and y >= 0 and y + h <= height


def test_shapes_follow_node_roles_and_kinds() -> None:
    nodes = _nodes(_parse(workflow_to_svg(WF)))
    shapes = {k: v.attrib["data-shape"] for k, v in nodes.items()}
    assert shapes == {
        "plan": "stadium",
        "exec": "rect",
        "review": "rect",
        "publish": "rect",
        "approve": "wait",
        "child": "subflow",
        "each": "map",
        "handle_error": "hexagon",
    }
    assert nodes["handle_error"].find(f"{SVG}polygon") is not None
    stadium = nodes["plan"].find(f"{SVG}rect")
    assert stadium is not None
    assert float(stadium.attrib["rx"]) == float(stadium.attrib["height"]) / 2


def test_loopbacks_are_dashed_curves() -> None:
    root = _parse(workflow_to_svg(WF))
    loops = [p for p in root.iter(f"{SVG}path") if "loopback" in (p.get("class") or "")]
    assert {(p.attrib["data-source"], p.attrib["data-target"]) for p in loops} == {
        ("exec", "exec"),
        ("review", "plan"),
    }
    for p in loops:
        assert p.attrib["stroke-dasharray"]
        assert "C" in p.attrib["d"]


def test_layout_is_deterministic_and_independent_of_dict_building_order() -> None:
    first = workflow_to_svg(big_workflow(30))
    assert all(workflow_to_svg(big_workflow(30)) == first for _ in range(3))


def test_the_thirty_node_workflow_draws_in_well_under_a_second() -> None:
    wf = big_workflow(30)
    start = time.perf_counter()
    workflow_to_svg(wf)
    assert time.perf_counter() - start < 1.0


def test_metacharacter_names_render_as_escaped_text() -> None:
    nasty = 'a "quoted" <tag> & amp; ]]> {x} |y| #1; \x01'
    wf = {
        "workflow_name": "<meta> & co",
        "default_entry_node": nasty,
        "nodes": {nasty: {"outputs": {"<&>": [_edge("end")]}}, "end": {"outputs": {}}},
    }
    svg = workflow_to_svg(wf)
    root = _parse(svg)
    nodes = _nodes(root)
    assert set(nodes) == {nasty.replace("\x01", "\ufffd"), "end"}
    texts = "".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "<tag>" in texts and "&" in texts
    assert "<tag>" not in svg


def test_a_broken_definition_still_draws() -> None:
    svg = workflow_to_svg({"nodes": {"a": {"outputs": {"x": [{"target_node": "a"}, None]}}}})
    assert len(_nodes(_parse(svg))) == 1
    assert len(_nodes(_parse(workflow_to_svg({})))) == 0


# ---------------------------------------------------------------- run overlay


@dataclass(frozen=True)
class Step:
    """A stand-in for the engine's StepRecord."""

    step: int
    wave: int
    node: str
    status: str
    duration_ms: float | None = None


@dataclass
class Snapshot:
    """A stand-in for the engine's RunSnapshot."""

    status: str
    audit_trail: list[Step]
    trace: list[str]
    ready_now: list[str] = field(default_factory=list)
    ready_next_wave: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Result:
    """A stand-in for the engine's WorkflowResult."""

    status: str
    audit_trail: list[Step]
    trace: list[str]
    checkpoint: Snapshot | None


TRAIL = [
    Step(1, 1, "plan", "succeeded", 2.0),
    Step(2, 1, "exec", "failed", 5.0),
    Step(3, 2, "exec", "succeeded", 7.5),
    Step(4, 2, "review", "succeeded", None),
    Step(5, 3, "handle_error", "succeeded", 1.0),
    Step(6, 3, "approve", "waiting", 3.0),
]


def _expected_status(trail: list[Step], queued: list[str], node: str) -> str:
    mine = [s for s in trail if s.node == node]
    if mine:
        return mine[-1].status
    return "next" if node in queued else "not_reached"


def _assert_overlay(svg: str, trail: list[Step], queued: list[str]) -> None:
    nodes = _nodes(_parse(svg))
    for name, g in nodes.items():
        status = _expected_status(trail, queued, name)
        assert g.attrib["data-status"] == status, name
        shape = next(el for el in g if el.get("class") == "shape")
        assert shape.attrib["fill"] == STATUS_STYLES[status].fill  # type: ignore[index]
        assert shape.attrib["stroke"] == STATUS_STYLES[status].stroke  # type: ignore[index]
        mine = [s for s in trail if s.node == name]
        assert int(g.attrib["data-runs"]) == len(mine)
        expected_ms = sum(s.duration_ms or 0 for s in mine)
        assert float(g.attrib["data-duration-ms"]) == pytest.approx(expected_ms)


def test_overlay_colours_match_a_snapshot_audit_trail() -> None:
    snap = Snapshot(
        "waiting",
        TRAIL,
        [s.node for s in TRAIL],
        ready_now=["approve"],
        ready_next_wave=["publish"],
    )
    svg = workflow_to_svg(WF, run=snap)
    _assert_overlay(svg, TRAIL, ["approve", "publish"])
    nodes = _nodes(_parse(svg))
    assert nodes["exec"].attrib["data-status"] == "succeeded"  # the last record decides
    assert nodes["publish"].attrib["data-status"] == "next"
    assert nodes["child"].attrib["data-status"] == "not_reached"
    assert "2 runs · 12 ms" in svg
    assert "run waiting · total 18 ms" in svg


def test_overlay_reads_a_result_and_its_checkpoint() -> None:
    snap = Snapshot("failed", TRAIL[:2], ["plan", "exec"], ready_now=["review"])
    result = Result("failed", TRAIL[:2], ["plan", "exec"], checkpoint=snap)
    _assert_overlay(workflow_to_svg(WF, run=result), TRAIL[:2], ["review"])
    bare = Result("succeeded", TRAIL[:1], ["plan"], checkpoint=None)
    _assert_overlay(workflow_to_svg(WF, run=bare), TRAIL[:1], [])


def test_overlay_reads_a_snapshot_dict() -> None:
    as_dict = {
        "status": "running",
        "trace": ["plan", "exec"],
        "audit_trail": [
            {"step": 1, "wave": 1, "node": "plan", "status": "succeeded", "duration_ms": 1.5},
            {"step": 2, "wave": 1, "node": "exec", "status": "failed", "duration_ms": None},
            {"step": 3, "wave": 1, "node": "ghost", "status": "failed", "duration_ms": 4},
        ],
        "ready_now": ["review"],
        "ready_next_wave": [],
    }
    trail = [Step(1, 1, "plan", "succeeded", 1.5), Step(2, 1, "exec", "failed", None)]
    _assert_overlay(workflow_to_svg(WF, run=as_dict), trail, ["review"])


def test_a_node_queued_again_after_running_gets_a_next_outline() -> None:
    snap = Snapshot("running", TRAIL[:1], ["plan"], ready_next_wave=["plan"])
    nodes = _nodes(_parse(workflow_to_svg(WF, run=snap)))
    assert nodes["plan"].attrib["data-status"] == "succeeded"
    assert any(el.get("class") == "queued" for el in nodes["plan"])


@pytest.mark.skipif(
    not hasattr(zeroflow, "WorkflowEngine"), reason="zeroflow.WorkflowEngine is not built yet"
)
def test_overlay_matches_a_real_engine_run_its_checkpoint_and_snapshot_dict() -> None:
    calls: dict[str, int] = {}

    def handler(ctx: Any) -> Any:
        calls[ctx.node_name] = calls.get(ctx.node_name, 0) + 1
        if ctx.node_name == "exec" and calls["exec"] == 1:
            return zeroflow.HandlerResult(outputs=["retry"])
        if ctx.node_name == "review":
            return zeroflow.HandlerResult(outputs=[], waiting=True, waiting_prompt="ok?")
        return zeroflow.HandlerResult(outputs=["ok"])

    wf = {
        "workflow_name": "real",
        "default_entry_node": "plan",
        "nodes": {
            "plan": {"handler": "h", "outputs": {"ok": [_edge("exec")]}},
            "exec": {
                "handler": "h",
                "outputs": {"ok": [_edge("review")], "retry": [_edge("exec", True)]},
            },
            "review": {"handler": "h", "outputs": {"ok": [_edge("publish")]}},
            "publish": {"handler": "h", "outputs": {"ok": []}},
        },
    }
    result = zeroflow.WorkflowEngine(wf, handlers={"h": handler}).run(initial_input={})
    assert result.status == "waiting" and result.checkpoint is not None
    trail = [Step(r.step, r.wave, r.node, r.status, r.duration_ms) for r in result.audit_trail]
    queued = list(result.checkpoint.ready_now) + list(result.checkpoint.ready_next_wave)
    for run in (result, result.checkpoint, result.checkpoint.to_dict()):
        svg = workflow_to_svg(wf, run=run)
        _assert_overlay(svg, trail, queued)
    statuses = {k: g.attrib["data-status"] for k, g in _nodes(_parse(svg)).items()}
    assert statuses == {
        "plan": "succeeded",
        "exec": "succeeded",
        "review": "waiting",
        "publish": "not_reached",
    }
