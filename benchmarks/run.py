"""Engine overhead benchmarks: median microseconds per node, optionally against zeroflow 0.1.0.

Workloads (all in memory, no store, no event callback, default settings):

* ``chain-N``     a linear chain of N nodes (10, 100, 1,000);
* ``loop-N``      one node looping on itself N times (100, 1,000, 10,000),
                  writing a counter into its node state every iteration;
* ``fanout-50``   a start node fanning out to 50 branches that meet in an AND-join;
* ``floor-1000``  the chain handler called 1,000 times in a bare Python loop.

The workflow definitions and handlers use only the 0.1.0 public API
(``WorkflowEngine(defn, handlers=...)``, ``engine.run(initial_input=...)``,
``HandlerResult``), so the very same code measures both implementations.
With ``--compare-upstream`` each workload is run again in a subprocess using
the python of a throwaway virtualenv holding ``zeroflow==0.1.0`` (this file in
``--worker`` mode, reporting one JSON line per run), and the two columns are
printed side by side.

Usage::

    uv run python benchmarks/run.py                      # this checkout only
    uv run python benchmarks/run.py --compare-upstream   # ... and 0.1.0 side by side
    uv run python benchmarks/run.py --quick --json out.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Only the 0.1.0 public API: under --worker this resolves to the throwaway venv's 0.1.0.
import zeroflow
from zeroflow import HandlerResult, WorkflowEngine

__all__ = [
    "HANDLERS",
    "WORKLOADS",
    "Measurement",
    "Workload",
    "chain_definition",
    "fanout_definition",
    "loop_definition",
    "main",
    "measure",
    "prepare",
]

UPSTREAM_VERSION = "0.1.0"
UPSTREAM_SPEC = f"zeroflow=={UPSTREAM_VERSION}"
DEFAULT_UPSTREAM_VENV = Path("/tmp/zf010")
RUN_LIMIT_SECONDS = 60.0
TARGET_US_PER_NODE = 10.0
LOOP_GROWTH_LIMIT = 1.5
MIN_NODES_PER_SAMPLE = 1000
LOAD_WARNING = 0.5

# --------------------------------------------------------------------------- handlers
# ``ctx`` is typed ``Any`` on purpose: the handlers run under this checkout's
# WorkflowContext, under 0.1.0's, and (for the floor) under a stand-in object.


def chain_step(ctx: Any) -> HandlerResult:
    """A chain node: record the step number in this node's state, route on ``ok``."""
    return HandlerResult(outputs=["ok"], node_updates={"v": ctx.step})


def loop_step(ctx: Any) -> HandlerResult:
    """The self-loop: bump ``count`` in node state; ``again`` until it reaches the input's N."""
    count = ctx.state.node.get(ctx.node_name, {}).get("count", 0) + 1
    label = "again" if count < ctx.state.input["iterations"] else "done"
    return HandlerResult(outputs=[label], node_updates={"count": count})


def fanout_step(ctx: Any) -> HandlerResult:
    """Start, branch and join nodes of the fan-out: just route on ``ok``."""
    return HandlerResult(outputs=["ok"])


HANDLERS: dict[str, Callable[[Any], HandlerResult]] = {
    "chain": chain_step,
    "loop": loop_step,
    "fanout": fanout_step,
}


# --------------------------------------------------------------------------- definitions


def chain_definition(n: int) -> dict[str, Any]:
    """``n0 -> n1 -> ... -> n{n-1}``; the last node's ``ok`` output has no edges."""
    nodes: dict[str, Any] = {}
    for i in range(n):
        edges = [{"target_node": f"n{i + 1}"}] if i < n - 1 else []
        nodes[f"n{i}"] = {"handler": "chain", "outputs": {"ok": edges}}
    return {"workflow_name": f"bench-chain-{n}", "default_entry_node": "n0", "nodes": nodes}


