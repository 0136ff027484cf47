"""Overrides on redrive: a failed node marked done with a given result, never called.

``check_override`` validates ``redrive(override={node: {...}})`` against the
failed run before anything changes (``OverrideError`` otherwise) and returns
what the run keeps in ``snapshot.extra["override"]`` until the loop settles
the node with it (``override_result``), recorded as a ``StepRecord`` of kind
``"override"`` with the actor and reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._definition import CompiledWorkflow
from .._errors import OverrideError
from .._frozen import NotJSONError, freeze, thaw
from .._models import HandlerResult, RunSnapshot

__all__ = ["OVERRIDE", "check_override", "override_result"]

OVERRIDE = "override"
"""``snapshot.extra`` key of an override the loop has not applied yet."""
_KEYS = ("outputs", "workflow_updates", "node_updates")


def check_override(
    graph: CompiledWorkflow,
    snap: RunSnapshot,
    override: Any,
    actor: str | None,
    reason: str | None,
) -> dict[str, Any]:
    """The override to store for ``snap``'s redrive; ``OverrideError`` if it does not fit.

    ``override`` is ``{node: {"outputs": [...], "workflow_updates": {...},
    "node_updates": {...}}}`` for the node the run failed at; outputs must be
    declared outputs of that node and the updates JSON dicts, as a handler's.
    """
    run_id = snap.run_id
    record = snap.extra.get("redrive")
    failed = record.get("node") if isinstance(record, Mapping) else None

    def refuse(message: str, node: str | None = failed) -> OverrideError:
        return OverrideError(f"run '{run_id}': {message}", run_id=run_id, node=node)

    if not isinstance(override, Mapping) or len(override) != 1:
        raise refuse(
            "override must be one {node: result} pair, e.g. "
            f'{{"{failed or "node"}": {{"outputs": ["ok"]}}}}'
        )
    node, given = next(iter(override.items()))
    if failed is None or not isinstance(record, Mapping) or snap.status != "failed":
        raise refuse(
            f"only a failed run's failed node can be overridden (the run is {snap.status}); "
            "redrive without override",
            None,
        )
    queued = record.get("ready_now") or []
    if node != failed or not queued or queued[0] != failed:
        raise refuse(
            f"the override names '{node}', but the node to redrive is '{failed}'"
            if node != failed
            else f"node '{failed}' is not queued to run again (the run failed with "
            f"{snap.last_error.code if snap.last_error else 'an error'}); redrive without override",
            str(node),
        )
    if not isinstance(given, Mapping) or any(key not in _KEYS for key in given):
        raise refuse(
            f"the override of '{node}' must be a dict with some of {', '.join(_KEYS)}", node
        )
    outputs = given.get("outputs", [])
    declared = graph.nodes[node].outputs
    if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs):
        raise refuse(f"the override's outputs must be a list of output names of '{node}'", node)
    unknown = [o for o in outputs if o not in declared]
    if unknown:
        raise refuse(
            f"node '{node}' declares no output {', '.join(map(repr, unknown))} "
            f"(declared: {', '.join(declared) or 'none'})",
            node,
        )
    spec: dict[str, Any] = {"node": node, "outputs": list(outputs)}
    for key in ("workflow_updates", "node_updates"):
        value = given.get(key)
        if value is None:
            continue
        try:
            frozen = freeze(value, key)
        except (NotJSONError, TypeError) as exc:
            raise refuse(f"the override's {key} cannot be stored: {exc}", node) from exc
        if not isinstance(frozen, dict):
            raise refuse(f"the override's {key} must be a dict", node)
        spec[key] = thaw(frozen)
    for key, text in (("actor", actor), ("reason", reason)):
        if text is not None and not isinstance(text, str):
            raise refuse(f"{key} must be a string or None, got {type(text).__name__}", node)
        if text is not None:
            spec[key] = text
    return spec


def override_result(spec: Mapping[str, Any]) -> HandlerResult:
    """The handler result an override stands for."""
    return HandlerResult(
        outputs=list(spec.get("outputs") or []),
        workflow_updates=spec.get("workflow_updates"),
        node_updates=spec.get("node_updates"),
    )
