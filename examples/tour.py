"""A guided tour: seven workflows of growing size, each run and drawn offline.

Run ``uv run python examples/tour.py [OUTPUT_DIR]``. Every workflow runs with
small demo handlers, and its picture, coloured by what the run did, is
written as one self-contained HTML page (no JavaScript, no network) into
OUTPUT_DIR, by default next to this script.

The seven graphs (2, 3, 5, 7, 10, 15 and 30 nodes) show a straight line,
a branch, a loopback, an AND-join, a human approval that pauses the run,
a failure routed to the error handler, and a 30-node support agent.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from zeroflow import HandlerResult, WorkflowContext, WorkflowEngine
from zeroflow.viz import workflow_to_html

Definition = dict[str, Any]


def _node(*edges: tuple[str, str], loop: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    """A node with the generic `step` handler; `edges` are (output, target) pairs."""
    outputs: dict[str, list[dict[str, Any]]] = {}
    for output, target in edges:
        edge: dict[str, Any] = {"target_node": target}
        if output in loop:
            edge["is_loopback"] = True
        outputs.setdefault(output, []).append(edge)
    outputs.setdefault("ok", [])  # the default output is always declared, even at the end
    return {"handler": "step", "outputs": outputs, **extra}


def _wf(name: str, entry: str, nodes: dict[str, Any], error: str | None = None) -> Definition:
    defn: Definition = {"workflow_name": name, "default_entry_node": entry, "nodes": nodes}
    if error is not None:
        defn["default_error_node"] = error
    return defn


def step(ctx: WorkflowContext) -> HandlerResult:
    """The demo handler: what it does is read from the node's config.

    Each call sleeps ``work_ms`` (default 2) to stand in for real work.
    ``emit`` lists the outputs to return (default ``["ok"]``); ``loop`` names
    an output to return the first ``times`` visits (a loopback); ``wait``
    pauses for a human until resumed; ``fail`` raises.
    """
    config = ctx.node_config
    time.sleep(float(config.get("work_ms", 2)) / 1000)  # pretend to work, so durations show
    visits = int(ctx.node_state.get("visits", 0)) + 1
    updates = {"visits": visits}
    if config.get("fail"):
        raise RuntimeError(f"{ctx.node_name}: warehouse connection refused")
    if config.get("wait") and "__resume__" not in ctx.state.workflow:
        return HandlerResult(
            outputs=[], node_updates=updates, waiting=True, waiting_prompt=config["wait"]
        )
    if "loop" in config and visits <= int(config.get("times", 1)):
        return HandlerResult(outputs=[config["loop"]], node_updates=updates)
    return HandlerResult(outputs=list(config.get("emit", ["ok"])), node_updates=updates)


def workflows() -> list[Definition]:
    """The seven tour workflows, smallest first."""
    hello = _wf("01_hello", "greet", {"greet": _node(("ok", "finish")), "finish": _node()})
    branch = _wf(
        "02_branch",
        "triage",
        {
            "triage": _node(
                ("urgent", "escalate"), ("normal", "queue_ticket"), config={"emit": ["urgent"]}
            ),
            "escalate": _node(),
            "queue_ticket": _node(),
        },
    )
    review = _wf(
        "03_review_loop",
        "draft",
        {
            "draft": _node(("ok", "review")),
            "review": _node(
                ("ok", "publish"),
                ("revise", "draft"),
                loop=("revise",),
                config={"loop": "revise", "times": 2},
            ),
            "publish": _node(("ok", "announce")),
            "announce": _node(),
            "handle_error": _node(),
        },
        error="handle_error",
    )
    join = _wf(
        "04_and_join",
        "start",
        {
            "start": _node(("ok", "fetch_prices"), ("ok", "fetch_stock"), ("ok", "fetch_reviews")),
            "fetch_prices": _node(("ok", "merge")),
            "fetch_stock": _node(("ok", "merge")),
            "fetch_reviews": _node(("ok", "merge")),
            "merge": _node(
                ("ok", "report"),
                join={"mode": "and", "wait_for": ["fetch_prices", "fetch_stock", "fetch_reviews"]},
            ),
            "report": _node(),
            "handle_error": _node(),
        },
        error="handle_error",
    )
    order = _wf(
        "05_order_approval",
        "receive_order",
        {
            "receive_order": _node(("ok", "check_stock")),
            "check_stock": _node(
                ("in_stock", "manager_approval"),
                ("backorder", "notify_delay"),
                config={"emit": ["in_stock"]},
            ),
            "manager_approval": _node(
                ("approved", "charge_card"),
                ("rejected", "notify_declined"),
                config={"kind": "wait", "wait": "Approve order #1042?", "emit": ["approved"]},
            ),
            "charge_card": _node(("ok", "pack"), ("declined", "notify_declined")),
            "notify_delay": _node(),
            "notify_declined": _node(),
            "pack": _node(("ok", "ship")),
            "ship": _node(("ok", "send_receipt")),
            "send_receipt": _node(),
            "handle_error": _node(),
        },
        error="handle_error",
    )
    etl = _wf(
        "06_nightly_etl",
        "schedule",
        {
            "schedule": _node(
                ("ok", "extract_orders"), ("ok", "extract_customers"), ("ok", "extract_products")
            ),
            "extract_orders": _node(("ok", "validate_orders")),
            "extract_customers": _node(("ok", "validate_customers")),
            "extract_products": _node(("ok", "clean_products")),
            "validate_orders": _node(("ok", "join_tables")),
            "validate_customers": _node(("ok", "join_tables")),
            "clean_products": _node(("ok", "join_tables")),
            "join_tables": _node(
                ("ok", "compute_metrics"),
                join={
                    "mode": "and",
                    "wait_for": ["validate_orders", "validate_customers", "clean_products"],
                },
            ),
            "compute_metrics": _node(("ok", "detect_anomalies")),
            "detect_anomalies": _node(
                ("anomaly", "alert_oncall"), ("clean", "load_warehouse"), config={"emit": ["clean"]}
            ),
            "alert_oncall": _node(),
            "load_warehouse": _node(
                ("ok", "refresh_dashboards"),
                ("ok", "archive_raw"),
                config={"fail": True},
                run_policy={"max_retries": 1, "retry_sleep_seconds": 0},
            ),
            "refresh_dashboards": _node(),
            "archive_raw": _node(),
            "handle_error": _node(("ok", "alert_oncall")),
        },
        error="handle_error",
    )
    return [hello, branch, review, join, order, etl, _support_agent()]


def _support_agent() -> Definition:
    """The 30-node finale: a support agent with branches, loops and joins."""
    n = _node
    nodes = {
        "receive_message": n(("ok", "detect_language")),
        "detect_language": n(
            ("english", "classify_intent"), ("other", "translate_to_en"), config={"emit": ["other"]}
        ),
        "translate_to_en": n(("ok", "classify_intent")),
        "classify_intent": n(
            ("faq", "faq_search"),
            ("billing", "billing_lookup"),
            ("tech", "tech_triage"),
            ("account", "account_check"),
            config={"emit": ["tech"]},
        ),
        "faq_search": n(("found", "faq_answer"), ("none", "escalate_engineer")),
        "faq_answer": n(("ok", "compose_reply")),
        "billing_lookup": n(("ok", "check_invoice")),
        "check_invoice": n(("refund", "refund_approval"), ("ok", "compose_reply")),
        "refund_approval": n(
            ("approved", "issue_refund"),
            ("rejected", "compose_reply"),
            config={"kind": "wait", "wait": "Approve refund?"},
        ),
        "issue_refund": n(("ok", "compose_reply")),
        "tech_triage": n(("ok", "gather_logs"), ("ok", "search_kb")),
        "gather_logs": n(("ok", "analyse_logs")),
        "analyse_logs": n(("ok", "draft_fix")),
        "search_kb": n(("ok", "draft_fix")),
        "draft_fix": n(("ok", "verify_fix")),
        "verify_fix": n(
            ("ok", "compose_reply"),
            ("retry", "draft_fix"),
            ("stuck", "escalate_engineer"),
            loop=("retry",),
            config={"loop": "retry", "times": 1},
        ),
        "escalate_engineer": n(("ok", "notify_supervisor")),
        "account_check": n(("locked", "unlock_account"), ("forgot", "reset_password")),
        "reset_password": n(("ok", "compose_reply")),
        "unlock_account": n(("ok", "compose_reply")),
        "compose_reply": n(("ok", "tone_check")),
        "tone_check": n(
            ("ok", "translate_back"),
            ("rewrite", "compose_reply"),
            loop=("rewrite",),
            config={"loop": "rewrite", "times": 1},
        ),
        "translate_back": n(("ok", "send_reply")),
        "send_reply": n(("ok", "update_crm"), ("ok", "survey")),
        "update_crm": n(("ok", "close_ticket")),
        "survey": n(("ok", "close_ticket")),
        "close_ticket": n(("ok", "log_metrics")),
        "log_metrics": n(),
        "notify_supervisor": n(("ok", "log_metrics")),
        "handle_error": n(("ok", "notify_supervisor")),
    }
    return _wf("07_support_agent", "receive_message", nodes, error="handle_error")


def run_tour(output_dir: Path | None = None) -> list[Path]:
    """Run every tour workflow and write its HTML page; return the page paths."""
    out = output_dir if output_dir is not None else Path(__file__).resolve().parent
    pages: list[Path] = []
    for defn in workflows():
        engine = WorkflowEngine(defn, handlers={"step": step})
        result = engine.run(initial_input={"tour": True})
        path = workflow_to_html(defn, out / f"tour_{defn['workflow_name']}.html", run=result)
        print(
            f"{defn['workflow_name']:<22} {len(defn['nodes']):>2} nodes  {result.status:<9} {path}"
        )
        pages.append(path)
    return pages


def main(argv: list[str] | None = None) -> int:
    """Command line entry: optional output folder as the only argument."""
    args = sys.argv[1:] if argv is None else argv
    run_tour(Path(args[0]) if args else None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
