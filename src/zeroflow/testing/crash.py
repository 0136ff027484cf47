"""Crash-everywhere testing: a workflow crashed at every point a real crash can fall.

``crash_everywhere`` runs the workflow once without interruption, then once
per crash point: after every checkpoint is written and between every
handler's return and its checkpoint (the write is lost). Each crashed run is
resumed in a fresh engine on what the crash left in the store, until it
ends, and compared with the uninterrupted run.

Two ways to crash. ``mode="inprocess"`` (the default, fast) raises
``SimulatedCrash`` at the crash point and then behaves as a dead process
would: the crashed engine writes nothing more (no events, no lease release),
its lease is broken as if it had expired, and the run continues in a new
engine built by your factory on the same store object. ``mode="kill"`` forks
a child process (POSIX) that kills itself with SIGKILL at the crash point;
the parent reopens the store and resumes: the store must live outside the
process (files, a database) and recognise a dead holder's lease, as the
shipped file stores do.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .. import _constants as C
from .._errors import StoreError
from .._models import Event, RunMetadata, RunSnapshot
from .._run.waits import waiting_paths
from .._store import (
    CheckpointWrite,
    EventBatchingStore,
    LeasingStore,
    WorkflowStore,
)

__all__ = [
    "CrashOutcome",
    "CrashReport",
    "SimulatedCrash",
    "assert_crash_safe",
    "crash_everywhere",
]

EngineFactory = Callable[[WorkflowStore], Any]
"""Builds the workflow's engine (a ``WorkflowEngine``) on the store it is given."""
StoreFactory = Callable[[str], WorkflowStore]
"""Returns the store named ``name``: a fresh one for a new name, the same one again for a name
already used (``mode="kill"`` reopens it in the parent), e.g. ``lambda n: SqliteWorkflowStore(
tmp_path / f"{n}.db")``."""
Answers = Mapping[str, Any] | Callable[[str, str | None], Any]
"""The resume payload of each wait: by waiting node (or path), or ``f(node, prompt)``."""

Mode = Literal["inprocess", "kill"]
_FINAL = frozenset([C.STATUS_SUCCEEDED, C.STATUS_FAILED])
_NODE_KINDS = frozenset([C.EVENT_NODE_START, C.EVENT_NODE_END, C.EVENT_NODE_COMPENSATE])


class SimulatedCrash(BaseException):
    """The process "dies" here: a ``BaseException``, so no ``except Exception`` stops it."""


@dataclass(frozen=True)
class CrashOutcome:
    """How the run ended after one crash point, compared with the uninterrupted run."""

    point: int
    """The crash point, from 1: odd points fall before a checkpoint write, even ones after it."""
    where: str
    """``"before checkpoint N"`` or ``"after checkpoint N"``."""
    node: str | None
    """The node whose checkpoint the crash falls at (None for the run's opening one)."""
    reached: bool
    """False when the crashed run ended before reaching the point (it did not run the same way)."""
    status: str | None
    same_status: bool
    same_state: bool
    same_trace: bool
    runs: dict[str, int]
    """How often each node's handler was called in this crashed-and-resumed run."""
    repeated: dict[str, int]
    """Calls beyond the uninterrupted run's, per node (the work a crash made happen twice)."""
    error: str | None = None
    """An exception that escaped while the run was resumed, as ``Type: message``."""

    @property
    def ok(self) -> bool:
        """The run ended as the uninterrupted one did: same status, state and trace, no error."""
        return (
            self.error is None
            and self.reached
            and self.same_status
            and self.same_state
            and self.same_trace
        )


