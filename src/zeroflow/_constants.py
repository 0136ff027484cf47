"""Names shared by every module: event kinds, error codes and run statuses.

Everything here is a plain string constant so that events, errors and
snapshots stay JSON data; the tables at the bottom are the one place the
engine derives its checks from.
"""

from __future__ import annotations

from typing import Final

MAX_DEPTH: Final = 200
"""How deeply state, inputs, resume payloads, event data and definitions may nest.

Counted in containers (dicts and lists), the value handed over being level 1:
``{"a": [1]}`` is 2 levels deep. Deeper data is refused where it enters, before
anything is written, so every stored run can be loaded, resumed and shown again.
"""

MAX_WAIT_SECONDS: Final = 30 * 86400
"""The longest wait before a retry (``retry_sleep_seconds``, ``max_delay_seconds``, a backoff).

30 days: below every platform's limit for one timed wait (``threading.TIMEOUT_MAX``
is about 49 days on Windows), so a definition valid on one machine is valid on all.
"""

MAX_TIMEOUT_SECONDS: Final = 3650 * 86400
"""The longest ``timeout_seconds`` / ``workflow_timeout_seconds``: 3650 days (about 10 years)."""

CANCEL_GRACE_SECONDS: Final[float] = 1.0
"""How long a cancelled async handler may take to finish before the engine moves on.

At a node deadline (or ``engine.cancel()``) the engine cancels the handler's
task; a handler that catches ``CancelledError`` and keeps going is abandoned
after this many seconds, and the node fails with ``NODE_TIMEOUT`` (or the run is
cancelled) all the same.
"""

EVENT_WF_START: Final = "wf:start"
EVENT_WF_END: Final = "wf:end"
EVENT_WF_WAITING: Final = "wf:waiting"
EVENT_WF_CANCELLED: Final = "wf:cancelled"
EVENT_WF_RESUMED: Final = "wf:resumed"
EVENT_NODE_START: Final = "node:start"
EVENT_NODE_END: Final = "node:end"
EVENT_NODE_ERROR: Final = "node:error"
EVENT_NODE_RETRY: Final = "node:retry"
EVENT_NODE_WARNING: Final = "node:warning"
EVENT_CHECKPOINT: Final = "checkpoint"
EVENT_STORE_SAVED: Final = "store:saved"
EVENT_STORE_RECOVERED: Final = "store:recovered"
EVENT_STORE_CORRUPT: Final = "store:corrupt"
EVENT_WF_MIGRATED: Final = "wf:migrated"
EVENT_EFFECT_INTENT: Final = "effect:intent"
"""``ctx.effect`` is about to call its function (the intent is recorded)."""
EVENT_EFFECT_DONE: Final = "effect:done"
"""``ctx.effect``'s function returned; its receipt is recorded."""
EVENT_EFFECT_FAILED: Final = "effect:failed"
"""``ctx.effect``'s function raised: the intent is withdrawn, a retry may call it again."""
EVENT_WF_TOKEN: Final = "wf:token"
"""A pause's new single-use resume token (``{"node": path, "token": ...}``), sent to
callbacks and streams once the pause is committed; live only: no store keeps it."""
EVENT_TOKEN: Final = "token"
"""A handler's streamed partial output (``ctx.emit("token", {"text": ...})``).

Like every kind ``token:<name>``, it is live only by default: callbacks and
streams get it, no store keeps it, unless the handler passes ``persist=True``.
"""
EVENT_NODE_COMPENSATE: Final = "node:compensate"
"""A failed run starts undoing one completed visit of a node (its ``compensate`` handler)."""
EVENT_NODE_COMPENSATED: Final = "node:compensated"
"""A node's compensation handler succeeded; the visit is undone."""
EVENT_NODE_COMPENSATION_FAILED: Final = "node:compensation_failed"
"""A node's compensation handler failed for good (after its retries): compensation stops."""
EVENT_NODE_OVERRIDE: Final = "node:override"
"""``redrive(override=...)`` marked the failed node done with a given result, uncalled."""

