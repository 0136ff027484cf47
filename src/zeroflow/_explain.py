"""``explain``: what a workflow does, in words a reviewer reads in a pull request.

The text is built from the compiled workflow (``CompiledWorkflow`` and its
``_policies`` records), so a legacy definition and its ``zf/1`` twin read the
same. Each node kind's sentence comes from one small function in ``KINDS``;
a new kind adds one function there. Names and user text are shown through
``_prose`` so nothing in a definition can break the layout.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ._definition import CompiledNode, CompiledWorkflow, compile_workflow
from ._grammar import is_zf1
from ._policies import RetryPolicy
from ._prose import code, names, plural, quote, seconds

__all__ = ["explain", "explain_compiled", "KINDS", "KindSentence", "FORMATS", "Words"]

FORMATS = ("text", "markdown")


@dataclass(frozen=True, slots=True)
class Words:
    """How free text is shown in one output format."""

    markdown: bool

    def quote(self, text: str) -> str:
        return quote(text, markdown=self.markdown)


@dataclass(slots=True)
class _Entry:
    """One node, or one loop or join: a head line and the lines under it."""

    head: str
    lines: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Section:
    title: str
    entries: list[_Entry] = field(default_factory=list)


# ---------------------------------------------------------------- one sentence per kind


def _task(graph: CompiledWorkflow, node: CompiledNode, words: Words) -> list[str]:
    if node.handler is None:
        return ["declares no handler: it fails with HANDLER_TYPE_NOT_DECLARED when it runs"]
    return [f"runs handler {code(node.handler)}"]


def _map(graph: CompiledWorkflow, node: CompiledNode, words: Words) -> list[str]:
    spec = node.map
    assert spec is not None
    handler = code(node.handler) if node.handler is not None else "its (missing) handler"
    pace = (
        "one item at a time"
        if spec.max_concurrency == 1
        else f"up to {spec.max_concurrency} items at a time"
    )
    lines = [f"runs {handler} once per item of the list at {code('.'.join(spec.over))}, {pace}"]
    if spec.tolerated_failures:
        lines.append(
            f"tolerates {plural(spec.tolerated_failures, 'failed item')}; "
            "one more fails the node (MAP_FAILED)"
        )
    else:
        lines.append("one failed item fails the node (MAP_FAILED)")
    return lines


def _wait(graph: CompiledWorkflow, node: CompiledNode, words: Words) -> list[str]:
    spec = node.wait
    assert spec is not None
    paused = "its branch" if graph.policy.hitl == "branch" else "the run"
    lines = [f"waits for an answer: {paused} pauses here until it is resumed"]
    if spec.prompt is not None:
        lines.append(f"prompt: {words.quote(spec.prompt)}")
    if spec.resume_as is not None:
        lines.append(f"keeps the answer at {code('state.workflow.' + spec.resume_as)}")
    if spec.resume_schema is not None:
        lines.append(
            f"the answer must match its resume_schema ({_schema_brief(spec.resume_schema)})"
        )
    if spec.timeout_seconds is not None:
        lines.append(
            f"deadline: {_seconds(spec.timeout_seconds)} after it pauses; {_on_timeout(spec)}"
        )
    labels = [label for label in node.outputs if label not in ("ok", "timeout")]
    if labels:
        fallback = code("ok") if "ok" in node.outputs else "no output (its path ends)"
        lines.append(
            f"the answer's {code('outcome')} picks the output ({names(labels, 'or')}); "
            f"any other answer takes {fallback}"
        )
    return lines


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _on_timeout(spec: Any) -> str:
    mode = spec.on_timeout
    if mode == "default":
        return f"then it resumes with its default answer {code(_brief(spec.timeout_payload))}"
    if mode == "route":
        return f"then it takes its {code('timeout')} output (an escalation)"
    return "then the run fails with WAIT_TIMEOUT"


def _sleep(graph: CompiledWorkflow, node: CompiledNode, words: Words) -> list[str]:
    spec = node.sleep
    assert spec is not None
    if spec.until is not None:
        when = f"until the ISO-8601 time at {code('.'.join(spec.until))}"
    else:
        when = f"for {_seconds(spec.for_seconds or 0.0)}"
    paused = "its branch" if graph.policy.hitl == "branch" else "the run"
    return [
        f"sleeps {when}: {paused} pauses with a durable timer, woken by resume_due "
        "(zeroflow runs tick)"
    ]


def _end(graph: CompiledWorkflow, node: CompiledNode, words: Words) -> list[str]:
    return [f"ends its path with {code('state.workflow.result')} = {code(_brief(node.end_result))}"]


def _subflow(graph: CompiledWorkflow, node: CompiledNode, words: Words) -> list[str]:
    spec = node.subflow
    assert spec is not None
    line = f"runs the child workflow {code(spec.workflow)} as one step"
    if spec.input:
        given = ", ".join(f"{code(key)} from {code('.'.join(path))}" for key, path in spec.input)
        line += f", with input {given}"
    return [line, "a child that waits pauses this node; a child that fails fails it"]


KindSentence = Callable[[CompiledWorkflow, CompiledNode, Words], list[str]]

KINDS: Mapping[str, KindSentence] = MappingProxyType(
    {
        "task": _task,
        "map": _map,
        "wait": _wait,
        "sleep": _sleep,
        "end": _end,
        "subflow": _subflow,
    }
)
"""What each kind of node does, as the first lines of its entry (a map is a task with ``map``)."""


def kind_of(node: CompiledNode) -> str:
    return "map" if node.kind == "task" and node.map is not None else node.kind


# ---------------------------------------------------------------- lines shared by the kinds


def _brief(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _schema_brief(schema: Mapping[str, Any] | bool) -> str:
    if isinstance(schema, bool):
        return "anything" if schema else "nothing: every answer is refused"
    parts = []
    if "type" in schema:
        parts.append(f"type {code(_brief(schema['type'], 30))}")
    required = schema.get("required")
    if isinstance(required, list) and required:
        parts.append(f"required {names(str(r) for r in required)}")
    props = schema.get("properties")
    if isinstance(props, Mapping) and props:
        parts.append(f"properties {names(str(p) for p in props)}")
    return "; ".join(parts) or "see the definition"


def _retry(policy: RetryPolicy, unit: str) -> list[str]:
    """The retry and timeout lines of a handler call; ``unit`` names what is called."""
    lines = []
    if policy.max_retries:
        on = (
            f"on {names(policy.retry_on, 'or')}"
            if policy.retry_on is not None
            else "on any exception, a returned retryable error or a node timeout"
        )
        delay = (
            f"waiting {seconds(policy.retry_sleep_seconds)}"
            if policy.retry_sleep_seconds
            else "at once"
        )
        if policy.backoff == "exponential":
            delay += f", then {policy.backoff_rate:g} times longer each retry"
        if policy.max_delay_seconds is not None:
            delay += f", at most {seconds(policy.max_delay_seconds)}"
        if policy.jitter == "full":
            delay += " (full jitter: a random wait up to that)"
        times = "once" if policy.max_retries == 1 else f"up to {policy.max_retries} times"
        lines.append(f"{unit}retries {times} ({policy.max_retries + 1} attempts) {on}, {delay}")
    if policy.timeout_seconds is not None:
        lines.append(
            f"each attempt times out after {seconds(policy.timeout_seconds)} (NODE_TIMEOUT)"
        )
    return lines


def _outputs(graph: CompiledWorkflow, node: CompiledNode) -> list[str]:
    if node.kind == "end":
        return []
    if node.terminal:
        return ["whatever it returns ends its path (written without `on`)"]
    if not node.outputs:
        return ["declares no outputs: its path ends here"]
    lines = []
    for label, edges in node.outputs.items():
        if not edges:
            lines.append(f"on {code(label)}: its path ends")
            continue
        targets = []
        for edge in edges:
            text = code(edge.target)
            if edge.loopback:
                text += " (loops back: the next wave)"
            join = graph.nodes[edge.target].join
            if join is not None and join.mode == "and" and not edge.loopback:
                text += " (an AND-join)"
            targets.append(text)
        lines.append(f"on {code(label)} -> {', '.join(targets)}")
    return lines


def _saga(node: CompiledNode) -> list[str]:
    """A node's compensation and whether its failure is detached from the run."""
    lines = []
    if node.compensate is not None:
        lines.append(
            f"if the run fails for good, handler {code(node.compensate)} undoes each "
            "completed visit (newest first)"
        )
    if node.detached:
        lines.append("detached: a failure is recorded as a warning and never stops the run")
    return lines


