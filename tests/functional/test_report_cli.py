"""`tokentop report`: the JSON contract, the filters, the table, and clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.builders import HAIKU, OPUS, SONNET, cc_line, internal_row, project_dir, write_lines
from tests.conftest import run_cli

TOTAL_FIELDS = {"cost_usd", "input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens",
                "calls", "cloud_calls", "local_calls", "unpriced_calls"}


@pytest.fixture
def mixed(claude_dir: Path, data_root: Path) -> None:
    """Two days, three Claude models in two projects, plus internal cloud and local rows."""
    write_lines(project_dir(claude_dir, "/src/webshop") / "s1.jsonl", [
        cc_line("m1", model=SONNET, input=0, output=1_000_000, ts="2026-11-19T23:30:00.000Z", session="s1",
                cwd="/src/webshop"),
        cc_line("m2", model=OPUS, input=0, output=1_000_000, ts="2026-11-20T08:00:00.000Z", session="s1",
                cwd="/src/webshop"),
    ])
    write_lines(project_dir(claude_dir, "/src/infra") / "s2.jsonl", [
        cc_line("m3", model=HAIKU, input=0, output=1_000_000, ts="2026-11-20T09:00:00.000Z", session="s2",
                cwd="/src/infra"),
        cc_line("m4", model="claude-experimental-9", output=10, ts="2026-11-20T09:05:00.000Z", session="s2",
                cwd="/src/infra"),
    ])
    write_lines(data_root / "agents" / "20261120-x" / "llm_costs.jsonl", [
        internal_row(ts="2026-11-20T10:00:00+00:00", cost=1.25, model="claude-sonnet-4-5"),
        internal_row(ts="2026-11-20T11:00:00+00:00", cost=0.0, mode="local", model="qwen2.5-7b-instruct"),
    ])


def test_json_shape_is_the_documented_contract(mixed, report) -> None:
    rep = report()
    assert set(rep) >= {"tz", "filters", "totals", "by_day", "by_model", "by_project", "by_source", "sessions",
                        "warnings"}
    assert rep["tz"] == "UTC"
    assert set(rep["totals"]) == TOTAL_FIELDS
    for group, name in (("by_day", "day"), ("by_model", "model"), ("by_project", "project"),
                        ("by_source", "source")):
        for row in rep[group]:
            assert set(row) == TOTAL_FIELDS | {name}
    s = rep["sessions"][0]
    assert set(s) >= TOTAL_FIELDS | {"session", "project", "source", "last_activity", "active"}
    assert "unparsable_lines" in rep["warnings"]


def test_totals_and_unpriced(mixed, report) -> None:
    t = report()["totals"]
    # 15 (sonnet out) + 25 (opus out) + 5 (haiku out) + 1.25 logged; the experimental model is unpriced
    assert t["cost_usd"] == pytest.approx(15 + 25 + 5 + 1.25)
    assert t["unpriced_calls"] == 1
    assert (t["calls"], t["cloud_calls"], t["local_calls"]) == (6, 5, 1)


def test_models_trichotomy(mixed, report) -> None:
    assert report()["totals"]["calls"] == 6
    none = report("--models", "")
    assert none["totals"]["calls"] == 0
    assert none["by_model"] == [] and none["sessions"] == []
    only = report("--models", f"{OPUS},qwen2.5-7b-instruct")
    assert only["totals"]["calls"] == 2
    assert only["totals"]["cost_usd"] == pytest.approx(25)
    # a normalized id selects its dated variants too
    assert report("--models", "claude-sonnet-4-5")["totals"]["calls"] == 2


def test_source_project_mode_and_session_filters_agree_everywhere(mixed, report) -> None:
    for args, calls in ((["--source", "claude_code"], 4), (["--source", "internal"], 2),
                        (["--project", "SHOP"], 2), (["--mode", "local"], 1), (["--mode", "cloud"], 5),
                        (["--session", "s2"], 2)):
        rep = report(*args)
        assert rep["totals"]["calls"] == calls, args
        for group in ("by_day", "by_model", "by_project", "by_source", "sessions"):
            assert sum(r["calls"] for r in rep[group]) == calls, (args, group)


def test_dates_are_inclusive_in_the_display_zone(mixed, report) -> None:
    assert report("--since", "2026-11-20", "--until", "2026-11-20")["totals"]["calls"] == 5
    assert report("--until", "2026-11-19")["totals"]["calls"] == 1
    # 23:30 UTC on the 19th is already the 20th in Vienna (UTC+1)
    vienna = report("--tz", "Europe/Vienna", "--since", "2026-11-20")
    assert vienna["tz"] == "Europe/Vienna"
    assert vienna["totals"]["calls"] == 6
    assert [d["day"] for d in vienna["by_day"]] == ["2026-11-20"]


def test_table_output_formats_money_and_calls(mixed, claude_dir: Path, data_root: Path, capsys) -> None:
    code, out, _ = run_cli(["report", "--tz", "UTC", "--claude-dir", str(claude_dir), "--data-root",
                            str(data_root), "--group-by", "model"], capsys)
    assert code == 0
    assert "cost $46.25 + 1 unpriced" in out
    assert "cloud 5 · local 1" in out
    assert "claude-experimental-9" in out and "unpriced" in out.split("claude-experimental-9")[1].split("\n")[0]


def test_table_columns_line_up_under_wide_characters(claude_dir: Path, data_root: Path, capsys) -> None:
    import unicodedata

    def cells(text: str) -> int:  # as a terminal draws it
        return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
                   for c in text)

    for cwd in ("/src/web", "/src/プロジェクト長い名前", "/src/cafe\u0301"):  # CJK: 2 cells each; a combining accent: 0
        write_lines(project_dir(claude_dir, cwd) / "s.jsonl", [cc_line(f"m-{cwd}", cwd=cwd, session=cwd)])
    code, out, _ = run_cli(["report", "--tz", "UTC", "--no-ledger", "--claude-dir", str(claude_dir), "--data-root",
                            str(data_root), "--group-by", "project"], capsys)
    assert code == 0
    table = out[out.index("PROJECT"):].splitlines()
    assert sorted(line.split()[0] for line in table[1:]) == sorted(["web", "プロジェクト長い名前", "cafe\u0301"])
    ends = {cells(line[:line.index("$")]) for line in table[1:]}  # where the cost column starts, in cells
    assert len({cells(line) for line in table}) == 1 and len(ends) == 1
    code, out, _ = run_cli(["report", "--tz", "UTC", "--no-ledger", "--claude-dir", str(claude_dir), "--data-root",
                            str(data_root), "--recent"], capsys)
    recent = out[out.index("RECENT CALLS"):].splitlines()[1:]
    assert len(recent) == 3 and len({cells(line) for line in recent}) == 1


def test_costs_from_100_dollars_drop_the_cents(claude_dir: Path, data_root: Path, capsys) -> None:
    write_lines(project_dir(claude_dir) / "s.jsonl", [cc_line("m", model=OPUS, input=0, output=50_000_000)])
    code, out, _ = run_cli(["report", "--tz", "UTC", "--claude-dir", str(claude_dir), "--data-root",
                            str(data_root)], capsys)
    assert code == 0
    assert "cost $1,250 ·" in out


@pytest.mark.parametrize(("args", "needle"), [
    (["--source", "cursor"], "unknown source"),
    (["--since", "2026-13-01"], "--since"),
    (["--tz", "Mars/Olympus"], "unknown time zone"),
    (["--mode", "hybrid"], "unknown mode"),
    (["--since", "2026-11-20", "--until", "2026-11-01"], "after"),
    (["--group-by", "week"], "invalid choice"),
])
def test_bad_option_values_print_one_line_and_exit_2(args, needle, claude_dir, data_root, capsys) -> None:
    code, out, err = run_cli(["report", "--claude-dir", str(claude_dir), "--data-root", str(data_root), *args],
                             capsys)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert needle in err


def test_the_dashboard_opens_on_the_range_given(claude_dir: Path, data_root: Path, capsys,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    import tokentop.ui.app as ui

    opened: list[str] = []
    monkeypatch.setattr(ui, "run_tui", lambda engine, **kw: opened.append(kw["date_range"]) or 0)
    source = ["--no-ledger", "--claude-dir", str(claude_dir), "--data-root", str(data_root)]
    try:
        assert run_cli(["--range", "30d", *source], capsys)[0] == 0
        assert run_cli(source, capsys)[0] == 0
    finally:
        gc.unfreeze()  # `tokentop` freezes what it imported (see cmd_tui): not this test process's objects
    assert opened == ["30d", "7d"]
    code, out, err = run_cli(["--range", "fortnight", *source], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "--range: invalid choice: 'fortnight'" in err and "'today', '7d', '30d', 'week', 'all'" in err


#: Runs `tokentop` (the TUI command) in a fresh interpreter with the app's `run_tui` replaced, once its module is
#: imported, by one that notes what the app would start with; prints that as JSON.
TUI_IMPORT_PROBE = """
import importlib.abc, importlib.machinery, json, sys
from tokentop import cli
noted = {}

