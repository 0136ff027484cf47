"""The runs page's query: filters read from the URL, one page of runs from the store.

A store that implements ``RunQueryStore`` (SQLite, Postgres, the JSON store's
``listing.jsonl``) answers from its indexes; any other store (the memory
store, a user's own) is listed with ``list_metadata`` and filtered and paged here.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from .._models import Event, RunMetadata
from .._store import WorkflowStore
from .._store_views import RunPage, RunQuery, RunQueryStore

__all__ = ["PAGE_SIZE", "DUE_AFTER_SECONDS", "DamageLog", "RunFilter", "fetch_page"]

PAGE_SIZE = 50
DUE_AFTER_SECONDS = 3600
"""A running or waiting run counts as due when it has not moved for this long."""

STATUSES = ("running", "waiting", "succeeded", "failed", "cancelled")
UNFINISHED = ("running", "waiting")
_MAX_PAGE = 1_000_000


@dataclass(frozen=True, slots=True)
class RunFilter:
    """What the runs page shows, as its URL says (``workflow``, ``status``, ``q``, ``due``,
    ``page``)."""

    workflow: str = ""
    status: str = ""
    run_id: str = ""
    due: bool = False
    page: int = 1

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> RunFilter:
        """Read the filters; unknown statuses and bad page numbers fall back to the defaults."""
        status = params.get("status", "")
        try:
            number = int(params.get("page", "1"))
        except ValueError:
            number = 1
        return cls(
            workflow=params.get("workflow", "").strip()[:200],
            status=status if status in STATUSES else "",
            run_id=params.get("q", "").strip()[:200],
            due=params.get("due", "") == "1",
            page=min(max(number, 1), _MAX_PAGE),
        )

    def params(self, **changes: object) -> dict[str, str]:
        """The URL parameters of this filter with ``changes`` (for links), defaults left out."""
        values: dict[str, object] = {
            "workflow": self.workflow,
            "status": self.status,
            "q": self.run_id,
            "due": "1" if self.due else "",
            "page": "" if self.page == 1 else self.page,
        }
        values.update(changes)
        return {k: str(v) for k, v in values.items() if v not in ("", None, 1)}

    def query(self, now: float) -> RunQuery:
        """The store query of this filter at time ``now`` (epoch seconds)."""
        statuses: tuple[str, ...] = (self.status,) if self.status else ()
        before = None
        if self.due:
            # Only an unfinished run can be due; a finished status with "due" matches nothing.
            statuses = tuple(s for s in statuses or UNFINISHED if s in UNFINISHED) or ("",)
            before = datetime.fromtimestamp(now - DUE_AFTER_SECONDS, UTC).isoformat(
                timespec="seconds"
            )
        return RunQuery(
            workflow_name=self.workflow or None,
            statuses=statuses,
            run_id_prefix=self.run_id or None,
            updated_before=before,
            limit=PAGE_SIZE,
            offset=(self.page - 1) * PAGE_SIZE,
        )


def fetch_page(store: WorkflowStore, query: RunQuery) -> RunPage:
    """One page of runs: from the store's index when it has one, else filtered here."""
    if isinstance(store, RunQueryStore):
        return store.query_runs(query)
    metas = store.list_metadata(query.workflow_name)
    chosen = [m for m in metas if _matches(m, query)]
    chosen.sort(key=lambda m: (m.updated_at or "", m.run_id or ""), reverse=True)
    window = chosen[query.offset : query.offset + query.limit]
    return RunPage(tuple(window), len(chosen))


def _matches(meta: RunMetadata, query: RunQuery) -> bool:
    if query.workflow_name is not None and meta.workflow_name != query.workflow_name:
        return False
    if query.statuses and meta.status not in query.statuses:
        return False
    if query.run_id_prefix and not (meta.run_id or "").startswith(query.run_id_prefix):
        return False
    return query.updated_before is None or (meta.updated_at or "") < query.updated_before


class DamageLog:
    """The runs a store skipped as damaged while listing: pass ``record`` as its ``on_report``.

    The runs page clears it, lists, and shows what was recorded meanwhile, so a
    damaged run is named on the page instead of silently missing.
    """

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}
        self._lock = threading.Lock()

    def record(self, event: Event) -> None:
        """A store's ``store:corrupt`` report."""
        where, reason = event.data.get("where"), event.data.get("reason")
        with self._lock:
            self._seen[event.run_id] = f"{reason} ({where})"

    def clear(self) -> None:
        """Forget what was recorded."""
        with self._lock:
            self._seen.clear()

    def items(self) -> list[tuple[str, str]]:
        """``(run id, why)`` of each run recorded, by run id."""
        with self._lock:
            return sorted(self._seen.items())
