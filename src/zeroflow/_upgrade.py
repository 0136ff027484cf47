"""Upgrade impact: what moving to a new definition does to the runs a store holds.

``migration_problems`` is the one judgement of whether a run can move from
its definition to another, shared by ``WorkflowEngine.migrate`` (which
refuses such a run) and ``check_upgrade`` (which reports on every unfinished
run of a workflow before a deploy): every node the run still needs (queued,
waiting, half-arrived AND-joins and their arrivals, paused subflows, map
progress, the queues a redrive puts back) must exist in the new definition
as the same kind of node, with the same join; a paused subflow's child run
is judged the same way against the new child definition.

``check_upgrade`` classifies each run as ``compatible`` (same hash, same
child hashes: it resumes as it is), ``migratable`` (``migrate()`` accepts
it; with what changes for it), ``blocked`` (with ``migrate()``'s reasons) or
``unknown`` (no checkpoint it can read).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from . import _constants as C
from ._definition import CompiledNode, CompiledWorkflow, compile_workflow
from ._errors import InvalidCheckpointError, RunLockedError, StoreError
from ._models import Event, RunSnapshot
from ._store import WorkflowStore

__all__ = [
    "COMPATIBLE",
    "MIGRATABLE",
    "BLOCKED",
    "UNKNOWN",
    "VERDICTS",
    "UpgradeVerdict",
    "UpgradeReport",
    "UpgradeApplied",
    "apply_upgrade",
    "check_upgrade",
    "migration_problems",
    "needed_nodes",
]

COMPATIBLE, MIGRATABLE, BLOCKED, UNKNOWN = "compatible", "migratable", "blocked", "unknown"
VERDICTS: tuple[str, ...] = (COMPATIBLE, MIGRATABLE, BLOCKED, UNKNOWN)
"""The classes of ``check_upgrade``, in the order reports list them."""

_WAITING = "waiting"
_PAUSED_SUBFLOW = "a paused subflow"
_JOIN = "an AND-join with arrivals"
_MAP = "a map with finished items"
_REDRIVE = "queued for a redrive"


def _short(digest: str) -> str:
    return digest[:12]


# ---------------------------------------------------------------------- what a run needs


def needed_nodes(snap: RunSnapshot) -> dict[str, str]:
    """Every node the run will still run or wait at, with why it is needed."""
    needed: dict[str, str] = {}
    for name in _keys(snap.extra.get("waiting")):
        needed.setdefault(name, _WAITING)
    if snap.status == C.STATUS_WAITING and snap.ready_now:
        needed.setdefault(snap.ready_now[0], _WAITING)
    for name in snap.ready_now:
        needed.setdefault(name, "queued")
    for name in snap.ready_next_wave:
        needed.setdefault(name, "queued for the next wave")
    for key, sources in snap.arrivals.items():
        needed.setdefault(key.partition(":")[2], _JOIN)
        for source in sources:
            needed.setdefault(source, "an arrival of an AND-join")
    for name in _keys(snap.extra.get("subflows")):
        needed.setdefault(name, _PAUSED_SUBFLOW)
    return needed


def _keys(value: Any) -> list[str]:
    return [str(k) for k in value] if isinstance(value, dict) else []


def _redrive_queues(snap: RunSnapshot) -> dict[str, str]:
    """The nodes a failed run's redrive puts back in its queues (its redrive record)."""
    record = snap.extra.get("redrive") if snap.status == C.STATUS_FAILED else None
    if not isinstance(record, dict):
        return {}
    try:
        names = [*record.get("ready_now", ()), *record.get("ready_next_wave", ())]
        for key, sources in dict(record.get("arrivals") or {}).items():
            names += [str(key).partition(":")[2], *sources]
    except (TypeError, ValueError, AttributeError) as exc:
        raise InvalidCheckpointError(
            f"checkpoint of run '{snap.run_id}' has a damaged redrive record "
            f"({type(exc).__name__}: {exc}); redrive a checkpoint the engine wrote"
        ) from exc
    return dict.fromkeys(map(str, names), _REDRIVE)


def _map_progress(snap: RunSnapshot) -> dict[str, int]:
    """Map nodes with finished items kept in the run, and how many items each has."""
    progress = snap.extra.get("map")
    if not isinstance(progress, dict):
        return {}
    out = {}
    for name, kept in progress.items():
        done = kept.get("results", {}) if isinstance(kept, dict) else {}
        out[str(name)] = len(done) if isinstance(done, dict) else 0
    return out


