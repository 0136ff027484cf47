"""Offline HTML pages: 0.1.0's `mermaid_to_html` contract, with our SVG and no JavaScript."""

from __future__ import annotations

import html
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from _support import plan_exec_review
from zeroflow.viz import (
    MermaidNotDrawnWarning,
    mermaid_to_html,
    workflow_to_html,
    workflow_to_mermaid,
)
from zeroflow.viz._mermaid import strip_fence

WF: dict[str, Any] = plan_exec_review()


def _svg_of(page: str) -> ET.Element:
    start = page.index("<svg")
    end = page.index("</svg>") + len("</svg>")
    return ET.fromstring(page[start:end])


def _node_groups(svg: ET.Element) -> dict[str, ET.Element]:
    return {
        g.attrib["data-id"]: g
        for g in svg.iter("{http://www.w3.org/2000/svg}g")
        if g.get("class") == "node"
    }


def test_mermaid_page_embeds_an_svg_and_no_javascript(tmp_path: Path) -> None:
    source = workflow_to_mermaid(WF, done_nodes=["plan"], active_node="exec", failed=True)
    out = mermaid_to_html(source, tmp_path / "wf.html")
    assert out == tmp_path / "wf.html" and isinstance(out, Path)
    page = out.read_text(encoding="utf-8")
    assert "<script" not in page.lower() and "http://" not in page.replace(
        "http://www.w3.org/2000/svg", ""
    )
    assert "https://" not in page
    assert len(page.encode()) < 40_000
    nodes = _node_groups(_svg_of(page))
    labels = {
        g.find("{http://www.w3.org/2000/svg}title").text.split("\n")[0]: g  # type: ignore[union-attr]
        for g in nodes.values()
    }
    assert set(labels) == {"plan", "exec", "review", "handle_error"}
    assert labels["plan"].attrib["data-shape"] == "stadium"
    assert labels["handle_error"].attrib["data-shape"] == "hexagon"
    assert labels["plan"].attrib["data-status"] == "succeeded"
    assert labels["exec"].attrib["data-status"] == "failed"
    assert "<details>" in page and "flowchart TD" in page


def test_raw_and_fenced_sources_draw_the_same_picture(tmp_path: Path) -> None:
    fenced = mermaid_to_html(workflow_to_mermaid(WF), tmp_path / "a.html", title="t")
    raw = mermaid_to_html(workflow_to_mermaid(WF, fenced=False), tmp_path / "b.html", title="t")
    svg_a = fenced.read_text(encoding="utf-8")
    svg_b = raw.read_text(encoding="utf-8")
    assert (
        svg_a[svg_a.index("<svg") : svg_a.index("</svg>")]
        == svg_b[svg_b.index("<svg") : svg_b.index("</svg>")]
    )


@pytest.mark.parametrize("name", ["x.png", "x.svg", "x", "x.html.txt"])
def test_only_html_extensions_are_accepted(tmp_path: Path, name: str) -> None:
    ext = Path(name).suffix
    with pytest.raises(ValueError) as info:
        mermaid_to_html("flowchart TD\n a --> b", tmp_path / name)
    assert str(info.value) == f"unsupported output extension '{ext}'; use one of .html, .htm"
    with pytest.raises(ValueError, match="unsupported output extension"):
        workflow_to_html(WF, tmp_path / name)
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize("name", ["page.HTML", "page.htm", "page.Htm"])
def test_html_extensions_are_case_insensitive(tmp_path: Path, name: str) -> None:
    assert mermaid_to_html("flowchart TD\n a --> b", tmp_path / name).exists()


def test_title_defaults_to_the_file_stem_and_is_escaped(tmp_path: Path) -> None:
    page = mermaid_to_html("flowchart TD\n a --> b", str(tmp_path / "my_flow.html"))
    assert "<title>my_flow</title>" in page.read_text(encoding="utf-8")
    page = mermaid_to_html("flowchart TD\n a --> b", tmp_path / "p.html", title="<b>&</b>")
    text = page.read_text(encoding="utf-8")
    assert "<title>&lt;b&gt;&amp;&lt;/b&gt;</title>" in text
    assert "<b>&</b>" not in text


def test_parent_folders_are_created(tmp_path: Path) -> None:
    out = mermaid_to_html("flowchart TD\n a --> b", tmp_path / "x" / "y" / "p.html")
    assert out.is_file()


def test_embed_js_is_accepted_and_changes_nothing(tmp_path: Path) -> None:
    a = mermaid_to_html("flowchart TD\n a --> b", tmp_path / "a.html", title="t", embed_js=True)
    b = mermaid_to_html("flowchart TD\n a --> b", tmp_path / "b.html", title="t", embed_js=False)
    assert a.read_bytes() == b.read_bytes()
    assert "<script" not in a.read_text(encoding="utf-8")


