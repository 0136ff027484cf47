"""What the JSON and SQL stores share: per-run writers, and one write per checkpoint.

A driven run's checkpoint arrives as one ``commit`` (state change and the
events that led to it), is put in the run's ``Writer`` and written by the
backend's ``_commit`` in one go, fenced by the lease; the unleased calls
(``save_snapshot``, ``append_step``, ``append_events``) are written at once.
``BatchingStore`` keeps that bookkeeping; a backend says how a writer is
opened and how its pending writes are written.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from .._errors import RunNotFoundError
from .._journal import StepDelta
from .._models import Event, RunSnapshot
from .._store import CheckpointWrite
from ._common import FOLD_MIN_RECORDS, encode_compact, should_fold

__all__ = ["BatchingStore", "Writer"]


class Writer:
    """Counters and pending writes of one run that a store instance writes.

    ``owner`` is set while this instance holds the run's lease. ``seq`` is the
    run's last checkpoint, ``base_seq`` its last full snapshot (-1: none yet),
    ``records`` and ``base_bytes`` what the fold policy weighs; ``fold_wanted``
    says the driver was asked for a full snapshot (see ``append_step``).
    """

    __slots__ = (
        "asked_at",
        "base_bytes",
        "base_seq",
        "fence",
        "fold_wanted",
        "owner",
        "pending_events",
        "pending_full",
        "pending_steps",
        "records",
        "seq",
    )

    def __init__(self) -> None:
        self.owner: str | None = None
        self.seq = 0
        self.base_seq = -1
        self.base_bytes = 0
        self.records = 0
        self.pending_events: list[Event] = []
        self.pending_full: dict[str, Any] | None = None
        self.pending_steps: list[tuple[str, StepDelta]] = []
        self.fold_wanted = False
        self.asked_at = 0
        # Set only inside ``commit``: (owner, token, seq) the backend's ``_commit`` must
        # verify in the same lock or transaction as the write, refusing it otherwise.
        self.fence: tuple[str, int, int] | None = None

    def has_state(self) -> bool:
        """True when a checkpoint (step deltas or a full snapshot) waits to be written."""
        return bool(self.pending_steps) or self.pending_full is not None


W = TypeVar("W", bound=Writer)


class BatchingStore(ABC, Generic[W]):
    """``save_snapshot``, ``append_step`` and ``flush`` over per-run writers.

    Subclasses set ``lease_ttl_seconds``, ``_lock`` (an ``RLock``) and
    ``_writers``, and implement ``_open_writer`` and ``_commit``.
    """

    lease_ttl_seconds: float
    _lock: threading.RLock
    _writers: dict[str, W]

    @abstractmethod
    def _open_writer(self, run_id: str) -> W:
        """The writer of a run this instance has not written yet, counters read."""

    @abstractmethod
    def _commit(self, run_id: str, w: W) -> None:
        """Write whatever ``w`` holds pending; clear it once written."""

    @abstractmethod
    def _append_unleased(self, run_id: str, events: Sequence[Event]) -> None:
        """Write ``events`` at once: this instance does not drive the run. Holds ``_lock``."""

    def _forked(self) -> None:
        """In a forked child: a fresh lock, and none of the parent's writers or pending writes."""
        self._lock = threading.RLock()
        self._writers = {}

    def _writer(self, run_id: str) -> W:
        w = self._writers.get(run_id)
        if w is None:
            w = self._open_writer(run_id)
            self._writers[run_id] = w
        return w

    def save_snapshot(self, snapshot: RunSnapshot) -> None:
        """Write ``snapshot`` at once as the run's next checkpoint (unfenced: 0.1.0's API)."""
        data = snapshot.to_dict()
        with self._lock:
            w = self._writer(snapshot.run_id)
            w.pending_full = data
            self._commit(snapshot.run_id, w)

    def append_step(self, run_id: str, delta: StepDelta) -> bool:
        """Write one step at once (unfenced); True asks for a full snapshot next.

        A store without a snapshot of the run refuses it (``RunNotFoundError``);
        the backend re-reads an unleased run's counters when it writes, since
        another process may have created the run since the writer was opened.
        """
        body = encode_compact(delta.to_json_data())
        with self._lock:
            w = self._writer(run_id)
            if w.base_seq < 0 and w.owner is not None:
                raise RunNotFoundError(run_id)
            w.pending_steps.append((body, delta))
            self._commit_or_drop(run_id, w)
            return w.fold_wanted

    def _fold_due(self, w: W, records: int, journal_bytes: int) -> bool:
        """True when the store should fold the journal itself, now.

        With a driver (a lease) the store asks for a full snapshot instead
        (``fold_wanted``) and folds itself only if ``FOLD_MIN_RECORDS`` more
        records arrive without one.
        """
        if not should_fold(records, journal_bytes, w.base_bytes):
            return False
        if w.owner is None:
            return True
        if not w.fold_wanted:
            w.fold_wanted = True
            w.asked_at = records
            return False
        return records - w.asked_at >= FOLD_MIN_RECORDS

    def append_event(self, run_id: str, event: Event) -> None:
        self.append_events(run_id, (event,))

    def append_events(self, run_id: str, events: Sequence[Event]) -> None:
        """Events in order, written at once (an operator's note, a store without a driver).

        A driven run's own events never come this way: they go with its
        checkpoints, in ``commit``; so nothing here depends on an event's kind.
        """
        if not events:
            return
        with self._lock:
            self._append_unleased(run_id, events)

    def commit(self, run_id: str, owner: str, token: int, write: CheckpointWrite) -> bool:
        """Write one checkpoint of a driven run and its events now (``LeasingStore.commit``).

        The backend's ``_commit`` sees ``Writer.fence`` and checks the lease
        token and the checkpoint's ``seq`` atomically with the write; when it
        refuses (``RunLockedError``) nothing of this checkpoint is kept.
        """
        delta = write.delta
        body = encode_compact(delta.to_json_data()) if delta is not None else ""
        data = write.snapshot.to_dict() if write.snapshot is not None else None
        with self._lock:
            w = self._writer(run_id)
            if data is not None:
                w.pending_full = data
            elif delta is not None:
                w.pending_steps.append((body, delta))
            w.pending_events.extend(write.events)
            w.fence = (owner, token, write.seq)
            try:
                self._commit(run_id, w)
            except BaseException:
                w.pending_full = None
                w.pending_steps.clear()
                w.pending_events.clear()
                raise
            finally:
                w.fence = None
            return w.fold_wanted

    def flush(self) -> None:
        """Commit whatever a driven run has pending (reads and releases do this themselves)."""
        with self._lock:
            # A copy: committing may reconnect (after a fork) and reset the writers.
            for run_id, w in list(self._writers.items()):
                self._commit_or_drop(run_id, w)

    def _commit_run(self, run_id: str) -> None:
        with self._lock:
            w = self._writers.get(run_id)
            if w is not None:
                self._commit_or_drop(run_id, w)

    def _commit_or_drop(self, run_id: str, w: W) -> None:
        """Commit ``w``; steps for a run the store does not hold are dropped, then reported.

        Keeping them would make every later flush, listing or prune fail on the
        same missing run.
        """
        try:
            self._commit(run_id, w)
        except RunNotFoundError:
            self._writers.pop(run_id, None)
            raise
