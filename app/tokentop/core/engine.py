"""The engine: finds the files of both sources, reads them (cold scan on both cores, then incrementally),
prices calls and keeps the cube. No UI, no printing: callers render its view models.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterable
from datetime import tzinfo
from pathlib import Path
from typing import Any

import msgspec

from . import claude_code, internal_log
from .aggregate import CellKey, Cube
from .filters import DayNamer, Filter
from .ledger import Ledger, LedgerBusy, LedgerUnreachable, Snapshot
from .pricing import PriceBook
from .records import CLAUDE_CODE, Call
from .report import Groups, build_report, unfiltered_groups
from .tail import TAIL_BYTES, FileState, new_state, poll, read_complete
from .views import SESSION_ROWS, active_block, dashboard_filter
from .warnings import UNREADABLE_FILES, Warnings

CLAUDE = "claude"
INTERNAL_KIND = "internal"
#: Below this many bytes a cold scan stays in one process (forking costs more than it saves).
PARALLEL_MIN_BYTES = 24 << 20

Progress = Callable[[int, int, int, int], None]  # files done, files total, bytes done, bytes total


class Sources(msgspec.Struct):
    """Where to read: Claude config dirs (each holding ``projects/``) and the app's data root."""

    claude_dirs: list[Path] = msgspec.field(default_factory=list)
    data_root: Path | None = None
    internal_project: str | None = None
    #: Claude Code folders as last listed (see `claude_code.discover_files`); a warm start loads them.
    listings: dict[str, claude_code.Listing] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        # Real paths: the ledger scopes calls by folder, and a symlinked ~/.claude must not look like a new root.
        self.claude_dirs = [Path(d).expanduser().resolve() for d in self.claude_dirs]
        if self.data_root is not None:
            self.data_root = Path(self.data_root).expanduser().resolve()

    @property
    def claude_roots(self) -> list[Path]:
        """The ``projects/`` folders."""
        return claude_code.projects_roots(self.claude_dirs)

    @property
    def project_for_internal(self) -> str:
        """Project of internal rows without a ``project`` field: the setting, else the data root's name."""
        if self.internal_project:
            return self.internal_project
        if self.data_root is not None:
            return Path(self.data_root).resolve().name or "internal"
        return "internal"

    def discover(self, stats: dict[str, os.stat_result] | None = None) -> list[tuple[str, int, str]]:
        """(path, size, kind) of every input file; ``stats`` receives each file's stat."""
        files = [(p, s, CLAUDE) for p, s in claude_code.discover_files(self.claude_roots, stats, self.listings)]
        if self.data_root is not None:
            files += [(p, s, INTERNAL_KIND) for p, s in internal_log.discover_files(self.data_root, stats)]
        return files

    def kind_of(self, path: str) -> str | None:
        """Which reader a changed path belongs to, or None when it is not an input file."""
        if not path.endswith(".jsonl"):
            return None
        if self.data_root is not None and os.path.basename(path) == internal_log.LOG_NAME:
            agents = str(internal_log.agents_dir(self.data_root))
            if os.path.dirname(os.path.dirname(path)) == agents:
                return INTERNAL_KIND
        for root in self.claude_roots:
            if path.startswith(str(root) + os.sep):
                return CLAUDE
        return None


def price_call(book: PriceBook, c: Call) -> float | None:
    """Cost of one call: Claude Code priced by us; internal rows as logged (priced by us only if missing)."""
    if c.source == CLAUDE_CODE:
        return book.cost(
            c.model, c.ts, c.input_tokens, c.cache_creation_tokens - c.cache_write_1h, c.cache_write_1h,
            c.cache_read_tokens, c.output_tokens, web_search_requests=c.web_search_requests,
            speed=c.speed, geo=c.geo,
        )
    if c.cost is not None:
        return c.cost
    return book.cost(c.model, c.ts, c.input_tokens, c.cache_creation_tokens, 0, c.cache_read_tokens,
                     c.output_tokens)


def read_file(
    path: str, kind: str, offset: int, internal_project: str, warnings: Warnings,
    limits: list[claude_code.LimitHit] | None = None, tail: bytes = b"",
) -> tuple[list[Call], int, bytes]:
    """Calls in the complete lines of ``path`` from ``offset``.

    Returns:
        The calls, the new offset, and the last bytes before it (``tail``: the bytes before ``offset`` so far).
    """
    calls: list[Call] = []
    end = offset
    try:
        for buf, end_of_buf in read_complete(path, offset):
            if kind == CLAUDE:
                calls.extend(claude_code.parse_lines(buf, path, warnings, base=end, limits=limits))
            else:
                calls.extend(internal_log.parse_lines(buf, path, internal_project, warnings, base=end))
            end = end_of_buf
            tail = (tail + buf[-TAIL_BYTES:])[-TAIL_BYTES:]
    except OSError:
        warnings[UNREADABLE_FILES] += 1
    return calls, end, tail


