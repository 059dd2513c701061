"""The drill-down screen: one session's or one project's cards, sparkline, model split and top tasks.

Pushed by ``enter`` on a sessions row or a by-project row; ``escape`` goes back. The app's filter (source, dates,
mode, models) still applies, narrowed to the scope, so every number here is `report --json --session/--project`.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.markup import escape
from textual.screen import Screen
from textual.widgets import Static

from ..core.filters import Filter
from .keys import FILTER_BINDINGS, FilterKeys, StyledOnce, breakpoint_class
from .widgets import BreakdownTable, Cards, KeysFooter, SparkRow


class ScopeScreen(FilterKeys, StyledOnce, Screen[None]):
    """Cards, sparkline, model split and top tasks of one session or project."""

    HORIZONTAL_BREAKPOINTS = [(0, "-compact"), (120, "-wide")]

    BINDINGS = [
        Binding("escape", "dismiss(None)", "back"),
        *FILTER_BINDINGS,
        Binding("question_mark", "app.help", "keys"),
        Binding("q", "app.quit", "quit"),
    ]

    def __init__(self, kind: str, name: str, width: int) -> None:
        super().__init__(classes=breakpoint_class(ScopeScreen, width))  # (``width``: the app's)
        self.kind = kind  # "session" or "project"
        self.scope_name = name
        self.view: dict[str, Any] = {}
        self.tasks: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield Static(id="scope-title")
        yield Cards(id="cards")
        yield SparkRow(id="spark-row")
        with Vertical(id="scope-main"):
            yield BreakdownTable(id="scope-models")
            yield BreakdownTable(id="scope-tasks")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.draw()

    def scope_filter(self) -> Filter:
        """The app's filter narrowed to this scope."""
        return self.tapp.current_filter().with_(**{self.kind: self.scope_name})

    def draw(self) -> None:
        """Recompute this scope's view model and show it."""
        a = self.tapp
        now = a.clock()
        flt = self.scope_filter()
        self.view = v = a.engine.dashboard(flt, now=now, active_window_minutes=a.active_window_minutes)

        self.tasks = a.single_calls.get(("scope tasks", flt), a.engine.cube.version, lambda: a.top_tasks(flt),
                                        a.drawing_live, [])
        total = v["totals"]["cost_usd"]
        with self.app.batch_update():
            self.query_one(Cards).update_view(v)
            self.query_one(SparkRow).show(*a.spark_series(flt, v, now))
            models = self.query_one("#scope-models", BreakdownTable)
            models.border_title = "Models"
            models.show("models", v["by_model"], total, a.tz)
            tasks = self.query_one("#scope-tasks", BreakdownTable)
            tasks.border_title = "Top tasks"
            tasks.empty_text = a.tasks_waiting(flt) or ""
            tasks.show("tasks", self.tasks, total, a.tz)
            label = escape(self.scope_name[:8] if self.kind == "session" else self.scope_name)  # names, not markup
            extra = ""
            if self.kind == "session" and v["sessions"]:
                extra = f" · project {escape(v['sessions'][0]['project'])}"
            self.query_one("#scope-title", Static).update(
                f"[b]{self.kind} {label}[/b]{extra} · {a.filter_text(flt, now, scope=True)}")


__all__ = ["ScopeScreen"]
