"""Issue 15: what stores report of waiting runs and of checkpoints that share a step.

- Branch HITL: ``list_metadata()`` names the first node a run still waits on
  (``current_node``) and lists them all (``waiting_nodes``), in every store.
- ``load_snapshot(run_id, seq=S)`` reaches one checkpoint exactly (a pause
  that its resume at the same step shadows for ``step=N``); ``history()``
  entries carry their ``seq``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from _support import task
from zeroflow import (
    CheckpointNotFoundError,
    HandlerResult,
    WorkflowContext,
    WorkflowEngine,
)

KINDS = ["memory", "json", "sqlite", "postgres"]
APPROVERS = ["legal", "finance", "ops"]


def approvals(hitl: str = "branch") -> dict[str, Any]:
    """s fans out to three approvers and prep -> pack; ship joins the approvers."""
    nodes = {
        "s": task("step", *APPROVERS, "prep"),
        "prep": task("step", "pack"),
        "pack": task("step"),
        "ship": task("step", join={"mode": "and", "wait_for": list(APPROVERS)}),
    }
    for name in APPROVERS:
        nodes[name] = task("approve", "ship")
    return {
        "workflow_name": "approvals",
        "default_entry_node": "s",
        "engine_policy": {"hitl": hitl},
        "nodes": nodes,
    }


def step(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"])


def approve(ctx: WorkflowContext) -> HandlerResult:
    if ctx.node_state.get("asked"):
        return HandlerResult(outputs=["ok"])
    return HandlerResult(
        outputs=[], waiting=True, waiting_prompt=f"{ctx.node_name}?", node_updates={"asked": True}
    )


HANDLERS = {"step": step, "approve": approve}


def summary(store: Any, run_id: str) -> Any:
    return next(m for m in store.list_metadata() if m.run_id == run_id)


# ---------------------------------------------------------------- branch waits


@pytest.mark.parametrize("kind", KINDS)
def test_a_run_waiting_on_branches_names_the_nodes_that_still_wait(
    kind: str, store_of: Callable[..., Any]
) -> None:
    store = store_of(kind)
    engine = WorkflowEngine(approvals(), HANDLERS, store=store)
    paused = engine.run(run_id="o")
    assert paused.trace[-1] == "pack"  # the last node that ran waits on nothing
    meta = summary(store, "o")
    assert meta.status == "waiting" and meta.waiting
    assert meta.current_node == "legal"
    assert meta.waiting_nodes == ("legal", "finance", "ops") == tuple(paused.waiting_nodes)

    after = engine.resume("o", "legal")
    assert after.status == "waiting" and after.trace[-1] == "legal"
    meta = summary(store, "o")
    assert meta.current_node == "finance"  # legal ran last, but no longer waits
    assert meta.waiting_nodes == ("finance", "ops") == tuple(after.waiting_nodes)
    assert after.waiting_prompt == "finance?"

    engine.resume("o", "ops")
    assert (summary(store, "o").current_node, summary(store, "o").waiting_nodes) == (
        "finance",
        ("finance",),
    )
    done = engine.resume("o", "finance")
    assert done.status == "succeeded"
    meta = summary(store, "o")
    assert (meta.current_node, meta.waiting_nodes, meta.waiting) == ("ship", (), False)


@pytest.mark.parametrize("kind", KINDS)
def test_a_run_mode_pause_still_names_its_waiting_node(
    kind: str, store_of: Callable[..., Any]
) -> None:
    store = store_of(kind)
    engine = WorkflowEngine(approvals(hitl="run"), HANDLERS, store=store)
    engine.run(run_id="o")
    meta = summary(store, "o")
    assert (meta.current_node, meta.waiting_nodes) == ("legal", ("legal",))


# ---------------------------------------------------------------- checkpoints by seq


def paused_then_resumed(store: Any) -> tuple[WorkflowEngine, int]:
    """Run ``o`` to its first pause and resume ``legal`` (run mode); the pause's step."""
    engine = WorkflowEngine(approvals(hitl="run"), HANDLERS, store=store)
    paused = engine.run(run_id="o")
    assert paused.checkpoint is not None
    engine.resume("o", resume_input="yes")
    return engine, paused.checkpoint.step


