"""``lint``: findings about a valid workflow that will run, but probably not as meant.

Validation says whether a definition can run at all; lint looks at the
graph for the usual mistakes: nodes no path reaches, outcomes that quietly
end the run, AND-joins fed by alternative branches or waiting for a node
that only runs after them (they strand), loops with no way out, an error
node that restarts normal work, and handler names the caller's handler map
lacks. Each finding carries a severity, a
stable code, a JSON pointer into the definition as written (zf/1 or
legacy) and a hint that says how to fix it. Lint never raises for a bad
definition: invalid input is reported as one ``ZF100`` finding.

Kinds, edges, catchers and joins are read from ``compile_workflow``'s result,
the form the engine runs and the pictures draw, so all three agree on what a
node is; only the pointers look at the definition as written.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ._errors import WorkflowDefinitionError
from ._grammar import is_zf1, pointer

if TYPE_CHECKING:
    from ._definition import CompiledNode, CompiledWorkflow

__all__ = ["LintFinding", "Severity", "LINT_CODES", "lint"]

Severity = Literal["error", "warning"]

LINT_CODES: dict[str, str] = {
    "ZF100": "invalid definition",
    "ZF101": "unreachable node",
    "ZF102": "output routes nowhere on a non-terminal node",
    "ZF103": "AND-join that can strand (exclusive branches, or waits for a node only it leads to)",
    "ZF104": "loop with no exit edge",
    "ZF105": "error node routes back into the graph",
    "ZF106": "handler missing from the handler map",
    "ZF107": "task node without a handler",
    "ZF108": "a count written as text or a whole float (legacy, read as 0.1.0 did)",
    "ZF109": "run-scoped catcher on a parallel branch (strands an AND-join or drops siblings)",
    "ZF110": "an output a wait or sleep node never takes (a timeout without a deadline)",
    "ZF201": "a declared read that some path to the node leaves unwritten (state_contract)",
    "ZF202": "a declared write that no node declares it reads (state_contract)",
    "ZF203": "a declared read of input.x that the workflow's input_schema does not require",
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
    """The compiled workflow as adjacency data, with pointers in the source's format.

    Kinds, edges, catchers, joins and handlers come from ``compile_workflow``,
    the same reading the engine (and the pictures) use; only the pointers look
    at the definition as written.
    """

    def __init__(self, wf: CompiledWorkflow, raw: Mapping[str, Any], zf1: bool) -> None:
        self.zf1 = zf1
        self.raw_nodes: Mapping[str, Any] = raw.get("nodes") or {}
        self.compiled: Mapping[str, CompiledNode] = wf.nodes
        self.nodes: list[str] = list(wf.nodes)
        self.position = {name: i for i, name in enumerate(self.nodes)}
        self.entry = wf.entry
        self.error = wf.error_node
        # label -> [(target, loopback)] per node, and on_error targets
        self.outputs: dict[str, dict[str, list[tuple[str, bool]]]] = {}
        self.catch: dict[str, list[str]] = {}
        for name, node in wf.nodes.items():
            self.outputs[name] = {
                label: [(e.target, e.loopback) for e in edges]
                for label, edges in node.outputs.items()
            }
            self.catch[name] = [c.target for c in node.on_error]

    def kind(self, name: str) -> str:
        return self.compiled[name].kind

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

    def p_wait_for(self, name: str, wait: str) -> str:
        """The pointer to the first mention of ``wait`` in the join's wait_for as written."""
        raw = self.raw_nodes.get(name)
        join = raw.get("join") if isinstance(raw, Mapping) else None
        listed = join if isinstance(join, list) else (join or {}).get("wait_for", [])
        index = listed.index(wait) if isinstance(listed, list) and wait in listed else 0
        if self.zf1 and isinstance(join, list):
            return pointer("nodes", name, "join", index)  # the bare-list AND-join shorthand
        return pointer("nodes", name, "join", "wait_for", index)

    def and_joins(self) -> list[tuple[str, list[str]]]:
        """``(node, wait_for)`` of every AND-join, in node order."""
        return [
            (name, list(node.join.wait_for))
            for name, node in self.compiled.items()
            if node.join is not None and node.join.mode == "and"
        ]


