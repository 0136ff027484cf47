"""A conformance kit for ``WorkflowStore`` implementations (standard library only).

Each ``check_*`` function takes a factory that returns a *fresh, empty*
store and raises ``AssertionError`` naming the broken promise. Optional
abilities (``append_step``, ``events``, ``history``, leases) are checked
only when the store has them. Run them from any test runner; with pytest::

    import pytest
    from zeroflow.testing import STORE_CHECKS

    @pytest.mark.parametrize("check", STORE_CHECKS, ids=lambda c: c.__name__)
    def test_my_store(check, tmp_path):
        check(lambda: MyRedisStore(prefix=str(tmp_path)))

``check_lease_expiry`` needs a factory that takes a clock (a function
returning epoch seconds) so it can move time without sleeping.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from .._errors import RunExistsError, RunLockedError
from .._journal import StepDelta, apply_delta
from .._models import Event, RunSnapshot, StepRecord, WorkflowError, WorkflowState
from .._store import (
    CheckpointWrite,
    EventBatchingStore,
    EventLogStore,
    HistoryStore,
    JournalingStore,
    LeasingStore,
)
from .._store_views import DueStore, RunQuery, RunQueryStore, StatsStore

__all__ = [
    "STORE_CHECKS",
    "StoreFactory",
    "check_checkpoint_identities",
    "check_copies_not_aliases",
    "check_dead_holder_taken_over",
    "check_due_index",
    "check_resume_due_wakes_each_run_once",
    "check_effects_kept",
    "check_engine_round_trip",
    "check_events_keep_order",
    "check_fork_onto_existing_run_refused",
    "check_event_batches",
    "check_history",
    "check_journal_replays_steps",
    "check_latest_step",
    "check_lease_expiry",
    "check_leases",
    "check_listing",
    "check_missing_run",
    "check_renewal_never_acquires",
    "check_round_trip",
    "check_run_status_and_delete",
    "check_run_summaries",
    "check_stale_token_refused",
    "run_store_checks",
    "sample_snapshot",
]

StoreFactory = Callable[[], Any]
"""Returns a fresh, empty store (``Any`` so stores with extra abilities type-check)."""

_TS = "2026-01-01T00:00:00+00:00"


def sample_snapshot(
    run_id: str = "run-1", workflow_name: str = "wf", status: str = "running", step: int = 1
) -> RunSnapshot:
    """A snapshot that uses every field, nested state and a feature-data ``extra``."""
    return RunSnapshot(
        run_id=run_id,
        workflow_name=workflow_name,
        wf_hash="0" * 64,
        status=status,
        step=step,
        wave=1,
        ready_now=["b"],
        ready_next_wave=["c"],
        state=WorkflowState({"doc": "d"}, {"deep": {"list": [1, 2], "n": 1}}, {"a": {"k": 1}}),
        trace=["a"] * step,
        tags=["t"],
        audit_trail=[
            StepRecord(i + 1, 1, "a", "succeeded", _TS, ["ok"], None, False, 1.5)
            for i in range(step)
        ],
        arrivals={"1:j": ["a"]},
        executed_this_wave=["a"],
        last_node="a",
        waiting_prompt=None,
        last_error=WorkflowError("E", "boom", "a", details={"x": [1]}),
        started_at=_TS,
        updated_at=_TS,
        deadline_ts=None,
        extra={"feature": {"k": [1, 2]}},
    )


def _step_delta(snap: RunSnapshot, n: int) -> StepDelta:
    """The change of one more ``a`` node on top of ``snap`` (which must be at step ``n - 1``)."""
    return StepDelta(
        run_id=snap.run_id,
        step=n,
        wave=1,
        status="running",
        updated_at=_TS,
        ready_now=["b"],
        ready_next_wave=[],
        arrivals={},
        executed_this_wave=["a"],
        last_node="a",
        waiting_prompt=None,
        last_error=None,
        trace=["a"],
        tags=[f"t{n}"],
        records=[StepRecord(n, 1, "a", "succeeded", _TS, ["ok"], None, False, 1.0)],
        ops=[("merge", ("workflow",), {"deep": {"n": n}}), ("set", ("workflow", "last"), n)],
    )


def _same(a: RunSnapshot, b: RunSnapshot, what: str) -> None:
    """Equal as stored data; ``seq`` is the store's own numbering, not what was saved."""
    left, right = a.to_dict(), b.to_dict()
    left.pop("seq", None)
    right.pop("seq", None)
    assert left == right, f"{what}: {left} != {right}"


