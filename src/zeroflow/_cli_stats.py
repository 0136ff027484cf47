"""``zeroflow runs stats``: runs by status, durations, the slowest and most-failing nodes.

Reads only the run summaries a ``StatsStore`` keeps (``run_summaries``), never
a run itself; a store without them is refused with a message, not scanned.
The figures come from ``stats_report``; this module only prints them.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from ._cli import CliError, _dump, _open_store, _table
from ._models import Event
from ._stats import stats_report
from ._store import StatsStore

__all__ = ["cmd_runs_stats"]


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def _seconds(value: Any) -> str:
    return "-" if value is None else f"{value:g} s"


def _counts(by_status: dict[str, int]) -> str:
    return ", ".join(f"{status} {n}" for status, n in by_status.items())


def cmd_runs_stats(args: argparse.Namespace, out: TextIO) -> int:
    """Print the stats of the runs in ``--store`` (``--workflow``, ``--since``, ``--json``)."""
    corrupt: list[Event] = []
    store = _open_store(args.store, corrupt.append)
    if not isinstance(store, StatsStore):
        raise CliError(
            f"the store at '{args.store}' keeps no run summaries (it is no StatsStore), so "
            "stats would mean loading every run; use a store that implements run_summaries"
        )
    if args.top < 0:
        raise CliError(f"--top must be 0 or more, got {args.top}")
    summaries = store.run_summaries(args.workflow, args.since)
    for event in corrupt:
        sys.stderr.write(
            f"zeroflow: warning: run '{event.run_id}' ({event.data.get('where')}): "
            f"{event.data.get('reason')}\n"
        )
    report = stats_report(summaries, top=args.top)
    if args.json:
        _dump(report, out)
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
                ("  NODE", "EXECUTIONS", "FAILURES", "RETRIES", "P50 MS", "P95 MS", "MAX MS")
            ]
            rows += [
                (
                    f"  {node}",
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
        table: list[tuple[str, ...]] = [("  WORKFLOW", "NODE", "P95 MS", "MAX MS")]
        table += [
            (f"  {r['workflow']}", r["node"], _ms(r["p95_ms"]), _ms(r["max_ms"]))
            for r in report["slowest"]
        ]
        _table(table, out)
    if report["most_failing"]:
        out.write("\nmost-failing nodes\n")
        failing: list[tuple[str, ...]] = [("  WORKFLOW", "NODE", "FAILURES", "EXECUTIONS")]
        failing += [
            (f"  {r['workflow']}", r["node"], str(r["failures"]), str(r["executions"]))
            for r in report["most_failing"]
        ]
        _table(failing, out)
    return 0
