"""The ``zeroflow runs`` commands: list, show, events, why, resume, redrive, fork, check-upgrade.

Each ``cmd_runs_*`` takes the parsed arguments and an output stream and
returns an exit code, as the commands of ``_cli`` do; ``add_runs_commands``
adds their arguments to the ``runs`` parser. See ``docs/CLI.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

from . import _constants as C
from ._cli_io import (
    EXIT_OK,
    EXIT_PROBLEM,
    EXIT_RUN_FAILED,
    CliError,
    _dump,
    _load_codec,
    _load_handlers,
    _load_json,
    _load_services,
    _load_workflow,
    _open_store,
)
from ._models import Event, RunSnapshot, WorkflowResult
from ._run.waits import waiting_paths
from ._store import EventLogStore
from ._store_views import LeaseInspectingStore
from ._timers import timer_lines
from ._tokens import token_lines

__all__ = ["add_runs_commands"]


def _table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


def _error_line(error: Any) -> str:
    where = f" at node '{error.node}'" if error.node else ""
    return f"{error.code}{where}: {error.message}"


def cmd_runs_list(args: argparse.Namespace, out: TextIO) -> int:
    corrupt: list[Event] = []
    if args.due:
        from ._tick import due_listing, due_table

        due = due_listing(_open_store(args.store), time.time(), args.workflow)
        if args.json:
            _dump([m.to_dict() for m in due], out)
        elif due:
            _table(due_table(due), out)
        else:
            out.write("nothing due\n")
        return EXIT_OK
    metas = _open_store(args.store, corrupt.append).list_metadata(args.workflow)
    if args.status:
        metas = [m for m in metas if m.status == args.status]
    # A damaged run's status is unknown, so it could be in any: it is named on stderr
    # whatever --status says, and listed as a row unless --status names another status.
    shown = corrupt if args.status in (None, "corrupt") else []
    metas.sort(key=lambda m: (m.updated_at or "", m.run_id or ""), reverse=True)
    for event in corrupt:  # never hidden: each damaged run gets a line on stderr
        sys.stderr.write(
            f"zeroflow: warning: run '{event.run_id}' is corrupt "
            f"({event.data.get('where')}): {event.data.get('reason')}\n"
        )
    if args.json:
        rows: list[dict[str, Any]] = [m.to_dict() for m in metas]
        rows += [
            {
                "run_id": e.run_id,
                "status": "corrupt",
                "where": e.data.get("where"),
                "reason": e.data.get("reason"),
            }
            for e in shown
        ]
        _dump(rows, out)
        return EXIT_OK
    if not metas and not shown:
        what = f"{args.status} runs" if args.status else "runs"
        damaged = f" that can be read ({len(corrupt)} cannot: see above)" if corrupt else ""
        out.write(f"no {what}{damaged}\n")
        return EXIT_OK
    table = [("RUN ID", "WORKFLOW", "STATUS", "NODE", "UPDATED")]
    table += [
        (m.run_id or "?", m.workflow_name, m.status, m.current_node or "-", m.updated_at or "-")
        for m in metas
    ]
    table += [(e.run_id, "?", "corrupt", "-", "-") for e in shown]
    _table(table, out)
    return EXIT_OK


def cmd_runs_show(args: argparse.Namespace, out: TextIO) -> int:
    import json

    snap: RunSnapshot = _open_store(args.store).load_snapshot(args.run_id)
    if args.json:
        _dump(snap.to_dict(), out)
        return EXIT_OK
    lines = [
        ("run", snap.run_id),
        ("workflow", f"{snap.workflow_name} (hash {snap.wf_hash[:12]})"),
        ("status", snap.status),
        ("step", f"{snap.step} (wave {snap.wave})"),
        ("started", snap.started_at or "-"),
        ("updated", snap.updated_at or "-"),
    ]
    if snap.status == C.STATUS_WAITING:
        waits = waiting_paths(snap.status, snap.ready_now, snap.extra, snap.waiting_prompt)
        if len(waits) <= 1:
            lines.append(("waiting", json.dumps(snap.waiting_prompt)))
        else:  # branch HITL: every wait, each resumable by its name
            for i, (path, prompt) in enumerate(sorted(waits.items())):
                lines.append(("waiting" if i == 0 else "", f"{path}: {json.dumps(prompt)}"))
    if snap.last_error is not None:
        lines.append(("last error", _error_line(snap.last_error)))
    if snap.tags:
        lines.append(("tags", ", ".join(map(str, snap.tags))))
    lines.extend(_effect_lines(snap.extra.get("effects")))
    lines.extend(_answer_lines(snap.extra.get("answers")))
    lines.extend(timer_lines(snap.status, snap.ready_now, snap.extra))
    lines.extend(token_lines(snap.extra))
    lines.extend(_codec_lines(snap))
    for key, value in lines:
        out.write(f"{key + ':' if key else '':<12}{value}\n")
    if snap.audit_trail:
        out.write("trace:\n")
        rows = [("  STEP", "WAVE", "NODE", "STATUS", "DURATION", "OUTPUTS", "ERROR")]
        for rec in snap.audit_trail:
            ms = "-" if rec.duration_ms is None else f"{rec.duration_ms:.1f} ms"
            outputs = ", ".join(rec.outputs) or "-"
            error = "" if rec.error is None else _cut(f"{rec.error.code}: {rec.error.message}")
            rows.append((f"  {rec.step}", str(rec.wave), rec.node, rec.status, ms, outputs, error))
        _table(rows, out)
    return EXIT_OK


def _codec_lines(snap: RunSnapshot) -> list[tuple[str, str]]:
    """``codec:`` and ``state:`` lines of a run written with a codec, its tags read out."""
    from ._tagged import CODEC_MARK, readable

    mark = snap.extra.get(CODEC_MARK)
    if not isinstance(mark, dict):
        return []
    types = ", ".join(map(str, mark.get("types") or ())) or "none registered"
    lines = [("codec", f"{mark.get('format')} (types: {types})")]
    for i, (key, value) in enumerate(snap.state.workflow.items()):
        lines.append(("state" if i == 0 else "", _cut(f"{key}: {readable(value)}", 200)))
    return lines


ERROR_CELL_CHARS = 100
"""``runs show`` cuts a step's error to this many characters (``--json`` has it whole)."""


