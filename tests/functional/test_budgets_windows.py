"""Budgets (levels, periods in a zone, `budget check` exit code) and report windows with --compare."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from tokentop.core.budgets import Budget, level, period_bounds
from tokentop.core.filters import FilterError, previous_window, window_dates

from tests.builders import OPUS, cc_line, project_dir, write_lines
from tests.conftest import run_cli


@pytest.mark.parametrize(("fraction", "want"), [(0.0, "green"), (0.79, "green"), (0.8, "yellow"), (0.87, "yellow"),
                                                (0.875, "orange"), (0.95, "orange"), (0.951, "red"), (2.0, "red")])
def test_gauge_colour_thresholds(fraction: float, want: str) -> None:
    assert level(fraction, 0.8) == want


def test_periods_weeks_start_on_monday() -> None:
    wednesday = date(2026, 11, 25)
    assert period_bounds("weekly", wednesday) == (date(2026, 11, 23), date(2026, 11, 29))
    assert period_bounds("weekly", date(2026, 11, 23)) == (date(2026, 11, 23), date(2026, 11, 29))
    assert period_bounds("monthly", wednesday) == (date(2026, 11, 1), date(2026, 11, 30))
    assert period_bounds("monthly", date(2026, 12, 31)) == (date(2026, 12, 1), date(2026, 12, 31))
    with pytest.raises(ValueError):
        Budget("all", "yearly", 5)


def now_iso(delta: timedelta = timedelta()) -> str:
    t = datetime.now(timezone.utc) + delta
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_budget_set_show_check_and_hard_stop(claude_dir: Path, data_root: Path, capsys) -> None:
    write_lines(project_dir(claude_dir) / "s.jsonl",
                [cc_line("m1", model=OPUS, input=0, output=400_000, ts=now_iso())])  # $10 today
    src = ["--claude-dir", str(claude_dir), "--data-root", str(data_root), "--tz", "UTC"]
    assert run_cli(["budget", "set", "all", "daily", "20"], capsys)[0] == 0
    assert run_cli(["budget", "set", "webshop", "weekly", "9", "--hard-stop"], capsys)[0] == 0
    code, out, _ = run_cli(["budget", "show", "--json", *src], capsys)
    assert code == 0
    status = {(b["scope"], b["period"]): b for b in json.loads(out)["budgets"]}
    daily = status[("all", "daily")]
    assert (daily["spent_usd"], daily["percent"], daily["remaining_usd"], daily["level"]) == (
        pytest.approx(10), pytest.approx(50), pytest.approx(10), "green")
    assert status[("webshop", "weekly")]["level"] == "red"
    code, _, err = run_cli(["budget", "check", *src], capsys)
    assert code == 1 and "webshop weekly" in err
    run_cli(["budget", "rm", "webshop", "weekly"], capsys)
    assert run_cli(["budget", "check", *src], capsys)[0] == 0


def test_week_boundary_in_another_zone(claude_dir: Path, data_root: Path, capsys) -> None:
    # Sunday 23:30 UTC is already Monday in Tokyo: this week's budget there starts with that call.
    write_lines(project_dir(claude_dir) / "s.jsonl", [cc_line("m1", model=OPUS, input=0, output=40_000,
                                                              ts="2026-11-22T23:30:00.000Z")])
    assert window_dates("this-week", date(2026, 11, 23))[0] == date(2026, 11, 23)
    src = ["--claude-dir", str(claude_dir), "--data-root", str(data_root), "--no-ledger"]
    utc = run_cli(["report", "--json", "--tz", "UTC", "--since", "2026-11-23", *src], capsys)
    tokyo = run_cli(["report", "--json", "--tz", "Asia/Tokyo", "--since", "2026-11-23", *src], capsys)
    assert json.loads(utc[1])["totals"]["calls"] == 0
    assert json.loads(tokyo[1])["totals"]["calls"] == 1


def test_windows_and_previous_window_arithmetic() -> None:
    today = date(2026, 11, 25)  # a Wednesday
    assert window_dates("yesterday", today) == (date(2026, 11, 24),) * 2
    assert window_dates("last-week", today) == (date(2026, 11, 16), date(2026, 11, 22))
    assert window_dates("last-7d", today) == (date(2026, 11, 19), today)
    assert window_dates("this-month", today) == (date(2026, 11, 1), today)
    assert window_dates("all", today) == (None, None)
    assert previous_window(date(2026, 11, 19), date(2026, 11, 25)) == (date(2026, 11, 12), date(2026, 11, 18))
    with pytest.raises(FilterError):
        window_dates("fortnight", today)


def test_compare_adds_previous_totals_and_deltas(claude_dir: Path, data_root: Path, capsys) -> None:
    write_lines(project_dir(claude_dir) / "s.jsonl", [
        cc_line("a", model=OPUS, input=0, output=40_000, ts="2026-11-20T10:00:00.000Z"),  # $1
        cc_line("b", model=OPUS, input=0, output=120_000, ts="2026-11-25T10:00:00.000Z"),  # $3
        cc_line("c", model=OPUS, input=0, output=40_000, ts="2026-11-25T11:00:00.000Z"),  # $1
    ])
    code, out, err = run_cli(["report", "--json", "--compare", "--since", "2026-11-23", "--until", "2026-11-29",
                              "--tz", "UTC", "--claude-dir", str(claude_dir), "--data-root", str(data_root)],
                             capsys)
    assert code == 0, err
    c = json.loads(out)["compare"]
    assert c["previous"] == {"since": "2026-11-16", "until": "2026-11-22"}
    assert c["totals"]["cost_usd"] == pytest.approx(1)
    assert c["delta"]["cost_usd"] == pytest.approx(3) and c["delta"]["calls"] == 1
    assert c["delta_pct"]["cost_usd"] == pytest.approx(300)
    code, _, err = run_cli(["report", "--compare", "--claude-dir", str(claude_dir)], capsys)
    assert code == 2 and "bounded window" in err