def _contract(graph: CompiledWorkflow, node: CompiledNode) -> list[str]:
    """A node's declared state contract, and what the engine does with it."""
    parts = []
    if node.reads is not None:
        parts.append(f"reads {names(sorted(node.reads)) if node.reads else 'nothing'}")
    if node.writes is not None:
        parts.append(f"writes {names(sorted(node.writes)) if node.writes else 'nothing'}")
    lines = [f"state contract: {'; '.join(parts)} of state.workflow"] if parts else []
    if node.input_reads:
        required = (
            graph.input_schema.get("required") if isinstance(graph.input_schema, Mapping) else None
        )
        held = set(required) if isinstance(required, list | tuple) else set()
        listed = names(sorted(node.input_reads))
        lines.append(
            f"reads {listed} of the run's input"
            + (" (required by the input_schema)" if node.input_reads <= held else "")
        )
    if node.writes_schema is not None:
        brief = _schema_brief(node.writes_schema)
        lines.append(f"its workflow_updates must match its writes_schema ({brief})")
    mode = graph.policy.contracts or "warn"
    if (node.writes is not None or node.writes_schema is not None) and mode != "off":
        lines.append(
            "a write outside it fails the node (CONTRACT_VIOLATION)"
            if mode == "enforce"
            else "a write outside it is a warning (contracts: warn)"
        )
    return lines


