"""The JSON store against an adversary: links, full disks, damaged files, live readers.

Each test names a promise of ``JsonFileWorkflowStore`` (docs/STORAGE.md) and
breaks the run's folder the way a hostile or unlucky environment would: a
symbolic link planted in ``base_dir``, a disk that fills up mid-run, a file
edited by hand, another process folding the journal while a read goes on.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from _support import LOOP, FakeClock, Recorder, count_to, run_loop
from zeroflow import CheckpointWrite, WorkflowEngine
from zeroflow._errors import RunLockedError, StoreCorruptError, StoreError
from zeroflow._models import Event, now_iso
from zeroflow.stores import JsonFileWorkflowStore, _files, jsonfile
from zeroflow.stores._common import encode_event
from zeroflow.testing import sample_snapshot


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its content (what an attack must leave untouched)."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A folder outside the store's ``base_dir`` holding a finished run's files and a sentinel."""
    source = JsonFileWorkflowStore(tmp_path / "source")
    run_loop(source, 3, "victim")
    source.close()
    target = tmp_path / "elsewhere"
    (tmp_path / "source" / "victim").rename(target)
    (target / "sentinel.txt").write_text("precious", encoding="utf-8")
    return target


def _engine(store: JsonFileWorkflowStore, limit: int = 3) -> WorkflowEngine:
    return WorkflowEngine(LOOP, {"count": count_to(limit)}, store=store)


# ---------------------------------------------------------------------- 1. links


def test_a_run_folder_that_is_a_link_is_refused_by_every_call_and_never_followed(
    tmp_path: Path, elsewhere: Path
) -> None:
    base = tmp_path / "runs"
    base.mkdir()
    (base / "evil").symlink_to(elsewhere, target_is_directory=True)
    before = _tree(elsewhere)
    store = JsonFileWorkflowStore(base)
    note = Event("evil", 0, 0, None, "note", now_iso(), {})
    calls: dict[str, Callable[[], object]] = {
        "load_snapshot": lambda: store.load_snapshot("evil"),
        "load_snapshot(step)": lambda: store.load_snapshot("evil", step=1),
        "history": lambda: store.history("evil"),
        "events": lambda: store.events("evil"),
        "run_status": lambda: store.run_status("evil"),
        "latest_checkpoint": lambda: store.latest_checkpoint("evil"),
        "acquire_lease": lambda: store.acquire_lease("evil", "me"),
        "break_lease": lambda: store.break_lease("evil"),
        "append_event": lambda: store.append_event("evil", note),
        "save_snapshot": lambda: store.save_snapshot(sample_snapshot("evil")),
        "delete_run": lambda: store.delete_run("evil"),
        "run(replace=True)": lambda: _engine(store).run({}, run_id="evil", replace=True),
    }
    for name, call in calls.items():
        with pytest.raises(StoreCorruptError) as info:
            call()
        assert str(base / "evil") in str(info.value), name
        assert "symbolic link" in str(info.value), name
        assert info.value.run_id == "evil", name
    assert _tree(elsewhere) == before
    # base_dir itself may be a link: the user chose it.
    (tmp_path / "alias").symlink_to(base, target_is_directory=True)
    aliased = JsonFileWorkflowStore(tmp_path / "alias")
    assert run_loop(aliased, 3, "r").success
    assert aliased.load_snapshot("r").state.workflow["n"] == 3
    assert (base / "r" / "snapshot.json").is_file()


def test_prune_never_deletes_through_a_linked_run_folder_and_reports_it(
    tmp_path: Path, elsewhere: Path
) -> None:
    base = tmp_path / "runs"
    clock = FakeClock(2_000_000_000.0)
    reports = Recorder()
    store = JsonFileWorkflowStore(base, clock=clock, on_report=reports)
    run_loop(store, 3, "mine")
    (base / "evil").symlink_to(elsewhere, target_is_directory=True)
    before = _tree(elsewhere)
    clock.now += 10 * 86400
    result = store.prune(keep_last=1, older_than=86400)
    assert result.runs == ("mine",)  # the real run goes, the link is left alone
    assert _tree(elsewhere) == before
    assert (base / "evil").is_symlink()
    reported = {(e.run_id, e.kind) for e in reports.events}
    assert reported == {("evil", "store:corrupt")}
    assert all(str(base / "evil") in e.data["where"] for e in reports.events)


