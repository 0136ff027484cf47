"""Validate a workflow definition once and compile it into an immutable graph.

``compile_workflow`` checks every rule of the definition format and raises
``WorkflowDefinitionError`` (a ``ValueError``) with a message that names the
node, the key and the fix. The result, a ``CompiledWorkflow``, holds edges
per output, join specs and resolved policies, so the run loop only looks
things up and never parses the dict again.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._errors import WorkflowDefinitionError
from ._frozen import FrozenDict, freeze
from ._models import EnginePolicy

__all__ = [
    "Edge",
    "JoinSpec",
    "RetryPolicy",
    "Catcher",
    "CompiledNode",
    "CompiledWorkflow",
    "compile_workflow",
    "validate_workflow_definition",
    "workflow_hash",
    "parse_policy",
]

REQUIRED_KEYS = ("workflow_name", "default_entry_node", "nodes")
STATE_ISOLATION_MODES = ("readonly", "copy")
BACKOFF_MODES = ("fixed", "exponential")
JITTER_MODES = ("none", "full")


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
class RetryPolicy:
    """How often and how patiently a node is retried; 0.1.0's fixed delay by default."""

    max_retries: int = 0
    retry_sleep_seconds: float = 0.1
    backoff: str = "fixed"
    backoff_rate: float = 2.0
    max_delay_seconds: float | None = None
    jitter: str = "none"
    retry_on: tuple[str, ...] | None = None
    timeout_seconds: float | None = None

    def delay_seconds(self, retry_number: int) -> float:
        """The un-jittered wait before retry ``retry_number`` (1, 2, ...)."""
        delay = self.retry_sleep_seconds
        if self.backoff == "exponential":
            delay = delay * self.backoff_rate ** (retry_number - 1)
        if self.max_delay_seconds is not None:
            delay = min(delay, self.max_delay_seconds)
        return max(0.0, delay)


@dataclass(frozen=True, slots=True)
class Catcher:
    """One ``on_error`` entry: route failures matching ``codes``/``exceptions`` to ``target``."""

    target: str
    codes: tuple[str, ...] | None = None
    exceptions: tuple[str, ...] | None = None


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


@dataclass(frozen=True, slots=True)
class CompiledWorkflow:
    """The validated, immutable form of a workflow definition."""

    name: str
    entry: str
    error_node: str | None
    policy: EnginePolicy
    nodes: Mapping[str, CompiledNode]
    hash: str


def workflow_hash(workflow_def: Mapping[str, Any]) -> str:
    """SHA-256 of ``json.dumps(def, sort_keys=True)``: byte-for-byte 0.1.0's hash lock."""
    return hashlib.sha256(json.dumps(workflow_def, sort_keys=True).encode("utf-8")).hexdigest()


def _fail(message: str, path: str = "") -> WorkflowDefinitionError:
    return WorkflowDefinitionError(message, path=path)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_policy(data: Mapping[str, Any] | None) -> EnginePolicy:
    """Read ``engine_policy``; unknown keys are ignored, bad values raise with the key named."""
    if data is None:
        return EnginePolicy()
    if not isinstance(data, Mapping):
        raise _fail("engine_policy must be a dict", "/engine_policy")
    max_steps = data.get("max_steps")
    if max_steps is not None and (
        not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps <= 0
    ):
        raise _fail("engine_policy.max_steps must be > 0", "/engine_policy/max_steps")
    timeout = data.get("workflow_timeout_seconds")
    if timeout is not None and (not _is_number(timeout) or timeout <= 0):
        raise _fail(
            "engine_policy.workflow_timeout_seconds must be > 0",
            "/engine_policy/workflow_timeout_seconds",
        )
    isolation = data.get("state_isolation", "readonly")
    if isolation not in STATE_ISOLATION_MODES:
        raise _fail(
            f"engine_policy.state_isolation must be 'readonly' or 'copy', got {isolation!r}",
            "/engine_policy/state_isolation",
        )
    stranded = data.get("stranded_joins", "warn")
    if stranded not in ("warn", "fail"):
        raise _fail(
            f"engine_policy.stranded_joins must be 'warn' or 'fail', got {stranded!r}",
            "/engine_policy/stranded_joins",
        )
    return EnginePolicy(
        stranded_joins=str(stranded),
        strict_outputs=bool(data.get("strict_outputs", True)),
        max_steps=max_steps,
        workflow_timeout_seconds=None if timeout is None else float(timeout),
        persist_checkpoints=bool(data.get("persist_checkpoints", True)),
        state_isolation=str(isolation),
    )


