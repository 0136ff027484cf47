"""Mermaid flowchart text: written from a `Graph`, and read back for offline pages.

The reader understands the subset the writer emits (node shapes, labelled
solid and dotted edges, class definitions and assignments) plus common
hand-written variants; anything else is skipped, never fatal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from zeroflow.viz._graph import (
    FAILURE_LABEL,
    Direction,
    EdgeRoute,
    GCluster,
    GEdge,
    GNode,
    Graph,
    NodeKind,
    marks_of,
)
from zeroflow.viz._palette import MERMAID_CLASSES, mermaid_class_def


class MermaidNotDrawnWarning(UserWarning):
    """`mermaid_to_html` was given a source it cannot draw (not a flowchart).

    The page is still written, with the source as text and a note saying why.
    """


_PLAIN_EDGE_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_ .-]*[A-Za-z0-9_.-])?$")

_SHAPE_OPEN: Mapping[str, str] = {
    "stadium": '(["',
    "hexagon": '{{"',
    "rect": '["',
    "wait": '("',
    "subflow": '[["',
    "map": '[/"',
    "diamond": '{"',
    "end": '((("',
    "marker": '>"',
}
_SHAPE_CLOSE: Mapping[str, str] = {
    "stadium": '"])',
    "hexagon": '"}}',
    "rect": '"]',
    "wait": '")',
    "subflow": '"]]',
    "map": '"\\]',
    "diamond": '"}',
    "end": '")))',
    "marker": '"]',
}
ERROR_LINK_STYLE = "stroke:#dc2626,color:#b91c1c,stroke-dasharray:6 3"
"""How error routes (catchers, the route to the error node) are drawn: ``linkStyle``."""
ERROR_STROKE = "#dc2626"
MARKER_STYLE = "fill:#fef2f2,stroke:#dc2626,color:#b91c1c,stroke-dasharray:3 2"


_LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def escape_label(text: str) -> str:
    """Make text safe inside a quoted Mermaid label, using Mermaid entity codes."""
    out = text.replace("#", "#35;").replace('"', "#quot;")
    out = out.replace("<", "#lt;").replace(">", "#gt;")
    out = out.replace("\r\n", " ")
    # Every character ``str.splitlines`` breaks at, not only \n: a label stays on its line.
    return _LINE_BREAKS.sub(" ", out)


_ENTITY = re.compile(r"#(\d+|[A-Za-z]+);")
_NAMED = {"quot": '"', "lt": "<", "gt": ">", "amp": "&", "apos": "'", "nbsp": " "}


def unescape_label(text: str) -> str:
    """Reverse `escape_label` and turn `<br>` line breaks into newlines."""

    def sub(m: re.Match[str]) -> str:
        code = m.group(1)
        if code.isdigit():
            n = int(code)
            return chr(n) if 0 < n < 0x110000 else m.group(0)
        return _NAMED.get(code.lower(), m.group(0))

    text = re.sub(r"<br\s*/?>", "\n", text, flags=re.IGNORECASE)
    return _ENTITY.sub(sub, text)


def _edge_label(label: str) -> str:
    if label == "":
        return ""
    if _PLAIN_EDGE_LABEL.match(label):
        return f"|{label}|"
    return f'|"{escape_label(label)}"|'


_PLAIN_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

MERMAID_RESERVED: frozenset[str] = frozenset(
    [
        # Words the flowchart grammar reads as keywords wherever a node id may stand.
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
        "_self",
        "_blank",
        "_parent",
        "_top",
        # Keywords in some positions or some Mermaid versions: never worth the risk.
        "direction",
        "default",
        "accTitle",
        "accDescr",
        # Mermaid keeps nodes in a plain JavaScript object: these names break its renderer.
        "constructor",
        "toString",
        "toLocaleString",
        "valueOf",
        "hasOwnProperty",
        "isPrototypeOf",
        "propertyIsEnumerable",
        "__proto__",
        "__defineGetter__",
        "__defineSetter__",
        "__lookupGetter__",
        "__lookupSetter__",
    ]
)
"""Plain identifiers that are not safe as Mermaid node ids (case-sensitive, as Mermaid is).

