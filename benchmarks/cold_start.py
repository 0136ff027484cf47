"""Cold start: what a fresh interpreter pays for ``import zeroflow`` and ``zeroflow --help``.

Each row is the wall-clock time of a whole fresh interpreter (``subprocess.run``
from start to exit), median of 15 by default. The rows are sampled in
alternation (one sample of each in turn) so that a noisy neighbour affects
them alike. Rows:

* ``bare interpreter``: ``python -c pass``, the floor no import can go below;
* ``import zeroflow``: ``python -c "import zeroflow"`` with this checkout;
* ``zeroflow --help``: ``python -m zeroflow --help``;
* ``first run``: import, build a ``WorkflowEngine`` for a 3-node chain and run
  it once, with no store (0.1.0's API, so both versions run the same code):
  what a Lambda cold start pays before its own work, where ``import zeroflow``
  alone cannot hide a cost that only moved to the engine's construction;
* ``... (0.1.0)``: the import and the first run in the virtualenv at
  ``/tmp/zf010`` (or ``--upstream-venv DIR``) holding zeroflow 0.1.0; those
  rows are left out when that virtualenv is absent.

Bytecode is cached as users have it: ``PYTHONDONTWRITEBYTECODE`` is removed
from the children's environment and one untimed warm-up round writes the
``.pyc`` files. The last column subtracts the bare interpreter's median.

Usage::

    uv run python benchmarks/cold_start.py
    uv run python benchmarks/cold_start.py --runs 31
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _timed(argv: list[str], env: dict[str, str]) -> float:
    if argv[0] != sys.executable:  # 0.1.0's interpreter imports its own zeroflow only
        env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


FIRST_RUN = """\
from zeroflow import HandlerResult, WorkflowEngine
nodes = {
    "n0": {"handler": "h", "outputs": {"ok": [{"target_node": "n1"}]}},
    "n1": {"handler": "h", "outputs": {"ok": [{"target_node": "n2"}]}},
    "n2": {"handler": "h", "outputs": {"ok": []}},
}
defn = {"workflow_name": "cold", "default_entry_node": "n0", "nodes": nodes}
engine = WorkflowEngine(defn, {"h": lambda ctx: HandlerResult(outputs=["ok"])})
assert engine.run(initial_input={}).success
"""


def rows(upstream_venv: Path) -> list[tuple[str, list[str]]]:
    me = sys.executable
    out = [
        ("bare interpreter", [me, "-c", "pass"]),
        ("import zeroflow", [me, "-c", "import zeroflow"]),
        ("zeroflow --help", [me, "-m", "zeroflow", "--help"]),
        ("first run", [me, "-c", FIRST_RUN]),
    ]
    upstream = upstream_venv / "bin" / "python"
    if upstream.exists():
        old = str(upstream)
        out.append(("import zeroflow (0.1.0)", [old, "-c", "import zeroflow"]))
        out.append(("first run (0.1.0)", [old, "-c", FIRST_RUN]))
    return out


def measure(cases: list[tuple[str, list[str]]], runs: int) -> dict[str, list[float]]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for _, argv in cases:  # warm-up: compile and cache the bytecode, warm the page cache
        _timed(argv, env)
    samples: dict[str, list[float]] = {name: [] for name, _ in cases}
    for _ in range(runs):
        for name, argv in cases:
            samples[name].append(_timed(argv, env))
    return samples


def table(samples: dict[str, list[float]]) -> str:
    floor = statistics.median(samples["bare interpreter"])
    lines = [
        "| what | median | best | over the bare interpreter |",
        "|---|---:|---:|---:|",
    ]
    for name, values in samples.items():
        median = statistics.median(values)
        extra = "" if name == "bare interpreter" else f"{(median - floor) * 1000:.1f} ms"
        lines.append(f"| {name} | {median * 1000:.1f} ms | {min(values) * 1000:.1f} ms | {extra} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=15, help="fresh interpreters per row")
    parser.add_argument("--upstream-venv", type=Path, default=Path("/tmp/zf010"))
    args = parser.parse_args(argv)
    print(
        f"# {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, median of {args.runs} fresh interpreters",
        file=sys.stderr,
    )
    print(table(measure(rows(args.upstream_venv), args.runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
