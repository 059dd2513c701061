"""The durable ledger: warm starts, history beyond deleted transcripts, crash safety, repricing, export."""

from __future__ import annotations

import fcntl
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest
from tokentop.core.engine import Engine, Sources
from tokentop.core.filters import Filter, parse_tz
from tokentop.core.ledger import Ledger
from tokentop.core.pricing import PriceBook

from tests.builders import HAIKU, OPUS, SONNET, cc_line, internal_row, project_dir, rounded, write_lines
from tests.conftest import run_cli

UTC = parse_tz("UTC")


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_path(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """The ledger every test here runs against: a SQLite file, then a PostgreSQL database."""
    if request.param == "postgres":
        return request.getfixturevalue("team_url")
    return tmp_path / "ledger.sqlite"


@pytest.fixture
def sqlite_ledger(tmp_path: Path) -> Path:
    """For what only a file has: its bytes, its schema version, its WAL."""
    return tmp_path / "ledger.sqlite"


def open_ledger(target: Any, **kw: Any) -> Any:
    if str(target).startswith("postgresql://"):
        from tokentop.core.pg_ledger import PgLedger

        return PgLedger(str(target), **kw)
    return Ledger(target, **kw)


def report(claude_dir: Path, data_root: Path, capsys, *args: str) -> dict:
    code, out, err = run_cli(["report", "--json", "--tz", "UTC", "--claude-dir", str(claude_dir), "--data-root",
                              str(data_root), *args], capsys)
    assert code == 0, err
    return json.loads(out)


def engine(claude_dir: Path, data_root: Path, ledger_path: Path) -> Engine:
    sources = Sources([claude_dir], data_root, "app")
    ledger = open_ledger(ledger_path, roots=[*sources.claude_roots, data_root / "agents"], internal_project="app")
    return Engine(sources, PriceBook(), UTC, ledger=ledger)


def history(claude_dir: Path, data_root: Path) -> None:
    write_lines(project_dir(claude_dir) / "a.jsonl", [cc_line("m1", output=2), cc_line("m1", output=300),
                                                      cc_line("m2", model=OPUS, output=50)])
    write_lines(project_dir(claude_dir, "/src/other") / "b.jsonl", [cc_line("m3", cwd="/src/other", session="b")])
    write_lines(data_root / "agents" / "s1" / "llm_costs.jsonl", [internal_row(cost=0.5), internal_row(cost=0.25)])


def test_warm_start_equals_cold_and_reads_no_transcript(claude_dir, data_root, ledger_path, capsys) -> None:
    history(claude_dir, data_root)
    cold = report(claude_dir, data_root, capsys, "--no-ledger")
    first = report(claude_dir, data_root, capsys, "--ledger", str(ledger_path))
    warm = report(claude_dir, data_root, capsys, "--ledger", str(ledger_path))
    for r in (first, warm):
        assert r["totals"] == cold["totals"]
        assert r["by_day"] == cold["by_day"] and r["by_model"] == cold["by_model"]
        assert r["sessions"] == cold["sessions"]
    e = engine(claude_dir, data_root, ledger_path)
    e.start()
    assert e.lines_applied == 0  # nothing was read again
    assert e.totals(Filter(tz=UTC)) == cold["totals"]


def test_no_ledger_writes_nothing(claude_dir, data_root, tmp_path, capsys) -> None:
    history(claude_dir, data_root)
    report(claude_dir, data_root, capsys, "--no-ledger", "--ledger", str(tmp_path / "never.sqlite"))
    assert not (tmp_path / "never.sqlite").exists()


def test_calls_survive_deleted_transcripts(claude_dir, data_root, ledger_path, capsys) -> None:
    history(claude_dir, data_root)
    before = report(claude_dir, data_root, capsys, "--ledger", str(ledger_path))
    (project_dir(claude_dir) / "a.jsonl").unlink()  # Claude Code's cleanupPeriodDays at work
    after = report(claude_dir, data_root, capsys, "--ledger", str(ledger_path))
    assert after["totals"] == before["totals"]
    assert after["warnings"]["ledger_only_calls"] == 2
    gone = report(claude_dir, data_root, capsys, "--no-ledger")
    assert gone["totals"]["calls"] == before["totals"]["calls"] - 2


def test_a_rescan_counts_the_calls_whose_transcripts_were_deleted_meanwhile(claude_dir, data_root,
                                                                          sqlite_ledger) -> None:
    history(claude_dir, data_root)
    e = engine(claude_dir, data_root, sqlite_ledger)
    e.start()
    assert e.ledger_only == 0 and e.totals(Filter(tz=UTC))["calls"] == 5
    (project_dir(claude_dir) / "a.jsonl").unlink()  # Claude Code's cleanup, while the dashboard runs
    e.rescan()  # `r`
    assert e.ledger_only == 2  # m1 (two snapshots of one message) and m2
    assert e.totals(Filter(tz=UTC))["calls"] == 5


def test_a_live_update_that_finds_the_ledger_locked_counts_its_calls_and_stores_them_with_the_next_one(
        claude_dir, data_root, sqlite_ledger) -> None:
    history(claude_dir, data_root)
    e = engine(claude_dir, data_root, sqlite_ledger)
    e.start()
    e.ledger.db.execute("PRAGMA busy_timeout = 50")  # instead of waiting 5 s for the other tokentop
    other = sqlite3.connect(sqlite_ledger, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another tokentop writing for a long time (a reprice, say)
    transcript = project_dir(claude_dir) / "a.jsonl"
    with transcript.open("a") as f:
        f.write(cc_line("m4", output=7) + "\n")
    assert e.update([str(transcript)]) == 1  # no error: counted, not stored
    assert e.ledger_behind and e.totals(Filter(tz=UTC))["calls"] == 6
    assert other.execute("SELECT count(*) FROM calls WHERE key = 'm4'").fetchone()[0] == 0
    other.execute("COMMIT")
    other.close()
    b = project_dir(claude_dir, "/src/other") / "b.jsonl"
    with b.open("a") as f:
        f.write(cc_line("m5", cwd="/src/other", session="b") + "\n")
    e.update([str(b)])  # the next change: the missed one is read again from the ledger's offsets and stored too
    assert not e.ledger_behind and e.totals(Filter(tz=UTC))["calls"] == 7
    e.ledger.close()
    restarted = engine(claude_dir, data_root, sqlite_ledger)
    restarted.start()
    assert restarted.lines_applied == 0  # nothing left to read: both are in the ledger
    assert restarted.totals(Filter(tz=UTC)) == e.totals(Filter(tz=UTC))


def test_no_snapshot_is_left_while_calls_counted_are_not_stored(claude_dir, data_root, sqlite_ledger) -> None:
    history(claude_dir, data_root)
    first = engine(claude_dir, data_root, sqlite_ledger)
    first.start()
    first.ledger.close()
    e = engine(claude_dir, data_root, sqlite_ledger)
    e.ledger.db.execute("PRAGMA busy_timeout = 50")
    other = sqlite3.connect(sqlite_ledger, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with (project_dir(claude_dir) / "a.jsonl").open("a") as f:
        f.write(cc_line("m4", output=7) + "\n")
    e.start()  # warm: the catch-up reads m4, its commit finds the ledger locked
    assert e.ledger_behind and e.totals(Filter(tz=UTC))["calls"] == 6
    other.execute("COMMIT")
    other.close()
    e.save_snapshot()  # as `start` would, had the lock gone in between: the snapshot must not claim m4
    e.ledger.close()
    restarted = engine(claude_dir, data_root, sqlite_ledger)
    restarted.start()
    assert restarted.totals(Filter(tz=UTC))["calls"] == 6
    assert restarted.ledger.get("claude_code", "m4") is not None  # read again and stored


def test_larger_snapshot_updates_in_place_across_restarts(claude_dir, data_root, ledger_path, capsys) -> None:
    f = project_dir(claude_dir) / "a.jsonl"
    write_lines(f, [cc_line("m1", output=3)])
    report(claude_dir, data_root, capsys, "--ledger", str(ledger_path))
    with open(f, "a") as fh:
        fh.write(cc_line("m1", output=800) + "\n" + cc_line("m1", output=5) + "\n")
    r = report(claude_dir, data_root, capsys, "--ledger", str(ledger_path))
    assert (r["totals"]["calls"], r["totals"]["output_tokens"]) == (1, 800)
    assert r["totals"] == report(claude_dir, data_root, capsys, "--no-ledger")["totals"]
    again = report(claude_dir, data_root, capsys, "--ledger", str(ledger_path))
    assert again["totals"] == r["totals"]


def test_truncated_internal_log_replaces_its_rows_across_restarts(claude_dir, data_root, ledger_path, capsys) -> None:
    log = data_root / "agents" / "s1" / "llm_costs.jsonl"
    write_lines(log, [internal_row(cost=0.5), internal_row(cost=0.25)])
    report(claude_dir, data_root, capsys, "--ledger", str(ledger_path))
    write_lines(log, [internal_row(cost=2.0)])
    r = report(claude_dir, data_root, capsys, "--ledger", str(ledger_path))
    assert (r["totals"]["calls"], r["totals"]["cost_usd"]) == (1, 2.0)


def test_internal_project_setting_applies_to_stored_rows(claude_dir, data_root, ledger_path, capsys) -> None:
    write_lines(data_root / "agents" / "s1" / "llm_costs.jsonl", [internal_row(), internal_row(project="mine")])
    report(claude_dir, data_root, capsys, "--ledger", str(ledger_path))
    r = report(claude_dir, data_root, capsys, "--ledger", str(ledger_path), "--internal-project", "work-buddy")
    assert {p["project"] for p in r["by_project"]} == {"work-buddy", "mine"}


def test_other_roots_in_the_same_ledger_stay_out(tmp_path, claude_dir, data_root, ledger_path, capsys) -> None:
    history(claude_dir, data_root)
    other = tmp_path / "other-claude"
    write_lines(project_dir(other) / "x.jsonl", [cc_line("x1"), cc_line("x2")])
    report(claude_dir, data_root, capsys, "--ledger", str(ledger_path))
    only_other = report(other, tmp_path / "no-data", capsys, "--ledger", str(ledger_path))
    assert only_other["totals"]["calls"] == 2
    # Each cold ingest left the rollup stale. In another zone (no snapshot there) the first reader, for the
    # other root, rebuilds it: every root's part, not only its own.
    zone = ("--tz", "Asia/Kathmandu")
    assert report(other, tmp_path / "no-data", capsys, "--ledger", str(ledger_path), *zone)["totals"]["calls"] == 2
    assert (report(claude_dir, data_root, capsys, "--ledger", str(ledger_path), *zone)["by_day"]
            == report(claude_dir, data_root, capsys, "--no-ledger", *zone)["by_day"])
    mine = report(claude_dir, data_root, capsys, "--ledger", str(ledger_path))
    assert mine["totals"] == report(claude_dir, data_root, capsys, "--no-ledger")["totals"]


def make_corpus(claude_dir: Path, data_root: Path, files: int = 150, lines: int = 120) -> None:
    rng = random.Random(5)
    for i in range(files):
        rows = []
        for _ in range(lines):
            key = f"m{rng.randint(0, files * lines // 3)}"  # keys repeat across files (resume copies)
            rows.append(cc_line(key, output=rng.randint(1, 900), session=f"s{i}",
                                content=[{"type": "text", "text": "x" * rng.randint(10, 2000)}]))
        write_lines(project_dir(claude_dir, f"/src/p{i % 7}") / f"s{i}.jsonl", rows)
    write_lines(data_root / "agents" / "s" / "llm_costs.jsonl", [internal_row(cost=0.01 * k) for k in range(300)])


def test_kill_9_at_any_moment_then_restart_gives_exact_totals(claude_dir, data_root, sqlite_ledger, capsys) -> None:
    make_corpus(claude_dir, data_root)
    truth = report(claude_dir, data_root, capsys, "--no-ledger")["totals"]
    cmd = [sys.executable, "-m", "tokentop.cli", "report", "--json", "--tz", "UTC", "--workers", "1",
           "--claude-dir", str(claude_dir), "--data-root", str(data_root), "--ledger", str(sqlite_ledger)]
    t = time.monotonic()
    subprocess.run(cmd, capture_output=True, check=True)
    full = time.monotonic() - t
    rng = random.Random(11)
    killed = 0
    for _ in range(6):
        for f in sqlite_ledger.parent.glob(sqlite_ledger.name + "*"):
            f.unlink()
        for _attempt in range(3):  # a kill, a restart killed again, ...
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.05, full))
            if p.poll() is None:
                p.kill()
                killed += 1
            p.wait()
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        got = json.loads(out)["totals"]
        assert {k: v for k, v in got.items() if k != "cost_usd"} == {k: v for k, v in truth.items() if k != "cost_usd"}
        assert got["cost_usd"] == pytest.approx(truth["cost_usd"], rel=1e-9)
    assert killed >= 3  # the test really interrupted ingests


def test_newer_schema_is_refused_with_a_clear_message(claude_dir, data_root, sqlite_ledger, capsys) -> None:
    db = sqlite3.connect(sqlite_ledger)
    db.execute("PRAGMA user_version = 99")
    db.close()
    code, out, err = run_cli(["report", "--claude-dir", str(claude_dir), "--data-root", str(data_root), "--ledger",
                              str(sqlite_ledger)], capsys)
    assert code == 2
    assert "newer tokentop" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("damage", ["DROP TABLE snapshot", "DROP TABLE meta", "ALTER TABLE paths RENAME TO p2"])
def test_a_damaged_ledger_read_after_opening_gives_a_message_not_a_traceback(
        claude_dir, data_root, sqlite_ledger, capsys, damage: str) -> None:
    make_corpus(claude_dir, data_root, files=3, lines=10)
    args = ["report", "--claude-dir", str(claude_dir), "--data-root", str(data_root), "--ledger", str(sqlite_ledger)]
    assert run_cli(args, capsys)[0] == 0
    db = sqlite3.connect(sqlite_ledger)
    db.execute(damage)  # the schema version is still this tokentop's: opening works, the first read fails
    db.commit()
    db.close()
    code, out, err = run_cli(args, capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"tokentop: error: the ledger {sqlite_ledger} cannot be used (no such table: ")
    assert "--no-ledger" in err and len(err.strip().splitlines()) == 1


def test_a_ledger_upgraded_by_a_newer_tokentop_meanwhile_says_so(claude_dir, data_root, sqlite_ledger) -> None:
    from tokentop.core.ledger import LedgerError

    make_corpus(claude_dir, data_root, files=3, lines=10)
    e = engine(claude_dir, data_root, sqlite_ledger)
    e.start(workers=1)
    key = next(iter(e.cube.by_key))
    newer = sqlite3.connect(sqlite_ledger, isolation_level=None)  # what a schema-99 upgrade might do
    newer.executescript("BEGIN; ALTER TABLE calls RENAME TO calls_old; PRAGMA user_version = 99; COMMIT;")
    newer.close()
    newer_msg = (r"upgraded by a newer tokentop \(schema 99, this one knows 3\); run the newer tokentop, or "
                 r"this one with --no-ledger")
    for use in (lambda: e.ledger.get("claude_code", key), lambda: list(e.ledger.calls(0, 2e9))):
        with pytest.raises(LedgerError, match=newer_msg):
            use()
    with (project_dir(claude_dir, "/src/p0") / "s0.jsonl").open("a") as f:
        f.write(cc_line("new-message", output=5) + "\n")
    with pytest.raises(LedgerError, match=newer_msg):  # the live update that would store it
        e.update()


#: A schema-3 ledger's calls as schema 2 (and 1) kept them: file path, price version and source folder on each row.
TO_SCHEMA_2 = """
CREATE TABLE calls_v2 AS SELECT c.source, c.key, c.keyed, c.ts, c.model, c.project, c.session, c.mode, c.input_tokens,
    c.output_tokens, c.cache_creation_tokens, c.cache_read_tokens, c.cost, c.task, c.cache_write_1h,
    c.web_search_requests, c.speed, c.geo, p.path AS file, c.offset, pr.name AS priced_with, p.root AS root
    FROM calls c JOIN paths p ON p.id = c.path_id JOIN prices pr ON pr.id = c.price_id;
DROP TABLE calls; DROP TABLE paths; DROP TABLE prices;
ALTER TABLE calls_v2 RENAME TO calls;
CREATE UNIQUE INDEX calls_key ON calls (source, key); CREATE INDEX calls_ts ON calls (ts);
CREATE INDEX calls_keyless_file ON calls (file) WHERE keyed = 0;
PRAGMA user_version = 2;
"""


def test_a_ledger_from_schema_1_is_upgraded_in_place(claude_dir, data_root, sqlite_ledger, capsys) -> None:
    history(claude_dir, data_root)
    base = ["--ledger", str(sqlite_ledger)]
    cold = report(claude_dir, data_root, capsys, "--no-ledger")
    report(claude_dir, data_root, capsys, *base)
    db = sqlite3.connect(sqlite_ledger)  # schema 1: schema 2's calls, no snapshot table, no generation counter
    db.executescript(TO_SCHEMA_2 + "DROP TABLE snapshot; DELETE FROM meta WHERE key = 'generation'; "
                     "PRAGMA user_version = 1;")
    db.close()
    warm = report(claude_dir, data_root, capsys, *base)
    assert warm["totals"] == cold["totals"] and warm["sessions"] == cold["sessions"]
    db = sqlite3.connect(sqlite_ledger)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 3
    assert db.execute("SELECT COUNT(*) FROM snapshot").fetchone()[0] == 1  # the upgraded ledger keeps one again
    db.close()


def test_a_ledger_from_schema_2_moves_paths_and_price_versions_out_of_its_rows(claude_dir, data_root, sqlite_ledger,
                                                                               capsys) -> None:
    history(claude_dir, data_root)
    base = ["--ledger", str(sqlite_ledger)]
    cold = report(claude_dir, data_root, capsys, "--no-ledger")
    report(claude_dir, data_root, capsys, *base)
    db = sqlite3.connect(sqlite_ledger)
    before = sorted(db.execute("SELECT c.source, c.key, c.output_tokens, c.cost, p.path, p.root, pr.name FROM calls "
                               "c JOIN paths p ON p.id = c.path_id JOIN prices pr ON pr.id = c.price_id"))
    # Schema 2, left by a first ingest killed before its end: one key's merged row still waits in calls_again
    # (with more output than its first row) and the rollup is marked stale.
    db.executescript(TO_SCHEMA_2 + """
        CREATE TABLE calls_again AS SELECT * FROM calls WHERE keyed LIMIT 1;
        UPDATE calls_again SET output_tokens = output_tokens + 1000;
        INSERT OR REPLACE INTO meta (key, value) VALUES ('rollup_valid', '0');""")
    (merged_key,) = db.execute("SELECT key FROM calls_again").fetchone()
    db.close()

    code, out, err = run_cli(["report", "--json", "--tz", "UTC", "--claude-dir", str(claude_dir), "--data-root",
                              str(data_root), *base], capsys)
    assert code == 0 and f"upgrading the ledger {sqlite_ledger} from schema 2 to 3" in err
    warm = json.loads(out)
    assert warm["totals"]["output_tokens"] == cold["totals"]["output_tokens"] + 1000
    assert warm["totals"]["calls"] == cold["totals"]["calls"]
    db = sqlite3.connect(sqlite_ledger)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 3
    after = sorted(db.execute("SELECT c.source, c.key, c.output_tokens, c.cost, p.path, p.root, pr.name FROM calls "
                              "c JOIN paths p ON p.id = c.path_id JOIN prices pr ON pr.id = c.price_id"))
    assert [r for r in after if r[1] != merged_key] == [r for r in before if r[1] != merged_key]
    assert [r[2] for r in after if r[1] == merged_key] == [r[2] + 1000 for r in before if r[1] == merged_key]
    columns = {r[1] for r in db.execute("PRAGMA table_info(calls)")}
    assert {"path_id", "price_id"} <= columns and not {"file", "root", "priced_with"} & columns
    names = {n for (n,) in db.execute("SELECT name FROM sqlite_master")}
    assert {"calls_key", "calls_ts", "calls_keyless_file"} <= names and "calls_again" not in names
    assert db.execute("SELECT COUNT(DISTINCT name) FROM prices").fetchone()[0] == 1
    db.close()


def snapshot_generations(ledger: Path) -> tuple[int, list[int]]:
    db = sqlite3.connect(ledger)
    try:
        gen = int(db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
        return gen, [r[0] for r in db.execute("SELECT generation FROM snapshot")]
    finally:
        db.close()


def test_a_start_uses_the_snapshot_only_while_nothing_was_written_since(claude_dir, data_root, sqlite_ledger,
                                                                         capsys) -> None:
    history(claude_dir, data_root)
    base = ["--ledger", str(sqlite_ledger), "--internal-project", "app"]  # as engine() opens it
    report(claude_dir, data_root, capsys, *base)
    gen, snaps = snapshot_generations(sqlite_ledger)
    assert snaps == [gen]  # the cold ingest left a snapshot of what it ended with
    e = engine(claude_dir, data_root, sqlite_ledger)
    assert e._load_ledger() is True
    # Another writer commits a call the snapshot does not have: the next start folds the rollup instead.
    other = engine(claude_dir, data_root, sqlite_ledger)
    other.start()
    with open(project_dir(claude_dir) / "a.jsonl", "a") as fh:
        fh.write(cc_line("m9", output=7) + "\n")
    other.update()
    assert snapshot_generations(sqlite_ledger)[0] > gen
    e = engine(claude_dir, data_root, sqlite_ledger)
    assert e._load_ledger() is False
    warm = report(claude_dir, data_root, capsys, *base)
    assert warm["totals"] == report(claude_dir, data_root, capsys, "--no-ledger")["totals"]
    gen, snaps = snapshot_generations(sqlite_ledger)
    assert snaps == [gen]  # and that start left a fresh one


def test_a_warm_start_renders_the_unfiltered_report_from_the_snapshot_and_reads_cells_only_when_needed(
        claude_dir, data_root, sqlite_ledger, capsys) -> None:
    history(claude_dir, data_root)
    base = ["--ledger", str(sqlite_ledger), "--internal-project", "app"]  # as engine() opens it
    report(claude_dir, data_root, capsys, *base)  # the cold ingest leaves a snapshot with the report's groups

    def cold(*args: str) -> dict:
        return report(claude_dir, data_root, capsys, "--no-ledger", "--internal-project", "app", *args)

    def same(got: dict, want: dict) -> None:
        for part in ("totals", "by_day", "by_model", "by_project", "by_source", "sessions"):
            assert got[part] == want[part], part

    e = engine(claude_dir, data_root, sqlite_ledger)
    e.start()
    now = time.time()
    same(e.report(Filter(tz=UTC), now=now), cold())
    assert e.cube._pending is not None  # the cells were never decoded: the snapshot's groups were rendered
    same(e.report(Filter(tz=UTC, models=frozenset([OPUS])), now=now), cold("--models", OPUS))
    assert e.cube._pending is None  # a filter needs them
    with open(project_dir(claude_dir) / "a.jsonl", "a") as fh:  # a new call: the unfiltered groups are redone
        fh.write(cc_line("m9", output=7) + "\n")
    e.update()
    same(e.report(Filter(tz=UTC), now=now), cold())

    # A snapshot from before the groups were kept: used, and a new one with them is saved.
    db = sqlite3.connect(sqlite_ledger)
    body = db.execute("SELECT body FROM snapshot").fetchone()[0]
    old = msgspec.msgpack.decode(body)[:3]
    db.execute("UPDATE snapshot SET body = ?", (msgspec.msgpack.encode(old),))
    db.commit()
    e = engine(claude_dir, data_root, sqlite_ledger)
    e.start()
    same(e.report(Filter(tz=UTC), now=now), cold())
    assert len(msgspec.msgpack.decode(db.execute("SELECT body FROM snapshot").fetchone()[0])) == 4
    db.close()
    e = engine(claude_dir, data_root, sqlite_ledger)
    e.start()
    same(e.report(Filter(tz=UTC), now=now), cold())
    assert e.cube._pending is not None


def test_a_cold_ingest_uses_a_rollback_journal_unless_another_tokentop_has_the_ledger_open(
        claude_dir, data_root, tmp_path, capsys, monkeypatch) -> None:
    history(claude_dir, data_root)
    truth = report(claude_dir, data_root, capsys, "--no-ledger")["totals"]
    flushed: list[int] = []  # descriptors the ledger handed to the disk meanwhile, one entry per call
    fdatasync = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (flushed.append(fd), fdatasync(fd))[1])
    open_fds = len(os.listdir("/proc/self/fd"))

    def ingest(path: Path) -> tuple[set[str], Engine]:
        e = engine(claude_dir, data_root, path)
        seen, commit = set(), e.ledger.commit

        def watched(*a: Any, **kw: Any) -> None:
            with e.ledger.lock:
                seen.add(e.ledger.db.execute("PRAGMA journal_mode").fetchone()[0])
            commit(*a, **kw)

        e.ledger.commit = watched
        e.start()
        return seen, e

    seen, alone = ingest(tmp_path / "alone.sqlite")
    assert seen == {"truncate"}  # every page written once, no WAL to copy back at the end
    assert alone.ledger.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # readers never block after
    assert alone.totals(Filter(tz=UTC)) == truth
    assert flushed  # its pages went to the disk during the ingest (the fsync at its end has less to wait for)
    alone.ledger.close()
    assert len(os.listdir("/proc/self/fd")) == open_fds  # the flushing descriptor is closed
    flushed.clear()

    shared = tmp_path / "shared.sqlite"
    made = Ledger(shared)  # an empty ledger another tokentop made
    assert made.count() == 0
    made.close()
    other = sqlite3.connect(shared)  # another tokentop reading it
    other.execute("SELECT count(*) FROM calls").fetchone()
    seen, e = ingest(shared)
    assert seen == {"wal"}  # it cannot switch: stays in WAL, and does not wait for the other to leave
    assert not flushed  # WAL: the checkpoint writes the file
    assert e.totals(Filter(tz=UTC)) == truth
    assert other.execute("SELECT count(*) FROM calls").fetchone()[0] == truth["calls"]
    other.close()


def indexes(db: sqlite3.Connection) -> set[str]:
    return {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type IN ('index', 'table')")}


def test_a_first_cold_ingest_builds_the_indexes_once_at_its_end_and_keeps_one_merged_row_per_key(
        claude_dir, data_root, sqlite_ledger) -> None:
    make_corpus(claude_dir, data_root, files=40, lines=60)  # keys repeat across files, so across jobs
    truth = engine(claude_dir, data_root, sqlite_ledger.with_name("other.sqlite"))
    truth.ledger = truth.cube.lookup = truth.cube.call_source = None
    truth.scan(workers=1)

    e = engine(claude_dir, data_root, sqlite_ledger)
    seen: list[tuple[bool, int, bool]] = []  # per batch: was the key index there, how many keys came again, and
    # was the index of keyless rows there (kept: it takes the few keyless rows only)
    commit = e.ledger.commit

    def watched(*a: Any, **kw: Any) -> None:
        with e.ledger.lock:
            there = indexes(e.ledger.db)
            seen.append(("calls_key" in there, len(kw.get("again", ())), "calls_keyless_file" in there))
        commit(*a, **kw)

    e.ledger.commit = watched
    e.start(workers=1)
    assert len(seen) >= 8 and not any(has_index for has_index, _, _ in seen)  # rows only appended
    assert sum(n for _, n, _ in seen) > 50  # keys met again in later batches
    assert all(keyless_index for _, _, keyless_index in seen)
    db = e.ledger.db
    assert {"calls_key", "calls_keyless_file"} <= indexes(db) and "calls_again" not in indexes(db)
    assert db.execute("SELECT count(*) FROM calls WHERE NOT keyed").fetchone()[0] > 0
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"  # every index holds what its table does
    assert db.execute("SELECT count(*) - count(DISTINCT source || key) FROM calls").fetchone()[0] == 0
    stored = {k: (o, i) for k, o, i in db.execute("SELECT key, output_tokens, input_tokens FROM calls WHERE keyed")}
    assert stored == {k: (c.output_tokens, c.input_tokens) for k, c in truth.cube.by_key.items()}  # merged
    assert db.execute("SELECT count(*) FROM calls").fetchone()[0] == truth.totals(Filter(tz=UTC))["calls"]
    e.ledger.close()

    again = engine(claude_dir, data_root, sqlite_ledger)  # a later scan of new roots keeps the indexes
    assert not again.ledger.defer_indexes()


async def test_once_live_batches_pause_the_snapshot_is_saved_again_for_the_next_start(
        claude_dir, data_root, sqlite_ledger, monkeypatch) -> None:
    # A start after live calls were stored (a `statusline` next to the dashboard) loads the snapshot instead of
    # folding the stored calls, once the dashboard saw no new batch for a few seconds.
    import asyncio

    import tokentop.core.live as live_module

    monkeypatch.setattr(live_module, "SNAPSHOT_QUIET_SECONDS", 0.3)
    history(claude_dir, data_root)
    e = engine(claude_dir, data_root, sqlite_ledger)
    e.start()
    stop = asyncio.Event()
    task = asyncio.create_task(live_module.follow(e, lambda batch: None, stop))
    await asyncio.sleep(0.3)  # the watcher is set up
    f = project_dir(claude_dir) / "a.jsonl"
    with open(f, "a") as out:
        out.write(cc_line("m9", output=7) + "\n")
    day_of = e.cube.day_of
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (e.totals(Filter(tz=UTC))["calls"] == 6 and not e.snapshot_due):
        await asyncio.sleep(0.05)
    assert e.totals(Filter(tz=UTC))["calls"] == 6 and not e.snapshot_due  # stored, then the snapshot saved
    stop.set()
    await asyncio.wait_for(task, 5)
    other = Ledger(sqlite_ledger, roots=[*e.sources.claude_roots, data_root / "agents"], internal_project="app")
    assert other.snapshot(day_of) is not None  # of the ledger as it now stands
    other.close()
    later = engine(claude_dir, data_root, sqlite_ledger)
    assert later._load_ledger()  # from the snapshot, with its report groups: nothing folded
    assert later.totals(Filter(tz=UTC)) == e.totals(Filter(tz=UTC))
    e.ledger.close()
    later.ledger.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_stored_live_calls_make_a_snapshot_due_where_the_ledger_keeps_one(claude_dir, data_root, tmp_path,
                                                                          request, backend) -> None:
    history(claude_dir, data_root)
    target = tmp_path / "l.sqlite" if backend == "sqlite" else request.getfixturevalue("team_url")
    e = engine(claude_dir, data_root, target)
    e.start()
    assert not e.snapshot_due
    with open(project_dir(claude_dir) / "a.jsonl", "a") as out:
        out.write(cc_line("m9", output=7) + "\n")
    assert e.update() == 1
    assert e.snapshot_due == (backend == "sqlite")  # the PostgreSQL ledger keeps no snapshot: nothing to make
    e.save_snapshot()
    assert not e.snapshot_due
    e.ledger.close()


def test_recent_calls_read_newest_first_from_the_ledger_equal_the_newest_of_every_call(
        claude_dir, data_root, ledger_path) -> None:
    import heapq

    from tokentop.core.report import matching_calls, recent_calls

    base = datetime(2026, 11, 1, tzinfo=timezone.utc).timestamp()

    def at(i: int) -> str:
        return datetime.fromtimestamp(base + 37 * i, timezone.utc).isoformat()

    write_lines(project_dir(claude_dir) / "a.jsonl", [  # three Haiku calls among the newest
        cc_line(f"m{i}", model=HAIKU if i in (650, 660, 670) else (SONNET, OPUS)[i % 7 == 0], output=i + 1,
                ts=at(i)) for i in range(700)])
    write_lines(data_root / "agents" / "s1" / "llm_costs.jsonl",  # few and old: read far back for them
                [internal_row(ts=at(k - 50), cost=0.01) for k in range(3)])
    e = engine(claude_dir, data_root, ledger_path)
    e.start(workers=1)
    assert e.cube.newest_source is not None
    newest, rows_read = e.cube.newest_source, []

    def counted(*a: Any, **kw: Any) -> list:
        rows = newest(*a, **kw)
        rows_read.append(len(rows))
        return rows

    e.cube.newest_source = counted
    for flt in (Filter(tz=UTC), Filter(tz=UTC, models=(OPUS,)), Filter(tz=UTC, source="internal"),
                Filter(tz=UTC, since=date(2026, 11, 1), until=date(2026, 11, 1)), Filter(tz=UTC, models=()),
                Filter(tz=UTC, mode="local"), Filter(tz=UTC, mode="cloud", source="claude_code"),
                Filter(tz=UTC, session="sess-1", models=(OPUS,))):
        every = heapq.nlargest(20, matching_calls(e.cube, flt), key=lambda c: c.ts)  # every call of the range
        got = recent_calls(e.cube, flt)
        assert [(r["time"], r["model"], r["output_tokens"]) for r in got] == [
            (datetime.fromtimestamp(c.ts, UTC).isoformat(timespec="seconds"), c.model, c.output_tokens)
            for c in every], flt
    rows_read.clear()
    assert len(recent_calls(e.cube, Filter(tz=UTC, source="internal"))) == 3
    assert rows_read == [3]  # the few old internal rows in one read, not the 700 newer ones first
    rows_read.clear()
    assert [r["output_tokens"] for r in recent_calls(e.cube, Filter(tz=UTC, models=(HAIKU,)))] == [671, 661, 651]
    assert rows_read == [256]  # all three in the first read: none read further back for calls that do not exist
    rows_read.clear()
    for nothing in (Filter(tz=UTC, models=()), Filter(tz=UTC, project="nowhere"), Filter(tz=UTC, models=("x",))):
        assert recent_calls(e.cube, nothing) == []
    assert rows_read == []  # a filter that passes no call reads nothing (it read every call of the range)
    e.ledger.close()


def test_a_sessions_calls_are_read_alone_from_the_ledger_and_its_top_tasks_match_memory(
        claude_dir, data_root, ledger_path) -> None:
    from tokentop.core.report import top_tasks

    grep = [{"type": "tool_use", "id": "t1", "name": "Grep", "input": {}}]
    write_lines(project_dir(claude_dir) / "a.jsonl", [
        *(cc_line(f"a{i}", session="a", content=grep if i % 3 else None, output=10 + i) for i in range(9)),
        *(cc_line(f"b{i}", session="b", output=5) for i in range(4))])
    write_lines(data_root / "agents" / "s1" / "llm_costs.jsonl", [internal_row(cost=0.5)])
    e = engine(claude_dir, data_root, ledger_path)
    e.start(workers=1)
    memory = Engine(Sources([claude_dir], data_root, "app"), PriceBook(), UTC)  # every call in memory
    memory.scan(workers=1)
    for day in (None, "2026-11-20"):
        lo, hi = (None, None) if day is None else Filter(tz=UTC).with_(
            since=date.fromisoformat(day), until=date.fromisoformat(day)).day_bounds()
        assert sorted(c.key for c in e.ledger.calls(lo, hi, "a")) == [f"a{i}" for i in range(9)]  # only its rows
    for session in ("a", "b"):
        flt = Filter(tz=UTC, session=session)
        want = top_tasks(memory.cube, flt)
        assert want != []
        assert rounded(top_tasks(e.cube, flt)) == rounded(want)  # costs summed in another order (SQL's sum)
    e.ledger.close()


def tool(name: str) -> list[dict[str, Any]]:
    """A message's content that uses one tool (its task is that tool's name)."""
    return [{"type": "tool_use", "id": "t1", "name": name, "input": {}}]


def tasks_history(claude_dir: Path, data_root: Path, ledger: Any) -> tuple[Path, Path, Engine]:
    """Two internal rows (tasks embed and plan) and a message, ingested; then a warm start, whose sums by task
    come from the ledger. Returns the internal log, the transcript and the warm-started engine."""
    internal = data_root / "agents" / "s1" / "llm_costs.jsonl"
    write_lines(internal, [internal_row(task="embed", cost=0.25), internal_row(task="plan", cost=1.0, mode="local")])
    transcript = write_lines(project_dir(claude_dir) / "a.jsonl", [cc_line("m1", output=10)])
    engine(claude_dir, data_root, ledger).start(workers=1)  # the ingest
    e = engine(claude_dir, data_root, ledger)
    e.start(workers=1)
    return internal, transcript, e


def more_task_calls(internal: Path, transcript: Path, *lines: str) -> None:
    """A new internal row, a new message (Grep), a later copy of m1 (Edit now), then ``lines``."""
    with internal.open("a") as f:
        f.write(internal_row(task="embed", cost=0.5) + "\n")
    with transcript.open("a") as f:
        for line in (cc_line("m2", output=7, content=tool("Grep")), cc_line("m1", output=40, content=tool("Edit")),
                     *lines):
            f.write(line + "\n")


def test_top_tasks_from_the_ledgers_sums_by_task_equal_those_of_every_call(claude_dir, data_root,
                                                                           ledger_path) -> None:
    from tokentop.core.report import top_tasks

    write_lines(project_dir(claude_dir) / "a.jsonl", [
        *(cc_line(f"a{i}", model=(SONNET, OPUS, "claude-mystery-9")[i % 3], content=(None, tool("Grep"),
                  tool("Edit"))[i % 4 % 3], output=10 + i, cr=1000 * i, ts=f"2026-11-{19 + i % 2}T10:00:00Z")
          for i in range(24)),
        cc_line("a0", output=500)])  # a later snapshot of a0: its final form counts
    write_lines(project_dir(claude_dir, "/srv/api") / "b.jsonl", [
        cc_line(f"b{i}", cwd="/srv/api", session="b", content=tool("Grep"), output=7) for i in range(5)])
    write_lines(data_root / "agents" / "s1" / "llm_costs.jsonl", [
        internal_row(task="summarize:day", cost=0.5), internal_row(task="summarize:day", cost=None),
        internal_row(task="embed", mode="local", cost=0.0, model="qwen3-8b"),
        internal_row(task="embed", cost=0.125, project="webshop", ts="2026-11-19T08:00:00+00:00")])
    memory = Engine(Sources([claude_dir], data_root, "app"), PriceBook(), UTC)  # every call in memory
    memory.scan(workers=1)
    engine(claude_dir, data_root, ledger_path).start(workers=1)  # the ingest
    e = engine(claude_dir, data_root, ledger_path)
    e.start(workers=1)  # a warm start: no single call in memory
    assert e.cube.task_source is not None
    e.cube.call_source = None  # top tasks come from the ledger's sums, never from single calls

    day = date(2026, 11, 19)
    for flt in (Filter(tz=UTC), Filter(tz=UTC, models=(SONNET,)), Filter(tz=UTC, models=("claude-sonnet-4-5",)),
                Filter(tz=UTC, source="internal"), Filter(tz=UTC, mode="local"), Filter(tz=UTC, project="WEB"),
                Filter(tz=UTC, project="app"), Filter(tz=UTC, since=day, until=day), Filter(tz=UTC, models=()),
                Filter(tz=UTC, session="b")):
        want = top_tasks(memory.cube, flt)
        assert (want != []) == (flt.models != ()), flt
        assert rounded(top_tasks(e.cube, flt)) == rounded(want)  # costs summed in another order (SQL's sum)
    e.ledger.close()


def test_top_tasks_read_the_ledger_once_per_date_range_and_fold_in_calls_as_they_arrive(claude_dir, data_root,
                                                                                       ledger_path) -> None:
    from tokentop.core.aggregate import TASK_SCOPES
    from tokentop.core.report import top_tasks

    internal, transcript, e = tasks_history(claude_dir, data_root, ledger_path)
    reads: list[tuple[Any, ...]] = []
    source = e.cube.task_source
    assert source is not None
    e.cube.task_source = lambda *scope: reads.append(scope) or source(*scope)

    def tasks(cube_of: Engine, flt: Filter) -> list[tuple[str, int, int, int]]:
        return [(t["task"], t["calls"], t["output_tokens"], round(t["cost_usd"] * 1e6))
                for t in top_tasks(cube_of.cube, flt)]

    everything = Filter(tz=UTC)
    assert [t[0] for t in tasks(e, everything)] == ["plan", "embed", "(text)"]
    assert [t[0] for t in tasks(e, Filter(tz=UTC, mode="cloud"))] == ["embed", "(text)"]  # the same sums, tested
    assert tasks(e, Filter(tz=UTC, source="internal", mode="local")) == [("plan", 1, 100, 1_000_000)]
    assert len(reads) == 1
    day = date(2026, 11, 20)
    assert len(tasks(e, Filter(tz=UTC, since=day, until=day))) == 3
    assert len(reads) == 2  # other dates: another read

    # while the app runs (and m3: outside the day asked for)
    more_task_calls(internal, transcript, cc_line("m3", output=5, ts="2026-11-24T10:00:00.000Z"))
    e.update()
    shown = tasks(e, Filter(tz=UTC, since=day, until=day))
    assert len(reads) == 2  # folded into the sums read for that day, not read again
    fresh = engine(claude_dir, data_root, ledger_path)
    fresh.start(workers=1)
    assert shown == tasks(fresh, Filter(tz=UTC, since=day, until=day))  # what the ledger now says
    assert {t[0]: t[2] for t in shown} == {"embed": 200, "plan": 100, "Edit": 40, "Grep": 7}  # m1 moved to Edit
    assert tasks(e, everything) == tasks(fresh, everything) and len(reads) == 2  # kept and folded in too
    days = [Filter(tz=UTC, since=date(2026, 10, d), until=date(2026, 10, d)) for d in range(1, TASK_SCOPES + 2)]
    for flt in days:
        tasks(e, flt)
    tasks(e, days[-1])
    assert len(reads) == 2 + len(days)  # each read once
    tasks(e, everything)
    assert len(reads) == 3 + len(days)  # the ranges used least lately are let go: TASK_SCOPES are kept
    for x in (e, fresh):
        assert x.ledger is not None
        x.ledger.close()


def test_sums_by_task_read_in_another_thread_are_the_ledgers_when_the_read_began_with_later_calls_folded_in(
        claude_dir, data_root, ledger_path) -> None:
    """What the TUI does instead of reading them on its own thread: the read's own connection sees the ledger as
    it was when the read began; the calls applied (and committed) meanwhile are folded in when it ends."""
    import threading

    from tokentop.core.report import top_tasks

    internal, transcript, e = tasks_history(claude_dir, data_root, ledger_path)
    source = e.cube.task_source

    def not_here(*scope: Any) -> None:
        raise AssertionError(f"sums by task read on the caller's thread: {scope}")

    e.cube.task_source = not_here  # top_tasks shows what was kept
    everything = (None, None, None)

    def tasks(x: Engine) -> list[tuple[str, int, int, int]]:
        return [(t["task"], t["calls"], t["output_tokens"], round(t["cost_usd"] * 1e6))
                for t in top_tasks(x.cube, Filter(tz=UTC))]

    with e.lock:
        assert not e.cube.task_sums_current(everything)
        started = e.cube.start_task_read(everything)
        assert started is not None
        assert e.cube.start_task_read(everything) is None  # one read of a scope at a time
    reading, read = started
    more_task_calls(internal, transcript)  # committed after the read began
    e.update()
    rows: list[Any] = []
    reader = threading.Thread(target=lambda: rows.extend(read()))
    reader.start()
    reader.join()
    assert {r[0]: r[9] for r in rows} == {"embed": 1, "plan": 1, "(text)": 1}  # calls: the ledger before update
    with e.lock:
        assert e.cube.end_task_read(everything, reading, rows)
        assert e.cube.task_sums_current(everything)
    fresh = engine(claude_dir, data_root, ledger_path)
    fresh.start(workers=1)
    assert tasks(e) == tasks(fresh)  # what the ledger says now, read at once
    assert {t[0]: t[2] for t in tasks(e)} == {"embed": 200, "plan": 100, "Edit": 40, "Grep": 7}  # m1 moved to Edit

    e.cube.task_source = source
    day = (*Filter(tz=UTC, since=date(2026, 11, 20), until=date(2026, 11, 20)).day_bounds(), None)
    with e.lock:
        first = e.cube.start_task_read(day)
        assert first is not None
        e.cube.remove([])  # a change that is not folded in (a truncated file's rows taken out)
        assert e.cube.start_task_read(day) is None  # still one read of a scope at a time
    assert not e.cube.end_task_read(day, first[0], first[1]())  # not kept: the cube is another now
    with e.lock:
        again = e.cube.start_task_read(day)  # the view asks again
        assert again is not None
    assert e.cube.end_task_read(day, again[0], again[1]()) and e.cube.task_sums_current(day)
    with e.lock:
        stale = e.cube.start_task_read(everything)
        assert stale is not None
        e.cube.clear()  # a rescan begins
    assert not e.cube.end_task_read(everything, stale[0], stale[1]())  # not kept: the cube is another now
    for x in (e, fresh):
        assert x.ledger is not None
        x.ledger.close()


def database_away(cluster: Any, url: str, away: bool) -> None:
    """A server outage for one database: no new connection to it, and (``away``) its open ones cut."""
    import psycopg

    db = url.rsplit("/", 1)[1]
    with psycopg.connect(cluster.url, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE {db} ALLOW_CONNECTIONS {str(not away).lower()}")
        if away:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (db,))


def test_a_postgresql_ledger_whose_server_goes_away_pauses_counting_and_catches_up_exactly_once_back(
        claude_dir, data_root, cluster, team_url, monkeypatch, capsys) -> None:
    import asyncio

    from tokentop.core import live, pg_ledger
    from tokentop.core.ledger import LedgerUnreachable
    from tokentop.ui.app import TokentopApp

    monkeypatch.setattr(pg_ledger, "RECONNECT_SECONDS", 0.0)  # every update tries to connect again

    def server_away(away: bool) -> None:
        database_away(cluster, team_url, away)

    history(claude_dir, data_root)
    e = engine(claude_dir, data_root, team_url)
    e.start(workers=1)
    flt = Filter(tz=UTC)
    before = e.report(flt)["totals"]
    server_away(True)
    with (project_dir(claude_dir) / "a.jsonl").open("a") as f:  # a new message, and m1's later snapshot: it
        f.write(cc_line("m4", output=7) + "\n" + cc_line("m1", output=900) + "\n")  # merges with the stored m1
    with (data_root / "agents" / "s1" / "llm_costs.jsonl").open("a") as f:
        f.write(internal_row(cost=1.0) + "\n")
    for _ in range(2):  # no error, the numbers as they were, and why
        assert e.update() == 0
        assert e.ledger_behind and isinstance(e.ledger_trouble, LedgerUnreachable)
        assert e.report(flt)["totals"] == before
    notice = TokentopApp(e).notice_text()
    assert f"the ledger {e.ledger.path} cannot be reached" in notice and "retrying" in notice

    async def follow_until_stored() -> None:  # the live loop, while away, then back, with no change to a file
        stop = asyncio.Event()
        task = asyncio.create_task(live.follow(e, lambda batch: None, stop))
        await asyncio.sleep(1.5)  # its first catch-up (0.5 s) and its retries fail meanwhile
        assert e.ledger_behind
        server_away(False)
        for _ in range(100):
            if not e.ledger_behind:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await task

    monkeypatch.setattr(live, "LEDGER_RETRY_SECONDS", 0.2)
    asyncio.run(follow_until_stored())
    assert not e.ledger_behind and e.ledger_trouble is None
    want = report(claude_dir, data_root, capsys, "--no-ledger")["totals"]  # every file read from scratch
    assert want["calls"] == before["calls"] + 2 and want["output_tokens"] == before["output_tokens"] + 7 + 600 + 100
    assert rounded(e.report(flt)["totals"]) == rounded(want)
    assert e.ledger.count() == want["calls"]
    assert rounded(report(claude_dir, data_root, capsys, "--ledger", team_url)["totals"]) == rounded(want)
    e.ledger.close()


async def test_the_dashboard_keeps_running_while_its_postgresql_ledger_is_away(claude_dir, data_root, cluster,
                                                                              team_url, monkeypatch) -> None:
    from tokentop.core import pg_ledger
    from tokentop.core.report import top_tasks
    from tokentop.ui.app import TokentopApp

    from tests.tui_support import loaded

    monkeypatch.setattr(pg_ledger, "RECONNECT_SECONDS", 0.0)
    history(claude_dir, data_root)
    engine(claude_dir, data_root, team_url).start(workers=1)
    e = engine(claude_dir, data_root, team_url)  # warm: top tasks come from the ledger
    app = TokentopApp(e, live=False, clock=lambda: datetime(2026, 11, 20, 12, tzinfo=timezone.utc).timestamp())
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(app, pilot)
        database_away(cluster, team_url, True)
        await pilot.press("v", "v")  # top tasks: read from the ledger, which is away
        await pilot.pause()
        table = app.screen.query_one("#breakdown")
        assert app.panel == "tasks" and table.row_count == 0 and app.is_running
        assert e.update() == 0  # what the file watcher does on a change meanwhile
        app.refresh_view()
        await pilot.pause()
        assert "cannot be reached" in str(app.screen.query_one("#notice").render())
        database_away(cluster, team_url, False)
        e.update()
        app.refresh_view()
        await pilot.pause()
        assert not app.screen.query_one("#notice").display
        assert [str(table.get_row_at(i)[0]).strip() for i in range(table.row_count)] == [
            t["task"] for t in top_tasks(e.cube, app.current_filter())] != []
    e.ledger.close()


async def test_a_rescan_asked_for_while_the_postgresql_ledger_is_away_is_done_once_it_is_back(
        claude_dir, data_root, cluster, team_url, monkeypatch) -> None:
    from tokentop.core import pg_ledger
    from tokentop.ui.app import TokentopApp

    from tests.tui_support import loaded

    monkeypatch.setattr(pg_ledger, "RECONNECT_SECONDS", 0.0)
    history(claude_dir, data_root)
    engine(claude_dir, data_root, team_url).start(workers=1)
    e = engine(claude_dir, data_root, team_url)
    app = TokentopApp(e, live=False, clock=lambda: datetime(2026, 11, 20, 12, tzinfo=timezone.utc).timestamp())
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(app, pilot)
        totals = e.totals(Filter(tz=UTC))
        (project_dir(claude_dir) / "a.jsonl").unlink()  # Claude Code's cleanup meanwhile,
        e.update()  # seen by a catch-up
        database_away(cluster, team_url, True)
        await pilot.press("r")
        await loaded(app, pilot)
        notice = app.screen.query_one("#notice")
        assert app.return_code is None and "cannot be reached" in str(notice.render())  # not ended
        assert e.totals(Filter(tz=UTC)) == totals
        database_away(cluster, team_url, False)
        e.update()  # what the live loop's retry does
        app.refresh_view()
        await pilot.pause()
        assert e.ledger_only == 2  # the rescan ran: m1 and m2 are kept only in the ledger
        assert str(notice.render()).startswith("2 calls kept only in the ledger")
        assert e.totals(Filter(tz=UTC)) == totals
    e.ledger.close()


def test_watch_json_says_while_its_postgresql_ledger_is_away_and_counts_what_waited_once_back(
        claude_dir, data_root, cluster, team_url) -> None:
    import signal

    history(claude_dir, data_root)
    p = subprocess.Popen([sys.executable, "-m", "tokentop.cli", "watch", "--json", "--tz", "UTC", "--claude-dir",
                          str(claude_dir), "--data-root", str(data_root), "--internal-project", "app", "--ledger",
                          team_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(p.stdout.readline())
        assert first["totals"]["calls"] == 5 and "ledger_behind" not in first
        time.sleep(1.0)  # the watcher is up, its first catch-up done
        database_away(cluster, team_url, True)
        with (project_dir(claude_dir) / "a.jsonl").open("a") as f:
            f.write(cc_line("m4", output=7) + "\n")
        away = json.loads(p.stdout.readline())
        assert away["lines"] == 0 and away["totals"] == first["totals"]  # waits in the file
        assert "cannot be reached" in away["ledger_behind"]
        assert "cannot be reached" in p.stderr.readline()  # said once
        database_away(cluster, team_url, False)
        lines = [json.loads(p.stdout.readline())]  # the retry (every 5 s) reads it
        while "ledger_behind" in lines[-1] and len(lines) < 5:
            lines.append(json.loads(p.stdout.readline()))
        assert lines[-1]["totals"]["calls"] == 6 and lines[-1]["totals"]["output_tokens"] > first["totals"][
            "output_tokens"]
        assert sum(line["lines"] for line in lines) == 1  # read once
        assert "has every call again" in p.stderr.readline()
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0
    finally:
        p.kill()


def test_a_failure_at_the_end_of_a_cold_ingest_reaches_the_caller(claude_dir, data_root, sqlite_ledger,
                                                                   monkeypatch) -> None:
    from tokentop.core.ledger import LedgerError

    history(claude_dir, data_root)
    e = engine(claude_dir, data_root, sqlite_ledger)

    def disk_full(self: Ledger) -> None:  # the indexes are built in a thread, while the snapshot is made
        raise LedgerError("the ledger cannot be written (database or disk is full)")

    monkeypatch.setattr(Ledger, "build_indexes", disk_full)
    with pytest.raises(LedgerError, match="disk is full"):
        e.start(workers=1)
    assert e.ledger.snapshot(e.cube.day_of) is None  # nothing claims the ingest finished
    e.ledger.close()


@pytest.mark.parametrize("max_parameters", [None, 999])  # 999: SQLite before 3.32 (Ubuntu 20.04's)
@pytest.mark.parametrize("later_copy", ["same shape", "other shape"])
def test_a_batch_is_stored_many_rows_to_a_statement_without_losing_or_doubling_one(sqlite_ledger, monkeypatch,
                                                                                   max_parameters, later_copy) -> None:
    """Rows are written 64 to a statement, in shapes (the usual Claude Code and internal rows with their constant
    columns in the statement, the rest binding every column): every field comes back as it went in."""
    from tokentop.core.ledger import ROWS_PER_INSERT
    from tokentop.core.records import Call

    if max_parameters:
        connect = sqlite3.connect

        def limited(*a: Any, **kw: Any) -> sqlite3.Connection:
            db = connect(*a, **kw)
            db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, max_parameters)
            return db

        monkeypatch.setattr(sqlite3, "connect", limited)

    n = 2 * ROWS_PER_INSERT + 5  # two full statements and five rows one by one
    calls = [Call("claude_code", 1_763_000_000 + i, SONNET, "p", "s", "cloud", i, 2 * i, 0, 7, 0.5 + i, f"m{i}",
                  task="t'x" if i % 5 == 0 else "", cache_write_1h=i % 3, web_search_requests=2 if i % 13 == 0 else 0,
                  speed="fast" if i % 7 == 0 else "", geo="us" if i % 11 == 0 else "", file="/x/a.jsonl")
             for i in range(n)]
    calls[9].cost = None  # unpriced
    # internal rows: the internal project (stored as "") and another one, local and cloud
    calls += [Call("internal", 1_763_100_000 + i, SONNET, "wb" if i % 2 else "other", "s2",
                   "local" if i % 2 else "cloud", 1, i, 0, 0, 0.0, None, task="summarize",
                   speed="fast" if i == 4 else "", file="/x/llm_costs.jsonl", offset=i * 50) for i in range(5)]
    # a key written twice in one batch ends as its later copy, as with one statement per row, also when its
    # copies take different shapes (here the earlier one with a web search, which goes last in its own shape)
    if later_copy == "other shape":
        calls[3] = msgspec.structs.replace(calls[3], web_search_requests=1)
    calls[ROWS_PER_INSERT + 3] = msgspec.structs.replace(calls[3], output_tokens=999, web_search_requests=0)
    ledger = Ledger(sqlite_ledger, internal_project="wb")
    ledger.commit(calls)
    stored = sorted(ledger.calls(), key=lambda c: (c.source, c.ts, c.offset))
    assert ledger.count() == n + 5 - 1
    m3 = next(c for c in stored if c.key == "m3")
    assert (m3.output_tokens, m3.web_search_requests) == (999, 0)
    expected = {(c.source, c.ledger_key()): c for c in calls}
    assert sorted(expected.values(), key=lambda c: (c.source, c.ts, c.offset)) == stored
    assert ledger.db.execute("SELECT count(*) FROM calls WHERE project = ''").fetchone()[0] == 2
    ledger.close()


def test_the_time_index_is_built_by_the_first_query_by_time_and_waits_for_no_other_writer(
        claude_dir, data_root, sqlite_ledger) -> None:
    make_corpus(claude_dir, data_root, files=20, lines=40)
    e = engine(claude_dir, data_root, sqlite_ledger)
    e.start(workers=1)
    everything = sorted(e.cube.calls(), key=lambda c: (c.ts, c.key or ""))
    assert len(everything) == e.totals(Filter(tz=UTC))["calls"] > 100
    assert "calls_ts" not in indexes(e.ledger.db)  # a cold report never needs it
    lo, hi = everything[len(everything) // 3].ts, everything[2 * len(everything) // 3].ts

    def between() -> list[Any]:
        return sorted(e.ledger.calls(lo, hi), key=lambda c: (c.ts, c.key or ""))

    expected = [c for c in everything if lo <= c.ts < hi]
    other = sqlite3.connect(sqlite_ledger, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another tokentop writing just now
    t = time.monotonic()
    assert between() == expected  # read from the table, without waiting for the writer
    assert time.monotonic() - t < 2 and "calls_ts" not in indexes(e.ledger.db)
    other.execute("COMMIT")
    assert between() == expected
    assert "calls_ts" in indexes(e.ledger.db)
    plan = " ".join(r[-1] for r in e.ledger.db.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM calls WHERE ts >= ? AND ts < ?", (lo, hi)))
    assert "calls_ts" in plan
    other.close()
    e.ledger.close()

    read_only = Ledger(sqlite_ledger)  # a ledger this user may only read: queries by time still work
    read_only.db.execute("DROP INDEX calls_ts")
    read_only.db.execute("PRAGMA query_only = 1")
    assert sorted(read_only.calls(lo, hi), key=lambda c: (c.ts, c.key or "")) == expected
    assert "calls_ts" not in indexes(read_only.db)
    read_only.close()


def test_a_ledger_left_by_a_killed_first_ingest_is_indexed_and_merged_when_opened(sqlite_ledger) -> None:
    from tokentop.core.records import Call

    def call(out: int) -> Call:
        return Call("claude_code", 1.8e9, SONNET, "p", "s", "cloud", 10, out, 0, 0, 0.01, key="m1", file="/f")

    ledger = Ledger(sqlite_ledger)
    ledger.bulk(True)
    assert ledger.defer_indexes()
    ledger.commit([call(2)], rollup=False)
    ledger.commit([call(300)], rollup=False, again={"m1"})  # the merged call, from a later batch
    assert "calls_key" not in indexes(ledger.db)
    ledger.db.close()  # killed here: no build_indexes

    reopened = Ledger(sqlite_ledger)
    assert {"calls_key", "calls_keyless_file"} <= indexes(reopened.db)
    assert "calls_again" not in indexes(reopened.db)
    assert reopened.count() == 1
    got = reopened.get("claude_code", "m1")
    assert got is not None and got.output_tokens == 300


def test_a_damaged_snapshot_only_makes_the_start_slower(claude_dir, data_root, sqlite_ledger, capsys) -> None:
    history(claude_dir, data_root)
    base = ["--ledger", str(sqlite_ledger)]
    cold = report(claude_dir, data_root, capsys, *base)
    db = sqlite3.connect(sqlite_ledger)
    db.execute("UPDATE snapshot SET body = ?", (b"\xc1 not msgpack",))
    db.commit()
    db.close()
    warm = report(claude_dir, data_root, capsys, *base)
    assert warm["totals"] == cold["totals"] and warm["sessions"] == cold["sessions"]
    # Damaged where only a filtered view looks (the cells, read when first needed): that view folds the rollup.
    db = sqlite3.connect(sqlite_ledger)
    snap = msgspec.msgpack.decode(db.execute("SELECT body FROM snapshot").fetchone()[0])
    db.execute("UPDATE snapshot SET body = ?", (msgspec.msgpack.encode([[["not", "a", "cell"]], *snap[1:]]),))
    db.commit()
    db.close()
    args = ("--source", "claude_code")
    want = report(claude_dir, data_root, capsys, "--no-ledger", *args)
    assert report(claude_dir, data_root, capsys, *base, *args) == want


def test_corrupt_ledger_says_what_to_do(claude_dir, data_root, sqlite_ledger, capsys) -> None:
    sqlite_ledger.write_bytes(b"this is not a database" * 100)
    code, _, err = run_cli(["report", "--claude-dir", str(claude_dir), "--data-root", str(data_root), "--ledger",
                            str(sqlite_ledger)], capsys)
    assert code == 2
    assert "--no-ledger" in err and "Traceback" not in err


def test_a_new_ledger_is_made_by_its_first_use_and_one_that_cannot_be_made_says_what_to_do(
        claude_dir, data_root, tmp_path, capsys, monkeypatch) -> None:
    import tokentop.core.engine as engine_module

    history(claude_dir, data_root)
    path = tmp_path / "new" / "ledger.sqlite"
    ledger = Ledger(path)
    assert not ledger.has_calls() and not path.parent.exists()  # nothing stored: a cold scan, no file yet
    ledger.close()
    # a first cold scan (here on two workers) makes it
    monkeypatch.setattr(engine_module, "PARALLEL_MIN_BYTES", 0)
    cold = report(claude_dir, data_root, capsys, "--workers", "2", "--ledger", str(path))
    assert Ledger(path).count() == cold["totals"]["calls"] > 0
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    code, out, err = run_cli(["report", "--claude-dir", str(claude_dir), "--data-root", str(data_root),
                              "--ledger", str(blocked / "ledger.sqlite")], capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"tokentop: error: cannot open the ledger {blocked / 'ledger.sqlite'}: ")
    assert "--no-ledger" in err and "Traceback" not in err


def test_reprice_updates_claude_code_costs_only(tmp_path, claude_dir, data_root, ledger_path, capsys) -> None:
    history(claude_dir, data_root)
    base = ["--claude-dir", str(claude_dir), "--data-root", str(data_root), "--ledger", str(ledger_path)]
    before = report(claude_dir, data_root, capsys, "--ledger", str(ledger_path))
    prices = tmp_path / "prices.toml"
    prices.write_text(f'[models."{SONNET}"]\ninput = 30\noutput = 150\n')
    code, out, err = run_cli(["reprice", "--prices", str(prices), *base], capsys)
    assert code == 0, err
    assert "repriced 2 calls" in out
    after = report(claude_dir, data_root, capsys, "--ledger", str(ledger_path))
    by_source = {r["source"]: r["cost_usd"] for r in after["by_source"]}
    assert by_source["internal"] == 0.75  # logged cost, untouched
    sonnet = {r["model"]: r["cost_usd"] for r in after["by_model"]}[SONNET]
    assert sonnet == pytest.approx(10 * {r["model"]: r["cost_usd"] for r in before["by_model"]}[SONNET])


def test_export_csv_and_jsonl_for_a_date_range(tmp_path, claude_dir, data_root, ledger_path, capsys) -> None:
    write_lines(project_dir(claude_dir) / "a.jsonl", [cc_line("m1", ts="2026-11-19T10:00:00.000Z"),
                                                      cc_line("m2", ts="2026-11-20T10:00:00.000Z")])
    base = ["--claude-dir", str(claude_dir), "--data-root", str(data_root), "--ledger", str(ledger_path),
            "--tz", "UTC"]
    code, out, _ = run_cli(["export", "--format", "jsonl", "--since", "2026-11-20", *base], capsys)
    assert code == 0
    rows = [json.loads(x) for x in out.splitlines()]
    assert [r["key"] for r in rows] == ["m2"]
    code, _, err = run_cli(["export", "--format", "csv", "-o", str(tmp_path / "all.csv"), *base], capsys)
    assert code == 0 and "2 calls written" in err
    lines = (tmp_path / "all.csv").read_text().splitlines()
    assert lines[0].startswith("source,ts,model") and len(lines) == 3


def test_low_cleanup_period_is_warned_about(claude_dir, data_root, capsys) -> None:
    (claude_dir / "settings.json").write_text(json.dumps({"cleanupPeriodDays": 7}))
    r = report(claude_dir, data_root, capsys)
    assert r["warnings"]["claude_cleanup_period_days"] == 7


def test_ledger_size_is_recorded_per_call(claude_dir, data_root, sqlite_ledger, capsys) -> None:
    make_corpus(claude_dir, data_root, files=20, lines=50)
    report(claude_dir, data_root, capsys, "--ledger", str(sqlite_ledger))
    db = sqlite3.connect(sqlite_ledger)
    n = db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    assert n == report(claude_dir, data_root, capsys, "--no-ledger")["totals"]["calls"]
    assert os.path.getsize(sqlite_ledger) > 0


def test_warm_start_days_match_cold_across_a_dst_change(claude_dir, data_root, ledger_path, capsys) -> None:
    # Vienna leaves summer time on 2026-10-25 at 01:00 UTC: days here are cut at 22:00 UTC before, 23:00 after.
    stamps = ["2026-10-23T21:59:00Z", "2026-10-23T22:00:00Z", "2026-10-24T21:45:00Z", "2026-10-24T22:14:59Z",
              "2026-10-25T00:59:00Z", "2026-10-25T01:00:00Z", "2026-10-25T22:59:00Z", "2026-10-25T23:00:00Z",
              "2026-03-28T23:00:00Z", "2026-03-29T00:59:00Z", "2026-03-29T01:00:00Z", "2026-03-29T22:00:00Z"]
    write_lines(project_dir(claude_dir) / "dst.jsonl",
                [cc_line(f"d{i}", output=10 + i, ts=ts) for i, ts in enumerate(stamps)])
    zone = ["--tz", "Europe/Vienna"]
    cold = report(claude_dir, data_root, capsys, "--no-ledger", *zone)
    report(claude_dir, data_root, capsys, "--ledger", str(ledger_path), *zone)
    warm = report(claude_dir, data_root, capsys, "--ledger", str(ledger_path), *zone)
    assert len(cold["by_day"]) >= 6
    assert [(d["day"], d["calls"], d["output_tokens"]) for d in warm["by_day"]] == \
        [(d["day"], d["calls"], d["output_tokens"]) for d in cold["by_day"]]


@pytest.mark.parametrize("child_fails", [False, True, "after its first part"])
def test_warm_start_in_a_forked_child_equals_one_in_process(claude_dir, data_root, sqlite_ledger, capsys,
                                                             monkeypatch, child_fails: bool | str) -> None:
    history(claude_dir, data_root)
    report(claude_dir, data_root, capsys, "--ledger", str(sqlite_ledger))  # fills the ledger
    (project_dir(claude_dir) / "a.jsonl").unlink()  # ledger-only calls survive the trip too
    write_lines(data_root / "agents" / "s1" / "llm_costs.jsonl",
                [internal_row(cost=0.5), internal_row(cost=0.25), internal_row(cost=1.0)])  # one new row
    here = engine(claude_dir, data_root, sqlite_ledger)
    here.start()
    with open(data_root / "agents" / "s1" / "llm_costs.jsonl", "a") as f:  # read by the child's catch-up
        f.write(internal_row(cost=2.0) + "\n")
    write_lines(project_dir(claude_dir, "/src/new") / "n.jsonl", [cc_line("n1", cwd="/src/new", session="n")])
    if child_fails is True:  # the child cannot open the ledger: the parent warms up itself
        monkeypatch.setattr(Ledger, "reopen", lambda self: (_ for _ in ()).throw(OSError("no")))
    elif child_fails:  # it sent what the first frame needs, then failed: the parent warms up itself all the same
        monkeypatch.setattr(Engine, "_snapshot_rest", lambda self: (_ for _ in ()).throw(OSError("no")))
    import tokentop.core.engine as engine_module

    pipe_sizes: list[int] = []
    widen = engine_module._widen_pipe

    def widen_noting(fd: int) -> None:
        widen(fd)
        pipe_sizes.append(fcntl.fcntl(fd, 1032))  # F_GETPIPE_SZ

    monkeypatch.setattr(engine_module, "_widen_pipe", widen_noting)
    e = engine(claude_dir, data_root, sqlite_ledger)
    e.first_view_for = ("7d", 15, time.time)  # as the TUI asks: the child makes the first view too
    warming = e.start_in_child()
    assert e.head_ready.wait(30)
    coming = e.files_watched()
    if child_fails is False:  # its first part is in; the rest waits for the UI to draw the first view
        assert e.restoring and e.first_view is not None and warming.is_alive() and coming > 3
        assert not e.cube.cells  # (not restored yet)
    e.first_drawn.set()  # as the UI does once it has drawn it
    warming.join(30)
    assert not warming.is_alive() and not e.restoring and len(e.files) == e.files_watched() == coming
    # the result comes through a 1 MB pipe: the thread reading it takes the GIL once per chunk, from a UI
    # importing Textual meanwhile
    assert pipe_sizes == [engine_module.RESULTS_PIPE_BYTES]
    here.update()  # the same catch-up, in this process
    expected = here.report(Filter(tz=UTC))
    assert expected["totals"]["calls"] == 8  # m1, m2 (ledger only), m3, n1 and four app rows
    got = e.report(Filter(tz=UTC))
    assert got["totals"] == pytest.approx(expected["totals"], rel=1e-12)  # sums in another order
    assert [(x["session"], x["calls"], x["output_tokens"]) for x in got["sessions"]] == \
        [(x["session"], x["calls"], x["output_tokens"]) for x in expected["sessions"]]
    assert e.ledger_only == here.ledger_only == 2
    assert set(e.files) == set(here.files) and e.warnings == here.warnings
    e.update()  # and it goes on from there: nothing is read twice
    assert e.report(Filter(tz=UTC))["totals"] == pytest.approx(expected["totals"], rel=1e-12)


def test_another_tokentop_on_the_same_ledger_never_makes_this_one_undercount(claude_dir, data_root, ledger_path,
                                                                             capsys) -> None:
    # The TUI runs; in another pane `tokentop report` catches the ledger up with new lines first.
    f = project_dir(claude_dir) / "a.jsonl"
    write_lines(f, [cc_line("m1", output=10), cc_line("m2", output=20)])
    report(claude_dir, data_root, capsys, "--ledger", str(ledger_path))
    tui = engine(claude_dir, data_root, ledger_path)
    tui.start()
    with open(f, "a") as fh:  # a bigger snapshot of m2 and a new call
        fh.write(cc_line("m2", output=500) + "\n" + cc_line("m3", output=7) + "\n")
    other = report(claude_dir, data_root, capsys, "--ledger", str(ledger_path))
    assert (other["totals"]["calls"], other["totals"]["output_tokens"]) == (3, 517)
    tui.update([str(f)])  # the watcher's event for the same bytes
    assert tui.totals(Filter(tz=UTC)) == other["totals"]
    with open(f, "a") as fh:
        fh.write(cc_line("m4", output=1) + "\n")
    tui.update([str(f)])  # and its own updates go on as usual
    assert tui.totals(Filter(tz=UTC))["output_tokens"] == 518


def test_a_stuck_warm_start_child_is_killed_and_the_parent_warms_up_itself(claude_dir, data_root, sqlite_ledger,
                                                                           capsys, monkeypatch) -> None:
    import tokentop.core.engine as engine_module

    history(claude_dir, data_root)
    expected = report(claude_dir, data_root, capsys, "--ledger", str(sqlite_ledger))["totals"]
    parent, start = os.getpid(), Engine.start

    def stuck_in_the_child(self, *a, **k):  # noqa: ANN001, ANN202
        if os.getpid() != parent:
            time.sleep(60)
        return start(self, *a, **k)

    monkeypatch.setattr(Engine, "start", stuck_in_the_child)
    monkeypatch.setattr(engine_module, "CHILD_WARM_START_TIMEOUT", 1.5)
    e = engine(claude_dir, data_root, sqlite_ledger)
    t0 = time.monotonic()
    e.start_in_child().join(30)
    assert time.monotonic() - t0 < 15
    assert e.totals(Filter(tz=UTC)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("with_ledger", [False, True])
def test_a_scan_on_both_cores_equals_one_in_one_process(claude_dir, data_root, tmp_path, monkeypatch,
                                                        with_ledger) -> None:
    import multiprocessing

    import tokentop.core.engine as engine_module

    make_corpus(claude_dir, data_root, files=60, lines=60)  # keys repeat across files, so across jobs
    monkeypatch.setattr(engine_module, "PARALLEL_MIN_BYTES", 0)  # a pool of worker processes even for this
    pools: list[str] = []
    get_context = multiprocessing.get_context
    monkeypatch.setattr(multiprocessing, "get_context", lambda method: pools.append(method) or get_context(method))
    pipe_sizes: list[int] = []
    widen = engine_module._widen_results_pipe

    def widen_noting(pool: Any) -> None:
        widen(pool)
        pipe_sizes.append(fcntl.fcntl(pool._outqueue._reader.fileno(), 1032))  # F_GETPIPE_SZ

    monkeypatch.setattr(engine_module, "_widen_results_pipe", widen_noting)

    def scanned(workers: int) -> Engine:
        e = engine(claude_dir, data_root, tmp_path / f"{workers}.sqlite")
        if not with_ledger:
            e.ledger = e.cube.lookup = e.cube.call_source = None
        e.scan(workers=workers)
        return e

    one, two = scanned(1), scanned(2)
    assert pools == ["fork"]  # only the second scan ran in worker processes
    assert pipe_sizes == [engine_module.RESULTS_PIPE_BYTES]  # its results came through a 1 MB pipe, not 64 KB
    flt = Filter(tz=UTC)
    assert rounded(two.report(flt, now=1.8e9)) == rounded(one.report(flt, now=1.8e9))
    assert two.report(flt)["totals"]["calls"] > 300
    if with_ledger:  # the same rows and rollup, whichever process read which file
        def rows(e: Engine, q: str) -> list:
            return sorted(rounded(list(r)) for r in e.ledger.db.execute(q))

        for e in (one, two):  # a cold scan leaves the rollup to its first reader
            assert not e.ledger.rollup_valid()
            assert rounded(e.ledger.cells(e.cube.day_of)) == rounded(e.cube.cells)
            assert e.ledger.rollup_valid()

        for q in ("SELECT source, key, ts, model, project, session, input_tokens, output_tokens, cost, path "
                  "FROM calls JOIN paths ON paths.id = path_id", "SELECT * FROM rollup",
                  "SELECT path, offset, size FROM files"):
            assert rows(two, q) == rows(one, q)


def _job_noting_signals(files: list[tuple[str, str]]) -> bytes:
    """A scan job that first notes, beside the files, how its worker process takes SIGTERM, and its niceness."""
    import signal

    import tokentop.core.engine as engine_module

    wakeup = signal.set_wakeup_fd(-1)
    Path(files[0][0] + f".{os.getpid()}.signals").write_text(
        json.dumps([signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, wakeup, os.nice(0)]))
    return engine_module._scan_job.__wrapped__(files)  # type: ignore[attr-defined]


def test_scan_workers_forked_under_an_event_loop_take_sigterm_as_a_new_process_and_run_nicer(
        claude_dir, data_root, tmp_path, monkeypatch) -> None:
    # `watch` scans in a thread while asyncio, in the main thread, has a SIGTERM handler and a wakeup fd. A worker
    # inheriting them ignored the SIGTERM that ends the pool (the scan hung at its end) and relayed it to the
    # parent's event loop (which then stopped following the files). Workers leave the CPU to the app, which merges
    # their results.
    import asyncio
    import functools
    import signal

    import tokentop.core.engine as engine_module

    make_corpus(claude_dir, data_root, files=30, lines=20)
    monkeypatch.setattr(engine_module, "PARALLEL_MIN_BYTES", 0)
    original = engine_module._scan_job
    monkeypatch.setattr(engine_module, "_scan_job", functools.wraps(original)(_job_noting_signals))
    e = engine(claude_dir, data_root, tmp_path / "l.sqlite")
    e.ledger = e.cube.lookup = e.cube.call_source = None
    got_sigterm = []

    async def run() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, lambda: got_sigterm.append(1))
        try:
            await asyncio.wait_for(asyncio.to_thread(e.scan, 2), 60)
            await asyncio.sleep(0.3)  # a relayed signal would be handled by now
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    asyncio.run(run())
    notes = [json.loads(p.read_text()) for p in claude_dir.rglob("*.signals")]
    # default SIGTERM, no wakeup fd, nicer than this process, in every worker
    nicer = min(19, os.nice(0) + engine_module.SCAN_WORKER_NICE)
    assert notes and all(note == [True, -1, nicer] for note in notes)
    assert not got_sigterm
    assert e.totals(Filter(tz=UTC))["calls"] > 100


def test_scan_jobs_hold_every_file_once_and_the_last_ones_are_smaller() -> None:
    from tokentop.core.engine import _batches

    rng = random.Random(7)
    files = sorted(((f"f{i}", rng.randint(1, 1000), "claude") for i in range(500)), key=lambda f: -f[1])
    jobs = _batches(files, 16, taper=2)
    assert sorted(f for job in jobs for f in job) == sorted(files)
    size = [sum(f[1] for f in job) for job in jobs]
    full, half, quarter = size[:12], size[12:14], size[14:]
    assert max(full) - min(full) <= 1000 and all(abs(h - min(full) / 2) <= 1000 for h in half)
    assert all(abs(q - min(full) / 4) <= 1000 for q in quarter)
    assert len(_batches(files[:3], 16, taper=2)) == 3  # never more jobs than files


def test_a_postgresql_ledgers_reads_of_sums_by_task_keep_their_connections(claude_dir, data_root, cluster,
                                                                          team_url, monkeypatch) -> None:
    """A read begins on the UI thread: a new server connection for each (a TLS handshake to a remote server)
    held the screen. An idle one is used again, with a snapshot of its own; overlapping reads each have one; one
    the server closed meanwhile is replaced."""
    import psycopg
    from tokentop.core import pg_ledger

    internal, transcript, e = tasks_history(claude_dir, data_root, team_url)
    opened: list[str] = []
    connect = pg_ledger.connect
    monkeypatch.setattr(pg_ledger, "connect", lambda url, **kw: opened.append(url) or connect(url, **kw))
    ledger = e.ledger
    assert isinstance(ledger, pg_ledger.PgLedger)

    def calls(rows: list[Any]) -> int:
        return sum(r[9] for r in rows)

    first, second = ledger.task_sums_later(None, None), ledger.task_sums_later(None, None)
    assert len(opened) == 2  # overlapping reads: a connection each
    more_task_calls(internal, transcript)  # committed after both began
    e.update()
    before = calls(first())
    assert calls(second()) == before  # both as the ledger was when they began
    third = ledger.task_sums_later(None, None)
    assert len(opened) == 2  # an idle connection again
    now = calls(third())
    assert now > before and now == calls(ledger.task_sums(None, None))  # a snapshot of its own: the later calls
    with psycopg.connect(cluster.url, autocommit=True) as admin:  # the server closes both idle connections
        for reader in ledger._readers:
            admin.execute("SELECT pg_terminate_backend(%s)", (reader.info.backend_pid,))
    assert calls(ledger.task_sums_later(None, None)()) == now
    assert len(opened) == 3  # replaced
    e.ledger.close()
    assert not ledger._readers
