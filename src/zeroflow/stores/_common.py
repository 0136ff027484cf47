"""What every shipped store shares: lease rules, history selection, event payloads.

Pure helpers, no I/O: the backends decide where leases and checkpoints live,
these functions decide what they mean.
"""

from __future__ import annotations

import json
import math
import os
import threading
import unicodedata
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

from .._constants import EVENT_CHECKPOINT, EVENT_STORE_CORRUPT, STATUS_WAITING
from .._errors import CheckpointNotFoundError, RunLockedError, StoreError
from .._journal import apply_state_op
from .._models import Event, RunMetadata, RunSnapshot, now_iso
from .._run.waits import waiting_paths
from .._store import CheckpointInfo
from .._store_views import LeaseInfo
from .._timers import due_at, wait_reason

__all__ = [
    "FOLD_MIN_RECORDS",
    "Reporter",
    "MAX_RUN_ID_BYTES",
    "MAX_RUN_ID_CHARS",
    "RUN_ID_RULE",
    "check_run_id",
    "report_corrupt",
    "checkpoint_not_found",
    "event_dict",
    "info_of",
    "check_holds",
    "holder_gone",
    "lease_verdict",
    "locked_error",
    "lost_lease_error",
    "moved_on_error",
    "process_holder",
    "metadata_of",
    "pick_seq",
    "select_seq",
    "should_fold",
    "waiting_now",
    "waiting_of",
    "to_seconds",
]

FOLD_MIN_RECORDS = 100
"""A journal is folded into a full snapshot no more often than every this many records."""

FOLD_RATIO = 2
"""... and not before it holds this many times the bytes of the last full snapshot."""


Reporter = Callable[[Event], None]
"""Where a store sends what it found but could not use (``store:corrupt``) instead of failing."""


def report_corrupt(on_report: Reporter | None, run_id: str, where: str, reason: str) -> Event:
    """Tell ``on_report`` (else the ``zeroflow.stores`` logger) that ``run_id`` is unreadable.

    Used where one damaged run must not break a listing of all runs: the run
    is skipped, never hidden silently. Returns the ``store:corrupt`` event.
    """
    event = Event(
        run_id=run_id,
        step=0,
        wave=0,
        node=None,
        kind=EVENT_STORE_CORRUPT,
        ts=now_iso(),
        data={"where": where, "reason": reason},
    )
    if on_report is None:
        import logging  # only when something is reported: import zeroflow stays light

        logging.getLogger("zeroflow.stores").warning(
            "run %r is corrupt (%s): %s", run_id, where, reason
        )
    else:
        on_report(event)
    return event


_FORK_WATCHED: weakref.WeakSet[Any] = weakref.WeakSet()
_FORK_HOOK: list[bool] = []  # one registration per process, made by the first store
_FORK_HELD: list[Any] = []  # the stores whose locks this fork holds


def reset_after_fork(store: Any) -> None:
    """Keep ``store`` usable in children forked from this process (call it last in ``__init__``).

    A store built before ``os.fork()`` (a multiprocessing pool, a prefork
    server) is copied into the child. Its lock is held across the fork, so no
    other thread is halfway through a write or holds a connection's internals
    at that moment; the child then calls ``store._forked()`` to drop the
    parent's pending writes and reopen what it cannot share. One hook serves
    every store (a weak set): creating stores by the thousand registers
    nothing more.
    """
    register = getattr(os, "register_at_fork", None)
    if register is None:  # pragma: no cover - Windows has no fork
        return
    if not _FORK_HOOK:
        register(
            before=_before_fork,
            after_in_parent=_after_fork_in_parent,
            after_in_child=_after_fork_in_child,
        )
        _FORK_HOOK.append(True)
    _FORK_WATCHED.add(store)


def _before_fork() -> None:
    for store in list(_FORK_WATCHED):
        store._lock.acquire()
        _FORK_HELD.append(store)


def _after_fork_in_parent() -> None:
    while _FORK_HELD:
        _FORK_HELD.pop()._lock.release()


def _after_fork_in_child() -> None:
    held = list(_FORK_HELD)
    _FORK_HELD.clear()
    for store in held:
        try:
            store._forked()
        except Exception:
            store._lock = threading.RLock()  # one store must not leave the others unreset


MAX_RUN_ID_CHARS = 200
"""The longest run id, in characters (and at most ``MAX_RUN_ID_BYTES`` in UTF-8)."""

MAX_RUN_ID_BYTES = 255
"""The longest run id in UTF-8 bytes: every common file system takes a name this long."""

