"""Kill -9 a process driving a run, at random moments and inside store writes; nothing is lost.

A child process drives a 30-node workflow that loops back three times
(90 steps) against a file-backed store and is killed with SIGKILL, again
and again; each new child loads the run and resumes it at once, with the
default lease settings (a RunLockedError fails the test: the dead driver's
lease must be taken over because its process is gone). At the end the
state, the trace, the audit trail and the event log equal those of a run
that was never interrupted: the node in flight at a kill runs again, but
nothing that reached a checkpoint is lost or written twice.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from zeroflow.stores import JsonFileWorkflowStore, SqliteWorkflowStore

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

KILLS_PER_STORE = 25
SRC = Path(__file__).resolve().parent.parent / "src"

CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    kind, base, kill_in_write = sys.argv[1], sys.argv[2], int(sys.argv[3])
    from zeroflow import HandlerResult, WorkflowEngine
    from zeroflow.stores import JsonFileWorkflowStore, SqliteWorkflowStore
    import zeroflow.stores._files as files
    import zeroflow.stores.jsonfile as jsonfile

    N = 30
    nodes = {}
    for i in range(N):
        if i < N - 1:
            outputs = {"ok": [{"target_node": f"n{i + 1}"}]}
        else:
            outputs = {"again": [{"target_node": "n0", "is_loopback": True}], "done": []}
        nodes[f"n{i}"] = {"handler": "work", "outputs": outputs}
    WF = {"workflow_name": "crash", "default_entry_node": "n0", "nodes": nodes}

    def work(ctx):
        print("node", flush=True)  # the parent picks its moment by nodes, not by the clock
        time.sleep(0.002)
        count = ctx.state.workflow.get("count", 0) + 1
        visits = ctx.state.node.get(ctx.node_name, {}).get("visits", 0) + 1
        last = ctx.node_name == f"n{N - 1}"
        outputs = ["again" if ctx.wave < 3 else "done"] if last else ["ok"]
        return HandlerResult(
            outputs,
            workflow_updates={"count": count, "path": {ctx.node_name: ctx.wave}},
            node_updates={"visits": visits},
            tags=[f"{ctx.node_name}@{ctx.wave}"] if ctx.node_name.endswith("0") else None,
        )

    # Default lease settings: the killed driver's lease is taken over at once because
    # its process is gone from this host, not because a short TTL ran out.
    if kind == "json":
        store = JsonFileWorkflowStore(base)
    else:
        store = SqliteWorkflowStore(base)

    if kill_in_write and kind == "json":
        calls = [0]
        real = files.write_all
        def torn(fd, data):
            calls[0] += 1
            if calls[0] == kill_in_write:
                os.write(fd, data[: max(1, len(data) // 2)])
                os.kill(os.getpid(), signal.SIGKILL)
            real(fd, data)
        files.write_all = torn
        jsonfile.write_all = torn
    elif kill_in_write:
        class Dying:
            def __init__(self, db):
                self.db, self.commits = db, 0
            def execute(self, sql, *args):
                if sql == "COMMIT":
                    self.commits += 1
                    if self.commits == kill_in_write:
                        os.kill(os.getpid(), signal.SIGKILL)
                return self.db.execute(sql, *args)
            def __getattr__(self, name):
                return getattr(self.db, name)
        store._db = Dying(store._db)

    def saved(event):
        if event.kind == "store:saved":
            print("saved", flush=True)  # a checkpoint is written: a moment to die at too

    engine = WorkflowEngine(WF, {"work": work}, store=store, event_callback=saved)
    print("ready", flush=True)
    try:
        snap = store.load_snapshot("crash")
    except KeyError:
        engine.run({"seed": 1}, run_id="crash")
    else:
        if snap.status != "succeeded":
            engine.run_from_checkpoint(snap)
    print("done", flush=True)
    """
)


def open_store(kind: str, base: Path) -> Any:
    if kind == "json":
        return JsonFileWorkflowStore(base)
    return SqliteWorkflowStore(base)


