"""The frame every console page shares: head, navigation, notices, and the stylesheet.

Pages work without JavaScript; the page of a run that is still moving asks
the browser to reload it (``<meta http-equiv="refresh">``).
"""

from __future__ import annotations

from ._html import Markup, fill

__all__ = ["CSS", "page"]

CSS = """
:root{--ink:#0f172a;--muted:#64748b;--line:#e2e8f0;--bg:#f8fafc;--accent:#2563eb}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif;
color:var(--ink);background:var(--bg)}
header{display:flex;gap:1.5rem;align-items:center;padding:.6rem 1.2rem;
background:#0f172a;color:#fff}
header a{color:#e2e8f0;text-decoration:none}header a:hover{color:#fff}
header .brand{font-weight:700;letter-spacing:.02em}
header .mode{margin-left:auto;font-size:12px;color:#cbd5e1}
main{padding:1rem 1.2rem;max-width:1400px}
h1{font-size:20px;margin:.2rem 0 .8rem;word-break:break-all}
h2{font-size:16px;margin:1.4rem 0 .5rem}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid var(--line)}
th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid var(--line);vertical-align:top}
th{background:#f1f5f9;font-weight:600;font-size:12px;text-transform:uppercase;color:#334155}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.wrap,.wrap{word-break:break-all}
td.ts{white-space:nowrap}
a{color:var(--accent)}
.badge{display:inline-block;padding:0 .5rem;border-radius:999px;font-size:12px;font-weight:600;
border:1px solid transparent}
.s-succeeded{background:#dcfce7;color:#166534}.s-failed{background:#fee2e2;color:#991b1b}
.s-waiting{background:#fef3c7;color:#92400e}.s-running{background:#dbeafe;color:#1e40af}
.s-cancelled{background:#e5e7eb;color:#374151}
.notice{padding:.6rem .8rem;border-radius:6px;margin:.6rem 0;border:1px solid}
.notice.ok{background:#f0fdf4;border-color:#86efac}
.notice.error{background:#fef2f2;border-color:#fca5a5}
.notice.info{background:#eff6ff;border-color:#93c5fd}
form.filters{display:flex;flex-wrap:wrap;gap:.6rem;align-items:end;margin:.4rem 0 .8rem}
label{display:flex;flex-direction:column;font-size:12px;color:#334155;gap:.15rem}
input,select,textarea,button{font:inherit}
input,select,textarea{padding:.25rem .4rem;border:1px solid #cbd5e1;border-radius:4px;
background:#fff}
textarea{width:100%;min-height:7rem;font-family:ui-monospace,Menlo,Consolas,monospace}
button{padding:.3rem .8rem;border-radius:4px;border:1px solid #1d4ed8;background:var(--accent);
color:#fff;
cursor:pointer}
button.quiet{background:#fff;color:#1e3a8a;border-color:#cbd5e1}
.quick a{margin-right:.8rem}
.pager{display:flex;gap:1rem;align-items:center;margin:.6rem 0}
.muted{color:var(--muted)}
pre{background:#fff;border:1px solid var(--line);padding:.7rem;overflow:auto;max-height:32rem;
font:12px/1.4 ui-monospace,Menlo,Consolas,monospace;white-space:pre-wrap;word-break:break-all}
.picture{background:#fff;border:1px solid var(--line);padding:.5rem;overflow:auto}
.picture svg{max-width:100%;height:auto}
.grid{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;background:#fff;
border:1px solid var(--line);padding:.6rem .8rem}
.grid dt{color:var(--muted)}.grid dd{margin:0;word-break:break-all}
.card{background:#fff;border:1px solid var(--line);border-radius:6px;padding:.7rem .9rem;
margin:.5rem 0}
.card form{display:flex;flex-direction:column;gap:.5rem;max-width:44rem}
.inline{display:inline}
"""


def page(
    title: str,
    body: Markup,
    *,
    read_only: bool,
    notice: tuple[str, str] | None = None,
    refresh_seconds: int | None = None,
) -> Markup:
    """A whole HTML document around ``body``; ``notice`` is ``(kind, text)`` shown on top.

    ``kind`` is ``"ok"``, ``"error"`` or ``"info"``. With ``refresh_seconds`` the
    browser reloads the page that often.
    """
    refresh = (
        fill('<meta http-equiv="refresh" content="{s}">', s=refresh_seconds)
        if refresh_seconds
        else Markup("")
    )
    mode = "read-only: start with --handlers to act on runs" if read_only else "actions enabled"
    shown = (
        fill(
            '<div class="notice {kind}" role="status">{text}</div>', kind=notice[0], text=notice[1]
        )
        if notice
        else Markup("")
    )
    return fill(
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '{refresh}<title>{title} · zeroflow</title><link rel="stylesheet" href="/console.css">'
        '</head><body><header><a class="brand" href="/">zeroflow console</a>'
        '<a href="/">Runs</a><a href="/workflows">Workflows</a>'
        '<span class="mode">{mode}</span></header><main>{notice}{body}</main></body></html>\n',
        refresh=refresh,
        title=title,
        mode=mode,
        notice=shown,
        body=body,
    )
