"""The filter bar (top) and the status line (bottom): what is shown, and whether it can be trusted."""

from __future__ import annotations

from typing import ClassVar

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual import events
from textual.screen import Screen
from textual.widget import Widget

from .base import Fitted, LaidOutOnce


class FilterBar(Fitted):
    """``tokentop · all sources · last 7d · all projects · cloud+local · UTC`` (shorter where it does not fit)."""


class StatusLine(Fitted):
    """Files watched, calls counted, unparsable lines, last update; scan progress while it runs (shorter where it
    does not fit: the unparsable count and the time stay)."""


class KeysFooter(LaidOutOnce, Widget):
    """The screen's keys on the bottom row (`show=True` bindings of the screen and the app, as Textual's `Footer`
    lists them: key, description; disabled ones dim; the command palette's on the right); a click on one presses
    it. Redrawn when the screen's bindings change to other keys.

    One line of text instead of Textual's `Footer`, which makes a widget per key: composing its 8 keys cost ~125 M
    CPU instructions (~40 ms on a 2-core VM) — about a tenth of the whole first frame of a warm start —, after that
    frame (its keys appeared 60-110 ms later), and again on every screen change. This bar is in the first frame and
    costs less than the empty `Footer` did there."""

    DEFAULT_CSS = """
    KeysFooter {
        dock: bottom;
        height: 1;
        background: $footer-background;
        color: $footer-foreground;
        & > .keys--key { color: $footer-key-foreground; background: $footer-key-background; text-style: bold; }
        & > .keys--description { color: $footer-description-foreground; background: $footer-description-background; }
        & > .keys--separator { color: $foreground 20%; }
    }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"keys--key", "keys--description", "keys--separator"}

    def __init__(self) -> None:
        super().__init__()
        self.keys: tuple[tuple[str, str, str, bool], ...] = ()  # (key, as shown, description, enabled)
        self.palette: tuple[str, str, str, bool] | None = None  # the command palette's, on the right
        self._spans: list[tuple[int, int, str]] = []  # (first cell, end, key) as drawn

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self.bindings_changed)
        self.bindings_changed(self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def bindings_changed(self, screen: Screen[object]) -> None:
        """The screen's keys, drawn again when they changed."""
        if screen is not self.screen:
            return
        app = self.app
        keys, palette, seen = [], None, set()
        for _node, binding, enabled, _tooltip in screen.active_bindings.values():
            key = (binding.key, app.get_key_display(binding), binding.description, enabled)
            if binding.key == app.COMMAND_PALETTE_BINDING and app.ENABLE_COMMAND_PALETTE:
                palette = key
            elif binding.show and binding.action not in seen:  # one key per action, as the Footer shows
                seen.add(binding.action)
                keys.append(key)
        if (tuple(keys), palette) != (self.keys, self.palette):
            self.keys, self.palette = tuple(keys), palette
            self.refresh()

    def render(self) -> Text:
        key_style = self.get_component_rich_style("keys--key")
        text_style = self.get_component_rich_style("keys--description")
        text, spans = Text(), []
        for key, shown, description, enabled in self.keys:
            start = text.cell_len
            dim = Style(dim=True) if not enabled else Style()
            text.append(f" {shown} ", key_style + dim)
            text.append(f"{description} ", text_style + dim)
            spans.append((start, text.cell_len, key))
        if self.palette is not None:
            key, shown, description, _ = self.palette
            right = cell_len(f"▏{shown} {description} ")
            text.append(" " * max(1, self.size.width - text.cell_len - right))
            spans.append((text.cell_len, text.cell_len + right, key))
            text.append("▏", self.get_component_rich_style("keys--separator"))
            text.append(shown, key_style)
            text.append(f" {description} ", text_style)
        self._spans = spans
        return text

    def on_click(self, event: events.Click) -> None:
        """A click on a key presses it."""
        for start, end, key in self._spans:
            if start <= event.x < end:
                self.app.simulate_key(key)
                return
