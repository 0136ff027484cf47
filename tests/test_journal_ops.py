"""A step delta's ops: what a deletion makes moot is not journaled, and replay still agrees."""

from __future__ import annotations

import copy

from zeroflow._journal import apply_delta
from zeroflow._live import LiveRun
from zeroflow._models import RunSnapshot


def _live() -> tuple[LiveRun, RunSnapshot]:
    snap = RunSnapshot("r1", "wf", "h")
    snap.extra["map"] = {"other": {"results": {"0": 1}}}
    stored = copy.deepcopy(snap)
    return LiveRun(snap, journaling=True), stored


def test_a_deleted_path_drops_the_ops_below_it_and_replays_to_the_same_extra() -> None:
    run, stored = _live()
    for i in range(50):
        run.set_extra_path(("map", "each", "results", str(i)), {"v": i})
    run.set_extra_path(("map", "keep"), 7)
    run.set_extra_path(("map", "each"), None)
    delta = run.delta()
    assert [op[1] for op in delta.ops] == [("extra", "map", "keep"), ("extra", "map", "each")]
    apply_delta(stored, delta)
    assert stored.extra == run.snap.extra == {"map": {"other": {"results": {"0": 1}}, "keep": 7}}


def test_a_sibling_with_a_longer_name_is_not_taken_for_the_deleted_path() -> None:
    run, stored = _live()
    run.set_extra_path(("map", "each", "results", "1"), 1)
    run.set_extra_path(("map", "eachother"), 2)
    run.set_extra_path(("map", "each", "results"), None)
    delta = run.delta()
    assert [op[1] for op in delta.ops] == [
        ("extra", "map", "eachother"),
        ("extra", "map", "each", "results"),
    ]
    apply_delta(stored, delta)
    assert stored.extra == run.snap.extra


def test_ops_already_marked_as_stored_are_not_revisited() -> None:
    run, stored = _live()
    run.set_extra_path(("map", "each", "results", "0"), 0)
    apply_delta(stored, run.delta())  # stored: the mark is set
    run.set_extra_path(("map", "each"), None)
    delta = run.delta()
    assert [op[0] for op in delta.ops] == ["del"]
    apply_delta(stored, delta)
    assert stored.extra == run.snap.extra == {"map": {"other": {"results": {"0": 1}}}}