def check_round_trip(make_store: StoreFactory) -> None:
    """A saved snapshot loads back equal, field by field, ``extra`` included."""
    store = make_store()
    snap = sample_snapshot()
    store.save_snapshot(snap)
    _same(store.load_snapshot("run-1"), snap, "load_snapshot after save_snapshot")
    later = sample_snapshot(status="waiting", step=2)
    store.save_snapshot(later)
    _same(store.load_snapshot("run-1"), later, "a second save_snapshot replaces the first")


def check_copies_not_aliases(make_store: StoreFactory) -> None:
    """Changing what was saved, or what was loaded, never changes what the store holds."""
    store = make_store()
    snap = sample_snapshot()
    store.save_snapshot(snap)
    snap.state.workflow["deep"]["list"].append(99)
    snap.trace.append("zzz")
    loaded = store.load_snapshot("run-1")
    assert loaded.state.workflow["deep"]["list"] == [1, 2], "the store aliases the saved state"
    assert loaded.trace == ["a"], "the store aliases the saved trace"
    loaded.state.node["a"]["k"] = 2
    loaded.extra["feature"]["k"].append(3)
    again = store.load_snapshot("run-1")
    assert again.state.node["a"]["k"] == 1, "load_snapshot hands out the stored state itself"
    assert again.extra["feature"]["k"] == [1, 2], "load_snapshot hands out the stored extra"


def check_missing_run(make_store: StoreFactory) -> None:
    """An unknown run is a ``KeyError`` whose message names it."""
    store = make_store()
    try:
        store.load_snapshot("no-such-run")
    except KeyError as exc:
        assert "run 'no-such-run' not found" in str(exc), f"message does not name the run: {exc}"
    else:
        raise AssertionError("load_snapshot of an unknown run did not raise KeyError")
    if isinstance(store, LeasingStore):
        assert store.run_status("no-such-run") is None, "run_status of an unknown run is not None"


def check_listing(make_store: StoreFactory) -> None:
    """``list_metadata`` lists every run, filters by workflow (and status when supported)."""
    store = make_store()
    store.save_snapshot(sample_snapshot("r1", "alpha", "running"))
    store.save_snapshot(sample_snapshot("r2", "alpha", "waiting"))
    store.save_snapshot(sample_snapshot("r3", "beta", "succeeded"))
    every = store.list_metadata()
    assert sorted(m.workflow_name for m in every) == ["alpha", "alpha", "beta"], every
    alpha = store.list_metadata("alpha")
    assert sorted(m.status for m in alpha) == ["running", "waiting"], alpha
    waiting = next(m for m in alpha if m.status == "waiting")
    assert waiting.waiting and waiting.current_node == "a", waiting
    assert waiting.last_error is not None and waiting.last_error.code == "E", waiting
    try:
        done = store.list_metadata(status="succeeded")
    except TypeError:
        return  # a 0.1.0-style store without the status filter
    assert [m.workflow_name for m in done] == ["beta"], done


def check_events_keep_order(make_store: StoreFactory) -> None:
    """Events come back in the order they were appended; checkpoints drop the full snapshot."""
    store = make_store()
    store.save_snapshot(sample_snapshot())
    kinds = ["wf:start", "node:start", "node:end", "store:saved", "checkpoint"]
    for step, kind in enumerate(kinds):
        data: dict[str, Any] = {"node": "a", "i": step}
        if kind == "checkpoint":
            data = {"state": sample_snapshot().to_dict()}
        store.append_event("run-1", Event("run-1", step, 1, "a", kind, _TS, data))
    if not isinstance(store, EventLogStore):
        return
    got = store.events("run-1")
    assert [e.kind for e in got] == kinds, [e.kind for e in got]
    assert [e.step for e in got] == list(range(len(kinds))), got
    assert got[1].data == {"node": "a", "i": 1}, got[1]
    assert "state" not in got[-1].data, "a stored checkpoint event keeps the whole snapshot"


