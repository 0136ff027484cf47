"""``latest_step`` and the stale-checkpoint check that uses it (redrive, 0.1.0 stores)."""

from __future__ import annotations

from typing import Any

import pytest

from _support import LOOP, count_to
from zeroflow import HandlerResult, InMemoryWorkflowStore, WorkflowContext, WorkflowEngine
from zeroflow._errors import RunLockedError

KINDS = ["memory", "json", "sqlite", "postgres"]


class Flaky:
    """``count`` of :data:`LOOP` that fails at ``n == 4`` while ``broken``."""

    def __init__(self) -> None:
        self.broken = True

    def __call__(self, ctx: WorkflowContext) -> HandlerResult:
        n = ctx.state.workflow.get("n", 0) + 1
        if n == 4 and self.broken:
            raise RuntimeError("down")
        return HandlerResult(["again" if n < 6 else "done"], workflow_updates={"n": n})


@pytest.mark.parametrize("kind", KINDS)
def test_a_second_redrive_of_the_same_failed_checkpoint_is_refused(
    kind: str, store_of: Any
) -> None:
    store = store_of(kind)
    flaky = Flaky()
    engine = WorkflowEngine(LOOP, {"count": flaky}, store=store)
    failed = engine.run({}, run_id="r")
    assert failed.status == "failed"
    first, second = engine.load_snapshot("r"), engine.load_snapshot("r")
    flaky.broken = False
    assert engine.redrive(first).success
    done = store.latest_step("r")
    assert done is not None and done > first.step
    latest = store.latest_checkpoint("r")
    assert first.seq is not None and latest > first.seq
    with pytest.raises(
        RunLockedError,
        match=rf"checkpoint {first.seq} at step {first.step}, stored checkpoint {latest} at "
        rf"step {done}",
    ):
        engine.redrive(second)
    assert engine.load_snapshot("r").state.workflow == {"n": 6}


@pytest.mark.parametrize("kind", KINDS)
def test_latest_step_after_prune_and_delete(kind: str, store_of: Any) -> None:
    store = store_of(kind)
    WorkflowEngine(LOOP, {"count": count_to(12)}, store=store).run({}, run_id="r")
    assert store.latest_step("r") == 12
    store.prune(keep_last=1)
    assert [h.step for h in store.history("r")] == [12]
    assert store.latest_step("r") == store.load_snapshot("r").step == 12
    assert store.delete_run("r")
    assert store.latest_step("r") is None


class Legacy:
    """A 0.1.0-style store with leases but no ``latest_step``: the check loads the run."""

    def __init__(self) -> None:
        self.inner = InMemoryWorkflowStore()
        self.loads = 0

    def save_snapshot(self, snapshot: Any) -> None:
        self.inner.save_snapshot(snapshot)

    def load_snapshot(self, run_id: str) -> Any:
        self.loads += 1
        return self.inner.load_snapshot(run_id)

    def list_metadata(self, workflow_name: str | None = None) -> Any:
        return self.inner.list_metadata(workflow_name)

    def append_event(self, run_id: str, event: Any) -> None:
        self.inner.append_event(run_id, event)

    def acquire_lease(self, run_id: str, owner: str) -> None:
        self.inner.acquire_lease(run_id, owner)

    def renew_lease(self, run_id: str, owner: str) -> None:
        self.inner.renew_lease(run_id, owner)

    def release_lease(self, run_id: str, owner: str) -> None:
        self.inner.release_lease(run_id, owner)


WAIT: dict[str, Any] = {
    "workflow_name": "wait",
    "default_entry_node": "ask",
    "nodes": {
        "ask": {"kind": "wait", "wait": {"prompt": "?"}, "outputs": {"ok": [{"target_node": "b"}]}},
        "b": {"handler": "b", "outputs": {"ok": []}},
    },
}


def test_a_store_with_half_the_lease_protocol_is_used_as_a_plain_0_1_0_store() -> None:
    """Abilities are decided once, by the whole protocol: half of one is never called."""
    store = Legacy()
    calls: list[str] = []
    store.acquire_lease = lambda run_id, owner: calls.append("acquire")  # type: ignore[method-assign]
    engine = WorkflowEngine(WAIT, {"b": lambda ctx: HandlerResult(["ok"])}, store=store)
    engine.run(run_id="r")
    first = engine.load_snapshot("r")
    assert engine.run_from_checkpoint(first, "yes").success
    assert calls == []
    assert store.inner.load_snapshot("r").status == "succeeded"
