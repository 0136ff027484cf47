"""``zeroflow runs why`` and ``why_run``: every reason a run is not moving, on JSON and SQLite."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from zeroflow import (
    Event,
    HandlerResult,
    InMemoryWorkflowStore,
    JsonFileWorkflowStore,
    LeaseInfo,
    SqliteWorkflowStore,
    WorkflowContext,
    WorkflowEngine,
    why_run,
)
from zeroflow._cli import main
from zeroflow._definition import compile_workflow

FLOW: dict[str, Any] = {
    "version": "zf/1",
    "name": "why",
    "entry": "draft",
    "nodes": {
        "draft": {"handler": "draft", "on": {"ok": "review"}},
        "review": {"kind": "wait", "prompt": "Ship it?", "on": {"approve": "ship"}},
        "ship": {"handler": "ship"},
    },
}

STRANDED: dict[str, Any] = {
    "version": "zf/1",
    "name": "joins",
    "entry": "split",
    "nodes": {
        "split": {"handler": "split", "on": {"left": "a", "right": "b"}},
        "a": {"handler": "pass", "on": {"ok": "both"}},
        "b": {"handler": "pass", "on": {"ok": "both"}},
        "both": {"handler": "pass", "join": ["a", "b"]},
    },
}


class Boom(BaseException):
    """A driver killed mid-node: nothing catches it, so the run stays 'running'."""


def draft(ctx: WorkflowContext) -> HandlerResult:
    if ctx.state.input.get("die"):
        raise Boom()
    return HandlerResult(outputs=["ok"])


def ship(ctx: WorkflowContext) -> HandlerResult:
    if ctx.state.input.get("fail"):
        raise RuntimeError("the ship sank")
    return HandlerResult(outputs=[])


HANDLERS = {
    "draft": draft,
    "ship": ship,
    "split": lambda ctx: HandlerResult(outputs=["left"]),
    "pass": lambda ctx: HandlerResult(outputs=["ok"]),
}


@pytest.fixture(params=["json", "sqlite"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store path of each kind the CLI opens: a folder, a .db file."""
    path = tmp_path / ("runs" if request.param == "json" else "runs.db")
    store = open_store(str(path))
    store.close()
    yield str(path)


def open_store(path: str) -> Any:
    return SqliteWorkflowStore(path) if path.endswith(".db") else JsonFileWorkflowStore(path)


def engine(path: str, definition: dict[str, Any] = FLOW, **kw: Any) -> WorkflowEngine:
    return WorkflowEngine(definition, HANDLERS, store=open_store(path), **kw)


def why_cli(capsys: pytest.CaptureFixture[str], run_id: str, where: str, *extra: str) -> Any:
    code = main(["runs", "why", run_id, "--store", where, "--json", *extra])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def kinds(found: Any) -> list[str]:
    return [r["kind"] for r in found["reasons"]]


def reason(found: Any, kind: str) -> Any:
    return next(r for r in found["reasons"] if r["kind"] == kind)


# ---------------------------------------------------------------- through the CLI, on both stores


