"""Putting the run core together for one workflow and its subflows.

``assemble`` wires a recorder, a ``TaskCaller``, a ``NodeRunner`` and a
``RunLoop`` for the top-level workflow; every subflow node gets a
``ChildLoop`` of its own whose recorder only forwards events (tagged with
the subflow's path) to the engine's callback.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .._definition import CompiledWorkflow
from .._events import EventCallback
from .._signing import CheckpointSigner
from .._store import WorkflowStore
from .._subflows import build_children
from .durability import Durability
from .loop import RunLoop
from .nodes import ChildRuns, NodeRunner
from .recorder import EventsOnly, Recorder, StoreRecorder
from .resume import ChildLoop
from .tasks import TaskCaller

if TYPE_CHECKING:
    import random

    from .._codec_boundary import CodecBoundary

__all__ = ["assemble"]


def assemble(
    graph: CompiledWorkflow,
    subflows: Mapping[str, Mapping[str, Any]],
    handlers: Mapping[str, Callable[..., Any]],
    services: Mapping[str, Any],
    callback: EventCallback | None,
    store: WorkflowStore | None,
    *,
    clock: Callable[[], float],
    rng: random.Random | None,
    is_cancelled: Callable[[], bool],
    new_owner: Callable[[], str],
    signer: CheckpointSigner | None = None,
    durability: Durability | None = None,
    tags: CodecBoundary | None = None,
) -> tuple[RunLoop, dict[str, CompiledWorkflow]]:
    """The loop of ``graph``'s runs, and every compiled child workflow by name.

    ``signer`` signs the top-level run's snapshots (a child's travel inside them);
    ``tags``: the engine's codec, which every handler call of every workflow goes through.
    """

    def loop_for(
        workflow: CompiledWorkflow, recorder: Recorder, children: Mapping[str, ChildRuns]
    ) -> RunLoop:
        tasks = TaskCaller(workflow, handlers, services, recorder, clock, rng, tags)
        nodes = NodeRunner(tasks, recorder, is_cancelled, children)
        return RunLoop(workflow, recorder, nodes, clock, is_cancelled)

    def child(
        workflow: CompiledWorkflow,
        tagged: EventCallback | None,
        children: dict[str, ChildRuns],
    ) -> ChildRuns:
        # A child's checkpoints are not resume points of the parent: it records none; its
        # effects are written inside the parent's record (a link per invocation).
        recorder = EventsOnly(tagged, clock, checkpoints=False)
        return ChildLoop(loop_for(workflow, recorder, children), recorder)

    children, graphs = build_children(graph, subflows, callback, child)
    recorder: Recorder
    if store is None:
        recorder = EventsOnly(callback, clock, checkpoints=True, signer=signer)
    else:
        persist = graph.policy.persist_checkpoints
        recorder = StoreRecorder(
            store, callback, clock, new_owner, persist=persist, signer=signer, durability=durability
        )
    loop = loop_for(graph, recorder, children)
    loop.issue_tokens = True
    return loop, graphs
