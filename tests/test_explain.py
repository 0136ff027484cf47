"""zeroflow.explain: a workflow in sentences, from the compiled graph, safe against its names."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

import zeroflow
from _support import load_example
from test_fuzz_errors import DEFINITION
from zeroflow import WorkflowDefinitionError
from zeroflow._explain import KINDS
from zeroflow._policies import NODE_KINDS

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def shipped_workflows() -> list[tuple[str, dict[str, Any]]]:
    """Every workflow definition the examples ship (module-level dicts and the tour's)."""
    found: list[tuple[str, dict[str, Any]]] = []
    for name in ("01_quickstart", "02_feature_matrix", "03_async_agent", "04_approvals"):
        module = load_example(name)
        for attr, value in vars(module).items():
            if isinstance(value, dict) and "nodes" in value:
                found.append((f"{name}.{attr}", value))
    for defn in load_example("tour").workflows():
        found.append((f"tour.{defn['workflow_name']}", dict(defn)))
    # The Celery fleet imports celery: read its literal definitions without importing it.
    fleet = ast.parse((EXAMPLES / "05_celery_fleet" / "fleet.py").read_text(encoding="utf-8"))
    for stmt in fleet.body:
        if isinstance(stmt, ast.AnnAssign | ast.Assign) and isinstance(stmt.value, ast.Dict):
            try:
                value = ast.literal_eval(stmt.value)
            except ValueError:
                continue
            target = stmt.targets[0] if isinstance(stmt, ast.Assign) else stmt.target
            if "nodes" in value:
                found.append((f"fleet.{ast.unparse(target)}", value))
    return found


SHIPPED = shipped_workflows()


def test_the_examples_ship_enough_workflows_to_mean_something() -> None:
    assert len(SHIPPED) >= 15
    assert any(name.startswith("fleet.") for name, _ in SHIPPED)


@pytest.mark.parametrize(("name", "defn"), SHIPPED, ids=[n for n, _ in SHIPPED])
def test_every_shipped_example_explains_and_plans(name: str, defn: dict[str, Any]) -> None:
    for fmt in ("text", "markdown"):
        text = zeroflow.explain(defn, fmt)
        for node in defn["nodes"]:
            assert f"`{node}`" in text, (name, node)
    plan = zeroflow.plan(defn)
    planned = set(plan.steps) | {
        n
        for waves in plan.recovery.values()
        for w in waves
        for layer in w.layers
        for n in layer.nodes
    }
    assert planned | set(plan.unreached) == set(defn["nodes"])
    assert str(plan).startswith(f"Plan of `{defn['workflow_name']}`")


def test_every_node_kind_has_its_sentence() -> None:
    # A new kind in the policies must come with a sentence in explain (map is a task with map).
    assert set(KINDS) == {*NODE_KINDS, "map"}


def node(handler: str | None = "h", **outputs: list[Any]) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "outputs": {
            label: [
                {"target_node": t[0], "is_loopback": True}
                if isinstance(t, tuple)
                else {"target_node": t}
                for t in targets
            ]
            for label, targets in outputs.items()
        }
    }
    if handler is not None:
        raw["handler"] = handler
    return raw


def wf(nodes: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"workflow_name": "w", "default_entry_node": next(iter(nodes)), "nodes": nodes, **top}


def lines_of(text: str, name: str) -> list[str]:
    """The lines of node ``name``'s entry in the text form."""
    lines = text.splitlines()
    start = lines.index(next(line for line in lines if line.startswith(f"  `{name}`: ")))
    out = []
    for line in lines[start + 1 :]:
        if not line.startswith("    - "):
            break
        out.append(line.removeprefix("    - "))
    return out


def test_a_task_says_its_handler_retries_timeout_outputs_and_catchers() -> None:
    nodes = {
        "fetch": {
            **node(ok=["save"], empty=[]),
            "handler": "fetch_url",
            "run_policy": {
                "max_retries": 3,
                "retry_sleep_seconds": 0.5,
                "backoff": "exponential",
                "max_delay_seconds": 4,
                "jitter": "full",
                "retry_on": ["ConnectionError"],
                "timeout_seconds": 90,
            },
            "on_error": [
                {"target_node": "fallback", "codes": ["NODE_TIMEOUT"]},
                {"target_node": "alert", "exceptions": ["KeyError", "ValueError"]},
            ],
            "config": {"url": "x", "method": "GET"},
        },
        "save": node(),
        "fallback": node(),
        "alert": node(),
        "errors": node(),
    }
    text = zeroflow.explain(wf(nodes, default_error_node="errors"))
    assert lines_of(text, "fetch") == [
        "runs handler `fetch_url`",
        "retries up to 3 times (4 attempts) on `ConnectionError`, waiting 0.5 s, then 2 times "
        "longer each retry, at most 4 s (full jitter: a random wait up to that)",
        "each attempt times out after 90 s (1.5 min) (NODE_TIMEOUT)",
        "on `ok` -> `save`",
        "on `empty`: its path ends",
        "if it fails: codes `NODE_TIMEOUT` -> `fallback`; exceptions `KeyError` or `ValueError` "
        "-> `alert`; otherwise -> `errors` (the error node)",
        "config keys: `method` and `url`",
    ]
    assert "A failure no catcher takes goes to `errors` (the error node)" in text
    assert lines_of(text, "fallback")[-1] == "reached only through an error route"


