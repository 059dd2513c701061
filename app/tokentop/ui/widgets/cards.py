"""The cards row: cost, tokens, calls, today — for the current filter."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from ...core import fmt
from .base import set_content


def cost_text(t: dict[str, Any]) -> str:
    """Cost with "unpriced" when some calls had no price (never a bare $0 for them)."""
    return fmt.money(t["cost_usd"], t["unpriced_calls"], t["calls"])


def projection_text(p: dict[str, Any]) -> str:
    """Spend so far plus the lookback's average per day carried to the end of the day, week and month."""
    return (f"day   ~{fmt.money(p['today_usd'])}\n"
            f"week  ~{fmt.money(p['week_usd'])}\n"
            f"month [b]~{fmt.money(p['month_usd'])}[/b]")


class Cards(Horizontal):
    """Bordered cards fed from the dashboard view model: cost, tokens, calls, today, projected.

    The projection card shows where there is room (the wide main screen, the drill-down screen).
    """

    def compose(self) -> ComposeResult:
        for card_id, title in (("cost", "Cost"), ("tokens", "Tokens"), ("calls", "Calls"), ("today", "Today"),
                               ("projected", "Projected")):
            card = Static(id=f"card-{card_id}", classes="card")
            card.border_title = title
            yield card

    def update_view(self, view: dict[str, Any]) -> None:
        """Show the numbers of one view model."""
        t = view["totals"]
        priced = t["calls"] - t["unpriced_calls"]
        per_call = fmt.money(t["cost_usd"] / priced) + "/call" if priced else "–/call"
        cost = fmt.money(t["cost_usd"], 0, None) if t["unpriced_calls"] < t["calls"] or not t["calls"] else "unpriced"
        extra = f"+{t['unpriced_calls']:,} unpriced" if t["unpriced_calls"] and cost != "unpriced" else per_call
        # each card's size is set by the stylesheet (4 lines, its share of the row): no layout for new numbers
        set_content(self.query_one("#card-cost", Static), f"[b]{cost}[/b]\n{extra}", layout=False)
        set_content(self.query_one("#card-tokens", Static),
                    f"in {fmt.tokens(t['input_tokens'])}  out {fmt.tokens(t['output_tokens'])}\n"
                    f"write {fmt.tokens(t['cache_creation_tokens'])}  read {fmt.tokens(t['cache_read_tokens'])}",
                    layout=False)
        set_content(self.query_one("#card-calls", Static),
                    f"[b]{fmt.count(t['calls'])}[/b]\n{fmt.calls_split(t['cloud_calls'], t['local_calls'])}",
                    layout=False)
        today = view["today"]
        n = today["calls"]
        set_content(self.query_one("#card-today", Static),
                    f"[b]{cost_text(today)}[/b]\n{fmt.count(n)} call{'' if n == 1 else 's'}", layout=False)
        projected = self.query_one("#card-projected", Static)
        projected.border_title = "Projected"
        projected.tooltip = (f"spent so far + {fmt.money(view['projection']['per_day_usd'])}/day "
                             f"(the last {view['projection']['lookback_days']} days' average) for the rest")
        set_content(projected, projection_text(view["projection"]), layout=False)
