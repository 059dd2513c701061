"""The TUI driven from the keyboard (and mouse): every key changes the numbers exactly as `report` would."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from tokentop.cli import start_early
from tokentop.core import fmt
from tokentop.core.engine import Engine
from tokentop.core.ledger import Ledger
from tokentop.core.views import display_name
from tokentop.ui.app import MainScreen, TokentopApp
from tokentop.ui.detail import ScopeScreen
from tokentop.ui.screens import HelpScreen, ProjectPicker
from tokentop.ui.screenshots import demo_app
from tokentop.ui.widgets.chips import ChipBar, chip_label
from tokentop.ui.widgets.linetable import LineTable

from tests.builders import cc_line
from tests.tui_support import NOW, held_task_reads, loaded, make_app, shown_tasks, table_rows, tasks_of, text_of


async def ready(app: TokentopApp, pilot) -> None:
    await loaded(app, pilot)


def expected(app: TokentopApp) -> dict:
    """What `report --json` says for the app's current filter."""
    return app.engine.report(app.current_filter(), now=NOW)["totals"]


def shown_cost(app: TokentopApp) -> str:
    return text_of(app, "#card-cost").splitlines()[0]


def chip_names(app: TokentopApp) -> list[str]:
    return [c["model"] for c in app.view["chips"]]


async def test_the_dashboard_opens_on_the_date_range_given_and_d_goes_on_from_there(tmp_path: Path) -> None:
    from tokentop.core.filters import Filter

    seven_days = make_app(tmp_path / "7d")
    app = demo_app(tmp_path / "all", NOW, date_range="all")  # `tokentop --range all`
    async with seven_days.run_test(size=(80, 24)) as pilot:
        await ready(seven_days, pilot)
        last_week = seven_days.view["totals"]
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        everything = app.engine.report(Filter(tz=app.tz), now=NOW)["totals"]
        assert app.preset == "all" and app.view["totals"] == everything
        assert everything["calls"] > last_week["calls"] > 0  # the demo's history is longer than a week
        assert "all time" in text_of(app, "#filterbar") and shown_cost(app) == fmt.money(everything["cost_usd"])
        await pilot.press("d")  # all time -> today, as the key always cycles
        await pilot.pause()
        assert app.preset == "today" and "today" in text_of(app, "#filterbar")
    with pytest.raises(ValueError, match="unknown date range 'fortnight'"):
        demo_app(tmp_path / "bad", NOW, date_range="fortnight")


