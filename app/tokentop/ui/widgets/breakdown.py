"""The other lower-left views (`v` cycles): cost by project, top tasks, recent calls — the same rows as `report`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from ...core import fmt
from ...core.views import display_name

VIEWS = ("sessions", "projects", "tasks", "recent")
TITLES = {"projects": "By project", "tasks": "Top tasks", "recent": "Recent calls"}


class BreakdownTable(DataTable):
    """By project, top tasks or recent calls (cell padding 0: widths include one space)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(cursor_type="row", cell_padding=0, **kw)
        self.kind = ""

    def _set_columns(self, kind: str, columns: list[tuple[str, int, bool]]) -> None:
        if kind != self.kind:
            self.clear(columns=True)
            for label, width, right in columns:
                self.add_column(Text(label.rjust(width - 1) + " " if right else label, no_wrap=True, end=""),
                                key=label, width=width)
            self.kind = kind
        else:
            self.clear()
        self._widths = columns

    def _row(self, values: list[str]) -> list[Text]:
        """The cells, cut to their columns, numbers right-aligned; plain text (a string cell is markup: a task or
        project named ``[wip] …`` lost its bracket)."""
        out = []
        for v, (_, width, right) in zip(values, self._widths, strict=True):
            out.append(Text(v.rjust(width - 1)[: width - 1] + " " if right else v[: width - 1], no_wrap=True, end=""))
        return out

    def show(self, kind: str, rows: list[dict[str, Any]], total_cost: float, tz: Any) -> None:
        """Fill the table with one view's rows."""
        if kind in ("projects", "models"):  # a scope's split: one row per project or per model
            key = kind[:-1]
            self._set_columns(kind, [(key, 15, False), ("calls", 8, True), ("tokens", 8, True),
                                     ("cost", 9, True), ("share", 7, True)])
            for r in rows:
                tokens = r["input_tokens"] + r["output_tokens"] + r["cache_creation_tokens"] + r["cache_read_tokens"]
                share = f"{r['cost_usd'] / total_cost * 100:.0f}%" if total_cost > 0 else "–"
                name = r["project"] if key == "project" else display_name(r["model"])
                self.add_row(*self._row([name, fmt.count(r["calls"]), fmt.tokens(tokens),
                                         fmt.money(r["cost_usd"], r["unpriced_calls"], r["calls"]), share]))
        elif kind == "tasks":
            self._set_columns(kind, [("task", 18, False), ("calls", 8, True), ("cost", 10, True),
                                     ("avg/call", 10, True)])  # every view fits the 48 columns left at 80x24
            for r in rows:
                avg = fmt.money(r["avg_cost_usd"]) if r["avg_cost_usd"] is not None else "unpriced"
                self.add_row(*self._row([r["task"], fmt.count(r["calls"]),
                                         fmt.money(r["cost_usd"], r["unpriced_calls"], r["calls"]), avg]))
        else:
            self._set_columns(kind, [("time", 12, False), ("model", 11, False), ("project", 9, False),
                                     ("tokens", 7, True), ("cost", 8, True)])
            for r in rows:
                tokens = r["input_tokens"] + r["output_tokens"] + r["cache_creation_tokens"] + r["cache_read_tokens"]
                when = datetime.fromisoformat(r["time"]).astimezone(tz).strftime("%m-%d %H:%M")
                cost = fmt.money(r["cost_usd"]) if r["cost_usd"] is not None else "unpriced"
                self.add_row(*self._row([when, display_name(r["model"]), r["project"], fmt.tokens(tokens), cost]))
