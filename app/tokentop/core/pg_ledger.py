"""The ledger on PostgreSQL (``--ledger postgresql://…`` or a PostgreSQL ``DATABASE_URL``): the same interface
as the SQLite `Ledger`, in the team schema, every row carrying this machine and user.

Calls go to ``tokentop.calls`` (so a team view sees this machine without a sync step), the read state of files to
``tokentop.files`` and the counters to ``tokentop.ledger_meta``, each batch in one transaction. The rollup is kept
by the schema's triggers, so the cold scan's "rebuild the rollup at the end" steps have nothing to do here.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any

from .aggregate import CellKey
from .filters import DayNamer
from .ledger import TASK_SUMS, LedgerBase, LedgerError, LedgerUnreachable, _call, fold_rollup, span
from .records import Call
from .tail import FileState
from .team import (
    _COLS_SQL,
    COLUMNS,
    TeamError,
    TeamStore,
    _q,
    connect,
    default_machine,
    default_user,
    describe_url,
    lock_pushes,
    stage,
    task_sum_rows,
)


def _task_sums_sql(where: str) -> str:
    return TASK_SUMS.format(calls="tokentop.calls", where=where, total="sum")


#: After the connection was lost, at most one attempt to connect again in this many seconds (each waits up to
#: `team.connect`'s timeout); in between, the ledger says at once that it is unreachable.
RECONNECT_SECONDS = 2.0
#: Idle connections kept for reads of sums by task (one per read under way; reads of several date ranges may
#: overlap when `d` is pressed quickly).
MAX_IDLE_READERS = 2
_LEDGER_COLS = COLUMNS[2:-1]  # the SQLite ledger's columns without root: what `_call` reads
_REPLACE = f"""INSERT INTO tokentop.calls AS c ({_COLS_SQL}) SELECT {_COLS_SQL} FROM stage
    ON CONFLICT (machine, source, key) DO UPDATE SET
        {', '.join(f'{_q(n)} = excluded.{_q(n)}' for n in COLUMNS[1:] if n not in ('source', 'key'))}
    WHERE (c.*) IS DISTINCT FROM (excluded.*)"""


class PgLedger(LedgerBase):
    """This machine's ledger in the team database."""

    def __init__(self, url: str, priced_with: str = "", roots: Iterable[Any] = (), internal_project: str = "",
                 machine: str | None = None, user: str | None = None) -> None:
        self.url = url
        self.path = describe_url(url)  # what messages may show
        self.priced_with = priced_with
        self.internal_project = internal_project
        self.roots = [str(r).rstrip(os.sep) for r in roots]
        self._root_cache: dict[str, str] = {}
        self.machine = machine or default_machine()
        self.user = user or default_user()
        self.lock = threading.RLock()
        self._seen_commits: int | None = None  # see others_wrote
        self._lost_at: float | None = None  # when the connection was lost (see `_connected`)
        #: Idle connections of `task_sums_later`'s reads: a read begins on the UI thread, where connecting anew
        #: (a TLS handshake to a remote server) each time held the screen.
        self._readers: list[Any] = []
        try:
            self.store = TeamStore(url)
        except TeamError as e:
            raise LedgerError(f"{e}; use --no-ledger or another --ledger") from None
        self.conn = self.store.conn

    def _q(self, sql: str, args: tuple[Any, ...] | dict[str, Any] = ()) -> Any:
        import psycopg

        with self.lock:
            self._connected()
            try:
                return self.conn.execute(sql, args)
            except psycopg.Error as e:
                raise self._error(e) from None

    def _connected(self) -> None:
        """A connection lost earlier is made again (at most every `RECONNECT_SECONDS`); LedgerUnreachable until
        that works."""
        import time

        if self._lost_at is None:
            return
        if time.monotonic() - self._lost_at < RECONNECT_SECONDS:
            raise LedgerUnreachable(self._unreachable("the connection was lost"))
        try:
            store = TeamStore(self.url, create=False)
        except TeamError as e:
            self._lost_at = time.monotonic()
            raise LedgerUnreachable(self._unreachable(str(e))) from None
        self.conn.close()
        self.store, self.conn, self._lost_at = store, store.conn, None

    def _error(self, e: Exception) -> LedgerError:
        """A server's error as the ledger's: LedgerUnreachable when it cost the connection (the server went
        away), else LedgerError (the message says what)."""
        import time

        if self.conn.closed or self.conn.broken:
            self._lost_at = time.monotonic()
            return LedgerUnreachable(self._unreachable(" ".join(str(e).split())))
        return self._failed(e)

    def _failed(self, e: Exception) -> LedgerError:
        """A server's error (of any of this ledger's connections) as the ledger's."""
        return LedgerError(f"the ledger {self.path}: {' '.join(str(e).split())}")

    def _unreachable(self, reason: str) -> str:
        return (f"the ledger {self.path} cannot be reached ({reason}): new calls are counted once it is back; "
                "retrying")

    def _scope(self) -> tuple[str, list[Any]]:
        if self.roots:
            return "machine = %s AND root = ANY(%s)", [self.machine, self.roots]
        return "machine = %s", [self.machine]

    def close(self) -> None:
        """Close the connections."""
        with self.lock:
            readers, self._readers = self._readers, []
        for reader in readers:
            reader.close()
        self.conn.close()

    def bulk(self, on: bool) -> None:
        """Nothing to tune: the server decides."""

    def mark_rollup_stale(self) -> None:
        """Nothing to mark: the triggers keep the rollup valid."""

    def others_wrote(self) -> bool:
        """Whether another tokentop committed this machine's ledger since the last call (or this one's own
        commit): a per-machine commit counter, bumped in every commit's transaction. The first call only takes
        the baseline."""
        r = self._q("SELECT value FROM tokentop.ledger_meta WHERE machine = %s AND key = 'commits'",
                    (self.machine,)).fetchone()
        seen = int(r[0]) if r else 0
        changed = self._seen_commits is not None and seen != self._seen_commits
        self._seen_commits = seen
        return changed

    # -- writing -----------------------------------------------------------------------------------------

    def commit(self, calls: Iterable[Call] = (), states: Iterable[FileState] = (), warnings: dict[str, Any] | None
               = None, drop_keyless_of: Iterable[str] = (), replaced: Iterable[Call] = (),
               rollup: bool = True, again: Collection[str] = ()) -> None:
        """One batch in one transaction: keyless calls of replaced files dropped, calls upserted as they now
        stand, file states and counters saved. (``replaced`` and ``rollup``: the triggers see to the rollup;
        ``again``: every upsert replaces here.)"""
        import psycopg

        rows = [(self.machine, self.user, c.source, c.ledger_key(), c.key is not None, c.ts, c.model,
                 self._project(c), c.session, c.mode, c.input_tokens, c.output_tokens, c.cache_creation_tokens,
                 c.cache_read_tokens, c.cost, c.task, c.cache_write_1h, c.web_search_requests, c.speed, c.geo,
                 c.file, c.offset, self.priced_with, self.root_of(c.file)) for c in calls]
        with self.lock:
            self._connected()
            try:
                with self.conn.transaction():
                    lock_pushes(self.conn)
                    for path in drop_keyless_of:
                        self.conn.execute("DELETE FROM tokentop.calls WHERE machine = %s AND file = %s AND NOT keyed",
                                          (self.machine, path))
                    if rows:
                        stage(self.conn, rows)
                        self.conn.execute(_REPLACE)
                    with self.conn.cursor() as cur:
                        cur.executemany(
                            'INSERT INTO tokentop.files VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) '
                            'ON CONFLICT (machine, path) DO UPDATE SET kind = excluded.kind, dev = excluded.dev, '
                            'ino = excluded.ino, "offset" = excluded."offset", size = excluded.size, '
                            'mtime = excluded.mtime, tail = excluded.tail',
                            [(self.machine, s.path, s.kind, s.dev, s.ino, s.offset, s.size, s.mtime, s.tail)
                             for s in states])
                        n = cur.execute(
                            "INSERT INTO tokentop.ledger_meta VALUES (%s, 'commits', '1') ON CONFLICT (machine, key) "
                            "DO UPDATE SET value = (tokentop.ledger_meta.value::bigint + 1)::text RETURNING value",
                            (self.machine,)).fetchone()[0]
                        if warnings is not None:
                            cur.executemany(
                                "INSERT INTO tokentop.ledger_meta VALUES (%s, %s, %s) ON CONFLICT (machine, key) "
                                "DO UPDATE SET value = excluded.value",
                                [(self.machine, k, json.dumps(v)) for k, v in warnings.items()])
            except psycopg.Error as e:
                raise self._error(e) from None
            if self._seen_commits is not None and int(n) == self._seen_commits + 1:
                self._seen_commits = int(n)  # ours, and nobody else's in between

    # -- reading -----------------------------------------------------------------------------------------

    def has_calls(self) -> bool:
        """Whether anything of this machine (and the current roots) is stored."""
        where, args = self._scope()
        return self._q(f"SELECT 1 FROM tokentop.calls WHERE {where} LIMIT 1", tuple(args)).fetchone() is not None

    def count(self) -> int:
        """Calls stored for this machine and the current roots."""
        where, args = self._scope()
        return self._q(f"SELECT count(*) FROM tokentop.calls WHERE {where}", tuple(args)).fetchone()[0]

    def _select(self, where: str, args: tuple[Any, ...]) -> list[Call]:
        cols = ", ".join(_q(c) for c in _LEDGER_COLS)
        return [_call(r, self.internal_project)
                for r in self._q(f"SELECT {cols} FROM tokentop.calls WHERE {where}", args).fetchall()]

    def get(self, source: str, key: str) -> Call | None:
        """One call by its key (within the current roots)."""
        where, args = self._scope()
        found = self._select(f"source = %s AND key = %s AND {where}", (source, key, *args))
        return found[0] if found else None

    def keyless_of(self, path: str) -> list[Call]:
        """The calls without a key read from one file."""
        return self._select("machine = %s AND file = %s AND NOT keyed", (self.machine, path))

    def calls(self, lo: float | None = None, hi: float | None = None, session: str | None = None) -> Iterator[Call]:
        """Every call within the current roots, or those with ``lo <= ts < hi``; of one session when given."""
        yield from self._select(*self._range(lo, hi, session))

    def task_sums(self, lo: float | None, hi: float | None, session: str | None = None) -> list[tuple[Any, ...]]:
        """Sums by task, source, model, project and mode (see `Ledger.task_sums`)."""
        where, args = self._range(lo, hi, session)
        return task_sum_rows(self._q(_task_sums_sql(where), args).fetchall(), self.internal_project)

    def task_sums_later(self, lo: float | None, hi: float | None, session: str | None = None
                        ) -> Callable[[], list[tuple[Any, ...]]]:
        """`task_sums` as the ledger stands now, read when the function returned is called (see
        `Ledger.task_sums_later`): on a connection of its own (kept for the next read), in a REPEATABLE READ
        transaction whose snapshot is taken here. The function can be called once."""
        import psycopg

        where, args = self._range(lo, hi, session)
        with self.lock:
            self._connected()  # (LedgerUnreachable while the server is away)
            reader = self._readers.pop() if self._readers else None
        while True:
            kept = reader is not None and not reader.closed and not reader.broken
            if not kept:
                try:
                    reader = connect(self.url)
                except TeamError as e:
                    raise LedgerUnreachable(self._unreachable(str(e))) from None
            try:
                reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
                reader.execute("SELECT 1")  # the snapshot is taken at the transaction's first statement
                break
            except psycopg.Error as e:
                reader.close()
                if not kept:
                    raise self._failed(e) from None
                reader = None  # a kept one the server closed meanwhile: a new one

        def read() -> list[tuple[Any, ...]]:
            try:
                rows = task_sum_rows(reader.execute(_task_sums_sql(where), args).fetchall(), self.internal_project)
                reader.execute("COMMIT")
            except psycopg.Error as e:
                reader.close()
                raise self._failed(e) from None
            with self.lock:
                if len(self._readers) < MAX_IDLE_READERS and not self.conn.closed:
                    self._readers.append(reader)
                    return rows
            reader.close()
            return rows

        return read

    def _range(self, lo: float | None, hi: float | None, session: str | None) -> tuple[str, tuple[Any, ...]]:
        """The condition (with its arguments) for the calls within the current roots with ``lo <= ts < hi``, of
        one session when given."""
        where, args = self._scope()
        if session is not None:
            where, args = f"{where} AND session = %s", [*args, session]
        return f"ts >= %s AND ts < %s AND {where}", (*span(lo, hi), *args)

    def newest_calls(self, lo: float | None, hi: float | None, limit: int, source: str | None = None,
                     mode: str | None = None, session: str | None = None) -> list[Call]:
        """Up to ``limit`` calls with ``lo <= ts < hi`` (within the current roots), the newest first; of one
        source, mode or session when given."""
        where, args = self._range(lo, hi, session)
        for column, value in (("source", source), ("mode", mode)):
            if value is not None:
                where, args = f"{where} AND {column} = %s", (*args, value)
        return self._select(f"{where} ORDER BY ts DESC LIMIT %s", (*args, limit))

    def file_states(self) -> list[FileState]:
        """Recorded read state of this machine's files (under the current roots)."""
        rows = self._q('SELECT path, kind, dev, ino, "offset", size, mtime, tail FROM tokentop.files '
                       "WHERE machine = %s", (self.machine,)).fetchall()
        return [FileState(*r[:7], bytes(r[7])) for r in rows if not self.roots or self.root_of(r[0])]

    def meta(self, key: str) -> Any:
        """A JSON value kept with the last commit (None when absent)."""
        r = self._q("SELECT value FROM tokentop.ledger_meta WHERE machine = %s AND key = %s",
                    (self.machine, key)).fetchone()
        return json.loads(r[0]) if r else None

    def warnings(self) -> dict[str, int]:
        """Warning counters as of the last commit."""
        return self.meta("warnings") or {}

    def cells(self, day_of: DayNamer) -> dict[CellKey, list[float]]:
        """The cube's cells: this machine's rollup quarter hours folded into days of the display zone."""
        where, args = self._scope()
        q = f"""SELECT bucket, source, model, project, session, mode, sum(input_tokens), sum(output_tokens),
                       sum(cache_creation_tokens), sum(cache_read_tokens), sum(calls), sum(cost), sum(unpriced),
                       sum(local_calls), max(last)
                FROM tokentop.rollup WHERE {where} GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(calls) != 0"""
        rows = ((*r[:6], *(int(v) if i not in (5, 8) else float(v) for i, v in enumerate(r[6:])))
                for r in self._q(q, tuple(args)).fetchall())  # sums of bigint come back as Decimal
        return fold_rollup(rows, day_of, self.internal_project)

    def ledger_only(self, gone: list[str] | None = None) -> int:
        """Calls whose source file no longer exists (kept only here); ``gone``: those files, when known."""
        if gone is None:
            gone = [s.path for s in self.file_states() if not os.path.exists(s.path)]
        if not gone:
            return 0
        return self._q("SELECT count(*) FROM tokentop.calls WHERE machine = %s AND file = ANY(%s)",
                       (self.machine, gone)).fetchone()[0]
