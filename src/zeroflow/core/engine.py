"""0.1.0 compatibility path for the engine."""

from __future__ import annotations

from .._engine import Handler, WorkflowEngine

__all__ = ["Handler", "WorkflowEngine"]
