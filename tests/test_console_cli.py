"""``zeroflow ui``: starts the console over a store, and refuses what it cannot serve safely."""

from __future__ import annotations

import http.client
import threading
from pathlib import Path

import pytest

from _console import populate, write_workflows
from zeroflow._cli import main
from zeroflow.console import ConsoleServer
from zeroflow.stores import JsonFileWorkflowStore


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str]]:
    """``serve_forever`` answers one ``GET /`` for real, then stops as Ctrl-C would."""
    seen: list[tuple[int, str]] = []
    original = ConsoleServer.serve_forever

    def once(self: ConsoleServer, poll_interval: float = 0.5) -> None:
        thread = threading.Thread(target=original, args=(self,))
        thread.start()
        try:
            conn = http.client.HTTPConnection(*self.server_address[:2], timeout=30)
            conn.request("GET", "/")
            reply = conn.getresponse()
            seen.append((reply.status, reply.read().decode()))
            conn.close()
        finally:
            self.shutdown()
            thread.join(10)
        raise KeyboardInterrupt

    monkeypatch.setattr(ConsoleServer, "serve_forever", once)
    return seen


def _store(tmp_path: Path) -> Path:
    folder = tmp_path / "runs"
    populate(JsonFileWorkflowStore(folder))
    return folder


def test_ui_serves_the_store_read_only_without_handlers(
    tmp_path: Path, served: list[tuple[int, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    store = _store(tmp_path)
    wf = write_workflows(tmp_path / "wf")
    code = main(["ui", "--store", str(store), "--workflows", str(wf), "--port", "0", "--quiet"])
    out = capsys.readouterr().out
    assert code == 130  # stopped by the (simulated) Ctrl-C
    assert "zeroflow console at http://127.0.0.1:" in out and "read-only" in out
    assert "access token" not in out
    status, body = served[0]
    assert status == 200 and 'href="/runs/wait-1"' in body and "read-only" in body


def test_ui_off_loopback_generates_and_prints_a_token_and_requires_it(
    tmp_path: Path, served: list[tuple[int, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["ui", "--store", str(_store(tmp_path)), "--host", "0.0.0.0", "--port", "0"])
    out = capsys.readouterr().out
    assert code == 130
    token = out.split("access token: ", 1)[1].split()[0]
    assert len(token) >= 24
    assert served[0][0] == 303  # no token, no page: to the login form


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--token", "short"], "at least 16 printable"),
        (["--workflows", "missing-dir"], "is not a folder"),
        (["--handlers", "no_colon"], "MODULE:ATTR"),
        (["--handlers", "no_such_module_zf:H"], "cannot import the --handlers module"),
    ],
)
def test_ui_refuses_bad_options_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    store = _store(tmp_path)
    assert main(["ui", "--store", str(store), "--port", "0", *extra]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_ui_on_a_missing_store_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ui", "--store", str(tmp_path / "nope")]) == 1
    assert "does not exist" in capsys.readouterr().err
