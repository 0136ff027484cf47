"""When a stored run's checkpoints reach the store: at once, or a few nodes at a time.

``sync`` (the default) commits every node's checkpoint before the next node
starts. ``batch`` groups the checkpoints of consecutive nodes into one
commit, at most ``max_nodes`` nodes or ``max_ms`` milliseconds apart; a
crash loses at most that window, whose nodes then run again on resume.
``exit`` commits only where a run must be durable. In every mode a pause,
an end, a failure, an effect's intent or receipt, map progress and a
subflow's child are committed at once, and a group is committed before a
third of the store's lease time has passed, so the lease never lapses
under a deferred group.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from .._live import LiveRun

__all__ = ["DURABILITY_MODES", "Durability", "GroupCommit", "parse_durability"]

Mode = Literal["sync", "batch", "exit"]
DURABILITY_MODES: Final = ("sync", "batch", "exit")


class Durability:
    """How often a stored run commits: ``mode`` and, for ``batch``, the window's bounds.

    Immutable. A plain class rather than a dataclass: ``import zeroflow``
    builds it, and a generated dataclass costs a millisecond there.
    """

    __slots__ = ("max_ms", "max_nodes", "mode")

    mode: Mode
    max_nodes: int
    """``batch``: commit once this many nodes' checkpoints are held."""
    max_ms: float
    """``batch``: commit once the oldest held checkpoint is this many milliseconds old."""

    def __init__(self, mode: Mode = "sync", max_nodes: int = 256, max_ms: float = 10.0) -> None:
        if mode not in DURABILITY_MODES:
            raise ValueError(
                f"durability mode must be one of {', '.join(DURABILITY_MODES)}, got {mode!r}"
            )
        if type(max_nodes) is not int or max_nodes < 1:
            raise ValueError(f"durability max_nodes must be an integer >= 1, got {max_nodes!r}")
        if type(max_ms) not in (int, float) or not math.isfinite(max_ms) or max_ms < 0:
            raise ValueError(
                f"durability max_ms must be a finite number of milliseconds >= 0, got {max_ms!r}"
            )
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "max_nodes", max_nodes)
        object.__setattr__(self, "max_ms", max_ms)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Durability is immutable: cannot set {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Durability):
            return NotImplemented
        return (self.mode, self.max_nodes, self.max_ms) == (
            other.mode,
            other.max_nodes,
            other.max_ms,
        )

    def __hash__(self) -> int:
        return hash((self.mode, self.max_nodes, self.max_ms))

    def __repr__(self) -> str:
        return (
            f"Durability(mode={self.mode!r}, max_nodes={self.max_nodes!r}, max_ms={self.max_ms!r})"
        )


def parse_durability(value: object) -> Durability:
    """``"sync"``, ``"batch"``, ``"exit"`` or a ``Durability``; ``ValueError`` otherwise."""
    if isinstance(value, Durability):
        return value
    if isinstance(value, str) and value in DURABILITY_MODES:
        return Durability(value)  # type: ignore[arg-type]
    raise ValueError(
        f"durability must be one of {', '.join(repr(m) for m in DURABILITY_MODES)} "
        f"or a zeroflow.Durability, got {value!r}"
    )


class GroupCommit:
    """Decides, node by node, whether a run's checkpoint may wait for the next commit.

    ``hold`` is asked after a node settles: True means the checkpoint is held
    (nothing written, nothing announced); every write then resets the run's
    count (``LiveRun.held``). The window opens at the first held checkpoint.
    """

    __slots__ = ("clock", "lease_bound", "max_nodes", "window")

    def __init__(self, durability: Durability, clock: Callable[[], float], lease_ttl: float):
        self.clock = clock
        # A lease is renewed by each commit: the next one comes before a third of its time.
        self.lease_bound = lease_ttl / 3 if lease_ttl > 0 else math.inf
        self.max_nodes: float
        if durability.mode == "exit":
            self.max_nodes = math.inf
            self.window = math.inf
        else:
            self.max_nodes = durability.max_nodes
            self.window = durability.max_ms / 1000.0

    def hold(self, run: LiveRun) -> bool:
        """True when ``run``'s checkpoint may be held back; False: write it and those held now."""
        held = run.held + 1
        if held >= self.max_nodes:
            return False
        now = self.clock()
        if now - run.committed_at >= self.lease_bound:
            return False
        if held == 1:
            run.held_since = now
        elif now - run.held_since >= self.window:
            return False
        run.held = held
        return True

    def committed(self, run: LiveRun) -> None:
        """``run``'s lease was just renewed by a commit."""
        run.committed_at = self.clock()
