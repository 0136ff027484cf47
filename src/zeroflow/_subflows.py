"""Subflows: child workflows registered with an engine and run by ``subflow`` nodes.

At construction, ``build_children`` compiles every registered child, refuses
unknown children, subflow cycles (A runs B runs A) and nesting deeper than
``engine_policy.max_subflow_depth``, and builds what runs each subflow node
(a child loop), whose events reach the parent's callback tagged with their path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ._definition import CompiledWorkflow, compile_workflow
from ._errors import HashMismatchError, WorkflowDefinitionError
from ._events import EventCallback, wanted_kinds
from ._models import Event, RunSnapshot

__all__ = ["build_children", "child_hashes", "check_child_hashes"]

Child = TypeVar("Child")


class _Tagged:
    """Forwards a child's events to the parent callback with ``data["subflow"]`` set."""

    __slots__ = ("event_kinds", "node", "parent")

    def __init__(self, parent: EventCallback, node: str) -> None:
        self.parent = parent
        self.node = node
        self.event_kinds = wanted_kinds(parent)

    def __call__(self, event: Event) -> None:
        data = dict(event.data)
        inner = data.get("subflow") or event.node
        data["subflow"] = f"{self.node}/{inner}" if inner else self.node
        self.parent(
            Event(event.run_id, event.step, event.wave, event.node, event.kind, event.ts, data)
        )


def _compile_children(defs: Mapping[str, Mapping[str, Any]]) -> dict[str, CompiledWorkflow]:
    graphs = {}
    for name, definition in defs.items():
        try:
            graphs[str(name)] = compile_workflow(definition)
        except WorkflowDefinitionError as exc:
            raise WorkflowDefinitionError(f"subflow '{name}': {exc}", path=exc.path) from exc
    return graphs


def _children_of(graph: CompiledWorkflow) -> list[tuple[str, str]]:
    """(node, child workflow name) for every subflow node of ``graph``."""
    return [(n.name, n.subflow.workflow) for n in graph.nodes.values() if n.subflow is not None]


def _check_structure(root: CompiledWorkflow, graphs: Mapping[str, CompiledWorkflow]) -> None:
    limit = root.policy.max_subflow_depth

    def visit(graph: CompiledWorkflow, chain: list[str]) -> None:
        for node, child in _children_of(graph):
            if child not in graphs:
                raise WorkflowDefinitionError(
                    f"node '{node}' of workflow '{graph.name}' runs subflow '{child}', which is "
                    "not registered; pass WorkflowEngine(..., "
                    f"subflows={{'{child}': <definition>}})",
                    path=f"/nodes/{node}/subflow/workflow",
                )
            if child in chain:
                cycle = " -> ".join([*chain[chain.index(child) :], child])
                raise WorkflowDefinitionError(
                    f"subflow cycle detected: {cycle}; a workflow cannot run itself"
                )
            if len(chain) > limit:  # the chain holds the root plus one name per level
                raise WorkflowDefinitionError(
                    f"subflows nest deeper than engine_policy.max_subflow_depth={limit}: "
                    f"{' -> '.join([*chain, child])}"
                )
            visit(graphs[child], [*chain, child])

    visit(root, [root.name])


def build_children(
    root: CompiledWorkflow,
    defs: Mapping[str, Mapping[str, Any]],
    callback: EventCallback | None,
    make: Callable[[CompiledWorkflow, EventCallback | None, dict[str, Child]], Child],
) -> tuple[dict[str, Child], dict[str, CompiledWorkflow]]:
    """What ``make`` builds for each of ``root``'s subflow nodes, and every child by name.

    ``make(graph, callback, children)`` gets the child's compiled workflow, a
    callback that tags its events with the subflow's path, and what was built
    for the child's own subflow nodes.
    """
    graphs = _compile_children(defs)
    _check_structure(root, graphs)

    def built_for(graph: CompiledWorkflow, cb: EventCallback | None) -> dict[str, Child]:
        out: dict[str, Child] = {}
        for node, child in _children_of(graph):
            child_cb: EventCallback | None = None if cb is None else _Tagged(cb, node)
            child_graph = graphs[child]
            out[node] = make(child_graph, child_cb, built_for(child_graph, child_cb))
        return out

    return built_for(root, callback), graphs


def child_hashes(graphs: Mapping[str, CompiledWorkflow]) -> dict[str, str]:
    """The hash lock of every registered child definition, recorded in checkpoints."""
    return {name: graph.hash for name, graph in sorted(graphs.items())}


def check_child_hashes(snap: RunSnapshot, graphs: Mapping[str, CompiledWorkflow]) -> None:
    """Refuse a checkpoint whose recorded child definitions changed since it was written."""
    recorded = snap.extra.get("subflow_hashes") or {}
    for name, digest in sorted(recorded.items()):
        graph = graphs.get(name)
        current = "missing" if graph is None else graph.hash[:12]
        if graph is None or graph.hash != digest:
            raise HashMismatchError(
                f"workflow hash mismatch: subflow '{name}' checkpoint={str(digest)[:12]}, "
                f"current={current}",
                checkpoint_hash=str(digest),
                current_hash="" if graph is None else graph.hash,
            )
