"""``lint``: findings about a valid workflow that will run, but probably not as meant.

Validation says whether a definition can run at all; lint looks at the
graph for the usual mistakes: nodes no path reaches, outcomes that quietly
end the run, AND-joins fed by alternative branches (they strand), loops
with no way out, an error node that restarts normal work, and handler
names the caller's handler map lacks. Each finding carries a severity, a
stable code, a JSON pointer into the definition as written (zf/1 or
legacy) and a hint that says how to fix it. Lint never raises for a bad
definition: invalid input is reported as one ``ZF100`` finding.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ._errors import WorkflowDefinitionError
from ._grammar import is_zf1, normalise, pointer

__all__ = ["LintFinding", "Severity", "LINT_CODES", "lint"]

Severity = Literal["error", "warning"]

LINT_CODES: dict[str, str] = {
    "ZF100": "invalid definition",
    "ZF101": "unreachable node",
    "ZF102": "output routes nowhere on a non-terminal node",
    "ZF103": "AND-join fed by mutually exclusive branches (can strand)",
    "ZF104": "loop with no exit edge",
    "ZF105": "error node routes back into the graph",
    "ZF106": "handler missing from the handler map",
    "ZF107": "task node without a handler",
}


@dataclass(frozen=True, slots=True)
class LintFinding:
    """One lint result: ``code`` is stable (see ``LINT_CODES``), ``pointer`` a JSON pointer."""

    severity: Severity
    code: str
    pointer: str
    message: str
    hint: str

    def to_dict(self) -> dict[str, str]:
        return {
            "severity": self.severity,
            "code": self.code,
            "pointer": self.pointer,
            "message": self.message,
            "hint": self.hint,
        }


class _Graph:
    """The normalised definition as adjacency data, with pointers in the source's format."""

    def __init__(self, legacy: Mapping[str, Any], zf1: bool) -> None:
        self.zf1 = zf1
        self.nodes: dict[str, Mapping[str, Any]] = {str(k): v for k, v in legacy["nodes"].items()}
        self.entry = str(legacy["default_entry_node"])
        err = legacy.get("default_error_node")
        self.error = None if err is None else str(err)
        # label -> [(target, loopback)] per node, and on_error targets
        self.outputs: dict[str, dict[str, list[tuple[str, bool]]]] = {}
        self.catch: dict[str, list[str]] = {}
        for name, node in self.nodes.items():
            self.outputs[name] = {
                str(label): [(e["target_node"], bool(e.get("is_loopback", False))) for e in edges]
                for label, edges in (node.get("outputs") or {}).items()
            }
            self.catch[name] = [c["target_node"] for c in node.get("on_error") or ()]

    def kind(self, name: str) -> str:
        return str(self.nodes[name].get("kind", "task"))

    def targets(self, name: str, *, forward_only: bool = False, catchers: bool = True) -> list[str]:
        out = [
            t
            for edges in self.outputs[name].values()
            for t, loop in edges
            if not (forward_only and loop)
        ]
        return out + self.catch[name] if catchers else out

    def reach(
        self, roots: Iterable[str], *, forward_only: bool = False, avoid: str | None = None
    ) -> set[str]:
        seen: set[str] = set()
        stack = [r for r in roots if r != avoid]
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            stack.extend(t for t in self.targets(n, forward_only=forward_only) if t != avoid)
        return seen

    # pointers into the definition as the user wrote it
    def p_node(self, name: str) -> str:
        return pointer("nodes", name)

    def p_output(self, name: str, label: str) -> str:
        return pointer("nodes", name, "on" if self.zf1 else "outputs", label)

    def p_error(self) -> str:
        return pointer("error" if self.zf1 else "default_error_node")


