"""The neutral graph model every picture is drawn from.

All knowledge of definition formats lives here: renderers only see `Graph`.
`graph_from_definition` reads the *compiled* workflow (``compile_workflow``),
so a node's kind, its outputs, its ``on_error`` catchers and the error node
are what the engine will use; the linter reads the same compiled form.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from zeroflow._definition import CompiledNode, CompiledWorkflow

NodeKind = Literal["task", "wait", "subflow", "map", "end", "marker"]
"""What a node does; entry and error are roles that win over the kind for the shape.

``marker`` is not a workflow node: it stands for "any node fails" and feeds
the route to the error node when drawing one edge per node would clutter.
"""

Shape = Literal["stadium", "hexagon", "rect", "wait", "subflow", "map", "diamond", "end", "marker"]

Direction = Literal["TB", "BT", "LR", "RL"]
"""Which way the layers run: top to bottom (the default), bottom to top, left or right."""

EdgeRoute = Literal["output", "catch", "failure"]
"""``output``: a declared outcome; ``catch``: an ``on_error`` catcher; ``failure``: the
route to the workflow's error node (``default_error_node``) when no catcher matches."""

FAILURE_LABEL = "on failure"
MARKER_LABEL = "any failure"
DIRECT_FAILURE_EDGES = 3
"""Up to this many nodes that can fail get their own edge to the error node; beyond
it one `marker` node ("any failure") leads there instead."""

FAILING_KINDS = ("task", "subflow", "map")
"""Kinds whose nodes run code (a handler or a child workflow) and so can fail."""


@dataclass(frozen=True, slots=True)
class GContract:
    """A node's declared ``state_contract``: its entries as written, and whether a schema checks."""

    reads: tuple[str, ...] | None = None
    """The ``reads_from`` entries (None: not declared)."""
    writes: tuple[str, ...] | None = None
    """The ``writes_to`` entries (None: not declared)."""
    schema: bool = False
    """True when a ``writes_schema`` checks the node's ``workflow_updates``."""

    def lines(self) -> list[str]:
        """The contract as tooltip lines: ``reads: ...``, ``writes: ...``, ``writes_schema``."""
        out = []
        if self.reads is not None:
            out.append("reads: " + (", ".join(self.reads) or "nothing"))
        if self.writes is not None:
            out.append("writes: " + (", ".join(self.writes) or "nothing"))
        if self.schema:
            out.append("writes_schema: its workflow_updates are checked")
        return out

    def badge(self) -> str:
        """The short mark drawn in the node: how many keys it reads and writes, and the schema."""
        parts = []
        if self.reads is not None:
            parts.append(f"reads {len(self.reads)}")
        if self.writes is not None:
            parts.append(f"writes {len(self.writes)}")
        if self.schema:
            parts.append("schema ✓")
        return "contract: " + " · ".join(parts) if parts else "contract"


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
    note: str = ""
    """Extra tooltip text (for a marker: the nodes whose failures it stands for)."""
    contract: GContract | None = None
    """The node's declared ``state_contract`` (None: none), shown in tooltips and a badge."""

    @property
    def shape(self) -> Shape:
        """The drawn shape: entry is a stadium, error a hexagon, others follow the kind."""
        if self.drawn is not None:
            return self.drawn
        if self.kind == "marker":
            return "marker"
        if self.is_entry:
            return "stadium"
        if self.is_error:
            return "hexagon"
        if self.kind == "task":
            return "rect"
        return self.kind

    @property
    def is_marker(self) -> bool:
        """True for the "any failure" stand-in, which is not a workflow node."""
        return self.kind == "marker"


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
    route: EdgeRoute = "output"
    codes: tuple[str, ...] | None = None
    """For a catcher: the error codes it catches (None: any)."""
    exceptions: tuple[str, ...] | None = None
    """For a catcher: the exception class names it catches (None: any)."""

    @property
    def is_error(self) -> bool:
        """True for error routes: ``on_error`` catchers and the route to the error node."""
        return self.route != "output"


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
    error_node: str | None = None
    """The workflow's error node (``default_error_node``), when it has one."""
    input_schema: str | None = None
    """What the workflow's ``state_contract.input_schema`` asks of ``initial_input``, in a
    line (None: no input schema); shown with the entry node."""

    def node(self, node_id: str) -> GNode:
        """Return the node with this id; raises `KeyError` if there is none."""
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def node_ids(self) -> list[str]:
        """Ids of the workflow's nodes, in order, without the "any failure" marker."""
        return [n.id for n in self.nodes if not n.is_marker]


def marks_of(graph: Graph, nd: GNode) -> tuple[str, ...]:
    """The contract marks drawn in a node (none for a node without a contract)."""
    marks = []
    if nd.is_entry and graph.input_schema is not None:
        marks.append("input_schema ✓")
    if nd.contract is not None:
        marks.append(nd.contract.badge())
    return tuple(marks)


