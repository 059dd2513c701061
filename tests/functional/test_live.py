"""Live tailing with the real watcher on real files: every change ends in the totals of a cold recount."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tokentop.core.engine import Engine, Sources
from tokentop.core.filters import Filter, parse_tz
from tokentop.core.live import Batch, follow
from tokentop.core.pricing import PriceBook

from tests.builders import cc_line, internal_row, project_dir, write_lines

UTC = parse_tz("UTC")
BOOK = PriceBook()


def cold_totals(claude_dirs: list[Path], data_root: Path) -> dict:
    engine = Engine(Sources(claude_dirs, data_root, "app"), BOOK, UTC)
    engine.scan(workers=1)
    return engine.totals(Filter(tz=UTC))


class Live:
    """An engine following ``claude_dir`` and ``data_root`` with the real watcher, in this event loop."""

    def __init__(self, claude_dir: Path, data_root: Path) -> None:
        self.claude_dir, self.data_root = claude_dir, data_root
        self.engine = Engine(Sources([claude_dir], data_root, "app"), BOOK, UTC)
        self.batches: list[Batch] = []
        self.stop = asyncio.Event()

    async def __aenter__(self) -> Live:
        self.engine.scan(workers=1)
        self.task = asyncio.create_task(follow(self.engine, self.batches.append, self.stop))
        await asyncio.sleep(0.3)  # the watcher is set up
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 5)

    def totals(self) -> dict:
        return self.engine.totals(Filter(tz=UTC))

    async def has_read(self, f: Path, timeout: float = 5.0) -> None:
        """Wait until the engine has read ``f`` to its end."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.engine.files.get(str(f))
            if st is not None and st.offset == f.stat().st_size:
                return
            await asyncio.sleep(0.02)

    async def settles_at(self, want: dict, timeout: float = 5.0) -> None:
        """The live totals reach ``want`` and stay there (nothing counted twice a moment later)."""
        deadline = time.monotonic() + timeout
        while not same(self.totals(), want) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert_same(self.totals(), want)
        await asyncio.sleep(0.3)
        assert_same(self.totals(), want)

    async def matches_cold_recount(self, extra_dirs: tuple[Path, ...] = ()) -> None:
        await self.settles_at(cold_totals([self.claude_dir, *extra_dirs], self.data_root))


def same(a: dict, b: dict) -> bool:
    """Counts equal exactly; cost equal up to float summation order (calls are added in another order live)."""
    return {k: v for k, v in a.items() if k != "cost_usd"} == {k: v for k, v in b.items() if k != "cost_usd"} and \
        abs(a["cost_usd"] - b["cost_usd"]) <= 1e-9 * max(1.0, abs(b["cost_usd"]))


def assert_same(a: dict, b: dict) -> None:
    assert {k: v for k, v in a.items() if k != "cost_usd"} == {k: v for k, v in b.items() if k != "cost_usd"}
    assert a["cost_usd"] == pytest.approx(b["cost_usd"], rel=1e-9, abs=1e-12)