def check_event_batches(make_store: StoreFactory) -> None:
    """``append_events`` (when present) logs what the same ``append_event`` calls would.

    Batches and single events interleave in order, an empty batch is a no-op,
    and the store keeps copies: the caller may change what it passed.
    """
    store = make_store()
    if not (isinstance(store, EventBatchingStore) and isinstance(store, EventLogStore)):
        return
    batch = store.append_events
    read = store.events
    store.save_snapshot(sample_snapshot())
    outputs = ["ok"]
    first = [
        Event("run-1", 1, 1, "a", "node:start", _TS, {"node": "a"}),
        Event("run-1", 1, 1, "a", "node:end", _TS, {"node": "a", "outputs": outputs}),
        Event("run-1", 1, 1, "a", "store:saved", _TS, {"run_id": "run-1", "status": "running"}),
        Event("run-1", 1, 1, "a", "checkpoint", _TS, {"state": sample_snapshot().to_dict()}),
    ]
    batch("run-1", first)
    batch("run-1", [])
    store.append_event("run-1", Event("run-1", 1, 1, None, "custom", _TS, {"n": 1}))
    batch("run-1", [Event("run-1", 2, 2, "b", "node:start", _TS, {"node": "b"})])
    outputs.append("changed after the call")
    got = read("run-1")
    assert [(e.step, e.kind) for e in got] == [
        (1, "node:start"),
        (1, "node:end"),
        (1, "store:saved"),
        (1, "checkpoint"),
        (1, "custom"),
        (2, "node:start"),
    ], got
    assert got[1].data == {"node": "a", "outputs": ["ok"]}, got[1]
    assert got[3].data == {"step": 1}, "a stored checkpoint event keeps only its step"
    assert all(e.run_id == "run-1" and e.ts == _TS for e in got), got


def check_latest_step(make_store: StoreFactory) -> None:
    """``latest_step`` (when present) is the step ``load_snapshot`` would return, or None."""
    store = make_store()
    if not isinstance(store, LeasingStore):
        return
    latest = store.latest_step
    assert latest("nope") is None, "latest_step of a missing run must be None"
    snap = sample_snapshot()
    store.save_snapshot(snap)
    assert latest("run-1") == snap.step == store.load_snapshot("run-1").step
    if isinstance(store, JournalingStore):
        store.append_step("run-1", _step_delta(store.load_snapshot("run-1"), snap.step + 1))
        assert latest("run-1") == snap.step + 1 == store.load_snapshot("run-1").step
    token = store.acquire_lease("run-1", "me")
    snap.step += 5
    seq = (store.latest_checkpoint("run-1") or 0) + 1
    store.commit("run-1", "me", token, CheckpointWrite(seq, snapshot=snap))
    assert latest("run-1") == snap.step, "latest_step must see the lease holder's commits"
    store.release_lease("run-1", "me")


def check_journal_replays_steps(make_store: StoreFactory) -> None:
    """``append_step`` deltas load back as the snapshot with each delta applied."""
    store = make_store()
    if not isinstance(store, JournalingStore):
        return
    expected = sample_snapshot()
    store.save_snapshot(expected)
    for n in range(2, 8):
        delta = _step_delta(expected, n)
        store.append_step("run-1", delta)
        apply_delta(expected, delta)
    _same(store.load_snapshot("run-1"), expected, "snapshot + appended steps")


def check_history(make_store: StoreFactory) -> None:
    """Every checkpoint is listed and loadable by step; ``prune(keep_last=)`` trims it."""
    store = make_store()
    if not isinstance(store, HistoryStore):
        return
    snap = sample_snapshot()
    store.save_snapshot(snap)
    states = {1: snap.copy()}
    for n in range(2, 7):
        if isinstance(store, JournalingStore):
            delta = _step_delta(snap, n)
            store.append_step("run-1", delta)
            apply_delta(snap, delta)
        else:
            snap = sample_snapshot(step=n)
            store.save_snapshot(snap)
        states[n] = snap.copy()
    history = store.history("run-1")
    assert [h.step for h in history] == [1, 2, 3, 4, 5, 6], history
    assert history[-1].node == "a" and history[-1].status == "running", history[-1]
    for n, state in states.items():
        _same(store.load_snapshot("run-1", step=n), state, f"load_snapshot(step={n})")
    _same(store.load_snapshot("run-1"), states[6], "the latest after history reads")
    result = store.prune(keep_last=2)
    assert result.checkpoints.get("run-1") == 4, result
    assert [h.step for h in store.history("run-1")] == [5, 6], store.history("run-1")
    _same(store.load_snapshot("run-1", step=5), states[5], "the oldest kept checkpoint")
    _same(store.load_snapshot("run-1"), states[6], "the latest after prune")


_owners = (f"owner-{i}" for i in itertools.count())


def _expect_locked(call: Callable[[], object], what: str) -> None:
    try:
        call()
    except RunLockedError as exc:
        assert "run-1" in str(exc), f"RunLockedError does not name the run: {exc}"
    else:
        raise AssertionError(f"{what} did not raise RunLockedError")