def tooltip_lines(graph: Graph, nd: GNode) -> list[str]:
    """The contract lines of a node's tooltip (none for a node without a contract)."""
    out = []
    if nd.is_entry and graph.input_schema is not None:
        out.append(graph.input_schema)
    if nd.contract is not None:
        out += ["state contract:", *("  " + line for line in nd.contract.lines())]
    return out


def graph_from_definition(workflow_def: Mapping[str, Any]) -> Graph:
    """Extract the neutral graph from a workflow definition.

    The definition is compiled with ``compile_workflow``, so the picture
    shows what the engine runs: every node's kind (``kind: "end"`` is an end
    node; ``config`` is the handler's business and never changes the kind),
    every outcome edge, every ``on_error`` catcher (an error route labelled
    with the codes or exceptions it catches, or ``error``), and the route from
    the nodes that can fail to the error node (see `DIRECT_FAILURE_EDGES`).

    A definition that does not compile is still drawn, because broken
    definitions are when people look at pictures: a legacy dict is then read
    without validating it, as 0.1.0 did (malformed parts are skipped, unknown
    targets drawn as plain nodes so the mistake is visible, catchers drawn
    when they name a target, no route to the error node). A ``zf/1``
    definition (one with a ``version`` key) is normalised by the grammar
    first, which raises its `WorkflowDefinitionError` for a structural
    problem; one that passes the grammar but not the compiler (a forward
    cycle, say) is drawn from its normalised form the same lenient way.
    """
    from zeroflow._definition import compile_workflow  # lazy: keeps `import zeroflow.viz` light

    if "version" in workflow_def:
        legacy = _legacy_from_zf1(workflow_def)
        try:
            compiled = compile_workflow(workflow_def)
        except (ValueError, TypeError):
            return _from_legacy(legacy)
        return _from_compiled(compiled, legacy)
    try:
        compiled = compile_workflow(workflow_def)
    except (ValueError, TypeError):
        return _from_legacy(workflow_def)
    return _from_compiled(compiled, workflow_def)


def _legacy_from_zf1(workflow_def: Mapping[str, Any]) -> Mapping[str, Any]:
    """Translate a versioned (``zf/1``) definition with the grammar module.

    Unlike the legacy reader this validates: the grammar's own
    `WorkflowDefinitionError` says what is wrong and where.
    """
    from zeroflow._grammar import normalise  # lazy: pictures of legacy dicts need no grammar

    legacy: Mapping[str, Any] = normalise(workflow_def)
    return legacy


def display_kind(node: CompiledNode) -> NodeKind:
    """The drawn kind of a compiled node: its engine kind, or ``map`` for a mapped task."""
    if node.kind == "task":
        return "map" if node.map is not None else "task"
    if node.kind == "sleep":
        return "wait"  # drawn as what it is to a reader: a pause
    if node.kind in ("wait", "subflow", "end"):
        kind: NodeKind = node.kind  # type: ignore[assignment]  # narrowed by the test above
        return kind
    return "task"


def catch_label(codes: Sequence[str] | None, exceptions: Sequence[str] | None) -> str:
    """The label of a catcher edge: what it catches, or ``error`` for a catch-all."""
    caught = [*(codes or ()), *(exceptions or ())]
    return ", ".join(caught) if caught else "error"


def can_fail(node: CompiledNode) -> bool:
    """Nodes that run code (a handler, a mapped handler, a child workflow) can fail.

    Wait and end nodes are built into the engine: they run no user code.
    """
    return display_kind(node) in FAILING_KINDS


def _catches_all(node: CompiledNode) -> bool:
    return any(c.codes is None and c.exceptions is None for c in node.on_error)


def _marker_id(taken: set[str]) -> str:
    candidate = "(any failure)"
    while candidate in taken:
        candidate += "'"
    return candidate


def contract_of(spec: Any) -> GContract | None:
    """A node's ``state_contract`` as drawn: the entries as written (None: no contract)."""
    contract = spec.get("state_contract") if isinstance(spec, Mapping) else None
    if not isinstance(contract, Mapping):
        return None

    def entries(key: str) -> tuple[str, ...] | None:
        value = contract.get(key)
        return tuple(str(v) for v in value) if isinstance(value, list) else None

    reads, writes = entries("reads_from"), entries("writes_to")
    schema = contract.get("writes_schema") not in (None, True)
    if reads is None and writes is None and not schema:
        return None
    return GContract(reads, writes, schema)


def input_schema_line(workflow_def: Mapping[str, Any]) -> str | None:
    """What the workflow's ``state_contract.input_schema`` asks, in a line (None: none)."""
    contract = workflow_def.get("state_contract")
    schema = contract.get("input_schema") if isinstance(contract, Mapping) else None
    if schema is None or schema is True:
        return None
    required = schema.get("required") if isinstance(schema, Mapping) else None
    if isinstance(required, list) and required:
        return "input_schema: requires " + ", ".join(str(r) for r in required)
    return "input_schema: initial_input is checked"