def test_a_wait_says_its_prompt_where_the_answer_goes_its_schema_and_outcomes() -> None:
    nodes = {
        "ask": {
            "kind": "wait",
            "wait": {
                "prompt": "Approve the refund?",
                "resume_as": "approval",
                "resume_schema": {"type": "object", "required": ["outcome", "by"]},
            },
            "outputs": {"approved": [{"target_node": "pay"}], "rejected": []},
        },
        "pay": node(),
    }
    text = zeroflow.explain(wf(nodes))
    assert lines_of(text, "ask") == [
        "waits for an answer: the run pauses here until it is resumed",
        "prompt: \u201cApprove the refund?\u201d",
        "keeps the answer at `state.workflow.approval`",
        'the answer must match its resume_schema (type `"object"`; required `outcome` and `by`)',
        "the answer's `outcome` picks the output (`approved` or `rejected`); any other answer "
        "takes no output (its path ends)",
        "on `approved` -> `pay`",
        "on `rejected`: its path ends",
    ]
    assert "a waiting node pauses the whole run" in text
    branch = zeroflow.explain(wf(nodes, engine_policy={"hitl": "branch"}))
    assert "waits for an answer: its branch pauses here" in branch


def test_end_subflow_and_map_nodes_say_what_they_do() -> None:
    nodes = {
        "each": {
            **node(ok=["child"]),
            "map": {"over": "input.files", "max_concurrency": 4, "tolerated_failures": 2},
            "run_policy": {"max_retries": 1, "retry_sleep_seconds": 0},
        },
        "child": {
            "kind": "subflow",
            "subflow": {"workflow": "billing", "input": {"total": "workflow.total"}},
            "outputs": {"ok": [{"target_node": "done"}]},
        },
        "done": {"kind": "end", "end": {"result": {"status": "ok"}}, "outputs": {}},
        "bare": {"kind": "end", "outputs": {}},
    }
    text = zeroflow.explain(wf(nodes))
    assert lines_of(text, "each")[:3] == [
        "runs `h` once per item of the list at `input.files`, up to 4 items at a time",
        "tolerates 2 failed items; one more fails the node (MAP_FAILED)",
        "per item: retries once (2 attempts) on any exception, a returned retryable error or "
        "a node timeout, at once",
    ]
    assert lines_of(text, "child")[0] == (
        "runs the child workflow `billing` as one step, with input `total` from `workflow.total`"
    )
    assert lines_of(text, "done") == [
        'ends its path with `state.workflow.result` = `{"status": "ok"}`'
    ]
    assert lines_of(text, "bare")[0] == "ends its path with `state.workflow.result` = `null`"
    assert "4 nodes (1 map, 1 subflow, 2 ends)" in text
    assert not any("retries" in line for line in lines_of(text, "child"))


def test_loops_name_their_body_and_every_exit() -> None:
    nodes = {
        "draft": node(ok=["review"]),
        "review": node(ok=["publish"], revise=[("draft", "loop")], drop=["trash"]),
        "publish": node(),
        "trash": node(),
    }
    text = zeroflow.explain(wf(nodes))
    loops = text.split("\nLoops\n", 1)[1]
    assert "`review` on `revise` loops back to `draft`: the next wave runs it again" in loops
    assert "the loop runs `draft` and `review`" in loops
    assert (
        "it ends by `review` on `ok` -> `publish`; or `review` on `drop` -> `trash`; or "
        "`review` not taking `revise`" in loops
    )


