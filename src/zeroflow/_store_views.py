"""What stores tell about runs without loading them: the abilities and their records.

``DueStore`` (what is due), ``LeaseInspectingStore`` (who holds a lease),
``StatsStore`` (per-run summaries) and ``RunQueryStore`` (a page of runs), with
``LeaseInfo``, ``RunQuery`` and ``RunPage``. Kept apart from ``_store`` (the
protocols every run needs) so that ``import zeroflow`` builds none of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ._store import LeasingStore, WorkflowStore

if TYPE_CHECKING:
    from datetime import datetime

    from ._models import RunMetadata
    from ._stats import RunSummary

__all__ = [
    "DueStore",
    "LeaseInfo",
    "LeaseInspectingStore",
    "RunPage",
    "RunQuery",
    "RunQueryStore",
    "StatsStore",
]


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """A run's lease as its store records it, read without changing it.

    ``live`` is True while the lease keeps other drivers out: held, not
    expired, and its holder process not known to be gone. ``holder_alive`` is
    True or False only for a holder on this host (its pid is looked up), None
    when that cannot be known (another host, or nothing recorded).
    ``expires_in_seconds`` is negative for an expired lease, None for a free one.
    """

    owner: str | None
    token: int
    expires_in_seconds: float | None
    host: str | None = None
    pid: int | None = None
    holder_alive: bool | None = None
    live: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "token": self.token,
            "expires_in_seconds": self.expires_in_seconds,
            "host": self.host,
            "pid": self.pid,
            "holder_alive": self.holder_alive,
            "live": self.live,
        }


@dataclass(frozen=True, slots=True)
class RunQuery:
    """Which runs one page of a listing shows: filters, then ``limit`` runs after ``offset``.

    Every filter given must hold: ``workflow_name`` exactly; ``statuses`` any
    of them (empty: all); ``run_id_prefix`` the run id starts with it;
    ``updated_before`` (ISO-8601 UTC) the run's latest checkpoint (its
    ``updated_at``) is earlier. Runs come newest update first, then by run id, descending.
    """

    workflow_name: str | None = None
    statuses: tuple[str, ...] = ()
    run_id_prefix: str | None = None
    updated_before: str | None = None
    limit: int = 50
    offset: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= 1000:
            raise ValueError(f"RunQuery.limit must be 1 to 1000, got {self.limit}")
        if self.offset < 0:
            raise ValueError(f"RunQuery.offset must be 0 or more, got {self.offset}")


@dataclass(frozen=True, slots=True)
class RunPage:
    """One page of a listing: its runs, and how many runs match the query in all."""

    runs: tuple[RunMetadata, ...]
    total: int


@runtime_checkable
class DueStore(WorkflowStore, Protocol):
    """A store that answers "which waiting runs have a timer due" from an index.

    The index is kept from the timers of the full snapshots the store writes
    (``RunMetadata.due_at``: a ``sleep`` node's wake-up or a wait deadline).
    """

    def due_runs(
        self, now: float, limit: int | None = None, *, workflow_name: str | None = None
    ) -> list[RunMetadata]:
        """Waiting runs whose earliest timer is due by ``now``, earliest first (then by id).

        At most ``limit`` of them (None: all), of ``workflow_name`` only when given.
        A hint, not a lease: a caller that wakes a run still takes its lease.
        """
        ...


@runtime_checkable
class LeaseInspectingStore(LeasingStore, Protocol):
    """A leasing store that can say who holds a run's lease (``runs why``, the console)."""

    def lease_info(self, run_id: str) -> LeaseInfo | None:
        """The run's lease, held or not; None when the run never had one."""
        ...


@runtime_checkable
class StatsStore(WorkflowStore, Protocol):
    """A store that keeps a compact summary per run, so statistics read no run itself."""

    def run_summaries(
        self, workflow_name: str | None = None, since: str | datetime | None = None
    ) -> list[RunSummary]:
        """Each stored run's ``RunSummary``, by run id; of one workflow, or started at or
        after ``since`` (ISO-8601 or a ``datetime``; ``ValueError`` for anything else).

        The per-node figures are those of the run's latest full save (its start,
        pause, end, or a journal fold), so a running run's may lag; a run written
        before the store kept figures has ``nodes`` None, and so has one whose
        figures are damaged (reported, as ``list_metadata`` reports a run it
        skips); a run whose summary itself does not decode is skipped and reported.
        """
        ...


@runtime_checkable
class RunQueryStore(WorkflowStore, Protocol):
    """A store that lists one page of run summaries from an index, not by loading every run."""

    def query_runs(self, query: RunQuery) -> RunPage:
        """The page ``query`` names; a run whose summary does not decode is skipped
        and reported, as in ``list_metadata``."""
        ...
