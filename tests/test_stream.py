"""engine.stream / astream: a call's events as they happen, a bounded buffer, a clean early exit."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from zeroflow import (
    HandlerResult,
    RunExistsError,
    WorkflowContext,
    WorkflowEngine,
)
from zeroflow._stream import RunStream
from zeroflow.stores import SqliteWorkflowStore
from zeroflow.testing import EventRecorder


def loop(n: int) -> dict[str, Any]:
    return {
        "workflow_name": "agent",
        "default_entry_node": "think",
        "nodes": {
            "think": {
                "handler": "think",
                "config": {"n": n},
                "outputs": {
                    "again": [{"target_node": "think", "is_loopback": True}],
                    "done": [{"target_node": "approve"}],
                },
            },
            "approve": {"handler": "approve", "outputs": {"ok": []}},
        },
    }


def think(ctx: WorkflowContext) -> HandlerResult:
    i = int(ctx.state.workflow.get("i", 0)) + 1
    for word in ("think", "ing", f" {i}"):
        ctx.emit("token", {"text": word})
    ctx.emit("progress", {"i": i})
    more = i < ctx.node_config["n"]
    return HandlerResult(outputs=["again" if more else "done"], workflow_updates={"i": i})


def approve(ctx: WorkflowContext) -> HandlerResult:
    answer = ctx.state.workflow.get("__resume__")
    if answer is None:
        return HandlerResult(outputs=[], waiting=True, waiting_prompt="ship it?")
    return HandlerResult(outputs=["ok"], workflow_updates={"approved": answer["ok"]})


HANDLERS = {"think": think, "approve": approve}


def test_the_stream_yields_every_event_in_order_then_the_result(tmp_path: Path) -> None:
    heard = EventRecorder()
    store = SqliteWorkflowStore(tmp_path / "s.db")
    engine = WorkflowEngine(loop(3), HANDLERS, event_callback=heard, store=store)
    with engine.stream({"q": "why"}, run_id="r") as stream:
        kinds = [event.kind for event in stream]
    assert kinds[0] == "wf:start"
    assert [k for k in kinds if k.startswith("wf:")] == ["wf:start", "wf:waiting"]
    assert kinds.count("node:end") == 3
    # the engine's own callback heard the same events, first
    assert [e.kind for e in heard.events] == kinds
    assert stream.result.status == "waiting"
    assert stream.result.state.workflow["i"] == 3


def test_tokens_reach_the_stream_in_order_and_stay_out_of_the_store(tmp_path: Path) -> None:
    store = SqliteWorkflowStore(tmp_path / "s.db")
    engine = WorkflowEngine(loop(2), HANDLERS, store=store)
    with engine.stream(run_id="r", kinds=["token", "progress"]) as stream:
        got = [(e.kind, e.data.get("text", e.data.get("i"))) for e in stream]
    assert got == [
        ("token", "think"),
        ("token", "ing"),
        ("token", " 1"),
        ("progress", 1),
        ("token", "think"),
        ("token", "ing"),
        ("token", " 2"),
        ("progress", 2),
    ]
    logged = [e.kind for e in store.events("r")]
    assert "token" not in logged  # live only by default: the log does not grow per token
    assert logged.count("progress") == 2


def test_a_handler_may_ask_for_a_token_to_be_kept(tmp_path: Path) -> None:
    def keep(ctx: WorkflowContext) -> HandlerResult:
        ctx.emit("token", {"text": "kept"}, persist=True)
        ctx.emit("token:draft", {"text": "live"})
        ctx.emit("note", {"text": "not kept"}, persist=False)
        return HandlerResult(outputs=["ok"])

    store = SqliteWorkflowStore(tmp_path / "s.db")
    defn = {
        "workflow_name": "w",
        "default_entry_node": "a",
        "nodes": {"a": {"handler": "keep", "outputs": {"ok": []}}},
    }
    engine = WorkflowEngine(defn, {"keep": keep}, store=store)
    with engine.stream(run_id="r", kinds=["token", "token:draft", "note"]) as stream:
        assert [e.data["text"] for e in stream] == ["kept", "live", "not kept"]
    assert [e.data["text"] for e in store.events("r") if e.kind in ("token", "note")] == ["kept"]


def test_a_consumer_that_does_not_read_holds_the_engine_at_the_buffer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    blocked = threading.Event()
    calls: list[int] = []
    original = RunStream._pace

    def watched(self: RunStream) -> None:
        if len(self._events) >= self._buffer:
            blocked.set()
        original(self)

    monkeypatch.setattr(RunStream, "_pace", watched)

    def count(ctx: WorkflowContext) -> HandlerResult:
        calls.append(len(ctx.state.workflow))
        i = int(ctx.state.workflow.get("i", 0)) + 1
        return HandlerResult(outputs=["again" if i < 200 else "done"], workflow_updates={"i": i})

    engine = WorkflowEngine(loop(200), {"think": count, "approve": approve})
    stream = engine.stream(buffer=10)
    assert blocked.wait(timeout=30), "the engine never waited for the consumer"
    # nothing was read: the engine stopped after a few nodes, not after 200
    assert 1 <= len(calls) < 10
    assert len(stream._events) <= 10 + 4  # the buffer plus one node's events
    events = list(stream)
    assert len(calls) == 200
    assert stream.result.status == "waiting"
    assert sum(1 for e in events if e.kind == "node:end") == 200


def test_leaving_the_stream_early_cancels_the_run_with_a_checkpoint(tmp_path: Path) -> None:
    store = SqliteWorkflowStore(tmp_path / "s.db")
    engine = WorkflowEngine(loop(50), HANDLERS, store=store)
    with engine.stream(run_id="r", kinds=["node:end"]) as stream:
        for seen, _event in enumerate(stream, 1):
            if seen == 3:
                break
    result = stream.result
    assert result.status == "cancelled"
    assert 3 <= result.state.workflow["i"] < 50
    assert store.load_snapshot("r").status == "cancelled"
    # the run goes on from its checkpoint, streamed again
    with engine.stream_resume("r", kinds=["wf:waiting"]) as resumed:
        assert [e.kind for e in resumed] == ["wf:waiting"]
    assert resumed.result.state.workflow["i"] == 50
    # and a plain call of the same engine is not cancelled by the stream's exit
    assert engine.run(run_id="other").status == "waiting"


def test_a_dropped_stream_is_cancelled_too(tmp_path: Path) -> None:
    store = SqliteWorkflowStore(tmp_path / "s.db")
    engine = WorkflowEngine(loop(50), HANDLERS, store=store)
    for event in engine.stream(run_id="r", kinds=["node:end"]):
        assert event.kind == "node:end"
        break  # no with-block: dropping the iterator cancels
    assert store.load_snapshot("r").status == "cancelled"


def test_what_the_call_raises_is_raised_by_the_stream(tmp_path: Path) -> None:
    store = SqliteWorkflowStore(tmp_path / "s.db")
    engine = WorkflowEngine(loop(1), HANDLERS, store=store)
    engine.run(run_id="taken")
    stream = engine.stream(run_id="taken")
    with pytest.raises(RunExistsError, match="already exists"):
        list(stream)
    with pytest.raises(RunExistsError):
        _ = stream.result


def test_the_result_is_not_there_before_the_end() -> None:
    gate = threading.Event()

    def slow(ctx: WorkflowContext) -> HandlerResult:
        gate.wait(timeout=30)
        return HandlerResult(outputs=["done"])

    engine = WorkflowEngine(loop(1), {"think": slow, "approve": approve})
    with engine.stream() as stream:
        with pytest.raises(RuntimeError, match="has not ended yet"):
            _ = stream.result
        gate.set()
        list(stream)
    assert stream.result.status == "waiting"


def test_redrive_and_fork_stream_the_same_way(tmp_path: Path) -> None:
    store = SqliteWorkflowStore(tmp_path / "s.db")
    flaky = {"fail": True}

    def once_broken(ctx: WorkflowContext) -> HandlerResult:
        if flaky.pop("fail", False):
            raise RuntimeError("down")
        return think(ctx)

    engine = WorkflowEngine(loop(2), {"think": once_broken, "approve": approve}, store=store)
    assert engine.run(run_id="r").status == "failed"
    with engine.stream_redrive("r", kinds=["wf:waiting"]) as redriven:
        assert [e.kind for e in redriven] == ["wf:waiting"]
    assert redriven.result.status == "waiting"
    fork = engine.fork("r", step=2, new_run_id="f")  # after the first good visit
    with engine.stream_from_checkpoint(fork, kinds=["progress"]) as forked:
        assert [e.data["i"] for e in forked] == [2]
    with engine.stream_resume("r", resume_input={"ok": True}) as answered:
        assert "wf:end" in [e.kind for e in answered]
    assert answered.result.state.workflow["approved"] is True


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"buffer": 0}, ValueError, "buffer must be an integer >= 1"),
        ({"buffer": 2.5}, ValueError, "buffer must be an integer >= 1"),
        ({"kinds": "token"}, TypeError, r"kinds must be a collection of event kinds, e\.g\."),
        ({"kinds": []}, ValueError, "kinds must name at least one event kind"),
    ],
)
def test_bad_stream_options_are_refused_before_anything_runs(
    kwargs: dict[str, Any], error: type[Exception], words: str
) -> None:
    calls: list[int] = []

    def counted(ctx: WorkflowContext) -> HandlerResult:
        calls.append(1)
        return think(ctx)

    engine = WorkflowEngine(loop(1), {"think": counted, "approve": approve})
    with pytest.raises(error, match=words):
        engine.stream(**kwargs)
    with pytest.raises(error, match=words):
        engine.astream(**kwargs)
    assert calls == []


# ---------------------------------------------------------------- async


async def athink(ctx: WorkflowContext) -> HandlerResult:
    i = int(ctx.state.workflow.get("i", 0)) + 1
    for word in ("a", "b", "c"):
        await asyncio.sleep(0)
        ctx.emit("token", {"text": f"{word}{i}"})
    more = i < ctx.node_config["n"]
    return HandlerResult(outputs=["again" if more else "done"], workflow_updates={"i": i})


def test_async_tokens_stream_in_order_and_the_run_resumes_after_approval(tmp_path: Path) -> None:
    store = SqliteWorkflowStore(tmp_path / "s.db")
    engine = WorkflowEngine(loop(2), {"think": athink, "approve": approve}, store=store)

    async def main() -> tuple[list[str], str, str]:
        async with engine.astream(run_id="r", kinds=["token"]) as stream:
            texts = [e.data["text"] async for e in stream]
        first = stream.result.status
        async with engine.astream_resume("r", resume_input={"ok": True}) as resumed:
            kinds = [e.kind async for e in resumed if e.kind.startswith("wf:")]
        return texts, first, kinds[-1]

    texts, first, last = asyncio.run(main())
    assert texts == ["a1", "b1", "c1", "a2", "b2", "c2"]
    assert first == "waiting"
    assert last == "wf:end"


def test_leaving_an_async_stream_early_cancels_the_run(tmp_path: Path) -> None:
    store = SqliteWorkflowStore(tmp_path / "s.db")
    engine = WorkflowEngine(loop(50), {"think": athink, "approve": approve}, store=store)

    async def main() -> str:
        async with engine.astream(run_id="r", kinds=["node:end"]) as stream:
            async for _event in stream:
                break
        return stream.result.status

    assert asyncio.run(main()) == "cancelled"
    assert store.load_snapshot("r").status == "cancelled"


def test_a_slow_async_consumer_holds_the_engine_at_node_boundaries() -> None:
    unread: list[int] = []
    holder: dict[str, Any] = {}

    async def count(ctx: WorkflowContext) -> HandlerResult:
        unread.append(len(holder["stream"]._events))
        i = int(ctx.state.workflow.get("i", 0)) + 1
        return HandlerResult(outputs=["again" if i < 100 else "done"], workflow_updates={"i": i})

    engine = WorkflowEngine(loop(100), {"think": count, "approve": approve})

    async def main() -> int:
        stream = engine.astream(buffer=6)
        holder["stream"] = stream
        n = 0
        async with stream:
            async for _ in stream:
                n += 1
                for _ in range(5):  # a consumer slower than the engine
                    await asyncio.sleep(0)
        return n

    total = asyncio.run(main())
    assert total > 300
    assert len(unread) == 100
    assert max(unread) <= 6 + 1  # the buffer, plus this node's start


def test_the_user_guide_streaming_snippet_runs() -> None:
    guide = (Path(__file__).parent.parent / "docs" / "USER_GUIDE.md").read_text(encoding="utf-8")
    section = guide[guide.index("## Streaming") :]
    start = section.index("```python\n") + len("```python\n")
    code = section[start : section.index("```", start)]
    exec(compile(code, "USER_GUIDE.md#streaming", "exec"), {"__name__": "snippet"})
