"""``WorkflowEngine``: the public entry points of zeroflow.

The engine validates and compiles the definition once and assembles its run
core (``_run``); each call builds a ``LiveRun`` for the loop and hands the
loop's steps to a driver (``_drivers``): the sync one calls handlers in this
thread, the async one awaits them. Redrive prepares a snapshot and does the
same; fork and migrate write one through the recorder.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from . import _constants as C
from ._definition import CompiledWorkflow, compile_workflow
from ._drivers import drive_async, drive_sync, loop_running
from ._errors import (
    CodecError,
    HashMismatchError,
    InvalidCheckpointError,
    InvalidTransitionError,
    ResumeInputError,
    ResumeTokenError,
    RunLockedError,
    RunNotFoundError,
    StoreError,
    StoreNotConfiguredError,
    WorkflowDefinitionError,
)
from ._events import EventCallback, wanted_kinds
from ._frozen import FrozenDict, NotJSONError, deep_merge, freeze, thaw
from ._input_contract import admit_input
from ._live import LiveRun
from ._models import (
    Event,
    HandlerResult,
    RunSnapshot,
    StepRecord,
    WorkflowContext,
    WorkflowResult,
    now_iso,
)
from ._run.assemble import assemble
from ._run.compensation import redrive_compensation
from ._run.durability import Durability, parse_durability
from ._run.override import OVERRIDE, check_override
from ._run.requests import Steps
from ._run.resume import prepare_resume
from ._run.waits import RESUMING, waiting_paths
from ._signing import CheckpointSigner
from ._store import WorkflowStore
from ._subflows import check_child_hashes, child_hashes
from ._tagged import CODEC_MARK
from ._timers import due_timers
from ._tokens import TOKENS, check_token
from ._transitions import check_transition

if TYPE_CHECKING:
    import random
    from pathlib import Path

    from ._codec_boundary import CodecBoundary
    from ._run.loop import RunLoop
    from ._stream import AsyncRunStream, RunStream
    from ._upgrade import UpgradeReport
    from .codecs import Codec

# Imported where first used, not at ``import zeroflow``: ``inspect`` (engine
# construction), ``pathlib`` (``from_files``), ``_upgrade`` (migrate, check_upgrade,
# loading a checkpoint) and ``random`` (the first jittered retry, in ``_run.tasks``).

__all__ = ["Handler", "WorkflowEngine"]

Handler = Callable[[WorkflowContext], HandlerResult | Awaitable[HandlerResult]]
Checkpoint = RunSnapshot | Mapping[str, Any] | str


def _short(digest: str) -> str:
    return digest[:12]


class WorkflowEngine:
    """Runs one workflow definition: validated once, then ``run()`` as often as you like.

    An engine is safe to share between threads that drive different runs.
    The cancel flag is per engine, as in 0.1.0: ``cancel()`` stops whichever
    call of this engine checks it next, and every call clears it when it starts.
    """

    def __init__(
        self,
        workflow_def: Mapping[str, Any],
        handlers: Mapping[str, Handler],
        services: Mapping[str, Any] | None = None,
        event_callback: EventCallback | None = None,
        store: WorkflowStore | None = None,
        *,
        subflows: Mapping[str, Mapping[str, Any]] | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
        run_id_factory: Callable[[], str] | None = None,
        lease_owner_factory: Callable[[], str] | None = None,
        checkpoint_key: bytes | None = None,
        durability: str | Durability = "sync",
        resume_token_factory: Callable[[], str] | None = None,
        codec: Codec | None = None,
    ) -> None:
        graph: CompiledWorkflow = compile_workflow(workflow_def)
        self._tags: CodecBoundary | None = None
        if codec is not None:
            from ._codec_boundary import CodecBoundary
            from .codecs import Codec

            if not isinstance(codec, Codec):
                raise TypeError(
                    "codec must be a zeroflow.codecs.Codec (zeroflow.codecs.standard()), "
                    f"got {type(codec).__name__}"
                )
            self._tags = CodecBoundary(codec)
        self.durability = parse_durability(durability)
        self._signer = None if checkpoint_key is None else CheckpointSigner(checkpoint_key)
        if not isinstance(handlers, Mapping):
            raise TypeError(
                "handlers must be a mapping of handler name to callable, "
                f"got {type(handlers).__name__}"
            )
        for name, fn in handlers.items():
            if not callable(fn):
                raise TypeError(
                    f"handler '{name}' must be callable (a function taking a WorkflowContext), "
                    f"got {type(fn).__name__}"
                )
        if services is not None and not isinstance(services, Mapping):
            raise TypeError(f"services must be a mapping, got {type(services).__name__}")
        if event_callback is not None and not callable(event_callback):
            raise TypeError(f"event_callback must be callable, got {type(event_callback).__name__}")
        self._graph = graph
        self._store = store
        self._cancel = threading.Event()
        self._sleep = sleep
        self._clock = clock or time.time
        self._new_id = run_id_factory or _uuid4_hex
        new_owner = lease_owner_factory or _uuid4_hex
        handler_map = dict(handlers)
        import inspect  # once per engine; dataclasses has loaded it on Python 3.11 anyway

        self._async_handlers = sorted(
            name for name, fn in handler_map.items() if inspect.iscoroutinefunction(fn)
        )
        service_map: Mapping[str, Any] = {} if services is None else services
        self._callback = event_callback
        self._pace: Callable[[], None] | None = None
        self._apace: Callable[[], Awaitable[None]] | None = None

        def wire(callback: EventCallback | None, is_cancelled: Callable[[], bool]) -> RunLoop:
            loop, self._subflow_graphs = assemble(
                graph,
                subflows or {},
                handler_map,
                service_map,
                callback,
                store,
                clock=self._clock,
                rng=rng,
                is_cancelled=is_cancelled,
                new_owner=new_owner,
                signer=self._signer,
                durability=self.durability,
                tags=self._tags,
            )
            if resume_token_factory is not None:
                loop.new_token = resume_token_factory
            return loop

        if resume_token_factory is not None and not callable(resume_token_factory):
            raise TypeError(
                "resume_token_factory must be callable (returning a str), got "
                f"{type(resume_token_factory).__name__}"
            )
        self._wire = wire
        self._loop = wire(event_callback, self._cancel.is_set)
        self._recorder = self._loop.recorder

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_files(
        cls,
        workflow_json_path: str | Path,
        handlers: Mapping[str, Handler],
        services: Mapping[str, Any] | None = None,
        event_callback: EventCallback | None = None,
        store: WorkflowStore | None = None,
        *,
        subflows: Mapping[str, str | Path] | None = None,
        **options: Any,
    ) -> WorkflowEngine:
        """Build an engine from a UTF-8 JSON file (and child definitions from their files)."""
        from pathlib import Path

        data = _read_definition(Path(workflow_json_path))
        children = {name: _read_definition(Path(p)) for name, p in (subflows or {}).items()}
        return cls(
            data, handlers, services, event_callback, store, subflows=children or None, **options
        )

    # ------------------------------------------------------------------ properties

    @property
    def workflow_hash(self) -> str:
        """SHA-256 of the definition, as 0.1.0 computes it; checkpoints are locked to it."""
        return self._graph.hash

    @property
    def workflow_name(self) -> str:
        """The definition's ``workflow_name``."""
        return self._graph.name

    @property
    def store(self) -> WorkflowStore | None:
        """The store this engine persists to, if any."""
        return self._store

    # ------------------------------------------------------------------ control

    def cancel(self) -> None:
        """Ask the running call to stop before its next node (thread-safe)."""
        self._cancel.set()

    def load_snapshot(
        self, run_id: str, step: int | None = None, *, seq: int | None = None
    ) -> RunSnapshot:
        """Load a run's latest snapshot (or the last one after ``step``) from the store.

        ``seq`` loads one checkpoint exactly (``CheckpointInfo.seq`` of
        ``store.history()``), e.g. a pause that its resume at the same step
        shadows for ``step``. With a ``checkpoint_key``, an unsigned or altered
        snapshot is refused (``InvalidCheckpointError``).
        """
        store = self._require_store()
        if seq is not None:
            snap = store.load_snapshot(run_id, step=step, seq=seq)  # type: ignore[call-arg]
        elif step is None:
            snap = store.load_snapshot(run_id)
        else:
            snap = store.load_snapshot(run_id, step=step)  # type: ignore[call-arg]
        if self._signer is not None:
            self._signer.verify(snap)
        return snap

    # ------------------------------------------------------------------ runs

    def run(
        self,
        initial_input: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        *,
        replace: bool = False,
    ) -> WorkflowResult:
        """Start a new run at the entry node and drive it until it ends or pauses.

        With a store, a ``run_id`` the store already holds raises
        ``RunExistsError`` unless ``replace=True``.
        """
        self._refuse_inside_loop()
        return self._drive_sync(self._start(initial_input, run_id, replace))

    def run_from_checkpoint(
        self,
        checkpoint: RunSnapshot | Mapping[str, Any],
        resume_input: Any = None,
        *,
        node: str | None = None,
        actor: str | None = None,
        token: str | None = None,
    ) -> WorkflowResult:
        """Continue a waiting, cancelled or interrupted run from ``checkpoint``.

        ``resume_input`` (when not None) lands in ``state.workflow["__resume__"]``
        and the waiting node (``node``, when several wait) runs again first. A
        failed run is continued by ``redrive()``; a succeeded one has nothing
        left to do: both raise ``ValueError`` here. ``actor`` (who answered) is
        recorded with the time in ``extra["answers"]`` and the ``wf:resumed`` event.
        ``token`` (from ``WorkflowResult.resume_tokens``) must open the wait when
        given, or when the workflow sets ``require_resume_token``; a missing, spent,
        foreign or forged one raises ``ResumeTokenError`` before anything changes.
        """
        self._refuse_inside_loop()
        return self._drive_sync(self._resume(checkpoint, resume_input, node, actor, token=token))

    def resume(
        self,
        run_id: str,
        node: str | None = None,
        resume_input: Any = None,
        *,
        actor: str | None = None,
        token: str | None = None,
    ) -> WorkflowResult:
        """Load, lease, resume and save a stored run in one call (for webhook handlers)."""
        _check_node_arg(node)
        return self.run_from_checkpoint(
            self._load(run_id), resume_input, node=node, actor=actor, token=token
        )

    def redrive(
        self,
        checkpoint: Checkpoint,
        *,
        override: Mapping[str, Any] | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> WorkflowResult:
        """Continue a failed or cancelled run as if the failed node had not run.

        The failed node runs again first, with the queues, arrivals and state it
        had before it failed; completed nodes are not re-run; the failure stays
        in the audit trail and ``__error__`` is cleared. Accepts a snapshot, its
        dict, or a run id to load from the store.

        ``override={node: {"outputs": [...], "workflow_updates": {...},
        "node_updates": {...}}}`` marks the failed node done with that result
        instead of calling it, recorded as an override (with ``actor`` and
        ``reason``); a result that does not fit raises ``OverrideError`` before
        anything changes. A run whose compensation failed retries the failed
        compensation and the ones after it; a compensated run cannot be redriven.
        """
        self._refuse_inside_loop()
        return self._drive_sync(self._redrive(checkpoint, override, actor, reason))

    async def arun(
        self,
        initial_input: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        *,
        replace: bool = False,
    ) -> WorkflowResult:
        """``run()`` for ``async def`` handlers (plain handlers work too)."""
        return await self._drive_async(self._start(initial_input, run_id, replace))

    async def arun_from_checkpoint(
        self,
        checkpoint: RunSnapshot | Mapping[str, Any],
        resume_input: Any = None,
        *,
        node: str | None = None,
        actor: str | None = None,
        token: str | None = None,
    ) -> WorkflowResult:
        """``run_from_checkpoint()`` for ``async def`` handlers."""
        return await self._drive_async(
            self._resume(checkpoint, resume_input, node, actor, token=token)
        )

    async def aresume(
        self,
        run_id: str,
        node: str | None = None,
        resume_input: Any = None,
        *,
        actor: str | None = None,
        token: str | None = None,
    ) -> WorkflowResult:
        """``resume()`` for ``async def`` handlers."""
        _check_node_arg(node)
        return await self.arun_from_checkpoint(
            self._load(run_id), resume_input, node=node, actor=actor, token=token
        )

    async def aredrive(
        self,
        checkpoint: Checkpoint,
        *,
        override: Mapping[str, Any] | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> WorkflowResult:
        """``redrive()`` for ``async def`` handlers."""
        return await self._drive_async(self._redrive(checkpoint, override, actor, reason))

    # ------------------------------------------------------------------ streams

    def stream(
        self,
        initial_input: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        *,
        replace: bool = False,
        kinds: Iterable[str] | None = None,
        buffer: int = 1024,
    ) -> RunStream:
        """``run()``, streamed: iterate its events as they happen, then read ``.result``.

        ``kinds`` keeps only those event kinds; ``buffer`` bounds the unread
        events before the engine waits at its next node. Use it in a ``with``
        block: leaving early cancels the run at its next node, with a checkpoint.
        """
        from ._stream import RunStream

        self._refuse_inside_loop()
        self._admit_input(initial_input)  # a bad input is refused here, not at the first event
        return RunStream(
            self, lambda e: e.run(initial_input, run_id, replace=replace), kinds, buffer
        )

    def stream_from_checkpoint(
        self,
        checkpoint: RunSnapshot | Mapping[str, Any],
        resume_input: Any = None,
        *,
        node: str | None = None,
        actor: str | None = None,
        kinds: Iterable[str] | None = None,
        buffer: int = 1024,
    ) -> RunStream:
        """``run_from_checkpoint()``, streamed (a fork: ``stream_from_checkpoint(fork(...))``)."""
        from ._stream import RunStream

        self._refuse_inside_loop()
        return RunStream(
            self,
            lambda e: e.run_from_checkpoint(checkpoint, resume_input, node=node, actor=actor),
            kinds,
            buffer,
        )

    def stream_resume(
        self,
        run_id: str,
        node: str | None = None,
        resume_input: Any = None,
        *,
        actor: str | None = None,
        kinds: Iterable[str] | None = None,
        buffer: int = 1024,
    ) -> RunStream:
        """``resume()``, streamed."""
        from ._stream import RunStream

        _check_node_arg(node)
        self._refuse_inside_loop()
        return RunStream(
            self, lambda e: e.resume(run_id, node, resume_input, actor=actor), kinds, buffer
        )

    def stream_redrive(
        self, checkpoint: Checkpoint, *, kinds: Iterable[str] | None = None, buffer: int = 1024
    ) -> RunStream:
        """``redrive()``, streamed."""
        from ._stream import RunStream

        self._refuse_inside_loop()
        return RunStream(self, lambda e: e.redrive(checkpoint), kinds, buffer)

    def astream(
        self,
        initial_input: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        *,
        replace: bool = False,
        kinds: Iterable[str] | None = None,
        buffer: int = 1024,
    ) -> AsyncRunStream:
        """``arun()``, streamed: ``async with engine.astream(...) as s: async for event in s``."""
        from ._stream import AsyncRunStream

        self._admit_input(initial_input)  # a bad input is refused here, not at the first event
        return AsyncRunStream(
            self, lambda e: e.arun(initial_input, run_id, replace=replace), kinds, buffer
        )

    def astream_from_checkpoint(
        self,
        checkpoint: RunSnapshot | Mapping[str, Any],
        resume_input: Any = None,
        *,
        node: str | None = None,
        actor: str | None = None,
        kinds: Iterable[str] | None = None,
        buffer: int = 1024,
    ) -> AsyncRunStream:
        """``arun_from_checkpoint()``, streamed."""
        from ._stream import AsyncRunStream

        return AsyncRunStream(
            self,
            lambda e: e.arun_from_checkpoint(checkpoint, resume_input, node=node, actor=actor),
            kinds,
            buffer,
        )

    def astream_resume(
        self,
        run_id: str,
        node: str | None = None,
        resume_input: Any = None,
        *,
        actor: str | None = None,
        kinds: Iterable[str] | None = None,
        buffer: int = 1024,
    ) -> AsyncRunStream:
        """``aresume()``, streamed."""
        from ._stream import AsyncRunStream

        _check_node_arg(node)
        return AsyncRunStream(
            self, lambda e: e.aresume(run_id, node, resume_input, actor=actor), kinds, buffer
        )

    def astream_redrive(
        self, checkpoint: Checkpoint, *, kinds: Iterable[str] | None = None, buffer: int = 1024
    ) -> AsyncRunStream:
        """``aredrive()``, streamed."""
        from ._stream import AsyncRunStream

        return AsyncRunStream(self, lambda e: e.aredrive(checkpoint), kinds, buffer)

    # ------------------------------------------------------------------ timers

    def resume_due(
        self, now: float | None = None, limit: int | None = None
    ) -> list[WorkflowResult]:
        """Wake every stored run of this workflow whose timer is due by ``now``.

        A due timer is a ``sleep`` node's wake-up or a wait node's deadline (its
        ``on_timeout`` applies); ``now`` defaults to the engine's clock, ``limit``
        caps how many runs are woken. Each run is woken under its lease, at most
        once per call and from its latest checkpoint only: when several
        processes call this at once, a run another caller took (or already
        woke) is skipped, never an error. Returns the woken runs' results, in
        due order. Requires a store that implements ``DueStore``.
        """
        self._refuse_inside_loop()
        woken = []
        for steps in self._wakeups(now, limit):
            try:
                woken.append(self._drive_sync(steps))
            except RunLockedError:
                continue  # taken by another caller: theirs to wake
        return woken

    async def aresume_due(
        self, now: float | None = None, limit: int | None = None
    ) -> list[WorkflowResult]:
        """``resume_due()`` for ``async def`` handlers."""
        woken = []
        for steps in self._wakeups(now, limit):
            try:
                woken.append(await self._drive_async(steps))
            except RunLockedError:
                continue
        return woken

    def _wakeups(self, now: float | None, limit: int | None) -> Iterator[Steps]:
        """The steps of each due run's wake-up, built one at a time (each loads its run)."""
        store = self._require_store()
        from ._store_views import DueStore

        if not isinstance(store, DueStore):
            raise StoreError(
                f"store {type(store).__name__} cannot tell which runs are due (it has no "
                "due_runs, see DueStore); use InMemoryWorkflowStore, JsonFileWorkflowStore, "
                "SqliteWorkflowStore or PostgresWorkflowStore"
            )
        at = self._clock() if now is None else now
        due = store.due_runs(at, limit, workflow_name=self._graph.name)
        for meta in due:
            run_id = meta.run_id
            if run_id is None:
                continue
            try:
                snap = self.load_snapshot(run_id)
            except RunNotFoundError:
                continue  # deleted since the index was read
            fired = due_timers(snap.status, snap.ready_now, snap.extra, at)
            if snap.wf_hash != self._graph.hash or not fired:
                continue  # another definition's (migrate it first), or woken already
            yield self._resume(snap, None, fired[0], None, now=at, by_timer=True)

    # ------------------------------------------------------------------ time travel

    def fork(
        self,
        run_id: str,
        step: int | None,
        new_run_id: str | None = None,
        workflow_updates: Mapping[str, Any] | None = None,
        *,
        replace: bool = False,
        seq: int | None = None,
        keep_effects: bool = False,
    ) -> RunSnapshot:
        """Start a new run from the checkpoint taken after ``step`` of ``run_id``.

        ``step`` names the last checkpoint at that step; ``seq`` (from
        ``store.history()``) one checkpoint exactly, such as a pause its resume
        shadows (``step`` may then be None). ``workflow_updates`` are merged
        into ``state.workflow`` first. The new run is saved to the store (under
        its own lease) and returned, ready for ``run_from_checkpoint``; the
        original run is untouched. A ``new_run_id`` the store already holds
        raises ``RunExistsError`` unless ``replace=True``.

        Effects (``ctx.effect``): a fork is a new run and does its own effects,
        so the records of effects still open at the fork point (a node that
        failed or stopped after an effect) are dropped and such a node calls
        its effects again, under the new run's idempotency keys. With
        ``keep_effects=True`` they are copied: the fork gets the parent's
        receipts instead of calling again (and an intent without a receipt
        stays uncertain). Effects of nodes that had finished are never redone.
        """
        if step is None and seq is None:
            raise TypeError("fork() needs the step or the seq of the checkpoint to fork from")
        snap = self.load_snapshot(run_id, step=step, seq=seq)
        if snap.wf_hash != self._graph.hash:
            self._adopt(snap)
        self._admit(snap)
        new_id = new_run_id if new_run_id is not None else self._new_id()
        snap.run_id = new_id
        if snap.status != C.STATUS_WAITING:
            snap.status = C.STATUS_RUNNING
        if workflow_updates:
            try:
                updates = dict(workflow_updates)
                if self._tags is not None:
                    updates = self._tags.encode(updates, "workflow_updates")
                frozen = freeze(updates)
            except NotJSONError as exc:
                raise TypeError(f"workflow_updates must be JSON-serializable: {exc}") from exc
            target = freeze(snap.state.workflow)
            deep_merge(target, frozen)
            snap.state.workflow = thaw(target)
        origin: dict[str, Any] = {"run_id": run_id, "step": snap.step}
        if seq is not None:
            origin["seq"] = seq
        snap.extra["forked_from"] = origin
        snap.extra.pop("redrive", None)
        if not keep_effects:
            snap.extra.pop("effects", None)
        snap.updated_at = now_iso(self._clock())
        snap.seq = None
        recorder = self._recorder
        run = LiveRun(snap, recorder.journals)
        recorder.save(run, fresh=True, replace=replace)
        return recorder.export(run)

    def migrate(
        self, checkpoint: RunSnapshot | Mapping[str, Any], old_workflow_def: Mapping[str, Any]
    ) -> RunSnapshot:
        """Re-lock a checkpoint of ``old_workflow_def`` to this engine's definition.

        Every node the run still needs (queues, arrivals, waiting nodes, paused
        subflows, map progress, a failed run's redrive queues) must exist here
        as the same kind of node with the same join, and a paused subflow's
        child run must fit its child's definition here; otherwise
        ``ValueError`` lists each incompatibility (``check_upgrade`` reports
        the same for every stored run). The migration is recorded in
        the audit trail and the returned snapshot.
        """
        if isinstance(checkpoint, RunSnapshot):
            snap = checkpoint.copy()
        else:
            snap = _snapshot_from_dict(checkpoint)
        if self._signer is not None:
            self._signer.verify(snap)
        self._admit(snap)
        old = compile_workflow(old_workflow_def)
        if snap.wf_hash != old.hash:
            raise HashMismatchError(
                f"workflow hash mismatch: checkpoint={_short(snap.wf_hash)}, "
                f"old definition={_short(old.hash)}; pass the definition the run was started with",
                checkpoint_hash=snap.wf_hash,
                current_hash=old.hash,
            )
        from ._upgrade import migration_problems

        problems = migration_problems(snap, old, self._graph, self._subflow_graphs)
        if problems:
            raise ValueError(
                f"run '{snap.run_id}' cannot move to the new definition: " + "; ".join(problems)
            )
        record = {"from": snap.wf_hash, "to": self._graph.hash, "at": now_iso(self._clock())}
        snap.extra.setdefault("migrations", []).append(record)
        snap.audit_trail.append(
            StepRecord(
                snap.step, snap.wave, "(migration)", "migrated", record["at"], [], None, False, 0.0
            )
        )
        snap.wf_hash = self._graph.hash
        snap.extra["subflow_hashes"] = child_hashes(self._subflow_graphs)
        event = Event(
            snap.run_id, snap.step, snap.wave, None, C.EVENT_WF_MIGRATED, record["at"], dict(record)
        )
        # Under the run's lease, from its latest checkpoint only: a migration never
        # overwrites what another caller is driving or has written since.
        recorder = self._recorder
        run = LiveRun(snap, recorder.journals)
        recorder.save(run, fresh=False, events=(event,))
        return recorder.export(run)

    def check_upgrade(
        self,
        store: WorkflowStore,
        workflow_name: str | None = None,
        *,
        old_definitions: Iterable[Mapping[str, Any]] = (),
    ) -> UpgradeReport:
        """What deploying this engine's definition does to the unfinished runs in ``store``.

        Every waiting, running, cancelled and redrivable failed run of
        ``workflow_name`` (default: this definition's) is ``compatible``,
        ``migratable``, ``blocked`` or ``unknown``; ``old_definitions`` (old
        workflow and child definitions) are matched to runs by hash so that
        ``migrate()``'s checks can be made in full. Nothing is written.
        """
        from ._upgrade import check_upgrade

        verify = None if self._signer is None else self._signer.verify
        return check_upgrade(
            store,
            self._graph,
            self._subflow_graphs,
            workflow_name,
            old_definitions=old_definitions,
            verify=verify,
        )

    # ------------------------------------------------------------------ internals

    def _require_store(self) -> WorkflowStore:
        if self._store is None:
            raise StoreNotConfiguredError()
        return self._store

    def _load(self, run_id: str) -> RunSnapshot:
        return self.load_snapshot(run_id)

    def _start(
        self, initial_input: Mapping[str, Any] | None, run_id: str | None, replace: bool = False
    ) -> Steps:
        self._cancel.clear()
        frozen_input, warning = self._admit_input(initial_input)
        now = self._clock()
        graph = self._graph
        timeout = graph.policy.workflow_timeout_seconds
        stamp = now_iso(now)
        snap = RunSnapshot(
            run_id=run_id if run_id is not None else self._new_id(),
            workflow_name=graph.name,
            wf_hash=graph.hash,
            status=C.STATUS_RUNNING,
            ready_now=[graph.entry],
            started_at=stamp,
            updated_at=stamp,
            deadline_ts=None if timeout is None else now + timeout,
        )
        if self._subflow_graphs:
            snap.extra["subflow_hashes"] = child_hashes(self._subflow_graphs)
        if self._tags is not None:
            snap.extra[CODEC_MARK] = self._tags.mark()
        snap.state.input = frozen_input
        run = LiveRun(snap, self._recorder.journals)
        return self._loop.call(
            run, C.EVENT_WF_START, {"workflow": graph.name}, replace=replace, warning=warning
        )

    def _admit_input(self, initial_input: Any) -> tuple[FrozenDict, dict[str, Any] | None]:
        """A new run's input, encoded (with a codec), frozen and checked against
        ``state_contract.input_schema`` (in its stored form, tags and all).

        Raises ``TypeError`` (not a JSON dict) or ``InitialInputError`` before
        anything of the run exists; returns the warning to announce under
        ``contracts: "warn"``.
        """
        if initial_input is not None and not isinstance(initial_input, Mapping):
            raise TypeError(f"initial_input must be a dict, got {type(initial_input).__name__}")
        try:
            given = dict(initial_input or {})
            if self._tags is not None:
                given = self._tags.encode(given)
            frozen_input = freeze(given)
        except NotJSONError as exc:
            raise TypeError(f"initial_input must be JSON-serializable: {exc}") from exc
        if self._graph.input_schema is None:
            return frozen_input, None
        return frozen_input, admit_input(self._graph, thaw(frozen_input))

    def _adopt(self, checkpoint: Checkpoint) -> RunSnapshot:
        """A private copy of ``checkpoint`` after checking the hash locks."""
        if isinstance(checkpoint, str):
            snap = self._load(checkpoint)
        elif isinstance(checkpoint, RunSnapshot):
            snap = checkpoint.copy()
        elif isinstance(checkpoint, Mapping):
            snap = _snapshot_from_dict(checkpoint)
        else:
            raise TypeError(
                f"checkpoint must be a RunSnapshot or its dict, got {type(checkpoint).__name__}"
            )
        if self._signer is not None and not isinstance(checkpoint, str):
            self._signer.verify(snap)  # (a run id was verified as it was loaded)
        current = self._graph.hash
        if snap.wf_hash != current:
            raise HashMismatchError(
                f"workflow hash mismatch: checkpoint={_short(snap.wf_hash)}, "
                f"current={_short(current)}; the definition changed since this checkpoint: "
                "use engine.migrate(checkpoint, old_workflow_def) to move the run to it",
                checkpoint_hash=snap.wf_hash,
                current_hash=current,
            )
        check_child_hashes(snap, self._subflow_graphs)
        _check_known_nodes(snap, self._graph)
        self._admit(snap)
        return snap

    def _admit(self, snap: RunSnapshot) -> None:
        """Refuse a codec's checkpoint without the codec; with one, check and re-tag it."""
        if self._tags is not None:
            self._tags.admit(snap)
        elif CODEC_MARK in snap.extra:
            mark = snap.extra[CODEC_MARK]
            types = mark.get("types") if isinstance(mark, Mapping) else None
            raise CodecError(
                f"run '{snap.run_id}' was written with a codec (zeroflow.codecs, registered "
                f"types: {types or 'none'}) and its state holds tagged values; continue it "
                "with an engine made with codec=zeroflow.codecs.standard() and the same "
                "types registered. Nothing was loaded or changed",
                run_id=snap.run_id,
            )

    def _resume(
        self,
        checkpoint: Checkpoint,
        resume_input: Any,
        node: str | None,
        actor: str | None,
        *,
        now: float | None = None,
        by_timer: bool = False,
        token: str | None = None,
    ) -> Steps:
        _check_node_arg(node)
        _check_actor(actor)
        self._cancel.clear()
        snap = self._adopt(checkpoint)
        if token is not None and snap.status != C.STATUS_WAITING:
            raise ResumeTokenError(
                f"run '{snap.run_id}' is {snap.status}, not waiting: no wait is open for the "
                "token (it was used already, or the wait is over); nothing changed",
                run_id=snap.run_id,
            )
        check_transition("resume", snap.run_id, snap.status)
        resumed_from = snap.step
        was_waiting = snap.status == C.STATUS_WAITING
        paths = waiting_paths(snap.status, snap.ready_now, snap.extra, snap.waiting_prompt)
        open_tokens = dict(snap.extra.get(TOKENS) or {})
        try:
            payload = resume_input
            if self._tags is not None and payload is not None:
                payload = self._tags.encode(payload, "resume_input")
            run = prepare_resume(
                snap,
                payload,
                node,
                journals=self._recorder.journals,
                now=self._clock() if now is None else now,
            )
        except NotJSONError as exc:
            raise TypeError(f"resume_input must be JSON-serializable: {exc}") from exc
        if was_waiting:
            path = node if node is not None else next(iter(paths), None)
            if path is not None and path not in paths and path.partition("/")[0] in paths:
                path = path.partition("/")[0]  # a subflow's only wait, named by its full path
            if not by_timer:
                required = self._graph.policy.require_resume_token
                check_token(snap.run_id, path, token, open_tokens, required=required)
            if path is not None and path in open_tokens:
                run.set_extra_path((TOKENS, path), None)  # spent: answered, token or not
                if not run.snap.extra.get(TOKENS):
                    run.set_extra_path((TOKENS,), None)
        resuming = run.snap.extra.get(RESUMING) or {}
        timed_out = "timed_out" in resuming
        if not timed_out:
            _check_resume_input(self._graph, run.resumed, resume_input, snap.run_id)
        data: dict[str, Any] = {
            "workflow": snap.workflow_name,
            "resumed_from_step": resumed_from,
            "wave": snap.wave,
        }
        if timed_out:
            data["timed_out"] = run.resumed
        if actor is not None:
            answer = {"node": run.resumed, "actor": actor, "at": now_iso(self._clock())}
            answers = [*(snap.extra.get("answers") or ()), answer]
            run.set_extra_path(("answers",), answers)
            data["actor"] = actor
        return self._loop.call(run, C.EVENT_WF_RESUMED, data, resuming=True)

    def _redrive(
        self,
        checkpoint: Checkpoint,
        override: Mapping[str, Any] | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> Steps:
        self._cancel.clear()
        snap = self._adopt(checkpoint)
        check_transition("redrive", snap.run_id, snap.status)
        resumed_from = snap.step
        undoing = redrive_compensation(snap, override is not None)
        if override is not None:
            if self._tags is not None and isinstance(override, Mapping):
                override = {k: self._tags.override(v) for k, v in override.items()}
            snap.extra[OVERRIDE] = check_override(self._graph, snap, override, actor, reason)
        if snap.status == C.STATUS_FAILED and not undoing:
            record = snap.extra.pop("redrive", None)
            if not record:
                raise InvalidTransitionError(
                    f"run '{snap.run_id}' failed before any node ran, or was written by a version "
                    "that did not record how to redrive it; start it again with run()",
                    run_id=snap.run_id,
                    status=snap.status,
                )
            _apply_redrive_record(snap, record)
            _check_known_nodes(snap, self._graph)
        snap.state.workflow.pop("__error__", None)
        snap.last_error = None
        snap.status = C.STATUS_RUNNING
        timeout = self._graph.policy.workflow_timeout_seconds
        if timeout is not None:
            snap.deadline_ts = self._clock() + timeout
        run = LiveRun(snap, self._recorder.journals)
        return self._loop.call(
            run,
            C.EVENT_WF_RESUMED,
            {
                "workflow": snap.workflow_name,
                "resumed_from_step": resumed_from,
                "wave": snap.wave,
                "redrive": True,
            },
            resuming=True,
        )

    def _drive_sync(self, steps: Steps) -> WorkflowResult:
        result = drive_sync(steps, self._cancel, self._sleep, self._pace)
        return result if self._tags is None else self._tags.result(result)

    def _for_stream(
        self,
        tap: EventCallback,
        *,
        pace: Callable[[], None] | None = None,
        apace: Callable[[], Awaitable[None]] | None = None,
    ) -> WorkflowEngine:
        """A twin of this engine for one streamed call: its own cancel flag, ``tap`` hears it all.

        The engine's own callback still gets every event, before the stream.
        """
        import copy

        twin = copy.copy(self)
        twin._cancel = threading.Event()
        twin._pace, twin._apace = pace, apace
        callback = tap if self._callback is None else _Both(self._callback, tap)
        twin._loop = self._wire(callback, twin._cancel.is_set)
        twin._recorder = twin._loop.recorder
        return twin

    def _refuse_inside_loop(self) -> None:
        """Sync entry points cannot await async handlers on a loop this thread is running."""
        if not self._async_handlers or not loop_running():
            return
        raise RuntimeError(
            f"async handlers ({', '.join(self._async_handlers)}) cannot run under run() inside a "
            "running event loop; use 'await engine.arun(...)' (or arun_from_checkpoint, "
            "aresume, aredrive) instead"
        )

    async def _drive_async(self, steps: Steps) -> WorkflowResult:
        result = await drive_async(steps, self._cancel, self._sleep, self._apace)
        return result if self._tags is None else self._tags.result(result)


class _Both:
    """Two event callbacks as one (the engine's, then a stream's); kinds: what either wants."""

    __slots__ = ("event_kinds", "first", "second")

    def __init__(self, first: EventCallback, second: EventCallback) -> None:
        self.first, self.second = first, second
        a, b = wanted_kinds(first), wanted_kinds(second)
        self.event_kinds = None if a is None or b is None else a | b

    def __call__(self, event: Event) -> None:
        self.first(event)
        self.second(event)


def _snapshot_from_dict(data: Mapping[str, Any]) -> RunSnapshot:
    """A snapshot from its dict; a malformed one is an ``InvalidCheckpointError``."""
    try:
        return RunSnapshot.from_dict(data)
    except KeyError as exc:
        raise InvalidCheckpointError(
            f"checkpoint dict is missing the key {exc}; pass RunSnapshot.to_dict() output or a "
            "snapshot loaded from a store"
        ) from exc
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise InvalidCheckpointError(
            f"checkpoint dict is not a zeroflow snapshot: {type(exc).__name__}: {exc}"
        ) from exc
    except RecursionError as exc:
        raise InvalidCheckpointError(
            f"checkpoint dict nests deeper than a snapshot can (at most {C.MAX_DEPTH} levels "
            "of state); it was damaged or crafted"
        ) from exc


def _uuid4_hex() -> str:
    """``uuid.uuid4().hex`` without importing ``uuid`` (and ``platform``, which it loads).

    The same 16 random bytes from ``os.urandom`` with the version (4) and
    variant (RFC 4122) bits set, as ``uuid.uuid4`` makes them.
    """
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return raw.hex()


def _read_definition(file: Path) -> Any:
    import json

    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise WorkflowDefinitionError(f"cannot read workflow file '{file}': {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise WorkflowDefinitionError(
            f"workflow file '{file}' is not valid JSON: {exc.msg} "
            f"(line {exc.lineno}, column {exc.colno})"
        ) from exc
    except RecursionError as exc:
        raise WorkflowDefinitionError(
            f"workflow file '{file}' nests deeper than Python's JSON reader can follow; "
            f"a definition may nest at most {C.MAX_DEPTH} levels"
        ) from exc


def _check_resume_input(
    graph: CompiledWorkflow, node: str | None, payload: Any, run_id: str
) -> None:
    """Refuse a payload its wait node's ``resume_schema`` rejects, before anything changes."""
    spec = graph.nodes.get(node) if node is not None else None
    schema_ = None if spec is None or spec.wait is None else spec.wait.resume_schema
    if schema_ is None:
        return
    from ._schema import check_instance

    problems = check_instance(payload, schema_)
    if problems:
        listed = "; ".join(f"{ptr or '/'}: {message}" for ptr, message in problems)
        raise ResumeInputError(
            f"resume input for node '{node}' of run '{run_id}' does not match its "
            f"resume_schema ({listed}); the run still waits",
            problems,
        )


def _check_actor(actor: Any) -> None:
    """``actor`` names who answered: a short line of text, or None."""
    if actor is None:
        return
    if not isinstance(actor, str) or not actor or len(actor) > 200:
        raise TypeError(
            f"actor must be a non-empty string of at most 200 characters (who answered, e.g. "
            f"'alice@example.com'), got {type(actor).__name__} {str(actor)[:40]!r}"
        )
    if not actor.isprintable():
        raise ValueError(f"actor {actor[:40]!r} holds control characters; pass plain text")


def _check_node_arg(node: Any) -> None:
    """``node`` names the waiting node; a payload passed there by mistake is a ``TypeError``."""
    if node is not None and not isinstance(node, str):
        raise TypeError(
            f"node must be the name of a waiting node (a str) or None, got "
            f"{type(node).__name__}; pass the payload as resume_input=..., e.g. "
            "engine.resume(run_id, resume_input={'approved': True})"
        )


def _apply_redrive_record(snap: RunSnapshot, record: Any) -> None:
    """Put back the queues a failed run had before its failed node ran."""
    try:
        snap.wave = int(record["wave"])
        snap.ready_now = [str(n) for n in record["ready_now"]]
        snap.ready_next_wave = [str(n) for n in record["ready_next_wave"]]
        snap.arrivals = {str(k): [str(n) for n in v] for k, v in record["arrivals"].items()}
        snap.executed_this_wave = [str(n) for n in record["executed_this_wave"]]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidCheckpointError(
            f"checkpoint of run '{snap.run_id}' has a damaged redrive record "
            f"({type(exc).__name__}: {exc}); redrive a checkpoint the engine wrote"
        ) from exc


def _check_known_nodes(snap: RunSnapshot, graph: CompiledWorkflow) -> None:
    """Refuse a checkpoint that names a node the definition lacks (crafted or damaged)."""
    from ._upgrade import needed_nodes  # once per loaded checkpoint, never per node

    unknown = [f"'{n}' ({why})" for n, why in needed_nodes(snap).items() if n not in graph.nodes]
    if unknown:
        raise InvalidCheckpointError(
            f"checkpoint of run '{snap.run_id}' names nodes workflow '{graph.name}' does not "
            f"have: {', '.join(unknown)}; it was damaged or crafted, or belongs to another "
            "definition"
        )
