"""How each kind of node executes: task, map, wait, end and subflow.

``NodeRunner.execute`` turns one taken node into an ``Outcome``: a generator
that yields the driver requests of its handler calls (through ``TaskCaller``)
and returns ``(result, error, exception class names)``. A map persists its
finished items through the recorder as they land; a subflow drives a child
run (``ChildRuns``) inside this node.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from .. import _constants as C
from .._definition import CompiledNode
from .._frozen import NotJSONError, freeze, thaw
from .._input_contract import listing, warning_data
from .._live import LiveRun
from .._models import HandlerResult, RunSnapshot, WorkflowError
from .._timers import TIMER_SLEEP, TIMER_WAIT, TIMERS, iso_of, parse_instant
from .lockstep import lockstep
from .recorder import ParentLink, Recorder
from .requests import Cancelled, NodeSteps, Outcome, Steps
from .tasks import TaskCaller
from .waits import RESUMING

__all__ = ["ChildRuns", "NodeRunner", "lookup_path"]

_MISSING = object()
_MAP_ITEM_DEPTH = 3
"""Containers around a map item's result once recorded: its own nesting gets the rest."""


class ChildRuns(Protocol):
    """The runs of one subflow node's child workflow."""

    def start(
        self, run_id: str, child_input: dict[str, Any], deadline: float | None, link: ParentLink
    ) -> Steps:
        """Steps of a new child run; the parent's checkpoint carries it.

        ``link``: the parent run and node, where the child's effects are written.
        """

    def input_problems(self, child_input: Mapping[str, Any]) -> tuple[str, list[tuple[str, str]]]:
        """The child's ``contracts`` mode, and how ``child_input`` misses its input schema."""

    def resume(
        self,
        snap: RunSnapshot,
        payload: Any,
        node: str | None,
        link: ParentLink,
        now: float | None = None,
    ) -> Steps:
        """Steps of a paused (or interrupted) child run, resumed with ``payload`` (at ``node``).

        ``now``: the time a timer woke it (a child's wait deadline due by then applies).
        """


def lookup_path(run: LiveRun, path: tuple[str, ...]) -> Any:
    """The value at a state path (``("input", "files")``), or ``_MISSING``."""
    section = {"input": run.input, "workflow": run.workflow, "node": run.node_state}[path[0]]
    value: Any = section
    for key in path[1:]:
        if not isinstance(value, Mapping) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _json_type_name(value: Any) -> str:
    """The user-facing type name of state data (frozen containers are dicts and lists)."""
    if isinstance(value, dict):
        return "dict"
    if isinstance(value, list):
        return "list"
    return type(value).__name__


