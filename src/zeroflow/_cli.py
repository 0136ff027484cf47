"""The ``zeroflow`` command line: validate, lint, convert and draw workflows; inspect runs.

``main(argv)`` parses the arguments with ``argparse``, runs one command and
returns the exit code: 0 success, 1 a problem was found or the command
failed (one line on stderr, never a traceback), 2 bad usage, 3 a run the
command drove ended failed or cancelled. See ``docs/CLI.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from . import _constants as C
from ._definition import compile_workflow
from ._errors import ZeroflowError
from ._grammar import FORMATS, check, detect_format, is_zf1, normalise
from ._models import Event, RunSnapshot, WorkflowResult
from ._run.waits import waiting_paths
from ._store import EventLogStore

if TYPE_CHECKING:
    from pathlib import Path

# ``zeroflow --help`` builds the parser and nothing else: what only a command
# needs (json, pathlib, the linter, the converter, the schemas, the stores,
# inspect) is imported by that command.

__all__ = ["main", "CliError"]

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, EXIT_RUN_FAILED = 0, 1, 2, 3
SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")


class CliError(Exception):
    """A user mistake the CLI reports as one line on stderr."""


# ---------------------------------------------------------------------- inputs


def _load_json(path: str) -> Any:
    import json
    from pathlib import Path

    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"{path}: cannot read: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(
            f"{path}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise CliError(f"{path}: not valid JSON for zeroflow: nested too deeply") from None


def _load_workflow(path: str) -> Mapping[str, Any]:
    data = _load_json(path)
    if not isinstance(data, Mapping):
        raise CliError(f"{path}: a workflow definition must be a JSON object")
    return data


def _import_attr(spec: str) -> Any:
    import importlib
    from pathlib import Path

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise CliError(f"--handlers wants MODULE:ATTR (e.g. myapp.flows:HANDLERS), got {spec!r}")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # like `python -m`: modules next to you import
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise CliError(
            f"cannot import handler module '{module_name}': {type(exc).__name__}: {exc}"
        ) from None
    value: Any = module
    for part in attr.split("."):
        if not hasattr(value, part):
            raise CliError(f"module '{module_name}' has no attribute '{attr}'")
        value = getattr(value, part)
    return value


def _load_handlers(spec: str) -> Mapping[str, Any]:
    handlers = _import_attr(spec)
    if not isinstance(handlers, Mapping):
        raise CliError(
            f"{spec} must be a mapping of handler name to callable, got {type(handlers).__name__}"
        )
    return handlers


def _open_store(path: str, on_report: Callable[[Event], None] | None = None) -> Any:
    """The store at ``path``; ``on_report`` hears of runs it skips as corrupt."""
    from pathlib import Path

    from .stores import JsonFileWorkflowStore

    where = Path(path)
    if where.suffix.lower() in SQLITE_SUFFIXES:
        if not where.is_file():
            raise CliError(f"store file '{path}' does not exist")
        if not _is_sqlite_store(where):
            raise CliError(
                f"'{path}' is not a zeroflow SQLite store (it has no zeroflow tables); "
                "point --store at the file a SqliteWorkflowStore wrote"
            )
        from .stores import SqliteWorkflowStore

        return SqliteWorkflowStore(where, on_report=on_report)
    if not where.exists():
        raise CliError(f"store folder '{path}' does not exist")
    if not where.is_dir():
        raise CliError(
            f"store '{path}' is neither a folder (JSON store) nor a "
            f"{'/'.join(SQLITE_SUFFIXES)} file (SQLite store)"
        )
    return JsonFileWorkflowStore(where, on_report=on_report)


def _is_sqlite_store(path: Path) -> bool:
    """True when ``path`` holds a zeroflow SQLite store; looks without writing anything."""
    import sqlite3

    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            row = db.execute(
                "SELECT count(*) FROM sqlite_master WHERE type='table' "
                "AND name IN ('runs', 'checkpoints', 'snapshots', 'events', 'leases')"
            ).fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return False
    return bool(row) and row[0] == 5


def _dump(data: Any, out: TextIO) -> None:
    import json

    out.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------------- definitions


def _problems(defn: Any) -> list[tuple[str, str]]:
    """Every problem of a definition as ``(pointer, message)``; empty when it is valid."""
    if not isinstance(defn, Mapping):
        return [("", "a workflow definition must be a JSON object")]
    if is_zf1(defn):
        found = check(defn)
        if found:
            return [(e.path, str(e)) for e in found]
    try:
        compile_workflow(defn)
    except ZeroflowError as exc:
        return [(getattr(exc, "path", ""), str(exc))]
    return []


def cmd_validate(args: argparse.Namespace, out: TextIO) -> int:
    reports = []
    for path in args.files:
        try:
            defn: Any = _load_json(path)
            problems = _problems(defn)
        except CliError as exc:
            defn, problems = None, [("", str(exc).removeprefix(f"{path}: "))]
        except Exception as exc:  # one file's surprise must not stop the others' checks
            defn, problems = None, [("", f"cannot be checked: {type(exc).__name__}: {exc}")]
        fmt = detect_format(defn) if isinstance(defn, Mapping) else None
        reports.append((path, fmt, defn, problems))
    if args.json:
        _dump(
            [
                {
                    "file": path,
                    "format": fmt,
                    "valid": not problems,
                    "errors": [{"pointer": p, "message": m} for p, m in problems],
                }
                for path, fmt, _, problems in reports
            ],
            out,
        )
    else:
        for path, fmt, defn, problems in reports:
            if not problems:
                out.write(f"{path}: ok ({fmt}, {len(defn['nodes'])} nodes)\n")
            for ptr, message in problems:
                # Problems are diagnostics: stderr, one line each (stdout keeps the "ok" lines).
                sys.stderr.write(f"{path}:{ptr or '/'}: {message}\n")
    return EXIT_PROBLEM if any(problems for *_, problems in reports) else EXIT_OK


def cmd_lint(args: argparse.Namespace, out: TextIO) -> int:
    from ._lint import lint

    handlers = None if args.handlers is None else _load_handlers(args.handlers)
    results = []
    for path in args.files:
        results.append((path, lint(_load_workflow(path), handlers)))
    errors = sum(f.severity == "error" for _, found in results for f in found)
    warnings = sum(f.severity == "warning" for _, found in results for f in found)
    if args.json:
        _dump([{"file": p, **f.to_dict()} for p, found in results for f in found], out)
    else:
        for path, found in results:
            for f in found:
                out.write(f"{path}:{f.pointer or '/'}: {f.severity} {f.code} {f.message}\n")
                out.write(f"    hint: {f.hint}\n")
        out.write(f"{errors} error(s), {warnings} warning(s) in {len(results)} file(s)\n")
    failed = errors or (args.strict and warnings)
    return EXIT_PROBLEM if failed else EXIT_OK


def cmd_schema(args: argparse.Namespace, out: TextIO) -> int:
    from ._schema import schema

    _dump(schema(args.format), out)
    return EXIT_OK


def cmd_convert(args: argparse.Namespace, out: TextIO) -> int:
    import json
    from pathlib import Path

    from ._convert import convert

    result = convert(_load_workflow(args.file), to=args.to)
    for loss in result.losses:
        sys.stderr.write(f"zeroflow: warning: {args.file}:{loss.path or '/'}: {loss.message}\n")
    text = json.dumps(result.definition, indent=2, ensure_ascii=False) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        out.write(text)
    return EXIT_PROBLEM if args.strict and result.losses else EXIT_OK


def cmd_viz(args: argparse.Namespace, out: TextIO) -> int:
    from pathlib import Path

    from . import viz

    defn = _load_workflow(args.file)
    legacy = normalise(defn) if is_zf1(defn) else defn
    compile_workflow(defn)
    draws: dict[str, Callable[..., Any]] = {
        "svg": viz.workflow_to_svg,
        "html": viz.workflow_to_html,
        "mermaid": viz.workflow_to_mermaid,
        "dot": viz.workflow_to_dot,
    }
    draw = draws[args.format]
    run = None
    if args.run is not None:
        if args.store is None:
            raise CliError("--run needs --store PATH to read the run from")
        run = _open_store(args.store).load_snapshot(args.run)
    if args.format == "html":
        if not args.output:
            raise CliError("--format html writes a file: give -o OUT.html")
        written = draw(legacy, args.output, run=run)
        out.write(f"wrote {written}\n")
        return EXIT_OK
    text = draw(legacy, fenced=False) if args.format == "mermaid" else draw(legacy, run=run)
    text = text if text.endswith("\n") else text + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        out.write(text)
    return EXIT_OK


# ---------------------------------------------------------------------- runs


def _table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


def _error_line(error: Any) -> str:
    where = f" at node '{error.node}'" if error.node else ""
    return f"{error.code}{where}: {error.message}"


def cmd_runs_list(args: argparse.Namespace, out: TextIO) -> int:
    corrupt: list[Event] = []
    metas = _open_store(args.store, corrupt.append).list_metadata(args.workflow)
    if args.status:
        metas = [m for m in metas if m.status == args.status]
    if args.status not in (None, "corrupt"):
        corrupt = []
    metas.sort(key=lambda m: (m.updated_at or "", m.run_id or ""), reverse=True)
    for event in corrupt:  # listed, never hidden: each damaged run also gets a line on stderr
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
            for e in corrupt
        ]
        _dump(rows, out)
        return EXIT_OK
    if not metas and not corrupt:
        out.write("no runs\n")
        return EXIT_OK
    table = [("RUN ID", "WORKFLOW", "STATUS", "NODE", "UPDATED")]
    table += [
        (m.run_id or "?", m.workflow_name, m.status, m.current_node or "-", m.updated_at or "-")
        for m in metas
    ]
    table += [(e.run_id, "?", "corrupt", "-", "-") for e in corrupt]
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
    for key, value in lines:
        out.write(f"{key + ':' if key else '':<12}{value}\n")
    if snap.audit_trail:
        out.write("trace:\n")
        rows = [("  STEP", "WAVE", "NODE", "STATUS", "DURATION", "OUTPUTS")]
        for rec in snap.audit_trail:
            ms = "-" if rec.duration_ms is None else f"{rec.duration_ms:.1f} ms"
            rows.append(
                (f"  {rec.step}", str(rec.wave), rec.node, rec.status, ms, ", ".join(rec.outputs))
            )
        _table(rows, out)
    return EXIT_OK


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


def _event_line(event: Event) -> str:
    import json

    data = {k: v for k, v in event.data.items() if k not in ("node", "state")}
    detail = " " + json.dumps(data, ensure_ascii=False, sort_keys=True) if data else ""
    node = event.node or "-"
    return f"{event.ts}  step {event.step:<3} wave {event.wave:<2} {event.kind:<13} {node}{detail}"


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
                out.write(_event_line(event) + "\n")
        out.flush()
        seen = len(events)
        if not args.follow:
            return EXIT_OK
        if store.load_snapshot(args.run_id).status in C.FINISHED_STATUSES:
            return EXIT_OK
        time.sleep(args.poll_seconds)


class _Progress:
    """A one-line progress display on a terminal: nodes done, current node, elapsed time."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.active = stream.isatty()
        self.done = 0
        self.current = "-"
        self.started = time.monotonic()
        self.run_id = ""

    def __call__(self, event: Event) -> None:
        if not self.active:
            return
        self.run_id = event.run_id
        if event.kind == C.EVENT_NODE_START:
            self.current = event.node or "-"
        elif event.kind in (C.EVENT_NODE_END, C.EVENT_NODE_ERROR):
            self.done += 1
        elif event.kind not in (C.EVENT_WF_START, C.EVENT_WF_RESUMED):
            return
        elapsed = time.monotonic() - self.started
        self.stream.write(
            f"\r\x1b[Krun {self.run_id}: {self.done} node(s) done, at '{self.current}', "
            f"{elapsed:.1f}s"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.active and self.run_id:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _engine(args: argparse.Namespace, progress: _Progress) -> Any:
    from ._engine import WorkflowEngine

    defn = _load_workflow(args.workflow)
    handlers = _load_handlers(args.handlers)
    return WorkflowEngine(defn, handlers, store=_open_store(args.store), event_callback=progress)


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
        return engine.run_from_checkpoint(snap, resume_input, node=args.node, actor=args.actor)

    return _drive(args, out, call)


def cmd_runs_redrive(args: argparse.Namespace, out: TextIO) -> int:
    def call(engine: Any) -> Any:
        return engine.redrive(args.run_id)

    return _drive(args, out, call)


def cmd_runs_fork(args: argparse.Namespace, out: TextIO) -> int:
    def call(engine: Any) -> Any:
        if args.step is None and args.seq is None:
            raise CliError("runs fork needs --step N or --seq S (the checkpoint to fork from)")
        return engine.fork(args.run_id, args.step, new_run_id=args.new_run_id, seq=args.seq)

    return _drive(args, out, call)


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


def _log_line(line: str) -> None:
    sys.stderr.write(line + "\n")


def cmd_ui(args: argparse.Namespace, out: TextIO) -> int:
    from .console import DamageLog, make_server, new_secret
    from .console._security import is_loopback

    token = args.token
    if token is None and not is_loopback(args.host):
        token = new_secret()
    from pathlib import Path

    if args.workflows is not None and not Path(args.workflows).is_dir():
        raise CliError(f"--workflows '{args.workflows}' is not a folder")
    handlers = None if args.handlers is None else _load_handlers(args.handlers)
    damage = DamageLog()
    server = make_server(
        _open_store(args.store, damage.record),
        handlers=handlers,
        workflows=args.workflows,
        host=args.host,
        port=args.port,
        token=token,
        log=None if args.quiet else _log_line,
        damage=damage,
    )
    mode = "read-only (give --handlers to act on runs)" if handlers is None else "actions on"
    out.write(f"zeroflow console at {server.url} ({mode}); Ctrl-C stops it\n")
    if token is not None and args.token is None:
        out.write(f"access token: {token}\n")
    out.flush()
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return EXIT_OK


# ---------------------------------------------------------------------- parser


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``zeroflow`` (exposed for docs and tests).

    Given ``command`` (the one ``main`` finds in its argv, ``""`` for none), only
    that command gets its arguments: ``zeroflow --help`` lists every command
    with its help line and builds no more.
    """

    def wanted(name: str) -> bool:
        return command is None or command == name

    parser = argparse.ArgumentParser(
        prog="zeroflow",
        description="Validate, lint, convert and draw zeroflow workflows; inspect and drive runs.",
    )
    parser.add_argument(
        "--traceback", action="store_true", help="show a traceback on unexpected errors"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check workflow files (exit 1 if any is invalid)")
    if wanted("validate"):
        p.add_argument("files", nargs="+", metavar="FILE")
        p.add_argument("--json", action="store_true", help="machine-readable report")
        p.set_defaults(func=cmd_validate)

    p = sub.add_parser("lint", help="find likely mistakes in workflow files")
    if wanted("lint"):
        p.add_argument("files", nargs="+", metavar="FILE")
        p.add_argument(
            "--handlers", metavar="MODULE:ATTR", help="check handler names against a map"
        )
        p.add_argument("--strict", action="store_true", help="warnings also fail (exit 1)")
        p.add_argument("--json", action="store_true", help="machine-readable findings")
        p.set_defaults(func=cmd_lint)

    p = sub.add_parser("schema", help="print the JSON Schema of a definition format")
    if wanted("schema"):
        p.add_argument("--format", choices=FORMATS, default="zf/1")
        p.set_defaults(func=cmd_schema)

    p = sub.add_parser("convert", help="convert a workflow between zf/1 and legacy")
    if wanted("convert"):
        p.add_argument("file", metavar="FILE")
        p.add_argument("--to", choices=FORMATS, required=True)
        p.add_argument("-o", "--output", metavar="OUT")
        p.add_argument("--strict", action="store_true", help="exit 1 if anything is lost")
        p.set_defaults(func=cmd_convert)

    p = sub.add_parser("viz", help="draw a workflow (svg, html, mermaid, dot)")
    if wanted("viz"):
        p.add_argument("file", metavar="FILE")
        p.add_argument("--format", choices=("svg", "html", "mermaid", "dot"), default="svg")
        p.add_argument("-o", "--output", metavar="OUT")
        p.add_argument("--store", metavar="PATH", help="store to read --run from")
        p.add_argument("--run", metavar="RUN_ID", help="overlay a run's progress")
        p.set_defaults(func=cmd_viz)

    p = sub.add_parser("ui", help="serve the run console, a local web page over a store")
    if wanted("ui"):
        p.add_argument("--store", required=True, metavar="PATH", help="a JSON store or .sqlite")
        p.add_argument("--handlers", metavar="MODULE:ATTR", help="enable actions on runs")
        p.add_argument("--workflows", metavar="DIR", help="folder of definition files (*.json)")
        p.add_argument("--host", default="127.0.0.1", help="address to listen on")
        p.add_argument("--port", type=int, default=8765, help="port (0 picks a free one)")
        p.add_argument("--token", metavar="T", help="access token (generated off loopback)")
        p.add_argument("--quiet", action="store_true", help="no request log on stderr")
        p.set_defaults(func=cmd_ui)

    runs = sub.add_parser("runs", help="inspect and drive runs kept in a store")
    if not wanted("runs"):
        return parser
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
    rsub = runs.add_subparsers(dest="runs_command", required=True, metavar="ACTION")

    p = rsub.add_parser("list", parents=[store], help="list runs")
    p.add_argument("--status", choices=[*sorted(C.RUN_STATUSES), "corrupt"])
    p.add_argument("--workflow", metavar="NAME")
    p.set_defaults(func=cmd_runs_list)

    p = rsub.add_parser("show", parents=[store], help="one run: status, prompt, error, trace")
    p.add_argument("run_id", metavar="RUN_ID")
    p.set_defaults(func=cmd_runs_show)

    p = rsub.add_parser("events", parents=[store], help="a run's event log")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until it ends")
    p.add_argument("--poll-seconds", type=float, default=0.5, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_runs_events)

    p = rsub.add_parser("resume", parents=[store, driven], help="resume a waiting run")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--input", metavar="JSON", help="the resume payload (JSON)")
    p.add_argument("--node", metavar="N", help="the waiting node to resume")
    p.add_argument("--actor", metavar="WHO", help="who answered (kept with the run)")
    p.set_defaults(func=cmd_runs_resume)

    p = rsub.add_parser("redrive", parents=[store, driven], help="run a failed run's node again")
    p.add_argument("run_id", metavar="RUN_ID")
    p.set_defaults(func=cmd_runs_redrive)

    p = rsub.add_parser("fork", parents=[store, driven], help="start a new run from a step")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--step", type=int, metavar="N", help="the last checkpoint at step N")
    p.add_argument(
        "--seq", type=int, metavar="S", help="exactly checkpoint S (its seq, see runs show --json)"
    )
    p.add_argument("--new-run-id", metavar="ID")
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
    return parser


COMMANDS = ("validate", "lint", "schema", "convert", "viz", "ui", "runs")


def _command_in(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names (no top-level option takes a value), ``""`` for none.

    None, for a word that is no command: the whole parser reports it.
    """
    word = next((arg for arg in argv if not arg.startswith("-")), "")
    return word if word in COMMANDS or not word else None


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    """Run ``zeroflow`` with ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser(_command_in(sys.argv[1:] if argv is None else argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    out = sys.stdout
    try:
        code: int = args.func(args, out)
        return code
    except (CliError, ZeroflowError, KeyError, OSError, ValueError, TypeError) as exc:
        if args.traceback:
            raise
        sys.stderr.write(f"zeroflow: error: {_message(exc)}\n")
        return EXIT_PROBLEM
    except KeyboardInterrupt:
        sys.stderr.write("zeroflow: interrupted\n")
        return 130
    except Exception as exc:
        if args.traceback:
            raise
        sys.stderr.write(
            f"zeroflow: error: unexpected {type(exc).__name__}: {exc} "
            "(run again with --traceback for details)\n"
        )
        return EXIT_PROBLEM
