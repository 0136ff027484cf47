"""Self-contained HTML pages: inline SVG, the Mermaid source folded away, no JavaScript."""

from __future__ import annotations

import html
from pathlib import Path

from zeroflow.viz._graph import Graph
from zeroflow.viz._mermaid import strip_fence

HTML_SUFFIXES = (".html", ".htm")

_CSS = """
body{margin:0;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif;
color:#0f172a;background:#f8fafc}
main{max-width:1200px;margin:0 auto;padding:24px}
h1{font-size:20px;margin:0 0 16px}
.diagram{background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:12px;overflow:auto}
.diagram svg{display:block;margin:0 auto;max-width:100%;height:auto}
details{margin-top:16px}
summary{cursor:pointer;color:#334155}
pre{background:#0f172a;color:#e2e8f0;padding:12px;border-radius:6px;overflow:auto;font-size:12px}
.note{color:#64748b;font-size:12px;margin-top:12px}
.note.warning{color:#78350f;background:#fef3c7;border:1px solid #d97706;border-radius:6px;
padding:8px 12px;font-size:14px}
"""


_CONTRACT_CSS = (
    "<style>.contracts td,.contracts th{text-align:left;padding:2px 12px 2px 0;"
    "vertical-align:top}.contracts code{font-size:12px}</style>"
)


def _keys(entries: tuple[str, ...] | None) -> str:
    if entries is None:
        return "<td>(not declared)</td>"
    listed = ", ".join(f"<code>{html.escape(e)}</code>" for e in entries)
    return f"<td>{listed or 'nothing'}</td>"


def contracts_section(graph: Graph) -> str:
    """A ``<details>`` block listing the state contracts (empty text when there are none).

    Every name and key is escaped: a hostile key cannot add markup.
    """
    rows = [
        f"<tr><td><code>{html.escape(n.id)}</code></td>{_keys(n.contract.reads)}"
        f"{_keys(n.contract.writes)}<td>{'checked' if n.contract.schema else ''}</td></tr>"
        for n in graph.nodes
        if n.contract is not None
    ]
    if not rows and graph.input_schema is None:
        return ""
    intro = f"<p>{html.escape(graph.input_schema)}</p>\n" if graph.input_schema is not None else ""
    table = (
        '<table class="contracts"><tr><th>node</th><th>reads</th><th>writes</th>'
        "<th>writes_schema</th></tr>\n" + "\n".join(rows) + "</table>\n"
        if rows
        else ""
    )
    return (
        f"<details open>{_CONTRACT_CSS}<summary>State contracts</summary>\n{intro}{table}"
        "</details>\n"
    )


def check_output_path(output_path: str | Path) -> Path:
    """Return the path as a `Path`, or raise `ValueError` for a non-HTML extension."""
    path = Path(output_path)
    if path.suffix.lower() not in HTML_SUFFIXES:
        raise ValueError(
            f"unsupported output extension '{path.suffix}'; use one of {', '.join(HTML_SUFFIXES)}"
        )
    return path


def page(
    title: str,
    svg: str,
    mermaid_source: str,
    note: str | None = None,
    *,
    warning: bool = False,
    contracts: str = "",
) -> str:
    """Build the page text; `title` is escaped here, `svg` is trusted markup.

    `mermaid_source` is shown without its ```mermaid fence. With `warning`
    the note is drawn as a warning above the source, which is shown unfolded.
    `contracts` is trusted markup (``contracts_section``), shown below the picture.
    """
    t = html.escape(title, quote=True)
    body = html.escape(strip_fence(mermaid_source).strip())
    if warning:
        return (
            "<!DOCTYPE html>\n"
            '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{t}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
            f"<h1>{t}</h1>\n"
            f'<p class="note warning" role="alert">{html.escape(note or "")}</p>\n'
            f"<pre><code>{body}</code></pre>\n"
            "</main>\n</body>\n</html>\n"
        )
    extra = f'<p class="note">{html.escape(note)}</p>' if note else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{t}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        f"<h1>{t}</h1>\n"
        f'<div class="diagram">\n{svg}</div>\n{extra}{contracts}'
        "<details><summary>Mermaid source</summary>\n"
        f"<pre><code>{body}</code></pre></details>\n"
        "</main>\n</body>\n</html>\n"
    )


def write_page(path: Path, text: str) -> Path:
    """Write UTF-8 text, creating parent folders; return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
