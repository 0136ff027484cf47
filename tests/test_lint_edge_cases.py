"""Lint: false positives, missed problems and scaling."""

from __future__ import annotations

import subprocess
import sys

import pytest

from zeroflow import lint


def test_an_error_node_routed_to_the_shared_end_node_is_not_flagged() -> None:
    defn = {
        "version": "zf/1",
        "name": "w",
        "entry": "work",
        "error": "alert",
        "nodes": {
            "work": {"handler": "work", "on": {"ok": "done"}},
            "alert": {"handler": "alert", "on": {"ok": "done"}},
            "done": {"kind": "end"},
        },
    }
    assert [f.code for f in lint(defn)] == []


JOIN_AFTER_ITSELF = {
    "version": "zf/1",
    "name": "w",
    "entry": "s",
    "nodes": {
        "s": {"handler": "h", "on": {"ok": "a"}},
        "a": {"handler": "h", "on": {"ok": "j"}},
        # j waits for k, but k only runs after j: j can never run
        "j": {"handler": "h", "join": ["a", "k"], "on": {"ok": "k", "done": "end"}},
        "k": {"handler": "h", "on": {"ok": {"to": "j", "loop": True}}},
        "end": {"kind": "end"},
    },
}


def test_lint_reports_a_join_waiting_for_a_node_only_the_join_leads_to() -> None:
    assert any(f.pointer.startswith("/nodes/j") for f in lint(JOIN_AFTER_ITSELF))


LINT_CHAIN = """
import sys
from zeroflow import lint
n = int(sys.argv[1])
nodes = {f"n{i}": {"handler": "h", "on": {"ok": f"n{i + 1}"}} for i in range(n)}
nodes[f"n{n}"] = {"kind": "end"}
assert lint({"version": "zf/1", "name": "c", "entry": "n0", "nodes": nodes}) == []
"""


def test_lint_of_a_long_chain_finishes_quickly() -> None:
    try:
        done = subprocess.run(
            [sys.executable, "-c", LINT_CHAIN, "2000"], capture_output=True, text=True, timeout=8
        )
    except subprocess.TimeoutExpired:
        pytest.fail("lint of a 2000-node chain took more than 8 s")
    assert done.returncode == 0, done.stderr
