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


def test_the_streaming_agent_streams_tokens_and_finishes_after_the_approval() -> None:
    out = load_example("07_streaming_agent").main()
    assert "".join(out["tokens"]) == "Workflows are graphs of steps: what is zeroflow."
    assert out["final"]["sent"] is True
    assert out["final"]["review"] == {"approved": True}
    assert "token" not in out["logged"]  # live only: no row per token
    assert "sent" in out["logged"]
