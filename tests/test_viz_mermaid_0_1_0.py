"""0.1.0's Mermaid text and pictures: ids, `:::class` styles, directions, diamonds, subgraphs."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from zeroflow.viz import mermaid_to_html, workflow_to_mermaid
from zeroflow.viz._layout import Box, LayoutEdge, LayoutNode, layout, outline_depth, side_span
from zeroflow.viz._mermaid import MERMAID_RESERVED, is_plain_id, mermaid_ids, parse_mermaid
from zeroflow.viz._palette import MERMAID_CLASSES, mermaid_class_def

SVG = "{http://www.w3.org/2000/svg}"

WF: dict[str, Any] = {
    "workflow_name": "w",
    "default_entry_node": "start",
    "default_error_node": "err",
    "nodes": {
        "start": {
            "outputs": {
                "ok": [{"target_node": "review"}],
                "retry": [{"target_node": "start", "is_loopback": True}],
            }
        },
        "review": {
            "outputs": {
                "approved": [{"target_node": "publish"}],
                "changes": [{"target_node": "start", "is_loopback": True}],
            }
        },
        "publish": {"outputs": {"x y": [{"target_node": "err"}]}},
        "err": {"outputs": {}},
    },
}


def _class_defs() -> str:
    return "\n".join(
        f"    classDef {name} {mermaid_class_def(status)}"
        for name, status in MERMAID_CLASSES.items()
    )


def test_the_text_is_0_1_0s_line_for_line_with_our_palette() -> None:
    body = (
        "flowchart TD\n"
        '    start(["start"]):::done\n'
        '    review["review"]:::active\n'
        '    publish["publish"]:::pending\n'
        '    err{{"err"}}:::pending\n'
        "    start -->|ok| review\n"
        "    start -.->|retry| start\n"
        "    review -->|approved| publish\n"
        "    review -.->|changes| start\n"
        "    publish -->|x y| err\n"
        "\n" + _class_defs()
    )
    marks: dict[str, Any] = {"done_nodes": ["start"], "active_node": "review"}
    assert workflow_to_mermaid(WF, **marks) == f"```mermaid\n{body}\n```"
    assert workflow_to_mermaid(WF, fenced=False, **marks) == body
    failed = workflow_to_mermaid(WF, failed=True, **marks)
    assert '    review["review"]:::error' in failed.splitlines()
    # The class names and their order are 0.1.0's; the colours are ours.
    assert [line.split()[1] for line in body.splitlines() if "classDef" in line] == [
        "pending",
        "active",
        "done",
        "error",
    ]


def test_the_active_node_wins_over_done_and_an_empty_workflow_keeps_the_shape() -> None:
    text = workflow_to_mermaid(WF, done_nodes=["start"], active_node="start", fenced=False)
    assert '    start(["start"]):::active' in text.splitlines()
    empty = workflow_to_mermaid({"nodes": {}}, fenced=False)
    assert empty == "flowchart TD\n\n" + _class_defs()


@pytest.mark.parametrize(
    "name", ["end", "graph", "flowchart", "subgraph", "style", "class", "classDef", "click"]
)
def test_mermaid_keywords_get_generated_ids_and_keep_their_labels(name: str) -> None:
    wf = {
        "default_entry_node": "a",
        "nodes": {"a": {"outputs": {"ok": [{"target_node": name}]}}, name: {"outputs": {}}},
    }
    lines = workflow_to_mermaid(wf, fenced=False).splitlines()
    assert f'    n1["{name}"]:::pending' in lines
    assert "    a -->|ok| n1" in lines
    assert not any(line.split("[")[0].strip() == name for line in lines)


def test_the_reserved_list_covers_what_mermaid_reserves() -> None:
    for word in [
        "end",
        "graph",
        "flowchart",
        "subgraph",
        "style",
        "class",
        "classDef",
        "click",
        "call",
        "href",
        "linkStyle",
        "interpolate",
        "direction",
        "default",
        "_self",
        "_blank",
        "_parent",
        "_top",
        "constructor",
        "__proto__",
        "hasOwnProperty",
    ]:
        assert word in MERMAID_RESERVED and not is_plain_id(word)
    # Mermaid is case-sensitive and matches whole words only.
    for fine in ["End", "ending", "end_node", "Graph", "styles", "node_1", "_x", "A"]:
        assert is_plain_id(fine)
    for unsafe in ["my node", "1st", "a-b", "x.y", "é", "", 'q"t', "a:b"]:
        assert not is_plain_id(unsafe)


def test_generated_ids_never_collide_with_names_used_as_ids() -> None:
    names = ["my node", "n0", "n1", "end", "n1_", "other one"]
    ids = mermaid_ids(names)
    assert ids["n0"] == "n0" and ids["n1"] == "n1" and ids["n1_"] == "n1_"
    assert len(set(ids.values())) == len(names)
    assert ids["my node"] == "n0_" and ids["end"] == "n3" and ids["other one"] == "n5"
    wf = {
        "default_entry_node": "my node",
        "nodes": {
            "my node": {"outputs": {"ok": [{"target_node": "n0"}]}},
            "n0": {"outputs": {"ok": [{"target_node": "end"}]}},
            "end": {"outputs": {}},
        },
    }
    text = workflow_to_mermaid(wf, fenced=False)
    assert "    n0_ -->|ok| n0" in text and "    n0 -->|ok| n2" in text
    parsed = parse_mermaid(text)
    assert [n.label for n in parsed.graph.nodes] == ["my node", "n0", "end"]


# ---------------------------------------------------------------- reading hand-written Mermaid


HAND = """```mermaid
flowchart LR
    start([Start]) --> check{Is the order paid?}
    check -->|yes| pack
    check -->|no| remind[Send reminder]
    remind -.->|retry| check
    subgraph fulfil [Fulfilment]
        pack[Pack items] --> ship[Ship parcel]
        ship --> notify(Notify customer)
    end
    notify --> done([Done])
```"""


def test_the_header_direction_is_read() -> None:
    for header, direction in [
        ("flowchart LR", "LR"),
        ("graph LR", "LR"),
        ("graph RL", "RL"),
        ("flowchart BT", "BT"),
        ("flowchart TB", "TB"),
        ("graph TD", "TB"),
        ("flowchart", "TB"),
        ("graph LR;", "LR"),
    ]:
        assert parse_mermaid(f"{header}\n a --> b").graph.direction == direction, header
    inline = parse_mermaid("graph LR; a-->b; b-->c")
    assert inline.graph.direction == "LR"
    assert [(e.source, e.target) for e in inline.graph.edges] == [("a", "b"), ("b", "c")]


def test_rhombi_are_diamonds_and_subgraphs_are_clusters() -> None:
    graph = parse_mermaid(HAND).graph
    shapes = {n.id: n.shape for n in graph.nodes}
    assert shapes["check"] == "diamond" and shapes["start"] == "stadium"
    assert {n.id: n.label for n in graph.nodes}["check"] == "Is the order paid?"
    assert [(c.id, c.title, c.members, c.parent) for c in graph.clusters] == [
        ("fulfil", "Fulfilment", ("pack", "ship", "notify"), None)
    ]
    assert "fulfil" not in shapes and "end" not in shapes


def test_subgraph_title_forms_nesting_and_edges_to_a_subgraph() -> None:
    source = """flowchart TB
    subgraph outer["Outer box"]
        a --> b
        subgraph inner
            c
        end
    end
    subgraph "Quoted title"
        d
    end
    subgraph two words
        e
    end
    x --> outer
    """
    graph = parse_mermaid(source).graph
    clusters = {c.id: (c.title, c.members, c.parent) for c in graph.clusters}
    assert clusters["outer"] == ("Outer box", ("a", "b"), None)
    assert clusters["inner"] == ("inner", ("c",), "outer")
    assert clusters["Quoted title"] == ("Quoted title", ("d",), None)
    assert clusters["two words"] == ("two words", ("e",), None)
    assert ("x", "a") in [(e.source, e.target) for e in graph.edges]  # a subgraph end: first node
    assert "outer" not in {n.id for n in graph.nodes}


def test_ampersands_open_links_and_thick_links() -> None:
    graph = parse_mermaid(
        "flowchart TD\n a & b --> c & d\n c --- e\n d ==> e\n e -- text --- f"
    ).graph
    edges = [(e.source, e.target, e.arrow, e.thick, e.label) for e in graph.edges]
    assert edges == [
        ("a", "c", True, False, ""),
        ("a", "d", True, False, ""),
        ("b", "c", True, False, ""),
        ("b", "d", True, False, ""),
        ("c", "e", False, False, ""),
        ("d", "e", True, True, ""),
        ("e", "f", False, False, "text"),
    ]


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("sequenceDiagram\n  A->>B: hi", "sequenceDiagram"),
        ('pie title Pets\n  "Dogs" : 3', "pie"),
        ("classDiagram\n  A <|-- B", "classDiagram"),
        ("---\ntitle: x\n---\nerDiagram\n  A ||--o{ B : has", "erDiagram"),
        ("hello world", "unknown"),
    ],
)
def test_other_diagram_types_are_named_not_drawn(source: str, kind: str) -> None:
    parsed = parse_mermaid(source)
    assert parsed.diagram == kind and parsed.graph.nodes == ()


def test_front_matter_titles_and_headerless_chains() -> None:
    parsed = parse_mermaid("---\ntitle: My flow\n---\nflowchart LR\n  a --> b")
    assert parsed.graph.name == "My flow" and parsed.diagram is None
    bare = parse_mermaid("a --> b")
    assert bare.diagram is None and [n.id for n in bare.graph.nodes] == ["a", "b"]


# ---------------------------------------------------------------- drawing


def _page_svg(path: Path) -> ET.Element:
    text = path.read_text(encoding="utf-8")
    return ET.fromstring(text[text.index("<svg") : text.index("</svg>") + 6])


def _boxes(svg: ET.Element, cls: str) -> dict[str, Box]:
    return {
        g.attrib["data-id"]: Box(*(float(g.attrib[f"data-{k}"]) for k in "xywh"))
        for g in svg.iter(f"{SVG}g")
        if g.get("class") == cls
    }


def _flow(boxes: dict[str, Box], a: str, b: str) -> tuple[float, float]:
    return boxes[b].cx - boxes[a].cx, boxes[b].cy - boxes[a].cy


@pytest.mark.parametrize("direction", ["LR", "RL", "TD", "BT"])
def test_pages_lay_hand_written_flowcharts_out_in_their_direction(
    tmp_path: Path, direction: str
) -> None:
    source = HAND.replace("flowchart LR", f"graph {direction}")
    svg = _page_svg(mermaid_to_html(source, tmp_path / "p.html"))
    boxes = _boxes(svg, "node")
    for a, b in [("start", "check"), ("pack", "ship"), ("ship", "notify"), ("notify", "done")]:
        dx, dy = _flow(boxes, a, b)
        forward = {"LR": dx, "RL": -dx, "TD": dy, "BT": -dy}[direction]
        across = {"LR": dy, "RL": dy, "TD": dx, "BT": dx}[direction]
        assert forward > abs(across) / 2 and forward > 20, (direction, a, b, dx, dy)
    names = sorted(boxes)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not boxes[a].overlaps(boxes[b]), (a, b)
    # The subgraph is a box around exactly its members, with its title.
    cluster = _boxes(svg, "cluster")["fulfil"]
    for name, box in boxes.items():
        inside = (
            cluster.x < box.x
            and box.right < cluster.right
            and cluster.y < box.y
            and box.bottom < cluster.bottom
        )
        assert inside == (name in ("pack", "ship", "notify")), (name, box, cluster)
        if name not in ("pack", "ship", "notify"):
            assert not box.overlaps(cluster), name
    titles = [t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "cluster-title"]
    assert titles == ["Fulfilment"]
    width, height = float(svg.attrib["width"]), float(svg.attrib["height"])
    assert cluster.x >= 0 and cluster.y >= 0
    assert cluster.right <= width and cluster.bottom <= height


def test_a_decision_is_drawn_as_a_diamond_with_its_label_inside(tmp_path: Path) -> None:
    svg = _page_svg(mermaid_to_html(HAND, tmp_path / "p.html"))
    group = next(
        g for g in svg.iter(f"{SVG}g") if g.get("class") == "node" and g.get("data-id") == "check"
    )
    assert group.attrib["data-shape"] == "diamond"
    polygon = group.find(f"{SVG}polygon")
    assert polygon is not None
    points = [tuple(map(float, p.split(","))) for p in polygon.attrib["points"].split()]
    assert len(points) == 4
    box = Box(*(float(group.attrib[f"data-{k}"]) for k in "xywh"))
    expected = [(box.cx, box.y), (box.right, box.cy), (box.cx, box.bottom), (box.x, box.cy)]
    for (px, py), (ex, ey) in zip(sorted(points), sorted(expected), strict=True):
        assert abs(px - ex) < 0.02 and abs(py - ey) < 0.02
    text = [t for t in group.iter(f"{SVG}text")]
    assert [t.text for t in text] == ["Is the order paid?"]
    assert abs(float(text[0].attrib["x"]) - box.cx) < 0.02


def test_edge_ends_lie_on_the_outline_in_every_direction() -> None:
    shapes = ["stadium", "diamond", "hexagon", "rect", "wait"]
    nodes = [LayoutNode(s, 120.0, 40.0, s) for s in shapes]
    edges = [LayoutEdge(a, b) for a in shapes for b in shapes if a < b]
    for direction in ("TB", "BT", "LR", "RL"):
        horizontal = direction in ("LR", "RL")
        lay = layout(nodes, edges, direction=direction)  # type: ignore[arg-type]
        for route in lay.routes:
            for end, node in ((route.points[0], route.source), (route.points[-1], route.target)):
                box = lay.boxes[node]
                x, y = end
                cross = y if horizontal else x
                lo, hi = side_span(node, box, horizontal)
                assert lo - 0.02 <= cross <= hi + 0.02, (direction, node, end)
                depth = outline_depth(node, box, cross, horizontal)
                along = x if horizontal else y
                sides = (box.x, box.right) if horizontal else (box.y, box.bottom)
                assert min(abs(along - (sides[0] + depth)), abs(along - (sides[1] - depth))) < 0.05
