"""Small helpers shared by several test modules: event recorder, fake clock, builders.

Imported as ``from _support import ...``, like ``_servers``: pytest puts ``tests/``
on ``sys.path`` because ``tests/conftest.py`` lives there and there is no ``__init__.py``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import random
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from zeroflow import (
    Event,
    HandlerResult,
    InMemoryWorkflowStore,
    JsonFileWorkflowStore,
    StepDelta,
    WorkflowContext,
    WorkflowEngine,
)
from zeroflow.stores import SqliteWorkflowStore

# ---------------------------------------------------------------- integrations

IN_CI = os.environ.get("CI", "").lower() == "true"


def integration(module: str) -> ModuleType:
    """Import a package of the ``integrations`` dependency group for a test.

    Without it, the test is skipped locally (with how to install it) and
    fails in CI, where ``.ci/run`` installs the group: CI never skips one.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if IN_CI:
            pytest.fail(f"{module} is required in CI but cannot be imported: {exc}", pytrace=False)
        pytest.skip(
            f"needs {module}, in the 'integrations' group: uv sync --all-groups",
            allow_module_level=True,
        )


# ---------------------------------------------------------------- events and time


class Recorder:
    """An event callback that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]


class FakeClock:
    """Injected time: ``sleep`` only moves the clock and records the wait.

    Pass ``clock.time`` (or the clock itself, it is callable) and ``clock.sleep``.
    """

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    __call__ = time

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


# ---------------------------------------------------------------- definitions


def edge(*targets: str) -> list[dict[str, Any]]:
    return [{"target_node": t} for t in targets]


def task(handler: str, *targets: str, **extra: Any) -> dict[str, Any]:
    """A node calling ``handler`` whose ``ok`` output leads to each of ``targets``."""
    return {"handler": handler, "outputs": {"ok": edge(*targets)}, **extra}


def ok(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"])


def engine_for(
    definition: dict[str, Any],
    handler: Callable[..., Any],
    clock: FakeClock,
    rec: Recorder | None = None,
    seed: int = 7,
) -> WorkflowEngine:
    """An engine on ``clock`` running ``handler`` as ``a`` and :func:`ok` as ``b``."""
    return WorkflowEngine(
        definition,
        {"a": handler, "b": ok},
        event_callback=rec,
        clock=clock.time,
        sleep=clock.sleep,
        rng=random.Random(seed),
    )


# ---------------------------------------------------------------- a counting loop

LOOP: dict[str, Any] = {
    "workflow_name": "loop",
    "default_entry_node": "a",
    "nodes": {
        "a": {
            "handler": "count",
            "outputs": {"again": [{"target_node": "a", "is_loopback": True}], "done": []},
        }
    },
}


def count_to(limit: int) -> Any:
    """The ``count`` handler of :data:`LOOP`: adds one to ``n`` until ``limit``."""

    def count(ctx: WorkflowContext) -> HandlerResult:
        n = ctx.state.workflow.get("n", 0) + 1
        return HandlerResult(["again" if n < limit else "done"], workflow_updates={"n": n})

    return count


def run_loop(store: Any, limit: int, run_id: str = "loop-1") -> Any:
    """Run :data:`LOOP` to ``limit`` into ``store``; one checkpoint per count."""
    return WorkflowEngine(LOOP, {"count": count_to(limit)}, store=store).run({}, run_id=run_id)


# ---------------------------------------------------------------- stores


def make_store(kind: str, where: Path) -> Any:
    """A ``memory``, ``json`` (``where/runs``) or ``sqlite`` (``where/runs.db``) store."""
    if kind == "memory":
        return InMemoryWorkflowStore()
    if kind == "json":
        return JsonFileWorkflowStore(where / "runs")
    return SqliteWorkflowStore(where / "runs.db")


# ---------------------------------------------------------------- viz


def plan_exec_review() -> dict[str, Any]:
    """A fresh copy of the four-node plan/exec/review workflow with a retry loop."""
    return {
        "workflow_name": "plan_exec_review",
        "default_entry_node": "plan",
        "default_error_node": "handle_error",
        "nodes": {
            "plan": {"handler": "plan", "outputs": {"ok": [{"target_node": "exec"}]}},
            "exec": {
                "handler": "exec",
                "outputs": {
                    "ok": [{"target_node": "review"}],
                    "retry": [{"target_node": "exec", "is_loopback": True}],
                },
            },
            "review": {"handler": "review", "outputs": {"ok": []}},
            "handle_error": {"handler": "handle_error", "outputs": {"ok": []}},
        },
    }


# ---------------------------------------------------------------- examples

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` as module ``example_<name>``."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def step_delta(run_id: str, step: int, **changes: Any) -> StepDelta:
    """A ``StepDelta`` of node ``a`` at ``step`` with empty queues; ``changes`` override fields."""
    fields: dict[str, Any] = {
        "run_id": run_id,
        "step": step,
        "wave": 1,
        "status": "running",
        "updated_at": None,
        "ready_now": [],
        "ready_next_wave": [],
        "arrivals": {},
        "executed_this_wave": [],
        "last_node": "a",
        "waiting_prompt": None,
        "last_error": None,
    }
    fields.update(changes)
    return StepDelta(**fields)


def stored(store: Any, run_id: str) -> list[dict[str, Any]]:
    """The run's event log as ``store.events`` gives it, as plain dicts."""
    return [e.to_dict() for e in store.events(run_id)]


def in_child(body: Callable[[], int], *, alarm: int = 20) -> int:
    """Fork, run ``body`` in the child (its return value is the exit code); the exit code.

    ``alarm`` seconds end a child that hangs instead of the test run.
    """
    import os
    import signal
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, reported through the exit code
        signal.alarm(alarm)
        code = 99
        try:
            code = body()
        except BaseException as exc:  # the child must never return into pytest
            sys.stderr.write(f"child failed: {exc!r}\n")
        finally:
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def killed_in_child(work: Callable[[], object]) -> bool:
    """Run ``work`` in a forked child that must die by SIGKILL inside it; True if it did."""
    import signal

    def body() -> int:
        work()
        return 3  # work returned: the kill it was meant to make did not happen

    return in_child(body) == -signal.SIGKILL


@contextlib.contextmanager
def lock_held_briefly(store: Any, seconds: float = 0.3) -> Iterator[None]:
    """Another thread holds ``store._lock`` for ``seconds`` while the body runs (a fork)."""
    import threading

    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        with store._lock:
            held.set()
            done.wait(seconds)  # os.fork() waits for the lock: the child never sees it held

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(10)
    try:
        yield
    finally:
        done.set()
        thread.join()
