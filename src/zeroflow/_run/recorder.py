"""The recorder: the only code of a run that touches the store and the event callbacks.

A recorder opens and closes a call's session (the lease and its fencing
token, the run-id claim, the stale-checkpoint check), builds and emits
events, and writes checkpoints. The loop and the node runners decide *what*
happens and tell the recorder; they never see a store or a callback.

``StoreRecorder`` serves an engine with a store; ``EventsOnly`` serves runs
nobody stores: a top-level run without a store (its callback still hears
``checkpoint`` events) and child runs (subflows), whose checkpoints are the
parent's business.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from .. import _constants as C
from .._errors import RunExistsError, RunLockedError
from .._events import EventCallback, wanted_kinds, wants_checkpoints
from .._fastinit import maker
from .._live import LiveRun
from .._models import LAST_ISO, Event, RunSnapshot, now_iso
from .._signing import SIGNATURE_KEY, CheckpointSigner
from .._store import (
    CheckpointWrite,
    EventBatchingStore,
    JournalingStore,
    LeasingStore,
    WorkflowStore,
)
from .durability import Durability, GroupCommit

__all__ = ["EventsOnly", "ParentLink", "Recorder", "StoreRecorder"]

# Built for every event and commit: without the class call (every field, in order).
_event = maker(Event)
_write = maker(CheckpointWrite)


class Recorder(Protocol):
    """What the loop and the node runners may ask of the outside world's record."""

    listening: bool
    """Someone hears events: without a listener, nobody builds their payloads."""
    checkpoints: bool
    """Checkpoints are recorded (and stamp ``updated_at``); else the result stamps it."""
    journals: bool
    """Runs keep a journal of state operations (the store takes step deltas)."""
    copies_event_data: bool
    """Custom event data is checked and copied now, since it is written later."""

    def open(
        self, run: LiveRun, *, fresh: bool, replace: bool = False, resuming: bool = False
    ) -> None:
        """Take hold of ``run`` for this call; ``close`` must follow, however the call ends."""

    def close(self, run: LiveRun) -> None:
        """Let go of ``run`` (release its lease, if this call still holds one)."""

    def emit(self, run: LiveRun, kind: str, node: str | None, data: dict[str, Any]) -> None:
        """Build one event and hand it to the callback and the store's log."""

    def emit_live(self, run: LiveRun, kind: str, node: str | None, data: dict[str, Any]) -> None:
        """Build one event for the callback only: no store keeps it (``persist=False``).

        ``wf:token`` reaches only a callback that named it among its kinds, so a
        callback written for 0.1.0 hears the events it always heard.
        """

    def checkpoint(
        self, run: LiveRun, *, full: bool = False, write: bool = True, now: bool = False
    ) -> None:
        """Record a resume point (``write=False``: announce it, the next one writes it).

        ``now``: a resume point that must not be held for a group commit (a
        caught failure, a branch's pause), as a ``full`` one never is.
        """

    def progress(self, run: LiveRun, node: str) -> None:
        """Persist progress inside ``node`` (map items), the node still queued."""

    def record_effect(
        self, run: LiveRun, node: str, kind: str, data: dict[str, Any], *, queued: bool
    ) -> None:
        """Emit ``kind`` and persist an effect's change (already in ``run.snap.extra``).

        Written at once, the node still queued (``queued``: a batch's node is
        still in ``ready_now``); a run without a store keeps it in memory.
        """

    def hold_child(self, run: LiveRun, node: str, child: dict[str, Any]) -> None:
        """Persist a running child's snapshot under ``extra["subflows"][node]`` now.

        A child run recorded an effect: ``run``'s subflow node ``node`` is written
        still queued (as ``record_effect`` writes a node of its own), carrying
        ``child``, so a resume continues the child from its effect record.
        """

    def finish(self, run: LiveRun) -> None:
        """Hand over whatever events the call still holds (its end)."""

    def save(
        self,
        run: LiveRun,
        *,
        fresh: bool,
        replace: bool = False,
        events: Iterable[Event] = (),
    ) -> None:
        """Write ``run`` whole outside a loop (fork, migrate), with ``events``, in a session."""

    def export(self, run: LiveRun) -> RunSnapshot:
        """A plain copy of ``run`` to hand to the caller (signed when checkpoints are)."""


