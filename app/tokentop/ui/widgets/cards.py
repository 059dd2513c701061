"""The cards row: cost, tokens, calls, today — for the current filter."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal

from ...core import fmt
from .base import Fitted


def cost_text(t: dict[str, Any]) -> str:
    """Cost with "unpriced" when some calls had no price (never a bare $0 for them)."""
    return fmt.money(t["cost_usd"], t["unpriced_calls"], t["calls"])


def projection_text(p: dict[str, Any], short: bool = False) -> str:
    """Spend so far plus the lookback's average per day carried to the end of the day, week and month
    (``short``: labels of one letter, for a narrow card)."""
    day, week, month = ("d ", "w ", "m ") if short else ("day   ", "week  ", "month ")
    return (f"{day}~{fmt.money(p['today_usd'])}\n"
            f"{week}~{fmt.money(p['week_usd'])}\n"
            f"{month}[b]~{fmt.money(p['month_usd'])}[/b]")


class Card(Fitted):
    """A bordered card (see `Fitted`): at 80 columns "cloud 59,072 · local 1,023" becomes "cloud 59.1K · local
    1,023" instead of being cut off after "local"."""


def calls_choices(cloud: int, local: int) -> tuple[str, ...]:
    """The calls card's second line, from exact counts to compact ones (exact below 10,000)."""
    def short(n: int) -> str:
        return fmt.count(n) if n < 10_000 else fmt.tokens(n)

    k = fmt.tokens
    return (fmt.calls_split(cloud, local), f"cloud {short(cloud)} · local {short(local)}",
            f"cloud {k(cloud)} · local {k(local)}", f"cloud {k(cloud)} local {k(local)}",
            f"{k(cloud)} + {k(local)} local")


class Cards(Horizontal):
    """Bordered cards fed from the dashboard view model: cost, tokens, calls, today, projected.

    The projection card shows where there is room (the wide main screen, the drill-down screen).
    """

    def compose(self) -> ComposeResult:
        for card_id, title in (("cost", "Cost"), ("tokens", "Tokens"), ("calls", "Calls"), ("today", "Today"),
                               ("projected", "Projected")):
            card = Card(id=f"card-{card_id}", classes="card")
            card.border_title = title
            yield card

    def update_view(self, view: dict[str, Any]) -> None:
        """Show the numbers of one view model."""
        t = view["totals"]
        priced = t["calls"] - t["unpriced_calls"]
        per_call = fmt.money(t["cost_usd"] / priced) + "/call" if priced else "–/call"
        cost = fmt.money(t["cost_usd"], 0, None) if t["unpriced_calls"] < t["calls"] or not t["calls"] else "unpriced"
        u = t["unpriced_calls"]
        extras = ((f"+{fmt.count(u)} unpriced", f"+{fmt.tokens(u)} unpriced", f"{fmt.tokens(u)} unpriced")
                  if u and cost != "unpriced" else (per_call,))
        self.card("cost").show(*(f"[b]{cost}[/b]\n{extra}" for extra in extras))
        tokens = [fmt.tokens(t[k]) for k in ("input_tokens", "output_tokens", "cache_creation_tokens",
                                             "cache_read_tokens")]
        self.card("tokens").show(*(f"in {tokens[0]}{gap}out {tokens[1]}\n{w}{tokens[2]}{gap}{r}{tokens[3]}"
                                   for gap, w, r in (("  ", "write ", "read "), (" ", "write ", "read "),
                                                     (" ", "w ", "r "))))
        self.card("calls").show(*(f"[b]{fmt.count(t['calls'])}[/b]\n{line}"
                                  for line in calls_choices(t["cloud_calls"], t["local_calls"])))
        today = view["today"]
        n = today["calls"]
        calls = f"{fmt.count(n)} call{'' if n == 1 else 's'}"
        self.card("today").show(f"[b]{cost_text(today)}[/b]\n{calls}", *(  # narrow: the unpriced count instead
            (f"[b]{fmt.money(today['cost_usd'])}[/b]\n{fmt.count(today['unpriced_calls'])} unpriced",)
            if 0 < today["unpriced_calls"] < n else ()))
        projected = self.card("projected")
        projected.border_title = "Projected"
        projected.tooltip = (f"spent so far + {fmt.money(view['projection']['per_day_usd'])}/day "
                             f"(the last {view['projection']['lookback_days']} days' average) for the rest")
        projected.show(projection_text(view["projection"]), projection_text(view["projection"], short=True))

    def card(self, name: str) -> Card:
        return self.query_one(f"#card-{name}", Card)