def loop_definition() -> dict[str, Any]:
    """One node whose ``again`` output is a loopback edge to itself; ``done`` ends the run."""
    return {
        "workflow_name": "bench-loop",
        "default_entry_node": "loop",
        "nodes": {
            "loop": {
                "handler": "loop",
                "outputs": {
                    "again": [{"target_node": "loop", "is_loopback": True}],
                    "done": [],
                },
            }
        },
    }


def fanout_definition(branches: int) -> dict[str, Any]:
    """``start`` -> ``b0..b{branches-1}`` -> ``join`` (AND-join waiting for every branch)."""
    names = [f"b{i}" for i in range(branches)]
    nodes: dict[str, Any] = {
        "start": {"handler": "fanout", "outputs": {"ok": [{"target_node": b} for b in names]}}
    }
    for b in names:
        nodes[b] = {"handler": "fanout", "outputs": {"ok": [{"target_node": "join"}]}}
    nodes["join"] = {
        "handler": "fanout",
        "join": {"mode": "and", "wait_for": names},
        "outputs": {"ok": []},
    }
    return {
        "workflow_name": f"bench-fanout-{branches}",
        "default_entry_node": "start",
        "nodes": nodes,
    }


# --------------------------------------------------------------------------- workloads


@dataclass(frozen=True, slots=True)
class Workload:
    """One benchmark: ``kind`` is chain, loop, fanout or floor; ``size`` its N."""

    kind: str
    size: int
    reps: int = 7
    warmup: int = 2
    target: str = "—"
    upstream: bool = True

    @property
    def key(self) -> str:
        return f"{self.kind}-{self.size}"

    @property
    def label(self) -> str:
        return {
            "chain": f"linear chain of {self.size:,}",
            "loop": f"self-loop x {self.size:,}",
            "fanout": f"fan-out {self.size} → AND-join",
            "floor": f"bare Python loop x {self.size:,} (floor)",
        }[self.kind]

    @property
    def expected_nodes(self) -> int:
        """Node executions per run: the fan-out adds its start and join nodes."""
        return self.size + 2 if self.kind == "fanout" else self.size


_T = f"≤ {TARGET_US_PER_NODE:g}"
_G = f"≤ {LOOP_GROWTH_LIMIT:g}x loop-100"

WORKLOADS: tuple[Workload, ...] = (
    Workload("chain", 10),
    Workload("chain", 100, target=_T),
    Workload("chain", 1000, target=_T),
    Workload("loop", 100),
    Workload("loop", 1000),
    Workload("loop", 10000, reps=3, warmup=1, target=_G),
    Workload("fanout", 50, target=_T),
    Workload("floor", 1000, target="reference (~2)", upstream=False),
)


@dataclass(slots=True)
class Measurement:
    """Median µs per node over the timed samples, plus the raw samples.

    ``nodes`` is the node executions of one run (a sample may hold several runs).
    """

    key: str
    nodes: int
    us_per_node: float
    samples_us_per_node: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "nodes": self.nodes,
            "us_per_node": self.us_per_node,
            "samples_us_per_node": self.samples_us_per_node,
        }


@dataclass(slots=True)
class _FloorContext:
    """The least a chain handler needs from a context."""

    step: int = 0
    node_name: str = "n0"


def prepare(workload: Workload) -> Callable[[], int]:
    """Build everything outside the timed region; return ``run_once() -> nodes executed``.

    ``run_once`` raises ``RuntimeError`` if the run does not succeed or executes
    an unexpected number of nodes.
    """
    expected = workload.expected_nodes

    if workload.kind == "floor":
        fn = chain_step
        ctx = _FloorContext()

        def run_floor() -> int:
            for i in range(workload.size):
                ctx.step = i + 1
                fn(ctx)
            return workload.size

        return run_floor

    initial: dict[str, Any] = {}
    if workload.kind == "chain":
        defn = chain_definition(workload.size)
    elif workload.kind == "loop":
        defn = loop_definition()
        initial = {"iterations": workload.size}
    elif workload.kind == "fanout":
        defn = fanout_definition(workload.size)
    else:
        raise ValueError(f"unknown workload kind {workload.kind!r}")
    engine = WorkflowEngine(defn, handlers={workload.kind: HANDLERS[workload.kind]})

    def run_engine() -> int:
        result = engine.run(initial_input=initial)
        nodes = len(result.trace)
        if not result.success or nodes != expected:
            raise RuntimeError(
                f"{workload.key}: status={result.status} nodes={nodes} "
                f"(expected {expected}) error={result.error}"
            )
        return nodes

    return run_engine


