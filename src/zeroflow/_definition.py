"""Validate a workflow definition once and compile it into an immutable graph.

``compile_workflow`` checks every rule of the definition format and raises
``WorkflowDefinitionError`` (a ``ValueError``) with a message that names the
node, the key and the fix. The result, a ``CompiledWorkflow``, holds edges
per output, join specs and resolved policies, so the run loop only looks
things up and never parses the dict again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._constants import MAX_DEPTH
from ._frozen import FrozenDict, deeper_than, freeze
from ._grammar import is_zf1, normalise, pointer
from ._models import EnginePolicy
from ._policies import (
    Catcher,
    MapSpec,
    RetryPolicy,
    SleepSpec,
    SubflowSpec,
    WaitSpec,
    fail,
    input_key,
    parse_input_schema,
    parse_kind,
    parse_on_error,
    parse_policy,
    parse_retry,
    parse_saga,
    parse_sleep,
    parse_writes_schema,
    resolve_wait,
    workflow_key,
)

__all__ = [
    "Edge",
    "JoinSpec",
    "CompiledNode",
    "CompiledWorkflow",
    "compile_workflow",
    "validate_workflow_definition",
    "workflow_hash",
    "parse_policy",
]

REQUIRED_KEYS = ("workflow_name", "default_entry_node", "nodes")
HANDLERLESS_KINDS = ("wait", "end", "subflow", "sleep")


@dataclass(frozen=True, slots=True)
class Edge:
    """One routing edge; ``loopback`` edges feed the next wave."""

    target: str
    loopback: bool = False


@dataclass(frozen=True, slots=True)
class JoinSpec:
    """An AND-join waits until every node of ``wait_for`` has arrived in the wave."""

    mode: str
    wait_for: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CompiledNode:
    """A node with everything the run loop needs, resolved once."""

    name: str
    handler: str | None
    outputs: Mapping[str, tuple[Edge, ...]]
    config: FrozenDict
    retry: RetryPolicy
    join: JoinSpec | None
    on_error: tuple[Catcher, ...] = ()
    kind: str = "task"
    wait: WaitSpec | None = None
    end_result: Any = None
    subflow: SubflowSpec | None = None
    map: MapSpec | None = None
    sleep: SleepSpec | None = None
    terminal: bool = False
    """A zf/1 node written without ``on``: whatever its handler returns ends the path here."""
    compensate: str | None = None
    """The handler that undoes a completed visit when the run fails for good (a saga)."""
    detached: bool = False
    """A side branch: its failure is recorded as a warning and never stops or re-routes the run."""
    writes: frozenset[str] | None = None
    """The ``state.workflow`` keys its ``state_contract.writes_to`` names; None: undeclared."""
    reads: frozenset[str] | None = None
    """The ``state.workflow`` keys its ``state_contract.reads_from`` names; None: undeclared."""
    writes_schema: Mapping[str, Any] | None = None
    """The JSON Schema (the checker's subset) its ``workflow_updates`` must match."""
    input_reads: frozenset[str] = frozenset()
    """The ``state.input`` keys its ``state_contract.reads_from`` names (``"input.x"``)."""


@dataclass(frozen=True, slots=True)
class CompiledWorkflow:
    """The validated, immutable form of a workflow definition."""

    name: str
    entry: str
    error_node: str | None
    policy: EnginePolicy
    nodes: Mapping[str, CompiledNode]
    hash: str
    input_schema: Mapping[str, Any] | bool | None = None
    """The workflow's ``state_contract.input_schema`` (``initial_input`` must match); None: none."""


def workflow_hash(workflow_def: Mapping[str, Any]) -> str:
    """SHA-256 of ``json.dumps(def, sort_keys=True)``: byte-for-byte 0.1.0's hash lock."""
    # At the first compile, not at ``import zeroflow`` (OpenSSL is slow to load).
    import hashlib
    import json

    return hashlib.sha256(json.dumps(workflow_def, sort_keys=True).encode("utf-8")).hexdigest()


def _is_key(value: Any, mapping: Mapping[Any, Any]) -> bool:
    """``value in mapping``, False (not ``TypeError``) for an unhashable value such as a list."""
    try:
        return value in mapping
    except TypeError:
        return False


def _find_forward_cycle(nodes: Mapping[str, CompiledNode]) -> list[str] | None:
    """Return one cycle of forward (non-loopback) edges, as a closed path, or None."""
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(nodes, white)
    for root in nodes:
        if color[root] != white:
            continue
        color[root] = grey
        path = [root]
        stack = [iter(_forward_targets(nodes[root]))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                color[path.pop()] = black
                continue
            if color[nxt] == grey:
                return [*path, nxt]  # 0.1.0 shows the search path from its root
            if color[nxt] == white:
                color[nxt] = grey
                path.append(nxt)
                stack.append(iter(_forward_targets(nodes[nxt])))
    return None


def _forward_targets(node: CompiledNode) -> list[str]:
    return [e.target for edges in node.outputs.values() for e in edges if not e.loopback]


def _compile_node(name: str, raw: Any, nodes: Mapping[str, Any]) -> CompiledNode:
    path = pointer("nodes", name)
    if not isinstance(raw, Mapping):
        raise fail(
            f"node '{name}' missing 'handler' (a node is a dict, got {type(raw).__name__})", path
        )
    kind, wait, end_result, subflow, map_spec = parse_kind(name, raw)
    if "handler" not in raw and kind not in HANDLERLESS_KINDS:
        raise fail(f"node '{name}' missing 'handler'", path)
    if "outputs" not in raw:
        raise fail(f"node '{name}' missing 'outputs'", path)
    handler = raw.get("handler")
    if handler is not None and not isinstance(handler, str):
        raise fail(f"node '{name}' handler must be a string (the handler's name)", path)
    outputs_raw = raw["outputs"]
    if not isinstance(outputs_raw, Mapping):
        raise fail(f"node '{name}' outputs must be a dict", pointer("nodes", name, "outputs"))
    outputs: dict[str, tuple[Edge, ...]] = {}
    for label, edges in outputs_raw.items():
        opath = pointer("nodes", name, "outputs", label)
        if not isinstance(edges, list):
            raise fail(f"node '{name}' output '{label}' must be a list", opath)
        compiled = []
        for i, edge in enumerate(edges):
            if not isinstance(edge, Mapping):
                raise fail(
                    f"node '{name}' output '{label}' edge must be a dict",
                    pointer("nodes", name, "outputs", label, i),
                )
            if "target_node" not in edge:
                raise fail(
                    f"node '{name}' output '{label}' edge missing 'target_node'",
                    pointer("nodes", name, "outputs", label, i),
                )
            target = edge["target_node"]
            if not isinstance(target, str) or not target:
                raise fail(
                    f"node '{name}' output '{label}' target_node must be a non-empty string",
                    pointer("nodes", name, "outputs", label, i, "target_node"),
                )
            if target not in nodes:
                raise fail(
                    f"node '{name}' output '{label}' references unknown target '{target}'",
                    pointer("nodes", name, "outputs", label, i, "target_node"),
                )
            compiled.append(Edge(target, bool(edge.get("is_loopback", False))))
        outputs[str(label)] = tuple(compiled)
    contract = raw.get("state_contract")
    if contract is not None and (
        not isinstance(contract, Mapping)
        or not all(isinstance(contract.get(k, []), list) for k in ("reads_from", "writes_to"))
    ):
        raise fail(
            f"node '{name}' state_contract.reads_from and writes_to must be lists",
            pointer("nodes", name, "state_contract"),
        )
    join = None
    join_raw = raw.get("join")
    if join_raw is not None:
        if not isinstance(join_raw, Mapping):
            raise fail(f"node '{name}' join must be a dict", pointer("nodes", name, "join"))
        mode = join_raw.get("mode", "or")
        if mode not in ("or", "and"):
            raise fail(f"node '{name}' join.mode must be 'or' or 'and', got {mode!r}", path)
        wait_for = join_raw.get("wait_for", [])
        if mode == "and" and (not isinstance(wait_for, list) or not wait_for):
            raise fail(f"node '{name}' join.mode='and' requires a non-empty wait_for list", path)
        if not isinstance(wait_for, list):
            raise fail(
                f"node '{name}' join.wait_for must be a list",
                pointer("nodes", name, "join", "wait_for"),
            )
        for w in wait_for:
            if not isinstance(w, str) or w not in nodes:
                raise fail(f"node '{name}' wait_for references unknown node '{w}'", path)
        join = JoinSpec(str(mode), tuple(dict.fromkeys(wait_for)))
    config = raw.get("config") or {}
    if not isinstance(config, Mapping):
        raise fail(f"node '{name}' config must be a dict", pointer("nodes", name, "config"))
    compensate, detached = parse_saga(name, kind, raw)
    return CompiledNode(
        writes=_declared_writes(contract),
        reads=_declared_keys(contract, "reads_from"),
        input_reads=_input_reads(contract),
        writes_schema=parse_writes_schema(name, contract),
        compensate=compensate,
        detached=detached,
        name=name,
        handler=handler,
        outputs=outputs,
        config=freeze(dict(config)),
        retry=parse_retry(name, raw.get("run_policy")),
        join=join,
        on_error=parse_on_error(name, raw.get("on_error"), nodes),
        kind=kind,
        wait=None if wait is None else resolve_wait(name, wait, outputs),
        end_result=end_result,
        subflow=subflow,
        map=map_spec,
        sleep=parse_sleep(name, raw) if kind == "sleep" else None,
    )


def _declared_writes(contract: Any) -> frozenset[str] | None:
    """The workflow keys a ``state_contract`` lets its node write (None: no ``writes_to``)."""
    return _declared_keys(contract, "writes_to")


def _input_reads(contract: Any) -> frozenset[str]:
    """The ``state.input`` keys a ``state_contract``'s ``reads_from`` names."""
    if not isinstance(contract, Mapping):
        return frozenset()
    keys = (input_key(entry) for entry in contract.get("reads_from") or [])
    return frozenset(k for k in keys if k is not None)


def _declared_keys(contract: Any, field: str) -> frozenset[str] | None:
    """The ``state.workflow`` keys a ``state_contract`` list names (None: no such list)."""
    if not isinstance(contract, Mapping) or field not in contract:
        return None
    keys = (workflow_key(entry) for entry in contract.get(field) or [])
    return frozenset(k for k in keys if k is not None)


def _terminal_nodes(zf1: Mapping[str, Any]) -> frozenset[str]:
    """The task and subflow nodes a zf/1 definition writes without ``on`` (terminal ones)."""
    nodes = zf1.get("nodes")
    if not isinstance(nodes, Mapping):
        return frozenset()
    return frozenset(
        str(name)
        for name, node in nodes.items()
        if isinstance(node, Mapping)
        and node.get("kind", "task") in ("task", "subflow")
        and "on" not in node
    )


def compile_workflow(
    workflow_def: Any,
    *,
    _hash: str | None = None,
    _zf1: bool = False,
    _terminal: frozenset[str] = frozenset(),
) -> CompiledWorkflow:
    """Validate ``workflow_def`` and return its compiled form; never mutates the dict.

    A ``zf/1`` definition (one with a ``version`` key) is hashed as written,
    then compiled from its normalised legacy form (``_grammar.normalise``). A
    definition nested deeper than ``MAX_DEPTH`` levels is refused before any walk
    that could exhaust the stack.
    """
    if not isinstance(workflow_def, Mapping):
        raise fail(
            "missing required keys: workflow_name, default_entry_node, nodes (the workflow "
            f"definition must be a dict, got {type(workflow_def).__name__}; load JSON files with "
            "WorkflowEngine.from_files)"
        )
    if deeper_than(workflow_def):
        raise fail(
            f"workflow definition nests deeper than {MAX_DEPTH} levels of dicts and lists "
            "(zeroflow.MAX_DEPTH), or contains itself; flatten the deep part (a node's "
            "config, say) or store it as a JSON string"
        )
    try:
        digest = workflow_hash(workflow_def) if _hash is None else _hash
    except (TypeError, ValueError) as exc:
        raise fail(f"workflow definition must be JSON-serializable: {exc}") from exc
    if is_zf1(workflow_def):
        legacy = normalise(workflow_def)
        return compile_workflow(
            legacy, _hash=digest, _zf1=True, _terminal=_terminal_nodes(workflow_def)
        )
    missing = [k for k in REQUIRED_KEYS if k not in workflow_def]
    if missing:
        raise fail(f"missing required keys: {', '.join(missing)}")
    raw_nodes = workflow_def["nodes"]
    if not isinstance(raw_nodes, Mapping) or not raw_nodes:
        raise fail("'nodes' must be a non-empty dict", "/nodes")
    entry = workflow_def["default_entry_node"]
    if not _is_key(entry, raw_nodes):
        raise fail(f"entry node '{entry}' not in nodes", "/default_entry_node")
    error_node = workflow_def.get("default_error_node")
    if error_node is not None and not _is_key(error_node, raw_nodes):
        raise fail(f"error node '{error_node}' not in nodes", "/default_error_node")
    nodes = {str(n): _compile_node(str(n), raw, raw_nodes) for n, raw in raw_nodes.items()}
    if _terminal:
        nodes = {
            n: dataclasses.replace(node, terminal=True) if n in _terminal else node
            for n, node in nodes.items()
        }
    for name, node in nodes.items():
        if node.join is None:
            continue
        for w in node.join.wait_for:
            if not any(e.target == name for edges in nodes[w].outputs.values() for e in edges):
                raise fail(
                    f"node '{name}' wait_for includes '{w}' but no declared edge reaches '{name}'",
                    pointer("nodes", name, "join", "wait_for"),
                )
    cycle = _find_forward_cycle(nodes)
    if cycle is not None:
        if _zf1:  # name the zf/1 spelling of a loop edge, and where it goes
            import json

            raise fail(
                f"cycle detected in forward edges: {' -> '.join(cycle)}. Mark the closing edge "
                f'{cycle[-2]} -> {cycle[-1]} as {{"to": {json.dumps(cycle[-1])}, "loop": '
                f"true}} (in node '{cycle[-2]}' 'on') if the loop is intentional.",
                pointer("nodes", cycle[-2], "on"),
            )
        raise fail(
            f"cycle detected in forward edges: {' -> '.join(cycle)}. Mark the closing edge with "
            "'is_loopback': true if the loop is intentional."
        )
    policy = parse_policy(workflow_def.get("engine_policy"))
    input_schema = parse_input_schema(workflow_def)
    return CompiledWorkflow(
        name=str(workflow_def["workflow_name"]),
        entry=str(entry),
        error_node=None if error_node is None else str(error_node),
        policy=policy,
        nodes=nodes,
        hash=digest,
        input_schema=input_schema,
    )


def validate_workflow_definition(workflow_def: Any) -> None:
    """Raise ``ValueError`` (``WorkflowDefinitionError``) if ``workflow_def`` is not valid."""
    compile_workflow(workflow_def)
