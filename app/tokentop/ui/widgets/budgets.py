"""Budget gauges: green → yellow (alert) → orange → red (> 95 %); nothing at all when no budget is set."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from ...core import fmt
from .base import LaidOutOnce, SizedContent, set_content
from .rate_limits import bar, bar_width

COLORS = {"green": "green", "yellow": "yellow", "orange": "dark_orange", "red": "bold red"}


class BudgetPanel(SizedContent, LaidOutOnce, Static):
    """One gauge per budget."""

    _statuses: list[dict[str, Any]] | None = None
    _bars = 0  # the width of the bars drawn

    def resized(self) -> None:
        """Bars as wide as the panel now allows (the same lines: the screen is not laid out again)."""
        if self._statuses and bar_width(self) != self._bars:
            self.show(self._statuses, layout=False)

    def show(self, statuses: list[dict[str, Any]], layout: bool = True) -> None:
        """Draw the gauges (hidden when there are none)."""
        self._statuses = statuses
        self.display = bool(statuses)
        t = Text()
        width = self._bars = bar_width(self)
        for s in statuses:
            name = f"{s['scope'][:8]} {s['period'][0]}"  # "all d", "webshop m"
            t.append(f"{name:<10} ", style="bold")
            t.append(bar(min(1.0, s["percent"] / 100), width), style=COLORS[s["level"]])
            t.append(f" {s['percent']:3.0f}% of {fmt.money(s['amount'])}\n")
        t.rstrip()
        set_content(self, t, layout=layout)