def _needs(snap: RunSnapshot) -> dict[str, str]:
    needs = needed_nodes(snap)
    for name in _map_progress(snap):
        needs.setdefault(name, _MAP)
    for name, why in _redrive_queues(snap).items():
        needs.setdefault(name, why)
    return needs


# ---------------------------------------------------------------------- the judgement


def migration_problems(
    snap: RunSnapshot,
    old: CompiledWorkflow | None,
    new: CompiledWorkflow,
    children: Mapping[str, CompiledWorkflow] | None = None,
    old_by_hash: Mapping[str, CompiledWorkflow] | None = None,
) -> list[str]:
    """What the run still needs that the new definition lacks or changed.

    ``old`` is the run's definition; without it (None) each needed node is
    judged by what the run's own records show of it (a waiting node, an
    AND-join's arrivals, a paused subflow, map progress). ``children`` are
    the new child definitions by workflow name; a paused subflow whose child
    definition changed is judged against its new one, with the old one from
    ``old_by_hash`` (by hash) when known.
    """
    problems: list[str] = []
    needs = _needs(snap)
    maps = _map_progress(snap)
    paused = set(_keys(snap.extra.get("subflows")))
    for name, why in needs.items():
        node = new.nodes.get(name)
        if node is None:
            problems.append(f"node '{name}' ({why}) is missing from the new definition")
            continue
        before = None if old is None else old.nodes.get(name)
        if before is None:
            problems += _against_records(snap, name, why, node, maps, paused)
            continue
        if before.join != node.join:
            problems.append(f"node '{name}' ({why}) changed its join specification")
        if before.kind != node.kind:
            problems.append(f"node '{name}' ({why}) changed its kind")
        if name in maps and _map_over(before) != _map_over(node):
            problems.append(
                f"node '{name}' ({why}) maps over '{_map_over(node)}' instead of "
                f"'{_map_over(before)}': its {maps[name]} finished item(s) would be "
                "matched to other items"
            )
        if (
            name in paused
            and before.subflow is not None
            and node.subflow is not None
            and before.subflow.workflow != node.subflow.workflow
        ):
            problems.append(
                f"node '{name}' ({why}) runs workflow '{node.subflow.workflow}' instead of "
                f"'{before.subflow.workflow}'"
            )
    problems += _paused_child_problems(snap, new, children or {}, old_by_hash or {})
    return problems


def _map_over(node: CompiledNode) -> str:
    return "" if node.map is None else ".".join(node.map.over)


def _against_records(
    snap: RunSnapshot,
    name: str,
    why: str,
    node: CompiledNode,
    maps: Mapping[str, int],
    paused: set[str],
) -> list[str]:
    """What the run's own records show a node must still be, checked against ``node``."""
    out = []
    if why == _WAITING and node.kind == "end":
        out.append(f"node '{name}' ({why}) is an end node now, which cannot be resumed")
    if name in paused and node.subflow is None:
        out.append(f"node '{name}' ({why}) is no longer a subflow node")
    if name in maps and node.map is None:
        out.append(
            f"node '{name}' ({why}) is no longer a map node: its {maps[name]} finished "
            "item(s) would be lost"
        )
    for key, sources in snap.arrivals.items():
        if key.partition(":")[2] != name:
            continue
        if node.join is None or node.join.mode != "and":
            out.append(f"node '{name}' ({_JOIN}) is no longer an AND-join")
            continue
        gone = [s for s in sources if s not in node.join.wait_for]
        if gone:
            out.append(
                f"node '{name}' ({_JOIN}) no longer waits for "
                f"{', '.join(repr(s) for s in gone)}, which arrived"
            )
    return out


def _paused_child_problems(
    snap: RunSnapshot,
    new: CompiledWorkflow,
    children: Mapping[str, CompiledWorkflow],
    old_by_hash: Mapping[str, CompiledWorkflow],
) -> list[str]:
    out = []
    for name, child_snap, graph in _moved_children(snap, new, children):
        old_child = old_by_hash.get(child_snap.wf_hash)
        for problem in migration_problems(child_snap, old_child, graph, children, old_by_hash):
            out.append(f"paused subflow '{name}' (workflow '{graph.name}'): {problem}")
    return out