def _cut(text: str, limit: int = ERROR_CELL_CHARS) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _answer_lines(answers: Any) -> list[tuple[str, str]]:
    """``answered:`` lines of ``runs show``: who answered which wait, and when."""
    if not isinstance(answers, list):
        return []
    lines: list[tuple[str, str]] = []
    for i, answer in enumerate(a for a in answers if isinstance(a, dict)):
        node = answer.get("node") or "-"
        text = f"{node} by {answer.get('actor')} at {answer.get('at')}"
        lines.append(("answered" if i == 0 else "", text))
    return lines


def _effect_lines(effects: Any) -> list[tuple[str, str]]:
    """``effects:`` lines of ``runs show``: each open effect, done (with its receipt) or not."""
    import json

    lines: list[tuple[str, str]] = []
    if not isinstance(effects, dict):
        return lines
    for node, record in sorted(effects.items()):
        if not isinstance(record, dict):
            continue
        entries: list[tuple[str, Any]] = []
        keys = record.get("keys")
        if isinstance(keys, dict):
            entries += sorted(keys.items())
        items = record.get("items")
        if isinstance(items, dict):
            for index, item_keys in sorted(items.items()):
                if isinstance(item_keys, dict):
                    entries += [(f"[{index}] {k}", v) for k, v in sorted(item_keys.items())]
        for key, entry in entries:
            state = entry.get("state") if isinstance(entry, dict) else None
            if state == "done":
                text = f"done, receipt {json.dumps(entry.get('receipt'), sort_keys=True)}"
            else:
                text = "UNCERTAIN (intent recorded, no receipt)"
            lines.append(("effects" if not lines else "", f"{node} {key}: {text}"))
    return lines


EVENT_LINE_CHARS = 400
"""``runs events`` cuts a longer line (a map's failure can be 25 KB) to this many characters."""


def _event_line(event: Event, full: bool = False) -> str:
    """One event as a line; longer than ``EVENT_LINE_CHARS`` it is cut, with a marker,
    unless ``full``."""
    import json

    data = {k: v for k, v in event.data.items() if k not in ("node", "state")}
    detail = " " + json.dumps(data, ensure_ascii=False, sort_keys=True) if data else ""
    node = event.node or "-"
    line = f"{event.ts}  step {event.step:<3} wave {event.wave:<2} {event.kind:<13} {node}{detail}"
    if full or len(line) <= EVENT_LINE_CHARS:
        return line
    kept = EVENT_LINE_CHARS - 60
    return f"{line[:kept]} ... [{len(line) - kept} more characters; --full prints them]"


