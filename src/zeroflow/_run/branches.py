"""Branch-scoped failure: which nodes a failed node would have fed, up to the next join.

A failure caught by an ``on_error`` catcher with ``"scope": "branch"`` clears
only the failed node's own branch (``branch_of``); the catcher then stands in
for the failed node at the AND-join that branch leads to
(``snapshot.extra["stand_ins"]``, read by ``Frontier.route``). Pure graph code.
"""

from __future__ import annotations

from .._definition import CompiledWorkflow

__all__ = ["STAND_INS", "branch_of", "joins"]

STAND_INS = "stand_ins"
"""``snapshot.extra`` key: branch catcher queued -> the node whose failure it caught."""


def joins(graph: CompiledWorkflow) -> frozenset[str]:
    """Nodes where branches meet: a ``join`` spec, or forward edges from two or more nodes."""
    sources: dict[str, set[str]] = {}
    for name, node in graph.nodes.items():
        for edges in node.outputs.values():
            for edge in edges:
                if not edge.loopback:
                    sources.setdefault(edge.target, set()).add(name)
    return frozenset(
        name
        for name, node in graph.nodes.items()
        if node.join is not None or len(sources.get(name, ())) > 1
    )


def branch_of(
    graph: CompiledWorkflow, failed: str, meet: frozenset[str] | None = None
) -> frozenset[str]:
    """What ``failed`` would have fed: its forward downstream, stopping before any join.

    ``meet``: the graph's ``joins``, when the caller asks for many branches.
    """
    if meet is None:
        meet = joins(graph)
    seen: set[str] = set()
    stack = [failed]
    while stack:
        name = stack.pop()
        for edges in graph.nodes[name].outputs.values():
            for edge in edges:
                target = edge.target
                if edge.loopback or target in meet or target in seen or target == failed:
                    continue
                seen.add(target)
                stack.append(target)
    return frozenset(seen)
