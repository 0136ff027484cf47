"""Drive headless Chromium over the DevTools protocol on a pipe (stdlib only).

Chromium started with ``--remote-debugging-pipe`` reads protocol messages
on its fd 3 and writes on its fd 4, each a JSON object ended by a NUL byte;
no websocket and no network port is needed. The browser runs with a fresh
profile and every background service off (the network here is closed).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-extensions",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)
TIMEOUT_SECONDS = 60.0
"""How long to wait for the browser's answer: a hang fails the test, it never races it."""


def chromium() -> str | None:
    """The system's Chromium, or None."""
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


class BrowserError(RuntimeError):
    """The browser answered with an error, or did not answer in time."""


class Browser:
    """One Chromium process and one page (tab) in it."""

    def __init__(self, profile: Path) -> None:
        exe = chromium()
        if exe is None:
            raise BrowserError("Chromium is not installed")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # A small Python launcher puts our pipe ends at fds 3 and 4 (moving both out of
        # the way first, so neither clobbers the other) and becomes Chromium.
        launcher = (
            "import os, sys\n"
            "r, w = (os.dup(int(fd)) for fd in sys.argv[1:3])\n"
            "os.dup2(r, 3)\nos.dup2(w, 4)\n"
            "for fd in (3, 4):\n    os.set_inheritable(fd, True)\n"
            "os.execv(sys.argv[3], sys.argv[3:])\n"
        )
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                launcher,
                str(to_child_r),
                str(from_child_w),
                exe,
                *FLAGS,
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            pass_fds=(to_child_r, from_child_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        try:
            target = self.call("Target.createTarget", url="about:blank")["targetId"]
            attached = self.call("Target.attachToTarget", targetId=target, flatten=True)
            self.session = attached["sessionId"]
            self.send("Page.enable")
            self.send("Runtime.enable")
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ protocol

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("the browser did not answer in time")
            ready, _, _ = select.select([self._from_child], [], [], left)
            if ready:
                chunk = os.read(self._from_child, 1 << 20)
                if not chunk:
                    raise BrowserError("the browser closed its pipe (it exited)")
                self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        message: dict[str, Any] = json.loads(raw)
        return message

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command and return its result (events meanwhile are kept)."""
        self._next_id += 1
        ident = self._next_id
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == ident:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            if "method" in reply:
                self._events.append(reply)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """A command to the page."""
        return self.call(method, self.session, **params)

    def wait_event(self, method: str) -> dict[str, Any]:
        """The next event ``method`` of the page (one already received counts)."""
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while True:
            for i, event in enumerate(self._events):
                if event.get("method") == method:
                    del self._events[: i + 1]
                    return event
            self._events.clear()
            message = self._read_message(deadline)
            if "method" in message:
                self._events.append(message)

    # ------------------------------------------------------------------ page

    def open(self, url: str) -> None:
        """Load ``url`` and wait until it has loaded."""
        self._events.clear()
        self.send("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (DevTools, not the page's CSP)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r}: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def click_and_wait(self, selector: str) -> None:
        """Click the element and wait for the page that the click loads."""
        self._events.clear()
        found = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return false; e.click(); return true; })()"
        )
        if not found:
            raise BrowserError(f"no element matches {selector!r}")
        self.wait_event("Page.loadEventFired")

    def screenshot(self, path: Path, width: int = 1280) -> bytes:
        """A PNG of the whole page at ``width`` CSS pixels, written to ``path``."""
        height = int(self.evaluate("document.documentElement.scrollHeight") or 800)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=min(max(height, 400), 4000),
            deviceScaleFactor=1,
            mobile=False,
        )
        data = base64.b64decode(
            self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return data

    def close(self) -> None:
        """Close the browser and its pipes."""
        with contextlib.suppress(BrowserError, OSError):
            self.call("Browser.close")
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)
        for fd in (self._to_child, self._from_child):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
