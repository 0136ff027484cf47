"""The zeroflow command line, driven in-process through main() and as a subprocess."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import zeroflow
from zeroflow import (
    HandlerResult,
    JsonFileWorkflowStore,
    RunLockedError,
    WorkflowContext,
    WorkflowEngine,
)
from zeroflow._cli import main
from zeroflow._cli_runs import _Progress
from zeroflow._models import Event

ZF1: dict[str, Any] = {
    "version": "zf/1",
    "name": "cli",
    "entry": "prepare",
    "nodes": {
        "prepare": {"handler": "prepare", "on": {"ok": "review"}},
        "review": {"handler": "review", "on": {"approved": "publish"}},
        "publish": {"handler": "publish"},
    },
}

HANDLERS_MODULE = """
from zeroflow import HandlerResult

def prepare(ctx):
    return HandlerResult(outputs=["ok"], workflow_updates={"draft": "v1"})

def review(ctx):
    answer = ctx.state.workflow.get("__resume__")
    if answer is None:
        return HandlerResult(outputs=[], waiting=True, waiting_prompt="Approve v1?")
    if answer.get("fail"):
        raise RuntimeError("reviewer crashed")
    return HandlerResult(outputs=["approved"])

def publish(ctx):
    return HandlerResult(outputs=[], workflow_updates={"published": True})

