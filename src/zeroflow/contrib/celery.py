"""Drive zeroflow runs from Celery workers that share one store (``zeroflow[celery]``).

``register_tasks(app, store, workflows)`` adds five tasks to a Celery app:

- ``<prefix>.start``: start a run and drive it until it ends or waits;
- ``<prefix>.resume``: resume a waiting node with the human's answer;
- ``<prefix>.redrive``: run a failed (or cancelled) run's failed node again;
- ``<prefix>.continue``: pick up a run left ``running`` by a dead worker;
- ``<prefix>.recover``: find such runs (``store.stale_runs()``) and send ``continue``.

A task drives the engine in the worker and returns a small JSON report; a
run that waits for a human frees its worker, and the answer may come from
any process with ``send_resume(app, run_id, answer, node=...)`` (it needs
only the broker). Every task is safe to deliver twice: the store's lease
lets one worker drive a run at a time (a second gets ``RunLockedError`` and
the task retries later), and a task whose run has moved on since it loaded
it (finished, resumed by another delivery) reports ``skipped`` instead of
acting twice. Tasks are sent ``acks_late`` and ``reject_on_worker_lost``, so
a killed worker's task goes back to the queue; see ``docs/SCALING.md``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from .. import _constants as C
from .._engine import WorkflowEngine
from .._errors import RunExistsError, RunLockedError, RunNotFoundError, StoreError
from .._models import RunSnapshot, WorkflowResult
from .._store import CheckpointWrite, WorkflowStore

__all__ = [
    "WorkflowTasks",
    "register_tasks",
    "send_redrive",
    "send_resume",
    "send_start",
]

EngineFactory = Callable[[WorkflowStore], WorkflowEngine]
"""Builds a workflow's engine on a worker, given the store the engine must use."""

StoreSource = WorkflowStore | Callable[[], WorkflowStore]

DEFAULT_PREFIX = "zeroflow"
_TASK_OPTIONS: dict[str, Any] = {"bind": True, "acks_late": True, "reject_on_worker_lost": True}

# What the task that is about to take a run's lease expects to find in the store:
# (run_id, None) for a run that must not exist yet, else (run_id, fingerprint).
_EXPECTED: ContextVar[tuple[str, tuple[Any, ...] | None] | None] = ContextVar(
    "zeroflow_celery_expected", default=None
)


class _MovedOn(Exception):
    """The run changed between loading it and taking its lease (another delivery acted)."""


def _fingerprint(snap: RunSnapshot) -> tuple[Any, ...]:
    return (snap.status, snap.step, snap.wave, len(snap.trace), len(snap.audit_trail))


def _waiting_nodes(snap: RunSnapshot) -> list[str]:
    waiting = snap.extra.get("waiting") or {}
    if waiting:
        return sorted(waiting)
    return snap.ready_now[:1]


