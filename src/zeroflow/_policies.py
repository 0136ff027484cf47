"""Parsing of the per-node and run-wide policies of a definition.

Each parser takes the raw value of one key, checks it with a message that
names the node, the key and the fix, and returns a small frozen record the
run loop reads directly: ``RetryPolicy``, ``Catcher``, ``EnginePolicy`` and
the specs of the built-in node kinds (wait, end, subflow, map).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ._constants import MAX_TIMEOUT_SECONDS, MAX_WAIT_SECONDS
from ._errors import WorkflowDefinitionError
from ._frozen import freeze, thaw
from ._grammar import pointer
from ._schema_rules import schema_problem

__all__ = [
    "EnginePolicy",
    "input_key",
    "parse_input_schema",
    "parse_writes_schema",
    "workflow_key",
    "RetryPolicy",
    "Catcher",
    "WaitSpec",
    "SleepSpec",
    "SubflowSpec",
    "MapSpec",
    "parse_policy",
    "parse_retry",
    "parse_on_error",
    "parse_kind",
    "parse_saga",
    "fail",
]

STATE_ISOLATION_MODES = ("readonly", "private", "copy")
BACKOFF_MODES = ("fixed", "exponential")
JITTER_MODES = ("none", "full")
NODE_KINDS = ("task", "wait", "end", "subflow", "sleep")
ON_TIMEOUT_MODES = ("route", "default", "fail")
HITL_MODES = ("run", "branch")
CATCHER_SCOPES = ("run", "branch")
CONTRACT_MODES = ("off", "warn", "enforce")
STATE_SECTIONS = ("input", "workflow", "node")


@dataclass(slots=True)
class EnginePolicy:
    """Run-wide settings from ``engine_policy``; unset keys keep 0.1.0's defaults."""

    strict_outputs: bool = True
    max_steps: int | None = None
    workflow_timeout_seconds: float | None = None
    persist_checkpoints: bool = True
    state_isolation: str = "private"
    stranded_joins: str = "warn"
    max_concurrency: int = 1
    hitl: str = "run"
    max_subflow_depth: int = 8
    require_resume_token: bool = False
    contracts: str | None = None
    """``off``, ``warn`` or ``enforce``: what a write outside a node's ``writes_to`` does;
    None: ``warn`` where a node declares ``writes_to``."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "strict_outputs": self.strict_outputs,
            "max_steps": self.max_steps,
            "workflow_timeout_seconds": self.workflow_timeout_seconds,
            "persist_checkpoints": self.persist_checkpoints,
            "state_isolation": self.state_isolation,
            "stranded_joins": self.stranded_joins,
            "max_concurrency": self.max_concurrency,
            "hitl": self.hitl,
            "max_subflow_depth": self.max_subflow_depth,
            "require_resume_token": self.require_resume_token,
            "contracts": self.contracts,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> EnginePolicy:
        """Build a policy from a dict; unknown keys are ignored, bad values raise ``ValueError``."""
        return parse_policy(data)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a node is retried; 0.1.0's fixed delay by default."""

    max_retries: int = 0
    retry_sleep_seconds: float = 0.1
    backoff: str = "fixed"
    backoff_rate: float = 2.0
    max_delay_seconds: float | None = None
    jitter: str = "none"
    retry_on: tuple[str, ...] | None = None
    timeout_seconds: float | None = None

    def delay_seconds(self, retry_number: int) -> float:
        """The un-jittered wait before retry ``retry_number`` (1, 2, ...).

        Never more than ``max_delay_seconds`` nor ``MAX_WAIT_SECONDS``, however
        far an exponential backoff has grown (it never overflows).
        """
        delay = self.retry_sleep_seconds
        if self.backoff == "exponential" and retry_number > 1 and delay > 0:
            try:
                delay = delay * self.backoff_rate ** (retry_number - 1)
            except OverflowError:
                delay = math.inf
        if self.max_delay_seconds is not None:
            delay = min(delay, self.max_delay_seconds)
        return min(max(0.0, delay), float(MAX_WAIT_SECONDS))