def test_joins_say_what_they_wait_for_and_which_arrivals_do_not_count() -> None:
    nodes = {
        "s": node(ok=["a", "b", "c"]),
        "a": node(ok=["m", "o"]),
        "b": node(ok=["m", "o"]),
        "c": node(ok=["m"]),
        "m": {**node(), "join": {"mode": "and", "wait_for": ["a", "b"]}},
        "o": node(),
    }
    text = zeroflow.explain(wf(nodes))
    assert (
        "`m` is an AND-join (a barrier): it runs once `a` and `b` have both arrived in the same "
        "wave; an arrival from `c` does not count" in text
    )
    assert "`o` is an OR-join: it runs once per wave, when the first of `a` and `b` arrives" in text


def test_the_overview_names_the_policies_a_reviewer_must_know() -> None:
    policy = {
        "max_steps": 100,
        "workflow_timeout_seconds": 7200,
        "max_concurrency": 4,
        "strict_outputs": False,
        "stranded_joins": "fail",
    }
    text = zeroflow.explain(wf({"a": node()}, engine_policy=policy))
    assert (
        "It runs up to 4 queued nodes at a time; at most 100 steps (MAX_STEPS_EXCEEDED); times "
        "out after 7200 s (2 h) (WORKFLOW_TIMEOUT); an undeclared output is only a warning; an "
        "AND-join left waiting fails the run (JOIN_STRANDED)." in text
    )
    assert "there is no error node" in text


def test_unreached_nodes_and_nodes_without_handler_are_called_out() -> None:
    nodes = {"a": node(), "lost": {"handler": None, "outputs": {}}}
    text = zeroflow.explain(wf(nodes))
    assert lines_of(text, "lost") == [
        "declares no handler: it fails with HANDLER_TYPE_NOT_DECLARED when it runs",
        "declares no outputs: its path ends here",
        "never reached: no edge or error route leads here",
    ]


def test_legacy_and_its_zf1_twin_read_the_same() -> None:
    module = load_example("02_feature_matrix")
    for defn in (module.LOOPBACK, module.AND_JOIN, module.ERRORS, module.RETRY):
        twin = zeroflow.convert(defn, to="zf/1").definition
        for fmt in ("text", "markdown"):
            legacy_text = zeroflow.explain(defn, fmt)
            zf1_text = zeroflow.explain(twin, fmt)
            assert zf1_text.replace("zf/1 definition", "Legacy definition") == legacy_text


def test_a_zf1_node_without_on_says_every_outcome_ends_there() -> None:
    zf1 = {"version": "zf/1", "name": "w", "entry": "a", "nodes": {"a": {"handler": "h"}}}
    assert "whatever it returns ends its path" in zeroflow.explain(zf1)


def test_markdown_has_headings_and_bullets() -> None:
    text = zeroflow.explain(load_example("04_approvals").WORKFLOW, "markdown")
    assert text.startswith("## Workflow `order_approvals`\n")
    assert "\n### Nodes, in the order the entry reaches them\n\n- `receive`: task\n" in text
    assert "\n  - prompt: \u201cLegal: may we ship to this country?\u201d\n" in text
    assert "\n### Joins\n" in text


HOSTILE = "x\n## Forged heading\n- `evil`"


def test_hostile_names_and_prompts_cannot_forge_lines_or_markup() -> None:
    nodes = {
        "start": node(ok=[HOSTILE]),
        HOSTILE: {
            "kind": "wait",
            "wait": {"prompt": "**click** <script>alert(1)</script>\n### also forged"},
            "outputs": {"o`k": [{"target_node": "``"}]},
        },
        "``": node(),
    }
    for fmt in ("text", "markdown"):
        text = zeroflow.explain(wf(nodes), fmt)
        lines = text.splitlines()
        assert not any("Forged" in line and line.lstrip().startswith("#") for line in lines)
        assert not any(line.lstrip().startswith("### also") for line in lines)
        assert "`x\\n## Forged heading\\n- `evil``" not in text  # a single tick would break out
        assert "`` x\\n## Forged heading\\n- `evil` ``" in text
        assert "``o`k``" in text and "``` `` ```" in text
    markdown = zeroflow.explain(wf(nodes), "markdown")
    assert "\\*\\*click\\*\\* \\<script\\>" in markdown
    assert "<script>" not in markdown


def test_an_unknown_format_is_refused_with_the_choices() -> None:
    with pytest.raises(
        ValueError, match="unknown explain format 'html'; use one of text, markdown"
    ):
        zeroflow.explain(wf({"a": node()}), "html")


@pytest.mark.parametrize("bad", [None, [], {"workflow_name": "w"}, {"nodes": {}}])
def test_an_invalid_definition_raises_the_definition_error(bad: Any) -> None:
    with pytest.raises(WorkflowDefinitionError):
        zeroflow.explain(bad)


