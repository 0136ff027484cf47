"""Converting a definition between the legacy dict and ``zf/1``, saying what is lost.

``convert(defn, to=...)`` validates ``defn`` in whichever format it is, then
spells the same graph in the other format. What the target cannot express
comes back as ``ConversionLoss`` entries, each with a JSON pointer into the
source, so nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from ._errors import WorkflowDefinitionError
from ._grammar import FORMATS, ZF1, _ms, carry_common, check, is_zf1, normalise, pointer

__all__ = ["Conversion", "ConversionLoss", "convert"]


class ConversionLoss(NamedTuple):
    """Something of the source definition the target format cannot hold (``path`` is a pointer)."""

    path: str
    message: str


class Conversion(NamedTuple):
    """The result of ``convert``: the new definition and what could not be carried over."""

    definition: dict[str, Any]
    losses: tuple[ConversionLoss, ...]


# ---------------------------------------------------------------------- legacy -> zf/1

_LEGACY_TOP = (
    "workflow_name",
    "default_entry_node",
    "default_error_node",
    "engine_policy",
    "state_contract",
    "nodes",
    "description",
    "meta",
)
_LEGACY_POLICY = (
    "strict_outputs",
    "max_steps",
    "workflow_timeout_seconds",
    "persist_checkpoints",
    "state_isolation",
    "stranded_joins",
    "max_concurrency",
    "max_subflow_depth",
    "hitl",
    "require_resume_token",
    "contracts",
)
_LEGACY_NODE = (
    "kind",
    "handler",
    "outputs",
    "config",
    "run_policy",
    "join",
    "state_contract",
    "on_error",
    "compensate",
    "detached",
    "wait",
    "end",
    "subflow",
    "sleep",
    "map",
    "label",
    "description",
    "meta",
)


# Keys of the legacy objects inside a node that zf/1 carries over; any other is reported.
_LEGACY_NESTED: dict[str, tuple[str, ...]] = {
    "edge": ("target_node", "is_loopback"),
    "run_policy": (
        "max_retries",
        "retry_sleep_seconds",
        "backoff",
        "backoff_rate",
        "max_delay_seconds",
        "jitter",
        "retry_on",
        "timeout_seconds",
    ),
    "on_error": ("target_node", "codes", "exceptions", "scope"),
    "join": ("mode", "wait_for"),
    "wait": (
        "prompt",
        "resume_as",
        "resume_schema",
        "timeout_seconds",
        "on_timeout",
        "timeout_payload",
    ),
    "sleep": ("for_seconds", "until"),
}


def _nested_losses(nid: str, raw: Mapping[str, Any], losses: list[ConversionLoss]) -> None:
    """Report keys inside a node's edges, run_policy, catchers, join and wait that zf/1 drops."""

    def report(value: Any, what: str, *at: str | int) -> None:
        if not isinstance(value, Mapping):
            return
        for key in value:
            if key not in _LEGACY_NESTED[what]:
                losses.append(
                    ConversionLoss(
                        pointer("nodes", nid, *at, key),
                        f"node '{nid}' {what} key '{key}' has no zf/1 equivalent; dropped",
                    )
                )

    outputs = raw.get("outputs")
    if isinstance(outputs, Mapping):
        for label, edges in outputs.items():
            for i, edge in enumerate(edges if isinstance(edges, list) else ()):
                report(edge, "edge", "outputs", str(label), i)
    for what in ("run_policy", "join", "wait", "sleep"):
        report(raw.get(what), what, what)
    catchers = raw.get("on_error")
    for i, catcher in enumerate(catchers if isinstance(catchers, list) else ()):
        report(catcher, "on_error", "on_error", i)


def _on_from_outputs(outputs: Mapping[str, Any]) -> dict[str, Any]:
    on: dict[str, Any] = {}
    for label, edges in outputs.items():
        items: list[Any] = []
        for edge in edges:
            if edge.get("is_loopback"):
                items.append({"to": edge["target_node"], "loop": True})
            else:
                items.append(edge["target_node"])
        on[str(label)] = items[0] if len(items) == 1 else items
    return on


