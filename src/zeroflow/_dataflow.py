"""Dataflow over declared state contracts: which workflow keys every path to a node wrote.

A node's ``state_contract`` names the keys it reads (``reads_from``) and
writes (``writes_to``): ``"total"`` or ``"workflow.total"`` (a key of
``state.workflow``; deeper paths count as their top-level key),
``"input.order"`` (the run's input, always there), ``"node.x"`` (the node's
own state, private to it). ``proven_keys`` computes, for every node a run can
reach, the workflow keys that are written on *every* path reaching it — a
must-analysis to a fixpoint, with OR-joins meeting their inputs, an AND-join
taking the union of its members (all of them ran), a catcher or the error
node getting the state from *before* the failed node (its updates are not
merged), and loopbacks iterated until nothing changes. A node without a
contract is assumed to write every key (it is not checked); a wait node
writes its ``resume_as``. ``missing_reads`` then names each declared read
that some path leaves unwritten, with one such path.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._policies import input_key, workflow_key

if TYPE_CHECKING:
    from ._definition import CompiledWorkflow

__all__ = [
    "MissingRead",
    "UnreadWrite",
    "missing_reads",
    "proven_keys",
    "unread_writes",
    "unrequired_input_reads",
]


@dataclass(frozen=True, slots=True)
class Contracts:
    """Each node's declared reads and writes (workflow keys); ``None``: no contract."""

    reads: Mapping[str, tuple[tuple[int, str], ...]]
    """Per node: (index in ``reads_from``, key) of each workflow key it reads."""
    writes: Mapping[str, frozenset[str] | None]

    @classmethod
    def of(cls, wf: CompiledWorkflow, raw_nodes: Mapping[str, Any]) -> Contracts:
        reads: dict[str, tuple[tuple[int, str], ...]] = {}
        writes: dict[str, frozenset[str] | None] = {}
        for name, node in wf.nodes.items():
            raw = raw_nodes.get(name)
            contract = raw.get("state_contract") if isinstance(raw, Mapping) else None
            resume_key = node.wait.resume_as if node.wait is not None else None
            if not isinstance(contract, Mapping):
                reads[name] = ()
                if node.kind in ("wait", "end"):
                    writes[name] = frozenset({resume_key} if resume_key else ())
                else:
                    writes[name] = None  # undeclared: assumed to write anything
                continue
            found = [(i, workflow_key(e)) for i, e in enumerate(contract.get("reads_from") or [])]
            reads[name] = tuple((i, k) for i, k in found if k is not None)
            keys = {workflow_key(e) for e in contract.get("writes_to") or []}
            if resume_key:
                keys.add(resume_key)
            writes[name] = frozenset(k for k in keys if k is not None)
        return cls(reads, writes)

    def declared(self) -> bool:
        """True when some node declares what it reads (otherwise there is nothing to prove)."""
        return any(self.reads.values())


class _Flow:
    """The compiled graph as the analysis needs it: edges, failure edges, AND-join members."""

    def __init__(self, wf: CompiledWorkflow) -> None:
        self.entry = wf.entry
        self.nodes = list(wf.nodes)
        self.ok: dict[str, list[str]] = {}
        self.failed: dict[str, list[str]] = {}
        for name, node in wf.nodes.items():
            self.ok[name] = [e.target for edges in node.outputs.values() for e in edges]
            catchers = [c.target for c in node.on_error]
            if wf.error_node is not None and wf.error_node != name:
                catchers.append(wf.error_node)
            self.failed[name] = catchers
        self.members: dict[str, frozenset[str]] = {
            name: frozenset(node.join.wait_for)
            for name, node in wf.nodes.items()
            if node.join is not None and node.join.mode == "and"
        }

    def reachable(self) -> set[str]:
        seen = {self.entry}
        todo = [self.entry]
        while todo:
            n = todo.pop()
            for t in (*self.ok[n], *self.failed[n]):
                if t not in seen:
                    seen.add(t)
                    todo.append(t)
        return seen


def proven_keys(wf: CompiledWorkflow, raw_nodes: Mapping[str, Any]) -> dict[str, frozenset[str]]:
    """For each reachable node: the workflow keys written on every path that reaches it."""
    return _solve(_Flow(wf), Contracts.of(wf, raw_nodes))