def test_a_waiting_run_names_its_node_prompt_and_since_when(
    where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    engine(where).run(run_id="w1")
    found = why_cli(capsys, "w1", where)
    assert kinds(found) == ["waiting"]
    details = reason(found, "waiting")["details"]
    assert details["node"] == "review" and details["prompt"] == "Ship it?"
    paused = [e for e in open_store(where).events("w1") if e.kind == "wf:waiting"]
    assert details["since"] == paused[-1].ts
    assert "runs resume w1 --node review" in reason(found, "waiting")["hint"]
    main(["runs", "why", "w1", "--store", where])
    text = capsys.readouterr().out
    assert text.startswith("run w1 (why) is waiting\n")
    assert "node 'review' waits for an answer to 'Ship it?', since " in text


def test_a_succeeded_and_a_cancelled_run_say_so(
    where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    eng = engine(where)
    eng.run(run_id="done-1")
    eng.resume("done-1", resume_input={"outcome": "approve"})
    assert kinds(why_cli(capsys, "done-1", where)) == ["succeeded"]

    def cancel_me(ctx: WorkflowContext) -> HandlerResult:
        stopper.cancel()
        return HandlerResult(outputs=["ok"])

    stopper = WorkflowEngine(FLOW, {**HANDLERS, "draft": cancel_me}, store=open_store(where))
    assert stopper.run(run_id="c1").status == "cancelled"
    found = why_cli(capsys, "c1", where)
    assert kinds(found) == ["cancelled"] and "runs resume" in reason(found, "cancelled")["hint"]


def test_a_failed_run_names_its_error_and_that_redrive_continues_it(
    where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    eng = engine(where)
    eng.run({"fail": True}, run_id="f1")
    assert eng.resume("f1", resume_input={"outcome": "approve"}).status == "failed"
    found = why_cli(capsys, "f1", where)
    assert kinds(found) == ["failed"]
    failed = reason(found, "failed")
    assert failed["details"]["error"]["code"] == "HANDLER_EXCEPTION"
    assert "the ship sank" in failed["text"] and failed["details"]["redrivable"] is True
    assert failed["hint"] == "runs redrive runs node 'ship' again"


def test_a_run_another_process_holds_names_its_host_and_pid_alive(
    where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    engine(where).run(run_id="held")
    store = open_store(where)
    store.acquire_lease("held", "someone-else")
    found = why_cli(capsys, "held", where)
    assert kinds(found) == ["waiting", "leased"]
    lease = reason(found, "leased")["details"]["lease"]
    assert lease["pid"] == os.getpid() and lease["holder_alive"] is True and lease["live"]
    assert lease["owner"] == "someone-else" and lease["token"] >= 1
    assert f"process {os.getpid()} on " in reason(found, "leased")["text"]
    store.release_lease("held", "someone-else")
    assert kinds(why_cli(capsys, "held", where)) == ["waiting"]


def test_a_lease_whose_holder_died_is_named_gone_and_the_run_resumable(
    where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(Boom):
        engine(where).run({"die": True}, run_id="dead")
    code = (
        "import os, sys; sys.path[:0] = sys.argv[2:]; "
        "from test_why import open_store; "
        "open_store(sys.argv[1]).acquire_lease('dead', 'the-dead-one'); os._exit(0)"
    )
    tests = str(Path(__file__).parent)
    subprocess.run([sys.executable, "-c", code, where, tests], check=True, timeout=60)
    found = why_cli(capsys, "dead", where)
    assert kinds(found) == ["unleased"]
    text = reason(found, "unleased")["text"]
    assert "which is gone: its driver died mid-run" in text
    assert reason(found, "unleased")["details"]["lease"]["holder_alive"] is False
    assert reason(found, "unleased")["hint"] == "runs resume dead continues it"


def test_a_running_run_nobody_holds_says_its_driver_stopped(
    where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(Boom):
        engine(where).run({"die": True}, run_id="stopped")
    found = why_cli(capsys, "stopped", where)
    assert kinds(found) == ["unleased"]
    assert "nobody holds its lease" in reason(found, "unleased")["text"]


def test_a_definition_with_another_hash_says_whether_migrate_takes_the_run(
    where: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    engine(where).run(run_id="old")
    grown = copy.deepcopy(FLOW)
    grown["nodes"]["ship"]["on"] = {"ok": "tell"}
    grown["nodes"]["tell"] = {"handler": "ship"}
    (tmp_path / "grown.json").write_text(json.dumps(grown), encoding="utf-8")
    found = why_cli(capsys, "old", where, "--def", str(tmp_path / "grown.json"))
    assert kinds(found) == ["waiting", "definition"]
    changed = reason(found, "definition")
    assert changed["details"]["verdict"] == "migratable"
    assert changed["details"]["definition_hash"] == compile_workflow(grown).hash
    assert changed["hint"].startswith("migrate would take it")

    shrunk = copy.deepcopy(FLOW)
    shrunk["nodes"]["draft"]["on"] = {"ok": "ship"}
    del shrunk["nodes"]["review"]
    (tmp_path / "shrunk.json").write_text(json.dumps(shrunk), encoding="utf-8")
    changed = reason(
        why_cli(capsys, "old", where, "--def", str(tmp_path / "shrunk.json")), "definition"
    )
    assert changed["details"]["verdict"] == "blocked"
    assert "migrate would refuse it: node 'review'" in changed["hint"]

    (tmp_path / "same.json").write_text(json.dumps(FLOW), encoding="utf-8")
    assert kinds(why_cli(capsys, "old", where, "--def", str(tmp_path / "same.json"))) == ["waiting"]


def test_a_definition_of_another_workflow_is_named_as_such(
    where: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    engine(where).run(run_id="w2")
    (tmp_path / "joins.json").write_text(json.dumps(STRANDED), encoding="utf-8")
    changed = reason(
        why_cli(capsys, "w2", where, "--def", str(tmp_path / "joins.json")), "definition"
    )
    assert "'joins'" in changed["text"] and "'why'" in changed["text"]


def test_a_stranded_join_is_found_with_or_without_the_definition(
    where: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    failing = copy.deepcopy(STRANDED)
    failing["defaults"] = {"stranded_joins": "fail"}
    assert engine(where, failing).run(run_id="j1").status == "failed"
    found = why_cli(capsys, "j1", where)
    assert kinds(found) == ["failed", "stranded_join"]
    stranded = reason(found, "stranded_join")["details"]
    assert stranded == {"node": "both", "arrived": ["a"], "missing": ["b"]}

    assert engine(where, STRANDED).run(run_id="j2").status == "succeeded"
    assert kinds(why_cli(capsys, "j2", where)) == ["succeeded"]  # nothing says it without FILE
    (tmp_path / "joins.json").write_text(json.dumps(STRANDED), encoding="utf-8")
    found = why_cli(capsys, "j2", where, "--def", str(tmp_path / "joins.json"))
    assert kinds(found) == ["succeeded", "stranded_join"]
    assert reason(found, "stranded_join")["details"]["missing"] == ["b"]


def test_an_unknown_run_and_a_bad_def_are_one_line_errors(
    where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs", "why", "nope", "--store", where]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope" in err
    engine(where).run(run_id="w3")
    assert main(["runs", "why", "w3", "--store", where, "--def", "missing.json"]) == 1
    assert "missing.json: no such file" in capsys.readouterr().err


# ---------------------------------------------------------------- the pure function


def waiting_snapshot() -> Any:
    store = InMemoryWorkflowStore()
    WorkflowEngine(FLOW, HANDLERS, store=store).run(run_id="p1")
    return store.load_snapshot("p1")


def test_a_retry_wait_says_which_attempt_and_until_when() -> None:
    snap = waiting_snapshot()
    snap.status = "running"
    retry = Event(
        "p1",
        1,
        1,
        "draft",
        "node:retry",
        "2026-01-01T10:00:00+00:00",
        {"node": "draft", "attempt": 1, "max_retries": 3, "error": "E: x", "delay_seconds": 30},
    )
    start = 1767261600.0  # 2026-01-01T10:00:00Z
    found = why_run(snap, events=[retry], now=start + 10)
    retrying = next(r for r in found.reasons if r.kind == "retrying")
    assert retrying.details["until"] == start + 30
    assert "attempt 1 of 4" in retrying.text
    assert "2026-01-01T10:00:30+00:00 (in 20 s)" in retrying.text
    free = LeaseInfo(owner=None, token=3, expires_in_seconds=None)
    found = why_run(snap, events=[retry], lease=free)
    assert found.kinds == ("retrying", "unleased")
    assert "nobody drives it now" in (found.reasons[0].hint or "")


def test_a_wait_deadline_and_a_sleep_timer_are_read_when_the_run_keeps_them() -> None:
    snap = waiting_snapshot()
    snap.extra["timers"] = {"review": {"due": 1767261600.0, "kind": "wait"}}
    snap.extra["tokens"] = {"review": "tok-123"}
    found = why_run(snap, now=1767261600.0 - 60)
    waiting = found.reasons[0]
    assert waiting.details["due"] == 1767261600.0 and waiting.details["resume_token"] == "tok-123"
    assert "its deadline is 2026-01-01T10:00:00+00:00 (in 60 s)" in waiting.text
    snap.extra["timers"] = {"review": {"due": 1767261600.0, "kind": "sleep"}}
    assert why_run(snap, now=1767261600.0 + 5).kinds == ("sleeping",)
    assert "(5 s ago)" in why_run(snap, now=1767261600.0 + 5).reasons[0].text


@pytest.mark.parametrize(
    "damage",
    [
        {"timers": "junk"},
        {"timers": {"review": {"due": float("nan")}}},
        {"timers": {"review": {"due": 1e300}}},
        {"timers": {"review": {"due": True}}},
        {"tokens": [1, 2]},
        {"waiting": {"<script>": None}},
        {"redrive": 5},
    ],
)
def test_damaged_extras_never_break_the_reading(damage: dict[str, Any]) -> None:
    snap = waiting_snapshot()
    snap.extra.update(damage)
    found = why_run(snap, now=0.0)
    assert found.reasons and json.dumps(found.to_dict())
    snap.status = "failed"
    assert "failed" in why_run(snap).kinds


def test_a_failed_run_without_a_redrive_record_says_only_a_new_run_helps() -> None:
    snap = waiting_snapshot()
    snap.status = "failed"
    snap.extra.pop("redrive", None)
    failed = why_run(snap).reasons[0]
    assert failed.details["redrivable"] is False and "only a new run" in (failed.hint or "")


def test_a_status_this_version_does_not_know_is_said_plainly() -> None:
    snap = waiting_snapshot()
    snap.status = "paused-forever"
    found = why_run(snap)
    assert found.kinds == ("status",) and "'paused-forever'" in found.reasons[0].text
    assert found.text().startswith("run p1 (why) is paused-forever\n")


def test_the_memory_store_reports_leases_like_the_others() -> None:
    store = InMemoryWorkflowStore()
    assert store.lease_info("r") is None
    token = store.acquire_lease("r", "me")
    info = store.lease_info("r")
    assert info is not None and info.live and info.token == token and info.owner == "me"
    assert info.pid == os.getpid() and info.holder_alive is True
    assert info.expires_in_seconds is not None and 0 < info.expires_in_seconds <= 30
    store.release_lease("r", "me")
    info = store.lease_info("r")
    assert info is not None and not info.live and info.owner is None and info.token == token


def test_an_expired_lease_is_not_live(tmp_path: Path) -> None:
    now = [1000.0]
    clock: Callable[[], float] = lambda: now[0]  # noqa: E731
    store = JsonFileWorkflowStore(tmp_path / "s", lease_ttl_seconds=5, clock=clock)
    store.acquire_lease("r", "me")
    now[0] += 6
    info = store.lease_info("r")
    assert info is not None and not info.live and info.expires_in_seconds == pytest.approx(-1)


def test_runs_why_writes_nothing_to_the_store(
    where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    engine(where).run(run_id="quiet")
    root = Path(where)

    def contents() -> Any:
        if root.is_file():  # SQLite: the rows (closing a connection may fold the WAL in)
            import sqlite3

            db = sqlite3.connect(root)
            try:
                return list(db.iterdump())
            finally:
                db.close()
        return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    before = contents()
    why_cli(capsys, "quiet", where)
    assert contents() == before


def test_hostile_names_and_messages_cannot_steer_the_terminal() -> None:
    from zeroflow import WorkflowError

    snap = waiting_snapshot()
    snap.run_id = "r\x1b[2J"
    snap.status = "failed"
    snap.last_error = WorkflowError("HANDLER_EXCEPTION", "boom\n\x1b[31mred\x07", "n\u202e")
    snap.extra["redrive"] = {"node": "n\x1b]0;title\x07"}
    text = why_run(snap).text()
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert len(text.splitlines()) == 3  # heading, reason, hint: no injected lines
    assert "\\x1b[31mred" in text
    assert why_run(snap).reasons[0].details["error"]["message"] == "boom\n\x1b[31mred\x07"
