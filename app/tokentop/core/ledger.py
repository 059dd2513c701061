"""The durable ledger (SQLite): every call once, with the read state of every file, committed together.

Each applied batch (a scan job, a live update) is one transaction holding its calls *and* the offsets of the
files it read, so a crash at any point leaves either all of a batch or none of it: a restart re-reads from the
recorded offsets and de-duplication keeps the totals exact. Calls outlive their transcripts.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import json
import operator
import os
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

import msgspec

from .aggregate import BUCKET_SECONDS, CALLS, CellKey
from .claude_code import Listing
from .filters import DayNamer, tz_name
from .records import CLAUDE_CODE, INTERNAL, Call
from .report import Groups
from .tail import FileState

SCHEMA_VERSION = 3
#: How long a statement waits for another connection's lock (another tokentop committing) before it fails.
BUSY_TIMEOUT_MS = 5000

#: The columns of ``calls`` every schema has had, in their order (a change here is a change of schema 1 too).
_CALL_COLUMNS = """
    source TEXT NOT NULL,
    key TEXT NOT NULL,            -- message.id for Claude Code; <file>@<offset> for rows without one
    keyed INTEGER NOT NULL,
    ts REAL NOT NULL,
    model TEXT NOT NULL,
    project TEXT NOT NULL,
    session TEXT NOT NULL,
    mode TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_creation_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    cost REAL,                    -- NULL = unpriced
    task TEXT NOT NULL,
    cache_write_1h INTEGER NOT NULL,
    web_search_requests INTEGER NOT NULL,
    speed TEXT NOT NULL,
    geo TEXT NOT NULL,
"""

_SCHEMA_V1 = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS calls ({_CALL_COLUMNS}
    file TEXT NOT NULL,
    offset INTEGER NOT NULL,
    priced_with TEXT NOT NULL,
    root TEXT NOT NULL            -- the source folder the file was under (what a run reads is scoped by it)
);
CREATE UNIQUE INDEX IF NOT EXISTS calls_key ON calls (source, key);
CREATE INDEX IF NOT EXISTS calls_ts ON calls (ts);
CREATE INDEX IF NOT EXISTS calls_keyless_file ON calls (file) WHERE keyed = 0;
-- The cube, per quarter hour (time-zone free), kept in step with calls: a warm start reads this, not calls.
CREATE TABLE IF NOT EXISTS rollup (
    root TEXT NOT NULL, bucket INTEGER NOT NULL, source TEXT NOT NULL, model TEXT NOT NULL, project TEXT NOT NULL,
    session TEXT NOT NULL, mode TEXT NOT NULL,
    input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, cache_creation_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL, calls INTEGER NOT NULL, cost REAL NOT NULL, unpriced INTEGER NOT NULL,
    local_calls INTEGER NOT NULL, last REAL NOT NULL,
    PRIMARY KEY (root, bucket, source, model, project, session, mode)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, kind TEXT NOT NULL, dev INTEGER NOT NULL, ino INTEGER NOT NULL,
    offset INTEGER NOT NULL, size INTEGER NOT NULL, mtime REAL NOT NULL, tail BLOB NOT NULL
) WITHOUT ROWID;
"""
#: The indexes of ``calls`` (schema 3). The first cold scan into an empty ledger drops them and builds them once at
#: its end (`Ledger.defer_indexes`): keeping them up to date row by row is a third of that scan's ledger work.
#: ``calls_ts`` is built when a query by time first needs it (`Ledger.index_times`), not at the scan's end: a
#: `report` reads no single calls by time, and a TUI builds it in its scan thread. ``calls_keyless_file`` is kept
#: (`KEPT_IN_BULK`): it holds the few keyless rows only, so its upkeep is next to nothing, while building it
#: at the end reads the whole table again (27 ms of a 193k-call ledger's finish, after the scan, on one core).
_INDEXES = {
    # key first: it tells nearly every pair of entries apart, so building the index compares less
    "calls_key": "CREATE UNIQUE INDEX IF NOT EXISTS calls_key ON calls (key, source)",
    "calls_ts": "CREATE INDEX IF NOT EXISTS calls_ts ON calls (ts)",
    "calls_keyless_file": "CREATE INDEX IF NOT EXISTS calls_keyless_file ON calls (path_id) WHERE keyed = 0",
}
KEPT_IN_BULK = frozenset({"calls_keyless_file"})

#: ``calls`` from schema 3 on: the file a call came from (and the source folder it is under) and the price version
#: are ids into ``paths`` and ``prices``, not text on every row (which was half of a row's bytes). A rowid table with
#: a unique index, not WITHOUT ROWID: rows append, only the small key index takes random inserts.
_CALLS_V3 = f"""CREATE TABLE calls_v3 ({_CALL_COLUMNS}
    path_id INTEGER NOT NULL,     -- paths.id: the file it was read from
    offset INTEGER NOT NULL,
    price_id INTEGER NOT NULL     -- prices.id: the price version its cost comes from
)"""
#: A schema-2 ``calls`` (or ``calls_again``) row as a schema-3 one (paths and prices filled first).
_CALLS_V2_TO_V3 = """SELECT c.source, c.key, c.keyed, c.ts, c.model, c.project, c.session, c.mode, c.input_tokens,
    c.output_tokens, c.cache_creation_tokens, c.cache_read_tokens, c.cost, c.task, c.cache_write_1h,
    c.web_search_requests, c.speed, c.geo, p.id, c.offset, pr.id
    FROM {table} c JOIN paths p ON p.path = c.file JOIN prices pr ON pr.name = c.priced_with"""

