"""SPEC A11 basics: both shipped stores keep copies, name missing runs and list metadata."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from _support import LOOP
from zeroflow import (
    Event,
    HandlerResult,
    InMemoryWorkflowStore,
    JsonFileWorkflowStore,
    RunSnapshot,
    StepDelta,
    StepRecord,
    WorkflowContext,
    WorkflowEngine,
    WorkflowError,
    WorkflowState,
    WorkflowStore,
)
from zeroflow._frozen import freeze
from zeroflow.stores._common import encode_compact

StoreFactory = Callable[[Path], Any]
STORES: dict[str, StoreFactory] = {
    "memory": lambda path: InMemoryWorkflowStore(),
    "json": lambda path: JsonFileWorkflowStore(path / "store"),
}


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    return STORES[request.param](tmp_path)


def snapshot(run_id: str = "r1", workflow_name: str = "wf", status: str = "running") -> RunSnapshot:
    return RunSnapshot(
        run_id=run_id,
        workflow_name=workflow_name,
        wf_hash="abc",
        status=status,
        step=1,
        wave=1,
        ready_now=["b"],
        state=WorkflowState({"in": 1}, {"w": {"deep": [1]}}, {"a": {"n": 1}}),
        trace=["a"],
        tags=["t"],
        audit_trail=[StepRecord(1, 1, "a", "succeeded", "2026-01-01T00:00:00+00:00", ["ok"])],
        last_node="a",
        last_error=WorkflowError("E", "m", "a"),
    )


def test_stores_satisfy_the_protocol(store: Any) -> None:
    assert isinstance(store, WorkflowStore)


def test_saved_snapshot_loads_back_equal(store: Any) -> None:
    snap = snapshot()
    store.save_snapshot(snap)
    # The store numbers its checkpoints: the loaded copy carries the store's seq.
    assert store.load_snapshot("r1").to_dict() == snap.to_dict() | {"seq": 1}


def test_saving_again_replaces_the_snapshot(store: Any) -> None:
    store.save_snapshot(snapshot())
    store.save_snapshot(snapshot(status="succeeded"))
    assert store.load_snapshot("r1").status == "succeeded"


def test_the_store_keeps_a_copy_of_what_was_saved(store: Any) -> None:
    snap = snapshot()
    store.save_snapshot(snap)
    snap.status = "failed"
    snap.ready_now.append("zzz")
    snap.state.workflow["w"]["deep"].append(2)
    snap.trace.append("x")
    loaded = store.load_snapshot("r1")
    assert loaded.status == "running"
    assert loaded.ready_now == ["b"]
    assert loaded.state.workflow == {"w": {"deep": [1]}}
    assert loaded.trace == ["a"]


def test_loaded_snapshots_do_not_alias_the_store(store: Any) -> None:
    store.save_snapshot(snapshot())
    first = store.load_snapshot("r1")
    first.state.workflow["w"]["deep"].append(99)
    first.tags.append("x")
    first.arrivals["1:m"] = ["l"]
    second = store.load_snapshot("r1")
    assert second.state.workflow == {"w": {"deep": [1]}}
    assert second.tags == ["t"]
    assert second.arrivals == {}
    assert first is not second


def test_a_missing_run_is_a_key_error_naming_it(store: Any) -> None:
    with pytest.raises(KeyError) as info:
        store.load_snapshot("missing-id")
    assert info.value.args == ("run 'missing-id' not found",)
    assert str(info.value) == "run 'missing-id' not found"


def test_list_metadata_summarises_runs_and_filters_by_workflow(store: Any) -> None:
    store.save_snapshot(snapshot("r1", "alpha", "waiting"))
    store.save_snapshot(snapshot("r2", "beta", "succeeded"))
    store.save_snapshot(snapshot("r3", "alpha", "failed"))
    everything = store.list_metadata()
    assert sorted(m.status for m in everything) == ["failed", "succeeded", "waiting"]
    alpha = store.list_metadata("alpha")
    assert sorted(m.status for m in alpha) == ["failed", "waiting"]
    assert all(m.workflow_name == "alpha" for m in alpha)
    waiting = next(m for m in alpha if m.status == "waiting")
    assert (waiting.waiting, waiting.current_node, waiting.workflow_hash) == (True, "a", "abc")
    assert waiting.last_error == WorkflowError("E", "m", "a")
    assert store.list_metadata("gamma") == []


def test_list_metadata_of_an_empty_store_is_empty(store: Any) -> None:
    assert store.list_metadata() == []


def test_events_are_appended(store: Any) -> None:
    store.save_snapshot(snapshot())
    store.append_event("r1", Event("r1", 0, 1, None, "wf:start", "t", {"workflow": "wf"}))
    store.append_event("r1", Event("r1", 1, 1, "a", "node:end", "t", {"outputs": ["ok"]}))
    events = store.events("r1")
    assert [(e.kind, e.data) for e in events] == [
        ("wf:start", {"workflow": "wf"}),
        ("node:end", {"outputs": ["ok"]}),
    ]


def ok(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"])


def test_an_engine_run_persists_to_the_store(store: Any) -> None:
    definition = {
        "workflow_name": "wf",
        "default_entry_node": "a",
        "nodes": {
            "a": {"handler": "ok", "outputs": {"ok": [{"target_node": "b"}]}},
            "b": {"handler": "ok", "outputs": {"ok": []}},
        },
    }
    result = WorkflowEngine(definition, {"ok": ok}, store=store).run(run_id="r9")
    stored = store.load_snapshot("r9")
    assert stored.status == "succeeded"
    assert stored.trace == result.trace == ["a", "b"]
    assert [r.node for r in stored.audit_trail] == ["a", "b"]
    [meta] = store.list_metadata("wf")
    assert (meta.status, meta.current_node, meta.waiting) == ("succeeded", "b", False)


# ---------------------------------------------------------------- JSON store layout


def test_json_store_creates_its_base_dir(tmp_path: Path) -> None:
    base = tmp_path / "deep" / "store"
    JsonFileWorkflowStore(base)
    assert base.is_dir()


def test_json_store_accepts_a_string_path(tmp_path: Path) -> None:
    store = JsonFileWorkflowStore(str(tmp_path))
    store.save_snapshot(snapshot())
    assert store.load_snapshot("r1").run_id == "r1"


def test_json_store_keeps_0_1_0_files_per_run(tmp_path: Path) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    snap = snapshot()
    snap.workflow_name = "café €"
    store.save_snapshot(snap)
    store.append_event("r1", Event("r1", 0, 1, None, "wf:start", "t", {"workflow": "café"}))
    folder = tmp_path / "r1"
    written = json.loads((folder / "snapshot.json").read_text(encoding="utf-8"))
    assert {k: written[k] for k in snap.to_dict()} == snap.to_dict()
    meta = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
    assert {
        "workflow_name",
        "workflow_hash",
        "status",
        "started_at",
        "updated_at",
        "current_node",
        "waiting",
        "last_error",
    } <= set(meta)
    lines = (folder / "events.jsonl").read_text(encoding="utf-8").split("\n")
    assert lines[-1] == ""
    assert json.loads(lines[0]) == {
        "data": {"workflow": "café"},
        "kind": "wf:start",
        "node": None,
        "run_id": "r1",
        "step": 0,
        "ts": "t",
        "wave": 1,
    }


def test_json_store_list_metadata_ignores_stray_files_and_folders(tmp_path: Path) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    store.save_snapshot(snapshot("r1"))
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    (tmp_path / "no_metadata").mkdir()
    (tmp_path / "no_metadata" / "snapshot.json").write_text("{}", encoding="utf-8")
    assert [m.workflow_name for m in store.list_metadata()] == ["wf"]


def test_json_store_reads_runs_written_by_another_instance(tmp_path: Path) -> None:
    JsonFileWorkflowStore(tmp_path).save_snapshot(snapshot())
    loaded = JsonFileWorkflowStore(tmp_path).load_snapshot("r1")
    assert loaded.to_dict() == snapshot().to_dict() | {
        "started_at": loaded.started_at,
        "updated_at": loaded.updated_at,
        "seq": 1,
    }


def test_a_step_delta_keeps_its_values_after_later_steps() -> None:
    """A store may keep the deltas it was given: later merges must not change them."""
    kept: list[Any] = []

    class KeepingStore(InMemoryWorkflowStore):
        def append_step(self, run_id: str, delta: Any) -> bool:
            kept.append(delta)
            return super().append_step(run_id, delta)

        def commit(self, run_id: str, owner: str, token: int, write: Any) -> bool:
            if write.delta is not None:  # a driven run's steps arrive in fenced commits
                kept.append(write.delta)
            return super().commit(run_id, owner, token, write)

    def tick(ctx: WorkflowContext) -> HandlerResult:
        n = ctx.node_state.get("n", 0) + 1
        return HandlerResult(["again" if n < 5 else "done"], node_updates={"n": n, "deep": {n: n}})

    WorkflowEngine(LOOP, {"count": tick}, store=KeepingStore()).run(run_id="r")
    merged = [d.to_dict()["ops"] for d in kept if d.ops]
    assert [ops[0][2]["n"] for ops in merged] == [1, 2, 3, 4, 5]
    assert merged[0][0][2]["deep"] == {"1": 1}


def test_a_deltas_json_data_encodes_as_its_dict() -> None:
    """Stores encode ``to_json_data()`` (no copies): the text must equal ``to_dict()``'s."""
    delta = StepDelta(
        run_id="r",
        step=3,
        wave=2,
        status="failed",
        updated_at="t",
        ready_now=["a"],
        ready_next_wave=["b"],
        arrivals={"j": ["a"]},
        executed_this_wave=["a"],
        last_node="a",
        waiting_prompt=None,
        last_error=WorkflowError("HANDLER_EXCEPTION", "boom", "a", details={"n": 1}),
        trace=["a"],
        tags=["t"],
        records=[StepRecord(3, 2, "a", "failed", "t", [], None, False, 1.5)],
        ops=[
            ("merge", ("workflow",), freeze({"deep": {"x": [1, {"y": None}]}})),
            ("set", ("workflow", "k"), freeze([1.5, "s", True])),
            ("del", ("workflow", "gone"), None),
        ],
        extra={"map": {"m": {"results": {"0": 1}}}},
    )
    assert json.loads(encode_compact(delta.to_json_data())) == delta.to_dict()


def test_a_results_checkpoint_equals_what_the_store_saved_even_across_a_second() -> None:
    """The result is not re-stamped after the final save (a second may tick in between)."""
    ticks = iter(range(1_000_000, 2_000_000, 1))  # every clock reading is a new second
    store = InMemoryWorkflowStore()
    engine = WorkflowEngine(
        LOOP, {"count": lambda ctx: HandlerResult(["done"])}, store=store, clock=lambda: next(ticks)
    )
    assert engine.run(run_id="r").success
    waiting = WorkflowEngine(
        LOOP,
        {"count": lambda ctx: HandlerResult([], waiting=True)},
        store=store,
        clock=lambda: next(ticks),
    ).run(run_id="w")
    assert waiting.checkpoint is not None
    assert waiting.checkpoint.to_dict() == store.load_snapshot("w").to_dict()
