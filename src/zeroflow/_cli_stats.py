"""``zeroflow runs stats``: runs by status, durations, the slowest and most-failing nodes.

Reads only the run summaries a ``StatsStore`` keeps (``run_summaries``), never
a run itself; a store without them is refused with a message, not scanned.
The figures come from ``stats_report``; this module only prints them. The
command's store is opened by ``_cli`` (this module imports nothing of it).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from ._models import Event
from ._stats import stats_report
from ._store_views import StatsStore

__all__ = ["cmd_runs_stats"]


def _table(rows: Sequence[Sequence[str]], out: TextIO, indent: str = "  ") -> None:
    """``rows`` as left-aligned columns, each line indented by ``indent``."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
        out.write(indent + cells.rstrip() + "\n")


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def _seconds(value: Any) -> str:
    return "-" if value is None else f"{value:g} s"


def _counts(by_status: dict[str, int]) -> str:
    return ", ".join(f"{status} {n}" for status, n in by_status.items())


def cmd_runs_stats(
    store: object, corrupt: list[Event], args: argparse.Namespace, out: TextIO
) -> int:
    """Print the stats of ``store``'s runs (``--workflow``, ``--since``, ``--top``, ``--json``).

    ``corrupt`` collects the store's reports of damaged runs, warned about on
    stderr. ``ValueError`` (one line, exit 1) for a store without summaries,
    a ``--since`` that is no time or a negative ``--top``.
    """
    if not isinstance(store, StatsStore):
        raise ValueError(
            f"the store at '{args.store}' keeps no run summaries (it is no StatsStore), so "
            "stats would mean loading every run; use a store that implements run_summaries"
        )
    if args.top < 0:
        raise ValueError(f"--top must be 0 or more, got {args.top}")
    summaries = store.run_summaries(args.workflow, args.since)
    for event in corrupt:
        sys.stderr.write(
            f"zeroflow: warning: run '{event.run_id}' ({event.data.get('where')}): "
            f"{event.data.get('reason')}\n"
        )
    report = stats_report(summaries, top=args.top)
    if args.json:
        out.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        return 0
    if not report["runs"]:
        out.write("no runs\n")
        return 0
    out.write(f"runs: {report['runs']} ({_counts(report['by_status'])})\n")
    if report["runs_without_node_stats"]:
        out.write(
            f"{report['runs_without_node_stats']} run(s) without node figures "
            "(written before the store kept them, or damaged): counted by status only\n"
        )
    for name, flow in report["workflows"].items():
        spread = flow["duration_seconds"]
        out.write(f"\nworkflow {name}: {flow['runs']} runs ({_counts(flow['by_status'])})\n")
        out.write(
            f"  duration of {spread['count']} finished runs: p50 {_seconds(spread['p50'])}, "
            f"p95 {_seconds(spread['p95'])}, max {_seconds(spread['max'])}\n"
        )
        if flow["nodes"]:
            rows: list[tuple[str, ...]] = [
                ("NODE", "EXECUTIONS", "FAILURES", "RETRIES", "P50 MS", "P95 MS", "MAX MS")
            ]
            rows += [
                (
                    node,
                    str(n["executions"]),
                    str(n["failures"]),
                    str(n["retries"]),
                    _ms(n["p50_ms"]),
                    _ms(n["p95_ms"]),
                    _ms(n["max_ms"]),
                )
                for node, n in flow["nodes"].items()
            ]
            _table(rows, out)
    if report["slowest"]:
        out.write("\nslowest nodes (by p95)\n")
        table: list[tuple[str, ...]] = [("WORKFLOW", "NODE", "P95 MS", "MAX MS")]
        table += [
            (r["workflow"], r["node"], _ms(r["p95_ms"]), _ms(r["max_ms"]))
            for r in report["slowest"]
        ]
        _table(table, out)
    if report["most_failing"]:
        out.write("\nmost-failing nodes\n")
        failing: list[tuple[str, ...]] = [("WORKFLOW", "NODE", "FAILURES", "EXECUTIONS")]
        failing += [
            (r["workflow"], r["node"], str(r["failures"]), str(r["executions"]))
            for r in report["most_failing"]
        ]
        _table(failing, out)
    return 0