@dataclass(frozen=True)
class CrashReport:
    """Every crash point tried, and the uninterrupted run they are compared with."""

    mode: str
    status: str
    trace: list[str]
    runs: dict[str, int]
    outcomes: list[CrashOutcome] = field(default_factory=list)

    @property
    def points(self) -> int:
        """How many crash points were tried."""
        return len(self.outcomes)

    @property
    def failures(self) -> list[CrashOutcome]:
        """The crash points after which the run did not end as the uninterrupted one."""
        return [o for o in self.outcomes if not o.ok]

    def repeated(self) -> dict[str, int]:
        """For each node that ran again after some crash, the most extra calls at one point."""
        worst: dict[str, int] = {}
        for outcome in self.outcomes:
            for node, extra in outcome.repeated.items():
                worst[node] = max(worst.get(node, 0), extra)
        return worst

    def problems(self, once: Iterable[str] = ()) -> list[CrashOutcome]:
        """Failures, and points where a node of ``once`` (must not run twice) ran again."""
        only_once = set(once)
        return [o for o in self.outcomes if not o.ok or only_once & set(o.repeated)]

    def table(self, outcomes: Sequence[CrashOutcome] | None = None) -> str:
        """A readable table of ``outcomes`` (default: every crash point)."""
        rows = [("crash point", "node", "status", "state", "trace", "ran again")]
        for o in self.outcomes if outcomes is None else outcomes:
            again = ", ".join(f"{n} x{k}" for n, k in sorted(o.repeated.items())) or "-"
            status = o.error or (o.status if o.reached else "not reached")
            rows.append(
                (
                    o.where,
                    o.node or "-",
                    str(status) + ("" if o.same_status else " (differs)"),
                    "same" if o.same_state else "DIFFERS",
                    "same" if o.same_trace else "DIFFERS",
                    again,
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        ]
        return "\n".join(lines)


# ---------------------------------------------------------------- the fuse


class _Fuse:
    """Counts checkpoint writes and handler calls; blows at one crash point."""

    def __init__(self, at: int | None, mode: Mode, report: Callable[[str], None] | None = None):
        self.at = at
        self.mode = mode
        self.writes = 0
        self.blown = False
        self.calls: Counter[str] = Counter()
        self.nodes: list[str | None] = []
        self.last_node: str | None = None
        self.report = report

    def saw(self, events: Iterable[Event]) -> None:
        for event in events:
            if event.node is not None and event.kind in _NODE_KINDS:
                self.last_node = event.node
            if event.node is None:
                continue
            if event.kind == C.EVENT_NODE_START:
                called = event.node
            elif event.kind == C.EVENT_NODE_COMPENSATE:
                called = f"{event.node}:compensate"  # a compensation is a call of its own
            else:
                continue
            self.calls[called] += 1
            if self.report is not None:
                self.report(called)

    def before(self) -> None:
        self.writes += 1
        self.nodes.append(self.last_node)
        if self.at == 2 * self.writes - 1:
            self._blow()

    def after(self) -> None:
        if self.at == 2 * self.writes:
            self._blow()

    def _blow(self) -> None:
        self.blown = True
        if self.mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise SimulatedCrash(f"simulated crash at point {self.at}")


class _LeasedFuse:
    """A leasing store seen through a fuse: writes counted, nothing written once it blew."""

    def __init__(self, inner: LeasingStore, fuse: _Fuse) -> None:
        self.inner = inner
        self.fuse = fuse
        self.durable = inner.durable
        self.lease_ttl_seconds = inner.lease_ttl_seconds

    def commit(self, run_id: str, owner: str, token: int, write: CheckpointWrite) -> bool:
        fuse = self.fuse
        if fuse.blown:
            raise SimulatedCrash("the crashed process writes nothing more")
        fuse.saw(write.events)
        fuse.before()
        due = self.inner.commit(run_id, owner, token, write)
        fuse.after()
        return due

    def save_snapshot(self, snapshot: RunSnapshot) -> None:
        if not self.fuse.blown:
            self.inner.save_snapshot(snapshot)

    def append_event(self, run_id: str, event: Event) -> None:
        if not self.fuse.blown:
            self.fuse.saw((event,))
            self.inner.append_event(run_id, event)

    def append_events(self, run_id: str, events: Sequence[Event]) -> None:
        if self.fuse.blown:
            return
        self.fuse.saw(events)
        inner = self.inner
        if isinstance(inner, EventBatchingStore):
            inner.append_events(run_id, events)
        else:
            for event in events:
                inner.append_event(run_id, event)

    def release_lease(self, run_id: str, owner: str) -> None:
        if not self.fuse.blown:  # a dead process gives nothing back
            self.inner.release_lease(run_id, owner)

    def load_snapshot(self, run_id: str) -> RunSnapshot:
        return self.inner.load_snapshot(run_id)

    def list_metadata(self, workflow_name: str | None = None) -> list[RunMetadata]:
        return self.inner.list_metadata(workflow_name)

    def acquire_lease(self, run_id: str, owner: str) -> int:
        return self.inner.acquire_lease(run_id, owner)

    def renew_lease(self, run_id: str, owner: str, token: int | None = None) -> None:
        self.inner.renew_lease(run_id, owner, token)

    def break_lease(self, run_id: str) -> bool:
        return self.inner.break_lease(run_id)

    def run_status(self, run_id: str) -> str | None:
        return self.inner.run_status(run_id)

    def latest_checkpoint(self, run_id: str) -> int | None:
        return self.inner.latest_checkpoint(run_id)

    def latest_step(self, run_id: str) -> int | None:
        return self.inner.latest_step(run_id)

    def delete_run(self, run_id: str, *, owner: str | None = None) -> bool:
        return self.inner.delete_run(run_id, owner=owner)


class _PlainFuse:
    """A store without leases (0.1.0's four methods) seen through a fuse."""

    def __init__(self, inner: WorkflowStore, fuse: _Fuse) -> None:
        self.inner = inner
        self.fuse = fuse

    def save_snapshot(self, snapshot: RunSnapshot) -> None:
        fuse = self.fuse
        if fuse.blown:
            raise SimulatedCrash("the crashed process writes nothing more")
        fuse.before()
        self.inner.save_snapshot(snapshot)
        fuse.after()

    def append_event(self, run_id: str, event: Event) -> None:
        if not self.fuse.blown:
            self.fuse.saw((event,))
            self.inner.append_event(run_id, event)

    def load_snapshot(self, run_id: str) -> RunSnapshot:
        return self.inner.load_snapshot(run_id)

    def list_metadata(self, workflow_name: str | None = None) -> list[RunMetadata]:
        return self.inner.list_metadata(workflow_name)


def _through(store: WorkflowStore, fuse: _Fuse) -> WorkflowStore:
    if isinstance(store, LeasingStore):
        return _LeasedFuse(store, fuse)
    return _PlainFuse(store, fuse)


# ---------------------------------------------------------------- driving a run to its end


def _stored(store: WorkflowStore, run_id: str) -> RunSnapshot | None:
    try:
        return store.load_snapshot(run_id)
    except KeyError:
        return None


def _answer(answers: Answers | None, path: str, prompt: str | None) -> Any:
    if callable(answers):
        return answers(path, prompt)
    if answers is not None:
        for key in (path, path.rpartition("/")[2]):
            if key in answers:
                return answers[key]
    raise ValueError(
        f"the run waits at '{path}' (prompt {prompt!r}) but answers has no payload for it; "
        "pass answers={'<node>': payload} or a function (node, prompt) -> payload"
    )


def _drive(
    make_engine: EngineFactory,
    store: WorkflowStore,
    run_id: str,
    initial_input: Mapping[str, Any] | None,
    answers: Answers | None,
    max_calls: int,
) -> RunSnapshot:
    """Start, resume and answer the run until the store holds it succeeded or failed."""
    engine = make_engine(store)
    for _ in range(max_calls):
        snap = _stored(store, run_id)
        if snap is None:
            engine.run(initial_input, run_id=run_id)
        elif snap.status in _FINAL:
            return snap
        elif snap.status == C.STATUS_WAITING:
            waits = waiting_paths(snap.status, snap.ready_now, snap.extra, snap.waiting_prompt)
            path = sorted(waits)[0]
            engine.resume(run_id, node=path, resume_input=_answer(answers, path, waits[path]))
        else:  # running (interrupted) or cancelled: carry on where it stopped
            engine.resume(run_id)
    raise RuntimeError(f"run '{run_id}' did not end after {max_calls} engine calls")


def _same_state(a: RunSnapshot, b: RunSnapshot) -> bool:
    return bool(a.state.to_dict() == b.state.to_dict())


# ---------------------------------------------------------------- crash points


def _crash_in_process(
    make_engine: EngineFactory,
    store: WorkflowStore,
    point: int,
    run: Callable[[EngineFactory, WorkflowStore], RunSnapshot],
) -> tuple[_Fuse, Counter[str]]:
    fuse = _Fuse(point, "inprocess")
    with contextlib.suppress(SimulatedCrash):
        run(make_engine, _through(store, fuse))
    return fuse, fuse.calls


def _crash_in_child(
    make_store: StoreFactory,
    name: str,
    make_engine: EngineFactory,
    point: int,
    run: Callable[[EngineFactory, WorkflowStore], RunSnapshot],
) -> tuple[bool, Counter[str]]:
    """Run until ``point`` in a forked child that SIGKILLs itself there; the calls it made."""
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        os.close(read_fd)

        def tell(node: str) -> None:
            os.write(write_fd, (json.dumps(node) + "\n").encode())

        code = 3
        try:
            fuse = _Fuse(point, "kill", tell)
            run(make_engine, _through(make_store(name), fuse))
        except BaseException:
            code = 4
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks = []
    with os.fdopen(read_fd, "rb") as pipe:
        chunks.append(pipe.read())
    _, status = os.waitpid(pid, 0)
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    calls: Counter[str] = Counter(json.loads(line) for line in b"".join(chunks).splitlines())
    return killed, calls


def crash_everywhere(
    make_engine: EngineFactory,
    make_store: StoreFactory,
    initial_input: Mapping[str, Any] | None = None,
    *,
    answers: Answers | None = None,
    mode: Mode = "inprocess",
    run_id: str = "crash-test",
    max_calls: int = 1000,
) -> CrashReport:
    """Run the workflow uninterrupted, then crashed at every crash point; compare each end.

    ``make_engine(store)`` builds your engine on the store it is given (keep
    handlers deterministic, or the runs cannot be compared); ``make_store(name)``
    returns the store of that name (fresh for a new name). Waits are answered
    from ``answers``. Returns a ``CrashReport``; ``assert_crash_safe`` raises
    on it.
    """
    if mode not in ("inprocess", "kill"):
        raise ValueError(f"mode must be 'inprocess' or 'kill', got {mode!r}")
    if mode == "kill" and sys.platform == "win32":  # pragma: no cover
        raise ValueError("mode='kill' needs os.fork (POSIX); use mode='inprocess'")

    def run(factory: EngineFactory, store: WorkflowStore) -> RunSnapshot:
        return _drive(factory, store, run_id, initial_input, answers, max_calls)

    base_fuse = _Fuse(None, "inprocess")
    baseline = run(make_engine, _through(make_store(f"{run_id}-uninterrupted"), base_fuse))
    outcomes: list[CrashOutcome] = []
    for point in range(1, 2 * base_fuse.writes + 1):
        name = f"{run_id}-crash-{point}"
        write = (point + 1) // 2
        where = f"{'before' if point % 2 else 'after'} checkpoint {write}"
        node = base_fuse.nodes[write - 1]
        if mode == "kill":
            reached, calls = _crash_in_child(make_store, name, make_engine, point, run)
            store = make_store(name)
        else:
            store = make_store(name)
            fuse, calls = _crash_in_process(make_engine, store, point, run)
            reached = fuse.blown
            if reached and isinstance(store, LeasingStore):
                store.break_lease(run_id)  # the dead engine's lease, as if it had expired
        after = _Fuse(None, "inprocess")
        error = None
        end: RunSnapshot | None = None
        try:
            end = run(make_engine, _through(store, after))
        except (StoreError, RuntimeError, ValueError, KeyError, TypeError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        total = calls + after.calls
        outcomes.append(
            CrashOutcome(
                point=point,
                where=where,
                node=node,
                reached=reached,
                status=None if end is None else end.status,
                same_status=end is not None and end.status == baseline.status,
                same_state=end is not None and _same_state(end, baseline),
                same_trace=end is not None and end.trace == baseline.trace,
                runs=dict(total),
                repeated={
                    n: k - base_fuse.calls[n] for n, k in total.items() if k > base_fuse.calls[n]
                },
                error=error,
            )
        )
    return CrashReport(
        mode=mode,
        status=baseline.status,
        trace=list(baseline.trace),
        runs=dict(base_fuse.calls),
        outcomes=outcomes,
    )


def assert_crash_safe(
    make_engine: EngineFactory,
    make_store: StoreFactory,
    initial_input: Mapping[str, Any] | None = None,
    *,
    answers: Answers | None = None,
    once: Iterable[str] = (),
    mode: Mode = "inprocess",
    run_id: str = "crash-test",
) -> CrashReport:
    """``crash_everywhere``, then ``AssertionError`` with a table if any crash point went wrong.

    Wrong: the resumed run ended with another status, state or trace, or an
    error escaped, or a node named in ``once`` (its side effect must not
    repeat) ran more often than in the uninterrupted run.
    """
    report = crash_everywhere(
        make_engine, make_store, initial_input, answers=answers, mode=mode, run_id=run_id
    )
    bad = report.problems(once)
    if bad:
        raise AssertionError(
            f"{len(bad)} of {report.points} crash points did not end as the uninterrupted run "
            f"({report.status}, trace {' > '.join(report.trace)}):\n{report.table(bad)}"
        )
    return report