def lint(
    defn: Any, handlers: Mapping[str, Any] | Collection[str] | None = None
) -> list[LintFinding]:
    """Return the findings for ``defn`` (zf/1 or legacy), errors first, then in node order.

    ``handlers`` (a handler map or a collection of names) enables ``ZF106``.
    An invalid definition yields one ``ZF100`` finding instead of raising.
    """
    from ._definition import compile_workflow

    try:
        compiled = compile_workflow(defn)
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
    g = _Graph(compiled, defn, is_zf1(defn))
    findings: list[LintFinding] = []
    findings += _unreachable(g)
    findings += _routes_nowhere(g)
    findings += _stranding_joins(g)
    findings += _loops_without_exit(g)
    findings += _error_routes_back(g)
    findings += _handlers(g, handlers)
    findings += _run_scoped_catchers(g, compiled)
    findings += _contracts(compiled, g)
    findings += _outputs_never_taken(g)
    if not g.zf1:
        findings += _counts_as_text(defn)
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


class _Dominators:
    """The dominator tree of the nodes ``roots`` reach over ``succ``.

    A virtual root (``None``) sits above ``roots``. Cooper, Harvey and Kennedy's
    iterative algorithm, visiting nodes in reverse postorder: one pass settles an
    acyclic graph, a few more a graph with loops. Entry/exit numbers of the tree
    answer "does ``d`` dominate ``x``" in constant time.
    """

    def __init__(self, roots: Iterable[str], succ: Mapping[str, list[str]]) -> None:
        roots = list(dict.fromkeys(roots))
        post: dict[str, int] = {}
        preds: dict[str, list[str]] = {}
        for root in roots:
            if root in post or root in preds:
                continue
            preds[root] = []
            work = [(root, iter(succ[root]))]
            while work:
                n, it = work[-1]
                nxt = next(it, None)
                if nxt is None:
                    work.pop()
                    post[n] = len(post)
                    continue
                if nxt in preds:
                    preds[nxt].append(n)
                else:
                    preds[nxt] = [n]
                    work.append((nxt, iter(succ[nxt])))
        self.post = post
        self.idom: dict[str, str | None] = dict.fromkeys(roots)
        rpo = sorted((n for n in post if n not in self.idom), key=post.__getitem__, reverse=True)
        changed = True
        while changed:
            changed = False
            for n in rpo:
                done = [p for p in preds[n] if p in self.idom]
                new: str | None = done[0]  # reverse postorder: some predecessor is done
                for p in done[1:]:
                    new = self.common(p, new)
                if n not in self.idom or self.idom[n] != new:
                    self.idom[n] = new
                    changed = True
        children: dict[str | None, list[str]] = {None: []}
        for n in sorted(self.idom, key=post.__getitem__, reverse=True):
            children.setdefault(self.idom[n], []).append(n)
        self.tin: dict[str, int] = {}
        self.tout: dict[str, int] = {}
        clock = 0
        walk = [(r, False) for r in reversed(children[None])]
        while walk:
            n, leaving = walk.pop()
            clock += 1
            if leaving:
                self.tout[n] = clock
                continue
            self.tin[n] = clock
            walk.append((n, True))
            walk.extend((c, False) for c in reversed(children.get(n, ())))

    def __contains__(self, node: str) -> bool:
        return node in self.idom

    def common(self, a: str | None, b: str | None) -> str | None:
        """The nearest common dominator of ``a`` and ``b`` (``None``: the virtual root)."""
        post = self.post
        while a != b:
            if a is None or b is None:
                return None
            while a is not None and b is not None and post[a] < post[b]:
                a = self.idom[a]
            while a is not None and b is not None and post[b] < post[a]:
                b = self.idom[b]
        return a

    def dominates(self, d: str, x: str) -> bool:
        """Every path from the roots to ``x`` passes ``d`` (``x`` itself included)."""
        return d in self.tin and x in self.tin and self.tin[d] <= self.tin[x] <= self.tout[d]


