"""zeroflow: a zero-dependency, embeddable, crash-safe workflow engine.

A workflow is a JSON dict of nodes; each node names a handler (a Python
function taking a ``WorkflowContext`` and returning a ``HandlerResult``).
``WorkflowEngine.run()`` walks the graph, routes on the outputs handlers
return, and checkpoints after every node to a pluggable store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._constants import (
    CANCEL_GRACE_SECONDS,
    ERROR_CONTRACT_VIOLATION,
    ERROR_EFFECT_UNCERTAIN,
    ERROR_HANDLER_EXCEPTION,
    ERROR_HANDLER_NOT_REGISTERED,
    ERROR_HANDLER_TYPE_NOT_DECLARED,
    ERROR_INVALID_HANDLER_RESULT,
    ERROR_JOIN_STRANDED,
    ERROR_MAP_FAILED,
    ERROR_MAP_INPUT,
    ERROR_MAX_STEPS_EXCEEDED,
    ERROR_NODE_TIMEOUT,
    ERROR_SLEEP_UNTIL,
    ERROR_STATE_SERIALIZATION,
    ERROR_SUBFLOW_FAILED,
    ERROR_UNDECLARED_OUTPUT,
    ERROR_WAIT_TIMEOUT,
    ERROR_WORKFLOW_CANCELLED,
    ERROR_WORKFLOW_TIMEOUT,
    EVENT_CHECKPOINT,
    EVENT_EFFECT_DONE,
    EVENT_EFFECT_FAILED,
    EVENT_EFFECT_INTENT,
    EVENT_NODE_COMPENSATE,
    EVENT_NODE_COMPENSATED,
    EVENT_NODE_COMPENSATION_FAILED,
    EVENT_NODE_END,
    EVENT_NODE_ERROR,
    EVENT_NODE_OVERRIDE,
    EVENT_NODE_RETRY,
    EVENT_NODE_START,
    EVENT_NODE_WARNING,
    EVENT_STORE_CORRUPT,
    EVENT_STORE_RECOVERED,
    EVENT_STORE_SAVED,
    EVENT_TOKEN,
    EVENT_WF_CANCELLED,
    EVENT_WF_END,
    EVENT_WF_MIGRATED,
    EVENT_WF_RESUMED,
    EVENT_WF_START,
    EVENT_WF_TOKEN,
    EVENT_WF_WAITING,
    MAX_DEPTH,
    MAX_TIMEOUT_SECONDS,
    MAX_WAIT_SECONDS,
    STATUS_CANCELLED,
    STATUS_FAILED,
    STATUS_RUNNING,
    STATUS_SUCCEEDED,
    STATUS_WAITING,
    ErrorCode,
)
from ._definition import validate_workflow_definition
from ._engine import Handler, WorkflowEngine
from ._errors import (
    CheckpointNotFoundError,
    CodecError,
    ConsoleSetupError,
    HashMismatchError,
    InitialInputError,
    InvalidCheckpointError,
    InvalidTransitionError,
    OverrideError,
    ResumeInputError,
    ResumeTokenError,
    RunExistsError,
    RunLockedError,
    RunNotFoundError,
    StoreCorruptError,
    StoreError,
    StoreNotConfiguredError,
    WorkflowDefinitionError,
    ZeroflowError,
)
from ._events import EventCallback, subscribe
from ._journal import StepDelta, apply_delta
from ._models import (
    EnginePolicy,
    Event,
    HandlerResult,
    RunMetadata,
    RunSnapshot,
    StepRecord,
    WorkflowContext,
    WorkflowError,
    WorkflowResult,
    WorkflowState,
    json_clone,
    now_iso,
)
from ._run.durability import Durability
from ._run.effects import EffectError
from ._run.requests import NodeTimeoutError
from ._store import (
    DEFAULT_LEASE_TTL_SECONDS,
    CheckpointInfo,
    CheckpointWrite,
    EventBatchingStore,
    EventLogStore,
    HistoryStore,
    JournalingStore,
    LeasingStore,
    PruneResult,
    WorkflowStore,
)

if TYPE_CHECKING:
    from ._convert import Conversion, ConversionLoss, convert
    from ._explain import explain
    from ._lint import LINT_CODES, LintFinding, lint
    from ._plan import ErrorRoute, LoopEdge, Plan, PlanLayer, PlanWave
    from ._planner import plan
    from ._schema import schema
    from ._stats import NodeStats, RunSummary, stats_report
    from ._store_views import (
        DueStore,
        LeaseInfo,
        LeaseInspectingStore,
        RunPage,
        RunQuery,
        RunQueryStore,
        StatsStore,
    )
    from ._upgrade import UpgradeReport, UpgradeVerdict
    from ._why import Reason, Why, why_run
    from .codecs import Codec
    from .stores.jsonfile import JsonFileWorkflowStore
    from .stores.memory import InMemoryWorkflowStore
    from .stores.sqlite import SqliteWorkflowStore

# Imported on first use (``zeroflow.X`` or ``from zeroflow import X``), not at
# ``import zeroflow``: a program that runs a workflow without a store, a
# linter or a converter does not pay for them (sqlite3 and pathlib included).
_LAZY = {
    "convert": "._convert",
    "Conversion": "._convert",
    "ConversionLoss": "._convert",
    "explain": "._explain",
    "lint": "._lint",
    "plan": "._planner",
    "Plan": "._plan",
    "PlanWave": "._plan",
    "PlanLayer": "._plan",
    "LoopEdge": "._plan",
    "ErrorRoute": "._plan",
    "LintFinding": "._lint",
    "LINT_CODES": "._lint",
    "schema": "._schema",
    "UpgradeReport": "._upgrade",
    "UpgradeVerdict": "._upgrade",
    "LeaseInfo": "._store_views",
    "DueStore": "._store_views",
    "LeaseInspectingStore": "._store_views",
    "StatsStore": "._store_views",
    "RunQueryStore": "._store_views",
    "RunPage": "._store_views",
    "RunQuery": "._store_views",
    "NodeStats": "._stats",
    "RunSummary": "._stats",
    "stats_report": "._stats",
    "Why": "._why",
    "Reason": "._why",
    "why_run": "._why",
    "InMemoryWorkflowStore": ".stores.memory",
    "JsonFileWorkflowStore": ".stores.jsonfile",
    "SqliteWorkflowStore": ".stores.sqlite",
    "Codec": ".codecs",
}
# Submodules reached as attributes (``zeroflow.codecs.standard()``), imported on first use.
_LAZY_MODULES = frozenset({"codecs"})


def __getattr__(name: str) -> Any:
    """Import a lazily exported name (see ``_LAZY``) at its first use and keep it."""
    where = _LAZY.get(name)
    if where is None and name not in _LAZY_MODULES:
        raise AttributeError(f"module 'zeroflow' has no attribute {name!r}")
    from importlib import import_module

    if where is None:
        return import_module(f".{name}", __name__)  # the import binds it as an attribute

    value = getattr(import_module(where, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_LAZY_MODULES})


__version__ = "0.2.0.dev0"

__all__ = [
    # the 0.1.0 surface
    "WorkflowEngine",
    "WorkflowContext",
    "WorkflowState",
    "HandlerResult",
    "WorkflowResult",
    "WorkflowError",
    "RunSnapshot",
    "StepRecord",
    "RunMetadata",
    "Event",
    "EnginePolicy",
    "WorkflowStore",
    "InMemoryWorkflowStore",
    "JsonFileWorkflowStore",
    "Handler",
    "EventCallback",
    "EVENT_WF_START",
    "EVENT_WF_END",
    "EVENT_WF_WAITING",
    "EVENT_WF_CANCELLED",
    "EVENT_WF_RESUMED",
    "EVENT_NODE_START",
    "EVENT_NODE_END",
    "EVENT_NODE_ERROR",
    "EVENT_NODE_RETRY",
    "EVENT_NODE_WARNING",
    "EVENT_CHECKPOINT",
    "EVENT_STORE_SAVED",
    "__version__",
    "EVENT_STORE_CORRUPT",
    "EVENT_STORE_RECOVERED",
    "EVENT_WF_MIGRATED",
    "EVENT_EFFECT_INTENT",
    "EVENT_EFFECT_DONE",
    "EVENT_EFFECT_FAILED",
    "EVENT_TOKEN",
    "EVENT_WF_TOKEN",
    "EVENT_NODE_COMPENSATE",
    "EVENT_NODE_COMPENSATED",
    "EVENT_NODE_COMPENSATION_FAILED",
    "EVENT_NODE_OVERRIDE",
    # error codes and statuses
    "ErrorCode",
    "ERROR_CONTRACT_VIOLATION",
    "ERROR_HANDLER_EXCEPTION",
    "ERROR_HANDLER_NOT_REGISTERED",
    "ERROR_HANDLER_TYPE_NOT_DECLARED",
    "ERROR_INVALID_HANDLER_RESULT",
    "ERROR_JOIN_STRANDED",
    "ERROR_MAP_FAILED",
    "ERROR_MAP_INPUT",
    "ERROR_MAX_STEPS_EXCEEDED",
    "ERROR_NODE_TIMEOUT",
    "ERROR_STATE_SERIALIZATION",
    "ERROR_SUBFLOW_FAILED",
    "ERROR_UNDECLARED_OUTPUT",
    "ERROR_WORKFLOW_CANCELLED",
    "ERROR_WORKFLOW_TIMEOUT",
    "ERROR_EFFECT_UNCERTAIN",
    "ERROR_WAIT_TIMEOUT",
    "ERROR_SLEEP_UNTIL",
    "STATUS_RUNNING",
    "STATUS_SUCCEEDED",
    "STATUS_FAILED",
    "STATUS_WAITING",
    "STATUS_CANCELLED",
    # errors
    "ZeroflowError",
    "WorkflowDefinitionError",
    "HashMismatchError",
    "InvalidTransitionError",
    "InvalidCheckpointError",
    "ResumeInputError",
    "InitialInputError",
    "OverrideError",
    "ResumeTokenError",
    "NodeTimeoutError",
    "EffectError",
    "RunNotFoundError",
    "StoreNotConfiguredError",
    "ConsoleSetupError",
    "StoreError",
    "StoreCorruptError",
    "RunLockedError",
    "RunExistsError",
    "CheckpointNotFoundError",
    "CodecError",
    # beyond 0.1.0: stores
    "SqliteWorkflowStore",
    "JournalingStore",
    "EventBatchingStore",
    "EventLogStore",
    "LeasingStore",
    "LeaseInspectingStore",
    "LeaseInfo",
    "CheckpointWrite",
    "HistoryStore",
    "DueStore",
    "CheckpointInfo",
    "RunQuery",
    "RunPage",
    "RunQueryStore",
    "PruneResult",
    "DEFAULT_LEASE_TTL_SECONDS",
    # beyond 0.1.0: limits
    "MAX_DEPTH",
    "MAX_WAIT_SECONDS",
    "MAX_TIMEOUT_SECONDS",
    "CANCEL_GRACE_SECONDS",
    # beyond 0.1.0: definitions
    "convert",
    "Conversion",
    "ConversionLoss",
    "schema",
    "lint",
    "LintFinding",
    "LINT_CODES",
    "explain",
    "plan",
    "Plan",
    "PlanWave",
    "PlanLayer",
    "LoopEdge",
    "ErrorRoute",
    # beyond 0.1.0: runs
    "Durability",
    "StepDelta",
    "apply_delta",
    "UpgradeReport",
    "UpgradeVerdict",
    "why_run",
    "Why",
    "Reason",
    "subscribe",
    "validate_workflow_definition",
    "json_clone",
    "now_iso",
    # beyond 0.1.0: rich types in state
    "Codec",
    "codecs",
    # beyond 0.1.0: stats
    "NodeStats",
    "RunSummary",
    "StatsStore",
    "stats_report",
]
