"""``zeroflow runs tick`` and ``runs list --due``: waking what is due, from cron or a container.

One tick calls ``engine.resume_due`` on an engine per workflow definition;
``--every SECONDS`` repeats it until interrupted. Time and sleep come in from
the caller (the CLI passes the real ones; tests pass fakes), so the loop is
tested without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from ._errors import StoreError
from ._store_views import DueStore
from ._timers import iso_of

if TYPE_CHECKING:
    from ._engine import WorkflowEngine
    from ._models import RunMetadata, WorkflowResult

__all__ = ["due_listing", "tick", "tick_loop"]


def tick(
    engines: Sequence[WorkflowEngine], now: float | None = None, limit: int | None = None
) -> list[WorkflowResult]:
    """Wake what is due for each engine's workflow, ``limit`` runs at most in all."""
    woken: list[WorkflowResult] = []
    for engine in engines:
        left = None if limit is None else limit - len(woken)
        if left is not None and left <= 0:
            break
        woken += engine.resume_due(now=now, limit=left)
    return woken


def tick_loop(
    once: Callable[[], list[WorkflowResult]],
    out: TextIO,
    *,
    every: float | None,
    sleep: Callable[[float], None],
    as_json: bool = False,
) -> int:
    """Run ``once`` and report what it woke; with ``every``, again every ``every`` seconds.

    Returns 0; a ``KeyboardInterrupt`` (Ctrl-C, or a container's stop) ends
    the loop between ticks, after the tick in progress finished.
    """
    if every is not None and not every > 0:
        raise ValueError(f"--every must be a number of seconds > 0, got {every!r}")
    while True:
        woken = once()
        _report(woken, out, as_json)
        out.flush()
        if every is None:
            return 0
        try:
            sleep(every)
        except KeyboardInterrupt:
            return 0


def _report(woken: list[WorkflowResult], out: TextIO, as_json: bool) -> None:
    import json

    if as_json:
        for result in woken:
            row: dict[str, Any] = {
                "run_id": result.run_id,
                "status": result.status,
                "trace": list(result.trace),
                "waiting_nodes": dict(result.waiting_nodes),
                "resume_tokens": dict(result.resume_tokens),
                "error": None if result.error is None else result.error.to_dict(),
            }
            out.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
        return
    if not woken:
        out.write("nothing due\n")
    for result in woken:
        out.write(f"woke {result.run_id}: {result.status}\n")


def due_listing(store: Any, now: float, workflow_name: str | None) -> list[RunMetadata]:
    """The runs ``runs list --due`` shows: due by ``now``, earliest first."""
    if not isinstance(store, DueStore):
        raise StoreError(
            f"store {type(store).__name__} cannot tell which runs are due (no due_runs)"
        )
    return store.due_runs(now, workflow_name=workflow_name)


def due_table(metas: list[RunMetadata]) -> list[tuple[str, ...]]:
    """Rows of ``runs list --due``: run, workflow, waiting node, why, and when it was due."""
    rows: list[tuple[str, ...]] = [("RUN ID", "WORKFLOW", "NODE", "REASON", "DUE")]
    for m in metas:
        due = "-" if m.due_at is None else iso_of(m.due_at)
        rows.append(
            (m.run_id or "?", m.workflow_name, m.current_node or "-", m.wait_reason or "-", due)
        )
    return rows
