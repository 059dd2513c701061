"""Sessions table: newest activity first, a coloured dot for sessions active within the window (a `LineTable`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style

from ...core import fmt
from ...core.views import SESSION_ROWS, display_name
from .linetable import Column, LineTable

#: Table widths from which the columns grow: ``wide`` adds the source and tokens columns and the count of other
#: models; ``roomy`` (a 200-column terminal) widens project and model to name every model a session used.
WIDE, ROOMY = 90, 120


def layout_of(width: int) -> int:
    """0 narrow (a tmux pane), 1 wide, 2 roomy."""
    return 2 if width >= ROOMY else 1 if width >= WIDE else 0


def models_text(names: list[str], width: int) -> str:
    """As many model names as fit in ``width`` cells, then how many more: ``Sonnet 4.5, Haiku 4.5 +1``."""
    for k in range(len(names), 0, -1):
        text = ", ".join(names[:k]) + (f" +{len(names) - k}" if k < len(names) else "")
        if cell_len(text) <= width or k == 1:
            return text
    return ""


def ago(iso: str, now: float) -> str:
    """``2m``, ``3h``, ``4d`` since an ISO timestamp."""
    secs = max(0.0, now - datetime.fromisoformat(iso).timestamp())
    for div, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if secs >= div:
            return f"{int(secs // div)}{unit}"
    return f"{int(secs)}s"


class SessionsTable(LineTable):
    """One row per session (the `SESSION_ROWS` latest); ``enter`` or a click on the highlighted row opens it
    (`LineTable.Selected`: the session is ``keys[row]``)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"sessions--active"}
    DEFAULT_CSS = """
    SessionsTable > .sessions--active { color: $success; text-style: bold; }
    """

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.keys: list[tuple[str, str]] = []  # (source, session) per row
        self.active: list[bool] = []
        self._layout: tuple[int, bool, int] | None = None  # see `_layout_for`
        self._shown: tuple[list[dict[str, Any]], float, str] = ([], 0.0, "")  # what `show` drew last

    # -- data -----------------------------------------------------------------------------------------

    def _columns(self, layout: int, team: bool, room: int) -> list[Column]:
        """The columns of a table ``room`` cells wide (less the scrollbar): at its narrowest (48 cells) beside a
        scrollbar, the project column gives up the cell it takes."""
        wide = layout > 0
        cols = [Column("dot", " ", 2), Column("session", "session" if wide else "id", 9 if wide else 5),
                Column("project", "project", (11, 15, 21)[layout])]
        if team:  # team mode: which machine the session ran on (instead of the source, or the model when narrow)
            cols.append(Column("machine", "machine", 12 if wide else 11))
        elif wide:
            cols.append(Column("source", "source", 12))
        if wide or not team:
            cols.append(Column("model", "model", (11, 19, 34)[layout]))
        for label, key, width in (("calls", "calls", 6), ("tokens", "tokens", 8 if wide else 0),
                                  ("cost", "cost", 9 if wide else 8), ("last", "last", 5)):
            if width:  # numbers are right-aligned with one space after: so are their headers
                cols.append(Column(key, label, width, right=True))
        over = sum(c.width for c in cols) - room
        if over > 0:
            project = next(c for c in cols if c.key == "project")
            project.width = max(4, project.width - over)
        return cols

    def _layout_for(self, rows: int, team: bool) -> tuple[int, bool, int]:
        """(`layout_of` the width, team, the cells left beside the vertical scrollbar ``rows`` may need)."""
        return layout_of(self.size.width), team, self.room(rows)

    def show(self, sessions: list[dict[str, Any]], now: float, empty: str = "") -> None:
        """Replace the rows (the cursor stays on its session, unless it is on the top row: it then follows the
        newest); ``empty``: what the table says when there are none."""
        self.empty_text = empty  # drawn by the refresh at the end
        self._shown = (sessions, now, empty)
        team = bool(sessions) and "machine" in sessions[0]
        key = self._layout_for(min(len(sessions), SESSION_ROWS), team)
        layout = key[0]
        if key != self._layout:
            self.columns = self._columns(*key)
            self._layout = key
        model_width = next((c.width - 1 for c in self.columns if c.key == "model"), 0)
        session_width = next(c.width - 1 for c in self.columns if c.key == "session")
        current = self.keys[self.cursor_row] if 0 < self.cursor_row < len(self.keys) else None
        self.keys, self.active = [], []
        cells = []
        for s in sessions[:SESSION_ROWS]:
            models = s["models"]  # most calls first
            model = display_name(models[0]) if models else ""
            if layout == 2:
                model = models_text([display_name(m) for m in models], model_width)
            elif layout and len(models) > 1:
                model += f" +{len(models) - 1}"
            cost = fmt.money(s["cost_usd"], s["unpriced_calls"], s["calls"])
            if s["cost_usd"] == 0 and s["local_calls"] == s["calls"]:
                cost = "local"
            tokens = s["input_tokens"] + s["output_tokens"] + s["cache_creation_tokens"] + s["cache_read_tokens"]
            values = {"dot": "●" if s["active"] else " ", "project": s["project"], "source": s["source"],
                      "machine": s.get("machine", ""), "model": model, "calls": fmt.count(s["calls"]),
                      "tokens": fmt.tokens(tokens), "cost": cost, "last": ago(s["last_activity"], now),
                      # Claude Code sessions are UUIDs (the head tells them apart); internal ones <date>-<hash>.
                      "session": s["session"][-session_width:] if s["source"] == "internal" else s["session"]}
            self.keys.append((s["source"], s["session"]))
            cells.append([c.cell(values[c.key]) for c in self.columns])
            self.active.append(bool(s["active"]))
        self.set_rows(self.columns, cells, self.keys.index(current) if current in self.keys else 0)

    def resized(self) -> None:
        """When the size changes the columns (across `WIDE` or `ROOMY` columns, or a height that makes the rows
        need a scrollbar or not): the same sessions again."""
        if self._layout is not None and self._layout_for(len(self.cells), self._layout[1]) != self._layout:
            self.show(*self._shown)

    # -- drawing --------------------------------------------------------------------------------------

    def header_segments(self, text: str, style: Style) -> list[Segment]:
        n = self.columns[0].width if self.columns else 0  # the dot's blank column on its own (an SVG export
        return [Segment(text[:n], style + Style(bold=False)), Segment(text[n:], style)]  # keeps it)

    def row_segments(self, row: int, style: Style) -> list[Segment]:
        cells = self.cells[row]  # the dot in its own style, even when blank (an SVG export keeps its column)
        dot = style + self.get_component_rich_style("sessions--active", partial=True)
        return [Segment(cells[0], dot), Segment("".join(cells[1:]), style)]
