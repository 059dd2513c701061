"""The model-chip bar: one chip per model, grouped by family, with its cost share; click toggles, shift-click solos."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.markup import escape
from textual.message import Message
from textual.widgets import Label, Static

from .base import FlatLabel, LaidOutOnce, set_content


class Chip(LaidOutOnce, Static):
    """One model chip."""

    @dataclass
    class Clicked(Message):
        """A chip was clicked; ``solo`` for shift/alt/ctrl-click."""

        index: int
        solo: bool
        bar: str | None = None  # the ChipBar's id

    def __init__(self, index: int, chip: dict[str, Any], focused: bool, compact: bool) -> None:
        super().__init__(classes="chip")
        self.index = index
        self.set_chip(chip, focused, compact)

    @staticmethod
    def label(index: int, chip: dict[str, Any], compact: bool) -> str:
        """``3 Sonnet 4.5 42%``: its key, name and cost share."""
        share = "local" if chip["family"] == "Local" else f"{chip['share'] * 100:.0f}%"
        number = f"{index + 1} " if index < 9 else ""
        name = chip["name"][:12] + "…" if compact and len(chip["name"]) > 13 else chip["name"]
        return f"{number}{escape(name)} {share}"  # a name (a model's, a machine's), not markup

    def set_chip(self, chip: dict[str, Any], focused: bool, compact: bool) -> None:
        """Show another state of the same chip (its share, whether selected or focused)."""
        set_content(self, self.label(self.index, chip, compact))
        self.set_class(not chip["selected"], "-off")
        self.set_class(focused, "-focused")

    def on_click(self, event: events.Click) -> None:
        """Toggle, or solo with a modifier."""
        event.stop()
        self.post_message(self.Clicked(self.index, event.shift or event.meta or event.ctrl,
                                       self.parent.id if self.parent else None))


#: Below this width chips show no family labels (their names say the family) and names of at most 12 characters.
FAMILY_LABELS_WIDTH = 110


def rows_for(cells: list[int], width: int) -> tuple[int, int]:
    """(columns, rows) that lay out items ``cells`` wide, one cell apart, in ``width``: one row if they fit, else
    a grid of as many columns as fit (each column as wide as its widest item), at least one."""
    if sum(cells) + len(cells) - 1 <= width:
        return len(cells), 1
    for cols in range(len(cells) - 1, 1, -1):
        if sum(max(cells[i::cols]) for i in range(cols)) + cols - 1 <= width:
            return cols, math.ceil(len(cells) / cols)
    return 1, len(cells)


class ChipBar(LaidOutOnce, Horizontal):
    """Chips in family order; a hint when nothing is selected. Chips that do not fit in one row wrap onto more
    rows (a grid, each column as wide as its widest chip), without family labels: every chip and its share stay
    in sight.

    Its widgets are kept and reused: a warning hint, then a (family label, chip) pair per chip slot, then the end
    hint. A redraw updates them in place and shows or hides slots; it mounts new ones only for more chips than
    ever before (mounting restyles and lays out the bar, then draws another frame: ~40 ms of a filter key).
    """

    def __init__(self, noun: str = "models", **kw: Any) -> None:
        super().__init__(**kw)
        self.noun = noun
        self.chips: list[dict[str, Any]] = []
        self.focus_index = 0
        self._shown: tuple = ()
        self._slots: list[tuple[Label, Chip]] = []

    def compose(self) -> ComposeResult:
        none = FlatLabel(f"no {self.noun} selected — 0 shows all", classes="chip-hint -warn", id="hint-none")
        none.display = False
        yield none
        yield FlatLabel("no data yet", classes="chip-hint", id="hint-end")

    def on_resize(self) -> None:
        """Another width may change the chips' labels and rows: draw them again (not for a resize that only
        changed the chips' total width: a redraw of the same chips would draw another frame)."""
        if self._shown and self._shown[-1] != self._width():
            self._shown = ()
            self.show(self.chips, self._none_selected)

    _none_selected = False

    def _width(self) -> int:
        return self.size.width or self.app.size.width - 2  # (its content: the padding apart)

    def _cells(self, chips: list[dict[str, Any]], compact: bool) -> list[int]:
        """The width of each chip (with its padding), or of the hint that there is no data."""
        cells = [Content.from_markup(Chip.label(i, c, compact)).cell_length + 2 for i, c in enumerate(chips)]
        return cells or [Content("no data in this range").cell_length]

    def _rows(self, cells: list[int], none_selected: bool) -> tuple[int, int, bool]:
        """(columns, rows, whether "0:all" fits after the chips). The hint that nothing is selected comes first;
        it adds a row only to chips that wrap already: every chip off is a moment (0 is the next key), and a
        bar that changed height redraws the screen twice."""
        cols, rows = rows_for(cells, self._width())
        if none_selected and rows > 1:
            cols, rows = rows_for([Content(f"no {self.noun} selected — 0 shows all").cell_length, *cells],
                                  self._width())
        return cols, rows, rows == 1 and sum(cells) + len(cells) + len("0:all") <= self._width()

    def _one_row(self, chips: list[dict[str, Any]], cells: list[int]) -> bool:
        """Whether the chips (``cells`` wide, with their whole names) fit in one row with their family labels."""
        families = {c["family"] for c in chips}
        labels = sum(Content(f).cell_length + 2 for f in families)  # (label, its padding, the space after)
        return sum(cells) + len(cells) - 1 + labels <= self._width()

    def show(self, chips: list[dict[str, Any]], none_selected: bool, hold: bool = False) -> None:
        """Draw the chips when anything shown changed; ``hold``: keep the bar's height if they need fewer rows
        (a bar that changed height lays the screen out twice: two frames for the key)."""
        self.chips = chips
        self._none_selected = none_selected
        self.focus_index = min(self.focus_index, max(0, len(chips) - 1))
        compact = self._width() + 2 < FAMILY_LABELS_WIDTH  # names cut to 12 characters, no family labels
        cells = None if compact else self._cells(chips, False)  # (measured once, and only when needed)
        labels = cells is not None and self._one_row(chips, cells)  # (chips that wrap have none either)
        shown = (tuple((c["model"], c["selected"], round(c["share"], 2)) for c in chips), self.focus_index,
                 none_selected, compact, labels, self._width())
        if shown == self._shown:
            return
        self._shown = shown
        with self.app.batch_update():
            end = self.query_one("#hint-end", Label)
            new_slots = len(chips) > len(self._slots)
            if new_slots:  # more chips than ever: new slots before the end hint
                new = [(FlatLabel("", classes="family"), Chip(i, chips[i], False, compact))
                       for i in range(len(self._slots), len(chips))]
                self._slots += new
                self.mount_all([w for pair in new for w in pair], before=end)
            family = None
            for i, (label, chip_widget) in enumerate(self._slots):
                if i >= len(chips):
                    label.display = chip_widget.display = False
                    continue
                chip = chips[i]
                starts = chip["family"] != family and labels  # else the chip's own name says it
                family = chip["family"]
                if starts:
                    set_content(label, escape(family))
                label.display = starts
                chip_widget.display = True
                chip_widget.set_chip(chip, i == self.focus_index, compact)
            self.query_one("#hint-none", Label).display = none_selected  # first: at 80 columns the chips fill
            set_content(end, "0:all" if chips else "no data in this range")
            cols, rows, room = self._rows(self._cells(chips, True) if cells is None else cells, none_selected)
            end.display = not none_selected and (room or not chips)
            self._height = max(rows, self._height) if hold else rows
            self._arrange(cols if rows > 1 else 0, rows, new_slots)

    _arranged = (0, 1, 1)  # (columns of the grid, rows, height): one row, as the stylesheet has it
    _height = 1  # the bar's height: its rows, or more while they are held (`show`)

    def _arrange(self, cols: int, rows: int, new_slots: bool) -> None:
        """The bar as a grid of ``cols`` columns and ``rows`` rows, or one row, when that changed (a style set
        again lays the screen out again): inline styles, not a class, which restyles the bar after the frame (a
        second frame for the key)."""
        if (cols, rows, self._height) == self._arranged and not (new_slots and rows > 1):
            return
        self._arranged = (cols, rows, self._height)
        if rows > 1:
            self.styles.grid_size_columns = cols
        for _, chip_widget in self._slots:  # in a grid, its gutter parts the chips
            chip_widget.styles.margin = (0, 0, 0, 0) if rows > 1 else (0, 1, 0, 0)
        self.styles.layout = "grid" if rows > 1 else "horizontal"
        self.styles.height = self._height
