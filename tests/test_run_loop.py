"""The run loop on its own: no engine, no store, no thread, no clock but a fake one.

``RunLoop`` is wired here as ``assemble`` wires it, but with a notebook for a
recorder and a scripted driver that answers each ``Call`` with the outcome the
test chose for that node (the handlers are never called). So every decision
of the loop (routing, failures and catchers, retries and their waits, cancel,
batches settled in queue order, pauses, limits, deadlines) and everything it
asks the recorder to record is checked directly.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from _support import FakeClock, edge, task
from zeroflow import HandlerResult, RunSnapshot, WorkflowError, WorkflowResult
from zeroflow._definition import compile_workflow
from zeroflow._live import LiveRun
from zeroflow._models import Event
from zeroflow._run.loop import RunLoop
from zeroflow._run.nodes import NodeRunner
from zeroflow._run.requests import Batch, Call, Direct, DirectCaller, Request, Sleep, Steps
from zeroflow._run.tasks import TaskCaller

# ---------------------------------------------------------------- the fakes


class Notebook:
    """A recorder that writes down what it is asked to record, in order."""

    listening = True
    checkpoints = True
    journals = False
    copies_event_data = False

    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []

    def open(
        self, run: LiveRun, *, fresh: bool, replace: bool = False, resuming: bool = False
    ) -> None:
        self.log.append(("open", fresh))

    def close(self, run: LiveRun) -> None:
        self.log.append(("close",))

    def emit(self, run: LiveRun, kind: str, node: str | None, data: dict[str, Any]) -> None:
        self.log.append(("event", kind, node))

    def emit_live(self, run: LiveRun, kind: str, node: str | None, data: dict[str, Any]) -> None:
        self.log.append(("live", kind, node))

    def checkpoint(
        self, run: LiveRun, *, full: bool = False, write: bool = True, now: bool = False
    ) -> None:
        self.log.append(("checkpoint", run.snap.step, run.snap.status, full, write))

    def progress(self, run: LiveRun, node: str) -> None:
        self.log.append(("progress", node))

    def record_effect(
        self, run: LiveRun, node: str, kind: str, data: dict[str, Any], *, queued: bool
    ) -> None:
        self.log.append(("effect", kind, node, data["key"], queued))

    def hold_child(self, run: LiveRun, node: str, child: dict[str, Any]) -> None:
        self.log.append(("child", node, child["run_id"]))

    def finish(self, run: LiveRun) -> None:
        self.log.append(("finish",))

    def save(
        self, run: LiveRun, *, fresh: bool, replace: bool = False, events: Iterable[Event] = ()
    ) -> None:
        raise AssertionError("the loop never saves a run whole")

    def export(self, run: LiveRun) -> RunSnapshot:
        self.log.append(("export",))
        return run.export()

    def events(self) -> list[tuple[str, str | None]]:
        return [(e[1], e[2]) for e in self.log if e[0] == "event"]

    def checkpoints_taken(self) -> list[tuple[Any, ...]]:
        return [e[1:] for e in self.log if e[0] == "checkpoint"]


def never_called(ctx: Any) -> HandlerResult:
    raise AssertionError("the scripted driver answers instead of the handler")


Answer = HandlerResult | BaseException
Script = dict[str, list[Answer]]


class Driver:
    """Answers the loop's requests from a script: per node, one answer per call."""

    def __init__(
        self,
        script: Script,
        clock: FakeClock,
        *,
        cancel_sleeps: bool = False,
        on_call: Callable[[Call], None] | None = None,
    ) -> None:
        self.script = {node: iter(answers) for node, answers in script.items()}
        self.clock = clock
        self.cancel_sleeps = cancel_sleeps
        self.on_call = on_call
        self.requests: list[Request] = []
        self.direct: DirectCaller | None = None  # the answer to Direct: every call a request

    def answer(self, call: Call) -> tuple[HandlerResult | None, BaseException | None]:
        if self.on_call is not None:
            self.on_call(call)
        got = next(self.script[call.ctx.node_name])
        return (None, got) if isinstance(got, BaseException) else (got, None)

    def drive(self, steps: Steps) -> WorkflowResult:
        reply: Any = None
        while True:
            try:
                request = steps.send(reply)
            except StopIteration as stop:
                result: WorkflowResult = stop.value
                return result
            if isinstance(request, Direct):
                reply = self.direct
                continue
            self.requests.append(request)
            if isinstance(request, Call):
                reply = self.answer(request)
            elif isinstance(request, Batch):
                reply = [self.answer(call) for call in request.calls]
            else:
                assert isinstance(request, Sleep)
                self.clock.sleep(request.seconds)
                reply = self.cancel_sleeps

    def calls(self) -> list[tuple[str, int, int]]:
        """Every handler call as (node, step, attempt), batches flattened."""
        out: list[tuple[str, int, int]] = []
        for request in self.requests:
            calls = request.calls if isinstance(request, Batch) else [request]
            for call in calls:
                if isinstance(call, Call):
                    out.append((call.ctx.node_name, call.ctx.step, call.ctx.attempt))
        return out