def check_leases(make_store: StoreFactory) -> None:
    """One driver at a time: a second owner is refused until release or ``break_lease``."""
    store = make_store()
    if not isinstance(store, LeasingStore):
        return
    first, second = next(_owners), next(_owners)
    store.save_snapshot(sample_snapshot())
    store.acquire_lease("run-1", first)
    store.acquire_lease("run-1", first)  # the holder may take it again
    store.renew_lease("run-1", first)
    _expect_locked(lambda: store.acquire_lease("run-1", second), "a second owner's acquire")
    store.release_lease("run-1", second)  # not the holder: no effect
    _expect_locked(
        lambda: store.acquire_lease("run-1", second), "acquire after a stranger's release"
    )
    store.release_lease("run-1", first)
    store.acquire_lease("run-1", second)
    assert store.break_lease("run-1") is True, "break_lease of a held lease returned False"
    store.acquire_lease("run-1", first)
    store.release_lease("run-1", first)
    _same(store.load_snapshot("run-1"), sample_snapshot(), "the run after lease traffic")


def check_run_status_and_delete(make_store: StoreFactory) -> None:
    """``run_status`` reports the stored status; ``delete_run`` refuses a run someone drives."""
    store = make_store()
    if not isinstance(store, LeasingStore):
        return
    store.save_snapshot(sample_snapshot(status="waiting"))
    assert store.run_status("run-1") == "waiting", store.run_status("run-1")
    owner = next(_owners)
    store.acquire_lease("run-1", owner)
    _expect_locked(lambda: store.delete_run("run-1"), "delete_run of a leased run")
    store.release_lease("run-1", owner)
    assert store.delete_run("run-1") is True, "delete_run of a stored run returned False"
    assert store.run_status("run-1") is None, "the run is still there after delete_run"
    check_missing_run(lambda: store)


def check_lease_expiry(make_store: Callable[[Callable[[], float]], Any]) -> None:
    """A lease nobody renews lapses after ``lease_ttl_seconds``; renewing keeps it.

    ``make_store(clock)`` must build a fresh store that reads time from ``clock``.
    """
    now = [1_000_000.0]
    store = make_store(lambda: now[0])
    if not isinstance(store, LeasingStore):
        return
    ttl = float(store.lease_ttl_seconds)
    first, second = next(_owners), next(_owners)
    store.save_snapshot(sample_snapshot())
    store.acquire_lease("run-1", first)
    now[0] += ttl * 0.9
    store.renew_lease("run-1", first)
    now[0] += ttl * 0.9
    _expect_locked(lambda: store.acquire_lease("run-1", second), "acquire of a renewed lease")
    now[0] += ttl * 1.1
    store.acquire_lease("run-1", second)  # the first driver is presumed dead
    _expect_locked(lambda: store.renew_lease("run-1", first), "renew by the driver who lost it")
    store.release_lease("run-1", second)


def check_stale_token_refused(make_store: StoreFactory) -> None:
    """A commit or renewal with a token that is no longer current is refused, writing nothing."""
    store = make_store()
    if not isinstance(store, LeasingStore):
        return
    old, new = next(_owners), next(_owners)
    old_token = store.acquire_lease("run-1", old)
    store.commit("run-1", old, old_token, CheckpointWrite(1, snapshot=sample_snapshot()))
    assert store.break_lease("run-1") is True, "break_lease of a held lease returned False"
    new_token = store.acquire_lease("run-1", new)
    assert new_token > old_token, f"tokens must grow: {old_token} then {new_token}"
    stale = sample_snapshot(status="failed", step=9)
    _expect_locked(
        lambda: store.commit("run-1", old, old_token, CheckpointWrite(2, snapshot=stale)),
        "a commit with a stale token",
    )
    _same(store.load_snapshot("run-1"), sample_snapshot(), "the run after a refused commit")
    assert store.latest_checkpoint("run-1") == 1, "a refused commit moved the checkpoint on"
    store.commit("run-1", new, new_token, CheckpointWrite(2, snapshot=sample_snapshot(step=2)))
    store.release_lease("run-1", new)
    again = store.acquire_lease("run-1", old)
    assert again > new_token, f"a token after release must grow: {new_token} then {again}"
    store.release_lease("run-1", old)


def check_renewal_never_acquires(make_store: StoreFactory) -> None:
    """Renewing after another caller took the run over and released it is refused."""
    store = make_store()
    if not isinstance(store, LeasingStore):
        return
    first, second = next(_owners), next(_owners)
    store.save_snapshot(sample_snapshot())
    token = store.acquire_lease("run-1", first)
    store.break_lease("run-1")
    _expect_locked(lambda: store.renew_lease("run-1", first, token), "renew after break_lease")
    store.acquire_lease("run-1", second)
    store.release_lease("run-1", second)
    _expect_locked(
        lambda: store.renew_lease("run-1", first, token),
        "renew after another caller took the run and released it",
    )
    # Nobody holds it now, and the renewal did not take it: a third caller may.
    third = next(_owners)
    store.acquire_lease("run-1", third)
    store.release_lease("run-1", third)


