"""The console's HTTP server: routing, the checks of every request, and the responses.

``ConsoleApp`` answers one request at a time from any thread (the store and
the catalog are shared, read-only except through ``Actions``);
``ConsoleServer`` is a ``ThreadingHTTPServer`` around it. Routes are fixed
patterns: a path names a run or a workflow by id, never a file.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .._errors import ZeroflowError
from .._models import Event
from .._store import (
    CheckpointInfo,
    EventLogStore,
    HistoryStore,
    LeasingStore,
    WorkflowStore,
)
from .._store_views import LeaseInspectingStore
from ._actions import Actions, Outcome
from ._catalog import Catalog
from ._html import Markup, path_part
from ._layout import CSS, page
from ._listing import DamageLog, RunFilter, fetch_page
from ._pages import (
    login_page,
    message_page,
    runs_page,
    workflow_notes,
    workflow_page,
    workflows_page,
)
from ._run_page import REFRESH_SECONDS, RunView, run_notes, run_page
from ._security import ACCESS_COOKIE, CSRF_COOKIE, Guard, cookies_of, new_secret

__all__ = ["ConsoleApp", "ConsoleServer", "Response"]

MAX_BODY_BYTES = 2 * 1024 * 1024
_MAX_FLASHES = 10_000
_ACTIONS = ("resume", "redrive", "fork", "break-lease")
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True, slots=True)
class Response:
    """What one request gets back."""

    status: int
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Request:
    """The parts of a request the console reads."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    cookies: Mapping[str, str]
    form: Mapping[str, str]


