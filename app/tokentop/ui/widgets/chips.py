"""The model-chip bar: one chip per model, grouped by family, with its cost share; click toggles, shift-click solos."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal
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


class ChipBar(LaidOutOnce, Horizontal):
    """Chips in family order; a hint when nothing is selected.

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
        """Across 110 columns chips lose or gain their family labels: draw them again."""
        if self._shown and (self.size.width < 110) != self._shown[-1]:
            self.show(self.chips, self._shown[2])

    def show(self, chips: list[dict[str, Any]], none_selected: bool) -> None:
        """Draw the chips when anything shown changed."""
        self.chips = chips
        self.focus_index = min(self.focus_index, max(0, len(chips) - 1))
        compact = self.size.width < 110
        shown = (tuple((c["model"], c["selected"], round(c["share"], 2)) for c in chips), self.focus_index,
                 none_selected, compact)
        if shown == self._shown:
            return
        self._shown = shown
        with self.app.batch_update():
            end = self.query_one("#hint-end", Label)
            if len(chips) > len(self._slots):  # more chips than ever: new slots before the end hint
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
                starts = chip["family"] != family and not compact  # compact: the chip's own name says it
                family = chip["family"]
                if starts:
                    set_content(label, escape(family))
                label.display = starts
                chip_widget.display = True
                chip_widget.set_chip(chip, i == self.focus_index, compact)
            self.query_one("#hint-none", Label).display = none_selected  # first: at 80 columns the chips fill
            end.display = not none_selected  # the bar
            set_content(end, "0:all" if chips else "no data in this range")