def runs_per_sample(workload: Workload) -> int:
    """Back-to-back runs in one sample, so that every sample executes at least
    ``MIN_NODES_PER_SAMPLE`` nodes (small workloads would otherwise time a cold cache)."""
    return max(1, -(-MIN_NODES_PER_SAMPLE // workload.expected_nodes))


def _timed_runs(workload: Workload, reps: int, warmup: int) -> Iterator[tuple[bool, float, int]]:
    """Yield ``(is_warmup, seconds, nodes)`` for each warm-up and timed sample."""
    run_once = prepare(workload)
    inner = range(runs_per_sample(workload))
    for i in range(warmup + reps):
        gc.collect()
        nodes = 0
        start = time.perf_counter()
        for _ in inner:
            nodes += run_once()
        elapsed = time.perf_counter() - start
        yield i < warmup, elapsed, nodes


def _summarise(workload: Workload, runs: list[tuple[float, int]]) -> Measurement:
    samples = [seconds * 1e6 / nodes for seconds, nodes in runs]
    return Measurement(workload.key, workload.expected_nodes, statistics.median(samples), samples)


def measure(workload: Workload, reps: int | None = None, warmup: int | None = None) -> Measurement:
    """Run ``workload`` in this process: warm-up runs, then ``reps`` timed ones."""
    reps = workload.reps if reps is None else reps
    warmup = workload.warmup if warmup is None else warmup
    if reps < 1:
        raise ValueError("reps must be >= 1")
    timed = [(s, n) for is_warmup, s, n in _timed_runs(workload, reps, warmup) if not is_warmup]
    return _summarise(workload, timed)


# --------------------------------------------------------------------------- upstream


def _upstream_version(python: Path) -> str | None:
    """The zeroflow version importable by ``python`` (from a neutral cwd), or None."""
    if not python.exists():
        return None
    proc = subprocess.run(
        [str(python), "-c", "import zeroflow; print(zeroflow.__version__)"],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
        env=_clean_env(),
        check=False,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for var in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"):
        env.pop(var, None)
    return env


def ensure_upstream(venv: Path | None) -> tuple[Path, Path | None]:
    """Return ``(python, created_dir)`` for a virtualenv holding zeroflow 0.1.0.

    Reuses ``venv`` (default ``/tmp/zf010``) if it already has 0.1.0; otherwise
    creates a throwaway one in a temp dir (``created_dir``, removed by the caller).
    """
    candidate = venv or DEFAULT_UPSTREAM_VENV
    python = candidate / "bin" / "python"
    if _upstream_version(python) == UPSTREAM_VERSION:
        return python, None
    created = Path(tempfile.mkdtemp(prefix="zeroflow-upstream-"))
    print(f"installing {UPSTREAM_SPEC} into throwaway venv {created} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(created)], check=True)
    python = created / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--ignore-requires-python",
            UPSTREAM_SPEC,
        ],
        check=True,
        env=_clean_env(),
    )
    found = _upstream_version(python)
    if found != UPSTREAM_VERSION:
        raise RuntimeError(f"throwaway venv has zeroflow {found!r}, expected {UPSTREAM_VERSION}")
    return python, created


@dataclass(slots=True)
class UpstreamResult:
    """0.1.0's numbers for one workload, or why there are none."""

    key: str
    measurement: Measurement | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "measurement": None if self.measurement is None else self.measurement.to_dict(),
            "note": self.note,
        }


def measure_upstream(
    python: Path, workload: Workload, reps: int, warmup: int, run_limit: float
) -> UpstreamResult:
    """Run ``workload`` under ``python`` in ``--worker`` mode, one JSON line per run.

    If any single run (warm-up included) takes longer than ``run_limit`` seconds
    the worker is killed and the workload reported as not finished.
    """
    cmd = [
        str(python),
        str(Path(__file__).resolve()),
        "--worker",
        workload.key,
        "--reps",
        str(reps),
        "--warmup",
        str(warmup),
    ]
    with tempfile.TemporaryFile() as errfile:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=errfile,
            cwd=tempfile.gettempdir(),
            env=_clean_env(),
        )
        assert proc.stdout is not None
        runs: list[tuple[float, int]] = []
        try:
            for msg in _json_lines(proc.stdout.fileno(), run_limit):
                if msg is None:
                    proc.kill()
                    return UpstreamResult(
                        workload.key, note=f"did not finish in {run_limit:g} s (killed)"
                    )
                if msg["event"] == "run" and not msg["warmup"]:
                    runs.append((float(msg["seconds"]), int(msg["nodes"])))
                elif msg["event"] == "error":
                    return UpstreamResult(workload.key, note=f"failed: {msg['message']}")
        finally:
            code = proc.wait()
            proc.stdout.close()
        if code != 0 or not runs:
            errfile.seek(0)
            err = errfile.read().decode(errors="replace").strip().splitlines()
            tail = err[-1] if err else ""
            return UpstreamResult(workload.key, note=f"worker exit {code}: {tail}")
    return UpstreamResult(workload.key, _summarise(workload, runs))