def test_the_mermaid_source_is_kept_escaped_in_a_collapsible_block(tmp_path: Path) -> None:
    source = 'flowchart TD\n a["</pre><script>x</script>"] --> b'
    text = mermaid_to_html(source, tmp_path / "p.html").read_text(encoding="utf-8")
    assert "<script>" not in text
    assert "&lt;/pre&gt;&lt;script&gt;" in text


def test_class_styles_from_hand_written_mermaid_are_applied_safely(tmp_path: Path) -> None:
    source = (
        "flowchart TD\n a --> b\n classDef hot fill:#ff0000,stroke:#000000\n class a hot\n"
        ' style b fill:url(javascript:alert(1))"/><script>\n'
    )
    text = mermaid_to_html(source, tmp_path / "p.html").read_text(encoding="utf-8")
    nodes = _node_groups(_svg_of(text))
    shape_a = next(el for el in nodes["a"] if el.get("class") == "shape")
    assert shape_a.attrib["fill"] == "#ff0000"
    assert "javascript" not in text.split("<details>")[0]


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("sequenceDiagram\n    A->>B: hi", "sequenceDiagram"),
        ('```mermaid\npie title Pets\n    "Dogs" : 3\n    "Cats" : 2\n```', "pie"),
        ("stateDiagram-v2\n    [*] --> Still", "stateDiagram-v2"),
        ("gitGraph:\n    commit", "gitGraph"),
        ("this is not mermaid at all", None),
        ("", None),
    ],
)
def test_a_source_that_is_not_a_flowchart_shows_its_text_with_a_note_and_warns(
    tmp_path: Path, source: str, kind: str | None
) -> None:
    with pytest.warns(MermaidNotDrawnWarning, match="draws only flowcharts") as caught:
        out = mermaid_to_html(source, tmp_path / "p.html")
    assert issubclass(MermaidNotDrawnWarning, UserWarning)
    assert caught[0].filename == __file__  # points at the caller
    text = out.read_text(encoding="utf-8")
    assert "<svg" not in text and "<script" not in text
    note = text.split('<p class="note warning" role="alert">', 1)[1].split("</p>", 1)[0]
    assert "draws only flowcharts" in note and "shown as text" in note
    if kind is not None:
        assert f"a Mermaid {kind}" in note
    body = text.split("<pre><code>", 1)[1].split("</code></pre>", 1)[0]
    assert "```" not in body
    first = strip_fence(source).strip().splitlines()
    if first:
        assert html.escape(first[0]) in body
    assert "<details>" not in text  # the source is the content: not folded away


def test_a_flowchart_never_warns_even_when_empty(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        text = mermaid_to_html("flowchart LR\n", tmp_path / "p.html").read_text(encoding="utf-8")
        mermaid_to_html("graph TD\n  a --> b", tmp_path / "q.html")
    assert "This flowchart has no nodes." in text


def test_the_page_shows_the_mermaid_body_without_its_fence(tmp_path: Path) -> None:
    source = workflow_to_mermaid(WF)
    assert source.startswith("```mermaid\n")
    text = mermaid_to_html(source, tmp_path / "p.html").read_text(encoding="utf-8")
    body = text.split("<pre><code>", 1)[1].split("</code></pre>", 1)[0]
    assert "```" not in text
    assert body.startswith("flowchart TD\n")
    assert html.escape(workflow_to_mermaid(WF, fenced=False)) == body
    assert "    plan([&quot;plan&quot;]):::pending" in body
    page = workflow_to_html(WF, tmp_path / "w.html").read_text(encoding="utf-8")
    assert "```" not in page and "<pre><code>flowchart TD\n" in page


def test_workflow_page_has_the_overlay_and_a_legend(tmp_path: Path) -> None:
    run = {
        "status": "failed",
        "trace": ["plan", "exec"],
        "audit_trail": [
            {"node": "plan", "status": "succeeded", "duration_ms": 3.0},
            {"node": "exec", "status": "failed", "duration_ms": 4.0},
        ],
        "ready_now": [],
        "ready_next_wave": [],
    }
    out = workflow_to_html(WF, tmp_path / "deep" / "wf.htm", run=run)
    text = out.read_text(encoding="utf-8")
    assert "<title>plan_exec_review</title>" in text
    nodes = _node_groups(_svg_of(text))
    assert nodes["exec"].attrib["data-status"] == "failed"
    assert nodes["review"].attrib["data-status"] == "not_reached"
    assert "exec[&quot;exec&quot;]:::error" in text
    assert "plan([&quot;plan&quot;]):::done" in text
    assert 'class="legend"' in text
    plain = workflow_to_html(WF, tmp_path / "plain.html", title="Mine").read_text(encoding="utf-8")
    assert "<title>Mine</title>" in plain and 'class="legend"' not in plain