HANDLERS = {"prepare": prepare, "review": review, "publish": publish}
NOT_A_MAP = prepare
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with a workflow file, a handler module and a JSON store holding a waiting run."""
    (tmp_path / "flow.json").write_text(json.dumps(ZF1), encoding="utf-8")
    (tmp_path / "cli_handlers.py").write_text(HANDLERS_MODULE, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("cli_handlers", None)
    import cli_handlers  # type: ignore[import-not-found]

    engine = WorkflowEngine(
        ZF1, cli_handlers.HANDLERS, store=JsonFileWorkflowStore(tmp_path / "runs")
    )
    assert engine.run(run_id="wait-1").waiting
    return tmp_path


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def resume_wait_1(
    *extra: str, workflow: str = "flow.json", handlers: str = "cli_handlers:HANDLERS"
) -> list[str]:
    """The argv of ``runs resume wait-1`` on the project's store, then ``extra``."""
    return [
        "runs",
        "resume",
        "wait-1",
        "--store",
        "runs",
        "--workflow",
        workflow,
        "--handlers",
        handlers,
        *extra,
    ]


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code != 0
    assert err.count("\n") == 1 and err.startswith("zeroflow: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err


# ---------------------------------------------------------------- definitions


def test_validate_accepts_good_files_and_reports_each_error_with_its_pointer(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = dict(ZF1, nodes={"prepare": {"handler": "prepare", "on": {"ok": "reviw"}, "colour": 1}})
    (project / "bad.json").write_text(json.dumps(bad))
    code, out, err = run_cli(capsys, "validate", "flow.json", "bad.json")
    assert code == 1
    assert out == "flow.json: ok (zf/1, 3 nodes)\n"
    lines = err.splitlines()
    assert lines[0].startswith("bad.json:/nodes/prepare/colour: node 'prepare'")
    assert lines[1].startswith("bad.json:/nodes/prepare/on/ok: node 'prepare' on.ok references")


def test_validate_reports_missing_files_and_bad_json_per_file(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "broken.json").write_text("{not json")
    code, out, _ = run_cli(capsys, "validate", "missing.json", "broken.json", "--json")
    assert code == 1
    report = json.loads(out)
    assert [r["valid"] for r in report] == [False, False]
    assert report[0]["errors"][0]["message"] == "no such file"
    assert "not valid JSON" in report[1]["errors"][0]["message"]


def test_validate_reports_legacy_errors_with_0_1_0_messages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "legacy.json"
    path.write_text(
        json.dumps(
            {"workflow_name": "x", "default_entry_node": "a", "nodes": {"a": {"handler": "a"}}}
        )
    )
    code, out, err = run_cli(capsys, "validate", str(path))
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "node 'a' missing 'outputs'" in err


def test_lint_prints_findings_with_hints_and_fails_on_errors(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "lint", "flow.json")
    assert code == 0 and out.strip() == "0 error(s), 0 warning(s) in 1 file(s)"
    flow = json.loads((project / "flow.json").read_text())
    flow["nodes"]["orphan"] = {"handler": "prepare"}
    flow["nodes"]["publish"]["handler"] = "pubish"
    (project / "lint.json").write_text(json.dumps(flow))
    code, out, _ = run_cli(capsys, "lint", "lint.json", "--handlers", "cli_handlers:HANDLERS")
    assert code == 1
    assert "lint.json:/nodes/publish/handler: error ZF106" in out
    assert "lint.json:/nodes/orphan: warning ZF101" in out
    assert "hint: did you mean 'publish'?" in out
    flow["nodes"]["publish"]["handler"] = "publish"
    (project / "lint.json").write_text(json.dumps(flow))
    assert run_cli(capsys, "lint", "lint.json")[0] == 0
    code, out, _ = run_cli(capsys, "lint", "lint.json", "--strict", "--json")
    assert code == 1 and json.loads(out)[0]["code"] == "ZF101"


def test_schema_prints_either_format(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "schema")
    assert code == 0 and json.loads(out)["$id"] == "urn:zeroflow:schema:zf1"
    code, out, _ = run_cli(capsys, "schema", "--format", "legacy")
    assert json.loads(out)["$id"] == "urn:zeroflow:schema:legacy"


def test_convert_writes_the_other_format_and_warns_about_losses(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "convert", "flow.json", "--to", "legacy")
    legacy = json.loads(out)
    assert code == 0 and legacy["default_entry_node"] == "prepare"
    # zf/1's terminal node (no `on`) has no legacy spelling: said, not silently changed
    assert "flow.json:/nodes/publish: node 'publish' has no 'on'" in err
    legacy["owner"] = "me"
    (project / "legacy.json").write_text(json.dumps(legacy))
    code, _, err = run_cli(capsys, "convert", "legacy.json", "--to", "zf/1", "-o", "back.json")
    assert code == 0
    back = json.loads((project / "back.json").read_text())
    assert back == ZF1 | {"nodes": {**ZF1["nodes"], "publish": {"handler": "publish", "on": {}}}}
    assert err.startswith("zeroflow: warning: legacy.json:/owner: top-level key 'owner' is ignored")
    assert err.count("\n") == 1
    assert run_cli(capsys, "convert", "legacy.json", "--to", "zf/1", "--strict")[0] == 1


@pytest.mark.parametrize(
    ("fmt", "marker"), [("mermaid", "flowchart TD"), ("dot", "digraph"), ("svg", "<svg")]
)
def test_viz_draws_a_zf1_file(
    project: Path, capsys: pytest.CaptureFixture[str], fmt: str, marker: str
) -> None:
    code, out, _ = run_cli(capsys, "viz", "flow.json", "--format", fmt)
    assert code == 0 and marker in out and "review" in out


def test_viz_html_needs_an_output_file_and_can_overlay_a_run(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "viz", "flow.json", "--format", "html")
    assert_one_line_error(code, err, "-o OUT.html")
    code, out, _ = run_cli(
        capsys,
        "viz",
        "flow.json",
        "--format",
        "html",
        "-o",
        "page.html",
        "--store",
        "runs",
        "--run",
        "wait-1",
    )
    assert code == 0 and out.startswith("wrote ")
    assert "<svg" in (project / "page.html").read_text()


# ---------------------------------------------------------------- runs


def test_runs_list_shows_a_table_and_filters(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "runs", "list", "--store", "runs")
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["RUN", "ID", "WORKFLOW", "STATUS", "NODE", "UPDATED"]
    assert row.split()[:4] == ["wait-1", "cli", "waiting", "review"]
    code, out, _ = run_cli(capsys, "runs", "list", "--store", "runs", "--status", "failed")
    assert out == "no failed runs\n"
    code, out, _ = run_cli(capsys, "runs", "list", "--store", "runs", "--workflow", "cli", "--json")
    assert [m["run_id"] for m in json.loads(out)] == ["wait-1"]


def test_runs_list_shows_a_damaged_run_as_corrupt_and_lists_the_others(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damaged = project / "runs" / "broken-1"
    damaged.mkdir()
    (damaged / "metadata.json").write_text("[1, 2]")
    code, out, err = run_cli(capsys, "runs", "list", "--store", "runs")
    assert code == 0
    rows = [line.split() for line in out.splitlines()[1:]]
    assert rows[0][:4] == ["wait-1", "cli", "waiting", "review"]
    assert rows[1][:3] == ["broken-1", "?", "corrupt"]
    assert "run 'broken-1' is corrupt" in err
    code, out, _ = run_cli(capsys, "runs", "list", "--store", "runs", "--json")
    assert {r["run_id"]: r["status"] for r in json.loads(out)} == {
        "wait-1": "waiting",
        "broken-1": "corrupt",
    }
    code, out, _ = run_cli(capsys, "runs", "list", "--store", "runs", "--status", "corrupt")
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["broken-1"]
    code, out, err = run_cli(capsys, "runs", "list", "--store", "runs", "--status", "waiting")
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["wait-1"]
    assert "run 'broken-1' is corrupt" in err  # its status is unknown: still named


def test_runs_show_gives_status_prompt_and_trace(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "runs", "show", "wait-1", "--store", "runs")
    assert code == 0
    assert "status:     waiting" in out
    assert 'waiting:    "Approve v1?"' in out
    trace = out.split("trace:\n", 1)[1].splitlines()
    assert trace[0].split() == ["STEP", "WAVE", "NODE", "STATUS", "DURATION", "OUTPUTS", "ERROR"]
    assert trace[1].split()[:4] == ["1", "1", "prepare", "succeeded"]
    assert " ms" in trace[1]
    code, out, _ = run_cli(capsys, "runs", "show", "wait-1", "--store", "runs", "--json")
    assert json.loads(out)["waiting_prompt"] == "Approve v1?"


def test_runs_show_lists_every_wait_of_a_branch_hitl_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def approve(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(outputs=[], waiting=True, waiting_prompt=f"{ctx.node_name} ok?")

    definition = {
        "workflow_name": "approvals",
        "default_entry_node": "s",
        "engine_policy": {"hitl": "branch"},
        "nodes": {
            "s": {"handler": "step", "outputs": {"ok": [{"target_node": n} for n in AB]}},
            **{n: {"handler": "approve", "outputs": {"ok": []}} for n in AB},
        },
    }

    def step(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(outputs=["ok"])

    store = JsonFileWorkflowStore(tmp_path / "runs")
    WorkflowEngine(definition, {"step": step, "approve": approve}, store=store).run(run_id="b1")
    code, out, _ = run_cli(capsys, "runs", "show", "b1", "--store", str(tmp_path / "runs"))
    assert code == 0
    assert 'waiting:    finance: "finance ok?"\n            legal: "legal ok?"\n' in out


AB = ["legal", "finance"]


def test_runs_events_lists_the_log_and_follow_stops_at_the_end(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "runs", "events", "wait-1", "--store", "runs")
    assert code == 0
    kinds = [line.split()[5] for line in out.splitlines()]
    assert kinds[0] == "wf:start" and "wf:waiting" in kinds
    code, out, _ = run_cli(capsys, "runs", "events", "wait-1", "--store", "runs", "--json")
    assert json.loads(out.splitlines()[0])["kind"] == "wf:start"
    run_cli(capsys, *resume_wait_1("--input", "{}"))
    code, out, _ = run_cli(
        capsys, "runs", "events", "wait-1", "--store", "runs", "--follow", "--poll-seconds", "0"
    )
    assert code == 0 and "wf:end" in out


def test_runs_resume_continues_a_waiting_run(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, *resume_wait_1("--input", '{"ok": true}', "--json"))
    result = json.loads(out)
    assert code == 0 and result["status"] == "succeeded"
    assert result["trace"] == ["prepare", "review", "review", "publish"]
    snap = JsonFileWorkflowStore(project / "runs").load_snapshot("wait-1")
    assert snap.state.workflow["published"] is True


def test_a_resumed_run_that_fails_exits_3_and_names_the_error(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, *resume_wait_1("--input", '{"fail": true}'))
    assert code == 3
    assert "run wait-1: failed" in out
    assert "error: HANDLER_EXCEPTION at node 'review': " in out


def test_runs_redrive_and_fork_call_the_engine(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--store", "runs", "--workflow", "flow.json", "--handlers", "cli_handlers:HANDLERS"]
    run_cli(capsys, *resume_wait_1("--input", '{"fail": true}'))
    code, out, _ = run_cli(capsys, "runs", "redrive", "wait-1", *common)
    assert "run wait-1:" in out
    code, out, _ = run_cli(
        capsys, "runs", "fork", "wait-1", "--step", "1", "--new-run-id", "copy-1", *common
    )
    assert code in (0, 3) and "copy-1" in out
    seqs = [c.seq for c in JsonFileWorkflowStore(project / "runs").history("wait-1")]
    code, out, _ = run_cli(
        capsys, "runs", "fork", "wait-1", "--seq", str(seqs[1]), "--new-run-id", "copy-2", *common
    )
    assert code in (0, 3) and "copy-2" in out
    code, _, err = run_cli(capsys, "runs", "fork", "wait-1", "--new-run-id", "copy-3", *common)
    assert_one_line_error(code, err, "--step N or --seq S")


def test_a_sqlite_store_is_opened_from_a_db_file(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import cli_handlers

    store = zeroflow.stores.SqliteWorkflowStore(project / "runs.db")
    WorkflowEngine(ZF1, cli_handlers.HANDLERS, store=store).run(run_id="sq-1")
    code, out, _ = run_cli(capsys, "runs", "list", "--store", "runs.db")
    assert code == 0 and "sq-1" in out


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["runs", "show", "nope", "--store", "runs"], ["run 'nope' not found"]),
        (["runs", "list", "--store", "nowhere"], ["store folder 'nowhere' does not exist"]),
        (["runs", "list", "--store", "missing.sqlite"], ["missing.sqlite' does not exist"]),
        (["runs", "list", "--store", "flow.json"], ["neither a folder"]),
        (["convert", "missing.json", "--to", "zf/1"], ["missing.json: no such file"]),
        (["viz", "flow.json", "--run", "wait-1"], ["--run needs --store"]),
        (
            resume_wait_1(handlers="no_such_module:HANDLERS"),
            ["cannot import the --handlers module 'no_such_module'"],
        ),
        (
            resume_wait_1(handlers="cli_handlers:NOT_A_MAP"),
            ["must be a mapping of handler name to callable"],
        ),
        (resume_wait_1(handlers="cli_handlers:NOPE"), ["has no attribute 'NOPE'"]),
        (resume_wait_1(handlers="cli_handlers"), ["MODULE:ATTR"]),
        (resume_wait_1("--input", "{oops"), ["--input is not valid JSON"]),
        (resume_wait_1(workflow="missing.json"), ["missing.json: no such file"]),
    ],
)
def test_bad_input_is_one_line_on_stderr_never_a_traceback(
    project: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needles: list[str]
) -> None:
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, *needles)


def test_a_locked_run_is_reported_in_one_line(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    class LockedStore(JsonFileWorkflowStore):
        def load_snapshot(self, run_id: str) -> Any:
            raise RunLockedError(f"run '{run_id}' is locked by worker-2 until 12:00", run_id=run_id)

    monkeypatch.setattr("zeroflow._cli_runs._open_store", lambda path: LockedStore(path))
    code, _, err = run_cli(capsys, "runs", "show", "wait-1", "--store", "runs")
    assert_one_line_error(code, err, "locked by worker-2")


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert main(["runs", "list"]) == 2  # --store is required
    assert "usage:" in capsys.readouterr().err


def test_the_progress_line_shows_nodes_done_current_node_and_elapsed_time() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    progress = _Progress(stream)
    for kind, node in [
        ("wf:start", None),
        ("node:start", "a"),
        ("node:end", "a"),
        ("node:start", "b"),
    ]:
        progress(Event("r9", 1, 1, node, kind, "2026-01-01T00:00:00+00:00", {}))
    progress.close()
    text = stream.getvalue()
    assert "run r9: 1 node(s) done, at 'b', " in text and text.endswith("\r\x1b[K")
    quiet = io.StringIO()
    _Progress(quiet)(Event("r", 1, 1, "a", "node:start", "t", {}))
    assert quiet.getvalue() == ""


# ---------------------------------------------------------------- as a real process


def _zeroflow(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zeroflow", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_python_m_zeroflow_validates_and_resumes_in_a_subprocess(project: Path) -> None:
    done = _zeroflow("validate", "flow.json", cwd=project)
    assert done.returncode == 0 and done.stdout == "flow.json: ok (zf/1, 3 nodes)\n"
    done = _zeroflow(*resume_wait_1("--input", "{}"), cwd=project)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("run wait-1: succeeded")
    assert done.stderr == ""  # no progress line when stderr is not a terminal


def test_a_subprocess_error_is_one_line_without_a_traceback(project: Path) -> None:
    done = _zeroflow("runs", "show", "ghost", "--store", "runs", cwd=project)
    assert done.returncode == 1
    assert done.stderr == "zeroflow: error: run 'ghost' not found\n"
