"""Store backends, one module each, behind the ``WorkflowStore`` protocol."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .jsonfile import JsonFileWorkflowStore
from .memory import InMemoryWorkflowStore

if TYPE_CHECKING:
    from .sqlite import SqliteWorkflowStore

__all__ = ["InMemoryWorkflowStore", "JsonFileWorkflowStore", "SqliteWorkflowStore"]


def __getattr__(name: str) -> Any:
    """``SqliteWorkflowStore`` is imported on first use, so sqlite3 loads only when needed."""
    if name == "SqliteWorkflowStore":
        from .sqlite import SqliteWorkflowStore

        globals()[name] = SqliteWorkflowStore
        return SqliteWorkflowStore
    raise AttributeError(f"module 'zeroflow.stores' has no attribute {name!r}")
