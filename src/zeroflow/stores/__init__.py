"""Store backends, one module each, behind the ``WorkflowStore`` protocol."""

from __future__ import annotations

from .jsonfile import JsonFileWorkflowStore
from .memory import InMemoryWorkflowStore
from .sqlite import SqliteWorkflowStore

__all__ = ["InMemoryWorkflowStore", "JsonFileWorkflowStore", "SqliteWorkflowStore"]