def _retry_from_policy(policy: Mapping[str, Any]) -> tuple[dict[str, Any] | None, Any]:
    retry: dict[str, Any] | None = None
    keys = set(policy) - {"timeout_seconds"}
    if keys & {
        "max_retries",
        "retry_sleep_seconds",
        "backoff",
        "backoff_rate",
        "max_delay_seconds",
        "jitter",
        "retry_on",
    }:
        retry = {"max_attempts": int(policy.get("max_retries", 0)) + 1}
        backoff: dict[str, Any] = {}
        if "backoff" in policy:
            backoff["mode"] = policy["backoff"]
        if "retry_sleep_seconds" in policy:
            backoff["delay_ms"] = _ms(policy["retry_sleep_seconds"])
        if "backoff_rate" in policy:
            backoff["rate"] = policy["backoff_rate"]
        if policy.get("max_delay_seconds") is not None:
            backoff["max_delay_ms"] = _ms(policy["max_delay_seconds"])
        if "jitter" in policy:
            backoff["jitter"] = policy["jitter"]
        if backoff:
            retry["backoff"] = backoff
        if policy.get("retry_on") is not None:
            retry["retry_on"] = list(policy["retry_on"])
    timeout = policy.get("timeout_seconds")
    return retry, None if timeout is None else _ms(timeout)


def _to_zf1(legacy: Mapping[str, Any]) -> Conversion:
    """Map a validated legacy dict to zf/1, recording what zf/1 cannot hold."""
    losses: list[ConversionLoss] = []
    for key in legacy:
        if key not in _LEGACY_TOP:
            losses.append(
                ConversionLoss(
                    pointer(key),
                    f"top-level key '{key}' is ignored by "
                    "the engine and has no zf/1 equivalent; dropped",
                )
            )
    out: dict[str, Any] = {
        "version": ZF1,
        "name": legacy["workflow_name"],
        "entry": legacy["default_entry_node"],
    }
    if legacy.get("default_error_node") is not None:
        out["error"] = legacy["default_error_node"]
    for key in ("description", "meta"):
        if key in legacy:
            out[key] = legacy[key]
    contract = legacy.get("state_contract")
    if isinstance(contract, Mapping):
        carried = {k: v for k, v in contract.items() if k == "input_schema" and v is not None}
        for key in contract:
            if key not in carried and contract[key] is not None:
                losses.append(
                    ConversionLoss(
                        pointer("state_contract", key),
                        f"the workflow's state_contract key '{key}' has no zf/1 "
                        "equivalent; dropped",
                    )
                )
        if carried:
            out["state_contract"] = carried
    policy = legacy.get("engine_policy") or {}
    defaults: dict[str, Any] = {}
    for key, value in policy.items():
        if key == "workflow_timeout_seconds":
            defaults["workflow_timeout_ms"] = None if value is None else _ms(value)
        elif key in _LEGACY_POLICY:
            defaults[key] = value
        else:
            losses.append(
                ConversionLoss(
                    pointer("engine_policy", key),
                    f"engine_policy.{key} is not a known policy key; dropped",
                )
            )
    if defaults:
        out["defaults"] = defaults
    nodes: dict[str, Any] = {}
    for nid, raw in legacy["nodes"].items():
        nodes[str(nid)] = _node_to_zf1(str(nid), raw, losses)
    out["nodes"] = nodes
    return Conversion(out, tuple(losses))