def _from_compiled(wf: CompiledWorkflow, raw: Mapping[str, Any]) -> Graph:
    """Read a compiled workflow: the one place that decides what each node is.

    ``raw`` is the legacy dict it was compiled from: contracts are drawn as written.
    """
    raw_nodes = raw.get("nodes")
    specs: Mapping[str, Any] = raw_nodes if isinstance(raw_nodes, Mapping) else {}
    nodes: list[GNode] = []
    edges: list[GEdge] = []
    for name, node in wf.nodes.items():
        nodes.append(
            GNode(
                id=name,
                label=name,
                kind=display_kind(node),
                is_entry=name == wf.entry,
                is_error=name == wf.error_node and name != wf.entry,
                contract=contract_of(specs.get(name)),
            )
        )
        for label, targets in node.outputs.items():
            edges.extend(GEdge(name, e.target, label, loopback=e.loopback) for e in targets)
        edges.extend(
            GEdge(
                name,
                c.target,
                catch_label(c.codes, c.exceptions) + (" (branch)" if c.scope == "branch" else ""),
                route="catch",
                codes=c.codes,
                exceptions=c.exceptions,
            )
            for c in node.on_error
        )
    error = wf.error_node
    if error is not None:
        # The engine routes a failure no catcher takes to the error node (never to itself).
        failing = [
            name
            for name, node in wf.nodes.items()
            if name != error and can_fail(node) and not _catches_all(node)
        ]
        if len(failing) <= DIRECT_FAILURE_EDGES:
            edges.extend(GEdge(name, error, FAILURE_LABEL, route="failure") for name in failing)
        else:
            marker = _marker_id(set(wf.nodes))
            nodes.append(
                GNode(
                    marker,
                    MARKER_LABEL,
                    kind="marker",
                    note="stands for a failure of " + ", ".join(failing),
                )
            )
            edges.append(GEdge(marker, error, "", route="failure"))
    return Graph(
        name=wf.name,
        nodes=tuple(nodes),
        edges=tuple(edges),
        error_node=error,
        input_schema=input_schema_line(raw),
    )


def _lenient_kind(name: str, spec: Mapping[str, Any]) -> NodeKind:
    """The kind of a node of a definition that does not compile.

    The compiler's own reading (``_policies.parse_kind``) decides when it can
    read the node; otherwise its first rule: ``kind`` when it is one, else
    ``subflow`` when there is a ``subflow`` key; ``map`` marks a mapped task.
    """
    from zeroflow._policies import NODE_KINDS, parse_kind

    try:
        kind: Any = parse_kind(name, spec)[0]
    except (ValueError, TypeError):
        kind = spec.get("kind", "subflow" if "subflow" in spec else "task")
    if not isinstance(kind, str) or kind not in NODE_KINDS:
        kind = "task"
    if kind == "task" and "map" in spec:
        return "map"
    if kind == "sleep":
        return "wait"
    if kind in ("wait", "subflow", "end"):
        found: NodeKind = kind  # Any, checked against the kinds above
        return found
    return "task"


def _from_legacy(workflow_def: Mapping[str, Any]) -> Graph:
    """Read the 0.1.0 dict format (SPEC A2) without validating it."""
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
            kind=_lenient_kind(name, spec_map),
            is_entry=name == entry,
            is_error=name == error and name != entry,
            contract=contract_of(spec_map),
        )
        outputs = spec_map.get("outputs")
        if isinstance(outputs, Mapping):
            for label, targets in outputs.items():
                if not isinstance(targets, list):
                    continue
                for edge in targets:
                    target = _target(edge)
                    if target is not None:
                        loop = bool(edge.get("is_loopback", False))
                        edges.append(GEdge(name, target, str(label), loopback=loop))
        catchers = spec_map.get("on_error")
        for catcher in catchers if isinstance(catchers, list) else []:
            target = _target(catcher)
            if target is None:
                continue
            codes = _names(catcher.get("codes"))
            excs = _names(catcher.get("exceptions"))
            edges.append(
                GEdge(
                    name,
                    target,
                    catch_label(codes, excs),
                    route="catch",
                    codes=codes,
                    exceptions=excs,
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
        error_node=str(error) if isinstance(error, str) and error in nodes else None,
        input_schema=input_schema_line(workflow_def),
    )


def _target(edge: Any) -> str | None:
    if not isinstance(edge, Mapping):
        return None
    target = edge.get("target_node")
    if target is None or isinstance(target, (dict, list)):
        return None
    return str(target)


def _names(value: Any) -> tuple[str, ...] | None:
    if not isinstance(value, list):
        return None
    return tuple(str(v) for v in value)