class ConsoleApp:
    """Pages and actions over one store; ``actions`` None makes the console read-only."""

    def __init__(
        self,
        store: WorkflowStore,
        catalog: Catalog,
        guard: Guard,
        actions: Actions | None = None,
        *,
        clock: Callable[[], float] = time.time,
        damage: DamageLog | None = None,
    ) -> None:
        self.store = store
        self.damage = damage
        self._listing = threading.Lock()
        self.catalog = catalog
        self.guard = guard
        self.actions = actions
        self.clock = clock
        self._flash: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ entry

    def handle(self, req: Request) -> Response:
        """Check the request (host, token, CSRF), route it, and never raise."""
        if not self.guard.host_ok(req.headers.get("Host")):
            return self._text(
                HTTPStatus.MISDIRECTED_REQUEST, "This console answers only on its own address."
            )
        if req.path == "/console.css" and req.method == "GET":
            return Response(200, CSS.encode(), "text/css; charset=utf-8")
        if req.path == "/login":
            return self._login(req)
        if not self.guard.authorised(req.headers, req.cookies):
            if req.method == "GET":
                return Response(303, headers=(("Location", "/login"),))
            return self._text(HTTPStatus.UNAUTHORIZED, "The access token is missing or wrong.")
        try:
            if req.method == "GET":
                return self._get(req)
            if req.method == "POST":
                return self._post(req)
            return self._text(HTTPStatus.METHOD_NOT_ALLOWED, "Only GET and POST are served.")
        except ZeroflowError as exc:
            return self._html(500, req, "Store error", message_page("The store refused", str(exc)))

    # ------------------------------------------------------------------ helpers

    def _csrf(self, req: Request) -> tuple[str, tuple[tuple[str, str], ...]]:
        """The session's CSRF token, and the cookie header that sets it when it is new."""
        token = req.cookies.get(CSRF_COOKIE)
        if token and 16 <= len(token) <= 128 and token.isascii():
            return token, ()
        token = new_secret()
        return token, (("Set-Cookie", f"{CSRF_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"),)

    def _html(
        self,
        status: int,
        req: Request,
        title: str,
        body: Markup,
        *,
        notice: tuple[str, str] | None = None,
        refresh: int | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> Response:
        doc = page(
            title, body, read_only=self.actions is None, notice=notice, refresh_seconds=refresh
        )
        return Response(status, doc.encode("utf-8"), headers=headers)

    @staticmethod
    def _text(status: int, text: str) -> Response:
        return Response(int(status), (text + "\n").encode(), "text/plain; charset=utf-8")

    def _not_found(self, req: Request, what: str = "There is no such page.") -> Response:
        return self._html(404, req, "Not found", message_page("Not found", what))

    # ------------------------------------------------------------------ login

    def _login(self, req: Request) -> Response:
        if self.guard.token is None:
            return Response(303, headers=(("Location", "/"),))
        if req.method == "POST":
            if self.guard.token_matches(req.form.get("token")):
                cookie = f"{ACCESS_COOKIE}={self.guard.token}; Path=/; HttpOnly; SameSite=Strict"
                return Response(303, headers=(("Location", "/"), ("Set-Cookie", cookie)))
            return self._html(401, req, "Access token", login_page(failed=True))
        return self._html(200, req, "Access token", login_page(failed=False))

    # ------------------------------------------------------------------ reads

    def _get(self, req: Request) -> Response:
        parts = req.path.split("/")[1:]
        if req.path == "/":
            return self._runs(req)
        if req.path == "/workflows":
            return self._html(200, req, "Workflows", workflows_page(self.catalog))
        if len(parts) == 2 and parts[0] == "workflows" and parts[1]:
            return self._workflow(req, unquote(parts[1]))
        if len(parts) == 2 and parts[0] == "runs" and parts[1]:
            return self._run(req, unquote(parts[1]))
        return self._not_found(req)

    def _runs(self, req: Request) -> Response:
        flt = RunFilter.from_params(req.query)
        damaged: list[tuple[str, str]] = []
        with self._listing:  # one listing at a time: what it skips is recorded for it alone
            if self.damage is not None:
                self.damage.clear()
            result = fetch_page(self.store, flt.query(self.clock()))
            if self.damage is not None:
                damaged = self.damage.items()
        steps: dict[str, int | None] = {}
        if isinstance(self.store, LeasingStore):
            for meta in result.runs:
                if meta.run_id is not None:
                    try:
                        steps[meta.run_id] = self.store.latest_step(meta.run_id)
                    except ZeroflowError:
                        steps[meta.run_id] = None
        body = runs_page(flt, result, steps, self.catalog)
        notice = None
        if damaged:
            listed = "; ".join(f"{run_id}: {why}" for run_id, why in damaged[:20])
            more = f" and {len(damaged) - 20} more" if len(damaged) > 20 else ""
            notice = ("error", f"{len(damaged)} damaged run(s) not listed: {listed}{more}")
        return self._html(200, req, "Runs", body, notice=notice)

    def _run(self, req: Request, run_id: str) -> Response:
        try:
            snap = self.store.load_snapshot(run_id)
        except (KeyError, ValueError, ZeroflowError) as exc:  # no such run, or not a run id
            why = str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc)
            return self._not_found(req, f"No run '{run_id}' can be shown: {why}")
        csrf, set_cookie = self._csrf(req)
        exact = self.catalog.find(snap.workflow_name, snap.wf_hash)
        definition = exact or self.catalog.find(snap.workflow_name)
        events: list[Event] | None = None
        if isinstance(self.store, EventLogStore):
            try:
                events = self.store.events(run_id)
            except KeyError:  # a run with no event yet (a fork that waits)
                events = []
        history: list[CheckpointInfo] | None = None
        if isinstance(self.store, HistoryStore):
            try:
                history = self.store.history(run_id)
            except KeyError:
                history = []
        try:
            events_page = int(req.query.get("events", "1"))
        except ValueError:
            events_page = 1
        view = RunView(
            snapshot=snap,
            definition=definition,
            exact_definition=exact is not None,
            events=events,
            events_page=events_page,
            history=history,
            can_act=self.actions is not None,
            can_break_lease=isinstance(self.store, LeasingStore),
            csrf=csrf,
            notes=run_notes(
                snap,
                lease=self.store.lease_info(run_id)
                if isinstance(self.store, LeaseInspectingStore)
                else None,
                events=(events or [])[-50:],
                definition=None if exact is None else exact.source,
                now=time.time(),
            ),
        )
        with self._lock:
            notice = self._flash.pop(f"{csrf}:{run_id}", None)
        refresh = REFRESH_SECONDS if snap.status == "running" else None
        return self._html(
            200,
            req,
            f"Run {run_id}",
            run_page(view),
            notice=notice,
            refresh=refresh,
            headers=set_cookie,
        )

    def _workflow(self, req: Request, name: str) -> Response:
        from .._lint import lint

        found = self.catalog.find(name)
        if found is None:
            return self._not_found(req, f"No definition of workflow '{name}' is known.")
        return self._html(
            200,
            req,
            f"Workflow {name}",
            workflow_page(found, lint(found.source), workflow_notes(found, self.store)),
        )

    # ------------------------------------------------------------------ actions

    def _post(self, req: Request) -> Response:
        parts = req.path.split("/")[1:]
        if len(parts) != 3 or parts[0] != "runs" or not parts[1] or parts[2] not in _ACTIONS:
            return self._not_found(req)
        if self.actions is None:
            return self._text(
                HTTPStatus.FORBIDDEN,
                "This console is read-only: start `zeroflow ui` with --handlers to act on runs.",
            )
        if not self.guard.csrf_ok(req.cookies, req.form.get("csrf")):
            return self._text(
                HTTPStatus.FORBIDDEN,
                "The form's CSRF token is missing or wrong: reload the run's page and try again.",
            )
        run_id = unquote(parts[1])
        outcome = self._act(parts[2], run_id, req.form)
        with self._lock:
            if len(self._flash) >= _MAX_FLASHES:
                self._flash.clear()
            self._flash[f"{req.cookies[CSRF_COOKIE]}:{outcome.run_id}"] = (
                outcome.kind,
                outcome.text,
            )
        return Response(303, headers=(("Location", "/runs/" + path_part(outcome.run_id)),))

    def _act(self, action: str, run_id: str, form: Mapping[str, str]) -> Outcome:
        from ._forms import FormError, read_payload

        actions = self.actions
        assert actions is not None
        if action == "redrive":
            return actions.redrive(run_id)
        if action == "break-lease":
            return actions.break_lease(run_id)
        if action == "fork":
            try:
                seq = int(form.get("seq", ""))
            except ValueError:
                return Outcome("error", "fork needs the seq of a checkpoint", run_id)
            return actions.fork(run_id, seq)
        node = form.get("node") or None
        try:
            schema = self._resume_schema(run_id, node)
            payload = read_payload(schema, form)
        except FormError as exc:
            return Outcome("error", str(exc), run_id)
        except (KeyError, ZeroflowError) as exc:
            return Outcome("error", str(exc), run_id)
        actor = form.get("actor", "").strip() or None
        return actions.resume(run_id, node, payload, actor)

    def _resume_schema(self, run_id: str, node: str | None) -> Any:
        if node is None or "/" in node:
            return None
        snap = self.store.load_snapshot(run_id)
        found = self.catalog.find(snap.workflow_name, snap.wf_hash)
        spec = found.legacy.get("nodes", {}).get(node) if found is not None else None
        wait = spec.get("wait") if isinstance(spec, Mapping) else None
        return wait.get("resume_schema") if isinstance(wait, Mapping) else None