def _stranding_joins(g: _Graph) -> list[LintFinding]:
    joins = g.and_joins()
    if not joins:
        return []  # the analysis below is only for AND-joins: skip it on plain graphs
    return _exclusive_joins(g, joins) + _joins_after_their_inputs(g, joins)


def _exclusive_joins(g: _Graph, joins: list[tuple[str, list[str]]]) -> list[LintFinding]:
    """AND-joins whose ``wait_for`` nodes sit on exclusive outcomes of their common dominator.

    Over forward edges: a failure resets the run's queues and join arrivals, so
    loopbacks and on_error catchers never bring a join's arrivals together. Only
    the nearest common dominator ``d`` of two wait nodes can split them: every
    path from a dominator above ``d`` reaches both through ``d``, along one outcome.
    """
    succ = {n: g.targets(n, forward_only=True, catchers=False) for n in g.nodes}
    preds: dict[str, list[str]] = {n: [] for n in g.nodes}
    for n, ts in succ.items():
        for t in ts:
            preds[t].append(n)
    # the entry, plus nodes only a catcher leads to, start paths of their own
    reached = g.reach([g.entry], forward_only=True)
    starts = [g.entry] + [
        n for n in g.nodes if n in reached and not any(p in reached for p in preds[n])
    ]
    dom = _Dominators(starts, succ)

    cache: dict[tuple[str, str], set[str]] = {}

    def above(x: str, d: str) -> set[str]:
        """Nodes from which a forward path leads to ``x`` (inclusive) below ``d``.

        Any such path from a successor of ``d`` stays among nodes ``d`` dominates.
        """
        if (x, d) in cache:
            return cache[x, d]
        seen = cache[x, d] = {x}
        stack = [x]
        while stack:
            for m in preds[stack.pop()]:
                if m != d and m not in seen and dom.dominates(d, m):
                    seen.add(m)
                    stack.append(m)
        return seen

    def labels_to(d: str, up: set[str]) -> set[str]:
        return {
            label
            for label, edges in g.outputs[d].items()
            for t, loop in edges
            if not loop and t in up
        }

    out = []
    for j, wait_for in joins:
        waits = list(dict.fromkeys(w for w in wait_for if w in dom))
        found = None
        for i, a in enumerate(waits):
            for b in waits[i + 1 :]:
                d = dom.common(a, b)
                if d is None or d in (a, b):
                    continue  # no common dominator, or one runs before the other
                up_a, up_b = above(a, d), above(b, d)
                if a in up_b or b in up_a:
                    continue  # one leads to the other
                la, lb = labels_to(d, up_a), labels_to(d, up_b)
                if la and lb and not la & lb:
                    found = (a, b, d, sorted(la), sorted(lb))
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


def _joins_after_their_inputs(g: _Graph, joins: list[tuple[str, list[str]]]) -> list[LintFinding]:
    """AND-joins waiting for a node that no path reaches without passing the join itself."""
    # Where a run (re)starts without join arrivals: the entry, and after a failure
    # the error node or an on_error catcher (the queues are reset, the target runs).
    roots = dict.fromkeys([g.entry, *([g.error] if g.error else []), *_catch_targets(g)])
    # A wait node every path to which passes the join is one the join dominates.
    dom = _Dominators(roots, {n: g.targets(n) for n in g.nodes})
    out = []
    for j, wait_for in joins:
        if j not in dom or j in roots:
            continue  # unreachable (ZF101), or started without waiting for arrivals
        seen: set[str] = set()
        for w in wait_for:
            if w in seen or (w in dom and not dom.dominates(j, w)):
                continue
            seen.add(w)
            why = (
                f"every path to '{w}' passes through '{j}', so '{w}' only runs after it"
                if w in dom
                else f"nothing reaches '{w}'"
            )
            out.append(
                LintFinding(
                    "warning",
                    "ZF103",
                    g.p_wait_for(j, w),
                    f"AND-join '{j}' waits for '{w}', but {why}: '{j}' never gets all its "
                    "arrivals and never runs",
                    f"remove '{w}' from wait_for, or reach '{j}' from a node that runs before it",
                )
            )
    return out