def lint(
    defn: Any, handlers: Mapping[str, Any] | Collection[str] | None = None
) -> list[LintFinding]:
    """Return the findings for ``defn`` (zf/1 or legacy), errors first, then in node order.

    ``handlers`` (a handler map or a collection of names) enables ``ZF106``.
    An invalid definition yields one ``ZF100`` finding instead of raising.
    """
    from ._definition import compile_workflow

    try:
        compile_workflow(defn)
        legacy = normalise(defn) if is_zf1(defn) else defn
    except WorkflowDefinitionError as exc:
        return [
            LintFinding(
                "error",
                "ZF100",
                exc.path,
                str(exc),
                "fix the definition first: `zeroflow validate FILE` lists every problem",
            )
        ]
    g = _Graph(legacy, is_zf1(defn))
    findings: list[LintFinding] = []
    findings += _unreachable(g)
    findings += _routes_nowhere(g)
    findings += _stranding_joins(g)
    findings += _loops_without_exit(g)
    findings += _error_routes_back(g)
    findings += _handlers(g, handlers)
    return sorted(findings, key=lambda f: f.severity != "error")


def _unreachable(g: _Graph) -> list[LintFinding]:
    roots = [g.entry] + ([g.error] if g.error else [])
    reached = g.reach(roots)
    return [
        LintFinding(
            "warning",
            "ZF101",
            g.p_node(n),
            f"node '{n}' is unreachable: no edge from "
            f"the entry node '{g.entry}' (or the error node) leads to it",
            "route an outcome of another node to it, or delete it",
        )
        for n in g.nodes
        if n not in reached
    ]


def _routes_nowhere(g: _Graph) -> list[LintFinding]:
    out = []
    for n, outputs in g.outputs.items():
        if g.kind(n) == "end" or not g.targets(n, forward_only=True, catchers=False):
            continue  # terminal in the forward graph (at most loops back): ending is its job
        for label, edges in outputs.items():
            if not edges:
                out.append(
                    LintFinding(
                        "warning",
                        "ZF102",
                        g.p_output(n, label),
                        f"outcome '{label}' of node '{n}' routes nowhere: when the handler returns "
                        "it, this branch of the run just stops",
                        "route it to a node (an 'end' node makes an intended stop explicit)",
                    )
                )
    return out


def _dominators(g: _Graph) -> dict[str, set[str]]:
    """Dominators over forward edges from the entry (only for nodes the entry reaches)."""
    nodes = g.reach([g.entry], forward_only=True)
    preds: dict[str, set[str]] = {n: set() for n in nodes}
    for n in nodes:
        for t in g.targets(n, forward_only=True, catchers=False):
            if t in preds:
                preds[t].add(n)
    dom = {n: set(nodes) for n in nodes}
    dom[g.entry] = {g.entry}
    changed = True
    while changed:
        changed = False
        for n in nodes:
            if n == g.entry:
                continue
            ps = [dom[p] for p in preds[n]]
            new = set.intersection(*ps) | {n} if ps else {n}
            if new != dom[n]:
                dom[n], changed = new, True
    return dom


def _stranding_joins(g: _Graph) -> list[LintFinding]:
    dom = _dominators(g)
    fwd = {n: g.reach([n], forward_only=True) for n in g.nodes}

    def labels_to(d: str, x: str) -> set[str]:
        return {
            label
            for label, edges in g.outputs[d].items()
            for t, loop in edges
            if not loop and x in fwd[t]
        }

    out = []
    for j, node in g.nodes.items():
        join = node.get("join") or {}
        if join.get("mode") != "and":
            continue
        waits = [w for w in join.get("wait_for", []) if w in dom]
        found = None
        for i, a in enumerate(waits):
            for b in waits[i + 1 :]:
                if b in fwd[a] or a in fwd[b]:
                    continue
                for d in (dom[a] & dom[b]) - {a, b}:
                    la, lb = labels_to(d, a), labels_to(d, b)
                    if la and lb and not la & lb:
                        found = (a, b, d, sorted(la), sorted(lb))
                        break
                if found:
                    break
            if found:
                break
        if found:
            a, b, d, names_a, names_b = found
            out.append(
                LintFinding(
                    "warning",
                    "ZF103",
                    pointer("nodes", j, "join"),
                    f"AND-join '{j}' waits for '{a}' and '{b}', which sit on mutually exclusive "
                    f"outcomes of '{d}' ({', '.join(names_a)} vs {', '.join(names_b)}): only one "
                    f"of them runs, so '{j}' can strand",
                    "make it an OR-join (mode 'or'), or have both branches reach it in every case",
                )
            )
    return out