# --- the cold scan's worker (forked: inherits the price book) ------------------------------------------------

_worker_book: PriceBook | None = None
_worker_project = ""
_worker_tz: tzinfo | None = None


def _scan_job(files: list[tuple[str, str]]) -> bytes:
    book = _worker_book or PriceBook()
    warnings = Warnings()
    keyed: dict[str, Call] = {}
    plain: list[Call] = []
    states: list[FileState] = []
    limits: list[claude_code.LimitHit] = []
    for path, kind in files:
        st = new_state(path, kind)
        calls, st.offset, st.tail = read_file(path, kind, 0, _worker_project, warnings, limits)
        states.append(st)
        plain.extend(claude_code.dedupe(calls, keyed) if kind == CLAUDE else calls)
    out = list(keyed.values()) + plain
    for c in out:
        c.cost = price_call(book, c)
    cube = Cube(lambda c: price_call(book, c), _worker_tz)
    cube.apply(out)
    return msgspec.msgpack.encode((cube.rows(), out, dict(warnings), states, limits))


#: A forked warm start's result in two parts (`Engine._snapshot_head`, `Engine._snapshot_rest`): what the first frame
#: reads (the first view, the status line's counts) and the rest (the cube, the file states), restored after that
#: frame is drawn.
_head_decoder = msgspec.msgpack.Decoder(
    tuple[dict[str, int], list[claude_code.LimitHit], int, int, bool, int, bytes])
_snapshot_decoder = msgspec.msgpack.Decoder(
    tuple[list[tuple[Any, ...]], list[list[float]], Groups | None, list[Call], list[FileState], list[str]])


#: How old a `FirstView` may be when the UI draws it: a view is not made again as time passes (only as the data
#: or the filter change), and a 5-hour block is kept for its minute; it is ~0.3 s old, a slow machine's more.
FIRST_VIEW_MAX_AGE = 60.0


class FirstView(msgspec.Struct):
    """The dashboard's first view and 5-hour block, made by a warm start's child while the UI imported Textual
    (`Engine.first_view_for`), for the cube's version it restored."""

    version: int
    made_at: float  # the child's clock
    key: tuple[Filter, float]  # the filter and the active window (minutes) it was made for
    view: dict[str, Any]
    block: dict[str, Any] | None

    def fits(self, version: int, flt: Filter, now: float, active_window_minutes: float) -> bool:
        """Whether it is the view of ``flt`` over this version of the cube, made at most `FIRST_VIEW_MAX_AGE`
        before ``now``."""
        return (version == self.version and self.key == (flt, active_window_minutes)
                and 0 <= now - self.made_at < FIRST_VIEW_MAX_AGE)


#: How long the UI waits for a forked warm start before doing it itself.
CHILD_WARM_START_TIMEOUT = 120.0
#: How long a forked warm start's result, once its first view is in (`Engine.head_ready`), waits for the UI to
#: draw it (`Engine.first_drawn`) before the rest is restored anyway (seconds).
FIRST_FRAME_WAIT = 2.0


#: How much nicer than the app its scan workers run (see `_scan_worker_started`).
SCAN_WORKER_NICE = 5


def _scan_worker_started() -> None:
    """A scan worker, forked from the app, takes signals as a new process does. Inherited, asyncio's handlers
    (`watch` sets one for SIGTERM, a Textual app may too) made a worker ignore the SIGTERM with which the pool
    ends it, so the scan hung at its end; and its wakeup fd, the parent's event loop's, relayed that SIGTERM to
    the parent, which then stopped following the files.

    It also yields the CPU to the app (`SCAN_WORKER_NICE`): one worker per core leaves none to the process that
    merges their results and writes the ledger, a stage every result passes through in turn. At equal priority
    it got a third of a core's time and fell behind (each result waited ~10 ms to be picked up, and what was
    left piled up for the end, when the workers were done and a core idled); niced, the workers take what the
    app leaves."""
    import signal

    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    with contextlib.suppress(AttributeError, OSError):  # no os.nice (Windows): as the app
        os.nice(SCAN_WORKER_NICE)


