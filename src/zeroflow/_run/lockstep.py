"""Several node generators advanced together, so their calls form one ``Batch``."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from .requests import Batch, Call, Cancelled, NodeSteps, Outcome, Request, Sleep, TimedOut

__all__ = ["lockstep"]


def lockstep(
    gens: dict[int, NodeSteps],
) -> Generator[Request, Any, dict[int, Outcome | BaseException]]:
    """Advance several node generators together: their calls become one ``Batch``.

    Retry waits of several generators become one ``Sleep`` of the longest
    delay. A generator that raises (cancel, timeout) has its exception in the
    result instead of an outcome.
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
            for (i, _), answer in zip(calls, answers, strict=True):
                advance(i, answer)
            continue
        nested = [(i, r) for i, r in sorted(pending.items()) if type(r) is Batch]
        if nested:
            i, req = nested[0]
            advance(i, (yield req))
            continue
        sleeps = sorted(pending.items())
        cancelled = yield Sleep(max(r.seconds for _, r in sleeps))  # type: ignore[union-attr]
        for i, _ in sleeps:
            advance(i, cancelled)
    return out
