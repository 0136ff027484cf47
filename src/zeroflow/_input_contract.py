"""The workflow's ``state_contract.input_schema``, checked as a run starts.

``admit_input`` checks a new run's ``initial_input`` with the project's schema
checker (``_schema.check_instance``) before anything exists of the run. What a
mismatch does follows ``engine_policy.contracts``: unset or ``"enforce"``
refuses the call with ``InitialInputError`` (nothing stored, no handler run);
``"warn"`` starts the run and returns the ``node:warning`` to announce (node
``None``: the workflow's); ``"off"`` checks nothing. Every problem is kept;
the message lists the first few, each cut short, so its length is bounded.
A subflow's child is held to its own input schema the same way, at the subflow
node (``CONTRACT_VIOLATION``, or a warning), by ``_run.nodes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._errors import InitialInputError

if TYPE_CHECKING:
    from ._definition import CompiledWorkflow

__all__ = ["MAX_LISTED", "admit_input", "input_problems", "listing", "warning_data"]

MAX_LISTED = 10
"""Problems spelled out in a message or kept in a warning's ``problems`` (all are counted)."""
_MAX_TEXT = 160
_MAX_WARNED = 100


def _cut(text: str, most: int = _MAX_TEXT) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def input_problems(graph: CompiledWorkflow, payload: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every way ``payload`` misses ``graph``'s input schema (none when unchecked), cut short."""
    schema_ = graph.input_schema
    if schema_ is None or graph.policy.contracts == "off":
        return []
    from ._schema import check_instance  # only for a workflow that declares an input schema

    return [(at, _cut(what)) for at, what in check_instance(payload, schema_)]


def listing(problems: list[tuple[str, str]]) -> str:
    """``N problems: /a: ...; /b: ...; and M more``: a bounded account of ``problems``."""
    listed = "; ".join(f"{_cut(at or '/', 80)}: {what}" for at, what in problems[:MAX_LISTED])
    more = len(problems) - MAX_LISTED
    if more > 0:
        listed += f"; and {more} more"
    count = f"{len(problems)} problem" + ("" if len(problems) == 1 else "s")
    return f"{count}: {listed}"


def warning_data(node: str | None, message: str, problems: list[tuple[str, str]]) -> dict[str, Any]:
    """The ``node:warning`` data of an input its schema refuses (at most 100 problems kept)."""
    return {
        "node": node,
        "reason": "contract",
        "contract": "input_schema",
        "message": message,
        "problems": [{"at": at, "problem": what} for at, what in problems[:_MAX_WARNED]],
        "problem_count": len(problems),
    }


def admit_input(graph: CompiledWorkflow, payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """Check ``payload`` against ``graph``'s input schema; the warning to emit, or None.

    Raises ``InitialInputError`` when the schema refuses it and contracts are
    not ``"warn"`` (or ``"off"``, which checks nothing).
    """
    problems = input_problems(graph, payload)
    if not problems:
        return None
    said = "initial_input does not match the workflow's state_contract.input_schema"
    if graph.policy.contracts == "warn":
        return warning_data(
            None,
            f"{said} ({listing(problems)}); the run started anyway (contracts: warn)",
            problems,
        )
    raise InitialInputError(
        f"{said} ({listing(problems)}); no run was started and nothing was stored: fix the "
        "input (each problem names its JSON pointer), or set engine_policy.contracts to 'warn'",
        problems,
    )
