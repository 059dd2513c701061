"""Budget gauges: green → yellow (alert) → orange → red (> 95 %); nothing at all when no budget is set."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from ...core import fmt
from .base import set_content
from .rate_limits import BarPanel, bar

COLORS = {"green": "green", "yellow": "yellow", "orange": "dark_orange", "red": "bold red"}


class BudgetPanel(BarPanel):
    """One gauge per budget."""

    def show(self, statuses: list[dict[str, Any]], layout: bool = True) -> None:
        """Draw the gauges (hidden when there are none)."""
        self._shown = statuses
        self.display = bool(statuses)
        t = Text()
        width = self.bars()
        for s in statuses:
            name = f"{s['scope'][:8]} {s['period'][0]}"  # "all d", "webshop m"
            t.append(f"{name:<10} ", style="bold")
            t.append(bar(min(1.0, s["percent"] / 100), width), style=COLORS[s["level"]])
            t.append(f" {s['percent']:3.0f}% of {fmt.money(s['amount'])}\n")
        t.rstrip()
        set_content(self, t, layout=layout)
