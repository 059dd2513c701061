"""The other lower-left views (`v` cycles): cost by project, top tasks, recent calls — the same rows as `report`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ...core import fmt
from ...core.views import display_name
from .linetable import Column, LineTable

VIEWS = ("sessions", "projects", "tasks", "recent")
TITLES = {"projects": "By project", "tasks": "Top tasks", "recent": "Recent calls"}


class BreakdownTable(LineTable):
    """By project (or by model, in a drill-down), top tasks or recent calls: every view fits the 48 columns left
    at 80x24; wider, the names take the room they need."""

    _shown: tuple[str, list[dict[str, Any]], float, Any] | None = None  # what `show` drew last

    def show(self, kind: str, rows: list[dict[str, Any]], total_cost: float, tz: Any) -> None:
        """Fill the table with one view's rows (the cursor stays on its row number while the view stays)."""
        same_view = self._shown is not None and self._shown[0] == kind
        self._shown = (kind, rows, total_cost, tz)
        values: list[list[str]] = []
        if kind in ("projects", "models"):  # a scope's split: one row per project or per model
            key = kind[:-1]
            columns = [Column(key, key, 15, grow=True), Column("calls", "calls", 8, True),
                       Column("tokens", "tokens", 8, True), Column("cost", "cost", 9, True),
                       Column("share", "share", 7, True)]
            for r in rows:
                tokens = r["input_tokens"] + r["output_tokens"] + r["cache_creation_tokens"] + r["cache_read_tokens"]
                share = f"{r['cost_usd'] / total_cost * 100:.0f}%" if total_cost > 0 else "–"
                name = r["project"] if key == "project" else display_name(r["model"])
                values.append([name, fmt.count(r["calls"]), fmt.tokens(tokens),
                               fmt.money(r["cost_usd"], r["unpriced_calls"], r["calls"]), share])
        elif kind == "tasks":
            columns = [Column("task", "task", 18, grow=True), Column("calls", "calls", 8, True),
                       Column("cost", "cost", 10, True), Column("avg/call", "avg/call", 10, True)]
            for r in rows:
                avg = fmt.money(r["avg_cost_usd"]) if r["avg_cost_usd"] is not None else "unpriced"
                values.append([r["task"], fmt.count(r["calls"]), fmt.money(r["cost_usd"], r["unpriced_calls"],
                                                                           r["calls"]), avg])
        else:
            columns = [Column("time", "time", 12), Column("model", "model", 11, grow=True),
                       Column("project", "project", 9, grow=True),
                       Column("tokens", "tokens", 7, True), Column("cost", "cost", 8, True)]
            for r in rows:
                tokens = r["input_tokens"] + r["output_tokens"] + r["cache_creation_tokens"] + r["cache_read_tokens"]
                when = datetime.fromisoformat(r["time"]).astimezone(tz).strftime("%m-%d %H:%M")
                cost = fmt.money(r["cost_usd"]) if r["cost_usd"] is not None else "unpriced"
                values.append([when, display_name(r["model"]), r["project"], fmt.tokens(tokens), cost])
        self.set_rows(columns, self.fit(columns, values), self.cursor_row if same_view else 0)

    def resized(self) -> None:
        """Another width: the same rows, their names in the room there is now."""
        if self._shown is not None:
            self.show(*self._shown)