def _solve(flow: _Flow, contracts: Contracts) -> dict[str, frozenset[str]]:
    universe = frozenset(
        {k for ws in contracts.writes.values() if ws for k in ws}
        | {k for rs in contracts.reads.values() for _, k in rs}
    )
    live = flow.reachable()
    writes = {n: (universe if w is None else w) for n, w in contracts.writes.items()}
    state_in: dict[str, frozenset[str]] = {n: universe for n in live}
    state_in[flow.entry] = frozenset()
    changed = True
    while changed:
        changed = False
        incoming: dict[str, list[tuple[str, frozenset[str]]]] = {n: [] for n in live}
        for n in live:
            out = state_in[n] | writes[n]
            for t in flow.ok[n]:
                incoming[t].append((n, out))
            for t in flow.failed[n]:
                incoming[t].append((n, state_in[n]))  # the failed node's updates are dropped
        for t in live:
            if t == flow.entry:
                continue  # a loop back to the entry still starts from what the run started with
            arrived = incoming[t]
            if not arrived:
                continue
            members = flow.members.get(t)
            if members:
                per_member: dict[str, frozenset[str]] = {}
                others: list[frozenset[str]] = []
                for source, keys in arrived:
                    if source in members:
                        per_member[source] = per_member.get(source, universe) & keys
                    else:
                        others.append(keys)
                new = frozenset().union(*per_member.values()) if per_member else universe
                for keys in others:
                    new &= keys
            else:
                new = universe
                for _, keys in arrived:
                    new &= keys
            new &= state_in[t]
            if new != state_in[t]:
                state_in[t] = new
                changed = True
    return state_in


@dataclass(frozen=True, slots=True)
class MissingRead:
    """``node`` reads ``key`` (entry ``index`` of its ``reads_from``), unwritten along ``path``."""

    node: str
    key: str
    index: int
    path: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UnreadWrite:
    """``node`` declares it writes ``key``, and no node declares it reads it."""

    node: str
    key: str


def missing_reads(wf: CompiledWorkflow, raw_nodes: Mapping[str, Any]) -> list[MissingRead]:
    """Every declared read some path to its node leaves unwritten, in node order."""
    flow = _Flow(wf)
    contracts = Contracts.of(wf, raw_nodes)
    if not contracts.declared():
        return []
    proven = _solve(flow, contracts)
    out: list[MissingRead] = []
    for name in flow.nodes:
        have = proven.get(name)
        if have is None:
            continue  # unreachable: ZF101 says so
        for index, key in contracts.reads[name]:
            if key not in have:
                out.append(MissingRead(name, key, index, _witness(flow, contracts, name, key)))
    return out


def unread_writes(wf: CompiledWorkflow, raw_nodes: Mapping[str, Any]) -> list[UnreadWrite]:
    """Declared writes nothing declares it reads (only when some node declares reads)."""
    contracts = Contracts.of(wf, raw_nodes)
    if not contracts.declared():
        return []
    read = {k for rs in contracts.reads.values() for _, k in rs}
    out: list[UnreadWrite] = []
    for name in wf.nodes:
        raw = raw_nodes.get(name)
        contract = raw.get("state_contract") if isinstance(raw, Mapping) else None
        if not isinstance(contract, Mapping):
            continue
        for entry in contract.get("writes_to") or []:
            key = workflow_key(entry)
            if key is not None and key not in read:
                out.append(UnreadWrite(name, key))
    return out


def unrequired_input_reads(wf: CompiledWorkflow, raw_nodes: Mapping[str, Any]) -> list[MissingRead]:
    """Declared reads of ``input.x`` that the workflow's ``input_schema`` does not require.

    Only with an object ``input_schema``: its ``required`` keys are present from
    the start of every run (the engine refuses, or warns about, an input without
    them); without an input schema the input is not analysed. ``path`` is empty.
    """
    schema_ = wf.input_schema
    if not isinstance(schema_, Mapping):
        return []
    required = frozenset(str(k) for k in schema_.get("required") or ())
    out: list[MissingRead] = []
    for name in wf.nodes:
        raw = raw_nodes.get(name)
        contract = raw.get("state_contract") if isinstance(raw, Mapping) else None
        if not isinstance(contract, Mapping):
            continue
        for index, entry in enumerate(contract.get("reads_from") or []):
            key = input_key(entry)
            if key is not None and key not in required:
                out.append(MissingRead(name, key, index, ()))
    return out


def _witness(flow: _Flow, contracts: Contracts, node: str, key: str) -> tuple[str, ...]:
    """One path from the entry to ``node`` on which no node that ran wrote ``key``."""

    def writes_key(n: str) -> bool:
        w = contracts.writes[n]
        return w is None or key in w

    parent: dict[str, str | None] = {flow.entry: None}
    todo: deque[str] = deque([flow.entry])
    while todo:
        n = todo.popleft()
        if n == node:
            break
        through: Sequence[str] = () if writes_key(n) else flow.ok[n]
        for t in (*through, *flow.failed[n]):  # a failure passes on the state before n
            if t not in parent:
                parent[t] = n
                todo.append(t)
    if node not in parent:
        return (node,)
    path: list[str] = []
    at: str | None = node
    while at is not None:
        path.append(at)
        at = parent[at]
    return tuple(reversed(path))