Checked against Mermaid 11: each of these, used as a node id, fails to parse
or to render, while ``End``, ``ending``, ``end_node`` and the like are fine.
"""


def is_plain_id(name: str) -> bool:
    """True when a node name can be its own Mermaid node id, as 0.1.0 wrote it."""
    return bool(_PLAIN_ID.match(name)) and name not in MERMAID_RESERVED


def mermaid_ids(names: Iterable[str]) -> dict[str, str]:
    """Map node names to Mermaid ids: the name itself when plain, else a generated one.

    Generated ids are ``n<position>`` with ``_`` appended until they differ
    from every other id, so they never collide with a name used as an id.
    """
    order = list(dict.fromkeys(names))
    taken = {name for name in order if is_plain_id(name)}
    ids: dict[str, str] = {}
    for i, name in enumerate(order):
        if name in taken:
            ids[name] = name
            continue
        candidate = f"n{i}"
        while candidate in taken:
            candidate += "_"
        taken.add(candidate)
        ids[name] = candidate
    return ids


def graph_to_mermaid(
    graph: Graph,
    *,
    done_nodes: Iterable[str] | None = None,
    active_node: str | None = None,
    failed: bool = False,
    fenced: bool = True,
) -> str:
    """Write a Mermaid flowchart in 0.1.0's text shape.

    One line per node (``id["label"]:::class``), then one per edge, a blank
    line and the ``classDef`` block; fenced text ends with the closing fence
    and unfenced text with the last ``classDef``, with no newline after.
    """
    ids = mermaid_ids(n.id for n in graph.nodes)
    done = set(done_nodes or ())
    lines = [f"flowchart {'TD' if graph.direction == 'TB' else graph.direction}"]
    if graph.input_schema is not None:
        lines.append(f"    %% {escape_label(graph.input_schema)}")
    for n in graph.nodes:
        if active_node is not None and n.id == active_node:
            cls = "error" if failed else "active"
        elif n.id in done:
            cls = "done"
        else:
            cls = "pending"
        text = escape_label(n.label) + "".join(
            "<br/>" + escape_label(mark) for mark in marks_of(graph, n)
        )
        label = f"{_SHAPE_OPEN[n.shape]}{text}{_SHAPE_CLOSE[n.shape]}"
        if n.is_marker:
            lines.append(f"    {ids[n.id]}{label}")  # painted by a `style` line below
            continue
        lines.append(f"    {ids[n.id]}{label}:::{cls}")
        if n.contract is not None:
            said = "; ".join(n.contract.lines())
            lines.append(f"    %% state contract of {escape_label(n.id)}: {escape_label(said)}")
    for e in graph.edges:
        arrow = "-.->" if e.loopback or e.is_error else "-->"
        lines.append(f"    {ids[e.source]} {arrow}{_edge_label(e.label)} {ids[e.target]}")
    errors = [str(i) for i, e in enumerate(graph.edges) if e.is_error]
    if errors:
        lines.append(f"    linkStyle {','.join(errors)} {ERROR_LINK_STYLE}")
    for n in graph.nodes:
        if n.is_marker:
            lines.append(f"    style {ids[n.id]} {MARKER_STYLE}")
    lines.append("")
    for name, status in MERMAID_CLASSES.items():
        lines.append(f"    classDef {name} {mermaid_class_def(status)}")
    body = "\n".join(lines)
    return f"```mermaid\n{body}\n```" if fenced else body


# ---------------------------------------------------------------- reading


@dataclass
class ParsedMermaid:
    """A Mermaid flowchart read back: the graph plus its class and style declarations.

    `diagram` names what the source is when it is not a flowchart (for
    example ``sequenceDiagram``, ``pie``, or ``unknown``); the graph is then
    empty and pages show the source instead of a picture.
    """

    graph: Graph
    class_defs: dict[str, dict[str, str]] = field(default_factory=dict)
    node_classes: dict[str, list[str]] = field(default_factory=dict)
    node_css: dict[str, dict[str, str]] = field(default_factory=dict)
    diagram: str | None = None


# Openers are tried longest first; each maps to its closer and the shape it implies.
_OPENERS: tuple[tuple[str, str, str], ...] = (
    ("([", "])", "stadium"),
    ("{{", "}}", "hexagon"),
    ("[[", "]]", "subflow"),
    ("[/", "\\]", "map"),
    ("[/", "/]", "rect"),
    ("[\\", "\\]", "rect"),
    ("[\\", "/]", "rect"),
    ("[(", ")]", "rect"),
    ("(((", ")))", "end"),
    ("((", "))", "rect"),
    ("(", ")", "wait"),
    ("[", "]", "rect"),
    ("{", "}", "diamond"),
    (">", "]", "rect"),
)
_ID = re.compile(r"[^\s\[\](){}<>|\"'`;,&:=.-]+(?:-[^\s\[\](){}<>|\"'`;,&:=.-]+)*")
_ARROW = re.compile(
    r"\s*(?P<arrow>[<xo]?(?:-\.+-[>xo]?|-{2,}[>xo]|={2,}[>xo]|-{3,}|={3,}|~{3,}))\s*"
)
_ARROW_TEXT = re.compile(
    r"\s*(?P<open>[<xo]?(?:--|-\.|==))\s+(?P<text>[^|]*?)\s+(?P<close>-{2,}[>xo]|-{3,}|\.-+[>xo]?|={2,}[>xo]|={3,})\s*"
)
_PIPE_LABEL = re.compile(r'\|\s*(?:"(?P<q>[^"]*)"|(?P<p>[^|]*))\s*\|\s*')
_OTHER_DIAGRAMS = frozenset(
    [
        "sequenceDiagram",
        "classDiagram",
        "classDiagram-v2",
        "stateDiagram",
        "stateDiagram-v2",
        "erDiagram",
        "journey",
        "gantt",
        "pie",
        "gitGraph",
        "mindmap",
        "timeline",
        "quadrantChart",
        "requirementDiagram",
        "C4Context",
        "C4Container",
        "C4Component",
        "C4Dynamic",
        "C4Deployment",
        "sankey",
        "sankey-beta",
        "xychart",
        "xychart-beta",
        "block",
        "block-beta",
        "packet",
        "packet-beta",
        "architecture-beta",
        "kanban",
        "radar-beta",
        "treemap-beta",
        "zenuml",
        "info",
    ]
)
"""First words of the Mermaid diagram types other than flowcharts."""
_CLASS_SUFFIX = re.compile(r"[\w-]+")
_HEADER = re.compile(r"^(?:flowchart|graph)(?:-elk)?(?:\s+(?P<dir>TB|TD|BT|RL|LR)\b)?", re.I)
_DIRECTIONS: Mapping[str, Direction] = {"TB": "TB", "TD": "TB", "BT": "BT", "LR": "LR", "RL": "RL"}
_SUBGRAPH = re.compile(
    r'^subgraph\s+(?:"(?P<quoted>[^"]*)"|(?P<id>[^\s\[\]"]+)\s*(?:\[\s*"?(?P<title>[^"\]]*)"?\s*\])?'
    r"(?P<rest>.*))$"
)
_SKIPPED = frozenset(["direction", "click", "accTitle", "accDescr", "title"])


@dataclass
class _NodeDecl:
    label: str | None = None
    shape: str | None = None


@dataclass
class _Cluster:
    id: str
    title: str
    parent: str | None
    members: list[str] = field(default_factory=list)


class _Reader:
    """Collects nodes, edges and subgraphs from statement lines in first-seen order."""

    def __init__(self) -> None:
        self.decls: dict[str, _NodeDecl] = {}
        self.edges: list[GEdge] = []
        self.classes: dict[str, list[str]] = {}
        self.clusters: dict[str, _Cluster] = {}
        self.open: list[str] = []
        self.member_of: dict[str, str] = {}
        self.error_links: set[int] = set()
        """Indexes of links painted with zeroflow's error-route `linkStyle`."""

    def mention(self, node_id: str) -> None:
        """Note a node; the first subgraph it is mentioned in owns it."""
        self.decls.setdefault(node_id, _NodeDecl())
        if self.open and node_id not in self.member_of and node_id not in self.clusters:
            self.member_of[node_id] = self.open[-1]
            self.clusters[self.open[-1]].members.append(node_id)

    def node_ref(self, text: str, pos: int) -> tuple[str, int] | None:
        """Read a node id, optional shape and `:::class` at `pos`; return id and new position."""
        m = _ID.match(text, pos)
        if not m:
            return None
        node_id = m.group(0)
        pos = m.end()
        self.mention(node_id)
        decl = self.decls[node_id]
        for opener, closer, shape in _OPENERS:
            if not text.startswith(opener, pos):
                continue
            start = pos + len(opener)
            if text.startswith('"', start):
                end_quote = text.find('"', start + 1)
                if end_quote < 0 or not text.startswith(closer, end_quote + 1):
                    continue
                raw = text[start + 1 : end_quote]
                end = end_quote + 1 + len(closer)
            else:
                end_raw = text.find(closer, start)
                if end_raw < 0:
                    continue
                raw = text[start:end_raw]
                end = end_raw + len(closer)
            if decl.shape is None:
                decl.label = unescape_label(raw.strip())
                decl.shape = shape
            pos = end
            break
        if text.startswith(":::", pos):
            cm = _CLASS_SUFFIX.match(text, pos + 3)
            if cm:
                self.classes.setdefault(node_id, []).append(cm.group(0))
                pos = cm.end()
        return node_id, pos

    def group(self, text: str, pos: int) -> tuple[list[str], int] | None:
        """Read `a & b & c`: one or more node references joined by `&`."""
        first = self.node_ref(text, pos)
        if first is None:
            return None
        ids, pos = [first[0]], first[1]
        while True:
            m = re.compile(r"\s*&\s*").match(text, pos)
            if not m:
                return ids, pos
            nxt = self.node_ref(text, m.end())
            if nxt is None:
                return ids, pos
            ids.append(nxt[0])
            pos = nxt[1]

    def statement(self, text: str) -> None:
        """Read a chain of `nodes arrow nodes ...`; stops quietly at anything it cannot read."""
        first = self.group(text, 0)
        if first is None:
            return
        sources, pos = first
        while pos < len(text):
            label = ""
            m = _ARROW.match(text, pos)
            if m:
                arrow = m.group("arrow")
                pos = m.end()
                pm = _PIPE_LABEL.match(text, pos)
                if pm:
                    label = pm.group("q") if pm.group("q") is not None else pm.group("p") or ""
                    pos = pm.end()
            else:
                tm = _ARROW_TEXT.match(text, pos)
                if not tm:
                    return
                arrow = tm.group("open") + tm.group("close")
                label = tm.group("text").strip().strip('"')
                pos = tm.end()
            nxt = self.group(text, pos)
            if nxt is None:
                return
            targets, pos = nxt
            dotted = "." in arrow
            head = arrow[-1] in ">xo"
            thick = "=" in arrow
            for source in sources:
                for target in targets:
                    self.edges.append(
                        GEdge(source, target, unescape_label(label.strip()), dotted, head, thick)
                    )
            sources = targets
            while pos < len(text) and text[pos] in " \t":
                pos += 1

    def subgraph(self, line: str) -> None:
        """Open a `subgraph id [title]` (or `subgraph "title"`, `subgraph some title`)."""
        m = _SUBGRAPH.match(line)
        if m is None:
            return
        if m.group("quoted") is not None:
            cid = title = m.group("quoted")
        else:
            cid = m.group("id")
            rest = (m.group("rest") or "").strip()
            title = m.group("title") if m.group("title") is not None else cid
            if m.group("title") is None and rest:
                cid = title = f"{cid} {rest}"
        title = unescape_label(title.strip())
        base, k = cid, 1
        while cid in self.clusters:
            k += 1
            cid = f"{base}#{k}"
        self.clusters[cid] = _Cluster(cid, title, self.open[-1] if self.open else None)
        self.open.append(cid)

    def close(self) -> None:
        if self.open:
            self.open.pop()


