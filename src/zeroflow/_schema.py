"""JSON Schemas (Draft 2020-12) of both definition formats, and a small checker for them.

The schemas are written here as Python data, next to the rules of the
validators they describe (``_grammar`` for zf/1, ``_definition`` for
legacy), and shipped as package data in ``zeroflow/schemas/*.json``; a test
fails when the files and this module disagree (regenerate them with
``python -m zeroflow._schema``). ``schema(fmt)`` reads the shipped file.

A schema checks shape only: which keys, which types, which values. Graph
rules (every id names a node, no forward cycles, reachable joins) need the
validator; ``check_instance`` is a dependency-free checker for the subset of
the draft these schemas use.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from ._grammar import BACKOFF_KEYS, POLICY_DEFAULT_KEYS, pointer

__all__ = ["SCHEMA_FILES", "schema", "build_schema", "check_instance", "write_schemas"]

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_FILES = {"zf/1": "zf1.schema.json", "legacy": "legacy.schema.json"}

JSONSchema = dict[str, Any]

_ID: JSONSchema = {"type": "string", "minLength": 1, "description": "a node id"}
_NAMES: JSONSchema = {"type": "array", "items": {"type": "string", "minLength": 1}}
_STATE_PATH: JSONSchema = {
    "type": "string",
    "pattern": r"^(input|workflow|node)(\.[^.]+)+$",
    "description": "a state path such as 'input.items' or 'node.fetch.rows'",
}
_STATE_CONTRACT: JSONSchema = {
    "type": "object",
    "properties": {
        "reads_from": {"type": "array"},
        "writes_to": {"type": "array"},
        "writes_schema": {"type": ["object", "boolean"]},
    },
}
_INPUT_SCHEMA: JSONSchema = {
    "type": ["object", "boolean"],
    "description": "a JSON Schema (zeroflow's checker subset) initial_input must match",
}


def _ref(name: str) -> JSONSchema:
    return {"$ref": f"#/$defs/{name}"}


def _nullable(s: JSONSchema) -> JSONSchema:
    return {"anyOf": [s, {"type": "null"}]}


def _int(minimum: int) -> JSONSchema:
    return {"type": "integer", "minimum": minimum}


def _num(minimum: float, *, strict: bool = False) -> JSONSchema:
    return {"type": "number", ("exclusiveMinimum" if strict else "minimum"): minimum}


def _obj(
    props: Mapping[str, Any],
    required: list[str] | None = None,
    *,
    closed: bool = True,
    description: str | None = None,
) -> JSONSchema:
    out: JSONSchema = {"type": "object"}
    if description:
        out["description"] = description
    if required:
        out["required"] = required
    out["properties"] = dict(props)
    if closed:
        out["additionalProperties"] = False
    return out


def _zf1_schema() -> JSONSchema:
    policy: dict[str, Any] = {
        "strict_outputs": {"type": "boolean"},
        "max_steps": _nullable(_int(1)),
        "workflow_timeout_ms": _nullable(_num(0, strict=True)),
        "persist_checkpoints": {"type": "boolean"},
        "state_isolation": {"enum": ["readonly", "private", "copy"]},
        "stranded_joins": {"enum": ["warn", "fail"]},
        "max_concurrency": _nullable(_int(1)),
        "max_subflow_depth": _nullable(_int(1)),
        "hitl": {"enum": ["run", "branch"]},
        "require_resume_token": {"type": "boolean"},
        "contracts": _nullable({"enum": ["off", "warn", "enforce"]}),
    }
    assert tuple(policy) == POLICY_DEFAULT_KEYS
    backoff = {
        "mode": {"enum": ["fixed", "exponential"]},
        "delay_ms": _num(0),
        "rate": _num(1),
        "max_delay_ms": _nullable(_num(0)),
        "jitter": {"enum": ["none", "full"]},
    }
    assert tuple(backoff) == BACKOFF_KEYS
    edge = {"oneOf": [_ref("id"), _obj({"to": _ref("id"), "loop": {"type": "boolean"}}, ["to"])]}
    catcher = _obj(
        {
            "to": _ref("id"),
            "codes": _ref("names"),
            "exceptions": _ref("names"),
            "scope": {"enum": ["run", "branch"]},
        },
        ["to"],
    )
    common = {
        "join": _ref("join"),
        "label": {"type": "string"},
        "description": {"type": "string"},
        "meta": {"type": "object"},
        "state_contract": _STATE_CONTRACT,
    }
    handled = {
        "on": _ref("on"),
        "retry": _ref("retry"),
        "timeout_ms": _num(0, strict=True),
        "on_error": _ref("onError"),
        "compensate": {
            "type": "string",
            "minLength": 1,
            "description": "the handler that undoes a completed visit if the run fails",
        },
        "detached": {
            "type": "boolean",
            "description": "a failure is a warning: it never stops or re-routes the run",
        },
    }
    nodes = {
        "task": _obj(
            {
                "kind": {"const": "task"},
                "handler": {"type": "string", "minLength": 1},
                "with": {"type": "object", "description": "the node's config (ctx.node_config)"},
                "map": _ref("map"),
                **handled,
                **common,
            },
            ["handler"],
            description="runs a handler (the default kind)",
        ),
        "wait": _obj(
            {
                "kind": {"const": "wait"},
                "prompt": _nullable({"type": "string"}),
                "resume_as": _nullable({"type": "string"}),
                "resume_schema": _nullable({"type": "object"}),
                "timeout_ms": _num(0, strict=True),
                "on_timeout": {"enum": ["route", "default", "fail"]},
                "timeout_payload": {},
                "on": _ref("on"),
                **common,
            },
            ["kind"],
            description="pauses the run; on resume stores the payload under resume_as",
        ),
        "sleep": {
            **_obj(
                {
                    "kind": {"const": "sleep"},
                    "for_ms": _num(0),
                    "until": _STATE_PATH,
                    "on": _ref("on"),
                    **common,
                },
                ["kind"],
                description="pauses the run for_ms, or until the ISO-8601 time at a state path",
            ),
            "oneOf": [{"required": ["for_ms"]}, {"required": ["until"]}],
        },
        "subflow": _obj(
            {
                "kind": {"const": "subflow"},
                "workflow": {"type": "string", "minLength": 1},
                "input": {"type": "object", "additionalProperties": _STATE_PATH},
                **handled,
                **common,
            },
            ["kind", "workflow"],
            description="runs a registered child workflow",
        ),
        "end": _obj(
            {"kind": {"const": "end"}, "result": {}, **common},
            ["kind"],
            description="ends the run with a result; routes nowhere",
        ),
    }
    node_rules = [
        {
            "if": {"properties": {"kind": {"const": kind}}}
            if kind == "task"
            else {"required": ["kind"], "properties": {"kind": {"const": kind}}},
            "then": _ref(f"{kind}Node"),
        }
        for kind in nodes
    ]
    return {
        "$schema": DRAFT,
        "$id": "urn:zeroflow:schema:zf1",
        "title": "zeroflow workflow definition, versioned grammar zf/1",
        "type": "object",
        "required": ["version", "name", "entry", "nodes"],
        "properties": {
            "$schema": {"type": "string"},
            "version": {"const": "zf/1"},
            "name": {"type": "string", "minLength": 1},
            "entry": _ref("id"),
            "error": _nullable(_ref("id")),
            "description": {"type": "string"},
            "meta": {"type": "object"},
            "defaults": _obj(
                {**policy, "retry": _ref("retry"), "timeout_ms": _num(0, strict=True)},
                description="engine policy and node defaults",
            ),
            "state_contract": _obj(
                {"input_schema": _INPUT_SCHEMA},
                description="the workflow's contract with its callers",
            ),
            "nodes": {"type": "object", "minProperties": 1, "additionalProperties": _ref("node")},
        },
        "additionalProperties": False,
        "$defs": {
            "id": _ID,
            "names": _NAMES,
            "edge": edge,
            "on": {
                "type": "object",
                "description": "outcome -> target id, list of targets, or {to, loop}",
                "additionalProperties": {
                    "anyOf": [_ref("edge"), {"type": "array", "items": _ref("edge")}]
                },
            },
            "join": {
                "anyOf": [
                    {"type": "array", "minItems": 1, "items": _ref("id")},
                    {
                        **_obj(
                            {
                                "mode": {"enum": ["or", "and"]},
                                "wait_for": {"type": "array", "items": _ref("id")},
                            }
                        ),
                        "if": {"properties": {"mode": {"const": "and"}}, "required": ["mode"]},
                        "then": {
                            "required": ["wait_for"],
                            "properties": {"wait_for": {"minItems": 1}},
                        },
                    },
                ]
            },
            "retry": _obj(
                {
                    "max_attempts": _int(1),
                    "backoff": _obj(backoff),
                    "retry_on": _ref("names"),
                },
                ["max_attempts"],
            ),
            "onError": {
                "anyOf": [
                    _ref("id"),
                    {"type": "array", "items": {"anyOf": [_ref("id"), catcher]}},
                ]
            },
            "map": _obj(
                {
                    "over": _STATE_PATH,
                    "max_concurrency": _int(1),
                    "tolerated_failures": _int(0),
                },
                ["over"],
            ),
            "node": {
                "type": "object",
                "properties": {"kind": {"enum": list(nodes)}},
                "allOf": node_rules,
            },
            **{f"{kind}Node": s for kind, s in nodes.items()},
        },
    }


def _legacy_schema() -> JSONSchema:
    run_policy = _obj(
        {
            "max_retries": _int(0),
            "retry_sleep_seconds": _num(0),
            "backoff": {"enum": ["fixed", "exponential"]},
            "backoff_rate": _num(1),
            "max_delay_seconds": _nullable(_num(0)),
            "jitter": {"enum": ["none", "full"]},
            "retry_on": _nullable(_NAMES),
            "timeout_seconds": _nullable(_num(0, strict=True)),
        },
        closed=False,
    )
    edge = _obj(
        {"target_node": _ID, "is_loopback": {"type": "boolean"}}, ["target_node"], closed=False
    )
    catcher = _obj(
        {
            "target_node": _ID,
            "codes": _nullable(_NAMES),
            "exceptions": _nullable(_NAMES),
            "scope": {"enum": ["run", "branch"]},
        },
        ["target_node"],
        closed=False,
    )
    join = {
        **_obj(
            {"mode": {"enum": ["or", "and"]}, "wait_for": {"type": "array", "items": _ID}},
            closed=False,
        ),
        "if": {"properties": {"mode": {"const": "and"}}, "required": ["mode"]},
        "then": {"required": ["wait_for"], "properties": {"wait_for": {"minItems": 1}}},
    }
    node = {
        **_obj(
            {
                "kind": {"enum": ["task", "wait", "end", "subflow", "sleep"]},
                "handler": _nullable({"type": "string"}),
                "outputs": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": edge},
                },
                "config": {"type": ["object", "null"]},
                "run_policy": _nullable(run_policy),
                "join": _nullable(join),
                "state_contract": _nullable(_STATE_CONTRACT),
                "on_error": _nullable({"type": "array", "items": catcher}),
                "compensate": _nullable({"type": "string", "minLength": 1}),
                "detached": {"type": "boolean"},
                "wait": _nullable(
                    _obj(
                        {
                            "prompt": _nullable({"type": "string"}),
                            "resume_as": _nullable({"type": "string"}),
                            "resume_schema": _nullable({"type": "object"}),
                            "timeout_seconds": _nullable(_num(0, strict=True)),
                            "on_timeout": _nullable({"enum": ["route", "default", "fail"]}),
                            "timeout_payload": {},
                        },
                        closed=False,
                    )
                ),
                "sleep": _nullable(
                    _obj(
                        {"for_seconds": _nullable(_num(0)), "until": _nullable(_STATE_PATH)},
                        closed=False,
                    )
                ),
                "end": _nullable(_obj({"result": {}}, closed=False)),
                "subflow": _obj(
                    {
                        "workflow": {"type": "string"},
                        "input": {"type": "object", "additionalProperties": _STATE_PATH},
                    },
                    ["workflow"],
                    closed=False,
                ),
                "map": _obj(
                    {
                        "over": _STATE_PATH,
                        "max_concurrency": _int(1),
                        "tolerated_failures": _int(0),
                    },
                    ["over"],
                    closed=False,
                ),
                "label": {"type": "string"},
                "description": {"type": "string"},
                "meta": {"type": "object"},
            },
            ["outputs"],
            closed=False,
        ),
        "if": {
            "anyOf": [
                {
                    "required": ["kind"],
                    "properties": {"kind": {"enum": ["wait", "end", "subflow", "sleep"]}},
                },
                {"required": ["subflow"]},
            ]
        },
        "else": {"required": ["handler"]},
    }
    policy = _obj(
        {
            "strict_outputs": {"type": "boolean"},
            "max_steps": _nullable({"type": "integer", "exclusiveMinimum": 0}),
            "workflow_timeout_seconds": _nullable(_num(0, strict=True)),
            "persist_checkpoints": {"type": "boolean"},
            "state_isolation": {"enum": ["readonly", "private", "copy"]},
            "stranded_joins": {"enum": ["warn", "fail"]},
            "max_concurrency": _nullable(_int(1)),
            "max_subflow_depth": _nullable(_int(1)),
            "hitl": {"enum": ["run", "branch"]},
            "require_resume_token": {"type": "boolean"},
            "contracts": _nullable({"enum": ["off", "warn", "enforce"]}),
        },
        closed=False,
    )
    return {
        "$schema": DRAFT,
        "$id": "urn:zeroflow:schema:legacy",
        "title": "zeroflow workflow definition, legacy dict (zeroflow 0.1.0 and extensions)",
        "description": "Unknown keys are ignored by the engine, so objects stay open.",
        "type": "object",
        "required": ["workflow_name", "default_entry_node", "nodes"],
        "properties": {
            "workflow_name": {"description": "the workflow's name (a string by convention)"},
            "default_entry_node": _ID,
            "default_error_node": _nullable(_ID),
            "engine_policy": _nullable(policy),
            "state_contract": _nullable(
                _obj({"input_schema": _nullable(_INPUT_SCHEMA)}, closed=False)
            ),
            "nodes": {"type": "object", "minProperties": 1, "additionalProperties": node},
        },
    }


def build_schema(fmt: str = "zf/1") -> JSONSchema:
    """Build the schema of ``fmt`` (``"zf/1"`` or ``"legacy"``) from this module's source."""
    if fmt == "zf/1":
        return _zf1_schema()
    if fmt == "legacy":
        return _legacy_schema()
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(SCHEMA_FILES)}")


