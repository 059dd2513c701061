"""Rate-limit headroom: a bar per model and kind, reset countdowns, stale observations greyed."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from ...core import fmt
from ...core.rate_limits import KIND_LABELS
from ...core.views import display_name
from .base import LaidOutOnce, SizedContent, set_content


def bar(frac: float, width: int = 10) -> str:
    """``████░░░░░░``."""
    n = max(0, min(width, round(frac * width)))
    return "█" * n + "░" * (width - n)


def countdown(seconds: float | None) -> str:
    """``0:31``, ``12:05``, ``2h10m``, ``43h``, ``5d``: at most 5 cells, so a bar's line fits the side column at 80
    columns (``43h33m`` wrapped onto a line of its own)."""
    if seconds is None:
        return ""
    s = int(seconds)
    if s >= 100 * 3600:
        return f"{s // 86400}d"
    if s >= 10 * 3600:
        return f"{s // 3600}h"
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 60}:{s % 60:02d}"


def bar_width(panel: Static) -> int:
    """The cells a side panel's bars take: what the panel can spare beside their labels and numbers."""
    return max(3, min(20, panel.size.width - 2 - 25))


class BarPanel(SizedContent, LaidOutOnce, Static):
    """A side panel of bars as wide as it can spare (`bar_width`): `show` draws what it is given; a new width draws
    it again (the same lines: the screen is not laid out again)."""

    _shown: Any = None  # what `show` drew last
    _bars = 0  # the width of its bars

    def bars(self) -> int:
        """The width to draw the bars at now (noted for `resized`)."""
        self._bars = bar_width(self)
        return self._bars

    def resized(self) -> None:
        if self._shown is not None and bar_width(self) != self._bars:
            self.show(self._shown, layout=False)

    def show(self, shown: Any, layout: bool = True) -> None:
        raise NotImplementedError


class RateLimitPanel(BarPanel):
    """Renders the rate-limit view model (``RateLimits.as_json``)."""

    def show(self, view: dict[str, Any], layout: bool = True) -> None:
        """Draw the panel."""
        self._shown = view
        t = Text()
        tight = view.get("tightest")
        if tight:
            t.append("tightest: ", style="dim")
            style = "bold red" if tight["headroom"] < 0.1 else "bold yellow" if tight["headroom"] < 0.3 else "bold"
            t.append(f"{display_name(tight['model'])} {KIND_LABELS[tight['kind']]} {tight['headroom'] * 100:.0f}%\n",
                     style=style)
        models = view.get("models") or []
        width = self.bars()
        if not models:  # the status says where the observations come from
            t.append((view.get("status") or "no observations yet") + "\n", style="dim")
        for m in models:
            name = display_name(m["model"])[:10]
            dim = "dim" if m["stale"] else ""
            for i, b in enumerate(m["buckets"]):
                label = f"{name:<10}" if i == 0 else " " * 10
                h = b["headroom"]
                pct = "  ?" if h is None else f"{h * 100:3.0f}%"
                color = "" if h is None else "red" if h < 0.1 else "yellow" if h < 0.3 else "green"
                t.append(f"{label} {KIND_LABELS[b['kind']]:<3} ", style=dim)
                t.append(bar(h or 0.0, width), style="dim" if m["stale"] else color)
                t.append(f" {pct} {countdown(b['resets_in_s'])}\n", style=dim)
            if m["stale"]:
                t.append(f"{'':<10} stale (> 5 min)\n", style="dim italic")
        if view.get("status") and models:
            t.append(view["status"], style="dim")
        for w in view.get("plan") or []:
            label = {"five_hour": "Plan 5h", "seven_day": "Plan 7d"}[w["window"]]
            used = w["used_percentage"]
            style = "dim" if w["stale"] else "red" if used >= 95 else "yellow" if used >= 80 else "green"
            reset = f" ⟳{fmt.duration(w['resets_in_s'])}" if w["resets_in_s"] is not None else ""
            t.append(f"\n{label:<14}" if t.plain and not t.plain.endswith("\n") else f"{label:<14}", style="bold")
            t.append(bar(min(1.0, used / 100), width), style=style)
            t.append(f" {used:3.0f}%{reset}\n", style="dim" if w["stale"] else "")
        for h in view.get("limit_hits") or []:
            label = {"five_hour": "5h", "seven_day": "7d"}.get(h["window"], "plan")
            t.append(f"{label} limit hit", style="bold red")
            t.append(f" · resets in {fmt.duration(h['resets_at'] - view.get('now', h['resets_at']))}\n")
        block = view.get("block")
        if block:
            t.append("Block 5h ", style="bold")
            t.append(f"{fmt.money(block['cost_usd'])} · {fmt.money(block['usd_per_hour'])}/h\n"
                     f"{'':9}ends {fmt.duration(block['minutes_left'] * 60)} → "
                     f"{fmt.money(block['projected_cost_usd'])}\n")
        t.rstrip()
        set_content(self, t, layout=layout)