#: Linux's ``F_SETPIPE_SZ`` and the size asked for (the most an unprivileged process gets by default).
_F_SETPIPE_SZ, RESULTS_PIPE_BYTES = 1031, 1 << 20


def _widen_results_pipe(pool: Any) -> None:
    """Linux: the pipe the scan workers send their results through holds 1 MB instead of 64 KB. A job's result
    (~1.3 MB) is read by the pool's result thread, which needs the GIL for every chunk it takes: while this
    thread is busy (merging, writing the ledger), a worker whose result filled the pipe waited, not scanning
    (medium corpus with the ledger: ~190 ms of the workers' time blocked in sending, ~70 ms with 1 MB)."""
    try:
        fd = pool._outqueue._reader.fileno()
    except AttributeError:  # another pool: its pipe as it is
        return
    _widen_pipe(fd)


def _widen_pipe(fd: int) -> None:
    """Linux: the pipe whose end ``fd`` is holds `RESULTS_PIPE_BYTES` (elsewhere, or where the system allows less:
    as it was)."""
    import fcntl

    try:
        fcntl.fcntl(fd, _F_SETPIPE_SZ, RESULTS_PIPE_BYTES)
    except (AttributeError, OSError):  # another platform, or a lower limit: the default pipe works too
        pass


def _die_with_parent() -> None:
    """Linux: this forked process is killed when its parent dies (nothing keeps writing the ledger after a
    kill -9 of the app)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _cells_of(snap: Snapshot, ledger: Ledger, day_of: DayNamer) -> dict[CellKey, list[float]]:
    try:
        return snap.cell_dict()
    except msgspec.DecodeError:  # a damaged snapshot: fold the rollup
        return ledger.cells(day_of)


_job_decoder = msgspec.msgpack.Decoder(
    tuple[list[list[Any]], list[Call], dict[str, int], list[FileState], list[claude_code.LimitHit]])


class Engine:
    """Cube + file states + warnings for one set of sources."""

    def __init__(self, sources: Sources, book: PriceBook | None = None, tz: tzinfo | None = None,
                 ledger: Ledger | None = None) -> None:
        self.sources = sources
        self.book = book or PriceBook()
        self.cube = Cube(self.price, tz)
        self.ledger = ledger
        #: Calls known only from the ledger (their transcript files are gone).
        self.ledger_only = 0
        if ledger is not None:
            self._read_from(ledger)
        self.warnings = Warnings()
        self.files: dict[str, FileState] = {}
        #: Calls without a dedupe key, per file: a truncated or replaced file's are taken out before it is
        #: read again (keyed calls need no such care: re-reading them merges into the same key).
        self.keyless_calls: dict[str, list[Call]] = {}
        self.lines_applied = 0
        self._discovered: set[str] = set()  # what the last full catch-up found on disk
        self._committed = False  # this run wrote to the ledger since its last snapshot
        #: Set by a caller that reads single calls by time (the TUI's 5-hour block): `start` ends by building the
        #: ledger's time index, if a first ingest left it for later, in its own thread or process, not a redraw.
        self.reads_by_time = False
        #: Set by the TUI before `start_in_child` (the date preset it opens on, its active window in minutes, its
        #: clock): the child also makes the dashboard's first view, which `first_view` then holds (`FirstView`).
        self.first_view_for: tuple[str, float, Callable[[], float]] | None = None
        self.first_view: FirstView | None = None
        #: A forked warm start (`start_in_child`): set once what the first frame reads is in (the first view, the
        #: warnings, the count of files; the cube is still empty: `restoring`), or once all is in. The rest (cube,
        #: file states) is restored when the UI has drawn that frame (``first_drawn``), off its path: decoding it
        #: takes the GIL for 10-50 ms, which the UI needs then.
        self.head_ready = threading.Event()
        self.first_drawn = threading.Event()
        self.restoring = False
        self._files_coming = 0  # files_watched() while `restoring`
        #: The last update's commit found the ledger locked by another tokentop for longer than it waits: its calls
        #: are counted (in the cube) and not yet stored; the next update reads them again and stores them. Also
        #: while a PostgreSQL ledger cannot be reached (`ledger_trouble` says so): then nothing new is read until
        #: it is back (a call is merged with its stored copy, which only the ledger has after a warm start).
        self.ledger_behind = False
        self.ledger_trouble: LedgerBusy | None = None  # why (LedgerUnreachable: the server is away)
        #: A rescan (`r`) asked for and not yet stored: the next update that reaches the ledger does it.
        self._rescan_due = False
        self._finishing: threading.Thread | None = None  # see finish_ingest
        self._finish_error: BaseException | None = None
        #: The latest plan-limit hit Claude Code reported, per window (five_hour, seven_day, unknown).
        self.limit_hits: dict[str, claude_code.LimitHit] = {}
        #: Held while the cube changes and while views read it (scan and live updates run in threads).
        self.lock = threading.RLock()

    def _read_from(self, ledger: Ledger | Any) -> None:
        """The cube reads what it does not hold (single calls, sums by task) from the ledger."""
        self.cube.lookup = ledger.get
        self.cube.call_source = ledger.calls
        self.cube.newest_source = ledger.newest_calls
        self.cube.task_source = ledger.task_sums
        self.cube.task_reader = ledger.task_sums_later

    def ledger_notice(self) -> str | None:
        """Why the latest calls are not stored yet (`ledger_behind`), for a status line; None when they are."""
        if not self.ledger_behind:
            return None
        if isinstance(self.ledger_trouble, LedgerUnreachable):
            return str(self.ledger_trouble)
        return ("another tokentop keeps the ledger locked: the latest calls are counted here and stored at the next "
                "change")

    def price(self, c: Call) -> float | None:
        """Price one call with this engine's book."""
        return price_call(self.book, c)

    def note_limits(self, hits: Iterable[claude_code.LimitHit]) -> None:
        """Keep the latest limit hit per window."""
        for h in hits:
            prev = self.limit_hits.get(h.window)
            if prev is None or h.ts > prev.ts:
                self.limit_hits[h.window] = h

    def _meta(self) -> dict[str, Any]:
        """What the ledger keeps besides calls: warning counters and the latest limit hits."""
        hits = [msgspec.to_builtins(h) for h in self.limit_hits.values()]
        return {"warnings": dict(self.warnings), "limit_hits": hits}

    def limit_hits_json(self) -> list[dict[str, Any]]:
        """The latest limit hits, for `report --json` and the TUI."""
        return [msgspec.structs.asdict(h) for h in sorted(self.limit_hits.values(), key=lambda h: -h.ts)]

    # -- start ------------------------------------------------------------------------------------------

    def start(self, workers: int | None = None, progress: Progress | None = None) -> None:
        """Warm start from the ledger and read only what is new; else a cold scan."""
        if self.ledger is not None and self.ledger.has_calls():
            fresh = self._load_ledger()
            self.update()
            with self.lock:
                self._count_ledger_only()
                if not fresh or self._committed:
                    self.save_snapshot()
            if progress:
                progress(1, 1, 1, 1)
        else:
            try:
                self.scan(workers=workers, progress=progress, finish=False)
                self.save_snapshot()  # made while the ledger builds its indexes
            finally:
                self.finish_ingest()
        if self.reads_by_time and self.ledger is not None:
            self.ledger.index_times()

    def _count_ledger_only(self) -> None:
        """Calls of the files the last full catch-up did not find any more: they are kept only in the ledger."""
        assert self.ledger is not None
        gone = [p for p in self.files if p not in self._discovered and not os.path.exists(p)]
        self.ledger_only = self.ledger.ledger_only(gone)

    def save_snapshot(self) -> None:
        """Leave the cube's day cells and the file states in the ledger: the next start, if nothing was written
        in between, loads them instead of folding the rollup again. Not while calls counted here are not stored
        yet (`ledger_behind`): the snapshot would count them, and its offsets skip them, for the next start. Only
        a SQLite ledger keeps one (the PostgreSQL one's is not made to be dropped)."""
        if self._snapshot_kept:
            with self.lock:  # no update commits between making it and storing it
                snap = Snapshot.of(self.cube.cells, self.files.values(), self.sources.listings,
                                   unfiltered_groups(self.cube))
                self.finish_ingest()
                self.ledger.save_snapshot(self.cube.day_of, snap)
                self._committed = False

    @property
    def _snapshot_kept(self) -> bool:
        """Whether `save_snapshot` would store one now."""
        return isinstance(self.ledger, Ledger) and not self.ledger_behind

    @property
    def snapshot_due(self) -> bool:
        """Whether this run stored calls since the ledger's snapshot was last saved (`save_snapshot`)."""
        return self._committed and self._snapshot_kept

    def finish_ingest(self) -> None:
        """Wait for what a cold scan left to a thread (`scan` with ``finish=False``): the ledger's indexes built,
        its journal back to WAL. Raises what that failed with."""
        thread, self._finishing = self._finishing, None
        if thread is not None:
            thread.join()
            error, self._finish_error = self._finish_error, None
            if error is not None:
                raise error

    def _finish_ledger(self) -> None:
        assert self.ledger is not None
        try:
            self.ledger.build_indexes()
            self.ledger.bulk(False)
        except BaseException as e:  # noqa: BLE001 - raised again by finish_ingest, in the caller's thread
            self._finish_error = e

    def _load_ledger(self) -> bool:
        """The cube, file states and counters as the ledger has them (what a warm start begins with).

        Returns:
            Whether they came from a snapshot of the current ledger, with its report groups (else the rollup
            was folded again, or the groups are missing: a new snapshot is due).
        """
        assert self.ledger is not None
        with self.lock:  # everything read before anything changes: a ledger that fails midway leaves all as it was
            self.ledger.others_wrote()  # the baseline: what is loaded now is all there is
            snap = self.ledger.snapshot(self.cube.day_of)
            cells = self.ledger.cells(self.cube.day_of) if snap is None else None
            states = self.ledger.file_states() if snap is None else snap.states()
            warnings = self.ledger.warnings()
            hits = msgspec.convert(self.ledger.meta("limit_hits") or [], list[claude_code.LimitHit])
            self.cube.clear()
            if cells is not None:
                self.cube.cells = cells
            else:
                assert snap is not None
                self.cube.defer_cells(functools.partial(_cells_of, snap, self.ledger, self.cube.day_of))
                self.sources.listings = snap.listings
            self.files = {s.path: s for s in states}
            self.cube.version += 1
            if snap is not None and snap.groups is not None:
                self.cube.memo = (self.cube.version, snap.groups)
            self.warnings.clear()
            self.warnings.update(warnings)
            self.note_limits(hits)
            return snap is not None and snap.groups is not None  # else a snapshot (with groups) is saved

    def start_in_child(self) -> threading.Thread:
        """`start` in a forked process, its result shipped back: a thread in this process would fight the
        caller (the UI importing Textual and drawing) for the GIL and take several times longer. The returned
        thread is done when the engine holds the result; if the child fails, it runs `start` here instead.
        Needs a SQLite ledger (the child opens its own connection) and ``os.fork``."""
        assert isinstance(self.ledger, Ledger)
        r, w = os.pipe()
        # The result (1.4 MB on the medium corpus, 4 on the large) is read by a thread that needs the GIL for each
        # chunk, which the UI holds while it imports Textual: in 64 KB chunks, it came in up to 0.2 s late.
        _widen_pipe(r)
        pid = os.fork()
        if pid == 0:  # the child: its own connection (a connection never crosses a fork), then the snapshot
            os.close(r)
            code = 1
            try:
                _die_with_parent()
                self.ledger = self.ledger.reopen()
                self._read_from(self.ledger)
                self.start()
                with os.fdopen(w, "wb") as out:  # (the first part on its way before the rest is encoded)
                    out.write(self._snapshot_head())
                    out.flush()
                    out.write(self._snapshot_rest())
                code = 0
            finally:
                os._exit(code)
        os.close(w)

        def receive() -> None:
            import select
            import signal
            import time

            chunks, deadline, head = [], time.monotonic() + CHILD_WARM_START_TIMEOUT, False
            with os.fdopen(r, "rb", buffering=0) as f:
                while time.monotonic() < deadline:
                    if not select.select([f], [], [], 1.0)[0]:
                        continue
                    chunk = f.read(1 << 20)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    if not head:  # the first part, restored as soon as it is in (the rest is still coming)
                        data = b"".join(chunks)
                        size = 8 + int.from_bytes(data[:8], "little") if len(data) >= 8 else 1 << 62
                        chunks = [data]
                        if len(data) >= size:
                            self._restore_head(data[8:size])
                            self.head_ready.set()
                            chunks, head = [data[size:]], True
                else:  # a child stuck (say, on a lock it inherited mid-use): never leave the UI waiting
                    os.kill(pid, signal.SIGKILL)
                    head = False
            _, status = os.waitpid(pid, 0)
            if os.waitstatus_to_exitcode(status) != 0 or not head:
                self.start()  # (all again, whatever came)
                self.restoring = False
                self.head_ready.set()
                return
            if self.first_view is not None:  # the UI draws it first (else nothing on screen waits)
                self.first_drawn.wait(FIRST_FRAME_WAIT)
            self._restore(b"".join(chunks))

        t = threading.Thread(target=receive, name="tokentop-warm-start", daemon=True)
        t.start()
        return t

    def _first_view(self) -> bytes:
        """In a warm start's child, for `first_view_for`: the dashboard's first view and its 5-hour block, as the
        UI would make them now (pickled: a view's tuples stay tuples); else nothing."""
        if self.first_view_for is None:
            return b""
        import pickle

        preset, window, clock = self.first_view_for
        now = clock()
        flt = dashboard_filter(self.cube.tz, preset, now)
        view = self.dashboard(flt, now=now, active_window_minutes=window, max_sessions=SESSION_ROWS)
        return pickle.dumps((now, (flt, window), view, active_block(self.cube, flt, now)))

    def _snapshot_head(self) -> bytes:
        """What `start` left in memory, for `_restore_head` in another process (its length first, 8 bytes); then
        `_snapshot_rest`."""
        head = msgspec.msgpack.encode((dict(self.warnings), list(self.limit_hits.values()), self.ledger_only,
                                       self.lines_applied, self.ledger_behind, len(self.files), self._first_view()))
        return len(head).to_bytes(8, "little") + head

    def _snapshot_rest(self) -> bytes:
        """The rest of what `start` left in memory, for `_restore`."""
        calls = [*self.cube.by_key.values(), *self.cube.plain]
        cells = self.cube.cells  # keys and sums apart: the other end makes the cells in one dict(zip(...))
        memo = self.cube.memo  # the unfiltered report's groups, when current (from the ledger's snapshot)
        groups = memo[1] if memo is not None and memo[0] == self.cube.version else None
        return msgspec.msgpack.encode(
            (list(cells), list(cells.values()), groups, calls, list(self.files.values()), sorted(self._discovered)))

    def _restore_head(self, data: bytes) -> None:
        """The first part of a child's result: the first view, for the version the cube has once `_restore` has
        filled it (it is that version from now on, `restoring` until then), and the counts the status line shows."""
        warnings, hits, ledger_only, lines, behind, files, first = _head_decoder.decode(data)
        with self.lock:  # what the child holds replaces what this engine held (nothing: it read nothing yet)
            self.cube.clear()  # (a new version)
            self.restoring = True
            self._files_coming = files
            if first:  # (for this version of the cube: a change before the first frame makes it again)
                import pickle

                self.first_view = FirstView(self.cube.version, *pickle.loads(first))
            self.warnings.update(warnings)
            self.note_limits(hits)
            self.ledger_only, self.lines_applied, self.ledger_behind = ledger_only, lines, behind

    def _restore(self, data: bytes) -> None:
        """The rest of a child's result (after `_restore_head`): the cube, as of the version it took then."""
        keys, sums, groups, calls, states, discovered = _snapshot_decoder.decode(data)
        with self.lock:
            version = self.cube.version
            # one dict(zip(...)): half the time of merging rows (`absorb`), ~4 instead of ~8 ms on the medium corpus
            self.cube.cells = dict(zip(keys, sums, strict=True))
            self.cube.absorb((), calls)
            self.cube.version = version  # what the first view was made from, now here
            # (what was made of the empty cube meanwhile, under this version, is made again)
            self.cube.plan = None
            # decoded in ~2 ms; made again from the cells: ~22 ms of a redraw
            self.cube.memo = None if groups is None else (self.cube.version, groups)
            self.files = {st.path: st for st in states}
            self._discovered = set(discovered)
            self.restoring = False
            if self.ledger is not None:
                self.ledger.others_wrote()  # the child's commits are in what was just restored

    def rescan(self, progress: Progress | None = None) -> None:
        """Read every file again from the start (the ledger keeps what deleted files held)."""
        if self.ledger is None:
            with self.lock:
                self.cube.clear()
                self.files.clear()
                self.keyless_calls.clear()
                self.warnings.clear()
            self.scan(progress=progress)
            return
        self._rescan_due = True  # done by this update; by a later one if the ledger is locked or away now
        self.update()
        if progress:
            progress(1, 1, 1, 1)

    # -- cold scan ----------------------------------------------------------------------------------------

    def scan(self, workers: int | None = None, progress: Progress | None = None, finish: bool = True) -> None:
        """Read every file from the start; uses every core for large histories.

        With a ledger, its end (building the indexes left out during the ingest, going back to WAL: a few tenths
        of a second on a 2 GB history, when one core would be idle) runs in a thread; ``finish=False`` returns
        without waiting for it, so the caller can make the snapshot meanwhile (then `finish_ingest`)."""
        files = self.sources.discover()
        files.sort(key=lambda f: -f[1])  # largest first: the batches balance
        total_bytes = sum(s for _, s, _ in files)
        if any(k == CLAUDE for _, _, k in files):
            self.book.prepare()
        workers = workers or min(os.cpu_count() or 1, 4)
        jobs = _batches(files, workers * 8, taper=workers)
        done_files = done_bytes = 0
        global _worker_book, _worker_project, _worker_tz
        _worker_book, _worker_project, _worker_tz = self.book, self.sources.project_for_internal, self.cube.tz
        job_files = [[(p, k) for p, _, k in job] for job in jobs]
        with contextlib.ExitStack() as stack:
            if workers > 1 and total_bytes >= PARALLEL_MIN_BYTES and len(jobs) > 1:
                import multiprocessing  # only large histories pay for it

                pool = stack.enter_context(multiprocessing.get_context("fork").Pool(workers, _scan_worker_started))
                _widen_results_pipe(pool)
                results: Iterable[bytes] = pool.imap_unordered(_scan_job, job_files)
            else:
                results = map(_scan_job, job_files)
            if self.ledger is not None:  # while the workers read their first files
                self.ledger.others_wrote()  # the baseline (see `save_snapshot`)
                self.ledger.mark_rollup_stale()  # per-job commits skip it
                self.ledger.bulk(True)
                self.ledger.defer_indexes()
                self.ledger.add_paths(p for p, _, _ in files)
            for job_bytes in results:
                n_files, n_bytes = self._apply_job(job_bytes)
                done_files += n_files
                done_bytes += n_bytes
                if progress:
                    progress(done_files, len(files), done_bytes, total_bytes)
            if self.ledger is not None:  # the rollup stays stale: it is rebuilt when first read (`Ledger.cells`),
                # which a start from this scan's snapshot never does; begun while the pool shuts down
                self._finishing = threading.Thread(target=self._finish_ledger, name="tokentop-ledger-indexes")
                self._finishing.start()
        if finish:
            self.finish_ingest()

    def _apply_job(self, job_bytes: bytes) -> tuple[int, int]:
        """One scan job into the cube, then into the ledger (one transaction; outside the cube's lock, so a
        redraw meanwhile does not wait for SQLite). The workers keep scanning meanwhile: a writer thread
        instead was slower (A/B, cold `report` with ledger: 7.06 vs 6.96 s on the 2 GB corpus, 2.32 vs 2.25 s
        on 475 MB; its SQLite calls and the merge take turns at the GIL)."""
        cells, calls, warnings, states, limits = _job_decoder.decode(job_bytes)
        with self.lock:
            self.note_limits(limits)
            # for the ledger: the calls as merged, and the keys an earlier job wrote (see `Ledger.defer_indexes`)
            merged: list[Call] = []
            again: set[str] = set()
            if self.ledger is None:
                self.cube.absorb(cells, calls)
                for c in calls:
                    if c.key is None:
                        self.keyless_calls.setdefault(c.file, []).append(c)
            else:
                self.cube.absorb(cells, calls, merged, again)
            self.warnings.update(warnings)
            for st in states:
                self.files[st.path] = st
            self.lines_applied += len(calls)
            meta = self._meta() if self.ledger is not None else None
        if self.ledger is not None:
            self.ledger.commit(merged, states, meta, rollup=False, again=again)
        return len(states), sum(st.offset for st in states)

    # -- incremental --------------------------------------------------------------------------------------

    def update(self, paths: Iterable[str] | None = None) -> int:
        """Read what is new in ``paths`` (or in every known and newly discovered file).

        Returns:
            The number of calls read (before de-duplication).
        """
        try:
            return self._update(paths)
        except LedgerBusy as e:  # a lock held elsewhere, or a server away: read again (and stored) later
            self.ledger_behind, self.ledger_trouble = True, e
            return 0

    def _update(self, paths: Iterable[str] | None) -> int:
        if self.ledger is not None and (self.ledger_behind or self.ledger.others_wrote()):
            # Another tokentop on this ledger (a `report` next to the TUI) committed calls and read offsets:
            # they may replace calls this cube counts from its warm start, so start again from the ledger.
            # After a commit that found the ledger locked: what it held is read again, from the ledger's offsets.
            if self.ledger_behind:
                paths = None
            self._load_ledger()
        if self._rescan_due:
            paths = None
            with self.lock:
                self.warnings.clear()
                for path, st in self.files.items():  # an unknown identity: each file reads as replaced
                    self.files[path] = msgspec.structs.replace(st, dev=-1, ino=-1)
        stats: dict[str, os.stat_result] = {}
        if paths is None:
            targets = {p: k for p, _, k in self.sources.discover(stats)}
            self._discovered = set(targets)
            for p, st in self.files.items():
                targets.setdefault(p, st.kind)
        else:
            targets = {}
            for p in paths:
                kind = self.files[p].kind if p in self.files else self.sources.kind_of(p)
                if kind is not None:
                    targets[p] = kind
        n = 0
        with self.lock:
            batch = _Batch()
            for path, kind in targets.items():
                n += self._update_file(path, kind, batch, stats.get(path))
            if self.ledger is not None and (batch.changed or batch.states or batch.reset):
                try:
                    self.ledger.commit(batch.changed, batch.states, self._meta(), batch.reset, batch.replaced)
                except LedgerBusy as e:  # another tokentop kept it locked: counted here, stored by the next update
                    self.ledger_behind, self.ledger_trouble = True, e
                    return n
                self._committed = True
        if self.ledger is not None:
            self.ledger_behind, self.ledger_trouble = False, None
            if self._rescan_due:
                with self.lock:  # transcripts Claude Code deleted since the start
                    self._count_ledger_only()
                self._rescan_due = False
        return n

    def _update_file(self, path: str, kind: str, batch: _Batch, stat: os.stat_result | None = None) -> int:
        st = self.files.get(path)
        if st is None:
            st = new_state(path, kind)
        else:
            change = poll(st, stat)
            if change is None or change.gone:
                return 0  # nothing new; a deleted file's calls stay counted
            st = change.state
            if change.reset:
                old = self.keyless_calls.pop(path, [])
                if self.ledger is not None:
                    old = self.ledger.keyless_of(path)  # committed ones (this run's included)
                    batch.reset.append(path)
                self.cube.remove(old)
        limits: list[claude_code.LimitHit] = []
        calls, st.offset, st.tail = read_file(path, kind, st.offset, self.sources.project_for_internal, self.warnings,
                                              limits, st.tail)
        self.note_limits(limits)
        self.files[path] = st
        batch.states.append(st)
        if kind == CLAUDE:
            keyed: dict[str, Call] = {}
            calls = claude_code.dedupe(calls, keyed) + list(keyed.values())
        for c in calls:
            c.cost = self.price(c)
            if c.key is None and self.ledger is None:
                self.keyless_calls.setdefault(path, []).append(c)
        batch.changed += self.cube.apply(calls, batch.replaced)
        self.lines_applied += len(calls)
        return len(calls)

    # -- views --------------------------------------------------------------------------------------------

    def report(self, flt: Filter, **kw: Any) -> dict[str, Any]:
        """The view model for ``flt`` (see `report.build_report`)."""
        with self.lock:
            return build_report(self.cube, flt, warnings=self.warnings.as_dict(), **kw)

    def totals(self, flt: Filter) -> dict[str, Any]:
        """Just the totals for ``flt`` (cheap: what `watch --json` prints after every batch)."""
        from .report import quick_totals

        with self.lock:
            return quick_totals(self.cube, flt)[0]

    def dashboard(self, flt: Filter, **kw: Any) -> dict[str, Any]:
        """The TUI's view model for ``flt`` (see `views.dashboard`)."""
        from .views import dashboard

        with self.lock:
            return dashboard(self.cube, flt, warnings=self.warnings.as_dict(), **kw)

    def files_watched(self) -> int:
        """How many input files are being followed."""
        return self._files_coming if self.restoring else len(self.files)


class _Batch(msgspec.Struct):
    """What one update changed: written to the ledger in one transaction."""

    changed: list[Call] = msgspec.field(default_factory=list)
    states: list[FileState] = msgspec.field(default_factory=list)
    reset: list[str] = msgspec.field(default_factory=list)
    replaced: list[Call] = msgspec.field(default_factory=list)


def _batches(files: list[tuple[str, int, str]], n: int, taper: int = 0) -> list[list[tuple[str, int, str]]]:
    """Split files (largest first) into at most ``n`` batches of similar byte size, greedily; the last
    ``2 * taper`` are a half and a quarter of the others' size (batches run in order: a small last one leaves
    less to wait for, on the other cores and in the ledger's last commit)."""
    n = max(1, min(n, len(files)))
    taper = min(taper, (n - 1) // 2)
    weights = [1.0] * (n - 2 * taper) + [0.5] * taper + [0.25] * taper
    batches: list[list[tuple[str, int, str]]] = [[] for _ in range(n)]
    load = [0.0] * n
    for f in files:
        i = load.index(min(load))
        batches[i].append(f)
        load[i] += f[1] / weights[i]
    return [b for b in batches if b]