def child(script: Path, kind: str, base: Path, kill_in_write: int = 0) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        [sys.executable, str(script), kind, str(base), str(kill_in_write)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _skip_lines(proc: subprocess.Popen[str], n: int) -> None:
    """Read ``n`` lines the child printed (fewer if it ends first)."""
    assert proc.stdout is not None
    for _ in range(n):
        if not proc.stdout.readline():
            return


def wait(proc: subprocess.Popen[str]) -> int:
    code = proc.wait(timeout=60)
    assert proc.stdout is not None
    proc.stdout.close()
    return code


def final_status(kind: str, base: Path) -> str:
    store = open_store(kind, base)
    try:
        return str(store.load_snapshot("crash").status)
    finally:
        store.close()


def story(kind: str, base: Path) -> dict[str, Any]:
    """Everything that must survive the kills, without timestamps and durations."""
    store = open_store(kind, base)
    try:
        return _story(store)
    finally:
        store.close()


def _story(store: Any) -> dict[str, Any]:
    snap = store.load_snapshot("crash")
    events = []
    skip = resumes = recovered = 0
    for event in store.events("crash"):
        if skip:
            skip -= 1
            continue
        if event.kind == "wf:resumed":  # a new process took over: its opening checkpoint
            skip = 2
            resumes += 1
            continue
        if event.kind == "store:recovered":
            recovered += 1
            continue
        events.append((event.kind, event.step, event.wave, event.node, event.data))
    return {
        "status": snap.status,
        "state": snap.state.to_dict(),
        "trace": snap.trace,
        "tags": snap.tags,
        "audit": [(r.step, r.wave, r.node, r.status, r.outputs) for r in snap.audit_trail],
        "events": events,
        "resumes": resumes,
        "recovered": recovered,
    }


@pytest.mark.parametrize("kind", ["json", "sqlite"])
def test_a_run_killed_at_random_moments_ends_as_if_never_interrupted(
    kind: str, tmp_path: Path
) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    target = "ref.db" if kind == "sqlite" else "ref"
    reference = child(script, kind, tmp_path / target)
    assert wait(reference) == 0
    expected = story(kind, tmp_path / target)
    assert expected["status"] == "succeeded" and len(expected["trace"]) == 90

    base = tmp_path / ("crash.db" if kind == "sqlite" else "crash")
    rng = random.Random(f"zeroflow-crash-{kind}")
    kills = in_writes = 0
    while True:
        attempt = kills + 1
        write_kill = rng.randint(1, 6) if attempt % 4 == 0 else 0
        proc = child(script, kind, base, write_kill)
        if kills < KILLS_PER_STORE + 5:
            if not write_kill:
                # A random moment, counted in what the child printed (a node started, a
                # checkpoint written) so that a loaded machine's slow start cannot push
                # every kill before the first checkpoint; no clock decides it.
                _skip_lines(proc, rng.randint(0, 8))
                proc.send_signal(signal.SIGKILL)
            code = wait(proc)
        else:
            code = wait(proc)
            assert code == 0
        if code == -signal.SIGKILL:
            kills += 1
            in_writes += bool(write_kill)
            continue
        assert code == 0, f"child failed with exit code {code}"
        if final_status(kind, base) == "succeeded":
            break

    assert kills >= KILLS_PER_STORE, f"only {kills} kills landed before the run finished"
    assert in_writes >= 3, f"only {in_writes} kills landed inside store writes"
    got = story(kind, base)
    for key in ("status", "state", "trace", "tags", "audit"):
        assert got[key] == expected[key], key
    assert got["events"] == expected["events"]
    # A kill that lands before a new driver's first commit leaves no trace, so only some
    # of the kills show up as resumes; enough of them must, or nothing was tested.
    assert got["resumes"] >= 5, "too few kills landed after the first checkpoint"
    if kind == "json":
        assert got["recovered"] >= 1, "no torn write was recovered"
