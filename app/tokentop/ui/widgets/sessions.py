"""Sessions table: newest activity first, a coloured dot for sessions active within the window.

A line-API widget (Textual's `ScrollView`, as its `Log` is): it keeps each row as plain cells and draws only the
rows on screen, each as one strip. A `DataTable` measured and rendered every cell through Rich, about half of a
filter key's redraw on the 470 MB corpus (~70 of ~150 ms on a 2-core VM).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ...core import fmt
from ...core.views import display_name

#: Rows shown: the sessions with the latest activity (older ones are reached by filtering: dates, project).
MAX_ROWS = 100
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


@dataclass
class Column:
    """One column: its key, header, width in cells (one space of separation included), alignment."""

    key: str
    label: str
    width: int
    right: bool = False


class SessionsTable(ScrollView, can_focus=True):
    """One row per session (the `MAX_ROWS` latest); ``enter`` or a click on the highlighted row opens it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move(-1)", "up", show=False),
        Binding("down", "move(1)", "down", show=False),
        Binding("pageup", "page(-1)", "page up", show=False),
        Binding("pagedown", "page(1)", "page down", show=False),
        Binding("home", "edge(0)", "first", show=False),
        Binding("end", "edge(1)", "last", show=False),
        Binding("enter", "select", "open", show=False),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {"sessions--header", "sessions--cursor", "sessions--active"}
    DEFAULT_CSS = """
    SessionsTable {
        background: $surface;
        color: $foreground;
        & > .sessions--header { text-style: bold; background: $panel; color: $foreground; }
        & > .sessions--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        & > .sessions--active { color: $success; text-style: bold; }
        &:focus {
            background-tint: $foreground 5%;
            & > .sessions--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
        }
    }
    """

    @dataclass
    class Selected(Message):
        """A session was chosen (``enter``, or a click on the highlighted row)."""

        source: str
        session: str

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.columns: list[Column] = []
        self.keys: list[tuple[str, str]] = []  # (source, session) per row
        self.cells: list[list[str]] = []  # each row's cells, as shown
        self.active: list[bool] = []
        self.cursor_row = 0
        self._layout: tuple[int, bool, int] | None = None  # see `_layout_for`
        self._shown: tuple[list[dict[str, Any]], float, str] = ([], 0.0, "")  # what `show` drew last
        self.empty_text = ""  # shown, dim, under the header when there are no rows

    # -- data -----------------------------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        """Rows held."""
        return len(self.cells)

    def get_row_at(self, index: int) -> list[str]:
        """One row's cells as shown, without their padding (the first is the activity dot)."""
        return [c.strip() for c in self.cells[index]]

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
        bar = self.styles.scrollbar_size_vertical if rows + 1 > self.size.height else 0  # + the header
        return layout_of(self.size.width), team, self.size.width - bar

    def show(self, sessions: list[dict[str, Any]], now: float, empty: str = "") -> None:
        """Replace the rows (the cursor stays on its session, unless it is on the top row: it then follows the
        newest); ``empty``: what the table says when there are none."""
        self.empty_text = empty  # drawn by the refresh at the end
        self._shown = (sessions, now, empty)
        team = bool(sessions) and "machine" in sessions[0]
        key = self._layout_for(min(len(sessions), MAX_ROWS), team)
        layout = key[0]
        if key != self._layout:
            self.columns = self._columns(*key)
            self._layout = key
        model_width = next((c.width - 1 for c in self.columns if c.key == "model"), 0)
        current = self.keys[self.cursor_row] if 0 < self.cursor_row < len(self.keys) else None
        self.keys, self.cells, self.active = [], [], []
        for s in sessions[:MAX_ROWS]:
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
                      "session": s["session"]}
            self.keys.append((s["source"], s["session"]))
            self.cells.append([self._cell(c, values[c.key], internal=s["source"] == "internal")
                               for c in self.columns])
            self.active.append(bool(s["active"]))
        self.cursor_row = self.keys.index(current) if current in self.keys else 0
        self.virtual_size = Size(sum(c.width for c in self.columns), len(self.cells) + 1)  # + the header
        # The scrollbars for these rows (shown or not, their thumbs), set before the layout this redraw asks for, so
        # that its frame draws them. Textual sets them after a layout: laying the screen out again when a scrollbar
        # came or went, drawing them again in any case (a second frame, ~30 ms after the first).
        self._scroll_update(self.virtual_size)
        self._scroll_to_cursor()
        self.refresh()

    @staticmethod
    def _cell(col: Column, text: str, internal: bool = False) -> str:
        """The text in its column: cut to the width less one space, numbers right-aligned."""
        n = col.width - 1
        if col.key == "session":
            text = text[-n:] if internal else text[:n]
        text = set_cell_size(text, n)  # pads or cuts, in terminal cells
        if col.right:
            text = text.rstrip().rjust(n)
        return text + " "

    def _size_updated(self, size: Size, virtual_size: Size, container_size: Size, layout: bool = True) -> bool:
        """A layout placed the table: the scrollbars are set again only when its size changed (`show` set them for
        its rows)."""
        if size == self._size and container_size == self.container_size:
            return False
        return super()._size_updated(size, virtual_size, container_size, layout)

    def on_resize(self) -> None:
        """When the size changes the columns (across `WIDE` or `ROOMY` columns, or a height that makes the rows
        need a scrollbar or not): draw the same sessions again."""
        if self._layout is not None and self._layout_for(len(self.cells), self._layout[1]) != self._layout:
            self.show(*self._shown)

    # -- drawing --------------------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        base = self.rich_style
        if y == 0:  # the header stays on top
            style = base + self.get_component_rich_style("sessions--header")
            text = "".join(set_cell_size(c.label.rjust(c.width - 1) if c.right else c.label, c.width - 1) + " "
                           for c in self.columns)
            n = self.columns[0].width if self.columns else 0  # the dot's blank column on its own (an SVG
            segments = [Segment(text[:n], style + Style(bold=False)), Segment(text[n:], style)]  # export keeps it)
            return Strip(segments).crop_extend(scroll_x, scroll_x + width, style)
        row = scroll_y + y - 1
        if row >= len(self.cells):
            lines = textwrap.wrap(self.empty_text, max(10, width - 2), break_on_hyphens=False) if not self.cells else []
            if row < len(lines):
                return Strip([Segment(" " + lines[row], base + Style(dim=True))]).crop_extend(0, width, base)
            return Strip.blank(width, base)
        style = base
        if row == self.cursor_row:
            style = base + self.get_component_rich_style("sessions--cursor")
        cells = self.cells[row]  # the dot in its own style, even when blank (an SVG export keeps its column)
        dot = style + self.get_component_rich_style("sessions--active", partial=True)
        segments = [Segment(cells[0], dot), Segment("".join(cells[1:]), style)]
        return Strip(segments).crop_extend(scroll_x, scroll_x + width, style)

    # -- moving and choosing --------------------------------------------------------------------------

    def _scroll_to_cursor(self) -> None:
        # rows start on the second line: the header covers the first of the scrolled region
        top = self.cursor_row
        self.scroll_to_region(Region(0, top, 1, 2), animate=False, immediate=True, force=True)

    def move_cursor(self, row: int) -> None:
        """Put the cursor on a row (clamped) and keep it on screen."""
        self.cursor_row = max(0, min(row, len(self.cells) - 1))
        self._scroll_to_cursor()
        self.refresh()

    def action_move(self, delta: int) -> None:
        """One row up or down."""
        self.move_cursor(self.cursor_row + delta)

    def action_page(self, direction: int) -> None:
        """A screenful up or down."""
        self.move_cursor(self.cursor_row + direction * max(1, self.size.height - 2))

    def action_edge(self, end: int) -> None:
        """The first or the last row."""
        self.move_cursor(len(self.cells) - 1 if end else 0)

    def action_select(self) -> None:
        """Open the highlighted session."""
        if 0 <= self.cursor_row < len(self.keys):
            self.post_message(self.Selected(*self.keys[self.cursor_row]))

    def on_click(self, event: events.Click) -> None:
        """A click highlights a row; a click on the highlighted one opens it."""
        row = int(self.scroll_offset.y) + event.y - 1
        if event.y < 1 or not 0 <= row < len(self.cells):
            return
        if row == self.cursor_row:
            self.action_select()
        else:
            self.move_cursor(row)