class _GuardedStore:
    """The worker's store, checking once the lease is taken that the run is as it was loaded.

    The engine loads a run and then leases it; between the two another
    delivery of the same task may have driven it. Comparing the run under
    the lease with what the task loaded closes that window.
    """

    def __init__(self, inner: WorkflowStore) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def save_snapshot(self, snapshot: RunSnapshot) -> None:
        self._inner.save_snapshot(snapshot)

    def load_snapshot(self, run_id: str, step: int | None = None) -> RunSnapshot:
        if step is None:
            return self._inner.load_snapshot(run_id)
        return self._inner.load_snapshot(run_id, step=step)  # type: ignore[call-arg]

    def append_event(self, run_id: str, event: Any) -> None:
        self._inner.append_event(run_id, event)

    def list_metadata(self, workflow_name: str | None = None) -> list[Any]:
        return self._inner.list_metadata(workflow_name)

    def acquire_lease(self, run_id: str, owner: str) -> int:
        inner: Any = self._inner
        token = int(inner.acquire_lease(run_id, owner))
        expected = _EXPECTED.get()
        if expected is None or expected[0] != run_id:
            return token
        want = expected[1]
        if want is None:
            status = inner.run_status(run_id)
            if status is not None:
                inner.release_lease(run_id, owner)
                raise RunExistsError(
                    f"run '{run_id}' already exists in the store with status '{status}'",
                    run_id=run_id,
                )
            return token
        try:
            moved = _fingerprint(inner.load_snapshot(run_id)) != want
        except KeyError:
            moved = True
        if moved:
            inner.release_lease(run_id, owner)
            raise _MovedOn(run_id)
        return token

    # The rest of the leasing contract, passed through as it is.

    def renew_lease(self, run_id: str, owner: str, token: int | None = None) -> None:
        inner: Any = self._inner
        inner.renew_lease(run_id, owner, token)

    def release_lease(self, run_id: str, owner: str) -> None:
        inner: Any = self._inner
        inner.release_lease(run_id, owner)

    def commit(self, run_id: str, owner: str, token: int, write: CheckpointWrite) -> bool:
        inner: Any = self._inner
        return bool(inner.commit(run_id, owner, token, write))

    def latest_checkpoint(self, run_id: str) -> int | None:
        inner: Any = self._inner
        latest = inner.latest_checkpoint(run_id)
        return None if latest is None else int(latest)


@contextmanager
def _expecting(run_id: str, fingerprint: tuple[Any, ...] | None) -> Iterator[None]:
    token = _EXPECTED.set((run_id, fingerprint))
    try:
        yield
    finally:
        _EXPECTED.reset(token)


def _report(
    run_id: str, action: str, result: WorkflowResult | None, status: str | None
) -> dict[str, Any]:
    out: dict[str, Any] = {"run_id": run_id, "action": action, "status": status}
    if result is not None:
        out["status"] = result.status
        out["success"] = result.success
        if result.waiting and result.checkpoint is not None:
            out["waiting_nodes"] = _waiting_nodes(result.checkpoint)
            out["waiting_prompt"] = result.waiting_prompt
        if result.error is not None:
            out["error"] = result.error.to_dict()
    return out


