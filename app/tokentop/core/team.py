"""Team mode on PostgreSQL: machines push their ledgers to one database; viewers read all of it, live.

Schema ``tokentop`` (created and migrated here):

- ``calls``: one row per (machine, source, key) with the machine's ``user``; a push upserts with max-per-field
  semantics (a later, larger snapshot of a message wins; pushing the same rows again changes nothing).
- ``rollup``: sums per (machine, user, quarter hour, source, model, project, session, mode), kept in step with
  ``calls`` by statement triggers over transition tables, each change stamped with ``seq`` from a sequence: a
  viewer loads the rollup once and then reads only rows with a higher ``seq``.
- ``budgets``: the team's budgets.

Every statement that changes ``calls`` sends ``NOTIFY tokentop`` (delivered at commit), so viewers update
without polling. Connection strings are never printed: errors go through `redact`.
"""

from __future__ import annotations

import getpass
import json
import os
import pickle
import re
import socket
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .aggregate import BUCKET_SECONDS
from .errors import TeamError
from .ledger import CALLS_FROM, TASK_SUMS, calls_column, span
from .records import Call
from .report import Groups

SCHEMA_VERSION = 2  # 2: meta 'instance', a random id per database (a viewer's cache belongs to one)
CHANNEL = "tokentop"

#: The pushed columns, in order (the local ledger's names; machine and user first).
COLUMNS = ("machine", "user", "source", "key", "keyed", "ts", "model", "project", "session", "mode",
           "input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens", "cost", "task",
           "cache_write_1h", "web_search_requests", "speed", "geo", "file", "offset", "priced_with", "root")
_NUMERIC = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens", "cache_write_1h",
            "web_search_requests")
_TEXT = ("model", "project", "session", "mode", "task", "speed", "geo", "file", "offset", "priced_with", "keyed",
         "ts", "root")
_SUMS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens", "calls", "cost",
         "unpriced", "local_calls", "last")
_DIMS = ("machine", "user", "bucket", "root", "source", "model", "project", "session", "mode")


def _q(name: str) -> str:
    return f'"{name}"'


_COLS_SQL = ", ".join(_q(c) for c in COLUMNS)
_ROLL_SELECT = f"""SELECT machine, "user", floor(ts / {BUCKET_SECONDS})::bigint, root, source, model, project,
        session, mode, {{sign}} * sum(input_tokens), {{sign}} * sum(output_tokens),
        {{sign}} * sum(cache_creation_tokens), {{sign}} * sum(cache_read_tokens), {{sign}} * count(*),
        {{sign}} * coalesce(sum(cost), 0),
        {{sign}} * count(*) FILTER (WHERE cost IS NULL), {{sign}} * count(*) FILTER (WHERE mode = 'local'), max(ts)
    FROM {{table}} GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9"""
_ROLL_UPSERT = f"""INSERT INTO tokentop.rollup AS r ({', '.join(_q(c) for c in _DIMS + _SUMS)})
    SELECT {', '.join(_q(c) for c in _DIMS)}, sum(input_tokens), sum(output_tokens), sum(cache_creation_tokens),
        sum(cache_read_tokens), sum(calls), sum(cost), sum(unpriced), sum(local_calls), max(last)
    FROM ({{rows}}) AS d ({', '.join(_q(c) for c in _DIMS + _SUMS)}) GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
    ON CONFLICT ({', '.join(_q(c) for c in _DIMS)}) DO UPDATE SET
        {', '.join(f'{_q(c)} = r.{_q(c)} + excluded.{_q(c)}' for c in _SUMS[:-1])},
        last = greatest(r.last, excluded.last), seq = nextval('tokentop.rollup_seq')"""



def _roll_function(name: str, rows: str) -> str:
    """A statement trigger's function: the changed rows' sums into the rollup, then NOTIFY (sent at commit)."""
    return f"""CREATE OR REPLACE FUNCTION tokentop.{name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_ROLL_UPSERT.format(rows=rows)};
    PERFORM pg_notify('{CHANNEL}', '');
    RETURN NULL;
END $$;"""