@dataclass(frozen=True, slots=True)
class Catcher:
    """One ``on_error`` entry: route failures matching ``codes``/``exceptions`` to ``target``."""

    target: str
    codes: tuple[str, ...] | None = None
    exceptions: tuple[str, ...] | None = None
    scope: str = "run"
    """``"run"``: the failure clears every queue (0.1.0); ``"branch"``: only the failed
    node's own branch, and the target stands in for it at the next AND-join."""


def fail(message: str, path: str = "") -> WorkflowDefinitionError:
    return WorkflowDefinitionError(message, path=path)


def _is_number(value: Any) -> bool:
    """A finite int or float (not a bool); an int too large for a float is not one."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _days(seconds: float) -> str:
    return f"{seconds:g} s ({seconds / 86400:g} days)"


_WAIT_RANGE = f"a number >= 0 and at most {_days(MAX_WAIT_SECONDS)}"
_TIMEOUT_RANGE = f"a number > 0 and at most {_days(MAX_TIMEOUT_SECONDS)}"


def _largest_backoff(sleep: float, rate: float, retries: int) -> float:
    """``sleep * rate ** (retries - 1)``, the last exponential delay, as inf when it overflows."""
    if retries < 2 or sleep <= 0 or rate <= 1:
        return sleep
    exponent = math.log(sleep) + (retries - 1) * math.log(rate)
    return math.inf if exponent > 709 else math.exp(exponent)


def _given(value: Any) -> str:
    """How a refusal names the value it was given: ``'20', a string``."""
    if isinstance(value, bool):
        return f"{value!r}, a boolean"
    if isinstance(value, str):
        return f"{value!r}, a string"
    if isinstance(value, float):
        return f"{value!r}, a fraction" if math.isfinite(value) else f"{value!r}"
    if isinstance(value, int):
        return repr(value)
    return f"a {type(value).__name__}"


def legacy_count(value: Any) -> int | None:
    """The int 0.1.0 read from a count written as text or as a whole float, else None.

    0.1.0 passed ``max_steps`` and ``max_retries`` through ``int()``: ``"2"``
    and ``3.0`` were honoured as 2 and 3. Legacy definitions keep that (the
    linter warns, ZF108); fractions, booleans and other text are refused.
    """
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("+-").isdigit() and text.isascii():
            return int(text)
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _count(value: Any) -> Any:
    """``value`` itself when it is an int, else what 0.1.0 read from it (or ``value``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    read = legacy_count(value)
    return value if read is None else read


def parse_policy(data: Mapping[str, Any] | None) -> EnginePolicy:
    """Read ``engine_policy``; unknown keys are ignored, bad values raise with the key named."""
    if data is None:
        return EnginePolicy()
    if not isinstance(data, Mapping):
        raise fail("engine_policy must be a dict", "/engine_policy")
    given_steps = data.get("max_steps")
    max_steps = None if given_steps is None else _count(given_steps)
    if max_steps is not None and (
        not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps <= 0
    ):
        raise fail(
            f"engine_policy.max_steps must be > 0 (an int, or null for no limit), "
            f"got {_given(given_steps)}",
            "/engine_policy/max_steps",
        )
    timeout = data.get("workflow_timeout_seconds")
    if timeout is not None and (
        not _is_number(timeout) or timeout <= 0 or timeout > MAX_TIMEOUT_SECONDS
    ):
        raise fail(
            f"engine_policy.workflow_timeout_seconds must be > 0 ({_TIMEOUT_RANGE}), "
            f"got {timeout!r}",
            "/engine_policy/workflow_timeout_seconds",
        )
    isolation = data.get("state_isolation", "private")
    if isolation not in STATE_ISOLATION_MODES:
        raise fail(
            "engine_policy.state_isolation must be 'readonly', 'private' or 'copy', "
            f"got {isolation!r}",
            "/engine_policy/state_isolation",
        )
    stranded = data.get("stranded_joins", "warn")
    if stranded not in ("warn", "fail"):
        raise fail(
            f"engine_policy.stranded_joins must be 'warn' or 'fail', got {stranded!r}",
            "/engine_policy/stranded_joins",
        )
    concurrency = data.get("max_concurrency")
    if concurrency is None:  # null is the default, as the schemas and zf/1 check() allow
        concurrency = 1
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise fail(
            "engine_policy.max_concurrency must be an int >= 1 (1 runs nodes one at a time)",
            "/engine_policy/max_concurrency",
        )
    hitl = data.get("hitl", "run")
    if hitl not in HITL_MODES:
        raise fail(
            f"engine_policy.hitl must be 'run' or 'branch', got {hitl!r}", "/engine_policy/hitl"
        )
    depth = data.get("max_subflow_depth")
    if depth is None:
        depth = 8
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        raise fail(
            "engine_policy.max_subflow_depth must be an int >= 1",
            "/engine_policy/max_subflow_depth",
        )
    require_token = data.get("require_resume_token", False)
    if require_token is None:
        require_token = False
    if not isinstance(require_token, bool):
        raise fail(
            f"engine_policy.require_resume_token must be true or false, got {require_token!r}",
            "/engine_policy/require_resume_token",
        )
    contracts = data.get("contracts")
    if contracts is not None and contracts not in CONTRACT_MODES:
        raise fail(
            f"engine_policy.contracts must be 'off', 'warn' or 'enforce', got {contracts!r}",
            "/engine_policy/contracts",
        )
    return EnginePolicy(
        contracts=contracts,
        require_resume_token=require_token,
        max_concurrency=concurrency,
        hitl=str(hitl),
        max_subflow_depth=depth,
        stranded_joins=str(stranded),
        strict_outputs=bool(data.get("strict_outputs", True)),
        max_steps=max_steps,
        workflow_timeout_seconds=None if timeout is None else float(timeout),
        persist_checkpoints=bool(data.get("persist_checkpoints", True)),
        state_isolation=str(isolation),
    )


def _name_list(node: str, key: str, value: Any, *at: str | int) -> tuple[str, ...]:
    """Check a list of names; ``at`` is its pointer below the node (default: ``key``'s parts)."""
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise fail(
            f"node '{node}' {key} must be a list of non-empty strings",
            pointer("nodes", node, *(at or key.split("."))),
        )
    return tuple(value)


def parse_retry(node: str, raw: Any) -> RetryPolicy:
    if raw is None:
        return RetryPolicy()
    path = pointer("nodes", node, "run_policy")
    if not isinstance(raw, Mapping):
        raise fail(f"node '{node}' run_policy must be a dict", path)
    given_retries = raw.get("max_retries", 0)
    retries = _count(given_retries)
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise fail(
            f"node '{node}' run_policy.max_retries must be an int >= 0, "
            f"got {_given(given_retries)}",
            path,
        )
    sleep = raw.get("retry_sleep_seconds", 0.1)
    if not _is_number(sleep) or sleep < 0 or sleep > MAX_WAIT_SECONDS:
        raise fail(
            f"node '{node}' run_policy.retry_sleep_seconds must be {_WAIT_RANGE}, got {sleep!r}",
            path,
        )
    backoff = raw.get("backoff", "fixed")
    if backoff not in BACKOFF_MODES:
        raise fail(
            f"node '{node}' run_policy.backoff must be 'fixed' or 'exponential', got {backoff!r}",
            path,
        )
    rate = raw.get("backoff_rate", 2.0)
    if not _is_number(rate) or rate < 1:
        raise fail(
            f"node '{node}' run_policy.backoff_rate must be a number >= 1, got {rate!r}", path
        )
    max_delay = raw.get("max_delay_seconds")
    if max_delay is not None and (
        not _is_number(max_delay) or max_delay < 0 or max_delay > MAX_WAIT_SECONDS
    ):
        raise fail(
            f"node '{node}' run_policy.max_delay_seconds must be {_WAIT_RANGE}, got {max_delay!r}",
            path,
        )
    if backoff == "exponential" and max_delay is None:
        largest = _largest_backoff(float(sleep), float(rate), retries)
        if largest > MAX_WAIT_SECONDS:
            raise fail(
                f"node '{node}' run_policy: exponential backoff would wait {largest:.3g} s "
                f"before retry {retries} (retry_sleep_seconds * backoff_rate ** "
                f"(max_retries - 1)), more than {_days(MAX_WAIT_SECONDS)}; set "
                "run_policy.max_delay_seconds to cap the delay, or lower max_retries or "
                "backoff_rate",
                path,
            )
    jitter = raw.get("jitter", "none")
    if jitter not in JITTER_MODES:
        raise fail(
            f"node '{node}' run_policy.jitter must be 'none' or 'full', got {jitter!r}", path
        )
    retry_on = raw.get("retry_on")
    timeout = raw.get("timeout_seconds")
    if timeout is not None and (
        not _is_number(timeout) or timeout <= 0 or timeout > MAX_TIMEOUT_SECONDS
    ):
        raise fail(
            f"node '{node}' run_policy.timeout_seconds must be {_TIMEOUT_RANGE}, got {timeout!r}",
            path,
        )
    return RetryPolicy(
        max_retries=retries,
        retry_sleep_seconds=float(sleep),
        backoff=str(backoff),
        backoff_rate=float(rate),
        max_delay_seconds=None if max_delay is None else float(max_delay),
        jitter=str(jitter),
        retry_on=None if retry_on is None else _name_list(node, "run_policy.retry_on", retry_on),
        timeout_seconds=None if timeout is None else float(timeout),
    )


def parse_on_error(node: str, raw: Any, nodes: Mapping[str, Any]) -> tuple[Catcher, ...]:
    if raw is None:
        return ()
    path = pointer("nodes", node, "on_error")
    if not isinstance(raw, list):
        raise fail(f"node '{node}' on_error must be a list of catchers", path)
    catchers = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, Mapping):
            raise fail(f"node '{node}' on_error[{i}] must be a dict", f"{path}/{i}")
        target = entry.get("target_node")
        if not isinstance(target, str) or not target:
            raise fail(
                f"node '{node}' on_error[{i}] target_node must be a non-empty string", f"{path}/{i}"
            )
        if target not in nodes:
            raise fail(
                f"node '{node}' on_error[{i}] references unknown target '{target}'", f"{path}/{i}"
            )
        codes = entry.get("codes")
        excs = entry.get("exceptions")
        scope = entry.get("scope", "run")
        if scope not in CATCHER_SCOPES:
            raise fail(
                f"node '{node}' on_error[{i}] scope must be 'run' or 'branch', got {scope!r}",
                f"{path}/{i}/scope",
            )
        catchers.append(
            Catcher(
                scope=str(scope),
                target=target,
                codes=None
                if codes is None
                else _name_list(node, f"on_error[{i}].codes", codes, "on_error", i, "codes"),
                exceptions=None
                if excs is None
                else _name_list(
                    node, f"on_error[{i}].exceptions", excs, "on_error", i, "exceptions"
                ),
            )
        )
    return tuple(catchers)


