"""Issue 15, the JSON store's files: every ``.json`` it leaves is valid JSON, and a
listing names where a running run is now.

- ``lease.json`` is a whole JSON record at every moment: a shorter record is
  written padded over the old one before the file is cut, the first lease of
  a run is created whole, and a failed release still writes a record. An empty
  file (an older zeroflow's, a crash's) still reads as a free lease.
- ``list_metadata()`` reports a running run's latest checkpoint (node and
  time), read from the last record of its journal, not from the fold.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

from _support import step_delta, task
from zeroflow import (
    Event,
    HandlerResult,
    JsonFileWorkflowStore,
    StoreError,
    WorkflowContext,
    WorkflowEngine,
)
from zeroflow._store import CheckpointWrite
from zeroflow.stores import _files
from zeroflow.stores import jsonfile as module
from zeroflow.testing import sample_snapshot


def lease_of(base: Path, run_id: str = "r") -> Any:
    """``lease.json`` parsed: fails the test when it is not valid JSON."""
    return json.loads((base / run_id / "lease.json").read_bytes())


# ---------------------------------------------------------------- lease.json


def test_a_shorter_lease_record_is_valid_json_even_if_the_file_is_never_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    store.acquire_lease("r", "owner-1")
    for n in range(5):  # operator notes while the run is held: the lease grows
        store.append_event("r", _note(n))
    assert len(lease_of(tmp_path)["notes"]) == 5
    # A process killed after rewriting the record but before cutting the file to it:
    # the cut never happens.
    monkeypatch.setattr(os, "ftruncate", lambda fd, size: None)
    store.release_lease("r", "owner-1")
    lease = lease_of(tmp_path)
    assert (lease["owner"], lease["token"]) == (None, 1)
    monkeypatch.undo()
    assert JsonFileWorkflowStore(tmp_path).acquire_lease("r", "owner-2") == 2


def test_a_first_lease_killed_before_its_record_leaves_a_json_lease(tmp_path: Path) -> None:
    def kill(self: Any, fd: int, lease: Any, **kw: Any) -> bytes:
        os._exit(0)  # SIGKILL-like: no cleanup, no finally

    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child dies inside acquire_lease
        try:
            JsonFileWorkflowStore._write_lease = kill  # type: ignore[method-assign]
            JsonFileWorkflowStore(tmp_path).acquire_lease("r", "owner-1")
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    lease = lease_of(tmp_path)
    assert (lease["owner"], lease["token"]) == (None, 0)
    assert not [p.name for p in (tmp_path / "r").iterdir() if p.name.endswith(".tmp")]
    assert JsonFileWorkflowStore(tmp_path).acquire_lease("r", "owner-2") == 1


def test_a_release_that_hits_a_full_disk_still_leaves_a_json_lease(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    store.acquire_lease("r", "owner-1")
    real = _files.write_all
    failures = [OSError(errno.ENOSPC, "No space left on device")]

    def full_once(fd: int, data: bytes) -> None:
        if failures:
            raise failures.pop()
        real(fd, data)

    monkeypatch.setattr(_files, "write_all", full_once)
    with pytest.raises(StoreError, match="No space left"):
        store.release_lease("r", "owner-1")
    lease = lease_of(tmp_path)
    assert (lease["owner"], lease["token"]) == (None, 1)  # freed, and its token kept
    monkeypatch.undo()
    assert JsonFileWorkflowStore(tmp_path).acquire_lease("r", "owner-2") == 2


def test_an_empty_lease_file_left_by_an_older_zeroflow_reads_as_free(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "lease.json").write_bytes(b"")
    reports: list[Any] = []
    store = JsonFileWorkflowStore(tmp_path, on_report=reports.append)
    assert store.acquire_lease("r", "owner-1") == 1
    store.release_lease("r", "owner-1")
    assert lease_of(tmp_path)["owner"] is None
    assert reports == []  # not damage: what a lock that never wrote a record leaves


def _note(n: int) -> Event:
    return Event("r", 0, 1, None, "note", "2026-01-01T00:00:00+00:00", {"n": n})


# ---------------------------------------------------------------- a running run's summary


LINE = {
    "workflow_name": "line",
    "default_entry_node": "a",
    "nodes": {
        "a": task("step", "b"),
        "b": task("step", "c"),
        "c": task("look", "d"),
        "d": task("step"),
    },
}


def test_a_listing_names_the_latest_checkpoint_of_a_running_run(tmp_path: Path) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    other = JsonFileWorkflowStore(tmp_path)  # another process reading the same folder
    seen: list[tuple[Any, ...]] = []

    def look(ctx: WorkflowContext) -> HandlerResult:
        for reader in (store, other):
            meta = next(m for m in reader.list_metadata() if m.run_id == ctx.run_id)
            seen.append((meta.status, meta.current_node, meta.updated_at))
        return HandlerResult(outputs=["ok"])

    engine = WorkflowEngine(LINE, {"step": _ok, "look": look}, store=store)
    result = engine.run(run_id="r")
    b = store.load_snapshot("r", step=2)  # the checkpoint after b: the latest while c ran
    assert b.last_node == "b"
    assert seen == [("running", "b", b.updated_at)] * 2
    final = store.list_metadata()[0]
    assert (final.status, final.current_node) == ("succeeded", "d")
    assert result.success
    meta = json.loads((tmp_path / "r" / "metadata.json").read_bytes())
    assert (meta["seq"], meta["step"]) == (store.latest_checkpoint("r"), 4)


def test_a_listing_reads_a_journal_from_its_end_and_skips_a_torn_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    store.acquire_lease("r", "o")
    store.commit("r", "o", 1, CheckpointWrite(1, snapshot=sample_snapshot("r", step=0)))
    big = "x" * 2000
    for n in range(1, 60):  # about 120 KB of journal, fewer records than a fold needs
        node = "last" if n == 59 else f"n{n}"
        delta = step_delta(
            "r", n, last_node=node, updated_at=f"t{n}", ops=[["set", ["workflow", "pad"], big]]
        )
        store.commit("r", "o", 1, CheckpointWrite(n + 1, delta=delta))
    store.release_lease("r", "o")
    segment = next((tmp_path / "r" / "journal").glob("*.jsonl"))
    assert segment.stat().st_size > 100_000
    with open(segment, "ab") as f:
        f.write(b'{"seq": 61, "events_end": 0, "delta": {"step": 60, "last_no')  # torn

    read: list[int] = []
    real_pread, real_read = os.pread, _files.read_bytes

    def counting_pread(fd: int, n: int, offset: int) -> bytes:
        data = real_pread(fd, n, offset)
        read.append(len(data))
        return data

    def counting_read(path: Any) -> bytes:
        data = real_read(path)
        if str(path).endswith(".jsonl"):
            read.append(len(data))
        return data

    monkeypatch.setattr(os, "pread", counting_pread)
    monkeypatch.setattr(module, "read_bytes", counting_read)
    meta = JsonFileWorkflowStore(tmp_path).list_metadata()[0]
    assert (meta.status, meta.current_node, meta.updated_at) == ("running", "last", "t59")
    assert 0 < sum(read) < 20_000  # the tail, not the whole journal


def _ok(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"])
