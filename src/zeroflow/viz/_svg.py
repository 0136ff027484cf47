"""SVG drawing of a laid-out `Graph`: a pure string function, no JavaScript.

Text width is estimated from character classes (there is no font engine
here), with a safety factor so labels stay inside their boxes.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from zeroflow.viz._graph import GNode, Graph, marks_of, tooltip_lines
from zeroflow.viz._layout import (
    CLUSTER_TITLE,
    HEX_INSET,
    MAP_OFFSET,
    RECT_RADIUS,
    WAIT_RADIUS,
    Box,
    Layout,
    LayoutCluster,
    LayoutEdge,
    LayoutNode,
    Route,
    layout,
)
from zeroflow.viz._overlay import STATUS_LABELS, Overlay, Status, format_duration
from zeroflow.viz._palette import STATUS_STYLES, NodeStyle

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
FONT_SIZE = 13.0
SMALL_SIZE = 11.0
LINE_H = 16.0
PAD_X = 14.0
PAD_Y = 10.0
MIN_W = 76.0
WRAP = 24
EDGE = "#475569"
LOOP = "#7c3aed"
ERROR = "#dc2626"
ERROR_TEXT = "#b91c1c"
ERROR_DASH = "7 3 2 3"
TAKEN_ERROR_DASH = "12 4 3 4"
ARROW = 10.5
"""Arrowhead size in pixels, the same on thin, thick and taken edges."""
LOOP_DASH = "6 4"
TAKEN_W = 3.0
UNTAKEN_OPACITY = 0.45
END_GAP = 3.5
"""Distance between the two outlines of an end node."""
MARKER_STYLE = NodeStyle(
    fill="#fef2f2", stroke=ERROR, text=ERROR_TEXT, stroke_width=1.2, dash="3 2"
)
LEGEND_H = 44.0
CLUSTER_SIZE = 12.0
CLUSTER_FILL = "#f1f5f9"
CLUSTER_STROKE = "#94a3b8"

_NARROW = set("iljtfI.,:;|!'`()[]{} ")
_WIDE = set("mwMW@%&")
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def text_width(text: str, size: float = FONT_SIZE) -> float:
    """A generous estimate of the rendered width of `text` in a sans-serif font."""
    em = 0.0
    for ch in text:
        if ord(ch) > 0x2E80:
            em += 1.0
        elif ch in _NARROW:
            em += 0.33
        elif ch in _WIDE:
            em += 0.92
        elif ch.isupper() or ch.isdigit():
            em += 0.66
        else:
            em += 0.57
    return em * size * 1.06


def wrap(text: str, width: int = WRAP) -> list[str]:
    """Split a label into lines of about `width` characters, at spaces or `_-./` if possible."""
    lines: list[str] = []
    for para in text.split("\n"):
        rest = para
        while len(rest) > width:
            cut = max(rest.rfind(c, 0, width + 1) for c in " _-./")
            if cut <= width // 3:
                cut = width
            else:
                cut += 0 if rest[cut] == " " else 1
            lines.append(rest[:cut].rstrip())
            rest = rest[cut:].lstrip(" ")
        lines.append(rest)
    return lines[:6] if len(lines) <= 6 else [*lines[:5], lines[5][: width - 1] + "…"]


def _x(text: str) -> str:
    return html.escape(_XML_BAD.sub("\ufffd", text), quote=True)


def _n(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".")


@dataclass(frozen=True, slots=True)
class _Drawn:
    """Per-node drawing inputs: wrapped label lines, an optional overlay line, contract marks."""

    lines: list[str]
    extra: str | None
    marks: tuple[str, ...] = ()
    """Small lines under the label: the node's state contract, the workflow's input schema."""


def _extra_line(overlay: Overlay | None, node_id: str) -> str | None:
    if overlay is None:
        return None
    nr = overlay.nodes.get(node_id)
    if nr is None or nr.runs == 0:
        return None
    runs = f"{nr.runs} run" + ("" if nr.runs == 1 else "s")
    return f"{runs} · {format_duration(nr.duration_ms)}"


_SHAPE_EXTRA_W: Mapping[str, float] = {
    "stadium": 0.0,
    "hexagon": 2 * HEX_INSET,
    "map": MAP_OFFSET,
    "subflow": 16.0,
    "wait": 16.0,
    "end": 2 * END_GAP,
}


def plan(graph: Graph, overlay: Overlay | None) -> tuple[Layout, dict[str, _Drawn]]:
    """Measure every node and edge label, then lay the graph out."""
    drawn: dict[str, _Drawn] = {}
    lnodes: list[LayoutNode] = []
    ends: dict[str, int] = {}
    for e in graph.edges:
        ends[e.source] = ends.get(e.source, 0) + 1
        ends[e.target] = ends.get(e.target, 0) + 1
    for nd in graph.nodes:
        lines = wrap(nd.label)
        if nd.is_marker:
            # A small pill in the small font: a stand-in, not a node of the workflow.
            tw = max(text_width(line, SMALL_SIZE) for line in lines)
            h = len(lines) * LINE_H + 8
            w = tw + 2 * 10 + h / 2
            drawn[nd.id] = _Drawn(lines, None)
            lnodes.append(LayoutNode(nd.id, round(w, 2), round(h, 2), "marker"))
            continue
        extra = _extra_line(overlay, nd.id)
        marks = marks_of(graph, nd)
        tw = max(text_width(line) for line in lines)
        if extra:
            tw = max(tw, text_width(extra, SMALL_SIZE))
        for mark in marks:
            tw = max(tw, text_width(mark, SMALL_SIZE))
        h = len(lines) * LINE_H + 2 * PAD_Y + (LINE_H - 2 if extra else 0)
        h += len(marks) * (LINE_H - 2)
        shape = nd.shape
        w = max(MIN_W, tw + 2 * PAD_X + _SHAPE_EXTRA_W.get(shape, 0.0))
        # Room for every edge end to get its own port on the straight part of a side.
        w = max(w, ends.get(nd.id, 0) * 9.0 + 2 * PAD_X)
        if shape in ("stadium", "end"):
            w += h / 2
        if shape == "end":
            h += 2 * END_GAP
        if shape == "map":
            h += MAP_OFFSET
        if shape == "diamond":
            # The text box must fit inside the rhombus: tw/W + th/H <= 1.
            th = h - 2 * PAD_Y
            h = 2 * th + 16
            w = max(w, tw / (1 - th / h) + 16, h)
        drawn[nd.id] = _Drawn(lines, extra, marks)
        lnodes.append(LayoutNode(nd.id, round(w, 2), round(h, 2), shape))
    ledges = []
    layered = _layering_edges(graph)
    for e, constrains in zip(graph.edges, layered, strict=True):
        label = e.label.replace("\n", " ")
        lw = text_width(label, SMALL_SIZE) + 10 if label else 0.0
        ledges.append(
            LayoutEdge(e.source, e.target, round(lw, 2), 16.0 if label else 0.0, not constrains)
        )
    first = next((nd.id for nd in graph.nodes if nd.is_entry), None)
    clusters = [
        LayoutCluster(c.id, c.members, c.parent, text_width(c.title, CLUSTER_SIZE))
        for c in graph.clusters
    ]
    lay = layout(lnodes, ledges, first=first, direction=graph.direction, clusters=clusters)
    return lay, drawn


def _layering_edges(graph: Graph) -> list[bool]:
    """Per edge: does it shape the layers (drawn downwards when it can)?

    Loopbacks never do. An error route does unless it would close a cycle with
    the forward edges before it (a catcher back to an earlier node), which is
    then drawn as a back-edge instead of pulling its target down.
    """
    succ: dict[str, set[str]] = {}
    out: list[bool] = []
    for e in graph.edges:
        if not e.is_error:
            out.append(not e.loopback)
            if not e.loopback:
                succ.setdefault(e.source, set()).add(e.target)
    flags: list[bool] = []
    it = iter(out)
    for e in graph.edges:
        if not e.is_error:
            flags.append(next(it))
            continue
        closes = e.source == e.target or _reaches(succ, e.target, e.source)
        flags.append(not closes)
        if not closes:
            succ.setdefault(e.source, set()).add(e.target)
    return flags


def _reaches(succ: Mapping[str, set[str]], start: str, goal: str) -> bool:
    seen = {start}
    stack = [start]
    while stack:
        n = stack.pop()
        if n == goal:
            return True
        for m in sorted(succ.get(n, ())):
            if m not in seen:
                seen.add(m)
                stack.append(m)
    return False


def _rect(x: float, y: float, w: float, h: float, rx: float, paint: str, cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return (
        f'<rect{klass} x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(h)}" '
        f'rx="{_n(rx)}" {paint}/>'
    )


def _line(x1: float, y1: float, x2: float, y2: float, colour: str, width: float) -> str:
    return (
        f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" '
        f'stroke="{_x(colour)}" stroke-width="{_n(width)}"/>'
    )


def _shape(nd: GNode, b: Box, st: NodeStyle) -> str:
    """The outline of a node; the element with class `shape` carries the status paint."""
    paint = f'fill="{_x(st.fill)}" stroke="{_x(st.stroke)}" stroke-width="{_n(st.stroke_width)}"'
    if st.dash:
        paint += f' stroke-dasharray="{_x(st.dash)}"'
    x, y, w, h = b.x, b.y, b.width, b.height
    shape = nd.shape
    if shape in ("stadium", "marker"):
        return _rect(x, y, w, h, h / 2, paint, "shape")
    if shape == "end":
        # A terminal: a stadium inside a stadium (the entry is a single one).
        g = END_GAP
        inner = f'fill="none" stroke="{_x(st.stroke)}" stroke-width="{_n(st.stroke_width)}"'
        if st.dash:
            inner += f' stroke-dasharray="{_x(st.dash)}"'
        ih = h - 2 * g
        return _rect(x, y, w, h, h / 2, paint, "shape") + _rect(
            x + g, y + g, w - 2 * g, ih, ih / 2, inner
        )
    if shape == "diamond":
        pts = [(x + w / 2, y), (x + w, y + h / 2), (x + w / 2, y + h), (x, y + h / 2)]
        points = " ".join(f"{_n(px)},{_n(py)}" for px, py in pts)
        return f'<polygon class="shape" points="{points}" {paint}/>'
    if shape == "hexagon":
        pts = [
            (x + HEX_INSET, y),
            (x + w - HEX_INSET, y),
            (x + w, y + h / 2),
            (x + w - HEX_INSET, y + h),
            (x + HEX_INSET, y + h),
            (x, y + h / 2),
        ]
        points = " ".join(f"{_n(px)},{_n(py)}" for px, py in pts)
        return f'<polygon class="shape" points="{points}" {paint}/>'
    if shape == "map":
        o = MAP_OFFSET
        back = _rect(x + o, y, w - o, h - o, RECT_RADIUS, paint)
        return back + _rect(x, y + o, w - o, h - o, RECT_RADIUS, paint, "shape")
    radius = WAIT_RADIUS if shape == "wait" else RECT_RADIUS
    out = _rect(x, y, w, h, radius, paint, "shape")
    if shape == "subflow":
        for lx in (x + 7, x + w - 7):
            out += _line(lx, y, lx, y + h, st.stroke, 1)
    if shape == "wait":
        for lx in (x + 9, x + 13):
            out += _line(lx, y + h / 2 - 5, lx, y + h / 2 + 5, st.stroke, 2)
    return out


def _text(nd: GNode, b: Box, d: _Drawn, st: NodeStyle) -> str:
    """The centred label lines of a node, plus its run summary line when overlaid."""
    cx, cy = b.cx, b.cy
    if nd.shape == "map":
        cx, cy = cx - MAP_OFFSET / 2, cy + MAP_OFFSET / 2
    if nd.shape == "wait":
        cx += 5
    n_lines = len(d.lines) + (1 if d.extra else 0) + len(d.marks)
    top = cy - (n_lines * LINE_H) / 2 + LINE_H * 0.72
    small = ' class="meta"' if nd.is_marker else ""
    parts = [
        f'<text{small} x="{_n(cx)}" y="{_n(top + i * LINE_H)}" fill="{_x(st.text)}">'
        f"{_x(line)}</text>"
        for i, line in enumerate(d.lines)
    ]
    for i, mark in enumerate(d.marks):
        y = top + (len(d.lines) + i) * LINE_H
        parts.append(
            f'<text class="meta contract" x="{_n(cx)}" y="{_n(y)}" fill="{_x(st.text)}">'
            f"{_x(mark)}</text>"
        )
    if d.extra:
        y = top + (len(d.lines) + len(d.marks)) * LINE_H
        parts.append(
            f'<text class="meta" x="{_n(cx)}" y="{_n(y)}" fill="{_x(st.text)}">{_x(d.extra)}</text>'
        )
    return "".join(parts)


def _path(route: Route) -> str:
    """SVG path data for a route, from the layout's straight pieces and curves."""
    (x0, y0) = route.points[0]
    d = f"M{_n(x0)},{_n(y0)}"
    for seg in route.path:
        if len(seg) == 3:
            d += " C" + " ".join(f"{_n(x)},{_n(y)}" for x, y in seg)
        else:
            d += f" L{_n(seg[0][0])},{_n(seg[0][1])}"
    return d


