"""The versioned ``zf/1`` grammar: validate it, normalise it, convert to and from legacy.

A ``zf/1`` definition is a readable, strictly checked spelling of the same
graph the legacy dict describes. ``normalise`` validates it (every unknown
key, bad value and dangling id is reported with the node, the key, a JSON
pointer and a fix) and returns the *extended legacy dict* that
``compile_workflow`` compiles, so both formats share one internal model.
``_convert.convert`` goes either way and lists what the target cannot express.

The mapping, key by key, is documented in ``docs/GRAMMAR.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ._constants import MAX_TIMEOUT_SECONDS, MAX_WAIT_SECONDS
from ._errors import WorkflowDefinitionError

__all__ = [
    "ZF1",
    "FORMATS",
    "NODE_KINDS",
    "is_zf1",
    "detect_format",
    "pointer",
    "check",
    "normalise",
]

ZF1 = "zf/1"
FORMATS = ("zf/1", "legacy")
NODE_KINDS = ("task", "wait", "subflow", "end", "sleep")

TOP_KEYS = (
    "$schema",
    "version",
    "name",
    "entry",
    "error",
    "defaults",
    "state_contract",
    "nodes",
    "description",
    "meta",
)
WORKFLOW_CONTRACT_KEYS = ("input_schema",)
"""The workflow's own ``state_contract`` (a node's has ``reads_from``, ``writes_to``...)."""
# defaults: engine-wide policy (legacy engine_policy) plus node defaults.
POLICY_DEFAULT_KEYS = (
    "strict_outputs",
    "max_steps",
    "workflow_timeout_ms",
    "persist_checkpoints",
    "state_isolation",
    "stranded_joins",
    "max_concurrency",
    "max_subflow_depth",
    "hitl",
    "require_resume_token",
    "contracts",
)
NODE_DEFAULT_KEYS = ("retry", "timeout_ms")
SAGA_KEYS = ("compensate", "detached")
COMMON_NODE_KEYS = ("kind", "join", "label", "description", "meta", "state_contract")
KIND_KEYS: dict[str, tuple[str, ...]] = {
    "task": ("handler", "with", "on", "map", "retry", "timeout_ms", "on_error", *SAGA_KEYS),
    "wait": (
        "prompt",
        "resume_as",
        "resume_schema",
        "timeout_ms",
        "on_timeout",
        "timeout_payload",
        "on",
    ),
    "sleep": ("for_ms", "until", "on"),
    "subflow": ("workflow", "input", "on", "retry", "timeout_ms", "on_error", *SAGA_KEYS),
    "end": ("result",),
}
RETRY_KEYS = ("max_attempts", "backoff", "retry_on")
BACKOFF_KEYS = ("mode", "delay_ms", "rate", "max_delay_ms", "jitter")
EDGE_KEYS = ("to", "loop")
CATCHER_KEYS = ("to", "codes", "exceptions", "scope")
MAP_KEYS = ("over", "max_concurrency", "tolerated_failures")
JOIN_KEYS = ("mode", "wait_for")
STATE_SECTIONS = ("input", "workflow", "node")
CARRIED_KEYS = ("label", "description", "meta")


# ---------------------------------------------------------------------- helpers


def pointer(*parts: str | int) -> str:
    """A JSON pointer (RFC 6901) to ``parts``: ``pointer("nodes", "a/b")`` is ``/nodes/a~1b``."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def is_zf1(defn: Any) -> bool:
    """True when ``defn`` declares a ``version``: it is then read as the versioned grammar."""
    return isinstance(defn, Mapping) and "version" in defn


def detect_format(defn: Any) -> str:
    """``"zf/1"`` for a versioned definition, else ``"legacy"``."""
    return ZF1 if is_zf1(defn) else "legacy"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """A finite int or float (not a bool); an int too large for a float is not one."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


_MAX_WAIT_MS = MAX_WAIT_SECONDS * 1000
_MAX_TIMEOUT_MS = MAX_TIMEOUT_SECONDS * 1000


def _seconds(ms: Any) -> float:
    return float(ms) / 1000.0


def _ms(seconds: Any) -> int | float:
    value = round(float(seconds) * 1000.0, 6)
    return int(value) if value.is_integer() else value


def _type_name(value: Any) -> str:
    """The JSON name of ``value``'s type, as a definition's author knows it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _hint(word: str, choices: tuple[str, ...] | list[str]) -> str:
    import difflib  # only a mistake asks for a suggestion

    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"did you mean '{close[0]}'?" if close else f"allowed: {', '.join(choices)}"


