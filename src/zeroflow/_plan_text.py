"""A ``Plan`` as plain text: numbered layers under their waves, then what is off the plan."""

from __future__ import annotations

from collections.abc import Iterable

from ._plan import ErrorRoute, Plan, PlanLayer, PlanWave
from ._prose import code, names, plural

__all__ = ["plan_text"]


def _member(name: str, layer: PlanLayer, branch: bool) -> str:
    notes = []
    if name in layer.barriers:
        notes.append("AND-join barrier: every wait_for node has arrived")
    if name in layer.pauses:
        notes.append("waits: its branch pauses here" if branch else "waits: the run pauses here")
    if name in layer.resumed:
        notes.append("answered: runs again and goes on")
    return code(name) + (f" ({'; '.join(notes)})" if notes else "")


def _waves(
    waves: Iterable[PlanWave], branch: bool, indent: str, *, relative: bool = False
) -> list[str]:
    """Numbered layers under wave headings; ``relative`` counts waves from a failure's."""
    lines: list[str] = []
    number = 0
    for wave in waves:
        head = f"{indent}wave {wave.number}"
        if relative:
            later = wave.number - 1
            head = f"{indent}{f'wave +{later}' if later else 'the wave of the failure'}"
        if wave.opened_by:
            edges = ", ".join(
                f"{code(e.source)} on {code(e.output)} -> {code(e.target)}" for e in wave.opened_by
            )
            head += f", opened by the loopback {edges}"
        lines.append(head)
        for layer in wave.layers:
            number += 1
            members = ", ".join(_member(n, layer, branch) for n in layer.nodes)
            lines.append(f"{indent}  {number}. {members}")
    return lines


def _route(route: ErrorRoute) -> str:
    if route.default:
        return f"any other failure -> {code(route.target)} (the error node)"
    what = []
    if route.codes is not None:
        what.append(f"codes {names(route.codes, 'or')}")
    if route.exceptions is not None:
        what.append(f"exceptions {names(route.exceptions, 'or')}")
    return f"{' and '.join(what) or 'any failure'} -> {code(route.target)}"


def plan_text(plan: Plan) -> str:
    """The plan as lines a reviewer reads top to bottom; ends with a newline."""
    branch = plan.hitl == "branch"
    at_once = (
        "one node at a time"
        if plan.max_concurrency == 1
        else f"up to {plural(plan.max_concurrency, 'node')} at a time"
    )
    lines = [
        f"Plan of {code(plan.workflow)} from {code(plan.entry)}, "
        f"max_concurrency {plan.max_concurrency}: {at_once}.",
        (
            "The engine takes the nodes in this order"
            if plan.max_concurrency == 1
            else "Each numbered layer runs together, as one batch"
        )
        + "; the plan assumes every node takes every output it declares.",
    ]
    lines += _waves(plan.waves, branch, "")
    if plan.repeats_wave is not None:
        last = plan.waves[-1].number if plan.waves else 1
        sources = sorted({e.source for e in plan.waves[-1].opened_by})
        lines.append(
            f"wave {last + 1} would run as wave {plan.repeats_wave} again: the loop repeats "
            f"while {names(sources, 'or')} takes its loopback output"
        )
    if plan.max_steps is not None and (
        plan.repeats_wave is not None or len(plan.steps) > plan.max_steps
    ):
        lines.append(
            f"engine_policy.max_steps {plan.max_steps}: a run that keeps going like this "
            f"fails after step {plan.max_steps} (MAX_STEPS_EXCEEDED)"
        )
    if plan.truncated:
        lines.append("... the plan stops here (too long to replay in full)")
    if plan.widest > plan.max_concurrency:
        lines.append(
            f"With max_concurrency {plan.widest} or more, up to {plural(plan.widest, 'node')} "
            "would run together."
        )
    if plan.error_routes:
        lines.append("")
        lines.append("After a failure (off the main plan; the queues are cleared first):")
        by_node: dict[str, list[str]] = {}
        fallback = None
        for route in plan.error_routes:
            if route.default:
                fallback = route.target
                if route.node in by_node:
                    by_node[route.node].append(_route(route))
            else:
                by_node.setdefault(route.node, []).append(_route(route))
        for node, routes in by_node.items():
            lines.append(f"  {code(node)} fails: {'; '.join(routes)}")
        if fallback is not None:
            own = "" if fallback in by_node else "; a failure of its own ends the run"
            lines.append(f"  a failure no catcher takes -> {code(fallback)} (the error node{own})")
        for target, waves in plan.recovery.items():
            lines.append(f"  from {code(target)}:")
            lines += _waves(waves, branch, "    ", relative=True)
    if plan.stranded:
        lines.append("")
        lines.append(
            f"AND-joins the plan never completes: {names(plan.stranded)} (an input never "
            "arrives in the same wave; the run ends with the join_stranded warning)"
        )
    if plan.unreached:
        lines.append("")
        lines.append(f"Never reached: {names(plan.unreached)} (no edge or error route leads there)")
    return "\n".join(lines) + "\n"
