"""Helpers of the run console's tests: workflows with hostile names, a store of runs, a client."""

from __future__ import annotations

import http.client
import json
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from zeroflow import HandlerResult, WorkflowContext, WorkflowEngine
from zeroflow.console import ConsoleServer, make_server

HOSTILE = '<script>alert("node")</script>'
HOSTILE_PROMPT = "<img src=x onerror=alert(1)> approve & </textarea>"
HOSTILE_STATE = "</pre><script>alert('state')</script>"

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["approved", "by"],
    "properties": {
        "approved": {"type": "boolean"},
        "by": {"type": "string", "minLength": 1},
        "level": {"enum": ["low", "high"]},
        "amount": {"type": "integer"},
    },
    "additionalProperties": False,
}


def approval() -> dict[str, Any]:
    """prepare -> review (a wait with a resume_schema) -> done."""
    return {
        "workflow_name": "approval",
        "default_entry_node": "prepare",
        "nodes": {
            "prepare": {"handler": "prepare", "outputs": {"ok": [{"target_node": "review"}]}},
            "review": {
                "kind": "wait",
                "wait": {
                    "prompt": "Approve the order?",
                    "resume_as": "review",
                    "resume_schema": SCHEMA,
                },
                "outputs": {"ok": [{"target_node": "done"}]},
            },
            "done": {"handler": "finish", "outputs": {}},
        },
    }


def hostile() -> dict[str, Any]:
    """A wait node whose name, prompt and the state it leaves are markup."""
    return {
        "workflow_name": "hostile<b>wf</b>",
        "default_entry_node": "start",
        "nodes": {
            "start": {"handler": "poison", "outputs": {"ok": [{"target_node": HOSTILE}]}},
            HOSTILE: {
                "kind": "wait",
                "wait": {"prompt": HOSTILE_PROMPT, "resume_as": "answer"},
                "outputs": {"ok": []},
            },
        },
    }


def flaky() -> dict[str, Any]:
    """One node that fails until the state says ``fixed``."""
    return {
        "workflow_name": "flaky",
        "default_entry_node": "work",
        "nodes": {"work": {"handler": "work", "outputs": {}}},
    }


FIXED = {"value": False}


def prepare(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"], workflow_updates={"prepared": True})


FINISHED: list[str] = []


def finish(ctx: WorkflowContext) -> HandlerResult:
    FINISHED.append(ctx.run_id)
    return HandlerResult(outputs=[], workflow_updates={"finished": True})


def poison(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"], workflow_updates={"evil": HOSTILE_STATE})


def work(ctx: WorkflowContext) -> HandlerResult:
    if not FIXED["value"]:
        raise RuntimeError("the <disk> is full")
    return HandlerResult(outputs=[])


HANDLERS = {"prepare": prepare, "finish": finish, "poison": poison, "work": work}


def write_workflows(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, defn in (("approval", approval()), ("hostile", hostile()), ("flaky", flaky())):
        (folder / f"{name}.json").write_text(json.dumps(defn), encoding="utf-8")
    return folder


def populate(store: Any) -> None:
    """Runs: two waiting approvals, one hostile waiting run, one failed flaky run."""
    FIXED["value"] = False
    for run_id in ("wait-1", "wait-2"):
        WorkflowEngine(approval(), HANDLERS, store=store).run(run_id=run_id)
    WorkflowEngine(hostile(), HANDLERS, store=store).run(run_id="evil-1")
    WorkflowEngine(flaky(), HANDLERS, store=store).run(run_id="fail-1")


@contextmanager
def serving(server: ConsoleServer) -> Iterator[ConsoleServer]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def console(store: Any, folder: Path | None, **options: Any) -> Iterator[Client]:
    options.setdefault("port", 0)
    server = make_server(store, workflows=folder, **options)
    with serving(server):
        yield Client(server)


class Reply:
    def __init__(self, status: int, headers: Mapping[str, str], body: str) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def csrf(self) -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', self.body)
        assert found, "the page has no CSRF field"
        return found.group(1)


class Client:
    """A tiny HTTP client of one console that keeps its cookies."""

    def __init__(self, server: ConsoleServer) -> None:
        self.host, self.port = str(server.server_address[0]), int(server.server_address[1])
        self.cookies: dict[str, str] = {}

    def request(
        self,
        method: str,
        path: str,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        cookies: bool = True,
    ) -> Reply:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        sent = dict(headers or {})
        if cookies and self.cookies:
            sent.setdefault("Cookie", "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        body = None
        if form is not None:
            body = urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=sent)
            resp = conn.getresponse()
            text = resp.read().decode("utf-8")
            for key, value in resp.getheaders():
                if key.lower() == "set-cookie":
                    name, _, rest = value.partition("=")
                    self.cookies[name] = rest.split(";", 1)[0]
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, text)
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, form: Mapping[str, str], **kw: Any) -> Reply:
        return self.request("POST", path, form=form, **kw)


def run_path(run_id: str) -> str:
    return "/runs/" + quote(run_id, safe="")