def render_svg(
    graph: Graph,
    *,
    styles: Mapping[str, NodeStyle] | None = None,
    statuses: Mapping[str, Status] | None = None,
    overlay: Overlay | None = None,
    title: str | None = None,
) -> str:
    """Lay out and draw `graph` as a standalone SVG document string.

    `styles` paints nodes (default: the pending style); `overlay` adds run
    counts, durations, a legend, and `data-status` on each node group.
    """
    lay, drawn = plan(graph, overlay)
    default = STATUS_STYLES["pending"]
    style_of: dict[str, NodeStyle] = {}
    status_of: dict[str, Status] = {}
    for nd in graph.nodes:
        status: Status = "pending"
        if overlay is not None and nd.id in overlay.nodes:
            status = overlay.nodes[nd.id].status
        elif statuses is not None and nd.id in statuses:
            status = statuses[nd.id]
        status_of[nd.id] = status
        if nd.is_marker:
            style_of[nd.id] = MARKER_STYLE
            continue
        style_of[nd.id] = (styles or {}).get(nd.id) or STATUS_STYLES.get(status, default)
    legend = overlay is not None
    width = max(lay.width, _legend_width() if legend else 0.0)
    height = lay.height + (LEGEND_H if legend else 0.0)
    name = title if title is not None else graph.name
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="zeroflow-graph" '
        f'width="{_n(width)}" height="{_n(height)}" viewBox="0 0 {_n(width)} {_n(height)}" '
        f'role="img" aria-label="{_x(name)}" font-family="{_x(FONT)}" font-size="{_n(FONT_SIZE)}">',
        f"<title>{_x(name)}</title>",
        "<style>text{text-anchor:middle}.meta{font-size:11px;opacity:.85}"
        ".edge-label text{font-size:11px;fill:#334155}"
        f".edge-label.error-route text{{fill:{ERROR_TEXT}}}"
        ".edge-label.taken text{font-weight:600}.edge-label.untaken text{opacity:.6}</style>",
        "<defs>",
        _marker("zf-arrow", EDGE),
        _marker("zf-arrow-loop", LOOP),
        _marker("zf-arrow-error", ERROR),
        "</defs>",
        '<rect class="background" x="0" y="0" width="100%" height="100%" fill="#ffffff"/>',
    ]
    cluster_boxes, cluster_titles = _clusters(graph, lay)
    out += cluster_boxes
    routed = _routed_edges(graph, lay)
    taken = overlay.taken if overlay is not None else frozenset()
    out.append('<g class="edges" fill="none">')
    # Edges the run took are drawn last, so they stay on top where edges cross.
    order = sorted(range(len(routed)), key=lambda k: routed[k].index in taken)
    for k in order:
        route, edge = lay.routes[k], routed[k]
        colour, dash, marker, cls = _edge_paint(edge)
        end = f' marker-end="url(#{marker})"' if edge.arrow else ""
        stroke_w = 3.0 if edge.thick else 1.5
        extra = ""
        if overlay is not None:
            if edge.index in taken:
                cls += " taken"
                stroke_w = max(stroke_w, TAKEN_W)
                extra = ' data-taken="true"'
                if edge.route != "output":
                    dash = f' stroke-dasharray="{TAKEN_ERROR_DASH}"'
            else:
                extra = f' opacity="{_n(UNTAKEN_OPACITY)}"'
        out.append(
            f'<path class="{cls}" data-source="{_x(edge.source)}" '
            f'data-target="{_x(edge.target)}" data-label="{_x(edge.label)}" '
            f'data-route="{edge.route}"{extra} d="{_path(route)}" '
            f'stroke="{colour}" stroke-width="{_n(stroke_w)}"{dash}{end}/>'
        )
    out.append("</g>")
    out += cluster_titles
    out.append('<g class="edge-labels">')
    for route, edge in zip(lay.routes, routed, strict=True):
        if route.label is None:
            continue
        b = route.label
        cls = "edge-label" + (" error-route" if edge.route != "output" else "")
        if overlay is not None:
            cls += " taken" if edge.index in taken else " untaken"
        out.append(
            f'<g class="{cls}" data-source="{_x(edge.source)}" '
            f'data-target="{_x(edge.target)}" data-route="{edge.route}" '
            f'data-x="{_n(b.x)}" data-y="{_n(b.y)}" data-w="{_n(b.width)}" data-h="{_n(b.height)}">'
            f'<rect x="{_n(b.x)}" y="{_n(b.y)}" width="{_n(b.width)}" height="{_n(b.height)}" '
            f'rx="3" fill="#ffffff" fill-opacity="0.92"/>'
            f'<text x="{_n(b.cx)}" y="{_n(b.y + b.height * 0.74)}">'
            f"{_x(edge.label.replace(chr(10), ' '))}</text></g>"
        )
    out.append("</g>")
    out.append('<g class="nodes">')
    for nd in graph.nodes:
        b = lay.boxes[nd.id]
        st = style_of[nd.id]
        if nd.is_marker:
            out.append(
                f'<g class="marker" data-id="{_x(nd.id)}" data-kind="marker" '
                f'data-shape="marker" data-x="{_n(b.x)}" data-y="{_n(b.y)}" '
                f'data-w="{_n(b.width)}" data-h="{_n(b.height)}">'
                f"<title>{_x(nd.label + chr(10) + nd.note)}</title>"
                + _shape(nd, b, st)
                + _text(nd, b, drawn[nd.id], st)
                + "</g>"
            )
            continue
        status = status_of[nd.id]
        tip = [nd.label, f"kind: {nd.kind}" + (" (entry)" if nd.is_entry else "")]
        if nd.is_error:
            tip[-1] += " (error handler)"
        tip += tooltip_lines(graph, nd)
        attrs = ' data-contract="true"' if drawn[nd.id].marks else ""
        nr = overlay.nodes.get(nd.id) if overlay is not None else None
        if nr is not None:
            tip.append(f"status: {STATUS_LABELS[status]}")
            if nr.runs:
                tip.append(f"runs: {nr.runs}, total {format_duration(nr.duration_ms)}")
            attrs += f' data-runs="{nr.runs}" data-duration-ms="{nr.duration_ms!r}"'
        out.append(
            f'<g class="node" data-id="{_x(nd.id)}" data-kind="{nd.kind}" data-shape="{nd.shape}" '
            f'data-status="{status}"{attrs} data-x="{_n(b.x)}" data-y="{_n(b.y)}" '
            f'data-w="{_n(b.width)}" data-h="{_n(b.height)}">'
            f"<title>{_x(chr(10).join(tip))}</title>"
            + _shape(nd, b, st)
            + _text(nd, b, drawn[nd.id], st)
        )
        if nr is not None and nr.queued and status not in ("next", "waiting"):
            nx = STATUS_STYLES["next"]
            out.append(
                f'<rect class="queued" x="{_n(b.x - 3)}" y="{_n(b.y - 3)}" '
                f'width="{_n(b.width + 6)}" height="{_n(b.height + 6)}" rx="7" fill="none" '
                f'stroke="{nx.stroke}" stroke-width="1.5" stroke-dasharray="3 3"/>'
            )
        out.append("</g>")
    out.append("</g>")
    if overlay is not None:
        out.append(_legend(overlay, lay.height, width))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _edge_paint(edge: _EdgeView) -> tuple[str, str, str, str]:
    """Colour, dash attribute, arrowhead marker id and class of an edge."""
    if edge.route != "output":
        return (
            ERROR,
            f' stroke-dasharray="{ERROR_DASH}"',
            "zf-arrow-error",
            (f"edge error-route {edge.route}"),
        )
    if edge.loopback:
        return LOOP, f' stroke-dasharray="{LOOP_DASH}"', "zf-arrow-loop", "edge loopback"
    return EDGE, "", "zf-arrow", "edge"


