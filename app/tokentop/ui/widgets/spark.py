"""Cost per day over the range (or per hour today) as a Textual Sparkline, with first/last/max labels."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, Sparkline

from ...core import fmt
from .base import FlatLabel, LaidOutOnce, set_content


class _Sparkline(LaidOutOnce, Sparkline):
    pass


class SparkRow(LaidOutOnce, Horizontal):
    """``$/day ▁▂▅█▃  max $212 on 11-19 · 11-01 → 11-27``."""

    def compose(self) -> ComposeResult:
        yield FlatLabel("$/day", id="spark-title")
        yield _Sparkline([], id="spark")
        yield FlatLabel("", id="spark-labels")

    def show(self, series: list[tuple[str, float]], hourly: bool) -> None:
        """Draw a series of (label, cost)."""
        set_content(self.query_one("#spark-title", Label), "$/hour" if hourly else "$/day", layout=False)
        values = [v for _, v in series]
        self.query_one("#spark", Sparkline).data = values or [0.0]
        if not series:
            set_content(self.query_one("#spark-labels", Label), "no data in range")
            return
        i = max(range(len(values)), key=values.__getitem__)
        peak = series[i][0] if hourly else series[i][0][5:]
        if hourly:
            span = "today 00 → 23h"
            peak = f"{peak}h"
        else:
            span = f"{series[0][0][5:]} → {series[-1][0][5:]}"
        set_content(self.query_one("#spark-labels", Label), f"max {fmt.money(values[i])} {peak} · {span}")
