"""What a new user hit in the CLI (issue 20, item 7): pipes, viz formats, progress, columns."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from zeroflow import Event, JsonFileWorkflowStore, WorkflowEngine
from zeroflow._cli import build_parser, main
from zeroflow._cli_runs import EVENT_LINE_CHARS, _Progress

FLOW: dict[str, Any] = {
    "version": "zf/1",
    "name": "polish",
    "entry": "work",
    "nodes": {
        "work": {"handler": "work", "on": {"ok": "fan"}},
        "fan": {"handler": "fan"},
    },
}

OTHER: dict[str, Any] = {
    "version": "zf/1",
    "name": "other",
    "entry": "solo",
    "nodes": {"solo": {"handler": "work"}},
}

MODULE = """
from zeroflow import HandlerResult

def work(ctx):
    return HandlerResult(outputs=["ok"], workflow_updates={"who": ctx.services.get("who")})

def fan(ctx):
    if ctx.state.input.get("mode") == "fail":
        raise RuntimeError("x" * 25000)
    return HandlerResult(outputs=[])

HANDLERS = {"work": work, "fan": fan}
SERVICES = {"who": "service-7"}
NOT_A_MAP = [1, 2]
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with two workflow files, a handler module and a store with a failed run."""
    (tmp_path / "flow.json").write_text(json.dumps(FLOW), encoding="utf-8")
    (tmp_path / "other.json").write_text(json.dumps(OTHER), encoding="utf-8")
    (tmp_path / "polish_handlers.py").write_text(MODULE, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("polish_handlers", None)
    import polish_handlers  # type: ignore[import-not-found]

    engine = WorkflowEngine(FLOW, polish_handlers.HANDLERS, store=JsonFileWorkflowStore("runs"))
    assert engine.run({"mode": "fail"}, run_id="failed-1").status == "failed"
    return tmp_path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------- a closed pipe


def test_runs_events_into_a_pipe_closed_early_ends_quietly_with_status_141(
    project: Path,
) -> None:
    store = JsonFileWorkflowStore("runs")
    for i in range(3000):  # far more than a pipe buffers
        store.append_event("failed-1", Event("failed-1", 1, 1, "n", "custom", "t", {"i": i}))
    store.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "zeroflow", "runs", "events", "failed-1", "--store", "runs"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=project,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # what `| head -1` does
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 141
    assert b"wf:start" in first
    assert err == ""


def test_a_broken_pipe_inside_main_is_exit_141_and_no_message(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Closed())
    code = main(["runs", "events", "failed-1", "--store", "runs"])
    assert code == 141
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------- viz


@pytest.mark.parametrize(
    ("name", "marker"),
    [
        ("out.svg", "<svg"),
        ("out.html", "<!DOCTYPE html>"),
        ("out.HTM", "<!DOCTYPE html>"),
        ("out.mmd", "flowchart"),
        ("out.mermaid", "flowchart"),
        ("out.dot", "digraph"),
        ("out.gv", "digraph"),
    ],
)
def test_viz_picks_the_format_from_the_output_extension(
    project: Path, capsys: pytest.CaptureFixture[str], name: str, marker: str
) -> None:
    code, out, err = cli(capsys, "viz", "flow.json", "-o", name)
    assert code == 0 and err == ""
    assert out.startswith("wrote ") and name in out
    text = (project / name).read_text(encoding="utf-8")
    assert marker in text
    if marker != "<svg" and marker != "<!DOCTYPE html>":
        assert "<svg" not in text


def test_an_explicit_format_wins_over_the_extension_with_a_warning(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "viz", "flow.json", "--format", "dot", "-o", "pic.svg")
    assert code == 0 and out == "wrote pic.svg\n"
    assert (project / "pic.svg").read_text(encoding="utf-8").startswith("digraph")
    assert err.startswith("zeroflow: warning: writing dot into 'pic.svg'") and "svg" in err
    code, out, err = cli(capsys, "viz", "flow.json", "-o", "pic.txt")  # unknown: svg, no warning
    assert code == 0 and err == "" and "<svg" in (project / "pic.txt").read_text()


def test_viz_says_wrote_for_every_format_written_to_a_file(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for fmt in ("svg", "mermaid", "dot"):
        code, out, _ = cli(capsys, "viz", "flow.json", "--format", fmt, "-o", "f")
        assert code == 0 and out == "wrote f\n", fmt
    code, out, _ = cli(capsys, "viz", "flow.json", "--format", "svg")
    assert out.startswith("<svg") or out.startswith("<?xml")  # stdout gets the drawing itself


def test_viz_refuses_to_overlay_a_run_of_another_workflow(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "viz", "other.json", "--store", "runs", "--run", "failed-1")
    assert code == 1 and out == ""
    assert err.count("\n") == 1
    assert "'polish'" in err and "'other'" in err and "failed-1" in err
    graph_hash = WorkflowEngine(FLOW, {}).workflow_hash[:12]
    assert graph_hash in err


def test_viz_warns_when_the_run_was_started_with_another_version(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    changed = json.loads(json.dumps(FLOW))
    changed["nodes"]["fan"]["description"] = "v2"
    (project / "v2.json").write_text(json.dumps(changed), encoding="utf-8")
    code, out, err = cli(capsys, "viz", "v2.json", "--store", "runs", "--run", "failed-1")
    assert code == 0 and "<svg" in out
    assert "warning: run 'failed-1' was started with definition" in err


# ---------------------------------------------------------------- progress


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_line_keeps_moving_while_a_node_runs() -> None:
    now = [100.0]
    ticks: list[Any] = []
    stopped: list[bool] = []

    def ticker(tick: Any) -> Any:
        ticks.append(tick)
        return lambda: stopped.append(True)

    stream = Tty()
    progress = _Progress(stream, clock=lambda: now[0], ticker=ticker)
    progress(Event("r1", 0, 1, None, "wf:start", "t", {}))
    progress(Event("r1", 1, 1, "slow", "node:start", "t", {}))
    assert len(ticks) == 1  # one ticker for the whole run
    now[0] = 107.5
    ticks[0]()  # no event came: the ticker redraws
    assert stream.getvalue().endswith("run r1: 0 node(s) done, at 'slow', 7.5s")
    now[0] = 130.0
    ticks[0]()
    assert stream.getvalue().endswith("0 node(s) done, at 'slow', 30.0s")
    progress.close()
    assert stopped == [True]
    before = stream.getvalue()
    ticks[0]()  # a tick that races the close draws nothing
    assert stream.getvalue() == before and before.endswith("\r\x1b[K")


def test_no_ticker_starts_when_stderr_is_not_a_terminal() -> None:
    started: list[Any] = []
    progress = _Progress(io.StringIO(), ticker=lambda tick: started.append(tick) or (lambda: None))
    progress(Event("r1", 1, 1, "a", "node:start", "t", {}))
    progress.close()
    assert started == []


def test_the_default_ticker_thread_stops_when_closed() -> None:
    import threading

    from zeroflow._cli_runs import thread_ticker

    stop = thread_ticker(lambda: None)
    assert any(t.name == "zeroflow-progress" for t in threading.enumerate())
    stop()
    for t in threading.enumerate():
        if t.name == "zeroflow-progress":
            t.join(timeout=5)
    assert not any(t.name == "zeroflow-progress" for t in threading.enumerate())


# ---------------------------------------------------------------- runs show / list / events


def test_runs_show_has_an_error_column_with_the_original_failure(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "runs", "show", "failed-1", "--store", "runs")
    assert code == 0
    trace = out.split("trace:\n", 1)[1].splitlines()
    assert trace[0].split()[-1] == "ERROR"
    work, fan = trace[1], trace[2]
    assert "HANDLER_EXCEPTION" not in work
    assert "HANDLER_EXCEPTION: " in fan and "xxx" in fan
    assert len(fan) < 250  # a 25 KB message is cut in the table
    code, out, _ = cli(capsys, "runs", "show", "failed-1", "--store", "runs", "--json")
    assert len(json.loads(out)["audit_trail"][1]["error"]["message"]) >= 25000


def test_runs_list_names_a_run_whose_metadata_is_missing_instead_of_no_runs(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "runs" / "failed-1" / "metadata.json").unlink()
    code, out, err = cli(capsys, "runs", "list", "--store", "runs")
    assert code == 0 and "no runs" not in out
    assert out.splitlines()[1].split()[:3] == ["failed-1", "?", "corrupt"]
    assert "run 'failed-1' is corrupt" in err and "metadata.json is missing" in err


def test_runs_list_with_a_status_filter_still_names_the_damaged_run(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "runs" / "failed-1" / "metadata.json").write_text("{oops", encoding="utf-8")
    code, out, err = cli(capsys, "runs", "list", "--store", "runs", "--status", "waiting")
    assert code == 0
    assert out == "no waiting runs that can be read (1 cannot: see above)\n"
    assert "run 'failed-1' is corrupt" in err


def test_a_folder_that_is_not_a_run_yet_is_not_reported(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "runs" / "starting").mkdir()
    (project / "runs" / "starting" / "journal").mkdir()
    code, out, err = cli(capsys, "runs", "list", "--store", "runs")
    assert code == 0 and "starting" not in out and err == ""


def test_runs_events_cuts_long_lines_and_full_prints_them_whole(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "runs", "events", "failed-1", "--store", "runs")
    assert code == 0
    lines = out.splitlines()
    assert max(map(len, lines)) <= EVENT_LINE_CHARS
    cut = [line for line in lines if "more characters; --full prints them]" in line]
    assert cut and all("node:error" in line or "wf:end" in line for line in cut)
    code, out, _ = cli(capsys, "runs", "events", "failed-1", "--store", "runs", "--full")
    assert max(map(len, out.splitlines())) > 25000
    assert "--full prints them" not in out
    code, out, _ = cli(capsys, "runs", "events", "failed-1", "--store", "runs", "--json")
    assert all(json.loads(line) for line in out.splitlines())  # JSON lines are never cut


# ---------------------------------------------------------------- services and help


def test_runs_fork_and_resume_pass_the_services_named_by_services(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--store", "runs", "--workflow", "flow.json"]
    common += ["--handlers", "polish_handlers:HANDLERS"]
    _, out, _ = cli(
        capsys, "runs", "fork", "failed-1", "--step", "0", "--new-run-id", "f2", *common,
        "--services", "polish_handlers:SERVICES",
    )  # fmt: skip
    assert "f2" in out
    code, _, _ = cli(
        capsys, "runs", "resume", "f2", *common, "--services", "polish_handlers:SERVICES"
    )
    assert code == 3  # it fails at 'fan' again, as its input says
    snap = JsonFileWorkflowStore(project / "runs").load_snapshot("f2")
    assert snap.state.workflow["who"] == "service-7"


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("polish_handlers", "--services wants MODULE:ATTR"),
        ("polish_handlers:NOT_A_MAP", "must be a mapping of service name to object"),
        ("polish_handlers:MISSING", "has no attribute 'MISSING'"),
        ("no_such_mod:X", "cannot import the --services module 'no_such_mod'"),
    ],
)
def test_a_bad_services_spec_is_one_line(
    project: Path, capsys: pytest.CaptureFixture[str], spec: str, needle: str
) -> None:
    code, _, err = cli(
        capsys, "runs", "redrive", "failed-1", "--store", "runs", "--workflow", "flow.json",
        "--handlers", "polish_handlers:HANDLERS", "--services", spec,
    )  # fmt: skip
    assert code == 1 and err.count("\n") == 1 and needle in err


def _actions(parser: argparse.ArgumentParser, where: str) -> list[tuple[str, argparse.Action]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _actions(sub, f"{where} {name}")
        elif not isinstance(action, argparse._HelpAction):
            found.append((where, action))
    return found


def test_every_argument_of_every_command_has_help_text() -> None:
    missing = [
        f"{where}: {action.dest}"
        for where, action in _actions(build_parser(), "zeroflow")
        if not action.help
    ]
    assert missing == []
