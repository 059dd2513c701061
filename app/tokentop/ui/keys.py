"""What both dashboards share (main screen and drill-down): the filter keys (source, dates, mode, $/hour), and
being styled once when they first show."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.binding import Binding

from ..core.records import CLAUDE_CODE, INTERNAL
from ..core.views import DATE_PRESETS

if TYPE_CHECKING:
    from textual import events
    from textual.screen import Screen

    from .app import TokentopApp

SOURCES = ("all", CLAUDE_CODE, INTERNAL)
MODES = (None, "cloud", "local")

FILTER_BINDINGS = [
    Binding("s", "cycle_source", "source"),
    Binding("d", "cycle_dates", "dates"),
    Binding("left_square_bracket", "shift_dates(-1)", "earlier", show=False),
    Binding("right_square_bracket", "shift_dates(1)", "later", show=False),
    Binding("m", "cycle_mode", "mode"),
    Binding("t", "toggle_hourly", "$/hour", show=False),
]


def after(cycle: tuple[Any, ...], current: Any) -> Any:
    """The value after ``current`` in a key's cycle (wrapping around)."""
    return cycle[(cycle.index(current) + 1) % len(cycle)]


class FilterKeys:
    """Actions that change the app's filter and redraw whichever dashboard is showing."""

    @property
    def tapp(self) -> TokentopApp:
        """The app, typed."""
        return self.app  # type: ignore[attr-defined,no-any-return]

    def action_cycle_source(self) -> None:
        """all → claude_code → internal."""
        a = self.tapp
        a.source = after(SOURCES, a.source)
        a.refresh_view()

    def action_cycle_dates(self) -> None:
        """today → 7d → 30d → this week → all."""
        a = self.tapp
        a.preset = after(DATE_PRESETS, a.preset)
        a.offset = 0
        a.refresh_view()

    def action_shift_dates(self, step: int) -> None:
        """Move the window one length back or forward (not past today)."""
        a = self.tapp
        if a.preset != "all":
            a.offset = min(0, a.offset + step)
            a.refresh_view()

    def action_cycle_mode(self) -> None:
        """all → cloud → local."""
        a = self.tapp
        a.mode = after(MODES, a.mode)
        a.refresh_view()

    def action_toggle_hourly(self) -> None:
        """Sparkline: cost per day over the range, or per hour today."""
        self.tapp.hourly = not self.tapp.hourly
        self.tapp.refresh_view()


def breakpoint_class(screen: type[Screen[Any]], width: int) -> str:
    """The class Textual gives a screen of this width (the last of its horizontal breakpoints it reaches). A
    screen made with it is styled once: set at its first resize instead, it restyles every widget again."""
    return max((w, name) for w, name in screen.HORIZONTAL_BREAKPOINTS or () if width >= w)[1]


class StyledOnce:
    """Mixed into a screen (before `Screen`): the first time it shows, its widgets keep the styles they were given
    when mounted a moment before. Textual styles the whole screen again on every resume (its own handler, which
    runs after this one, reads ``refresh_styles``): at the start or on a drill-down, a third of the styling before
    the screen's first frame. Later resumes restyle as usual. (Made with its `breakpoint_class`, the screen is not
    restyled at its first resize either.)"""

    _shown_once = False

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        if not self._shown_once:
            self._shown_once = True
            event.refresh_styles = False
