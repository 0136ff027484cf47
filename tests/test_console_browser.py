"""The run console in a real browser: headless Chromium driven over the DevTools pipe.

Skipped only when Chromium is missing outside CI; with ``CI=true`` it must run.
``ZEROFLOW_SCREENSHOTS=DIR`` writes the runs page and a run page there
(``console-runs.png``, ``console-run.png``; docs/img keeps the committed ones).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from _cdp import Browser, chromium
from _console import HANDLERS, HOSTILE, approval, populate, serving, write_workflows
from zeroflow import WorkflowEngine
from zeroflow.console import make_server
from zeroflow.stores import SqliteWorkflowStore

pytestmark = pytest.mark.skipif(
    chromium() is None and os.environ.get("CI") != "true",
    reason="Chromium is not installed (CI installs it; there this test must run)",
)

PNG = b"\x89PNG\r\n\x1a\n"


def _store(path: Path) -> SqliteWorkflowStore:
    store = SqliteWorkflowStore(path)
    populate(store)
    engine = WorkflowEngine(approval(), HANDLERS, store=store)
    for i in range(3):  # a few finished runs, so the table shows every status colour
        engine.run(run_id=f"order-{i}")
        engine.resume(f"order-{i}", resume_input={"approved": i != 1, "by": "sam"})
    return store


def _text(browser: Browser, selector: str) -> Any:
    return browser.evaluate(
        f"Array.from(document.querySelectorAll({json.dumps(selector)}), e => e.textContent)"
    )


def test_a_person_filters_opens_a_waiting_run_and_resumes_it_in_chromium(tmp_path: Path) -> None:
    store = _store(tmp_path / "runs.sqlite")
    shots = Path(os.environ.get("ZEROFLOW_SCREENSHOTS") or tmp_path / "shots")
    server = make_server(
        store, handlers=HANDLERS, workflows=write_workflows(tmp_path / "wf"), port=0
    )
    with serving(server), Browser(tmp_path / "profile") as browser:
        browser.open(server.url)
        assert "wait-1" in _text(browser, "table.runs td a")
        assert browser.screenshot(shots / "console-runs.png")[:8] == PNG

        # filter: only the waiting runs
        browser.evaluate("document.querySelector('select[name=status]').value = 'waiting'")
        browser.click_and_wait("form.filters button[type=submit]")
        listed = _text(browser, "table.runs td:first-child a")
        assert set(listed) == {"wait-1", "wait-2", "evil-1"}
        assert browser.evaluate("location.search") == "?q=&workflow=&status=waiting"

        # a hostile node name is text: no script element, the name shown as written
        browser.click_and_wait("a[href='/runs/evil-1']")
        assert browser.evaluate("document.scripts.length") == 0
        assert HOSTILE in _text(browser, ".wait strong")
        assert browser.evaluate("document.title") == "Run evil-1 · zeroflow"

        # a waiting run with a typed form
        browser.open(server.url + "runs/wait-2")
        assert browser.screenshot(shots / "console-run.png")[:8] == PNG
        browser.open(server.url + "?status=waiting")
        browser.click_and_wait("a[href='/runs/wait-1']")
        assert "Approve the order?" in _text(browser, ".wait .prompt")
        browser.evaluate(
            "document.querySelector('input[name=\"f.approved\"]').checked = true;"
            "document.querySelector('input[name=\"f.by\"]').value = 'lee';"
            "document.querySelector('input[name=\"actor\"]').value = 'lee@example.com'"
        )
        browser.click_and_wait(".wait form button[type=submit]")
        assert browser.evaluate("location.pathname") == "/runs/wait-1"
        notice = _text(browser, ".notice")
        assert notice and "run wait-1: succeeded" in notice[0]
        assert _text(browser, ".grid .badge") == ["succeeded"]
    done = store.load_snapshot("wait-1")
    assert done.status == "succeeded" and done.state.workflow["review"]["by"] == "lee"