class WorkflowTasks:
    """The tasks ``register_tasks`` added to an app, and helpers to send them.

    Engines and the store are built lazily in each worker process (after
    Celery forks its pool), once per process.
    """

    def __init__(
        self,
        app: Any,
        store: StoreSource,
        workflows: Mapping[str, EngineFactory],
        *,
        prefix: str = DEFAULT_PREFIX,
        locked_retry_seconds: float | None = None,
        max_lock_retries: int = 1000,
        store_retry_seconds: float = 2.0,
        max_store_retries: int = 30,
    ) -> None:
        if not workflows:
            raise ValueError("workflows must map at least one workflow name to an engine factory")
        self.app = app
        self.prefix = prefix
        self.locked_retry_seconds = locked_retry_seconds
        self.max_lock_retries = max_lock_retries
        self.store_retry_seconds = store_retry_seconds
        self.max_store_retries = max_store_retries
        self._store_source = store
        self._factories = dict(workflows)
        self._pid = -1
        self._store: _GuardedStore | None = None
        self._engines: dict[str, WorkflowEngine] = {}

        def task(name: str, body: Callable[..., dict[str, Any]]) -> Any:
            return app.task(name=f"{prefix}.{name}", **_TASK_OPTIONS)(body)

        def start(
            t: Any, workflow: str, initial_input: Any = None, run_id: str | None = None
        ) -> dict[str, Any]:
            """Start ``workflow`` as ``run_id`` and drive it until it ends or waits."""
            return self._drive(t, "start", run_id or uuid.uuid4().hex, workflow, initial_input)

        def resume(
            t: Any, run_id: str, resume_input: Any = None, node: str | None = None
        ) -> dict[str, Any]:
            """Resume the waiting ``node`` of ``run_id`` with ``resume_input``."""
            return self._drive(t, "resume", run_id, resume_input=resume_input, node=node)

        def redrive(t: Any, run_id: str) -> dict[str, Any]:
            """Run the failed node of a failed or cancelled run again."""
            return self._drive(t, "redrive", run_id)

        def continue_(t: Any, run_id: str) -> dict[str, Any]:
            """Continue a run left ``running`` by a dead driver; a no-op for any other run."""
            return self._drive(t, "continue", run_id)

        def recover(t: Any, limit: int = 100) -> dict[str, Any]:
            """Send ``continue`` for every run left ``running`` without a live lease."""
            found = self.stale_runs(limit)
            for run_id in found:
                self.cont.delay(run_id)
            return {"action": "recover", "runs": found}

        self.start = task("start", start)
        self.resume = task("resume", resume)
        self.redrive = task("redrive", redrive)
        self.cont = task("continue", continue_)
        self.recover = task("recover", recover)

    # ------------------------------------------------------------------ per process

    @property
    def store(self) -> WorkflowStore:
        """This process's store (built on first use, again after a fork)."""
        return self._process()[0]

    def engine(self, workflow_name: str) -> WorkflowEngine:
        """This process's engine for ``workflow_name``; ``KeyError`` naming the known ones."""
        store, engines = self._process()
        engine = engines.get(workflow_name)
        if engine is None:
            factory = self._factories.get(workflow_name)
            if factory is None:
                known = ", ".join(sorted(self._factories))
                raise KeyError(f"no engine registered for workflow '{workflow_name}' ({known})")
            engine = factory(store)
            if engine.workflow_name != workflow_name:
                raise ValueError(
                    f"the factory registered as '{workflow_name}' built an engine for "
                    f"'{engine.workflow_name}'"
                )
            engines[workflow_name] = engine
        return engine

    def _process(self) -> tuple[_GuardedStore, dict[str, WorkflowEngine]]:
        if self._store is None or self._pid != os.getpid():
            source = self._store_source
            inner = (
                source() if callable(source) and not hasattr(source, "save_snapshot") else source
            )
            self._store = _GuardedStore(inner)  # type: ignore[arg-type]
            self._engines = {}
            self._pid = os.getpid()
        return self._store, self._engines

    def stale_runs(self, limit: int = 100) -> list[str]:
        """Runs left ``running`` by a dead driver (all ``running`` runs if the store can't tell)."""
        store: Any = self.store
        finder = getattr(store, "stale_runs", None)
        if finder is not None:
            return list(finder(limit))
        return [m.run_id for m in store.list_metadata() if m.status == C.STATUS_RUNNING][:limit]

    # ------------------------------------------------------------------ sending

    def start_run(
        self,
        workflow: str,
        initial_input: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> str:
        """Send ``start`` for a new run and return its id (made here when not given)."""
        return send_start(self.app, workflow, initial_input, run_id, prefix=self.prefix)

    # ------------------------------------------------------------------ driving

    def _drive(
        self,
        task: Any,
        mode: str,
        run_id: str,
        workflow: str | None = None,
        initial_input: Any = None,
        resume_input: Any = None,
        node: str | None = None,
    ) -> dict[str, Any]:
        try:
            for _ in range(10):
                try:
                    return self._attempt(mode, run_id, workflow, initial_input, resume_input, node)
                except _MovedOn:
                    continue  # load again and decide again
            raise StoreError(f"run '{run_id}' kept changing under this task", run_id=run_id)
        except RunLockedError as exc:
            if mode == "continue":
                return _report(run_id, "locked", None, None)  # its driver is alive
            countdown = self.locked_retry_seconds
            if countdown is None:
                countdown = max(0.5, float(getattr(self.store, "lease_ttl_seconds", 30.0)) / 3)
            raise task.retry(
                exc=exc, countdown=countdown, max_retries=self.max_lock_retries
            ) from exc
        except RunNotFoundError:
            return _report(run_id, "missing", None, None)
        except StoreError as exc:
            raise task.retry(
                exc=exc, countdown=self.store_retry_seconds, max_retries=self.max_store_retries
            ) from exc

    def _attempt(
        self,
        mode: str,
        run_id: str,
        workflow: str | None,
        initial_input: Any,
        resume_input: Any,
        node: str | None,
    ) -> dict[str, Any]:
        if mode == "start":
            assert workflow is not None
            engine = self.engine(workflow)
            try:
                with _expecting(run_id, None):
                    return _report(run_id, "started", engine.run(initial_input, run_id), None)
            except RunExistsError:
                pass  # delivered again, or the id is taken: decide from what is stored
        snap = self.store.load_snapshot(run_id)
        engine = self.engine(snap.workflow_name)
        status = snap.status
        drive: Callable[[], WorkflowResult]
        if status == C.STATUS_RUNNING:
            action = "continued"

            def drive() -> WorkflowResult:
                return engine.run_from_checkpoint(snap)

        elif mode == "resume" and status == C.STATUS_WAITING:
            if node is not None and node not in _waiting_nodes(snap):
                return _report(run_id, "skipped", None, status)
            action = "resumed"

            def drive() -> WorkflowResult:
                return engine.run_from_checkpoint(snap, resume_input, node=node)

        elif mode == "redrive" and status in C.REDRIVABLE_STATUSES:
            action = "redriven"

            def drive() -> WorkflowResult:
                return engine.redrive(snap)

        else:
            return _report(run_id, "skipped", None, status)
        with _expecting(run_id, _fingerprint(snap)):
            return _report(run_id, action, drive(), None)


def register_tasks(
    app: Any,
    store: StoreSource,
    workflows: Mapping[str, EngineFactory],
    *,
    prefix: str = DEFAULT_PREFIX,
    locked_retry_seconds: float | None = None,
    max_lock_retries: int = 1000,
) -> WorkflowTasks:
    """Register zeroflow's tasks on ``app``; return them.

    ``store`` is a store shared by all workers (``PostgresWorkflowStore``) or a
    function that builds one; ``workflows`` maps each workflow name to a
    function that builds its engine from the store it is given. A task that
    finds its run leased by a live driver retries after
    ``locked_retry_seconds`` (default: a third of the store's lease TTL).
    """
    return WorkflowTasks(
        app,
        store,
        workflows,
        prefix=prefix,
        locked_retry_seconds=locked_retry_seconds,
        max_lock_retries=max_lock_retries,
    )


def send_start(
    app: Any,
    workflow: str,
    initial_input: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    *,
    prefix: str = DEFAULT_PREFIX,
) -> str:
    """Ask a worker to start a run of ``workflow``; return the run id. Needs only the broker."""
    run_id = run_id or uuid.uuid4().hex
    app.send_task(
        f"{prefix}.start",
        args=[workflow],
        kwargs={"initial_input": dict(initial_input or {}), "run_id": run_id},
    )
    return run_id


def send_resume(
    app: Any,
    run_id: str,
    resume_input: Any = None,
    node: str | None = None,
    *,
    prefix: str = DEFAULT_PREFIX,
) -> Any:
    """Ask a worker to resume a waiting run (a webhook's job); returns the ``AsyncResult``.

    Pass ``node`` so a repeated delivery cannot resume a later wait with
    this answer. ``resume_input`` must be JSON-serialisable.
    """
    return app.send_task(
        f"{prefix}.resume", args=[run_id], kwargs={"resume_input": resume_input, "node": node}
    )


def send_redrive(app: Any, run_id: str, *, prefix: str = DEFAULT_PREFIX) -> Any:
    """Ask a worker to redrive a failed run; returns the ``AsyncResult``."""
    return app.send_task(f"{prefix}.redrive", args=[run_id])