def check_checkpoint_identities(make_store: StoreFactory) -> None:
    """Every checkpoint has its own ``seq``; a commit that does not follow the latest is refused."""
    store = make_store()
    if not isinstance(store, LeasingStore):
        return
    assert store.latest_checkpoint("run-1") is None, "latest_checkpoint of a missing run"
    owner = next(_owners)
    token = store.acquire_lease("run-1", owner)
    store.commit("run-1", owner, token, CheckpointWrite(1, snapshot=sample_snapshot()))
    snap = store.load_snapshot("run-1")
    for seq in range(2, 5):
        store.commit("run-1", owner, token, CheckpointWrite(seq, delta=_step_delta(snap, seq)))
        apply_delta(snap, _step_delta(snap, seq))
    assert store.latest_checkpoint("run-1") == 4, store.latest_checkpoint("run-1")
    _expect_locked(
        lambda: store.commit("run-1", owner, token, CheckpointWrite(4, snapshot=snap)),
        "a commit that repeats a checkpoint identity",
    )
    latest = store.load_snapshot("run-1")
    assert latest.seq == 4, f"load_snapshot must carry the checkpoint's seq, got {latest.seq}"
    store.release_lease("run-1", owner)
    store.save_snapshot(latest)
    assert store.latest_checkpoint("run-1") == 5, "an unleased save is a checkpoint of its own"
    if isinstance(store, HistoryStore):
        seqs = [store.load_snapshot("run-1", step=h.step).seq for h in store.history("run-1")]
        assert all(s is not None for s in seqs), seqs
        assert len(set(seqs)) == len({h.step for h in store.history("run-1")}), seqs


def check_fork_onto_existing_run_refused(make_store: StoreFactory) -> None:
    """``engine.fork`` onto a run id the store holds raises ``RunExistsError``; nothing changes."""
    from .._engine import WorkflowEngine
    from .._models import HandlerResult

    workflow = {
        "workflow_name": "kit-fork",
        "default_entry_node": "a",
        "nodes": {"a": {"handler": "step", "outputs": {"ok": []}}},
    }

    def step(ctx: Any) -> HandlerResult:
        return HandlerResult(["ok"], workflow_updates={"run": ctx.run_id})

    store = make_store()
    if not isinstance(store, HistoryStore):
        return
    engine = WorkflowEngine(workflow, {"step": step}, store=store)
    engine.run(run_id="kit-a")
    engine.run(run_id="kit-b")
    before = store.load_snapshot("kit-b")
    try:
        engine.fork("kit-a", 1, new_run_id="kit-b")
    except RunExistsError as exc:
        assert "kit-b" in str(exc), f"RunExistsError does not name the run: {exc}"
    else:
        raise AssertionError("fork onto an existing run id did not raise RunExistsError")
    _same(store.load_snapshot("kit-b"), before, "the run a refused fork aimed at")


def check_dead_holder_taken_over(make_store: StoreFactory) -> None:
    """A lease whose holder process died on this host is taken at once, TTL or not.

    Needs ``os.fork`` (skipped elsewhere); the child takes the lease through the
    store object it inherited and exits without releasing it.
    """
    import os

    store = make_store()
    if not isinstance(store, LeasingStore) or not store.durable or not hasattr(os, "fork"):
        return
    store.save_snapshot(sample_snapshot())
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 0
        try:
            store.acquire_lease("run-1", "the-dead-one")
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, "the child could not lease"
    _expect_locked(lambda: store.renew_lease("run-1", "someone-else"), "a stranger's renewal")
    owner = next(_owners)
    store.acquire_lease("run-1", owner)  # the holder is gone: no wait for its TTL
    store.release_lease("run-1", owner)