class _Handler(BaseHTTPRequestHandler):
    server: ConsoleServer
    protocol_version = "HTTP/1.1"
    timeout = 60  # an idle or trickling connection is dropped, its thread freed

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.log is not None:
            self.server.log(format % args)

    def _serve(self, method: str) -> None:
        split = urlsplit(self.path)
        raw = ""
        if method == "POST":
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY_BYTES:
                self.close_connection = True  # the unread body must not be taken for a request
                self._send(
                    ConsoleApp._text(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request too large.")
                )
                return
            raw = self.rfile.read(length).decode("utf-8", "replace")
        try:
            form = dict(parse_qsl(raw, keep_blank_values=True, max_num_fields=200))
            query = dict(parse_qsl(split.query, keep_blank_values=True, max_num_fields=50))
        except ValueError:  # too many fields
            self._send(ConsoleApp._text(HTTPStatus.BAD_REQUEST, "Too many parameters."))
            return
        req = Request(
            method=method,
            path=split.path or "/",
            query=query,
            headers={k: v for k, v in self.headers.items()},
            cookies=cookies_of(self.headers.get("Cookie")),
            form=form,
        )
        try:
            response = self.server.app.handle(req)
        except Exception as exc:  # one broken page must not stop the console
            response = ConsoleApp._text(500, f"unexpected {type(exc).__name__}: {exc}")
        self._send(response)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        headers = {"Content-Type": response.content_type, **SECURITY_HEADERS}
        for key, value in headers.items():
            self.send_header(key, value)
        for key, value in response.headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")


class ConsoleServer(ThreadingHTTPServer):
    """A threaded HTTP server for one ``ConsoleApp``; ``port`` 0 picks a free port."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], app: ConsoleApp, log: Callable[[str], None] | None = None
    ) -> None:
        self.app = app
        self.log = log
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        """Where the console answers, e.g. ``http://127.0.0.1:8765/``."""
        host, port = str(self.server_address[0]), int(self.server_address[1])
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/"