def _marker(marker_id: str, colour: str) -> str:
    return (
        f'<marker id="{marker_id}" viewBox="0 0 10 10" refX="10" refY="5" '
        f'markerUnits="userSpaceOnUse" markerWidth="{_n(ARROW)}" markerHeight="{_n(ARROW)}" '
        'orient="auto-start-reverse">'
        f'<path d="M0,0L10,5L0,10z" fill="{colour}"/></marker>'
    )


def _routed_edges(graph: Graph, lay: Layout) -> Sequence[_EdgeView]:
    """Graph edges in the order of the layout's routes (edges to unknown nodes dropped)."""
    ids = set(lay.boxes)
    return [
        _EdgeView(e.source, e.target, e.label, e.loopback, e.arrow, e.thick, e.route, i)
        for i, e in enumerate(graph.edges)
        if e.source in ids and e.target in ids
    ]


@dataclass(frozen=True, slots=True)
class _EdgeView:
    source: str
    target: str
    label: str
    loopback: bool
    arrow: bool = True
    thick: bool = False
    route: str = "output"
    index: int = 0
    """Position in `Graph.edges` (what `Overlay.taken` holds)."""


def _clusters(graph: Graph, lay: Layout) -> tuple[list[str], list[str]]:
    """Subgraph boxes (outer ones first) and their titles, drawn over the edges."""
    if not lay.clusters:
        return [], []
    depth: dict[str, int] = {}
    parent = {c.id: c.parent for c in graph.clusters}
    for c in graph.clusters:
        d, cur, seen = 0, c.parent, {c.id}
        while cur is not None and cur not in seen:
            seen.add(cur)
            d += 1
            cur = parent.get(cur)
        depth[c.id] = d
    boxes = ['<g class="clusters">']
    titles = ['<g class="cluster-titles">']
    for c in sorted(graph.clusters, key=lambda c: depth[c.id]):
        b = lay.clusters.get(c.id)
        if b is None:
            continue
        fill = CLUSTER_FILL if depth[c.id] % 2 == 0 else "#e2e8f0"
        boxes.append(
            f'<g class="cluster" data-id="{_x(c.id)}" data-title="{_x(c.title)}" '
            f'data-x="{_n(b.x)}" data-y="{_n(b.y)}" data-w="{_n(b.width)}" data-h="{_n(b.height)}">'
            f'<rect x="{_n(b.x)}" y="{_n(b.y)}" width="{_n(b.width)}" height="{_n(b.height)}" '
            f'rx="6" fill="{fill}" stroke="{CLUSTER_STROKE}" stroke-width="1"/></g>'
        )
        titles.append(
            f'<text class="cluster-title" x="{_n(b.x + 10)}" y="{_n(b.y + CLUSTER_TITLE * 0.72)}" '
            f'style="text-anchor:start;font-size:{_n(CLUSTER_SIZE)}px;font-weight:600" '
            f'fill="#334155" stroke="{fill}" stroke-width="4" paint-order="stroke" '
            f'stroke-linejoin="round">{_x(c.title)}</text>'
        )
    return [*boxes, "</g>"], [*titles, "</g>"]


