"""The exception hierarchy of zeroflow: one base class, builtin parents kept.

This module is a leaf: it imports nothing from the package, so every other
module can raise these errors. Each subclass also inherits the builtin that
zeroflow 0.1.0 raised in the same situation (``ValueError``, ``KeyError``,
``RuntimeError``), so code written against 0.1.0 keeps catching them.
"""

from __future__ import annotations

__all__ = [
    "ZeroflowError",
    "WorkflowDefinitionError",
    "HashMismatchError",
    "InvalidTransitionError",
    "InvalidCheckpointError",
    "ResumeInputError",
    "InitialInputError",
    "OverrideError",
    "ResumeTokenError",
    "RunNotFoundError",
    "StoreNotConfiguredError",
    "StoreError",
    "StoreCorruptError",
    "RunLockedError",
    "RunExistsError",
    "CheckpointNotFoundError",
    "ConsoleSetupError",
    "CodecError",
]


class ZeroflowError(Exception):
    """Base class of every error zeroflow raises on purpose."""


class WorkflowDefinitionError(ZeroflowError, ValueError):
    """A workflow definition is malformed; the message names the node, key and fix.

    ``path`` is a JSON pointer to the offending place when one is known.
    """

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class HashMismatchError(ZeroflowError, ValueError):
    """A checkpoint was written by a different revision of the workflow."""

    def __init__(self, message: str, *, checkpoint_hash: str, current_hash: str) -> None:
        super().__init__(message)
        self.checkpoint_hash = checkpoint_hash
        self.current_hash = current_hash


class InvalidTransitionError(ZeroflowError, ValueError):
    """A run was asked to do something its status does not allow (resume a succeeded run)."""

    def __init__(self, message: str, *, run_id: str, status: str) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.status = status


class InvalidCheckpointError(ZeroflowError, ValueError):
    """A checkpoint handed to the engine is not a zeroflow snapshot (or its dict)."""


class ResumeInputError(ZeroflowError, ValueError):
    """A resume payload does not match its wait node's ``resume_schema``; nothing changed.

    ``problems`` lists ``(json_pointer, message)`` for every mismatch.
    """

    def __init__(self, message: str, problems: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.problems = problems


class InitialInputError(ZeroflowError, ValueError):
    """A run's ``initial_input`` does not match the workflow's ``state_contract.input_schema``.

    Raised by ``run()``, ``arun()``, ``stream()`` and ``astream()`` before a run
    exists: nothing was stored, no handler ran. ``problems`` lists
    ``(json_pointer, message)`` for every mismatch; ``code`` is
    ``"CONTRACT_VIOLATION"``, the code a node's broken contract fails with.
    """

    code = "CONTRACT_VIOLATION"

    def __init__(self, message: str, problems: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.problems = problems


class OverrideError(ZeroflowError, ValueError):
    """A ``redrive(override=...)`` result does not fit the failed node; nothing changed."""

    def __init__(self, message: str, *, run_id: str, node: str | None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.node = node


class ResumeTokenError(ZeroflowError, ValueError):
    """A resume's token is missing (when required), spent, foreign or forged; nothing changed.

    ``run_id`` and ``node`` (the waiting path) say which wait refused it.
    """

    def __init__(self, message: str, *, run_id: str | None = None, node: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.node = node


class RunNotFoundError(ZeroflowError, KeyError):
    """A store holds no run with this id."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run '{run_id}' not found")
        self.run_id = run_id

    def __str__(self) -> str:
        # KeyError quotes its argument; keep the plain 0.1.0 message instead.
        return str(self.args[0])


class StoreNotConfiguredError(ZeroflowError, RuntimeError):
    """An operation needs a store but the engine was built without one."""

    def __init__(self, message: str = "no store configured") -> None:
        super().__init__(message)


class StoreError(ZeroflowError, RuntimeError):
    """A store could not read or write a run; ``path`` names the file when there is one."""

    def __init__(self, message: str, *, run_id: str | None = None, path: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.path = path


class StoreCorruptError(StoreError, ValueError):
    """A stored file or row cannot be decoded; nothing was overwritten."""


class RunLockedError(StoreError):
    """Another driver holds the lease on this run; wait for it or break the lease."""


class RunExistsError(StoreError):
    """A new run would overwrite an unfinished run with the same id."""


class CheckpointNotFoundError(StoreError, KeyError):
    """A run exists but its history holds no checkpoint at the requested step."""

    def __str__(self) -> str:
        # KeyError quotes its argument; keep the plain message instead.
        return str(self.args[0])


class ConsoleSetupError(ZeroflowError, ValueError):
    """The run console cannot start as asked (e.g. a non-loopback address without a token)."""


class CodecError(ZeroflowError, ValueError):
    """Tagged state and a codec do not fit (``zeroflow.codecs``); nothing was decoded.

    Raised for a checkpoint written with a codec and loaded by an engine
    without one (or by a codec that lacks one of its registered types), for
    a malformed tagged value, and for a bad ``Codec.register`` call.
    ``run_id`` names the run when one is known.
    """

    def __init__(self, message: str, *, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id
