"""Which nodes a paused run waits on: a pure reading of its snapshot fields."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import _constants as C

__all__ = ["RESUMING", "child_waits", "waiting_paths"]

RESUMING = "resuming"
"""``snapshot.extra`` key naming the wait being resumed, until its node settles.

A crash between the resume's checkpoint and the node's must not turn the
answered wait back into a new one: the run continues it as resumed.
"""


def waiting_paths(
    status: str, ready_now: list[str], extra: Mapping[str, Any], prompt: str | None
) -> dict[str, str | None]:
    """Every node a paused run waits on, with its prompt.

    A paused subflow whose child waits at several places is listed by the
    paths of those places (``"approve/legal"``), so each can be resumed.
    """
    branch = extra.get("waiting") or {}
    if branch:
        base = {str(k): (v or None) for k, v in branch.items()}
    elif status == C.STATUS_WAITING and ready_now:
        base = {ready_now[0]: prompt}
    else:
        base = {}
    out: dict[str, str | None] = {}
    for name, text in base.items():
        inner = child_waits(extra, name)
        if len(inner) > 1:
            out.update({f"{name}/{k}": v for k, v in inner.items()})
        else:
            out[name] = text
    return out


def child_waits(extra: Mapping[str, Any], node: str) -> dict[str, str | None]:
    """The waits of the paused subflow run by ``node`` (empty when there is none)."""
    child = (extra.get("subflows") or {}).get(node)
    if not child or child.get("status") != C.STATUS_WAITING:
        return {}
    return waiting_paths(
        C.STATUS_WAITING,
        list(child.get("ready_now") or []),
        child.get("zeroflow") or {},
        child.get("waiting_prompt"),
    )