def _check_resume_schema(
    node: str, schema_: Any, where: str, what: str = "wait.resume_schema"
) -> None:
    """Refuse a schema (``what``) the engine's checker would not honour in full."""
    if not isinstance(schema_, Mapping | bool):
        raise fail(f"node '{node}' {what} must be a JSON Schema object", where)
    problem = schema_problem(schema_)
    if problem is not None:
        at, message = problem
        raise fail(f"node '{node}' {what} {message}", where + at)


def parse_input_schema(workflow_def: Mapping[str, Any]) -> Mapping[str, Any] | bool | None:
    """The workflow's ``state_contract.input_schema``: the JSON Schema ``initial_input`` matches.

    None: no input schema (``true`` checks nothing either); a schema the checker
    cannot honour is a definition error with its pointer.
    """
    contract = workflow_def.get("state_contract")
    if contract is None:
        return None
    if not isinstance(contract, Mapping):
        raise fail(
            "the workflow's state_contract must be an object such as "
            '{"input_schema": {"type": "object", "required": ["order"]}}',
            "/state_contract",
        )
    schema_ = contract.get("input_schema")
    if schema_ is None or schema_ is True:
        return None
    where = "/state_contract/input_schema"
    if not isinstance(schema_, Mapping | bool):
        raise fail(
            "the workflow's state_contract.input_schema must be a JSON Schema object "
            '(such as {"type": "object", "required": ["order"]}), got '
            f"{type(schema_).__name__}",
            where,
        )
    problem = schema_problem(schema_)
    if problem is not None:
        at, message = problem
        raise fail(f"the workflow's state_contract.input_schema {message}", where + at)
    if isinstance(schema_, bool):
        return False
    frozen: Mapping[str, Any] = freeze(dict(schema_))
    return frozen


