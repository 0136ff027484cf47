"""The memory store keeping checkpoints and events as private records, not JSON text.

Nothing a caller passed in can reach what the store keeps (changed afterwards,
or merged into by the engine), nothing a reader gets aliases it, the
engine's usual event payloads read back exactly, history by step and by seq
survives the latest snapshot being brought up to date lazily, and prune still
counts what it frees.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from _support import LOOP, Recorder, count_to, run_loop, step_delta
from zeroflow import HandlerResult, InMemoryWorkflowStore, WorkflowContext, WorkflowEngine
from zeroflow._errors import RunLockedError
from zeroflow._frozen import FrozenDict, deep_merge, freeze
from zeroflow._models import Event, RunSnapshot
from zeroflow._store import CheckpointWrite
from zeroflow.testing.kit import sample_snapshot


def _leased(store: InMemoryWorkflowStore, run_id: str = "run-1") -> int:
    store.save_snapshot(sample_snapshot(run_id))
    return store.acquire_lease(run_id, "me")


def _commit(store: InMemoryWorkflowStore, token: int, **write: Any) -> None:
    seq = (store.latest_checkpoint("run-1") or 0) + 1
    store.commit("run-1", "me", token, CheckpointWrite(seq, **write))


def test_a_state_value_the_engine_merges_into_later_does_not_change_the_kept_step() -> None:
    store = InMemoryWorkflowStore()
    token = _leased(store)
    live = freeze({"inner": {"a": 1}})  # the engine's frozen value, shared with its live state
    _commit(store, token, delta=step_delta("run-1", 2, ops=[("merge", ("workflow",), live)]))
    deep_merge(live["inner"], freeze({"b": 2}))  # what a later merge does to the live state
    _commit(store, token, delta=step_delta("run-1", 3))
    assert store.load_snapshot("run-1", step=2).state.workflow["inner"] == {"a": 1}
    assert store.load_snapshot("run-1").state.workflow["inner"] == {"a": 1}


def test_what_the_caller_passed_may_change_after_the_call() -> None:
    store = InMemoryWorkflowStore()
    token = _leased(store)
    value: dict[str, Any] = {"list": [1], "d": {"k": 1}}
    queue = ["b"]
    arrivals = {"j": ["a"]}
    trace = ["a"]
    extra: dict[str, Any] = {"feature": {"k": [1]}}
    delta = step_delta(
        "run-1",
        2,
        ready_now=queue,
        arrivals=arrivals,
        trace=trace,
        ops=[("set", ("workflow", "v"), value)],
        extra=extra,
    )
    _commit(store, token, delta=delta)
    value["list"].append(2)
    value["d"]["k"] = 99
    queue.append("zzz")
    arrivals["j"].append("zzz")
    trace.append("zzz")
    extra["feature"]["k"].append(2)
    for snap in (store.load_snapshot("run-1"), store.load_snapshot("run-1", step=2)):
        assert snap.state.workflow["v"] == {"list": [1], "d": {"k": 1}}
        assert snap.ready_now == ["b"] and snap.arrivals == {"j": ["a"]}
        assert snap.trace[-1] == "a" and "zzz" not in snap.trace
        assert snap.extra == {"feature": {"k": [1]}}


def test_loaded_snapshots_latest_and_historical_are_the_readers_own() -> None:
    store = InMemoryWorkflowStore()
    token = _leased(store)
    ops = [("set", ("workflow", "v"), {"list": [1]})]
    _commit(store, token, delta=step_delta("run-1", 2, ops=ops, ready_now=["b"]))
    for load in (lambda: store.load_snapshot("run-1"), lambda: store.load_snapshot("run-1", seq=2)):
        snap = load()
        snap.state.workflow["v"]["list"].append(2)
        snap.ready_now.append("x")
        snap.trace.append("x")
        snap.extra["feature"]["k"].append(3)
        again = load()
        assert again.state.workflow["v"] == {"list": [1]}
        assert again.ready_now == ["b"] and "x" not in again.trace
        assert again.extra["feature"]["k"] == [1, 2]


def test_a_full_snapshot_commit_keeps_one_copy_and_a_later_step_does_not_change_it() -> None:
    store = InMemoryWorkflowStore()
    token = _leased(store)
    snap = sample_snapshot(step=2)
    _commit(store, token, snapshot=snap)
    snap.state.workflow["deep"]["list"].append(99)
    seq = store.latest_checkpoint("run-1")
    _commit(store, token, delta=step_delta("run-1", 3, ops=[("del", ("workflow", "deep"), None)]))
    assert store.load_snapshot("run-1").state.workflow == {}
    assert store.load_snapshot("run-1", seq=seq).state.workflow["deep"]["list"] == [1, 2]


def test_events_a_callback_holds_and_changes_after_the_run_stay_as_they_were_written() -> None:
    def emits(ctx: WorkflowContext) -> HandlerResult:
        ctx.emit("note", {"list": [ctx.step], "d": {"k": ctx.step}})
        return count_to(3)(ctx)

    store = InMemoryWorkflowStore()
    rec = Recorder()
    WorkflowEngine(LOOP, {"count": emits}, store=store, event_callback=rec).run({}, run_id="r")
    before = [e.to_dict() for e in store.events("r")]
    assert any(e["kind"] == "note" for e in before)
    for event in rec.events:  # the very objects the engine handed to the store
        for value in event.data.values():
            if isinstance(value, list | dict):
                value.clear()
        event.data["spoiled"] = [1]
    assert [e.to_dict() for e in store.events("r")] == before


def test_the_engines_usual_payloads_read_back_exactly_and_others_keep_their_types() -> None:
    store = InMemoryWorkflowStore()
    store.save_snapshot(sample_snapshot())
    ts = "t"
    payloads: list[tuple[str | None, str, dict[str, Any]]] = [
        ("a", "node:start", {"node": "a"}),
        ("a", "node:end", {"node": "a", "outputs": ["ok", "again"]}),
        ("a", "node:end", {"node": "a", "outputs": []}),
        ("a", "store:saved", {"run_id": "run-1", "status": "running"}),
        ("a", "checkpoint", {"step": 4}),
        ("a", "checkpoint", {"state": {"huge": "snapshot"}}),
        # look-alikes that are not the engine's shapes: kept as given
        ("a", "x", {"step": True}),
        ("a", "x", {"step": 5}),
        ("a", "x", {"step": 4.0}),
        ("a", "x", {"node": "b"}),
        (None, "x", {"node": "a"}),
        ("a", "x", {"run_id": "other", "status": "running"}),
        ("a", "x", {"status": "running", "run_id": "run-1"}),
        ("a", "x", {"run_id": "run-1", "status": 1}),
        ("a", "x", {"node": "a", "outputs": ["ok", 1]}),
        ("a", "x", {"node": "a", "outputs": ("ok",)}),
        ("a", "x", {"outputs": ["ok"], "node": "a"}),
        ("a", "x", {"n": -0.0, "big": 2**80, "nan": float("nan"), "t": (1, (2, 3)), 7: "k"}),
    ]
    store.append_events("run-1", [Event("run-1", 4, 2, n, k, ts, d) for n, k, d in payloads])
    got = store.events("run-1")
    expected = [json.loads(json.dumps(d)) for _, _, d in payloads]
    expected[5] = {"step": 4}
    assert [json.dumps(e.data) for e in got] == [json.dumps(d) for d in expected]
    assert [[type(v) for v in e.data.values()] for e in got] == [
        [type(v) for v in d.values()] for d in expected
    ]
    assert [(e.run_id, e.step, e.wave, e.node, e.kind) for e in got] == [
        ("run-1", 4, 2, n, k) for n, k, _ in payloads
    ]
    got[1].data["outputs"].append("mine")
    got[0].data["node"] = "mine"
    again = store.events("run-1")
    assert again[1].data == {"node": "a", "outputs": ["ok", "again"]}
    assert again[0].data == {"node": "a"}


def test_event_data_json_cannot_hold_is_refused_and_nothing_of_the_batch_is_kept() -> None:
    store = InMemoryWorkflowStore()
    store.append_events("r", [Event("r", 1, 1, None, "ok", "t", {"n": 1})])
    bad = [
        Event("r", 2, 1, None, "fine", "t", {}),
        Event("r", 2, 1, None, "bad", "t", {"x": {1, 2}}),
    ]
    with pytest.raises(TypeError):
        store.append_events("r", bad)
    assert [e.kind for e in store.events("r")] == ["ok"]


def test_a_commit_refused_by_its_lease_keeps_nothing_of_it() -> None:
    store = InMemoryWorkflowStore()
    token = _leased(store)
    events = [Event("run-1", 2, 1, "a", "node:start", "t", {"node": "a"})]
    stale = CheckpointWrite(2, delta=step_delta("run-1", 2), events=events)
    store.break_lease("run-1")
    store.acquire_lease("run-1", "other")
    with pytest.raises(RunLockedError):
        store.commit("run-1", "me", token, stale)
    with pytest.raises(RunLockedError):  # a seq that does not follow the latest
        store.commit("run-1", "other", token + 1, CheckpointWrite(5, delta=step_delta("run-1", 2)))
    assert store.events("run-1") == [] and store.latest_checkpoint("run-1") == 1
    assert [h.seq for h in store.history("run-1")] == [1]


def test_every_checkpoint_loads_by_step_and_seq_while_the_latest_is_read_in_between() -> None:
    store = InMemoryWorkflowStore()
    token = _leased(store)
    expected: dict[int, RunSnapshot] = {1: store.load_snapshot("run-1")}
    for n in range(2, 30):
        ops = [("merge", ("workflow",), FrozenDict({"deep": FrozenDict({"n": n})}))]
        if n == 15:
            _commit(store, token, snapshot=sample_snapshot(step=n))
        else:
            _commit(store, token, delta=step_delta("run-1", n, ops=ops, trace=[f"s{n}"]))
        if n % 7 == 0:
            store.load_snapshot("run-1")  # brings the latest up to date half way
        seq = store.latest_checkpoint("run-1")
        assert seq is not None
        expected[seq] = store.load_snapshot("run-1", seq=seq)
    assert [h.step for h in store.history("run-1")] == list(range(1, 30))
    for seq, snap in expected.items():
        assert store.load_snapshot("run-1", seq=seq).to_dict() == snap.to_dict()
        assert store.load_snapshot("run-1", step=snap.step).to_dict() == snap.to_dict()
    assert store.load_snapshot("run-1").to_dict() == expected[29].to_dict()
    assert store.latest_step("run-1") == 29 and store.run_status("run-1") == "running"
    assert [m.run_id for m in store.list_metadata(status="running")] == ["run-1"]


def test_prune_of_steps_nobody_read_yet_keeps_the_latest_whole() -> None:
    store = InMemoryWorkflowStore()
    run_loop(store, 40)  # nobody loads the run while it runs: its latest is brought up on read
    before = store.events("loop-1")
    result = store.prune(keep_last=1)
    assert result.checkpoints == {"loop-1": len(store.history("loop-1")) + 40}
    assert store.load_snapshot("loop-1").state.workflow == {"n": 40}
    assert result.events["loop-1"] == len(before) - len(store.events("loop-1"))
    assert result.bytes_freed > 0


def test_bytes_freed_grows_with_what_prune_drops() -> None:
    small, large = InMemoryWorkflowStore(), InMemoryWorkflowStore()
    run_loop(small, 10)
    run_loop(large, 100)
    freed_small = small.prune(keep_last=1).bytes_freed
    freed_large = large.prune(keep_last=1).bytes_freed
    assert 0 < freed_small < freed_large
    gone = InMemoryWorkflowStore(clock=lambda: 0.0)
    run_loop(gone, 10)
    deleted = gone.prune(older_than=-1.0)
    assert deleted.runs == ("loop-1",) and deleted.bytes_freed > freed_small
