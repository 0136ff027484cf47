"""Feature matrix: one tiny workflow per headline feature.

Seven demos, each a few nodes: conditional routing, a loopback, an AND-join,
a retry, error routing, a human-in-the-loop pause that is resumed by a
*different process* from a ``JsonFileWorkflowStore``, and custom events.
``main()`` returns one entry per demo and prints a one-line summary of each.

Run it with ``uv run python examples/02_feature_matrix.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from zeroflow import (
    Event,
    HandlerResult,
    JsonFileWorkflowStore,
    WorkflowContext,
    WorkflowEngine,
)


def _ok(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"])


# ---------------------------------------------------------------- 1. routing


ROUTING: dict[str, Any] = {
    "workflow_name": "routing",
    "default_entry_node": "classify",
    "nodes": {
        "classify": {
            "handler": "classify",
            "outputs": {
                "small": [{"target_node": "ship"}],
                "large": [{"target_node": "approve"}],
            },
        },
        "approve": {"handler": "ok", "outputs": {"ok": [{"target_node": "ship"}]}},
        "ship": {"handler": "ok", "outputs": {"ok": []}},
    },
}


def classify(ctx: WorkflowContext) -> HandlerResult:
    amount = ctx.state.input["amount"]
    return HandlerResult(outputs=["large" if amount > 100 else "small"])


def demo_routing() -> dict[str, Any]:
    engine = WorkflowEngine(ROUTING, {"classify": classify, "ok": _ok})
    small = engine.run({"amount": 20})
    large = engine.run({"amount": 500})
    return {"small": small.trace, "large": large.trace}


# ---------------------------------------------------------------- 2. loopback


LOOPBACK: dict[str, Any] = {
    "workflow_name": "loopback",
    "default_entry_node": "draft",
    "nodes": {
        "draft": {"handler": "draft", "outputs": {"ok": [{"target_node": "check"}]}},
        "check": {
            "handler": "check",
            "outputs": {
                "again": [{"target_node": "draft", "is_loopback": True}],
                "good": [{"target_node": "publish"}],
            },
        },
        "publish": {"handler": "ok", "outputs": {"ok": []}},
    },
}


def draft(ctx: WorkflowContext) -> HandlerResult:
    version = ctx.node_state.get("version", 0) + 1
    return HandlerResult(outputs=["ok"], node_updates={"version": version})


def check(ctx: WorkflowContext) -> HandlerResult:
    good = ctx.state.node["draft"]["version"] >= 3
    return HandlerResult(outputs=["good" if good else "again"])


def demo_loopback() -> dict[str, Any]:
    engine = WorkflowEngine(LOOPBACK, {"draft": draft, "check": check, "ok": _ok})
    result = engine.run()
    waves = sorted({record.wave for record in result.audit_trail})
    return {
        "trace": result.trace,
        "waves": waves,
        "version": result.state.node["draft"]["version"],
    }


# ---------------------------------------------------------------- 3. AND-join


AND_JOIN: dict[str, Any] = {
    "workflow_name": "and_join",
    "default_entry_node": "start",
    "nodes": {
        "start": {
            "handler": "ok",
            "outputs": {"ok": [{"target_node": "price"}, {"target_node": "stock"}]},
        },
        "price": {"handler": "price", "outputs": {"ok": [{"target_node": "quote"}]}},
        "stock": {"handler": "stock", "outputs": {"ok": [{"target_node": "quote"}]}},
        "quote": {
            "handler": "quote",
            "outputs": {"ok": []},
            "join": {"mode": "and", "wait_for": ["price", "stock"]},
        },
    },
}


def price(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"], workflow_updates={"price": 12})


def stock(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"], workflow_updates={"stock": 3})


def quote(ctx: WorkflowContext) -> HandlerResult:
    total = ctx.state.workflow["price"] * ctx.state.workflow["stock"]
    return HandlerResult(outputs=["ok"], workflow_updates={"total": total})


def demo_and_join() -> dict[str, Any]:
    handlers = {"ok": _ok, "price": price, "stock": stock, "quote": quote}
    result = WorkflowEngine(AND_JOIN, handlers).run()
    return {"trace": result.trace, "total": result.state.workflow["total"]}


# ---------------------------------------------------------------- 4. retry


RETRY: dict[str, Any] = {
    "workflow_name": "retry",
    "default_entry_node": "fetch",
    "nodes": {
        "fetch": {
            "handler": "fetch",
            "outputs": {"ok": []},
            "run_policy": {
                "max_retries": 3,
                "retry_sleep_seconds": 0.01,
                "backoff": "exponential",
                "retry_on": ["ConnectionError"],
            },
        },
    },
}


def fetch(ctx: WorkflowContext) -> HandlerResult:
    if ctx.attempt < 3:
        raise ConnectionError(f"attempt {ctx.attempt}: server unavailable")
    return HandlerResult(outputs=["ok"], node_updates={"attempts": ctx.attempt})


def demo_retry() -> dict[str, Any]:
    retries: list[int] = []

    def on_event(event: Event) -> None:
        if event.kind == "node:retry":
            retries.append(event.data["attempt"])

    engine = WorkflowEngine(RETRY, {"fetch": fetch}, event_callback=on_event)
    result = engine.run()
    return {
        "status": result.status,
        "attempts": result.state.node["fetch"]["attempts"],
        "retry_events": retries,
        "trace": result.trace,
    }


# ---------------------------------------------------------------- 5. error routing


ERRORS: dict[str, Any] = {
    "workflow_name": "errors",
    "default_entry_node": "charge",
    "default_error_node": "alert",
    "nodes": {
        "charge": {
            "handler": "charge",
            "outputs": {"ok": [{"target_node": "receipt"}]},
            "on_error": [{"exceptions": ["PermissionError"], "target_node": "refuse"}],
        },
        "receipt": {"handler": "ok", "outputs": {"ok": []}},
        "refuse": {"handler": "note_error", "outputs": {"ok": []}},
        "alert": {"handler": "note_error", "outputs": {"ok": []}},
    },
}


def charge(ctx: WorkflowContext) -> HandlerResult:
    card = ctx.state.input["card"]
    if card == "blocked":
        raise PermissionError("card is blocked")
    if card == "broken":
        raise RuntimeError("payment gateway crashed")
    return HandlerResult(outputs=["ok"])


def note_error(ctx: WorkflowContext) -> HandlerResult:
    error = ctx.state.workflow["__error__"]
    return HandlerResult(outputs=["ok"], workflow_updates={"handled": error["cause_type"]})


def demo_error_routing() -> dict[str, Any]:
    handlers = {"charge": charge, "ok": _ok, "note_error": note_error}
    engine = WorkflowEngine(ERRORS, handlers)
    out: dict[str, Any] = {}
    for card in ("good", "blocked", "broken"):
        result = engine.run({"card": card})
        out[card] = {"success": result.success, "trace": result.trace}
    return out


# ---------------------------------------------------------------- 6. HITL across processes


HITL: dict[str, Any] = {
    "workflow_name": "hitl",
    "default_entry_node": "prepare",
    "nodes": {
        "prepare": {"handler": "prepare", "outputs": {"ok": [{"target_node": "approve"}]}},
        "approve": {
            "handler": "approve",
            "outputs": {"yes": [{"target_node": "deploy"}], "no": []},
        },
        "deploy": {"handler": "deploy", "outputs": {"ok": []}},
    },
}


def prepare(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"], workflow_updates={"release": "v2.0"})


def approve(ctx: WorkflowContext) -> HandlerResult:
    answer = ctx.state.workflow.get("__resume__")
    if answer is None:
        release = ctx.state.workflow["release"]
        return HandlerResult(outputs=[], waiting=True, waiting_prompt=f"Deploy {release}?")
    label = "yes" if answer.get("approved") else "no"
    return HandlerResult(outputs=[label], workflow_updates={"approved_by": answer["by"]})


def deploy(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"], workflow_updates={"deployed": True})


HITL_HANDLERS = {"prepare": prepare, "approve": approve, "deploy": deploy}


def resume_hitl(base_dir: str, run_id: str, answer: dict[str, Any]) -> dict[str, Any]:
    """What the second process does: load the waiting run from disk and resume it."""
    engine = WorkflowEngine(HITL, HITL_HANDLERS, store=JsonFileWorkflowStore(base_dir))
    checkpoint = engine.load_snapshot(run_id)
    result = engine.run_from_checkpoint(checkpoint, resume_input=answer)
    return {
        "status": result.status,
        "trace": result.trace,
        "deployed": result.state.workflow.get("deployed", False),
        "approved_by": result.state.workflow.get("approved_by"),
    }


def demo_hitl(base_dir: Path) -> dict[str, Any]:
    store = JsonFileWorkflowStore(base_dir)
    engine = WorkflowEngine(HITL, HITL_HANDLERS, store=store)
    paused = engine.run(run_id="release-42", replace=True)
    answer = json.dumps({"approved": True, "by": "ana"})
    child = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--resume", str(base_dir), paused.run_id],
        input=answer,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    resumed = json.loads(child.stdout)
    return {
        "paused_status": paused.status,
        "prompt": paused.waiting_prompt,
        "resumed": resumed,
        "stored_status": store.load_snapshot(paused.run_id).status,
    }


# ---------------------------------------------------------------- 7. custom events


EVENTS: dict[str, Any] = {
    "workflow_name": "events",
    "default_entry_node": "import_rows",
    "nodes": {"import_rows": {"handler": "import_rows", "outputs": {"ok": []}}},
}


def import_rows(ctx: WorkflowContext) -> HandlerResult:
    rows = ctx.state.input["rows"]
    for done in range(1, len(rows) + 1):
        ctx.emit("import:progress", {"done": done, "total": len(rows)})
    return HandlerResult(outputs=["ok"], node_updates={"imported": len(rows)})


def demo_custom_events() -> dict[str, Any]:
    progress: list[dict[str, Any]] = []

    def on_event(event: Event) -> None:
        if event.kind == "import:progress":
            progress.append(dict(event.data))

    engine = WorkflowEngine(EVENTS, {"import_rows": import_rows}, event_callback=on_event)
    engine.run({"rows": ["a", "b", "c"]})
    return {"progress": progress}


# ---------------------------------------------------------------- driver


def _summary(results: dict[str, Any]) -> list[str]:
    hitl = results["hitl"]
    return [
        f"routing       small={results['routing']['small']} large={results['routing']['large']}",
        f"loopback      trace={results['loopback']['trace']} waves={results['loopback']['waves']}",
        f"and_join      trace={results['and_join']['trace']} total={results['and_join']['total']}",
        f"retry         status={results['retry']['status']} "
        f"attempts={results['retry']['attempts']} retry_events={results['retry']['retry_events']}",
        "error_routing "
        + " ".join(f"{card}={r['trace']}" for card, r in results["error_routing"].items()),
        f"hitl          paused ({hitl['prompt']!r}), resumed in a new process: "
        f"{hitl['resumed']['status']} trace={hitl['resumed']['trace']}",
        f"custom_events {len(results['custom_events']['progress'])} progress events",
    ]


def main(base_dir: str | Path | None = None) -> dict[str, Any]:
    """Run every demo; the HITL demo keeps its store under ``base_dir`` (a temp dir by default)."""
    with tempfile.TemporaryDirectory(prefix="zeroflow-matrix-") as scratch:
        folder = Path(base_dir) if base_dir is not None else Path(scratch)
        results: dict[str, Any] = {
            "routing": demo_routing(),
            "loopback": demo_loopback(),
            "and_join": demo_and_join(),
            "retry": demo_retry(),
            "error_routing": demo_error_routing(),
            "hitl": demo_hitl(folder / "runs"),
            "custom_events": demo_custom_events(),
        }
    for line in _summary(results):
        print(line)
    return results


def _resume_main(argv: list[str]) -> int:
    base_dir, run_id = argv
    answer = json.loads(sys.stdin.read())
    print(json.dumps(resume_hitl(base_dir, run_id, answer)))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--resume":
        raise SystemExit(_resume_main(sys.argv[2:]))
    main()
