"""The execution plan: which nodes the engine runs together, wave by wave.

``plan(defn)`` replays the engine's own scheduler (``_scheduler.Frontier``,
SPEC A3) on the compiled workflow as if every node took every output it
declares: each layer is one batch of ``max_concurrency`` nodes taken from the
head of the queue (one node when it is 1), settled in queue order. Loopback
edges feed the next wave; the replay stops when a wave would start exactly
as an earlier wave opened by a loopback did. Catchers and the error node are
replayed on their own, off the main plan. No handler runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ._definition import CompiledWorkflow, compile_workflow
from ._plan import ErrorRoute, LoopEdge, Plan, PlanLayer, PlanWave
from ._scheduler import Frontier, RouteTable, build_routes

__all__ = ["plan", "plan_compiled", "MAX_PLAN_WAVES", "MAX_PLAN_STEPS"]

MAX_PLAN_WAVES = 50
"""A plan replays at most this many waves before it says the rest is cut."""
MAX_PLAN_STEPS = 20_000
"""Nor more than this many node executions (a workflow of thousands of nodes)."""


@dataclass(slots=True)
class _Replay:
    """What one replay found: its waves, the wave it repeats, and the joins left half-met."""

    waves: list[PlanWave]
    repeats: int | None
    truncated: bool
    stranded: list[str]


def _every_output(graph: CompiledWorkflow, name: str) -> list[str]:
    """The outputs the plan assumes ``name`` takes: all it declares (an end node takes none)."""
    node = graph.nodes[name]
    return [] if node.kind == "end" else list(node.outputs)


def _replay(graph: CompiledWorkflow, routes: RouteTable, start: str, concurrency: int) -> _Replay:
    """Run the engine's scheduling rules (``RunLoop.steps``) from ``start``, every output taken.

    A wait pauses where the engine would pause it (the run, or its branch with
    ``hitl: "branch"``) and is answered at once; the answered wait runs again
    first, as after a resume.
    """
    branch = graph.policy.hitl == "branch"
    fr = Frontier(ready_now=[start])
    waves: list[PlanWave] = []
    layers: list[PlanLayer] = []
    opened_by: list[LoopEdge] = []
    next_opened: list[LoopEdge] = []
    seen: dict[tuple[Any, ...], int] = {}
    answered: str | None = None  # the wait being resumed (``run.resumed``)
    branch_waits: list[str] = []  # extra["waiting"], in order
    steps = 0
    repeats: int | None = None
    truncated = False

    def close_wave() -> None:
        waves.append(PlanWave(fr.wave, tuple(layers), tuple(opened_by)))
        layers.clear()

    def opening() -> tuple[Any, ...]:
        prefix = f"{fr.wave}:"
        pending = sorted(
            (k[len(prefix) :], tuple(v)) for k, v in fr.arrivals.items() if k.startswith(prefix)
        )
        return (tuple(fr.ready_now), tuple(pending), tuple(branch_waits))

    while True:
        if not fr.has_work():
            if not branch_waits:
                break
            # The run pauses with only branch waits left; the first one is answered.
            answered = branch_waits.pop(0)
            fr.push_front(answered)
        if not fr.ready_now:
            close_wave()
            opened_by, next_opened = next_opened, []
            fr.open_wave()
            key = opening()
            if key in seen:
                repeats = seen[key]
                break
            seen[key] = fr.wave
            if len(waves) >= MAX_PLAN_WAVES:
                truncated = True
                break
        if steps >= MAX_PLAN_STEPS:
            truncated = True
            break
        names = fr.ready_now[:concurrency]  # one node, or a batch (``_step_batch``)
        steps += len(names)
        barriers: list[str] = []
        pauses: list[str] = []
        resumed: list[str] = []
        for name in names:
            fr.ready_now.pop(0)
            fr.executed[name] = None
            node = graph.nodes[name]
            if node.join is not None and node.join.mode == "and":
                barriers.append(name)
            if node.kind == "wait" and answered != name:
                pauses.append(name)
                if branch and name not in branch_waits:  # extra["waiting"] is keyed by node
                    branch_waits.append(name)
                continue
            if answered == name:
                answered = None
                resumed.append(name)
            outputs = _every_output(graph, name)
            for label in outputs:
                for target, loopback, _ in routes[name].get(label, ()):
                    if loopback:
                        edge = LoopEdge(name, label, target)
                        if edge not in next_opened:
                            next_opened.append(edge)
            fr.route(name, outputs, routes)
        layers.append(PlanLayer(tuple(names), tuple(barriers), tuple(pauses), tuple(resumed)))
        if pauses and not branch:
            # The run pauses once the batch is settled; the first wait is answered and
            # the paused waits go back to the head of the queue (``_step_batch``).
            fr.ready_now[0:0] = pauses
            answered = pauses[0]
    if layers:
        close_wave()
    stranded = [target for target, _, _ in fr.stranded_joins(graph)]
    return _Replay(waves, repeats, truncated, list(dict.fromkeys(stranded)))


def _error_routes(graph: CompiledWorkflow) -> list[ErrorRoute]:
    routes: list[ErrorRoute] = []
    for name, node in graph.nodes.items():
        for catcher in node.on_error:
            routes.append(ErrorRoute(name, catcher.target, catcher.codes, catcher.exceptions))
        if graph.error_node is not None and graph.error_node != name:
            routes.append(ErrorRoute(name, graph.error_node, default=True))
    return routes


def _nodes_of(waves: tuple[PlanWave, ...] | list[PlanWave]) -> set[str]:
    return {name for wave in waves for layer in wave.layers for name in layer.nodes}


def plan_compiled(graph: CompiledWorkflow, max_concurrency: int | None = None) -> Plan:
    """The ``Plan`` of an already compiled workflow (see ``plan``)."""
    if max_concurrency is None:
        concurrency = graph.policy.max_concurrency
    elif isinstance(max_concurrency, int) and not isinstance(max_concurrency, bool):
        concurrency = max_concurrency
    else:
        concurrency = 0
    if concurrency < 1:
        raise ValueError(
            f"plan max_concurrency must be an int >= 1 (leave it out to plan with the "
            f"workflow's own engine_policy.max_concurrency), got {max_concurrency!r}"
        )
    routes = build_routes(graph)
    main = _replay(graph, routes, graph.entry, concurrency)
    unlimited = _replay(graph, routes, graph.entry, max(2, len(graph.nodes)))
    widest = max((len(layer.nodes) for w in unlimited.waves for layer in w.layers), default=1)
    error_routes = _error_routes(graph)
    recovery: dict[str, tuple[PlanWave, ...]] = {}
    stranded = list(main.stranded)
    for route in error_routes:
        if route.target not in recovery:
            replay = _replay(graph, routes, route.target, concurrency)
            recovery[route.target] = tuple(replay.waves)
    loops = tuple(
        LoopEdge(name, label, edge.target)
        for name, node in graph.nodes.items()
        for label, edges in node.outputs.items()
        for edge in edges
        if edge.loopback
    )
    reached = _nodes_of(main.waves).union(*(_nodes_of(w) for w in recovery.values()))
    return Plan(
        workflow=graph.name,
        entry=graph.entry,
        max_concurrency=concurrency,
        hitl=graph.policy.hitl,
        waves=tuple(main.waves),
        repeats_wave=main.repeats,
        truncated=main.truncated,
        loops=loops,
        error_routes=tuple(error_routes),
        recovery=MappingProxyType(recovery),
        unreached=tuple(n for n in graph.nodes if n not in reached),
        stranded=tuple(stranded),
        widest=widest,
        max_steps=graph.policy.max_steps,
    )


def plan(defn: Mapping[str, Any], *, max_concurrency: int | None = None) -> Plan:
    """The execution plan of ``defn`` (legacy or zf/1), as the engine would schedule it.

    ``max_concurrency`` overrides the definition's ``engine_policy.max_concurrency``.
    Raises ``WorkflowDefinitionError`` for an invalid definition, ``ValueError``
    for a ``max_concurrency`` that is not an int >= 1.
    """
    return plan_compiled(compile_workflow(defn), max_concurrency)