def test_list_metadata_skips_and_reports_a_linked_run_folder(
    tmp_path: Path, elsewhere: Path
) -> None:
    base = tmp_path / "runs"
    reports = Recorder()
    store = JsonFileWorkflowStore(base, on_report=reports)
    run_loop(store, 2, "mine")
    (base / "evil").symlink_to(elsewhere, target_is_directory=True)
    assert [m.run_id for m in store.list_metadata()] == ["mine"]
    assert [(e.run_id, e.kind) for e in reports.events] == [("evil", "store:corrupt")]


@pytest.mark.parametrize(
    "name", ["lease.json", "events.jsonl", "snapshot.json", "metadata.json", "journal"]
)
def test_a_run_file_that_is_a_link_is_refused_and_its_target_untouched(
    tmp_path: Path, elsewhere: Path, name: str
) -> None:
    base = tmp_path / "runs"
    store = JsonFileWorkflowStore(base)
    run_loop(store, 3, "r")
    store.close()
    link = base / "r" / name
    target = elsewhere / ("journal" if name == "journal" else "sentinel.txt")
    if link.is_dir():
        for child in link.iterdir():
            child.unlink()
        link.rmdir()
    else:
        link.unlink()
    link.symlink_to(target, target_is_directory=target.is_dir())
    before = _tree(elsewhere)
    fresh = JsonFileWorkflowStore(base)
    note = Event("r", 0, 0, None, "note", now_iso(), {})
    attempts: list[Callable[[], object]] = [
        lambda: fresh.acquire_lease("r", "me"),
        lambda: fresh.load_snapshot("r"),
        lambda: fresh.history("r"),
        lambda: fresh.events("r"),
        lambda: fresh.append_event("r", note),
        lambda: fresh.save_snapshot(sample_snapshot("r", status="waiting")),
        lambda: _engine(fresh).run({}, run_id="r", replace=True),
    ]
    refused = 0
    for attempt in attempts:
        try:
            attempt()
        except StoreCorruptError as exc:
            assert str(link) in str(exc)
            refused += 1
    assert refused >= 3
    assert _tree(elsewhere) == before
    assert link.is_symlink()


def test_a_journal_segment_that_is_a_link_is_refused(tmp_path: Path, elsewhere: Path) -> None:
    store = JsonFileWorkflowStore(tmp_path / "runs")
    run_loop(store, 3, "r")
    store.close()
    segment = next((tmp_path / "runs" / "r" / "journal").glob("*.jsonl"))
    segment.unlink()
    segment.symlink_to(elsewhere / "sentinel.txt")
    fresh = JsonFileWorkflowStore(tmp_path / "runs")
    for call in (lambda: fresh.history("r"), lambda: fresh.load_snapshot("r", step=2)):
        with pytest.raises(StoreCorruptError, match="symbolic link") as info:
            call()
        assert info.value.path == str(segment)
    assert (elsewhere / "sentinel.txt").read_text(encoding="utf-8") == "precious"


def test_delete_removes_links_inside_a_run_folder_never_their_targets(
    tmp_path: Path, elsewhere: Path
) -> None:
    base = tmp_path / "runs"
    store = JsonFileWorkflowStore(base)
    run_loop(store, 3, "r")
    store.close()
    journal = base / "r" / "journal"
    for child in journal.iterdir():
        child.unlink()
    journal.rmdir()
    journal.symlink_to(elsewhere, target_is_directory=True)
    (base / "r" / "stray").symlink_to(elsewhere / "sentinel.txt")
    before = _tree(elsewhere)
    assert JsonFileWorkflowStore(base).delete_run("r") is True
    assert not os.path.lexists(base / "r")
    assert _tree(elsewhere) == before


# ---------------------------------------------------------------------- 2. permissions


def test_a_replaced_file_keeps_the_permissions_an_operator_gave_it(tmp_path: Path) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    store.save_snapshot(sample_snapshot("r", status="waiting"))
    for name in ("snapshot.json", "metadata.json"):
        os.chmod(tmp_path / "r" / name, 0o600)
    store.save_snapshot(sample_snapshot("r", status="succeeded"))
    for name in ("snapshot.json", "metadata.json"):
        assert stat.S_IMODE(os.stat(tmp_path / "r" / name).st_mode) == 0o600, name
    assert store.load_snapshot("r").status == "succeeded"


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _modes(folder: Path) -> dict[str, int]:
    return {
        str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode)
        for p in folder.rglob("*")
        if p.is_file()
    }