class Wired:
    """One workflow's loop, wired as ``assemble`` wires it, on a notebook and a fake clock."""

    def __init__(self, definition: dict[str, Any], *, cancelled: bool = False) -> None:
        self.graph = compile_workflow(definition)
        self.clock = FakeClock()
        self.notebook = Notebook()
        self.cancelled = cancelled
        handlers = {node.handler: never_called for node in self.graph.nodes.values()}
        tasks = TaskCaller(
            self.graph, handlers, {}, self.notebook, self.clock.time, random.Random(3)
        )
        nodes = NodeRunner(tasks, self.notebook, self.is_cancelled, {})
        self.loop = RunLoop(self.graph, self.notebook, nodes, self.clock.time, self.is_cancelled)

    def is_cancelled(self) -> bool:
        return self.cancelled

    def start(self, run_id: str = "r1") -> tuple[LiveRun, Steps]:
        graph = self.graph
        snap = RunSnapshot(run_id, graph.name, graph.hash, ready_now=[graph.entry])
        timeout = graph.policy.workflow_timeout_seconds
        if timeout is not None:
            snap.deadline_ts = self.clock.now + timeout
        run = LiveRun(snap, journaling=False)
        return run, self.loop.call(run, "wf:start", {"workflow": graph.name})

    def run(self, script: Script, **driver: Any) -> tuple[WorkflowResult, Driver, LiveRun]:
        live, steps = self.start()
        d = Driver(script, self.clock, **driver)
        return d.drive(steps), d, live


def flow(nodes: dict[str, Any], entry: str = "a", **top: Any) -> dict[str, Any]:
    return {"workflow_name": "t", "default_entry_node": entry, "nodes": nodes, **top}


def out(*outputs: str, **updates: Any) -> HandlerResult:
    return HandlerResult(outputs=list(outputs), workflow_updates=updates or None)


CHAIN = flow({"a": task("ha", "b"), "b": task("hb", "c"), "c": task("hc")})


# ---------------------------------------------------------------- routing


def test_a_chain_runs_each_node_once_in_order_and_checkpoints_after_each() -> None:
    w = Wired(CHAIN)
    result, driver, _ = w.run({"a": [out("ok", x=1)], "b": [out("ok")], "c": [out("ok")]})

    assert result.success and result.trace == ["a", "b", "c"]
    assert result.state.workflow == {"x": 1}
    assert driver.calls() == [("a", 1, 1), ("b", 2, 1), ("c", 3, 1)]
    log = w.notebook.log
    assert log[0] == ("open", True) and log[-1] == ("close",)
    assert log[-2] == ("finish",)
    written = [c for c in w.notebook.checkpoints_taken() if c[3]]
    # the opening one, one per node, and the end (full, with the final status)
    assert written == [
        (0, "running", True, True),
        (1, "running", False, True),
        (2, "running", False, True),
        (3, "running", False, True),
        (3, "succeeded", True, True),
    ]
    assert all(c[3] for c in w.notebook.checkpoints_taken())  # one wave: none opened
    assert w.notebook.events() == [
        ("wf:start", None),
        ("node:start", "a"),
        ("node:end", "a"),
        ("node:start", "b"),
        ("node:end", "b"),
        ("node:start", "c"),
        ("node:end", "c"),
        ("wf:end", None),
    ]


def test_outputs_route_only_to_their_own_edges() -> None:
    w = Wired(
        flow(
            {
                "a": {"handler": "ha", "outputs": {"yes": edge("y"), "no": edge("n")}},
                "y": task("hy"),
                "n": task("hn"),
            }
        )
    )
    result, _, _ = w.run({"a": [out("no")], "n": [out("ok")]})
    assert result.trace == ["a", "n"]