def _catchers(graph: CompiledWorkflow, node: CompiledNode) -> list[str]:
    if not node.on_error:
        return []
    routes = []
    for catcher in node.on_error:
        what = []
        if catcher.codes is not None:
            what.append(f"codes {names(catcher.codes, 'or')}")
        if catcher.exceptions is not None:
            what.append(f"exceptions {names(catcher.exceptions, 'or')}")
        scope = " (branch-scoped: other branches go on)" if catcher.scope == "branch" else ""
        routes.append(f"{' and '.join(what) or 'any failure'} -> {code(catcher.target)}{scope}")
    if graph.error_node is not None and graph.error_node != node.name:
        routes.append(f"otherwise -> {code(graph.error_node)} (the error node)")
    else:
        routes.append("otherwise the run fails")
    return [f"if it fails: {'; '.join(routes)}"]


def _node_entry(graph: CompiledWorkflow, node: CompiledNode, words: Words, note: str) -> _Entry:
    kind = kind_of(node)
    describe = KINDS.get(kind)
    lines = describe(graph, node, words) if describe is not None else [f"a {kind} node"]
    if node.kind == "task":  # a subflow is not retried; a map retries each item's call
        lines += _retry(node.retry, "per item: " if node.map is not None else "")
    if node.join is not None and node.join.mode == "and":
        lines.append(f"AND-join: runs once {_all_of(node.join.wait_for)} arrived")
    lines += _outputs(graph, node)
    lines += _catchers(graph, node)
    lines += _saga(node)
    lines += _contract(graph, node)
    if node.config:
        lines.append(f"config keys: {names(sorted(node.config))}")
    if note:
        lines.append(note)
    return _Entry(f"{code(node.name)}: {kind}", lines)


# ---------------------------------------------------------------- the graph's shape


def _all_of(wait_for: tuple[str, ...]) -> str:
    """``a`` and ``b`` have both / ``a``, ``b`` and ``c`` have all / ``a`` has."""
    if len(wait_for) == 1:
        return f"{code(wait_for[0])} has"
    return f"{names(wait_for)} have {'both' if len(wait_for) == 2 else 'all'}"


def _successors(node: CompiledNode, *, loops: bool = True) -> list[str]:
    return [e.target for edges in node.outputs.values() for e in edges if loops or not e.loopback]


def _reach(succ: Mapping[str, list[str]], roots: list[str]) -> list[str]:
    """Nodes reachable from ``roots`` through ``succ``, in breadth-first declared order."""
    seen = dict.fromkeys(roots)
    queue = list(seen)
    for here in queue:  # the list grows as it is walked: a breadth-first queue
        for target in succ[here]:
            if target not in seen:
                seen[target] = None
                queue.append(target)
    return queue