def test_new_files_follow_the_umask(tmp_path: Path) -> None:
    with _umask(0o002):
        run_loop(JsonFileWorkflowStore(tmp_path), 3, "r")
    modes = _modes(tmp_path / "r")
    assert set(modes) >= {"snapshot.json", "metadata.json", "events.jsonl", "lease.json"}
    assert set(modes.values()) == {0o664}


def test_file_mode_sets_the_mode_of_new_files(tmp_path: Path) -> None:
    with _umask(0o022):
        run_loop(JsonFileWorkflowStore(tmp_path, file_mode=0o600), 3, "r")
    modes = _modes(tmp_path / "r")
    assert set(modes) >= {"snapshot.json", "metadata.json", "events.jsonl", "lease.json"}
    assert set(modes.values()) == {0o600}


# ---------------------------------------------------------------------- 3. typed errors


class _DiskFull:
    """``_files.write_all`` that fails with ENOSPC at chosen calls (after half the bytes)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_at: set[int]) -> None:
        self.calls = 0
        self.fail_at = fail_at
        self.real = _files.write_all
        monkeypatch.setattr(_files, "write_all", self)

    def __call__(self, fd: int, data: bytes) -> None:
        self.calls += 1
        if self.calls in self.fail_at:
            half = data[: len(data) // 2]
            self.real(fd, half)
            exc = OSError(errno.ENOSPC, "No space left on device")
            exc.written = len(half)  # type: ignore[attr-defined]
            raise exc
        self.real(fd, data)


@pytest.mark.parametrize("nth", [1, 2, 3, 4, 5, 6, 7, 8, 12, 18, 19, 20, 21])
def test_a_full_disk_mid_run_is_a_store_error_and_the_run_goes_on_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nth: int
) -> None:
    """ENOSPC at the n-th write of a run: StoreError naming the run and file; no lease left,
    nothing checkpointed lost, and the run continues from its last checkpoint once space is back.

    The writes of a 6-step run: 1 the lease taken, 2 the lease marking where the first
    events begin, 3-5 the first commit (events, snapshot, metadata), then events and a
    journal line per node, 18-20 the last commit, 21 the lease given back.
    """
    store = JsonFileWorkflowStore(tmp_path)
    fault = _DiskFull(monkeypatch, {nth})
    with pytest.raises(StoreError) as info:
        _engine(store, 6).run({}, run_id="r")
    error = info.value
    assert not isinstance(error, OSError)
    assert isinstance(error.__cause__, OSError) and error.__cause__.errno == errno.ENOSPC
    assert "run 'r'" in str(error) and error.run_id == "r"
    assert error.path is not None and error.path.startswith(str(tmp_path / "r"))
    assert "free space" in str(error)
    monkeypatch.setattr(_files, "write_all", fault.real)
    # Another process (a fresh store) can take the run at once: the failed call released it.
    other = JsonFileWorkflowStore(tmp_path)
    other.acquire_lease("r", "probe")
    other.release_lease("r", "probe")
    engine = _engine(other, 6)
    if other.run_status("r") is None:  # the very first checkpoint never made it
        assert engine.run({}, run_id="r").success
    elif other.run_status("r") != "succeeded":  # else: the last checkpoint was on disk
        assert engine.run_from_checkpoint(other.load_snapshot("r")).success
    final = other.load_snapshot("r")
    assert final.state.workflow["n"] == 6
    assert final.status == "succeeded"
    kinds = [e.kind for e in other.events("r")]
    assert kinds.count("wf:end") == 1 and kinds[-2:] == ["store:saved", "checkpoint"]
    # Every checkpoint on disk was logged once: the event log agrees with the history.
    assert [e.step for e in other.events("r") if e.kind == "checkpoint"][-1] == final.step
    # The files hold no half line: every journal and event line is whole JSON.
    for path in (tmp_path / "r").rglob("*.jsonl"):
        for line in path.read_bytes().splitlines():
            if line:
                json.loads(line)


def test_a_full_disk_on_an_unleased_save_is_a_store_error_and_keeps_the_old_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    store.save_snapshot(sample_snapshot("r", status="waiting"))
    _DiskFull(monkeypatch, {1})
    with pytest.raises(StoreError, match="No space left") as info:
        store.save_snapshot(sample_snapshot("r", status="succeeded"))
    assert isinstance(info.value.__cause__, OSError) and info.value.run_id == "r"
    monkeypatch.undo()
    assert store.load_snapshot("r").status == "waiting"
    assert not list((tmp_path / "r").glob(".*.tmp"))  # the half-written temporary file went


def test_a_failure_inside_acquire_lease_leaves_no_lease(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    run_loop(store, 3, "r")
    store.close()
    with open(tmp_path / "r" / "events.jsonl", "ab") as fh:
        fh.write(b'{"kind": "uncommitt')  # a killed commit's events: the next acquire cuts them

    def fails(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EIO, "Input/output error", str(tmp_path / "r" / "events.jsonl"))

    monkeypatch.setattr(jsonfile, "truncate", fails)
    with pytest.raises(StoreError) as info:
        JsonFileWorkflowStore(tmp_path).acquire_lease("r", "first")
    assert isinstance(info.value.__cause__, OSError)
    assert "run 'r'" in str(info.value)
    monkeypatch.undo()
    JsonFileWorkflowStore(tmp_path).acquire_lease("r", "second")  # no RunLockedError


def test_an_io_error_on_read_is_a_store_error_naming_run_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    run_loop(store, 3, "r")

    def eio(path: Any) -> bytes:
        raise OSError(errno.EIO, "Input/output error", str(path))

    monkeypatch.setattr(jsonfile, "read_bytes", eio)
    for call in (
        lambda: store.load_snapshot("r"),
        lambda: store.history("r"),
        lambda: store.events("r"),
        lambda: store.run_status("r"),
    ):
        with pytest.raises(StoreError) as info:
            call()
        assert type(info.value) is StoreError
        assert isinstance(info.value.__cause__, OSError)
        assert "run 'r'" in str(info.value) and str(tmp_path / "r") in str(info.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("step", "x"),
        ("step", [1]),
        ("store.seq", "x"),
        ("store.seq", 1.5),
        ("store.events_end", "x"),
    ],
)
def test_wrong_field_types_in_snapshot_json_are_corruption_naming_the_file(
    tmp_path: Path, field: str, value: Any
) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    run_loop(store, 3, "r")
    store.close()
    path = tmp_path / "r" / "snapshot.json"
    data = json.loads(path.read_bytes())
    if field.startswith("store."):
        data["store"][field.split(".")[1]] = value
    else:
        data[field] = value
    path.write_text(json.dumps(data), encoding="utf-8")
    fresh = JsonFileWorkflowStore(tmp_path)
    for call in (
        lambda: fresh.load_snapshot("r"),
        lambda: fresh.latest_checkpoint("r"),
        lambda: fresh.history("r"),
        lambda: fresh.acquire_lease("r", "me"),
    ):
        with pytest.raises(StoreCorruptError) as info:
            call()
        assert info.value.path == str(path) and info.value.run_id == "r"
    lease = json.loads((tmp_path / "r" / "lease.json").read_bytes())
    assert lease["owner"] is None  # the failed acquire gave the lease back


def test_a_metadata_json_that_is_a_list_is_rebuilt_when_the_run_is_taken(tmp_path: Path) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    run_loop(store, 3, "r")
    store.close()
    (tmp_path / "r" / "metadata.json").write_text("[1, 2]", encoding="utf-8")
    fresh = JsonFileWorkflowStore(tmp_path)
    fresh.acquire_lease("r", "me")
    fresh.release_lease("r", "me")
    meta = json.loads((tmp_path / "r" / "metadata.json").read_bytes())
    assert meta["status"] == "succeeded" and meta["run_id"] == "r"


def test_a_garbage_lease_is_reported_and_the_run_can_be_taken(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "lease.json").write_bytes(b"\x00garbage{")
    reports = Recorder()
    store = JsonFileWorkflowStore(tmp_path, on_report=reports)
    assert store.acquire_lease("r", "me") == 1
    assert [(e.run_id, e.kind) for e in reports.events] == [("r", "store:corrupt")]
    assert str(tmp_path / "r" / "lease.json") in reports.events[0].data["where"]


# ---------------------------------------------------------------------- 4. one bad run


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[1, 2]", b'{"workflow_name": "loop", "status": ["x"]}', b'{"status": 5}'],
)
def test_a_malformed_metadata_json_is_skipped_and_reported_never_breaking_the_listing(
    tmp_path: Path, content: bytes
) -> None:
    clock = FakeClock(2_000_000_000.0)
    reports = Recorder()
    store = JsonFileWorkflowStore(tmp_path, clock=clock, on_report=reports)
    run_loop(store, 2, "good")
    run_loop(store, 2, "bad")
    (tmp_path / "bad" / "metadata.json").write_bytes(content)
    assert [m.run_id for m in store.list_metadata()] == ["good"]
    assert [(e.run_id, e.kind) for e in reports.events] == [("bad", "store:corrupt")]
    assert str(tmp_path / "bad" / "metadata.json") in reports.events[0].data["where"]
    reports.events.clear()
    clock.now += 10 * 86400
    result = store.prune(older_than=86400)
    assert result.runs == ("good",)
    assert (tmp_path / "bad" / "snapshot.json").is_file()  # not deleted blindly
    assert [(e.run_id, e.kind) for e in reports.events] == [("bad", "store:corrupt")]


# ---------------------------------------------------------------------- 5. no fresh start


def test_a_run_that_lost_its_snapshot_is_refused_never_started_afresh(tmp_path: Path) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    run_loop(store, 5, "r")
    store.close()
    (tmp_path / "r" / "snapshot.json").unlink()
    before = _tree(tmp_path / "r")
    fresh = JsonFileWorkflowStore(tmp_path)
    for call in (
        lambda: fresh.load_snapshot("r"),
        lambda: fresh.run_status("r"),
        lambda: fresh.latest_checkpoint("r"),
        lambda: fresh.history("r"),
        lambda: _engine(fresh, 5).run({}, run_id="r"),
    ):
        with pytest.raises(StoreCorruptError, match=r"snapshot\.json is missing") as info:
            call()
        assert info.value.run_id == "r"
        assert info.value.path == str(tmp_path / "r" / "snapshot.json")
    after = _tree(tmp_path / "r")
    assert {k: v for k, v in after.items() if k != "lease.json"} == {
        k: v for k, v in before.items() if k != "lease.json"
    }
    assert json.loads(after["lease.json"])["owner"] is None  # the refused run left no lease
    assert fresh.delete_run("r") is False  # the way out: delete it, then reuse the id
    assert _engine(fresh, 2).run({}, run_id="r").success


# ---------------------------------------------------------------------- 6. live readers


def _fold_during_read(monkeypatch: pytest.MonkeyPatch, base: Path, folder: Path) -> list[int]:
    """Make a second store fold the run right after a reader's first read of snapshot.json."""
    real = jsonfile.read_json
    folds: list[int] = []

    def read_json(path: Path, run_id: str) -> Any:
        data = real(path, run_id)
        if path == folder / "snapshot.json" and not folds:
            folds.append(1)
            other = JsonFileWorkflowStore(base)
            late = sample_snapshot(run_id, status="succeeded")
            late.step = 99
            late.state.workflow["n"] = 999
            other.save_snapshot(late)  # a new fold: snapshot.json is replaced
            other.close()
        return data

    monkeypatch.setattr(jsonfile, "read_json", read_json)
    return folds