_SCHEMA = f"""
CREATE SCHEMA IF NOT EXISTS tokentop;
CREATE TABLE IF NOT EXISTS tokentop.meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS tokentop.calls (
    machine text NOT NULL, "user" text NOT NULL, source text NOT NULL, key text NOT NULL, keyed boolean NOT NULL,
    ts double precision NOT NULL, model text NOT NULL, project text NOT NULL, session text NOT NULL,
    mode text NOT NULL, input_tokens bigint NOT NULL, output_tokens bigint NOT NULL,
    cache_creation_tokens bigint NOT NULL, cache_read_tokens bigint NOT NULL, cost double precision,
    task text NOT NULL, cache_write_1h bigint NOT NULL, web_search_requests bigint NOT NULL, speed text NOT NULL,
    geo text NOT NULL, file text NOT NULL, "offset" bigint NOT NULL, priced_with text NOT NULL,
    root text NOT NULL,           -- the source folder on that machine (a Postgres ledger is scoped by it)
    PRIMARY KEY (machine, source, key)
);
CREATE INDEX IF NOT EXISTS calls_ts ON tokentop.calls (ts);
CREATE INDEX IF NOT EXISTS calls_keyless_file ON tokentop.calls (machine, file) WHERE NOT keyed;
-- A machine whose ledger lives here (--ledger postgresql://...) keeps its read state and counters here too.
CREATE TABLE IF NOT EXISTS tokentop.files (
    machine text NOT NULL, path text NOT NULL, kind text NOT NULL, dev bigint NOT NULL, ino bigint NOT NULL,
    "offset" bigint NOT NULL, size bigint NOT NULL, mtime double precision NOT NULL, tail bytea NOT NULL,
    PRIMARY KEY (machine, path)
);
CREATE TABLE IF NOT EXISTS tokentop.ledger_meta (
    machine text NOT NULL, key text NOT NULL, value text NOT NULL, PRIMARY KEY (machine, key)
);
CREATE SEQUENCE IF NOT EXISTS tokentop.rollup_seq;
CREATE TABLE IF NOT EXISTS tokentop.rollup (
    machine text NOT NULL, "user" text NOT NULL, bucket bigint NOT NULL, root text NOT NULL, source text NOT NULL,
    model text NOT NULL, project text NOT NULL, session text NOT NULL, mode text NOT NULL,
    input_tokens bigint NOT NULL, output_tokens bigint NOT NULL, cache_creation_tokens bigint NOT NULL,
    cache_read_tokens bigint NOT NULL, calls bigint NOT NULL, cost double precision NOT NULL,
    unpriced bigint NOT NULL, local_calls bigint NOT NULL, last double precision NOT NULL,
    seq bigint NOT NULL DEFAULT nextval('tokentop.rollup_seq'),
    PRIMARY KEY (machine, "user", bucket, root, source, model, project, session, mode)
);
CREATE INDEX IF NOT EXISTS rollup_seq_idx ON tokentop.rollup (seq);
CREATE TABLE IF NOT EXISTS tokentop.budgets (
    scope text NOT NULL, period text NOT NULL, spec jsonb NOT NULL, PRIMARY KEY (scope, period)
);
INSERT INTO tokentop.meta VALUES ('instance', md5(random()::text || clock_timestamp()::text))
    ON CONFLICT (key) DO NOTHING;
{_roll_function('roll_inserted', _ROLL_SELECT.format(sign=1, table='new_rows'))}
{_roll_function('roll_updated', _ROLL_SELECT.format(sign=1, table='new_rows') + ' UNION ALL '
                + _ROLL_SELECT.format(sign=-1, table='old_rows'))}
DROP TRIGGER IF EXISTS calls_inserted ON tokentop.calls;
CREATE TRIGGER calls_inserted AFTER INSERT ON tokentop.calls REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tokentop.roll_inserted();
{_roll_function('roll_deleted', _ROLL_SELECT.format(sign=-1, table='old_rows'))}
DROP TRIGGER IF EXISTS calls_deleted ON tokentop.calls;
CREATE TRIGGER calls_deleted AFTER DELETE ON tokentop.calls REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tokentop.roll_deleted();
DROP TRIGGER IF EXISTS calls_updated ON tokentop.calls;
CREATE TRIGGER calls_updated AFTER UPDATE ON tokentop.calls REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tokentop.roll_updated();
"""

# Max per field: a bigger snapshot of the same call wins; text fields follow the bigger output.
_BIGGER = "excluded.output_tokens > c.output_tokens"
_UPSERT = f"""INSERT INTO tokentop.calls AS c ({_COLS_SQL}) SELECT {_COLS_SQL} FROM stage
    ON CONFLICT (machine, source, key) DO UPDATE SET
        {', '.join(f'{_q(n)} = greatest(c.{_q(n)}, excluded.{_q(n)})' for n in _NUMERIC)},
        cost = greatest(c.cost, excluded.cost), "user" = excluded."user",
        {', '.join(f'{_q(n)} = CASE WHEN {_BIGGER} THEN excluded.{_q(n)} ELSE c.{_q(n)} END' for n in _TEXT)}
    WHERE {' OR '.join(f'excluded.{_q(n)} > c.{_q(n)}' for n in _NUMERIC)}
        OR excluded.cost > c.cost OR (c.cost IS NULL AND excluded.cost IS NOT NULL)"""