#: version -> SQL that upgrades a ledger from version-1 to version (a new ledger is made at 1 and upgraded).
MIGRATIONS: dict[int, str] = {
    # 2: the day-level cube and file states of the last finished run, so an unchanged ledger starts without
    # folding the rollup again. `generation` counts write transactions; a snapshot of an older one is ignored.
    2: """
CREATE TABLE IF NOT EXISTS snapshot (scope TEXT PRIMARY KEY, generation INTEGER NOT NULL, body BLOB NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('generation', '0');
""",
    # 3: file paths (with their source folder) and price versions stored once, rows refer to them by id. A
    # first ingest killed under schema 2 may have left its repeated keys in calls_again: folded in here.
    3: f"""
CREATE TABLE paths (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, root TEXT NOT NULL);
CREATE TABLE prices (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS calls_again AS SELECT * FROM calls LIMIT 0;
INSERT INTO paths (path, root) SELECT file, max(root) FROM (SELECT file, root FROM calls UNION ALL
    SELECT file, root FROM calls_again) GROUP BY file;
INSERT INTO prices (name) SELECT priced_with FROM calls UNION SELECT priced_with FROM calls_again;
{_CALLS_V3};
INSERT INTO calls_v3 {_CALLS_V2_TO_V3.format(table="calls")};
CREATE UNIQUE INDEX calls_v3_key ON calls_v3 (key, source);
INSERT OR REPLACE INTO calls_v3 {_CALLS_V2_TO_V3.format(table="calls_again")};
DROP INDEX calls_v3_key;
DROP TABLE calls_again;
DROP TABLE calls;
ALTER TABLE calls_v3 RENAME TO calls;
{"".join(f"{sql};" for sql in _INDEXES.values())}
UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation';
INSERT OR REPLACE INTO meta (key, value) VALUES ('rowid_epoch', '3');
""",
}
#: ``meta`` 'rowid_epoch' changes whenever a migration numbers the calls' rowids anew (what `team.Syncer` counts by).

_BUMP = "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"

#: What `_call` reads, in its order: a call's columns, with the path of its file and the name of its price version.
_COLS = ("source", "key", "keyed", "ts", "model", "project", "session", "mode", "input_tokens", "output_tokens",
         "cache_creation_tokens", "cache_read_tokens", "cost", "task", "cache_write_1h", "web_search_requests",
         "speed", "geo", "paths.path", "offset", "prices.name")
#: ``calls`` with the ids resolved; ``root`` in a condition is then the file's source folder.
CALLS_FROM = "calls JOIN paths ON paths.id = calls.path_id JOIN prices ON prices.id = calls.price_id"


def calls_column(name: str) -> str:
    """A call's column by the name the team database gives it (a ``calls`` column, or ``file``, ``root`` and
    ``priced_with``, which schema 3 keeps in ``paths`` and ``prices``), as SQL over `CALLS_FROM`."""
    return {"file": "paths.path", "root": "paths.root", "priced_with": "prices.name"}.get(name, f'calls."{name}"')
_ROLLUP_DELTA = """INSERT INTO rollup VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
    ON CONFLICT DO UPDATE SET input_tokens = input_tokens + excluded.input_tokens,
        output_tokens = output_tokens + excluded.output_tokens,
        cache_creation_tokens = cache_creation_tokens + excluded.cache_creation_tokens,
        cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens, calls = calls + excluded.calls,
        cost = cost + excluded.cost, unpriced = unpriced + excluded.unpriced,
        local_calls = local_calls + excluded.local_calls, last = max(last, excluded.last)"""
#: What every row binds, in this order: these fields of its Call (`_shared`, one C call), then its ledger key,
#: project and path id.
_SHARED = ("ts", "model", "session", "mode", "input_tokens", "output_tokens", "cache_creation_tokens",
           "cache_read_tokens", "cost", "task", "cache_write_1h", "offset")
_shared = operator.attrgetter(*_SHARED)
_BOUND = (*_SHARED, "key", "project", "path_id")
#: The other columns: bound too for a row of the general shape, constants in the statement for the usual ones
#: (`Ledger._rows`): sqlite3 binds each parameter of each row, the largest part of an insert's cost after
#: SQLite's own (22 -> 15 parameters a row, the unread path had been bound too: ~30 % less CPU per Claude Code
#: row in a microbenchmark).
_REST = ("source", "keyed", "web_search_requests", "speed", "geo", "price_id")
#: The connection's page cache (negative: KiB).
CACHE_KIB = -65536
#: While an index is built: sort runs of 1 MB (the page cache's size sets them) on up to this many helper threads
#: besides the caller: a 193k-call ledger's key index 0.35 -> 0.16 s (one 64 MB run sorts slower than 1 MB
#: runs merged, even on one thread: 0.23 s).
SORT_THREADS, SORT_CACHE_KIB = 2, -1000
#: Rows per INSERT statement when many are written: SQLite runs its insert program once per statement, so a
#: statement of 64 rows costs ~20 % less CPU per row than one row per statement (a cold ingest's largest part).
ROWS_PER_INSERT = 64


@functools.cache
def _upsert(table: str, n: int, rest: tuple[Any, ...] | None) -> str:
    """``INSERT OR REPLACE`` of ``n`` rows, each binding `_BOUND` and then `_REST` (``rest`` None), or with
    ``rest`` as the constants of `_REST`. Rows are inserted in order: a key repeated in a statement ends as its
    last row, as with one statement per row."""
    consts = [] if rest is None else [str(v) if isinstance(v, int) else "'" + v.replace("'", "''") + "'"
                                      for v in rest]
    one = f"({', '.join(['?'] * (len(_BOUND) + len(_REST) - len(consts)) + consts)})"
    return f"INSERT OR REPLACE INTO {table} ({', '.join(_BOUND + _REST)}) VALUES {', '.join([one] * n)}"


_SELECT = f"SELECT {', '.join(_COLS)} FROM {CALLS_FROM}"
#: A ledger's sums by task and what a filter tests (`task_sums`): task, source, model, project, mode, the four
#: token kinds, calls, cost of the priced ones, unpriced calls. ``total``: SQLite's ``total``, PostgreSQL's
#: ``sum`` (over no priced call, 0 where SQLite's ``sum`` and PostgreSQL's give NULL: wrapped in coalesce).
TASK_SUMS = """SELECT task, source, model, project, mode, sum(input_tokens), sum(output_tokens),
    sum(cache_creation_tokens), sum(cache_read_tokens), count(*), coalesce({total}(cost), 0),
    count(*) - count(cost) FROM {calls} WHERE {where} GROUP BY task, source, model, project, mode"""


def _task_sums_sql(where: str) -> str:
    return TASK_SUMS.format(calls="calls JOIN paths ON paths.id = calls.path_id", where=where, total="total")