_EDGE_KEYS: tuple[tuple[str, str, str, float], ...] = (
    ("taken", EDGE, "", TAKEN_W),
    ("error route", ERROR, ERROR_DASH, 1.5),
    ("loopback", LOOP, LOOP_DASH, 1.5),
)
_STATUS_KEYS: tuple[Status, ...] = ("succeeded", "failed", "waiting", "next", "not_reached")


def _legend_width() -> float:
    """The width the legend's one row of keys needs."""
    x = 16.0
    for s in _STATUS_KEYS:
        x += 19 + text_width(STATUS_LABELS[s], SMALL_SIZE) + 14
    for label, *_rest in _EDGE_KEYS:
        x += 26 + text_width(label, SMALL_SIZE) + 14
    return x + 16


def _legend(overlay: Overlay, top: float, width: float) -> str:
    """Run status, total duration and the colour key, drawn under the graph."""
    y = top + 8
    parts = [f'<g class="legend" transform="translate(0,{_n(y)})">']
    status = overlay.run_status or "unknown"
    summary = f"run {status} · total {format_duration(overlay.total_duration_ms)}"
    parts.append(
        f'<text x="16" y="10" style="text-anchor:start;font-size:11px" fill="#0f172a">'
        f"{_x(summary)}</text>"
    )
    x = 16.0
    for s in _STATUS_KEYS:
        st = STATUS_STYLES[s]
        dash = f' stroke-dasharray="{st.dash}"' if st.dash else ""
        label = STATUS_LABELS[s]
        parts.append(
            f'<rect x="{_n(x)}" y="18" width="14" height="12" rx="2" fill="{st.fill}" '
            f'stroke="{st.stroke}"{dash}/>'
            f'<text x="{_n(x + 19)}" y="28" style="text-anchor:start;font-size:11px" '
            f'fill="#334155">{label}</text>'
        )
        x += 19 + text_width(label, SMALL_SIZE) + 14
    for label, colour, dash_pattern, stroke_w in _EDGE_KEYS:
        dash = f' stroke-dasharray="{dash_pattern}"' if dash_pattern else ""
        parts.append(
            f'<line class="edge-key" x1="{_n(x)}" y1="24" x2="{_n(x + 20)}" y2="24" '
            f'stroke="{colour}" stroke-width="{_n(stroke_w)}"{dash}/>'
            f'<text x="{_n(x + 26)}" y="28" style="text-anchor:start;font-size:11px" '
            f'fill="#334155">{label}</text>'
        )
        x += 26 + text_width(label, SMALL_SIZE) + 14
    parts.append("</g>")
    return "".join(parts)
