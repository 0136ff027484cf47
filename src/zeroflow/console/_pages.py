"""The console's list pages as pure functions: data in, ``Markup`` out, every value escaped.

``runs_page``, ``workflows_page`` and ``workflow_page`` take what the server
read from the store and the catalog; they never touch the store themselves
(the page of one run is ``_run_page``). ``workflow_notes`` is the one place
where texts about a workflow from elsewhere (``explain``, stats) are shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from .._store_views import RunPage
from ._catalog import Catalog, Definition
from ._html import Markup, fill, join, path_part
from ._listing import PAGE_SIZE, STATUSES, RunFilter
from ._parts import badge, duration, run_href, seconds_between, workflow_href

__all__ = [
    "runs_page",
    "workflow_page",
    "workflow_notes",
    "workflows_page",
    "login_page",
    "message_page",
]


# ---------------------------------------------------------------------- runs


def runs_page(
    flt: RunFilter,
    page: RunPage,
    steps: Mapping[str, int | None],
    catalog: Catalog,
) -> Markup:
    """The runs table with its filters, quick links and pager."""
    status_options = join(
        fill(
            '<option value="{v}"{sel}>{label}</option>',
            v=v,
            label=v or "any",
            sel=Markup(" selected" if v == flt.status else ""),
        )
        for v in ("", *STATUSES)
    )
    names = join(fill('<option value="{n}">', n=n) for n in catalog.names())
    filters = fill(
        '<form class="filters" method="get" action="/">'
        '<label>Run id starts with<input name="q" value="{q}" size="24"></label>'
        '<label>Workflow<input name="workflow" value="{wf}" list="workflow-names" size="20">'
        '<datalist id="workflow-names">{names}</datalist></label>'
        '<label>Status<select name="status">{statuses}</select></label>'
        '<label class="check"><span><input type="checkbox" name="due" value="1"{due}> '
        "due (no progress for 1 h)</span></label>"
        '<button type="submit">Filter</button> <a href="/">clear</a></form>',
        q=flt.run_id,
        wf=flt.workflow,
        names=names,
        statuses=status_options,
        due=Markup(" checked" if flt.due else ""),
    )
    quick = fill(
        '<div class="quick">Show: <a href="/?status=waiting">waiting</a>'
        '<a href="/?due=1">due</a><a href="/?status=failed">failed</a>'
        '<a href="/?status=running">running</a></div>'
    )
    rows = []
    for meta in page.runs:
        run_id = meta.run_id or ""
        node = ", ".join(meta.waiting_nodes) if meta.waiting_nodes else (meta.current_node or "-")
        step = steps.get(run_id)
        rows.append(
            fill(
                '<tr><td class="wrap"><a href="{href}">{run}</a></td><td>{badge}</td>'
                '<td><a href="{wf_href}">{wf}</a></td><td class="wrap">{node}</td>'
                '<td class="num">{step}</td><td class="ts">{updated}</td>'
                '<td class="num">{took}</td></tr>',
                href=run_href(run_id),
                run=run_id,
                badge=badge(meta.status),
                wf_href=workflow_href(meta.workflow_name),
                wf=meta.workflow_name,
                node=node,
                step="-" if step is None else step,
                updated=meta.updated_at or "-",
                took=duration(seconds_between(meta.started_at, meta.updated_at)),
            )
        )
    table = (
        fill(
            '<table class="runs"><thead><tr><th>Run</th><th>Status</th><th>Workflow</th>'
            "<th>Current / waiting node</th><th>Step</th><th>Updated</th><th>Duration</th>"
            "</tr></thead><tbody>{rows}</tbody></table>",
            rows=join(rows),
        )
        if rows
        else Markup('<p class="muted">No runs match.</p>')
    )
    first = (flt.page - 1) * PAGE_SIZE
    shown = (
        f"runs {first + 1} to {first + len(page.runs)} of {page.total}"
        if page.runs
        else f"{page.total} run(s)"
    )
    prev_link = (
        fill('<a rel="prev" href="/?{p}">← newer</a>', p=urlencode(flt.params(page=flt.page - 1)))
        if flt.page > 1
        else Markup("")
    )
    next_link = (
        fill('<a rel="next" href="/?{p}">older →</a>', p=urlencode(flt.params(page=flt.page + 1)))
        if first + len(page.runs) < page.total
        else Markup("")
    )
    pager = fill(
        '<div class="pager"><span class="muted">{shown}</span>{prev}{next}</div>',
        shown=shown,
        prev=prev_link,
        next=next_link,
    )
    return fill(
        "<h1>Runs</h1>{filters}{quick}{pager}{table}{pager}",
        filters=filters,
        quick=quick,
        pager=pager,
        table=table,
    )


# ---------------------------------------------------------------------- workflows


def workflows_page(catalog: Catalog) -> Markup:
    """Every definition of ``--workflows``, and the files that could not be read."""
    rows = join(
        fill(
            '<tr><td><a href="{h}">{n}</a></td><td>{f}</td><td class="muted">{hash}</td></tr>',
            h=workflow_href(d.name),
            n=d.name,
            f=d.file,
            hash=d.hash[:12],
        )
        for name in catalog.names()
        for d in catalog.by_name[name]
    )
    problems = join(
        fill("<li><strong>{f}</strong>: {p}</li>", f=f, p=p) for f, p in catalog.problems
    )
    body = (
        fill(
            "<table><thead><tr><th>Workflow</th><th>File</th><th>Hash</th></tr></thead>"
            "<tbody>{rows}</tbody></table>",
            rows=rows,
        )
        if catalog.by_name
        else Markup(
            '<p class="muted">No definitions: start the console with '
            "<code>--workflows DIR</code>.</p>"
        )
    )
    listed = (
        fill("<h2>Files that are not definitions</h2><ul>{p}</ul>", p=problems)
        if problems
        else Markup("")
    )
    return fill("<h1>Workflows</h1>{body}{listed}", body=body, listed=listed)


def workflow_page(definition: Definition, findings: Sequence[Any], notes: Sequence[str]) -> Markup:
    """One workflow: its picture, lint findings and (when wired) its explanation."""
    from .. import viz

    svg = viz.workflow_to_svg(definition.legacy)
    rows = join(
        fill(
            '<tr><td>{sev}</td><td>{code}</td><td class="wrap">{ptr}</td>'
            '<td class="wrap">{msg}<br><span class="muted">{hint}</span></td></tr>',
            sev=f.severity,
            code=f.code,
            ptr=f.pointer or "/",
            msg=f.message,
            hint=f.hint,
        )
        for f in findings
    )
    lint = (
        fill(
            "<table><thead><tr><th>Severity</th><th>Code</th><th>Where</th><th>Finding</th>"
            "</tr></thead><tbody>{rows}</tbody></table>",
            rows=rows,
        )
        if findings
        else Markup('<p class="muted">No lint findings.</p>')
    )
    explained = join(fill("<pre>{n}</pre>", n=n) for n in notes)
    return fill(
        '<h1>Workflow {name}</h1><p class="muted">{file} · hash {hash} · '
        '<a href="/?workflow={q}">its runs</a></p><div class="picture">{svg}</div>'
        "<h2>Lint</h2>{lint}{explained}",
        name=definition.name,
        file=definition.file,
        hash=definition.hash[:12],
        q=path_part(definition.name),
        svg=Markup(svg),
        lint=lint,
        explained=explained,
    )


def workflow_notes(definition: Definition, store: Any = None) -> list[str]:
    """What the workflow does (``zeroflow.explain``) and, from a ``StatsStore``, its stats."""
    import json

    from .._explain import explain
    from .._stats import stats_report
    from .._store_views import StatsStore

    notes = [explain(definition.source)]
    if isinstance(store, StatsStore):
        report = stats_report(store.run_summaries(definition.name), top=5)
        notes.append("stats\n" + json.dumps(report, indent=2, sort_keys=True))
    return notes


# ---------------------------------------------------------------------- small pages


def login_page(failed: bool) -> Markup:
    """The form that takes the access token once and sets the session cookie."""
    note = (
        Markup('<p class="notice error">That token is not this console\'s.</p>')
        if failed
        else Markup("")
    )
    return fill(
        "<h1>Access token</h1>{note}<p>This console needs the access token printed when it "
        'started.</p><form class="card" method="post" action="/login"><label>Token'
        '<input type="password" name="token" autocomplete="off" required></label>'
        '<div><button type="submit">Enter</button></div></form>',
        note=note,
    )


def message_page(title: str, text: str) -> Markup:
    """A page that only says something (not found, refused)."""
    return fill('<h1>{t}</h1><p>{m}</p><p><a href="/">All runs</a></p>', t=title, m=text)
