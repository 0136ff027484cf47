"""Every example runs and does what its docstring says."""

from __future__ import annotations

from _support import load_example


def test_quickstart_takes_the_short_branch_for_a_short_goal() -> None:
    results = load_example("01_quickstart").main()
    short = results["tidy imports"]
    long = results["refactor the storage module carefully"]
    assert short.success and short.trace == ["plan", "execute"]
    assert long.success and long.trace == ["plan", "review", "execute"]
    assert long.state.workflow["reviewed"] is True
    assert short.state.workflow["done"] == ["TIDY", "IMPORTS"]
