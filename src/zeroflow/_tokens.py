"""Single-use resume tokens: what proves a resume comes from whoever was sent the wait.

Each wait a run pauses on gets a fresh token (``secrets.token_urlsafe``, 256
bits). Only its SHA-256 digest is kept, in ``snapshot.extra["tokens"]``
(keyed by the waiting path ``WorkflowResult.waiting_nodes`` names): the raw
token is handed once, to the call that paused the run
(``WorkflowResult.resume_tokens``), so a store reader, a backup or a log of
``runs show`` can never answer a wait. Resuming the wait, with or without the
token, spends it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._errors import ResumeTokenError

__all__ = ["TOKENS", "check_token", "digest", "mint", "new_token", "token_lines"]

TOKENS = "tokens"
"""``snapshot.extra`` key: ``{waiting path: sha256 hex digest of its open token}``."""


def digest(token: str) -> str:
    """The SHA-256 hex digest a token is kept as."""
    import hashlib  # at the first token, not at ``import zeroflow``

    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """An unguessable token: 32 bytes from ``secrets``, URL-safe base64 (43 characters)."""
    import secrets

    return secrets.token_urlsafe(32)


def mint(
    paths: Iterable[str], open_tokens: Mapping[str, Any], factory: Callable[[], str] = new_token
) -> dict[str, str]:
    """A fresh token (from ``factory``) for each waiting path without an open one."""
    fresh: dict[str, str] = {}
    for path in paths:
        if path in open_tokens:
            continue
        token = factory()
        if not isinstance(token, str) or not token or len(token) > 512:
            raise TypeError(
                f"resume_token_factory must return a non-empty str of at most 512 characters, "
                f"got {type(token).__name__}"
            )
        fresh[path] = token
    return fresh


def check_token(
    run_id: str, path: str | None, token: Any, open_tokens: Mapping[str, Any], *, required: bool
) -> None:
    """Refuse a resume whose token is missing (when ``required``), spent, foreign or forged.

    Raises ``ResumeTokenError`` (nothing has changed); passes when no token is
    given and none is required. Compared in constant time.
    """
    if token is None:
        if required:
            raise ResumeTokenError(
                f"run '{run_id}' requires a resume token to answer '{path}' "
                "(require_resume_token); pass token=... from the WorkflowResult that paused it "
                "(resume_tokens)",
                run_id=run_id,
                node=path,
            )
        return
    if not isinstance(token, str) or not token or len(token) > 512:
        raise ResumeTokenError(
            f"the resume token for run '{run_id}' must be the non-empty string "
            f"WorkflowResult.resume_tokens gave, got {type(token).__name__}",
            run_id=run_id,
            node=path,
        )
    import hmac

    kept = open_tokens.get(path) if path is not None else None
    if not isinstance(kept, str):
        raise ResumeTokenError(
            f"no resume token is open for '{path}' of run '{run_id}': it was used already, or "
            "the wait it was issued for is over; nothing changed",
            run_id=run_id,
            node=path,
        )
    if not hmac.compare_digest(digest(token), kept):
        raise ResumeTokenError(
            f"the resume token does not open '{path}' of run '{run_id}' (replayed, issued for "
            "another wait, or forged); nothing changed",
            run_id=run_id,
            node=path,
        )


def token_lines(extra: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``tokens:`` lines of ``zeroflow runs show``: each wait with an open token (never the
    token: only the store's digest exists)."""
    kept = extra.get(TOKENS)
    if not isinstance(kept, Mapping):
        return []
    return [
        ("tokens" if i == 0 else "", f"{path}: open (sha256 {str(value)[:12]}...)")
        for i, (path, value) in enumerate(sorted(kept.items()))
    ]
