"""The neutral graph model every picture is drawn from.

All knowledge of definition formats lives here: renderers only see `Graph`.
A new format (the versioned ``zf/1`` grammar) is one more ``_from_*``
function dispatched from `graph_from_definition`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

NodeKind = Literal["task", "wait", "subflow", "map"]
"""What a node does; entry and error are roles that win over the kind for the shape."""

Shape = Literal["stadium", "hexagon", "rect", "wait", "subflow", "map", "diamond"]

Direction = Literal["TB", "BT", "LR", "RL"]
"""Which way the layers run: top to bottom (the default), bottom to top, left or right."""


@dataclass(frozen=True, slots=True)
class GNode:
    """One node: a unique id (the node name for definitions), its label and role."""

    id: str
    label: str
    kind: NodeKind = "task"
    is_entry: bool = False
    is_error: bool = False
    drawn: Shape | None = None
    """A shape asked for explicitly (a hand-written Mermaid ``{...}`` diamond); wins over roles."""

    @property
    def shape(self) -> Shape:
        """The drawn shape: entry is a stadium, error a hexagon, others follow the kind."""
        if self.drawn is not None:
            return self.drawn
        if self.is_entry:
            return "stadium"
        if self.is_error:
            return "hexagon"
        if self.kind == "task":
            return "rect"
        return self.kind


@dataclass(frozen=True, slots=True)
class GEdge:
    """One edge from `source` to `target` (node ids), labelled with the output name."""

    source: str
    target: str
    label: str
    loopback: bool = False
    arrow: bool = True
    """False for a Mermaid open link (``---``): drawn without an arrowhead."""
    thick: bool = False
    """True for a Mermaid thick link (``==>``)."""


@dataclass(frozen=True, slots=True)
class GCluster:
    """A box drawn around some nodes (a Mermaid ``subgraph``); clusters may nest."""

    id: str
    title: str
    members: tuple[str, ...]
    """Node ids placed directly in this cluster (not in a nested one)."""
    parent: str | None = None


@dataclass(frozen=True, slots=True)
class Graph:
    """A workflow as nodes and edges in definition order, ready to be drawn."""

    name: str
    nodes: tuple[GNode, ...]
    edges: tuple[GEdge, ...]
    direction: Direction = "TB"
    clusters: tuple[GCluster, ...] = ()

    def node(self, node_id: str) -> GNode:
        """Return the node with this id; raises `KeyError` if there is none."""
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)


def graph_from_definition(workflow_def: Mapping[str, Any]) -> Graph:
    """Extract the neutral graph from a workflow definition.

    A legacy dict is read without validating it: malformed parts are skipped
    rather than reported, since broken definitions are when people look at
    pictures. A definition with a ``version`` key is the ``zf/1`` grammar and
    is normalised (and so validated) by the grammar module first.
    """
    if "version" in workflow_def:
        return _from_legacy(_legacy_from_zf1(workflow_def))
    return _from_legacy(workflow_def)


def _legacy_from_zf1(workflow_def: Mapping[str, Any]) -> Mapping[str, Any]:
    """Translate a versioned (``zf/1``) definition with the grammar module.

    Unlike the legacy reader this validates: the grammar's own
    `WorkflowDefinitionError` says what is wrong and where.
    """
    from zeroflow._grammar import normalise  # lazy: pictures of legacy dicts need no grammar

    legacy: Mapping[str, Any] = normalise(workflow_def)
    return legacy


def _node_kind(spec: Mapping[str, Any]) -> NodeKind:
    """Kind from the node keys: `kind`, `subflow`, `map`, or `config.kind == "wait"`."""
    kind = spec.get("kind")
    if kind == "subflow" or "subflow" in spec:
        return "subflow"
    if "map" in spec:
        return "map"
    if kind == "wait":
        return "wait"
    config = spec.get("config")
    if isinstance(config, Mapping) and config.get("kind") == "wait":
        return "wait"
    return "task"


def _from_legacy(workflow_def: Mapping[str, Any]) -> Graph:
    """Read the 0.1.0 dict format (SPEC A2)."""
    raw_nodes = workflow_def.get("nodes")
    if not isinstance(raw_nodes, Mapping):
        raw_nodes = {}
    entry = workflow_def.get("default_entry_node")
    error = workflow_def.get("default_error_node")
    nodes: dict[str, GNode] = {}
    edges: list[GEdge] = []
    for raw_name, spec in raw_nodes.items():
        name = str(raw_name)
        spec_map: Mapping[str, Any] = spec if isinstance(spec, Mapping) else {}
        nodes[name] = GNode(
            id=name,
            label=name,
            kind=_node_kind(spec_map),
            is_entry=name == entry,
            is_error=name == error and name != entry,
        )
        outputs = spec_map.get("outputs")
        if not isinstance(outputs, Mapping):
            continue
        for label, targets in outputs.items():
            if not isinstance(targets, list):
                continue
            for edge in targets:
                if not isinstance(edge, Mapping):
                    continue
                target = edge.get("target_node")
                if target is None or isinstance(target, (dict, list)):
                    continue
                edges.append(
                    GEdge(
                        source=name,
                        target=str(target),
                        label=str(label),
                        loopback=bool(edge.get("is_loopback", False)),
                    )
                )
    # Targets that are not declared nodes are still drawn, so the mistake is visible.
    for e in edges:
        if e.target not in nodes:
            nodes[e.target] = GNode(id=e.target, label=e.target)
    workflow_name = workflow_def.get("workflow_name")
    return Graph(
        name=str(workflow_name) if workflow_name is not None else "workflow",
        nodes=tuple(nodes.values()),
        edges=tuple(edges),
    )