def _name_list(node: str, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _fail(
            f"node '{node}' {key} must be a list of non-empty strings",
            f"/nodes/{node}/{key.replace('.', '/')}",
        )
    return tuple(value)


def _parse_retry(node: str, raw: Any) -> RetryPolicy:
    if raw is None:
        return RetryPolicy()
    path = f"/nodes/{node}/run_policy"
    if not isinstance(raw, Mapping):
        raise _fail(f"node '{node}' run_policy must be a dict", path)
    retries = raw.get("max_retries", 0)
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise _fail(f"node '{node}' run_policy.max_retries must be an int >= 0", path)
    sleep = raw.get("retry_sleep_seconds", 0.1)
    if not _is_number(sleep) or sleep < 0:
        raise _fail(f"node '{node}' run_policy.retry_sleep_seconds must be a number >= 0", path)
    backoff = raw.get("backoff", "fixed")
    if backoff not in BACKOFF_MODES:
        raise _fail(
            f"node '{node}' run_policy.backoff must be 'fixed' or 'exponential', got {backoff!r}",
            path,
        )
    rate = raw.get("backoff_rate", 2.0)
    if not _is_number(rate) or rate < 1:
        raise _fail(f"node '{node}' run_policy.backoff_rate must be a number >= 1", path)
    max_delay = raw.get("max_delay_seconds")
    if max_delay is not None and (not _is_number(max_delay) or max_delay < 0):
        raise _fail(f"node '{node}' run_policy.max_delay_seconds must be a number >= 0", path)
    jitter = raw.get("jitter", "none")
    if jitter not in JITTER_MODES:
        raise _fail(
            f"node '{node}' run_policy.jitter must be 'none' or 'full', got {jitter!r}", path
        )
    retry_on = raw.get("retry_on")
    timeout = raw.get("timeout_seconds")
    if timeout is not None and (not _is_number(timeout) or timeout <= 0):
        raise _fail(f"node '{node}' run_policy.timeout_seconds must be a number > 0", path)
    return RetryPolicy(
        max_retries=retries,
        retry_sleep_seconds=float(sleep),
        backoff=str(backoff),
        backoff_rate=float(rate),
        max_delay_seconds=None if max_delay is None else float(max_delay),
        jitter=str(jitter),
        retry_on=None if retry_on is None else _name_list(node, "run_policy.retry_on", retry_on),
        timeout_seconds=None if timeout is None else float(timeout),
    )


def _parse_on_error(node: str, raw: Any, nodes: Mapping[str, Any]) -> tuple[Catcher, ...]:
    if raw is None:
        return ()
    path = f"/nodes/{node}/on_error"
    if not isinstance(raw, list):
        raise _fail(f"node '{node}' on_error must be a list of catchers", path)
    catchers = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, Mapping):
            raise _fail(f"node '{node}' on_error[{i}] must be a dict", f"{path}/{i}")
        target = entry.get("target_node")
        if not isinstance(target, str) or not target:
            raise _fail(
                f"node '{node}' on_error[{i}] target_node must be a non-empty string", f"{path}/{i}"
            )
        if target not in nodes:
            raise _fail(
                f"node '{node}' on_error[{i}] references unknown target '{target}'", f"{path}/{i}"
            )
        codes = entry.get("codes")
        excs = entry.get("exceptions")
        catchers.append(
            Catcher(
                target=target,
                codes=None if codes is None else _name_list(node, f"on_error[{i}].codes", codes),
                exceptions=None
                if excs is None
                else _name_list(node, f"on_error[{i}].exceptions", excs),
            )
        )
    return tuple(catchers)


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
                return [*path[path.index(nxt) :], nxt]
            if color[nxt] == white:
                color[nxt] = grey
                path.append(nxt)
                stack.append(iter(_forward_targets(nodes[nxt])))
    return None


def _forward_targets(node: CompiledNode) -> list[str]:
    return [e.target for edges in node.outputs.values() for e in edges if not e.loopback]