def _json_lines(fd: int, limit: float) -> Iterator[dict[str, Any] | None]:
    """Yield each JSON line read from ``fd``; yield ``None`` (and stop) after ``limit``
    seconds without a complete line. Ends at EOF."""
    buffer = b""
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        deadline = time.monotonic() + limit
        while True:
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                deadline = time.monotonic() + limit
                if line.strip():
                    yield json.loads(line)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sel.select(timeout=remaining):
                yield None
                return
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            buffer += chunk


def _worker(key: str, reps: int, warmup: int) -> int:
    """``--worker`` mode: run one workload here, print one JSON line per run."""
    workload = next(w for w in WORKLOADS if w.key == key)
    try:
        for is_warmup, seconds, nodes in _timed_runs(workload, reps, warmup):
            event = {"event": "run", "warmup": is_warmup, "seconds": seconds, "nodes": nodes}
            print(json.dumps(event), flush=True)
    except Exception as exc:
        print(json.dumps({"event": "error", "message": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 1
    return 0


# --------------------------------------------------------------------------- report


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 0
    info: dict[str, Any] = {
        "cpus_usable": usable,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }
    info["zeroflow"] = zeroflow.__version__
    info["loadavg_1m"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return info


def _fmt(value: float) -> str:
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _verdict(workload: Workload, ours: Measurement, loop100: Measurement | None) -> str:
    if workload.target == _T:
        ok = ours.us_per_node <= TARGET_US_PER_NODE
    elif workload.target == _G and loop100 is not None:
        ok = ours.us_per_node <= LOOP_GROWTH_LIMIT * loop100.us_per_node
    else:
        return workload.target
    return f"{workload.target} {'✓' if ok else '✗ (missed)'}"


def render_table(
    rows: list[tuple[Workload, Measurement]],
    upstream: Mapping[str, UpstreamResult] | None,
) -> str:
    """The markdown table: workload | nodes | zeroflow | (0.1.0 | ratio) | target."""
    by_key = {w.key: m for w, m in rows}
    loop100 = by_key.get("loop-100")
    head = ["workload", "nodes", "zeroflow µs/node"]
    if upstream is not None:
        head += [f"{UPSTREAM_VERSION} µs/node", "ratio (0.1.0 / now)"]
    head.append("target")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    notes: list[str] = []
    for workload, ours in rows:
        cells = [workload.label, f"{ours.nodes:,}", _fmt(ours.us_per_node)]
        if upstream is not None:
            up = upstream.get(workload.key)
            if up is None or (up.measurement is None and not up.note):
                cells += ["—", "—"]
            elif up.measurement is None:
                cells += ["n/a†", "—"]
                notes.append(f"† {workload.key} under {UPSTREAM_VERSION}: {up.note}")
            else:
                ratio = up.measurement.us_per_node / ours.us_per_node
                cells += [_fmt(up.measurement.us_per_node), f"{ratio:,.1f}x"]
        cells.append(_verdict(workload, ours, loop100))
        lines.append("| " + " | ".join(cells) + " |")
    loop10k = by_key.get("loop-10000")
    if loop100 is not None and loop10k is not None:
        growth = loop10k.us_per_node / loop100.us_per_node
        lines.append("")
        lines.append(
            f"self-loop growth, µs/iteration at 10,000 ÷ at 100: {growth:.2f}x "
            f"(target ≤ {LOOP_GROWTH_LIMIT:g}x)"
        )
    if notes:
        lines.append("")
        lines.extend(notes)
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--compare-upstream",
        action="store_true",
        help=f"also run every workload under zeroflow {UPSTREAM_VERSION} in a throwaway venv",
    )
    parser.add_argument(
        "--upstream-venv",
        type=Path,
        default=None,
        help=f"venv holding zeroflow {UPSTREAM_VERSION} to reuse (default {DEFAULT_UPSTREAM_VENV})",
    )
    parser.add_argument(
        "--run-limit",
        type=float,
        default=RUN_LIMIT_SECONDS,
        help="kill an upstream workload if one run takes longer than this (seconds)",
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (CI smoke)")
    parser.add_argument("--only", action="append", help="run only these workload keys")
    parser.add_argument("--json", type=Path, default=None, help="also write results to PATH")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--reps", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _reps(workload: Workload, quick: bool) -> tuple[int, int]:
    if quick:
        return 1 if workload.size >= 10000 else 3, 1
    return workload.reps, workload.warmup


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.worker is not None:
        return _worker(args.worker, args.reps or 1, args.warmup or 0)

    workloads = [w for w in WORKLOADS if not args.only or w.key in args.only]
    info = machine_info()
    print(
        f"zeroflow {info['zeroflow']} · Python {info['python']} · "
        f"{info['cpus_usable']} usable CPUs · {info['platform']}",
        file=sys.stderr,
    )
    load = info["loadavg_1m"]
    if load is not None and load > LOAD_WARNING:
        print(
            f"warning: 1-minute load average is {load:.2f} on {info['cpus_usable']} CPUs; "
            "other processes are competing for the CPU and the numbers will be inflated",
            file=sys.stderr,
        )
    rows: list[tuple[Workload, Measurement]] = []
    for workload in workloads:
        reps, warmup = _reps(workload, args.quick)
        rows.append((workload, measure(workload, reps, warmup)))
        print(f"  {workload.key}: {rows[-1][1].us_per_node:.2f} µs/node", file=sys.stderr)

    upstream: dict[str, UpstreamResult] | None = None
    upstream_info: dict[str, Any] | None = None
    if args.compare_upstream:
        python, created = ensure_upstream(args.upstream_venv)
        upstream = {}
        try:
            for workload in workloads:
                if not workload.upstream:
                    continue
                reps, warmup = _reps(workload, args.quick)
                result = measure_upstream(python, workload, reps, warmup, args.run_limit)
                upstream[workload.key] = result
                shown = (
                    f"{result.measurement.us_per_node:.2f} µs/node"
                    if result.measurement
                    else result.note
                )
                print(f"  {UPSTREAM_VERSION} {workload.key}: {shown}", file=sys.stderr)
            upstream_info = {"python": str(python), "version": UPSTREAM_VERSION}
        finally:
            if created is not None:
                shutil.rmtree(created, ignore_errors=True)

    print(render_table(rows, upstream))
    if args.json is not None:
        payload = {
            "machine": info,
            "quick": args.quick,
            "results": [{"label": w.label, "target": w.target, **m.to_dict()} for w, m in rows],
            "upstream": None
            if upstream is None
            else {"info": upstream_info, "results": [u.to_dict() for u in upstream.values()]},
        }
        args.json.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
