"""Graphviz DOT export."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest

from zeroflow.viz import workflow_to_dot
from zeroflow.viz._palette import STATUS_STYLES

WF: dict[str, Any] = {
    "workflow_name": 'the "loop"',
    "default_entry_node": "plan",
    "default_error_node": "oops",
    "nodes": {
        "plan": {"outputs": {"ok": [{"target_node": "exec"}]}},
        "exec": {"outputs": {"retry": [{"target_node": "plan", "is_loopback": True}]}},
        'odd "name"\\': {"kind": "wait", "outputs": {}},
        "oops": {"outputs": {"x": [{"target_node": None}]}},
    },
}


def test_dot_has_safe_ids_quoted_labels_and_the_same_shapes() -> None:
    dot = workflow_to_dot(WF)
    assert dot.startswith('digraph "the \\"loop\\"" {')
    assert dot.rstrip().endswith("}")
    assert re.search(r'n0 \[label="plan", shape=box, style="rounded,filled"', dot)
    assert 'n3 [label="oops", shape=hexagon' in dot
    assert 'n2 [label="odd \\"name\\"\\\\", shape=box, style="rounded,filled,dashed"' in dot
    assert 'n0 -> n1 [label="ok"];' in dot
    assert 'n1 -> n0 [label="retry", style="dashed", color="#7c3aed", constraint=false];' in dot
    assert dot.count("->") == 2


def test_dot_colours_done_active_and_failed_nodes() -> None:
    dot = workflow_to_dot(WF, done_nodes=["plan"], active_node="exec", failed=True)
    assert 'n0 [label="plan"' in dot
    line = {ln.split()[0]: ln for ln in dot.splitlines() if ln.startswith("  n") and "->" not in ln}
    assert STATUS_STYLES["succeeded"].fill in line["n0"]
    assert STATUS_STYLES["failed"].fill in line["n1"]
    assert STATUS_STYLES["pending"].fill in line["n3"]


def test_dot_overlay_from_a_run_adds_counts() -> None:
    run = {
        "status": "failed",
        "audit_trail": [
            {"node": "plan", "status": "succeeded", "duration_ms": 1500.0},
            {"node": "exec", "status": "failed", "duration_ms": 2.0},
        ],
        "trace": ["plan", "exec"],
        "ready_now": [],
        "ready_next_wave": [],
    }
    dot = workflow_to_dot(WF, run=run)
    assert 'label="plan\\n1 run · 1.5 s"' in dot
    assert STATUS_STYLES["not_reached"].fill in dot


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' is not installed")
def test_graphviz_accepts_the_output() -> None:  # pragma: no cover - needs Graphviz
    done = subprocess.run(
        ["dot", "-Tsvg"], input=workflow_to_dot(WF), capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