def _catch_targets(g: _Graph) -> list[str]:
    return [t for n in g.nodes for t in g.catch[n]]


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
    order = g.position.__getitem__
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
        first = min(comp, key=order)
        names = ", ".join(f"'{n}'" for n in sorted(comp, key=order))
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
    # Ending on a node the main path also ends on (the shared 'end' node, a terminal
    # clean-up step) is what the hint recommends; re-entering the entry or a node
    # that routes on into the graph is not.
    back = sorted(
        (
            n
            for n in g.reach(g.targets(g.error)) & main
            if n == g.entry or (g.kind(n) != "end" and g.targets(n, catchers=False))
        ),
        key=g.position.__getitem__,
    )
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


def _counts_as_text(defn: Mapping[str, Any]) -> list[LintFinding]:
    """``max_steps: "3"``, ``max_retries: 2.0``: honoured as 0.1.0 did, but worth fixing."""
    from ._policies import legacy_count

    found: list[tuple[str, str, Any]] = []
    policy = defn.get("engine_policy")
    if isinstance(policy, Mapping) and "max_steps" in policy:
        found.append(
            ("engine_policy.max_steps", pointer("engine_policy", "max_steps"), policy["max_steps"])
        )
    nodes = defn.get("nodes")
    for name, node in nodes.items() if isinstance(nodes, Mapping) else ():
        run_policy = node.get("run_policy") if isinstance(node, Mapping) else None
        if isinstance(run_policy, Mapping) and "max_retries" in run_policy:
            where = pointer("nodes", name, "run_policy", "max_retries")
            found.append(
                (f"node '{name}' run_policy.max_retries", where, run_policy["max_retries"])
            )
    out = []
    for what, where, value in found:
        read = None if isinstance(value, int) else legacy_count(value)
        if read is not None:
            out.append(
                LintFinding(
                    "warning",
                    "ZF108",
                    where,
                    f"{what} is {value!r}, not an int: it is read as {read}, as 0.1.0 did "
                    "(zf/1 refuses it)",
                    f"write {read}",
                )
            )
    return out


def _outputs_never_taken(g: _Graph) -> list[LintFinding]:
    """A wait node's ``timeout`` output without a deadline, a sleep node's outputs but ``ok``."""
    out = []
    for n, node in g.compiled.items():
        where = pointer("nodes", n, "on" if g.zf1 else "outputs")
        if node.kind == "wait" and node.wait is not None and "timeout" in node.outputs:
            if node.wait.on_timeout != "route":
                fix = (
                    "give the wait a deadline (timeout_ms; legacy wait.timeout_seconds)"
                    if node.wait.timeout_seconds is None
                    else "set on_timeout to 'route', or drop the output"
                )
                out.append(
                    LintFinding(
                        "warning",
                        "ZF110",
                        f"{where}/timeout",
                        f"wait node '{n}' routes 'timeout' but its deadline never takes it",
                        fix,
                    )
                )
        elif node.kind == "sleep":
            for label in node.outputs:
                if label != "ok":
                    out.append(
                        LintFinding(
                            "warning",
                            "ZF110",
                            f"{where}/{label}",
                            f"sleep node '{n}' routes '{label}', but a sleep only ever takes 'ok'",
                            "route 'ok' instead",
                        )
                    )
    return out


def _handlers(g: _Graph, handlers: Mapping[str, Any] | Collection[str] | None) -> list[LintFinding]:
    out = []
    names = None if handlers is None else [str(h) for h in handlers]
    for n, node in g.compiled.items():
        if names is not None and node.compensate is not None and node.compensate not in names:
            out.append(
                LintFinding(
                    "error",
                    "ZF106",
                    pointer("nodes", n, "compensate"),
                    f"compensate handler '{node.compensate}' of node '{n}' is not in the handler "
                    "map: if the run fails, its compensation fails with HANDLER_NOT_REGISTERED",
                    f"register a callable under '{node.compensate}' or fix the name",
                )
            )
        if node.kind != "task":
            continue
        handler = node.handler
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
            import difflib  # only an unknown handler asks for a suggestion

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


