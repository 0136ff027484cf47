"""``JsonFileWorkflowStore``: one folder per run, 0.1.0's layout, written atomically.

``<base_dir>/<run_id>/snapshot.json`` (indented, sorted keys),
``metadata.json`` and ``events.jsonl`` (one JSON event a line). Files are
replaced atomically (temporary file, flush, ``os.replace``), so a killed
process never leaves half a snapshot behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from .._constants import EVENT_CHECKPOINT
from .._errors import RunNotFoundError, StoreCorruptError, StoreError
from .._models import Event, RunMetadata, RunSnapshot

__all__ = ["JsonFileWorkflowStore", "check_run_id"]


def check_run_id(run_id: str) -> str:
    """Refuse run ids that could escape the store's folder; return the id."""
    if not isinstance(run_id, str) or not run_id:
        raise StoreError(f"run id must be a non-empty string, got {run_id!r}")
    if (
        run_id in (".", "..")
        or "/" in run_id
        or "\\" in run_id
        or "\x00" in run_id
        or os.path.isabs(run_id)
    ):
        raise StoreError(
            f"run id {run_id!r} is not a safe folder name: use letters, digits, '-', '_' or '.'",
            run_id=run_id,
        )
    return run_id


def write_atomic(path: Path, text: str, *, fsync: bool = False) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file, never half."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_json(path: Path, run_id: str) -> Any:
    """Read one JSON file; a truncated or non-JSON file is a ``StoreCorruptError`` naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunNotFoundError(run_id) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise StoreCorruptError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            "the file is corrupt or was truncated: restore it from a backup, or delete the "
            "run's folder to drop the run",
            run_id=run_id,
            path=str(path),
        ) from exc


class JsonFileWorkflowStore:
    """Keeps each run in ``base_dir/<run_id>/``; reads runs written by zeroflow 0.1.0."""

    def __init__(self, base_dir: str | Path, *, fsync: bool = False) -> None:
        self.base_dir = Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._lock = threading.Lock()

    def _run_dir(self, run_id: str) -> Path:
        return self.base_dir / check_run_id(run_id)

    def save_snapshot(self, snapshot: RunSnapshot) -> None:
        folder = self._run_dir(snapshot.run_id)
        folder.mkdir(exist_ok=True)
        data = snapshot.to_dict()
        write_atomic(
            folder / "snapshot.json", json.dumps(data, indent=2, sort_keys=True), fsync=self.fsync
        )
        write_atomic(
            folder / "metadata.json",
            json.dumps(snapshot.metadata().to_dict(), indent=2, sort_keys=True),
            fsync=self.fsync,
        )

    def load_snapshot(self, run_id: str) -> RunSnapshot:
        path = self._run_dir(run_id) / "snapshot.json"
        data = read_json(path, run_id)
        try:
            return RunSnapshot.from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StoreCorruptError(
                f"{path} does not hold a zeroflow snapshot ({type(exc).__name__}: {exc})",
                run_id=run_id,
                path=str(path),
            ) from exc

    def append_event(self, run_id: str, event: Event) -> None:
        folder = self._run_dir(run_id)
        data = event.to_dict()
        if event.kind == EVENT_CHECKPOINT and "state" in data["data"]:
            data["data"] = {"step": event.step}
        line = json.dumps(data, sort_keys=True) + "\n"
        with self._lock:
            folder.mkdir(exist_ok=True)
            with open(folder / "events.jsonl", "a", encoding="utf-8") as fh:
                fh.write(line)

    def events(self, run_id: str) -> list[Event]:
        """The run's event log, oldest first; a torn last line is skipped."""
        path = self._run_dir(run_id) / "events.jsonl"
        if not path.exists():
            if not self._run_dir(run_id).exists():
                raise RunNotFoundError(run_id)
            return []
        out = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(Event.from_dict(json.loads(line)))
            except (json.JSONDecodeError, KeyError):
                continue
        return out

    def list_metadata(self, workflow_name: str | None = None) -> list[RunMetadata]:
        out = []
        for folder in sorted(self.base_dir.iterdir()):
            meta = folder / "metadata.json"
            if not folder.is_dir() or not meta.is_file():
                continue
            try:
                data = json.loads(meta.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
            if not isinstance(data, dict):
                continue
            item = RunMetadata.from_dict({**data, "run_id": data.get("run_id", folder.name)})
            if workflow_name is None or item.workflow_name == workflow_name:
                out.append(item)
        return out