async def test_first_frame_shows_the_report_numbers(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        t = expected(app)
        assert t["calls"] > 100
        assert app.view["totals"] == t
        assert shown_cost(app) == fmt.money(t["cost_usd"])
        assert text_of(app, "#card-calls").splitlines()[1] == f"cloud {t['cloud_calls']} · local {t['local_calls']}"
        assert "last 7d" in text_of(app, "#filterbar")
        today = datetime.fromtimestamp(NOW, app.tz).date()
        day = app.engine.report(app.current_filter().with_(since=today, until=today), now=NOW)["totals"]
        assert app.view["today"] == day and day["calls"] > 0
        assert text_of(app, "#card-today").splitlines()[0] == fmt.money(day["cost_usd"])
        await pilot.press("d", "d", "d", "d")  # all time: today is still today's
        await pilot.pause()
        assert app.preset == "today" and app.view["today"] == day
        await pilot.press("left_square_bracket")  # yesterday's window: the Today card still shows today
        await pilot.pause()
        assert app.view["totals"] != day and app.view["today"] == day


async def test_shift_digit_solos_a_model_and_matches_report_models(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        for i, key in enumerate(("exclamation_mark", "at", "number_sign")):
            await pilot.press(key)
            await pilot.pause()
            model = chip_names(app)[i]
            assert app.models == (model,)
            solo = app.engine.report(app.current_filter().with_(models=(model,)), now=NOW)["totals"]
            assert app.view["totals"] == solo
            assert shown_cost(app) == fmt.money(solo["cost_usd"])
            await pilot.press("0")


async def test_digits_toggle_and_all_off_shows_zero_with_a_hint(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        n = len(chip_names(app))
        assert n >= 3
        everything = expected(app)
        await pilot.press("1")
        await pilot.pause()
        first_off = expected(app)
        assert app.view["totals"] == first_off and first_off["calls"] < everything["calls"]
        for i in range(2, n + 1):
            await pilot.press(str(i))
        await pilot.pause()
        assert app.models == ()
        assert app.view["totals"]["calls"] == 0
        assert shown_cost(app) == "$0.00"
        bar = app.screen.query_one("#chips", ChipBar)  # the hint first: visible however many chips follow
        assert bar.render_line(0).text.startswith("no models selected — 0 shows all ") and bar.region.right <= 80
        await pilot.press("0")
        await pilot.pause()
        assert app.models is None
        assert app.view["totals"] == everything


async def test_arrows_space_solo_and_family_on_the_focused_chip(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        chips = app.view["chips"]
        await pilot.press("right", "space")
        await pilot.pause()
        assert app.models is not None and chips[1]["model"] not in app.models
        await pilot.press("S")
        await pilot.pause()
        assert app.models == (chips[1]["model"],)
        await pilot.press("0", "left", "left", "f")  # wrap around to the last chip, toggle its family off
        await pilot.pause()
        last_family = chips[-1]["family"]
        members = {c["model"] for c in chips if c["family"] == last_family}
        assert app.models is not None and not members & set(app.models)
        await pilot.press("f")
        await pilot.pause()
        assert app.models is None


async def test_click_toggles_and_shift_click_solos(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        chips, bar = app.view["chips"], app.screen.query_one("#chips", ChipBar)
        await pilot.click(bar, offset=bar.chip_offset(0) + (3, 0))  # (the bar's padding, a cell into the chip)
        await pilot.pause()
        assert app.models is not None and chips[0]["model"] not in app.models
        await pilot.press("0")
        await pilot.pause()
        await pilot.click(bar, offset=bar.chip_offset(1) + (3, 0), shift=True)
        await pilot.pause()
        assert app.models == (chips[1]["model"],)
        await pilot.click(bar, offset=bar.chip_offset(2))  # the cell before chip 3 (the padding apart): no chip
        await pilot.pause()
        assert app.models == (chips[1]["model"],)
        await pilot.click(bar, offset=bar.chip_offset(2) + (3, 0), shift=True)  # chip 3: another solo
        await pilot.pause()
        assert app.models == (chips[2]["model"],)


async def test_source_dates_mode_keys_change_the_filter_like_report(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        seen = []
        for key, attr in (("s", "source"), ("s", "source"), ("m", "mode"), ("m", "mode"), ("d", "preset"),
                          ("d", "preset"), ("d", "preset")):
            await pilot.press(key)
            await pilot.pause()
            seen.append(getattr(app, attr))
            assert app.view["totals"] == expected(app), (key, seen)
        assert seen == ["claude_code", "internal", "cloud", "local", "30d", "week", "all"]
        assert "api" in text_of(app, "#filterbar") and "local" in text_of(app, "#filterbar")
        await pilot.press("d")  # back to today
        await pilot.press("left_square_bracket")
        await pilot.pause()
        assert app.offset == -1
        f = app.current_filter()
        assert f.since == f.until and str(f.since) == "2026-11-17"
        assert app.view["totals"] == expected(app)
        await pilot.press("right_square_bracket", "right_square_bracket")
        await pilot.pause()
        assert app.offset == 0  # never past today


async def test_project_picker_filters_by_fuzzy_name(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press("p")
        await pilot.pause()
        assert isinstance(app.screen, ProjectPicker)
        await pilot.press("p", "y", "m", "t", "enter")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert app.project == "payments"
        assert {r["project"] for r in app.view["by_project"]} == {"payments"}
        assert app.view["totals"] == expected(app)


def assert_scope_matches_report(app: TokentopApp, kind: str, name: str) -> None:
    """The drill-down's cards, model split, top tasks and projection are `report`'s for that scope."""
    from tokentop.core.report import projection, top_tasks

    screen = app.screen
    assert isinstance(screen, ScopeScreen) and (screen.kind, screen.scope_name) == (kind, name)
    flt = app.current_filter().with_(**{kind: name})
    rep = app.engine.report(flt, now=NOW)
    assert screen.view["totals"] == rep["totals"] and rep["totals"]["calls"] > 0
    assert shown_cost(app) == fmt.money(rep["totals"]["cost_usd"])
    assert text_of(app, "#card-calls").splitlines()[0] == fmt.count(rep["totals"]["calls"])
    assert [(r[0], r[1], r[3]) for r in table_rows(app, "#scope-models")] == [
        (display_name(m["model"]), fmt.count(m["calls"]), fmt.money(m["cost_usd"], m["unpriced_calls"], m["calls"]))
        for m in rep["by_model"]]
    tasks = top_tasks(app.engine.cube, flt)
    assert [(r[0], r[2]) for r in table_rows(app, "#scope-tasks")] == [
        (t["task"], fmt.money(t["cost_usd"], t["unpriced_calls"], t["calls"])) for t in tasks]
    p = projection(app.engine.cube, flt.with_(since=None, until=None), NOW)
    assert screen.view["projection"] == p
    assert text_of(app, "#card-projected").splitlines()[2] == f"month ~{fmt.money(p['month_usd'])}"
    assert {d: c for d, c in screen.view["daily"] if c} == {r["day"]: r["cost_usd"] for r in rep["by_day"]}


async def test_enter_on_a_session_opens_its_detail_and_escape_goes_back(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        before = app.view["totals"]
        first = app.view["sessions"][0]
        app.screen.query_one("#sessions").focus()
        await pilot.press("enter")
        await pilot.pause()
        assert_scope_matches_report(app, "session", first["session"])
        assert app.screen.view["totals"]["calls"] == first["calls"]
        assert f"session {first['session'][:8]}" in text_of(app, "#scope-title")
        assert f"project {first['project']}" in text_of(app, "#scope-title")
        await pilot.press("d")  # the filter keys work here too: 7d → 30d
        await pilot.pause()
        assert app.preset == "30d"
        assert app.screen.view["totals"] == app.engine.report(
            app.current_filter().with_(session=first["session"]), now=NOW)["totals"]
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert app.view["totals"] == expected(app) != before  # redrawn for the window changed in the detail


async def test_enter_on_a_project_row_opens_the_project_detail(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press("v")
        await pilot.pause()
        second = app.view["by_project"][1]["project"]
        app.screen.query_one("#breakdown").focus()
        await pilot.press("down", "enter")
        await pilot.pause()
        assert_scope_matches_report(app, "project", second)
        await pilot.press("1")  # model chip keys belong to the main screen: nothing changes here
        await pilot.pause()
        assert app.models is None
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen) and app.panel == "projects"


async def test_active_sessions_get_the_dot(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        sessions = app.view["sessions"]
        active = [s for s in sessions if s["active"]]
        assert active and len(active) < len(sessions)
        table = app.screen.query_one("#sessions")
        dots = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        assert dots[: len(active)] == ["●"] * len(active)
        assert "●" not in dots[len(active):]


async def test_rate_limit_panel_and_help_and_quit(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        panel = text_of(app, "#limits")
        tight = app.rate_limits.tightest(NOW)
        assert tight is not None
        assert "tightest: " in panel and f"{tight[2] * 100:.0f}%" in panel
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape", "q")
        await pilot.pause()
    assert app.return_code == 0


async def test_hourly_toggle_sums_to_todays_cost(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press("t")
        await pilot.pause()
        spark = app.screen.query_one("#spark")
        assert len(spark.data) == 24
        assert sum(spark.data) == pytest.approx(app.view["today"]["cost_usd"])
        assert "$/hour" in text_of(app, "#spark-title")


async def test_no_color_is_respected(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        assert app.no_color
        assert shown_cost(app) == fmt.money(expected(app)["cost_usd"])
        svg = app.export_screenshot()
    colours = {c.lower() for c in re.findall(r"fill: (#[0-9a-fA-F]{6})", svg)}

    def grey(c: str) -> bool:  # the export's own text colour (#c5c8c6) is a grey within a few steps
        r, g, b = (int(c[i:i + 2], 16) for i in (1, 3, 5))
        return max(r, g, b) - min(r, g, b) <= 8

    assert len(colours) > 3 and all(grey(c) for c in colours)  # monochrome: every fill is a shade of grey


@pytest.mark.parametrize("done_before_mount", [False, True])
async def test_warm_start_begun_before_the_ui_shows_the_ledger_numbers(tmp_path: Path, done_before_mount: bool,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from tokentop.cli import start_early
    from tokentop.core import report
    from tokentop.core.engine import Engine
    from tokentop.core.filters import Filter
    from tokentop.core.ledger import Ledger
    from tokentop.core.views import active_block

    cold = make_app(tmp_path / "a")  # writes the demo history
    sources, book, tz = cold.engine.sources, cold.engine.book, cold.engine.cube.tz
    roots = [*sources.claude_roots, sources.data_root / "agents"]

    def engine() -> Engine:
        ledger = Ledger(tmp_path / "ledger.sqlite", roots=roots, internal_project=sources.project_for_internal)
        return Engine(sources, book, tz, ledger=ledger)

    assert start_early(first := engine()) is None  # empty ledger: the UI runs the cold scan (with progress)
    first.reads_by_time = False  # here it stands for a `report`
    first.start()

    def time_index(e: Engine) -> bool:
        assert e.ledger is not None
        with e.ledger.lock:
            return e.ledger.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'calls_ts'").fetchone() is not None

    assert not time_index(first)  # a first ingest leaves it for the first query by time
    second = engine()
    assert second.ledger is not None
    index_built_in: list[str] = []  # threads that built the time index

    def traced(sql: str) -> None:
        if sql.startswith("CREATE INDEX") and "calls_ts" in sql:
            index_built_in.append(threading.current_thread().name)

    second.ledger.db.set_trace_callback(traced)
    second.first_view_for = ("7d", 15, lambda: NOW)  # as `tokentop` asks: its child makes the first view too
    warming = start_early(second)
    assert warming is not None
    made_here: list[Filter] = []  # the views this process made (not the child)
    dashboard = second.dashboard
    monkeypatch.setattr(second, "dashboard", lambda flt, **kw: made_here.append(flt) or dashboard(flt, **kw))
    if done_before_mount:  # the usual case: the child's result came while Textual was still importing
        assert second.head_ready.wait(30)
        assert warming.is_alive() and second.restoring  # the rest waits for the first frame (see below)
    app = TokentopApp(second, clock=lambda: NOW, live=False, warming=warming)
    frames: list[str] = []  # what the cost card said at each frame the app put out
    made_by_frame: list[int] = []  # views made here before each frame with the ledger's numbers
    restoring: list[bool] = []  # at each frame with the ledger's numbers: whether the cube was still coming
    display = app._display

    def recorded(screen: Any, renderable: Any) -> None:
        if screen.query("#cards"):
            frames.append(str(screen.query_one("#card-cost").render()))
            if app.updated_at is not None:
                made_by_frame.append(len(made_here))
                restoring.append(second.restoring)
        display(screen, renderable)

    app._display = recorded  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        assert app.view["totals"] == expected(app)
        assert app.view["totals"]["calls"] > 0 and app.engine.lines_applied == 0
        # every breakdown as the engine that read the files has it (the child's cells came through whole)
        cold = first.dashboard(app.current_filter(), now=NOW, active_window_minutes=app.active_window_minutes)
        for part in ("totals", "by_day", "by_model", "by_project", "by_source", "sessions", "today", "chips"):
            assert app.view[part] == cold[part], part
        # the view and 5-hour block of its first frame were the child's, equal to those made here
        assert made_by_frame[0] == 0 and app.engine.first_view is None
        assert app.view == dashboard(app.current_filter(), now=NOW, active_window_minutes=15, max_sessions=100)
        assert app.active_block == active_block(second.cube, app.current_filter(), NOW) is not None
        drawn = frames[-1]
        assert "$" in drawn
        # the first frame with the ledger's numbers is drawn from the child's first view, before its cube (10-50 ms
        # of decoding, which would hold the GIL the UI needs for that frame) is restored; the rest follows it
        assert restoring[0] and not restoring[-1] and not second.restoring and second.files_watched() > 0
        if done_before_mount:  # no empty frame first: the very first one has the ledger's numbers
            assert frames[0] == drawn
        assert time_index(second)
        assert threading.main_thread().name not in index_built_in  # by the warm start (its child), not a redraw

        # All time: the unfiltered report, whose groups the child sent (as the ledger's snapshot had them)
        await pilot.press("d", "d")  # 7d -> 30d -> this week
        await pilot.pause()
        grouped: list[int] = []
        group_cells = report.group_cells
        monkeypatch.setattr(report, "group_cells", lambda *a, **kw: grouped.append(1) or group_cells(*a, **kw))
        await pilot.press("d")  # -> all time
        await pilot.pause()
        assert app.current_filter().since is None and app.current_filter().until is None
        cold = first.dashboard(app.current_filter(), now=NOW, active_window_minutes=app.active_window_minutes)
        for part in ("totals", "by_day", "by_model", "by_project", "by_source", "sessions", "chips"):
            assert app.view[part] == cold[part], part
        assert not grouped  # not made again from the cells


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
async def test_the_first_frame_of_a_warm_start_is_laid_out_for_the_screen(tmp_path: Path,
                                                                           size: tuple[int, int]) -> None:
    """The ledger's numbers come before the first layout; the frame that layout draws already shows every panel
    made for the size it got: the sessions table's columns, the rate-limit bars, the cards' texts; and the keys.
    (They were made again on the `Resize` event after that frame: at 80x24 the first frame cut the project column
    to "pro", at 160x48 it drew 3-cell bars, and a second frame corrected them; Textual's footer came later still.)"""
    from textual.widgets import Static
    from tokentop.cli import start_early
    from tokentop.ui.widgets.rate_limits import bar_width

    engine, _, _ = ledger_history(tmp_path)
    engine().start()  # the ingest
    warming = start_early(warm := engine())
    assert warming is not None
    warming.join()  # as usual: the warm start ends while Textual is still importing
    app = TokentopApp(warm, clock=lambda: NOW, live=False, warming=warming)
    frames: list[list[str]] = []  # what the panels showed at each frame the app put out
    display = app._display

    def recorded(screen: Any, renderable: Any) -> None:
        if isinstance(screen, MainScreen) and app.updated_at is not None:
            table = screen.query_one("#sessions", LineTable)
            frames.append([table.render_line(y).text for y in range(min(4, table.row_count + 1))]
                          + [str(screen.query_one(s).render()) for s in ("KeysFooter", "#limits", "#card-tokens",
                                                                         "#card-calls")])
        display(screen, renderable)

    app._display = recorded  # type: ignore[method-assign]
    async with app.run_test(size=size) as pilot:
        await ready(app, pilot)
        header, *_ = frames[0]
        assert re.match(r"\s*(id|session)\s+project\s+", header), header  # the column whole, not "pro"
        bars = re.findall(r"[█░]+", frames[0][-3])
        assert bars and {len(b) for b in bars} == {bar_width(app.screen.query_one("#limits", Static))}
        assert "q quit" in frames[0][-4]  # the footer's keys too
        assert frames[0] == frames[-1]  # nothing redrawn differently once the screen's sizes were known


@pytest.mark.parametrize("seconds", [31, 725, 7_800, 43 * 3600 + 33 * 60, 150 * 3600])
async def test_a_rate_limit_line_fits_the_side_column_at_80_columns_whatever_its_countdown(
        tmp_path: Path, seconds: int) -> None:
    from tokentop.ui.widgets import RateLimitPanel

    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        panel = app.screen.query_one("#limits", RateLimitPanel)
        panel.show({"models": [{"model": "claude-sonnet-4-5-20250929", "stale": False, "buckets": [
            {"kind": kind, "headroom": 0.04, "resets_in_s": seconds} for kind in ("requests", "output_tokens")]}]})
        await pilot.pause()
        lines = str(panel.render()).split("\n")
        assert len(lines) == 2 and max(map(fmt.cells, lines)) <= panel.size.width
        assert panel.size.height == 2  # none wrapped (a countdown of hours, "43h33m", took a line of its own)


async def test_a_tall_screen_draws_its_cost_by_project_without_mounting_it_after_the_data_came(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Mounted by the first redraw that had the data, the side column's table laid the screen out again once its
    # mount ended, for another frame; it is composed with the screen when the screen is tall.
    from textual.widget import Widget

    engine, _, _ = ledger_history(tmp_path)
    engine().start()  # the ingest
    warming = start_early(warm := engine())
    assert warming is not None
    warming.join()
    app = TokentopApp(warm, clock=lambda: NOW, live=False, warming=warming)
    mounted: list[str] = []
    mount = Widget.mount

    def noting(self: Widget, *widgets: Widget, **kw: Any) -> Any:
        if app.updated_at is not None:
            mounted.extend(w.id or type(w).__name__ for w in widgets)
        return mount(self, *widgets, **kw)

    monkeypatch.setattr(Widget, "mount", noting)
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(app, pilot)
        projects = app.screen.query_one("#side-projects", LineTable)
        assert projects.display and projects.row_count == len(app.view["by_project"]) > 0
        assert mounted == []


async def test_calls_kept_only_in_the_ledger_and_a_short_cleanup_period_are_noted_above_the_status_line(
        tmp_path: Path) -> None:
    import json
    import sqlite3

    engine, sources, path = ledger_history(tmp_path)
    engine().start()
    app = TokentopApp(engine(), clock=lambda: NOW, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        assert not app.screen.query("#notice")  # nothing to say: no line for it

    transcript = max(sources.claude_roots[0].rglob("*.jsonl"), key=lambda p: p.stat().st_size)
    with sqlite3.connect(path) as db:
        gone = db.execute("SELECT count(*) FROM calls JOIN paths ON paths.id = path_id WHERE path = ?",
                          (str(transcript),)).fetchone()[0]
    transcript.unlink()  # Claude Code's cleanup at work
    (sources.claude_dirs[0] / "settings.json").write_text(json.dumps({"cleanupPeriodDays": 7}))
    app = TokentopApp(engine(), clock=lambda: NOW, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        assert gone > 0 and app.engine.ledger_only == gone
        notice = " ".join(text_of(app, "#notice").split())  # wrapped to the width
        assert notice == (f"{gone:,} calls kept only in the ledger (their transcripts are gone) · Claude Code "
                          "deletes transcripts after 7 days (cleanupPeriodDays); the ledger keeps their calls")
        status = app.screen.query_one("#status")
        assert app.screen.query_one("#notice").region.bottom == status.region.y  # right above it, whole
        assert app.screen.query_one("#notice").region.height == 3
        assert app.view["totals"]["calls"] == expected(app)["calls"]  # still counted
        app.engine.ledger_behind = True  # a live update found the ledger locked by another tokentop
        app.draw_status()
        assert " ".join(text_of(app, "#notice").split()).startswith(
            "another tokentop keeps the ledger locked: the latest calls are counted here and stored at the next "
            f"change · {gone:,} calls kept only in the ledger")


async def test_top_tasks_of_a_ledger_are_summed_in_a_thread_while_the_screen_keeps_answering_keys(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a warm start the sums by task are the ledger's: read on a thread of their own (a whole 2 GB history
    takes 0.65 s, which froze the screen), the view saying so meanwhile, then `report`'s top tasks. (Over fewer
    calls than `TASKS_READ_HERE`, as here, they are read at once: the test lowers it.)"""
    from tokentop.ui import app as ui

    app, memory = warm_ledger_app(tmp_path, monkeypatch)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        cube = app.engine.cube
        go, asked = threading.Event(), []
        source = cube.task_source
        held_task_reads(cube, go, asked)
        await pilot.press("v", "v")  # sessions -> by project -> top tasks
        await pilot.pause()
        table = app.screen.query_one("#breakdown", LineTable)
        assert app.panel == "tasks" and len(asked) == 1
        assert table.row_count == 0 and table.empty_text == "Summing the ledger's calls by task…"
        await pilot.press("s")  # the keys answer meanwhile (the source: the same sums, tested again)
        await pilot.pause()
        assert "claude code" in text_of(app, "#filterbar") and len(asked) == 1
        go.set()
        assert await shown_tasks(app) == tasks_of(memory, app.current_filter()) != []
        for _ in range(3):  # 7 days -> 30 days -> this week -> all time: each read once, in the thread
            await pilot.press("d")
            assert await shown_tasks(app) == tasks_of(memory, app.current_filter())
        assert len(asked) == 4 and app.current_filter().since is None
        monkeypatch.setattr(ui, "TASKS_READ_HERE", 20_000)  # more calls than the demo has: read at once
        cube.task_source = source
        await pilot.press("d")  # all time -> today
        await pilot.pause()
        assert [(r[0], r[2]) for r in table_rows(app, "#breakdown")] == tasks_of(memory, app.current_filter()) != []
        assert len(asked) == 4  # no thread, no placeholder first


async def test_a_project_detail_sums_its_top_tasks_in_a_thread_too(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    app, memory = warm_ledger_app(tmp_path, monkeypatch)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        go, asked = threading.Event(), []
        held_task_reads(app.engine.cube, go, asked)
        await pilot.press("v")
        await pilot.pause()
        project = app.view["by_project"][0]["project"]
        app.screen.query_one("#breakdown").focus()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ScopeScreen) and app.screen.scope_name == project and len(asked) == 1
        table = app.screen.query_one("#scope-tasks", LineTable)
        assert table.row_count == 0 and table.empty_text == "Summing the ledger's calls by task…"
        go.set()
        want = tasks_of(memory, app.current_filter().with_(project=project))
        assert await shown_tasks(app, "#scope-tasks") == want != []


async def test_top_tasks_of_a_ledger_wait_for_the_end_of_a_cold_scan(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """While the first scan runs (into an empty ledger), the ledger lags the scan's batches: the top-tasks view says
    it waits for the scan's end, reads nothing meanwhile, then shows `report`'s top tasks."""
    from tokentop.ui import app as ui

    monkeypatch.setattr(ui, "TASKS_READ_HERE", 10)
    engine, _, _ = ledger_history(tmp_path)
    memory = every_call(engine)
    cold = engine()  # an empty ledger: the app scans every file, with its progress
    apply, scanned = cold._apply_job, threading.Event()

    def held(job: bytes) -> tuple[int, int]:  # the scan stops after its first batch until the test lets it go on
        done = apply(job)
        scanned.wait(10)
        return done

    cold._apply_job = held  # type: ignore[method-assign]
    go, asked = threading.Event(), []
    held_task_reads(cold.cube, go, asked)
    go.set()
    app = TokentopApp(cold, clock=lambda: NOW, live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        while not app.engine.lines_applied:  # its first batch
            await pilot.pause(0.01)
        assert app.scanning
        await pilot.press("d", "d", "d", "v", "v")  # all time (the first batch's calls are older than 7 days)
        await pilot.pause()
        table = app.screen.query_one("#breakdown", LineTable)
        assert app.view["totals"]["calls"] == app.engine.lines_applied > 10  # calls to sum by task, and more
        assert app.panel == "tasks" and table.row_count == 0 and asked == []
        assert table.empty_text == "Top tasks are summed from the ledger when the scan is done."
        scanned.set()
        assert await shown_tasks(app) == tasks_of(memory, app.current_filter()) != []
        assert len(asked) == 1 and not app.scanning


def ledger_history(tmp_path: Path) -> tuple[Callable[..., Engine], Any, Path]:
    """The demo history; a function that makes an engine over it with the ledger (nothing ingested yet) or, with
    ``ledger=False``, without one; the sources; the ledger's path."""
    demo = make_app(tmp_path / "a")  # writes the demo history
    sources, path = demo.engine.sources, tmp_path / "ledger.sqlite"

    def engine(ledger: bool = True) -> Engine:
        kept = Ledger(path, roots=[*sources.claude_roots, sources.data_root / "agents"],
                      internal_project=sources.project_for_internal) if ledger else None
        return Engine(sources, demo.engine.book, demo.engine.cube.tz, ledger=kept)

    return engine, sources, path


def warm_ledger_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[TokentopApp, Engine]:
    """An app warm-started from a ledger holding the demo history, its sums by task read in a thread over more
    than 100 calls (`TASKS_READ_HERE`: the demo has fewer than the usual 20,000); and an engine with every call in
    memory."""
    from tokentop.ui import app as ui

    monkeypatch.setattr(ui, "TASKS_READ_HERE", 100)
    engine, _, _ = ledger_history(tmp_path)
    memory = every_call(engine)
    engine().start()  # the ingest
    return TokentopApp(engine(), clock=lambda: NOW, live=False), memory


@pytest.mark.parametrize("warm", [False, True])
async def test_the_side_panel_shows_the_active_5_hour_block_of_every_call(tmp_path: Path, warm: bool,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from tokentop.core.blocks import blocks_report
    from tokentop.core.pricing import normalize_model

    if warm:  # its calls read from the ledger
        app, memory = warm_ledger_app(tmp_path, monkeypatch)
    else:
        app = make_app(tmp_path)
        memory = None
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        calls = list((memory or app.engine).cube.calls())
        expected = blocks_report([c for c in calls if c.ts >= NOW - 24 * 3600], NOW)["active"]  # the last day
        assert expected is not None and expected["calls"] > 1
        assert app.active_block == expected
        assert f"Block 5h {fmt.money(expected['cost_usd'])}" in text_of(app, "#limits")

        read: list[Any] = []  # single calls read (from the ledger, when warm) after the first frame
        cube_calls = app.engine.cube.calls
        monkeypatch.setattr(app.engine.cube, "calls", lambda *a, **kw: read.append(a) or cube_calls(*a, **kw))
        solo = app.view["chips"][0]["model"]
        await pilot.press("exclamation_mark")  # solo model 1: its own block, tested from the day's calls already read
        await pilot.pause()
        assert app.models == (solo,)
        mine = [c for c in calls if c.ts >= NOW - 24 * 3600 and normalize_model(c.model) == normalize_model(solo)]
        assert app.active_block == blocks_report(mine, NOW)["active"] != expected
        assert not read


def every_call(engine: Callable[..., Engine]) -> Engine:
    """An engine with every call in memory (no ledger): the numbers to expect."""
    memory = engine(ledger=False)
    memory.scan(workers=1)
    return memory


async def test_a_short_cleanup_period_without_a_ledger_warns_that_calls_drop_out(tmp_path: Path) -> None:
    import json

    root = tmp_path / "a"
    make_app(root)  # writes the demo history
    settings = next(root.rglob("projects")).parent / "settings.json"
    settings.write_text(json.dumps({"cleanupPeriodDays": 3}))
    app = make_app(root)  # no ledger
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(app, pilot)
        assert text_of(app, "#notice") == ("Claude Code deletes transcripts after 3 days (cleanupPeriodDays), and with "
                                           "--no-ledger their calls drop out of these totals")


@pytest.mark.parametrize("breakage", ["newer tokentop", "writes fail"])
async def test_a_ledger_error_ends_the_app_with_its_message(tmp_path: Path, capsys, breakage: str) -> None:
    import sqlite3

    from tokentop.core.engine import Engine
    from tokentop.core.ledger import Ledger, LedgerError

    demo = make_app(tmp_path / "a")  # writes the demo history
    sources = demo.engine.sources
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path, roots=[*sources.claude_roots, sources.data_root / "agents"],
                    internal_project=sources.project_for_internal)
    engine = Engine(sources, demo.engine.book, demo.engine.cube.tz, ledger=ledger)
    app = TokentopApp(engine, clock=lambda: NOW, live=False)
    # a redraw reading the ledger may meet the error first (run_test raises it again then), or the scan thread
    with contextlib.suppress(LedgerError):
        async with app.run_test(size=(80, 24)) as pilot:
            await ready(app, pilot)
            assert app.view["totals"]["calls"] > 0
            other = sqlite3.connect(path, isolation_level=None)
            if breakage == "newer tokentop":  # upgrades it meanwhile: reads and writes fail
                other.executescript("BEGIN; ALTER TABLE calls RENAME TO c0; PRAGMA user_version = 99; COMMIT;")
            else:  # only writes fail (as on a full disk): only the scan thread meets the error
                other.execute("CREATE TRIGGER full BEFORE INSERT ON calls "
                              "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
                transcript = next(sources.claude_roots[0].rglob("*.jsonl"))
                with transcript.open("a") as f:
                    f.write(cc_line("msg-written-after-the-start", ts="2026-11-18T11:05:00.000Z") + "\n")
            other.close()
            await pilot.press("r")  # the rescan writes calls
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert not app.is_running  # the app ended (rather than "scanning…" forever)
    assert app.return_code == 1
    advice = {"newer tokentop": "was upgraded by a newer tokentop (schema 99, this one knows 3); run the newer "
                                "tokentop, or this one with --no-ledger",
              "writes fail": "cannot be written (database or disk is full); free some space, or run with "
                             "--no-ledger"}[breakage]
    message = f"tokentop: error: the ledger {path} {advice}"
    printed = capsys.readouterr().err  # what Textual printed as the app ended (wrapped to the terminal's width)
    assert " ".join(printed.split()) == message and "Traceback" not in printed


async def test_v_cycles_views_whose_rows_match_report(tmp_path: Path) -> None:
    from tokentop.core.report import recent_calls, top_tasks

    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        assert not app.screen.query("#breakdown")  # made when first shown
        rep = app.engine.report(app.current_filter(), now=NOW)
        flt = app.current_filter()

        def rows() -> list[list[str]]:
            return [[str(c).strip() for c in table.get_row_at(i)] for i in range(table.row_count)]

        await pilot.press("v")
        await pilot.pause()
        table = app.screen.query_one("#breakdown")
        assert app.panel == "projects" and table.display and not app.screen.query_one("#sessions").display
        assert "By project" in text_of(app, "#filterbar")
        assert [(r[0], r[1], r[3]) for r in rows()] == [
            (p["project"], fmt.count(p["calls"]), fmt.money(p["cost_usd"], p["unpriced_calls"], p["calls"]))
            for p in rep["by_project"]]
        await pilot.press("v")
        await pilot.pause()
        tasks = top_tasks(app.engine.cube, flt)
        assert [(r[0], r[1], r[2]) for r in rows()] == [
            (t["task"], fmt.count(t["calls"]), fmt.money(t["cost_usd"], t["unpriced_calls"], t["calls"]))
            for t in tasks]
        await pilot.press("1")  # every view obeys the filter
        await pilot.pause()
        assert sum(int(r[1].replace(",", "")) for r in rows()) == app.view["totals"]["calls"]
        await pilot.press("0", "v")
        await pilot.pause()
        recent = recent_calls(app.engine.cube, flt)
        assert len(rows()) == len(recent) == 20
        assert [r[4] for r in rows()] == [fmt.money(c["cost_usd"]) for c in recent]
        await pilot.press("v")
        await pilot.pause()
        assert app.panel == "sessions" and not table.display


async def test_breakdown_names_take_the_room_a_wider_table_has() -> None:
    from datetime import timezone

    from textual.app import App, ComposeResult
    from tokentop.ui.widgets.breakdown import BreakdownTable

    name = "summarize:quarterly-report-for-the-board"
    rows = [{"task": name, "calls": 3, "cost_usd": 1.5, "unpriced_calls": 0, "avg_cost_usd": 0.5}]

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield BreakdownTable()

    app = One()
    async with app.run_test(size=(46, 10)) as pilot:  # the columns' widths and no more
        table = app.query_one(BreakdownTable)
        table.show("tasks", rows, 1.5, timezone.utc)
        await pilot.pause()
        assert table.get_row_at(0) == [name[:17], "3", "$1.50", "$0.50"]  # its 18 cells, one a space
        await pilot.resize_terminal(100, 10)
        await pilot.pause()
        assert table.get_row_at(0) == [name, "3", "$1.50", "$0.50"]
        assert table.columns[0].width == len(name) + 1  # as far as the name needs, not the whole room


async def test_a_tall_screen_shows_as_many_recent_calls_as_it_has_rows(tmp_path: Path) -> None:
    from tokentop.core.report import recent_calls
    from tokentop.ui.app import CHROME_ROWS

    app = make_app(tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(app, pilot)
        await pilot.press("v", "v", "v")
        await pilot.pause()
        table = app.screen.query_one("#breakdown", LineTable)
        want = recent_calls(app.engine.cube, app.current_filter(), 48 - CHROME_ROWS)
        assert app.view["totals"]["calls"] > len(want) > 20  # more than report's 20: as many as fit
        assert [table.get_row_at(i)[4] for i in range(table.row_count)] == [fmt.money(c["cost_usd"]) for c in want]
        assert abs(table.row_count + 1 - table.size.height) <= 2  # about a tableful: the header and the rows


async def test_a_tall_screen_shows_the_cost_by_project_under_the_side_panels(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        assert not app.screen.query("#side-projects")  # 24 rows: no room (and nothing made)
        await pilot.resize_terminal(160, 48)
        await pilot.pause()
        side = app.screen.query_one("#side-projects")

        def shown() -> list[tuple[str, str, str]]:
            return [(str(r[0]).strip(), str(r[1]).strip(), str(r[3]).strip())
                    for r in (side.get_row_at(i) for i in range(side.row_count))]

        def expected_rows() -> list[tuple[str, str, str]]:
            rep = app.engine.report(app.current_filter(), now=NOW)
            return [(p["project"], fmt.count(p["calls"]), fmt.money(p["cost_usd"], p["unpriced_calls"], p["calls"]))
                    for p in rep["by_project"]]

        assert side.display and len(shown()) > 1 and shown() == expected_rows()
        assert side.region.y > app.screen.query_one("#budgets").region.bottom  # below the other side panels
        await pilot.press("exclamation_mark")  # solo model 1: it follows the filter
        await pilot.pause()
        assert shown() == expected_rows() and sum(int(r[1]) for r in shown()) == app.view["totals"]["calls"]
        await pilot.press("v")  # the main view shows the projects: not twice
        await pilot.pause()
        assert app.panel == "projects" and not side.display
        main = app.screen.query_one("#breakdown")
        assert main.display and main.parent.id == "main" and main.row_count == len(app.view["by_project"])
        await pilot.press("v")
        await pilot.pause()
        assert side.display and not side.can_focus  # the keys stay with the main view
        side.show("projects", [{**app.view["by_project"][0], "project": "[wip] api"}], 1.0, app.tz)
        assert side.render_line(1).text.startswith("[wip] api ")  # a cell is plain text, not markup
        await pilot.resize_terminal(160, 30)
        await pilot.pause()
        assert not side.display


async def test_the_footer_shows_the_screen_keys_and_a_click_on_one_presses_it(tmp_path: Path) -> None:
    from tokentop.ui.widgets import KeysFooter

    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        footer = app.screen.query_one(KeysFooter)
        shown = [b.description for b in MainScreen.BINDINGS if getattr(b, "show", True) and b.description]
        assert [d for _, _, d, _ in footer.keys] == shown  # the screen's shown keys, in their order
        line = str(footer.render())
        assert line.startswith(" s source  d dates  m mode ") and line.rstrip().endswith("▏^p palette")
        assert len(line) == 80  # the palette's key at the right edge
        await pilot.click(KeysFooter, offset=(line.index("? keys") + 1, 0))
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)  # the click pressed "?"
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("enter")  # a session's detail: its own keys
        await pilot.pause()
        assert isinstance(app.screen, ScopeScreen)
        detail = app.screen.query_one(KeysFooter)
        assert [d for _, _, d, _ in detail.keys] == [b.description for b in ScopeScreen.BINDINGS
                                                     if getattr(b, "show", True) and b.description]


async def test_a_chip_key_that_keeps_the_bars_rows_draws_the_bar_again_without_a_layout(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(app, pilot)
        bar = app.screen.query_one("#chips", ChipBar)
        layouts: list[bool] = []
        refresh = bar.refresh

        def spy(*a: Any, layout: bool = False, **kw: Any) -> Any:
            layouts.append(layout)
            return refresh(*a, layout=layout, **kw)

        def struck() -> list[str]:  # the labels drawn struck through (chips off)
            return [s.text for s in bar.render_line(0) if s.style and s.style.strike]

        assert len(bar.chips) > 1 and struck() == []
        bar.refresh = spy  # type: ignore[method-assign]
        await pilot.press("1")  # model 1 off: the same chips, another state
        await pilot.pause()
        assert struck() == [chip_label(0, app.view["chips"][0], compact=False)] and layouts == [False]
        await pilot.press("0")
        await pilot.pause()
        assert struck() == [] and layouts == [False, False]
        assert bar.labels() == [chip_label(i, c, compact=False) for i, c in enumerate(app.view["chips"])]


async def test_text_that_keeps_its_width_is_redrawn_without_laying_the_screen_out(tmp_path: Path) -> None:
    from textual.widgets import Label
    from tokentop.ui.widgets.base import set_content

    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        label = app.screen.query_one("#spark-labels", Label)  # its width is its text's
        label.update("-")
        layouts: list[bool] = []
        refresh = label.refresh

        def spy(*a: Any, layout: bool = False, **kw: Any) -> Any:
            layouts.append(layout)
            return refresh(*a, layout=layout, **kw)

        label.refresh = spy  # type: ignore[method-assign]
        set_content(label, "max $212 11-19 · 11-01 → 11-27")
        set_content(label, "max $198 11-18 · 11-01 → 11-27")  # the same cells: drawn again in place
        set_content(label, "max $1,212 11-18 · 11-01 → 11-27")  # wider: the row is laid out again
        set_content(label, "max [b]$1,212[/b] 11-18 · 11-01 → 11-2")  # markup: its width is not the text's
        set_content(label, "max [b]$1,212[/b] 11-18 · 11-01 → 11-2")  # unchanged: nothing at all
        await pilot.pause()
        assert layouts == [True, False, True, True]
        assert "max $1,212 11-18" in str(label.render())


async def test_a_label_that_grows_twice_before_its_first_layout_request_is_handled_takes_the_last_width(
        tmp_path: Path) -> None:
    from textual.widgets import Label
    from tokentop.ui.widgets.base import set_content

    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        label = app.screen.query_one("#spark-labels", Label)  # its width is its text's
        set_content(label, "max $5 11-19")  # a request to lay it out, not handled yet (the label has not idled)
        label.parent._clear_arrangement_cache()  # (as mounting a widget does)
        app.screen._refresh_layout()  # a layout meanwhile, for another widget's request (as on a busy machine)
        narrow = label.size.width
        set_content(label, "max $35 11-19")  # a digit more, while the first request is still pending
        await pilot.pause()
        assert label.size.width == narrow + 1  # not the first request's width, "11-19" cut off


async def test_a_filter_key_that_resizes_chips_labels_and_the_scrollbar_lays_out_and_draws_once(
        tmp_path: Path) -> None:
    from tokentop.ui.widgets import SessionsTable

    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        screen, table = app.screen, app.screen.query_one(SessionsTable)
        assert app.preset == "7d"  # (the table's scrollbar has not shown yet: its first showing is laid out once too)
        layouts: list[str] = []
        frames: list[str] = []
        refresh_layout, display = screen._refresh_layout, app._display

        def spy_layout(*a: Any, **kw: Any) -> Any:
            layouts.append(app.preset)
            return refresh_layout(*a, **kw)

        def spy_display(*a: Any, **kw: Any) -> Any:
            frames.append(app.preset)
            return display(*a, **kw)

        screen._refresh_layout = spy_layout  # type: ignore[method-assign]
        app._display = spy_display  # type: ignore[method-assign]
        widths, bars = set(), set()
        for _ in range(4):  # 7d -> 30d -> week -> all time -> today
            await pilot.press("d")
            await pilot.pause(0.1)
            widths.add(tuple(map(fmt.cells, screen.query_one("#chips", ChipBar).labels())))
            bars.add(table.show_vertical_scrollbar)
            if table.show_vertical_scrollbar:  # it measures the rows shown (and the header)
                assert table.vertical_scrollbar.window_virtual_size == table.row_count + 1
        assert len(widths) > 1 and bars == {True, False}  # chips changed widths; the scrollbar came and went
        assert sorted(layouts) == sorted(["30d", "week", "all", "today"])  # one layout for each key
        assert sorted(frames) == sorted(layouts)  # and one frame
        screen._refresh_layout, app._display = refresh_layout, display  # type: ignore[method-assign]


async def press_counting(app: TokentopApp, pilot: Any, keys: str,
                         measure: Callable[[], int]) -> tuple[list[int], list[int], set[int]]:
    """Press ``keys`` one at a time; returns, for each layout and each frame of the screen meanwhile, the number of
    the key that caused it (1 for the first), and what ``measure`` gave before the keys and after each."""
    screen = app.screen
    layouts: list[int] = []
    frames: list[int] = []
    pressed: list[str] = []
    refresh_layout, display = screen._refresh_layout, app._display

    def spy_layout(*a: Any, **kw: Any) -> Any:
        layouts.append(len(pressed))
        return refresh_layout(*a, **kw)

    def spy_display(*a: Any, **kw: Any) -> Any:
        frames.append(len(pressed))
        return display(*a, **kw)

    screen._refresh_layout = spy_layout  # type: ignore[method-assign]
    app._display = spy_display  # type: ignore[method-assign]
    seen = {measure()}
    try:
        for key in keys:
            pressed.append(key)
            await pilot.press(key)
            await pilot.pause(0.1)
            seen.add(measure())
    finally:
        screen._refresh_layout, app._display = refresh_layout, display  # type: ignore[method-assign]
    return layouts, frames, seen


async def test_source_and_mode_keys_that_change_the_side_columns_height_lay_out_and_draw_once(
        tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 20)) as pilot:  # the side column's content overflows it, as many models'
        await ready(app, pilot)  # rate limits do at 80x24
        side = app.screen.query_one("#side")
        # the 5-hour block (Claude Code's) leaves the column and comes back
        layouts, frames, heights = await press_counting(app, pilot, "sssmmm", lambda: side.virtual_size.height)
        assert len(heights) > 1  # the side column's content changed height
        assert len(layouts) >= 4 and sorted(set(layouts)) == layouts  # at most one layout for each key
        assert frames == [1, 2, 3, 4, 5, 6]  # and one frame


async def test_filter_keys_in_a_drill_down_whose_models_table_changes_height_lay_out_and_draw_once(
        tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press(*"ddd")  # all time
        await pilot.pause()
        app.screen.query_one("#sessions").focus()
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert isinstance(app.screen, ScopeScreen)
        models = app.screen.query_one("#scope-models", LineTable)
        # the session's models table loses rows and gets them back
        layouts, frames, heights = await press_counting(app, pilot, "sssmmm", lambda: models.outer_size.height)
        assert len(heights) > 1
        assert layouts == frames == [1, 2, 3, 4, 5, 6]  # one layout and one frame for each key


async def test_a_filter_key_in_the_recent_calls_view_draws_once_with_its_scrollbar_right(tmp_path: Path) -> None:
    from tokentop.ui.widgets.breakdown import BreakdownTable

    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        screen = app.screen
        await pilot.press(*"vvv", *"12340")  # recent calls; the scrollbar gone and back (Textual sizes it once)
        await pilot.pause(0.1)
        table = screen.query_one("#breakdown", BreakdownTable)
        assert app.panel == "recent"
        frames: list[str] = []
        display = app._display
        pressed = ""

        def spy_display(*a: Any, **kw: Any) -> Any:
            frames.append(pressed)
            return display(*a, **kw)

        app._display = spy_display  # type: ignore[method-assign]
        bars = set()
        for i, key in enumerate("ms12340"):  # cloud, claude code; every model off, one by one (no row left); all
            pressed = f"{key}{i}"
            await pilot.press(key)
            await pilot.pause(0.1)
            bars.add(table.show_vertical_scrollbar)
            assert table.show_vertical_scrollbar == (table.row_count + 1 > table.size.height)  # + the header
            if table.show_vertical_scrollbar:
                assert table.vertical_scrollbar.window_virtual_size == table.row_count + 1
        assert bars == {True, False}  # the scrollbar came and went
        # one frame for each key that changed the screen (claude code has three models: "4" changes nothing)
        assert frames == [f"{k}{i}" for i, k in enumerate("ms12340") if k != "4"]
        app._display = display  # type: ignore[method-assign]


async def test_the_sessions_table_moves_scrolls_and_opens_from_keys_and_clicks(tmp_path: Path) -> None:
    from tokentop.ui.widgets import SessionsTable

    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        table = app.screen.query_one(SessionsTable)
        table.focus()
        await pilot.press("d", "d", "d")  # 7d -> 30d -> week -> all time: every session
        await pilot.pause()
        sessions = app.view["sessions"]
        n = len(sessions)
        assert table.row_count == n > table.size.height  # more rows than fit: it scrolls
        # ... up and down only: the columns fit beside the vertical scrollbar (no horizontal one takes a row)
        assert table.show_vertical_scrollbar and not table.show_horizontal_scrollbar
        assert sum(c.width for c in table.columns) == table.scrollable_content_region.width
        assert [r[1] for r in table_rows(app, "#sessions")] == [  # the UUID's head; an internal id's tail
            s["session"][-4:] if s["source"] == "internal" else s["session"][:4] for s in sessions]
        await pilot.press("down", "down")
        assert table.cursor_row == 2
        await pilot.press("end")
        assert table.cursor_row == n - 1 and table.scroll_offset.y > 0  # the last row is on screen
        rendered = [str(table.render_line(y).text) for y in range(table.size.height)]
        assert rendered[0].split()[:2] == ["id", "project"]  # the header stays on top
        assert any(table.get_row_at(n - 1)[1] in line for line in rendered)
        await pilot.press("home", "pagedown")
        assert 0 < table.cursor_row < n - 1
        await pilot.press("home")
        assert table.cursor_row == 0 and table.scroll_offset.y == 0
        await pilot.click(SessionsTable, offset=(4, 3))  # the third row (under the header)
        assert table.cursor_row == 2 and isinstance(app.screen, MainScreen)
        await pilot.click(SessionsTable, offset=(4, 3))  # again: open it
        await pilot.pause()
        assert not isinstance(app.screen, MainScreen)
        assert_scope_matches_report(app, "session", sessions[2]["session"])


def test_a_model_list_names_what_fits_then_counts_the_rest() -> None:
    from tokentop.ui.widgets.sessions import models_text

    assert models_text(["Sonnet 4.5", "Haiku 4.5"], 30) == "Sonnet 4.5, Haiku 4.5"
    assert models_text(["Sonnet 4.5", "Haiku 4.5", "Opus 4.5"], 24) == "Sonnet 4.5, Haiku 4.5 +1"
    assert models_text(["qwen2.5-7b-instruct", "Haiku 4.5"], 12) == "qwen2.5-7b-instruct +1"  # cut by its cell
    assert models_text([], 10) == ""


async def test_a_wider_terminal_redraws_the_table_and_chips_for_the_room(tmp_path: Path) -> None:
    from tokentop.ui.widgets import SessionsTable
    from tokentop.ui.widgets.sessions import models_text

    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        table = app.screen.query_one(SessionsTable)
        assert [c.key for c in table.columns][:4] == ["dot", "session", "project", "model"]
        assert app.screen.query_one("#chips", ChipBar).families() == []
        await pilot.resize_terminal(200, 50)
        await pilot.pause()
        assert [c.key for c in table.columns][:5] == ["dot", "session", "project", "source", "model"]
        assert "tokens" in [c.key for c in table.columns]
        assert app.screen.query_one("#chips", ChipBar).families()[:1] == ["Opus"]
        # a 200-column table names every model of a session that fits, then how many more
        at = [c.key for c in table.columns].index("model")
        shown = {table.keys[i]: table.get_row_at(i)[at] for i in range(table.row_count)}
        names = {(s["source"], s["session"]): [display_name(m) for m in s["models"]] for s in app.view["sessions"]}
        assert any(len(names[k]) == 3 and v == ", ".join(names[k]) for k, v in shown.items())
        assert all(v == models_text(names[k], table.columns[at].width - 1) for k, v in shown.items())
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert "source" not in [c.key for c in table.columns]


@pytest.mark.parametrize("cost", [0.0, 0.06, 0.4])  # a redraw's own cost; 60 ms: a whole huge history's
async def test_live_changes_are_drawn_as_they_come_and_a_burst_at_most_four_times_a_second(tmp_path: Path,
                                                                                           cost: float) -> None:
    """... and after a costly redraw, no sooner than ten times its cost, and no later than 2 s."""
    import asyncio
    import time

    from tokentop.ui.app import LIVE_REDRAW_COST_FACTOR, LIVE_REDRAW_INTERVAL, LIVE_REDRAW_MAX_INTERVAL

    app = make_app(tmp_path, live=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        drawn: list[float] = []
        draw = app.refresh_view

        def counted() -> None:
            drawn.append(time.monotonic())
            time.sleep(cost)
            draw()

        app.refresh_view = counted  # type: ignore[method-assign]
        before = expected(app)["calls"]
        transcript = tmp_path / "claude" / "projects" / "-home-dev-src-live" / "live.jsonl"
        transcript.parent.mkdir(parents=True)

        async def shown(calls: int) -> None:  # until the cards show that many calls, as `report` counts them
            t0 = time.monotonic()
            while time.monotonic() - t0 < 20:
                if app.view["totals"]["calls"] == calls and app._live_timer is None:  # no redraw due
                    break
                await asyncio.sleep(0.02)
            assert app.view["totals"] == expected(app) and expected(app)["calls"] == calls
            assert shown_cost(app) == fmt.money(expected(app)["cost_usd"])

        with transcript.open("a") as f:  # the watcher is up shortly after the data is drawn
            await asyncio.sleep(1.0)
            f.write(cc_line("live-0", ts="2026-11-18T10:00:00.000Z", cwd="/home/dev/src/live") + "\n")
            f.flush()
            await shown(before + 1)
            first = len(drawn)
            for i in range(1, 31):  # a burst: a line every 20 ms for 0.6 s
                f.write(cc_line(f"live-{i}", ts="2026-11-18T10:00:01.000Z", cwd="/home/dev/src/live") + "\n")
                f.flush()
                await asyncio.sleep(0.02)
            await shown(before + 31)
        assert first >= 1
        burst = drawn[first - 1:]
        assert len(burst) >= 2  # the change before it, then the burst: at most one redraw per interval
        interval = min(LIVE_REDRAW_MAX_INTERVAL, max(LIVE_REDRAW_INTERVAL, LIVE_REDRAW_COST_FACTOR * cost))
        gaps = [b - a for a, b in zip(burst, burst[1:], strict=False)]
        assert all(gap >= interval - 0.01 for gap in gaps)
        if cost * LIVE_REDRAW_COST_FACTOR > LIVE_REDRAW_MAX_INTERVAL:  # 4 s uncapped: drawn well before that
            assert all(gap < LIVE_REDRAW_MAX_INTERVAL + 1.0 for gap in gaps)


async def test_views_of_single_calls_are_read_again_at_most_every_few_seconds_while_calls_arrive(
        tmp_path: Path, monkeypatch) -> None:
    import asyncio
    import time

    import tokentop.ui.app as ui
    from tokentop.core.report import recent_calls

    reads: list[float] = []

    def counted(*a: Any, **kw: Any) -> Any:
        reads.append(time.monotonic())
        return recent_calls(*a, **kw)

    monkeypatch.setattr(ui, "recent_calls", counted)
    app = make_app(tmp_path, live=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press("v", "v", "v")  # sessions -> projects -> tasks -> recent calls
        await pilot.pause()
        assert app.panel == "recent" and len(reads) == 1  # a key reads them at once
        before = expected(app)["calls"]
        transcript = tmp_path / "claude" / "projects" / "-home-dev-src-live" / "live.jsonl"
        transcript.parent.mkdir(parents=True)
        await asyncio.sleep(1.0)  # the watcher is up
        start = time.monotonic()
        with transcript.open("a") as f:
            for i in range(40):  # a line every 25 ms for a second
                f.write(cc_line(f"live-{i}", ts=f"2026-11-18T11:00:{i:02d}.000Z", cwd="/home/dev/src/live") + "\n")
                f.flush()
                await asyncio.sleep(0.025)
        during = [t for t in reads if t >= start]
        assert len(during) <= 2  # not once per redraw
        t0 = time.monotonic()  # once calls stop, the 1 s tick reads them again when the interval has passed

        def caught_up() -> bool:
            return app.single_calls.version == app.engine.cube.version and expected(app)["calls"] == before + 40

        while not caught_up() and time.monotonic() - t0 < ui.SINGLE_CALLS_INTERVAL + 3:
            await asyncio.sleep(0.05)
        assert caught_up()
        assert app.single_calls.value == recent_calls(app.engine.cube, app.current_filter())
        assert app.single_calls.value[0]["time"].startswith("2026-11-18T11:00:39")
        assert table_rows(app, "#breakdown")[0][0] == "11-18 11:00"


async def test_names_with_brackets_show_as_written_not_as_markup(tmp_path: Path) -> None:
    from tokentop.core.engine import Engine, Sources
    from tokentop.core.filters import parse_tz
    from tokentop.core.pricing import PriceBook

    from tests.builders import project_dir, write_lines

    cwd = "/home/dev/src/[wip]api"  # a project, a model and a session whose names read as markup tags
    write_lines(project_dir(tmp_path / "claude", cwd) / "a.jsonl",
                [cc_line("m1", cwd=cwd, session="[s]-1"), cc_line("m2", cwd=cwd, session="[s]-1", model="[b]x")])
    engine = Engine(Sources([tmp_path / "claude"], tmp_path / "data", "app"), PriceBook(), parse_tz("UTC"))
    app = TokentopApp(engine, live=False, clock=lambda: datetime.fromisoformat("2026-11-20T12:00:00+00:00").timestamp())
    async with app.run_test(size=(120, 30)) as pilot:
        await ready(app, pilot)
        assert app.screen.query_one(ChipBar).labels() == ["1 Sonnet 4.5 100%", "2 [b]x 0%"]
        await pilot.press("p")
        await pilot.pause()
        assert isinstance(app.screen, ProjectPicker)
        options = app.screen.query_one("#picker-list")
        assert "[wip]api" in options.render_line(1).text
        await pilot.press("w", "i", "p", "enter")
        await pilot.pause()
        assert app.project == "[wip]api" and "project [wip]api ·" in text_of(app, "#filterbar")
        app.screen.query_one("#sessions").focus()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ScopeScreen)
        assert "session [s]-1 · project [wip]api" in text_of(app, "#scope-title")


async def test_an_empty_table_says_where_tokentop_looked_or_how_to_widen_the_filter(tmp_path: Path) -> None:
    from tokentop.core.engine import Engine, Sources
    from tokentop.core.filters import parse_tz
    from tokentop.core.pricing import PriceBook
    from tokentop.ui.widgets import SessionsTable

    def said(app: TokentopApp, table_id: str = "#sessions") -> str:
        table = app.screen.query_one(table_id, LineTable)
        return " ".join(table.render_line(y).text.strip() for y in range(1, table.size.height)).strip()

    nothing = Engine(Sources([tmp_path / "claude"], tmp_path / "data", None), PriceBook(), parse_tz("UTC"))
    app = TokentopApp(nothing, live=False, clock=lambda: NOW)
    async with app.run_test(size=(120, 30)) as pilot:  # a first run, or --claude-dir pointing elsewhere
        await ready(app, pilot)
        assert said(app).startswith("No Claude Code transcripts or app logs found yet in")  # wrapped to the width
        text = app.screen.query_one(SessionsTable).empty_text
        assert str(tmp_path / "claude" / "projects") in text and str(tmp_path / "data" / "agents") in text
    app = make_app(tmp_path / "demo")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        assert app.view["sessions"] and "No sessions" not in said(app)  # rows, no text
        await pilot.press("d", "d", "d", "d", *["left_square_bracket"] * 60)  # a day long before the history
        await pilot.pause()
        assert app.view["sessions"] == [] and said(app).startswith("No sessions under this filter: d changes")
        for rows in ("projects", "tasks", "calls"):  # the other views say it too
            await pilot.press("v")
            await pilot.pause()
            assert said(app, "#breakdown").startswith(f"No {rows} under this filter: d changes")


async def test_the_once_a_second_tick_after_the_last_screen_is_gone_does_nothing(tmp_path: Path) -> None:
    """The 1 s timer can fire once more while the app closes, after its screens are popped (it failed a CI run
    with "No screens on stack"): the tick then has nothing to draw and must not raise."""
    app = make_app(tmp_path, live=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
    assert not app.screen_stack
    app.tick()


async def test_a_card_shows_the_longest_of_its_texts_that_fits_its_width() -> None:
    """At 80 columns the calls card is 25 cells wide: "cloud 59,072 · local 1,023" was cut after "local"."""
    from textual.app import App, ComposeResult
    from tokentop.ui.widgets.cards import Card, calls_choices

    class OneCard(App[None]):
        CSS = "Card { width: 25; height: 4; border: round red; padding: 0 0 0 1; }"

        def compose(self) -> ComposeResult:
            yield Card()

    app = OneCard()
    async with app.run_test(size=(60, 6)) as pilot:
        card = app.query_one(Card)
        card.show(*(f"[b]60,095[/b]\n{line}" for line in calls_choices(59_072, 1_023)))
        await pilot.pause()
        assert str(card.render()).splitlines() == ["60,095", "cloud 59.1K local 1.0K"]  # 22 cells: the room
        card.styles.width = 28
        await pilot.pause()
        assert str(card.render()).splitlines()[1] == "cloud 59.1K · local 1,023"
        card.styles.width = 40
        await pilot.pause()
        assert str(card.render()).splitlines()[1] == "cloud 59,072 · local 1,023"
        card.styles.width = 10  # nothing fits: the shortest
        await pilot.pause()
        assert str(card.render()).splitlines()[1] == "59.1K + 1.0K local"


async def test_the_cards_at_80_columns_show_every_number_of_a_large_history(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        view = dict(app.view)
        view["totals"] = {**view["totals"], "calls": 193_000, "cloud_calls": 192_119, "local_calls": 881,
                          "input_tokens": 46_000_000, "output_tokens": 243_000_000,
                          "cache_creation_tokens": 378_000_000, "cache_read_tokens": 24_900_000_000,
                          "unpriced_calls": 1_234}
        view["today"] = {**view["today"], "calls": 1_440, "unpriced_calls": 12}
        view["projection"] = {**view["projection"], "today_usd": 512.3, "week_usd": 3_456.7, "month_usd": 14_944.2}
        app.screen.query_one("#cards").update_view(view)
        await pilot.pause()
        for name in ("cost", "tokens", "calls", "today"):
            card = app.screen.query_one(f"#card-{name}")
            lines = str(card.render()).splitlines()
            assert all(fmt.cells(line) <= card.content_size.width for line in lines), (name, lines)
        assert text_of(app, "#card-calls").splitlines()[1] == "cloud 192K · local 881"
        assert text_of(app, "#card-tokens").splitlines() == ["in 46.0M out 243M", "write 378M read 24.9B"]
        assert text_of(app, "#card-cost").splitlines()[1] == "1.2K unpriced"  # 13 cells: "+1,234 unpriced" is 15
        assert text_of(app, "#card-today").splitlines()[1] == "12 unpriced"
        await pilot.press("enter")  # a session's detail: the projection card, 16 cells wide at 80 columns
        await pilot.pause()
        assert isinstance(app.screen, ScopeScreen)
        app.screen.query_one("#cards").update_view(view)
        await pilot.pause()
        card = app.screen.query_one("#card-projected")
        assert str(card.render()).splitlines() == ["d ~$512", "w ~$3,457", "m ~$14,944"]
        assert card.content_size.width < fmt.cells("month ~$14,944")  # the long labels did not fit


def test_chips_that_do_not_fit_in_a_row_wrap_onto_as_few_rows_as_fit() -> None:
    from tokentop.ui.widgets.chips import rows_for

    assert rows_for([10, 10, 10], 32) == (3, 1)  # 10 + 1 + 10 + 1 + 10
    assert rows_for([10, 10, 10], 31) == (2, 2)
    assert rows_for([20, 5, 20, 5], 26) == (2, 2)  # columns as wide as their widest: 20 + 1 + 5
    assert rows_for([20, 5, 5, 20], 32) == (3, 2)  # 20 + 1 + 5 + 1 + 5 (the last row: 20 under 20)
    assert rows_for([20, 5, 5, 20], 31) == (1, 4)  # two columns would be 20 + 1 + 20
    assert rows_for([30], 10) == (1, 1)


async def test_seven_model_chips_at_80_columns_wrap_and_every_chip_shows_its_share() -> None:
    from textual.app import App, ComposeResult
    from tokentop.ui.widgets.chips import ChipBar

    names = ["Opus 4.5", "Opus 4.1", "Sonnet 4.5", "Sonnet 4", "Haiku 4.5", "Haiku 3.5", "qwen2.5-7b-instruct"]
    chips = [{"model": n, "name": n, "family": n.split()[0] if " " in n else "Local", "share": 0.14,
              "selected": True} for n in names]

    class Bar(App[None]):
        CSS_PATH = str(Path(__file__).parents[2] / "app" / "tokentop" / "ui" / "tokentop.tcss")

        def compose(self) -> ComposeResult:
            yield ChipBar(id="chips")

    app = Bar()
    async with app.run_test(size=(80, 10)) as pilot:
        bar = app.query_one(ChipBar)
        bar.show(chips, False)
        await pilot.pause()

        def shown() -> list[str]:
            return bar.labels()

        def drawn() -> list[str]:
            return [bar.render_line(y).text for y in range(bar.outer_size.height)]

        assert bar.outer_size.height == 2
        assert all(any(f" {label} " in line for line in drawn()) for label in shown())  # none cut off
        assert shown()[0] == "1 Opus 4.5 14%" and shown()[-1] == "7 qwen2.5-7b-i… local"
        bar.show(chips[:2], False, hold=True)  # a source or mode key that leaves two models: they fit one row,
        await pilot.pause()  # but the bar keeps its height (else the screen is laid out twice: two frames)
        assert bar.outer_size.height == 2 and shown() == ["1 Opus 4.5 14%", "2 Opus 4.1 14%"]
        assert len({bar.chip_offset(i).y for i in range(2)}) == 1 and drawn()[1].strip() == ""
        bar.show(chips, False)
        await pilot.pause()
        assert bar.outer_size.height == 2 and len(shown()) == 7
        bar.show(chips[:2], False)  # other dates with two models: one row, no blank one kept
        await pilot.pause()
        assert bar.outer_size.height == 1
        bar.show(chips, False)
        await pilot.pause()
        await pilot.resize_terminal(120, 10)
        await pilot.pause()
        assert bar.outer_size.height == 2  # wrapped: no family labels, but whole names from 110 columns on
        assert shown()[-1] == "7 qwen2.5-7b-instruct local"
        assert bar.families() == []
        await pilot.resize_terminal(200, 10)
        await pilot.pause()
        assert bar.outer_size.height == 1  # one row again, with family labels and the full names
        assert shown()[-1] == "7 qwen2.5-7b-instruct local"
        assert "Opus" in bar.families()
        bar.show([{**c, "selected": False} for c in chips], True)  # every chip off: the hint, in the first row
        await pilot.pause()
        await pilot.resize_terminal(80, 10)
        await pilot.pause()
        assert bar.outer_size.height == 3 and drawn()[0].startswith("no models selected — 0 shows all ")
        assert len(shown()) == 7 and all(any(f" {label} " in line for line in drawn()) for label in shown())


async def test_the_status_line_at_80_columns_keeps_the_unparsable_count_and_the_time(tmp_path: Path) -> None:
    from textual.content import Content

    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        status = app.screen.query_one("#status")
        assert " calls shown · 0 unparsable · updated " in text_of(app, "#status")  # the demo's line fits
        app.engine.warnings["unparsable_lines"] += 12_345  # a large history with damaged lines
        app.engine.files_watched = lambda: 5_308  # type: ignore[method-assign]
        app.view["totals"] = {**app.view["totals"], "calls": 192_977}
        app.draw_status()
        await pilot.pause()
        text = text_of(app, "#status")
        full = Content.from_markup(status.choices[0]).cell_length
        assert fmt.cells(text) <= status.content_size.width < full  # the whole line did not fit
        assert "12,345 unparsable" in text and re.search(r" · \d\d:\d\d:\d\d$", text)  # (without "updated")
        assert "192,977 calls · " in text


async def test_the_filter_bar_at_80_columns_keeps_the_time_zone_and_the_internal_counts(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        bar = app.screen.query_one("#filterbar")
        await pilot.press("d", "left_square_bracket")  # 30 days, shifted back: its dates are shown
        await pilot.pause()
        text = text_of(app, "#filterbar")
        assert re.search(r" · \d\d-\d\d → \d\d-\d\d · ", text) and text.endswith(" · UTC")  # this year's: no year
        assert fmt.cells(text) <= bar.content_size.width < fmt.cells(app.filter_text(app.current_filter(), NOW))
        await pilot.press("right_square_bracket", "s", "s")  # back to the last 30 days; the internal source
        await pilot.pause()
        t = app.view["totals"]
        text = text_of(app, "#filterbar")
        assert text.startswith("internal · last 30d") and f"api {t['cloud_calls']:,}" in text
        assert text.rstrip().endswith(f"local {t['local_calls']:,}") and " UTC " in text


@pytest.mark.parametrize(("size", "width_class"), [((80, 24), "-compact"), ((160, 48), "-wide")])
async def test_each_widget_of_a_screen_is_styled_once_when_it_first_shows(tmp_path: Path, monkeypatch, size,
                                                                          width_class) -> None:
    # Textual styles a screen's widgets when they are mounted, then again when the screen first shows, and again
    # when its breakpoint class is set at its first resize: three passes where one does (a third of the work
    # before the first frame at the start, more on an enter). Both dashboards take one, and look as before
    # (the snapshot tests).
    from textual.css.stylesheet import Stylesheet

    styled: list[Any] = []
    apply = Stylesheet.apply

    def noting(self: Stylesheet, node: Any, *args: Any, **kw: Any) -> None:
        styled.append(node)
        apply(self, node, *args, **kw)

    monkeypatch.setattr(Stylesheet, "apply", noting)
    app = make_app(tmp_path)
    async with app.run_test(size=size) as pilot:
        await loaded(app, pilot)
        widgets = list(app.screen.query("*"))
        assert len(widgets) > 15 and app.screen.has_class(width_class)
        # (but for what changes state after mounting: the table that takes the focus)
        assert {type(w).__name__ for w in widgets if styled.count(w) != 1} <= {"SessionsTable"}
        assert sum(styled.count(w) == 1 for w in widgets) >= len(widgets) - 2
        app.screen.query_one("#sessions").focus()
        await pilot.pause()
        styled.clear()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ScopeScreen) and app.screen.has_class(width_class)
        widgets = list(app.screen.query("*"))
        assert len(widgets) > 10
        assert {type(w).__name__ for w in widgets if styled.count(w) != 1} <= {"BreakdownTable"}  # (its focus)
        assert sum(styled.count(w) == 1 for w in widgets) >= len(widgets) - 1


def counting_css_parses(monkeypatch) -> list[Any]:  # type: ignore[no-untyped-def]
    """Where each CSS source Textual parses from here on was read from (its stylesheet module's `parse`)."""
    import textual.css.stylesheet as stylesheet_module

    parsed: list[Any] = []
    parse = stylesheet_module.parse

    def noting(scope: str, css: str, read_from: Any, **kw: Any) -> Any:
        parsed.append(read_from)
        return parse(scope, css, read_from, **kw)

    monkeypatch.setattr(stylesheet_module, "parse", noting)
    return parsed


async def test_the_parsed_css_is_kept_so_the_next_start_parses_none_and_looks_the_same(tmp_path: Path,
                                                                                    monkeypatch) -> None:
    from tokentop.ui.css_cache import CssCache

    parsed = counting_css_parses(monkeypatch)
    cache = tmp_path / "cache" / "textual-css.pickle"
    shots = []
    for run in range(2):
        app = demo_app(tmp_path / f"run{run}", NOW, css_cache=CssCache(cache))
        async with app.run_test(size=(80, 24)) as pilot:
            await loaded(app, pilot)
            shots.append((app.export_screenshot(), text_of(app, "#card-cost")))
            if run == 0:
                assert any(path.endswith("tokentop.tcss") for path, _ in parsed)  # ours, and Textual's widgets'
            else:
                assert parsed == []  # every source came from the file
        if run == 0:
            assert cache.exists() and len(set(parsed)) > 5
            parsed.clear()
    assert shots[1] == shots[0] and "$" in shots[0][1]


async def test_a_damaged_or_foreign_css_cache_is_parsed_anew_and_rewritten(tmp_path: Path, monkeypatch) -> None:
    from textual.css.stylesheet import Stylesheet
    from tokentop.ui.css_cache import CssCache

    parsed = counting_css_parses(monkeypatch)
    cache = tmp_path / "textual-css.pickle"
    cache.write_bytes(b"\x80\x05not a pickle at all")
    app = demo_app(tmp_path / "demo", NOW, css_cache=CssCache(cache))
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(app, pilot)
        assert parsed and app.view["totals"]["calls"] > 0
        app.save_css()  # as the timer does after the first frame
        variables = app.stylesheet._variables
    fresh = Stylesheet(variables=variables)
    assert CssCache(cache).load(fresh) == len(parsed) > 5  # rewritten whole: an entry per parse
    other_theme = Stylesheet(variables={**variables, "primary": "#123456"})
    assert CssCache(cache).load(other_theme) == 0  # made with other variables: parsed as usual
    assert len(other_theme._parse_cache) == 0


async def test_the_css_cache_keeps_only_this_apps_sources_so_it_never_grows(tmp_path: Path) -> None:
    import pickle

    from tokentop.ui.css_cache import CssCache

    cache = tmp_path / "textual-css.pickle"

    def entries() -> dict[Any, Any]:
        return pickle.loads(pickle.loads(cache.read_bytes())[1])

    async def run(name: str) -> TokentopApp:
        app = demo_app(tmp_path / name, NOW, css_cache=CssCache(cache))
        async with app.run_test(size=(80, 24)) as pilot:
            await loaded(app, pilot)
        return app

    await run("one")
    first = entries()
    assert len(first) > 5
    # what another install (its paths) and CSS changed since (an upgrade) leave in the file
    (css, where, *rest), rules = next(iter(first.items()))
    foreign = {("Foo { width: 1; }", ("/elsewhere/tokentop.tcss", ""), *rest): rules,
               ("Bar { width: 2; }", where, *rest): rules}
    fingerprint = pickle.loads(cache.read_bytes())[0]
    cache.write_bytes(pickle.dumps((fingerprint, pickle.dumps({**first, **foreign}))))
    app = await run("two")
    assert foreign.keys() <= set(app.stylesheet._parse_cache.keys())  # loaded, as the file had them
    assert entries().keys() == first.keys()  # written back without them


async def test_keys_pressed_before_a_forked_warm_start_is_whole_are_drawn_once_it_is(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The first frame shows the child's first view while the rest of its result (the cube) still comes: a key
    # pressed meanwhile must not draw the empty cube (zeros), but its filter once the cube is in.
    from tokentop.cli import start_early
    from tokentop.ui import app as ui

    monkeypatch.setattr(ui, "FIRST_DRAWN_DELAY", 1.0)  # (the window a key falls into, made wide)
    engine, _, _ = ledger_history(tmp_path)
    engine().start()  # the ingest
    warm = engine()
    warm.first_view_for = ("7d", 15, lambda: NOW)
    warming = start_early(warm)
    assert warming is not None and warm.head_ready.wait(30)
    app = TokentopApp(warm, clock=lambda: NOW, live=False, warming=warming)
    costs: list[str] = []  # the cost card at each frame with the ledger's numbers
    display = app._display

    def recorded(screen: Any, renderable: Any) -> None:
        if screen.query("#cards") and app.updated_at is not None:
            costs.append(shown_cost(app))
        display(screen, renderable)

    app._display = recorded  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert warm.restoring and costs and costs[-1] == fmt.money(app.view["totals"]["cost_usd"])
        first = app.view
        await pilot.press("m")  # all -> cloud, while the cube is still coming
        await pilot.pause()
        assert warm.restoring and app.view is first and app.mode == "cloud"  # not drawn from the empty cube
        await ready(app, pilot)
        assert not warm.restoring and app.mode == "cloud"
        assert app.view["totals"] == expected(app) and app.view["totals"]["calls"] > 0
        assert shown_cost(app) == fmt.money(expected(app)["cost_usd"])
    assert "$0.00" not in costs  # no frame showed the empty cube