RUN_ID_RULE = (
    "a run id is 1 to 200 characters (at most 255 bytes in UTF-8): letters, digits, "
    'spaces and punctuation except / \\ < > : " | ? *; no space at either end, no trailing '
    "'.', not '.' or '..', no control, invisible or bidirectional-override characters, "
    "Unicode in NFC form, and not a device name Windows reserves (CON, PRN, AUX, NUL, "
    "COM1-COM9, LPT1-LPT9, also with an extension such as 'con.txt'); "
    "e.g. 'order-42', 'run.2024-01-01' or a uuid4().hex"
)

_WINDOWS_FORBIDDEN = frozenset('<>:"|?*/\\')
_WINDOWS_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{port}{n}" for port in ("COM", "LPT") for n in "123456789\u00b9\u00b2\u00b3"}
)
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_CHECKED: set[str] = set()  # ids that passed, so a run's every write costs one lookup
_CHECKED_MAX = 4096


def _run_id_problem(run_id: str) -> str | None:
    """Why ``run_id`` breaks the run-id rule, or None when it keeps it."""
    if not run_id:
        return "it is empty"
    if len(run_id) > MAX_RUN_ID_CHARS:
        return f"it has {len(run_id)} characters, more than {MAX_RUN_ID_CHARS}"
    try:
        size = len(run_id.encode("utf-8"))
    except UnicodeEncodeError:
        return "it holds a lone surrogate, which UTF-8 cannot encode"
    if size > MAX_RUN_ID_BYTES:
        return f"it is {size} bytes in UTF-8, more than {MAX_RUN_ID_BYTES}"
    if run_id in (".", ".."):
        return f"{run_id!r} names a folder itself"
    if run_id != run_id.strip():
        return "it starts or ends with whitespace"
    if run_id.endswith("."):
        return "it ends with '.', which Windows drops from file names"
    for char in run_id:
        if char in _WINDOWS_FORBIDDEN:
            return f"it contains {char!r}"
        if not char.isprintable() and unicodedata.category(char) in _INVISIBLE:
            return f"it contains the control or invisible character U+{ord(char):04X}"
    if not unicodedata.is_normalized("NFC", run_id):
        return (
            "it is not in Unicode NFC form (some file systems would merge it with its NFC "
            f"spelling {unicodedata.normalize('NFC', run_id)!r})"
        )
    if run_id.split(".", 1)[0].rstrip(" ").upper() in _WINDOWS_DEVICES:
        return "it is a device name Windows reserves"
    return None


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` if it keeps the run-id rule (``RUN_ID_RULE``), else raise ``StoreError``.

    Every shipped store checks every run id it is given with this one rule, so
    an id one store accepts fits any other (a folder name on Linux, macOS and
    Windows, a table key): 1 to 200 characters and 255 UTF-8 bytes, no path
    separators or characters Windows forbids, no control or invisible
    characters, no leading or trailing whitespace or trailing dot, NFC, no
    Windows device name.
    """
    if type(run_id) is str and run_id in _CHECKED:
        return run_id
    if not isinstance(run_id, str):
        raise StoreError(
            f"run id must be a string, got {type(run_id).__name__} {run_id!r}; {RUN_ID_RULE}"
        )
    text = str(run_id)
    why = _run_id_problem(text)
    if why is not None:
        shown = text if len(text) <= 60 else text[:60] + "..."
        raise StoreError(f"run id {shown!r} is not allowed: {why}; {RUN_ID_RULE}", run_id=text)
    if len(_CHECKED) >= _CHECKED_MAX:
        _CHECKED.clear()
    _CHECKED.add(text)
    return text


def _encoder(item_sep: str, key_sep: str, *, sort_keys: bool = False) -> Callable[[Any], str]:
    """``json.dumps`` with fixed separators, minus the per-call setup (half its cost here).

    Uses the C encoder that ``json`` itself uses when it is available; the
    output is byte for byte what ``json.dumps`` gives (no circular check: a
    store only ever encodes JSON trees).
    """
    fallback = json.JSONEncoder(separators=(item_sep, key_sep), sort_keys=sort_keys)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has it
        return fallback.encode
    chunks = make(
        None,
        fallback.default,
        json.encoder.encode_basestring_ascii,
        None,
        key_sep,
        item_sep,
        sort_keys,
        False,
        True,
    )

    def encode(value: Any) -> str:
        return "".join(chunks(value, 0))

    return encode


_encode = _encoder(", ", ": ")
encode_compact = _encoder(",", ":")
"""``json.dumps(value, separators=(",", ":"))``, fast."""


_encode_sorted = _encoder(", ", ": ", sort_keys=True)
_quote = json.encoder.encode_basestring_ascii
_STR = frozenset({str})


def _data_text(data: Mapping[str, Any]) -> str:
    """``data`` as ``json.dumps(data, sort_keys=True)``; the engine's usual shapes by hand.

    The six events a node logs carry ``{"node": n}``, ``{"step": n}``,
    ``{"run_id": r, "status": s}`` or ``{"node": n, "outputs": [...]}``;
    spelling those out skips the encoder.
    """
    size = len(data)
    if size == 1:
        value = data.get("node")
        if type(value) is str:
            return '{"node": ' + _quote(value) + "}"
        value = data.get("step")
        if type(value) is int:
            return '{"step": ' + int.__repr__(value) + "}"
    elif size == 2:
        run_id = data.get("run_id")
        status = data.get("status")
        if type(run_id) is str and type(status) is str:
            return '{"run_id": ' + _quote(run_id) + ', "status": ' + _quote(status) + "}"
        node = data.get("node")
        outputs = data.get("outputs")
        if type(node) is str and type(outputs) is list and _STR.issuperset(map(type, outputs)):
            return (
                '{"node": '
                + _quote(node)
                + ', "outputs": ['
                + ", ".join(map(_quote, outputs))
                + "]}"
            )
    return _encode_sorted(data)


def encode_event(event: Event) -> str:
    """One event as a JSON line body, byte for byte ``json.dumps(event_dict, sort_keys=True)``.

    0.1.0 wrote its events that way. The fixed keys are spelled out here and
    only ``data`` goes through the encoder: an event is written for every
    engine event, so this is on the per-node path of every file store.
    Checkpoint events keep only their step.
    """
    data: Any = event.data
    if event.kind == EVENT_CHECKPOINT and "state" in data:
        data = {"step": event.step}
    node = event.node
    return "".join(
        (
            '{"data": ',
            _data_text(data),
            ', "kind": ',
            _quote(event.kind),
            ', "node": ',
            "null" if node is None else _quote(node),
            ', "run_id": ',
            _quote(event.run_id),
            ', "step": ',
            int.__repr__(event.step),
            ', "ts": ',
            _quote(event.ts),
            ', "wave": ',
            int.__repr__(event.wave),
            "}",
        )
    )


def encode_event_rows(events: Iterable[Event]) -> str:
    """Events as one compact JSON array of ``[step, wave, node, kind, ts, data]`` rows.

    The SQLite store keeps a checkpoint's events in its row this way: one
    encoder call per checkpoint instead of one per event, no run id repeated.
    """
    return encode_compact(
        [
            [
                e.step,
                e.wave,
                e.node,
                e.kind,
                e.ts,
                {"step": e.step} if e.kind == EVENT_CHECKPOINT and "state" in e.data else e.data,
            ]
            for e in events
        ]
    )


def decode_event_rows(run_id: str, text: str) -> list[Event]:
    """The events of ``encode_event_rows`` text, or of newline-joined 0.1.0 event lines."""
    if text.startswith("["):
        return [Event(run_id, s, w, n, k, t, d) for s, w, n, k, t, d in json.loads(text)]
    return [Event.from_dict(json.loads(line)) for line in text.split("\n")]


def event_dict(event: Event) -> dict[str, Any]:
    """The stored form of an event: a ``checkpoint`` keeps only its step, not the snapshot.

    0.1.0 stored the whole snapshot in every checkpoint event, which made the
    log grow with the square of the run's length.
    """
    data = event.to_dict()
    if event.kind == EVENT_CHECKPOINT and "state" in data["data"]:
        data["data"] = {"step": event.step}
    return data


def should_fold(records: int, journal_bytes: int, base_bytes: int) -> bool:
    """Fold the journal once it holds ``FOLD_MIN_RECORDS`` records and outweighs the base.

    Folding when the journal since the last fold is ``FOLD_RATIO`` times the
    last full snapshot keeps the total bytes written linear in the run's
    length (each fold is paid for by that many journal bytes, so snapshot
    sizes grow geometrically) and bounds a load to reading about
    ``1 + FOLD_RATIO`` snapshots' worth of bytes.
    """
    return records >= FOLD_MIN_RECORDS and journal_bytes >= FOLD_RATIO * base_bytes


def _boot_id() -> str:
    """This machine's boot identity (Linux), so a rebooted host's old pids never match."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


_HOST: list[str] = []


def _host() -> str:
    if not _HOST:
        import socket  # at the first lease, not at import

        _HOST.append(f"{socket.gethostname()}/{_boot_id()}")
    return _HOST[0]


def _start_time(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, Linux); None where unknown.

    Told apart with it, a new process that reuses a dead holder's pid is not
    mistaken for the holder.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = raw[raw.rfind(b")") + 2 :].split()
    return fields[19].decode("ascii") if len(fields) > 19 else None


def process_holder() -> dict[str, Any]:
    """Who this process is, as a lease records it: host (with boot id), pid, start time."""
    pid = os.getpid()
    return {"host": _host(), "pid": pid, "start": _start_time(pid)}


def holder_gone(holder: Mapping[str, Any] | None) -> bool:
    """True when ``holder`` ran on this host and its process no longer exists.

    A holder on another host (or one that recorded nothing) is never judged
    gone: its lease is waited out for its TTL.
    """
    if not isinstance(holder, Mapping) or holder.get("host") != _host():
        return False
    pid = holder.get("pid")
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):
        return False
    started = holder.get("start")
    return started is not None and _start_time(pid) not in (None, started)


def lease_info_of(
    owner: str | None, expires_at: float, token: int, who: Any, now: float
) -> LeaseInfo:
    """A ``LeaseInfo`` of a lease record: owner, expiry, token, holder process (as recorded)."""
    holder = who if isinstance(who, Mapping) else {}
    host = holder.get("host")
    pid = holder.get("pid")
    pid = pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None
    alive: bool | None = None
    if host == _host() and pid is not None:
        alive = not holder_gone(holder)
    free = owner is None
    return LeaseInfo(
        owner=owner,
        token=token,
        expires_in_seconds=None if free or not _finite(expires_at) else expires_at - now,
        host=host.partition("/")[0] if isinstance(host, str) else None,
        pid=pid,
        holder_alive=None if free else alive,
        live=not free and lease_verdict(owner, expires_at, None, now, who=holder) != "free",
    )


def lease_verdict(
    holder: str | None,
    expires_at: float,
    owner: str | None,
    now: float,
    who: Mapping[str, Any] | None = None,
) -> str:
    """``"free"`` (none, expired, or its holder process gone), ``"mine"`` or ``"taken"``.

    ``expires_at`` that is not a finite number counts as expired.
    """
    if holder is None or not _finite(expires_at) or expires_at <= now:
        return "free"
    if holder == owner:
        return "mine"
    return "free" if holder_gone(who) else "taken"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def locked_error(run_id: str, holder: str | None, expires_in: float) -> RunLockedError:
    """The error a second driver of a run gets: who holds it and until when."""
    return RunLockedError(
        f"run '{run_id}' is being driven by another caller (lease {(holder or '?')[:8]}, "
        f"expires in {max(expires_in, 0.0):.1f} s); retry later, or call "
        f"store.break_lease('{run_id}') if that process is gone",
        run_id=run_id,
    )


def lost_lease_error(
    run_id: str, owner: str | None = None, holder: str | None = None, why: str = ""
) -> RunLockedError:
    """A driver's lease is gone: it expired and another caller took the run, or was broken.

    ``holder`` names who holds the run now, when known; ``why`` adds what was seen.
    """
    now_held = f"; it is held by {holder[:8]} now" if holder else ""
    return RunLockedError(
        f"run '{run_id}': this caller lost its lease{f' ({owner[:8]})' if owner else ''}: "
        f"it expired and another caller took the run, or it was broken{now_held}"
        f"{f' ({why})' if why else ''}; stopping without writing, so that two drivers "
        "never write one run",
        run_id=run_id,
    )


def check_holds(
    run_id: str, owner: str, token: int | None, held_by: str | None, current: int
) -> None:
    """``RunLockedError`` unless the lease (``held_by``, ``current`` token) is ``owner``'s.

    Expiry aside: a lease that lapsed but that nobody took is still its owner's.
    """
    if held_by is None:
        raise lost_lease_error(run_id, owner, None, "the run has no lease now")
    if held_by != owner:
        raise lost_lease_error(run_id, owner, held_by)
    if token is not None and current != token:
        raise lost_lease_error(
            run_id, owner, None, f"token {token} is not the current token {current}"
        )


def moved_on_error(run_id: str, expected: int, latest: int | None) -> RunLockedError:
    """A commit's ``seq`` does not follow the stored run's latest checkpoint."""
    return RunLockedError(
        f"run '{run_id}' moved on: checkpoint {expected} does not follow the stored "
        f"checkpoint {latest}; another caller wrote the run, so this caller stops without "
        "writing",
        run_id=run_id,
    )


def to_seconds(value: float | timedelta) -> float:
    """``older_than`` as seconds, from a number or a ``timedelta``."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"older_than must be seconds or a timedelta, got {value!r}")
    return float(value)


def check_keep_last(keep_last: int | None) -> None:
    """``keep_last`` must keep at least the latest checkpoint."""
    if keep_last is not None and (isinstance(keep_last, bool) or int(keep_last) < 1):
        raise ValueError(f"keep_last must be at least 1 (the latest always stays), got {keep_last}")


def status_set(statuses: Iterable[str]) -> frozenset[str]:
    """``statuses`` as a set; a lone string means that one status."""
    return frozenset((statuses,) if isinstance(statuses, str) else statuses)


def info_of(data: Mapping[str, Any], seq: int | None = None) -> CheckpointInfo:
    """A ``CheckpointInfo`` from a snapshot dict or a step-delta dict (same key names)."""
    node = data.get("last_node")
    return CheckpointInfo(
        step=int(data.get("step", 0)),
        wave=int(data.get("wave", 1)),
        status=str(data.get("status", "")),
        node=None if node is None else str(node),
        timestamp=data.get("updated_at"),
        seq=seq,
    )


def pick_seq(entries: Sequence[tuple[int, CheckpointInfo]], step: int) -> int:
    """The sequence number of the last checkpoint taken at ``step``; ``-1`` if none."""
    for seq, info in reversed(entries):
        if info.step == step:
            return seq
    return -1


def _check_address(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise TypeError(f"{name} must be a whole number or None, got {value!r}")


def select_seq(
    run_id: str,
    entries: Sequence[tuple[int, CheckpointInfo]],
    step: int | None,
    seq: int | None,
) -> int:
    """The checkpoint ``load_snapshot(run_id, step=..., seq=...)`` means, by its ``seq``.

    ``seq`` names one checkpoint exactly; ``step`` alone the last one taken at
    that step; both, checkpoint ``seq`` which must be at ``step``. A checkpoint
    ``entries`` (the run's history, oldest first) does not hold raises
    ``CheckpointNotFoundError`` saying what it holds. Call with ``step`` or
    ``seq`` set.
    """
    _check_address("step", step)
    _check_address("seq", seq)
    if seq is None:
        assert step is not None
        found = pick_seq(entries, step)
        if found < 0:
            raise checkpoint_not_found(run_id, step, entries)
        return found
    for number, info in entries:
        if number == seq:
            if step is not None and info.step != step:
                raise CheckpointNotFoundError(
                    f"run '{run_id}': checkpoint seq {seq} was taken at step {info.step}, "
                    f"not at step {step}; pass seq alone to load it",
                    run_id=run_id,
                )
            return seq
    raise checkpoint_not_found(run_id, step, entries, seq=seq)


def checkpoint_not_found(
    run_id: str,
    step: int | None,
    entries: Sequence[tuple[int, CheckpointInfo]],
    *,
    seq: int | None = None,
) -> StoreError:
    """The error for ``load_snapshot(run_id, step=N)`` (or ``seq=S``) when no checkpoint fits."""
    if seq is not None:
        seqs = [number for number, _ in entries]
        held = f"seq {seqs[0]} to {seqs[-1]}" if seqs else "no checkpoints"
        return CheckpointNotFoundError(
            f"run '{run_id}' has no checkpoint seq {seq}; its history holds {held} "
            "(see history(), each entry's seq)",
            run_id=run_id,
        )
    steps = sorted({info.step for _, info in entries})
    shown = ", ".join(map(str, steps[:20])) + (" ..." if len(steps) > 20 else "")
    return CheckpointNotFoundError(
        f"run '{run_id}' has no checkpoint at step {step}; its history holds steps {shown}",
        run_id=run_id,
    )


def waiting_of(status: Any, ready_now: Any, extra: Any, prompt: Any = None) -> tuple[str, ...]:
    """The nodes a stored run waits on (``WorkflowResult.waiting_nodes``' keys), in order.

    Read from snapshot fields as stored (``ready_now``, the ``"zeroflow"``
    block, ``waiting_prompt``); damaged fields give what can be read. Empty
    unless ``status`` is waiting. A paused subflow waiting at several places
    is listed by paths (``"approve/legal"``), as ``resume(node=...)`` takes them.
    """
    if status != STATUS_WAITING:
        return ()
    queue = [str(n) for n in ready_now] if isinstance(ready_now, list) else []
    try:
        paths = waiting_paths(status, queue, extra if isinstance(extra, Mapping) else {}, prompt)
    except (AttributeError, TypeError, ValueError):
        paths = {}
    return tuple(paths) or tuple(queue[:1])


def waiting_now(data: Mapping[str, Any]) -> tuple[Any, tuple[str, ...]]:
    """(``current_node``, ``waiting_nodes``) of a run summary, from a snapshot dict.

    A run waiting on branches (``hitl: "branch"``) names the first node it
    still waits on (the one whose prompt is ``waiting_prompt``): the last node
    that ran may be one that no longer waits. Any other run names its last
    node, as 0.1.0 did (a run-mode pause's last node is the waiting one); a
    path into a subflow (``"approve/legal"``) names its top-level node.
    """
    status = data.get("status")
    extra = data.get("zeroflow")
    waiting = waiting_of(status, data.get("ready_now"), extra, data.get("waiting_prompt"))
    node = data.get("last_node")
    if waiting and isinstance(extra, Mapping) and extra.get("waiting"):
        node = waiting[0].split("/", 1)[0]
    return node, waiting


def metadata_of(snap: RunSnapshot) -> RunMetadata:
    """``snap.metadata()``, naming a waiting run's waiting nodes (see ``waiting_now``) and
    its timers (``due_at``, ``wait_reason``)."""
    meta = snap.metadata()
    if snap.status != STATUS_WAITING:
        return meta
    node, waiting = waiting_now(
        {
            "status": snap.status,
            "ready_now": snap.ready_now,
            "zeroflow": snap.extra,
            "waiting_prompt": snap.waiting_prompt,
            "last_node": snap.last_node,
        }
    )
    return replace(
        meta,
        current_node=node,
        waiting_nodes=waiting,
        **timers_of({"status": snap.status, "ready_now": snap.ready_now, "zeroflow": snap.extra}),
    )


def check_due_query(now: Any, limit: Any) -> float:
    """``due_runs``' arguments checked: ``now`` as a float (``limit``: None or an int >= 1)."""
    if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
        raise TypeError(f"now must be a finite number (epoch seconds), got {now!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be None (no limit) or an int >= 1, got {limit!r}")
    return float(now)


def snapshot_due(data: Mapping[str, Any]) -> float | None:
    """The ``due_at`` a store indexes a snapshot dict under (None: nothing to wake)."""
    return due_at(data.get("status"), data.get("ready_now"), data.get("zeroflow"))


def timers_of(data: Mapping[str, Any]) -> dict[str, Any]:
    """``due_at`` and ``wait_reason`` of a run summary, from a snapshot dict."""
    status, queue, extra = data.get("status"), data.get("ready_now"), data.get("zeroflow")
    return {
        "due_at": due_at(status, queue, extra),
        "wait_reason": wait_reason(status, queue, extra),
    }


_DELTA_FIELDS = (
    "step",
    "wave",
    "status",
    "updated_at",
    "ready_now",
    "ready_next_wave",
    "arrivals",
    "executed_this_wave",
    "last_node",
    "waiting_prompt",
    "last_error",
)


def apply_delta_dict(snap: dict[str, Any], delta: Mapping[str, Any]) -> None:
    """``apply_delta`` on the plain dicts stores keep on disk (``to_dict`` shapes).

    Replaying journal records this way skips building a ``RunSnapshot`` and
    a ``StepDelta`` per record, which is what makes folding a long journal
    cheap. ``delta`` must be freshly decoded data: its values are adopted.
    """
    state = snap.setdefault("state", {})
    sections = {
        "input": state.setdefault("input", {}),
        "workflow": state.setdefault("workflow", {}),
        "node": state.setdefault("node", {}),
        "extra": snap.setdefault("zeroflow", {}),
    }
    for op in delta.get("ops") or ():
        apply_state_op(sections, (op[0], tuple(op[1]), op[2]))
    snap.setdefault("trace", []).extend(delta.get("trace") or ())
    snap.setdefault("tags", []).extend(delta.get("tags") or ())
    snap.setdefault("audit_trail", []).extend(delta.get("records") or ())
    for key in _DELTA_FIELDS:
        snap[key] = delta.get(key)
    if delta.get("extra") is not None:
        snap["zeroflow"] = delta["extra"]
