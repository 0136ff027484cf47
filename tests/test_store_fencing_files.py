"""Fencing tokens, fenced commits and checkpoint identity in the memory and JSON stores.

Every test runs on an injected clock: a lease expires when the test moves the
clock past its TTL, never by sleeping.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from _support import step_delta
from zeroflow import CheckpointWrite
from zeroflow._errors import RunLockedError
from zeroflow._journal import StepDelta
from zeroflow._models import Event, RunSnapshot, now_iso
from zeroflow.stores import InMemoryWorkflowStore, JsonFileWorkflowStore
from zeroflow.stores._common import process_holder
from zeroflow.testing import sample_snapshot

SRC = Path(__file__).resolve().parent.parent / "src"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


Factory = Callable[[Path, Clock], Any]
STORES: dict[str, Factory] = {
    "memory": lambda tmp, clock: InMemoryWorkflowStore(clock=clock),
    "json": lambda tmp, clock: JsonFileWorkflowStore(tmp / "runs", clock=clock),
}


@pytest.fixture(params=sorted(STORES))
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Any, Clock]:
    clock = Clock()
    return STORES[request.param](tmp_path, clock), clock


def snap(run_id: str = "r", step: int = 1, **changes: Any) -> RunSnapshot:
    s = sample_snapshot(run_id, step=step)
    for key, value in changes.items():
        setattr(s, key, value)
    return s


def delta(run_id: str, step: int, n: int) -> StepDelta:
    """Node ``a`` again at ``step``, setting ``workflow.n`` to ``n``."""
    return step_delta(
        run_id, step, ready_now=["a"], trace=["a"], ops=[("set", ("workflow", "n"), n)]
    )


def event(run_id: str, kind: str, step: int = 1) -> Event:
    return Event(run_id, step, 1, None, kind, now_iso(), {"k": kind})


def kinds(store: Any, run_id: str = "r") -> list[str]:
    return [e.kind for e in store.events(run_id)]


def started(store: Any, run_id: str = "r", owner: str = "a") -> int:
    """A run with one committed checkpoint (seq 1), held by ``owner``; returns the token."""
    token = store.acquire_lease(run_id, owner)
    store.commit(
        run_id, owner, token, CheckpointWrite(1, snap(run_id), events=[event(run_id, "x")])
    )
    return token


def dead_holder() -> dict[str, Any]:
    """A holder record for a process of this host that has exited."""
    child = subprocess.Popen(["true"])
    child.wait()
    return {**process_holder(), "pid": child.pid, "start": "1"}


# ---------------------------------------------------------------------- tokens


def test_every_acquisition_returns_a_larger_token(setup: tuple[Any, Clock]) -> None:
    store, clock = setup
    first = store.acquire_lease("r", "a")
    assert isinstance(first, int) and first >= 1
    store.release_lease("r", "a")
    second = store.acquire_lease("r", "b")
    assert second > first
    third = store.acquire_lease("r", "b")  # the same owner again: a new token all the same
    assert third > second
    assert store.break_lease("r") is True
    fourth = store.acquire_lease("r", "c")
    clock.now += store.lease_ttl_seconds + 1  # expired, never released: taken over
    fifth = store.acquire_lease("r", "d")
    assert first < second < third < fourth < fifth
    assert store.acquire_lease("other", "a") >= 1  # counted per run


def test_tokens_grow_across_two_json_stores_on_one_folder(tmp_path: Path) -> None:
    clock = Clock()
    one = JsonFileWorkflowStore(tmp_path, clock=clock)
    two = JsonFileWorkflowStore(tmp_path, clock=clock)
    t1 = one.acquire_lease("r", "a")
    one.release_lease("r", "a")
    t2 = two.acquire_lease("r", "b")
    two.release_lease("r", "b")
    t3 = one.acquire_lease("r", "a")
    assert t1 < t2 < t3
    lease = json.loads((tmp_path / "r" / "lease.json").read_text(encoding="utf-8"))
    assert lease["token"] == t3 and lease["owner"] == "a"
    assert lease["holder"]["pid"] == os.getpid()


def test_deleting_a_run_as_its_driver_keeps_the_token_counter(setup: tuple[Any, Clock]) -> None:
    store, _ = setup
    token = started(store)
    assert store.delete_run("r", owner="a") is True
    store.release_lease("r", "a")
    assert store.acquire_lease("r", "b") > token


# ---------------------------------------------------------------------- renewal


def test_renewal_after_another_owner_took_over_and_released_is_refused(
    setup: tuple[Any, Clock],
) -> None:
    store, clock = setup
    token = store.acquire_lease("r", "a")
    clock.now += store.lease_ttl_seconds + 1
    store.acquire_lease("r", "b")
    store.release_lease("r", "b")
    with pytest.raises(RunLockedError, match="'r'"):
        store.renew_lease("r", "a")
    with pytest.raises(RunLockedError):
        store.renew_lease("r", "a", token)
    store.acquire_lease("r", "c")  # and the refused renewal did not take the run


def test_renewal_after_break_lease_is_refused(setup: tuple[Any, Clock]) -> None:
    store, _ = setup
    token = store.acquire_lease("r", "a")
    store.renew_lease("r", "a", token)
    assert store.break_lease("r") is True
    with pytest.raises(RunLockedError, match="'r'"):
        store.renew_lease("r", "a", token)


def test_renewal_never_acquires_a_free_run(setup: tuple[Any, Clock]) -> None:
    store, _ = setup
    with pytest.raises(RunLockedError):
        store.renew_lease("never-leased", "a")
    store.acquire_lease("r", "a")
    store.release_lease("r", "a")
    with pytest.raises(RunLockedError):
        store.renew_lease("r", "a")


def test_an_expired_lease_nobody_took_is_renewed_but_only_with_its_token(
    setup: tuple[Any, Clock],
) -> None:
    store, clock = setup
    old = store.acquire_lease("r", "a")
    new = store.acquire_lease("r", "a")
    with pytest.raises(RunLockedError, match="token"):
        store.renew_lease("r", "a", old)
    clock.now += store.lease_ttl_seconds * 5
    store.renew_lease("r", "a", new)
    with pytest.raises(RunLockedError):  # renewed: live again
        store.acquire_lease("r", "b")


# ---------------------------------------------------------------------- commits


def test_a_commit_with_a_stale_token_is_refused_and_writes_nothing(
    setup: tuple[Any, Clock],
) -> None:
    store, clock = setup
    old = started(store, owner="a")
    clock.now += store.lease_ttl_seconds + 1
    new = store.acquire_lease("r", "b")
    before, events_before = store.load_snapshot("r").to_dict(), kinds(store)
    late = CheckpointWrite(2, snap(step=2, status="succeeded"), events=[event("r", "late")])
    with pytest.raises(RunLockedError, match="lost its lease"):
        store.commit("r", "a", old, late)
    with pytest.raises(RunLockedError):  # the same owner with a token that is not current
        store.commit("r", "a", new, late)
    store.release_lease("r", "b")
    with pytest.raises(RunLockedError):  # nobody holds it now: still not a's
        store.commit("r", "a", old, late)
    assert store.load_snapshot("r").to_dict() == before
    assert kinds(store) == events_before == ["x"]
    assert store.latest_checkpoint("r") == 1
    assert len(store.history("r")) == 1


def test_a_commit_whose_seq_does_not_follow_the_stored_one_is_refused(
    setup: tuple[Any, Clock],
) -> None:
    store, _ = setup
    token = started(store)
    before = store.load_snapshot("r").to_dict()
    for seq in (1, 3, 0):
        with pytest.raises(RunLockedError, match="moved on"):
            store.commit(
                "r", "a", token, CheckpointWrite(seq, snap(step=5), events=[event("r", "y")])
            )
    with pytest.raises(RunLockedError, match="moved on"):
        store.commit("r", "a", token, CheckpointWrite(3, delta=delta("r", 2, 7)))
    assert store.load_snapshot("r").to_dict() == before
    assert kinds(store) == ["x"] and store.latest_checkpoint("r") == 1
    assert store.commit("r", "a", token, CheckpointWrite(2, delta=delta("r", 2, 7))) is False
    assert store.load_snapshot("r").state.workflow["n"] == 7


def test_commits_write_snapshots_deltas_and_events_and_renew_the_lease(
    setup: tuple[Any, Clock],
) -> None:
    store, clock = setup
    token = started(store)
    for seq in range(2, 6):
        clock.now += store.lease_ttl_seconds * 0.9  # each commit keeps the lease alive
        write = CheckpointWrite(seq, delta=delta("r", seq, seq), events=[event("r", f"e{seq}")])
        store.commit("r", "a", token, write)
    with pytest.raises(RunLockedError):
        store.acquire_lease("r", "b")
    loaded = store.load_snapshot("r")
    assert loaded.state.workflow["n"] == 5 and loaded.seq == 5 == store.latest_checkpoint("r")
    assert kinds(store) == ["x", "e2", "e3", "e4", "e5"]


def test_a_first_commit_of_a_step_needs_a_stored_run(setup: tuple[Any, Clock]) -> None:
    store, _ = setup
    token = store.acquire_lease("new", "a")
    with pytest.raises(KeyError):
        store.commit("new", "a", token, CheckpointWrite(1, delta=delta("new", 1, 1)))
    assert store.latest_checkpoint("new") is None


def test_an_unleased_write_by_another_json_store_makes_the_driver_move_on(tmp_path: Path) -> None:
    clock = Clock()
    driver = JsonFileWorkflowStore(tmp_path, clock=clock)
    other = JsonFileWorkflowStore(tmp_path, clock=clock)
    token = started(driver)
    other.save_snapshot(snap(step=9))  # unleased: written at once, as checkpoint 2
    assert other.latest_checkpoint("r") == 2 == driver.latest_checkpoint("r")
    with pytest.raises(RunLockedError, match="moved on"):
        driver.commit("r", "a", token, CheckpointWrite(2, delta=delta("r", 2, 1)))
    assert driver.load_snapshot("r").step == 9
    driver.commit("r", "a", token, CheckpointWrite(3, delta=delta("r", 10, 1)))
    assert other.load_snapshot("r").seq == 3


def test_a_driver_whose_run_folder_was_deleted_and_remade_writes_nothing(tmp_path: Path) -> None:
    """The driver keeps lease.json open between commits: a new folder is not its lease."""
    clock = Clock()
    driver = JsonFileWorkflowStore(tmp_path, clock=clock)
    token = started(driver)
    driver.commit("r", "a", token, CheckpointWrite(2, delta=delta("r", 2, 2)))
    shutil.rmtree(tmp_path / "r")  # an operator's cleanup, while the driver still runs
    other = JsonFileWorkflowStore(tmp_path, clock=clock)
    other_token = started(other, owner="b")
    with pytest.raises(RunLockedError, match="deleted"):
        driver.commit("r", "a", token, CheckpointWrite(3, delta=delta("r", 3, 3)))
    assert other.load_snapshot("r").seq == 1 and kinds(other) == ["x"]
    assert other_token >= 1


@pytest.mark.parametrize("how", ["taken over", "broken"])
def test_a_lease_changed_by_another_store_is_seen_at_the_next_commit(
    tmp_path: Path, how: str
) -> None:
    """The driver reads lease.json at every commit, however long it has kept it open."""
    clock = Clock()
    driver = JsonFileWorkflowStore(tmp_path, clock=clock)
    token = started(driver)
    for seq in (2, 3):
        driver.commit("r", "a", token, CheckpointWrite(seq, delta=delta("r", seq, seq)))
    other = JsonFileWorkflowStore(tmp_path, clock=clock)
    if how == "broken":
        assert other.break_lease("r")
    else:
        clock.now += driver.lease_ttl_seconds + 1
        other.acquire_lease("r", "b")
    with pytest.raises(RunLockedError, match="lost its lease"):
        driver.commit("r", "a", token, CheckpointWrite(4, delta=delta("r", 4, 4)))
    assert other.latest_checkpoint("r") == 3


# ---------------------------------------------------------------------- checkpoint identity


def test_checkpoints_are_numbered_and_a_historical_one_is_not_the_latest(
    setup: tuple[Any, Clock],
) -> None:
    store, _ = setup
    assert store.latest_checkpoint("r") is None
    store.save_snapshot(snap(seq=99))  # the passed seq is the store's to set
    assert store.latest_checkpoint("r") == 1 and store.load_snapshot("r").seq == 1
    store.append_step("r", delta("r", 2, 2))
    store.save_snapshot(snap(step=3, seq=1))
    token = store.acquire_lease("r", "a")
    store.commit("r", "a", token, CheckpointWrite(4, delta=delta("r", 4, 4)))
    store.commit("r", "a", token, CheckpointWrite(5, snap(step=5)))
    store.release_lease("r", "a")
    store.append_step("r", delta("r", 6, 6))
    latest = store.latest_checkpoint("r")
    assert latest == 6 and store.load_snapshot("r").seq == 6
    seqs = [store.load_snapshot("r", step=k).seq for k in range(1, 7)]
    assert seqs == [1, 2, 3, 4, 5, 6]
    assert all(s < latest for s in seqs[:-1])


def test_json_seq_is_read_from_disk_across_stores(tmp_path: Path) -> None:
    one, two = JsonFileWorkflowStore(tmp_path), JsonFileWorkflowStore(tmp_path)
    one.save_snapshot(snap())
    two.append_step("r", delta("r", 2, 2))
    two.append_step("r", delta("r", 3, 3))
    one.append_step("r", delta("r", 4, 4))  # one's counters are stale: it reads the disk
    assert one.latest_checkpoint("r") == two.latest_checkpoint("r") == 4
    assert two.load_snapshot("r").seq == 4 and two.load_snapshot("r").state.workflow["n"] == 4
    assert [h.step for h in two.history("r")] == [1, 2, 3, 4]


def test_a_0_1_0_json_snapshot_counts_as_checkpoint_zero(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    data = snap().to_dict()
    (tmp_path / "r" / "snapshot.json").write_text(json.dumps(data), encoding="utf-8")
    store = JsonFileWorkflowStore(tmp_path)
    assert store.load_snapshot("r").seq is None and store.latest_checkpoint("r") == 0
    token = store.acquire_lease("r", "a")
    store.commit("r", "a", token, CheckpointWrite(1, delta=delta("r", 2, 2)))
    assert store.latest_checkpoint("r") == 1 == store.load_snapshot("r").seq


# ---------------------------------------------------------------------- lease records


def test_a_lease_whose_holder_died_on_this_host_is_free_at_once(tmp_path: Path) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    store.save_snapshot(snap())
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from zeroflow.stores import JsonFileWorkflowStore as S;"
        "print(S(sys.argv[2]).acquire_lease('r', 'child'))"  # and exit without releasing
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(SRC), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    child_token = int(out.stdout)
    lease = json.loads((tmp_path / "r" / "lease.json").read_text(encoding="utf-8"))
    assert lease["owner"] == "child" and lease["holder"]["pid"] != os.getpid()
    assert store.acquire_lease("r", "me") > child_token  # default TTL, not waited out


def test_a_hand_written_lease_of_a_dead_pid_is_free(
    setup: tuple[Any, Clock], tmp_path: Path
) -> None:
    store, clock = setup
    holder = dead_holder()
    if isinstance(store, JsonFileWorkflowStore):
        (store.base_dir / "r").mkdir()
        record = {"owner": "gone", "expires_at": clock.now + 3600, "token": 41, "holder": holder}
        (store.base_dir / "r" / "lease.json").write_text(json.dumps(record), encoding="utf-8")
    else:
        store.acquire_lease("r", "gone")
        store._leases["r"].holder = holder
        store._leases["r"].token = 41
    alive = {**holder, "pid": os.getppid(), "start": None}
    assert store.acquire_lease("r", "me") == 42
    if isinstance(store, InMemoryWorkflowStore):
        store._leases["r"].holder = alive  # a live holder elsewhere on this host
        with pytest.raises(RunLockedError):
            store.acquire_lease("r", "you")


@pytest.mark.parametrize("expires", ["NaN", "Infinity", "-Infinity", '"soon"', "null", "true"])
def test_a_json_lease_with_a_non_finite_expiry_is_free(tmp_path: Path, expires: str) -> None:
    (tmp_path / "r").mkdir()
    raw = f'{{"owner": "x", "expires_at": {expires}, "token": 7}}'
    (tmp_path / "r" / "lease.json").write_text(raw, encoding="utf-8")
    store = JsonFileWorkflowStore(tmp_path)
    assert store.acquire_lease("r", "me") == 8


@pytest.mark.parametrize(
    "raw", [b'{"owner": "x", "expi', b"\xff\xfe\x00", b"", b"[1, 2]", b'"owner"', b"{}"]
)
def test_an_unreadable_or_torn_json_lease_is_free(tmp_path: Path, raw: bytes) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "lease.json").write_bytes(raw)
    store = JsonFileWorkflowStore(tmp_path)
    assert store.acquire_lease("r", "me") == 1
    store.renew_lease("r", "me", 1)


def test_a_json_lease_rewritten_shorter_keeps_its_new_record(tmp_path: Path) -> None:
    """A lease is rewritten in place, then cut: a kill before the cut leaves an old tail."""
    (tmp_path / "r").mkdir()
    record = json.dumps({"owner": "x", "expires_at": 1.0, "token": 5, "holder": None})
    (tmp_path / "r" / "lease.json").write_text(record + '", "tail": [1, 2, 3]}', encoding="utf-8")
    store = JsonFileWorkflowStore(tmp_path, clock=Clock())
    assert store.acquire_lease("r", "me") == 6
    store.release_lease("r", "me")
    lease = json.loads((tmp_path / "r" / "lease.json").read_text(encoding="utf-8"))
    assert lease["owner"] is None and lease["token"] == 6


# ---------------------------------------------------------------------- notes


def test_notes_from_callers_that_do_not_commit_are_written_at_once(
    setup: tuple[Any, Clock], tmp_path: Path
) -> None:
    store, _ = setup
    token = started(store)
    reader = (
        JsonFileWorkflowStore(store.base_dir) if isinstance(store, JsonFileWorkflowStore) else store
    )
    reader.append_event("r", event("r", "checkpoint"))  # its kind makes no difference
    assert kinds(reader) == ["x", "checkpoint"]
    store.commit(
        "r", "a", token, CheckpointWrite(2, delta=delta("r", 2, 2), events=[event("r", "y")])
    )
    assert kinds(reader) == ["x", "checkpoint", "y"]
    assert reader.latest_checkpoint("r") == 2
