"""The command line with hostile input (in-process through main(), or a subprocess)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from zeroflow._cli import main

GOOD: dict[str, Any] = {
    "version": "zf/1",
    "name": "w",
    "entry": "a",
    "nodes": {"a": {"handler": "a", "on": {"ok": "b"}}, "b": {"kind": "end"}},
}


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "good.json").write_text(json.dumps(GOOD), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_reports_files_of_every_bad_kind_and_still_checks_the_rest(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / "adir").mkdir()
    (folder / "latin1.json").write_bytes(b'{"name": "caf\xe9"}')
    (folder / "list.json").write_text("[1, 2]", encoding="utf-8")
    files = ["adir", "latin1.json", "list.json", "good.json"]
    code, out, err = run_cli(capsys, "validate", *files)
    assert code == 1
    lines = err.splitlines()
    assert [line.split(":")[0] for line in lines] == files[:3]
    assert "cannot read" in lines[0] and "utf-8" in lines[1] and "JSON object" in lines[2]
    assert out == "good.json: ok (zf/1, 2 nodes)\n"


def test_validate_reports_a_too_deeply_nested_file_as_a_problem_of_that_file(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / "deep.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    code, out, err = run_cli(capsys, "validate", "deep.json", "good.json")
    assert code == 1 and "unexpected" not in err
    assert err.startswith("deep.json:/: ") and err.count("\n") == 1
    assert out == "good.json: ok (zf/1, 2 nodes)\n"


def test_validate_reports_an_unhashable_entry_node_and_still_checks_the_rest(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = {"workflow_name": "w", "default_entry_node": ["a"], "nodes": {"a": {}}}
    (folder / "bad.json").write_text(json.dumps(bad), encoding="utf-8")
    code, out, err = run_cli(capsys, "validate", "bad.json", "good.json")
    assert code == 1
    assert err.startswith("bad.json:/default_entry_node: ") and err.count("\n") == 1
    assert out == "good.json: ok (zf/1, 2 nodes)\n"


def test_runs_list_never_writes_into_a_database_that_is_not_a_store(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with sqlite3.connect(folder / "crm.db") as db:
        db.execute("CREATE TABLE customers (id INTEGER)")
    db.close()
    code, _, err = run_cli(capsys, "runs", "list", "--store", "crm.db")
    with sqlite3.connect(folder / "crm.db") as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master")]
    db.close()
    assert tables == ["customers"]
    assert code == 1 and err.startswith("zeroflow: error: ") and "crm.db" in err


VALIDATE_CHAIN = """
import json, sys
n = int(sys.argv[1])
nodes = {f"n{i}": {"handler": "h", "on": {"ok": f"n{i + 1}"}} for i in range(n)}
nodes[f"n{n}"] = {"kind": "end"}
with open("chain.json", "w") as f:
    json.dump({"version": "zf/1", "name": "c", "entry": "n0", "nodes": nodes}, f)
from zeroflow._cli import main
sys.exit(main(["validate", "chain.json"]))
"""


def test_validate_of_a_large_file_finishes_and_grows_linearly(folder: Path) -> None:
    # In a fresh interpreter: a 30000-node chain validates (the timeout only guards a hang).
    done = subprocess.run(
        [sys.executable, "-c", VALIDATE_CHAIN, "30000"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=folder,
    )
    assert done.returncode == 0, done.stderr

    # The cost per node does not grow with the file: ten times the nodes costs about ten
    # times the CPU (quadratic work would cost a hundred). CPU time of this process, so
    # the other processes of a loaded machine do not count.
    def cpu_seconds(n: int) -> float:
        nodes: dict[str, Any] = {
            f"n{i}": {"handler": "h", "on": {"ok": f"n{i + 1}"}} for i in range(n)
        }
        nodes[f"n{n}"] = {"kind": "end"}
        path = folder / f"chain{n}.json"
        path.write_text(json.dumps({"version": "zf/1", "name": "c", "entry": "n0", "nodes": nodes}))
        started = time.process_time()
        assert main(["validate", str(path)]) == 0
        return time.process_time() - started

    cpu_seconds(300)  # warm-up: imports
    small = min(cpu_seconds(2000) for _ in range(3))
    large = cpu_seconds(20000)
    assert large < 30 * max(small, 1e-3), (small, large)
