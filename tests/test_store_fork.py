"""A store built before ``os.fork()`` (a multiprocessing pool, a prefork server) stays safe.

The child must not commit the parent's pending writes, nor use the parent's
SQLite connection (SQLite forbids carrying a connection across ``fork``).
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

from _support import LOOP, count_to, in_child, lock_held_briefly, make_store
from zeroflow import WorkflowEngine
from zeroflow._models import Event
from zeroflow.testing import sample_snapshot

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only"),
    # Python 3.12+ warns about fork() in a process with threads: forking anyway is the point.
    pytest.mark.filterwarnings(
        "ignore:.*use of fork\\(\\) may lead to deadlocks:DeprecationWarning"
    ),
]


@pytest.mark.parametrize("kind", ["json", "sqlite"])
def test_a_forked_child_drives_its_own_runs_and_leaves_the_parents_pending_writes(
    kind: str, tmp_path: Path
) -> None:
    store: Any = make_store(kind, tmp_path)
    store.acquire_lease("parent", "p")
    store.save_snapshot(sample_snapshot("parent"))
    store.append_events("parent", [Event("parent", 1, 1, "a", "node:start", "t", {"node": "a"})])
    # the parent's checkpoint is pending (it holds the lease): a child must not write it
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, reported through the exit code
        code = 1
        try:
            result = WorkflowEngine(LOOP, {"count": count_to(20)}, store=store).run(
                {}, run_id="child"
            )
            store.flush()
            code = 0 if result.success else 2
        finally:
            sys.stdout.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    store.release_lease("parent", "p")
    fresh: Any = make_store(kind, tmp_path)
    assert fresh.load_snapshot("child").state.workflow == {"n": 20}
    assert [e.kind for e in fresh.events("parent")] == ["node:start"]
    assert len(fresh.history("parent")) == 1
    if kind == "sqlite":
        db = sqlite3.connect(tmp_path / "runs.db")
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()


@pytest.mark.parametrize("kind", ["memory", "json", "sqlite"])
def test_a_child_forked_while_another_thread_held_the_store_lock_does_not_hang(
    kind: str, tmp_path: Path
) -> None:
    store: Any = make_store(kind, tmp_path)

    def child() -> int:
        engine = WorkflowEngine(LOOP, {"count": count_to(3)}, store=store)
        return 0 if engine.run({}, run_id="child").success else 2

    with lock_held_briefly(store):
        assert in_child(child) == 0
