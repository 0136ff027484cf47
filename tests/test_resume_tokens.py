"""Single-use resume tokens: the link a waiting run's approver gets opens its wait once.

The raw token reaches only the caller that paused the run
(``WorkflowResult.resume_tokens``); the store keeps its SHA-256 digest.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from zeroflow import (
    HandlerResult,
    InMemoryWorkflowStore,
    JsonFileWorkflowStore,
    ResumeTokenError,
    RunLockedError,
    WorkflowContext,
    WorkflowEngine,
)
from zeroflow._cli import main
from zeroflow.testing import FakeClock


def flow(*, required: bool = False, hitl: str = "run") -> dict[str, Any]:
    return {
        "workflow_name": "tokens",
        "default_entry_node": "fan",
        "engine_policy": {"require_resume_token": required, "hitl": hitl},
        "nodes": {
            "fan": {
                "handler": "note",
                "outputs": {"ok": [{"target_node": "legal"}, {"target_node": "finance"}]},
            },
            "legal": {"kind": "wait", "wait": {"prompt": "legal?"}, "outputs": {"ok": []}},
            "finance": {"kind": "wait", "wait": {"prompt": "finance?"}, "outputs": {"ok": []}},
        },
    }


def single(*, required: bool = False) -> dict[str, Any]:
    return {
        "workflow_name": "one",
        "default_entry_node": "ask",
        "engine_policy": {"require_resume_token": required},
        "nodes": {
            "ask": {"kind": "wait", "wait": {"prompt": "ok?"}, "outputs": {"ok": [], "again": []}},
        },
    }


def note(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"])


def engine(defn: dict[str, Any], store: Any, **kw: Any) -> WorkflowEngine:
    return WorkflowEngine(defn, {"note": note}, store=store, **kw)


def test_a_pause_hands_out_one_unguessable_token_per_wait_and_keeps_only_its_digest() -> None:
    store = InMemoryWorkflowStore()
    paused = engine(single(), store).run(run_id="r")
    (token,) = paused.resume_tokens.values()
    assert list(paused.resume_tokens) == list(paused.waiting_nodes) == ["ask"]
    assert len(token) >= 43  # 32 random bytes, URL-safe base64
    kept = store.load_snapshot("r").extra["tokens"]
    assert kept == {"ask": hashlib.sha256(token.encode()).hexdigest()}
    assert token not in json.dumps(store.load_snapshot("r").to_dict())
    other = engine(single(), store).run(run_id="r2").resume_tokens["ask"]
    assert other != token


def test_the_token_opens_its_wait_once_and_a_replay_is_refused() -> None:
    store = InMemoryWorkflowStore()
    token = engine(single(), store).run(run_id="r").resume_tokens["ask"]
    done = engine(single(), store).resume("r", resume_input={"ok": 1}, token=token)
    assert done.success
    with pytest.raises(ResumeTokenError):  # the run is over: nothing is waiting
        engine(single(), store).resume("r", resume_input={"ok": 2}, token=token)


def test_a_token_of_an_earlier_visit_cannot_answer_the_next_one() -> None:
    store = InMemoryWorkflowStore()
    defn = single()
    defn["nodes"]["ask"]["outputs"]["again"] = [{"target_node": "ask", "is_loopback": True}]
    first = engine(defn, store).run(run_id="r").resume_tokens["ask"]
    again = engine(defn, store).resume("r", resume_input={"outcome": "again"}, token=first)
    assert again.waiting
    second = again.resume_tokens["ask"]
    assert second != first
    before = store.latest_checkpoint("r")
    with pytest.raises(ResumeTokenError, match="replayed, issued for another wait, or forged"):
        engine(defn, store).resume("r", token=first)
    assert store.latest_checkpoint("r") == before  # nothing written
    assert engine(defn, store).resume("r", resume_input={"outcome": "ok"}, token=second).success


@pytest.mark.parametrize("forged", ["x", "A" * 43, "", " " * 600, 12345, b"bytes"])
def test_forged_tokens_are_refused_and_nothing_changes(forged: Any) -> None:
    store = InMemoryWorkflowStore()
    engine(single(), store).run(run_id="r")
    before = store.latest_checkpoint("r")
    with pytest.raises(ResumeTokenError):
        engine(single(), store).resume("r", token=forged)
    assert store.latest_checkpoint("r") == before
    assert store.load_snapshot("r").status == "waiting"


def test_a_token_of_another_run_or_another_branch_is_refused() -> None:
    store = InMemoryWorkflowStore()
    mine = engine(flow(hitl="branch"), store).run(run_id="a").resume_tokens
    theirs = engine(flow(hitl="branch"), store).run(run_id="b").resume_tokens
    assert set(mine) == {"legal", "finance"}
    with pytest.raises(ResumeTokenError):
        engine(flow(hitl="branch"), store).resume("a", "legal", token=theirs["legal"])
    with pytest.raises(ResumeTokenError):
        engine(flow(hitl="branch"), store).resume("a", "legal", token=mine["finance"])
    after = engine(flow(hitl="branch"), store).resume("a", "legal", token=mine["legal"])
    assert after.waiting and after.resume_tokens == {}  # finance's token stays the one sent
    assert engine(flow(hitl="branch"), store).resume("a", "finance", token=mine["finance"]).success


def test_require_resume_token_refuses_an_answer_without_one() -> None:
    store = InMemoryWorkflowStore()
    token = engine(single(required=True), store).run(run_id="r").resume_tokens["ask"]
    with pytest.raises(ResumeTokenError, match="requires a resume token"):
        engine(single(required=True), store).resume("r", resume_input={"ok": 1})
    assert engine(single(required=True), store).resume("r", token=token).success


def test_without_the_requirement_an_answer_without_the_token_spends_it() -> None:
    store = InMemoryWorkflowStore()
    defn = single()
    defn["nodes"]["ask"]["outputs"]["again"] = [{"target_node": "ask", "is_loopback": True}]
    token = engine(defn, store).run(run_id="r").resume_tokens["ask"]
    again = engine(defn, store).resume("r", resume_input={"outcome": "again"})
    assert again.waiting
    with pytest.raises(ResumeTokenError):
        engine(defn, store).resume("r", token=token)


def test_zf1_spells_it_defaults_require_resume_token() -> None:
    zf1 = {
        "version": "zf/1",
        "name": "z",
        "entry": "ask",
        "defaults": {"require_resume_token": True},
        "nodes": {"ask": {"kind": "wait", "prompt": "ok?", "on": {"ok": []}}},
    }
    store = InMemoryWorkflowStore()
    engine(zf1, store).run(run_id="z")
    with pytest.raises(ResumeTokenError):
        engine(zf1, store).resume("z")
    with pytest.raises(ValueError, match="require_resume_token must be true or false"):
        engine({**zf1, "defaults": {"require_resume_token": "yes"}}, store)
    with pytest.raises(ValueError, match="require_resume_token must be true or false"):
        engine({**single(), "engine_policy": {"require_resume_token": 1}}, store)


def test_two_answers_with_the_same_token_at_once_are_accepted_once() -> None:
    store = InMemoryWorkflowStore()
    token = engine(single(), store).run(run_id="r").resume_tokens["ask"]
    snap = store.load_snapshot("r")  # both webhook calls loaded the same waiting run
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def answer() -> None:
        barrier.wait()
        try:
            engine(single(), store).run_from_checkpoint(snap, {"ok": 1}, token=token)
            outcomes.append("accepted")
        except (ResumeTokenError, RunLockedError) as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=answer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("accepted") == 1
    assert store.load_snapshot("r").status == "succeeded"


def test_a_timer_wakes_a_wait_without_its_token_and_spends_it() -> None:
    defn = single(required=True)
    defn["nodes"]["ask"]["wait"]["timeout_seconds"] = 60
    defn["nodes"]["ask"]["wait"]["on_timeout"] = "default"
    store, clock = InMemoryWorkflowStore(), FakeClock(1_800_000_000)
    token = engine(defn, store, clock=clock).run(run_id="r").resume_tokens["ask"]
    (woken,) = engine(defn, store, clock=clock).resume_due(now=clock() + 60)
    assert woken.success
    assert "tokens" not in store.load_snapshot("r").extra
    with pytest.raises(ResumeTokenError):
        engine(defn, store, clock=clock).resume("r", token=token)


def test_the_json_store_never_holds_the_raw_token(tmp_path: Path) -> None:
    store = JsonFileWorkflowStore(tmp_path / "s")
    token = engine(single(), store).run(run_id="r").resume_tokens["ask"]
    for file in (tmp_path / "s").rglob("*"):
        if file.is_file():
            assert token.encode() not in file.read_bytes(), file


def test_the_cli_prints_the_token_of_a_pause_and_resumes_with_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "one.json").write_text(json.dumps(single(required=True)))
    (tmp_path / "tok_handlers.py").write_text("HANDLERS = {}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    token = (
        engine(single(required=True), JsonFileWorkflowStore(tmp_path / "runs"))
        .run(run_id="c")
        .resume_tokens["ask"]
    )
    driven = ["--store", "runs", "--workflow", "one.json", "--handlers", "tok_handlers:HANDLERS"]
    assert main(["runs", "show", "c", "--store", "runs"]) == 0
    shown = capsys.readouterr().out
    assert "tokens:     ask: open (sha256 " in shown and token not in shown
    assert main(["runs", "resume", "c", *driven, "--token", "forged"]) != 0
    assert "does not open 'ask'" in capsys.readouterr().err
    assert main(["runs", "resume", "c", *driven, "--token", token, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "succeeded"
    assert main(["runs", "show", "c", "--store", "runs", "--json"]) == 0
    assert token not in capsys.readouterr().out


def test_an_injected_token_factory_makes_runs_deterministic_and_is_checked() -> None:
    tokens = iter(["t-1", "t-2"])
    store = InMemoryWorkflowStore()
    paused = engine(single(), store, resume_token_factory=lambda: next(tokens)).run(run_id="r")
    assert paused.resume_tokens == {"ask": "t-1"}
    with pytest.raises(TypeError, match="resume_token_factory must be callable"):
        engine(single(), store, resume_token_factory="t")
    with pytest.raises(TypeError, match="must return a non-empty str"):
        engine(single(), store, resume_token_factory=lambda: 5).run(run_id="r2")


def test_a_callback_and_a_stream_hear_each_new_token_and_no_store_keeps_it(
    tmp_path: Path,
) -> None:
    from zeroflow import subscribe
    from zeroflow.stores import SqliteWorkflowStore
    from zeroflow.testing import EventRecorder

    heard = EventRecorder()
    plain = EventRecorder()  # written for 0.1.0: hears every kind but the new wf:token

    def both(event: Any) -> None:
        plain(event)

    store = SqliteWorkflowStore(tmp_path / "s.db")
    engine = WorkflowEngine(
        flow(required=True, hitl="branch"),
        {"note": note},
        event_callback=subscribe(heard, "wf:waiting", "wf:token"),
        store=store,
    )
    WorkflowEngine(
        flow(hitl="branch"), {"note": note}, event_callback=both, store=InMemoryWorkflowStore()
    ).run(run_id="plain")
    assert "wf:token" not in plain.kinds() and "wf:waiting" in plain.kinds()
    paused = engine.run(run_id="r")
    told = {e.data["node"]: e.data["token"] for e in heard.of("wf:token")}
    assert told == paused.resume_tokens and set(told) == {"legal", "finance"}
    # the pause was committed before the tokens were told; the log keeps no token
    assert heard.kinds().index("wf:token") > heard.kinds().index("wf:waiting")
    assert "wf:token" not in [e.kind for e in store.events("r")]
    logged = json.dumps([e.to_dict() for e in store.events("r")])
    assert told["legal"] not in logged and told["finance"] not in logged
    # the link an approver opens works once, with the token the callback heard
    engine.resume("r", "legal", {"ok": True}, token=told["legal"])
    with pytest.raises(ResumeTokenError):  # legal's token does not open finance's wait
        engine.resume("r", "finance", {"ok": True}, token=told["legal"])

    streamed = WorkflowEngine(single(required=True), {}, store=store)
    with streamed.stream(run_id="s", kinds=["wf:token"]) as stream:
        (event,) = list(stream)
    assert event.data == {"node": "ask", "token": stream.result.resume_tokens["ask"]}
