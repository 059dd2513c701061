"""The model-chip bar: one chip per model, grouped by family, with its cost share; click toggles, shift-click solos."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from textual import events
from textual.content import Content
from textual.geometry import Offset, Size
from textual.message import Message
from textual.style import Style
from textual.widget import Widget

from ...core.fmt import cells
from .base import LaidOutOnce, SizedContent


def chip_label(index: int, chip: dict[str, Any], compact: bool) -> str:
    """``3 Sonnet 4.5 42%``: its key, name and cost share (plain text: a name is never read as markup)."""
    share = "local" if chip["family"] == "Local" else f"{chip['share'] * 100:.0f}%"
    number = f"{index + 1} " if index < 9 else ""
    name = chip["name"][:12] + "…" if compact and len(chip["name"]) > 13 else chip["name"]
    return f"{number}{name} {share}"


#: Below this width chips show no family labels (their names say the family) and names of at most 12 characters.
FAMILY_LABELS_WIDTH = 110


def rows_for(widths: list[int], width: int) -> tuple[int, int]:
    """(columns, rows) that lay out items ``widths`` wide, one cell apart, in ``width``: one row if they fit, else
    a grid of as many columns as fit (each column as wide as its widest item), at least one."""
    if sum(widths) + len(widths) - 1 <= width:
        return len(widths), 1
    for cols in range(len(widths) - 1, 1, -1):
        if sum(max(widths[i::cols]) for i in range(cols)) + cols - 1 <= width:
            return cols, math.ceil(len(widths) / cols)
    return 1, len(widths)


#: A piece of the bar: its text, its component class (none: the bar's own style), the chip it belongs to.
Piece = tuple[str, str | None, int | None]


class ChipBar(SizedContent, LaidOutOnce, Widget):
    """Chips in family order, drawn as one widget; a hint when nothing is selected. Chips that do not fit in one
    row wrap onto more rows (a grid, each column as wide as its widest chip), without family labels: every chip
    and its share stay in sight.

    One widget, not one per chip: a key that changed the number of chips mounted, showed or hid chip widgets,
    which restyled and laid the bar out again after the key's frame (a second frame ~25 ms later), and 10 chip
    widgets cost ~10 ms of the first frame. A chip's styles are the stylesheet's component classes; a click finds
    its chip by the meta of the cells under the mouse.
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "chip-bar--chip", "chip-bar--off", "chip-bar--focused", "chip-bar--family", "chip-bar--hint",
        "chip-bar--warn"}

    @dataclass
    class Clicked(Message):
        """A chip was clicked; ``solo`` for shift/alt/ctrl-click."""

        index: int
        solo: bool
        bar: str | None = None  # the ChipBar's id

    def __init__(self, noun: str = "models", **kw: Any) -> None:
        super().__init__(**kw)
        self.noun = noun
        self.chips: list[dict[str, Any]] = []
        self.focus_index = 0
        self._none_selected = False
        self._shown: tuple = ()
        self._rows: list[list[Piece]] = [[("no data yet", "chip-bar--hint", None)]]
        self._height = 1  # its rows, or more while they are held (`show`)

    def _width(self) -> int:
        return self.size.width or self.app.size.width - 2  # (its content: the padding apart)

    def show(self, chips: list[dict[str, Any]], none_selected: bool, hold: bool = False) -> None:
        """Draw the chips when anything shown changed; ``hold``: keep the bar's height if they need fewer rows
        (a bar that changed height lays the screen out twice: two frames for the key)."""
        self.chips = chips
        self._none_selected = none_selected
        self.focus_index = min(self.focus_index, max(0, len(chips) - 1))
        width = self._width()
        compact = width + 2 < FAMILY_LABELS_WIDTH  # names cut to 12 characters, no family labels
        labels = [chip_label(i, c, compact) for i, c in enumerate(chips)]
        shown = (tuple(labels), tuple(c["selected"] for c in chips), self.focus_index, none_selected, width, hold)
        if shown == self._shown:
            return
        self._shown = shown
        rows = self._arrange(labels, none_selected, compact, width)
        height = max(len(rows), self._height) if hold else len(rows)
        resized = height != self._height
        self._rows, self._height = rows, height
        self.refresh(layout=resized)

    def _arrange(self, labels: list[str], none_selected: bool, compact: bool, width: int) -> list[list[Piece]]:
        """The bar's rows of pieces: the chips in one row (with family labels when they fit, and "0:all" after
        them when it fits), else in a grid."""
        hint: list[Piece] = []  # first, a cell apart from what follows
        if none_selected:
            hint = [(f"no {self.noun} selected — 0 shows all", "chip-bar--warn", None), (" ", None, None)]
        if not labels:
            return [[*hint, ("no data in this range", "chip-bar--hint", None)]]
        widths = [cells(label) + 2 for label in labels]
        used = sum(widths) + len(widths) - 1
        one_row = used <= width
        families = {c["family"] for c in self.chips}  # (a label, its space, the space after it)
        with_families = not compact and one_row and used + sum(cells(f) + 2 for f in families) <= width
        if one_row:  # the hint first (the chips after it may be cut off: every chip off is a moment)
            row: list[Piece] = list(hint)
            family = None
            for i, (label, chip) in enumerate(zip(labels, self.chips, strict=True)):
                if with_families and chip["family"] != family:
                    row.append((f"{chip['family']} ", "chip-bar--family", None))
                family = chip["family"]
                row += [(f" {label} ", self._chip_class(i), i), (" ", None, None)]
            if not none_selected and used + 1 + len("0:all") <= width:
                row.append(("0:all", "chip-bar--hint", None))
            return [row]
        items: list[list[Piece]] = [[(f" {label} ", self._chip_class(i), i)] for i, label in enumerate(labels)]
        if hint:  # a cell of the grid, before the chips
            items.insert(0, hint[:1])
        item_widths = [sum(cells(t) for t, _, _ in item) for item in items]
        cols, n_rows = rows_for(item_widths, width)
        col_widths = [max(item_widths[c::cols]) for c in range(cols)]
        grid = []
        for r in range(n_rows):
            row = []
            for c in range(cols):
                if r * cols + c < len(items):
                    row += items[r * cols + c]
                    row.append((" " * (col_widths[c] - item_widths[r * cols + c] + 1), None, None))
            grid.append(row)
        return grid

    def _chip_class(self, index: int) -> str:
        return "chip-bar--off" if not self.chips[index]["selected"] else "chip-bar--chip"

    def render(self) -> Content:
        lines = []
        for row in self._rows:
            parts: list[tuple[str, Style] | str] = []
            for text, component, index in row:
                if component is None:
                    parts.append(text)
                    continue
                style = self.get_visual_style(component)  # (cached by Textual until the styles change)
                if index is None:
                    parts.append((text, style))
                    continue
                label_style = style
                if index == self.focus_index:  # (styled only on the bar the keys act on: the stylesheet says)
                    label_style = style + self.get_visual_style("chip-bar--focused", partial=True)
                meta = Style.from_meta({"chip": index})
                padding = Style(background=style.background) + meta  # (as a widget's padding: its background only)
                parts += [(" ", padding), (text[1:-1], label_style + meta), (" ", padding)]
            lines.append(Content.assemble(*parts).truncate(self._width()))
        lines += [Content("")] * (self._height - len(lines))
        return Content("\n").join(lines)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return self._height

    def resized(self) -> None:
        """Another width may change the chips' labels and rows: drawn again inside the layout that gave it."""
        if self._shown:
            self.show(self.chips, self._none_selected)

    def labels(self) -> list[str]:
        """The chips' labels as drawn, in order."""
        return [text.strip() for row in self._rows for text, _, index in row if index is not None]

    def families(self) -> list[str]:
        """The family labels drawn (none when the chips are compact or wrap)."""
        return [text.strip() for row in self._rows for text, component, _ in row if component == "chip-bar--family"]

    def chip_offset(self, index: int) -> Offset | None:
        """Where chip ``index`` is drawn (its first cell, in the bar's content), if it is."""
        for y, row in enumerate(self._rows):
            x = 0
            for text, _, i in row:
                if i == index:
                    return Offset(x, y)
                x += cells(text)
        return None

    def on_click(self, event: events.Click) -> None:
        """Toggle, or solo with a modifier, the chip under the mouse."""
        index = event.style.meta.get("chip")
        if index is None:
            return
        event.stop()
        self.post_message(self.Clicked(index, event.shift or event.meta or event.ctrl, self.id))
