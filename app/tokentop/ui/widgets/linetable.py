"""A table drawn line by line: the sessions table and the other views' tables (by project, top tasks, recent calls).

A line-API widget (Textual's `ScrollView`, as its `Log` is): it keeps each row as plain cells, cut and padded to
their columns once, and draws only the rows on screen, each as one strip. A `DataTable` measured and rendered
every cell through Rich: about half of a filter key's redraw on the 470 MB corpus (~70 of ~150 ms on a 2-core VM
for the sessions; 10-20 ms of ~80 for the recent calls).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.css.scalar import Unit
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.scrollbar import ScrollBar
from textual.strip import Strip

from .base import LaidOutOnce, SizedContent


class FlatScrollBar(LaidOutOnce, ScrollBar):
    """A table's vertical scrollbar, which never lays the screen out again: sized by the layout that showed it
    (Textual's asked for another layout when its size first changed, and drew its thumb in a second frame ~30 ms
    after the first; see `LaidOutOnce`)."""


@dataclass
class Column:
    """One column: its key, header, width in cells (one space of separation included), alignment."""

    key: str
    label: str
    width: int
    right: bool = False
    grow: bool = False  # takes room the table has beyond its columns' widths, as far as its texts need it

    def cell(self, text: str) -> str:
        """The text in this column: cut or padded to the width less one space (in terminal cells), numbers
        right-aligned, then the space."""
        n = self.width - 1
        text = set_cell_size(text, n)
        if self.right:
            text = text.rstrip().rjust(n)
        return text + " "


class LineTable(SizedContent, ScrollView, can_focus=True):
    """Rows of cells under a header that stays on top; a row cursor moved by keys and clicks, ``enter`` or a
    click on the highlighted row chooses it (`Selected`)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move(-1)", "up", show=False),
        Binding("down", "move(1)", "down", show=False),
        Binding("pageup", "page(-1)", "page up", show=False),
        Binding("pagedown", "page(1)", "page down", show=False),
        Binding("home", "edge(0)", "first", show=False),
        Binding("end", "edge(1)", "last", show=False),
        Binding("enter", "select", "open", show=False),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {"linetable--header", "linetable--cursor"}
    DEFAULT_CSS = """
    LineTable {
        background: $surface;
        color: $foreground;
        & > .linetable--header { text-style: bold; background: $panel; color: $foreground; }
        & > .linetable--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        &:focus {
            background-tint: $foreground 5%;
            & > .linetable--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
        }
    }
    """

    @dataclass
    class Selected(Message):
        """A row was chosen (``enter``, or a click on the highlighted row)."""

        table: LineTable
        row: int

        @property
        def control(self) -> LineTable:
            """The table (what ``@on(LineTable.Selected, "#id")`` matches)."""
            return self.table

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.columns: list[Column] = []
        self.cells: list[list[str]] = []  # each row's cells, as shown
        self.cursor_row = 0
        self.show_cursor = True
        self.empty_text = ""  # shown, dim, under the header when there are no rows

    # -- data -----------------------------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        """Rows held."""
        return len(self.cells)

    def get_row_at(self, index: int) -> list[str]:
        """One row's cells as shown, without their padding."""
        return [c.strip() for c in self.cells[index]]

    def room(self, rows: int) -> int:
        """The cells a row can take in a table of ``rows`` rows: the width less the vertical scrollbar they may
        need."""
        bar = self.styles.scrollbar_size_vertical if rows + 1 > self.size.height else 0  # + the header
        return self.size.width - bar

    def fit(self, columns: list[Column], values: list[list[str]]) -> list[list[str]]:
        """``values`` as cells of ``columns``, the growing ones widened into the room beyond the columns' widths
        (in their order, each as far as its longest text needs)."""
        spare = self.room(len(values)) - sum(c.width for c in columns)
        for i, c in enumerate(columns):
            if c.grow and spare > 0:
                need = max((cell_len(row[i]) for row in values), default=0) + 1 - c.width
                extra = max(0, min(need, spare))
                c.width += extra
                spare -= extra
        return [[c.cell(v) for c, v in zip(columns, row, strict=True)] for row in values]

    def set_rows(self, columns: list[Column], cells: list[list[str]], cursor_row: int = 0) -> None:
        """Replace the columns and rows (cells made by `Column.cell`), the cursor on ``cursor_row`` (clamped)."""
        self.columns, self.cells = columns, cells
        self.cursor_row = max(0, min(cursor_row, len(cells) - 1))
        # Set with the rows, before the layout it asks for: the scrollbars they need are drawn in that frame.
        self.virtual_size = Size(sum(c.width for c in columns), len(cells) + 1)  # + the header
        self._scroll_to_cursor()
        self.refresh()

    # -- scrollbars ----------------------------------------------------------------------------------
    # Set when the rows' size changes, before the layout that change asks for; a layout that leaves the table's
    # size and its container as they were does not set them again. Textual sets them after every layout of the
    # screen (a chip's width changed by a filter key): a `ScrollView` compares the virtual size the layout offers
    # (its box) with its own (its rows), which differ whenever it has rows; its scrollbars were drawn again in a
    # second frame ~30 ms after the first, a third when one came or went. These are Textual's private hooks for
    # a layout's sizes (`_size_updated`, `_scroll_update`).

    def watch_virtual_size(self, size: Size) -> None:
        if not self._resized_by(size):
            self._scroll_update(size)

    def _resized_by(self, rows: Size) -> bool:
        """Whether a table as tall as its rows (``height: auto``, within a min/max height in cells) gets another
        height for ``rows``: then the layout that gives it that height decides its scrollbars. Decided before, for
        its old height, a drill-down's models table showed a scrollbar for rows that fitted its new height, and
        hid it again in that layout, which laid the screen out a second time (two frames for a filter key)."""
        styles = self.styles
        if styles.height is None or not styles.height.is_auto:
            return False
        height = rows.height + styles.gutter.height
        low, high = styles.min_height, styles.max_height
        if any(bound is not None and bound.unit != Unit.CELLS for bound in (low, high)):
            return False  # (its height cannot be told here: decided now, as for a table of fixed size)
        if high is not None:
            height = min(height, int(high.value))
        if low is not None:
            height = max(height, int(low.value))
        return height != self.outer_size.height

    def on_mount(self) -> None:
        """The vertical scrollbar is made (hidden) with the table: made when first needed, it was styled after the
        frame that showed it, which laid the screen out again for a second frame."""
        _ = self.vertical_scrollbar

    @property
    def vertical_scrollbar(self) -> ScrollBar:
        """The vertical scrollbar, a `FlatScrollBar`."""
        if self._vertical_scrollbar is None:
            self._vertical_scrollbar = bar = FlatScrollBar(vertical=True, name="vertical",
                                                           thickness=self.scrollbar_size_vertical)
            bar.display = False
            self.app._start_widget(self, bar)
        return self._vertical_scrollbar

    def _size_updated(self, size: Size, virtual_size: Size, container_size: Size, layout: bool = True) -> bool:
        if size == self._size and container_size == self.container_size:
            return False
        return super()._size_updated(size, virtual_size, container_size, layout)

    # -- drawing --------------------------------------------------------------------------------------

    def header_segments(self, text: str, style: Style) -> list[Segment]:
        """The header line (its text already laid out in the columns)."""
        return [Segment(text, style)]

    def row_segments(self, row: int, style: Style) -> list[Segment]:
        """One row's line in ``style`` (the cursor's, on its row)."""
        return [Segment("".join(self.cells[row]), style)]

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        base = self.rich_style
        if y == 0:  # the header stays on top
            style = base + self.get_component_rich_style("linetable--header")
            text = "".join(set_cell_size(c.label.rjust(c.width - 1) if c.right else c.label, c.width - 1) + " "
                           for c in self.columns)
            return Strip(self.header_segments(text, style)).crop_extend(scroll_x, scroll_x + width, style)
        row = scroll_y + y - 1
        if row >= len(self.cells):
            lines = textwrap.wrap(self.empty_text, max(10, width - 2), break_on_hyphens=False) if not self.cells else []
            if row < len(lines):
                return Strip([Segment(" " + lines[row], base + Style(dim=True))]).crop_extend(0, width, base)
            return Strip.blank(width, base)
        style = base
        if row == self.cursor_row and self.show_cursor:
            style = base + self.get_component_rich_style("linetable--cursor")
        return Strip(self.row_segments(row, style)).crop_extend(scroll_x, scroll_x + width, style)

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
        """Choose the highlighted row."""
        if 0 <= self.cursor_row < len(self.cells):
            self.post_message(self.Selected(self, self.cursor_row))

    def on_click(self, event: events.Click) -> None:
        """A click highlights a row; a click on the highlighted one chooses it."""
        row = int(self.scroll_offset.y) + event.y - 1
        if event.y < 1 or not 0 <= row < len(self.cells):
            return
        if row == self.cursor_row:
            self.action_select()
        else:
            self.move_cursor(row)