def _sign_live(signer: CheckpointSigner | None, run: LiveRun) -> None:
    """Give the live run the signature of what it is now (journaled, so stores keep it)."""
    if signer is not None:
        run.set_extra_path((SIGNATURE_KEY,), signer.signature(run.sync()))


def _export(signer: CheckpointSigner | None, run: LiveRun) -> RunSnapshot:
    snap = run.export()
    if signer is not None:
        signer.sign(snap)
    return snap


@contextmanager
def _as_queued(run: LiveRun, node: str, queued: bool) -> Iterator[None]:
    """``run`` as it stood before ``node`` was taken (its step, trace and queue), for a write.

    ``queued``: a batch's node is still in ``ready_now``. A node whose map progress
    is already stored keeps its taken step, as ``progress`` leaves it.
    """
    snap = run.snap
    trace = snap.trace
    frontier = run.frontier
    untake = not queued and run.trace_mark < len(trace) and trace[-1] == node
    last = snap.last_node
    if not queued:
        frontier.ready_now.insert(0, node)
    if untake:
        trace.pop()
        snap.step -= 1
        snap.last_node = trace[-1] if trace else None
    try:
        yield
    finally:
        if untake:
            trace.append(node)
            snap.step += 1
            snap.last_node = last
        if not queued:
            frontier.ready_now.pop(0)


def _in_batch(run: LiveRun, node: str) -> bool:
    buffers = run.buffers
    return buffers is not None and node in buffers


class ParentLink:
    """Where a child run's effects are made durable: its parent run and subflow node.

    Set by the subflow node for one invocation of the child (``EventsOnly.link``);
    the parent's recorder writes the parent, the child's snapshot inside it.
    """

    __slots__ = ("node", "recorder", "run")

    def __init__(self, recorder: Recorder, run: LiveRun, node: str) -> None:
        self.recorder = recorder
        self.run = run
        self.node = node


