"""Checkpoint signatures: an HMAC-SHA256 over a snapshot's canonical JSON.

The hash lock says which definition a checkpoint belongs to; a signature
says that nobody changed it since an engine holding the key wrote it. An
engine built with ``checkpoint_key`` signs every snapshot it hands out or
stores and refuses to continue one that is unsigned or altered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._errors import InvalidCheckpointError
from ._models import RunSnapshot

__all__ = ["SIGNATURE_KEY", "CheckpointSigner", "canonical_bytes"]

SIGNATURE_KEY = "signature"
"""Where the signature lives: ``snapshot.extra["signature"]`` (``"zeroflow"`` in the dict)."""

_PREFIX = "hmac-sha256:"
_ENCODE: Callable[[Any], str] | None = None  # made at the first signature, not at import


def _make_encoder() -> Callable[[Any], str]:
    global _ENCODE
    import json

    _ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
    return _ENCODE


def canonical_bytes(snapshot: RunSnapshot) -> bytes:
    """The signed content: the snapshot's dict, keys sorted, without its signature and ``seq``.

    ``seq`` is the number a store gives the checkpoint when it writes it, after
    the signature is made; it names the checkpoint, it does not change the run.
    """
    data: dict[str, Any] = snapshot.to_dict()
    data.pop("seq", None)
    extra = data.get("zeroflow")
    if isinstance(extra, dict) and SIGNATURE_KEY in extra:
        extra = {k: v for k, v in extra.items() if k != SIGNATURE_KEY}
        if extra:
            data["zeroflow"] = extra
        else:
            del data["zeroflow"]
    return (_ENCODE or _make_encoder())(data).encode("utf-8")


class CheckpointSigner:
    """Signs and checks snapshots with one secret key (at least 16 bytes)."""

    __slots__ = ("_key", "_new_mac", "_same", "_sha256")

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes | bytearray):
            raise TypeError(f"checkpoint_key must be bytes, got {type(key).__name__}")
        if len(key) < 16:
            raise ValueError(
                f"checkpoint_key must be at least 16 bytes (got {len(key)}); "
                "use secrets.token_bytes(32) and keep it out of the checkpoints"
            )
        self._key = bytes(key)
        # Imported by the engine that signs, not at ``import zeroflow``; kept here so
        # that signing a checkpoint costs no import statement.
        import hashlib
        import hmac

        self._new_mac = hmac.new
        self._sha256 = hashlib.sha256
        self._same = hmac.compare_digest

    def signature(self, snapshot: RunSnapshot) -> str:
        """The signature ``snapshot`` should carry."""
        digest = self._new_mac(self._key, canonical_bytes(snapshot), self._sha256).hexdigest()
        return _PREFIX + digest

    def sign(self, snapshot: RunSnapshot) -> str:
        """Put the signature of ``snapshot`` in it; return the signature."""
        value = self.signature(snapshot)
        snapshot.extra[SIGNATURE_KEY] = value
        return value

    def verify(self, snapshot: RunSnapshot) -> None:
        """Refuse, with ``InvalidCheckpointError``, a snapshot unsigned or changed since signed."""
        given = snapshot.extra.get(SIGNATURE_KEY)
        run_id = snapshot.run_id
        if not isinstance(given, str):
            raise InvalidCheckpointError(
                f"checkpoint of run '{run_id}' is not signed, and this engine has a "
                "checkpoint_key: only checkpoints written by an engine with the same key "
                "are accepted"
            )
        if not self._same(given, self.signature(snapshot)):
            raise InvalidCheckpointError(
                f"checkpoint of run '{run_id}' was changed after it was signed (or signed "
                "with another key); resume from a checkpoint the engine handed out unchanged"
            )
