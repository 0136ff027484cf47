"""Where an engine's codec meets its runs: encode what enters, decode what leaves, admit loads.

State inside the engine and in every store is tagged JSON (``_tagged``).
What users hand over (initial input, resume payloads, fork updates, an
override, handler updates) is encoded as it enters, once; what handlers read
and what results carry is decoded, a fresh copy each time, so a handler's
mutation of what it read is never recorded and never reaches the engine's
copy. A checkpoint is admitted only if the codec can decode all of it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import _constants as C
from ._errors import CodecError
from ._frozen import NotJSONError
from ._models import RunSnapshot, WorkflowError, WorkflowResult, WorkflowState
from ._tagged import CODEC_MARK, FORMAT, reserved_key, retag

if TYPE_CHECKING:
    from ._live import LiveRun
    from ._run.requests import Outcome
    from .codecs import Codec

__all__ = ["CodecBoundary"]


class CodecBoundary:
    """One engine's codec at the places state enters and leaves the run core."""

    __slots__ = ("codec",)

    def __init__(self, codec: Codec) -> None:
        self.codec = codec

    def mark(self) -> dict[str, Any]:
        """What ``snapshot.extra["codec"]`` says: the format and the registered type names."""
        return {"format": FORMAT, "types": list(self.codec.names)}

    # ------------------------------------------------------------------ entering

    def encode(self, value: Any, path: str = "$") -> Any:
        """``value`` encoded; ``NotJSONError`` names the path and type it cannot store."""
        return self.codec.encode(value, path)

    def outcome(self, outcome: Outcome, node: str) -> Outcome:
        """A handler's outcome with its updates encoded, or ``STATE_SERIALIZATION``."""
        result, error, names = outcome
        if error is not None or result is None:
            return outcome
        wf, per_node = result.workflow_updates, result.node_updates
        if not isinstance(wf, dict) and not isinstance(per_node, dict):
            return outcome  # nothing to encode (or not a dict: the loop refuses it)
        try:
            if isinstance(wf, dict):
                wf = self.codec.encode(wf, "workflow_updates")
            if isinstance(per_node, dict):
                per_node = self.codec.encode(per_node, "node_updates")
        except NotJSONError as exc:
            failure = WorkflowError(
                C.ERROR_STATE_SERIALIZATION,
                "workflow state is not JSON-serializable",
                node,
                details={"reason": str(exc), "path": exc.path, "type": exc.type_name},
                cause_type="TypeError",
            )
            return result, failure, names
        return dataclasses.replace(result, workflow_updates=wf, node_updates=per_node), None, names

    def override(self, given: Any) -> Any:
        """A redrive override with its updates encoded (left as given where they cannot be)."""
        if not isinstance(given, Mapping):
            return given
        out = dict(given)
        for key in ("workflow_updates", "node_updates"):
            value = out.get(key)
            if isinstance(value, dict):
                with contextlib.suppress(NotJSONError):  # else the override check refuses it
                    out[key] = self.codec.encode(value, key)
        return out

    # ------------------------------------------------------------------ leaving

    def decode(self, value: Any) -> Any:
        """Stored data as the values it stands for (a fresh copy)."""
        return self.codec.decode(value)

    def handler_state(self, run: LiveRun) -> WorkflowState:
        """The ``ctx.state`` of a handler: the run's state decoded, its own copy."""
        decode = self.codec.decode
        return WorkflowState(decode(run.input), decode(run.workflow), decode(run.node_state))

    def result(self, result: WorkflowResult) -> WorkflowResult:
        """``result`` with its state decoded (its checkpoint stays as stored)."""
        state = result.state
        decode = self.codec.decode
        decoded = WorkflowState(decode(state.input), decode(state.workflow), decode(state.node))
        return dataclasses.replace(result, state=decoded)

    # ------------------------------------------------------------------ loading

    def admit(self, snap: RunSnapshot) -> None:
        """Check that this codec can continue ``snap``; re-tag its state; mark it.

        A checkpoint of a codec must hold only tags this codec knows
        (``CodecError`` before anything changes otherwise). One written
        without a codec is taken as it is unless a dict key in it would read
        as a tag (``$zf``), which is a ``CodecError`` too.
        """
        mark = snap.extra.get(CODEC_MARK)
        state = snap.state
        if mark is None:
            where = reserved_key(state.to_dict()) or reserved_key(snap.extra)
            if where is not None:
                raise CodecError(
                    f"run '{snap.run_id}' was written without a codec and holds the key at "
                    f"'{where}', which a codec reads as a tagged value; continue it with an "
                    "engine without codec",
                    run_id=snap.run_id,
                )
        else:
            if not isinstance(mark, Mapping) or mark.get("format") != FORMAT:
                found = mark.get("format") if isinstance(mark, Mapping) else mark
                raise CodecError(
                    f"run '{snap.run_id}' was written with the codec format {found!r}; this "
                    f"version reads {FORMAT!r}",
                    run_id=snap.run_id,
                )
            written = mark.get("types")
            codec = self.codec

            def known(name: str, path: str) -> None:
                if not codec.knows(name):
                    raise CodecError(
                        f"run '{snap.run_id}' holds a value of the codec type {name!r} at "
                        f"'{path}' (the codec that wrote it registered {written!r}), which "
                        f"this engine's codec does not know: register it, codec.register("
                        f"<the class>, ..., name={name!r}); nothing was loaded",
                        run_id=snap.run_id,
                    )

            sections = (
                retag(state.input, known, "input"),
                retag(state.workflow, known, "workflow"),
                retag(state.node, known, "node"),
            )
            extra = retag(snap.extra, known, "extra")
            snap.state = WorkflowState(*sections)
            snap.extra = extra
        snap.extra[CODEC_MARK] = self.mark()
