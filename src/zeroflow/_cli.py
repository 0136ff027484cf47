"""The ``zeroflow`` command line: validate, lint, convert and draw workflows; inspect runs.

``main(argv)`` parses the arguments with ``argparse``, runs one command and
returns the exit code: 0 success, 1 a problem was found or the command
failed (one line on stderr, never a traceback), 2 bad usage, 3 a run the
command drove ended failed or cancelled. See ``docs/CLI.md``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

from ._cli_io import (
    EXIT_OK,
    EXIT_PROBLEM,
    EXIT_USAGE,
    CliError,
    _dump,
    _load_handlers,
    _load_json,
    _load_workflow,
    _open_store,
    close_opened,
)

# Commands kept in other modules (``_cli_runs``) and tests reach these through ``_cli`` too.
from ._cli_io import EXIT_RUN_FAILED as EXIT_RUN_FAILED
from ._cli_io import SQLITE_SUFFIXES as SQLITE_SUFFIXES
from ._cli_io import _import_attr as _import_attr
from ._cli_io import _is_sqlite_store as _is_sqlite_store
from ._definition import compile_workflow
from ._errors import ZeroflowError
from ._grammar import FORMATS, check, detect_format, is_zf1, normalise

# ``zeroflow --help`` builds the parser and nothing else: what only a command
# needs (json, pathlib, the linter, the converter, the schemas, the stores,
# inspect) is imported by that command.

__all__ = ["main", "CliError"]

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


VIZ_FORMATS = ("svg", "html", "mermaid", "dot")
VIZ_EXTENSIONS = {
    ".svg": "svg",
    ".html": "html",
    ".htm": "html",
    ".mmd": "mermaid",
    ".mermaid": "mermaid",
    ".dot": "dot",
    ".gv": "dot",
}
"""The format ``viz -o OUT`` writes when no ``--format`` is given, by OUT's extension."""


def _viz_format(fmt: str | None, output: str | None) -> str:
    """The format to draw: ``--format`` if given (a warning if OUT's extension says another),
    else the one OUT's extension names, else SVG."""
    from pathlib import PurePath

    implied = VIZ_EXTENSIONS.get(PurePath(output).suffix.lower()) if output else None
    if fmt is None:
        return implied or "svg"
    if implied is not None and implied != fmt:
        sys.stderr.write(
            f"zeroflow: warning: writing {fmt} into '{output}' (--format {fmt} wins over "
            f"the extension, which names {implied})\n"
        )
    return fmt


def _check_run_matches(run: Any, graph: Any, run_id: str) -> None:
    """Refuse to overlay a run of another workflow; warn when it ran another version."""
    if run.workflow_name != graph.name:
        raise CliError(
            f"run '{run_id}' belongs to workflow '{run.workflow_name}' (definition "
            f"{run.wf_hash[:12]}), not to '{graph.name}' (definition {graph.hash[:12]}) "
            "drawn here: give the run's own definition file"
        )
    if run.wf_hash != graph.hash:
        sys.stderr.write(
            f"zeroflow: warning: run '{run_id}' was started with definition "
            f"{run.wf_hash[:12]} of '{graph.name}', this file is {graph.hash[:12]}: "
            "nodes or edges that changed may be drawn wrongly\n"
        )


def cmd_viz(args: argparse.Namespace, out: TextIO) -> int:
    from pathlib import Path

    from . import viz

    defn = _load_workflow(args.file)
    legacy = normalise(defn) if is_zf1(defn) else defn
    graph = compile_workflow(defn)
    fmt = _viz_format(args.format, args.output)
    draws: dict[str, Callable[..., Any]] = {
        "svg": viz.workflow_to_svg,
        "html": viz.workflow_to_html,
        "mermaid": viz.workflow_to_mermaid,
        "dot": viz.workflow_to_dot,
    }
    draw = draws[fmt]
    run = None
    if args.run is not None:
        if args.store is None:
            raise CliError("--run needs --store PATH to read the run from")
        run = _open_store(args.store).load_snapshot(args.run)
        _check_run_matches(run, graph, args.run)
    if fmt == "html":
        if not args.output:
            raise CliError("--format html writes a file: give -o OUT.html")
        written = draw(legacy, args.output, run=run)
        out.write(f"wrote {written}\n")
        return EXIT_OK
    text = draw(legacy, fenced=False) if fmt == "mermaid" else draw(legacy, run=run)
    text = text if text.endswith("\n") else text + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        out.write(f"wrote {args.output}\n")
    else:
        out.write(text)
    return EXIT_OK