ERROR_CONTRACT_VIOLATION: Final = "CONTRACT_VIOLATION"
"""A handler wrote ``state.workflow`` keys outside its ``writes_to`` under ``contracts:
"enforce"``; nothing of the step was merged."""
ERROR_HANDLER_EXCEPTION: Final = "HANDLER_EXCEPTION"
ERROR_HANDLER_NOT_REGISTERED: Final = "HANDLER_NOT_REGISTERED"
ERROR_HANDLER_TYPE_NOT_DECLARED: Final = "HANDLER_TYPE_NOT_DECLARED"
ERROR_UNDECLARED_OUTPUT: Final = "UNDECLARED_OUTPUT"
ERROR_MAX_STEPS_EXCEEDED: Final = "MAX_STEPS_EXCEEDED"
ERROR_WORKFLOW_TIMEOUT: Final = "WORKFLOW_TIMEOUT"
ERROR_WORKFLOW_CANCELLED: Final = "WORKFLOW_CANCELLED"
ERROR_STATE_SERIALIZATION: Final = "STATE_SERIALIZATION"
ERROR_INVALID_HANDLER_RESULT: Final = "INVALID_HANDLER_RESULT"
ERROR_NODE_TIMEOUT: Final = "NODE_TIMEOUT"
ERROR_JOIN_STRANDED: Final = "JOIN_STRANDED"
ERROR_MAP_FAILED: Final = "MAP_FAILED"
ERROR_MAP_INPUT: Final = "MAP_INPUT"
ERROR_SUBFLOW_FAILED: Final = "SUBFLOW_FAILED"
ERROR_EFFECT_UNCERTAIN: Final = "EFFECT_UNCERTAIN"
"""An effect's intent is recorded but not its receipt: whether it happened is unknown."""
ERROR_WAIT_TIMEOUT: Final = "WAIT_TIMEOUT"
"""A wait node's deadline passed unanswered and its ``on_timeout`` is ``"fail"``."""
ERROR_SLEEP_UNTIL: Final = "SLEEP_UNTIL_INVALID"
"""A sleep node's ``until`` path does not hold an ISO-8601 time when the node runs."""

STATUS_RUNNING: Final = "running"
STATUS_SUCCEEDED: Final = "succeeded"
STATUS_FAILED: Final = "failed"
STATUS_WAITING: Final = "waiting"
STATUS_CANCELLED: Final = "cancelled"

RUN_STATUSES: Final = frozenset(
    {STATUS_RUNNING, STATUS_SUCCEEDED, STATUS_FAILED, STATUS_WAITING, STATUS_CANCELLED}
)
FINISHED_STATUSES: Final = frozenset({STATUS_SUCCEEDED, STATUS_FAILED, STATUS_CANCELLED})

# Which entry point may pick up a snapshot in which status.
RESUMABLE_STATUSES: Final = frozenset({STATUS_RUNNING, STATUS_WAITING, STATUS_CANCELLED})
REDRIVABLE_STATUSES: Final = frozenset({STATUS_FAILED, STATUS_CANCELLED})


class ErrorCode:
    """Namespace of every error code a ``WorkflowError`` can carry."""

    HANDLER_EXCEPTION: Final = ERROR_HANDLER_EXCEPTION
    HANDLER_NOT_REGISTERED: Final = ERROR_HANDLER_NOT_REGISTERED
    HANDLER_TYPE_NOT_DECLARED: Final = ERROR_HANDLER_TYPE_NOT_DECLARED
    UNDECLARED_OUTPUT: Final = ERROR_UNDECLARED_OUTPUT
    MAX_STEPS_EXCEEDED: Final = ERROR_MAX_STEPS_EXCEEDED
    WORKFLOW_TIMEOUT: Final = ERROR_WORKFLOW_TIMEOUT
    WORKFLOW_CANCELLED: Final = ERROR_WORKFLOW_CANCELLED
    STATE_SERIALIZATION: Final = ERROR_STATE_SERIALIZATION
    INVALID_HANDLER_RESULT: Final = ERROR_INVALID_HANDLER_RESULT
    NODE_TIMEOUT: Final = ERROR_NODE_TIMEOUT
    JOIN_STRANDED: Final = ERROR_JOIN_STRANDED
    MAP_FAILED: Final = ERROR_MAP_FAILED
    MAP_INPUT: Final = ERROR_MAP_INPUT
    SUBFLOW_FAILED: Final = ERROR_SUBFLOW_FAILED
    EFFECT_UNCERTAIN: Final = ERROR_EFFECT_UNCERTAIN
    WAIT_TIMEOUT: Final = ERROR_WAIT_TIMEOUT
    SLEEP_UNTIL_INVALID: Final = ERROR_SLEEP_UNTIL
    CONTRACT_VIOLATION: Final = ERROR_CONTRACT_VIOLATION
