"""``BatchingStore.append_events`` without the lease, on every shipped store.

Appends with and without a writer of the run in this instance, for runs that
do not exist yet, with bad run ids, and with event data a store cannot write.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from _support import LOOP, count_to
from zeroflow import WorkflowEngine
from zeroflow._errors import StoreError
from zeroflow._models import Event
from zeroflow.testing import sample_snapshot

KINDS = ["memory", "json", "sqlite", "postgres"]


def note(run_id: str, text: str) -> Event:
    return Event(run_id, 0, 1, None, "note", "2026-01-01T00:00:00+00:00", {"text": text})


def again(store_of: Any, kind: str, store: Any) -> Any:
    """A second instance on the same data (the same one for the memory store)."""
    if kind == "memory":
        return store
    return store_of(kind, getattr(store, "schema", None))


@pytest.mark.parametrize("kind", KINDS)
def test_notes_without_a_lease_around_a_run_driven_by_another_instance(
    kind: str, store_of: Any
) -> None:
    store = store_of(kind)
    operator = again(store_of, kind, store)
    store.save_snapshot(sample_snapshot("r"))  # unleased: a writer of "r" now exists here
    store.append_event("r", note("r", "one"))
    operator.append_events("r", [note("r", "two"), note("r", "three")])
    store.append_events("r", [note("r", "four")])
    texts = [e.data["text"] for e in again(store_of, kind, store).events("r")]
    assert texts == ["one", "two", "three", "four"]
    assert all(e.run_id == "r" for e in store.events("r"))


@pytest.mark.parametrize("kind", ["memory", "sqlite", "postgres"])
def test_notes_for_a_run_not_started_yet_stay_in_its_log_once_it_runs(
    kind: str, store_of: Any
) -> None:
    store = store_of(kind)
    store.append_event("r", note("r", "queued"))
    assert store.latest_step("r") is None and store.run_status("r") is None
    assert [m.run_id for m in store.list_metadata()] == []
    with pytest.raises(KeyError):
        store.load_snapshot("r")
    assert WorkflowEngine(LOOP, {"count": count_to(2)}, store=store).run({}, run_id="r").success
    kinds = [e.kind for e in store.events("r")]
    assert kinds[:2] == ["note", "wf:start"]


def test_a_json_note_for_a_run_not_started_yet_stays_in_its_log_once_it_runs(
    store_of: Any,
) -> None:
    store = store_of("json")
    store.append_event("r", note("r", "queued"))
    assert [e.kind for e in store.events("r")] == ["note"]
    assert WorkflowEngine(LOOP, {"count": count_to(2)}, store=store).run({}, run_id="r").success
    assert [e.kind for e in store.events("r")][:2] == ["note", "wf:start"]


@pytest.mark.parametrize("kind", ["json", "sqlite", "postgres"])
@pytest.mark.parametrize("run_id", ["../x", "", "a/b", "..", " x", "a\x00b"])
def test_bad_run_ids_are_refused_by_event_appends(
    kind: str, run_id: str, store_of: Any, tmp_path: Path
) -> None:
    store = store_of(kind)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(StoreError, match="run id"):
        store.append_event(run_id, note(run_id, "x"))
    with pytest.raises(StoreError, match="run id"):
        store.append_events(run_id, [note(run_id, "x")])
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not (tmp_path / "x").exists()
    assert store.list_metadata() == []


@pytest.mark.parametrize(
    "kind",
    [
        "memory",
        "json",
        "sqlite",
        "postgres",
    ],
)
def test_an_event_the_store_cannot_write_is_refused_and_forgotten(kind: str, store_of: Any) -> None:
    store = store_of(kind)
    WorkflowEngine(LOOP, {"count": count_to(3)}, store=store).run({}, run_id="r")
    logged = len(store.events("r"))
    with pytest.raises(TypeError):
        store.append_event("r", Event("r", 3, 1, None, "note", "t", {"when": {1, 2}}))
    assert len(store.events("r")) == logged
    assert store.load_snapshot("r").state.workflow == {"n": 3}
    assert [m.run_id for m in store.list_metadata()] == ["r"]
    store.append_event("r", note("r", "after"))
    assert store.events("r")[-1].data == {"text": "after"}