def parse_writes_schema(node: str, contract: Any) -> Mapping[str, Any] | None:
    """``state_contract.writes_schema``: the JSON Schema a node's ``workflow_updates`` match."""
    if not isinstance(contract, Mapping) or contract.get("writes_schema") is None:
        return None
    schema_ = contract["writes_schema"]
    where = f"/nodes/{node}/state_contract/writes_schema"
    _check_resume_schema(node, schema_, where, "state_contract.writes_schema")
    if isinstance(schema_, bool):
        # true accepts every update; false none (as JSON Schema reads a boolean schema)
        return None if schema_ else {"type": "null"}
    frozen: Mapping[str, Any] = freeze(dict(schema_))
    return frozen


@dataclass(frozen=True, slots=True)
class WaitSpec:
    """A built-in wait node: pause with ``prompt``; on resume keep the payload at ``resume_as``."""

    prompt: str | None = None
    resume_as: str | None = None
    resume_schema: Mapping[str, Any] | None = None
    """The JSON Schema (zeroflow's checker's subset) a resume payload must match."""
    timeout_seconds: float | None = None
    """How long the wait may last; past it the deadline's ``on_timeout`` applies."""
    on_timeout: str | None = None
    """``"route"`` (to the node's ``timeout`` output), ``"default"`` (resume with
    ``timeout_payload``) or ``"fail"`` (``WAIT_TIMEOUT``); resolved at compile time."""
    timeout_payload: Any = None
    """The payload an unanswered wait resumes with under ``on_timeout: "default"``."""