def guide_section() -> str:
    guide = (EXAMPLES.parent / "docs" / "USER_GUIDE.md").read_text(encoding="utf-8")
    return guide.split("\n## Explain and plan\n", 1)[1].split("\n## ", 1)[0]


def test_the_user_guide_snippet_prints_what_its_comments_say(
    capsys: pytest.CaptureFixture[str],
) -> None:
    section = guide_section()
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    expected = []
    lines = block.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("print("):
            inline = line.partition(")  # ")[2]
            expected.append(inline or lines[i + 1].removeprefix("# "))
    namespace: dict[str, Any] = {}
    exec(compile(block, "USER_GUIDE.md", "exec"), namespace)
    assert capsys.readouterr().out.splitlines() == expected
    shown = section.split("```text\n", 1)[1].split("```", 1)[0]
    assert shown == namespace["plan"].text()


def test_a_loopback_that_does_not_lead_back_says_no_loop_repeats() -> None:
    nodes = {
        "a": node(ok=["b"]),
        "b": node(next=[("c", "loop")]),
        "c": node(),
        "s": node(again=[("s", "loop")]),
    }
    text = zeroflow.explain(wf(nodes))
    assert (
        "`b` on `next` -> `c` opens the next wave, but `c` does not lead back to `b`: no loop "
        "repeats" in text
    )
    assert "`s` on `again` loops back to `s`" in text and "the loop runs `s`\n" in text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DEFINITION)
def test_a_malformed_definition_gives_text_or_only_a_definition_error(defn: Any) -> None:
    for fmt in ("text", "markdown"):
        try:
            assert zeroflow.explain(defn, fmt).endswith("\n")
        except WorkflowDefinitionError:
            return
    plan = zeroflow.plan(defn)
    assert plan.text().endswith("\n") and plan.to_dict()["workflow"] == plan.workflow


def test_explain_names_compensations_detached_nodes_and_branch_scoped_catchers() -> None:
    import zeroflow

    defn = {
        "workflow_name": "trip",
        "default_entry_node": "book",
        "nodes": {
            "book": {
                "handler": "book",
                "compensate": "cancel_booking",
                "outputs": {"ok": [{"target_node": "notify"}, {"target_node": "pay"}]},
            },
            "notify": {"handler": "notify", "detached": True, "outputs": {"ok": []}},
            "pay": {
                "handler": "pay",
                "on_error": [{"target_node": "refund", "scope": "branch"}],
                "outputs": {"ok": []},
            },
            "refund": {"handler": "refund", "outputs": {"ok": []}},
        },
    }
    text = zeroflow.explain(defn)
    assert "handler `cancel_booking` undoes each completed visit" in text
    assert "detached: a failure is recorded as a warning and never stops the run" in text
    assert "-> `refund` (branch-scoped: other branches go on)" in text


def test_explain_names_wait_deadlines_and_sleep_timers() -> None:
    import zeroflow

    defn = {
        "version": "zf/1",
        "name": "esc",
        "entry": "ask",
        "nodes": {
            "ask": {
                "kind": "wait",
                "prompt": "approve?",
                "timeout_ms": 86_400_000,
                "on": {"ok": "nap", "timeout": "boss"},
            },
            "boss": {
                "kind": "wait",
                "prompt": "boss?",
                "timeout_ms": 3_600_000,
                "on_timeout": "fail",
                "on": {"ok": "nap"},
            },
            "nap": {"kind": "sleep", "for_ms": 60_000, "on": {"ok": "done"}},
            "done": {"kind": "end"},
        },
    }
    text = zeroflow.explain(defn)
    assert "deadline: 86400 s after it pauses; then it takes its `timeout` output" in text
    assert "deadline: 3600 s after it pauses; then the run fails with WAIT_TIMEOUT" in text
    assert "sleeps for 60 s: the run pauses with a durable timer" in text


def test_explain_names_a_nodes_state_contract_and_what_the_engine_does_with_it() -> None:
    import zeroflow

    defn = {
        "workflow_name": "c",
        "default_entry_node": "draft",
        "engine_policy": {"contracts": "enforce"},
        "nodes": {
            "draft": {
                "handler": "draft",
                "state_contract": {
                    "reads_from": ["input.question", "workflow.topic"],
                    "writes_to": ["answer"],
                    "writes_schema": {"type": "object", "required": ["answer"]},
                },
                "outputs": {"ok": []},
            }
        },
    }
    text = zeroflow.explain(defn)
    assert "state contract: reads `topic`; writes `answer` of state.workflow" in text
    assert "its workflow_updates must match its writes_schema" in text
    assert "a write outside it fails the node (CONTRACT_VIOLATION)" in text