#: What a least-privilege setup grants (printed by `tokentop sync --roles`, documented in the README).
ROLES_SQL = """-- as the database owner, once (tokentop creates the schema on first use by the owner):
CREATE ROLE tokentop_machine LOGIN PASSWORD '...';   -- each machine pushes
GRANT USAGE ON SCHEMA tokentop TO tokentop_machine;
GRANT SELECT, INSERT, UPDATE ON tokentop.calls TO tokentop_machine;  -- SELECT: ON CONFLICT reads the row
GRANT SELECT, INSERT, UPDATE ON tokentop.rollup TO tokentop_machine;  -- written by the triggers
GRANT USAGE ON SEQUENCE tokentop.rollup_seq TO tokentop_machine;
GRANT SELECT ON tokentop.meta TO tokentop_machine;
-- a machine whose ledger lives here (--ledger postgresql://...) also needs:
-- GRANT DELETE ON tokentop.calls TO tokentop_machine;
-- GRANT SELECT, INSERT, UPDATE ON tokentop.files, tokentop.ledger_meta TO tokentop_machine;
CREATE ROLE tokentop_viewer LOGIN PASSWORD '...';    -- dashboards and reports
GRANT USAGE ON SCHEMA tokentop TO tokentop_viewer;
GRANT SELECT ON ALL TABLES IN SCHEMA tokentop TO tokentop_viewer;
"""


_URL_SECRET = re.compile(r"(?P<head>postgres(?:ql)?://[^:/@\s]*:)(?P<pw>[^@\s]*)@", re.IGNORECASE)
_KV_SECRET = re.compile(r"(?P<head>password\s*=\s*)(?P<pw>'[^']*'|\S+)", re.IGNORECASE)


def redact(text: str, url: str | None = None) -> str:
    """``text`` with passwords (in URLs and ``password=`` pairs, and the whole ``url`` given) masked."""
    if url:
        text = text.replace(url, describe_url(url))
    text = _URL_SECRET.sub(lambda m: m.group("head") + "***@", text)
    return _KV_SECRET.sub(lambda m: m.group("head") + "***", text)


def describe_url(url: str) -> str:
    """``postgresql://user@host:port/db`` without the password or query (safe to print)."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        d = conninfo_to_dict(url)
    except Exception:  # noqa: BLE001 - an unparsable string: say nothing of it
        return "the team database"
    host = d.get("host") or "localhost"
    where = f"{host}:{d['port']}" if d.get("port") else str(host)
    who = f"{d['user']}@" if d.get("user") else ""
    return f"postgresql://{who}{where}/{d.get('dbname', '')}"


def _explain(e: Exception, url: str) -> str:
    """One line: what failed, where, and what to check."""
    msg = " ".join(str(e).split())
    low = msg.lower()
    where = describe_url(url)
    if "password authentication failed" in low or "authentication failed" in low or "no password supplied" in low:
        why = "authentication failed (check the user and password)"
    elif "connection refused" in low or "no such file or directory" in low:
        why = "connection refused (is the server running and listening there?)"
    elif "timeout" in low or "timed out" in low:
        why = "the server did not answer in time"
    elif "does not exist" in low and "database" in low:
        why = "that database does not exist"
    elif "invalid" in low and ("dsn" in low or "connection" in low or "uri" in low or "conninfo" in low):
        return f"not a valid PostgreSQL connection string ({redact(msg, url)})"
    else:
        why = redact(msg, url)
    return f"team database {where}: {why}"


def connect(url: str, **kw: Any) -> Any:
    """A psycopg connection (autocommit), or TeamError with a one-line, password-free reason."""
    try:
        import psycopg
    except ImportError as e:  # pragma: no cover - depends on the install
        raise TeamError("team mode needs psycopg: pip install 'tokentop[team]'") from e
    if not re.match(r"^(postgres(ql)?://|\w+=)", url.strip()):
        raise TeamError("not a PostgreSQL connection string: expected postgresql://user@host/db")
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=5, application_name="tokentop", **kw)
    except psycopg.Error as e:
        raise TeamError(_explain(e, url)) from None
    except Exception as e:  # noqa: BLE001 - bad option values raise plain errors from libpq parsing
        raise TeamError(f"not a valid PostgreSQL connection string ({redact(str(e), url)})") from None


def team_url(given: str | None, config: Path | None = None) -> str:
    """The connection string: ``given`` (an argument), else ``TOKENTOP_TEAM_URL`` / ``DATABASE_URL``, else the
    ``team.url`` file in the config dir, which must not be readable by others (0600)."""
    if given:
        return given
    for var in ("TOKENTOP_TEAM_URL", "DATABASE_URL"):
        if os.environ.get(var):
            return os.environ[var]
    if config is not None and config.exists():
        mode = stat.S_IMODE(config.stat().st_mode)
        if mode & 0o077:
            raise TeamError(f"{config} is readable by others (mode {mode:o}): chmod 600 {config}")
        text = config.read_text(encoding="utf-8").strip()
        if text:
            return text
    raise TeamError("no team database: pass postgresql://…, set TOKENTOP_TEAM_URL, or write it to "
                    f"{config or 'team.url in the config dir'} (mode 600)")


def default_machine() -> str:
    """This machine's name in the team (``--as-machine`` or ``TOKENTOP_MACHINE`` overrides the hostname)."""
    return os.environ.get("TOKENTOP_MACHINE") or socket.gethostname() or "unknown"