class Snapshot(msgspec.Struct, array_like=True):
    """What a run ended with, for the next start (see `Ledger.save_snapshot`)."""

    #: ``list[tuple[CellKey, list]]`` (sums keep their types: int tokens, float cost), decoded when first needed
    #: (`cell_dict`): a start whose report is the unfiltered one reads ``groups`` instead.
    cells: msgspec.Raw
    files: list[tuple[str, str, int, int, int, int, float, bytes]]  # FileState fields
    listings: dict[str, Listing]  # Claude Code folders as last listed
    groups: Groups | None = None  # the cells' unfiltered report groups (`report.unfiltered_groups`)

    @classmethod
    def of(cls, cells: dict[CellKey, list[float]], files: Iterable[FileState],
           listings: dict[str, Listing], groups: Groups | None = None) -> Snapshot:
        return cls(msgspec.Raw(msgspec.msgpack.encode([(k, v) for k, v in cells.items() if v[CALLS]])),
                   [(f.path, f.kind, f.dev, f.ino, f.offset, f.size, f.mtime, f.tail) for f in files], listings,
                   groups)

    def cell_dict(self) -> dict[CellKey, list[float]]:
        return dict(_cells_decoder.decode(self.cells))

    def states(self) -> list[FileState]:
        return [FileState(*f) for f in self.files]


_cells_decoder = msgspec.msgpack.Decoder(list[tuple[CellKey, list[Any]]])


def _locked(method: Any) -> Any:
    """Run a method holding the ledger's lock (the connection is shared between threads); a database error
    becomes a `LedgerError` that says what to do."""

    def wrapper(self: Ledger, *args: Any, **kw: Any) -> Any:
        with self.lock:
            try:
                return method(self, *args, **kw)
            except sqlite3.DatabaseError as e:
                raise self._error(e) from e

    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    return wrapper


def fold_rollup(rows: Iterable[Any], day_of: DayNamer, internal_project: str) -> dict[CellKey, list[float]]:
    """Rollup rows ``(bucket, source, model, project, session, mode, *9 sums)`` folded into the cube's cells
    (days of the display zone); a stored "" project is the app's internal project."""
    out: dict[CellKey, list[float]] = {}
    for b, source, model, project, session, mode, *sums in rows:
        key = (day_of(b), source, model, project or internal_project, session, mode)
        cell = out.get(key)
        if cell is None:
            out[key] = sums
        else:
            _fold_into(cell, sums)
    return out


def _fold_into(cell: list[float], sums: list[float]) -> None:
    for i in range(8):
        cell[i] += sums[i]
    if sums[8] > cell[8]:
        cell[8] = sums[8]


class _Flusher:
    """During a cold ingest (`Ledger.bulk`, no fsync per commit): a thread that hands each commit's pages to the
    disk meanwhile (``fdatasync``, which waits on the disk, not the CPU), so the one fsync that makes the ingest
    durable, when the ledger goes back to WAL, finds little left to write (~0.5 s of waiting at the end of a
    2 GB history's ingest on a VM disk otherwise).

    Its own descriptor of the file: closing it drops every POSIX lock this process holds on the file (SQLite's
    included), so `stop` closes it only while the connection holds none, after a commit, in rollback-journal
    mode; if another tokentop switched the ledger to WAL meanwhile, it stays open until the process ends."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDONLY)
        self.wake = threading.Event()
        self.done = False
        self.thread = threading.Thread(target=self._run, name="tokentop-ledger-flush", daemon=True)
        self.thread.start()

    def kick(self) -> None:
        self.wake.set()

    def _run(self) -> None:
        while True:
            self.wake.wait()
            self.wake.clear()
            try:  # (at `stop` too: a commit's kick may not have been taken yet)
                os.fdatasync(self.fd)
            except OSError:
                return  # only an early start of what the final fsync does anyway
            if self.done:
                return

    def stop(self, close: bool) -> None:
        self.done = True
        self.wake.set()
        self.thread.join()
        if close:
            os.close(self.fd)


class LedgerError(Exception):
    """The ledger cannot be used; the message says why and what to do."""

    def __rich__(self) -> Any:
        """What Textual shows when this ends the app (instead of a traceback)."""
        from rich.text import Text

        return Text(f"tokentop: error: {self}")


class LedgerBusy(LedgerError):
    """Another tokentop held the ledger's write lock for longer than `BUSY_TIMEOUT_MS`."""


class LedgerUnreachable(LedgerBusy):
    """The ledger's server cannot be reached just now (it restarts, the network dropped): as with a lock held
    elsewhere, what is new waits in the files, and is read and stored once the server is back."""


def _is_lock_wait(e: Exception) -> bool:
    """Whether SQLite gave up waiting for another connection's lock ("database is locked")."""
    return "locked" in str(e) or "busy" in str(e)


def _row(c: Call, project: str, path_id: int, price_id: int) -> tuple[Any, ...]:
    """A call as a row of the general shape: `_BOUND`, then `_REST` (see `Ledger._rows` for the usual ones).
    Keyed as the int, not a bool: sqlite3 binds a bool only after failing to adapt it (an exception raised and
    cleared per row)."""
    return _shared(c) + (c.ledger_key(), project, path_id, c.source, int(c.key is not None), c.web_search_requests,
                         c.speed, c.geo, price_id)


