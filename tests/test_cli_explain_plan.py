"""``zeroflow explain`` and ``zeroflow plan``: the library's words and layers in a terminal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import zeroflow
from zeroflow._cli import main

DIAMOND: dict[str, Any] = {
    "version": "zf/1",
    "name": "diamond",
    "entry": "start",
    "defaults": {"max_concurrency": 2},
    "nodes": {
        "start": {"handler": "h", "on": {"ok": ["left", "right"]}},
        "left": {"handler": "h", "on": {"ok": "merge"}},
        "right": {"handler": "h", "on": {"ok": "merge"}},
        "merge": {"handler": "h", "join": ["left", "right"], "on": {"ok": []}},
    },
}


@pytest.fixture
def diamond(tmp_path: Path) -> Path:
    path = tmp_path / "diamond.json"
    path.write_text(json.dumps(DIAMOND), encoding="utf-8")
    return path


def test_explain_prints_the_text_and_markdown_the_library_gives(
    diamond: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explain", str(diamond)]) == 0
    assert capsys.readouterr().out == zeroflow.explain(DIAMOND)
    assert main(["explain", str(diamond), "--format", "markdown"]) == 0
    assert capsys.readouterr().out == zeroflow.explain(DIAMOND, "markdown")


def test_plan_prints_the_layers_and_json_with_an_optional_limit(
    diamond: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", str(diamond)]) == 0
    out = capsys.readouterr().out
    assert out == zeroflow.plan(DIAMOND).text()
    assert "  2. `left`, `right`\n" in out
    assert main(["plan", str(diamond), "--json", "--max-concurrency", "1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data == zeroflow.plan(DIAMOND, max_concurrency=1).to_dict()
    assert [layer["nodes"] for layer in data["waves"][0]["layers"]] == [
        ["start"], ["left"], ["right"], ["merge"]
    ]  # fmt: skip


@pytest.mark.parametrize("command", ["explain", "plan"])
def test_a_missing_or_invalid_file_is_one_line_and_exit_1(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, str(tmp_path / "nope.json")]) == 1
    assert capsys.readouterr().err == f"zeroflow: error: {tmp_path / 'nope.json'}: no such file\n"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**DIAMOND, "entry": "ghost"}), encoding="utf-8")
    assert main([command, str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("zeroflow: error: ") and "ghost" in err and err.count("\n") == 1


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", "\udcff"])
@pytest.mark.parametrize("command", ["explain", "plan"])
def test_a_damaged_file_is_one_line_and_exit_1(
    command: str, content: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "damaged.json"
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    assert main([command, str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"zeroflow: error: {path}: ") and captured.err.count("\n") == 1


def test_plan_refuses_a_limit_below_one(diamond: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(diamond), "--max-concurrency", "0"]) == 1
    assert "max_concurrency must be an int >= 1" in capsys.readouterr().err


def test_explain_refuses_an_unknown_format_as_bad_usage(
    diamond: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explain", str(diamond), "--format", "html"]) == 2
    assert "invalid choice: 'html'" in capsys.readouterr().err


def test_help_lists_both_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "explain" in out and "plan" in out
