"""Sessions: how one call takes hold of a run, and how a paused run is woken.

A session takes the store's lease, refuses stale checkpoints and run ids
that already exist, announces the call and always releases the lease.
``prepare_resume`` picks the waiting node that resumes (a path such as
``"approve/legal"`` inside a paused subflow) and ``waiting_paths`` lists them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from . import _constants as C
from ._definition import CompiledWorkflow
from ._errors import RunExistsError, RunLockedError
from ._live import LiveRun
from ._models import RunSnapshot, now_iso
from ._store import LeasingStore, WorkflowStore
from ._tasks import Steps

__all__ = ["Sessions", "waiting_paths"]


def waiting_paths(
    status: str, ready_now: list[str], extra: Mapping[str, Any], prompt: str | None
) -> dict[str, str | None]:
    """Every node a paused run waits on, with its prompt.

    A paused subflow whose child waits at several places is listed by the
    paths of those places (``"approve/legal"``), so each can be resumed.
    """
    branch = extra.get("waiting") or {}
    if branch:
        base = {str(k): (v or None) for k, v in branch.items()}
    elif status == C.STATUS_WAITING and ready_now:
        base = {ready_now[0]: prompt}
    else:
        base = {}
    out: dict[str, str | None] = {}
    for name, text in base.items():
        inner = _child_waits(extra, name)
        if len(inner) > 1:
            out.update({f"{name}/{k}": v for k, v in inner.items()})
        else:
            out[name] = text
    return out


def _child_waits(extra: Mapping[str, Any], node: str) -> dict[str, str | None]:
    """The waits of the paused subflow run by ``node`` (empty when there is none)."""
    child = (extra.get("subflows") or {}).get(node)
    if not child or child.get("status") != C.STATUS_WAITING:
        return {}
    return waiting_paths(
        C.STATUS_WAITING,
        list(child.get("ready_now") or []),
        child.get("zeroflow") or {},
        child.get("waiting_prompt"),
    )


class Sessions:
    """The session half of ``RunMachine``; mixed in, which provides the attributes."""

    graph: CompiledWorkflow
    store: WorkflowStore | None
    leasing: LeasingStore | None
    journal: bool
    batch_events: bool
    clock: Callable[[], float]
    new_owner: Callable[[], str]

    def emit(self, run: LiveRun, kind: str, node: str | None, data: dict[str, Any]) -> None:
        raise NotImplementedError

    def checkpoint(self, run: LiveRun, *, full: bool = False, write: bool = True) -> None:
        raise NotImplementedError

    def flush_events(self, run: LiveRun) -> None:
        raise NotImplementedError

    def steps(self, run: LiveRun) -> Steps:
        raise NotImplementedError

    def session(
        self,
        run: LiveRun,
        kind: str,
        data: dict[str, Any],
        *,
        replace: bool = False,
        resuming: bool = False,
    ) -> Steps:
        """One call on one run: take the lease, announce, drive, always release.

        ``kind`` is the opening event (``wf:start`` or ``wf:resumed``). A store
        with leases is asked first, so a second driver of the same run gets
        ``RunLockedError`` before anything is written; every checkpoint after
        that is a commit fenced by the lease's token. ``resuming``: the run
        continues a stored checkpoint, which must still be the latest.
        """
        leased = self.open_session(
            run, fresh=kind == C.EVENT_WF_START, replace=replace, resuming=resuming
        )
        try:
            self.emit(run, kind, None, data)
            self.checkpoint(run, full=True)
            result = yield from self.steps(run)
            self.flush_events(run)
            return result
        finally:
            # Leaving on an exception drops the events since the last checkpoint, as a
            # crash would: the log describes committed checkpoints, and the next driver
            # runs (and logs) that work again.
            if leased:
                self.close_session(run)

    def open_session(
        self, run: LiveRun, *, fresh: bool, replace: bool = False, resuming: bool = False
    ) -> bool:
        """Take the lease (leasing stores), claim a new run id, refuse a stale checkpoint.

        Returns True when a lease was taken: ``close_session`` must then be called.
        """
        store = self.store
        leasing = self.leasing
        run_id = run.snap.run_id
        if self.batch_events:
            run.outbox = []
        if leasing is None:
            # 0.1.0's stores have no leases: a resume from any checkpoint is theirs to allow.
            if store is not None and fresh:
                self._claim_new_run(run_id, replace, None)
            return False
        owner = self.new_owner()
        run.lease_token = leasing.acquire_lease(run_id, owner)
        run.lease_owner = owner
        try:
            if fresh:
                self._claim_new_run(run_id, replace, owner)
                run.seq = 0
            elif resuming:
                self._check_not_moved_on(run)
            else:
                run.seq = leasing.latest_checkpoint(run_id) or 0
        except BaseException:
            self.close_session(run)
            raise
        return True

    def close_session(self, run: LiveRun) -> None:
        """Give the lease up (a no-op for the store when this call no longer holds it)."""
        owner = run.lease_owner
        if owner is not None and self.leasing is not None:
            run.lease_owner = None
            run.lease_token = None
            self.leasing.release_lease(run.snap.run_id, owner)

    def _check_not_moved_on(self, run: LiveRun) -> None:
        """Refuse a stale checkpoint: another driver advanced the stored run since it was read.

        Two webhook calls that both loaded a waiting run before either resumed it
        must not both proceed: the lease serialises them, this check stops the
        second one. Checkpoints are told apart by their identity (``seq``), so
        two checkpoints at one step are never mistaken for each other.
        """
        snap = run.snap
        run_id = snap.run_id
        expect_seq = run.seq if snap.seq is not None else None
        expect_step = run.resumed_from
        leasing = self.leasing
        assert leasing is not None
        latest = leasing.latest_checkpoint(run_id)
        if latest is None:
            run.seq = 0
            return  # the run is new to this store
        if expect_seq is not None:
            if latest == expect_seq:
                return
        elif leasing.latest_step(run_id) == expect_step:
            run.seq = latest  # a checkpoint no store numbered (0.1.0): judged by its step
            return
        raise self._moved_on(run_id, snap.seq, expect_step, leasing.load_snapshot(run_id))

    @staticmethod
    def _moved_on(run_id: str, seq: int | None, step: int, stored: RunSnapshot) -> RunLockedError:
        which = f"checkpoint {seq} at step {step}" if seq is not None else f"checkpoint step {step}"
        now = (
            f"stored checkpoint {stored.seq} at step {stored.step}"
            if stored.seq is not None
            else f"stored step {stored.step}"
        )
        return RunLockedError(
            f"run '{run_id}' moved on since this checkpoint was taken ({which}, {now}, "
            f"status '{stored.status}'); load it again before resuming",
            run_id=run_id,
        )

    def _claim_new_run(self, run_id: str, replace: bool, owner: str | None) -> None:
        """Refuse to overwrite a stored run unless ``replace``; then clear it for reuse."""
        store = self.store
        assert store is not None
        leasing = self.leasing
        if leasing is not None:
            status = leasing.run_status(run_id)
        else:
            try:
                status = store.load_snapshot(run_id).status
            except KeyError:
                status = None
        if status is None:
            return
        if not replace:
            raise RunExistsError(
                f"run '{run_id}' already exists in the store with status '{status}'; "
                "pick another run_id, resume it with run_from_checkpoint(), or pass "
                "replace=True to start it over",
                run_id=run_id,
            )
        if leasing is not None:
            leasing.delete_run(run_id, owner=owner)  # keeps our own lease, refuses anyone else's

    def start_child(
        self, run_id: str, child_input: dict[str, Any], deadline: float | None
    ) -> Steps:
        """Steps of a new child run (a subflow); the parent's checkpoint carries it."""
        graph = self.graph
        stamp = now_iso(self.clock())
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
        self.emit(run, C.EVENT_WF_START, None, {"workflow": graph.name})
        return self.steps(run)

    def resume_child(self, snap: RunSnapshot, payload: Any, node: str | None = None) -> Steps:
        """Steps of a paused child run, resumed with the parent's payload (at ``node``)."""
        run = self.prepare_resume(snap, payload, node)
        self.emit(
            run,
            C.EVENT_WF_RESUMED,
            None,
            {"workflow": snap.workflow_name, "resumed_from_step": snap.step, "wave": snap.wave},
        )
        return self.steps(run)

    def prepare_resume(self, snap: RunSnapshot, payload: Any, node: str | None) -> LiveRun:
        """Turn a waiting, cancelled or interrupted snapshot into a live run that continues.

        With several waits, ``node`` names the one that resumes; a wait inside a
        paused subflow is named by its path, ``"<subflow node>/<child node>"``.
        Resuming a node that is not waiting raises ``ValueError``.
        """
        was_waiting = snap.status == C.STATUS_WAITING
        waiting = dict(snap.extra.get("waiting") or {})
        head = snap.ready_now[0] if was_waiting and snap.ready_now else None
        paths = waiting_paths(snap.status, snap.ready_now, snap.extra, snap.waiting_prompt)
        target, _, rest = (node or "").partition("/")
        if rest and node not in paths and rest not in _child_waits(snap.extra, target):
            listed = ", ".join(sorted(paths)) or "none"
            raise ValueError(
                f"node '{node}' of run '{snap.run_id}' is not waiting; waiting: {listed}"
            )
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
        snap.status = C.STATUS_RUNNING
        snap.waiting_prompt = None
        run = LiveRun(snap, self.journal)
        if waiting and chosen is not None:
            run.set_extra_path(("waiting", chosen), None)
            if not run.snap.extra.get("waiting"):
                run.set_extra_path(("waiting",), None)
            run.frontier.push_front(chosen)
        run.resumed = chosen
        run.resume_path = rest or None
        if payload is not None:
            run.set_workflow_key("__resume__", payload)
        return run