def cmd_runs_events(args: argparse.Namespace, out: TextIO) -> int:
    import json

    store = _open_store(args.store)
    if not isinstance(store, EventLogStore):
        raise CliError(f"the store at '{args.store}' cannot list events")
    read = store.events
    seen = 0
    while True:
        events = read(args.run_id)
        for event in events[seen:]:
            if args.json:
                out.write(json.dumps(event.to_dict(), ensure_ascii=False, sort_keys=True) + "\n")
            else:
                out.write(_event_line(event, args.full) + "\n")
        out.flush()
        seen = len(events)
        if not args.follow:
            return EXIT_OK
        if store.load_snapshot(args.run_id).status in C.FINISHED_STATUSES:
            return EXIT_OK
        time.sleep(args.poll_seconds)


Ticker = Callable[[Callable[[], None]], Callable[[], None]]
"""Starts calling a function every so often and returns what stops it (the progress clock)."""

TICK_SECONDS = 0.5


def thread_ticker(tick: Callable[[], None]) -> Callable[[], None]:
    """Call ``tick`` every ``TICK_SECONDS`` from a daemon thread until the returned stop()."""
    import threading

    stopped = threading.Event()

    def loop() -> None:
        while not stopped.wait(TICK_SECONDS):
            tick()

    threading.Thread(target=loop, name="zeroflow-progress", daemon=True).start()
    return stopped.set


