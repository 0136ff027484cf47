"""Every state-contract field is spelt by both formats and known to the JSON Schemas,
``convert``, ``explain`` and every picture (issue 21: "zf/1 and legacy both spell it")."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

import zeroflow
from zeroflow import convert, explain, viz
from zeroflow._schema import check_instance, schema

QUESTION = {
    "type": "object",
    "required": ["question"],
    "properties": {"question": {"type": "string"}},
}
ANSWER = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}}}
FULL: dict[str, Any] = {
    "workflow_name": "support",
    "default_entry_node": "classify",
    "engine_policy": {"contracts": "enforce"},
    "state_contract": {"input_schema": QUESTION},
    "nodes": {
        "classify": {
            "handler": "classify",
            "state_contract": {"reads_from": ["input.question"], "writes_to": ["topic"]},
            "outputs": {"ok": [{"target_node": "draft"}]},
        },
        "draft": {
            "handler": "draft",
            "state_contract": {
                "reads_from": ["workflow.topic"],
                "writes_to": ["answer"],
                "writes_schema": ANSWER,
            },
            "outputs": {"ok": [{"target_node": "send"}]},
        },
        "send": {"handler": "send", "outputs": {"ok": []}},
    },
}


def pictures(defn: dict[str, Any], tmp_path: Path) -> dict[str, str]:
    page = viz.workflow_to_html(defn, tmp_path / "page.html")
    return {
        "mermaid": viz.workflow_to_mermaid(defn),
        "dot": viz.workflow_to_dot(defn),
        "svg": viz.workflow_to_svg(defn),
        "html": page.read_text("utf-8"),
    }


def test_legacy_to_zf1_and_back_is_lossless() -> None:
    there = convert(FULL, to="zf/1")
    assert there.losses == ()
    zf1 = there.definition
    assert zf1["state_contract"] == {"input_schema": QUESTION}
    assert zf1["nodes"]["draft"]["state_contract"] == FULL["nodes"]["draft"]["state_contract"]
    back = convert(zf1, to="legacy")
    assert back.losses == () and back.definition == FULL
    assert convert(back.definition, to="zf/1").definition == zf1


def test_both_spellings_match_their_json_schemas_which_know_every_field() -> None:
    zf1 = convert(FULL).definition
    assert check_instance(FULL, schema("legacy")) == []
    assert check_instance(zf1, schema("zf/1")) == []
    # The zf/1 schema is closed: it knows the workflow's state_contract, and nothing else there.
    wrong = copy.deepcopy(zf1)
    wrong["state_contract"]["output_schema"] = {}
    assert ("/state_contract/output_schema", "unknown key 'output_schema'") in check_instance(
        wrong, schema("zf/1")
    )
    for fmt, defn in (("legacy", copy.deepcopy(FULL)), ("zf/1", copy.deepcopy(zf1))):
        defn["state_contract"]["input_schema"] = "strict"
        assert any(at.startswith("/state_contract") for at, _ in check_instance(defn, schema(fmt)))
        defn["nodes"]["draft"]["state_contract"]["writes_schema"] = 3
        assert any(
            at.startswith("/nodes/draft/state_contract")  # legacy: a nullable one, as a whole
            for at, _ in check_instance(defn, schema(fmt))
        )


@pytest.mark.parametrize("fmt", ["legacy", "zf/1"])
def test_explain_mentions_every_field(fmt: str) -> None:
    defn = FULL if fmt == "legacy" else convert(FULL).definition
    text = explain(defn)
    assert (
        "Its initial_input must match its input_schema "
        '(type `"object"`; required `question`; properties `question`)' in text
    )
    assert "reads nothing; writes `topic` of state.workflow" in text  # input.question: the input
    assert "reads `question` of the run's input (required by the input_schema)" in text
    assert "state contract: reads `topic`; writes `answer` of state.workflow" in text
    assert "its workflow_updates must match its writes_schema" in text


@pytest.mark.parametrize("fmt", ["legacy", "zf/1"])
def test_every_picture_mentions_every_field(fmt: str, tmp_path: Path) -> None:
    defn = FULL if fmt == "legacy" else convert(FULL).definition
    for name, text in pictures(defn, tmp_path).items():
        for needle in (
            "input_schema",
            "reads: input.question",
            "writes: topic",
            "reads: workflow.topic",
            "writes: answer",
            "writes_schema",
        ):
            assert needle in text, (name, needle)
        assert "contract: reads 1 · writes 1 · schema ✓" in text, name


def test_a_workflow_without_contracts_draws_no_contract(tmp_path: Path) -> None:
    plain = copy.deepcopy(FULL)
    del plain["state_contract"]
    for node in plain["nodes"].values():
        node.pop("state_contract", None)
    for name, text in pictures(plain, tmp_path).items():
        assert "contract" not in text and "input_schema" not in text, name


HOSTILE = [
    "</title><script>alert(1)</script>",
    '"]; evil [label="x',
    "a\nflowchart LR\n    x --> y",
    "%%{init: {'theme': 'dark'}}%%",
    "&amp;<br/>\x01",
    'x\u2028    b["INJECTED"]\u2029    c --> d',
]


def test_hostile_key_names_cannot_inject_markup(tmp_path: Path) -> None:
    defn = copy.deepcopy(FULL)
    defn["nodes"]["draft"]["state_contract"]["reads_from"] = HOSTILE
    defn["nodes"]["draft"]["state_contract"]["writes_to"] = HOSTILE
    defn["state_contract"]["input_schema"]["required"] = HOSTILE
    drawn = pictures(defn, tmp_path)
    svg = drawn["svg"]
    root = ET.fromstring(svg)  # still one well-formed document
    assert not [e for e in root.iter() if e.tag.endswith("script")]
    tip = next(
        t.text or ""
        for g in root.iter("{http://www.w3.org/2000/svg}g")
        if g.get("data-id") == "draft"
        for t in g.iter("{http://www.w3.org/2000/svg}title")
    )
    assert "</title><script>alert(1)</script>" in tip  # shown as text, not markup
    html = drawn["html"]
    assert "<script>" not in html and "&lt;/title&gt;&lt;script&gt;" in html
    mermaid = drawn["mermaid"].splitlines()
    assert not any(line.lstrip().startswith(("flowchart LR", "x -->", "%%{")) for line in mermaid)
    assert sum(line.startswith("flowchart") for line in mermaid) == 1
    from zeroflow.viz._mermaid import parse_mermaid

    read_back = parse_mermaid(drawn["mermaid"]).graph  # what the offline HTML page draws
    assert [n.id for n in read_back.nodes] == ["classify", "draft", "send"]
    dot = drawn["dot"].splitlines()
    assert not any(line.lstrip().startswith("evil") for line in dot)
    draft_line = next(line for line in dot if line.startswith("  n1 ["))
    assert draft_line.count('"; evil') == 0 and '\\"]; evil [label=\\"x' in draft_line


def test_the_engine_runs_the_full_workflow_under_every_contract() -> None:
    from zeroflow import HandlerResult, InitialInputError, WorkflowContext

    def classify(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(outputs=["ok"], workflow_updates={"topic": "billing"})

    def draft(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(outputs=["ok"], workflow_updates={"answer": 42})

    def send(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(outputs=["ok"])

    handlers = {"classify": classify, "draft": draft, "send": send}
    for defn in (FULL, convert(FULL).definition):
        engine = zeroflow.WorkflowEngine(defn, handlers)
        with pytest.raises(InitialInputError):
            engine.run({})
        result = engine.run({"question": "why?"})
        assert result.status == "failed"
        assert result.state.workflow["__error__"]["code"] == "CONTRACT_VIOLATION"
        assert result.state.workflow["__error__"]["node"] == "draft"


def test_a_run_overlay_keeps_the_contract_marks(tmp_path: Path) -> None:
    from zeroflow import HandlerResult, WorkflowContext

    def ok(ctx: WorkflowContext) -> HandlerResult:
        updates = {"topic": "t"} if ctx.node_name == "classify" else {"answer": "a"}
        return HandlerResult(outputs=["ok"], workflow_updates=updates)

    engine = zeroflow.WorkflowEngine(FULL, {"classify": ok, "draft": ok, "send": ok})
    result = engine.run({"question": "why?"})
    assert result.status == "succeeded"
    svg = viz.workflow_to_svg(FULL, run=result)
    root = ET.fromstring(svg)
    draft = next(
        g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("data-id") == "draft"
    )
    assert draft.get("data-contract") == "true" and draft.get("data-runs") == "1"
    texts = [t.text for t in draft.iter("{http://www.w3.org/2000/svg}text")]
    assert texts[:2] == ["draft", "contract: reads 1 · writes 1 · schema ✓"]
    assert texts[2] is not None and texts[2].startswith("1 run")


def test_convert_reports_what_the_zf1_workflow_contract_cannot_hold() -> None:
    legacy = copy.deepcopy(FULL)
    legacy["state_contract"]["notes"] = "kept by legacy, ignored by the engine"
    result = convert(legacy)
    assert result.definition["state_contract"] == {"input_schema": QUESTION}
    assert [loss.path for loss in result.losses] == ["/state_contract/notes"]