def check_engine_round_trip(make_store: StoreFactory) -> None:
    """A real engine pauses, is resumed by run id, and the store ends with the whole story."""
    from .._engine import WorkflowEngine
    from .._models import HandlerResult

    workflow = {
        "workflow_name": "kit",
        "default_entry_node": "a",
        "nodes": {
            "a": {"handler": "step", "outputs": {"ok": [{"target_node": "ask"}]}},
            "ask": {"handler": "ask", "outputs": {"yes": [{"target_node": "z"}]}},
            "z": {"handler": "step", "outputs": {"ok": []}},
        },
    }

    def step(ctx: Any) -> HandlerResult:
        return HandlerResult(["ok"], workflow_updates={ctx.node_name: ctx.step})

    def ask(ctx: Any) -> HandlerResult:
        if "__resume__" not in ctx.state.workflow:
            return HandlerResult([], waiting=True, waiting_prompt="ok?")
        return HandlerResult(["yes"])

    store = make_store()
    engine = WorkflowEngine(workflow, {"step": step, "ask": ask}, store=store)
    paused = engine.run({"x": 1}, run_id="kit-run")
    assert paused.status == "waiting", paused
    assert store.load_snapshot("kit-run").status == "waiting"
    done = engine.run_from_checkpoint(store.load_snapshot("kit-run"), resume_input={"y": 1})
    assert done.status == "succeeded" and done.trace == ["a", "ask", "ask", "z"], done
    final = store.load_snapshot("kit-run")
    assert final.status == "succeeded" and final.trace == done.trace, final
    assert final.state.workflow == done.state.workflow, (final.state.workflow, done.state)
    if isinstance(store, EventLogStore):
        kinds = [e.kind for e in store.events("kit-run")]
        assert kinds[0] == "wf:start" and kinds[-1] == "checkpoint", kinds
        assert kinds.count("wf:resumed") == 1 and kinds.count("wf:end") == 1, kinds
        assert kinds.count("node:end") == 3, kinds


def check_effects_kept(make_store: StoreFactory) -> None:
    """A run's effects (``ctx.effect``) survive in the store: a redrive gets the receipt back.

    The node records an effect, then fails; the stored run must hold the
    receipt, and a new engine redriving it must get the receipt without the
    effect's function being called again.
    """
    from .._engine import WorkflowEngine
    from .._models import HandlerResult

    workflow = {
        "workflow_name": "kit-effects",
        "default_entry_node": "pay",
        "nodes": {"pay": {"handler": "pay", "outputs": {"ok": []}}},
    }
    calls: list[int] = []
    fail = [True]

    def charge(amount: int) -> dict[str, Any]:
        calls.append(amount)
        return {"charge_id": f"ch-{len(calls)}", "amount": amount, "lines": [{"n": 1}]}

    def pay(ctx: Any) -> HandlerResult:
        receipt = ctx.effect("charge", charge, 5)
        if fail[0]:
            raise RuntimeError("failed after the charge")
        return HandlerResult(["ok"], workflow_updates={"receipt": receipt})

    store = make_store()
    failed = WorkflowEngine(workflow, {"pay": pay}, store=store).run({}, run_id="kit-effects")
    assert failed.status == "failed", failed
    stored = store.load_snapshot("kit-effects")
    entry = stored.extra.get("effects", {}).get("pay", {}).get("keys", {}).get("charge")
    assert entry == {
        "state": "done",
        "receipt": {"charge_id": "ch-1", "amount": 5, "lines": [{"n": 1}]},
    }, stored.extra
    fail[0] = False
    done = WorkflowEngine(workflow, {"pay": pay}, store=store).redrive("kit-effects")
    assert done.status == "succeeded", done
    assert calls == [5], f"the effect ran again after a reload: {calls}"
    assert done.state.workflow["receipt"]["charge_id"] == "ch-1", done.state.workflow
    assert "effects" not in store.load_snapshot("kit-effects").extra


