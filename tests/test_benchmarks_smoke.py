"""Smoke test for ``benchmarks/run.py``: every workload runs once at a tiny size.

Only correctness is checked (a positive time and the expected node count);
speed goals are measured by the benchmark itself, never asserted here.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

RUN_PY = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    name = "zeroflow_benchmarks_run"
    spec = importlib.util.spec_from_file_location(name, RUN_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file executes
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(name, None)


@pytest.mark.parametrize(
    ("kind", "size", "nodes"),
    [("chain", 5, 5), ("loop", 10, 10), ("fanout", 5, 7), ("floor", 5, 5)],
)
def test_workload_runs_once(bench: ModuleType, kind: str, size: int, nodes: int) -> None:
    workload = bench.Workload(kind, size)
    assert workload.expected_nodes == nodes
    result = bench.measure(workload, reps=1, warmup=0)
    assert result.nodes == nodes
    assert result.us_per_node > 0
    assert len(result.samples_us_per_node) == 1


def test_every_listed_workload_builds(bench: ModuleType) -> None:
    for workload in bench.WORKLOADS:
        assert callable(bench.prepare(workload))


def test_table_renders(bench: ModuleType) -> None:
    workload = bench.Workload("chain", 3)
    table = bench.render_table([(workload, bench.measure(workload, reps=1, warmup=0))], None)
    assert table.splitlines()[0].startswith("| workload | nodes | zeroflow µs/node |")
    assert "linear chain of 3" in table


STORES_PY = RUN_PY.with_name("stores.py")


@pytest.fixture(scope="module")
def store_bench() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("zeroflow_benchmarks_stores", STORES_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module


@pytest.mark.parametrize("store", ["none", "memory", "json", "json-fsync", "sqlite"])
def test_store_benchmark_runs_each_store_once(store_bench: ModuleType, store: str) -> None:
    assert store_bench.measure(store, 5) > 0  # measure() itself checks the run's trace


@pytest.mark.parametrize("floor", ["_floor_append", "_floor_sqlite", "_floor_fsync"])
def test_store_benchmark_floors_run(store_bench: ModuleType, floor: str, tmp_path: Path) -> None:
    assert getattr(store_bench, floor)(tmp_path, 3) > 0


def test_the_paired_runner_compares_trees() -> None:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    args = ["--store", "memory", "--iterations", "20", "--rounds", "2", "--reps", "1"]
    done = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "ab.py"), str(root), str(root), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = [line for line in done.stdout.splitlines() if line.startswith(f"| {root}")]
    assert len(rows) == 2 and all("| memory |" in row for row in rows)


INSTRUCTIONS_PY = RUN_PY.parent / "instructions.py"


@pytest.mark.parametrize(
    "kind",
    [
        "floor",
        "none",
        "readonly",
        "memory",
        "json",
        "sqlite",
        "memory-batch",
        "json-batch",
        "sqlite-batch",
        "map",
    ],
)
def test_every_instruction_count_workload_runs_without_valgrind(kind: str) -> None:
    name = "zeroflow_benchmarks_instructions"
    spec = importlib.util.spec_from_file_location(name, INSTRUCTIONS_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert kind in module.WORKLOADS
    module._worker(kind, 5)  # asserts the run succeeded