def _moved_children(
    snap: RunSnapshot, new: CompiledWorkflow, children: Mapping[str, CompiledWorkflow]
) -> list[tuple[str, RunSnapshot, CompiledWorkflow]]:
    """(node, child run, new child definition) of each paused subflow whose child changed.

    A paused subflow node the new definition lacks, or that runs no child
    there, is left out: ``migration_problems`` reports it as such.
    """
    out = []
    for name, child_snap in _paused_children(snap):
        node = new.nodes.get(name)
        spec = None if node is None else node.subflow
        graph = None if spec is None else children.get(spec.workflow)
        if graph is not None and child_snap.wf_hash != graph.hash:
            out.append((name, child_snap, graph))
    return out


def _paused_children(snap: RunSnapshot) -> list[tuple[str, RunSnapshot]]:
    saved = snap.extra.get("subflows")
    if not isinstance(saved, dict):
        return []
    out = []
    for name, data in saved.items():
        if not data:
            continue
        try:
            out.append((str(name), RunSnapshot.from_dict(data)))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidCheckpointError(
                f"checkpoint of run '{snap.run_id}' holds a damaged paused subflow '{name}' "
                f"({type(exc).__name__}: {exc})"
            ) from exc
    return out


# ---------------------------------------------------------------------- what changes


_NODE_PARTS: tuple[tuple[str, str], ...] = (
    ("handler", "handler"),
    ("config", "config"),
    ("outputs", "routes"),
    ("retry", "retry policy"),
    ("on_error", "error catchers"),
    ("wait", "wait prompt"),
    ("map", "map settings"),
    ("subflow", "subflow input"),
    ("end_result", "end result"),
    ("terminal", "terminal flag"),
)


def _still_ahead(graph: CompiledWorkflow, start: Iterable[str]) -> set[str]:
    """The nodes of ``graph`` a run may still reach from ``start`` (edges, catchers, error node)."""
    todo = [n for n in start if n in graph.nodes]
    if graph.error_node is not None:
        todo.append(graph.error_node)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        node = graph.nodes.get(name)
        if name in seen or node is None:
            continue
        seen.add(name)
        todo += [e.target for edges in node.outputs.values() for e in edges]
        todo += [c.target for c in node.on_error]
    return seen


def _changes(snap: RunSnapshot, old: CompiledWorkflow, new: CompiledWorkflow) -> list[str]:
    """What the run will meet differently in ``new``: the nodes still ahead of it."""
    needs = _needs(snap)
    ahead_new = _still_ahead(new, needs)
    ahead_old = _still_ahead(old, needs)
    out = []
    for name in sorted(ahead_new | ahead_old):
        before, after = old.nodes.get(name), new.nodes.get(name)
        why = f" ({needs[name]})" if name in needs else ""
        if before is None:
            out.append(f"node '{name}' added")
        elif after is None:
            out.append(f"node '{name}'{why} removed")
        else:
            parts = [
                label
                for attr, label in _NODE_PARTS
                if getattr(before, attr) != getattr(after, attr)
            ]
            if parts:
                out.append(f"node '{name}'{why}: {', '.join(parts)} changed")
    before_policy, after_policy = old.policy.to_dict(), new.policy.to_dict()
    moved = [k for k in after_policy if before_policy.get(k) != after_policy[k]]
    if moved:
        out.append(f"engine_policy: {', '.join(moved)} changed")
    if old.error_node != new.error_node:
        out.append(f"error node '{old.error_node}' -> '{new.error_node}'")
    return out


def _child_changes(snap: RunSnapshot, children: Mapping[str, CompiledWorkflow]) -> list[str]:
    recorded = snap.extra.get("subflow_hashes")
    out = []
    for name, digest in sorted((recorded or {}).items() if isinstance(recorded, dict) else ()):
        graph = children.get(name)
        if graph is None:
            out.append(f"subflow definition '{name}' is no longer registered")
        elif graph.hash != digest:
            out.append(
                f"subflow definition '{name}' changed ({_short(str(digest))} -> "
                f"{_short(graph.hash)})"
            )
    return out


# ---------------------------------------------------------------------- the report