def default_user() -> str:
    """Who runs tokentop here."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry (containers)
        return os.environ.get("USER", "unknown")


def lock_pushes(conn: Any) -> None:
    """Within a transaction that writes calls: one such transaction at a time. Rollup seq numbers then become
    visible in order, so a viewer that has read up to seq N never later sees a smaller one commit (it would miss
    it)."""
    conn.execute("SELECT pg_advisory_xact_lock(7420002)")


def stage(conn: Any, rows: Iterable[tuple[Any, ...]]) -> None:
    """Rows in `COLUMNS` order into the transaction's temporary ``stage`` table (emptied at commit)."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS stage (LIKE tokentop.calls) ON COMMIT DELETE ROWS")
    with conn.cursor().copy(f"COPY stage ({_COLS_SQL}) FROM STDIN") as cp:
        for r in rows:
            cp.write_row(r)


def task_sum_rows(rows: Iterable[Any], internal_project: str = "") -> list[tuple[Any, ...]]:
    """`TASK_SUMS` rows from PostgreSQL as SQLite gives them: its sums of bigint are numeric (Decimal here)."""
    return [(task, source, model, project or internal_project, mode, int(i), int(o), int(cw), int(cr), n, cost,
             unpriced) for task, source, model, project, mode, i, o, cw, cr, n, cost, unpriced in rows]


