"""The run console over HTTP: pages, filters and paging, actions, and what it refuses."""

from __future__ import annotations

import html
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from _console import (
    HANDLERS,
    HOSTILE,
    HOSTILE_PROMPT,
    HOSTILE_STATE,
    approval,
    console,
    populate,
    run_path,
    write_workflows,
)
from zeroflow import ConsoleSetupError, RunSnapshot, WorkflowEngine
from zeroflow.console import make_server
from zeroflow.stores import JsonFileWorkflowStore, SqliteWorkflowStore

V010 = Path(__file__).resolve().parent / "fixtures" / "v010"


@pytest.fixture(params=["sqlite", "json"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    made: Any = (
        SqliteWorkflowStore(tmp_path / "runs.sqlite")
        if request.param == "sqlite"
        else JsonFileWorkflowStore(tmp_path / "runs")
    )
    populate(made)
    return made


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_workflows(tmp_path / "workflows")


def _stored(store: Any, run_id: str) -> dict[str, Any]:
    return store.load_snapshot(run_id).to_dict()  # type: ignore[no-any-return]


# ---------------------------------------------------------------------- pages


def test_the_runs_page_lists_every_run_with_status_workflow_node_and_step(
    store: Any, folder: Path
) -> None:
    with console(store, folder) as client:
        page = client.get("/")
    assert page.status == 200
    for run_id in ("wait-1", "wait-2", "evil-1", "fail-1"):
        assert f'href="/runs/{run_id}"' in page.body
    assert "runs 1 to 4 of 4" in page.body
    assert '<span class="badge s-waiting">waiting</span>' in page.body
    assert '<td class="wrap">review</td><td class="num">2</td>' in page.body


@pytest.mark.parametrize(
    ("query", "shown", "hidden"),
    [
        ("status=waiting", ["wait-1", "wait-2", "evil-1"], ["fail-1"]),
        ("status=failed", ["fail-1"], ["wait-1", "evil-1"]),
        ("workflow=approval", ["wait-1", "wait-2"], ["fail-1", "evil-1"]),
        ("q=wait-", ["wait-1", "wait-2"], ["fail-1", "evil-1"]),
        ("q=wait-2", ["wait-2"], ["wait-1"]),
        ("q=%25", [], ["wait-1", "fail-1"]),
        ("due=1", [], ["wait-1", "fail-1"]),
        ("status=bogus&page=-4", ["wait-1", "fail-1"], []),
    ],
)
def test_filters_pick_the_runs_they_name(
    store: Any, folder: Path, query: str, shown: list[str], hidden: list[str]
) -> None:
    with console(store, folder) as client:
        body = client.get("/?" + query).body
    for run_id in shown:
        assert f'href="/runs/{run_id}"' in body
    for run_id in hidden:
        assert f'href="/runs/{run_id}"' not in body


def test_due_lists_unfinished_runs_that_did_not_move_for_an_hour(
    tmp_path: Path, folder: Path
) -> None:
    store = SqliteWorkflowStore(tmp_path / "s.sqlite")
    populate(store)
    old = store.load_snapshot("wait-1")
    old.run_id, old.updated_at = "stale-1", "2020-01-01T00:00:00+00:00"
    store.save_snapshot(old)
    with console(store, folder) as client:
        body = client.get("/?due=1").body
    assert 'href="/runs/stale-1"' in body and 'href="/runs/wait-2"' not in body


def _many(store: Any, count: int) -> None:
    base = RunSnapshot(run_id="x", workflow_name="bulk", wf_hash="0" * 64, status="succeeded")
    for i in range(count):
        base.run_id = f"bulk-{i:04d}"
        base.updated_at = f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}+00:00"
        store.save_snapshot(base)


@pytest.mark.parametrize("kind", ["sqlite", "json"])
def test_paging_walks_every_run_once_newest_first(tmp_path: Path, kind: str) -> None:
    store: Any = (
        SqliteWorkflowStore(tmp_path / "s.sqlite")
        if kind == "sqlite"
        else JsonFileWorkflowStore(tmp_path / "runs")
    )
    _many(store, 120)
    seen: list[str] = []
    with console(store, None) as client:
        for number in (1, 2, 3):
            body = client.get(f"/?workflow=bulk&page={number}").body
            seen += [line.split('"')[0] for line in body.split('href="/runs/')[1:]]
            assert ('rel="next"' in body) is (number < 3)
        assert "runs 101 to 120 of 120" in body
        assert "No runs match" in client.get("/?workflow=bulk&page=9").body
    assert seen == [f"bulk-{i:04d}" for i in range(119, -1, -1)]


def test_a_run_page_shows_picture_audit_state_events_waits_and_checkpoints(
    store: Any, folder: Path
) -> None:
    with console(store, folder, handlers=HANDLERS) as client:
        body = client.get("/runs/wait-1").body
    assert "<svg" in body and "zeroflow-graph" in body
    assert "Audit trail" in body and "prepare" in body
    assert "&quot;prepared&quot;: true" in body
    assert "wf:waiting" in body and "events page 1 of 1" in body
    assert "Approve the order?" in body
    assert 'name="f.approved"' in body and 'name="f.by"' in body and 'name="f.amount"' in body
    assert "fork from here" in body
    assert 'http-equiv="refresh"' not in body
    for tag in ("span", "a ", "div", "form", "input", "label", "table", "tr", "td"):
        assert f"&lt;{tag}" not in body, f"the console's own <{tag}> was escaped"


def test_a_running_run_page_refreshes_itself(tmp_path: Path, folder: Path) -> None:
    store = SqliteWorkflowStore(tmp_path / "s.sqlite")
    populate(store)
    snap = store.load_snapshot("fail-1")
    snap.run_id, snap.status = "moving-1", "running"
    store.save_snapshot(snap)
    with console(store, folder) as client:
        assert 'http-equiv="refresh"' in client.get("/runs/moving-1").body


def test_the_event_log_pages(tmp_path: Path, folder: Path) -> None:
    store = SqliteWorkflowStore(tmp_path / "s.sqlite")
    populate(store)
    for i in range(250):
        from zeroflow import Event

        store.append_event("fail-1", Event("fail-1", 1, 1, "work", "custom", "t", {"i": i}))
    with console(store, folder) as client:
        first = client.get("/runs/fail-1").body
        last = client.get("/runs/fail-1?events=99").body
    assert "events page 1 of 3" in first and "later →" in first
    assert "events page 3 of 3" in last and "earlier" in last and "later →" not in last


def test_hostile_node_names_state_and_prompts_render_as_text(store: Any, folder: Path) -> None:
    with console(store, folder, handlers=HANDLERS) as client:
        run = client.get("/runs/evil-1").body
        runs = client.get("/").body
        wf = client.get("/workflows/" + "hostile%3Cb%3Ewf%3C%2Fb%3E").body
    for body in (run, runs, wf):  # the console writes no script and no <img>, <b> of its own
        assert "<script" not in body and "<img" not in body and "<b>" not in body
    assert html.escape(HOSTILE) in run and html.escape(HOSTILE) in runs
    assert html.escape(HOSTILE_PROMPT) in run
    assert "&lt;/pre&gt;&lt;script&gt;alert(" in run  # the state, shown as text
    assert run.count("</textarea>") == run.count("<textarea")  # the prompt closes no box
    assert '<textarea name="payload"' in run  # no schema: a JSON box
    assert HOSTILE_STATE not in run


def test_a_run_id_full_of_url_and_html_characters_links_and_acts_on_that_run(
    store: Any, folder: Path
) -> None:
    odd = "o'neil & co #1 %41+b;x=1"
    WorkflowEngine(approval(), HANDLERS, store=store).run(run_id=odd)
    with console(store, folder, handlers=HANDLERS) as client:
        listing = client.get("/?status=waiting").body
        href = html.unescape(listing.split('href="/runs/o')[1].split('"')[0])
        page = client.get("/runs/o" + href)
        assert page.status == 200 and html.escape(odd) in page.body
        form = {"csrf": page.csrf(), "node": "review", "fields": "1", "f.approved": "true"}
        reply = client.post("/runs/o" + href + "/resume", {**form, "f.by": "x"})
        assert reply.headers["location"] == "/runs/o" + href
        assert f"run {html.escape(odd)}: succeeded" in client.get(reply.headers["location"]).body
    assert store.load_snapshot(odd).status == "succeeded"


def test_the_workflow_page_shows_picture_and_lint(store: Any, folder: Path) -> None:
    with console(store, folder) as client:
        body = client.get("/workflows/approval").body
        listing = client.get("/workflows").body
    assert "<svg" in body and "Lint" in body and "approval.json" in body
    assert 'href="/workflows/approval"' in listing


def test_a_0_1_0_run_folder_is_listed_and_shown(tmp_path: Path) -> None:
    copy = tmp_path / "v010"
    shutil.copytree(V010, copy)
    store = JsonFileWorkflowStore(copy)
    with console(store, copy) as client:
        runs = client.get("/").body
        run = client.get("/runs/hitl_run")
    assert 'href="/runs/hitl_run"' in runs and 'href="/runs/linear_run"' in runs
    assert run.status == 200 and "<svg" in run.body and "waiting" in run.body


def test_a_damaged_run_is_named_on_the_runs_page_and_the_others_are_listed(
    tmp_path: Path, folder: Path
) -> None:
    from zeroflow.console import DamageLog

    populate(JsonFileWorkflowStore(tmp_path / "runs"))
    (tmp_path / "runs" / "fail-1" / "metadata.json").write_text("{broken", encoding="utf-8")
    damage = DamageLog()
    store = JsonFileWorkflowStore(tmp_path / "runs", on_report=damage.record)
    with console(store, folder, damage=damage) as client:
        body = client.get("/").body
        again = client.get("/").body
    assert 'href="/runs/wait-1"' in body and 'href="/runs/fail-1"' not in body
    assert 'class="notice error"' in body and "1 damaged run(s) not listed: fail-1:" in body
    assert "1 damaged run(s)" in again  # each listing names what it skipped, once


WRITER = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from _console import HANDLERS, approval
from zeroflow import WorkflowEngine
from zeroflow.stores import JsonFileWorkflowStore, SqliteWorkflowStore
where = Path({where!r})
store = SqliteWorkflowStore(where) if where.suffix == ".sqlite" else JsonFileWorkflowStore(where)
engine = WorkflowEngine(approval(), HANDLERS, store=store)
stop = Path({stop!r})
i = 0
while not stop.exists() and i < 400:
    engine.run(run_id=f"live-{{i}}")
    i += 1
    if i == 1:
        print("started", flush=True)
print(i)
"""


@pytest.mark.parametrize("kind", ["sqlite", "json"])
def test_pages_stay_whole_while_another_process_writes_the_store(
    tmp_path: Path, folder: Path, kind: str
) -> None:
    import re
    import subprocess
    import sys

    where = tmp_path / ("s.sqlite" if kind == "sqlite" else "runs")
    store: Any = SqliteWorkflowStore(where) if kind == "sqlite" else JsonFileWorkflowStore(where)
    populate(store)
    stop = tmp_path / "stop"
    code = WRITER.format(tests=str(Path(__file__).parent), where=str(where), stop=str(stop))
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    totals = []
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "started\n"
        with console(store, folder) as client:
            for _ in range(200):
                page = client.get("/")
                assert page.status == 200
                totals.append(int(re.findall(r"of (\d+)</span>", page.body)[0]))
                assert client.get("/?status=waiting&page=2").status == 200
                assert client.get("/runs/wait-1").status == 200
                if len(set(totals)) >= 3:
                    break
    finally:
        stop.touch()
        out, _ = writer.communicate(timeout=120)
    assert writer.returncode == 0 and int(out) > 0
    assert len(set(totals)) >= 2, "the writer never wrote while the console read"
    assert totals == sorted(totals)


def test_the_console_serves_a_postgres_store(request: pytest.FixtureRequest, folder: Path) -> None:
    import uuid

    pytest.importorskip("psycopg", reason="psycopg is a dev dependency (uv sync)")
    from zeroflow.contrib.postgres import PostgresWorkflowStore

    store = PostgresWorkflowStore(
        request.getfixturevalue("postgres_dsn"), schema=f"c_{uuid.uuid4().hex[:12]}"
    )
    try:
        populate(store)
        with console(store, folder, handlers=HANDLERS) as client:
            assert 'href="/runs/fail-1"' not in client.get("/?status=waiting").body
            page = client.get("/runs/wait-1")
            assert page.status == 200 and "<svg" in page.body and "fork from here" in page.body
            form = {"csrf": page.csrf(), "node": "review", "fields": "1", "f.approved": "true"}
            client.post("/runs/wait-1/resume", {**form, "f.by": "pg"})
            assert "run wait-1: succeeded" in client.get("/runs/wait-1").body
        assert store.load_snapshot("wait-1").status == "succeeded"
    finally:
        store.drop_schema()


# ---------------------------------------------------------------------- actions


def test_the_resume_form_resumes_the_wait_and_the_page_shows_the_outcome(
    store: Any, folder: Path
) -> None:
    with console(store, folder, handlers=HANDLERS) as client:
        csrf = client.get("/runs/wait-1").csrf()
        form = {"csrf": csrf, "node": "review", "fields": "1", "f.approved": "true"}
        form |= {"f.by": "lee", "f.level": '"high"', "f.amount": "3", "actor": "lee@example"}
        reply = client.post("/runs/wait-1/resume", form)
        assert reply.status == 303 and reply.headers["location"] == "/runs/wait-1"
        page = client.get("/runs/wait-1").body
    assert 'class="notice ok"' in page and "run wait-1: succeeded" in page
    done = store.load_snapshot("wait-1")
    assert done.status == "succeeded"
    assert done.state.workflow["review"] == {
        "approved": True,
        "by": "lee",
        "level": "high",
        "amount": 3,
    }
    assert done.extra["answers"][0]["actor"] == "lee@example"


def test_a_payload_the_schema_refuses_shows_its_one_line_and_the_run_still_waits(
    store: Any, folder: Path
) -> None:
    with console(store, folder, handlers=HANDLERS) as client:
        csrf = client.get("/runs/wait-1").csrf()
        client.post("/runs/wait-1/resume", {"csrf": csrf, "node": "review", "fields": "1"})
        page = client.get("/runs/wait-1").body
        client.post(
            "/runs/wait-1/resume",
            {"csrf": csrf, "node": "review", "fields": "1", "f.amount": "two"},
        )
        bad_number = client.get("/runs/wait-1").body
    assert 'class="notice error"' in page and "does not match its resume_schema" in page
    assert "is not a whole number" in bad_number
    assert store.load_snapshot("wait-1").status == "waiting"


def test_the_json_box_resumes_a_wait_without_schema_and_refuses_bad_json(
    store: Any, folder: Path
) -> None:
    with console(store, folder, handlers=HANDLERS) as client:
        csrf = client.get("/runs/evil-1").csrf()
        path = "/runs/evil-1/resume"
        client.post(path, {"csrf": csrf, "node": HOSTILE, "payload": "{nope"})
        refused = client.get("/runs/evil-1").body
        client.post(path, {"csrf": csrf, "node": HOSTILE, "payload": '{"ok": "<i>yes</i>"}'})
        done = client.get("/runs/evil-1").body
    assert "not valid JSON" in refused
    assert "run evil-1: succeeded" in done
    assert store.load_snapshot("evil-1").state.workflow["answer"] == {"ok": "<i>yes</i>"}


def test_redrive_fork_and_break_lease_act_through_the_engine(store: Any, folder: Path) -> None:
    import _console

    with console(store, folder, handlers=HANDLERS) as client:
        csrf = client.get("/runs/fail-1").csrf()
        _console.FIXED["value"] = True
        reply = client.post("/runs/fail-1/redrive", {"csrf": csrf})
        assert "run fail-1: succeeded" in client.get(reply.headers["location"]).body
        seq = store.history("wait-1")[-1].seq
        reply = client.post("/runs/wait-1/fork", {"csrf": csrf, "seq": str(seq)})
        forked = reply.headers["location"].removeprefix("/runs/")
        assert (
            forked != "wait-1"
            and "forked from checkpoint" in client.get(reply.headers["location"]).body
        )
        store.acquire_lease("wait-2", "someone-else")
        client.post("/runs/wait-2/break-lease", {"csrf": csrf})
        assert "lease broken" in client.get("/runs/wait-2").body
    assert store.load_snapshot("fail-1").status == "succeeded"
    assert store.load_snapshot(forked).extra["forked_from"]["run_id"] == "wait-1"
    store.acquire_lease("wait-2", "me")  # free again: the break took


def test_two_people_resuming_one_wait_at_once_resume_it_once(store: Any, folder: Path) -> None:
    import _console

    with (
        console(store, folder, handlers=HANDLERS) as first,
        console(store, folder, handlers=HANDLERS) as second,
    ):
        clients = (first, second)
        forms = []
        for client in clients:
            csrf = client.get("/runs/wait-1").csrf()
            forms.append({"csrf": csrf, "node": "review", "fields": "1", "f.approved": "true"})
        _console.FINISHED.clear()
        gate = threading.Barrier(2)

        def press(i: int) -> None:
            gate.wait()
            clients[i].post("/runs/wait-1/resume", {**forms[i], "f.by": f"person-{i}"})

        threads = [threading.Thread(target=press, args=(i,)) for i in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        pages = [client.get("/runs/wait-1").body for client in clients]
    assert _console.FINISHED == ["wait-1"]  # the node after the wait ran once
    assert sum('class="notice ok"' in page for page in pages) == 1
    assert sum('class="notice error"' in page for page in pages) == 1
    answers = store.load_snapshot("wait-1").extra.get("answers") or []
    assert len(answers) <= 1


def test_an_action_on_a_run_without_its_definition_says_so(store: Any, tmp_path: Path) -> None:
    with console(store, tmp_path, handlers=HANDLERS) as client:
        csrf = client.get("/runs/wait-1").csrf()
        client.post("/runs/wait-1/resume", {"csrf": csrf, "node": "review", "payload": "{}"})
        body = client.get("/runs/wait-1").body
    assert "no definition of workflow &#x27;approval&#x27;" in body
    assert store.load_snapshot("wait-1").status == "waiting"


# ---------------------------------------------------------------------- refusals


@pytest.mark.parametrize("csrf", [None, "", "wrong-token-wrong-token", "x" * 64])
def test_a_post_without_the_sessions_csrf_token_is_403_and_changes_nothing(
    store: Any, folder: Path, csrf: str | None
) -> None:
    before = _stored(store, "wait-1")
    with console(store, folder, handlers=HANDLERS) as client:
        client.get("/runs/wait-1")  # the session's cookie is set
        form = {"node": "review", "payload": '{"approved": true, "by": "x"}'}
        if csrf is not None:
            form["csrf"] = csrf
        for action in ("resume", "redrive", "break-lease"):
            reply = client.post(f"/runs/wait-1/{action}", form)
            assert reply.status == 403 and "CSRF" in reply.body
        fresh = client.get("/runs/wait-1").csrf()
        stranger = client.post(
            "/runs/wait-1/resume", {**form, "csrf": fresh}, cookies=False
        )  # the field alone, without the cookie
        assert stranger.status == 403
    assert _stored(store, "wait-1") == before


def test_a_read_only_console_refuses_every_post_and_says_it_is_read_only(
    store: Any, folder: Path
) -> None:
    before = _stored(store, "wait-1")
    with console(store, folder) as client:
        page = client.get("/runs/wait-1").body
        for action in ("resume", "redrive", "fork", "break-lease"):
            reply = client.post(f"/runs/wait-1/{action}", {"csrf": "anything"})
            assert reply.status == 403 and "read-only" in reply.body
    assert "read-only" in page and '<form method="post"' not in page
    assert "fork from here" not in page
    assert _stored(store, "wait-1") == before


def test_a_non_loopback_host_without_a_token_is_refused(store: Any) -> None:
    for host in ("0.0.0.0", "192.168.1.10", "example.com"):
        with pytest.raises(ConsoleSetupError, match="access token"):
            make_server(store, host=host, port=0)
    with pytest.raises(ConsoleSetupError, match="16 printable"):
        make_server(store, port=0, token="short")


def test_with_a_token_every_request_needs_it(store: Any, folder: Path) -> None:
    token = "t0ken-" + "a" * 20
    with console(store, folder, token=token, handlers=HANDLERS) as client:
        assert client.get("/").status == 303  # to the login form
        assert client.get("/runs/wait-1").headers["location"] == "/login"
        assert client.post("/runs/wait-1/redrive", {"csrf": "x"}).status == 401
        assert client.get("/", headers={"Authorization": "Bearer nope"}).status == 303
        assert client.get("/", headers={"Authorization": f"Bearer {token}"}).status == 200
        assert client.post("/login", {"token": "wrong"}).status == 401
        assert client.get("/").status == 303
        assert client.post("/login", {"token": token}).status == 303
        assert client.get("/").status == 200  # the login cookie now
        assert client.get("/", cookies=False).status == 303


def test_a_request_for_another_host_name_is_refused(store: Any, folder: Path) -> None:
    with console(store, folder) as client:
        assert client.get("/", headers={"Host": "evil.example:80"}).status == 421
        assert client.get("/", headers={"Host": f"localhost:{client.port}"}).status == 200


@pytest.mark.parametrize(
    "path",
    [
        "/../../etc/passwd",
        "/runs/..%2F..%2Fetc%2Fpasswd",
        "/runs/../../etc/passwd",
        "/runs/%2e%2e",
        "/workflows/..%2Fapproval.json",
        "/workflows/approval.json",
        "/console.css/../../etc/passwd",
        "/static/approval.json",
        "/runs/wait-1/../../../etc/passwd",
        "/runs/wait-1/snapshot.json",
        "/etc/passwd",
    ],
)
def test_path_traversal_attempts_are_404(store: Any, folder: Path, path: str) -> None:
    with console(store, folder) as client:
        reply = client.get(path)
    assert reply.status == 404
    assert "root:" not in reply.body and "workflow_name" not in reply.body


def test_too_many_parameters_or_a_huge_body_is_refused(store: Any, folder: Path) -> None:
    with console(store, folder, handlers=HANDLERS) as client:
        many = "&".join(f"p{i}=1" for i in range(200))
        assert client.get("/?" + many).status == 400
        assert client.post("/runs/wait-1/redrive", {f"f{i}": "x" for i in range(500)}).status == 400
        huge = client.request(
            "POST", "/runs/wait-1/redrive", headers={"Content-Length": str(10**9)}
        )
        assert huge.status == 413
        assert client.get("/").status == 200  # still serving


def test_responses_forbid_scripts_framing_and_sniffing(store: Any, folder: Path) -> None:
    with console(store, folder) as client:
        reply = client.get(run_path("wait-1"))
    assert "default-src 'none'" in reply.headers["content-security-policy"]
    assert "script-src" not in reply.headers["content-security-policy"]
    assert reply.headers["x-frame-options"] == "DENY"
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert (
        "HttpOnly" in reply.headers["set-cookie"]
        and "SameSite=Strict" in reply.headers["set-cookie"]
    )


def test_a_run_page_says_why_the_run_is_not_moving(store: Any, folder: Path) -> None:
    with console(store, folder) as client:
        body = client.get("/runs/wait-1").body
    # why_run's reasons, with their hints: the wait and what would answer it
    assert "waits for an answer" in body and "Approve the order?" in body
    assert "runs resume wait-1" in html.unescape(body)


def test_the_workflow_page_explains_the_workflow_and_shows_its_stats(
    store: Any, folder: Path
) -> None:
    with console(store, folder) as client:
        body = html.unescape(client.get("/workflows/approval").body)
    assert "Workflow `approval`" in body and "It starts at" in body
    assert '"runs_by_status"' in body or '"by_status"' in body