def _edges(graph: CompiledWorkflow, *, loops: bool) -> dict[str, list[str]]:
    """Each node's targets (``loops``: loopback edges too), in declared order."""
    return {name: _successors(node, loops=loops) for name, node in graph.nodes.items()}


def _order(graph: CompiledWorkflow) -> tuple[list[str], set[str], set[str]]:
    """Nodes in reading order: from the entry, then the error routes, then the rest."""
    succ = _edges(graph, loops=True)
    main = _reach(succ, [graph.entry])
    catch_roots = [c.target for n in graph.nodes.values() for c in n.on_error]
    if graph.error_node is not None:
        catch_roots.append(graph.error_node)
    seen = set(main)
    recovery = [n for n in _reach(succ, catch_roots) if n not in seen]
    seen.update(recovery)
    rest = [n for n in graph.nodes if n not in seen]
    return [*main, *recovery, *rest], set(recovery), set(rest)


def _predecessors(graph: CompiledWorkflow) -> dict[str, list[str]]:
    preds: dict[str, list[str]] = {name: [] for name in graph.nodes}
    for name, node in graph.nodes.items():
        for target in _successors(node):
            if name not in preds[target]:
                preds[target].append(name)
    return preds


def _joins(graph: CompiledWorkflow) -> list[_Entry]:
    entries = []
    for name, sources in _predecessors(graph).items():
        join = graph.nodes[name].join
        if join is not None and join.mode == "and":
            line = (
                f"{code(name)} is an AND-join (a barrier): it runs once "
                f"{_all_of(join.wait_for)} arrived in the same wave"
            )
            others = [s for s in sources if s not in join.wait_for]
            if others:
                line += f"; an arrival from {names(others, 'or')} does not count"
            entries.append(_Entry(line))
        elif len(sources) > 1:
            entries.append(
                _Entry(
                    f"{code(name)} is an OR-join: it runs once per wave, when the first of "
                    f"{names(sources)} arrives"
                )
            )
    return entries


def _loops(graph: CompiledWorkflow) -> list[_Entry]:
    entries = []
    forward = _edges(graph, loops=False)
    backward: dict[str, list[str]] = {name: [] for name in graph.nodes}
    for name, targets in forward.items():
        for target in targets:
            backward[target].append(name)
    for name, node in graph.nodes.items():
        for label, edges in node.outputs.items():
            for edge in edges:
                if not edge.loopback:
                    continue
                # The body: on a forward path from the loop's target back to its source.
                behind = set(_reach(backward, [name]))
                body = [n for n in _reach(forward, [edge.target]) if n in behind]
                inside = set(body)
                exits = [
                    f"{code(n)} on {code(out)} -> {code(e.target)}"
                    for n in body
                    for out, es in graph.nodes[n].outputs.items()
                    for e in es
                    if not e.loopback and e.target not in inside
                ]
                if not body:
                    entries.append(
                        _Entry(
                            f"{code(name)} on {code(label)} -> {code(edge.target)} opens the "
                            f"next wave, but {code(edge.target)} does not lead back to "
                            f"{code(name)}: no loop repeats"
                        )
                    )
                    continue
                entry = _Entry(
                    f"{code(name)} on {code(label)} loops back to {code(edge.target)}: "
                    "the next wave runs it again"
                )
                entry.lines.append(f"the loop runs {names(body)}")
                ways = [*exits, f"{code(name)} not taking {code(label)}"]
                entry.lines.append(f"it ends by {'; or '.join(ways)}")
                entries.append(entry)
    return entries