@dataclass(frozen=True, slots=True)
class SleepSpec:
    """A built-in sleep node: pause ``for_seconds``, or ``until`` the ISO-8601 time at a path."""

    for_seconds: float | None = None
    until: tuple[str, ...] | None = None


def _wait_timeout(node: str, spec: Mapping[str, Any], path: str) -> tuple[float | None, Any]:
    """``wait.timeout_seconds`` and ``wait.on_timeout`` of a wait node, checked."""
    timeout = spec.get("timeout_seconds")
    mode = spec.get("on_timeout")
    if timeout is not None and (
        not _is_number(timeout) or timeout <= 0 or timeout > MAX_TIMEOUT_SECONDS
    ):
        raise fail(
            f"node '{node}' wait.timeout_seconds must be {_TIMEOUT_RANGE}, got {timeout!r}",
            f"{path}/wait/timeout_seconds",
        )
    if mode is not None and mode not in ON_TIMEOUT_MODES:
        raise fail(
            f"node '{node}' wait.on_timeout must be one of {', '.join(ON_TIMEOUT_MODES)}, "
            f"got {mode!r}",
            f"{path}/wait/on_timeout",
        )
    if mode is not None and timeout is None:
        raise fail(
            f"node '{node}' wait.on_timeout needs wait.timeout_seconds (zf/1: timeout_ms): "
            "how long the wait may last",
            f"{path}/wait/on_timeout",
        )
    return (None if timeout is None else float(timeout)), mode


def resolve_wait(node: str, wait: WaitSpec, outputs: Mapping[str, Any]) -> WaitSpec:
    """Fix a deadline's ``on_timeout``: ``route`` with a ``timeout`` output, else ``fail``.

    An explicit ``route`` without a ``timeout`` output, or a ``default`` payload
    its ``resume_schema`` refuses, is a definition error.
    """
    if wait.timeout_seconds is None:
        return wait
    mode = wait.on_timeout or ("route" if "timeout" in outputs else "fail")
    where = pointer("nodes", node, "wait", "on_timeout")
    if mode == "route" and "timeout" not in outputs:
        raise fail(
            f"node '{node}' wait.on_timeout is 'route' but the node has no 'timeout' output; "
            "declare outputs.timeout (zf/1: on.timeout) with the node to escalate to",
            where,
        )
    if mode == "default" and wait.resume_schema is not None:
        from ._schema import check_instance

        problems = check_instance(thaw(wait.timeout_payload), wait.resume_schema)
        if problems:
            listed = "; ".join(f"{ptr or '/'}: {message}" for ptr, message in problems)
            raise fail(
                f"node '{node}' wait.timeout_payload does not match its resume_schema ({listed})",
                pointer("nodes", node, "wait", "timeout_payload"),
            )
    return replace(wait, on_timeout=mode)