@cache
def _shipped(fmt: str) -> str:
    from importlib import resources  # only here: it costs milliseconds at ``import zeroflow``

    return (resources.files("zeroflow") / "schemas" / SCHEMA_FILES[fmt]).read_text("utf-8")


def schema(fmt: str = "zf/1") -> JSONSchema:
    """The shipped Draft 2020-12 JSON Schema of ``fmt`` (``"zf/1"`` or ``"legacy"``), a copy."""
    if fmt not in SCHEMA_FILES:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(SCHEMA_FILES)}")
    data: JSONSchema = json.loads(_shipped(fmt))
    return data


def schema_text(fmt: str) -> str:
    """The canonical JSON text of a schema, as written to the package data files."""
    return json.dumps(build_schema(fmt), indent=2, ensure_ascii=False) + "\n"


def write_schemas(folder: Path | None = None) -> list[Path]:
    """(Re)write the package data files from ``build_schema``; returns the paths written."""
    target = folder or Path(__file__).parent / "schemas"
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt, name in SCHEMA_FILES.items():
        path = target / name
        path.write_text(schema_text(fmt), encoding="utf-8")
        written.append(path)
    return written


# ---------------------------------------------------------------------- checker

_TYPES = {
    "object": lambda v: isinstance(v, Mapping),
    "array": lambda v: isinstance(v, list | tuple),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and math.isfinite(v) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}


