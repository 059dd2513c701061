"""The model-chip bar: one chip per model, grouped by family, with its cost share; click toggles, shift-click solos."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Label, Static


class Chip(Static):
    """One model chip."""

    @dataclass
    class Clicked(Message):
        """A chip was clicked; ``solo`` for shift/alt/ctrl-click."""

        index: int
        solo: bool
        bar: str | None = None  # the ChipBar's id

    def __init__(self, index: int, chip: dict[str, Any], focused: bool, compact: bool) -> None:
        super().__init__(self.label(index, chip, compact), classes="chip")
        self.index = index
        self.set_class(not chip["selected"], "-off")
        self.set_class(focused, "-focused")

    @staticmethod
    def label(index: int, chip: dict[str, Any], compact: bool) -> str:
        """``3 Sonnet 4.5 42%``: its key, name and cost share."""
        share = "local" if chip["family"] == "Local" else f"{chip['share'] * 100:.0f}%"
        number = f"{index + 1} " if index < 9 else ""
        name = chip["name"][:12] + "…" if compact and len(chip["name"]) > 13 else chip["name"]
        return f"{number}{name} {share}"

    def set_chip(self, chip: dict[str, Any], focused: bool, compact: bool) -> None:
        """Show another state of the same chip (its share, whether selected or focused)."""
        self.update(self.label(self.index, chip, compact))
        self.set_class(not chip["selected"], "-off")
        self.set_class(focused, "-focused")

    def on_click(self, event: events.Click) -> None:
        """Toggle, or solo with a modifier."""
        event.stop()
        self.post_message(self.Clicked(self.index, event.shift or event.meta or event.ctrl,
                                       self.parent.id if self.parent else None))


class ChipBar(Horizontal):
    """Chips in family order; a hint when nothing is selected."""

    def __init__(self, noun: str = "models", **kw: Any) -> None:
        super().__init__(**kw)
        self.noun = noun
        self.chips: list[dict[str, Any]] = []
        self.focus_index = 0
        self._shown: tuple = ()
        self._structure: tuple = ()  # which chips, labels and hint the bar holds
        self._chip_widgets: list[Chip] = []

    def compose(self) -> ComposeResult:
        yield Label("no data yet", classes="chip-hint")

    def show(self, chips: list[dict[str, Any]], none_selected: bool) -> None:
        """Rebuild the chips when anything shown changed."""
        self.chips = chips
        self.focus_index = min(self.focus_index, max(0, len(chips) - 1))
        compact = self.size.width < 110
        shown = (tuple((c["model"], c["selected"], round(c["share"], 2)) for c in chips), self.focus_index,
                 none_selected, compact)
        if shown == self._shown:
            return
        self._shown = shown
        hint = "none" if none_selected else "all" if chips else "empty"
        structure = (tuple((c["model"], c["family"]) for c in chips), compact, hint)
        if structure == self._structure:  # the same chips: update them in place (no mount, no restyle of the bar)
            with self.app.batch_update():
                for i, (widget, chip) in enumerate(zip(self._chip_widgets, chips, strict=True)):
                    widget.set_chip(chip, i == self.focus_index, compact)
            return
        self._structure = structure
        with self.app.batch_update():
            self.remove_children()
            widgets: list[Static] = []
            family = None
            for i, chip in enumerate(chips):
                if chip["family"] != family and not compact:  # compact: the chip's own name says it
                    family = chip["family"]
                    widgets.append(Label(family, classes="family"))
                widgets.append(Chip(i, chip, focused=i == self.focus_index, compact=compact))
            if none_selected:  # first: at 80 columns the chips fill the bar
                widgets.insert(0, Label(f"no {self.noun} selected — 0 shows all", classes="chip-hint -warn"))
            elif not chips:
                widgets.append(Label("no data in this range", classes="chip-hint"))
            else:
                widgets.append(Label("0:all", classes="chip-hint"))
            self._chip_widgets = [w for w in widgets if isinstance(w, Chip)]
            self.mount_all(widgets)