def _delta(c: Call, sign: int, project: str, root: str) -> tuple[Any, ...]:
    return (root, int(c.ts // BUCKET_SECONDS), c.source, c.model, project, c.session, c.mode,
            sign * c.input_tokens, sign * c.output_tokens, sign * c.cache_creation_tokens,
            sign * c.cache_read_tokens, sign, sign * (c.cost or 0.0), sign * (c.cost is None),
            sign * (c.mode == "local"), c.ts if sign > 0 else 0.0)


def span(lo: float | None, hi: float | None) -> tuple[float, float]:
    """``lo <= ts < hi`` bounds for a query, open ends as infinities."""
    return (lo if lo is not None else float("-inf"), hi if hi is not None else float("inf"))


def _call(r: tuple[Any, ...], internal_project: str) -> Call:
    (source, key, keyed, ts, model, project, session, mode, inp, out, cw, cr, cost, task, w1h, web, speed, geo,
     file, offset, _priced_with) = r
    return Call(source, ts, model, project or internal_project, session, mode, inp, out, cw, cr, cost,
                key if keyed else None, task, w1h, web, speed, geo, file, offset)


class LedgerBase:
    """What the SQLite and PostgreSQL ledgers share: root scoping, project resolution, repricing, export."""

    roots: list[str]
    internal_project: str
    priced_with: str
    _root_cache: dict[str, str]

    def root_of(self, path: str) -> str:
        """The configured root a file is under ("" when none is)."""
        r = self._root_cache.get(path)
        if r is None:
            r = next((root for root in self.roots if path.startswith(root + os.sep)), "")
            self._root_cache[path] = r
        return r

    def _project(self, c: Call) -> str:
        return "" if c.source == "internal" and c.project == self.internal_project else c.project

    # -- maintenance -------------------------------------------------------------------------------------

    def reprice(self, price: Any, priced_with: str) -> tuple[int, float, float]:
        """Recompute Claude Code costs with ``price(call)``; internal rows keep their logged cost.

        Returns:
            (calls changed, total before, total after) over Claude Code calls.
        """
        before = after = 0.0
        changed: list[Call] = []
        replaced: list[Call] = []
        for c in self.calls():
            if c.source != "claude_code":
                continue
            new = price(c)
            before += c.cost or 0.0
            after += new or 0.0
            if new != c.cost:
                replaced.append(c)
                changed.append(msgspec.structs.replace(c, cost=new))
        old, self.priced_with = self.priced_with, priced_with
        try:
            self.commit(changed, replaced=replaced)
        finally:
            self.priced_with = old
        return len(changed), before, after

    def export(self, out: TextIO, fmt: str, lo: float | None, hi: float | None) -> int:
        """Write calls (``csv`` or ``jsonl``) with ``lo <= ts < hi``; returns how many."""
        fields = [f for f in Call.__struct_fields__]
        n = 0
        if fmt == "csv":
            w = csv.writer(out)
            w.writerow(fields)
            for c in self.calls(lo, hi):
                w.writerow([getattr(c, f) if getattr(c, f) is not None else "" for f in fields])
                n += 1
        else:
            for c in self.calls(lo, hi):
                out.write(json.dumps({f: getattr(c, f) for f in fields}) + "\n")
                n += 1
        return n

    def snapshot(self, day_of: DayNamer) -> Snapshot | None:
        """What `save_snapshot` kept for this zone, when nothing was written since (else None)."""
        return None

    def save_snapshot(self, day_of: DayNamer, snap: Snapshot) -> bool:
        """Keep what a run ended with, for the next start; only when nobody else wrote since this connection's
        last look (then the caller's cells are the ledger's). Returns whether it was saved."""
        return False

    def defer_indexes(self) -> bool:
        """See `Ledger.defer_indexes` (a backend that keeps its indexes returns False)."""
        return False

    def build_indexes(self) -> None:
        """See `Ledger.build_indexes`."""

    def add_paths(self, paths: Iterable[str]) -> None:
        """See `Ledger.add_paths` (a backend without path ids has nothing to do)."""

    def index_times(self) -> None:
        """See `Ledger.index_times`."""

    # The backend's part (see `Ledger`):
    def calls(self, lo: float | None = None, hi: float | None = None, session: str | None = None) -> Iterator[Call]:
        raise NotImplementedError

    def newest_calls(self, lo: float | None, hi: float | None, limit: int, source: str | None = None,
                     mode: str | None = None, session: str | None = None) -> list[Call]:
        raise NotImplementedError

    def commit(self, calls: Iterable[Call] = (), states: Iterable[FileState] = (), warnings: dict[str, Any] | None
               = None, drop_keyless_of: Iterable[str] = (), replaced: Iterable[Call] = (),
               rollup: bool = True, again: Collection[str] = ()) -> None:
        raise NotImplementedError


class Ledger(LedgerBase):
    """One SQLite ledger file."""

    def __init__(self, path: Path | str, priced_with: str = "", roots: Iterable[Path] = (),
                 internal_project: str = "", on_upgrade: Callable[[int, int], None] | None = None) -> None:
        """Open (creating or upgrading) a ledger.

        Args:
            path: the SQLite file.
            priced_with: price version stored with each call.
            roots: only calls read from files below these folders are visible (the sources being read now);
                none = every call.
            internal_project: the project given to internal rows without one: stored as "" and resolved on
                read, so changing the setting later applies to old rows too.
            on_upgrade: called with (its schema, this one's) before a ledger of an older tokentop is upgraded.
        """
        self.path = Path(path)
        self.on_upgrade = on_upgrade
        self.priced_with = priced_with
        self.internal_project = internal_project
        self.roots = [str(r).rstrip(os.sep) for r in roots]
        self.scope_sql = "1"
        self.scope_args: tuple[str, ...] = tuple(self.roots)
        if self.roots:
            self.scope_sql = f"root IN ({','.join('?' * len(self.roots))})"
        self._root_cache: dict[str, str] = {}
        #: ("paths", path) / ("prices", name) -> id, as committed (ids of a rolled-back transaction are reused)
        self._ids: dict[tuple[str, str], int] = {}
        self._data_version: int | None = None  # see others_wrote
        self._times_indexed = False  # see index_times
        self._flusher: _Flusher | None = None  # see bulk
        #: One connection, used by the scan's thread, live updates and views: one user at a time.
        self.lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._rows_per_insert = ROWS_PER_INSERT
        if self.path.exists():
            self._open()
        # else a new ledger, made when first used: a first cold scan makes it while its workers read their first
        # files (~7 ms: the schema, its upgrades, WAL), not before it starts them

    @property
    def db(self) -> sqlite3.Connection:
        """The connection (opened on first use for a ledger that did not exist yet)."""
        return self._db if self._db is not None else self._open()

    def _open(self) -> sqlite3.Connection:
        with self.lock:
            if self._db is not None:
                return self._db
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                                timeout=BUSY_TIMEOUT_MS / 1000)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute(f"PRAGMA cache_size={CACHE_KIB}")
                # An SQLite before 3.32 (Ubuntu 20.04's) takes at most 999 parameters in a statement
                self._rows_per_insert = max(1, min(ROWS_PER_INSERT, db.getlimit(
                    sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // (len(_BOUND) + len(_REST))))
                self._migrate()
                self.build_indexes()  # after a cold scan that was cut short
            except sqlite3.DatabaseError as e:
                error = self._error(e)
                self._close_failed()
                raise error from e
            except OSError as e:
                self._close_failed()
                raise LedgerError(
                    f"cannot open the ledger {self.path}: {e.strerror}; use --no-ledger or --ledger PATH") from e
            return db

    def _close_failed(self) -> None:
        """After a failed open: no half-opened connection is used (the next use tries again)."""
        db, self._db = self._db, None
        if db is not None:
            db.close()

    @_locked
    def others_wrote(self) -> bool:
        """Whether another connection (another tokentop on this ledger) committed since the last call; the
        first call only takes the baseline."""
        v = self.db.execute("PRAGMA data_version").fetchone()[0]
        changed = self._data_version is not None and v != self._data_version
        self._data_version = v
        return bool(changed)

    def reopen(self) -> Ledger:
        """The same ledger on a new connection (in a forked process: a connection never crosses a fork)."""
        return Ledger(self.path, self.priced_with, [Path(r) for r in self.roots], self.internal_project)

    @_locked
    def bulk(self, on: bool) -> None:
        """During a cold scan: no fsync per batch, and, when no other connection has the ledger open, a
        rollback journal instead of WAL, so every page is written once (WAL writes it twice: into the log, then
        into the file at the checkpoint, about 10 % of a cold ingest). A killed process loses nothing the OS
        already has either way: the journal rolls back a half-written batch, every committed one stays.
        Another tokentop that opens the ledger meanwhile switches it back to WAL, and this connection follows."""
        # A journal switch moves `PRAGMA data_version` as another connection's write would: keep the baseline
        # of `others_wrote` (unless someone else did write before the switch).
        before = self.db.execute("PRAGMA data_version").fetchone()[0]
        if not on and self._flusher is not None:
            self._flusher.stop(close=self.db.execute("PRAGMA journal_mode").fetchone()[0] != "wal")
            self._flusher = None
        self._switch_journal(on)
        if on and self.db.execute("PRAGMA journal_mode").fetchone()[0] != "wal" and hasattr(os, "fdatasync"):
            self._flusher = _Flusher(self.path)
        if self._data_version is not None and before == self._data_version:
            self._data_version = self.db.execute("PRAGMA data_version").fetchone()[0]

    @contextlib.contextmanager
    def _not_waiting(self) -> Iterator[None]:
        """Statements that fail at once, instead of waiting, when another connection holds the lock they need."""
        self.db.execute("PRAGMA busy_timeout=0")
        try:
            yield
        finally:
            self.db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    def _switch_journal(self, on: bool) -> None:
        self.db.execute(f"PRAGMA synchronous={'OFF' if on else 'NORMAL'}")
        if on:
            try:
                with self._not_waiting():
                    self.db.execute("PRAGMA journal_mode=TRUNCATE")
            except sqlite3.OperationalError:  # someone else has it open: stay in WAL
                self.db.execute(f"PRAGMA wal_autocheckpoint={100_000}")
        else:
            mode = self.db.execute("PRAGMA journal_mode").fetchone()[0]
            self.db.execute("PRAGMA wal_autocheckpoint=1000")
            if mode == "wal":
                self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            else:
                try:
                    self.db.execute("PRAGMA journal_mode=WAL")
                except sqlite3.OperationalError:
                    pass  # busy: the next open switches it (every connection asks for WAL)

    @_locked
    def defer_indexes(self) -> bool:
        """Before a cold scan into an empty ledger that no other connection has open (see `bulk`): drop the
        indexes of ``calls`` (but `KEPT_IN_BULK`) until `build_indexes`. Meanwhile ``calls`` gets each key's first
        row, and a key met again in a later batch goes, merged, to ``calls_again`` (small, with its own key index),
        which `build_indexes` folds in. Returns whether the indexes were dropped."""
        if self.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
            return False  # someone else has the ledger open: they may look calls up by key
        if self.db.execute("SELECT 1 FROM calls LIMIT 1").fetchone() is not None:
            return False
        self.db.execute("BEGIN IMMEDIATE")
        for name in _INDEXES.keys() - KEPT_IN_BULK:
            self.db.execute(f"DROP INDEX IF EXISTS {name}")
        self._times_indexed = False
        self.db.execute("CREATE TABLE IF NOT EXISTS calls_again AS SELECT * FROM calls LIMIT 0")
        self.db.execute("CREATE UNIQUE INDEX IF NOT EXISTS calls_again_key ON calls_again (source, key)")
        self.db.execute("COMMIT")
        return True

    @_locked
    def build_indexes(self) -> None:
        """Build the indexes `defer_indexes` dropped and fold ``calls_again`` in: at the scan's end, or when a
        ledger is opened after a scan was killed (whatever it committed is whole)."""
        names = {n for (n,) in self.db.execute(
            "SELECT name FROM sqlite_master WHERE name IN ('calls_key', 'calls_again')")}
        if names == {"calls_key"}:
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            with self._sorting():
                for name, sql in _INDEXES.items():
                    if name != "calls_ts":
                        self.db.execute(sql)
            if "calls_again" in names:
                self.db.execute("INSERT OR REPLACE INTO calls SELECT * FROM calls_again")
                self.db.execute("DROP TABLE calls_again")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def _sorting(self) -> Iterator[None]:
        """Index builds in this block sort in small runs, on helper threads (see `SORT_THREADS`)."""
        self.db.execute(f"PRAGMA threads={SORT_THREADS}")
        self.db.execute(f"PRAGMA cache_size={SORT_CACHE_KIB}")
        try:
            yield
        finally:
            self.db.execute("PRAGMA threads=0")
            self.db.execute(f"PRAGMA cache_size={CACHE_KIB}")

    def _error(self, e: Exception) -> LedgerError:
        return (LedgerBusy if _is_lock_wait(e) else LedgerError)(self._advice(e))

    def _advice(self, e: Exception) -> str:
        if _is_lock_wait(e):
            return (f"the ledger {self.path} is locked by another tokentop ({e}); close it, or run with --no-ledger")
        try:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]  # type: ignore[union-attr]
        except (sqlite3.Error, AttributeError):  # AttributeError: the connection itself failed
            version = 0
        if version > SCHEMA_VERSION:  # a newer tokentop upgraded it while this one ran
            return (f"the ledger {self.path} was upgraded by a newer tokentop (schema {version}, this one knows "
                    f"{SCHEMA_VERSION}); run the newer tokentop, or this one with --no-ledger")
        if "disk is full" in str(e):
            return f"the ledger {self.path} cannot be written ({e}); free some space, or run with --no-ledger"
        return (f"the ledger {self.path} cannot be used ({e}); run with --no-ledger, or move the file away and "
                "tokentop rebuilds it from the transcripts that still exist")

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise LedgerError(f"the ledger {self.path} was written by a newer tokentop (schema {version}, this one "
                              f"knows {SCHEMA_VERSION}); upgrade tokentop or use --ledger with another file")
        if 0 < version < SCHEMA_VERSION and self.on_upgrade is not None:
            self.on_upgrade(version, SCHEMA_VERSION)
        if version == 0:
            self.db.executescript(_SCHEMA_V1)
            self.db.execute("PRAGMA user_version = 1")
            version = 1
        for v in range(version + 1, SCHEMA_VERSION + 1):  # each step in one transaction (in one script:
            # executescript commits whatever is open before it runs)
            self.db.executescript(f"BEGIN IMMEDIATE; {MIGRATIONS[v]}; PRAGMA user_version = {v}; COMMIT;")

    @_locked
    def close(self) -> None:
        """Close the connection."""
        if self._db is not None:
            self._db.close()

    # -- writing -----------------------------------------------------------------------------------------

    @_locked
    def commit(self, calls: Iterable[Call] = (), states: Iterable[FileState] = (), warnings: dict[str, Any] | None
               = None, drop_keyless_of: Iterable[str] = (), replaced: Iterable[Call] = (),
               rollup: bool = True, again: Collection[str] = ()) -> None:
        """One batch, atomically: calls upserted (the caller passes final, merged calls), file states, warnings.

        Args:
            calls: the calls as they now stand.
            states: read state of the files the batch read.
            warnings: JSON values kept beside the calls, by key (warning counters, limit hits).
            drop_keyless_of: files whose keyless calls are forgotten first (truncated or replaced files).
            replaced: earlier versions of ``calls`` that they replace (their rollup share is taken out).
            rollup: keep the rollup in step (a cold scan rebuilds it once at the end instead).
            again: keys of ``calls`` an earlier batch of this scan wrote (see `defer_indexes`).
        """
        self.db.execute("BEGIN IMMEDIATE")
        new_ids: dict[tuple[str, str], int] = {}
        try:
            deltas = []
            for path in drop_keyless_of:
                if rollup:
                    deltas += [_delta(c, -1, self._project(c), self.root_of(c.file)) for c in self.keyless_of(path)]
                self.db.execute("DELETE FROM calls WHERE path_id = (SELECT id FROM paths WHERE path = ?) AND "
                                "keyed = 0", (path,))
            if not isinstance(calls, list):
                calls = list(calls)
            if rollup:
                deltas += [_delta(c, 1, self._project(c), self.root_of(c.file)) for c in calls]
                deltas += [_delta(c, -1, self._project(c), self.root_of(c.file)) for c in replaced]
                self.db.executemany(_ROLLUP_DELTA, deltas)
            if again and self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'calls_again'").fetchone():
                for rest, rows in self._rows([c for c in calls if c.key in again], new_ids):
                    self._upsert_rows("calls_again", rest, rows)
                calls = [c for c in calls if c.key not in again]
            for rest, rows in self._rows(calls, new_ids):
                self._upsert_rows("calls", rest, rows)
            self.db.executemany(
                "INSERT OR REPLACE INTO files (path, kind, dev, ino, offset, size, mtime, tail) "
                "VALUES (?,?,?,?,?,?,?,?)",
                ((s.path, s.kind, s.dev, s.ino, s.offset, s.size, s.mtime, s.tail) for s in states))
            if warnings is not None:  # {"warnings": {...}, "limit_hits": [...]}: each kept under its key
                self.db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                                    [(k, json.dumps(v)) for k, v in warnings.items()])
            self.db.execute(_BUMP)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self._ids.update(new_ids)
        if self._flusher is not None:
            self._flusher.kick()

    @_locked
    def add_paths(self, paths: Iterable[str]) -> None:
        """Number the files a scan is about to read (and the current price version) in one transaction before
        its first batch, instead of a few at a time in every batch's."""
        new_ids: dict[tuple[str, str], int] = {}
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self._id_map("prices", [self.priced_with], new_ids)
            self._id_map("paths", paths, new_ids)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self._ids.update(new_ids)

    def _upsert_rows(self, table: str, rest: tuple[Any, ...] | None, rows: list[Any]) -> None:
        """`_upsert` rows (one flat list of their parameters, see `_rows`), `ROWS_PER_INSERT` to a statement (fewer
        where SQLite takes fewer parameters), the last few one by one."""
        width = len(_BOUND) + (len(_REST) if rest is None else 0)
        step = self._rows_per_insert * width
        full = len(rows) - len(rows) % step
        if full:
            self.db.executemany(_upsert(table, self._rows_per_insert, rest),
                                (rows[i:i + step] for i in range(0, full, step)))
        if full < len(rows):
            self.db.executemany(_upsert(table, 1, rest), (rows[i:i + width] for i in range(full, len(rows), width)))

    def _rows(self, calls: list[Call], new_ids: dict[tuple[str, str], int]) -> list[tuple[Any, list[Any]]]:
        """The calls as rows, by shape: (``rest`` (see `_upsert`), the parameters of its rows one after the other:
        a flat list is sliced into statements without a tuple per row). Nearly all are keyed Claude Code calls or
        keyless internal ones, without web searches, speed or region: their source, keyed, those three and the
        price version are constants of their statement. Inside the caller's transaction (ids it adds go to
        ``new_ids``)."""
        price_id = self._id_map("prices", [self.priced_with], new_ids)[self.priced_with]
        path_ids = self._id_map("paths", {c.file for c in calls}, new_ids)
        claude: list[Any] = []
        internal: list[Any] = []
        other: list[Call] = []
        to_claude, to_internal = claude.extend, internal.extend
        internal_project = self.internal_project
        for c in calls:
            if not (c.web_search_requests or c.speed or c.geo):
                if c.key is not None:
                    if c.source == CLAUDE_CODE:
                        to_claude(_shared(c))
                        to_claude((c.key, c.project, path_ids[c.file]))
                        continue
                elif c.source == INTERNAL:
                    to_internal(_shared(c))
                    to_internal((f"{c.file}@{c.offset}", "" if c.project == internal_project else c.project,
                                 path_ids[c.file]))
                    continue
            other.append(c)
        # A key met twice (a later version of a call in the same batch) must end as its last version: with a row
        # of the general shape in the batch and a key twice, the batch keeps its order in the general shape.
        if other and len({(c.source, c.ledger_key()) for c in calls}) < len(calls):
            other, claude, internal = calls, [], []
        general = [v for c in other for v in _row(c, self._project(c), path_ids[c.file], price_id)]
        return [((CLAUDE_CODE, 1, 0, "", "", price_id), claude), ((INTERNAL, 0, 0, "", "", price_id), internal),
                (None, general)]

    def _id_map(self, table: str, names: Iterable[str], new_ids: dict[tuple[str, str], int]) -> dict[str, int]:
        """``name -> id`` in ``paths`` (by path) or ``prices`` (by name), adding what is missing (a path with its
        source folder) in the caller's transaction."""
        out: dict[str, int] = {}
        missing = []
        for n in names:
            i = self._ids.get((table, n)) or new_ids.get((table, n))
            if i is None:
                missing.append(n)
            else:
                out[n] = i
        if missing:
            col = "path" if table == "paths" else "name"
            if table == "paths":
                self.db.executemany("INSERT OR IGNORE INTO paths (path, root) VALUES (?, ?)",
                                    [(n, self.root_of(n)) for n in missing])
            else:
                self.db.executemany("INSERT OR IGNORE INTO prices (name) VALUES (?)", [(n,) for n in missing])
            for i in range(0, len(missing), 500):
                chunk = missing[i:i + 500]
                for n, id_ in self.db.execute(f"SELECT {col}, id FROM {table} WHERE {col} IN "
                                              f"({','.join('?' * len(chunk))})", chunk):
                    out[n] = new_ids[(table, n)] = id_
        return out

    @_locked
    def mark_rollup_stale(self) -> None:
        """Before a cold scan (which skips the rollup): `cells` rebuilds it when it is next read."""
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('rollup_valid', '0')")
        self.db.execute(_BUMP)
        self.db.execute("COMMIT")

    @_locked
    def rebuild_rollup(self) -> None:
        """Recompute the rollup from the calls, every root's (a stale mark is not per root)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute("DELETE FROM rollup")
            self.db.execute(f"""INSERT INTO rollup SELECT root, CAST(ts / {BUCKET_SECONDS} AS INTEGER), source, model,
                    project, session, mode, SUM(input_tokens), SUM(output_tokens), SUM(cache_creation_tokens),
                    SUM(cache_read_tokens), COUNT(*), TOTAL(cost), SUM(cost IS NULL), SUM(mode = 'local'), MAX(ts)
                FROM calls JOIN paths ON paths.id = calls.path_id GROUP BY 1, 2, 3, 4, 5, 6, 7""")
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('rollup_valid', '1')")
            self.db.execute(_BUMP)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    @_locked
    def rollup_valid(self) -> bool:
        """False after a cold scan (or one cut short) until the rollup is rebuilt."""
        r = self.db.execute("SELECT value FROM meta WHERE key = 'rollup_valid'").fetchone()
        return r is None or r[0] == "1"

    # -- reading -----------------------------------------------------------------------------------------

    @_locked
    def has_calls(self) -> bool:
        """Whether anything is stored for the current roots."""
        if self._db is None and not self.path.exists():
            return False  # (not made yet: made by the first write)
        q = f"SELECT 1 FROM {CALLS_FROM} WHERE {self.scope_sql} LIMIT 1"
        return self.db.execute(q, self.scope_args).fetchone() is not None

    @_locked
    def count(self) -> int:
        """Calls stored for the current roots."""
        q = f"SELECT COUNT(*) FROM {CALLS_FROM} WHERE {self.scope_sql}"
        return self.db.execute(q, self.scope_args).fetchone()[0]

    @_locked
    def get(self, source: str, key: str) -> Call | None:
        """One call by its key (within the current roots)."""
        r = self.db.execute(f"{_SELECT} WHERE source = ? AND key = ? AND {self.scope_sql}",
                            (source, key, *self.scope_args)).fetchone()
        return _call(r, self.internal_project) if r else None

    @_locked
    def keyless_of(self, path: str) -> list[Call]:
        """The calls without a key read from one file."""
        return [_call(r, self.internal_project)
                for r in self.db.execute(f"{_SELECT} WHERE paths.path = ? AND keyed = 0", (path,))]

    def calls(self, lo: float | None = None, hi: float | None = None, session: str | None = None) -> Iterator[Call]:
        """Every call within the current roots, or those with ``lo <= ts < hi``; of one session when given."""
        for r in self._call_rows(lo, hi, session):
            yield _call(r, self.internal_project)

    def newest_calls(self, lo: float | None, hi: float | None, limit: int, source: str | None = None,
                     mode: str | None = None, session: str | None = None) -> list[Call]:
        """Up to ``limit`` calls with ``lo <= ts < hi`` (within the current roots), the newest first; of one
        source, mode or session when given (tested in SQL: a rare one is found without reading every call)."""
        return [_call(r, self.internal_project) for r in self._newest_rows(lo, hi, limit, source, mode, session)]

    @_locked
    def _newest_rows(self, lo: float | None, hi: float | None, limit: int, source: str | None, mode: str | None,
                     session: str | None) -> list[Any]:
        self.index_times()
        where, args = self._range(lo, hi, session)
        for column, value in (("source", source), ("mode", mode)):
            if value is not None:
                where, args = f"{where} AND calls.{column} = ?", (*args, value)
        return self.db.execute(f"{_SELECT} WHERE {where} ORDER BY ts DESC LIMIT ?", (*args, limit)).fetchall()

    @_locked
    def task_sums(self, lo: float | None, hi: float | None, session: str | None = None) -> list[tuple[Any, ...]]:
        """Sums of the calls with ``lo <= ts < hi`` (of one session when given) within the current roots, by task,
        source, model, project and mode (see `TASK_SUMS`): a few hundred rows where every call is tens of
        thousands (`report.by_task`)."""
        where, args = self._range(lo, hi, session)
        return self._task_rows(self.db.execute(_task_sums_sql(where), args))

    @_locked
    def task_sums_later(self, lo: float | None, hi: float | None, session: str | None = None
                        ) -> Callable[[], list[tuple[Any, ...]]]:
        """`task_sums` of the ledger as it stands now, read when the function returned is called: in another
        thread (over a whole history, 0.2 s for 470 MB of transcripts, 0.65 s for 2 GB), on a connection of its
        own whose read transaction begins here, so what is committed later is not in it (the cube folds that in:
        `Cube.start_task_read`). The function can be called once."""
        where, args = self._range(lo, hi, session)  # (the time index, if missing, built first: on this connection)
        reader = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                 timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            reader.execute("PRAGMA query_only = 1")
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM meta").fetchone()  # the snapshot is taken at the first read
        except BaseException:
            reader.close()
            raise

        def read() -> list[tuple[Any, ...]]:
            try:
                return self._task_rows(reader.execute(_task_sums_sql(where), args))
            except sqlite3.DatabaseError as e:
                raise self._error(e) from e
            finally:
                reader.close()  # (the read transaction ends with it)

        return read

    def _task_rows(self, rows: Iterable[Any]) -> list[tuple[Any, ...]]:
        internal = self.internal_project
        return [(task, source, model, project or internal, *rest) for task, source, model, project, *rest in rows]

    @_locked
    def _call_rows(self, lo: float | None, hi: float | None, session: str | None = None) -> list[Any]:
        where, args = self._range(lo, hi, session)
        return self.db.execute(f"{_SELECT} WHERE {where}", args).fetchall()

    def _range(self, lo: float | None, hi: float | None, session: str | None) -> tuple[str, tuple[Any, ...]]:
        """The condition (with its arguments) for the calls within the current roots with ``lo <= ts < hi``, of
        one session when given. Without bounds, none on ``ts``: the whole table is read in its order (through
        the time index it is slower)."""
        one = ("", ()) if session is None else (" AND session = ?", (session,))  # SQLite skips the others' rows
        if lo is None and hi is None:
            return f"{self.scope_sql}{one[0]}", (*self.scope_args, *one[1])
        self.index_times()
        return f"ts >= ? AND ts < ? AND {self.scope_sql}{one[0]}", (*span(lo, hi), *self.scope_args, *one[1])

    @_locked
    def index_times(self) -> None:
        """Build ``calls_ts`` if a first ingest left it for later (see `_INDEXES`). If another tokentop is writing
        just now, the query at hand reads the table instead, and a later one tries again; if the ledger cannot be
        written (read-only), every query reads the table."""
        if self._times_indexed:
            return
        names = {n for (n,) in self.db.execute(
            "SELECT name FROM sqlite_master WHERE name IN ('calls_ts', 'calls_again')")}
        if "calls_ts" in names:
            self._times_indexed = True
            return
        if names:
            return  # a first ingest is going on (indexes come after it)
        try:
            with self._not_waiting(), self._sorting():
                self.db.execute(_INDEXES["calls_ts"])
            self._times_indexed = True
        except sqlite3.OperationalError as e:
            if not _is_lock_wait(e):  # a read-only ledger: no retries, queries scan
                self._times_indexed = True

    @_locked
    def file_states(self) -> list[FileState]:
        """Recorded read state of every file."""
        return [FileState(*r) for r in self.db.execute(
                "SELECT path, kind, dev, ino, offset, size, mtime, tail FROM files")
                if not self.roots or self.root_of(r[0])]

    @_locked
    def warnings(self) -> dict[str, int]:
        """Warning counters as of the last commit."""
        return self.meta("warnings") or {}

    @_locked
    def meta(self, key: str) -> Any:
        """A JSON value kept with the last commit (None when absent)."""
        r = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(r[0]) if r else None

    @_locked
    def cells(self, day_of: DayNamer) -> dict[CellKey, list[float]]:
        """The cube's cells: the rollup's quarter hours folded into days of the display zone."""
        if not self.rollup_valid():
            self.rebuild_rollup()
        lo, hi = self.db.execute(f"SELECT min(bucket), max(bucket) FROM rollup WHERE {self.scope_sql}",
                                 self.scope_args).fetchone()
        if lo is None:
            return {}
        # SQLite folds the quarter hours into days of the zone (one UTC offset per stretch, see DayNamer.offsets)
        # and names them: Python then sees one finished row per cell instead of one per quarter hour.
        bs = BUCKET_SECONDS
        segments = day_of.offsets(lo, hi)
        shift = f"{segments[0][1]}"
        if len(segments) > 1:
            shift = "CASE " + " ".join(f"WHEN bucket >= {b} THEN {o}" for b, o in reversed(segments[1:])) + \
                f" ELSE {shift} END"
        q = f"""SELECT date(bucket * {bs} + {shift}, 'unixepoch'), source, model, COALESCE(NULLIF(project, ''), ?),
                       session, mode, SUM(input_tokens), SUM(output_tokens), SUM(cache_creation_tokens),
                       SUM(cache_read_tokens), SUM(calls), TOTAL(cost), SUM(unpriced), SUM(local_calls), MAX(last)
                FROM rollup WHERE {self.scope_sql} AND calls != 0 GROUP BY 1, 2, 3, 4, 5, 6"""
        return {r[:6]: list(r[6:]) for r in self.db.execute(q, (self.internal_project, *self.scope_args))}

    def _scope_key(self, day_of: DayNamer) -> str:
        return json.dumps([self.roots, self.internal_project, tz_name(day_of.tz)])

    @_locked
    def snapshot(self, day_of: DayNamer) -> Snapshot | None:
        r = self.db.execute("SELECT body FROM snapshot WHERE scope = ? AND generation = "
                            "(SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'generation')",
                            (self._scope_key(day_of),)).fetchone()
        if r is None:
            return None
        try:
            return msgspec.msgpack.decode(r[0], type=Snapshot)
        except msgspec.DecodeError:
            return None  # a damaged snapshot is only a slower start

    @_locked
    def save_snapshot(self, day_of: DayNamer, snap: Snapshot) -> bool:
        snap.files = [f for f in snap.files if not self.roots or self.root_of(f[0])]
        body = msgspec.msgpack.encode(snap)
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                if self.db.execute("PRAGMA data_version").fetchone()[0] != self._data_version:
                    return False  # another tokentop committed: what the caller holds may be behind
                self.db.execute("INSERT OR REPLACE INTO snapshot (scope, generation, body) VALUES (?, (SELECT CAST("
                                "value AS INTEGER) FROM meta WHERE key = 'generation'), ?)",
                                (self._scope_key(day_of), body))
            finally:
                self.db.execute("COMMIT")
        except sqlite3.DatabaseError:
            return False  # locked or read-only: the next start folds the rollup instead
        return True

    @_locked
    def ledger_only(self, gone: list[str] | None = None) -> int:
        """Calls whose source file no longer exists (kept only here); ``gone``: those files, when known."""
        if gone is None:
            gone = [s.path for s in self.file_states() if not os.path.exists(s.path)]
        n = 0
        for i in range(0, len(gone), 500):
            chunk = gone[i:i + 500]
            n += self.db.execute(f"SELECT COUNT(*) FROM calls JOIN paths ON paths.id = calls.path_id WHERE path IN "
                                 f"({','.join('?' * len(chunk))})", chunk).fetchone()[0]
        return n