def parse_sleep(node: str, raw: Mapping[str, Any]) -> SleepSpec:
    """Read a sleep node's ``sleep``: one of ``for_seconds`` (>= 0) and ``until`` (a path)."""
    path = pointer("nodes", node, "sleep")
    spec = raw.get("sleep")
    if not isinstance(spec, Mapping):
        raise fail(
            f"node '{node}' sleep must be a dict with 'for_seconds' (a number >= 0) or 'until' "
            "(a state path holding an ISO-8601 time, e.g. 'workflow.remind_at')",
            path,
        )
    seconds: Any = spec.get("for_seconds")
    until = spec.get("until")
    if (seconds is None) == (until is None):
        raise fail(
            f"node '{node}' sleep needs exactly one of 'for_seconds' and 'until' (zf/1: for_ms, "
            "until)",
            path,
        )
    if until is not None:
        return SleepSpec(until=parse_path(node, "sleep.until", until))
    if not _is_number(seconds) or seconds < 0 or seconds > MAX_TIMEOUT_SECONDS:
        raise fail(
            f"node '{node}' sleep.for_seconds must be a number >= 0 and at most "
            f"{_days(MAX_TIMEOUT_SECONDS)}, got {seconds!r}",
            f"{path}/for_seconds",
        )
    return SleepSpec(for_seconds=float(seconds))


@dataclass(frozen=True, slots=True)
class SubflowSpec:
    """Run the registered child workflow ``workflow`` with ``input`` built from state paths."""

    workflow: str
    input: tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True, slots=True)
class MapSpec:
    """Run the handler once per item of the list at ``over`` (a state path)."""

    over: tuple[str, ...]
    max_concurrency: int = 1
    tolerated_failures: int = 0


def parse_path(node: str, key: str, value: Any) -> tuple[str, ...]:
    """Split a state path such as ``input.files`` or ``node.fetch.items``."""
    if not isinstance(value, str) or not value:
        raise fail(
            f"node '{node}' {key} must be a state path such as 'input.items'",
            pointer("nodes", node),
        )
    parts = tuple(value.split("."))
    if parts[0] not in STATE_SECTIONS or len(parts) < 2 or not all(parts):
        raise fail(
            f"node '{node}' {key} '{value}' must start with input., workflow. or node. "
            "(e.g. 'input.files', 'node.fetch.items')",
            pointer("nodes", node),
        )
    return parts


