"""Side effects that happen once: ``ctx.effect`` / ``ctx.aeffect`` and ``ctx.idempotency_key``.

An effect is recorded in the run itself, under ``snapshot.extra["effects"]``,
so every store keeps it with no change of its own::

    extra["effects"][node] = {
        "visit": 7,                      # the step at which this visit of the node began
        "keys": {"charge": {"state": "done", "receipt": {...}}},       # a task node
        "items": {"0": {"charge": {"state": "intent"}}},               # a map node's items
    }

``effect(key, fn)`` writes the intent (a commit of its own, the node still
queued), calls ``fn``, writes the receipt (another commit) and returns a
private copy of it. A node that runs again in the same visit (a retry, a
resume after a crash, a redrive) gets the receipt back without ``fn`` being
called; an intent without a receipt means the process stopped between the
two, and the node fails with ``EFFECT_UNCERTAIN``. The loop drops a node's
record when the visit ends: the node settled (succeeded, or failed into a
catcher). Only the recorder writes anything; this module edits the live run.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .. import _constants as C
from .._errors import ZeroflowError
from .._frozen import NotJSONError, freeze, thaw
from .._live import LiveRun
from .._models import WorkflowError

if TYPE_CHECKING:
    from .._codec_boundary import CodecBoundary
    from .._models import WorkflowContext
    from .recorder import Recorder

__all__ = ["EffectError", "EffectHost", "drop_effects"]

EFFECTS = "effects"
_RECEIPT_DEPTH = 6
"""Containers around a receipt once stored (extra.effects.node.items.i.key.receipt)."""


class EffectError(ZeroflowError):
    """Raised by ``ctx.effect``: the node fails with ``error`` (not retried). Let it propagate."""

    def __init__(self, error: WorkflowError) -> None:
        super().__init__(error.message)
        self.error = error


def drop_effects(run: LiveRun, node: str) -> None:
    """Forget ``node``'s effects: its visit is over (it settled, or its failure was caught)."""
    effects = run.snap.extra.get(EFFECTS)
    if not isinstance(effects, dict) or node not in effects:
        return
    run.set_extra_path((EFFECTS, node), None)
    if not effects:
        run.set_extra_path((EFFECTS,), None)


def _key_text(key: Any) -> str:
    if type(key) is not str or not key:
        raise TypeError(f"an effect key must be a non-empty string, got {key!r}")
    return key


_LOCK = threading.Lock()
"""Serialises effect bookkeeping and its commits: handlers of a parallel batch (or of a
map's chunk) may call ``effect`` from several threads at once. Held only while recording,
never while ``fn`` runs."""


