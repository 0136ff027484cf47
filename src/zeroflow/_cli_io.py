"""What every ``zeroflow`` command shares: exit codes, ``CliError``, and reading inputs.

Loading JSON and workflow files, importing ``MODULE:ATTR`` handlers and
services, opening a store from a path, and printing JSON. Each problem is a
``CliError`` with one line that says what is wrong and how to fix it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TextIO

from ._models import Event

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["CliError", "EXIT_OK", "EXIT_PROBLEM", "EXIT_USAGE", "EXIT_RUN_FAILED"]

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


def _import_attr(spec: str, option: str = "--handlers", example: str = "HANDLERS") -> Any:
    """The attribute ``MODULE:ATTR`` names, imported; the current folder is importable."""
    import importlib
    from pathlib import Path

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise CliError(f"{option} wants MODULE:ATTR (e.g. myapp.flows:{example}), got {spec!r}")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # like `python -m`: modules next to you import
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise CliError(
            f"cannot import the {option} module '{module_name}': {type(exc).__name__}: {exc}"
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


def _load_services(spec: str) -> Mapping[str, Any]:
    """The ``services`` mapping ``--services MODULE:ATTR`` names (handlers get it as
    ``ctx.services``)."""
    services = _import_attr(spec, "--services", "SERVICES")
    if not isinstance(services, Mapping):
        raise CliError(
            f"{spec} must be a mapping of service name to object, got {type(services).__name__}"
        )
    return services


def _load_codec(spec: str) -> Any:
    """The ``zeroflow.codecs.Codec`` ``--codec MODULE:ATTR`` names (its types registered)."""
    from .codecs import Codec

    codec = _import_attr(spec, "--codec", "CODEC")
    if not isinstance(codec, Codec):
        raise CliError(
            f"{spec} must be a zeroflow.codecs.Codec (codecs.standard() with your types "
            f"registered), got {type(codec).__name__}"
        )
    return codec


def _open_store(path: str, on_report: Callable[[Event], None] | None = None) -> Any:
    """The store at ``path``; ``on_report`` hears of runs it skips as corrupt.

    ``postgresql://...`` (or ``postgres://...``) opens a ``PostgresWorkflowStore``
    (the ``postgres`` extra); ``?schema=NAME`` picks its schema.
    """
    from pathlib import Path

    from .stores import JsonFileWorkflowStore

    if path.startswith(("postgresql://", "postgres://")):
        return _open_postgres(path, on_report)
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


def _open_postgres(dsn: str, on_report: Callable[[Event], None] | None) -> Any:
    """A ``PostgresWorkflowStore`` on ``dsn``; its ``schema`` query parameter, if any, split off."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    try:
        from .contrib.postgres import PostgresWorkflowStore
    except ImportError as exc:
        raise CliError(
            f"--store {dsn.split('@')[-1]!r} is a PostgreSQL URL, but psycopg is not installed: "
            "pip install 'zeroflow[postgres]'"
        ) from exc
    parts = urlsplit(dsn)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    conninfo = urlunsplit(parts._replace(query=rest))
    options: dict[str, Any] = {"on_report": on_report}
    if schema is not None:
        options["schema"] = schema
    store = PostgresWorkflowStore(conninfo, **options)
    OPENED.append(store)
    return store


OPENED: list[Any] = []
"""Stores holding a server connection that ``main`` closes when the command ends."""


def close_opened() -> None:
    """Close the connections the command opened (``main`` calls it last)."""
    while OPENED:
        OPENED.pop().close()


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