# ---------------------------------------------------------------------- validation


class _Checker:
    """Walks a zf/1 definition once and collects every problem it finds."""

    def __init__(self, defn: Mapping[str, Any]) -> None:
        self.defn = defn
        self.problems: list[WorkflowDefinitionError] = []
        nodes = defn.get("nodes")
        self.ids: tuple[str, ...] = tuple(nodes) if isinstance(nodes, Mapping) else ()
        self.id_set: frozenset[str] = frozenset(self.ids)  # O(1) membership for node_id

    def add(self, message: str, *parts: str | int) -> None:
        self.problems.append(WorkflowDefinitionError(message, path=pointer(*parts)))

    def keys(
        self, where: str, value: Mapping[str, Any], allowed: tuple[str, ...], *parts: str | int
    ) -> None:
        for key in value:
            if key not in allowed:
                self.add(
                    f"{where} has unknown key '{key}'; {_hint(str(key), allowed)}", *parts, str(key)
                )

    def node_id(self, where: str, value: Any, *parts: str | int) -> bool:
        if not isinstance(value, str) or not value:
            self.add(f"{where} must be a node id (a non-empty string), got {value!r}", *parts)
            return False
        if self.ids and value not in self.id_set:
            self.add(f"{where} references unknown node '{value}'; {_hint(value, self.ids)}", *parts)
            return False
        return True

    def names(self, where: str, value: Any, *parts: str | int) -> None:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.add(f"{where} must be a list of non-empty strings", *parts)

    def positive_int(self, where: str, value: Any, minimum: int, *parts: str | int) -> None:
        if not _is_int(value) or value < minimum:
            self.add(f"{where} must be an integer >= {minimum}, got {value!r}", *parts)

    def number(
        self,
        where: str,
        value: Any,
        *parts: str | int,
        minimum: float = 0,
        strict: bool = False,
        maximum: float | None = None,
    ) -> None:
        bad = (
            not _is_number(value)
            or (value <= minimum if strict else value < minimum)
            or (maximum is not None and value > maximum)
        )
        if bad:
            op = ">" if strict else ">="
            most = "" if maximum is None else f" and at most {maximum:g}"
            self.add(f"{where} must be a number {op} {minimum:g}{most}, got {value!r}", *parts)

    def state_path(self, where: str, value: Any, *parts: str | int) -> None:
        ok = isinstance(value, str) and value != ""
        if ok:
            sections = value.split(".")
            ok = sections[0] in STATE_SECTIONS and len(sections) >= 2 and all(sections)
        if not ok:
            self.add(
                f"{where} must be a state path such as 'input.items' or 'node.fetch.rows' "
                f"(starting with input., workflow. or node.), got {value!r}",
                *parts,
            )

    # -------------------------------------------------------------- top level

    def run(self) -> list[WorkflowDefinitionError]:
        d = self.defn
        version = d.get("version")
        if version != ZF1:
            self.add(
                f"unsupported version {version!r}; this zeroflow reads 'zf/1' "
                "(or a legacy dict without 'version')",
                "version",
            )
            return self.problems
        self.keys("the workflow", d, TOP_KEYS)
        for key in ("name", "entry", "nodes"):
            if key not in d:
                self.add(
                    f"missing required key '{key}'; a zf/1 workflow needs name, entry and nodes"
                )
        if "name" in d and (not isinstance(d["name"], str) or not d["name"]):
            self.add("'name' must be a non-empty string", "name")
        if "description" in d and not isinstance(d["description"], str):
            self.add("'description' must be a string", "description")
        if "meta" in d and not isinstance(d["meta"], Mapping):
            self.add("'meta' must be an object", "meta")
        nodes = d.get("nodes")
        if "nodes" in d and (not isinstance(nodes, Mapping) or not nodes):
            self.add("'nodes' must be a non-empty object of node id -> node", "nodes")
        if "entry" in d:
            self.node_id("'entry'", d["entry"], "entry")
        if d.get("error") is not None:
            self.node_id("'error'", d["error"], "error")
        if "defaults" in d:
            self.defaults(d["defaults"])
        if "state_contract" in d:
            self.workflow_contract(d["state_contract"])
        if isinstance(nodes, Mapping):
            for nid, node in nodes.items():
                self.node(str(nid), node)
        return self.problems

    def workflow_contract(self, value: Any) -> None:
        if not isinstance(value, Mapping):
            self.add(
                "the workflow's state_contract must be an object such as "
                '{"input_schema": {"type": "object", "required": ["order"]}}',
                "state_contract",
            )
            return
        self.keys("the workflow's state_contract", value, WORKFLOW_CONTRACT_KEYS, "state_contract")
        schema_ = value.get("input_schema")
        if "input_schema" in value and not isinstance(schema_, Mapping | bool):
            self.add(
                "state_contract.input_schema must be a JSON Schema (an object, or true / "
                f"false), got {_type_name(schema_)}",
                "state_contract",
                "input_schema",
            )

    def defaults(self, value: Any) -> None:
        if not isinstance(value, Mapping):
            self.add("'defaults' must be an object", "defaults")
            return
        self.keys("'defaults'", value, POLICY_DEFAULT_KEYS + NODE_DEFAULT_KEYS, "defaults")
        for key in ("strict_outputs", "persist_checkpoints", "require_resume_token"):
            if key in value and not isinstance(value[key], bool):
                self.add(f"defaults.{key} must be true or false", "defaults", key)
        if value.get("max_steps") is not None:
            self.positive_int("defaults.max_steps", value["max_steps"], 1, "defaults", "max_steps")
        if value.get("workflow_timeout_ms") is not None:
            self.number(
                "defaults.workflow_timeout_ms",
                value["workflow_timeout_ms"],
                "defaults",
                "workflow_timeout_ms",
                strict=True,
                maximum=_MAX_TIMEOUT_MS,
            )
        for key, allowed in (
            ("state_isolation", ("readonly", "private", "copy")),
            ("stranded_joins", ("warn", "fail")),
            ("hitl", ("run", "branch")),
            ("contracts", ("off", "warn", "enforce")),
        ):
            if key == "contracts" and value.get(key) is None:
                continue  # null: the default (warn where writes_to is declared)
            if key in value and value[key] not in allowed:
                self.add(
                    f"defaults.{key} must be one of {', '.join(allowed)}, got {value[key]!r}",
                    "defaults",
                    key,
                )
        for key in ("max_concurrency", "max_subflow_depth"):
            if value.get(key) is not None:
                self.positive_int(f"defaults.{key}", value[key], 1, "defaults", key)
        if "retry" in value:
            self.retry("defaults.retry", value["retry"], "defaults", "retry")
        if "timeout_ms" in value:
            self.number(
                "defaults.timeout_ms",
                value["timeout_ms"],
                "defaults",
                "timeout_ms",
                strict=True,
                maximum=_MAX_TIMEOUT_MS,
            )

    # -------------------------------------------------------------- nodes

    def node(self, nid: str, node: Any) -> None:
        at = ("nodes", nid)
        where = f"node '{nid}'"
        if not isinstance(node, Mapping):
            self.add(f"{where} must be an object with at least 'handler' (or a 'kind')", *at)
            return
        kind = node.get("kind", "task")
        if kind not in NODE_KINDS:
            self.add(
                f"{where} kind must be one of {', '.join(NODE_KINDS)}, got {kind!r}", *at, "kind"
            )
            return
        allowed = COMMON_NODE_KEYS + KIND_KEYS[kind]
        for key in node:
            if key in allowed:
                continue
            owners = [k for k, keys in KIND_KEYS.items() if key in keys]
            fix = (
                f"'{key}' belongs to {' / '.join(owners)} nodes"
                if owners
                else _hint(str(key), allowed)
            )
            self.add(f"{where} (kind {kind}) has unknown key '{key}'; {fix}", *at, str(key))
        if kind == "task":
            handler = node.get("handler")
            if "handler" not in node:
                self.add(
                    f"{where} needs 'handler': the name of a registered handler function",
                    *at,
                    "handler",
                )
            elif not isinstance(handler, str) or not handler:
                given = (
                    "an empty string" if handler == "" else f"{handler!r} ({_type_name(handler)})"
                )
                self.add(
                    f"{where} 'handler' must be the name of a registered handler function "
                    f"(a non-empty string), got {given}",
                    *at,
                    "handler",
                )
            if "with" in node and not isinstance(node["with"], Mapping):
                self.add(f"{where} 'with' must be an object (the node's config)", *at, "with")
            if "map" in node:
                self.map(nid, node["map"])
        elif kind == "wait":
            for key in ("prompt", "resume_as"):
                if node.get(key) is not None and not isinstance(node[key], str):
                    self.add(f"{where} '{key}' must be a string", *at, key)
            mode = node.get("on_timeout")
            if mode is not None and mode not in ("route", "default", "fail"):
                self.add(
                    f"{where} on_timeout must be one of route, default, fail, got {mode!r}",
                    *at,
                    "on_timeout",
                )
            elif mode is not None and node.get("timeout_ms") is None:
                self.add(
                    f"{where} on_timeout needs timeout_ms: how long the wait may last",
                    *at,
                    "on_timeout",
                )
        elif kind == "sleep":
            if ("for_ms" in node) == ("until" in node):
                self.add(f"{where} (kind sleep) needs exactly one of 'for_ms' and 'until'", *at)
            elif "for_ms" in node:
                self.number(
                    f"{where} for_ms", node["for_ms"], *at, "for_ms", maximum=_MAX_TIMEOUT_MS
                )
            else:
                self.state_path(f"{where} until", node["until"], *at, "until")
        elif kind == "subflow":
            if not isinstance(node.get("workflow"), str) or not node.get("workflow"):
                self.add(
                    f"{where} needs 'workflow': the name of the child workflow", *at, "workflow"
                )
            mapping = node.get("input", {})
            if not isinstance(mapping, Mapping):
                self.add(f"{where} 'input' must map child input keys to state paths", *at, "input")
            else:
                for key, path in mapping.items():
                    self.state_path(f"{where} input.{key}", path, *at, "input", str(key))
        if "on" in node:
            self.on(nid, node["on"])
        if "join" in node:
            self.join(nid, node["join"])
        if "retry" in node:
            self.retry(f"{where} retry", node["retry"], *at, "retry")
        if "timeout_ms" in node:
            self.number(
                f"{where} timeout_ms",
                node["timeout_ms"],
                *at,
                "timeout_ms",
                strict=True,
                maximum=_MAX_TIMEOUT_MS,
            )
        if "on_error" in node:
            self.on_error(nid, node["on_error"])
        if "compensate" in node and (
            not isinstance(node["compensate"], str) or not node["compensate"]
        ):
            self.add(
                f"{where} 'compensate' must be the name of a registered handler function "
                "(a non-empty string)",
                *at,
                "compensate",
            )
        if "detached" in node and not isinstance(node["detached"], bool):
            self.add(f"{where} 'detached' must be true or false", *at, "detached")
        if "label" in node and not isinstance(node["label"], str):
            self.add(f"{where} 'label' must be a string", *at, "label")
        if "description" in node and not isinstance(node["description"], str):
            self.add(f"{where} 'description' must be a string", *at, "description")
        if "meta" in node and not isinstance(node["meta"], Mapping):
            self.add(f"{where} 'meta' must be an object", *at, "meta")
        if "state_contract" in node and node["state_contract"] is None:
            # the zf/1 schema has no null here (legacy allows it; convert drops it)
            self.add(
                f"{where} state_contract must be an object such as "
                '{"reads_from": [...], "writes_to": [...]}; omit the key instead of null',
                *at,
                "state_contract",
            )
        contract = node.get("state_contract")
        if contract is not None and (
            not isinstance(contract, Mapping)
            or not all(isinstance(contract.get(k, []), list) for k in ("reads_from", "writes_to"))
        ):
            self.add(
                f"{where} state_contract.reads_from and writes_to must be lists",
                *at,
                "state_contract",
            )

    def on(self, nid: str, value: Any) -> None:
        at = ("nodes", nid, "on")
        if not isinstance(value, Mapping):
            self.add(
                f"node '{nid}' 'on' must map each outcome to a node id, a list of ids, "
                'or {"to": id, "loop": true}',
                *at,
            )
            return
        for outcome, target in value.items():
            where = f"node '{nid}' on.{outcome}"
            items = target if isinstance(target, list) else [target]
            for i, item in enumerate(items):
                parts = (*at, str(outcome), i) if isinstance(target, list) else (*at, str(outcome))
                self.edge(where, item, *parts)

    def edge(self, where: str, item: Any, *parts: str | int) -> None:
        if isinstance(item, str):
            self.node_id(where, item, *parts)
            return
        if not isinstance(item, Mapping):
            self.add(
                f'{where} must be a node id or {{"to": id, "loop": true}}, got {item!r}', *parts
            )
            return
        self.keys(where, item, EDGE_KEYS, *parts)
        if "to" not in item:
            self.add(f"{where} edge needs 'to': the target node id", *parts)
        else:
            self.node_id(f"{where}.to", item["to"], *parts, "to")
        if "loop" in item and not isinstance(item["loop"], bool):
            self.add(f"{where}.loop must be true or false", *parts, "loop")

    def join(self, nid: str, value: Any) -> None:
        at = ("nodes", nid, "join")
        where = f"node '{nid}' join"
        if isinstance(value, list):
            wait_for: Any = value
            parts: tuple[str | int, ...] = at
            if not value:
                self.add(f"{where} list (an AND-join) must name at least one node", *at)
        elif isinstance(value, Mapping):
            self.keys(where, value, JOIN_KEYS, *at)
            mode = value.get("mode", "or")
            if mode not in ("or", "and"):
                self.add(f"{where}.mode must be 'or' or 'and', got {mode!r}", *at, "mode")
            wait_for = value.get("wait_for", [])
            parts = (*at, "wait_for")
            if mode == "and" and (not isinstance(wait_for, list) or not wait_for):
                self.add(f"{where} mode 'and' requires a non-empty wait_for list", *parts)
                return
        else:
            self.add(
                f'{where} must be a list of node ids (AND-join) or {{"mode", "wait_for"}}', *at
            )
            return
        if not isinstance(wait_for, list):
            self.add(f"{where}.wait_for must be a list of node ids", *parts)
            return
        for i, w in enumerate(wait_for):
            self.node_id(f"{where} wait_for", w, *parts, i)

    def retry(self, where: str, value: Any, *at: str | int) -> None:
        if not isinstance(value, Mapping):
            self.add(f'{where} must be an object such as {{"max_attempts": 3}}', *at)
            return
        self.keys(where, value, RETRY_KEYS, *at)
        if "max_attempts" not in value:
            self.add(f"{where} needs 'max_attempts' (1 = no retry)", *at)
        else:
            self.positive_int(
                f"{where}.max_attempts", value["max_attempts"], 1, *at, "max_attempts"
            )
        if "retry_on" in value:
            self.names(f"{where}.retry_on", value["retry_on"], *at, "retry_on")
        if "backoff" not in value:
            return
        backoff = value["backoff"]
        bat = (*at, "backoff")
        if not isinstance(backoff, Mapping):
            self.add(f'{where}.backoff must be an object such as {{"mode": "exponential"}}', *bat)
            return
        self.keys(f"{where}.backoff", backoff, BACKOFF_KEYS, *bat)
        if "mode" in backoff and backoff["mode"] not in ("fixed", "exponential"):
            self.add(
                f"{where}.backoff.mode must be 'fixed' or 'exponential', got {backoff['mode']!r}",
                *bat,
                "mode",
            )
        if "jitter" in backoff and backoff["jitter"] not in ("none", "full"):
            self.add(
                f"{where}.backoff.jitter must be 'none' or 'full', got {backoff['jitter']!r}",
                *bat,
                "jitter",
            )
        for key in ("delay_ms", "max_delay_ms"):
            if backoff.get(key) is not None or (key == "delay_ms" and key in backoff):
                self.number(f"{where}.backoff.{key}", backoff[key], *bat, key, maximum=_MAX_WAIT_MS)
        if "rate" in backoff:
            self.number(f"{where}.backoff.rate", backoff["rate"], *bat, "rate", minimum=1)

    def on_error(self, nid: str, value: Any) -> None:
        at = ("nodes", nid, "on_error")
        where = f"node '{nid}' on_error"
        if isinstance(value, str):
            self.node_id(where, value, *at)
            return
        if not isinstance(value, list):
            self.add(f'{where} must be a node id or a list of {{"to", "codes", "exceptions"}}', *at)
            return
        for i, entry in enumerate(value):
            if isinstance(entry, str):
                self.node_id(f"{where}[{i}]", entry, *at, i)
                continue
            if not isinstance(entry, Mapping):
                self.add(f'{where}[{i}] must be a node id or {{"to": id, "codes": [...]}}', *at, i)
                continue
            self.keys(f"{where}[{i}]", entry, CATCHER_KEYS, *at, i)
            if "to" not in entry:
                self.add(f"{where}[{i}] needs 'to': the node that handles the error", *at, i)
            else:
                self.node_id(f"{where}[{i}].to", entry["to"], *at, i, "to")
            for key in ("codes", "exceptions"):
                if key in entry:
                    self.names(f"{where}[{i}].{key}", entry[key], *at, i, key)
            if "scope" in entry and entry["scope"] not in ("run", "branch"):
                self.add(
                    f"{where}[{i}].scope must be 'run' or 'branch', got {entry['scope']!r}",
                    *at,
                    i,
                    "scope",
                )

    def map(self, nid: str, value: Any) -> None:
        at = ("nodes", nid, "map")
        where = f"node '{nid}' map"
        if not isinstance(value, Mapping):
            self.add(f'{where} must be an object such as {{"over": "input.items"}}', *at)
            return
        self.keys(where, value, MAP_KEYS, *at)
        self.state_path(f"{where}.over", value.get("over"), *at, "over")
        if "max_concurrency" in value:
            self.positive_int(
                f"{where}.max_concurrency", value["max_concurrency"], 1, *at, "max_concurrency"
            )
        if "tolerated_failures" in value:
            self.positive_int(
                f"{where}.tolerated_failures",
                value["tolerated_failures"],
                0,
                *at,
                "tolerated_failures",
            )