def append(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        f.write(data.encode() if isinstance(data, str) else data)


async def test_appends_line_by_line(claude_dir: Path, data_root: Path) -> None:
    f = project_dir(claude_dir) / "s.jsonl"
    write_lines(f, [cc_line("m0")])
    async with Live(claude_dir, data_root) as live:
        for i in range(1, 6):
            append(f, cc_line(f"m{i}", output=i) + "\n")
            await live.matches_cold_recount()
        assert live.totals()["calls"] == 6
        assert all(b.calls_read <= 5 for b in live.batches)


async def test_lines_written_before_the_watcher_started_are_read_once_it_has(claude_dir: Path,
                                                                             data_root: Path) -> None:
    f = project_dir(claude_dir) / "s.jsonl"
    write_lines(f, [cc_line("m1")])
    engine = Engine(Sources([claude_dir], data_root, "app"), BOOK, UTC)
    engine.scan(workers=1)
    with open(f, "a") as fh:  # after the scan, before any watcher: no event will ever tell of this line
        fh.write(cc_line("m2", output=7) + "\n")
    batches: list[Batch] = []
    stop = asyncio.Event()
    task = asyncio.create_task(follow(engine, batches.append, stop))
    deadline = time.monotonic() + 5
    while engine.totals(Filter(tz=UTC))["calls"] < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert engine.totals(Filter(tz=UTC)) == cold_totals([claude_dir], data_root)
    assert [b.calls_read for b in batches] == [1]  # one catch-up, announced because it read something


async def test_half_a_line_then_the_rest_counts_once(claude_dir: Path, data_root: Path) -> None:
    f = project_dir(claude_dir) / "s.jsonl"
    write_lines(f, [cc_line("m0")])
    line = cc_line("m1", output=77)
    async with Live(claude_dir, data_root) as live:
        append(f, line[:40])
        await asyncio.sleep(0.3)
        assert live.totals()["calls"] == 1
        assert live.engine.warnings["unparsable_lines"] == 0
        append(f, line[40:] + "\n")
        await live.matches_cold_recount()
        assert live.totals()["calls"] == 2


async def test_streamed_snapshots_replace_in_place_and_crlf(claude_dir: Path, data_root: Path) -> None:
    f = project_dir(claude_dir) / "s.jsonl"
    write_lines(f, [cc_line("m0")])
    async with Live(claude_dir, data_root) as live:
        append(f, cc_line("m1", output=2) + "\r\n")
        await live.matches_cold_recount()
        append(f, cc_line("m1", output=900) + "\r\n")
        await live.matches_cold_recount()
        assert live.totals()["output_tokens"] == 1000


async def test_truncate_and_rewrite_and_replace_by_rename(claude_dir: Path, data_root: Path) -> None:
    f = project_dir(claude_dir) / "s.jsonl"
    write_lines(f, [cc_line("m0"), cc_line("m1")])
    async with Live(claude_dir, data_root) as live:
        # compaction rewrites the file in place: same keys, one more message
        f.write_text(cc_line("m0") + "\n" + cc_line("m1") + "\n" + cc_line("m2") + "\n")
        await live.matches_cold_recount()
        tmp = f.with_suffix(".tmp")
        tmp.write_text(cc_line("m0") + "\n" + cc_line("m1") + "\n" + cc_line("m2") + "\n" + cc_line("m3") + "\n")
        os.replace(tmp, f)  # new inode at the same path
        await live.matches_cold_recount()
        assert live.totals()["calls"] == 4


async def test_deleted_file_calls_stay_counted(claude_dir: Path, data_root: Path) -> None:
    keep = project_dir(claude_dir) / "keep.jsonl"
    gone = project_dir(claude_dir) / "gone.jsonl"
    write_lines(keep, [cc_line("k")])
    write_lines(gone, [cc_line("g", output=5)])
    async with Live(claude_dir, data_root) as live:
        before = live.totals()
        gone.unlink()
        append(keep, cc_line("k2") + "\n")
        await asyncio.sleep(0.5)
        assert live.totals()["calls"] == before["calls"] + 1


async def test_new_project_folder_and_new_subagents_folder(claude_dir: Path, data_root: Path) -> None:
    write_lines(project_dir(claude_dir) / "s.jsonl", [cc_line("m0", session="s")])
    async with Live(claude_dir, data_root) as live:
        write_lines(project_dir(claude_dir, "/src/newproj") / "n.jsonl", [cc_line("n1", cwd="/src/newproj")])
        await live.matches_cold_recount()
        write_lines(project_dir(claude_dir) / "s" / "subagents" / "agent-a.jsonl",
                    [cc_line("sub1", sidechain=True, session="s")])
        await live.matches_cold_recount()
        assert live.totals()["calls"] == 3


async def test_internal_log_append_truncate_and_rate_limits(claude_dir: Path, data_root: Path) -> None:
    log = data_root / "agents" / "20261120-a" / "llm_costs.jsonl"
    write_lines(log, [internal_row(cost=0.5)])
    async with Live(claude_dir, data_root) as live:
        append(log, internal_row(cost=0.25) + "\n")
        await live.matches_cold_recount()
        log.write_text(internal_row(cost=1.0) + "\n")  # truncated and rewritten: its rows are replaced
        await live.matches_cold_recount()
        assert live.totals()["cost_usd"] == 1.0
        seen = len(live.batches)
        for name in ("rate_limits.json", "plan_limits.json"):  # API headroom, and plan windows from statusline
            rl = data_root / "runtime" / name
            rl.parent.mkdir(parents=True, exist_ok=True)
            rl.write_text(json.dumps({"m": {"observed_at": "2026-11-20T18:00:00+00:00"}}))
            deadline = time.monotonic() + 5
            while not any(b.rate_limits_changed for b in live.batches[seen:]) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert any(b.rate_limits_changed for b in live.batches[seen:]), name
            seen = len(live.batches)


@pytest.mark.parametrize("agents_exist", [True, False])
async def test_root_that_appears_later_is_picked_up(tmp_path: Path, agents_exist: bool) -> None:
    claude_dir = tmp_path / "fresh-claude"  # no projects/ yet, as on a machine where Claude Code never ran
    data_root = tmp_path / "fresh-data"
    if agents_exist:
        (data_root / "agents").mkdir(parents=True)
    async with Live(claude_dir, data_root) as live:
        # the folder and its first file at once: no event can be seen for the file itself
        write_lines(project_dir(claude_dir) / "s.jsonl", [cc_line("m0")])
        await live.settles_at(cold_totals([claude_dir], data_root), timeout=10)
        assert live.totals()["calls"] == 1


async def test_burst_of_files_is_applied_in_bounded_batches(claude_dir: Path, data_root: Path) -> None:
    async with Live(claude_dir, data_root) as live:
        for i in range(600):
            write_lines(project_dir(claude_dir) / f"s{i}.jsonl", [cc_line(f"m{i}", session=f"s{i}")])
        await live.settles_at(cold_totals([claude_dir], data_root), timeout=20)
        assert live.totals()["calls"] == 600
        assert max(b.files for b in live.batches) <= 200


async def test_randomized_soak_ends_equal_to_a_cold_report(tmp_path: Path, claude_dir: Path, data_root: Path) -> None:
    rng = random.Random(1234)
    graveyard = tmp_path / "graveyard"  # deleted transcripts go here: their calls must stay counted
    files: list[Path] = []
    log = data_root / "agents" / "soak" / "llm_costs.jsonl"
    write_lines(log, [internal_row()])
    n = 0
    async with Live(claude_dir, data_root) as live:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            op = rng.random()
            n += 1
            if op < 0.35 or not files:
                f = project_dir(claude_dir, f"/src/p{rng.randint(0, 3)}") / f"s{rng.randint(0, 9)}.jsonl"
                if f not in files:
                    files.append(f)
                key = f"m{rng.randint(0, 300)}"  # keys repeat across files: dedupe must hold
                append(f, cc_line(key, output=rng.randint(1, 500), session=f.stem) + rng.choice(["\n", "\r\n"]))
            elif op < 0.5:
                f = rng.choice(files)
                line = cc_line(f"m{rng.randint(0, 300)}", output=rng.randint(1, 500), session=f.stem)
                cut = rng.randint(1, len(line) - 1)
                append(f, line[:cut])
                await asyncio.sleep(rng.uniform(0, 0.05))
                append(f, line[cut:] + "\n")
            elif op < 0.6:
                f = rng.choice(files)
                tmp = f.with_suffix(".new")
                shutil.copy(f, tmp)
                append(tmp, cc_line(f"m{rng.randint(0, 300)}", output=rng.randint(1, 500)) + "\n")
                os.replace(tmp, f)
            elif op < 0.68:
                f = files.pop(rng.randrange(len(files)))
                # Transcripts are deleted long after their last write (cleanupPeriodDays): let the watcher
                # have read this one first; a line written and deleted within one debounce was never there.
                await live.has_read(f)
                dest = project_dir(graveyard, f"/g{n}") / f.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(f, dest)
            elif op < 0.9:
                append(log, internal_row(cost=round(rng.random(), 4)) + "\n")
            else:
                rows = log.read_text().splitlines()
                log.write_text("\n".join(rows[: max(1, len(rows) // 2)]) + "\n")
            await asyncio.sleep(rng.uniform(0, 0.03))
        await live.matches_cold_recount(extra_dirs=(graveyard,))
    assert n > 50


def test_watch_json_prints_a_line_per_batch_and_exits_on_sigterm(claude_dir: Path, data_root: Path) -> None:
    f = project_dir(claude_dir) / "s.jsonl"
    write_lines(f, [cc_line("m0")])
    p = subprocess.Popen([sys.executable, "-m", "tokentop.cli", "watch", "--json", "--tz", "UTC", "--claude-dir",
                          str(claude_dir), "--data-root", str(data_root)], stdout=subprocess.PIPE, text=True)
    try:
        first = json.loads(p.stdout.readline())
        assert first["totals"]["calls"] == 1 and first["lines"] == 1
        time.sleep(0.3)
        append(f, cc_line("m1", output=5) + "\n")
        second = json.loads(p.stdout.readline())
        assert second["lines"] == 1
        assert second["totals"]["calls"] == 2
        assert second["totals"]["output_tokens"] == 105
        assert second["applied_at"] >= first["applied_at"]
        p.send_signal(signal.SIGTERM)
        assert p.wait(5) == 0
    finally:
        p.kill()


@pytest.mark.parametrize("models", [""])
def test_watch_accepts_report_filters(claude_dir: Path, data_root: Path, models: str) -> None:
    write_lines(project_dir(claude_dir) / "s.jsonl", [cc_line("m0")])
    p = subprocess.Popen([sys.executable, "-m", "tokentop.cli", "watch", "--json", "--models", models, "--claude-dir",
                          str(claude_dir), "--data-root", str(data_root)], stdout=subprocess.PIPE, text=True)
    try:
        assert json.loads(p.stdout.readline())["totals"]["calls"] == 0
        p.send_signal(signal.SIGINT)
        assert p.wait(5) == 0
    finally:
        p.kill()


@pytest.mark.parametrize("kind", ["internal", "claude"])
def test_rewrite_in_place_that_grows_past_the_offset_is_detected(claude_dir: Path, data_root: Path, kind: str) -> None:
    # Truncated and rewritten before the watcher looked: same inode, bigger than what was read.
    if kind == "internal":
        f = data_root / "agents" / "s" / "llm_costs.jsonl"
        first = [internal_row(cost=0.1 * i, input=i) for i in range(1, 6)]
        second = [internal_row(cost=0.2 * i, input=100 + i) for i in range(1, 12)]
    else:
        f = project_dir(claude_dir) / "s.jsonl"
        first = [cc_line(f"a{i}", output=i) for i in range(5)]
        second = [cc_line(f"b{i}", output=i) for i in range(12)]
    write_lines(f, first)
    engine = Engine(Sources([claude_dir], data_root, "app"), BOOK, UTC)
    engine.scan(workers=1)
    with open(f, "r+") as fh:  # in place: the inode stays
        fh.seek(0)
        fh.truncate()
        fh.write("\n".join(second) + "\n")
    engine.update([str(f)])
    got = engine.totals(Filter(tz=UTC))
    want = cold_totals([claude_dir], data_root)
    if kind == "claude":  # calls of a rewritten transcript stay counted (as with deletion)
        assert got["calls"] == 5 + 12
    else:
        assert_same(got, want)
