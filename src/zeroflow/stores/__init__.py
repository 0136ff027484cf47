"""Store backends, one module each, behind the ``WorkflowStore`` protocol."""

from __future__ import annotations

from .jsonfile import JsonFileWorkflowStore
from .memory import InMemoryWorkflowStore

__all__ = ["InMemoryWorkflowStore", "JsonFileWorkflowStore"]