def test_an_undeclared_output_fails_the_node_under_strict_outputs() -> None:
    w = Wired(CHAIN)
    result, _, _ = w.run({"a": [out("sideways")]})
    assert result.status == "failed" and result.trace == ["a"]
    assert result.error is not None and result.error.node == "a"


# ---------------------------------------------------------------- failures


def test_an_exception_goes_to_the_matching_catcher_with_the_error_in_state() -> None:
    w = Wired(
        flow(
            {
                "a": task("ha", "b", on_error=[{"target_node": "fix", "exceptions": ["OSError"]}]),
                "b": task("hb"),
                "fix": task("hfix"),
            }
        )
    )
    result, _, _ = w.run({"a": [OSError("disk full")], "fix": [out("ok")]})

    assert result.success and result.trace == ["a", "fix"]
    assert result.state.workflow["__error__"]["message"] == "disk full"
    assert ("node:error", "a") in w.notebook.events()
    assert [r.status for r in result.audit_trail] == ["failed", "succeeded"]


def test_an_error_no_catcher_matches_falls_back_to_the_default_error_node() -> None:
    w = Wired(
        flow(
            {
                "a": task("ha", "b", on_error=[{"target_node": "fix", "codes": ["IO"]}]),
                "b": task("hb"),
                "fix": task("hfix"),
                "fallback": task("hfb"),
            },
            default_error_node="fallback",
        )
    )
    error = WorkflowError("RATE_LIMITED", "slow down", "a")
    result, _, _ = w.run({"a": [HandlerResult(error=error)], "fallback": [out("ok")]})
    assert result.trace == ["a", "fallback"]
    assert result.state.workflow["__error__"]["code"] == "RATE_LIMITED"


def test_an_unrouted_failure_ends_the_run_failed_with_a_redrive_record() -> None:
    w = Wired(CHAIN)
    result, _, live = w.run({"a": [out("ok")], "b": [ValueError("bad row")]})

    assert result.status == "failed" and result.trace == ["a", "b"]
    assert result.error is not None and result.error.cause_type == "ValueError"
    assert live.snap.extra["redrive"]["node"] == "b"
    assert live.snap.extra["redrive"]["ready_now"][0] == "b"  # redrive runs b again
    assert w.notebook.checkpoints_taken()[-1] == (2, "failed", True, True)
    assert w.notebook.events()[-1] == ("wf:end", None)


# ---------------------------------------------------------------- retries


def test_retries_wait_their_backoff_through_the_driver_then_succeed() -> None:
    retry = {"max_retries": 3, "retry_sleep_seconds": 0.5, "backoff": "exponential"}
    w = Wired(flow({"a": task("ha", run_policy=retry)}))
    result, driver, _ = w.run({"a": [OSError("1"), OSError("2"), out("ok")]})

    assert result.success and result.trace == ["a"]
    sleeps = [r.seconds for r in driver.requests if isinstance(r, Sleep)]
    assert sleeps == [0.5, 1.0]
    assert driver.calls() == [("a", 1, 1), ("a", 1, 2), ("a", 1, 3)]
    assert [e for e in w.notebook.events() if e[0] == "node:retry"] == [("node:retry", "a")] * 2
    assert len(result.audit_trail) == 1  # one node, one record, however many attempts


def test_a_node_that_keeps_failing_stops_after_max_retries() -> None:
    w = Wired(flow({"a": task("ha", run_policy={"max_retries": 2, "retry_sleep_seconds": 0})}))
    result, driver, _ = w.run({"a": [OSError("x")] * 3})
    assert result.status == "failed"
    assert [c[2] for c in driver.calls()] == [1, 2, 3]


def test_a_cancel_during_a_retry_wait_cancels_the_run_with_the_node_still_queued() -> None:
    w = Wired(flow({"a": task("ha", run_policy={"max_retries": 2, "retry_sleep_seconds": 1})}))
    result, driver, live = w.run({"a": [OSError("x")]}, cancel_sleeps=True)

    assert result.status == "cancelled" and result.cancelled
    assert len(driver.calls()) == 1
    assert live.frontier.ready_now == ["a"]  # resuming runs it again
    assert w.notebook.checkpoints_taken()[-1][1:3] == ("cancelled", True)


def test_a_cancel_before_the_first_node_asks_the_driver_for_nothing() -> None:
    w = Wired(CHAIN, cancelled=True)
    result, driver, _ = w.run({})
    assert result.status == "cancelled" and driver.requests == []
    assert result.trace == []