class EventsOnly:
    """Events to a callback only, nothing stored; ``checkpoints`` for a top-level run."""

    journals = False
    copies_event_data = False

    def __init__(
        self,
        callback: EventCallback | None,
        clock: Callable[[], float],
        *,
        checkpoints: bool,
        signer: CheckpointSigner | None = None,
    ) -> None:
        self.callback = callback
        self.clock = clock
        self.signer = signer
        self.listening = callback is not None
        self.checkpoints = checkpoints and callback is not None
        self.tells_tokens = _asks_for_tokens(callback)
        self.want_checkpoint = self.checkpoints and wants_checkpoints(wanted_kinds(callback))
        # A child's live runs (by identity) and their parents, while each invocation runs.
        self.links: dict[int, ParentLink] = {}

    def link(self, run: LiveRun, link: ParentLink) -> None:
        """Make ``run``'s effects durable through ``link`` until ``unlink``."""
        self.links[id(run)] = link

    def unlink(self, run: LiveRun) -> None:
        self.links.pop(id(run), None)

    def _to_parent(self, run: LiveRun, node: str, queued: bool) -> None:
        """Hand ``run`` (a child, ``node`` still queued) to its parent's recorder to write."""
        link = self.links.get(id(run))
        if link is None:
            return  # a top-level run without a store: nothing outlives the process
        with _as_queued(run, node, queued):
            child = run.export().to_dict()
        link.recorder.hold_child(link.run, link.node, child)

    def open(
        self, run: LiveRun, *, fresh: bool, replace: bool = False, resuming: bool = False
    ) -> None:
        return None

    def close(self, run: LiveRun) -> None:
        return None

    def emit(self, run: LiveRun, kind: str, node: str | None, data: dict[str, Any]) -> None:
        if self.callback is not None:
            _tell(self.callback, self.clock, run, kind, node, data)

    def emit_live(self, run: LiveRun, kind: str, node: str | None, data: dict[str, Any]) -> None:
        if self.callback is not None and (kind != C.EVENT_WF_TOKEN or self.tells_tokens):
            _tell(self.callback, self.clock, run, kind, node, data)

    def checkpoint(
        self, run: LiveRun, *, full: bool = False, write: bool = True, now: bool = False
    ) -> None:
        if not self.checkpoints:
            return  # nobody to tell; the result stamps updated_at
        snap = run.snap
        snap.updated_at = now_iso(self.clock())
        if self.want_checkpoint:
            _sign_live(self.signer, run)
            # to_dict() copies the live run into plain data itself: no export() first.
            self.emit(run, C.EVENT_CHECKPOINT, snap.last_node, {"state": run.sync().to_dict()})

    def progress(self, run: LiveRun, node: str) -> None:
        return None  # progress kept in memory cannot outlive the process: nothing to write

    def record_effect(
        self, run: LiveRun, node: str, kind: str, data: dict[str, Any], *, queued: bool
    ) -> None:
        # A top-level run keeps its receipts in memory; a child's go into its parent's record.
        if self.callback is not None:
            self.emit(run, kind, node, data)
        self._to_parent(run, node, queued)

    def hold_child(self, run: LiveRun, node: str, child: dict[str, Any]) -> None:
        run.set_extra_path(("subflows", node), child)
        self._to_parent(run, node, _in_batch(run, node))

    def export(self, run: LiveRun) -> RunSnapshot:
        return _export(self.signer, run)

    def finish(self, run: LiveRun) -> None:
        return None

    def save(
        self,
        run: LiveRun,
        *,
        fresh: bool,
        replace: bool = False,
        events: Iterable[Event] = (),
    ) -> None:
        cb = self.callback
        if cb is not None:
            for event in events:
                cb(event)


def _asks_for_tokens(callback: EventCallback | None) -> bool:
    """Whether ``callback`` named ``wf:token`` among its kinds (a plain one hears none)."""
    kinds = None if callback is None else wanted_kinds(callback)
    return kinds is not None and C.EVENT_WF_TOKEN in kinds


def _tell(
    callback: EventCallback,
    clock: Callable[[], float],
    run: LiveRun,
    kind: str,
    node: str | None,
    data: dict[str, Any],
) -> None:
    """Build one event of ``run`` and hand it to ``callback`` only."""
    snap = run.snap
    callback(_event(snap.run_id, snap.step, run.frontier.wave, node, kind, now_iso(clock()), data))


