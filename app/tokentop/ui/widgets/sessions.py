"""Sessions table: newest activity first, a coloured dot for sessions active within the window."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from rich.text import Text
from textual.geometry import Size
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

from ...core import fmt
from ...core.views import display_name


def ago(iso: str, now: float) -> str:
    """``2m``, ``3h``, ``4d`` since an ISO timestamp."""
    secs = max(0.0, now - datetime.fromisoformat(iso).timestamp())
    for div, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if secs >= div:
            return f"{int(secs // div)}{unit}"
    return f"{int(secs)}s"


#: Rows shown: the sessions with the latest activity. Each row costs DataTable ~0.5 ms to add and measure on a
#: redraw (500 rows made a filter key take ~0.3 s); older sessions are reached by filtering (dates, project).
MAX_ROWS = 100


class SessionsTable(DataTable):
    """One row per session (the `MAX_ROWS` latest); ``enter`` filters to it (handled by the app)."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.cell_padding = 0
        self._layout: tuple[bool, bool] | None = None

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        # Every column has a set width and every row is one line, so DataTable's measuring of each new cell (to
        # widen auto-width columns) changes nothing: about a third of a filter key's redraw. Only the table's
        # size is left to set. Should DataTable's internals move, it measures as before.
        try:
            if any(c.auto_width for c in self.columns.values()) or any(r.auto_height or r.label is not None
                                                                        for r in self.rows.values()):
                raise AttributeError
            width = sum(c.get_render_width(self) for c in self.columns.values()) + self._row_label_column_width
            height = self._total_row_height + (self.header_height if self.show_header else 0)
        except AttributeError:
            super()._update_dimensions(new_rows)
            return
        self.virtual_size = Size(width, height)

    def _columns(self, wide: bool, team: bool) -> None:
        # cell_padding is 0 to fit 80 columns: widths include one space of separation.
        self.clear(columns=True)
        self.add_column(" ", key="dot", width=2)
        self.add_column("session" if wide else "id", key="session", width=9 if wide else 5)
        self.add_column("project", key="project", width=15 if wide else 11)
        if team:  # team mode: which machine the session ran on (instead of the source, or the model when narrow)
            self.add_column("machine", key="machine", width=12 if wide else 11)
        elif wide:
            self.add_column("source", key="source", width=12)
        if wide or not team:
            self.add_column("model", key="model", width=19 if wide else 11)
        for label, key, width in (("calls", "calls", 6), ("tokens", "tokens", 8 if wide else 0),
                                  ("cost", "cost", 9 if wide else 8), ("last", "last", 5)):
            if width:  # numbers are right-aligned with one space after: so are their headers
                self.add_column(label.rjust(width - 1) + " ", key=key, width=width)

    def show(self, sessions: list[dict[str, Any]], now: float) -> None:
        """Replace the rows (keeps the cursor on the same session when it is still there)."""
        wide = self.size.width >= 90
        team = bool(sessions) and "machine" in sessions[0]
        if (wide, team) != self._layout:
            self._columns(wide, team)
            self._layout = (wide, team)
        current = None  # the cursor stays on its session, unless it is on the top row (it then follows the newest)
        if self.row_count and 0 < self.cursor_row < self.row_count:
            current = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        self.clear()
        w = {c.key.value: c.width for c in self.columns.values()}

        def right(text: str, key: str) -> str:  # numbers line up; one space of separation on the left
            return text.rjust(w[key] - 1)[: w[key] - 1] + " "

        def left(text: str, key: str) -> str:
            return text[: w[key] - 1]

        for s in sessions[:MAX_ROWS]:
            dot = Text("●", style="bold green") if s["active"] else Text(" ")
            models = s["models"]  # most calls first
            model = display_name(models[0]) if models else ""
            if wide and len(models) > 1:
                model += f" +{len(models) - 1}"
            cost = fmt.money(s["cost_usd"], s["unpriced_calls"], s["calls"])
            if s["cost_usd"] == 0 and s["local_calls"] == s["calls"]:
                cost = "local"
            # Claude Code sessions are UUIDs (the head identifies them); internal ones are <date>-<hash>.
            n = w["session"] - 1
            sid = s["session"][-n:] if s["source"] == "internal" else s["session"][:n]
            row: list[Any] = [dot, sid, left(s["project"], "project")]
            if team:
                row.append(left(s["machine"], "machine"))
            elif wide:
                row.append(left(s["source"], "source"))
            if wide or not team:
                row.append(left(model, "model"))
            row.append(right(fmt.count(s["calls"]), "calls"))
            if wide:
                tokens = s["input_tokens"] + s["output_tokens"] + s["cache_creation_tokens"] + s["cache_read_tokens"]
                row.append(right(fmt.tokens(tokens), "tokens"))
            row += [right(cost, "cost"), right(ago(s["last_activity"], now), "last")]
            # Text, not str: DataTable would parse a str as markup (a project named "[x]" is no style; slow too)
            self.add_row(*[c if isinstance(c, Text) else Text(c, end="") for c in row],
                         key=f"{s['source']}\x1f{s['session']}")
        if current is not None:
            try:
                self.move_cursor(row=self.get_row_index(current))
            except Exception:  # the session left the filter
                pass