@dataclass(frozen=True, slots=True)
class UpgradeVerdict:
    """What a new definition does to one stored run.

    ``verdict`` is one of ``VERDICTS``. ``reasons`` say why a run is
    ``blocked`` or ``unknown`` (``migrate()``'s reasons), or, for a
    ``migratable`` run whose old definition was not given (``verified`` is
    False), which checks could not be made; ``changes`` list what the run
    will meet differently. ``wf_hash`` is the hash its checkpoint is locked
    to ("" when unreadable).
    """

    run_id: str
    status: str
    verdict: str
    reasons: tuple[str, ...] = ()
    changes: tuple[str, ...] = ()
    wf_hash: str = ""
    verified: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "changes": list(self.changes),
            "wf_hash": self.wf_hash,
            "verified": self.verified,
        }


@dataclass(frozen=True, slots=True)
class UpgradeReport:
    """``check_upgrade``'s findings: one verdict per unfinished run, by run id.

    ``skipped`` names the runs not judged, with why: succeeded runs, failed
    runs no redrive can continue (no redrive record), runs deleted while the
    check ran.
    """

    workflow_name: str
    new_hash: str
    verdicts: tuple[UpgradeVerdict, ...] = ()
    skipped: tuple[tuple[str, str], ...] = field(default=())

    def of(self, verdict: str) -> tuple[UpgradeVerdict, ...]:
        """The verdicts of one class (``"blocked"``, ...)."""
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
        return tuple(v for v in self.verdicts if v.verdict == verdict)

    @property
    def compatible(self) -> tuple[UpgradeVerdict, ...]:
        return self.of(COMPATIBLE)

    @property
    def migratable(self) -> tuple[UpgradeVerdict, ...]:
        return self.of(MIGRATABLE)

    @property
    def blocked(self) -> tuple[UpgradeVerdict, ...]:
        return self.of(BLOCKED)

    @property
    def unknown(self) -> tuple[UpgradeVerdict, ...]:
        return self.of(UNKNOWN)

    @property
    def counts(self) -> dict[str, int]:
        """The number of runs per class, every class present (in ``VERDICTS`` order)."""
        return {verdict: len(self.of(verdict)) for verdict in VERDICTS}

    @property
    def ok(self) -> bool:
        """True when no run is blocked (the deploy strands none it could judge)."""
        return not self.blocked

    def verdict(self, run_id: str) -> UpgradeVerdict:
        """The verdict of one run; ``KeyError`` if the report has none."""
        for v in self.verdicts:
            if v.run_id == run_id:
                return v
        raise KeyError(f"the upgrade report has no verdict for run '{run_id}'")

    def to_dict(self) -> dict[str, Any]:
        return {
            "workflow_name": self.workflow_name,
            "new_hash": self.new_hash,
            "counts": self.counts,
            "ok": self.ok,
            "runs": [v.to_dict() for v in self.verdicts],
            "skipped": [{"run_id": r, "reason": why} for r, why in self.skipped],
        }

    def table(self) -> str:
        """Counts per class, then one line per run that is not compatible, with its reasons."""
        lines = [f"workflow '{self.workflow_name}', new definition {_short(self.new_hash)}"]
        lines += [f"  {verdict:<11} {count}" for verdict, count in self.counts.items()]
        if self.skipped:
            lines.append(f"  {'skipped':<11} {len(self.skipped)} (finished, not judged)")
        rows = [("RUN ID", "STATUS", "VERDICT", "DETAIL")]
        for v in self.verdicts:
            if v.verdict == COMPATIBLE:
                continue
            detail = "; ".join(v.reasons if v.verdict != MIGRATABLE else (*v.reasons, *v.changes))
            rows.append((v.run_id, v.status, v.verdict, detail or "-"))
        if len(rows) > 1:
            widths = [max(len(r[i]) for r in rows) for i in range(3)]
            lines.append("")
            for row in rows:
                cells = [c.ljust(w) for c, w in zip(row[:3], widths, strict=True)]
                lines.append("  ".join([*cells, row[3]]).rstrip())
        return "\n".join(lines) + "\n"


def _compile_olds(old_definitions: Iterable[Mapping[str, Any]]) -> dict[str, CompiledWorkflow]:
    out = {}
    for definition in old_definitions:
        graph = compile_workflow(definition)
        out[graph.hash] = graph
    return out