def check_run_summaries(make_store: StoreFactory) -> None:
    """A ``StatsStore`` summarises each finished run: status, times, per-node figures.

    Two workflows, one run each (one retried and then failed); the summaries
    come by run id, filter by workflow and by start time, and refuse a
    ``since`` that is no time with ``ValueError``.
    """
    store = make_store()
    if not isinstance(store, StatsStore):
        return
    from .._engine import WorkflowEngine
    from .._models import HandlerResult

    assert store.run_summaries() == [], "a fresh store has runs"

    def flow(name: str) -> dict[str, Any]:
        return {
            "workflow_name": name,
            "default_entry_node": "a",
            "nodes": {
                "a": {
                    "handler": name,
                    "outputs": {"ok": []},
                    "run_policy": {"max_retries": 1, "retry_sleep_seconds": 0},
                }
            },
        }

    def good(ctx: Any) -> HandlerResult:
        return HandlerResult(["ok"])

    def bad(ctx: Any) -> HandlerResult:
        raise RuntimeError("always")

    WorkflowEngine(flow("kit-good"), {"kit-good": good}, store=store).run({}, run_id="kit-1")
    failed = WorkflowEngine(flow("kit-bad"), {"kit-bad": bad}, store=store).run({}, run_id="kit-2")
    assert failed.status == "failed", failed
    summaries = store.run_summaries()
    assert [s.run_id for s in summaries] == ["kit-1", "kit-2"], summaries
    one, two = summaries
    assert (one.workflow_name, one.status, two.status) == ("kit-good", "succeeded", "failed")
    assert one.started_at is not None and one.updated_at is not None, one
    assert one.nodes is not None and one.nodes["a"].executions == 1, one
    assert two.nodes is not None, two
    figures = two.nodes["a"]
    assert (figures.executions, figures.failures, figures.retries) == (1, 1, 1), figures
    assert [s.run_id for s in store.run_summaries("kit-bad")] == ["kit-2"]
    assert store.run_summaries(since="2999-01-01") == []
    assert len(store.run_summaries(since="2000-01-01T00:00:00Z")) == 2
    try:
        store.run_summaries(since="not a time")
    except ValueError:
        pass
    else:
        raise AssertionError("run_summaries(since='not a time') did not raise ValueError")


def _timed(run_id: str, due: float | None, *, status: str = "waiting", wf: str = "wf") -> Any:
    """A waiting snapshot whose queue head sleeps until ``due`` (None: no timer)."""
    snap = sample_snapshot(run_id, wf, status)
    snap.ready_now = ["nap"]
    snap.extra = {} if due is None else {"timers": {"nap": {"due": due, "kind": "sleep"}}}
    return snap


def check_due_index(make_store: StoreFactory) -> None:
    """``due_runs`` lists the waiting runs whose timer is due, earliest first, and forgets a
    run once it stops waiting or is deleted (``DueStore``; skipped without it)."""
    store = make_store()
    if not isinstance(store, DueStore):
        return
    assert store.due_runs(1000.0) == [], "a fresh store has nothing due"
    store.save_snapshot(_timed("late", 300.0))
    store.save_snapshot(_timed("early", 100.0))
    store.save_snapshot(_timed("same-b", 200.0))
    store.save_snapshot(_timed("same-a", 200.0))
    store.save_snapshot(_timed("none", None))
    store.save_snapshot(_timed("other", 50.0, wf="other-wf"))
    ids = [m.run_id for m in store.due_runs(250.0)]
    assert ids == ["other", "early", "same-a", "same-b"], ids
    assert [m.run_id for m in store.due_runs(250.0, workflow_name="wf")] == [
        "early",
        "same-a",
        "same-b",
    ]
    assert [m.run_id for m in store.due_runs(250.0, 2)] == ["other", "early"]
    (first,) = store.due_runs(100.0, 1, workflow_name="wf")
    assert first.due_at == 100.0 and first.status == "waiting", first
    assert first.wait_reason == "timer", first
    store.save_snapshot(_timed("early", 100.0, status="running"))
    store.save_snapshot(_timed("same-a", 900.0))  # paused again, later
    ids = [m.run_id for m in store.due_runs(400.0, workflow_name="wf")]
    assert ids == ["same-b", "late"], f"a run that moved on is still listed as due: {ids}"
    if isinstance(store, LeasingStore):
        store.delete_run("late")
        ids = [m.run_id for m in store.due_runs(400.0, workflow_name="wf")]
        assert ids == ["same-b"], f"a deleted run is still listed as due: {ids}"
    bad: Any
    for bad in (float("nan"), "soon", None):
        try:
            store.due_runs(bad)
        except (TypeError, ValueError):
            pass
        else:
            raise AssertionError(f"due_runs({bad!r}) was accepted")


def check_resume_due_wakes_each_run_once(make_store: StoreFactory) -> None:
    """A real engine's ``resume_due`` wakes each due sleeping run once; a second call, none."""
    from .._engine import WorkflowEngine
    from .._models import HandlerResult

    store = make_store()
    if not isinstance(store, DueStore):
        return
    workflow = {
        "workflow_name": "kit-timers",
        "default_entry_node": "nap",
        "nodes": {
            "nap": {
                "kind": "sleep",
                "sleep": {"for_seconds": 60},
                "outputs": {"ok": [{"target_node": "z"}]},
            },
            "z": {"handler": "z", "outputs": {"ok": []}},
        },
    }
    calls: list[str] = []

    def z(ctx: Any) -> HandlerResult:
        calls.append(ctx.run_id)
        return HandlerResult(["ok"])

    now = [1_000_000.0]
    engine = WorkflowEngine(workflow, {"z": z}, store=store, clock=lambda: now[0])
    for i in range(3):
        assert engine.run(run_id=f"kit-t{i}").status == "waiting"
    assert engine.resume_due(now=now[0] + 59) == []
    woken = engine.resume_due(now=now[0] + 60)
    assert sorted(r.run_id for r in woken) == ["kit-t0", "kit-t1", "kit-t2"], woken
    assert all(r.status == "succeeded" for r in woken), woken
    assert engine.resume_due(now=now[0] + 600) == [], "a woken run was woken again"
    assert sorted(calls) == ["kit-t0", "kit-t1", "kit-t2"], calls


