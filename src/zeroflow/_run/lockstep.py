"""Several node generators advanced together, so their calls form one ``Batch``."""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

from .requests import Batch, Call, Cancelled, NodeSteps, Outcome, Request, Sleep, TimedOut

__all__ = ["lockstep"]


def lockstep(
    gens: dict[int, NodeSteps], durations: dict[int, float] | None = None
) -> Generator[Request, Any, dict[int, Outcome | BaseException]]:
    """Advance several node generators together: their calls become one ``Batch``.

    Retry waits of several generators become one ``Sleep`` of the longest
    delay. A generator that raises (cancel, timeout) has its exception in the
    result instead of an outcome. ``durations``, when given, receives each
    generator's own time in seconds (its handlers' calls, as the driver timed
    them, and its own retry waits), as if it had run alone.
    """
    out: dict[int, Outcome | BaseException] = {}
    pending: dict[int, Request] = {}

    def advance(i: int, answer: Any, first: bool = False) -> None:
        try:
            pending[i] = next(gens[i]) if first else gens[i].send(answer)
        except StopIteration as stop:
            out[i] = stop.value
            pending.pop(i, None)
        except (Cancelled, TimedOut) as exc:
            out[i] = exc
            pending.pop(i, None)

    for i in sorted(gens):
        advance(i, None, first=True)
    while pending:
        calls = [(i, r) for i, r in sorted(pending.items()) if type(r) is Call]
        if calls:
            answers = yield Batch([r for _, r in calls])
            for (i, call), answer in zip(calls, answers, strict=True):
                if durations is not None and call.elapsed is not None:
                    durations[i] = durations.get(i, 0.0) + call.elapsed
                advance(i, answer)
            continue
        nested = [(i, r) for i, r in sorted(pending.items()) if type(r) is Batch]
        if nested:
            i, req = nested[0]
            started = time.perf_counter()
            answer = yield req
            if durations is not None:
                durations[i] = durations.get(i, 0.0) + time.perf_counter() - started
            advance(i, answer)
            continue
        sleeps = sorted(pending.items())
        cancelled = yield Sleep(max(r.seconds for _, r in sleeps))  # type: ignore[union-attr]
        for i, r in sleeps:
            if durations is not None:
                durations[i] = durations.get(i, 0.0) + r.seconds  # type: ignore[union-attr]
            advance(i, cancelled)
    return out