@pytest.mark.parametrize("kind", KINDS)
def test_seq_reaches_the_pause_that_its_resume_shadows(
    kind: str, store_of: Callable[..., Any]
) -> None:
    store = store_of(kind)
    _, at = paused_then_resumed(store)
    history = store.history("o")
    seqs = [h.seq for h in history]
    assert seqs == sorted(set(seqs)) and all(isinstance(s, int) for s in seqs)
    same_step = [h for h in history if h.step == at]
    assert [h.status for h in same_step][:2] == ["waiting", "running"]
    pause = same_step[0]

    # step=N keeps meaning the last checkpoint at step N (the resume) ...
    assert store.load_snapshot("o", step=at).status == "running"
    # ... and seq= names the pause exactly, alone or with its step.
    for snap in (
        store.load_snapshot("o", seq=pause.seq),
        store.load_snapshot("o", at, seq=pause.seq),
    ):
        assert (snap.status, snap.step, snap.seq) == ("waiting", at, pause.seq)
        assert snap.ready_now[0] == "legal" and snap.waiting_prompt == "legal?"
    # every history entry loads back as itself
    for h in history:
        snap = store.load_snapshot("o", seq=h.seq)
        assert (snap.seq, snap.step, snap.status) == (h.seq, h.step, h.status)
        assert h.to_dict()["seq"] == h.seq


@pytest.mark.parametrize("kind", KINDS)
def test_a_seq_the_history_does_not_hold_is_refused_saying_what_it_holds(
    kind: str, store_of: Callable[..., Any]
) -> None:
    store = store_of(kind)
    _, at = paused_then_resumed(store)
    history = store.history("o")
    last = history[-1].seq
    with pytest.raises(
        CheckpointNotFoundError, match=rf"no checkpoint seq {last + 5}.*seq 1 to {last}"
    ):
        store.load_snapshot("o", seq=last + 5)
    with pytest.raises(KeyError):  # CheckpointNotFoundError is a KeyError, as for step=
        store.load_snapshot("o", seq=0)
    other = next(h for h in history if h.step != at)
    with pytest.raises(
        CheckpointNotFoundError, match=rf"taken at step {other.step}, not at step {at}"
    ):
        store.load_snapshot("o", at, seq=other.seq)
    with pytest.raises(TypeError, match="seq must be a whole number"):
        store.load_snapshot("o", seq=True)


def _fork_takes_seq() -> bool:
    return "seq" in inspect.signature(WorkflowEngine.fork).parameters


@pytest.mark.skipif(
    not _fork_takes_seq(), reason="engine.fork(..., seq=) is the engine's part (see issue 15)"
)
@pytest.mark.parametrize("kind", ["memory", "json", "sqlite"])
def test_fork_by_seq_starts_from_the_shadowed_pause(
    kind: str, store_of: Callable[..., Any]
) -> None:
    store = store_of(kind)
    engine, at = paused_then_resumed(store)
    pause = next(h for h in store.history("o") if h.step == at and h.status == "waiting")
    fork: Any = engine.fork
    forked = fork("o", at, "o2", seq=pause.seq)
    assert forked.status == "waiting" and forked.ready_now[0] == "legal"
    assert forked.extra["forked_from"] == {"run_id": "o", "step": at, "seq": pause.seq}
    again = engine.resume("o2", resume_input="no")
    # legal paused, then ran again on the fork's resume; the next approver waits now
    assert again.trace.count("legal") == 2 and again.waiting_nodes == {"finance": "finance?"}
    with pytest.raises(TypeError, match="needs the step or the seq"):
        fork("o", None, "o3")


# ---------------------------------------------------------------- a running run's summary

LINE = {
    "workflow_name": "line",
    "default_entry_node": "a",
    "nodes": {"a": task("step", "b"), "b": task("step", "c"), "c": task("look")},
}


@pytest.mark.parametrize("kind", KINDS)
def test_a_listing_names_where_a_running_run_is_now(
    kind: str, store_of: Callable[..., Any]
) -> None:
    store = store_of(kind)
    seen: list[tuple[Any, ...]] = []

    def look(ctx: WorkflowContext) -> HandlerResult:
        meta = summary(store, ctx.run_id)
        seen.append((meta.status, meta.current_node, meta.updated_at))
        return HandlerResult(outputs=["ok"])

    WorkflowEngine(LINE, {"step": step, "look": look}, store=store).run(run_id="r")
    after_b = store.load_snapshot("r", step=2)
    assert seen == [("running", "b", after_b.updated_at)]
    assert summary(store, "r").current_node == "c"