def cmd_explain(args: argparse.Namespace, out: TextIO) -> int:
    from ._explain import explain

    out.write(explain(_load_workflow(args.file), args.format))
    return EXIT_OK


def cmd_plan(args: argparse.Namespace, out: TextIO) -> int:
    from ._planner import plan

    found = plan(_load_workflow(args.file), max_concurrency=args.max_concurrency)
    if args.json:
        _dump(found.to_dict(), out)
    else:
        out.write(found.text())
    return EXIT_OK


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
        p.add_argument("files", nargs="+", metavar="FILE", help="workflow files (JSON) to check")
        p.add_argument("--json", action="store_true", help="machine-readable report")
        p.set_defaults(func=cmd_validate)

    p = sub.add_parser("lint", help="find likely mistakes in workflow files")
    if wanted("lint"):
        p.add_argument("files", nargs="+", metavar="FILE", help="workflow files (JSON) to lint")
        p.add_argument(
            "--handlers", metavar="MODULE:ATTR", help="check handler names against a map"
        )
        p.add_argument("--strict", action="store_true", help="warnings also fail (exit 1)")
        p.add_argument("--json", action="store_true", help="machine-readable findings")
        p.set_defaults(func=cmd_lint)

    p = sub.add_parser("schema", help="print the JSON Schema of a definition format")
    if wanted("schema"):
        p.add_argument(
            "--format", choices=FORMATS, default="zf/1", help="the format (default: zf/1)"
        )
        p.set_defaults(func=cmd_schema)

    p = sub.add_parser("convert", help="convert a workflow between zf/1 and legacy")
    if wanted("convert"):
        p.add_argument("file", metavar="FILE", help="the workflow definition to convert")
        p.add_argument("--to", choices=FORMATS, required=True, help="the target format")
        p.add_argument("-o", "--output", metavar="OUT", help="write to this file instead of stdout")
        p.add_argument("--strict", action="store_true", help="exit 1 if anything is lost")
        p.set_defaults(func=cmd_convert)

    p = sub.add_parser("viz", help="draw a workflow (svg, html, mermaid, dot)")
    if wanted("viz"):
        p.add_argument("file", metavar="FILE", help="the workflow definition (zf/1 or legacy JSON)")
        p.add_argument(
            "--format",
            choices=VIZ_FORMATS,
            help="what to draw (default: from OUT's extension .svg .html .mmd .dot, else svg)",
        )
        p.add_argument("-o", "--output", metavar="OUT", help="write to this file instead of stdout")
        p.add_argument("--store", metavar="PATH", help="the store to read --run from")
        p.add_argument(
            "--run", metavar="RUN_ID", help="overlay this run's progress (a run of FILE's workflow)"
        )
        p.set_defaults(func=cmd_viz)

    p = sub.add_parser("explain", help="describe what a workflow does, for a review")
    if wanted("explain"):
        p.add_argument("file", metavar="FILE", help="the workflow definition (zf/1 or legacy JSON)")
        p.add_argument(
            "--format",
            choices=("text", "markdown"),
            default="text",
            help="plain text (default) or Markdown for a pull request",
        )
        p.set_defaults(func=cmd_explain)

    p = sub.add_parser("plan", help="the layers of nodes the engine runs together")
    if wanted("plan"):
        p.add_argument("file", metavar="FILE", help="the workflow definition (zf/1 or legacy JSON)")
        p.add_argument("--json", action="store_true", help="machine-readable plan")
        p.add_argument(
            "--max-concurrency", type=int, metavar="N", help="plan for N (default: the file's)"
        )
        p.set_defaults(func=cmd_plan)

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
    from ._cli_runs import add_runs_commands

    add_runs_commands(runs)
    return parser


COMMANDS = ("validate", "lint", "schema", "convert", "viz", "explain", "plan", "ui", "runs")


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


EXIT_BROKEN_PIPE = 141
"""The status of a command whose reader closed the pipe: 128 + SIGPIPE, as a shell reports
a program the signal ended (``yes | head``)."""


def _silence_stdout() -> None:
    """Point stdout at the null device, so the interpreter's last flush meets no closed pipe."""
    import os

    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (a test's capture): nothing is flushed into a pipe at exit
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)


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
    except BrokenPipeError:  # `zeroflow runs events ... | head`: the reader has what it wants
        _silence_stdout()
        return EXIT_BROKEN_PIPE
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
    finally:
        close_opened()
