"""What the widgets share."""

from __future__ import annotations

from rich.cells import cell_len
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.geometry import Size
from textual.reactive import Reactive
from textual.visual import VisualType
from textual.widgets import Label, Static


class LaidOutOnce:
    """Mixed into a widget that never scrolls: when a layout changes its size, the screen is not laid out again.

    Textual lays the whole screen out a second time, and draws the widget again, after any widget's size (its
    ``virtual_size``) changed in a layout, for the scrollbars it may now need. A widget without scrollbars gains
    nothing from either (the layout that sized it drew it); a filter key that changed the width of a chip or a
    label drew a second and a third frame up to ~40 ms after its first.
    """

    virtual_size = Reactive(Size(0, 0), layout=False, repaint=False)


class FlatLabel(LaidOutOnce, Label):
    """A `Label` that never scrolls (see `LaidOutOnce`)."""


class Row(LaidOutOnce, Horizontal):
    """A `Horizontal` that never scrolls (see `LaidOutOnce`)."""


class Column(LaidOutOnce, Vertical):
    """A `Vertical` that never scrolls (see `LaidOutOnce`): the side column, whose panels' height changes with
    a filter key (the 5-hour block comes and goes), laid the screen out again for a second frame ~25 ms later."""


class SizedContent:
    """Mixed into a widget whose content depends on its size (which of several texts fits, a bar's width, a
    table's columns): `resized` makes it again inside the layout that gave the widget its new size, so the frame
    that layout draws shows it.

    Textual's `Resize` event is handled after that frame. The first frame of a warm start showed what was made
    before the first layout, for no size at all (the sessions table's project column cut to "pro", the rate-limit
    bars 3 cells wide on any screen), then a second frame the cards chosen again, and the table's new columns
    laid the screen out again for a third, ~50 ms after the first. Textual's private hook for a layout's sizes
    (`_size_updated`, called for every widget between the layout and its frame), as `LineTable` uses."""

    def _size_updated(self, size: Size, virtual_size: Size, container_size: Size, layout: bool = True) -> bool:
        new = size != self.outer_size  # type: ignore[attr-defined]
        changed: bool = super()._size_updated(size, virtual_size, container_size, layout)  # type: ignore[misc]
        if new:
            self.resized()
            # A widget with a new size is drawn whole by this layout's frame, with what `resized` made: the repaint
            # its refresh asked for came after that frame, the same again (a second frame for a filter key).
            self._repaint_required = False
        return changed

    def resized(self) -> None:
        """Make the content again for the widget's new size (what it last showed); nothing by default."""


class Fitted(SizedContent, Static):
    """A Static showing the first of several markup texts whose every line fits its width (the last if none
    does): numbers are never cut off at 80 columns. Chosen again when its width changes (`SizedContent`); its
    size is the stylesheet's, so another text is drawn without laying the screen out (`set_content`)."""

    choices: tuple[str, ...] = ()

    def show(self, *choices: str) -> None:
        """The texts, the preferred (longest) first."""
        self.choices = choices
        self._fit()

    def resized(self) -> None:
        self._fit()

    def _fit(self) -> None:
        width = self.content_size.width  # (0 before the first layout: the first text, chosen again in it)
        chosen = self.choices[-1] if self.choices else ""
        for choice in self.choices:
            if width <= 0 or all(line.cell_length <= width for line in Content.from_markup(choice).split("\n")):
                chosen = choice
                break
        set_content(self, chosen, layout=False)


def set_content(widget: Static, content: VisualType, layout: bool = True) -> None:
    """`Static.update`, only when the content changed: an update lays the screen out and draws the widget again,
    and most redraws (a filter key) leave the status line, the panels and half the cards as they were.

    ``layout=False`` for a widget whose size its content cannot change (fixed by the stylesheet): then the
    screen is not laid out again for it. Plain text whose lines keep their widths (``42%`` becoming ``38%``)
    needs no layout either, whatever the stylesheet says.
    """
    old = widget.content
    if old == content:
        return
    if layout and isinstance(old, str) and isinstance(content, str) and _same_shape(old, content):
        layout = False
    if layout and widget._layout_required:
        # Textual counts a layout request only when none is pending (`Widget.refresh`), and keys its box-model
        # cache on that count: a second change of size before the first request was handled (a widget changed
        # before its first idle, or twice while the app is busy) kept the size of the first (a chip cut to
        # "1 Opus 4.5" when its share grew a digit). This one is counted too.
        widget._layout_updates += 1
    widget.update(content, layout=layout)


def _same_shape(old: str, new: str) -> bool:
    """Whether two texts without markup take the same cells, line for line."""
    if "[" in old or "[" in new:
        return False
    old_lines, new_lines = old.split("\n"), new.split("\n")
    return len(old_lines) == len(new_lines) and all(
        cell_len(a) == cell_len(b) for a, b in zip(old_lines, new_lines, strict=True))
