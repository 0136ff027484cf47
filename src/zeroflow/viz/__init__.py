"""Pictures of workflows: Mermaid, Graphviz DOT, SVG and offline HTML pages.

Mermaid, DOT and SVG are pure text functions (no I/O). Only the two HTML
functions write files. Nothing here needs a network or any JavaScript: the
HTML pages embed an SVG drawn by our own layered layout.

A ``run`` argument may be a ``RunSnapshot``, a ``WorkflowResult`` or a
snapshot dict (``RunSnapshot.to_dict()``); it overlays each node's status
(succeeded, failed, waiting, next, never reached), run count and total
duration, taken from the audit trail (the last record of a node decides),
and marks the edges the run took, error routes included.

Every picture is drawn from the compiled workflow (``compile_workflow``), so
node kinds and edges are the engine's: the linter reads the same form.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from zeroflow.viz._dot import graph_to_dot
from zeroflow.viz._graph import graph_from_definition
from zeroflow.viz._html import check_output_path, contracts_section, page, write_page
from zeroflow.viz._mermaid import MermaidNotDrawnWarning, graph_to_mermaid, parse_mermaid
from zeroflow.viz._overlay import Overlay, Status, legacy_marks, overlay_for
from zeroflow.viz._palette import MERMAID_CLASSES, STATUS_STYLES, NodeStyle, apply_css
from zeroflow.viz._svg import render_svg

__all__ = [
    "workflow_to_mermaid",
    "workflow_to_dot",
    "workflow_to_svg",
    "mermaid_to_html",
    "workflow_to_html",
    "MermaidNotDrawnWarning",
]


def workflow_to_mermaid(
    workflow_def: Mapping[str, Any],
    *,
    done_nodes: Iterable[str] | None = None,
    active_node: str | None = None,
    failed: bool = False,
    fenced: bool = True,
) -> str:
    """Render a workflow definition as a Mermaid ``flowchart TD``.

    Nodes and edges are read from the compiled workflow (see
    `zeroflow.viz._graph.graph_from_definition`): end nodes are double circles
    ``((("...")))``, ``on_error`` catchers and the route to the error node are
    dotted links painted red by one ``linkStyle`` line. A definition that does
    not compile is still drawn, read without validating it as 0.1.0 did
    (edges without a ``target_node`` skipped, no route to the error node).
    Node ids are the names when they are plain identifiers, generated ids
    otherwise; labels are quoted. ``done_nodes`` get class ``done``,
    ``active_node`` class ``active`` (``error`` when ``failed``), the rest
    ``pending``.
    """
    return graph_to_mermaid(
        graph_from_definition(workflow_def),
        done_nodes=done_nodes,
        active_node=active_node,
        failed=failed,
        fenced=fenced,
    )


def _statuses(
    done_nodes: Iterable[str] | None, active_node: str | None, failed: bool
) -> dict[str, Status]:
    statuses: dict[str, Status] = dict.fromkeys(done_nodes or (), "succeeded")
    if active_node is not None:
        statuses[active_node] = "failed" if failed else "next"
    return statuses


def workflow_to_dot(
    workflow_def: Mapping[str, Any],
    *,
    done_nodes: Iterable[str] | None = None,
    active_node: str | None = None,
    failed: bool = False,
    run: object | None = None,
) -> str:
    """Render a workflow definition as Graphviz DOT (``dot -Tsvg`` draws it).

    Shapes and colours match the SVG. Colour nodes either like
    `workflow_to_mermaid` (``done_nodes`` / ``active_node`` / ``failed``) or
    from a ``run``, which wins when both are given.
    """
    graph = graph_from_definition(workflow_def)
    overlay = overlay_for(graph, run) if run is not None else None
    return graph_to_dot(graph, statuses=_statuses(done_nodes, active_node, failed), overlay=overlay)


def workflow_to_svg(workflow_def: Mapping[str, Any], *, run: object | None = None) -> str:
    """Draw a workflow definition as a standalone SVG document string.

    Entry nodes are stadiums, error nodes hexagons, end nodes double
    stadiums, wait / subflow / map nodes have their own marks; loopbacks are
    dashed purple back-edges, error routes (``on_error`` catchers, labelled
    with what they catch, and the route to the error node) dash-dotted red.
    With ``run`` the nodes are coloured by status and annotated with run
    counts and durations, the edges the run took are drawn bold (the others
    faded), with a legend below.
    """
    graph = graph_from_definition(workflow_def)
    overlay = overlay_for(graph, run) if run is not None else None
    return render_svg(graph, overlay=overlay)


def mermaid_to_html(
    mermaid: str,
    output_path: str | Path,
    *,
    title: str | None = None,
    embed_js: bool = False,
) -> Path:
    """Write an offline HTML page showing a Mermaid flowchart; return its path.

    The page needs no network and contains no JavaScript: the flowchart
    subset `workflow_to_mermaid` writes (shapes, labelled solid and dotted
    edges, class styles) is parsed and drawn as inline SVG, and the source
    is kept in a collapsible block. ``embed_js`` is accepted for 0.1.0
    compatibility and has no effect. Raises `ValueError` unless the path
    ends in ``.html`` or ``.htm``; parent folders are created.
    """
    del embed_js  # kept for 0.1.0 callers; there is no JavaScript to embed
    path = check_output_path(output_path)
    parsed = parse_mermaid(mermaid)
    styles: dict[str, NodeStyle] = {}
    statuses: dict[str, Status] = {}
    for node in parsed.graph.nodes:
        style = STATUS_STYLES["pending"]
        for cls in parsed.node_classes.get(node.id, []):
            if cls in MERMAID_CLASSES:
                statuses[node.id] = MERMAID_CLASSES[cls]
                style = STATUS_STYLES[MERMAID_CLASSES[cls]]
            style = apply_css(style, parsed.class_defs.get(cls, {}))
        styles[node.id] = apply_css(style, parsed.node_css.get(node.id, {}))
    page_title = title if title is not None else path.stem
    if parsed.diagram is not None:
        what = (
            f"a Mermaid {parsed.diagram}"
            if parsed.diagram != "unknown"
            else "not a Mermaid flowchart"
        )
        note = (
            f"This source is {what}: zeroflow draws only flowcharts "
            "(flowchart / graph), so the source is shown as text instead of a picture."
        )
        warnings.warn(
            f"mermaid_to_html({str(path)!r}): {note}", MermaidNotDrawnWarning, stacklevel=2
        )
        return write_page(path, page(page_title, "", mermaid, note, warning=True))
    if parsed.graph.nodes:
        svg = render_svg(parsed.graph, styles=styles, statuses=statuses, title=page_title)
        return write_page(path, page(page_title, svg, mermaid))
    return write_page(path, page(page_title, "", mermaid, "This flowchart has no nodes."))


def workflow_to_html(
    workflow_def: Mapping[str, Any],
    output_path: str | Path,
    *,
    run: object | None = None,
    title: str | None = None,
) -> Path:
    """Write an offline HTML page of a workflow (with a run overlay); return its path.

    The title defaults to the workflow name. The page embeds the SVG of
    `workflow_to_svg` and the Mermaid source. Raises `ValueError` unless the
    path ends in ``.html`` or ``.htm``; parent folders are created.
    """
    path = check_output_path(output_path)
    graph = graph_from_definition(workflow_def)
    overlay: Overlay | None = None
    done: list[str] = []
    active: str | None = None
    failed = False
    if run is not None:
        overlay = overlay_for(graph, run)
        done, active, failed = legacy_marks(overlay, graph.node_ids())
    source = graph_to_mermaid(graph, done_nodes=done, active_node=active, failed=failed)
    page_title = title if title is not None else graph.name
    svg = render_svg(graph, overlay=overlay, title=page_title)
    return write_page(path, page(page_title, svg, source, contracts=contracts_section(graph)))