# ---------------------------------------------------------------- limits


LOOPBACK = {"again": [{"target_node": "a", "is_loopback": True}], "done": []}


def test_a_loopback_opens_a_wave_that_is_announced_and_written_with_the_next_node() -> None:
    w = Wired(flow({"a": {"handler": "ha", "outputs": LOOPBACK}}))
    result, _, _ = w.run({"a": [out("again"), out("again"), out("done")]})
    assert result.trace == ["a", "a", "a"]
    assert [r.wave for r in result.audit_trail] == [1, 2, 3]
    taken = w.notebook.checkpoints_taken()
    assert [c for c in taken if not c[3]] == [
        (1, "running", False, False),
        (2, "running", False, False),
    ]
    assert taken[-1] == (3, "succeeded", True, True)


def test_max_steps_stops_a_loopback_before_the_step_past_the_limit() -> None:
    w = Wired(flow({"a": {"handler": "ha", "outputs": LOOPBACK}}, engine_policy={"max_steps": 3}))
    result, driver, _ = w.run({"a": [out("again")] * 5})
    assert result.error is not None and result.error.code == "MAX_STEPS_EXCEEDED"
    assert len(driver.calls()) == 3


def test_the_workflow_deadline_ends_the_run_before_the_next_node() -> None:
    w = Wired({**CHAIN, "engine_policy": {"workflow_timeout_seconds": 10}})

    def slow(call: Call) -> None:
        if call.ctx.node_name == "b":
            w.clock.now += 11

    result, driver, _ = w.run({"a": [out("ok")], "b": [out("ok")]}, on_call=slow)
    assert result.error is not None and result.error.code == "WORKFLOW_TIMEOUT"
    assert [c[0] for c in driver.calls()] == ["a", "b"]  # c never starts


# ---------------------------------------------------------------- batches


FAN = flow(
    {
        "a": task("ha", "b", "c", "d"),
        "b": task("hb"),
        "c": task("hc"),
        "d": task("hd"),
    },
    engine_policy={"max_concurrency": 3},
)


def test_a_batch_is_one_request_and_settles_in_queue_order() -> None:
    w = Wired(FAN)
    result, driver, _ = w.run(
        {"a": [out("ok")], "b": [out("ok", k="b")], "c": [out("ok", k="c")], "d": [out("ok")]}
    )
    assert result.trace == ["a", "b", "c", "d"]
    batches = [r for r in driver.requests if isinstance(r, Batch)]
    assert len(batches) == 1 and [c.ctx.node_name for c in batches[0].calls] == ["b", "c", "d"]
    assert [c.ctx.step for c in batches[0].calls] == [2, 3, 4]
    assert result.state.workflow == {"k": "c"}  # the later node in queue order wins


def test_a_failure_in_a_batch_stops_settling_the_nodes_queued_after_it() -> None:
    w = Wired(FAN)
    result, _, live = w.run(
        {"a": [out("ok")], "b": [out("ok")], "c": [KeyError("k")], "d": [out("ok", late=1)]}
    )
    assert result.status == "failed" and result.trace == ["a", "b", "c"]
    assert "late" not in result.state.workflow  # d ran, but does not count
    assert live.snap.extra["redrive"]["ready_now"][0] == "c"


# ---------------------------------------------------------------- pauses


def test_a_waiting_node_pauses_the_run_with_a_full_checkpoint_and_stays_queued() -> None:
    w = Wired(CHAIN)
    result, _, live = w.run(
        {"a": [out("ok")], "b": [HandlerResult(waiting=True, waiting_prompt="approve?")]}
    )
    assert result.waiting and result.status == "waiting"
    assert result.waiting_prompt == "approve?" and result.waiting_nodes == {"b": "approve?"}
    assert live.frontier.ready_now == ["b"]
    assert w.notebook.events()[-1] == ("wf:waiting", "b")
    assert w.notebook.checkpoints_taken()[-1] == (2, "waiting", True, True)
    assert result.checkpoint is not None and result.checkpoint.ready_now == ["b"]


def test_an_exception_leaving_the_loop_still_closes_the_session() -> None:
    w = Wired(CHAIN)
    _, steps = w.start()
    steps.send(None)  # Direct: no
    steps.send(None)  # the call of a
    with pytest.raises(RuntimeError, match="driver died"):
        steps.throw(RuntimeError("driver died"))
    assert w.notebook.log[-1] == ("close",)
    assert ("finish",) not in w.notebook.log
