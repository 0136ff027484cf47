"""A stored run's events and checkpoints carry the clock's second at the moment each is made.

The recorder keeps the last second's text to skip formatting it again; a clock
that moves on, jumps far ahead or goes back must still give every event and
``updated_at`` the text of its own reading.
"""

from __future__ import annotations

from _support import LOOP, count_to, ok, task
from zeroflow import InMemoryWorkflowStore, WorkflowEngine
from zeroflow._live import LiveRun
from zeroflow._models import RunSnapshot, now_iso
from zeroflow._run.recorder import StoreRecorder

READINGS = [100.1, 100.9, 101.0, 99.99, 99.0, 5e9, 5e9 + 0.5, 100.2]


def _recorder(readings: list[float]) -> tuple[StoreRecorder, list[float]]:
    told: list[float] = []
    pending = iter(readings)

    def clock() -> float:
        told.append(next(pending))
        return told[-1]

    store = InMemoryWorkflowStore()
    return StoreRecorder(store, None, clock, lambda: "owner", persist=True), told


def test_every_event_is_stamped_with_its_own_reading_of_the_clock() -> None:
    recorder, told = _recorder(READINGS)
    run = LiveRun(RunSnapshot("r1", "wf", "h"), journaling=True)
    run.outbox = []  # held for a commit: what emit built is there to read
    for i in range(len(READINGS)):
        recorder.emit(run, "note", "a", {"i": i})
    assert run.outbox is not None
    assert [e.ts for e in run.outbox] == [now_iso(t) for t in told]
    assert len({e.ts for e in run.outbox}) == 4  # seconds 100, 101, 99 and 5e9, then 100 again


def test_a_checkpoint_is_stamped_with_its_own_reading_after_events_of_other_seconds() -> None:
    recorder, told = _recorder([50.5, 7.25, 50.9, 7.1])
    run = LiveRun(RunSnapshot("r1", "wf", "h"), journaling=True)
    run.outbox = []
    recorder.emit(run, "note", "a", {})
    recorder.checkpoint(run, write=False)  # stamps updated_at, announces the checkpoint
    assert told == [50.5, 7.25, 50.9, 7.1]
    assert run.snap.updated_at == now_iso(7.25)
    assert run.outbox is not None
    assert [(e.kind, e.ts) for e in run.outbox] == [
        ("note", now_iso(50.5)),
        ("store:saved", now_iso(50.9)),
        ("checkpoint", now_iso(7.1)),
    ]


def test_two_engines_with_clocks_decades_apart_stamp_their_own_records() -> None:
    """The second's text is kept process-wide; interleaved engines must not borrow it."""
    stores = {5.0: InMemoryWorkflowStore(), 2e9: InMemoryWorkflowStore()}
    engines = {
        when: WorkflowEngine(
            LOOP, {"count": count_to(3)}, store=store, clock=lambda when=when: when
        )
        for when, store in stores.items()
    }
    bare = WorkflowEngine(LOOP, {"count": count_to(3)}, clock=lambda: 7e8)  # no store
    for _ in range(2):
        for when, engine in engines.items():
            result = engine.run()
            assert {r.ts for r in result.audit_trail} == {now_iso(when)}
            stored = stores[when]
            assert stored.load_snapshot(result.run_id).updated_at == now_iso(when)
            assert {e.ts for e in stored.events(result.run_id)} == {now_iso(when)}
            assert {r.ts for r in bare.run().audit_trail} == {now_iso(7e8)}


def test_each_record_of_a_run_whose_clock_moves_carries_a_second_of_its_own() -> None:
    chain = {
        "workflow_name": "chain",
        "default_entry_node": "n0",
        "nodes": {f"n{i}": task("ok", *([f"n{i + 1}"] if i < 4 else [])) for i in range(5)},
    }
    readings: list[float] = []

    def clock() -> float:  # ten seconds on at every reading
        readings.append(1000.0 + 10 * len(readings))
        return readings[-1]

    result = WorkflowEngine(chain, {"ok": ok}, clock=clock).run()
    stamps = [r.ts for r in result.audit_trail]
    assert len(stamps) == 5 and len(set(stamps)) == 5
    assert set(stamps) <= {now_iso(t) for t in readings}
    assert stamps == sorted(stamps)