class TeamStore:
    """The shared database: schema, pushes, rollup reads, single calls, budgets."""

    def __init__(self, url: str, create: bool = True) -> None:
        self.url = url
        self.conn = connect(url)
        self.lock = threading.RLock()
        if create:
            self.migrate()

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def _run(self, fn: Callable[[Any], Any]) -> Any:
        import psycopg

        with self.lock:
            try:
                return fn(self.conn)
            except psycopg.Error as e:
                raise TeamError(_explain(e, self.url)) from None

    def migrate(self) -> None:
        """Create or upgrade the schema (one migrator at a time)."""

        def go(conn: Any) -> None:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(7420001)")
                have = conn.execute("SELECT to_regclass('tokentop.meta')").fetchone()[0]
                version = 0
                if have:
                    r = conn.execute("SELECT value FROM tokentop.meta WHERE key = 'schema_version'").fetchone()
                    version = int(r[0]) if r else 0
                if version > SCHEMA_VERSION:
                    raise TeamError(f"the team database has schema {version}, newer than this tokentop "
                                    f"({SCHEMA_VERSION}): upgrade tokentop")
                if version < SCHEMA_VERSION:
                    conn.execute(_SCHEMA)
                    conn.execute("INSERT INTO tokentop.meta VALUES ('schema_version', %s) ON CONFLICT (key) "
                                 "DO UPDATE SET value = excluded.value", (str(SCHEMA_VERSION),))

        self._run(go)

    def push(self, rows: list[tuple[Any, ...]]) -> None:
        """Upsert rows (in `COLUMNS` order) in one transaction: all of them or none."""

        def go(conn: Any) -> None:
            with conn.transaction():
                lock_pushes(conn)
                stage(conn, rows)
                conn.execute(_UPSERT)

        self._run(go)

    def days(self, zone: str, since_seq: int | None = None) -> list[tuple[Any, ...]]:
        """The rollup summed per calendar day of ``zone`` (the server does the folding):
        (machine, user, day, source, model, project, session, mode, *sums, max seq) rows.

        ``since_seq``: only the (machine, user, day, source, model, project, session, mode) groups that have a
        rollup row changed after it — each group's whole, current day sums (a viewer replaces its rows with them).
        """
        # bigint sums come back as numeric (Decimal in Python, slow to parse): cast them back
        sums = ", ".join(f"sum(r.{_q(c)})::{'float8' if c == 'cost' else 'bigint'}" for c in _SUMS[:-1]) + \
            ", max(r.last), max(r.seq)"
        day = f"(to_timestamp(r.bucket * {BUCKET_SECONDS}) AT TIME ZONE %(zone)s)::date"
        dims = 'r.machine, r."user", {day}, r.source, r.model, r.project, r.session, r.mode'
        if since_seq is None:
            q = (f"SELECT {dims.format(day=day + '::text')}, {sums} FROM tokentop.rollup r "
                 "GROUP BY 1, 2, 3, 4, 5, 6, 7, 8")
        else:  # the changed groups, then all rows of each group's day (a bucket range: the primary key's prefix)
            q = f"""WITH c AS (
                    SELECT DISTINCT r.machine, r."user", {day} AS day, r.source, r.model, r.project, r.session,
                        r.mode FROM tokentop.rollup r WHERE r.seq > %(seq)s),
                b AS (SELECT c.*, floor(extract(epoch FROM c.day::timestamp AT TIME ZONE %(zone)s)
                                        / {BUCKET_SECONDS})::bigint AS lo,
                             floor(extract(epoch FROM (c.day + 1)::timestamp AT TIME ZONE %(zone)s)
                                        / {BUCKET_SECONDS})::bigint AS hi FROM c)
                SELECT b.machine, b."user", b.day::text, b.source, b.model, b.project, b.session, b.mode, {sums}
                FROM b JOIN tokentop.rollup r ON r.machine = b.machine AND r."user" = b."user"
                    AND r.bucket >= b.lo AND r.bucket < b.hi AND r.source = b.source AND r.model = b.model
                    AND r.project = b.project AND r.session = b.session AND r.mode = b.mode
                GROUP BY 1, 2, 3, 4, 5, 6, 7, 8"""

        def go(conn: Any) -> list[tuple[Any, ...]]:
            with conn.transaction():
                # a full read groups every rollup row: enough memory that the hash aggregate does not spill
                conn.execute("SET LOCAL work_mem = '64MB'")
                return conn.execute(q, {"zone": zone, "seq": since_seq}).fetchall()

        return self._run(go)

    def state(self) -> tuple[str, int]:
        """This database's instance id ('' before schema 2) and the highest rollup ``seq`` stored."""
        return self._run(lambda c: c.execute(
            "SELECT coalesce((SELECT value FROM tokentop.meta WHERE key = 'instance'), ''), "
            "coalesce((SELECT max(seq) FROM tokentop.rollup), 0)").fetchone())

    #: A call's columns in `Call`'s order.
    _CALLS = ("SELECT source, ts, model, project, session, mode, input_tokens, output_tokens, cache_creation_tokens,"
              " cache_read_tokens, cost, CASE WHEN keyed THEN key END, task, cache_write_1h, web_search_requests,"
              ' speed, geo, file, "offset" FROM tokentop.calls')

    def calls(self, lo: float | None, hi: float | None, machines: Iterable[str] | None = None,
              users: Iterable[str] | None = None, session: str | None = None) -> list[Call]:
        """Single calls with ``lo <= ts < hi`` of the given machines and users (None = all), of one session when
        given (a drill-down's: tested by the server, not after reading every call of the dates)."""
        where, args = self._calls_where(lo, hi, machines, users)
        if session is not None:
            where += " AND session = %s"
            args.append(session)
        return self._run(lambda conn: [Call(*r) for r in conn.execute(f"{self._CALLS} WHERE {where}", args)])

    def newest_calls(self, lo: float | None, hi: float | None, limit: int, machines: Iterable[str] | None = None,
                     users: Iterable[str] | None = None, source: str | None = None, mode: str | None = None,
                     session: str | None = None) -> list[Call]:
        """Up to ``limit`` of those calls, the newest first, through the time index (the recent-calls view reads a
        few hundred rows, not every call of its dates); of one source, mode or session when given."""
        where, args = self._calls_where(lo, hi, machines, users)
        for column, value in (("source", source), ("mode", mode), ("session", session)):
            if value is not None:
                where += f" AND {column} = %s"
                args.append(value)
        q = f"{self._CALLS} WHERE {where} ORDER BY ts DESC LIMIT %s"
        return self._run(lambda conn: [Call(*r) for r in conn.execute(q, [*args, limit])])

    @staticmethod
    def _calls_where(lo: float | None, hi: float | None, machines: Iterable[str] | None,
                     users: Iterable[str] | None) -> tuple[str, list[Any]]:
        where, args = ["ts >= %s", "ts < %s"], [*span(lo, hi)]
        if machines is not None:
            where.append("machine = ANY(%s)")
            args.append(list(machines))
        if users is not None:
            where.append('"user" = ANY(%s)')
            args.append(list(users))
        return " AND ".join(where), args

    def task_sums(self, lo: float | None, hi: float | None, machines: Iterable[str] | None = None,
                  users: Iterable[str] | None = None) -> list[tuple[Any, ...]]:
        """Sums by task, source, model, project and mode of the calls `calls` returns (see `Ledger.task_sums`)."""
        q, args = self._task_sums_query(lo, hi, machines, users)
        return self._run(lambda conn: task_sum_rows(conn.execute(q, args).fetchall()))

    def task_sums_later(self, lo: float | None, hi: float | None, machines: Iterable[str] | None = None,
                        users: Iterable[str] | None = None) -> Callable[[], list[tuple[Any, ...]]]:
        """`task_sums`, read when the function returned is called (in another thread), on a connection of its own:
        a long read leaves this store's connection to the views and to the updates NOTIFY brings. Raises
        TeamError."""
        q, args = self._task_sums_query(lo, hi, machines, users)

        def read() -> list[tuple[Any, ...]]:
            import psycopg

            conn = connect(self.url)
            try:
                return task_sum_rows(conn.execute(q, args).fetchall())
            except psycopg.Error as e:
                raise TeamError(_explain(e, self.url)) from None
            finally:
                conn.close()

        return read

    def _task_sums_query(self, lo: float | None, hi: float | None, machines: Iterable[str] | None,
                         users: Iterable[str] | None) -> tuple[str, list[Any]]:
        where, args = self._calls_where(lo, hi, machines, users)
        return TASK_SUMS.format(calls="tokentop.calls", where=where, total="sum"), args

    def count(self, machine: str | None = None) -> int:
        """Calls stored (of one machine)."""
        if machine is None:
            return self._run(lambda c: c.execute("SELECT count(*) FROM tokentop.calls").fetchone()[0])
        return self._run(lambda c: c.execute("SELECT count(*) FROM tokentop.calls WHERE machine = %s",
                                             (machine,)).fetchone()[0])

    # -- budgets -----------------------------------------------------------------------------------------

    def budgets(self) -> list[dict[str, Any]]:
        """The team's budgets (as `Budget` fields)."""
        return self._run(lambda c: [r[0] for r in c.execute("SELECT spec FROM tokentop.budgets ORDER BY 1")])

    def set_budget(self, spec: dict[str, Any]) -> None:
        """Add or replace the budget of (scope, period)."""
        self._run(lambda c: c.execute(
            "INSERT INTO tokentop.budgets VALUES (%s, %s, %s) ON CONFLICT (scope, period) DO UPDATE "
            "SET spec = excluded.spec", (spec["scope"], spec["period"], json.dumps(spec))))

    def rm_budget(self, scope: str, period: str) -> bool:
        """Remove one; False when there was none."""
        return self._run(lambda c: c.execute("DELETE FROM tokentop.budgets WHERE scope = %s AND period = %s",
                                             (scope, period)).rowcount > 0)


