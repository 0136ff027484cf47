"""The JSON store's listing index: one page of runs without reading every run's summary.

``<base_dir>/listing.jsonl`` is an append-only log of run summaries, one
compact JSON array a line: ``[run_id, workflow_name, status, updated_at,
seq]`` for a run's latest full save (a start, pause, end or journal fold:
exactly when ``metadata.json`` is rewritten), ``[run_id]`` once a run is
deleted; the last line of a run wins. A writer appends its line under
``listing.lock`` *before* it replaces the run's ``snapshot.json``, so a
killed writer leaves an entry ahead of the run, never a run missing from
the index. The first line, ``{"format": 1, "kind": "zeroflow-listing"}``,
says the log covers every run: only a rebuild (every run's
``metadata.json`` read, merged with what the log holds) or a compaction
(the log folded to one line per run, newest update last) writes it, so a
log a writer created (a 0.1.0 folder, a deleted index) or one with a line
that does not decode is rebuilt before it is trusted.

A reader keeps the folded log in memory (sorted lists per status and per
workflow) and reads only what was appended since; every run of a page is
confirmed by its ``metadata.json``, and an entry that disagrees with it
(a writer killed between the two writes) is corrected under the run's
lease lock, then the page is chosen again.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import heapq
import itertools
import json
import os
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from .._models import RunMetadata
from .._store_views import RunQuery
from ._files import (
    LinkRefusedError,
    append_fd,
    create_with,
    locked,
    open_nofollow,
    write_all,
    write_atomic,
)

__all__ = ["GONE", "Gone", "LISTING_INDEX", "LISTING_LOCK", "Entry", "Listed", "ListingIndex"]

LISTING_INDEX = "listing.jsonl"
"""The listing index's log (see the module's docstring and docs/STORAGE.md)."""
LISTING_LOCK = "listing.lock"
"""The advisory lock every writer of ``listing.jsonl`` holds for one append."""

FORMAT = 1
_HEADER: Final = b'{"format":1,"kind":"zeroflow-listing"}\n'
_BULK_TAIL = 2000
"""Past this many new lines, the sorted lists are rebuilt rather than updated one by one."""

Entry = tuple[str, str, str | None, int | None]
"""One run in the index: workflow name, status, the latest full save's ``updated_at``, its seq."""
Key = tuple[str, str]
"""Where a run sorts: (``updated_at`` or ``""``, run id), ascending."""
Intent = tuple[str | None] | None
"""A line's intent mark: ``(previous status,)`` for a line written before its save, None
for a settled one."""
Change = tuple[str, Entry | None, Intent]
"""One decoded line: run id, its entry (None: deleted), its intent mark."""


@dataclass(frozen=True, slots=True)
class Listed:
    """A run as its ``metadata.json`` says: the index entry it should have, and its summary
    brought up to its latest checkpoint."""

    entry: Entry
    meta: RunMetadata


class Gone:
    """The run's folder does not exist (deleted)."""


GONE: Final = Gone()
Reader = Callable[[str], "Listed | Gone | None"]
"""Reads one run's ``metadata.json``: ``Listed``, ``GONE``, or None (not readable, not a run
yet); never raises."""


class IndexDamaged(Exception):
    """The log cannot be trusted as it is (a line that does not decode)."""


class _Unbuilt(IndexDamaged):
    """The log has no header: writers made it, no rebuild has covered every run yet."""


def entry_of(data: dict[str, Any], seq: int | None) -> Entry | None:
    """The index entry of a snapshot or ``metadata.json`` dict; None when it has no name or
    status (such a run is not listed by ``list_metadata`` either)."""
    name, status, updated = data.get("workflow_name"), data.get("status"), data.get("updated_at")
    if type(name) is not str or type(status) is not str:
        return None
    return (name, status, updated if type(updated) is str else None, seq)


