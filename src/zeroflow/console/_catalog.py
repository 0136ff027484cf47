"""The workflow definitions the console knows: every ``*.json`` of ``--workflows DIR``.

Files are read once, when the console starts; a request names a workflow
by its name (and a run by its hash), never a file. A file that is not a
valid definition is listed with its problem instead of stopping the console.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._definition import compile_workflow
from .._errors import ZeroflowError
from .._grammar import is_zf1, normalise

__all__ = ["Catalog", "Definition", "load_catalog"]

MAX_FILE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Definition:
    """One definition file: as written (what runs are hashed by) and as the legacy dict."""

    name: str
    hash: str
    source: Mapping[str, Any]
    legacy: Mapping[str, Any]
    file: str


@dataclass(frozen=True, slots=True)
class Catalog:
    """Definitions by workflow name, and the files that could not be read."""

    by_name: Mapping[str, tuple[Definition, ...]] = field(default_factory=dict)
    problems: tuple[tuple[str, str], ...] = ()

    def names(self) -> list[str]:
        """Workflow names, sorted."""
        return sorted(self.by_name)

    def find(self, name: str, wf_hash: str | None = None) -> Definition | None:
        """The definition of ``name`` with ``wf_hash`` (any of that name when None)."""
        found = self.by_name.get(name, ())
        if wf_hash is None:
            return found[0] if found else None
        return next((d for d in found if d.hash == wf_hash), None)


def load_catalog(folder: str | Path | None) -> Catalog:
    """Read every ``*.json`` directly in ``folder`` (None: an empty catalog)."""
    if folder is None:
        return Catalog()
    by_name: dict[str, list[Definition]] = {}
    problems: list[tuple[str, str]] = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            if not path.is_file() or path.is_symlink():
                continue
            if path.stat().st_size > MAX_FILE_BYTES:
                raise ValueError(f"larger than {MAX_FILE_BYTES} bytes")
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or "nodes" not in data:
                continue  # some other JSON file (a fixture, a config): not a definition
            compiled = compile_workflow(data)
            legacy = normalise(data) if is_zf1(data) else data
        except (OSError, ValueError, RecursionError, ZeroflowError) as exc:
            problems.append((path.name, str(exc).splitlines()[0] if str(exc) else repr(exc)))
            continue
        item = Definition(compiled.name, compiled.hash, data, legacy, path.name)
        by_name.setdefault(item.name, []).append(item)
    return Catalog({k: tuple(v) for k, v in by_name.items()}, tuple(problems))
