"""The live record of one run while a call drives it.

``LiveRun`` owns the frozen state containers, the scheduler frontier and the
bookkeeping that turns the steps since the last checkpoint into a
``StepDelta``. It does no I/O and calls no user code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._fastinit import maker
from ._frozen import READ_ONLY_MESSAGE, STORED_DEPTH, FrozenDict, deep_merge, freeze, thaw
from ._journal import StateOp, StepDelta
from ._models import Event, RunSnapshot, WorkflowError, WorkflowState
from ._private import PrivateState
from ._scheduler import Frontier
from ._tagged import CODEC_MARK, tag_safe_ops

__all__ = ["LiveRun", "ReadOnlyState"]

_step_delta = maker(StepDelta)  # one per checkpoint: without the class call (every field)

_set_item = dict.__setitem__
_private_view = PrivateState.over


class ReadOnlyState(WorkflowState):
    """The ``ctx.state`` of read-only isolation: its attributes cannot be reassigned either."""

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise TypeError(READ_ONLY_MESSAGE)

    @classmethod
    def over(cls, input_: FrozenDict, workflow: FrozenDict, node: FrozenDict) -> ReadOnlyState:
        view = object.__new__(cls)
        object.__setattr__(view, "input", input_)
        object.__setattr__(view, "workflow", workflow)
        object.__setattr__(view, "node", node)
        return view

    def _node_state(self, node: str) -> dict[str, Any]:
        """The node's frozen entry itself, or an empty read-only one: never a plain dict."""
        found = self.node.get(node)
        return _EMPTY if found is None else found


_EMPTY = FrozenDict()  # never written: the engine writes only containers inside the state


