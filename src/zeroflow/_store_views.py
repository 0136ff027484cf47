"""What stores tell about runs without loading them: a lease as recorded, a page of runs.

Kept apart from ``_store`` (the protocols ``import zeroflow`` needs) so that
building these records' classes costs nothing until a store or the console
uses them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._models import RunMetadata

__all__ = ["LeaseInfo", "RunPage", "RunQuery"]


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