def check_upgrade(
    store: WorkflowStore,
    new: CompiledWorkflow,
    children: Mapping[str, CompiledWorkflow],
    workflow_name: str | None = None,
    *,
    old_definitions: Iterable[Mapping[str, Any]] = (),
    verify: Callable[[RunSnapshot], None] | None = None,
) -> UpgradeReport:
    """Classify every unfinished run of ``workflow_name`` (default ``new.name``) in ``store``.

    ``old_definitions`` (definition dicts: the old workflow, old child
    definitions) are matched to runs by hash; ``verify`` checks a loaded
    checkpoint's signature. A run the store reports as corrupt while listing
    cannot be placed in a workflow and is listed as ``unknown``.
    """
    name = new.name if workflow_name is None else workflow_name
    old_by_hash = _compile_olds(old_definitions)
    corrupt: list[Event] = []
    metas = _listing(store, name, corrupt.append)
    verdicts: dict[str, UpgradeVerdict] = {}
    skipped: list[tuple[str, str]] = []
    for meta in metas:
        run_id = meta.run_id
        if run_id is None:
            continue  # a summary without an id names no run to load
        if meta.status == C.STATUS_SUCCEEDED:
            skipped.append((run_id, "succeeded"))
            continue
        try:
            snap = store.load_snapshot(run_id)
            if verify is not None:
                verify(snap)
        except KeyError:
            skipped.append((run_id, "deleted while the check ran"))
            continue
        except (StoreError, InvalidCheckpointError, ValueError, TypeError) as exc:
            verdicts[run_id] = UpgradeVerdict(
                run_id, meta.status, UNKNOWN, (f"no readable checkpoint: {exc}",)
            )
            continue
        why_skip = _finished(snap)
        if why_skip is not None:
            skipped.append((run_id, why_skip))
            continue
        verdicts[run_id] = _judge(snap, new, children, old_by_hash)
    for event in corrupt:
        verdicts.setdefault(
            event.run_id,
            UpgradeVerdict(
                event.run_id,
                "corrupt",
                UNKNOWN,
                (
                    f"the store cannot read it ({event.data.get('where')}): "
                    f"{event.data.get('reason')}; its workflow is not known",
                ),
            ),
        )
    return UpgradeReport(
        name,
        new.hash,
        tuple(verdicts[k] for k in sorted(verdicts)),
        tuple(sorted(skipped)),
    )


@runtime_checkable
class _Reporting(Protocol):
    """A store that tells ``on_report`` of the runs it skips as unreadable (the shipped ones)."""

    on_report: Callable[[Event], None] | None


def _listing(store: WorkflowStore, name: str, on_report: Callable[[Event], None]) -> list[Any]:
    """``store.list_metadata(name)``, hearing of the runs it skips as corrupt on the way.

    A store's ``on_report`` is chained for the listing only (its own reporter
    still hears of every report), then put back.
    """
    if not isinstance(store, _Reporting):
        return list(store.list_metadata(name))
    before = store.on_report

    def both(event: Event) -> None:
        on_report(event)
        if before is not None:
            before(event)

    store.on_report = both
    try:
        return list(store.list_metadata(name))
    finally:
        store.on_report = before


def _finished(snap: RunSnapshot) -> str | None:
    """Why a run is not judged (nothing continues it), or None when it is unfinished."""
    if snap.status == C.STATUS_SUCCEEDED:
        return "succeeded"
    if snap.status == C.STATUS_FAILED and not snap.extra.get("redrive"):
        return "failed with no redrive record: only a new run() can continue it"
    return None


