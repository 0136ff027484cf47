"""prune(keep_last=N) drops the events of the checkpoints it removes, the same in every store."""

from __future__ import annotations

from pathlib import Path

import pytest

from _support import make_store, run_loop

KINDS = ["memory", "json", "sqlite"]


@pytest.mark.parametrize("kind", KINDS)
def test_prune_drops_the_events_logged_before_the_first_kept_checkpoint(
    kind: str, tmp_path: Path
) -> None:
    store = make_store(kind, tmp_path)
    run_loop(store, 30)
    before = store.events("loop-1")
    kept_steps = [c.step for c in store.history("loop-1")][-2:]
    pruned = store.prune(keep_last=2)
    after = store.events("loop-1")
    assert pruned.checkpoints == {"loop-1": 30}  # start + 30 nodes + end, 2 kept
    assert pruned.events == {"loop-1": len(before) - len(after)}
    assert 0 < len(after) < len(before)
    # what is left is the tail of the log: the events that led to the kept checkpoints
    assert [e.to_dict() for e in after] == [e.to_dict() for e in before[-len(after) :]]
    assert min(e.step for e in after) >= kept_steps[0] - 1
    assert pruned.bytes_freed > 0
    assert store.load_snapshot("loop-1").state.workflow == {"n": 30}


@pytest.mark.parametrize("kind", KINDS)
def test_prune_with_keep_events_keeps_the_whole_log(kind: str, tmp_path: Path) -> None:
    store = make_store(kind, tmp_path)
    run_loop(store, 30)
    before = [e.to_dict() for e in store.events("loop-1")]
    pruned = store.prune(keep_last=2, keep_events=True)
    assert pruned.events == {}
    assert [e.to_dict() for e in store.events("loop-1")] == before


@pytest.mark.parametrize("kind", KINDS)
def test_a_second_prune_after_more_checkpoints_cuts_at_the_new_first_kept_one(
    kind: str, tmp_path: Path
) -> None:
    store = make_store(kind, tmp_path)
    run_loop(store, 10, run_id="a")
    store.prune(keep_last=3)
    first = store.events("a")
    store.prune(keep_last=1)
    second = store.events("a")
    assert len(second) < len(first)
    assert [e.to_dict() for e in second] == [e.to_dict() for e in first[-len(second) :]]
