"""The page of one run: facts, notes, waits with resume forms, picture, audit, state, events.

``run_page`` is a pure function of a ``RunView`` (what the server read from the
store and the catalog); every value from the run is escaped. ``run_notes`` is
the one place where other explanations of a run (why it is not moving, a
wait's deadline and resume-token link) are shown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._models import Event, RunSnapshot, StepRecord
from .._run.waits import waiting_paths
from .._store import CheckpointInfo
from .._store_views import LeaseInfo
from ._catalog import Definition
from ._forms import resume_fields
from ._html import Markup, fill, join
from ._parts import badge, csrf_field, duration, run_href, seconds_between, short, workflow_href

__all__ = ["EVENTS_PER_PAGE", "REFRESH_SECONDS", "RunView", "run_notes", "run_page"]

EVENTS_PER_PAGE = 100
MAX_STATE_CHARS = 200_000
REFRESH_SECONDS = 3


@dataclass(frozen=True, slots=True)
class RunView:
    """What the run page shows, read by the server from the store and the catalog."""

    snapshot: RunSnapshot
    definition: Definition | None
    exact_definition: bool
    events: Sequence[Event] | None
    events_page: int
    history: Sequence[CheckpointInfo] | None
    can_act: bool
    can_break_lease: bool
    csrf: str
    notes: Sequence[tuple[str, str]] = field(default_factory=tuple)
    """Lines of other explanations (``run_notes``) as (title, text)."""


def run_notes(
    snapshot: RunSnapshot,
    *,
    lease: LeaseInfo | None = None,
    events: Sequence[Event] = (),
    definition: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> list[tuple[str, str]]:
    """Why the run is where it is (``zeroflow runs why``), as (kind, text) lines on its page.

    Its waits with their deadlines and open tokens, a retry, the lease and its
    holder, another definition, a stranded join, a failure and whether a
    redrive continues it: each reason of ``why_run`` with its hint.
    """
    from .._errors import WorkflowDefinitionError
    from .._why import why_run

    try:
        why = why_run(snapshot, lease=lease, events=events, definition=definition, now=now)
    except WorkflowDefinitionError:
        why = why_run(snapshot, lease=lease, events=events, now=now)
    notes: list[tuple[str, str]] = []
    for reason in why.reasons:
        text = reason.text if reason.hint is None else f"{reason.text} ({reason.hint})"
        notes.append((reason.kind, text))
    return notes


def _wait_deadline(snapshot: RunSnapshot, path: str) -> str | None:
    """When the wait at ``path`` times out (its timer in ``extra["timers"]``), as UTC text."""
    from .._timers import iso_of, node_timer

    timer = node_timer(snapshot.extra, path)
    if timer is None:
        return None
    try:
        return iso_of(timer[0])
    except (OverflowError, OSError, ValueError):
        return None


def _picture(view: RunView) -> Markup:
    from .. import viz

    if view.definition is None:
        return Markup(
            '<p class="muted">No definition of this workflow is known: start the console '
            "with <code>--workflows DIR</code> holding it to see its picture.</p>"
        )
    try:
        svg = viz.workflow_to_svg(view.definition.legacy, run=view.snapshot)
    except Exception as exc:  # a picture that cannot be drawn must not hide the rest
        return fill('<p class="muted">The picture cannot be drawn: {e}</p>', e=exc)
    note = (
        Markup("")
        if view.exact_definition
        else fill(
            '<p class="notice info">Drawn from {file}, whose hash differs from the run\'s.</p>',
            file=view.definition.file,
        )
    )
    return fill('{note}<div class="picture">{svg}</div>', note=note, svg=Markup(svg))


def _retries(events: Sequence[Event] | None) -> dict[str, list[int]]:
    """Per node, the number of retries of each of its visits, in order (from the event log)."""
    out: dict[str, list[int]] = {}
    pending: dict[str, int] = {}
    for event in events or ():
        node = event.node or ""
        if event.kind == "node:start":
            pending[node] = 0
        elif event.kind == "node:retry":
            pending[node] = pending.get(node, 0) + 1
        elif event.kind in ("node:end", "node:error", "wf:waiting") and node in pending:
            out.setdefault(node, []).append(pending.pop(node))
    return out


def _audit(records: Sequence[StepRecord], events: Sequence[Event] | None) -> Markup:
    if not records:
        return Markup('<p class="muted">No node has run yet.</p>')
    retries = _retries(events)
    seen: dict[str, int] = {}
    rows = []
    for rec in records:
        visit = seen.get(rec.node, 0)
        seen[rec.node] = visit + 1
        counts = retries.get(rec.node, [])
        tries = counts[visit] if visit < len(counts) else None
        error = f"{rec.error.code}: {rec.error.message}" if rec.error is not None else ""
        rows.append(
            fill(
                '<tr><td class="num">{step}</td><td class="num">{wave}</td><td class="wrap">{node}'
                '</td><td>{badge}</td><td class="num">{ms}</td><td class="num">{retries}</td>'
                '<td class="wrap">{outputs}</td><td class="wrap">{error}</td>'
                '<td class="ts">{ts}</td></tr>',
                step=rec.step,
                wave=rec.wave,
                node=rec.node,
                badge=badge(rec.status),
                ms="-" if rec.duration_ms is None else f"{rec.duration_ms:.1f} ms",
                retries="-" if tries is None else tries,
                outputs=", ".join(rec.outputs),
                error=error,
                ts=rec.ts,
            )
        )
    return fill(
        "<table><thead><tr><th>Step</th><th>Wave</th><th>Node</th><th>Status</th>"
        "<th>Duration</th><th>Retries</th><th>Outputs</th><th>Error</th><th>At</th></tr>"
        "</thead><tbody>{rows}</tbody></table>",
        rows=join(rows),
    )


def _waits(view: RunView) -> Markup:
    snap = view.snapshot
    waits = waiting_paths(snap.status, snap.ready_now, snap.extra, snap.waiting_prompt)
    if snap.status != "waiting" or not waits:
        return Markup("")
    cards = []
    for path, prompt in waits.items():
        schema = None
        if view.definition is not None and "/" not in path:
            node = view.definition.legacy.get("nodes", {}).get(path)
            wait = node.get("wait") if isinstance(node, Mapping) else None
            schema = wait.get("resume_schema") if isinstance(wait, Mapping) else None
        deadline = _wait_deadline(snap, path)
        form = (
            fill(
                '<form method="post" action="{action}">{csrf}'
                '<input type="hidden" name="node" value="{node}">{fields}'
                '<label>Answered by (optional)<input name="actor" maxlength="200"></label>'
                '<div><button type="submit">Resume {node}</button></div></form>',
                action=run_href(snap.run_id) + "/resume",
                csrf=csrf_field(view.csrf),
                node=path,
                fields=resume_fields(schema),
            )
            if view.can_act
            else Markup('<p class="muted">Read-only console: no resume form.</p>')
        )
        cards.append(
            fill(
                '<div class="card wait"><div><strong class="wrap">{node}</strong></div>'
                '<p class="prompt wrap">{prompt}</p>{deadline}{form}</div>',
                node=path,
                prompt=prompt if prompt is not None else "(no prompt)",
                deadline=fill('<p class="muted">deadline: {d}</p>', d=deadline)
                if deadline
                else Markup(""),
                form=form,
            )
        )
    return fill("<h2>Waiting</h2>{cards}", cards=join(cards))


def _events(view: RunView) -> Markup:
    if view.events is None:
        return Markup('<p class="muted">This store cannot list events.</p>')
    events = view.events
    pages = max(1, -(-len(events) // EVENTS_PER_PAGE))
    number = min(max(view.events_page, 1), pages)
    window = events[(number - 1) * EVENTS_PER_PAGE : number * EVENTS_PER_PAGE]
    rows = join(
        fill(
            '<tr><td class="num">{i}</td><td class="ts">{ts}</td><td class="num">{step}</td>'
            '<td class="wrap">{node}</td><td>{kind}</td>'
            '<td class="wrap"><code>{data}</code></td></tr>',
            i=(number - 1) * EVENTS_PER_PAGE + i + 1,
            ts=e.ts,
            step=e.step,
            node=e.node or "",
            kind=e.kind,
            data=short(json.dumps(e.data, ensure_ascii=False, default=str), 300),
        )
        for i, e in enumerate(window)
    )
    base = run_href(view.snapshot.run_id) + "?events="
    links = join(
        [
            fill('<a href="{h}#events">← earlier</a>', h=base + str(number - 1))
            if number > 1
            else Markup(""),
            fill(
                '<span class="muted">events page {n} of {p} ({t} events)</span>',
                n=number,
                p=pages,
                t=len(events),
            ),
            fill('<a href="{h}#events">later →</a>', h=base + str(number + 1))
            if number < pages
            else Markup(""),
        ],
        " ",
    )
    return fill(
        '<div class="pager">{links}</div><table><thead><tr><th>#</th><th>At</th><th>Step</th>'
        "<th>Node</th><th>Kind</th><th>Data</th></tr></thead><tbody>{rows}</tbody></table>",
        links=links,
        rows=rows,
    )


def _history(view: RunView) -> Markup:
    if view.history is None:
        return Markup('<p class="muted">This store keeps only the latest checkpoint.</p>')
    rows = []
    for info in view.history:
        fork = (
            fill(
                '<form class="inline" method="post" action="{a}">{csrf}'
                '<input type="hidden" name="seq" value="{seq}">'
                '<button class="quiet" type="submit">fork from here</button></form>',
                a=run_href(view.snapshot.run_id) + "/fork",
                csrf=csrf_field(view.csrf),
                seq=info.seq,
            )
            if view.can_act and info.seq is not None
            else Markup("")
        )
        rows.append(
            fill(
                '<tr><td class="num">{seq}</td><td class="num">{step}</td><td class="num">{wave}'
                '</td><td>{badge}</td><td class="wrap">{node}</td><td class="ts">{ts}</td>'
                "<td>{fork}</td></tr>",
                seq="-" if info.seq is None else info.seq,
                step=info.step,
                wave=info.wave,
                badge=badge(info.status),
                node=info.node or "-",
                ts=info.timestamp or "-",
                fork=fork,
            )
        )
    return fill(
        "<table><thead><tr><th>Seq</th><th>Step</th><th>Wave</th><th>Status</th><th>Node</th>"
        "<th>At</th><th></th></tr></thead><tbody>{rows}</tbody></table>",
        rows=join(rows),
    )


def _controls(view: RunView) -> Markup:
    if not view.can_act:
        return Markup("")
    snap = view.snapshot
    buttons = []
    if snap.status in ("failed", "cancelled"):
        buttons.append(
            fill(
                '<form class="inline" method="post" action="{a}">{csrf}'
                '<button type="submit">Redrive</button></form>',
                a=run_href(snap.run_id) + "/redrive",
                csrf=csrf_field(view.csrf),
            )
        )
    if view.can_break_lease and snap.status in ("running", "waiting"):
        buttons.append(
            fill(
                '<form class="inline" method="post" action="{a}">{csrf}'
                '<button class="quiet" type="submit" title="only when its driver is gone">'
                "Break lease</button></form>",
                a=run_href(snap.run_id) + "/break-lease",
                csrf=csrf_field(view.csrf),
            )
        )
    return fill('<div class="controls">{b}</div>', b=join(buttons, " ")) if buttons else Markup("")


def run_page(view: RunView) -> Markup:
    """One run: summary, notes, picture, waits, audit trail, state, events, history."""
    snap = view.snapshot
    facts = [
        ("status", badge(snap.status)),
        (
            "workflow",
            fill(
                '<a href="{h}">{n}</a> <span class="muted">hash {h12}</span>',
                h=workflow_href(snap.workflow_name),
                n=snap.workflow_name,
                h12=snap.wf_hash[:12],
            ),
        ),
        ("step", f"{snap.step} (wave {snap.wave})"),
        ("started", snap.started_at or "-"),
        ("updated", snap.updated_at or "-"),
        ("duration", duration(seconds_between(snap.started_at, snap.updated_at))),
    ]
    if snap.last_error is not None:
        err = snap.last_error
        where = f" at node '{err.node}'" if err.node else ""
        facts.append(("last error", f"{err.code}{where}: {err.message}"))
    origin = snap.extra.get("forked_from")
    if isinstance(origin, Mapping) and isinstance(origin.get("run_id"), str):
        facts.append(
            (
                "forked from",
                fill(
                    '<a href="{h}">{r}</a> at step {s}',
                    h=run_href(origin["run_id"]),
                    r=origin["run_id"],
                    s=origin.get("step"),
                ),
            )
        )
    for title, text in view.notes:
        facts.append((title, text))
    grid = join(fill("<dt>{k}</dt><dd>{v}</dd>", k=k, v=v) for k, v in facts)
    state_text = short(
        json.dumps(snap.state.to_dict(), indent=2, ensure_ascii=False, default=str),
        MAX_STATE_CHARS,
    )
    return fill(
        '<h1>Run <span class="wrap">{run}</span></h1><dl class="grid">{grid}</dl>{controls}'
        "{waits}<h2>Picture</h2>{picture}<h2>Audit trail</h2>{audit}"
        '<h2>State</h2><pre class="state">{state}</pre>'
        '<h2 id="events">Events</h2>{events}<h2>Checkpoints</h2>{history}',
        run=snap.run_id,
        grid=grid,
        controls=_controls(view),
        waits=_waits(view),
        picture=_picture(view),
        audit=_audit(snap.audit_trail, view.events),
        state=state_text,
        events=_events(view),
        history=_history(view),
    )