def _node_to_zf1(nid: str, raw: Mapping[str, Any], losses: list[ConversionLoss]) -> dict[str, Any]:
    at = ("nodes", nid)
    kind = raw.get("kind", "subflow" if "subflow" in raw else "task")
    node: dict[str, Any] = {}
    if kind != "task":
        node["kind"] = kind
    for key in raw:
        if key not in _LEGACY_NODE:
            losses.append(
                ConversionLoss(
                    pointer(*at, key), f"node '{nid}' key '{key}' is ignored by the engine; dropped"
                )
            )
    _nested_losses(nid, raw, losses)
    outputs = raw.get("outputs") or {}
    if kind == "task":
        if isinstance(raw.get("handler"), str):
            node["handler"] = raw["handler"]
        else:
            losses.append(
                ConversionLoss(
                    pointer(*at, "handler"),
                    f"node '{nid}' has no handler "
                    "(it fails at run time); zf/1 requires one: set "
                    "'handler' before using the result",
                )
            )
        if raw.get("config"):
            node["with"] = dict(raw["config"])
        if "map" in raw:
            node["map"] = dict(raw["map"])
    elif kind == "wait":
        spec = raw.get("wait") or {}
        for key in ("prompt", "resume_as", "resume_schema", "on_timeout", "timeout_payload"):
            if spec.get(key) is not None:
                node[key] = spec[key]
        if spec.get("timeout_seconds") is not None:
            node["timeout_ms"] = _ms(spec["timeout_seconds"])
    elif kind == "sleep":
        spec = raw.get("sleep") or {}
        if spec.get("for_seconds") is not None:
            node["for_ms"] = _ms(spec["for_seconds"])
        else:
            node["until"] = spec.get("until")
    elif kind == "subflow":
        spec = raw["subflow"]
        node["workflow"] = spec["workflow"]
        if spec.get("input"):
            node["input"] = dict(spec["input"])
    elif kind == "end":
        node["result"] = (raw.get("end") or {}).get("result")
        if outputs:
            losses.append(
                ConversionLoss(
                    pointer(*at, "outputs"),
                    f"node '{nid}' is an end node "
                    "but declares outputs; zf/1 end nodes route nowhere, "
                    "so they were dropped",
                )
            )
    if kind != "task":
        for key in ("handler", "config", "map"):
            if raw.get(key):
                losses.append(
                    ConversionLoss(
                        pointer(*at, key),
                        f"node '{nid}' (kind {kind}) does not use '{key}'; dropped",
                    )
                )
    if outputs and kind != "end":
        node["on"] = _on_from_outputs(outputs)
    elif kind in ("task", "subflow"):
        # Legacy "outputs": {} accepts no outcome; a zf/1 node without `on` would accept
        # any (terminal), so the empty declaration is kept.
        node["on"] = {}
    if kind in ("task", "subflow"):
        retry, timeout_ms = _retry_from_policy(raw.get("run_policy") or {})
        if retry is not None:
            node["retry"] = retry
        if timeout_ms is not None:
            node["timeout_ms"] = timeout_ms
        catchers = raw.get("on_error")
        if catchers:
            node["on_error"] = [
                {
                    "to": c["target_node"],
                    **{k: list(c[k]) for k in ("codes", "exceptions") if c.get(k) is not None},
                    **({"scope": c["scope"]} if c.get("scope") not in (None, "run") else {}),
                }
                for c in catchers
            ]
        for key in ("compensate", "detached"):
            if raw.get(key):
                node[key] = raw[key]
    else:
        for key in ("run_policy", "on_error"):
            if raw.get(key):
                losses.append(
                    ConversionLoss(
                        pointer(*at, key),
                        f"node '{nid}' (kind {kind}) is never retried or caught; '{key}' dropped",
                    )
                )
    carry_common(raw, node)
    return node


def _terminal_losses(zf1: Mapping[str, Any]) -> tuple[ConversionLoss, ...]:
    """zf/1 nodes without ``on`` accept any outcome; a legacy ``"outputs": {}`` accepts none."""
    from ._definition import _terminal_nodes  # imported here: _definition imports us

    return tuple(
        ConversionLoss(
            pointer("nodes", name),
            f"node '{name}' has no 'on' (terminal: any outcome ends there); legacy "
            "'outputs': {} accepts none, so an outcome its handler returns fails with "
            "UNDECLARED_OUTPUT unless strict_outputs is false",
        )
        for name in sorted(_terminal_nodes(zf1))
    )


def convert(defn: Any, to: str = ZF1) -> Conversion:
    """Convert ``defn`` (either format) to ``to`` (``"zf/1"`` or ``"legacy"``).

    Returns ``Conversion(definition, losses)``; ``losses`` lists, with a
    JSON pointer into the source, everything the target cannot express
    (for example keys the legacy engine ignores). Converting to the format
    ``defn`` already has returns a validated copy. Raises
    ``WorkflowDefinitionError`` when ``defn`` is not valid, and
    ``ValueError`` for an unknown target format.
    """
    if to not in FORMATS:
        raise ValueError(f"unknown format {to!r}; use one of {', '.join(FORMATS)}")
    if not isinstance(defn, Mapping):
        raise WorkflowDefinitionError(
            f"workflow definition must be a dict, got {type(defn).__name__}"
        )
    from ._definition import compile_workflow  # imported here: _definition imports us

    if is_zf1(defn):
        compile_workflow(defn)
        if to == ZF1:
            return Conversion(_plain(defn), ())
        losses: tuple[ConversionLoss, ...] = ()
        if "$schema" in defn:
            losses = (ConversionLoss("/$schema", "'$schema' has no legacy equivalent; dropped"),)
        return Conversion(normalise(defn), losses + _terminal_losses(defn))
    if to == "legacy":
        compile_workflow(defn)
        return Conversion(_plain(defn), ())
    compile_workflow(defn)
    result = _to_zf1(defn)
    # Values legacy tolerates but zf/1 does not (a numeric name, an empty subflow name):
    # the result is still returned, and each problem is reported as a loss.
    reported = {loss.path for loss in result.losses}
    invalid = tuple(
        ConversionLoss(problem.path, f"the zf/1 result is not valid here: {problem}")
        for problem in check(result.definition)
        if problem.path not in reported
    )
    return Conversion(result.definition, result.losses + invalid)


def _plain(value: Any) -> Any:
    """A deep, plain-``dict``/``list`` copy of JSON data."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