def _judge(
    snap: RunSnapshot,
    new: CompiledWorkflow,
    children: Mapping[str, CompiledWorkflow],
    old_by_hash: Mapping[str, CompiledWorkflow],
) -> UpgradeVerdict:
    run_id, status, digest = snap.run_id, snap.status, snap.wf_hash
    if status not in C.RUN_STATUSES:
        return UpgradeVerdict(run_id, status, UNKNOWN, (f"unknown status {status!r}",), (), digest)
    same = digest == new.hash
    old = new if same else old_by_hash.get(digest)
    try:
        problems = migration_problems(snap, old, new, children, old_by_hash)
    except InvalidCheckpointError as exc:
        return UpgradeVerdict(run_id, status, UNKNOWN, (str(exc),), (), digest)
    child_changes = _child_changes(snap, children)
    if same and not child_changes:
        if problems:  # the definition it was written by lacks what it needs
            return UpgradeVerdict(run_id, status, UNKNOWN, tuple(problems), (), digest)
        return UpgradeVerdict(run_id, status, COMPATIBLE, (), (), digest)
    notes = []
    if old is None:
        notes.append(
            f"unverified: its definition {_short(digest)} was not given (old_definitions, "
            "--old): kinds and joins were checked against the run's own records only"
        )
        changes = [f"definition {_short(digest)} -> {_short(new.hash)}"]
    else:
        changes = [] if same else [f"definition {_short(digest)} -> {_short(new.hash)}"]
        changes += [] if same else _changes(snap, old, new)
    changes += child_changes
    notes += _unverified_children(snap, new, children, old_by_hash)
    verified = not notes
    if problems:
        return UpgradeVerdict(
            run_id, status, BLOCKED, tuple(problems), tuple(changes), digest, verified
        )
    return UpgradeVerdict(
        run_id, status, MIGRATABLE, tuple(notes), tuple(changes), digest, verified
    )


def _unverified_children(
    snap: RunSnapshot,
    new: CompiledWorkflow,
    children: Mapping[str, CompiledWorkflow],
    old_by_hash: Mapping[str, CompiledWorkflow],
) -> list[str]:
    """Notes on paused subflows whose old child definition was not given."""
    return [
        f"unverified: paused subflow '{name}' ran child definition "
        f"{_short(child_snap.wf_hash)}, which was not given: its nodes were checked against "
        "the child run's own records only"
        for name, child_snap, _ in _moved_children(snap, new, children)
        if child_snap.wf_hash not in old_by_hash
    ]


# ---------------------------------------------------------------------- applying it


@dataclass(frozen=True, slots=True)
class UpgradeApplied:
    """What ``apply_upgrade`` did: runs migrated, runs another caller holds, runs left as
    they were (with why)."""

    migrated: tuple[str, ...] = ()
    locked: tuple[tuple[str, str], ...] = ()
    not_applied: tuple[tuple[str, str], ...] = ()

    @property
    def complete(self) -> bool:
        """True when every migratable run was migrated."""
        return not self.locked and not self.not_applied

    def to_dict(self) -> dict[str, Any]:
        return {
            "migrated": list(self.migrated),
            "locked": [{"run_id": r, "reason": why} for r, why in self.locked],
            "not_applied": [{"run_id": r, "reason": why} for r, why in self.not_applied],
        }


class _Migrator(Protocol):
    """What ``apply_upgrade`` uses of a ``WorkflowEngine``."""

    def load_snapshot(self, run_id: str) -> RunSnapshot: ...

    def migrate(self, checkpoint: RunSnapshot, old_workflow_def: Mapping[str, Any]) -> Any: ...


def apply_upgrade(
    engine: _Migrator,
    report: UpgradeReport,
    definitions: Iterable[Mapping[str, Any]],
) -> UpgradeApplied:
    """Migrate every migratable run of ``report`` with ``engine`` (built on the new definition
    and the store), each under its lease, from its latest checkpoint.

    ``definitions`` are the old definitions (and the new one, for a run only
    a child definition changed for); a run without its definition among
    them is not applied. A run another caller holds or moved on since
    (``RunLockedError``) is listed in ``locked``; one ``migrate()`` refuses
    now, in ``not_applied``.
    """
    by_hash: dict[str, Mapping[str, Any]] = {}
    for definition in definitions:
        by_hash.setdefault(compile_workflow(definition).hash, definition)
    migrated: list[str] = []
    locked: list[tuple[str, str]] = []
    left: list[tuple[str, str]] = []
    for v in report.migratable:
        old = by_hash.get(v.wf_hash)
        if old is None:
            left.append((v.run_id, f"its definition ({_short(v.wf_hash)}) was not given"))
            continue
        try:
            engine.migrate(engine.load_snapshot(v.run_id), old)
        except RunLockedError as exc:
            locked.append((v.run_id, str(exc)))
        except (StoreError, KeyError, ValueError) as exc:  # changed since the check
            left.append((v.run_id, f"{type(exc).__name__}: {exc}"))
        else:
            migrated.append(v.run_id)
    return UpgradeApplied(tuple(migrated), tuple(locked), tuple(left))