class _Progress:
    """A one-line progress display on a terminal: nodes done, current node, elapsed time.

    The line is redrawn at each node's start and end and, by ``ticker``, while
    a node runs, so the elapsed time keeps moving; ``clock`` reads seconds.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        clock: Callable[[], float] = time.monotonic,
        ticker: Ticker = thread_ticker,
    ) -> None:
        import threading

        self.stream = stream
        self.active = stream.isatty()
        self.done = 0
        self.current = "-"
        self.clock = clock
        self.started = clock()
        self.run_id = ""
        self._ticker = ticker
        self._stop: Callable[[], None] | None = None
        self._lock = threading.RLock()  # a ticker may tick at once, inside __call__

    def __call__(self, event: Event) -> None:
        if not self.active:
            return
        with self._lock:
            self.run_id = event.run_id
            if event.kind == C.EVENT_NODE_START:
                self.current = event.node or "-"
            elif event.kind in (C.EVENT_NODE_END, C.EVENT_NODE_ERROR):
                self.done += 1
            elif event.kind not in (C.EVENT_WF_START, C.EVENT_WF_RESUMED):
                return
            self._draw()
            if self._stop is None:
                self._stop = self._ticker(self.tick)

    def tick(self) -> None:
        """Redraw the line with the time elapsed now (the ticker calls it)."""
        with self._lock:
            if self.active and self.run_id and self._stop is not None:
                self._draw()

    def _draw(self) -> None:
        elapsed = self.clock() - self.started
        self.stream.write(
            f"\r\x1b[Krun {self.run_id}: {self.done} node(s) done, at '{self.current}', "
            f"{elapsed:.1f}s"
        )
        self.stream.flush()

    def close(self) -> None:
        with self._lock:
            stop, self._stop = self._stop, None
            if stop is not None:
                stop()
            if self.active and self.run_id:
                self.stream.write("\r\x1b[K")
                self.stream.flush()


def _engine(args: argparse.Namespace, progress: _Progress) -> Any:
    from ._engine import WorkflowEngine

    defn = _load_workflow(args.workflow)
    handlers = _load_handlers(args.handlers)
    services = None if args.services is None else _load_services(args.services)
    codec = None if args.codec is None else _load_codec(args.codec)
    return WorkflowEngine(
        defn,
        handlers,
        store=_open_store(args.store),
        event_callback=progress,
        services=services,
        codec=codec,
    )


def _report(outcome: Any, args: argparse.Namespace, out: TextIO) -> int:
    import json

    if isinstance(outcome, RunSnapshot):
        if args.json:
            _dump(outcome.to_dict(), out)
        else:
            out.write(f"run {outcome.run_id}: {outcome.status} at step {outcome.step}\n")
        return EXIT_OK
    if not isinstance(outcome, WorkflowResult):
        raise CliError(f"unexpected result from the engine: {type(outcome).__name__}")
    if args.json:
        _dump(
            {
                "run_id": outcome.run_id,
                "status": outcome.status,
                "success": outcome.success,
                "trace": list(outcome.trace),
                "waiting_prompt": outcome.waiting_prompt,
                "error": None if outcome.error is None else outcome.error.to_dict(),
                **({"resume_tokens": outcome.resume_tokens} if outcome.resume_tokens else {}),
            },
            out,
        )
    else:
        out.write(f"run {outcome.run_id}: {outcome.status}\n")
        out.write(f"trace: {' -> '.join(outcome.trace) or '-'}\n")
        if outcome.waiting:
            out.write(f"waiting: {json.dumps(outcome.waiting_prompt)}\n")
        if outcome.error is not None and not outcome.success:
            out.write(f"error: {_error_line(outcome.error)}\n")
    return EXIT_RUN_FAILED if outcome.status in (C.STATUS_FAILED, C.STATUS_CANCELLED) else EXIT_OK


def _drive(args: argparse.Namespace, out: TextIO, call: Callable[[Any], Any]) -> int:
    progress = _Progress(sys.stderr)
    engine = _engine(args, progress)
    try:
        outcome = call(engine)
    finally:
        progress.close()
    return _report(outcome, args, out)


def cmd_runs_resume(args: argparse.Namespace, out: TextIO) -> int:
    import json

    resume_input = None
    if args.input is not None:
        try:
            resume_input = json.loads(args.input)
        except json.JSONDecodeError as exc:
            raise CliError(f"--input is not valid JSON: {exc.msg} (column {exc.colno})") from None

    def call(engine: Any) -> Any:
        snap = engine.load_snapshot(args.run_id)
        return engine.run_from_checkpoint(
            snap, resume_input, node=args.node, actor=args.actor, token=args.token
        )

    return _drive(args, out, call)


def cmd_runs_tick(args: argparse.Namespace, out: TextIO) -> int:
    from ._engine import WorkflowEngine
    from ._tick import tick, tick_loop

    handlers = _load_handlers(args.handlers)
    store = _open_store(args.store)
    engines = [WorkflowEngine(_load_workflow(f), handlers, store=store) for f in args.workflow]
    return tick_loop(
        lambda: tick(engines, args.now, args.limit),
        out,
        every=args.every,
        sleep=time.sleep,
        as_json=args.json,
    )


def cmd_runs_redrive(args: argparse.Namespace, out: TextIO) -> int:
    override = None
    if args.override is not None:
        node, sep, path = args.override.partition("=")
        if not sep or not node or not path:
            raise CliError(f"--override wants NODE=FILE.json, got {args.override!r}")
        override = {node: _load_json(path)}

    def call(engine: Any) -> Any:
        return engine.redrive(args.run_id, override=override, actor=args.actor, reason=args.reason)

    return _drive(args, out, call)


def cmd_runs_fork(args: argparse.Namespace, out: TextIO) -> int:
    def call(engine: Any) -> Any:
        if args.step is None and args.seq is None:
            raise CliError("runs fork needs --step N or --seq S (the checkpoint to fork from)")
        return engine.fork(args.run_id, args.step, new_run_id=args.new_run_id, seq=args.seq)

    return _drive(args, out, call)


WHY_EVENTS = 200
"""How many of a run's last events ``runs why`` reads (a retry wait, when it paused)."""


def cmd_runs_why(args: argparse.Namespace, out: TextIO) -> int:
    from ._definition import compile_workflow
    from ._why import why_run

    store = _open_store(args.store)
    snap: RunSnapshot = store.load_snapshot(args.run_id)
    lease = store.lease_info(args.run_id) if isinstance(store, LeaseInspectingStore) else None
    events: list[Event] = []
    if isinstance(store, EventLogStore):
        try:
            events = store.events(args.run_id)[-WHY_EVENTS:]
        except KeyError:
            events = []  # a run with no log yet: the snapshot says enough
    graph = None if args.definition is None else compile_workflow(_load_workflow(args.definition))
    found = why_run(snap, lease=lease, events=events, definition=graph, now=time.time())
    if args.json:
        _dump(found.to_dict(), out)
    else:
        out.write(found.text())
    return EXIT_OK