def check_run_queries(make_store: StoreFactory) -> None:
    """``query_runs`` pages newest update first (then run id, descending), applies every
    filter, splits the runs into pages without gaps or repeats, and follows a status
    change and a delete (``RunQueryStore``; skipped without it)."""
    store = make_store()
    if not isinstance(store, RunQueryStore):
        return
    assert store.query_runs(RunQuery()).total == 0, "a fresh store lists runs"
    rows = [  # run id, workflow, status, second of its update
        ("q-a", "kit-x", "waiting", 5),
        ("q-b", "kit-x", "failed", 3),
        ("q-c", "kit-y", "succeeded", 9),
        ("q-d", "kit-y", "running", 1),
        ("q-e", "kit-x", "waiting", 5),
        ("p_f", "kit-y", "cancelled", 7),
    ]
    for run_id, name, status, second in rows:
        snap = sample_snapshot(run_id, name, status)
        snap.updated_at = f"2026-01-01T00:00:{second:02d}+00:00"
        store.save_snapshot(snap)

    def ids(query: RunQuery) -> tuple[list[str | None], int]:
        page = store.query_runs(query)
        return [m.run_id for m in page.runs], page.total

    everything = ["q-c", "p_f", "q-e", "q-a", "q-b", "q-d"]
    assert ids(RunQuery()) == (everything, 6), ids(RunQuery())
    cases = [
        (RunQuery(workflow_name="kit-x"), ["q-e", "q-a", "q-b"]),
        (RunQuery(statuses=("waiting", "running")), ["q-e", "q-a", "q-d"]),
        (RunQuery(workflow_name="kit-y", statuses=("running",)), ["q-d"]),
        (RunQuery(run_id_prefix="q-"), ["q-c", "q-e", "q-a", "q-b", "q-d"]),
        (RunQuery(run_id_prefix="p_"), ["p_f"]),
        (RunQuery(updated_before="2026-01-01T00:00:05+00:00"), ["q-b", "q-d"]),
        (RunQuery(workflow_name="kit-none"), []),
    ]
    for query, expected in cases:
        got = ids(query)
        assert got == (expected, len(expected)), f"{query}: {got}"
    pages = [ids(RunQuery(limit=4, offset=o)) for o in (0, 4, 8)]
    assert [p[0] for p in pages] == [everything[:4], everything[4:], []], pages
    assert all(p[1] == 6 for p in pages), pages
    moved = sample_snapshot("q-d", "kit-y", "succeeded")
    moved.updated_at = "2026-01-01T00:00:11+00:00"
    store.save_snapshot(moved)
    assert ids(RunQuery(statuses=("running",))) == ([], 0), "a finished run is still running"
    assert ids(RunQuery(limit=1))[0] == ["q-d"], "a newer save did not move the run first"
    if isinstance(store, LeasingStore):
        store.delete_run("q-c")
        assert "q-c" not in ids(RunQuery())[0], "a deleted run is still listed"


STORE_CHECKS: tuple[Callable[[StoreFactory], None], ...] = (
    check_round_trip,
    check_copies_not_aliases,
    check_missing_run,
    check_listing,
    check_events_keep_order,
    check_event_batches,
    check_latest_step,
    check_journal_replays_steps,
    check_history,
    check_leases,
    check_run_status_and_delete,
    check_stale_token_refused,
    check_renewal_never_acquires,
    check_checkpoint_identities,
    check_fork_onto_existing_run_refused,
    check_dead_holder_taken_over,
    check_engine_round_trip,
    check_effects_kept,
    check_run_summaries,
    check_due_index,
    check_resume_due_wakes_each_run_once,
    check_run_queries,
)
"""Every check that needs only a factory of fresh stores (``check_lease_expiry`` needs a clock)."""


def run_store_checks(make_store: StoreFactory) -> None:
    """Run every check of ``STORE_CHECKS`` against stores from ``make_store``."""
    for check in STORE_CHECKS:
        check(make_store)