def _line(run_id: str, entry: Entry | None, intent: Intent = None) -> bytes:
    item: list[Any] = [run_id] if entry is None else [run_id, *entry]
    if entry is not None and intent is not None:
        item.append(intent[0])
    return (json.dumps(item, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def _decode(item: Any) -> Change:
    """One decoded line; ``IndexDamaged`` when it is not an entry or a deletion."""
    if type(item) is list and item and type(item[0]) is str:
        if len(item) == 1:
            return item[0], None, None
        if (
            len(item) in (5, 6)
            and type(item[1]) is str
            and type(item[2]) is str
            and (item[3] is None or type(item[3]) is str)
            and (item[4] is None or type(item[4]) is int)
            and (len(item) == 5 or item[5] is None or type(item[5]) is str)
        ):
            intent = (item[5],) if len(item) == 6 else None
            return item[0], (item[1], item[2], item[3], item[4]), intent
    raise IndexDamaged(f"a line is not a run entry: {json.dumps(item)[:80]}")


def _parse(lines: list[bytes]) -> list[Change]:
    """Entry lines (empty ones skipped), decoded in one go; ``IndexDamaged`` on any bad one."""
    body = [line for line in lines if line]
    if not body:
        return []
    try:
        items = json.loads(b"[" + b",".join(body) + b"]")
    except (ValueError, RecursionError) as exc:
        raise IndexDamaged(f"a line is not JSON ({exc})") from None
    out: list[Change] = []
    append = out.append
    for item in items:
        # The usual line (a settled entry) checked inline: a cold load reads 100,000 of them.
        if type(item) is list and len(item) == 5:
            run_id, name, status, updated, seq = item
            if (
                type(run_id) is str
                and type(name) is str
                and type(status) is str
                and (updated is None or type(updated) is str)
                and (seq is None or type(seq) is int)
            ):
                append((run_id, (name, status, updated, seq), None))
                continue
        append(_decode(item))
    return out


def _key(run_id: str, entry: Entry) -> Key:
    return (entry[2] or "", run_id)


def _remove(keys: list[Key], key: Key) -> None:
    i = bisect.bisect_left(keys, key)
    if i < len(keys) and keys[i] == key:
        del keys[i]


@dataclass
class _State:
    """The folded log: each run's entry and the sorted lists a page is chosen from.

    ``pending`` holds the runs whose latest line is an intent not yet settled
    (a save under way, or one a kill cut short), with the status they had
    before it: such a run is also a candidate for that status (``by_prev``).
    """

    entries: dict[str, Entry]
    pending: dict[str, str | None] = field(default_factory=dict)
    file: tuple[int, int] = (0, 0)  # (st_dev, st_ino) of the log read
    offset: int = 0  # where its complete lines end
    lines: int = 0  # entry lines in the file (a compaction is due when far more than runs)
    everything: list[Key] = field(default_factory=list)
    by_status: dict[str, list[Key]] = field(default_factory=dict)
    by_workflow: dict[str, list[Key]] = field(default_factory=dict)
    by_pair: dict[tuple[str, str], list[Key]] = field(default_factory=dict)
    by_prev: dict[str, list[Key]] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sort()

    def sort(self) -> None:
        """Build the sorted lists from ``entries`` and ``pending``."""
        self.everything = sorted(_key(r, e) for r, e in self.entries.items())
        self.by_status, self.by_workflow, self.by_prev, self.by_pair = {}, {}, {}, {}
        for key in self.everything:
            entry = self.entries[key[1]]
            self.by_status.setdefault(entry[1], []).append(key)
            self.by_workflow.setdefault(entry[0], []).append(key)
            self.by_pair.setdefault((entry[0], entry[1]), []).append(key)
            prev = self.pending.get(key[1])
            if prev is not None and prev != entry[1]:
                self.by_prev.setdefault(prev, []).append(key)
        self.ids = sorted(self.entries)

    def apply(self, changes: list[Change]) -> None:
        """Fold ``changes`` (in log order) in; many at once re-sort instead."""
        if len(changes) > _BULK_TAIL:
            for run_id, entry, intent in changes:
                if entry is None:
                    self.entries.pop(run_id, None)
                else:
                    self.entries[run_id] = entry
                if entry is not None and intent is not None:
                    self.pending[run_id] = intent[0]
                else:
                    self.pending.pop(run_id, None)
            self.sort()
            return
        for run_id, entry, intent in changes:
            old = self.entries.get(run_id)
            old_prev = self.pending.pop(run_id, None)
            if old is not None:
                key = _key(run_id, old)
                _remove(self.everything, key)
                _remove(self.by_status[old[1]], key)
                _remove(self.by_workflow[old[0]], key)
                _remove(self.by_pair[old[0], old[1]], key)
                if old_prev is not None and old_prev != old[1]:
                    _remove(self.by_prev[old_prev], key)
            if entry is None:
                if old is not None:
                    del self.entries[run_id]
                    del self.ids[bisect.bisect_left(self.ids, run_id)]
                continue
            key = _key(run_id, entry)
            bisect.insort(self.everything, key)
            bisect.insort(self.by_status.setdefault(entry[1], []), key)
            bisect.insort(self.by_workflow.setdefault(entry[0], []), key)
            bisect.insort(self.by_pair.setdefault((entry[0], entry[1]), []), key)
            if intent is not None:
                self.pending[run_id] = intent[0]
                if intent[0] is not None and intent[0] != entry[1]:
                    bisect.insort(self.by_prev.setdefault(intent[0], []), key)
            if old is None:
                bisect.insort(self.ids, run_id)
            self.entries[run_id] = entry

    def status_of(self, run_id: str, statuses: set[str]) -> bool:
        """Whether the run has one of ``statuses``, or had it before a pending save."""
        if self.entries[run_id][1] in statuses:
            return True
        prev = self.pending.get(run_id)
        return prev is not None and prev in statuses

    def select(self, query: RunQuery, moved: Callable[[str], bool]) -> tuple[list[str], int]:
        """The run ids of ``query``'s page, newest first, and how many runs match in all.

        ``moved(run_id)``: a running run's latest checkpoint is not before
        ``query.updated_before`` (its entry is its last full save's time).
        """
        wanted = set(query.statuses) if query.statuses else None
        name, statuses = query.workflow_name, wanted  # the filters the lists leave to check
        lists: list[list[Key]]
        if query.run_id_prefix:
            prefix = query.run_id_prefix
            start = bisect.bisect_left(self.ids, prefix)
            tail = itertools.islice(self.ids, start, None)
            ids = itertools.takewhile(lambda r: r.startswith(prefix), tail)
            lists = [sorted(_key(r, self.entries[r]) for r in ids)]
        elif wanted is not None:
            if name is None:
                lists = [self.by_status.get(s, []) for s in sorted(wanted)]
            else:
                lists = [self.by_pair.get((name, s), []) for s in sorted(wanted)]
            previous = [self.by_prev[s] for s in sorted(wanted) if self.by_prev.get(s)]
            lists += previous
            statuses = None  # every run of these lists has a wanted status (or had it)
            if not previous:
                name = None  # nor is there a run of another workflow among them
        elif name is not None:
            lists, name = [self.by_workflow.get(name, [])], None
        else:
            lists = [self.everything]
        before = query.updated_before
        ranges = []
        for keys in lists:
            lo, hi = 0, len(keys)
            if before is not None:
                lo = bisect.bisect_left(keys, ("\x00", ""))  # no time: never before
                hi = bisect.bisect_left(keys, (before, ""))
            ranges.append((keys, lo, hi))

        check_moved = (
            before is not None
            and bool(self.by_status.get("running"))
            and (wanted is None or "running" in wanted)
        )

        def keep(key: Key) -> bool:
            entry = self.entries[key[1]]
            if name is not None and entry[0] != name:
                return False
            if statuses is not None and not self.status_of(key[1], statuses):
                return False
            return not (check_moved and entry[1] == "running" and moved(key[1]))

        twice = wanted is not None and any(self.by_prev.get(s) for s in wanted)
        simple = name is None and statuses is None and not check_moved and not twice
        start, stop = query.offset, query.offset + query.limit
        if simple and len(ranges) == 1:
            keys, lo, hi = ranges[0]
            top = hi - start
            return [k[1] for k in keys[max(lo, top - query.limit) : max(lo, top)][::-1]], max(
                0, hi - lo
            )
        merged: Iterator[Key] = heapq.merge(
            *(reversed(keys[lo:hi]) for keys, lo, hi in ranges), reverse=True
        )
        if simple:
            total = sum(max(0, hi - lo) for _, lo, hi in ranges)
            return [k[1] for k in itertools.islice(merged, start, stop)], total
        page, total = [], 0
        last: Key | None = None
        for key in merged:
            if key == last:
                continue  # a pending run, in the lists of its new and its previous status
            last = key
            if keep(key):
                if start <= total < stop:
                    page.append(key[1])
                total += 1
        return page, total


class ListingIndex:
    """``listing.jsonl`` of one JSON store: its writers' appends and its readers' pages.

    ``scan`` reads every run's entry from its ``metadata.json`` (a rebuild);
    ``report(path, reason)`` tells that the index was damaged and rebuilt.
    """

    def __init__(
        self,
        base_dir: Path,
        *,
        fsync: bool,
        file_mode: int | None,
        scan: Callable[[], dict[str, Entry]],
        report: Callable[[Path, str], None],
    ) -> None:
        self.path = base_dir / LISTING_INDEX
        self.lock_path = base_dir / LISTING_LOCK
        self.fsync = fsync
        self.file_mode = file_mode
        self._scan = scan
        self._report = report
        self._mutex = threading.Lock()
        self._state: _State | None = None

    def start_empty(self) -> None:
        """In a folder that holds no run yet, write a whole, empty log (nothing to rebuild);
        nothing in a folder this process may only read."""
        if os.path.lexists(self.path):
            return
        with os.scandir(self.path.parent) as entries:
            if any(e.is_dir(follow_symlinks=False) for e in entries):
                return  # runs, perhaps 0.1.0's: the first reader rebuilds from them
        try:
            create_with(self.path, _HEADER, fsync=self.fsync, mode=self.file_mode)
        except OSError as exc:
            if exc.errno not in _READ_ONLY:
                raise

    # ------------------------------------------------------------------ writers

    def note(self, run_id: str, entry: Entry | None, intent: Intent = None) -> None:
        """Append ``run_id``'s entry (None: it was deleted), under the lock, in one write;
        ``intent`` ``(previous status,)`` marks a line written before its save."""
        self._append(_line(run_id, entry, intent))

    def _append(self, data: bytes) -> None:
        with locked(self.lock_path, mode=self.file_mode):
            try:
                fd = append_fd(self.path, fsync=self.fsync, mode=self.file_mode)
            except LinkRefusedError:
                # A planted link is never written through: it goes, and the fresh log
                # (headerless) is rebuilt by the next reader.
                os.unlink(self.path)
                fd = append_fd(self.path, fsync=self.fsync, mode=self.file_mode)
            try:
                size = os.fstat(fd).st_size
                try:
                    write_all(fd, data)
                    if self.fsync:
                        os.fsync(fd)
                except OSError:
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, size)  # nobody else appends while the lock is held
                    raise
            finally:
                os.close(fd)
        if _crosses(size, size + len(data)):
            # The log doubled since it last crossed a mark: fold it here too, so it stays
            # within about twice the runs' lines even when no reader ever compacts it.
            with self._mutex:
                self._fresh()

    # ------------------------------------------------------------------ readers

    def page(
        self,
        query: RunQuery,
        read: Reader,
        quiet: Callable[[str], contextlib.AbstractContextManager[object]],
    ) -> tuple[list[RunMetadata], int]:
        """``query``'s runs, each confirmed by ``read``, and how many match in all.

        An entry ``read`` contradicts is corrected under ``quiet(run_id)`` (the
        run's lease lock: no commit of it is half written) and the page chosen again.
        """
        before = query.updated_before

        def moved(run_id: str) -> bool:
            found = read(run_id)
            if not isinstance(found, Listed):
                return False
            updated = found.meta.updated_at
            return updated is not None and before is not None and updated >= before

        rows: list[RunMetadata] = []
        total = 0
        for _ in range(3):
            with self._mutex:
                state = self._fresh()
                ids, total = state.select(query, moved)
                expected = {r: state.entries[r] for r in ids}
            rows, stale = [], []
            for run_id in ids:
                found = read(run_id)
                if isinstance(found, Listed):
                    if found.entry[:3] != expected[run_id][:3]:
                        stale.append(run_id)
                    else:
                        rows.append(found.meta)
                elif found is GONE:
                    stale.append(run_id)
            if not stale:
                break
            for run_id in stale:
                self._repair(run_id, read, quiet)
        return rows, total

    def _repair(
        self,
        run_id: str,
        read: Reader,
        quiet: Callable[[str], contextlib.AbstractContextManager[object]],
    ) -> None:
        """Make ``run_id``'s entry what its ``metadata.json`` says, with no commit in flight."""
        # Lock order everywhere: a run's lease lock, ``_mutex``, then ``listing.lock``.
        with quiet(run_id), self._mutex, self._reader_lock():
            found = read(run_id)
            current = self._fresh(locked_already=True).entries.get(run_id)
            if isinstance(found, Listed):
                if current is not None and current[:3] == found.entry[:3]:
                    return
                change: Entry | None = found.entry
            elif found is GONE and current is not None:
                change = None
            else:
                return
            try:
                self._append_locked(_line(run_id, change))
            except OSError as exc:
                if exc.errno not in _READ_ONLY:
                    raise
                return  # read only: the page still shows what metadata.json says
            self._fresh(locked_already=True)

    def _append_locked(self, data: bytes) -> None:
        """``_append`` for a caller that holds the lock already."""
        try:
            fd = append_fd(self.path, fsync=self.fsync, mode=self.file_mode)
        except LinkRefusedError:
            os.unlink(self.path)
            fd = append_fd(self.path, fsync=self.fsync, mode=self.file_mode)
        try:
            write_all(fd, data)
        finally:
            os.close(fd)

    def _fresh(self, *, locked_already: bool = False) -> _State:
        """The folded log up to date (call with ``_mutex``): the appended lines read, or the
        whole log after a compaction, or a rebuild when it cannot be trusted."""
        state = self._state
        try:
            fd = open_nofollow(self.path, os.O_RDONLY)
        except FileNotFoundError:
            if state is not None and state.file == (0, 0):
                return state  # kept in memory in a read-only folder, and still no file
            return self._rebuild(None, locked_already)
        except LinkRefusedError:
            return self._rebuild("the listing index is a symbolic link", locked_already)
        except OSError as exc:
            return self._rebuild(f"the listing index cannot be read ({exc})", locked_already)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return self._rebuild("the listing index is not a file", locked_already)
            file = (st.st_dev, st.st_ino)
            try:
                if state is not None and state.file == file and st.st_size >= state.offset:
                    if st.st_size > state.offset:
                        tail = _pread_all(fd, state.offset, st.st_size)
                        end = tail.rfind(b"\n") + 1
                        changes = _parse(tail[:end].split(b"\n"))
                        state.apply(changes)
                        state.offset += end
                        state.lines += len(changes)
                else:
                    state = self._load(_pread_all(fd, 0, st.st_size), file)
            except _Unbuilt:
                return self._rebuild(None, locked_already)  # a 0.1.0 folder, a deleted index
            except IndexDamaged as exc:
                return self._rebuild(f"the listing index is damaged ({exc})", locked_already)
            torn = st.st_size > state.offset
        finally:
            os.close(fd)
        self._state = state
        if torn:
            # A line cut short: being appended right now (its writer holds the lock), or cut
            # by damage (a truncation, a full disk). Read again once no writer is busy.
            if locked_already:
                why = "the listing index is damaged (its last line is cut short)"
                return self._rebuild(why, True)
            with self._reader_lock():
                return self._fresh(locked_already=True)
        if state.lines > 2 * len(state.entries) + 1000 and not locked_already:
            self._compact()
        return self._state

    @staticmethod
    def _load(raw: bytes, file: tuple[int, int]) -> _State:
        end = raw.rfind(b"\n") + 1
        if not raw.startswith(_HEADER):
            _parse(raw[:end].split(b"\n"))  # IndexDamaged unless writers' lines only
            raise _Unbuilt("it does not start with its header")
        lines = raw[len(_HEADER) : end].split(b"\n")
        changes = _parse(lines)
        entries: dict[str, Entry] = {}
        pending: dict[str, str | None] = {}
        for run_id, entry, intent in changes:
            if entry is None:
                entries.pop(run_id, None)
            else:
                entries[run_id] = entry
            if entry is not None and intent is not None:
                pending[run_id] = intent[0]
            else:
                pending.pop(run_id, None)
        return _State(entries, pending, file, end, len(changes))

    def _compact(self) -> None:
        """Fold the log to one line per run (call with ``_mutex``), under the lock."""
        with self._reader_lock():
            state = self._fresh(locked_already=True)
            self._write(state.entries, state.pending)

    def _write(self, entries: dict[str, Entry], pending: dict[str, str | None]) -> _State:
        """Replace the log with ``entries`` (newest update last), under the lock; pending
        intents stay intents."""
        ordered = sorted(entries.items(), key=lambda item: _key(*item))
        data = _HEADER + b"".join(
            _line(r, e, (pending[r],) if r in pending else None) for r, e in ordered
        )
        try:
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISLNK(os.lstat(self.path).st_mode):
                    os.unlink(self.path)  # the link itself, never what it points to
            write_atomic(self.path, data, fsync=self.fsync, mode=self.file_mode)
            st = os.lstat(self.path)
            file, offset = (st.st_dev, st.st_ino), len(data)
        except OSError as exc:
            if exc.errno not in _READ_ONLY:
                raise
            # A folder this process may only read: the index is kept in memory, and what
            # writers with more rights append to the file there is read as it comes.
            file, offset = _follow(self.path)
        self._state = _State(dict(entries), dict(pending), file, offset, len(entries))
        return self._state

    def _reader_lock(self) -> contextlib.AbstractContextManager[object]:
        """``listing.lock`` for a reader; none in a folder this process may only read."""
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(locked(self.lock_path, mode=self.file_mode))
        except OSError as exc:
            if exc.errno not in _READ_ONLY:
                raise
        return stack

    def _rebuild(self, why: str | None, locked_already: bool) -> _State:
        """Every run's entry from its ``metadata.json``, merged with the log's readable lines
        (a newer checkpoint wins), written as a fresh log (call with ``_mutex``)."""
        if why is not None:
            self._report(self.path, f"{why}; rebuilt from the runs' metadata.json")
        scanned = self._scan()
        context = contextlib.nullcontext() if locked_already else self._reader_lock()
        with context:
            logged = _readable_lines(self.path)
            if why is None and logged is not None and logged[0]:
                # Rebuilt by another reader meanwhile: trust it.
                with contextlib.suppress(IndexDamaged, OSError):
                    st = os.lstat(self.path)
                    raw = _read_plain(self.path)
                    if raw is not None:
                        self._state = self._load(raw, (st.st_dev, st.st_ino))
                        return self._state
            pending: dict[str, str | None] = {}
            for run_id, entry, intent in logged[1] if logged is not None else []:
                have = scanned.get(run_id)
                if entry is None:
                    if have is not None and not self._exists(run_id):
                        del scanned[run_id]
                        pending.pop(run_id, None)
                elif have is None or (entry[3] or 0) > (have[3] or 0):
                    scanned[run_id] = entry
                    if intent is not None:
                        pending[run_id] = intent[0]
                    else:
                        pending.pop(run_id, None)
                elif intent is None and entry == have:
                    pending.pop(run_id, None)  # the save it announced is on disk
            return self._write(scanned, pending)

    def _exists(self, run_id: str) -> bool:
        return os.path.lexists(self.path.parent / run_id)


_READ_ONLY = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
"""Why a reader may be unable to write the index: it then keeps it in memory."""


def _follow(path: Path) -> tuple[tuple[int, int], int]:
    """(file identity, size) of the log as it is now; ((0, 0), 0) when there is none."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return (0, 0), 0
    if not stat.S_ISREG(st.st_mode):
        return (0, 0), 0
    return (st.st_dev, st.st_ino), st.st_size


_FIRST_MARK = 8 << 20


def _crosses(before: int, after: int) -> bool:
    """Whether the log's size passed a mark (8 MiB, 16 MiB, 32 MiB, ...) between the two."""
    if after < _FIRST_MARK:
        return False
    mark = _FIRST_MARK
    while mark * 2 <= after:
        mark *= 2
    return before < mark <= after


def _pread_all(fd: int, start: int, stop: int) -> bytes:
    chunks = []
    while start < stop:
        chunk = os.pread(fd, stop - start, start)
        if not chunk:
            break
        chunks.append(chunk)
        start += len(chunk)
    return b"".join(chunks)


def _read_plain(path: Path) -> bytes | None:
    """The log's bytes when it is a regular file (never through a link), else None."""
    try:
        fd = open_nofollow(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        return _pread_all(fd, 0, st.st_size)
    finally:
        os.close(fd)


def _readable_lines(path: Path) -> tuple[bool, list[Change]] | None:
    """(whether the log is whole and trusted, its lines that decode) — each line on its own,
    for a rebuild that keeps whatever writers appended; None when there is no plain log."""
    raw = _read_plain(path)
    if raw is None:
        return None
    end = raw.rfind(b"\n") + 1
    good = raw.startswith(_HEADER) and end == len(raw)
    out = []
    for line in raw[:end].split(b"\n"):
        if not line or line == _HEADER[:-1]:
            continue
        try:
            out.append(_decode(json.loads(line)))
        except (ValueError, RecursionError, IndexDamaged):
            good = False
    return good, out
