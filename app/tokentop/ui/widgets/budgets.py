"""Budget gauges: green → yellow (alert) → orange → red (> 95 %); nothing at all when no budget is set."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from ...core import fmt
from .base import LaidOutOnce, set_content
from .rate_limits import bar

COLORS = {"green": "green", "yellow": "yellow", "orange": "dark_orange", "red": "bold red"}


class BudgetPanel(LaidOutOnce, Static):
    """One gauge per budget."""

    def show(self, statuses: list[dict[str, Any]]) -> None:
        """Draw the gauges (hidden when there are none)."""
        self.display = bool(statuses)
        t = Text()
        width = max(3, min(20, self.size.width - 2 - 25))
        for s in statuses:
            name = f"{s['scope'][:8]} {s['period'][0]}"  # "all d", "webshop m"
            t.append(f"{name:<10} ", style="bold")
            t.append(bar(min(1.0, s["percent"] / 100), width), style=COLORS[s["level"]])
            t.append(f" {s['percent']:3.0f}% of {fmt.money(s['amount'])}\n")
        t.rstrip()
        set_content(self, t)
