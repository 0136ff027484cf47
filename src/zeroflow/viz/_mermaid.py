"""Mermaid flowchart text: written from a `Graph`, and read back for offline pages.

The reader understands the subset the writer emits (node shapes, labelled
solid and dotted edges, class definitions and assignments) plus common
hand-written variants; anything else is skipped, never fatal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from zeroflow.viz._graph import GEdge, GNode, Graph, NodeKind
from zeroflow.viz._palette import MERMAID_CLASSES, mermaid_class_def

_PLAIN_EDGE_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_ .-]*[A-Za-z0-9_.-])?$")

_SHAPE_OPEN: Mapping[str, str] = {
    "stadium": '(["',
    "hexagon": '{{"',
    "rect": '["',
    "wait": '("',
    "subflow": '[["',
    "map": '[/"',
}
_SHAPE_CLOSE: Mapping[str, str] = {
    "stadium": '"])',
    "hexagon": '"}}',
    "rect": '"]',
    "wait": '")',
    "subflow": '"]]',
    "map": '"\\]',
}


def escape_label(text: str) -> str:
    """Make text safe inside a quoted Mermaid label, using Mermaid entity codes."""
    out = text.replace("#", "#35;").replace('"', "#quot;")
    out = out.replace("<", "#lt;").replace(">", "#gt;")
    return out.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


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


def graph_to_mermaid(
    graph: Graph,
    *,
    done_nodes: Iterable[str] | None = None,
    active_node: str | None = None,
    failed: bool = False,
    fenced: bool = True,
) -> str:
    """Write a Mermaid `flowchart TD` with safe ids (`n0`, `n1`, ...) and quoted labels."""
    ids = {n.id: f"n{i}" for i, n in enumerate(graph.nodes)}
    lines = ["flowchart TD"]
    for n in graph.nodes:
        shape = n.shape
        lines.append(
            f"    {ids[n.id]}{_SHAPE_OPEN[shape]}{escape_label(n.label)}{_SHAPE_CLOSE[shape]}"
        )
    for e in graph.edges:
        arrow = "-.->" if e.loopback else "-->"
        lines.append(f"    {ids[e.source]} {arrow}{_edge_label(e.label)} {ids[e.target]}")
    for name, status in MERMAID_CLASSES.items():
        lines.append(f"    classDef {name} {mermaid_class_def(status)}")
    done = set(done_nodes or ())
    groups: dict[str, list[str]] = {"done": [], "active": [], "error": [], "pending": []}
    for n in graph.nodes:
        if active_node is not None and n.id == active_node:
            groups["error" if failed else "active"].append(ids[n.id])
        elif n.id in done:
            groups["done"].append(ids[n.id])
        else:
            groups["pending"].append(ids[n.id])
    for name, members in groups.items():
        if members:
            lines.append(f"    class {','.join(members)} {name}")
    body = "\n".join(lines)
    return f"```mermaid\n{body}\n```\n" if fenced else body + "\n"


# ---------------------------------------------------------------- reading


@dataclass
class ParsedMermaid:
    """A Mermaid flowchart read back: the graph plus its class and style declarations."""

    graph: Graph
    class_defs: dict[str, dict[str, str]] = field(default_factory=dict)
    node_classes: dict[str, list[str]] = field(default_factory=dict)
    node_css: dict[str, dict[str, str]] = field(default_factory=dict)


# Openers are tried longest first; each maps to its closer and the node kind it implies.
_OPENERS: tuple[tuple[str, str, str], ...] = (
    ("([", "])", "stadium"),
    ("{{", "}}", "hexagon"),
    ("[[", "]]", "subflow"),
    ("[/", "\\]", "map"),
    ("[/", "/]", "rect"),
    ("[\\", "\\]", "rect"),
    ("[\\", "/]", "rect"),
    ("[(", ")]", "rect"),
    ("((", "))", "rect"),
    ("(", ")", "wait"),
    ("[", "]", "rect"),
    ("{", "}", "rect"),
    (">", "]", "rect"),
)
_ID = re.compile(r"[^\s\[\](){}<>|\"'`;,&:=.-]+(?:-[^\s\[\](){}<>|\"'`;,&:=.-]+)*")
_ARROW = re.compile(r"\s*(?P<arrow><?(?:-\.+->|-{2,}>|={2,}>|-\.+-|-{3,}|={3,}))\s*")
_ARROW_TEXT = re.compile(
    r"\s*(?P<open>--|-\.|==)\s+(?P<text>[^|]*?)\s+(?P<close>-{2,}>|\.-+>|={2,}>)\s*"
)
_PIPE_LABEL = re.compile(r'\|\s*(?:"(?P<q>[^"]*)"|(?P<p>[^|]*))\s*\|\s*')
_OTHER_DIAGRAMS = frozenset(
    [
        "sequenceDiagram",
        "classDiagram",
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
        "sankey-beta",
        "xychart-beta",
        "block-beta",
        "packet-beta",
        "architecture-beta",
        "kanban",
    ]
)
_HEADER = re.compile(r"^(?:flowchart|graph)\b", re.IGNORECASE)


@dataclass
class _NodeDecl:
    label: str | None = None
    shape: str | None = None


class _Reader:
    """Collects nodes and edges from statement lines in first-seen order."""

    def __init__(self) -> None:
        self.decls: dict[str, _NodeDecl] = {}
        self.edges: list[GEdge] = []
        self.classes: dict[str, list[str]] = {}

    def node_ref(self, text: str, pos: int) -> tuple[str, int] | None:
        """Read a node id, optional shape and `:::class` at `pos`; return id and new position."""
        m = _ID.match(text, pos)
        if not m:
            return None
        node_id = m.group(0)
        pos = m.end()
        decl = self.decls.setdefault(node_id, _NodeDecl())
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
            cm = re.compile(r"[\w-]+").match(text, pos + 3)
            if cm:
                self.classes.setdefault(node_id, []).append(cm.group(0))
                pos = cm.end()
        return node_id, pos

    def statement(self, text: str) -> None:
        """Read a chain of `node arrow node ...`; stops quietly at anything it cannot read."""
        first = self.node_ref(text, 0)
        if first is None:
            return
        source, pos = first
        while pos < len(text):
            label = ""
            m = _ARROW.match(text, pos)
            if m:
                dotted = "." in m.group("arrow")
                pos = m.end()
                pm = _PIPE_LABEL.match(text, pos)
                if pm:
                    label = pm.group("q") if pm.group("q") is not None else pm.group("p") or ""
                    pos = pm.end()
            else:
                tm = _ARROW_TEXT.match(text, pos)
                if not tm:
                    return
                dotted = tm.group("open") == "-."
                label = tm.group("text").strip().strip('"')
                pos = tm.end()
            nxt = self.node_ref(text, pos)
            if nxt is None:
                return
            target, pos = nxt
            self.edges.append(GEdge(source, target, unescape_label(label.strip()), dotted))
            source = target
            while pos < len(text) and text[pos] in " \t;":
                pos += 1


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


def parse_mermaid(source: str) -> ParsedMermaid:
    """Read a (fenced or raw) Mermaid flowchart into the neutral graph model.

    Stadium nodes become entry nodes, hexagons error nodes, subroutines
    subflows, trapezoids maps and rounded boxes waits; dotted edges are
    loopbacks. Unsupported statements are ignored.
    """
    reader = _Reader()
    class_defs: dict[str, dict[str, str]] = {}
    node_css: dict[str, dict[str, str]] = {}
    title = "workflow"
    for raw_line in strip_fence(source).splitlines():
        line = raw_line.strip().rstrip(";").strip()
        if not line or line.startswith("%%") or _HEADER.match(line):
            continue
        if line.split()[0] in _OTHER_DIAGRAMS and not reader.decls:
            break  # not a flowchart: draw nothing rather than something wrong
        keyword, _, rest = line.partition(" ")
        if keyword == "classDef":
            names, _, body = rest.strip().partition(" ")
            for name in names.split(","):
                class_defs[name.strip()] = _css(body)
        elif keyword == "class":
            members, _, name = rest.strip().rpartition(" ")
            for member in members.split(","):
                if member.strip():
                    reader.classes.setdefault(member.strip(), []).append(name.strip())
        elif keyword == "style":
            node_id, _, body = rest.strip().partition(" ")
            node_css.setdefault(node_id, {}).update(_css(body))
        elif keyword in ("linkStyle", "subgraph", "end", "direction", "click", "accTitle"):
            continue
        elif keyword == "title" or keyword.startswith("title:"):
            title = line.split(":", 1)[-1].strip() or title
        else:
            reader.statement(line)
    nodes: list[GNode] = []
    for node_id, decl in reader.decls.items():
        shape = decl.shape or "rect"
        kind: NodeKind = "task"
        if shape in ("wait", "subflow", "map"):
            kind = shape  # type: ignore[assignment]  # the three shapes share the kind names
        nodes.append(
            GNode(
                id=node_id,
                label=decl.label if decl.label else node_id,
                kind=kind,
                is_entry=shape == "stadium",
                is_error=shape == "hexagon",
            )
        )
    graph = Graph(name=title, nodes=tuple(nodes), edges=tuple(reader.edges))
    return ParsedMermaid(
        graph=graph,
        class_defs=class_defs,
        node_classes={k: v for k, v in reader.classes.items() if k in reader.decls},
        node_css=node_css,
    )