def check(defn: Any) -> list[WorkflowDefinitionError]:
    """Every structural problem of a zf/1 definition, in document order (empty when valid).

    Each error's ``path`` is a JSON pointer into ``defn``. Graph rules that
    need the whole graph (forward cycles, joins no edge reaches) are checked
    afterwards by ``compile_workflow``.
    """
    if not isinstance(defn, Mapping):
        return [
            WorkflowDefinitionError(
                f"workflow definition must be an object, got {type(defn).__name__}"
            )
        ]
    return _Checker(defn).run()


# ---------------------------------------------------------------------- zf/1 -> legacy


def _edges(target: Any) -> list[dict[str, Any]]:
    items = target if isinstance(target, list) else [target]
    out: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, str):
            out.append({"target_node": item})
        else:
            edge: dict[str, Any] = {"target_node": item["to"]}
            if item.get("loop"):
                edge["is_loopback"] = True
            out.append(edge)
    return out


def _run_policy(retry: Any, timeout_ms: Any) -> dict[str, Any] | None:
    policy: dict[str, Any] = {}
    if isinstance(retry, Mapping):
        policy["max_retries"] = int(retry["max_attempts"]) - 1
        backoff = retry.get("backoff") or {}
        if "delay_ms" in backoff:
            policy["retry_sleep_seconds"] = _seconds(backoff["delay_ms"])
        if "mode" in backoff:
            policy["backoff"] = backoff["mode"]
        if "rate" in backoff:
            policy["backoff_rate"] = float(backoff["rate"])
        if backoff.get("max_delay_ms") is not None:
            policy["max_delay_seconds"] = _seconds(backoff["max_delay_ms"])
        if "jitter" in backoff:
            policy["jitter"] = backoff["jitter"]
        if "retry_on" in retry:
            policy["retry_on"] = list(retry["retry_on"])
    if timeout_ms is not None:
        policy["timeout_seconds"] = _seconds(timeout_ms)
    return policy or None