class Probe(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "tokentop.ui.app":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)

            def run_tui(engine, **kw):
                import asyncio

                async def one_tick():
                    await asyncio.sleep(0)
                    return "ran"

                noted.update(ssl_loaded="ssl" in sys.modules, asyncio_ssl=asyncio.base_events.ssl is not None,
                             loop=asyncio.run(one_tick()))
                return 0

            module.run_tui = run_tui

        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, Probe())
from tokentop._codecache import CodeCache
save = CodeCache.save

def noting_save(self):
    noted.update(compiled=self.compiled, cached=len(self.codes))
    return save(self)

CodeCache.save = noting_save
code = cli.main(sys.argv[1:])
import ssl
noted.update(code=code, ssl_later=ssl.PROTOCOL_TLS_CLIENT is not None)
print(json.dumps(noted))
"""


def test_the_tui_imports_textual_with_generated_code_cached_and_asyncio_without_ssl(claude_dir: Path,
                                                                                     data_root: Path) -> None:
    # asyncio takes ssl only if it can: the TUI leaves it out (10 ms of its start), nothing else changes. The
    # dataclasses' methods Textual's import generates are compiled on the first start only (~30 ms).
    def tui() -> dict[str, Any]:
        p = subprocess.run([sys.executable, "-c", TUI_IMPORT_PROBE, "--no-ledger", "--claude-dir", str(claude_dir),
                            "--data-root", str(data_root)], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    cache = Path(os.environ["TOKENTOP_CACHE_DIR"]) / "generated-code.marshal"
    assert not cache.exists()
    first = tui()
    assert first.pop("compiled") == first["cached"] > 100 and cache.exists()
    second = tui()
    assert second.pop("compiled") == 0 and second == first == {
        "ssl_loaded": False, "asyncio_ssl": False, "loop": "ran", "code": 0, "ssl_later": True,
        "cached": first["cached"]}


def test_group_by_task_uses_tools_and_task_ids(claude_dir: Path, data_root: Path, report) -> None:
    write_lines(project_dir(claude_dir) / "s.jsonl", [
        cc_line("m1", content=[{"type": "tool_use", "id": "t1", "name": "Bash"}]),
        cc_line("m2"),
    ])
    write_lines(data_root / "agents" / "x" / "llm_costs.jsonl", [internal_row(task="summarize:day")])
    rep = report("--group-by", "task")
    assert sorted((r["task"], r["calls"]) for r in rep["by_task"]) == [
        ("(text)", 1), ("Bash", 1), ("summarize:day", 1)]


def test_empty_machine_reports_zero(report) -> None:
    rep = report()
    assert rep["totals"]["calls"] == 0
    assert rep["totals"]["cost_usd"] == 0


def test_a_claude_dir_may_name_its_projects_folder_and_a_missing_source_gets_a_note(mixed, claude_dir: Path,
                                                                                     data_root: Path, capsys) -> None:
    def run(claude: Path, data: Path) -> tuple[dict, str]:
        code, out, err = run_cli(["report", "--json", "--no-ledger", "--claude-dir", str(claude), "--data-root",
                                  str(data)], capsys)
        assert code == 0, err
        return json.loads(out), err

    whole, err = run(claude_dir, data_root)
    assert err == "" and whole["totals"]["calls"] > 0
    assert run(claude_dir / "projects", data_root) == (whole, "")  # ~/.claude/projects for ~/.claude
    typo, err = run(claude_dir.parent / "cluade", data_root.parent / "dta")  # typos: a note each, no silence
    assert typo["totals"]["calls"] == 0
    assert f"--claude-dir {claude_dir.parent / 'cluade'} holds no projects/ folder" in err
    assert f"--data-root {data_root.parent / 'dta'} does not exist" in err


def test_report_path_imports_neither_textual_nor_genai_prices_nor_typing_extensions(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom tokentop import cli\n"
        f"cli.main(['report', '--json', '--claude-dir', {str(tmp_path)!r}, '--data-root', {str(tmp_path)!r}])\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'rich', 'genai_prices')]\n"
        "assert not bad, bad\n"
        # msgspec was loaded without typing_extensions (and its inspect), which still imports afterwards
        "assert 'typing_extensions' not in sys.modules and 'inspect' not in sys.modules\n"
        "import typing_extensions\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["totals"]["calls"] == 0


def test_the_script_prints_everything_then_exits_fast_with_the_commands_code(claude_dir: Path,
                                                                            data_root: Path) -> None:
    # 400 sessions: far more JSON than a pipe holds, all of it flushed before the process leaves (os._exit).
    for i in range(400):
        write_lines(project_dir(claude_dir) / f"s{i}.jsonl", [cc_line(f"m{i}", session=f"s{i}")])
    # `python -m tokentop` runs what the `tokentop` script does (`tokentop.__main__.run`)
    script = [sys.executable, "-m", "tokentop", "report", "--claude-dir", str(claude_dir), "--data-root",
              str(data_root), "--no-ledger"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout buffered, as usual
    r = subprocess.run([*script, "--json"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) > 1 << 17 and r.stdout.endswith("}\n") and len(json.loads(r.stdout)["sessions"]) == 400
    r = subprocess.run([*script, "--json", "--source", "internal"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["totals"]["calls"] == 0  # a short one: only in the buffer
    r = subprocess.run([*script, "--since", "yesterday-ish"], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "--since" in r.stderr
    reader = subprocess.Popen([*script, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)  # | head
    assert reader.stdout is not None and reader.stderr is not None
    assert reader.stdout.read(7) == b'{"tz":"'
    reader.stdout.close()
    assert reader.wait(timeout=60) == 0 and b"Traceback" not in reader.stderr.read()


def test_a_local_tui_does_not_import_team_mode() -> None:
    code = ("import sys\nfrom tokentop.core.engine import Engine, Sources\nfrom tokentop.ui.app import is_team\n"
            "assert not is_team(Engine(Sources()))\n"
            "assert not [m for m in sys.modules if m.startswith(('tokentop.core.team', 'psycopg'))]\n"
            "from tokentop.core.team_engine import TeamEngine\n"
            "assert is_team(TeamEngine.__new__(TeamEngine))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_core_package_never_imports_textual() -> None:
    code = ("import sys, pkgutil, importlib, tokentop.core as c\n"
            "for m in pkgutil.iter_modules(c.__path__): importlib.import_module('tokentop.core.' + m.name)\n"
            "assert 'textual' not in sys.modules and 'rich' not in sys.modules\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_second_run_prices_from_the_cache_without_importing_genai_prices(tmp_path: Path, claude_dir: Path) -> None:
    write_lines(project_dir(claude_dir) / "s.jsonl", [cc_line("m1", model=OPUS, input=0, output=1_000_000)])
    code = (
        "import sys, json\nfrom tokentop import cli\n"
        f"cli.main(['report', '--json', '--claude-dir', {str(claude_dir)!r}, '--data-root', {str(tmp_path)!r}])\n"
        "print(json.dumps('genai_prices' in sys.modules))\n"
    )
    env = {**os.environ, "TOKENTOP_CACHE_DIR": str(tmp_path / "cache")}
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr
    (first_report, first_imported), (second_report, second_imported) = (
        [json.loads(x) for x in r.stdout.splitlines()] for r in runs)
    assert first_imported is True and second_imported is False
    assert first_report["totals"]["cost_usd"] == second_report["totals"]["cost_usd"] == 25.0


def test_top_tasks_recent_calls_and_projection(mixed, report) -> None:
    rep = report("--top-tasks", "--recent")
    assert [r["task"] for r in rep["top_tasks"]][:1] == ["(text)"]
    assert sum(r["calls"] for r in rep["top_tasks"]) == rep["totals"]["calls"]
    text = next(r for r in rep["top_tasks"] if r["task"] == "(text)")
    assert text["avg_cost_usd"] == pytest.approx(text["cost_usd"] / (text["calls"] - text["unpriced_calls"]))
    times = [r["time"] for r in rep["recent"]]
    assert times == sorted(times, reverse=True) and len(times) == 6
    assert rep["recent"][0]["model"] == "qwen2.5-7b-instruct"  # 11:00 is the newest call
    p = rep["projection"]
    assert p["lookback_days"] == 7 and p["month_usd"] >= p["week_usd"] >= 0
    only_opus = report("--top-tasks", "--recent", "--models", OPUS)
    assert [r["model"] for r in only_opus["recent"]] == [OPUS]
    assert sum(r["calls"] for r in only_opus["top_tasks"]) == 1


def test_help_lists_every_command_and_each_commands_options(capsys) -> None:
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0
    for command in ("report", "watch", "sync", "reprice", "export", "log", "statusline", "budget", "demo"):
        assert command in out
    code, out, _ = run_cli(["report", "--help"], capsys)
    assert code == 0 and "--group-by" in out and "--window" in out and "--claude-dir" in out
    code, out, _ = run_cli(["budget", "set", "--help"], capsys)
    assert code == 0 and "--hard-stop" in out
    code, _, err = run_cli(["log", "--model", "m", "--input", "x", "--output", "1"], capsys)
    assert code == 2 and "--input" in err and "invalid int value" in err


def test_projection_from_the_reports_days_equals_the_one_from_cells(claude_dir, report) -> None:
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc)
    write_lines(project_dir(claude_dir) / "s.jsonl", [
        cc_line(f"m{i}", model=SONNET, output=100_000 * (i + 1), ts=(now - timedelta(days=i, minutes=5)).isoformat())
        for i in range(10)])
    undated = report()["projection"]  # taken from the report's own by_day rows
    dated = report("--since", "2000-01-01")["projection"]  # a dated report: one pass over the cells instead
    assert undated["per_day_usd"] > 0 and undated["month_usd"] > 0
    assert undated["per_day_usd"] == pytest.approx(dated["per_day_usd"], rel=1e-12)
    for k in ("today_usd", "week_usd", "month_usd"):
        assert undated[k] == pytest.approx(dated[k], rel=1e-6)  # the two runs' clocks differ by milliseconds