# -- sync: a machine's local ledger → the team database ------------------------------------------------------

_LOCAL_COLS = COLUMNS[2:]  # the local ledger's columns, in its names


@dataclass
class SyncState:
    """What the status line shows."""

    state: str = "idle"  # idle | syncing | synced | offline
    backlog: int = 0
    pushed: int = 0
    error: str = ""
    last_ok: float | None = None

    def text(self) -> str:
        """``sync ✓`` / ``sync offline (reason) · 1,204 queued``."""
        if self.state == "offline":
            return f"sync offline · {self.backlog:,} queued ({self.error})"
        if self.backlog:
            return f"sync {self.backlog:,} queued"
        return "sync ✓" if self.state == "synced" else f"sync {self.state}"


@dataclass
class Syncer:
    """Pushes the local SQLite ledger's calls to the team database, resumably.

    The watermark is the last pushed SQLite rowid, kept in the local ledger per target: a replaced call gets a
    new rowid, so it is pushed again, and the upsert keeps the larger snapshot. A failure leaves the watermark
    where the last committed batch put it; the next run starts there (re-pushing is harmless).
    """

    ledger_path: Path
    url: str
    machine: str = field(default_factory=default_machine)
    user: str = field(default_factory=default_user)
    batch: int = 20_000
    internal_project: str = ""
    status: SyncState = field(default_factory=SyncState)

    def __post_init__(self) -> None:
        self._store: TeamStore | None = None
        self._key: str | None = None

    @property
    def key(self) -> str:
        """The watermark's name: the target, and the ledger's rowid epoch (a migration that numbers rowids anew
        starts the count over; pushing again is harmless)."""
        if self._key is None:
            db = self._local()
            try:
                r = db.execute("SELECT value FROM meta WHERE key = 'rowid_epoch'").fetchone()
            finally:
                db.close()
            self._key = "sync:" + describe_url(self.url) + ":" + self.machine + (f":rowids{r[0]}" if r else "")
        return self._key

    def _local(self) -> sqlite3.Connection:
        if not Path(self.ledger_path).exists():
            raise TeamError(f"no local ledger at {self.ledger_path}: run tokentop or tokentop report first")
        db = sqlite3.connect(self.ledger_path, timeout=10, isolation_level=None)
        db.execute("PRAGMA busy_timeout=10000")
        return db

    @property
    def marks_path(self) -> Path:
        """Where the last pushed rowid per target is kept: beside the ledger, not in it (a write into the
        ledger would look like another tokentop's and make the engine reload it)."""
        return Path(str(self.ledger_path) + ".sync.json")

    def _marks(self) -> dict[str, int]:
        try:
            data = json.loads(self.marks_path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def watermark(self) -> int:
        """The last rowid pushed to this target."""
        return int(self._marks().get(self.key, 0))

    def _save_watermark(self, mark: int) -> None:
        from .files import write_atomic

        marks = self._marks()
        marks[self.key] = mark
        write_atomic(self.marks_path, json.dumps(marks))

    def backlog(self) -> int:
        """Local calls not yet pushed."""
        db = self._local()
        try:
            return db.execute("SELECT count(*) FROM calls WHERE rowid > ?", (self.watermark(),)).fetchone()[0]
        finally:
            db.close()

    def store(self) -> TeamStore:
        """The team connection (opened on first use, reopened after a failure)."""
        if self._store is None:
            self._store = TeamStore(self.url)
        return self._store

    def run_once(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Push everything not yet pushed, in batches; returns calls pushed. Raises TeamError (state offline)."""
        db = self._local()
        try:
            mark = self.watermark()
            self.status.backlog = db.execute("SELECT count(*) FROM calls WHERE rowid > ?", (mark,)).fetchone()[0]
            total, done = self.status.backlog, 0
            cols = ", ".join(calls_column(c) for c in _LOCAL_COLS)
            q = f"SELECT calls.rowid, {cols} FROM {CALLS_FROM} WHERE calls.rowid > ? ORDER BY calls.rowid LIMIT ?"
            while True:
                rows = db.execute(q, (mark, self.batch)).fetchall()
                if not rows:
                    break
                self.status.state = "syncing"
                out = []
                for r in rows:
                    vals = list(r[1:])
                    vals[2] = bool(vals[2])
                    if not vals[5]:
                        vals[5] = self.internal_project or "internal"
                    out.append((self.machine, self.user, *vals))
                try:
                    self.store().push(out)
                except TeamError as e:
                    self._fail(e)
                    raise
                mark = rows[-1][0]
                self._save_watermark(mark)
                done += len(rows)
                self.status.pushed += len(rows)
                self.status.backlog = max(0, total - done)
                if progress:
                    progress(done, total)
            self.status.state, self.status.error, self.status.backlog = "synced", "", 0
            self.status.last_ok = time.time()
            return done
        finally:
            db.close()

    def _fail(self, e: TeamError) -> None:
        self.status.state, self.status.error = "offline", str(e).split(": ", 1)[-1]
        if self._store is not None:
            try:
                self._store.close()
            except Exception:  # noqa: BLE001 - already broken
                pass
            self._store = None

    def run_forever(self, stop: threading.Event, wake: threading.Event | None = None, idle: float = 30.0,
                    on_change: Callable[[SyncState], None] | None = None) -> None:
        """Push continuously until ``stop``: after each ``wake`` (the ledger changed) or every ``idle`` seconds;
        while offline, retry after 1, 2, 4 … 30 s. Never raises: the state says what is wrong."""
        retry = 1.0
        while not stop.is_set():
            try:
                self.run_once()
                delay, retry = idle, 1.0
            except TeamError:
                delay, retry = retry, min(30.0, retry * 2)
            except (sqlite3.Error, OSError) as e:
                self.status.state, self.status.error = "offline", f"local ledger: {e}"
                delay, retry = retry, min(30.0, retry * 2)
            if on_change:
                on_change(self.status)
            waiter = wake if wake is not None else stop
            waiter.wait(delay)
            if wake is not None:
                wake.clear()


# -- the team view: rollup rows in memory, kept current by seq --------------------------------------------------


class TeamRollup:
    """The team's sums per (machine, user) and cube cell (day in the viewer's zone), held in memory.

    `load` reads everything, folded to days by the server; `refresh` reads only the groups with rollup rows
    changed since (by ``seq``), each with its whole current day, and replaces them.

    With a ``cache_dir``, `save` keeps what was read in a file there (mode 600, in the user's own cache dir) and,
    next time, `load` starts from that file and reads only what changed since (by ``seq``). The file names the
    database (its address and random instance id) and zone: a database dropped and created again, or a rollup
    rebuilt with lower numbers, is read in full. It is a pickle: it loads three times faster than msgpack plus
    rebuilding the dicts, and only this user can write it. It also keeps the `TeamView` of an unfiltered report,
    so that a start with nothing changed renders it without unpickling the parts.
    """

    CACHE_FORMAT = 2

    def __init__(self, store: TeamStore, zone: str, cache_dir: Path | None = None) -> None:
        self.store = store
        self.zone = zone
        self.seq = 0
        self._parts: dict[tuple[str, str], dict[tuple[str, ...], list[float]]] = {}
        self._pickled: bytes | None = None  # the cache's parts, unpickled when first needed
        #: What an unfiltered team report shows, when known (kept in the cache; dropped on every change).
        self.view: TeamView | None = None
        self.cache: Path | None = None
        if cache_dir is not None:
            import hashlib

            name = hashlib.sha1(f"{describe_url(store.url)}\0{zone}".encode()).hexdigest()[:20]
            self.cache = Path(cache_dir) / f"team-{name}.pickle"
        self.from_cache = False
        self.dirty = False  # the cache is behind what is held
        self._instance = ""

    def _take(self, rows: list[tuple[Any, ...]]) -> list[tuple[tuple[str, str], tuple[str, ...], list[float] | None,
                                                              list[float]]]:
        changes = []
        intern: dict[str, str] = {}  # one object per distinct name: smaller in memory and in the cache
        for r in rows:
            part = self.parts.setdefault((r[0], r[1]), {})
            # A ledger kept here stores "" for app rows without a project (resolved per machine on read).
            key = (intern.setdefault(r[2], r[2]), intern.setdefault(r[3], r[3]), intern.setdefault(r[4], r[4]),
                   intern.setdefault(r[5] or "internal", r[5] or "internal"), intern.setdefault(r[6], r[6]),
                   intern.setdefault(r[7], r[7]))
            new = list(r[8:17])
            changes.append(((r[0], r[1]), key, part.get(key), new))
            if new[4]:
                part[key] = new
            else:  # its calls were deleted (a ledger kept here dropped a rewritten file's rows)
                part.pop(key, None)
            if r[17] > self.seq:
                self.seq = r[17]
        if changes:
            self.view, self.dirty = None, True
        return changes

    @property
    def parts(self) -> dict[tuple[str, str], dict[tuple[str, ...], list[float]]]:
        """(machine, user) -> {(day, source, model, project, session, mode): the 9 sums}."""
        if self._pickled is not None:
            self._parts, self._pickled = pickle.loads(self._pickled), None
        return self._parts

    def load(self) -> None:
        """Read everything (or the cached rows and what changed since); `save` keeps it for the next start."""
        self._parts, self._pickled, self.seq, self.view = {}, None, 0, None
        self.from_cache, self.dirty = False, True
        self._instance, top = self.store.state() if self.cache is not None else ("", 0)
        cached = self._read_cache(self._instance, top)
        if cached is not None:
            self._pickled, self.seq, self.view, self.from_cache, self.dirty = (cached.parts, cached.seq,
                                                                               cached.view, True, False)
            self.refresh()
            return
        self._take(self.store.days(self.zone))

    def refresh(self) -> list[tuple[tuple[str, str], tuple[str, ...], list[float] | None, list[float]]]:
        """Read what changed; returns ((machine, user), cell key, old sums or None, new sums) per change."""
        return self._take(self.store.days(self.zone, since_seq=self.seq))

    def _read_cache(self, instance: str, top: int) -> _Cached | None:
        if self.cache is None or not instance:
            return None
        try:
            with open(self.cache, "rb") as f:
                c = pickle.load(f)
            if (not isinstance(c, _Cached) or c.format != self.CACHE_FORMAT or c.instance != instance
                    or c.where != describe_url(self.store.url) or c.zone != self.zone or c.seq > top
                    or not isinstance(c.parts, bytes)):
                return None
            c.view  # noqa: B018 - a field every cache of this format has
        except Exception:  # noqa: BLE001 - none yet, damaged or from another version: read everything
            return None
        return c

    def save(self) -> None:
        """Keep what is held in the cache file, if it is behind (or has no groups and they are known now)."""
        if self.cache is None or not self._instance or not self.dirty:
            return
        from .files import write_atomic

        parts = self._pickled
        if parts is None:
            parts = pickle.dumps(self._parts, protocol=pickle.HIGHEST_PROTOCOL)
        c = _Cached(self.CACHE_FORMAT, self._instance, describe_url(self.store.url), self.zone, self.seq, parts,
                    self.view)
        try:
            write_atomic(self.cache, pickle.dumps(c, protocol=pickle.HIGHEST_PROTOCOL), mode=0o600)
            self.dirty = False
        except OSError:
            pass  # a read-only cache dir: the next start reads everything again


@dataclass
class _Cached:
    """A viewer's copy of the team's day rows (`TeamRollup.cache`)."""

    format: int
    instance: str
    where: str
    zone: str
    seq: int
    parts: bytes  # TeamRollup.parts, pickled: a start that needs only the view never unpickles them
    view: TeamView | None


@dataclass
class TeamView:
    """What an unfiltered team report shows (`TeamRollup.view`): the cube's report groups, the sums per
    (machine, user), and each session's machine."""

    groups: Groups
    totals: dict[tuple[str, str], list[float]]
    machine_of: dict[str, str]