def _normalise_node(node: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    kind = node.get("kind", "task")
    out: dict[str, Any] = {}
    if kind != "task":
        out["kind"] = kind
    if kind == "task":
        out["handler"] = node["handler"]
    on = node.get("on") or {}
    out["outputs"] = {str(label): _edges(target) for label, target in on.items()}
    if kind == "task" and "with" in node:
        out["config"] = dict(node["with"])
    if kind == "wait":
        out["wait"] = {"prompt": node.get("prompt"), "resume_as": node.get("resume_as")}
        if node.get("resume_schema") is not None:
            out["wait"]["resume_schema"] = node["resume_schema"]
        if node.get("timeout_ms") is not None:
            out["wait"]["timeout_seconds"] = _seconds(node["timeout_ms"])
        for key in ("on_timeout", "timeout_payload"):
            if node.get(key) is not None:
                out["wait"][key] = node[key]
    elif kind == "sleep":
        if "for_ms" in node:
            out["sleep"] = {"for_seconds": _seconds(node["for_ms"])}
        else:
            out["sleep"] = {"until": node["until"]}
    elif kind == "end":
        out["end"] = {"result": node.get("result")}
    elif kind == "subflow":
        out["subflow"] = {"workflow": node["workflow"], "input": dict(node.get("input") or {})}
    if "map" in node:
        out["map"] = dict(node["map"])
    if kind in ("task", "subflow"):
        retry = node.get("retry", defaults.get("retry"))
        timeout = node.get("timeout_ms", defaults.get("timeout_ms"))
        policy = _run_policy(retry, timeout)
        if policy is not None:
            out["run_policy"] = policy
        on_error = node.get("on_error")
        if on_error is not None:
            entries = [on_error] if isinstance(on_error, str) else on_error
            catchers = []
            for entry in entries:
                if isinstance(entry, str):
                    catchers.append({"target_node": entry})
                    continue
                catcher: dict[str, Any] = {"target_node": entry["to"]}
                for key in ("codes", "exceptions"):
                    if key in entry:
                        catcher[key] = list(entry[key])
                if "scope" in entry:
                    catcher["scope"] = entry["scope"]
                catchers.append(catcher)
            out["on_error"] = catchers
        for key in SAGA_KEYS:
            if key in node:
                out[key] = node[key]
    join = node.get("join")
    if isinstance(join, list):
        out["join"] = {"mode": "and", "wait_for": list(join)}
    carry_common(node, out)
    return out


def carry_common(src: Mapping[str, Any], dst: dict[str, Any]) -> None:
    """Copy the node keys both formats spell alike: a join dict, state_contract, label...

    A ``join`` already set in ``dst`` (the zf/1 list shorthand) is kept.
    """
    join = src.get("join")
    if isinstance(join, Mapping) and "join" not in dst:
        dst["join"] = {"mode": join.get("mode", "or"), "wait_for": list(join.get("wait_for", []))}
    if src.get("state_contract") is not None:  # legacy null means absent, as in 0.1.0
        dst["state_contract"] = dict(src["state_contract"])
    for key in CARRIED_KEYS:
        if key in src:
            dst[key] = src[key]


def normalise(zf1: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a zf/1 definition and return the equivalent extended legacy dict.

    Raises ``WorkflowDefinitionError`` (a ``ValueError``) for the first
    problem ``check`` finds; its ``path`` is a JSON pointer into ``zf1``.
    ``zf1`` is never mutated.
    """
    problems = check(zf1)
    if problems:
        raise problems[0]
    defaults = zf1.get("defaults") or {}
    out: dict[str, Any] = {
        "workflow_name": zf1["name"],
        "default_entry_node": zf1["entry"],
    }
    if zf1.get("error") is not None:
        out["default_error_node"] = zf1["error"]
    policy: dict[str, Any] = {}
    for key in POLICY_DEFAULT_KEYS:
        if key not in defaults:
            continue
        if key == "workflow_timeout_ms":
            value = defaults[key]
            policy["workflow_timeout_seconds"] = None if value is None else _seconds(value)
        else:
            policy[key] = defaults[key]
    if policy:
        out["engine_policy"] = policy
    for key in ("description", "meta"):
        if key in zf1:
            out[key] = zf1[key]
    if "state_contract" in zf1:
        out["state_contract"] = dict(zf1["state_contract"])
    out["nodes"] = {str(nid): _normalise_node(node, defaults) for nid, node in zf1["nodes"].items()}
    return out
