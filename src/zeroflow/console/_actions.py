"""What the console may change: resume, redrive, fork, break a lease; nothing else.

Each action goes through ``WorkflowEngine``'s public API (so under the
store's lease, with its hash lock and status checks) or, for a lease, the
store's ``LeasingStore.break_lease``. The engine is built for the run's own
workflow from the ``--workflows`` catalog, matched by name and hash. Every
outcome is one line for the run's page; no exception leaves an action.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .._engine import WorkflowEngine
from .._errors import ZeroflowError
from .._models import WorkflowResult
from .._store import LeasingStore, WorkflowStore
from ._catalog import Catalog

__all__ = ["Actions", "Outcome"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an action did, for the page of ``run_id`` (a fork's new run)."""

    kind: Literal["ok", "error"]
    text: str
    run_id: str


class _Refused(Exception):
    """An action that cannot start; its message is the line shown."""


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    else:
        text = str(exc) or type(exc).__name__
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first[:500]


def _result_line(result: WorkflowResult) -> str:
    line = f"run {result.run_id}: {result.status}"
    if result.waiting and result.waiting_prompt:
        line += f", waiting: {result.waiting_prompt}"
    if result.error is not None and not result.success:
        line += f", {result.error.code}: {result.error.message}"
    return line


def _went_on(result: WorkflowResult) -> bool:
    """False when the action ended the run failed or cancelled (shown as an error)."""
    return result.status not in ("failed", "cancelled")


class Actions:
    """The four actions over one store, with the handlers given to ``zeroflow ui``."""

    def __init__(
        self,
        store: WorkflowStore,
        handlers: Mapping[str, Any],
        catalog: Catalog,
        services: Mapping[str, Any] | None = None,
    ) -> None:
        self._store = store
        self._handlers = handlers
        self._catalog = catalog
        self._services = services

    def _engine(self, run_id: str) -> WorkflowEngine:
        snap = self._store.load_snapshot(run_id)
        found = self._catalog.find(snap.workflow_name, snap.wf_hash)
        if found is None:
            raise _Refused(
                f"no definition of workflow '{snap.workflow_name}' with hash "
                f"{snap.wf_hash[:12]} in --workflows: start the console with the folder that "
                "holds the definition this run was started with"
            )
        return WorkflowEngine(found.source, self._handlers, self._services, store=self._store)

    def _do(self, run_id: str, act: Callable[[], tuple[str, str, bool]]) -> Outcome:
        try:
            text, target, worked = act()
        except (_Refused, ZeroflowError, KeyError, ValueError, TypeError, RuntimeError) as exc:
            return Outcome("error", _one_line(exc), run_id)
        except Exception as exc:  # a handler module's surprise must not take the console down
            return Outcome("error", f"unexpected {type(exc).__name__}: {_one_line(exc)}", run_id)
        return Outcome("ok" if worked else "error", text, target)

    def resume(self, run_id: str, node: str | None, payload: Any, actor: str | None) -> Outcome:
        """Resume the waiting ``node`` of ``run_id`` with ``payload``, answered by ``actor``."""

        def act() -> tuple[str, str, bool]:
            result = self._engine(run_id).resume(run_id, node, payload, actor=actor)
            return f"resumed: {_result_line(result)}", run_id, _went_on(result)

        return self._do(run_id, act)

    def redrive(self, run_id: str) -> Outcome:
        """Run a failed or cancelled run's failed node again, and on."""

        def act() -> tuple[str, str, bool]:
            result = self._engine(run_id).redrive(run_id)
            return f"redriven: {_result_line(result)}", run_id, _went_on(result)

        return self._do(run_id, act)

    def fork(self, run_id: str, seq: int) -> Outcome:
        """A new run from checkpoint ``seq`` of ``run_id``, driven on unless it waits."""

        def act() -> tuple[str, str, bool]:
            engine = self._engine(run_id)
            snap = engine.fork(run_id, None, seq=seq)
            if snap.status == "waiting":
                return f"forked from checkpoint {seq}: run {snap.run_id} waits", snap.run_id, True
            result = engine.run_from_checkpoint(snap)
            line = f"forked from checkpoint {seq}: {_result_line(result)}"
            return line, snap.run_id, _went_on(result)

        return self._do(run_id, act)

    def break_lease(self, run_id: str) -> Outcome:
        """Drop the run's lease (its driver is gone or stuck); says whether there was one."""

        def act() -> tuple[str, str, bool]:
            if not isinstance(self._store, LeasingStore):
                raise _Refused("this store has no leases")
            self._store.load_snapshot(run_id)  # a run that is not there is an error, not "no lease"
            had = self._store.break_lease(run_id)
            return ("lease broken" if had else "the run held no lease"), run_id, True

        return self._do(run_id, act)
