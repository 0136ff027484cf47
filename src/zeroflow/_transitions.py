"""Which entry point may pick up a run in which status: the table and its one guard.

``resume`` continues a waiting, cancelled or interrupted (``running``) run;
``redrive`` continues a failed or cancelled one. Everything else is refused
here, with a message that states the run's actual status and what to do.
"""

from __future__ import annotations

from typing import Final

from . import _constants as C
from ._errors import InvalidTransitionError

__all__ = ["ALLOWED", "check_transition"]

ALLOWED: Final[dict[str, frozenset[str]]] = {
    "resume": C.RESUMABLE_STATUSES,
    "redrive": C.REDRIVABLE_STATUSES,
}

_HINTS: Final[dict[tuple[str, str], str]] = {
    ("resume", C.STATUS_FAILED): "call engine.redrive(checkpoint) to run the failed node again",
    ("resume", C.STATUS_SUCCEEDED): "a succeeded run has nothing left to do",
    ("redrive", C.STATUS_SUCCEEDED): "a succeeded run has nothing left to do",
    ("redrive", C.STATUS_WAITING): "resume a waiting run with run_from_checkpoint()",
    ("redrive", C.STATUS_RUNNING): "continue an interrupted run with run_from_checkpoint()",
}


def check_transition(action: str, run_id: str, status: str) -> None:
    """Raise ``InvalidTransitionError`` unless ``action`` may pick up a run in ``status``."""
    if status in ALLOWED[action]:
        return
    allowed = ", ".join(sorted(ALLOWED[action]))
    hint = _HINTS.get((action, status), f"only runs that are {allowed} can be {action}d")
    raise InvalidTransitionError(
        f"cannot {action} run '{run_id}': its status is '{status}'; {hint}",
        run_id=run_id,
        status=status,
    )