def cmd_runs_check_upgrade(args: argparse.Namespace, out: TextIO) -> int:
    from ._engine import WorkflowEngine
    from ._upgrade import apply_upgrade

    new_def = _load_workflow(args.new_def)
    olds = [_load_workflow(path) for path in args.old]
    children: dict[str, Mapping[str, Any]] = {}
    for spec in args.subflow:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise CliError(
                f"--subflow wants NAME=FILE (e.g. approval=flows/approval.json), got {spec!r}"
            )
        children[name] = _load_workflow(path)
    if args.apply and args.handlers is None:
        raise CliError("--apply needs --handlers MODULE:ATTR (the handlers of the new definition)")
    handlers = {} if args.handlers is None else _load_handlers(args.handlers)
    corrupt: list[Event] = []
    store = _open_store(args.store, corrupt.append)
    engine = WorkflowEngine(new_def, handlers, store=store, subflows=children or None)
    report = engine.check_upgrade(store, args.workflow, old_definitions=olds)
    applied = apply_upgrade(engine, report, [*olds, new_def]) if args.apply else None
    if args.json:
        data = report.to_dict()
        if applied is not None:
            data["applied"] = applied.to_dict()
        _dump(data, out)
    else:
        out.write(report.table())
        if applied is not None:
            out.write(f"\nmigrated {len(applied.migrated)} run(s)")
            out.write(f": {', '.join(applied.migrated)}\n" if applied.migrated else "\n")
            for run_id, why in applied.locked:
                out.write(f"skipped {run_id}: held by another caller ({why})\n")
            for run_id, why in applied.not_applied:
                out.write(f"not applied {run_id}: {why}\n")
        elif report.migratable:
            out.write("\ndry run: nothing was written; --apply migrates the migratable runs\n")
    failed = not report.ok or (applied is not None and not applied.complete)
    return EXIT_PROBLEM if failed else EXIT_OK