def _css(body: str) -> dict[str, str]:
    """Parse `key:value,key:value` style text into a dict with lower-case keys."""
    out: dict[str, str] = {}
    for part in body.split(","):
        if ":" in part:
            key, value = part.split(":", 1)
            out[key.strip().lower()] = value.strip().rstrip(";")
    return out


def strip_fence(source: str) -> str:
    """Return the Mermaid body of a fenced ```mermaid block, or the text unchanged."""
    m = re.search(r"```\s*mermaid[^\n]*\n(?P<body>.*?)```", source, re.DOTALL | re.IGNORECASE)
    return m.group("body") if m else source


def _split_statements(line: str) -> list[str]:
    """Split a line at `;` outside double quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        if ch == ";" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _front_matter(lines: list[str]) -> tuple[list[str], str | None]:
    """Drop a leading `---` ... `---` block; return the rest and its `title:` if any."""
    i = 0
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i >= len(lines) or lines[i].strip() != "---":
        return lines, None
    title = None
    for j in range(i + 1, len(lines)):
        text = lines[j].strip()
        if text == "---":
            return lines[j + 1 :], title
        if text.startswith("title:"):
            title = text[6:].strip().strip("\"'") or None
    return lines, None


def parse_mermaid(source: str) -> ParsedMermaid:
    """Read a (fenced or raw) Mermaid flowchart into the neutral graph model.

    The ``flowchart``/``graph`` header's direction (``TD``, ``TB``, ``BT``,
    ``LR``, ``RL``) is kept. Stadium nodes become entry nodes, hexagons error
    nodes, subroutines subflows, trapezoids maps, rounded boxes waits,
    double circles ``(((...)))`` end nodes and ``{...}`` rhombi decision
    diamonds; dotted edges are loopbacks, except links a ``linkStyle`` paints
    with the error-route red (``stroke:#dc2626``), which are error routes;
    ``subgraph ... end`` blocks become clusters. Statements it does not
    understand are skipped. A source that is not a flowchart gives an empty
    graph and names its diagram type in `ParsedMermaid.diagram`.
    """
    reader = _Reader()
    class_defs: dict[str, dict[str, str]] = {}
    node_css: dict[str, dict[str, str]] = {}
    lines, title = _front_matter(strip_fence(source).splitlines())
    direction: Direction = "TB"
    seen_header = False
    in_block = False  # inside an `accDescr { ... }` block
    for raw_line in lines:
        line = raw_line.strip()
        if in_block:
            in_block = "}" not in line
            continue
        if not line or line.startswith("%%"):
            continue
        if not seen_header:
            seen_header = True
            header = _HEADER.match(line)
            if header is None:
                word = line.split()[0].rstrip(":;")
                if word in _OTHER_DIAGRAMS or not _ARROW.search(line):
                    # Mermaid needs the header; a bare `a --> b` is still read as a flowchart.
                    return _not_a_flowchart(word, title)
            else:
                if header.group("dir"):
                    direction = _DIRECTIONS[header.group("dir").upper()]
                line = line[header.end() :].strip().lstrip(";").strip()
                if not line:
                    continue
        for statement in _split_statements(line):
            keyword, _, rest = statement.partition(" ")
            if keyword == "classDef":
                names, _, body = rest.strip().partition(" ")
                for name in names.split(","):
                    class_defs[name.strip()] = _css(body)
            elif keyword == "class":
                members, _, name = rest.strip().rpartition(" ")
                for member in members.split(","):
                    if member.strip():
                        reader.classes.setdefault(member.strip(), []).append(name.strip())
            elif keyword == "linkStyle":
                indexes, _, body = rest.strip().partition(" ")
                if _css(body).get("stroke", "").lower() == ERROR_STROKE:
                    reader.error_links.update(
                        int(i) for i in indexes.split(",") if i.strip().isdigit()
                    )
            elif keyword == "style":
                node_id, _, body = rest.strip().partition(" ")
                node_css.setdefault(node_id, {}).update(_css(body))
            elif keyword == "subgraph":
                reader.subgraph(statement)
            elif keyword == "end":
                reader.close()
            elif keyword.split(":")[0] in _SKIPPED:
                if keyword.startswith("accDescr") and statement.rstrip().endswith("{"):
                    in_block = True
                continue
            else:
                reader.statement(statement)
    if not seen_header:
        return _not_a_flowchart("", title)
    return _assemble(reader, class_defs, node_css, title or "workflow", direction)


def _not_a_flowchart(word: str, title: str | None) -> ParsedMermaid:
    kind = word if word in _OTHER_DIAGRAMS else "unknown"
    return ParsedMermaid(graph=Graph(name=title or "workflow", nodes=(), edges=()), diagram=kind)


def _assemble(
    reader: _Reader,
    class_defs: dict[str, dict[str, str]],
    node_css: dict[str, dict[str, str]],
    title: str,
    direction: Direction,
) -> ParsedMermaid:
    """Build the graph: subgraph ids used as edge ends stand for the subgraph's first node."""

    def first_node(cid: str) -> str | None:
        c = reader.clusters[cid]
        if c.members:
            return c.members[0]
        for child in reader.clusters.values():
            if child.parent == cid:
                found = first_node(child.id)
                if found is not None:
                    return found
        return None

    stand_in: dict[str, str] = {}
    for cid in reader.clusters:
        if cid in reader.decls and reader.decls[cid].shape is None:
            target = first_node(cid)
            if target is not None:
                stand_in[cid] = target
    nodes: list[GNode] = []
    for node_id, decl in reader.decls.items():
        if node_id in stand_in or (node_id in reader.clusters and decl.shape is None):
            continue
        shape = decl.shape or "rect"
        kind: NodeKind = "task"
        if shape in ("wait", "subflow", "map", "end"):
            kind = shape  # type: ignore[assignment]  # these shapes share the kind names
        nodes.append(
            GNode(
                id=node_id,
                label=decl.label if decl.label else node_id,
                kind=kind,
                is_entry=shape == "stadium",
                is_error=shape == "hexagon",
                drawn="diamond" if shape == "diamond" else None,
            )
        )
    known = {n.id for n in nodes}
    edges = []
    for i, e in enumerate(reader.edges):
        source, target = stand_in.get(e.source, e.source), stand_in.get(e.target, e.target)
        if source not in known or target not in known:
            continue
        if i in reader.error_links:
            route: EdgeRoute = "failure" if e.label in ("", FAILURE_LABEL) else "catch"
            edges.append(GEdge(source, target, e.label, False, e.arrow, e.thick, route))
        else:
            edges.append(GEdge(source, target, e.label, e.loopback, e.arrow, e.thick))
    clusters = tuple(
        GCluster(c.id, c.title, tuple(m for m in c.members if m in known), c.parent)
        for c in reader.clusters.values()
    )
    graph = Graph(
        name=title,
        nodes=tuple(nodes),
        edges=tuple(edges),
        direction=direction,
        clusters=clusters,
    )
    return ParsedMermaid(
        graph=graph,
        class_defs=class_defs,
        node_classes={k: v for k, v in reader.classes.items() if k in known},
        node_css=node_css,
    )
