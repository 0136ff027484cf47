"""Colours shared by every renderer, so Mermaid, DOT and SVG agree."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from zeroflow.viz._overlay import Status


@dataclass(frozen=True, slots=True)
class NodeStyle:
    """How one node box is painted."""

    fill: str
    stroke: str
    text: str
    stroke_width: float = 1.5
    dash: str | None = None


STATUS_STYLES: Mapping[Status, NodeStyle] = {
    "pending": NodeStyle(fill="#f8fafc", stroke="#64748b", text="#0f172a"),
    "succeeded": NodeStyle(fill="#dcfce7", stroke="#16a34a", text="#14532d"),
    "failed": NodeStyle(fill="#fee2e2", stroke="#dc2626", text="#7f1d1d", stroke_width=2.5),
    "waiting": NodeStyle(fill="#fef3c7", stroke="#d97706", text="#78350f", stroke_width=2.5),
    "next": NodeStyle(fill="#dbeafe", stroke="#2563eb", text="#1e3a8a", stroke_width=2.5),
    "not_reached": NodeStyle(
        fill="#f1f5f9", stroke="#cbd5e1", text="#64748b", stroke_width=1.0, dash="4 3"
    ),
}

MERMAID_CLASSES: Mapping[str, Status] = {
    "pending": "pending",
    "active": "next",
    "done": "succeeded",
    "error": "failed",
}
"""The 0.1.0 Mermaid class names and the overlay status whose colours they use."""

_SAFE_VALUE = re.compile(r"^[#A-Za-z0-9(),.%\s-]{1,40}$")


def mermaid_class_def(status: Status) -> str:
    """The Mermaid `classDef` body for a status, e.g. `fill:#dcfce7,stroke:#16a34a,...`."""
    s = STATUS_STYLES[status]
    parts = [f"fill:{s.fill}", f"stroke:{s.stroke}", f"color:{s.text}"]
    parts.append(f"stroke-width:{s.stroke_width:g}px")
    if s.dash:
        parts.append(f"stroke-dasharray:{s.dash}")
    return ",".join(parts)


def apply_css(style: NodeStyle, css: Mapping[str, str]) -> NodeStyle:
    """Apply Mermaid style properties (fill, stroke, color, ...) to a style.

    Values that do not look like a colour or a length are ignored, so a
    hostile diagram cannot inject markup into the SVG.
    """
    for key, raw in css.items():
        value = raw.strip()
        if not _SAFE_VALUE.match(value):
            continue
        if key == "fill":
            style = replace(style, fill=value)
        elif key == "stroke":
            style = replace(style, stroke=value)
        elif key == "color":
            style = replace(style, text=value)
        elif key == "stroke-width":
            try:
                style = replace(style, stroke_width=float(value.removesuffix("px")))
            except ValueError:
                continue
        elif key == "stroke-dasharray":
            style = replace(style, dash=value)
    return style
