"""TokentopApp: the main screen, its bindings, the scan and watcher workers, and the current Filter.

No numbers are computed here: every widget shows a part of `Engine.dashboard(filter)`, the same view model
that `report --json` prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeGuard

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.markup import escape
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from ..config import cache_dir
from ..core import internal_log
from ..core.aggregate import TaskRead
from ..core.budgets import Budget
from ..core.budgets import status as budget_status
from ..core.claude_code import DEFAULT_CLEANUP_DAYS, cleanup_period_days
from ..core.engine import Engine
from ..core.errors import TeamError
from ..core.filters import Filter, tz_name
from ..core.ledger import LedgerBusy, LedgerError
from ..core.live import Batch, follow
from ..core.rate_limits import RateLimits, plan_limits_path, rate_limits_path, read_plan_limits, read_rate_limits
from ..core.records import CLAUDE_CODE, INTERNAL, Call
from ..core.report import plan_of, quick_totals, recent_calls, task_scope, top_tasks
from ..core.views import (
    DATE_PRESETS,
    SESSION_ROWS,
    active_block,
    block_key,
    dashboard_filter,
    hourly_cost,
    last_day_calls,
    today_in,
    window_label,
)
from .css_cache import CssCache
from .detail import ScopeScreen
from .keys import FILTER_BINDINGS, FilterKeys, StyledOnce, after, breakpoint_class
from .messages import ScanProgress, UsageChanged
from .screens import HelpScreen, ProjectPicker
from .widgets import (
    BreakdownTable,
    BudgetPanel,
    Cards,
    ChipBar,
    FilterBar,
    KeysFooter,
    RateLimitPanel,
    SessionsTable,
    SparkRow,
    StatusLine,
)
from .widgets.base import Column, Row, set_content
from .widgets.breakdown import TITLES, VIEWS

if TYPE_CHECKING:
    from ..core.team import Syncer
    from ..core.team_engine import TeamEngine


def is_team(engine: Engine) -> TypeGuard[TeamEngine]:
    """Whether ``engine`` is a team view (its module is loaded only then: a local start does not import it)."""
    module = sys.modules.get("tokentop.core.team_engine")
    return module is not None and isinstance(engine, module.TeamEngine)

#: Seconds from the first frame with data to starting the file watcher (off that frame's path).
FOLLOW_DELAY = 0.25
#: Live changes are drawn at most this often (seconds): the first one after a pause at once, those of a burst
#: (parallel agents streaming: a change every 50 ms) together at the end of the interval. A redraw costs ~20 ms.
LIVE_REDRAW_INTERVAL = 0.25
#: A costlier redraw (all time over a 2 GB history: ~130 ms to sum its cells again) waits this many times its cost
#: before the next live one, so that drawing live changes takes at most about a tenth of a core; never more than
#: `LIVE_REDRAW_MAX_INTERVAL` seconds (a one-off costly redraw, a first read from the ledger, leaves live changes
#: undrawn no longer than that).
LIVE_REDRAW_COST_FACTOR = 10
LIVE_REDRAW_MAX_INTERVAL = 2.0
#: Where in tokentop's cache dir the parsed stylesheets are kept (`CssCache`), and seconds after the first frame
#: it is written (when they differ from the file's).
CSS_CACHE_FILE = "textual-css.pickle"
CSS_SAVE_DELAY = 2.0
#: Seconds from drawing a forked warm start's first view to letting the rest of its result be restored: after the
#: first frame is out (a frame is drawn within ~20 ms of its changes; it then takes ~30 ms to render and write).
FIRST_DRAWN_DELAY = 0.1
#: Seconds without live changes before the cells are numbered again for filter keys (`prepare_views`).
PLAN_DELAY = 1.0
SOLO_KEYS = ("exclamation_mark", "at", "number_sign", "dollar_sign", "percent_sign", "circumflex_accent",
             "ampersand", "asterisk", "left_parenthesis")
#: The 5-hour block and the tasks and recent-calls views read single calls (from the ledger after a warm start:
#: ~20 ms for a day of 1,000 calls, ~0.1 s for a week of the 470 MB corpus). While calls keep arriving they are read
#: again at most this often (seconds; the 1 s tick catches up after the last change); a key reads them at once.
SINGLE_CALLS_INTERVAL = 3.0


class SingleCallsView:
    """One view computed from single calls, kept until its key or the data changes; through live changes
    (``throttled``) until `SINGLE_CALLS_INTERVAL` passed since it was computed."""

    def __init__(self) -> None:
        self.key: Any = None
        self.version = -1
        self.at = 0.0  # time.monotonic() when computed
        self.value: Any = None

    def get(self, key: Any, version: int, compute: Callable[[], Any], throttled: bool = False,
            unread: Any = None) -> Any:
        """The view for ``key``; ``unread`` when it cannot be read now (a PostgreSQL ledger's server is away: the
        notice line says so) and none was read for this key before (else that one: shown until it can be read)."""
        if key != self.key or (version != self.version and not (throttled and self.fresh())):
            try:
                value = compute()
            except LedgerBusy:
                return self.value if key == self.key else unread
            self.seed(key, value, version)
        return self.value

    def seed(self, key: Any, value: Any, version: int) -> None:
        """The view for ``key`` over ``version``, computed now (or elsewhere: by a warm start's child)."""
        self.key, self.version, self.at, self.value = key, version, time.monotonic(), value

    def fresh(self) -> bool:
        return time.monotonic() - self.at < SINGLE_CALLS_INTERVAL

    def forget(self) -> None:
        """Computed again when next asked for (what it was computed from came in: `TokentopApp.tasks_ready`)."""
        self.key = None

    def behind(self, version: int) -> bool:
        """Shown, the data changed since, and it may be read again now."""
        return self.key is not None and version != self.version and not self.fresh()


#: Sums by task of fewer calls than this are read on the UI thread (~3 µs a call, ~60 ms at most), of more in a
#: thread of their own (`TokentopApp.tasks_ready`).
TASKS_READ_HERE = 20_000


def side_projects_table() -> BreakdownTable:
    """The cost by project in the side column of a tall screen (`TALL_ROWS`)."""
    table = BreakdownTable(id="side-projects")
    table.can_focus = False  # a summary: the keys stay with the sessions
    table.show_cursor = False
    table.border_title = "By project"
    return table


#: Rows of the main screen around its table (bars, cards, sparkline, chips, status line, keys).
CHROME_ROWS = 10
#: From this many rows the side column (rate limits, budgets) also shows the cost by project below them.
TALL_ROWS = 40


class MainScreen(FilterKeys, StyledOnce, Screen[None]):
    """The dashboard. Its bindings live here so modal screens (picker, help) keep their own keys."""

    HORIZONTAL_BREAKPOINTS = [(0, "-compact"), (120, "-wide")]

    BINDINGS = [
        *[Binding(str(i + 1), f"toggle_chip({i})", "toggle model", show=False) for i in range(9)],
        *[Binding(k, f"solo_chip({i})", "solo model", show=False) for i, k in enumerate(SOLO_KEYS)],
        Binding("left", "chip_focus(-1)", "chip ←", show=False, priority=True),
        Binding("right", "chip_focus(1)", "chip →", show=False, priority=True),
        Binding("space", "toggle_focused", "toggle focused chip", show=False),
        Binding("S", "solo_focused", "solo focused chip", show=False),
        Binding("f", "toggle_family", "family", show=False),
        Binding("0", "reset_models", "all models", show=False),
        Binding("g", "switch_chips", "models → machines → users", show=False),
        *FILTER_BINDINGS,
        Binding("p", "pick_project", "project"),
        Binding("v", "next_view", "view"),
        Binding("r", "rescan", "rescan", show=False),
        Binding("question_mark", "app.help", "keys"),
        Binding("q", "app.quit", "quit"),
    ]

    def compose(self) -> ComposeResult:
        yield FilterBar(id="filterbar")
        yield Cards(id="cards")
        yield SparkRow(id="spark-row")
        yield ChipBar(id="chips", classes="-target")
        if self.tapp.team:
            yield ChipBar(noun="machines", id="machine-chips")
            yield ChipBar(noun="users", id="user-chips")
        with Row(id="main"):
            yield SessionsTable(id="sessions")  # the breakdown views' table is added when first shown
            with Column(id="side"):
                yield RateLimitPanel(id="limits")
                yield BudgetPanel(id="budgets")
                if self.app.size.height >= TALL_ROWS:  # (mounted by the first redraw, it laid the screen out again)
                    yield side_projects_table()
        yield StatusLine(id="status")
        yield KeysFooter()

    #: Whether the last redraw found the screen tall (`TALL_ROWS`): the side column showed the cost by project.
    drawn_tall = False

    def on_mount(self) -> None:
        self.tapp.main_screen_mounted()

    def on_resize(self) -> None:
        """Across `TALL_ROWS` rows the side column gains or loses the cost by project."""
        if self.tapp.updated_at is not None and (self.size.height >= TALL_ROWS) != self.drawn_tall:
            self.tapp.refresh_view()

    # -- chips (the model bar; in team mode also the machine and user bars: `g` moves the keys between them) -----

    BARS = {"models": "#chips", "machines": "#machine-chips", "users": "#user-chips"}
    chip_target = "models"

    def _bar(self) -> ChipBar:
        return self.query_one(self.BARS[self.chip_target], ChipBar)

    def _chip_models(self) -> list[str]:
        return [c["model"] for c in self._bar().chips]

    def _selected(self) -> tuple[str, ...] | None:
        return getattr(self.tapp, self.chip_target)

    def _select(self, selected: set[str] | None, names: list[str]) -> None:
        if self.chip_target == "models":
            self.tapp.set_models(selected, names)
        else:
            self.tapp.set_team_scope(self.chip_target, selected, names)

    def action_switch_chips(self) -> None:
        """Team mode: the chip keys act on the model bar → the machine bar → the user bar."""
        if not self.tapp.team:
            return
        self.chip_target = after(tuple(self.BARS), self.chip_target)
        for target, selector in self.BARS.items():
            self.query_one(selector).set_class(target == self.chip_target, "-target")

    def action_toggle_chip(self, index: int) -> None:
        """Toggle chip N (1-9)."""
        models = self._chip_models()
        if index >= len(models):
            return
        current = self._selected()
        selected = set(models) if current is None else set(current)
        selected ^= {models[index]}
        self._select(selected, models)

    def action_solo_chip(self, index: int) -> None:
        """Show only chip N (again: show all)."""
        models = self._chip_models()
        if index >= len(models):
            return
        solo = (models[index],)
        self._select(None if self._selected() == solo else set(solo), models)

    def action_chip_focus(self, step: int) -> None:
        """Move the chip focus."""
        bar = self._bar()
        if bar.chips:
            bar.focus_index = (bar.focus_index + step) % len(bar.chips)
            self.tapp.refresh_view()

    def action_toggle_focused(self) -> None:
        """Toggle the focused chip."""
        self.action_toggle_chip(self._bar().focus_index)

    def action_solo_focused(self) -> None:
        """Solo the focused chip."""
        self.action_solo_chip(self._bar().focus_index)

    def action_toggle_family(self) -> None:
        """Select or deselect every chip of the focused chip's family."""
        bar = self._bar()
        if not bar.chips:
            return
        family = bar.chips[bar.focus_index]["family"]
        members = {c["model"] for c in bar.chips if c["family"] == family}
        models = self._chip_models()
        current = self._selected()
        selected = set(models) if current is None else set(current)
        selected = selected - members if members <= selected else selected | members
        self._select(selected, models)

    def action_reset_models(self) -> None:
        """All models (or all machines)."""
        self._select(None, [])

    @on(ChipBar.Clicked)
    def chip_clicked(self, event: ChipBar.Clicked) -> None:
        """Click toggles, shift/alt-click solos (on the bar that was clicked)."""
        event.stop()
        while self.BARS[self.chip_target] != f"#{event.bar}":
            self.action_switch_chips()
        self._bar().focus_index = event.index
        (self.action_solo_chip if event.solo else self.action_toggle_chip)(event.index)

    # -- other filters -----------------------------------------------------------------------------------

    def action_next_view(self) -> None:
        """Lower-left view: sessions → by project → top tasks → recent calls."""
        a = self.tapp
        a.panel = after(VIEWS, a.panel)
        a.refresh_view()

    def action_pick_project(self) -> None:
        """Fuzzy picker over canonical project names."""
        a = self.tapp
        projects = sorted({r["project"] for r in a.view.get("by_project", [])} if a.project is None
                          else a.all_projects())

        def picked(name: str | None) -> None:
            a.project = name
            a.refresh_view()

        self.app.push_screen(ProjectPicker(projects, a.project), picked)

    def action_rescan(self) -> None:
        """Read every file again from the start."""
        self.tapp.start_scan(rescan=True)

    @on(SessionsTable.Selected, "#sessions")
    def drill_into_session(self, event: SessionsTable.Selected) -> None:
        """``enter`` on a sessions row opens that session's detail screen."""
        table = event.table
        assert isinstance(table, SessionsTable)
        self.drill(ScopeScreen("session", table.keys[event.row][1], self.app.size.width))  # (source, session)

    @on(BreakdownTable.Selected, "#breakdown")
    def drill_into_project(self, event: BreakdownTable.Selected) -> None:
        """``enter`` on a by-project row opens that project's detail screen."""
        rows = self.tapp.view.get("by_project", [])
        if self.tapp.panel == "projects" and event.row < len(rows):
            self.drill(ScopeScreen("project", rows[event.row]["project"], self.app.size.width))

    def drill(self, scope: ScopeScreen) -> None:
        """Open a detail screen; back here, redraw (its filter keys may have changed the filter)."""
        self.app.push_screen(scope, lambda _: self.tapp.refresh_view())


class TokentopApp(App[None]):
    """Live cost, tokens and rate-limit headroom of Claude Code and your own LLM calls."""

    CSS_PATH = "tokentop.tcss"
    TITLE = "tokentop"
    BINDINGS = [Binding("ctrl+c", "quit", "quit", show=False)]

    def __init__(
        self,
        engine: Engine,
        *,
        active_window_minutes: float = 15,
        budgets: list[Budget] | None = None,
        clock: Callable[[], float] | None = None,
        live: bool = True,
        scan: bool = True,
        on_start: Callable[[TokentopApp], None] | None = None,
        warming: threading.Thread | None = None,
        syncer: Syncer | None = None,
        date_range: str = "7d",
        css_cache: CssCache | None = None,
    ) -> None:
        super().__init__()
        #: Parsed stylesheets kept between runs (`css_cache`): loaded before Textual parses, saved when it parsed more
        self.css_cache = css_cache
        if css_cache is not None:
            css_cache.load(self.stylesheet)
        if date_range not in DATE_PRESETS:
            raise ValueError(f"unknown date range {date_range!r} (one of {', '.join(DATE_PRESETS)})")
        self.syncer = syncer  # pushes the local ledger to the team database (--sync-to)
        self._sync_stop = threading.Event()
        self._sync_wake = threading.Event()
        self._sync_started = False
        self.team = is_team(engine)
        self.machines: tuple[str, ...] | None = None
        self.users: tuple[str, ...] | None = None
        self.warming = warming  # a warm start already running (see cli.start_early)
        self.engine = engine
        self.tz = engine.cube.tz
        self.active_window_minutes = active_window_minutes
        #: Claude Code's cleanupPeriodDays (`notice_text`), read once
        self.cleanup_days = None if self.team else cleanup_period_days(engine.sources.claude_dirs)
        self.budgets = budgets or []
        self.clock = clock or time.time
        self.live = live
        self.scan_on_mount = scan
        self.on_start = on_start
        # The filter, as the keys change it.
        self.source = "all"
        self.models: tuple[str, ...] | None = None
        self.project: str | None = None
        self.mode: str | None = None
        self.preset = date_range  # one of DATE_PRESETS (`d` cycles them)
        self.offset = 0
        self.hourly = False
        self.panel = "sessions"  # or one of the breakdown views (`v`)
        # What is shown.
        self.view: dict[str, Any] = {}
        self.rate_limits = RateLimits()
        self.scanning = False
        self.scan_text = ""
        self.polling = False
        self.updated_at: float | None = None
        self._has_started = False  # see _started
        self._first_view_drawn = False  # see draw_first_view
        self.active_block: dict[str, Any] | None = None
        self._block = SingleCallsView()  # the current 5-hour block
        self._day = SingleCallsView()  # the calls of the last 24 hours it is made of, for any filter
        self.single_calls = SingleCallsView()  # the tasks or recent-calls view, or a drill-down's top tasks
        self._stop = asyncio.Event()
        self._live_drawn = 0.0  # time.monotonic() of the last live redraw
        self._live_interval = LIVE_REDRAW_INTERVAL  # until the next one (see `LIVE_REDRAW_COST_FACTOR`)
        self.drawing_live = False  # in a redraw for live changes (`SingleCallsView` may keep its view)
        self._live_timer: Timer | None = None  # a live redraw due at the end of the interval
        self._plan_timer: Timer | None = None
        #: Date ranges (and sessions) whose sums by task could not be read in a thread (`tasks_ready`)
        self._tasks_unread: set[tuple[float | None, float | None, str | None]] = set()
        #: When a read of each one's sums by task in a thread ended (time.monotonic()), and a read due again
        self._tasks_read_at: dict[tuple[float | None, float | None, str | None], float] = {}
        self._tasks_timer: Timer | None = None

    def get_default_screen(self) -> Screen[Any]:
        # Born with its breakpoint class: set at the first resize instead, it restyles every widget once more.
        return MainScreen(classes=breakpoint_class(MainScreen, self.size.width))

    def on_mount(self) -> None:
        self.call_after_refresh(self._started)  # after a first, empty frame (unless the main screen began it)

    def main_screen_mounted(self) -> None:
        """The main screen's widgets are in: when the warm start ended while Textual was importing (or its first
        view came, see `Engine.head_ready`), its data is drawn now, in the first frame."""
        if self.scan_on_mount and self.warming is not None and (not self.warming.is_alive() or
                                                                self.engine.head_ready.is_set()):
            self._started()

    def _started(self) -> None:
        if self._has_started:
            return
        self._has_started = True
        self.read_rate_limits()
        if self.scan_on_mount and self.warming is not None and not self.warming.is_alive():
            # The warm start ended while Textual was importing: draw its data now (no worker, no empty frame).
            self.warming.join()
            self.warming = None
            self._scan_done()
        elif self.scan_on_mount and self.warming is not None and self.engine.head_ready.is_set():
            self.draw_first_view()  # its first view is in: drawn now, the rest restored after this frame
            self.start_scan()
        else:
            self.refresh_view()
            if self.scan_on_mount:
                self.start_scan()
            elif self.live:
                self.follow_files()
        self.set_interval(1.0, self.tick)
        if self.css_cache is not None:  # (what the first frame parsed; on unmount if the app ends before)
            self.set_timer(CSS_SAVE_DELAY, self.save_css)
        if self.on_start:
            self.on_start(self)

    def draw_first_view(self) -> None:
        """A forked warm start's first view is in, the cube not yet (`Engine.restoring`): draw that view, then
        let the rest be restored (`Engine.first_drawn`), off this frame's path. Unless the view does not fit the
        app's filter and clock, or budgets are shown (read from the cube): then the rest comes at once."""
        self._first_view_drawn = True
        engine = self.engine
        first = engine.first_view
        if engine.restoring and first is not None and not self.budgets and first.fits(
                engine.cube.version, self.current_filter(), self.clock(), self.active_window_minutes):
            self.updated_at = self.clock()
            self.refresh_view()
            # (a timer, not call_after_refresh: called from the main screen's mount, its callback waited for a
            # later refresh, which an idle dashboard never makes)
            self.set_timer(FIRST_DRAWN_DELAY, engine.first_drawn.set)
        else:
            engine.first_drawn.set()

    def save_css(self) -> None:
        """Keep the parsed stylesheets for the next start (once a run: `CssCache.save`)."""
        if self.css_cache is not None:
            self.css_cache.save(self.stylesheet)

    def _sync_changed(self, _state: object) -> None:
        try:
            self.call_from_thread(self.draw_status)
        except RuntimeError:  # the app is closing
            pass

    def on_unmount(self) -> None:
        self.engine.first_drawn.set()  # (a warm start's rest waiting for the first frame: no longer)
        self.save_css()
        self._stop.set()
        self._sync_stop.set()
        self._sync_wake.set()

    # -- the filter --------------------------------------------------------------------------------------

    def current_filter(self) -> Filter:
        """The Filter the keys have set."""
        return dashboard_filter(self.tz, self.preset, self.clock(), self.offset, self.source, self.models,
                                self.project, self.mode)

    def set_models(self, selected: set[str] | None, all_models: list[str]) -> None:
        """Selected models; every chip selected means no model filter (so new models show up)."""
        if selected is None or (all_models and selected >= set(all_models)):
            self.models = None
        else:
            self.models = tuple(sorted(selected))
        self.refresh_view()

    def set_team_scope(self, which: str, selected: set[str] | None, names: list[str]) -> None:
        """Team mode: the machines or users shown (every chip selected means all, so new ones show up)."""
        value = None if selected is None or (names and selected >= set(names)) else tuple(sorted(selected))
        setattr(self, which, value)
        assert is_team(self.engine)
        self.engine.set_scope(None if self.machines is None else frozenset(self.machines),
                              None if self.users is None else frozenset(self.users))
        self.refresh_view()

    def all_projects(self) -> list[str]:
        """Projects under the current filter without the project restriction."""
        flt = self.current_filter().with_(project=None)
        return [r["project"] for r in self.engine.report(flt, now=self.clock())["by_project"]]

    # -- drawing -----------------------------------------------------------------------------------------

    def refresh_view(self) -> None:
        """Recompute the view model of the dashboard that shows (main or drill-down) and hand out its parts."""
        screen = next((s for s in reversed(self.screen_stack) if isinstance(s, (MainScreen, ScopeScreen))), None)
        if isinstance(screen, ScopeScreen):
            screen.draw()  # the main screen is redrawn when it shows again
            return
        if screen is None:
            return
        now = self.clock()
        flt = self.current_filter()
        first, version = self.engine.first_view, self.engine.cube.version  # (made for the first frame: start_early)
        fits = first is not None and first.fits(version, flt, now, self.active_window_minutes)
        if self.engine.restoring:  # the cube comes after the first frame: until then only its first view is drawn
            if not fits:
                return  # (what the keys chose meanwhile is drawn once it is in: `_scan_done`)
        else:
            self.engine.first_view = None
        if fits:
            assert first is not None
            self.view = first.view
            self._block.seed(block_key(flt, now), first.block, version)
        else:
            self.view = self.engine.dashboard(flt, now=now, active_window_minutes=self.active_window_minutes,
                                              max_sessions=SESSION_ROWS)
        v = self.view
        # A 5-hour block is one Claude account's, like its headroom (per machine, see `read_rate_limits`); a team's
        # calls of the last day were read for it on this thread (~0.1 s for 10 machines' day, every 3 s while live)
        self.active_block = None if self.team else self.current_block(flt, now)
        with self.batch_update():
            screen.query_one(Cards).update_view(v)
            screen.query_one(SparkRow).show(*self.spark_series(flt, v, now))
            # under a source or mode filter the bar keeps its height (those keys leave fewer models for a moment)
            screen.query_one("#chips", ChipBar).show(v["chips"], none_selected=self.models == (),
                                                     hold=self.source != "all" or self.mode is not None)
            for which in ("machines", "users") if self.team else ():
                bar = screen.query_one(f"#{which[:-1]}-chips", ChipBar)
                bar.show(v[f"{which[:-1]}_chips"], none_selected=getattr(self, which) == ())
            sessions, found = screen.query_one(SessionsTable), screen.query("#breakdown")
            sessions.display = self.panel == "sessions"
            if sessions.display:
                found.set(display=False)
                sessions.show(v["sessions"], now, self.empty_text())
            else:
                breakdown = found.first(BreakdownTable) if found else BreakdownTable(id="breakdown")  # made when shown
                breakdown.display = True
                rows = self.breakdown_rows(flt)
                breakdown.empty_text = self.empty_text("calls" if self.panel == "recent" else self.panel, flt)
                breakdown.show(self.panel, rows, v["totals"]["cost_usd"], self.tz)
                if not found:
                    screen.query_one("#main").mount(breakdown, after=sessions)
            self.draw_side_projects(screen, v)
            screen.query_one(FilterBar).show(*self.filter_texts(flt, now))  # one line, full width
            screen.query_one(BudgetPanel).show(self.budget_statuses(now))
            self.draw_status()
            self.draw_rate_limits()

    def empty_text(self, rows: str = "sessions", flt: Filter | None = None) -> str:
        """What a table says when it has no ``rows``: where tokentop looked, when it found nothing at all (a first
        run, or a source option that points elsewhere), else how to widen the filter; for top tasks of ``flt``
        while their sums are being read, that."""
        waiting = self.tasks_waiting(flt) if rows == "tasks" and flt is not None else None
        if waiting:
            return waiting
        sources = getattr(self.engine, "sources", None)
        if sources is not None and not self.team and not self.scanning and self.engine.files_watched() == 0:
            places = [str(r) for r in sources.claude_roots]
            if sources.data_root is not None:
                places.append(str(internal_log.agents_dir(sources.data_root)))
            return (f"No Claude Code transcripts or app logs found yet in {' or '.join(places)}; new ones show as "
                    "they are written (tokentop --help: --claude-dir, --data-root).")
        return f"No {rows} under this filter: d changes the dates, 0 shows every model, s every source."

    def draw_side_projects(self, screen: MainScreen, v: dict[str, Any]) -> None:
        """On a tall screen, the cost by project under the rate limits and budgets (where the side column is
        empty otherwise), unless the main view shows it already. Made when first shown."""
        screen.drawn_tall = screen.size.height >= TALL_ROWS
        found = screen.query("#side-projects")
        shown = screen.drawn_tall and self.panel != "projects"
        if not shown:
            found.set(display=False)
            return
        table = found.first(BreakdownTable) if found else side_projects_table()
        table.display = True
        table.show("projects", v["by_project"], v["totals"]["cost_usd"], self.tz)
        if not found:
            screen.query_one("#side").mount(table)

    def current_block(self, flt: Filter, now: float) -> dict[str, Any] | None:
        """The current 5-hour block, from the last day of calls (a chain longer than that is not expected).

        It reads single calls (from the ledger after a warm start): they are read again only when the minute or
        the data changed (at most every `SINGLE_CALLS_INTERVAL`), and a filter key (but the dates) only tests them.
        """
        cube = self.engine.cube

        def day() -> list[Call]:
            return last_day_calls(cube, self.tz, now)

        def compute() -> dict[str, Any] | None:
            with self.engine.lock:  # the day's calls read once a minute (or change), tested for each filter
                return active_block(cube, flt, now, self._day.get(int(now // 60), cube.version, day,
                                                                  self.drawing_live))

        return self._block.get(block_key(flt, now), cube.version, compute, self.drawing_live)

    def spark_series(self, flt: Filter, view: dict[str, Any], now: float) -> tuple[list[tuple[str, float]], bool]:
        """The sparkline's (label, cost) points: per day over the window, or per hour today (``t``)."""
        if not self.hourly:
            return view["daily"], False
        with self.engine.lock:
            hours = hourly_cost(self.engine.cube, flt, today_in(self.tz, now))
        return [(f"{h:02d}", c) for h, c in enumerate(hours)], True

    def breakdown_rows(self, flt: Filter) -> list[dict[str, Any]]:
        """The rows of the current breakdown view: the same functions `report` uses."""
        if self.panel == "projects":
            return self.view["by_project"]
        matching = self.view["totals"]["calls"]  # of this filter: none, nothing to read
        key = self.breakdown_key(flt)

        def compute() -> list[dict[str, Any]]:
            if not matching:
                return []
            if self.panel == "tasks":
                return self.top_tasks(flt)
            with self.engine.lock:
                return recent_calls(self.engine.cube, flt, key[2], matching=matching)

        return self.single_calls.get(key, self.engine.cube.version, compute, self.drawing_live, [])

    def top_tasks(self, flt: Filter) -> list[dict[str, Any]]:
        """The top tasks of ``flt`` for a view: none while their sums are first read in a thread (drawn again when
        they come; the view says they are being summed), or, in a team view, those of the last read meanwhile."""
        cube = self.engine.cube
        ready = self.tasks_ready(flt)
        with self.engine.lock:
            if ready:
                return top_tasks(cube, flt)
            if cube.tasks_may_lag and cube.task_sums_kept(task_scope(flt)) is not None:
                return top_tasks(cube, flt, kept=True)
        return []

    def tasks_ready(self, flt: Filter) -> bool:
        """Whether the top tasks of ``flt`` can be computed without reading the ledger on this thread. Else the
        ledger's sums by task for its dates (and session) are read in a thread (`read_tasks`), and shown when
        they come: a first read over a whole 2 GB history takes 0.65 s, which froze the screen and held up live
        updates. Meanwhile the view says it is summing (`tasks_waiting`); while a scan runs, that they are summed
        when it is done (the ledger lags the scan's batches, which change the cube too often for a read to keep
        up with them)."""
        cube = self.engine.cube
        scope = task_scope(flt)
        with self.engine.lock:
            if cube.task_reader is None or scope in self._tasks_unread or cube.task_sums_current(scope):
                return True
            if self.scanning:
                return False
            if flt.session is not None:  # one session's sums: SQLite skips the other rows (25 ms over 2 GB)
                return True
            every = flt.with_(source="all", models=None, project=None, mode=None)  # what the read sums
            if quick_totals(cube, every)[0]["calls"] < TASKS_READ_HERE:
                return True  # read here: a frame or two, better than a placeholder that flashes
            wait = self._tasks_read_at.get(scope, -SINGLE_CALLS_INTERVAL) + SINGLE_CALLS_INTERVAL - time.monotonic()
            if cube.tasks_may_lag and wait > 0 and cube.task_sums_kept(scope) is not None:
                # a team that keeps changing: the last read's sums are shown, read again at most this often
                if self._tasks_timer is None:
                    self._tasks_timer = self.set_timer(wait, self._read_tasks_again)
                return False
            try:
                started = cube.start_task_read(scope)
            except (LedgerError, TeamError):  # read here after all (the view says what is wrong)
                return True
        if started is not None:
            self.read_tasks(scope, *started)
        return False

    def _read_tasks_again(self) -> None:
        self._tasks_timer = None
        self.single_calls.forget()
        self.refresh_view()

    def tasks_waiting(self, flt: Filter) -> str | None:
        """What the top tasks of ``flt`` wait for, if they wait (`tasks_ready`)."""
        cube = self.engine.cube
        scope = task_scope(flt)
        if scope in cube.tasks_reading:
            return f"Summing the {'team' if self.team else 'ledger'}'s calls by task…"
        if self.scanning and cube.task_reader is not None and not cube.task_sums_current(scope):
            return "Top tasks are summed from the ledger when the scan is done."
        return None

    @work(thread=True, group="tasks", exit_on_error=False)  # see `worker_failed`
    def read_tasks(self, scope: tuple[float | None, float | None, str | None], reading: TaskRead,
                   read: Callable[[], list[tuple[Any, ...]]]) -> None:
        try:
            rows: list[tuple[Any, ...]] | None = read()
        except (LedgerError, TeamError):
            rows = None
        with self.engine.lock:
            self.engine.cube.end_task_read(scope, reading, rows)  # (not kept if the cube changed otherwise)
        with contextlib.suppress(RuntimeError):  # the app is closing
            self.call_from_thread(self._tasks_came, scope, rows is not None)

    def _tasks_came(self, scope: tuple[float | None, float | None, str | None], read: bool) -> None:
        self._tasks_read_at[scope] = time.monotonic()
        if not read:  # (a damaged ledger, say): read on this thread from now on, where the view says what is wrong
            self._tasks_unread.add(scope)
        if self.single_calls.key is not None and self.single_calls.key[0] in ("tasks", "scope tasks"):
            self.single_calls.forget()  # (shown while they were read: computed again)
        self.refresh_view()

    def breakdown_key(self, flt: Filter) -> tuple[str, Filter, int]:
        """What the breakdown view's rows depend on: the view, the filter, and how many recent calls to show (about
        as many as the table has rows, at least `report`'s 20)."""
        return self.panel, flt, max(20, self.screen.size.height - CHROME_ROWS)

    def budget_statuses(self, now: float) -> list[dict[str, Any]]:
        """Every budget's gauge, for the whole history (not the current filter)."""
        if not self.budgets:
            return []
        today = today_in(self.tz, now)
        with self.engine.lock:
            models = {k[2] for k in self.engine.cube.cells}
            return [budget_status(b, self.engine.cube, Filter(tz=self.tz), today, models) for b in self.budgets]

    def filter_text(self, flt: Filter, now: float, scope: bool = False) -> str:
        """The top line: what the numbers are of (``scope``: the drill-down's, which names its scope itself)."""
        return self.filter_texts(flt, now, scope)[0]

    def filter_texts(self, flt: Filter, now: float, scope: bool = False) -> tuple[str, ...]:
        """`filter_text`, then shorter forms of it for a narrow screen (`Fitted`): dates of this year without
        it, no "tokentop" title, the defaults (all projects, cloud+local) left out; the time zone and the
        internal source's api/local counts stay."""
        today = today_in(self.tz, now)
        window = window_label(self.preset, flt.since, flt.until, today)
        short = window.replace(f"{today.year}-", "") if "→" in window else window
        source = {"all": "all sources", CLAUDE_CODE: "claude code", INTERNAL: "internal"}[self.source]
        mode = {None: "cloud+local", "cloud": "cloud", "local": "local"}[self.mode]
        if scope:  # only what narrows the numbers (the line is short)
            shown = [window, tz_name(self.tz)]
            if self.source != "all":
                shown.insert(0, source)
            if self.mode:
                shown.append(mode)
            if self.models is not None:
                shown.append(f"{len(self.models)} model{'s' if len(self.models) != 1 else ''}")
            return (" · ".join(shown),)
        title = "[b]tokentop[/b]" if self.panel == "sessions" else f"[b]{TITLES[self.panel]}[/b]"
        project = f"project {escape(self.project)}" if self.project else "all projects"
        pills = ""
        if self.source == INTERNAL:
            t = self.view.get("totals", {})
            pills = f"  [reverse] api {t.get('cloud_calls', 0):,} [/] [reverse] local {t.get('local_calls', 0):,} [/]"
        titled = self.panel != "sessions"  # (another view's name stays)
        forms = [[title, source, window, project, mode, tz_name(self.tz)],
                 [title, source, short, project, mode, tz_name(self.tz)],
                 [title] * titled + [source, short, project, mode, tz_name(self.tz)],
                 [title] * titled + [source, short] + [project] * bool(self.project) + [mode] * bool(self.mode)
                 + [tz_name(self.tz)]]
        return tuple(" · ".join(form) + pills for form in forms)

    def draw_status(self) -> None:
        """The bottom line: is it live, and can it be trusted."""
        screen = next((s for s in self.screen_stack if isinstance(s, MainScreen)), None)
        if screen is None:
            return
        warnings = self.engine.warnings.as_dict()
        bad = warnings["unparsable_lines"]
        t = self.view.get("totals", {})
        if self.scanning:
            head = f"[yellow]{self.scan_text}[/]"
        elif self.team:
            listening = getattr(self.engine, "listening", False)
            err = getattr(self.engine, "listen_error", "")
            head = ("[green]● live (notify)[/]" if listening else f"[yellow]○ reconnecting {err[:60]}[/]") \
                if self.live else "○ static"
        else:
            head = "[green]● live[/]" if self.live else "○ static"
            if self.polling:
                head += " [yellow](polling: inotify unavailable)[/]"
        if self.syncer is not None:
            st = self.syncer.status
            head += f" · [{'red' if st.state == 'offline' else 'green'}]{escape(st.text())}[/]"
        when = (datetime.fromtimestamp(self.updated_at, self.tz).strftime("%H:%M:%S")
                if self.updated_at else "–")
        warn = f"[red]{bad:,} unparsable[/]" if bad else "0 unparsable"
        files = f"{self.engine.files_watched():,} {'machines' if self.team else 'files'}"
        calls = f"{t.get('calls', 0):,} calls"
        for status in screen.query(StatusLine):  # none while the app is closing
            status.show(f"{head} · {files} · {calls} shown · {warn} · updated {when}",
                        f"{head} · {files} · {calls} · {warn} · {when}", f"{head} · {calls} · {warn} · {when}",
                        f"{head} · {warn} · {when}")
        self.draw_notice(screen)

    def notice_text(self) -> str:
        """What the history shown rests on, when it is worth a line: calls not stored yet (the ledger was locked),
        calls whose transcripts are gone, and a Claude Code that deletes transcripts sooner than its default
        (``cleanupPeriodDays``)."""
        parts = []
        behind = self.engine.ledger_notice()
        if behind:
            parts.append(f"[yellow]{escape(behind)}[/]")
        if self.engine.ledger_only:
            parts.append(f"{self.engine.ledger_only:,} calls kept only in the ledger (their transcripts are gone)")
        days = self.cleanup_days
        if days is not None and days < DEFAULT_CLEANUP_DAYS:
            if self.engine.ledger is not None:
                parts.append(f"Claude Code deletes transcripts after {days} days (cleanupPeriodDays); the ledger "
                             "keeps their calls")
            else:
                parts.append(f"[yellow]Claude Code deletes transcripts after {days} days (cleanupPeriodDays), and "
                             "with --no-ledger their calls drop out of these totals[/]")
        return " · ".join(parts)

    def draw_notice(self, screen: MainScreen) -> None:
        """The notice line above the status line: made when there is first something to say (most users never
        have), hidden when there is nothing."""
        text = self.notice_text()
        found = screen.query("#notice")
        if not found:
            if text:
                screen.mount(Static(text, id="notice"), before=screen.query_one(StatusLine))
            return
        notice = found.first(Static)
        set_content(notice, text)
        notice.display = bool(text)

    def read_rate_limits(self) -> None:
        """Re-read the rate-limit observations."""
        root = self.engine.sources.data_root
        if self.team:  # rate-limit headers are observed per machine, by that machine's app
            self.rate_limits = RateLimits(status="team view: headroom is per machine (run tokentop there)")
            return
        self.rate_limits = read_rate_limits(rate_limits_path(root)) if root else RateLimits(status="no data root")

    def draw_rate_limits(self) -> None:
        """The headroom panel (re-estimated at the current time), measured plan windows, the active block."""
        screen = next((s for s in self.screen_stack if isinstance(s, MainScreen)), None)
        if screen is None:
            return
        now = self.clock()
        view = self.rate_limits.as_json(now)
        root = self.engine.sources.data_root
        view["plan"] = read_plan_limits(plan_limits_path(root), now) if root else []
        view["block"] = self.active_block
        view["now"] = now
        view["limit_hits"] = [h for h in self.engine.limit_hits_json() if h["resets_at"] and h["resets_at"] > now]
        for panel in screen.query(RateLimitPanel):  # none while the app is closing (the 1 s tick may still fire)
            panel.show(view)

    def tick(self) -> None:
        """Once a second: countdowns move while there are fresh observations; the views of single calls catch up
        with the last live changes; nothing else is redrawn."""
        if not self.screen_stack:  # the app is closing (its last screen is gone; the timer may still fire once)
            return
        now = self.clock()
        if self._single_calls_behind():
            self.refresh_view()
        elif any(not o.stale(now) for o in self.rate_limits.observations):
            self.draw_rate_limits()

    def _single_calls_behind(self) -> bool:
        """Whether a view of single calls on screen was kept through live changes and may be read again now."""
        version = self.engine.cube.version
        if isinstance(self.screen, ScopeScreen):  # (the main screen, and its block, are drawn when it shows again)
            shown = ("scope tasks", self.screen.scope_filter())
        elif self._block.behind(version):
            return True
        elif self.panel in ("tasks", "recent"):
            shown = self.breakdown_key(self.current_filter())
        else:
            return False
        return self.single_calls.key == shown and self.single_calls.behind(version)

    # -- workers -----------------------------------------------------------------------------------------

    def start_scan(self, rescan: bool = False) -> None:
        """Run the initial (or a full re-) scan in a thread; panels fill in as batches arrive."""
        self.scanning = True
        self.scan_text = "scanning…"
        self._scan(rescan)

    @work(thread=True, exclusive=True, group="scan", exit_on_error=False)  # see `worker_failed`
    def _scan(self, rescan: bool) -> None:
        start = time.monotonic()
        last = 0.0

        def progress(files: int, total_files: int, done: int, total: int) -> None:
            nonlocal last
            t = time.monotonic()
            if t - last > 0.25 or files == total_files:
                last = t
                self.post_message(ScanProgress(files, total_files, done, total, t - start))

        if rescan:
            self.engine.rescan(progress=progress)
        elif self.warming is not None:
            if not self._first_view_drawn:  # (its first view comes after the first frame: drawn when it does)
                while not self.engine.head_ready.wait(0.05) and self.warming.is_alive():
                    pass  # (a warm start in a thread of this process, or one that failed, sends none)
                self.call_from_thread(self.draw_first_view)
            self.warming.join()
            self.warming = None
        else:
            self.engine.start(progress=progress)
        self.call_from_thread(self._scan_done)  # which draws it

    def _scan_done(self) -> None:
        if self.syncer is not None and not self._sync_started:  # the ledger holds the scan: start pushing it
            self._sync_started = True
            threading.Thread(target=self.syncer.run_forever, args=(self._sync_stop, self._sync_wake),
                             kwargs={"on_change": self._sync_changed}, name="tokentop-sync", daemon=True).start()
        self.scanning = False
        self.updated_at = self.clock()
        self.single_calls.forget()  # (top tasks wait for the scan's end: `tasks_ready`)
        self.set_timer(0.5, self._settle)  # after the first frame, off its path
        self.refresh_view()
        if self.live:  # once the data is on screen: starting the watcher holds the loop (~0.1 s on 1,000 folders;
            self.set_timer(FOLLOW_DELAY, self.follow_files)  # what is written meanwhile, its catch-up reads)

    def _settle(self) -> None:
        """What the scan built lives as long as the app: out of the cycle collector's way (garbage collected
        first, then the rest frozen), so its full passes, every few redraws, stop walking it; on the 470 MB
        corpus they made some filter-key redraws 2-3x slower. (A process that runs many apps, like the test suite,
        keeps each finished app's cycles; the app runs once per process.)"""
        gc.collect()
        gc.freeze()
        self.prepare_views()

    def prepare_views(self) -> None:
        """Number the cells for filtered views (`report.plan_of`), after a redraw rather than on a filter key."""
        with self.engine.lock:
            plan_of(self.engine.cube)

    @on(Worker.StateChanged)
    def worker_failed(self, event: Worker.StateChanged) -> None:
        """The scan or the file watcher failed: the app ends (else it would show stale numbers, or "scanning…",
        for ever). A ledger's error (full disk, a newer tokentop upgraded it, damage) says what to do, as the CLI
        does; anything else is a bug, with its traceback."""
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        if isinstance(error, LedgerError):
            self.exit(return_code=1, message=error.__rich__())
        elif error is not None:
            raise error

    @on(ScanProgress)
    def show_progress(self, event: ScanProgress) -> None:
        """Progress bar in the status line, and the panels filled with what is read so far."""
        frac = event.done_bytes / event.total_bytes if event.total_bytes else 1.0
        eta = event.elapsed / frac - event.elapsed if frac > 0 else 0
        n = int(frac * 20)
        self.scan_text = (f"scanning {'█' * n}{'░' * (20 - n)} {event.files:,}/{event.total_files:,} files · "
                          f"{event.done_bytes / 1e6:,.0f}/{event.total_bytes / 1e6:,.0f} MB · {eta:.0f}s left")
        self.refresh_view()

    @work(exclusive=True, group="watch", exit_on_error=False)  # see `worker_failed`
    async def follow_files(self) -> None:
        """Follow both sources with watchfiles until the app exits; one UsageChanged per batch."""

        def applied(batch: Batch) -> None:
            self.polling = batch.polling
            self.post_message(UsageChanged(batch.calls_read, batch.rate_limits_changed))

        if is_team(self.engine):  # LISTEN/NOTIFY instead of files
            await self.engine.follow(applied, self._stop)
        else:
            await follow(self.engine, applied, self._stop)

    @on(UsageChanged)
    def usage_changed(self, event: UsageChanged) -> None:
        """Redraw from the engine (rate limits re-read when their file changed)."""
        if event.rate_limits_changed:
            self.read_rate_limits()
        self._sync_wake.set()  # the ledger moved: push it
        self.updated_at = self.clock()
        if self._live_timer is not None:  # a burst: its redraw is already due
            return
        wait = self._live_drawn + self._live_interval - time.monotonic()
        if wait > 0:
            self._live_timer = self.set_timer(wait, self._draw_live)
        else:
            self._draw_live()

    def _draw_live(self) -> None:
        self._live_timer = None
        self._live_drawn = start = time.monotonic()
        self.drawing_live = True
        try:
            self.refresh_view()
        finally:
            self.drawing_live = False
        cost = time.monotonic() - start
        self._live_interval = min(LIVE_REDRAW_MAX_INTERVAL, max(LIVE_REDRAW_INTERVAL, LIVE_REDRAW_COST_FACTOR * cost))
        if self._plan_timer is not None:  # numbering the cells again after each change of a burst is wasted
            self._plan_timer.stop()
        self._plan_timer = self.set_timer(PLAN_DELAY, self.prepare_views)

    def action_help(self) -> None:
        """Every key and what it does."""
        lines = [("1-9", "toggle model chip N"), ("shift+1-9 (!@#…)", "solo model chip N"),
                 ("← →", "move chip focus"), ("space / S", "toggle / solo focused chip"),
                 ("f", "toggle the focused chip's family"), ("0", "all models"),
                 ("g", "team mode: the chip keys act on models → machines → users"),
                 ("s", "source: all → claude code → internal"), ("d", "dates: today → 7d → 30d → week → all"),
                 ("[ ]", "shift the date window"), ("p", "pick a project (fuzzy)"),
                 ("m", "mode: all → cloud → local"), ("t", "sparkline $/day ↔ $/hour today"),
                 ("enter / esc", "detail of the session or project row / back"),
                 ("v", "view: sessions → by project → top tasks → recent calls"), ("r", "rescan everything"),
                 ("?", "this help"), ("q", "quit")]
        self.push_screen(HelpScreen(lines))


def run_tui(engine: Engine, *, active_window_minutes: float = 15, budgets: list[Budget] | None = None,
            on_start: Callable[[TokentopApp], None] | None = None, warming: threading.Thread | None = None,
            syncer: Syncer | None = None, date_range: str = "7d") -> int:
    """Run the app until the user quits."""
    app = TokentopApp(engine, active_window_minutes=active_window_minutes, budgets=budgets, on_start=on_start,
                      warming=warming, syncer=syncer, date_range=date_range,
                      css_cache=CssCache(cache_dir() / CSS_CACHE_FILE))
    app.run()
    return app.return_code or 0


__all__ = ["MainScreen", "TokentopApp", "run_tui"]