class LiveRun:
    """Everything one call of ``run()`` / ``run_from_checkpoint()`` mutates."""

    __slots__ = (
        "audit_mark",
        "buffers",
        "committed_at",
        "direct",
        "extra_dirty",
        "failed",
        "fold_due",
        "frontier",
        "held",
        "held_since",
        "input",
        "lease_owner",
        "lease_token",
        "node_state",
        "ops",
        "outbox",
        "resume_path",
        "resumed",
        "resumed_from",
        "retries",
        "seq",
        "snap",
        "sources",
        "tagged",
        "tags_mark",
        "trace_mark",
        "view",
        "workflow",
    )

    def __init__(self, snap: RunSnapshot, journaling: bool) -> None:
        self.snap = snap
        self.frontier = Frontier.from_snapshot(snap)
        # Loaded state gets headroom: it may sit deeper than what entered (see STORED_DEPTH).
        self.input: FrozenDict = freeze(snap.state.input, depth=STORED_DEPTH)
        self.workflow: FrozenDict = freeze(snap.state.workflow, depth=STORED_DEPTH)
        self.node_state: FrozenDict = freeze(snap.state.node, depth=STORED_DEPTH)
        snap.state = WorkflowState(self.input, self.workflow, self.node_state)
        self.view = ReadOnlyState.over(self.input, self.workflow, self.node_state)
        self.sources = (self.input, self.workflow, self.node_state)
        self.failed: WorkflowError | None = None
        # The driver's caller for this call (its answer to ``Direct``), set by the loop.
        self.direct: Callable[[Any, Any], tuple[Any, BaseException | None]] | None = None
        self.ops: list[StateOp] | None = [] if journaling else None
        # A codec's checkpoint: its tags merge whole, so its journal writes merges as sets.
        self.tagged = CODEC_MARK in snap.extra
        self.extra_dirty = False
        self.lease_owner: str | None = None
        # The fencing token of this call's lease; every commit carries it.
        self.lease_token: int | None = None
        # The identity of the run's latest checkpoint in the store (0: none yet).
        self.seq = snap.seq or 0
        # The step of the checkpoint this call continues (a resume checks it is the latest).
        self.resumed_from = snap.step
        # The store asked for a full snapshot at the next checkpoint (a journal fold).
        self.fold_due = False
        # Checkpoints held back for a group commit (``durability="batch"``), since when.
        self.held = 0
        self.held_since = 0.0
        self.committed_at = 0.0
        # Events for a store that takes them in batches (``append_events``), until the
        # next written checkpoint; None: each event goes to ``append_event`` at once.
        self.outbox: list[Event] | None = None
        # The node this call resumes (it runs first and receives the resume payload).
        self.resumed: str | None = None
        # Inside a paused subflow: the child's node that resumes ("w1" of "sub/w1").
        self.resume_path: str | None = None
        # Custom events of handlers running in a parallel batch, delivered in queue order.
        self.buffers: dict[str, list[tuple[str, dict[str, Any]]]] | None = None
        # Retries made by the node (or map items) being executed, until its record is written.
        self.retries: dict[str, int] = {}
        self.trace_mark = len(snap.trace)
        self.tags_mark = len(snap.tags)
        self.audit_mark = len(snap.audit_trail)

    def private_state(self) -> WorkflowState:
        """A plain deep copy of the state, for ``state_isolation: "copy"``."""
        return WorkflowState(thaw(self.input), thaw(self.workflow), thaw(self.node_state))

    def private_view(self) -> PrivateState:
        """A view a handler may change, copied as it reads it (``state_isolation: "private"``)."""
        return _private_view(self.sources)

    def sync(self) -> RunSnapshot:
        """Write the frontier back into the snapshot; return it (state still frozen)."""
        snap, fr = self.snap, self.frontier
        snap.wave = fr.wave
        snap.ready_now = list(fr.ready_now)
        snap.ready_next_wave = list(fr.ready_next_wave)
        snap.arrivals = {k: list(v) for k, v in fr.arrivals.items()}
        snap.executed_this_wave = list(fr.executed)
        return snap

    def export(self) -> RunSnapshot:
        """A plain, independent copy of the run as it is now."""
        return self.sync().copy()

    def merge_workflow(self, update: FrozenDict) -> None:
        deep_merge(self.workflow, update)
        if self.ops is not None:
            self.ops.append(("merge", ("workflow",), update))

    def merge_node(self, node: str, update: FrozenDict) -> None:
        current = self.node_state.get(node)
        if type(current) is FrozenDict:
            deep_merge(current, update)
        else:
            # The update is already a private frozen copy: it becomes the entry itself,
            # and the journal gets a copy of its own (later merges change the entry in place).
            _set_item(self.node_state, node, update)
            if self.ops is not None:
                self.ops.append(("merge", ("node", node), thaw(update)))
            return
        if self.ops is not None:
            self.ops.append(("merge", ("node", node), update))

    def set_workflow_key(self, key: str, value: Any) -> None:
        """Set one key of ``state.workflow``; ``NotJSONError`` if JSON cannot hold ``value``."""
        frozen = freeze(value)
        _set_item(self.workflow, key, frozen)
        if self.ops is not None:
            self.ops.append(("set", ("workflow", key), frozen))

    def delete_workflow_key(self, key: str) -> None:
        dict.pop(self.workflow, key, None)
        if self.ops is not None:
            self.ops.append(("del", ("workflow", key), None))

    def set_extra_path(self, path: tuple[str, ...], value: Any) -> None:
        """Set (or, with None, delete) one entry below ``snapshot.extra``, journaled as an op."""
        parent = self.snap.extra
        for key in path[:-1]:
            child = parent.get(key)
            if not isinstance(child, dict):
                child = parent[key] = {}
            parent = child
        if value is None:
            parent.pop(path[-1], None)
            ops = self.ops
            if ops is not None:
                where = ("extra", *path)
                if ops:  # what was journaled below ``path`` since the last mark is moot now
                    n = len(where)
                    kept = [op for op in ops if op[1][:n] != where]
                    if len(kept) != len(ops):
                        ops[:] = kept
                ops.append(("del", where, None))
            return
        parent[path[-1]] = value
        if self.ops is not None:
            self.ops.append(("set", ("extra", *path), value))

    def set_extra(self, key: str, value: Any) -> None:
        """Record data of a feature beyond 0.1.0 in ``snapshot.extra``."""
        if value is None:
            self.snap.extra.pop(key, None)
        else:
            self.snap.extra[key] = value
        self.extra_dirty = True

    def delta(self) -> StepDelta:
        """The change since the last delta or full save; resets the marks."""
        snap = self.sync()
        delta = _step_delta(
            snap.run_id,
            snap.step,
            snap.wave,
            snap.status,
            snap.updated_at,
            snap.ready_now,
            snap.ready_next_wave,
            snap.arrivals,
            snap.executed_this_wave,
            snap.last_node,
            snap.waiting_prompt,
            snap.last_error,
            snap.trace[self.trace_mark :],
            snap.tags[self.tags_mark :],
            snap.audit_trail[self.audit_mark :],
            (self.ops or ()) if not self.tagged else tag_safe_ops(self.ops or (), self.sources),
            thaw(snap.extra) if self.extra_dirty else None,
        )
        self.mark()
        return delta

    def mark(self) -> None:
        """Note that everything so far is persisted."""
        snap = self.snap
        self.held = 0
        self.trace_mark = len(snap.trace)
        self.tags_mark = len(snap.tags)
        self.audit_mark = len(snap.audit_trail)
        self.extra_dirty = False
        if self.ops is not None:
            self.ops = []
