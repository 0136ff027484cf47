"""Every example runs and does what its docstring says."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_quickstart_takes_the_short_branch_for_a_short_goal() -> None:
    results = load_example("01_quickstart").main()
    short = results["tidy imports"]
    long = results["refactor the storage module carefully"]
    assert short.success and short.trace == ["plan", "execute"]
    assert long.success and long.trace == ["plan", "review", "execute"]
    assert long.state.workflow["reviewed"] is True
    assert short.state.workflow["done"] == ["TIDY", "IMPORTS"]