def test_a_read_of_an_old_step_during_a_fold_returns_that_checkpoint_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    run_loop(store, 5, "r")
    last = store.history("r")[-1]
    expected = store.load_snapshot("r", step=last.step).to_dict()
    folds = _fold_during_read(monkeypatch, tmp_path, tmp_path / "r")
    assert store.load_snapshot("r", step=last.step).to_dict() == expected
    assert folds == [1]
    history = store.history("r")  # now with the fold's checkpoint (no fold is triggered)
    assert history[-1].step == 99
    folds.clear()  # the next read triggers another fold halfway
    assert store.history("r") == history
    assert folds == [1]


# ---------------------------------------------------------------------- 7. notes


def test_an_operator_note_survives_the_crash_recovery_of_the_driver(tmp_path: Path) -> None:
    clock = FakeClock(1_000_000.0)
    driver = JsonFileWorkflowStore(tmp_path, clock=clock, lease_ttl_seconds=30)
    token = driver.acquire_lease("r", "driver")
    started = Event("r", 0, 1, None, "wf:start", now_iso(), {})
    driver.commit("r", "driver", token, CheckpointWrite(1, sample_snapshot("r"), events=[started]))
    operator = JsonFileWorkflowStore(tmp_path, clock=clock)
    operator.append_event("r", Event("r", 0, 1, None, "note", now_iso(), {"n": 1}))
    # The driver's next commit is killed after part of its events, before its journal line.
    lost = Event("r", 1, 1, "a", "node:start", now_iso(), {"node": "a"})
    line = (encode_event(lost) + "\n").encode()
    with open(tmp_path / "r" / "events.jsonl", "ab") as fh:
        fh.write(line + line[:20])
    (tmp_path / "r" / "journal").mkdir(exist_ok=True)
    with open(tmp_path / "r" / "journal" / "000000000001.jsonl", "ab") as fh:
        fh.write(b'{"seq":2,"events_end":')
    operator.append_event("r", Event("r", 0, 1, None, "note", now_iso(), {"n": 2}))
    # ... and never closes: its lease lapses; the next driver recovers the files.
    clock.now += 60
    nxt = JsonFileWorkflowStore(tmp_path, clock=clock)
    nxt.acquire_lease("r", "next")
    nxt.release_lease("r", "next")
    kinds = [(e.kind, e.data.get("n")) for e in nxt.events("r")]
    assert kinds[:3] == [("wf:start", None), ("note", 1), ("note", 2)]
    assert ("node:start", None) not in kinds
    assert nxt.load_snapshot("r").seq == 1