def add_runs_commands(runs: argparse.ArgumentParser) -> None:
    """Give the ``runs`` parser its actions, each with its arguments and handler."""
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument(
        "--store", required=True, metavar="PATH", help="a JSON store folder or a .sqlite/.db file"
    )
    store.add_argument("--json", action="store_true", help="machine-readable output")
    driven = argparse.ArgumentParser(add_help=False)
    driven.add_argument("--workflow", required=True, metavar="FILE", help="the definition")
    driven.add_argument(
        "--handlers", required=True, metavar="MODULE:ATTR", help="a mapping name -> callable"
    )
    driven.add_argument(
        "--services",
        metavar="MODULE:ATTR",
        help="a mapping name -> object the handlers get as ctx.services",
    )
    driven.add_argument(
        "--codec",
        metavar="MODULE:ATTR",
        help="the zeroflow.codecs.Codec of runs that hold rich types (with its types registered)",
    )
    rsub = runs.add_subparsers(dest="runs_command", required=True, metavar="ACTION")

    p = rsub.add_parser("list", parents=[store], help="list runs")
    p.add_argument(
        "--status",
        choices=[*sorted(C.RUN_STATUSES), "corrupt"],
        help="only runs in this status (corrupt: the runs the store cannot read)",
    )
    p.add_argument("--workflow", metavar="NAME", help="only runs of this workflow name")
    p.add_argument("--due", action="store_true", help="only waiting runs whose timer is due")
    p.set_defaults(func=cmd_runs_list)

    p = rsub.add_parser("show", parents=[store], help="one run: status, prompt, error, trace")
    p.add_argument("run_id", metavar="RUN_ID", help="the run's id (see runs list)")
    p.set_defaults(func=cmd_runs_show)

    p = rsub.add_parser("events", parents=[store], help="a run's event log")
    p.add_argument("run_id", metavar="RUN_ID", help="the run's id (see runs list)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until it ends")
    p.add_argument(
        "--full",
        action="store_true",
        help=f"print long lines whole (else cut at {EVENT_LINE_CHARS} characters)",
    )
    p.add_argument("--poll-seconds", type=float, default=0.5, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_runs_events)

    p = rsub.add_parser("why", parents=[store], help="why a run is not moving, and what would")
    p.add_argument("run_id", metavar="RUN_ID", help="the run's id (see runs list)")
    p.add_argument(
        "--def",
        dest="definition",
        metavar="FILE",
        help="the definition it should run under: is its hash the run's, would migrate take it",
    )
    p.set_defaults(func=cmd_runs_why)

    p = rsub.add_parser("resume", parents=[store, driven], help="resume a waiting run")
    p.add_argument("run_id", metavar="RUN_ID", help="the run's id (see runs list)")
    p.add_argument("--input", metavar="JSON", help="the resume payload (JSON)")
    p.add_argument("--node", metavar="N", help="the waiting node to resume")
    p.add_argument("--actor", metavar="WHO", help="who answered (kept with the run)")
    p.add_argument("--token", metavar="TOKEN", help="the wait's single-use resume token")
    p.set_defaults(func=cmd_runs_resume)

    p = rsub.add_parser("tick", parents=[store], help="wake the runs whose timer is due")
    p.add_argument(
        "--workflow",
        required=True,
        action="append",
        metavar="FILE",
        help="a definition whose runs to wake (repeatable)",
    )
    p.add_argument(
        "--handlers", required=True, metavar="MODULE:ATTR", help="a mapping name -> callable"
    )
    p.add_argument("--every", type=float, metavar="SECONDS", help="repeat until interrupted")
    p.add_argument("--limit", type=int, metavar="N", help="wake at most N runs a tick")
    p.add_argument("--now", type=float, metavar="EPOCH", help="wake what is due by then")
    p.set_defaults(func=cmd_runs_tick)

    p = rsub.add_parser("redrive", parents=[store, driven], help="run a failed run's node again")
    p.add_argument("run_id", metavar="RUN_ID", help="the run's id (see runs list)")
    p.add_argument(
        "--override",
        metavar="NODE=FILE.json",
        help="mark the failed node done with this result (outputs, workflow_updates, "
        "node_updates) instead of running it",
    )
    p.add_argument("--actor", metavar="WHO", help="who overrode (kept in the audit trail)")
    p.add_argument("--reason", metavar="WHY", help="why (kept in the audit trail)")
    p.set_defaults(func=cmd_runs_redrive)

    p = rsub.add_parser("fork", parents=[store, driven], help="start a new run from a step")
    p.add_argument("run_id", metavar="RUN_ID", help="the run's id (see runs list)")
    p.add_argument("--step", type=int, metavar="N", help="the last checkpoint at step N")
    p.add_argument(
        "--seq", type=int, metavar="S", help="exactly checkpoint S (its seq, see runs show --json)"
    )
    p.add_argument("--new-run-id", metavar="ID", help="the new run's id (default: a fresh one)")
    p.set_defaults(func=cmd_runs_fork)

    p = rsub.add_parser(
        "check-upgrade",
        parents=[store],
        help="what a new definition does to the unfinished runs (exit 1 if any is blocked)",
    )
    p.add_argument("new_def", metavar="NEW_DEF", help="the definition about to be deployed")
    p.add_argument("--workflow", metavar="NAME", help="the runs' workflow (default: NEW_DEF's)")
    p.add_argument(
        "--old",
        action="append",
        default=[],
        metavar="OLD_DEF",
        help="a definition runs were started with (repeatable; matched by hash)",
    )
    p.add_argument(
        "--subflow",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="a child definition NEW_DEF runs (repeatable)",
    )
    p.add_argument("--apply", action="store_true", help="migrate every migratable run")
    p.add_argument("--handlers", metavar="MODULE:ATTR", help="the new definition's handlers")
    p.set_defaults(func=cmd_runs_check_upgrade)

    p = rsub.add_parser(
        "stats", parents=[store], help="runs by status, durations, slowest and failing nodes"
    )
    p.add_argument("--workflow", metavar="NAME", help="only this workflow's runs")
    p.add_argument("--since", metavar="ISO-8601", help="only runs started at or after this time")
    p.add_argument("--top", type=int, default=5, metavar="N", help="nodes per list (default 5)")
    p.set_defaults(func=_cmd_runs_stats)


def _cmd_runs_stats(args: argparse.Namespace, out: TextIO) -> int:
    from ._cli_stats import cmd_runs_stats  # its own module: imported when the command runs

    corrupt: list[Event] = []
    return cmd_runs_stats(_open_store(args.store, corrupt.append), corrupt, args, out)
