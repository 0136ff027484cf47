"""Issue 14: one run-id rule in every store, so no id can escape a folder or differ by store."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from zeroflow import (
    Event,
    HandlerResult,
    InMemoryWorkflowStore,
    JsonFileWorkflowStore,
    RunSnapshot,
    StoreError,
    WorkflowEngine,
)
from zeroflow.stores import SqliteWorkflowStore

BAD_IDS = [
    pytest.param(5, id="an-int"),
    pytest.param(b"r1", id="bytes"),
    pytest.param("", id="empty"),
    pytest.param("../x", id="parent-folder"),
    pytest.param("a/b", id="slash"),
    pytest.param("a\\b", id="backslash"),
    pytest.param(".", id="dot"),
    pytest.param("..", id="dot-dot"),
    pytest.param("a" * 201, id="201-characters"),
    pytest.param("é" * 128, id="256-utf8-bytes"),
    pytest.param("a\ud800b", id="lone-surrogate"),
    pytest.param("a\nb", id="newline"),
    pytest.param("a\x00b", id="nul"),
    pytest.param("a\x1bb", id="escape"),
    pytest.param("invoice\u202egnp.exe", id="bidi-override"),
    pytest.param("a\u2066b", id="bidi-isolate"),
    pytest.param("a\u200bb", id="zero-width-space"),
    pytest.param("a\u2028b", id="line-separator"),
    pytest.param(" a", id="leading-space"),
    pytest.param("a\t", id="trailing-tab"),
    pytest.param("a.", id="trailing-dot"),
    pytest.param("CON", id="windows-con"),
    pytest.param("nul", id="windows-nul-lowercase"),
    pytest.param("Com1", id="windows-com1"),
    pytest.param("LPT9", id="windows-lpt9"),
    pytest.param("con.txt", id="windows-device-with-extension"),
    pytest.param("aux.tar.gz", id="windows-device-with-two-extensions"),
    pytest.param("a<b", id="less-than"),
    pytest.param("a:b", id="colon"),
    pytest.param('a"b', id="quote"),
    pytest.param("a|b", id="pipe"),
    pytest.param("a?b", id="question-mark"),
    pytest.param("a*b", id="star"),
    pytest.param("e\u0301", id="not-nfc"),
]

GOOD_IDS = [
    uuid.UUID(int=7).hex,
    "order-42",
    "r1",
    "run.2024-01-01",
    "etl-1-replay",
    "a" * 200,
    "é" * 100,
    "my run",
    "console",
    "com10",
    "nul_device",
    "_x-y.z",
]


def _memory(tmp_path: Path) -> Any:
    return InMemoryWorkflowStore()


def _json(tmp_path: Path) -> Any:
    return JsonFileWorkflowStore(tmp_path / "runs")


def _sqlite(tmp_path: Path) -> Any:
    return SqliteWorkflowStore(tmp_path / "runs.db")


STORES: list[Any] = [
    pytest.param(_memory, id="memory"),
    pytest.param(_json, id="json"),
    pytest.param(_sqlite, id="sqlite"),
]


def one_node() -> dict[str, Any]:
    return {
        "workflow_name": "ids",
        "default_entry_node": "a",
        "nodes": {"a": {"handler": "a", "outputs": {"ok": []}}},
    }


def ok(ctx: Any) -> HandlerResult:
    return HandlerResult(outputs=["ok"])


@pytest.mark.parametrize("run_id", BAD_IDS)
def test_the_memory_store_refuses_every_bad_run_id_where_it_enters(run_id: Any) -> None:
    store = InMemoryWorkflowStore()
    entries: list[Callable[[], Any]] = [
        lambda: store.save_snapshot(RunSnapshot(run_id=run_id, workflow_name="w", wf_hash="h")),
        lambda: store.load_snapshot(run_id),
        lambda: store.append_event(run_id, Event(run_id, 0, 1, None, "note", "t", {})),
        lambda: store.acquire_lease(run_id, "me"),
        lambda: store.history(run_id),
        lambda: store.events(run_id),
        lambda: store.delete_run(run_id),
        lambda: store.break_lease(run_id),
        lambda: store.latest_checkpoint(run_id),
    ]
    for enter in entries:
        with pytest.raises(StoreError, match="run id"):
            enter()
    assert store.list_metadata() == []


@pytest.mark.parametrize("make_store", STORES)
@pytest.mark.parametrize("run_id", BAD_IDS)
def test_every_store_refuses_a_bad_run_id_before_writing_anything(
    run_id: Any, make_store: Callable[[Path], Any], tmp_path: Path
) -> None:
    store = make_store(tmp_path)
    engine = WorkflowEngine(one_node(), {"a": ok}, store=store)
    with pytest.raises(StoreError, match="run id") as caught:
        engine.run(run_id=run_id)
    assert "a run id is 1 to 200 characters" in str(caught.value)
    assert store.list_metadata() == []


@pytest.mark.parametrize("make_store", STORES)
def test_ordinary_run_ids_work_where_their_hostile_neighbours_are_refused(
    make_store: Callable[[Path], Any], tmp_path: Path
) -> None:
    store = make_store(tmp_path)
    engine = WorkflowEngine(one_node(), {"a": ok}, store=store)
    generated = engine.run().run_id  # the engine's own ids keep the rule
    for run_id in GOOD_IDS:
        assert engine.run(run_id=run_id).success
        assert store.load_snapshot(run_id).run_id == run_id
        for neighbour in (f"{run_id}\n", f"{run_id}.", f"{run_id}:1", f"\u202e{run_id}"):
            with pytest.raises(StoreError, match="run id"):
                engine.run(run_id=neighbour)
    assert {m.run_id for m in store.list_metadata()} == {generated, *GOOD_IDS}


def test_the_refusal_says_why_and_what_is_allowed() -> None:
    with pytest.raises(StoreError) as caught:
        InMemoryWorkflowStore().load_snapshot("con.txt")
    message = str(caught.value)
    assert "'con.txt' is not allowed: it is a device name Windows reserves" in message
    assert "letters, digits" in message
    assert caught.value.run_id == "con.txt"


def test_a_fork_onto_a_bad_run_id_is_refused_and_the_original_run_is_untouched() -> None:
    store = InMemoryWorkflowStore()
    engine = WorkflowEngine(one_node(), {"a": ok}, store=store)
    engine.run(run_id="orig")
    with pytest.raises(StoreError, match="run id"):
        engine.fork("orig", step=1, new_run_id="../escape")
    assert [m.run_id for m in store.list_metadata()] == ["orig"]