def _compile_node(name: str, raw: Any, nodes: Mapping[str, Any]) -> CompiledNode:
    path = f"/nodes/{name}"
    if not isinstance(raw, Mapping):
        raise _fail(f"node '{name}' must be a dict", path)
    if "handler" not in raw:
        raise _fail(f"node '{name}' missing 'handler'", path)
    if "outputs" not in raw:
        raise _fail(f"node '{name}' missing 'outputs'", path)
    handler = raw["handler"]
    if handler is not None and not isinstance(handler, str):
        raise _fail(f"node '{name}' handler must be a string (the handler's name)", path)
    outputs_raw = raw["outputs"]
    if not isinstance(outputs_raw, Mapping):
        raise _fail(f"node '{name}' outputs must be a dict", f"{path}/outputs")
    outputs: dict[str, tuple[Edge, ...]] = {}
    for label, edges in outputs_raw.items():
        opath = f"{path}/outputs/{label}"
        if not isinstance(edges, list):
            raise _fail(f"node '{name}' output '{label}' must be a list", opath)
        compiled = []
        for i, edge in enumerate(edges):
            if not isinstance(edge, Mapping):
                raise _fail(f"node '{name}' output '{label}' edge must be a dict", f"{opath}/{i}")
            if "target_node" not in edge:
                raise _fail(
                    f"node '{name}' output '{label}' edge missing 'target_node'", f"{opath}/{i}"
                )
            target = edge["target_node"]
            if not isinstance(target, str) or not target:
                raise _fail(
                    f"node '{name}' output '{label}' target_node must be a non-empty string",
                    f"{opath}/{i}/target_node",
                )
            if target not in nodes:
                raise _fail(
                    f"node '{name}' output '{label}' references unknown target '{target}'",
                    f"{opath}/{i}/target_node",
                )
            compiled.append(Edge(target, bool(edge.get("is_loopback", False))))
        outputs[str(label)] = tuple(compiled)
    contract = raw.get("state_contract")
    if contract is not None and (
        not isinstance(contract, Mapping)
        or not all(isinstance(contract.get(k, []), list) for k in ("reads_from", "writes_to"))
    ):
        raise _fail(
            f"node '{name}' state_contract.reads_from and writes_to must be lists",
            f"{path}/state_contract",
        )
    join = None
    join_raw = raw.get("join")
    if join_raw is not None:
        if not isinstance(join_raw, Mapping):
            raise _fail(f"node '{name}' join must be a dict", f"{path}/join")
        mode = join_raw.get("mode", "or")
        if mode not in ("or", "and"):
            raise _fail(f"node '{name}' join.mode must be 'or' or 'and', got '{mode}'", path)
        wait_for = join_raw.get("wait_for", [])
        if mode == "and" and (not isinstance(wait_for, list) or not wait_for):
            raise _fail(f"node '{name}' join.mode='and' requires a non-empty wait_for list", path)
        if not isinstance(wait_for, list):
            raise _fail(f"node '{name}' join.wait_for must be a list", f"{path}/join/wait_for")
        for w in wait_for:
            if not isinstance(w, str) or w not in nodes:
                raise _fail(f"node '{name}' wait_for references unknown node '{w}'", path)
        join = JoinSpec(str(mode), tuple(wait_for))
    config = raw.get("config") or {}
    if not isinstance(config, Mapping):
        raise _fail(f"node '{name}' config must be a dict", f"{path}/config")
    return CompiledNode(
        name=name,
        handler=handler,
        outputs=outputs,
        config=freeze(dict(config)),
        retry=_parse_retry(name, raw.get("run_policy")),
        join=join,
        on_error=_parse_on_error(name, raw.get("on_error"), nodes),
    )


def compile_workflow(workflow_def: Any) -> CompiledWorkflow:
    """Validate ``workflow_def`` and return its compiled form; never mutates the dict."""
    if not isinstance(workflow_def, Mapping):
        raise _fail(
            f"workflow definition must be a dict, got {type(workflow_def).__name__}; "
            "load JSON files with WorkflowEngine.from_files"
        )
    try:
        digest = workflow_hash(workflow_def)
    except (TypeError, ValueError) as exc:
        raise _fail(f"workflow definition must be JSON-serializable: {exc}") from exc
    missing = [k for k in REQUIRED_KEYS if k not in workflow_def]
    if missing:
        raise _fail(f"missing required keys: {', '.join(missing)}")
    raw_nodes = workflow_def["nodes"]
    if not isinstance(raw_nodes, Mapping) or not raw_nodes:
        raise _fail("'nodes' must be a non-empty dict", "/nodes")
    entry = workflow_def["default_entry_node"]
    if entry not in raw_nodes:
        raise _fail(f"entry node '{entry}' not in nodes", "/default_entry_node")
    error_node = workflow_def.get("default_error_node")
    if error_node is not None and error_node not in raw_nodes:
        raise _fail(f"error node '{error_node}' not in nodes", "/default_error_node")
    nodes = {str(n): _compile_node(str(n), raw, raw_nodes) for n, raw in raw_nodes.items()}
    for name, node in nodes.items():
        if node.join is None:
            continue
        for w in node.join.wait_for:
            if not any(e.target == name for edges in nodes[w].outputs.values() for e in edges):
                raise _fail(
                    f"node '{name}' wait_for includes '{w}' but no declared edge reaches '{name}'",
                    f"/nodes/{name}/join/wait_for",
                )
    cycle = _find_forward_cycle(nodes)
    if cycle is not None:
        raise _fail(
            f"cycle detected in forward edges: {' -> '.join(cycle)}. Mark the closing edge with "
            "'is_loopback': true if the loop is intentional."
        )
    return CompiledWorkflow(
        name=str(workflow_def["workflow_name"]),
        entry=str(entry),
        error_node=None if error_node is None else str(error_node),
        policy=parse_policy(workflow_def.get("engine_policy")),
        nodes=nodes,
        hash=digest,
    )


def validate_workflow_definition(workflow_def: Any) -> None:
    """Raise ``ValueError`` (``WorkflowDefinitionError``) if ``workflow_def`` is not valid."""
    compile_workflow(workflow_def)