def _overview(graph: CompiledWorkflow, zf1: bool) -> list[str]:
    kinds: dict[str, int] = {}
    for node in graph.nodes.values():
        kinds[kind_of(node)] = kinds.get(kind_of(node), 0) + 1
    counted = ", ".join(plural(n, k, "maps" if k == "map" else None) for k, n in kinds.items())
    lines = [
        f"{'zf/1' if zf1 else 'Legacy'} definition, {plural(len(graph.nodes), 'node')} "
        f"({counted}). It starts at {code(graph.entry)}."
    ]
    policy = graph.policy
    rules = [
        "one node at a time"
        if policy.max_concurrency == 1
        else f"up to {policy.max_concurrency} queued nodes at a time"
    ]
    if policy.max_steps is not None:
        rules.append(f"at most {plural(policy.max_steps, 'step')} (MAX_STEPS_EXCEEDED)")
    if policy.workflow_timeout_seconds is not None:
        rules.append(
            f"times out after {seconds(policy.workflow_timeout_seconds)} (WORKFLOW_TIMEOUT)"
        )
    if not policy.strict_outputs:
        rules.append("an undeclared output is only a warning")
    if any(n.kind == "wait" or n.kind == "subflow" for n in graph.nodes.values()):
        rules.append(
            "a waiting node pauses only its own branch"
            if policy.hitl == "branch"
            else "a waiting node pauses the whole run"
        )
    if policy.stranded_joins == "fail":
        rules.append("an AND-join left waiting fails the run (JOIN_STRANDED)")
    lines.append(f"It runs {'; '.join(rules)}.")
    if graph.error_node is not None:
        lines.append(
            f"A failure no catcher takes goes to {code(graph.error_node)} (the error node), "
            "after the queues are cleared."
        )
    else:
        lines.append("A failure no catcher takes fails the run (there is no error node).")
    lines += _input_contract(graph)
    return lines


def _input_contract(graph: CompiledWorkflow) -> list[str]:
    """The workflow's ``state_contract.input_schema``, and what a run's start does with it."""
    if graph.input_schema is None:
        return []
    mode = graph.policy.contracts
    then = {
        "off": "it is not checked (contracts: off)",
        "warn": "an input it refuses is a warning and the run starts (contracts: warn)",
    }.get(mode or "", "a run whose input it refuses is not started (InitialInputError)")
    brief = _schema_brief(graph.input_schema)
    return [f"Its initial_input must match its input_schema ({brief}): {then}."]


# ---------------------------------------------------------------- rendering


def _render_text(title: str, intro: list[str], sections: list[_Section]) -> str:
    out = [title, *intro]
    for section in sections:
        out += ["", section.title]
        for entry in section.entries:
            out.append(f"  {entry.head}")
            out += [f"    - {line}" for line in entry.lines]
    return "\n".join(out) + "\n"


def _render_markdown(title: str, intro: list[str], sections: list[_Section]) -> str:
    out = [f"## {title}", "", *intro]
    for section in sections:
        out += ["", f"### {section.title}", ""]
        for entry in section.entries:
            out.append(f"- {entry.head}")
            out += [f"  - {line}" for line in entry.lines]
    return "\n".join(out) + "\n"


def explain_compiled(graph: CompiledWorkflow, format: str = "text", *, zf1: bool = False) -> str:
    """``explain`` of an already compiled workflow."""
    if format not in FORMATS:
        raise ValueError(f"unknown explain format {format!r}; use one of {', '.join(FORMATS)}")
    words = Words(markdown=format == "markdown")
    order, recovery, unreached = _order(graph)
    nodes = _Section("Nodes, in the order the entry reaches them")
    for name in order:
        note = ""
        if name in recovery:
            note = "reached only through an error route"
        elif name in unreached:
            note = "never reached: no edge or error route leads here"
        nodes.entries.append(_node_entry(graph, graph.nodes[name], words, note))
    sections = [nodes]
    for title, entries in (("Joins", _joins(graph)), ("Loops", _loops(graph))):
        if entries:
            sections.append(_Section(title, entries))
    title = f"Workflow {code(graph.name)}"
    intro = _overview(graph, zf1)
    if words.markdown:
        return _render_markdown(title, intro, sections)
    return _render_text(title, intro, sections)


def explain(defn: Mapping[str, Any], format: str = "text") -> str:
    """Describe ``defn`` (legacy or zf/1) in sentences: ``format`` is ``"text"`` or ``"markdown"``.

    Raises ``WorkflowDefinitionError`` for an invalid definition and
    ``ValueError`` for an unknown format.
    """
    graph = compile_workflow(defn)
    return explain_compiled(graph, format, zf1=is_zf1(defn))