class StoreRecorder:
    """Records a run in a store: leased and fenced when the store is a ``LeasingStore``.

    What the store can do is decided once, with ``isinstance``. A leased call's
    every checkpoint is one fenced ``commit`` carrying the events that led to
    it; a 0.1.0 store gets ``save_snapshot`` (or ``append_step``) and its events
    one by one (or in one ``append_events`` after each write).
    """

    copies_event_data = True
    listening = True
    checkpoints = True

    def __init__(
        self,
        store: WorkflowStore,
        callback: EventCallback | None,
        clock: Callable[[], float],
        new_owner: Callable[[], str],
        *,
        persist: bool,
        signer: CheckpointSigner | None = None,
        durability: Durability | None = None,
    ) -> None:
        self.store = store
        self.signer = signer
        self.callback = callback
        self.clock = clock
        self.new_owner = new_owner
        self.persist = persist
        self.leasing: LeasingStore | None = store if isinstance(store, LeasingStore) else None
        self.journals = persist and (self.leasing is not None or isinstance(store, JournalingStore))
        self.batch_events = self.leasing is not None or isinstance(store, EventBatchingStore)
        self.durable_journal = self.journals and (self.leasing is None or self.leasing.durable)
        self.want_checkpoint = callback is not None and wants_checkpoints(wanted_kinds(callback))
        self.tells_tokens = _asks_for_tokens(callback)
        self.group: GroupCommit | None = None
        if persist and durability is not None and durability.mode != "sync":
            ttl = self.leasing.lease_ttl_seconds if self.leasing is not None else 0.0
            self.group = GroupCommit(durability, clock, ttl)

    # ------------------------------------------------------------------ sessions

    def open(
        self, run: LiveRun, *, fresh: bool, replace: bool = False, resuming: bool = False
    ) -> None:
        """Take the lease (leasing stores), claim a new run id, refuse a stale checkpoint.

        A second driver of the same run gets ``RunLockedError`` before anything
        is written; every checkpoint after that is a commit fenced by the
        lease's token. ``resuming``: the run continues a stored checkpoint,
        which must still be the latest.
        """
        leasing = self.leasing
        run_id = run.snap.run_id
        if self.batch_events:
            run.outbox = []
        if leasing is None:
            # 0.1.0's stores have no leases: a resume from any checkpoint is theirs to allow.
            if fresh:
                self._claim_new_run(run_id, replace, None)
            return
        owner = self.new_owner()
        run.lease_token = leasing.acquire_lease(run_id, owner)
        run.lease_owner = owner
        try:
            if fresh:
                self._claim_new_run(run_id, replace, owner)
                run.seq = 0
            elif resuming:
                self._check_not_moved_on(run, leasing)
            else:
                run.seq = leasing.latest_checkpoint(run_id) or 0
        except BaseException:
            self.close(run)
            raise

    def close(self, run: LiveRun) -> None:
        """Give the lease up (a no-op for the store when this call no longer holds it)."""
        owner = run.lease_owner
        if owner is not None and self.leasing is not None:
            run.lease_owner = None
            run.lease_token = None
            self.leasing.release_lease(run.snap.run_id, owner)

    def _check_not_moved_on(self, run: LiveRun, leasing: LeasingStore) -> None:
        """Refuse a stale checkpoint: another driver advanced the stored run since it was read.

        Two webhook calls that both loaded a waiting run before either resumed it
        must not both proceed: the lease serialises them, this check stops the
        second one. Checkpoints are told apart by their identity (``seq``), so
        two checkpoints at one step are never mistaken for each other.
        """
        snap = run.snap
        run_id = snap.run_id
        latest = leasing.latest_checkpoint(run_id)
        if latest is None:
            run.seq = 0
            return  # the run is new to this store
        if snap.seq is not None:
            if latest == run.seq:
                return
        elif leasing.latest_step(run_id) == run.resumed_from:
            run.seq = latest  # a checkpoint no store numbered (0.1.0): judged by its step
            return
        raise _moved_on(run_id, snap.seq, run.resumed_from, leasing.load_snapshot(run_id))

    def _claim_new_run(self, run_id: str, replace: bool, owner: str | None) -> None:
        """Refuse to overwrite a stored run unless ``replace``; then clear it for reuse."""
        leasing = self.leasing
        if leasing is not None:
            status = leasing.run_status(run_id)
        else:
            try:
                status = self.store.load_snapshot(run_id).status
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

    # ------------------------------------------------------------------ events

    def emit(self, run: LiveRun, kind: str, node: str | None, data: dict[str, Any]) -> None:
        """The one place a stored run's events are built: to the callback, then the log."""
        snap = run.snap
        sec = int(self.clock())
        last = LAST_ISO[0]  # now_iso's own cache, read without a call per event
        ts = last[1] if last[0] == sec else now_iso(sec)
        event = _event(snap.run_id, snap.step, run.frontier.wave, node, kind, ts, data)
        cb = self.callback
        if cb is not None:
            cb(event)
        outbox = run.outbox
        if outbox is not None:
            outbox.append(event)
        else:
            self.store.append_event(snap.run_id, event)

    def emit_live(self, run: LiveRun, kind: str, node: str | None, data: dict[str, Any]) -> None:
        """An event for the callback only (a handler's ``ctx.emit(..., persist=False)``)."""
        if self.callback is not None and (kind != C.EVENT_WF_TOKEN or self.tells_tokens):
            _tell(self.callback, self.clock, run, kind, node, data)

    def finish(self, run: LiveRun) -> None:
        """Hand the events held for a batching store over in one call.

        A leased run's events go with its commits instead, unless it persists no
        checkpoints (``persist_checkpoints: false``).
        """
        outbox = run.outbox
        if outbox and (run.lease_owner is None or not self.persist):
            run.outbox = []
            self.store.append_events(run.snap.run_id, outbox)  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ checkpoints

    def checkpoint(
        self, run: LiveRun, *, full: bool = False, write: bool = True, now: bool = False
    ) -> None:
        """A resume point: write the store, emit ``store:saved``, then ``checkpoint``.

        ``write=False`` (a new wave opening) announces the checkpoint but leaves the
        write to the next one: opening a wave is decided by the state already
        saved, so a crash in between loses nothing. A leased run's checkpoint and
        its events are one fenced ``commit``; callbacks hear of it once it is written.
        Under a group commit (``durability`` other than ``sync``) a node's
        checkpoint may be held: nothing is written or announced, and the next
        written one carries it.
        """
        group = self.group
        if group is not None and not (full or now) and (not write or group.hold(run)):
            return
        snap = run.snap
        sec = int(self.clock())
        last = LAST_ISO[0]
        snap.updated_at = last[1] if last[0] == sec else now_iso(sec)
        if self.signer is not None:
            _sign_live(self.signer, run)
        if self.persist:
            if write and run.lease_owner is not None:
                saved, point = self._checkpoint_events(run)
                self._commit(run, full=full, extra_events=(saved, point))
                cb = self.callback
                if cb is not None:
                    cb(saved)
                    cb(point)
                return
            if write:
                if self.journals and not (full or run.fold_due):
                    # True: the store asks for a full snapshot next (its journal is due a fold).
                    run.fold_due = bool(
                        self.store.append_step(snap.run_id, run.delta())  # type: ignore[attr-defined]
                    )
                else:
                    self.store.save_snapshot(run.sync())
                    run.mark()
                    run.fold_due = False
            self.emit(
                run,
                C.EVENT_STORE_SAVED,
                snap.last_node,
                {"run_id": snap.run_id, "status": snap.status},
            )
        if self.want_checkpoint:
            # to_dict() copies the live run into plain data itself: no export() first.
            self.emit(run, C.EVENT_CHECKPOINT, snap.last_node, {"state": run.sync().to_dict()})
        else:
            # The log keeps a pointer, not the whole snapshot (O(1) per checkpoint).
            self.emit(run, C.EVENT_CHECKPOINT, snap.last_node, {"step": snap.step})
        if write and run.outbox:
            # A wave opening (write=False) keeps its events for the next written checkpoint.
            self.finish(run)

    def _checkpoint_events(self, run: LiveRun) -> tuple[Event, Event]:
        """``store:saved`` and ``checkpoint`` of a commit, built before it is written."""
        snap = run.snap
        ts = snap.updated_at or now_iso(self.clock())  # checkpoint() stamped it just now
        wave = run.frontier.wave
        saved = _event(
            snap.run_id,
            snap.step,
            wave,
            snap.last_node,
            C.EVENT_STORE_SAVED,
            ts,
            {"run_id": snap.run_id, "status": snap.status},
        )
        if self.want_checkpoint:
            snap.seq = run.seq + 1
            data: dict[str, Any] = {"state": run.sync().to_dict()}
        else:
            data = {"step": snap.step}
        point = _event(snap.run_id, snap.step, wave, snap.last_node, C.EVENT_CHECKPOINT, ts, data)
        return saved, point

    def _commit(self, run: LiveRun, *, full: bool, extra_events: Iterable[Event] = ()) -> None:
        """Write one fenced checkpoint with the events that led to it (leased runs).

        A full save hands the store the live snapshot itself (``run.sync()``): a
        store keeps a copy of what it is given (``WorkflowStore.save_snapshot``),
        so a copy made here first would be a second one.

        ``RunLockedError`` from the store means this call lost its lease: nothing of
        the checkpoint is written and the call stops here.
        """
        store = self.leasing
        assert store is not None and run.lease_owner is not None and run.lease_token is not None
        snap = run.snap
        seq = run.seq + 1
        snap.seq = seq
        events = [*(run.outbox or ()), *extra_events]
        if full or run.fold_due:
            write = _write(seq, run.sync(), None, events)
            run.mark()
        else:
            write = _write(seq, None, run.delta(), events)
        run.fold_due = bool(store.commit(snap.run_id, run.lease_owner, run.lease_token, write))
        run.seq = seq
        run.outbox = []
        if self.group is not None:
            self.group.committed(run)

    def progress(self, run: LiveRun, node: str) -> None:
        """Persist progress inside a node (map items) with the node still queued, no events.

        Only durable stores get it: progress kept in this process's memory cannot
        outlive a crash, and a cancel saves it with the run's final checkpoint.
        """
        if not self.durable_journal:
            return
        frontier = run.frontier
        frontier.ready_now.insert(0, node)
        try:
            _sign_live(self.signer, run)
            if run.lease_owner is not None:
                # The finished items' events go with their progress (the node's start, emits).
                self._commit(run, full=False)
            else:
                due = self.store.append_step(run.snap.run_id, run.delta())  # type: ignore[attr-defined]
                run.fold_due = run.fold_due or bool(due)
        finally:
            frontier.ready_now.pop(0)
        self.finish(run)

    def record_effect(
        self, run: LiveRun, node: str, kind: str, data: dict[str, Any], *, queued: bool
    ) -> None:
        """Write an effect's intent or receipt now, with its event, the node still queued.

        Every store gets it, durable or not (an in-memory store outlives a failed
        call of this process): the stored run is the one from before the node
        was taken (its step, trace and queue), plus the effect, so a resume runs
        the node again at the same step. A node whose map progress is already
        stored keeps its taken step, as ``progress`` leaves it.
        """
        self.emit(run, kind, node, data)
        self._write_queued(run, node, queued)

    def hold_child(self, run: LiveRun, node: str, child: dict[str, Any]) -> None:
        """Write ``run`` with its running child inside, the subflow node still queued."""
        run.set_extra_path(("subflows", node), child)
        self._write_queued(run, node, _in_batch(run, node))

    def _write_queued(self, run: LiveRun, node: str, queued: bool) -> None:
        if not self.persist:
            return
        with _as_queued(run, node, queued):
            _sign_live(self.signer, run)
            if run.lease_owner is not None:
                self._commit(run, full=False)
            elif self.journals and not run.fold_due:
                due = self.store.append_step(run.snap.run_id, run.delta())  # type: ignore[attr-defined]
                run.fold_due = bool(due)
            else:
                self.store.save_snapshot(run.sync())
                run.mark()
                run.fold_due = False
        self.finish(run)

    def save(
        self,
        run: LiveRun,
        *,
        fresh: bool,
        replace: bool = False,
        events: Iterable[Event] = (),
    ) -> None:
        """Write ``run`` whole under its own session (fork, migrate), then tell the callback.

        ``fresh``: a new run id (``RunExistsError`` unless ``replace``); otherwise
        the run's stored checkpoint must still be the one ``run`` continues.
        """
        events = tuple(events)
        _sign_live(self.signer, run)
        self.open(run, fresh=fresh, replace=replace, resuming=not fresh)
        try:
            if run.lease_owner is not None:
                self._commit(run, full=True, extra_events=events)
            else:
                self.store.save_snapshot(run.sync())
                for event in events:
                    self.store.append_event(run.snap.run_id, event)
        finally:
            self.close(run)
        cb = self.callback
        if cb is not None:
            for event in events:
                cb(event)

    def export(self, run: LiveRun) -> RunSnapshot:
        """A plain copy of ``run``, signed when the engine has a checkpoint key."""
        return _export(self.signer, run)


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
