"""The layered layout: geometry properties over hand-made and random graphs."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from zeroflow.viz._layout import (
    Box,
    Layout,
    LayoutEdge,
    LayoutNode,
    Route,
    layout,
    side_span,
)


def _on_side(shape: str, box: Box, point: tuple[float, float]) -> bool:
    """True when the point lies on the straight top or bottom side of the shape."""
    x, y = point
    lo, hi = side_span(shape, box)
    on_edge = abs(y - box.y) < 0.02 or abs(y - box.bottom) < 0.02
    return on_edge and lo - 0.02 <= x <= hi + 0.02


def _check(nodes: list[LayoutNode], edges: list[LayoutEdge], lay: Layout) -> None:
    shapes = {n.id: n.shape for n in nodes}
    boxes = lay.boxes
    ids = sorted(boxes)
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            assert not boxes[a].overlaps(boxes[b]), (a, b)
    assert len(lay.routes) == len(edges)
    labels: list[Box] = []
    for route, edge in zip(lay.routes, edges, strict=True):
        assert (route.source, route.target) == (edge.source, edge.target)
        assert _on_side(shapes[edge.source], boxes[edge.source], route.points[0]), route
        assert _on_side(shapes[edge.target], boxes[edge.target], route.points[-1]), route
        _check_segments_avoid_nodes(route, boxes)
        if edge.label_width:
            assert route.label is not None
            labels.append(route.label)
            for name, box in boxes.items():
                assert not route.label.overlaps(box), (route, name)
    for i, a_box in enumerate(labels):
        for b_box in labels[i + 1 :]:
            assert not a_box.overlaps(b_box), (a_box, b_box)
    for box in boxes.values():
        assert box.x >= 0 and box.y >= 0
        assert box.right <= lay.width and box.bottom <= lay.height


def _check_segments_avoid_nodes(route: Route, boxes: object) -> None:
    """No segment runs through the inside of any node.

    Straight segments are checked as boxes; curves stay inside the node-free
    band between two layers, so no node may reach into their height range.
    """
    assert isinstance(boxes, dict)
    if route.kind == "self":
        return
    for i, (a, b) in enumerate(zip(route.points, route.points[1:], strict=False)):
        curved = i < len(route.curved) and route.curved[i]
        if curved:
            lo, hi = sorted((a[1], b[1]))
            for box in boxes.values():
                assert box.bottom <= lo + 0.01 or box.y >= hi - 0.01, (route, box)
            continue
        for box in boxes.values():
            inner = Box(box.x + 0.5, box.y + 0.5, box.width - 1, box.height - 1)
            seg = Box(
                min(a[0], b[0]), min(a[1], b[1]), abs(a[0] - b[0]) + 0.01, abs(a[1] - b[1]) + 0.01
            )
            assert not seg.overlaps(inner), (route, box)


def _nodes(*names: str, shape: str = "rect") -> list[LayoutNode]:
    return [LayoutNode(n, 90.0, 36.0, shape) for n in names]


def test_a_chain_is_laid_out_in_one_layer_per_node() -> None:
    nodes = _nodes("a", "b", "c")
    edges = [LayoutEdge("a", "b", 20, 16), LayoutEdge("b", "c", 20, 16)]
    lay = layout(nodes, edges, first="a")
    assert lay.layers == (("a",), ("b",), ("c",))
    _check(nodes, edges, lay)
    assert lay.boxes["a"].cx == lay.boxes["b"].cx == lay.boxes["c"].cx


def test_layers_follow_the_longest_forward_path() -> None:
    nodes = _nodes("a", "b", "c", "d")
    edges = [LayoutEdge("a", "b"), LayoutEdge("b", "c"), LayoutEdge("a", "c"), LayoutEdge("c", "d")]
    lay = layout(nodes, edges, first="a")
    assert lay.layers == (("a",), ("b",), ("c",), ("d",))
    _check(nodes, edges, lay)


def test_loopbacks_route_upwards_and_self_loops_sit_beside_the_node() -> None:
    nodes = _nodes("plan", "exec", "review")
    edges = [
        LayoutEdge("plan", "exec", 20, 16),
        LayoutEdge("exec", "review", 20, 16),
        LayoutEdge("exec", "exec", 40, 16, loopback=True),
        LayoutEdge("review", "plan", 40, 16, loopback=True),
    ]
    lay = layout(nodes, edges, first="plan")
    kinds = [r.kind for r in lay.routes]
    assert kinds == ["down", "down", "self", "up"]
    _check(nodes, edges, lay)
    back = lay.routes[3]
    assert back.points[0][1] == lay.boxes["review"].y
    assert back.points[-1][1] == lay.boxes["plan"].bottom
    loop = lay.routes[2]
    assert max(x for x, _ in loop.points) > lay.boxes["exec"].right


def test_a_forward_cycle_in_an_invalid_definition_still_lays_out() -> None:
    nodes = _nodes("a", "b", "c")
    edges = [LayoutEdge("a", "b"), LayoutEdge("b", "c"), LayoutEdge("c", "a")]
    lay = layout(nodes, edges, first="a")
    assert [r.kind for r in lay.routes] == ["down", "down", "up"]
    _check(nodes, edges, lay)


def test_same_layer_edges_arc_through_the_gap_above() -> None:
    nodes = _nodes("root", "x", "y")
    edges = [
        LayoutEdge("root", "x"),
        LayoutEdge("root", "y"),
        LayoutEdge("x", "y", 30, 16, loopback=True),
    ]
    lay = layout(nodes, edges, first="root")
    assert lay.routes[2].kind == "flat"
    _check(nodes, edges, lay)


def test_edges_to_unknown_nodes_are_ignored() -> None:
    nodes = _nodes("a")
    lay = layout(nodes, [LayoutEdge("a", "ghost")], first="a")
    assert lay.routes == ()


def test_an_empty_graph_has_an_empty_layout() -> None:
    lay = layout([], [])
    assert lay.boxes == {} and lay.routes == ()


def test_crossings_are_removed_from_a_swapped_bipartite_graph() -> None:
    nodes = _nodes("r", "a", "b", "x", "y")
    edges = [
        LayoutEdge("r", "a"),
        LayoutEdge("r", "b"),
        LayoutEdge("a", "y"),
        LayoutEdge("b", "x"),
        LayoutEdge("r", "x"),
    ]
    lay = layout(nodes, edges, first="r")
    b = lay.boxes
    # a->y and b->x must not cross: the order of the children follows their parents.
    assert (b["a"].cx < b["b"].cx) == (b["y"].cx < b["x"].cx)


def _random_graph(
    n: int, data: list[tuple[int, int, bool]]
) -> tuple[list[LayoutNode], list[LayoutEdge]]:
    shapes = ["rect", "stadium", "hexagon", "wait", "subflow", "map"]
    nodes = [
        LayoutNode(f"n{i}", 60.0 + (i * 37) % 90, 34.0 + (i % 3) * 8, shapes[i % len(shapes)])
        for i in range(n)
    ]
    edges = []
    for k, (s, t, labelled) in enumerate(data):
        src, dst = s % n, t % n
        loop = dst <= src
        edges.append(
            LayoutEdge(
                f"n{src}",
                f"n{dst}",
                20.0 + (k % 4) * 15 if labelled else 0.0,
                16.0 if labelled else 0.0,
                loop,
            )
        )
    return nodes, edges


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=14),
    data=st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50), st.booleans()), max_size=30),
)
def test_random_graphs_keep_every_geometric_promise(
    n: int, data: list[tuple[int, int, bool]]
) -> None:
    nodes, edges = _random_graph(n, data)
    lay = layout(nodes, edges, first="n0")
    _check(nodes, edges, lay)


def test_layout_is_deterministic() -> None:
    nodes, edges = _random_graph(20, [(i * 7, i * 13 + 1, i % 2 == 0) for i in range(40)])
    first = layout(nodes, edges, first="n0")
    for _ in range(3):
        assert layout(nodes, edges, first="n0") == first


def test_thirty_nodes_lay_out_well_under_a_second() -> None:
    nodes, edges = _random_graph(30, [(i, i + 1 + i % 3, i % 2 == 0) for i in range(45)])
    start = time.perf_counter()
    lay = layout(nodes, edges, first="n0")
    assert time.perf_counter() - start < 1.0
    _check(nodes, edges, lay)