# ---------------------------------------------------------------------- 8. absurd expiry


def test_a_lease_with_an_absurd_expiry_is_expired_never_eternal(tmp_path: Path) -> None:
    clock = FakeClock(1_000_000.0)
    for n, expires in enumerate(["1e300", "1e15", "-5", '"tomorrow"', "NaN", "Infinity"]):
        (tmp_path / f"r{n}").mkdir()
        raw = f'{{"owner": "ghost", "expires_at": {expires}, "token": 4, "holder": null}}'
        (tmp_path / f"r{n}" / "lease.json").write_text(raw, encoding="utf-8")
        store = JsonFileWorkflowStore(tmp_path, clock=clock)
        assert store.acquire_lease(f"r{n}", "me") == 5, expires
    # A lease taken with a long (but sane) TTL still holds.
    JsonFileWorkflowStore(tmp_path, clock=clock, lease_ttl_seconds=86400).acquire_lease("l", "a")
    with pytest.raises(RunLockedError):
        JsonFileWorkflowStore(tmp_path, clock=clock).acquire_lease("l", "b")


# ---------------------------------------------------------------------- 9. prune


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def test_prune_keep_last_gives_space_back_and_drops_the_events_of_dropped_checkpoints(
    tmp_path: Path,
) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    run_loop(store, 250, "r")  # long enough for folds and several journal segments
    before_events = store.events("r")
    before = _size(tmp_path / "r")
    result = store.prune(keep_last=3)
    after = _size(tmp_path / "r")
    assert result.checkpoints["r"] > 200
    assert result.bytes_freed == before - after > 0
    after_events = store.events("r")
    assert result.events["r"] == len(before_events) - len(after_events) > 0
    kept = store.history("r")
    assert len(kept) == 3
    assert min(e.step for e in after_events) >= kept[0].step - 1
    assert after_events == before_events[-len(after_events) :]
    # The kept checkpoints load, and the files agree on where the events end.
    assert store.load_snapshot("r").state.workflow["n"] == 250
    assert store.load_snapshot("r", step=kept[0].step).step == kept[0].step
    info = json.loads((tmp_path / "r" / "snapshot.json").read_bytes())["store"]
    assert info["events_end"] == (tmp_path / "r" / "events.jsonl").stat().st_size
    fresh = JsonFileWorkflowStore(tmp_path)
    fresh.acquire_lease("r", "x")
    fresh.release_lease("r", "x")
    assert fresh.events("r") == after_events  # recovery finds nothing to cut


def test_prune_keep_events_keeps_the_whole_log(tmp_path: Path) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    run_loop(store, 120, "r")
    before_events = store.events("r")
    before = _size(tmp_path / "r")
    result = store.prune(keep_last=2, keep_events=True)
    assert result.events == {}
    assert store.events("r") == before_events
    assert result.bytes_freed == before - _size(tmp_path / "r") > 0


def test_prune_older_than_counts_the_bytes_of_deleted_runs(tmp_path: Path) -> None:
    clock = FakeClock(2_000_000_000.0)
    store = JsonFileWorkflowStore(tmp_path, clock=clock)
    run_loop(store, 10, "old")
    size = _size(tmp_path / "old")
    clock.now += 10 * 86400
    result = store.prune(older_than=86400)
    assert result.runs == ("old",)
    assert result.bytes_freed == size
    assert not (tmp_path / "old").exists()
