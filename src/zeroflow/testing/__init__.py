"""Testing helpers: the store conformance kit, crash-everywhere testing, and test doubles.

- ``kit``: ``check_*`` functions (and ``STORE_CHECKS``) that hold any
  ``WorkflowStore`` to the store contract.
- ``crash``: ``crash_everywhere`` / ``assert_crash_safe`` crash your workflow
  at every point a real crash can fall and check that it resumes to the
  same end.
- ``doubles``: ``FakeClock`` and ``EventRecorder`` for your own tests.
"""

from __future__ import annotations

from .crash import CrashOutcome, CrashReport, SimulatedCrash, assert_crash_safe, crash_everywhere
from .doubles import EventRecorder, FakeClock
from .kit import (
    STORE_CHECKS,
    StoreFactory,
    check_checkpoint_identities,
    check_copies_not_aliases,
    check_dead_holder_taken_over,
    check_due_index,
    check_effects_kept,
    check_engine_round_trip,
    check_event_batches,
    check_events_keep_order,
    check_fork_onto_existing_run_refused,
    check_history,
    check_journal_replays_steps,
    check_latest_step,
    check_lease_expiry,
    check_leases,
    check_listing,
    check_missing_run,
    check_renewal_never_acquires,
    check_resume_due_wakes_each_run_once,
    check_round_trip,
    check_run_queries,
    check_run_status_and_delete,
    check_run_summaries,
    check_stale_token_refused,
    run_store_checks,
    sample_snapshot,
)

__all__ = [
    # crash-everywhere testing
    "crash_everywhere",
    "assert_crash_safe",
    "CrashReport",
    "CrashOutcome",
    "SimulatedCrash",
    # test doubles
    "FakeClock",
    "EventRecorder",
    # the store conformance kit
    "STORE_CHECKS",
    "StoreFactory",
    "check_checkpoint_identities",
    "check_copies_not_aliases",
    "check_dead_holder_taken_over",
    "check_due_index",
    "check_effects_kept",
    "check_resume_due_wakes_each_run_once",
    "check_run_queries",
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
