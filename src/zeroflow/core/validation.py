"""0.1.0 compatibility path for the definition validator."""

from __future__ import annotations

from .._definition import validate_workflow_definition

__all__ = ["validate_workflow_definition"]
