"""The run core's shape, checked from the source: no import cycles, one recorder.

docs/ARCHITECTURE.md promises a layered core: the loop decides, the node
runners execute, and only the recorder touches the store and the callbacks.
These tests read every module's imports (``TYPE_CHECKING`` and function-level
ones included) so a shortcut that breaks the layering fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "zeroflow"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every zeroflow module ``path`` imports, wherever the import statement is."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("zeroflow"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if not target.startswith("zeroflow"):
                continue
            found.add(target)
            for alias in node.names:  # ``from . import _constants`` names a module
                candidate = f"{target}.{alias.name}"
                if _exists(candidate):
                    found.add(candidate)
    found.discard(name)
    return {m for m in found if _exists(m)}


def _exists(module: str) -> bool:
    rel = Path(*module.split("."))
    root = SRC.parent
    return (root / rel).with_suffix(".py").is_file() or (root / rel / "__init__.py").is_file()


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(SRC.rglob("*.py"))}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles between modules (a package importing its own submodules excepted)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(mod: str) -> None:
        state[mod] = 1
        stack.append(mod)
        for dep in sorted(graph.get(mod, ())):
            if mod.startswith(dep + "."):
                continue  # a module sees its package's __init__ run first: not a cycle
            if state.get(dep) == 1:
                found.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[mod] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod)
    return found


def _is_package_reexport(cycle: list[str]) -> bool:
    """``zeroflow`` re-exports its submodules, which import ``zeroflow.<sub>`` siblings."""
    return "zeroflow" in cycle


def test_the_reader_finds_imports_of_every_spelling() -> None:
    graph = _graph()
    assert "zeroflow._run.requests" in graph["zeroflow._run.tasks"]  # from .requests import
    assert "zeroflow._constants" in graph["zeroflow._run.loop"]  # from .. import _constants
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_module_of_the_package_is_part_of_an_import_cycle() -> None:
    cycles = [c for c in _cycles(_graph()) if not _is_package_reexport(c)]
    assert cycles == []


def test_only_the_recorder_of_the_run_core_knows_stores_and_callbacks() -> None:
    graph = _graph()
    core = {m for m in graph if m.startswith("zeroflow._run.")}
    assert {
        "zeroflow._run.requests",
        "zeroflow._run.loop",
        "zeroflow._run.nodes",
        "zeroflow._run.tasks",
        "zeroflow._run.recorder",
        "zeroflow._run.resume",
    } <= core
    outside_world = {"zeroflow._store", "zeroflow._events", "zeroflow.stores"}
    knowing = {m for m in core if graph[m] & outside_world}
    # assemble wires the recorder to the engine's store and callback; nothing else may.
    assert knowing == {"zeroflow._run.recorder", "zeroflow._run.assemble"}


def test_the_requests_module_is_a_leaf_of_the_run_core() -> None:
    deps = _graph()["zeroflow._run.requests"]
    assert {d for d in deps if d.startswith("zeroflow._run")} == set()


def test_the_loop_does_not_reach_handlers_or_threads() -> None:
    source = (SRC / "_run" / "loop.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    imported = {
        a.name
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    } | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"threading", "asyncio", "concurrent.futures", "os", "sqlite3"}
    assert "handlers" not in source


def test_no_stub_methods_and_no_mixins_in_the_run_core() -> None:
    for path in sorted((SRC / "_run").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and node.exc is not None:
                target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                assert not (isinstance(target, ast.Name) and target.id == "NotImplementedError"), (
                    f"{path.name}:{node.lineno} raises NotImplementedError"
                )
            if isinstance(node, ast.ClassDef):
                bases = [
                    b
                    for b in node.bases
                    if not (
                        isinstance(b, ast.Name)
                        and b.id in {"Protocol", "Exception", "TimeoutError"}
                    )
                ]
                assert len(bases) <= 1, f"{path.name}: class {node.name} mixes {len(bases)} bases"


def test_the_engine_the_cli_and_the_kit_never_probe_a_store_with_getattr() -> None:
    for name in (
        "_engine.py",
        "_cli.py",
        "_cli_runs.py",
        "testing/kit.py",
        "testing/crash.py",
        "_run/recorder.py",
        "_run/assemble.py",
    ):
        tree = ast.parse((SRC / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in {"getattr", "hasattr"}
                and node.args
            ):
                probed = ast.unparse(node.args[0])
                assert "store" not in probed, f"{name}:{node.lineno} probes {probed}"