def _run_scoped_catchers(g: _Graph, wf: CompiledWorkflow) -> list[LintFinding]:
    """Catchers that clear every queue where the failing node runs beside other branches."""
    from ._run.branches import branch_of, joins

    if not any(c.scope == "run" for node in g.compiled.values() for c in node.on_error):
        return []
    meet = joins(wf)
    and_joins = dict(g.and_joins())
    beside: set[str] = set()  # nodes on a branch that runs next to a sibling branch
    for n in g.nodes:
        for edges in g.outputs[n].values():
            forward = [t for t, loop in edges if not loop]
            if len(forward) > 1:
                for start in forward:
                    beside.add(start)
                    beside.update(branch_of(wf, start, meet))
    out = []
    for n, node in g.compiled.items():
        for i, catcher in enumerate(node.on_error):
            if catcher.scope != "run":
                continue
            branch = {n} | branch_of(wf, n, meet)
            stranded = [
                j
                for j, wait_for in and_joins.items()
                if any(m in branch and j in g.targets(m, catchers=False) for m in wait_for)
            ]
            if not stranded and n not in beside:
                continue
            what = (
                f"AND-join '{stranded[0]}' strands (the other branches' arrivals are cleared)"
                if stranded
                else "the sibling branches queued beside it are dropped"
            )
            at = (
                pointer("nodes", n, "on_error", i)
                if isinstance((g.raw_nodes.get(n) or {}).get("on_error"), list)
                else pointer("nodes", n, "on_error")
            )
            out.append(
                LintFinding(
                    "warning",
                    "ZF109",
                    at,
                    f"node '{n}' runs beside other branches, and its catcher to "
                    f"'{catcher.target}' is run-scoped: a caught failure clears every queue, "
                    f"so {what}",
                    'give the catcher "scope": "branch" to clear only this branch (the catcher '
                    "then arrives at the join in the failed node's stead)",
                )
            )
    return out


def _contracts(wf: CompiledWorkflow, g: _Graph) -> list[LintFinding]:
    """ZF201 and ZF202: what the declared state contracts prove (see ``_dataflow``)."""
    from ._dataflow import missing_reads, unread_writes, unrequired_input_reads

    out: list[LintFinding] = []
    for miss in missing_reads(wf, g.raw_nodes):
        route = " -> ".join(miss.path)
        out.append(
            LintFinding(
                "warning",
                "ZF201",
                pointer("nodes", miss.node, "state_contract", "reads_from", miss.index),
                f"node '{miss.node}' reads '{miss.key}', which is not written on every path "
                f"that reaches it, e.g. {route}",
                f"write '{miss.key}' (and list it in writes_to) on that path, or give the "
                "node a default when it is absent",
            )
        )
    for miss in unrequired_input_reads(wf, g.raw_nodes):
        out.append(
            LintFinding(
                "warning",
                "ZF203",
                pointer("nodes", miss.node, "state_contract", "reads_from", miss.index),
                f"node '{miss.node}' reads input key '{miss.key}', which the workflow's "
                "input_schema does not require, so a run may start without it",
                f"add '{miss.key}' to state_contract.input_schema's required list, or give "
                "the node a default when it is absent",
            )
        )
    for unread in unread_writes(wf, g.raw_nodes):
        out.append(
            LintFinding(
                "warning",
                "ZF202",
                pointer("nodes", unread.node, "state_contract", "writes_to"),
                f"node '{unread.node}' writes '{unread.key}', which no node declares it reads",
                "drop it from writes_to, or list it in the reads_from of the node that uses "
                "it (a key only the run's caller reads may stay)",
            )
        )
    return out
