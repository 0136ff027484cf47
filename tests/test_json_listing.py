"""The JSON store's listing index (``listing.jsonl``): pages, damage, crashes, two writers."""

from __future__ import annotations

import json
import os
import random
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from _support import in_child
from zeroflow import Event, RunMetadata, RunQuery, RunQueryStore, RunSnapshot, StoreError
from zeroflow.stores import JsonFileWorkflowStore
from zeroflow.stores._json_index import LISTING_INDEX

STATUSES = ("running", "waiting", "succeeded", "failed", "cancelled")


def _save(store: JsonFileWorkflowStore, run_id: str, wf: str, status: str, n: int) -> None:
    snap = RunSnapshot(run_id=run_id, workflow_name=wf, wf_hash="h" * 64, status=status)
    snap.updated_at = f"2026-01-01T00:{n // 60 % 60:02d}:{n % 60:02d}+00:00"
    if status == "waiting":
        snap.ready_now = ["review"]
    store.save_snapshot(snap)


def _fill(store: JsonFileWorkflowStore, count: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    for i in range(count):
        _save(
            store,
            f"r-{i:04d}",
            rng.choice(("a", "b", "c")),
            rng.choice(STATUSES),
            rng.randrange(90),
        )


def _reference(store: JsonFileWorkflowStore, query: RunQuery) -> tuple[list[str | None], int]:
    """What the console showed before the index: every run's summary, filtered here."""
    metas = [m for m in store.list_metadata() if _matches(m, query)]
    metas.sort(key=lambda m: (m.updated_at or "", m.run_id or ""), reverse=True)
    window = metas[query.offset : query.offset + query.limit]
    return [m.run_id for m in window], len(metas)


def _matches(meta: RunMetadata, query: RunQuery) -> bool:
    if query.workflow_name is not None and meta.workflow_name != query.workflow_name:
        return False
    if query.statuses and meta.status not in query.statuses:
        return False
    if query.run_id_prefix and not (meta.run_id or "").startswith(query.run_id_prefix):
        return False
    return query.updated_before is None or (
        meta.updated_at is not None and meta.updated_at < query.updated_before
    )


def _page(store: JsonFileWorkflowStore, query: RunQuery) -> tuple[list[str | None], int]:
    page = store.query_runs(query)
    return [m.run_id for m in page.runs], page.total


QUERIES = [
    RunQuery(),
    RunQuery(limit=7, offset=21),
    RunQuery(offset=290),
    RunQuery(statuses=("waiting",)),
    RunQuery(statuses=("failed", "cancelled"), limit=5, offset=10),
    RunQuery(workflow_name="b"),
    RunQuery(workflow_name="b", statuses=("running",)),
    RunQuery(workflow_name="a", statuses=("running", "waiting", "failed")),
    RunQuery(run_id_prefix="r-01"),
    RunQuery(run_id_prefix="r-01", statuses=("succeeded",), workflow_name="c"),
    RunQuery(updated_before="2026-01-01T00:00:30+00:00"),
    RunQuery(statuses=("waiting",), updated_before="2026-01-01T00:01:00+00:00", offset=3),
    RunQuery(workflow_name="none"),
]


def test_the_json_store_answers_run_queries_as_a_full_listing_would(tmp_path: Path) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    assert isinstance(store, RunQueryStore)
    _fill(store, 300)
    rng = random.Random(3)
    for i in range(60):  # runs move on, some are deleted: the index follows
        run_id = f"r-{rng.randrange(300):04d}"
        if i % 10 == 0:
            store.delete_run(run_id)
        else:
            _save(store, run_id, "a", rng.choice(STATUSES), 90 + i)
    fresh = JsonFileWorkflowStore(tmp_path)  # from the file, not this instance's memory
    for query in QUERIES:
        expected = _reference(store, query)
        assert _page(store, query) == expected, query
        assert _page(fresh, query) == expected, query


def test_paging_while_another_process_adds_runs_loses_none(tmp_path: Path) -> None:
    _fill(JsonFileWorkflowStore(tmp_path), 120)
    reader = JsonFileWorkflowStore(tmp_path)
    before = set(_reference(reader, RunQuery(limit=1000))[0])
    seen: list[str | None] = []
    offset = 0
    for round_ in range(6):
        seen += _page(reader, RunQuery(limit=25, offset=offset))[0]
        offset += 25
        assert in_child(lambda r=round_: _add_runs(str(tmp_path), r)) == 0
    assert before <= set(seen), before - set(seen)
    newest = _page(reader, RunQuery(limit=30))[0]
    assert {f"new-{r}-{i}" for r in range(6) for i in range(5)} == set(newest)


def _add_runs(folder: str, round_: int) -> int:
    store = JsonFileWorkflowStore(folder)
    for i in range(5):
        _save(store, f"new-{round_}-{i}", "a", "running", 3000 + round_ * 5 + i)
    return 0


def test_two_processes_writing_at_once_lose_no_entry(tmp_path: Path) -> None:
    JsonFileWorkflowStore(tmp_path)
    gate = os.pipe()
    pids = [_fork_after(gate, lambda k=k: _write_many(str(tmp_path), k)) for k in range(2)]
    os.close(gate[0])
    os.close(gate[1])  # both children start writing now, at once
    for pid in pids:
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    store = JsonFileWorkflowStore(tmp_path)
    ids, total = _page(store, RunQuery(limit=1000))
    assert total == 160 and len(set(ids)) == 160
    assert _page(store, RunQuery(statuses=("succeeded",), limit=1000))[1] == 160
    lines = (tmp_path / LISTING_INDEX).read_bytes().splitlines()
    assert all(json.loads(line) for line in lines)  # no two appends interleaved


def _write_many(folder: str, k: int) -> int:
    store = JsonFileWorkflowStore(folder)
    for i in range(80):
        _save(store, f"w{k}-{i}", "a", "running", i)
        _save(store, f"w{k}-{i}", "a", "succeeded", i + 1)
    return 0


def _fork_after(gate: tuple[int, int], body: Callable[[], int]) -> int:
    """A child that waits until the pipe ``gate`` closes, runs ``body``, exits with its code."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, reported through the exit code
        signal.alarm(30)
        code = 99
        try:
            os.close(gate[1])
            os.read(gate[0], 1)
            code = body()
        except BaseException as exc:
            sys.stderr.write(f"child failed: {exc!r}\n")
        finally:
            os._exit(code)
    return pid


def _damage_variants() -> list[str]:
    return [
        "delete",
        "truncate-mid-line",
        "truncate-empty",
        "garbage",
        "garbage-line",
        "symlink",
        "folder",
    ]


@pytest.mark.parametrize("damage", _damage_variants())
def test_a_damaged_index_is_rebuilt_from_the_runs_and_nothing_is_lost(
    tmp_path: Path, damage: str
) -> None:
    base = tmp_path / "runs"
    _fill(JsonFileWorkflowStore(base), 40)
    reports: list[Event] = []
    store = JsonFileWorkflowStore(base, on_report=reports.append)
    expected = _reference(store, RunQuery(limit=1000))
    index = base / LISTING_INDEX
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me", encoding="utf-8")
    raw = index.read_bytes()
    if damage == "delete":
        index.unlink()
    elif damage == "truncate-mid-line":
        cut = raw.index(b"\n", len(raw) // 2) + 5  # inside a line: it is cut short
        index.write_bytes(raw[:cut])
    elif damage == "truncate-empty":
        index.write_bytes(b"")
    elif damage == "garbage":
        index.write_bytes(b"\x00not json at all\n{{{\n" * 20)
    elif damage == "garbage-line":
        index.write_bytes(raw + b'{"not": "an entry"}\n' + b"[1, 2]\n")
    elif damage == "symlink":
        index.unlink()
        index.symlink_to(outside)
    else:
        index.unlink()
        index.mkdir()
    if damage == "folder":  # a folder in the index's place is refused with a typed error
        with pytest.raises(StoreError, match=r"listing\.jsonl"):
            _page(store, RunQuery(limit=1000))
        return
    assert _page(store, RunQuery(limit=1000)) == expected
    assert _page(JsonFileWorkflowStore(base), RunQuery(limit=1000)) == expected
    assert outside.read_text(encoding="utf-8") == "keep me"
    assert not index.is_symlink()
    if damage not in ("delete", "truncate-empty"):
        assert any(e.run_id == LISTING_INDEX for e in reports), reports
    _save(store, "after", "a", "failed", 99)  # the rebuilt index takes new entries
    assert (
        _page(JsonFileWorkflowStore(base), RunQuery(statuses=("failed",), limit=1000))[0][0]
        == "after"
    )


def test_a_crafted_entry_never_reads_outside_the_store(tmp_path: Path) -> None:
    base = tmp_path / "runs"
    store = JsonFileWorkflowStore(base)
    _save(store, "real", "a", "running", 1)
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "metadata.json").write_text(
        json.dumps({"workflow_name": "x", "status": "running"}), encoding="utf-8"
    )
    with (base / LISTING_INDEX).open("ab") as f:
        f.write(b'["../secret","x","running","2030-01-01T00:00:00+00:00",1]\n')
        f.write(b'["listing.jsonl","x","running","2030-01-01T00:00:00+00:00",1]\n')
    ids, _ = _page(JsonFileWorkflowStore(base), RunQuery())
    assert ids == ["real"]


def test_runs_of_zeroflow_0_1_0_without_an_index_are_listed(tmp_path: Path) -> None:
    import shutil

    fixtures = Path(__file__).resolve().parent / "fixtures" / "v010"  # written by 0.1.0
    copy = tmp_path / "old"
    copy.mkdir()
    for folder in fixtures.iterdir():
        if folder.is_dir() and (folder / "metadata.json").exists():
            shutil.copytree(folder, copy / folder.name)
    assert not (copy / LISTING_INDEX).exists()
    store = JsonFileWorkflowStore(copy)
    assert not (copy / LISTING_INDEX).exists()  # runs already there: no empty index
    expected = _reference(store, RunQuery(limit=1000))
    assert expected[1] >= 4
    assert _page(store, RunQuery(limit=1000)) == expected
    assert _page(store, RunQuery(statuses=("waiting",))) == _reference(
        store, RunQuery(statuses=("waiting",))
    )
    assert (copy / LISTING_INDEX).exists()


class _Killed(BaseException):
    """Stands in for a kill: nothing after it runs."""


def test_a_crash_between_the_index_and_the_snapshot_shows_the_run_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    _save(store, "moving", "a", "running", 1)
    _save(store, "other", "a", "running", 2)

    def killed(*args: Any, **kwargs: Any) -> None:
        raise _Killed

    monkeypatch.setattr(JsonFileWorkflowStore, "_write_base", killed)
    with pytest.raises(_Killed):
        _save(JsonFileWorkflowStore(tmp_path), "moving", "a", "succeeded", 50)
    with pytest.raises(_Killed):
        _save(JsonFileWorkflowStore(tmp_path), "never-written", "a", "running", 60)
    monkeypatch.undo()
    # A filter on the status the run really has finds it, before any page showed it.
    reader = JsonFileWorkflowStore(tmp_path)
    assert _page(reader, RunQuery(statuses=("running",)))[0] == ["other", "moving"]
    fresh = JsonFileWorkflowStore(tmp_path)
    assert _page(fresh, RunQuery(statuses=("succeeded",))) == ([], 0)
    page = fresh.query_runs(RunQuery())
    assert [(m.run_id, m.status) for m in page.runs] == [
        ("other", "running"),
        ("moving", "running"),
    ]
    assert page.total == 2  # the first save that never happened is no run
    assert _page(JsonFileWorkflowStore(tmp_path), RunQuery(statuses=("running",)))[0] == [
        "other",
        "moving",
    ]


def test_a_killed_writer_leaves_every_run_listed(tmp_path: Path) -> None:
    JsonFileWorkflowStore(tmp_path)
    for point in range(1, 5):
        assert in_child(lambda p=point: _killed_child(str(tmp_path), p)) == 9
    store = JsonFileWorkflowStore(tmp_path)
    expected = _reference(store, RunQuery(limit=1000))
    assert _page(store, RunQuery(limit=1000)) == expected
    assert {"k-1", "k-2", "k-3", "k-4"} <= set(expected[0])


def _killed_child(folder: str, point: int) -> int:
    """Save runs, then be killed (SIGKILL's exit, ``os._exit``) right after an index append."""
    from zeroflow.stores import _json_index

    store = JsonFileWorkflowStore(folder)
    for i in range(1, point + 1):
        _save(store, f"k-{i}", "a", "running", i)
    real = _json_index.ListingIndex.note
    calls = [0]

    def note(self: Any, run_id: str, entry: Any, intent: Any = None) -> None:
        real(self, run_id, entry, intent)
        calls[0] += 1
        os._exit(9)

    _json_index.ListingIndex.note = note  # type: ignore[method-assign]
    _save(store, f"k-{point}", "a", "succeeded", 80 + point)
    return 0


def test_a_long_log_is_compacted_to_one_line_per_run_and_lists_the_same(tmp_path: Path) -> None:
    store = JsonFileWorkflowStore(tmp_path)
    for round_ in range(14):
        for i in range(50):
            status = ("running", "waiting")[round_ % 2]
            _save(store, f"c-{i:02d}", "a", status, round_ * 50 + i)
    index = tmp_path / LISTING_INDEX
    assert len(index.read_bytes().splitlines()) > 2 * 50 + 1000
    expected = _reference(store, RunQuery(limit=1000))
    assert _page(JsonFileWorkflowStore(tmp_path), RunQuery(limit=1000)) == expected
    lines = index.read_bytes().splitlines()
    assert len(lines) == 1 + 50  # the header and one settled line per run
    assert _page(JsonFileWorkflowStore(tmp_path), RunQuery(limit=1000)) == expected


def test_a_writer_folds_the_log_when_it_doubles_past_a_mark() -> None:
    from zeroflow.stores._json_index import _crosses

    mark = 8 << 20
    assert not _crosses(0, mark - 1)
    assert _crosses(mark - 10, mark + 10)
    assert not _crosses(mark + 10, mark + 20)
    assert _crosses(2 * mark - 1, 2 * mark)
    assert not _crosses(3 * mark, 3 * mark + 5)


def test_a_folder_this_process_may_only_read_is_listed_from_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from zeroflow.stores import _json_index

    _fill(JsonFileWorkflowStore(tmp_path), 30)
    (tmp_path / LISTING_INDEX).unlink()
    (tmp_path / "listing.lock").unlink()
    scans = [0]
    real_scan = JsonFileWorkflowStore._scan_listing

    def counted(self: JsonFileWorkflowStore) -> Any:
        scans[0] += 1
        return real_scan(self)

    def read_only(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(JsonFileWorkflowStore, "_scan_listing", counted)
    for name in ("write_atomic", "locked", "create_with", "append_fd"):
        monkeypatch.setattr(_json_index, name, read_only)
    store = JsonFileWorkflowStore(tmp_path)  # opening it writes nothing
    for query in QUERIES:
        assert _page(store, query) == _reference(store, query), query
    assert scans[0] == 1  # rebuilt once, then kept in memory
    assert not (tmp_path / LISTING_INDEX).exists()


def test_a_lock_file_that_is_a_link_is_refused_with_a_typed_error(tmp_path: Path) -> None:
    base = tmp_path / "runs"
    store = JsonFileWorkflowStore(base)
    _save(store, "before", "a", "running", 1)
    target = tmp_path / "elsewhere"
    target.write_text("untouched", encoding="utf-8")
    lock = base / "listing.lock"
    lock.unlink()
    lock.symlink_to(target)
    with pytest.raises(StoreError, match=r"listing\.lock"):
        _save(store, "after", "a", "running", 2)
    assert target.read_text(encoding="utf-8") == "untouched"
