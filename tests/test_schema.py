"""The shipped JSON Schemas: in sync with their source, valid, agreeing with the validator."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from _support import integration
from zeroflow._grammar import check
from zeroflow._schema import SCHEMA_FILES, build_schema, check_instance, schema, schema_text

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = ROOT / "src" / "zeroflow" / "schemas"

RICH_ZF1: dict[str, Any] = {
    "$schema": "urn:zeroflow:schema:zf1",
    "version": "zf/1",
    "name": "rich",
    "entry": "fetch",
    "error": "cleanup",
    "description": "every key once",
    "meta": {"team": "a"},
    "defaults": {
        "strict_outputs": True,
        "max_steps": 100,
        "workflow_timeout_ms": 60000,
        "persist_checkpoints": True,
        "state_isolation": "readonly",
        "stranded_joins": "warn",
        "max_concurrency": 4,
        "max_subflow_depth": 3,
        "hitl": "run",
        "retry": {"max_attempts": 2},
        "timeout_ms": 1000,
    },
    "nodes": {
        "fetch": {
            "kind": "task",
            "handler": "fetch",
            "with": {"url": "x"},
            "on": {"ok": ["each", "child"], "retry": {"to": "fetch", "loop": True}},
            "retry": {
                "max_attempts": 3,
                "backoff": {
                    "mode": "exponential",
                    "delay_ms": 100,
                    "rate": 2,
                    "max_delay_ms": 1000,
                    "jitter": "full",
                },
                "retry_on": ["TimeoutError"],
            },
            "timeout_ms": 500,
            "on_error": [{"to": "cleanup", "codes": ["NODE_TIMEOUT"], "exceptions": ["OSError"]}],
            "label": "Fetch",
            "description": "gets rows",
            "meta": {"owner": "b"},
            "state_contract": {"reads_from": ["input"], "writes_to": ["workflow"]},
        },
        "each": {"handler": "item", "map": {"over": "node.fetch.rows"}, "on": {"ok": "join"}},
        "child": {
            "kind": "subflow",
            "workflow": "billing",
            "input": {"rows": "node.fetch.rows"},
            "on": {"ok": "join"},
            "on_error": "cleanup",
        },
        "join": {
            "handler": "join",
            "join": {"mode": "and", "wait_for": ["each", "child"]},
            "on": {"ok": "ask"},
        },
        "ask": {
            "kind": "wait",
            "prompt": "Approve?",
            "resume_as": "answer",
            "on": {"ok": "done", "no": "cleanup"},
        },
        "done": {"kind": "end", "result": {"shipped": True}},
        "cleanup": {"kind": "end", "result": None},
    },
}


def _jsonschema() -> Any:
    return integration("jsonschema")


def test_shipped_schema_files_match_their_source() -> None:
    for fmt, name in SCHEMA_FILES.items():
        shipped = (SCHEMA_DIR / name).read_text(encoding="utf-8")
        assert shipped == schema_text(fmt), (
            f"{name} is stale: run `uv run python -m zeroflow._schema`"
        )


def test_schema_returns_a_fresh_copy_of_the_packaged_file() -> None:
    first = schema("zf/1")
    first["title"] = "changed"
    assert schema("zf/1") == build_schema("zf/1")
    assert schema("legacy")["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    with pytest.raises(ValueError, match="unknown format"):
        schema("zf/9")


def test_both_schemas_are_valid_draft_2020_12() -> None:
    js = _jsonschema()
    for fmt in SCHEMA_FILES:
        js.Draft202012Validator.check_schema(schema(fmt))


def _example_definitions() -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = [("rich", RICH_ZF1)]
    for path in sorted((ROOT / "tests" / "fixtures" / "v010").glob("*_workflow.json")):
        found.append((path.name, json.loads(path.read_text())))
    for path in sorted((ROOT / "examples").glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"_schema_example_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        try:
            spec.loader.exec_module(module)
        except Exception:  # an example still being written must not hide the others
            continue
        for name, value in vars(module).items():
            if isinstance(value, dict) and ("workflow_name" in value or "version" in value):
                found.append((f"{path.name}:{name}", value))
    for doc in ("GRAMMAR.md", "CLI.md"):
        text = (
            (ROOT / "docs" / doc).read_text(encoding="utf-8")
            if (ROOT / "docs" / doc).exists()
            else ""
        )
        for i, block in enumerate(re.findall(r"```json\n(.*?)```", text, flags=re.S)):
            data = json.loads(block)
            if isinstance(data, dict) and ("workflow_name" in data or "version" in data):
                found.append((f"{doc}#{i}", data))
    return found


def test_every_example_workflow_validates_against_its_schema() -> None:
    examples = _example_definitions()
    assert len(examples) >= 6
    js = _jsonschema()
    for name, defn in examples:
        fmt = "zf/1" if "version" in defn else "legacy"
        assert check_instance(defn, schema(fmt)) == [], name
        js.validate(defn, schema(fmt), cls=js.Draft202012Validator)
        if fmt == "zf/1":
            assert check(defn) == [], name


Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def apply(d: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        for p in parents:
            d = d[p]
        d[last] = value

    return apply


def _delete(path: str) -> Mutation:
    def apply(d: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        for p in parents:
            d = d[p]
        del d[last]

    return apply


MUTATIONS: list[tuple[str, Mutation]] = [
    ("unchanged", lambda d: None),
    ("no name", _delete("name")),
    ("empty name", _set("name", "")),
    ("wrong version", _set("version", "zf/2")),
    ("unknown top key", _set("owner", "me")),
    ("nodes empty", _set("nodes", {})),
    ("error null", _set("error", None)),
    ("defaults unknown key", _set("defaults/max_stepz", 1)),
    ("max_steps zero", _set("defaults/max_steps", 0)),
    ("max_steps null", _set("defaults/max_steps", None)),
    ("timeout zero", _set("defaults/workflow_timeout_ms", 0)),
    ("bad isolation", _set("defaults/state_isolation", "shared")),
    ("strict as string", _set("defaults/strict_outputs", "yes")),
    ("kind unknown", _set("nodes/fetch/kind", "job")),
    ("task without handler", _delete("nodes/each/handler")),
    ("handler empty", _set("nodes/each/handler", "")),
    ("with not object", _set("nodes/fetch/with", [1])),
    ("on not object", _set("nodes/fetch/on", "each")),
    ("edge bad shape", _set("nodes/fetch/on/ok", [1])),
    ("edge object without to", _set("nodes/fetch/on/retry", {"loop": True})),
    ("edge loop not bool", _set("nodes/fetch/on/retry", {"to": "fetch", "loop": 1})),
    ("edge extra key", _set("nodes/fetch/on/retry", {"to": "fetch", "why": 1})),
    ("max_attempts zero", _set("nodes/fetch/retry/max_attempts", 0)),
    ("retry without max_attempts", _delete("nodes/fetch/retry/max_attempts")),
    ("backoff mode bad", _set("nodes/fetch/retry/backoff/mode", "linear")),
    ("backoff rate below 1", _set("nodes/fetch/retry/backoff/rate", 0.5)),
    ("delay negative", _set("nodes/fetch/retry/backoff/delay_ms", -1)),
    ("jitter bad", _set("nodes/fetch/retry/backoff/jitter", "some")),
    ("retry_on not list", _set("nodes/fetch/retry/retry_on", "OSError")),
    ("timeout negative", _set("nodes/fetch/timeout_ms", -5)),
    ("on_error bad entry", _set("nodes/fetch/on_error", [{"codes": ["X"]}])),
    ("map without over", _set("nodes/each/map", {"max_concurrency": 2})),
    ("map bad path", _set("nodes/each/map", {"over": "items"})),
    ("join list", _set("nodes/join/join", ["each", "child"])),
    ("join empty list", _set("nodes/join/join", [])),
    ("join and without wait_for", _set("nodes/join/join", {"mode": "and"})),
    ("join bad mode", _set("nodes/join/join", {"mode": "xor", "wait_for": ["each"]})),
    ("wait with handler", _set("nodes/ask/handler", "h")),
    ("wait prompt not string", _set("nodes/ask/prompt", 3)),
    ("end with on", _set("nodes/done/on", {"ok": "ask"})),
    ("subflow without workflow", _delete("nodes/child/workflow")),
    ("subflow bad input path", _set("nodes/child/input", {"rows": "rows"})),
    ("label not string", _set("nodes/fetch/label", 3)),
    ("meta not object", _set("nodes/fetch/meta", [])),
    ("contract not lists", _set("nodes/fetch/state_contract", {"reads_from": "input"})),
]


@pytest.mark.parametrize(("name", "mutate"), MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_the_zf1_schema_and_the_validator_agree(name: str, mutate: Mutation) -> None:
    defn = copy.deepcopy(RICH_ZF1)
    mutate(defn)
    validator_ok = not [e for e in check(defn) if "references unknown node" not in str(e)]
    schema_ok = not check_instance(defn, schema("zf/1"))
    assert validator_ok == schema_ok, name
    js = _jsonschema()
    assert js.Draft202012Validator(schema("zf/1")).is_valid(defn) == schema_ok, name


def test_schema_check_reports_json_pointers() -> None:
    defn = copy.deepcopy(RICH_ZF1)
    defn["nodes"]["fetch"]["retry"]["max_attempts"] = 0
    defn["nodes"]["ask"]["handler"] = "h"
    problems = dict(check_instance(defn, schema("zf/1")))
    assert "/nodes/fetch/retry/max_attempts" in problems
    assert problems["/nodes/ask/handler"] == "unknown key 'handler'"


def test_the_legacy_schema_accepts_unknown_keys_and_requires_the_0_1_0_ones() -> None:
    legacy = {
        "workflow_name": "x",
        "default_entry_node": "a",
        "owner": "me",
        "nodes": {"a": {"handler": "a", "outputs": {}, "notes": "ok"}},
    }
    assert check_instance(legacy, schema("legacy")) == []
    del legacy["nodes"]["a"]["handler"]  # type: ignore[attr-defined]
    assert check_instance(legacy, schema("legacy")) == [
        ("/nodes/a", "missing required key 'handler'")
    ]
    legacy["nodes"]["a"]["kind"] = "wait"  # type: ignore[index]
    assert check_instance(legacy, schema("legacy")) == []
