"""Graphviz DOT text from a `Graph`, with the same shapes and colours as the SVG."""

from __future__ import annotations

from collections.abc import Mapping

from zeroflow.viz._graph import Graph, marks_of, tooltip_lines
from zeroflow.viz._overlay import Overlay, Status, format_duration
from zeroflow.viz._palette import STATUS_STYLES

_SHAPES: Mapping[str, str] = {
    "stadium": 'shape=box, style="rounded,filled", peripheries=1',
    "hexagon": 'shape=hexagon, style="filled"',
    "rect": 'shape=box, style="filled"',
    "wait": 'shape=box, style="rounded,filled,dashed"',
    "subflow": 'shape=box, style="filled", peripheries=2',
    "map": 'shape=box3d, style="filled"',
    "end": 'shape=box, style="rounded,filled", peripheries=2',
    "marker": 'shape=box, style="rounded,filled,dashed", fontsize=9, height=0.25',
}
ERROR = "#dc2626"
ERROR_TEXT = "#b91c1c"


def dot_string(text: str) -> str:
    """Quote text as a DOT string: backslashes and quotes escaped, newlines as `\\n`."""
    body = text.replace("\\", "\\\\").replace('"', '\\"')
    body = body.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")
    return f'"{body}"'


def graph_to_dot(
    graph: Graph,
    *,
    statuses: Mapping[str, Status] | None = None,
    overlay: Overlay | None = None,
) -> str:
    """Write a `digraph` with safe ids (`n0`, `n1`, ...), quoted labels and status colours.

    Loopback edges are dashed and do not constrain ranking (`constraint=false`),
    which keeps Graphviz's layers the same as ours. Error routes (``on_error``
    catchers and the route to the error node) are dashed red; with an overlay
    the edges the run took are drawn bold.
    """
    ids = {n.id: f"n{i}" for i, n in enumerate(graph.nodes)}
    lines = [
        f"digraph {dot_string(graph.name)} {{",
        '  graph [rankdir=TB, fontname="Helvetica", nodesep=0.4, ranksep=0.5];',
        '  node [fontname="Helvetica", fontsize=11, margin="0.15,0.06"];',
        '  edge [fontname="Helvetica", fontsize=9, color="#475569"];',
    ]
    for n in graph.nodes:
        if n.is_marker:
            lines.append(
                f"  {ids[n.id]} [label={dot_string(n.label)}, tooltip={dot_string(n.note)}, "
                f'{_SHAPES["marker"]}, fillcolor="#fef2f2", color="{ERROR}", '
                f'fontcolor="{ERROR_TEXT}"];'
            )
            continue
        status: Status = "pending"
        if overlay is not None and n.id in overlay.nodes:
            status = overlay.nodes[n.id].status
        elif statuses is not None and n.id in statuses:
            status = statuses[n.id]
        st = STATUS_STYLES[status]
        label = n.label
        marks = marks_of(graph, n)
        if marks:
            label += "\n" + "\n".join(marks)
        nr = overlay.nodes.get(n.id) if overlay is not None else None
        if nr is not None and nr.runs:
            runs = f"{nr.runs} run" + ("" if nr.runs == 1 else "s")
            label += f"\n{runs} · {format_duration(nr.duration_ms)}"
        attrs = _SHAPES[n.shape]
        if st.dash and "dashed" not in attrs:
            attrs = attrs.replace('filled"', 'filled,dashed"')
        tip = tooltip_lines(graph, n)
        if tip:
            attrs += f", tooltip={dot_string(chr(10).join([n.label, *tip]))}"
        lines.append(
            f'  {ids[n.id]} [label={dot_string(label)}, {attrs}, fillcolor="{st.fill}", '
            f'color="{st.stroke}", fontcolor="{st.text}", penwidth={st.stroke_width:g}];'
        )
    taken = overlay.taken if overlay is not None else frozenset()
    for i, e in enumerate(graph.edges):
        edge_attrs = [f"label={dot_string(e.label)}"] if e.label else []
        if e.is_error:
            edge_attrs += ['style="dashed"', f'color="{ERROR}"', f'fontcolor="{ERROR_TEXT}"']
        elif e.loopback:
            edge_attrs += ['style="dashed"', 'color="#7c3aed"', "constraint=false"]
        if i in taken:
            edge_attrs.append("penwidth=3")
        lines.append(f"  {ids[e.source]} -> {ids[e.target]} [{', '.join(edge_attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
