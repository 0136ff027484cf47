"""0.1.0 compatibility path for the store protocol and the shipped stores."""

from __future__ import annotations

from .._store import WorkflowStore
from ..stores import InMemoryWorkflowStore, JsonFileWorkflowStore

__all__ = ["InMemoryWorkflowStore", "JsonFileWorkflowStore", "WorkflowStore"]