def _sccs(g: _Graph) -> list[list[str]]:
    """Strongly connected components over every routing edge (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    comps: list[list[str]] = []
    counter = 0
    for root in g.nodes:
        if root in index:
            continue
        work = [(root, iter(g.targets(root, catchers=False)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            n, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(g.targets(nxt, catchers=False))))
                elif nxt in on_stack:
                    low[n] = min(low[n], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[n])
            if low[n] == index[n]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == n:
                        break
                comps.append(comp)
    return comps


def _loops_without_exit(g: _Graph) -> list[LintFinding]:
    out = []
    order = list(g.nodes)
    for comp in _sccs(g):
        members = set(comp)
        is_loop = len(comp) > 1 or comp[0] in g.targets(comp[0], catchers=False)
        if not is_loop:
            continue
        exits = any(
            not edges or any(t not in members for t, _ in edges)
            for n in comp
            for edges in g.outputs[n].values()
        )
        if exits:
            continue
        first = min(comp, key=order.index)
        names = ", ".join(f"'{n}'" for n in sorted(comp, key=order.index))
        out.append(
            LintFinding(
                "error",
                "ZF104",
                g.p_node(first),
                f"loop through {names} has no exit: every outcome of its nodes routes back into "
                "the loop, so the run can only end by failing or by max_steps",
                "give one node of the loop an outcome that leaves it (to a node outside the loop "
                "or an 'end' node)",
            )
        )
    return out


def _error_routes_back(g: _Graph) -> list[LintFinding]:
    if g.error is None:
        return []
    main = g.reach([g.entry], avoid=g.error)
    back = sorted(g.reach(g.targets(g.error)) & main, key=list(g.nodes).index)
    if not back:
        return []
    shown = ", ".join(map(repr, back[:3])) + (", ..." if len(back) > 3 else "")
    return [
        LintFinding(
            "warning",
            "ZF105",
            g.p_error(),
            f"error node '{g.error}' routes back into the graph (to {shown}): "
            "a persistent failure then loops through normal work",
            "route the error node only to clean-up or 'end' nodes; use node retries or on_error "
            "for failures that are worth another attempt",
        )
    ]


def _handlers(g: _Graph, handlers: Mapping[str, Any] | Collection[str] | None) -> list[LintFinding]:
    out = []
    names = None if handlers is None else [str(h) for h in handlers]
    for n, node in g.nodes.items():
        if g.kind(n) != "task":
            continue
        handler = node.get("handler")
        if handler is None:
            out.append(
                LintFinding(
                    "warning",
                    "ZF107",
                    pointer("nodes", n, "handler"),
                    f"task node '{n}' declares no handler: it fails at run time with "
                    "HANDLER_TYPE_NOT_DECLARED",
                    "name the handler function, or make it a 'wait' or 'end' node",
                )
            )
        elif names is not None and handler not in names:
            close = difflib.get_close_matches(str(handler), names, n=1)
            fix = f"did you mean '{close[0]}'? " if close else ""
            out.append(
                LintFinding(
                    "error",
                    "ZF106",
                    pointer("nodes", n, "handler"),
                    f"handler '{handler}' of node '{n}' is not in the handler map: the node fails "
                    "with HANDLER_NOT_REGISTERED",
                    f"{fix}register a callable under '{handler}' or fix the name",
                )
            )
    return out
