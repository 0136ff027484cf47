"""A real browser draws our pages: headless Chromium, no network, no JavaScript needed.

Skipped when Chromium is not installed (CI installs it with apt-get).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pytest

from zeroflow.viz import workflow_to_html
from zeroflow.viz._palette import STATUS_STYLES


def _chromium() -> str | None:
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")


def _run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    assert CHROMIUM is not None
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-extensions",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, timeout=120, check=False)


def _png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit, non-interlaced RGB/RGBA PNG into rows of pixel bytes (stdlib only)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _c, _f, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and colour in (2, 6)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        ftype = raw[start]
        line = bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, channels, rows


def _page(tmp_path: Path) -> Path:
    """A tour page when the engine exists, else the same kind of page from a recorded run."""
    try:
        from zeroflow import WorkflowEngine  # noqa: F401
    except ImportError:
        return _synthetic_page(tmp_path)
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "tour", Path(__file__).resolve().parents[1] / "examples" / "tour.py"
    )
    assert spec is not None and spec.loader is not None
    tour = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tour)
    pages: list[Path] = tour.run_tour(tmp_path / "tour")
    return next(p for p in pages if "06_" in p.name)


def _synthetic_page(tmp_path: Path) -> Path:
    wf: dict[str, Any] = {
        "workflow_name": "checkout",
        "default_entry_node": "cart",
        "default_error_node": "handle_error",
        "nodes": {
            "cart": {"handler": "h", "outputs": {"ok": [{"target_node": "pay"}]}},
            "pay": {
                "handler": "h",
                "outputs": {
                    "ok": [{"target_node": "ship"}],
                    "retry": [{"target_node": "pay", "is_loopback": True}],
                },
            },
            "ship": {"handler": "h", "outputs": {}},
            "handle_error": {"handler": "h", "outputs": {}},
        },
    }
    run = {
        "status": "failed",
        "trace": ["cart", "pay", "pay"],
        "audit_trail": [
            {"node": "cart", "status": "succeeded", "duration_ms": 4.0},
            {"node": "pay", "status": "succeeded", "duration_ms": 9.0},
            {"node": "pay", "status": "failed", "duration_ms": 12.0},
            {"node": "handle_error", "status": "succeeded", "duration_ms": 1.0},
        ],
        "ready_now": [],
        "ready_next_wave": [],
    }
    return workflow_to_html(wf, tmp_path / "checkout.html", run=run)


def test_chromium_renders_the_svg_of_a_page(tmp_path: Path) -> None:
    page = _page(tmp_path)
    url = page.resolve().as_uri()
    dom = _run_chromium(tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr.decode(errors="replace")[-2000:]
    html = dom.stdout.decode()
    assert "<svg" in html and 'class="node"' in html
    shot = tmp_path / "shot.png"
    done = _run_chromium(tmp_path, "--window-size=1000,900", f"--screenshot={shot}", url)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    width, channels, rows = _png_pixels(shot.read_bytes())
    colours: dict[bytes, int] = {}
    for row in rows[::3]:
        for x in range(0, width * channels, channels * 3):
            px = row[x : x + 3]
            colours[px] = colours.get(px, 0) + 1
    assert len(colours) > 20, "the screenshot is blank"
    green = bytes.fromhex(STATUS_STYLES["succeeded"].fill[1:])
    red = bytes.fromhex(STATUS_STYLES["failed"].fill[1:])
    assert colours.get(green, 0) > 30, "no succeeded node was painted"
    assert colours.get(red, 0) > 30, "no failed node was painted"
