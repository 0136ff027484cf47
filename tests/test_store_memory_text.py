"""The memory store keeping step deltas and events as compact JSON text.

What JSON cannot hold exactly, what a reader may do with what it gets back,
history after ``prune(keep_last=)`` and threads appending at once.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from _support import LOOP, Recorder, count_to, make_store
from zeroflow import HandlerResult, InMemoryWorkflowStore, WorkflowContext, WorkflowEngine
from zeroflow._models import Event
from zeroflow.stores._common import event_dict

ODD: dict[str, Any] = {
    "text": 'é ☃ 😀 \x00\x1f \u2028 \ud800 "quoted" \\ back',
    "empty": {"list": [], "dict": {}, "nested": [[{}], {"a": []}]},
    "floats": [-0.0, 1e308, 5e-324, 0.1, float("inf"), float("-inf"), float("nan")],
    "ints": [2**200, -(2**64), 0],
    "bools": [True, False, None],
}


def text(value: Any) -> str:
    """A comparison key that tells -0.0 from 0.0 and sees nan equal to nan."""
    return json.dumps(value, sort_keys=True)


def odd(ctx: WorkflowContext) -> HandlerResult:
    n = ctx.state.workflow.get("n", 0) + 1
    ctx.emit("odd", {"n": n, **ODD, "tuple": (1, (2, 3)), 7: "int key"})
    updates = {"n": n, f"k{n}": {**ODD, "tuple": (n, n)}}
    if n == 3:
        updates["k1"] = {"empty": {}, "floats": []}  # an empty dict merges, a list replaces
    return HandlerResult(["again" if n < 8 else "done"], workflow_updates=updates)


def test_every_historical_load_of_odd_state_equals_the_checkpoint_taken_then() -> None:
    store = InMemoryWorkflowStore()
    rec = Recorder()
    WorkflowEngine(LOOP, {"count": odd}, store=store, event_callback=rec).run({}, run_id="r")
    announced = [e.data["state"] for e in rec.of("checkpoint")]

    def taken(step: int) -> Any:
        """The state announced for the stored checkpoint at ``step`` (a wave opening is not)."""
        info = [h for h in store.history("r") if h.step == step][-1]
        return next(
            s
            for s in announced
            if (s["step"], s["wave"], s["status"]) == (step, info.wave, info.status)
        )

    steps = sorted({h.step for h in store.history("r")})
    assert steps == list(range(9))
    for step in steps:
        assert text(store.load_snapshot("r", step=step).to_dict()) == text(taken(step)), step
    assert text(store.load_snapshot("r").to_dict()) == text(announced[-1])
    store.prune(keep_last=3)
    kept = [h.step for h in store.history("r")]
    assert len(kept) == 3
    for step in kept:
        assert text(store.load_snapshot("r", step=step).to_dict()) == text(taken(step)), step


@pytest.mark.parametrize("kind", ["memory", "json", "sqlite"])
def test_odd_emitted_data_reads_back_as_the_callback_saw_it(kind: str, tmp_path: Path) -> None:
    store: Any = make_store(kind, tmp_path)
    rec = Recorder()
    WorkflowEngine(LOOP, {"count": odd}, store=store, event_callback=rec).run({}, run_id="r")
    want = [event_dict(e) for e in rec.events]
    got = [e.to_dict() for e in store.events("r")]
    assert text(got) == text(want)
    first = next(e for e in store.events("r") if e.kind == "odd")
    assert first.data["tuple"] == [1, [2, 3]] and first.data["7"] == "int key"


def test_memory_events_read_back_are_copies_the_reader_may_change() -> None:
    store = InMemoryWorkflowStore()
    store.append_events("r", [Event("r", 1, 1, "a", "note", "t", {"list": [1], "d": {"k": 1}})])
    read = store.events("r")
    read[0].data["list"].append(2)
    read[0].data["d"]["k"] = 99
    read[0].data["new"] = True
    assert store.events("r")[0].data == {"list": [1], "d": {"k": 1}}


def test_memory_events_passed_in_may_be_changed_after_the_call() -> None:
    store = InMemoryWorkflowStore()
    data: dict[str, Any] = {"list": [1]}
    events = [Event("r", 1, 1, "a", "note", "t", data)]
    store.append_events("r", events)
    data["list"].append(2)
    events.append(Event("r", 2, 1, "a", "late", "t", {}))
    assert [(e.kind, e.data) for e in store.events("r")] == [("note", {"list": [1]})]


@pytest.mark.parametrize("where", ["state", "event"])
def test_a_huge_int_does_not_make_run_raise_with_a_memory_store(where: str) -> None:
    huge = 10**5000

    def handler(ctx: WorkflowContext) -> HandlerResult:
        if where == "event":
            ctx.emit("big", {"n": huge})
            return HandlerResult(["done"])
        return HandlerResult(["done"], workflow_updates={"n": huge})

    engine = WorkflowEngine(LOOP, {"count": handler}, store=InMemoryWorkflowStore())
    result = engine.run({}, run_id="r")  # ValueError: Exceeds the limit (4300 digits) ...
    assert result.status in ("succeeded", "failed")


def test_threads_appending_to_one_memory_run_keep_each_batch_whole_and_in_order() -> None:
    store = InMemoryWorkflowStore()
    store_runs = 4
    barrier = threading.Barrier(8 + store_runs)

    def appender(t: int) -> None:
        barrier.wait()
        for i in range(150):
            batch = [
                Event("r", i, 1, f"t{t}", "note", "ts", {"t": t, "i": i, "j": j}) for j in (0, 1, 2)
            ]
            store.append_events("r", batch)

    def runner(k: int) -> None:
        barrier.wait()
        WorkflowEngine(LOOP, {"count": count_to(30)}, store=store).run({}, run_id=f"run{k}")

    threads = [threading.Thread(target=appender, args=(t,)) for t in range(8)]
    threads += [threading.Thread(target=runner, args=(k,)) for k in range(store_runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    got = [e.data for e in store.events("r")]
    assert len(got) == 8 * 150 * 3
    for start in range(0, len(got), 3):
        batch = got[start : start + 3]
        assert [d["j"] for d in batch] == [0, 1, 2]
        assert len({(d["t"], d["i"]) for d in batch}) == 1
    for t in range(8):
        assert [d["i"] for d in got if d["t"] == t and d["j"] == 0] == list(range(150))
    for k in range(store_runs):
        assert store.load_snapshot(f"run{k}").state.workflow == {"n": 30}
        assert [h.step for h in store.history(f"run{k}")][-1] == 30
