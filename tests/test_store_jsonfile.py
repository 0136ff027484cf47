"""The JSON file store: 0.1.0's layout, crash-safe writes, O(change) journal, typed errors."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from _support import LOOP, count_to, run_loop
from zeroflow import CheckpointWrite, HandlerResult, WorkflowEngine
from zeroflow._errors import RunNotFoundError, StoreCorruptError, StoreError
from zeroflow._models import Event, now_iso
from zeroflow.stores import JsonFileWorkflowStore
from zeroflow.stores._common import encode_event
from zeroflow.stores.jsonfile import FORMAT_VERSION
from zeroflow.testing import sample_snapshot

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "v010"
V010_RUNS = ["error_failed_run", "error_routed_run", "hitl_run", "join_loop_run", "linear_run"]


@pytest.fixture
def v010_dir(tmp_path: Path) -> Path:
    for name in V010_RUNS:
        shutil.copytree(FIXTURES / name, tmp_path / name)
    return tmp_path


# ---------------------------------------------------------------- 0.1.0 folders


@pytest.mark.parametrize("run_id", V010_RUNS)
def test_loads_every_0_1_0_run_folder_as_written(run_id: str, v010_dir: Path) -> None:
    store = JsonFileWorkflowStore(v010_dir)
    written = json.loads((FIXTURES / run_id / "snapshot.json").read_text(encoding="utf-8"))
    snap = store.load_snapshot(run_id)
    assert snap.to_dict() == written
    assert [h.step for h in store.history(run_id)] == [written["step"]]
    assert store.run_status(run_id) == written["status"]
    assert store.events(run_id)[0].kind == "wf:start"


def test_lists_0_1_0_runs_by_workflow_and_status(v010_dir: Path) -> None:
    (v010_dir / "stray.txt").write_text("not a run", encoding="utf-8")
    (v010_dir / "empty_folder").mkdir()
    store = JsonFileWorkflowStore(v010_dir)
    assert sorted(m.run_id or "" for m in store.list_metadata()) == V010_RUNS
    assert [m.run_id for m in store.list_metadata(status="waiting")] == ["hitl_run"]
    assert [m.workflow_name for m in store.list_metadata("linear_three")] == ["linear_three"]


def test_a_resumed_0_1_0_run_keeps_its_old_snapshot_as_history(v010_dir: Path) -> None:
    handlers = {
        "prepare": lambda ctx: HandlerResult(["ok"]),
        "review": lambda ctx: HandlerResult(["approved"]),
        "publish": lambda ctx: HandlerResult(["ok"], workflow_updates={"published": True}),
    }
    store = JsonFileWorkflowStore(v010_dir)
    engine = WorkflowEngine.from_files(FIXTURES / "hitl_workflow.json", handlers, store=store)
    result = engine.run_from_checkpoint(store.load_snapshot("hitl_run"), {"approved": True})
    assert result.trace == ["prepare", "review", "review", "publish"]
    history = store.history("hitl_run")
    assert history[0].status == "waiting"
    assert history[-1].status == "succeeded"
    resumed = store.load_snapshot("hitl_run", step=2)  # the last checkpoint at step 2
    assert resumed.status == "running" and resumed.state.workflow["__resume__"] == {
        "approved": True
    }
    assert store.load_snapshot("hitl_run").state.workflow["published"] is True


# ---------------------------------------------------------------- layout and cost


def test_a_run_keeps_the_0_1_0_files_and_writes_whole_files(tmp_path: Path) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    run_loop(store, 5)
    folder = tmp_path / "loop-1"
    assert {p.name for p in folder.iterdir()} >= {"snapshot.json", "metadata.json", "events.jsonl"}
    snapshot = json.loads((folder / "snapshot.json").read_text(encoding="utf-8"))
    assert snapshot["store"]["format"] == FORMAT_VERSION
    assert snapshot["status"] == "succeeded" and snapshot["state"]["workflow"] == {"n": 5}
    meta = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
    assert meta["status"] == "succeeded" and meta["run_id"] == "loop-1"
    assert not [p for p in folder.rglob("*.tmp")], "a temporary file was left behind"
    for line in (folder / "events.jsonl").read_text(encoding="utf-8").splitlines():
        json.loads(line)


def test_checkpoint_events_carry_a_step_not_the_snapshot(tmp_path: Path) -> None:
    seen: list[Any] = []
    store = JsonFileWorkflowStore(tmp_path)
    engine = WorkflowEngine(LOOP, {"count": count_to(30)}, store=store, event_callback=seen.append)
    engine.run({}, run_id="loop-1")
    assert any("state" in e.data for e in seen if e.kind == "checkpoint")
    stored = [e for e in store.events("loop-1") if e.kind == "checkpoint"]
    assert stored and all(set(e.data) == {"step"} for e in stored)


def test_disk_use_grows_linearly_with_the_run(tmp_path: Path) -> None:
    def footprint(limit: int) -> int:
        store = JsonFileWorkflowStore(tmp_path / str(limit))
        run_loop(store, limit)
        return sum(p.stat().st_size for p in (tmp_path / str(limit)).rglob("*") if p.is_file())

    small, large = footprint(200), footprint(1600)
    assert large < 8 * small * 1.6, (small, large)


def test_the_journal_is_folded_while_the_run_goes_on(tmp_path: Path) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    run_loop(store, 400)
    folds = sorted((tmp_path / "loop-1" / "journal").glob("*.snapshot.json"))
    assert len(folds) >= 3, folds
    history = store.history("loop-1")
    assert [h.step for h in history if h.wave == h.step][:3] == [1, 2, 3]
    for step in (1, 77, 200, 399, 400):
        assert store.load_snapshot("loop-1", step=step).state.workflow == {"n": step}


def test_prune_keeps_the_newest_checkpoints_and_old_finished_runs_go(tmp_path: Path) -> None:
    now = [1_000_000.0]
    store = JsonFileWorkflowStore(tmp_path, clock=lambda: now[0])
    run_loop(store, 300, "old")
    now[0] += 3600
    run_loop(store, 300, "new")
    before = len(store.history("new"))
    result = store.prune(keep_last=5, older_than=1800)
    assert result.runs == ("old",)
    assert result.checkpoints == {"new": before - 5}
    assert len(store.history("new")) == 5
    assert store.load_snapshot("new").state.workflow == {"n": 300}
    assert store.load_snapshot("new", step=299).state.workflow == {"n": 299}
    with pytest.raises(RunNotFoundError):
        store.load_snapshot("old")


def test_fsync_mode_writes_the_same_files(tmp_path: Path) -> None:
    store = JsonFileWorkflowStore(tmp_path, fsync=True)
    result = run_loop(store, 20)
    assert (
        store.load_snapshot("loop-1").to_dict()
        == JsonFileWorkflowStore(tmp_path).load_snapshot("loop-1").to_dict()
    )
    assert result.state.workflow == {"n": 20}


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("run_id", ["../x", "a/b", "a\\b", "", "..", ".", "/etc", " x"])
def test_a_run_id_that_would_leave_the_folder_is_refused(run_id: str, tmp_path: Path) -> None:
    store = JsonFileWorkflowStore(tmp_path / "store")
    with pytest.raises(StoreError, match="run id"):
        store.save_snapshot(sample_snapshot(run_id=run_id))
    with pytest.raises(StoreError, match="run id"):
        store.load_snapshot(run_id)
    assert [p.name for p in tmp_path.iterdir()] == ["store"]


@pytest.mark.parametrize(
    "content",
    [b'{"run_id": "r", "workflow_na', b"not json at all", b"\xff\xfe", b"[1, 2]", b"{}"],
    ids=["truncated", "not-json", "not-utf8", "a-list", "no-fields"],
)
def test_a_damaged_snapshot_file_is_a_typed_error_naming_it(content: bytes, tmp_path: Path) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    store.save_snapshot(sample_snapshot("r"))
    path = tmp_path / "r" / "snapshot.json"
    path.write_bytes(content)
    with pytest.raises(StoreCorruptError) as info:
        store.load_snapshot("r")
    assert info.value.path == str(path) and str(path) in str(info.value)
    assert isinstance(info.value, ValueError)
    assert path.read_bytes() == content, "the damaged file was overwritten"


def test_a_snapshot_of_a_newer_format_is_refused(tmp_path: Path) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    store.save_snapshot(sample_snapshot("r"))
    path = tmp_path / "r" / "snapshot.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["store"]["format"] = FORMAT_VERSION + 1
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(StoreCorruptError, match="format version 2") as info:
        store.load_snapshot("r")
    assert info.value.path == str(path)


def test_a_missing_run_is_a_key_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="run 'nope' not found"):
        JsonFileWorkflowStore(tmp_path).load_snapshot("nope")


def _record(seq: int, step: int) -> bytes:
    delta = _delta_dict(step)
    return json.dumps({"seq": seq, "events_end": None, "delta": delta}).encode() + b"\n"


def _delta_dict(step: int) -> dict[str, Any]:
    return {
        "run_id": "r",
        "step": step,
        "wave": 1,
        "status": "running",
        "updated_at": None,
        "ready_now": ["a"],
        "ready_next_wave": [],
        "arrivals": {},
        "executed_this_wave": [],
        "last_node": "a",
        "waiting_prompt": None,
        "last_error": None,
        "trace": ["a"],
        "tags": [],
        "records": [],
        "ops": [["set", ["workflow", "n"], step]],
    }


def test_a_torn_last_journal_line_is_recovered_with_an_event(tmp_path: Path) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    store.save_snapshot(sample_snapshot("r"))  # the fold at seq 1
    journal = tmp_path / "r" / "journal" / "000000000001.jsonl"
    good = _record(2, 2) + _record(3, 3)
    journal.write_bytes(good + _record(4, 4)[:40])  # killed in the middle of record 4
    assert store.load_snapshot("r").state.workflow["n"] == 3, "a reader stops before the tail"
    store.acquire_lease("r", "new-driver")
    store.release_lease("r", "new-driver")
    assert journal.read_bytes() == good, "the torn tail was not cut"
    recovered = [e for e in store.events("r") if e.kind == "store:recovered"]
    assert len(recovered) == 1 and recovered[0].data["torn_bytes"] == 40
    assert recovered[0].data["file"] == str(journal) and recovered[0].step == 3
    assert store.load_snapshot("r").state.workflow["n"] == 3


def test_a_bad_journal_line_before_the_last_is_corruption(tmp_path: Path) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    store.save_snapshot(sample_snapshot("r"))
    journal = tmp_path / "r" / "journal" / "000000000001.jsonl"
    journal.write_bytes(b"garbage\n" + b'{"seq": 2, "delta": {}}\n')
    with pytest.raises(StoreCorruptError, match="line 1") as info:
        store.load_snapshot("r")
    assert info.value.path == str(journal)


def test_a_gap_in_the_journal_is_corruption_not_a_silent_restart(tmp_path: Path) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    store.save_snapshot(sample_snapshot("r"))
    journal = tmp_path / "r" / "journal" / "000000000001.jsonl"
    journal.write_bytes(_record(2, 2) + _record(4, 4))
    with pytest.raises(StoreCorruptError, match="record 3 is missing") as info:
        store.load_snapshot("r")
    assert info.value.path == str(journal)


def test_a_crashed_start_leaves_no_orphan_events_for_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first commit killed after its events, before its snapshot: its events are cut.

    The store tells them apart by where that commit said its events begin (in
    lease.json), not by their kinds: a note appended before any start stays.
    """
    store = JsonFileWorkflowStore(tmp_path)
    store.append_event("loop-1", Event("loop-1", 0, 0, None, "note", now_iso(), {"n": 1}))
    token = store.acquire_lease("loop-1", "killed")
    start = Event("loop-1", 0, 1, None, "wf:start", now_iso(), {})

    def dies(*args: Any) -> None:
        raise OSError("killed")

    with monkeypatch.context() as patched:
        patched.setattr(os, "replace", dies)
        with pytest.raises(StoreError, match="killed") as info:
            store.commit(
                "loop-1",
                "killed",
                token,
                CheckpointWrite(1, sample_snapshot("loop-1"), events=[start]),
            )
        assert isinstance(info.value.__cause__, OSError)
    # The failed commit took its events back; a real kill leaves them for the next driver.
    assert [e.kind for e in store.events("loop-1")] == ["note"]
    with open(tmp_path / "loop-1" / "events.jsonl", "ab") as fh:  # what a kill leaves
        fh.write(encode_event(start).encode() + b"\n")
    assert [e.kind for e in store.events("loop-1")] == ["note", "wf:start"]  # the orphan
    store.break_lease("loop-1")  # the killed driver never releases
    other = JsonFileWorkflowStore(tmp_path)
    token = other.acquire_lease("loop-1", "next")
    other.commit(
        "loop-1", "next", token, CheckpointWrite(1, sample_snapshot("loop-1"), events=[start])
    )
    other.release_lease("loop-1", "next")
    kinds = [e.kind for e in other.events("loop-1")]
    assert kinds == ["note", "wf:start"]


def test_files_are_replaced_atomically_never_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    store.save_snapshot(sample_snapshot("r", status="waiting"))
    before = (tmp_path / "r" / "snapshot.json").read_bytes()

    def dies(*args: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", dies)
    with pytest.raises(StoreError, match="disk full") as info:
        store.save_snapshot(sample_snapshot("r", status="succeeded"))
    assert isinstance(info.value.__cause__, OSError)
    assert (tmp_path / "r" / "snapshot.json").read_bytes() == before
    assert not list((tmp_path / "r").glob("*.tmp"))
