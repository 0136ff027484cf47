"""Small pieces the console's pages share: status badges, links, durations, form fields."""

from __future__ import annotations

from datetime import datetime

from ._html import Markup, fill, path_part

__all__ = [
    "badge",
    "csrf_field",
    "duration",
    "run_href",
    "seconds_between",
    "short",
    "workflow_href",
]


def badge(status: str) -> Markup:
    """A run or step status as a coloured badge."""
    return fill('<span class="badge s-{s}">{s}</span>', s=status)


def run_href(run_id: str | None) -> str:
    """The path of a run's page (the id percent-encoded as one segment)."""
    return "/runs/" + path_part(run_id or "")


def workflow_href(name: str) -> str:
    """The path of a workflow's page."""
    return "/workflows/" + path_part(name)


def seconds_between(start: str | None, end: str | None) -> float | None:
    """Seconds from one ISO-8601 time to another; None when either is missing or unreadable."""
    if not start or not end:
        return None
    try:
        return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except ValueError:
        return None


def duration(seconds: float | None) -> str:
    """A duration for people (``"42 s"``, ``"3 min 5 s"``, ``"2 h 10 min"``); ``-`` for none."""
    if seconds is None or seconds < 0:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:.0f} min"


def csrf_field(csrf: str) -> Markup:
    """The hidden form field that carries the session's CSRF token."""
    return fill('<input type="hidden" name="csrf" value="{c}">', c=csrf)


def short(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was."""
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} chars)"