def parse_kind(
    node: str, raw: Mapping[str, Any]
) -> tuple[str, WaitSpec | None, Any, SubflowSpec | None, MapSpec | None]:
    """Read ``kind``, ``wait``, ``end``, ``subflow`` and ``map`` of one node."""
    path = pointer("nodes", node)
    kind = raw.get("kind", "subflow" if "subflow" in raw else "task")
    if kind not in NODE_KINDS:
        raise fail(
            f"node '{node}' kind must be one of {', '.join(NODE_KINDS)}, got {kind!r}",
            f"{path}/kind",
        )
    wait = None
    end_result: Any = None
    subflow = None
    map_spec = None
    if kind == "wait":
        spec = raw.get("wait") or {}
        if not isinstance(spec, Mapping):
            raise fail(
                f"node '{node}' wait must be a dict with 'prompt' and 'resume_as'", f"{path}/wait"
            )
        prompt = spec.get("prompt")
        resume_as = spec.get("resume_as")
        for key, value in (("prompt", prompt), ("resume_as", resume_as)):
            if value is not None and not isinstance(value, str):
                raise fail(f"node '{node}' wait.{key} must be a string", f"{path}/wait/{key}")
        schema_ = spec.get("resume_schema")
        if schema_ is not None:
            _check_resume_schema(node, schema_, f"{path}/wait/resume_schema")
        timeout, mode = _wait_timeout(node, spec, path)
        wait = WaitSpec(
            prompt, resume_as, schema_, timeout, mode, freeze(spec.get("timeout_payload"))
        )
    elif kind == "end":
        spec = raw.get("end") or {}
        if not isinstance(spec, Mapping):
            raise fail(f"node '{node}' end must be a dict with 'result'", f"{path}/end")
        end_result = freeze(spec.get("result"))
    elif kind == "subflow":
        spec = raw.get("subflow")
        if not isinstance(spec, Mapping) or not isinstance(spec.get("workflow"), str):
            raise fail(
                f"node '{node}' subflow must be a dict naming the child: "
                '{"workflow": "<name>", "input": {"<key>": "<path>"}}',
                f"{path}/subflow",
            )
        mapping = spec.get("input") or {}
        if not isinstance(mapping, Mapping):
            raise fail(
                f"node '{node}' subflow.input must map keys to state paths", f"{path}/subflow/input"
            )
        subflow = SubflowSpec(
            str(spec["workflow"]),
            tuple((str(k), parse_path(node, f"subflow.input.{k}", v)) for k, v in mapping.items()),
        )
    if "map" in raw:
        spec = raw["map"]
        if not isinstance(spec, Mapping):
            raise fail(f"node '{node}' map must be a dict with 'over'", f"{path}/map")
        conc = spec.get("max_concurrency", 1)
        tol = spec.get("tolerated_failures", 0)
        if not isinstance(conc, int) or isinstance(conc, bool) or conc < 1:
            raise fail(f"node '{node}' map.max_concurrency must be an int >= 1", f"{path}/map")
        if not isinstance(tol, int) or isinstance(tol, bool) or tol < 0:
            raise fail(f"node '{node}' map.tolerated_failures must be an int >= 0", f"{path}/map")
        map_spec = MapSpec(parse_path(node, "map.over", spec.get("over")), conc, tol)
    return kind, wait, end_result, subflow, map_spec


def parse_saga(node: str, kind: str, raw: Mapping[str, Any]) -> tuple[str | None, bool]:
    """Read ``compensate`` (a handler name) and ``detached`` (a bool) of one node.

    Only task and subflow nodes do work that can be undone or run aside: either
    key on a wait or end node is a definition error, as is ``on_error`` on a
    detached node (its failure never re-routes the run).
    """
    compensate = raw.get("compensate")
    detached = raw.get("detached", False)
    if compensate is None and detached is False:
        return None, False  # the usual node: nothing to check, no pointer to build
    path = pointer("nodes", node)
    for key, given in (("compensate", compensate is not None), ("detached", detached is True)):
        if given and kind not in ("task", "subflow"):
            raise fail(
                f"node '{node}' is a {kind} node and cannot have '{key}': only task and "
                "subflow nodes do work that can be undone or run aside; remove the key",
                f"{path}/{key}",
            )
    if compensate is not None and (not isinstance(compensate, str) or not compensate):
        raise fail(
            f"node '{node}' compensate must be the name of a registered handler "
            f"(a non-empty string), got {_given(compensate)}",
            f"{path}/compensate",
        )
    if not isinstance(detached, bool):
        raise fail(
            f"node '{node}' detached must be true or false, got {_given(detached)}",
            f"{path}/detached",
        )
    if detached and raw.get("on_error"):
        raise fail(
            f"node '{node}' is detached, so its failure never re-routes the run; remove "
            "its on_error (or drop detached to catch the failure)",
            f"{path}/on_error",
        )
    return compensate, detached


def workflow_key(entry: Any) -> str | None:
    """The top-level ``state.workflow`` key a contract entry names (None: input or node)."""
    if not isinstance(entry, str) or not entry:
        return None
    text = entry.removeprefix("state.")
    head, _, rest = text.partition(".")
    if head in ("input", "node"):
        return None
    if head == "workflow":
        return rest.partition(".")[0] or None
    return head


def input_key(entry: Any) -> str | None:
    """The top-level ``state.input`` key a contract entry names (``"input.order.id"``: order)."""
    if not isinstance(entry, str):
        return None
    head, _, rest = entry.removeprefix("state.").partition(".")
    return (rest.partition(".")[0] or None) if head == "input" else None