class NodeRunner:
    """Executes the nodes of one workflow; ``children`` run its subflow nodes."""

    def __init__(
        self,
        tasks: TaskCaller,
        recorder: Recorder,
        is_cancelled: Callable[[], bool],
        children: Mapping[str, ChildRuns],
    ) -> None:
        self.tasks = tasks
        self.recorder = recorder
        self.is_cancelled = is_cancelled
        self.children = children

    def execute(self, run: LiveRun, node: CompiledNode, step: int) -> NodeSteps:
        """The outcome of running ``node`` once (all kinds)."""
        kind = node.kind
        if kind == "wait":
            return self._wait_node(run, node)
        if kind == "sleep":
            return self._sleep_node(run, node)
        if kind == "end":
            return (
                HandlerResult(
                    outputs=[], workflow_updates={"result": self._literal(node.end_result)}
                ),
                None,
                None,
            )
        if kind == "subflow":
            return (yield from self._subflow(run, node))
        if node.map is not None:
            return (yield from self._map(run, node, step))
        return (yield from self.tasks.call(run, node, step))

    def _literal(self, value: Any) -> Any:
        """Definition data as state holds it: a plain copy (with a codec, its keys escaped)."""
        tags = self.tasks.tags
        return thaw(value) if tags is None else tags.encode(value)

    def _wait_node(self, run: LiveRun, node: CompiledNode) -> Outcome:
        """A wait node pauses; resumed, it keeps the payload and routes on its outcome.

        With a deadline the pause arms a timer; resumed after it (``resume_due``,
        or a late answer) the node applies its ``on_timeout`` instead.
        """
        spec = node.wait
        assert spec is not None
        name = node.name
        if run.resumed != name:
            if spec.timeout_seconds is not None:
                self._arm(run, name, self.tasks.clock() + spec.timeout_seconds, TIMER_WAIT)
            return HandlerResult(outputs=[], waiting=True, waiting_prompt=spec.prompt), None, None
        resuming = run.snap.extra.get(RESUMING)
        deadline = resuming.get("timed_out") if isinstance(resuming, Mapping) else None
        updates: dict[str, Any] | None = None
        if deadline is not None:
            if spec.on_timeout == "fail":
                when = iso_of(deadline) if isinstance(deadline, int | float) else "its deadline"
                return (
                    None,
                    WorkflowError(
                        C.ERROR_WAIT_TIMEOUT,
                        f"wait node '{name}' was not answered by {when}",
                        name,
                        details={"deadline": deadline},
                    ),
                    None,
                )
            if spec.on_timeout == "route":
                return HandlerResult(outputs=["timeout"]), None, None
            payload = self._literal(spec.timeout_payload)
            updates = {"__resume__": payload}
        else:
            payload = run.workflow.get("__resume__")
        outcome = payload.get("outcome") if isinstance(payload, Mapping) else None
        label = outcome if isinstance(outcome, str) and outcome in node.outputs else "ok"
        if spec.resume_as:
            updates = {**(updates or {}), spec.resume_as: thaw(payload)}
        outputs = [label] if label in node.outputs else []
        return HandlerResult(outputs=outputs, workflow_updates=updates), None, None

    def _sleep_node(self, run: LiveRun, node: CompiledNode) -> Outcome:
        """A sleep node pauses until its due time (a durable timer); woken, it routes ``ok``."""
        spec = node.sleep
        assert spec is not None
        name = node.name
        ok = HandlerResult(outputs=["ok"] if "ok" in node.outputs else [])
        if run.resumed == name:
            return ok, None, None
        now = self.tasks.clock()
        if spec.until is not None:
            value = lookup_path(run, spec.until)
            due = parse_instant(value)
            if due is None:
                where = ".".join(spec.until)
                found = "nothing" if value is _MISSING else repr(value)[:80]
                return (
                    None,
                    WorkflowError(
                        C.ERROR_SLEEP_UNTIL,
                        f"sleep node '{name}' sleeps until '{where}', which holds {found}; "
                        "it must be an ISO-8601 time such as '2030-01-31T09:00:00+00:00'",
                        name,
                        details={"until": where},
                    ),
                    None,
                )
        else:
            assert spec.for_seconds is not None
            timers = run.snap.extra.get(TIMERS) or {}
            armed = timers.get(name) if isinstance(timers, Mapping) else None
            due = armed["due"] if isinstance(armed, Mapping) and "due" in armed else None
            if not isinstance(due, int | float) or isinstance(due, bool):
                due = now + spec.for_seconds
        if due <= now:
            return ok, None, None
        self._arm(run, name, float(due), TIMER_SLEEP)
        return HandlerResult(outputs=[], waiting=True), None, None

    @staticmethod
    def _arm(run: LiveRun, name: str, due: float, kind: str) -> None:
        """Record the node's timer, unless this visit armed it already (a re-pause keeps it)."""
        timers = run.snap.extra.get(TIMERS)
        if isinstance(timers, Mapping) and isinstance(timers.get(name), Mapping):
            return
        run.set_extra_path((TIMERS, name), {"due": due, "kind": kind})

    def _map(self, run: LiveRun, node: CompiledNode, step: int) -> NodeSteps:
        """Run the handler once per item; finished items are checkpointed as they land."""
        spec = node.map
        assert spec is not None
        name = node.name
        items = lookup_path(run, spec.over)
        where = ".".join(spec.over)
        if items is _MISSING or not isinstance(items, list):
            found = "nothing" if items is _MISSING else _json_type_name(items)
            return (
                None,
                WorkflowError(
                    C.ERROR_MAP_INPUT,
                    f"node '{name}' maps over '{where}', which holds {found}; it must be a list",
                    name,
                    details={"over": where},
                ),
                None,
            )
        progress = run.snap.extra.get("map", {}).get(name, {})
        results: dict[str, Any] = dict(progress.get("results", {}))
        errors: dict[str, Any] = dict(progress.get("errors", {}))
        todo = [i for i in range(len(items)) if str(i) not in results and str(i) not in errors]
        size = spec.max_concurrency
        tasks = self.tasks
        call = tasks.call  # items called together: each call a request of the batch
        # One at a time, the driver may lend its caller: a plain success needs no request.
        direct = run.direct if name in tasks.plain else None
        for start in range(0, len(todo), size):
            if self.is_cancelled():
                raise Cancelled()
            chunk = todo[start : start + size]
            if len(chunk) == 1:
                i = chunk[0]
                if direct is None:
                    alone: Outcome = yield from call(run, node, step, items[i], i)
                else:
                    result, exc = tasks.first_attempt(run, node, step, direct, items[i], i)
                    if exc is None and type(result) is HandlerResult and result.error is None:
                        alone = tasks.accept(run, node, result)
                    else:  # retries, errors and odd results: the attempt goes on through call
                        alone = yield from call(run, node, step, items[i], i, (result, exc))
                outcomes: dict[int, Outcome | BaseException] = {i: alone}
            else:
                gens = {i: call(run, node, step, items[i], i) for i in chunk}
                outcomes = yield from lockstep(gens)
            interrupted: BaseException | None = None
            for i in chunk:
                got = outcomes[i]
                if isinstance(got, BaseException):
                    interrupted = interrupted or got  # record the finished items first
                    continue
                result, error, _ = got
                key = str(i)
                value: Any = None
                if error is None and result is not None:
                    try:
                        # Private and immutable; the depth counts where the item lands
                        # (node_updates.results[i], or __error__.details.results[i]).
                        value = freeze(result.node_updates, f"map[{i}]", _MAP_ITEM_DEPTH)
                    except NotJSONError as exc:
                        error = WorkflowError(
                            C.ERROR_STATE_SERIALIZATION,
                            "workflow state is not JSON-serializable",
                            name,
                            details={"reason": str(exc)},
                            cause_type="TypeError",
                        )
                if error is None:
                    results[key] = value
                    run.set_extra_path(("map", name, "results", key), value)
                else:
                    errors[key] = error.to_dict()
                    run.set_extra_path(("map", name, "errors", key), error.to_dict())
            self.recorder.progress(run, name)
            if interrupted is not None:
                raise interrupted
        ordered = [results.get(str(i)) for i in range(len(items))]
        failures = [
            {"index": int(k), "error": v}
            for k, v in sorted(errors.items(), key=lambda kv: int(kv[0]))
        ]
        if len(failures) > spec.tolerated_failures:
            # Keep the finished items, forget the failed ones: a redrive reruns only those.
            run.set_extra_path(("map", name, "errors"), None)
            return (
                None,
                WorkflowError(
                    C.ERROR_MAP_FAILED,
                    f"node '{name}': {len(failures)} of {len(items)} items failed "
                    f"(tolerated_failures={spec.tolerated_failures})",
                    name,
                    details={"errors": failures, "results": ordered},
                ),
                None,
            )
        run.set_extra_path(("map", name), None)
        if not run.snap.extra.get("map"):
            run.set_extra_path(("map",), None)
        return (
            HandlerResult(outputs=["ok"], node_updates={"results": ordered, "errors": failures}),
            None,
            None,
        )

    def _child_input(
        self,
        run: LiveRun,
        name: str,
        workflow: str,
        child: ChildRuns,
        child_input: Mapping[str, Any],
    ) -> WorkflowError | None:
        """The child's ``input_schema`` against the input this node built: failure or warning."""
        mode, problems = child.input_problems(child_input)
        if not problems:
            return None
        message = (
            f"node '{name}': the input of subflow '{workflow}' does not match its "
            f"state_contract.input_schema ({listing(problems)})"
        )
        data = warning_data(name, message, problems)  # at most 100 problems, and their count
        if mode != "warn":
            details = {"workflow": workflow, **{k: data[k] for k in ("problems", "problem_count")}}
            return WorkflowError(C.ERROR_CONTRACT_VIOLATION, message, name, details=details)
        self.recorder.emit(run, C.EVENT_NODE_WARNING, name, data)
        return None

    def _subflow(self, run: LiveRun, node: CompiledNode) -> NodeSteps:
        """Run the child workflow; its pause, failure or cancel becomes this node's."""
        spec = node.subflow
        assert spec is not None
        name = node.name
        child = self.children[name]
        saved = run.snap.extra.get("subflows", {}).get(name)
        link = ParentLink(self.recorder, run, name)
        if saved is not None:
            snap = RunSnapshot.from_dict(saved)
            woken_at = None
            if snap.status == C.STATUS_RUNNING:
                # Interrupted inside the child (its effects wrote it): it carries on where it
                # stopped, with what it was answered then.
                payload = child_node = None
            else:
                payload = run.workflow.get("__resume__")
                child_node = run.resume_path if run.resumed == name else None
                resuming = run.snap.extra.get(RESUMING)
                if child_node is not None and isinstance(resuming, Mapping):
                    woken_at = resuming.get("woken_at")  # a child's timer fired
                    if woken_at is not None:
                        payload = None
            run.resume_path = None
            steps = child.resume(snap, payload, child_node, link, woken_at)
        else:
            child_input: dict[str, Any] = {}
            for key, path in spec.input:
                value = lookup_path(run, path)
                if value is _MISSING:
                    return (
                        None,
                        WorkflowError(
                            C.ERROR_SUBFLOW_FAILED,
                            f"node '{name}': subflow input '{key}' reads '{'.'.join(path)}', "
                            "which is not in the state",
                            name,
                            details={"workflow": spec.workflow, "missing": ".".join(path)},
                        ),
                        None,
                    )
                child_input[key] = thaw(value)
            refused = self._child_input(run, name, spec.workflow, child, child_input)
            if refused is not None:
                return None, refused, None
            steps = child.start(
                f"{run.snap.run_id}.{name}", child_input, run.snap.deadline_ts, link
            )
        result = yield from steps
        status = result.status
        if status in (C.STATUS_WAITING, C.STATUS_CANCELLED):
            assert result.checkpoint is not None
            run.set_extra_path(("subflows", name), result.checkpoint.to_dict())
            if status == C.STATUS_CANCELLED:
                raise Cancelled()
            return (
                HandlerResult(outputs=[], waiting=True, waiting_prompt=result.waiting_prompt),
                None,
                None,
            )
        if saved is not None or name in run.snap.extra.get("subflows", ()):
            run.set_extra_path(("subflows", name), None)
            if not run.snap.extra.get("subflows"):
                run.set_extra_path(("subflows",), None)
        if status == C.STATUS_SUCCEEDED:
            return (
                HandlerResult(outputs=["ok"], node_updates={"output": result.state.workflow}),
                None,
                None,
            )
        err = result.error
        assert err is not None
        return (
            None,
            WorkflowError(
                C.ERROR_SUBFLOW_FAILED,
                f"subflow '{spec.workflow}' of node '{name}' failed: {err.code}: {err.message}",
                name,
                details={"workflow": spec.workflow, "child_error": err.to_dict()},
            ),
            None,
        )
