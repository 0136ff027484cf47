"""Compensation and branch-scoped failure: a trip booking that undoes itself when payment fails.

``hotel`` and ``flight`` are booked in parallel and meet at ``pay``, an
AND-join. Each names a ``compensate`` handler that cancels its booking.

- The first airline is down: ``flight``'s catcher has ``"scope": "branch"``, so
  only the flight branch is re-routed to ``backup_flight``; the hotel branch
  keeps going, and ``backup_flight`` arrives at ``pay`` in ``flight``'s stead.
- ``tell_partner`` is ``detached``: its failure is a warning in
  ``result.warnings`` and never stops or re-routes the run.
- When the card is declined the run fails for good: the completed bookings are
  compensated, most recent first, and the run ends ``failed`` with
  ``result.compensated``.

``pictures()`` draws the workflow as SVG with each run's overlay (how the
pictures in the user guide were made). Run it with
``uv run python examples/06_compensation.py``.
"""

from __future__ import annotations

from typing import Any

from zeroflow import HandlerResult, WorkflowContext, WorkflowEngine, WorkflowResult


def to(*targets: str) -> list[dict[str, str]]:
    return [{"target_node": t} for t in targets]


WORKFLOW: dict[str, Any] = {
    "workflow_name": "trip",
    "default_entry_node": "quote",
    "nodes": {
        "quote": {"handler": "quote", "outputs": {"ok": to("hotel", "flight", "tell_partner")}},
        "hotel": {"handler": "book", "compensate": "cancel", "outputs": {"ok": to("pay")}},
        "flight": {
            "handler": "book",
            "compensate": "cancel",
            "config": {"airline": "first-air"},
            "outputs": {"ok": to("pay")},
            "on_error": [
                {"target_node": "backup_flight", "codes": ["HANDLER_EXCEPTION"], "scope": "branch"}
            ],
        },
        "backup_flight": {
            "handler": "book",
            "compensate": "cancel",
            "config": {"airline": "backup-air"},
            "outputs": {"ok": to("pay")},
        },
        "tell_partner": {"handler": "tell_partner", "detached": True, "outputs": {"ok": []}},
        "pay": {
            "handler": "pay",
            "join": {"mode": "and", "wait_for": ["hotel", "flight"]},
            "outputs": {"ok": []},
        },
    },
}


def quote(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"], workflow_updates={"price": 540})


def book(ctx: WorkflowContext) -> HandlerResult:
    airline = ctx.node_config.get("airline")
    if airline == "first-air":
        raise ConnectionError("first-air is not answering")
    ref = f"{ctx.node_name}:{airline or 'grand-hotel'}"
    return HandlerResult(outputs=["ok"], workflow_updates={"bookings": {ctx.node_name: ref}})


def cancel(ctx: WorkflowContext) -> HandlerResult:
    visit = ctx.state.workflow["__compensation__"]  # which visit to undo, and the failure
    ref = ctx.state.workflow["bookings"][visit["node"]]
    print(f"  cancel {ref} (booked at step {visit['step']})")
    return HandlerResult(outputs=[], workflow_updates={"cancelled": {visit["node"]: ref}})


def tell_partner(ctx: WorkflowContext) -> HandlerResult:
    raise TimeoutError("partner webhook timed out")


def pay(ctx: WorkflowContext) -> HandlerResult:
    if ctx.state.input["card"] == "declined":
        raise RuntimeError("card declined")
    return HandlerResult(outputs=["ok"], workflow_updates={"paid": ctx.state.workflow["price"]})


HANDLERS = {
    "quote": quote,
    "book": book,
    "cancel": cancel,
    "tell_partner": tell_partner,
    "pay": pay,
}


def main() -> dict[str, WorkflowResult]:
    """Book one trip that pays and one whose card is declined; returns both results."""
    engine = WorkflowEngine(WORKFLOW, HANDLERS)
    results = {}
    for card in ("valid", "declined"):
        print(f"card {card}:")
        result = engine.run({"card": card})
        results[card] = result
        print(f"  {result.status}: {' -> '.join(result.trace)}")
        for warning in result.warnings:
            print(f"  warning from {warning.node}: {warning.message}")
        if result.compensated:
            print(f"  compensated: {sorted(result.state.workflow['cancelled'])}")
    return results


def pictures() -> dict[str, str]:
    """SVG of the two scopes side by side: the same failure caught run-wide and branch-only."""
    from zeroflow.viz import workflow_to_svg

    out = {}
    for scope in ("run", "branch"):
        defn: dict[str, Any] = {**WORKFLOW, "nodes": dict(WORKFLOW["nodes"])}
        flight = {**defn["nodes"]["flight"]}
        flight["on_error"] = [{**flight["on_error"][0], "scope": scope}]
        defn["nodes"]["flight"] = flight
        result = WorkflowEngine(defn, HANDLERS).run({"card": "valid"})
        out[scope] = workflow_to_svg(defn, run=result)
    return out


if __name__ == "__main__":
    main()