def check_instance(instance: Any, schema_: Mapping[str, Any] | bool) -> list[tuple[str, str]]:
    """Check ``instance`` against ``schema_``; return ``(json_pointer, message)`` per problem.

    Supports the keywords our schemas use: ``type``, ``const``, ``enum``,
    ``properties``, ``required``, ``additionalProperties``,
    ``minProperties``, ``items``, ``minItems``, ``minLength``, ``pattern``,
    ``minimum``, ``exclusiveMinimum``, local ``$ref``, ``allOf``, ``anyOf``,
    ``oneOf`` and ``if``/``then``/``else``; ``true`` and ``false`` as schemas.
    """
    out: list[tuple[str, str]] = []
    _check(instance, schema_, schema_, (), out)
    return out


def _resolve(root: Any, ref: str) -> Mapping[str, Any] | bool:
    if ref != "#" and not ref.startswith("#/"):
        raise ValueError(f"only local $ref are supported, got {ref!r}")
    node: Any = root
    for part in ref[2:].split("/") if ref != "#" else ():
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node  # type: ignore[no-any-return]  # a sub-schema of a JSON document


def _check(
    value: Any,
    s: Mapping[str, Any] | bool,
    root: Any,
    at: tuple[str | int, ...],
    out: list[tuple[str, str]],
) -> None:
    where = pointer(*at)
    if isinstance(s, bool):  # true: anything; false: nothing
        if not s:
            out.append((where, "no value is allowed here (the schema is false)"))
        return
    if "$ref" in s:
        _check(value, _resolve(root, s["$ref"]), root, at, out)
    if "type" in s:
        types = s["type"] if isinstance(s["type"], list) else [s["type"]]
        if not any(_TYPES[t](value) for t in types):
            out.append((where, f"{value!r} is not of type {' or '.join(types)}"))
            return
    if "const" in s and not _same(value, s["const"]):
        out.append((where, f"{value!r} must be {s['const']!r}"))
    if "enum" in s and not any(_same(value, e) for e in s["enum"]):
        out.append((where, f"{value!r} is not one of {', '.join(map(repr, s['enum']))}"))
    if isinstance(value, str):
        if len(value) < s.get("minLength", 0):
            out.append((where, f"{value!r} is too short"))
        if "pattern" in s and not re.search(s["pattern"], value):
            out.append((where, f"{value!r} does not match {s['pattern']!r}"))
    if _TYPES["number"](value):
        if "minimum" in s and value < s["minimum"]:
            out.append((where, f"{value!r} is less than {s['minimum']!r}"))
        if "exclusiveMinimum" in s and value <= s["exclusiveMinimum"]:
            out.append((where, f"{value!r} must be greater than {s['exclusiveMinimum']!r}"))
    if isinstance(value, Mapping):
        _check_object(value, s, root, at, out)
    if isinstance(value, list | tuple):
        if len(value) < s.get("minItems", 0):
            out.append((where, f"needs at least {s['minItems']} item(s)"))
        if "items" in s:
            for i, item in enumerate(value):
                _check(item, s["items"], root, (*at, i), out)
    for sub in s.get("allOf", ()):
        _check(value, sub, root, at, out)
    for key in ("anyOf", "oneOf"):
        if key in s:
            matches = sum(not check_sub(value, sub, root) for sub in s[key])
            if matches == 0 or (key == "oneOf" and matches > 1):
                out.append(
                    (
                        where,
                        f"{value!r} does not match exactly one allowed shape"
                        if matches
                        else f"{value!r} matches none of the allowed shapes",
                    )
                )
    if "if" in s:
        branch = s.get("then") if not check_sub(value, s["if"], root) else s.get("else")
        if branch is not None:
            _check(value, branch, root, at, out)


