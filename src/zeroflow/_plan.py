"""The execution plan's records and how a plan reads as text.

A ``Plan`` (built by ``_planner.plan``) holds the waves of a workflow, each a
list of ``PlanLayer`` batches, plus the error routes replayed apart. Every
record is frozen, has ``to_dict()`` (plain JSON), and the plan renders as
numbered layers under their waves (``Plan.text()``, ``str(plan)``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._prose import code, names, plural

__all__ = ["Plan", "PlanLayer", "PlanWave", "LoopEdge", "ErrorRoute", "plan_text"]


@dataclass(frozen=True, slots=True)
class LoopEdge:
    """A loopback edge: ``source`` taking ``output`` queues ``target`` for the next wave."""

    source: str
    output: str
    target: str

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "output": self.output, "target": self.target}


@dataclass(frozen=True, slots=True)
class PlanLayer:
    """Nodes the engine takes together (one batch), in queue order.

    ``barriers`` are the AND-joins of the layer (each ran once all its
    ``wait_for`` nodes had arrived); ``pauses`` the wait nodes that stop the
    run (or, with ``hitl: "branch"``, their branch) here until they are
    resumed; ``resumed`` the waits that run here as answered.
    """

    nodes: tuple[str, ...]
    barriers: tuple[str, ...] = ()
    pauses: tuple[str, ...] = ()
    resumed: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodes": list(self.nodes),
            "barriers": list(self.barriers),
            "pauses": list(self.pauses),
            "resumed": list(self.resumed),
        }


@dataclass(frozen=True, slots=True)
class PlanWave:
    """One wave: its layers, and the loopback edges that opened it (none for wave 1)."""

    number: int
    layers: tuple[PlanLayer, ...]
    opened_by: tuple[LoopEdge, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "opened_by": [e.to_dict() for e in self.opened_by],
            "layers": [layer.to_dict() for layer in self.layers],
        }


@dataclass(frozen=True, slots=True)
class ErrorRoute:
    """Where a failure of ``node`` goes: a catcher (``codes``/``exceptions``) or the error node."""

    node: str
    target: str
    codes: tuple[str, ...] | None = None
    exceptions: tuple[str, ...] | None = None
    default: bool = False
    """True for the workflow's ``default_error_node`` (taken when no catcher matches)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "target": self.target,
            "codes": None if self.codes is None else list(self.codes),
            "exceptions": None if self.exceptions is None else list(self.exceptions),
            "default": self.default,
        }


@dataclass(frozen=True, slots=True)
class Plan:
    """The schedule of a workflow in which every node takes every output it declares.

    ``waves`` is the main plan from the entry; ``repeats_wave`` the wave the
    next one would repeat (a loop that keeps taking its loopback output), or
    None. ``recovery`` maps each catcher and the error node to the waves it
    opens after a failure (the queues are cleared first). ``unreached`` lists
    nodes in neither; ``stranded`` the AND-joins the plan never completes.
    ``widest`` is the largest layer with no concurrency limit: the
    ``max_concurrency`` that would run the most nodes together. A task or
    subflow that asks to wait at run time cannot be known here: the plan runs
    it through.
    """

    workflow: str
    entry: str
    max_concurrency: int
    hitl: str
    waves: tuple[PlanWave, ...]
    repeats_wave: int | None = None
    truncated: bool = False
    loops: tuple[LoopEdge, ...] = ()
    error_routes: tuple[ErrorRoute, ...] = ()
    recovery: Mapping[str, tuple[PlanWave, ...]] = field(default_factory=dict)
    unreached: tuple[str, ...] = ()
    stranded: tuple[str, ...] = ()
    widest: int = 1
    max_steps: int | None = None
    """The definition's ``engine_policy.max_steps``: a run fails past that many steps."""

    @property
    def layers(self) -> tuple[PlanLayer, ...]:
        """Every layer of the main plan, wave after wave."""
        return tuple(layer for wave in self.waves for layer in wave.layers)

    @property
    def steps(self) -> tuple[str, ...]:
        """The nodes of the main plan in the order the engine takes them (its trace)."""
        return tuple(name for layer in self.layers for name in layer.nodes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "entry": self.entry,
            "max_concurrency": self.max_concurrency,
            "hitl": self.hitl,
            "waves": [w.to_dict() for w in self.waves],
            "repeats_wave": self.repeats_wave,
            "truncated": self.truncated,
            "loops": [e.to_dict() for e in self.loops],
            "error_routes": [r.to_dict() for r in self.error_routes],
            "recovery": {
                name: [w.to_dict() for w in waves] for name, waves in self.recovery.items()
            },
            "unreached": list(self.unreached),
            "stranded": list(self.stranded),
            "widest": self.widest,
            "max_steps": self.max_steps,
        }

    def text(self) -> str:
        """The plan as plain text, for a terminal or a review comment."""
        return plan_text(self)

    def __str__(self) -> str:
        return self.text()


# ---------------------------------------------------------------- text


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