class EffectHost:
    """The effects of one live run, for every handler call of that run in this call."""

    __slots__ = ("lock", "recorder", "run", "tags")

    def __init__(self, run: LiveRun, recorder: Recorder, tags: CodecBoundary | None = None) -> None:
        self.run = run
        self.recorder = recorder
        self.lock = _LOCK
        self.tags = tags  # the engine's codec: receipts are stored encoded, handed back decoded

    def _receipt(self, stored: Any) -> Any:
        """A stored receipt as the handler gets it: a plain copy, or decoded with a codec."""
        return thaw(stored) if self.tags is None else self.tags.decode(stored)

    # ------------------------------------------------------------------ the visit

    def _visit(self, ctx: WorkflowContext) -> int:
        """The step this visit of the node began at, recorded on first use (under the lock)."""
        run = self.run
        found = run.snap.extra.get(EFFECTS, {}).get(ctx.node_name)
        if isinstance(found, dict) and type(found.get("visit")) is int:
            return int(found["visit"])
        run.set_extra_path((EFFECTS, ctx.node_name, "visit"), ctx.step)
        return ctx.step

    def idempotency_key(self, ctx: WorkflowContext) -> str:
        """``<run id>/<node>/<visit step>`` (``/<item index>`` inside a map)."""
        with self.lock:
            visit = self._visit(ctx)
        return idempotency_text(ctx, visit)

    # ------------------------------------------------------------------ one effect

    def _path(self, ctx: WorkflowContext, key: str) -> tuple[str, ...]:
        if ctx.map_index is None:
            return (EFFECTS, ctx.node_name, "keys", key)
        return (EFFECTS, ctx.node_name, "items", str(ctx.map_index), key)

    def _found(self, path: tuple[str, ...]) -> Any:
        entry: Any = self.run.snap.extra
        for part in path:
            if not isinstance(entry, dict):
                return None
            entry = entry.get(part)
        return entry

    def _data(self, ctx: WorkflowContext, key: str, **more: Any) -> dict[str, Any]:
        data: dict[str, Any] = {"node": ctx.node_name, "key": key}
        if ctx.map_index is not None:
            data["index"] = ctx.map_index
        data.update(more)
        return data

    def _record(self, ctx: WorkflowContext, kind: str, data: dict[str, Any]) -> None:
        run = self.run
        buffers = run.buffers
        queued = buffers is not None and ctx.node_name in buffers  # a batch: still queued
        self.recorder.record_effect(run, ctx.node_name, kind, data, queued=queued)

    def _begin(self, ctx: WorkflowContext, key: str) -> tuple[tuple[str, ...], Any]:
        """Return ``(path, receipt)`` of a receipt already held, or record the intent."""
        with self.lock:
            self._visit(ctx)
            path = self._path(ctx, key)
            found = self._found(path)
            if isinstance(found, dict):
                if found.get("state") == "done":
                    return path, found
                raise EffectError(
                    WorkflowError(
                        C.ERROR_EFFECT_UNCERTAIN,
                        f"node '{ctx.node_name}': effect '{key}' was started but its result "
                        "was never recorded (the run stopped in between); check whether it "
                        "happened before doing it again",
                        ctx.node_name,
                        details={"key": key},
                        cause_type=EffectError.__name__,
                    )
                )
            self.run.set_extra_path(path, {"state": "intent"})
            self._record(
                ctx,
                C.EVENT_EFFECT_INTENT,
                self._data(ctx, key, idempotency_key=self._key_of(ctx)),
            )
            return path, None

    def _key_of(self, ctx: WorkflowContext) -> str:
        found = self.run.snap.extra[EFFECTS][ctx.node_name]
        return idempotency_text(ctx, int(found["visit"]))

    def _withdraw(
        self, ctx: WorkflowContext, key: str, path: tuple[str, ...], exc: Exception
    ) -> None:
        """``fn`` raised: it did not happen; the intent goes (durably), a retry may call it."""
        with self.lock:
            self.run.set_extra_path(path, None)
            self._record(
                ctx,
                C.EVENT_EFFECT_FAILED,
                self._data(ctx, key, error=f"{type(exc).__name__}: {exc}"),
            )

    def _done(self, ctx: WorkflowContext, key: str, path: tuple[str, ...], value: Any) -> Any:
        try:
            if self.tags is not None:
                value = self.tags.encode(value, "receipt")
            receipt = thaw(freeze(value, "receipt", _RECEIPT_DEPTH))
        except NotJSONError as exc:
            # The effect happened but its receipt cannot be kept: the intent stays.
            raise EffectError(
                WorkflowError(
                    C.ERROR_STATE_SERIALIZATION,
                    f"node '{ctx.node_name}': effect '{key}' returned a result JSON cannot "
                    f"hold: {exc}",
                    ctx.node_name,
                    details={"key": key, "reason": str(exc)},
                    cause_type="TypeError",
                )
            ) from exc
        with self.lock:
            self.run.set_extra_path(path, {"state": "done", "receipt": receipt})
            self._record(ctx, C.EVENT_EFFECT_DONE, self._data(ctx, key, receipt=thaw(receipt)))
        return self._receipt(receipt)

    def effect(
        self,
        ctx: WorkflowContext,
        key: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        key = _key_text(key)
        path, found = self._begin(ctx, key)
        if found is not None:
            return self._receipt(found.get("receipt"))
        try:
            value = fn(*args, **kwargs)
        except Exception as exc:
            self._withdraw(ctx, key, path, exc)
            raise
        return self._done(ctx, key, path, value)

    async def aeffect(
        self,
        ctx: WorkflowContext,
        key: str,
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        key = _key_text(key)
        path, found = self._begin(ctx, key)
        if found is not None:
            return self._receipt(found.get("receipt"))
        try:
            value = await fn(*args, **kwargs)
        except Exception as exc:
            self._withdraw(ctx, key, path, exc)
            raise
        return self._done(ctx, key, path, value)


def idempotency_text(ctx: WorkflowContext, visit: int) -> str:
    """The idempotency key of ``ctx``'s node execution in the visit that began at ``visit``."""
    text = f"{ctx.run_id}/{ctx.node_name}/{visit}"
    return text if ctx.map_index is None else f"{text}/{ctx.map_index}"