def _check_object(
    value: Mapping[str, Any],
    s: Mapping[str, Any],
    root: Any,
    at: tuple[str | int, ...],
    out: list[tuple[str, str]],
) -> None:
    where = pointer(*at)
    for key in s.get("required", ()):
        if key not in value:
            out.append((where, f"missing required key '{key}'"))
    if len(value) < s.get("minProperties", 0):
        out.append((where, f"needs at least {s['minProperties']} key(s)"))
    props = s.get("properties", {})
    extra = s.get("additionalProperties", True)
    for key, item in value.items():
        if key in props:
            _check(item, props[key], root, (*at, key), out)
        elif extra is False:
            out.append((pointer(*at, key), f"unknown key '{key}'"))
        elif isinstance(extra, Mapping):
            _check(item, extra, root, (*at, key), out)


def check_sub(value: Any, s: Mapping[str, Any] | bool, root: Any) -> list[tuple[str, str]]:
    """Problems of ``value`` against a sub-schema of ``root`` (for combinators)."""
    out: list[tuple[str, str]] = []
    _check(value, s, root, (), out)
    return out


def _same(a: Any, b: Any) -> bool:
    # JSON equality: true is not 1, and 1 equals 1.0.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return bool(a == b)


if __name__ == "__main__":
    for written in write_schemas():
        print(written)
