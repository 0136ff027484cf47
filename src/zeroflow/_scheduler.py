"""The pure wave scheduler: which node runs next and where outputs lead.

``Frontier`` holds the queues of one run (``ready_now``, ``ready_next_wave``),
the AND-join arrivals and the nodes executed in the current wave. It takes
data and returns data: no clock, no I/O, no user code. The engine drives it
one step at a time (``take`` then ``route``), which is what lets the same
core serve the sync loop, the async loop and parallel batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ._definition import CompiledWorkflow
from ._models import RunSnapshot

__all__ = ["Route", "RouteTable", "Frontier", "build_routes"]

# (target, is_loopback, wait_for of an AND-join target or None)
Route = tuple[str, bool, "tuple[str, ...] | None"]
RouteTable = Mapping[str, Mapping[str, tuple[Route, ...]]]


def build_routes(graph: CompiledWorkflow) -> RouteTable:
    """Flatten the compiled graph into node -> output -> routes, joins resolved."""
    table: dict[str, dict[str, tuple[Route, ...]]] = {}
    for name, node in graph.nodes.items():
        per_output: dict[str, tuple[Route, ...]] = {}
        for label, edges in node.outputs.items():
            routes: list[Route] = []
            for edge in edges:
                join = graph.nodes[edge.target].join
                wait_for = join.wait_for if join is not None and join.mode == "and" else None
                routes.append((edge.target, edge.loopback, wait_for))
            per_output[label] = tuple(routes)
        table[name] = per_output
    return table


class Frontier:
    """Queues, wave counter, join arrivals and executed marks of one run."""

    __slots__ = ("arrivals", "executed", "ready_next_wave", "ready_now", "wave")

    def __init__(
        self,
        wave: int = 1,
        ready_now: Iterable[str] = (),
        ready_next_wave: Iterable[str] = (),
        arrivals: Mapping[str, Iterable[str]] | None = None,
        executed: Iterable[str] = (),
    ) -> None:
        self.wave = wave
        self.ready_now: list[str] = list(ready_now)
        self.ready_next_wave: list[str] = list(ready_next_wave)
        self.arrivals: dict[str, list[str]] = {k: list(v) for k, v in (arrivals or {}).items()}
        # A dict keeps insertion order (for snapshots) with O(1) membership.
        self.executed: dict[str, None] = dict.fromkeys(executed)

    @classmethod
    def from_snapshot(cls, snap: RunSnapshot) -> Frontier:
        return cls(
            snap.wave, snap.ready_now, snap.ready_next_wave, snap.arrivals, snap.executed_this_wave
        )

    def export(self) -> dict[str, Any]:
        """Plain copies of the queue fields, keyed as in a snapshot."""
        return {
            "wave": self.wave,
            "ready_now": list(self.ready_now),
            "ready_next_wave": list(self.ready_next_wave),
            "arrivals": {k: list(v) for k, v in self.arrivals.items()},
            "executed_this_wave": list(self.executed),
        }

    def has_work(self) -> bool:
        return bool(self.ready_now or self.ready_next_wave)

    def open_wave(self) -> None:
        """Start the next wave: its queue becomes current and executed marks reset."""
        self.ready_now = self.ready_next_wave
        self.ready_next_wave = []
        self.wave += 1
        self.executed.clear()

    def take(self) -> str:
        """Pop the next node (FIFO), opening the next wave first when this one is done.

        Callers check ``has_work()`` first; taking from an empty frontier raises
        ``IndexError``.
        """
        if not self.ready_now:
            self.open_wave()
        node = self.ready_now.pop(0)
        self.executed[node] = None
        return node

    def route(
        self,
        source: str,
        outputs: Iterable[str],
        routes: RouteTable,
        stands_for: str | None = None,
    ) -> None:
        """Queue the targets of ``source``'s ``outputs`` per the OR/AND-join rules.

        ``stands_for``: ``source`` caught that node's failure (a branch-scoped
        catcher), so it arrives at an AND-join waiting for that node in its stead.
        """
        table = routes[source]
        executed = self.executed
        for label in outputs:
            for target, loopback, wait_for in table.get(label, ()):
                if not loopback and target in executed:
                    continue
                queue = self.ready_next_wave if loopback else self.ready_now
                if wait_for is not None:
                    key = f"{self.wave + 1 if loopback else self.wave}:{target}"
                    arrived = self.arrivals.setdefault(key, [])
                    who = stands_for if stands_for in wait_for else source
                    if who not in arrived:
                        arrived.append(who)
                    # Arrivals only grow: the full check runs once enough have come.
                    if len(arrived) < len(wait_for) or not all(w in arrived for w in wait_for):
                        continue
                    del self.arrivals[key]
                if target not in queue:
                    queue.append(target)

    def push_front(self, node: str) -> None:
        """Put a paused node back at the head of the current wave."""
        self.ready_now.insert(0, node)

    def reset(self) -> None:
        """Forget all queued work, arrivals and executed marks (error routing)."""
        self.ready_now = []
        self.ready_next_wave = []
        self.arrivals = {}
        self.executed.clear()

    def stranded_joins(self, graph: CompiledWorkflow) -> list[tuple[str, list[str], list[str]]]:
        """AND-joins that received some but not all arrivals: (node, arrived, missing)."""
        out = []
        for key in sorted(self.arrivals):
            target = key.split(":", 1)[1]
            node = graph.nodes.get(target)
            if node is None or node.join is None:
                continue
            arrived = list(self.arrivals[key])
            missing = [w for w in node.join.wait_for if w not in arrived]
            if missing:
                out.append((target, arrived, missing))
        return out
