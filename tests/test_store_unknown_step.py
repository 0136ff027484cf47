"""A step for a run a store does not hold is refused once, and poisons nothing after."""

from __future__ import annotations

from pathlib import Path

import pytest

from _support import step_delta
from zeroflow import RunNotFoundError, SqliteWorkflowStore
from zeroflow.testing import sample_snapshot


def test_a_step_for_an_unknown_run_is_reported_and_later_writes_still_work(
    tmp_path: Path,
) -> None:
    store = SqliteWorkflowStore(tmp_path / "runs.sqlite")
    delta = step_delta("ghost", 1)
    with pytest.raises(RunNotFoundError):
        store.append_step("ghost", delta)
        store.flush()
    store.save_snapshot(sample_snapshot("real"))
    store.flush()
    assert [m.run_id for m in store.list_metadata()] == ["real"]
