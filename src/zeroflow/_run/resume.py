"""Waking a paused run: which waiting node resumes, and child runs started and resumed.

``prepare_resume`` turns a waiting, cancelled or interrupted snapshot into a
live run whose resumed node runs first (a path such as ``"approve/legal"``
names a wait inside a paused subflow). ``ChildLoop`` starts and resumes the
runs of one subflow node's child workflow with that workflow's own loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import _constants as C
from .._input_contract import input_problems
from .._live import LiveRun
from .._models import RunSnapshot, now_iso
from .._timers import TIMER_WAIT, TIMERS, pending_timers
from .loop import RunLoop
from .recorder import EventsOnly, ParentLink
from .requests import Steps
from .waits import RESUMING, child_waits, waiting_paths

__all__ = ["ChildLoop", "prepare_resume"]


def prepare_resume(
    snap: RunSnapshot,
    payload: Any,
    node: str | None,
    *,
    journals: bool,
    now: float | None = None,
) -> LiveRun:
    """Turn a waiting, cancelled or interrupted snapshot into a live run that continues.

    With several waits, ``node`` names the one that resumes; a wait inside a
    paused subflow is named by its path, ``"<subflow node>/<child node>"``.
    Resuming a node that is not waiting raises ``ValueError``; a payload JSON
    cannot hold raises ``NotJSONError``. A wait whose deadline passed by
    ``now`` resumes as timed out (``extra["resuming"]["timed_out"]``): the
    deadline wins, ``payload`` is not used.
    """
    was_waiting = snap.status == C.STATUS_WAITING
    waiting = dict(snap.extra.get("waiting") or {})
    head = snap.ready_now[0] if was_waiting and snap.ready_now else None
    paths = waiting_paths(snap.status, snap.ready_now, snap.extra, snap.waiting_prompt)
    if node is not None and (node in waiting or node == head):
        target, rest = node, ""  # a node whose own name holds a '/'
    else:
        target, _, rest = (node or "").partition("/")
    if rest and node not in paths and rest not in child_waits(snap.extra, target):
        listed = ", ".join(sorted(paths)) or "none"
        raise ValueError(f"node '{node}' of run '{snap.run_id}' is not waiting; waiting: {listed}")
    if node is None and not was_waiting:
        # An interrupted (or cancelled) run carries on with its queued work; its branch
        # waits stay waiting until someone answers them by name.
        return _continue(snap, payload, journals)
    if node is None and len(paths) > 1:
        raise ValueError(
            f"run '{snap.run_id}' has {len(paths)} waiting nodes "
            f"({', '.join(sorted(paths))}); pass node=<name> to say which one resumes"
        )
    chosen: str | None
    if waiting:
        chosen = target if node is not None else next(iter(waiting))
        if chosen not in waiting:
            raise ValueError(
                f"node '{chosen}' of run '{snap.run_id}' is not waiting; "
                f"waiting: {', '.join(sorted(paths))}"
            )
    else:
        if node is not None and target != head:
            listed = f"waiting: {', '.join(sorted(paths))}" if paths else "no node is waiting"
            raise ValueError(f"node '{node}' of run '{snap.run_id}' is not waiting; {listed}")
        chosen = head
    timers = pending_timers(snap.status, snap.ready_now, snap.extra)
    timer = timers.get(chosen) if chosen is not None else None
    timed_out = woken_at = None
    if timer is not None and now is not None and timer[1] == TIMER_WAIT and timer[0] <= now:
        timed_out = timer[0]
        payload = None
    inner = timers.get(f"{chosen}/{rest}") if rest else None
    if inner is not None and now is not None and inner[0] <= now:
        woken_at = now  # a timer of the paused subflow's child: its resume sees it fired
        if inner[1] == TIMER_WAIT:
            payload = None
    snap.status = C.STATUS_RUNNING
    snap.waiting_prompt = None
    run = LiveRun(snap, journals)
    if chosen is not None and chosen in (snap.extra.get(TIMERS) or ()):
        run.set_extra_path((TIMERS, chosen), None)
        if not run.snap.extra.get(TIMERS):
            run.set_extra_path((TIMERS,), None)
    if waiting and chosen is not None:
        run.set_extra_path(("waiting", chosen), None)
        if not run.snap.extra.get("waiting"):
            run.set_extra_path(("waiting",), None)
        run.frontier.push_front(chosen)
    run.resumed = chosen
    run.resume_path = rest or None
    if chosen is not None:
        # Kept in the checkpoints until the node settles: a crash in between must not
        # turn the answered wait back into a new one.
        resuming: dict[str, Any] = {"node": chosen, "path": rest or None}
        if timed_out is not None:
            resuming["timed_out"] = timed_out
        if woken_at is not None:
            resuming["woken_at"] = woken_at
        run.set_extra_path((RESUMING,), resuming)
    if payload is not None:
        run.set_workflow_key("__resume__", payload)
    return run


def _continue(snap: RunSnapshot, payload: Any, journals: bool) -> LiveRun:
    """A live run that picks up where ``snap`` stopped, answering no new wait.

    A wait answered just before the run was interrupted is still being resumed
    (``extra["resuming"]``): its node runs as resumed, with the answer it got.
    """
    snap.status = C.STATUS_RUNNING
    run = LiveRun(snap, journals)
    resuming = snap.extra.get(RESUMING)
    if isinstance(resuming, dict) and isinstance(resuming.get("node"), str):
        path = resuming.get("path")
        run.resumed = resuming["node"]
        run.resume_path = path if isinstance(path, str) else None
    else:
        run.resumed = None
        run.resume_path = None
    if payload is not None:
        run.set_workflow_key("__resume__", payload)
    return run


class ChildLoop:
    """The runs of one subflow node's child workflow, driven by the child's own loop.

    ``recorder`` is the child loop's: each invocation links its live run to the
    parent (``ParentLink``), so the child's effects are written inside the parent.
    """

    def __init__(self, loop: RunLoop, recorder: EventsOnly) -> None:
        self.loop = loop
        self.recorder = recorder

    def _linked(self, run: LiveRun, link: ParentLink) -> Steps:
        recorder = self.recorder
        recorder.link(run, link)
        try:
            return (yield from self.loop.steps(run))
        finally:
            recorder.unlink(run)

    def input_problems(self, child_input: Mapping[str, Any]) -> tuple[str, list[tuple[str, str]]]:
        """The child's ``contracts`` mode, and how ``child_input`` misses its input schema."""
        graph = self.loop.graph
        return graph.policy.contracts or "enforce", input_problems(graph, child_input)

    def start(
        self, run_id: str, child_input: dict[str, Any], deadline: float | None, link: ParentLink
    ) -> Steps:
        """Steps of a new child run; the parent's checkpoint carries it."""
        loop = self.loop
        graph = loop.graph
        stamp = now_iso(loop.clock())
        snap = RunSnapshot(
            run_id=run_id,
            workflow_name=graph.name,
            wf_hash=graph.hash,
            ready_now=[graph.entry],
            started_at=stamp,
            updated_at=stamp,
            deadline_ts=deadline,
        )
        snap.state.input = child_input
        run = LiveRun(snap, False)
        loop.emit(run, C.EVENT_WF_START, None, {"workflow": graph.name})
        return self._linked(run, link)

    def resume(
        self,
        snap: RunSnapshot,
        payload: Any,
        node: str | None,
        link: ParentLink,
        now: float | None = None,
    ) -> Steps:
        """Steps of a paused (or interrupted) child run, resumed with ``payload`` (at ``node``).

        ``now``: the time a timer woke it, so a wait deadline due by then applies.
        """
        loop = self.loop
        run = prepare_resume(snap, payload, node, journals=False, now=now)
        loop.emit(
            run,
            C.EVENT_WF_RESUMED,
            None,
            {"workflow": snap.workflow_name, "resumed_from_step": snap.step, "wave": snap.wave},
        )
        return self._linked(run, link)
