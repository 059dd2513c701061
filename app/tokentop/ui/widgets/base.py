"""What the widgets share."""

from __future__ import annotations

from rich.cells import cell_len
from textual.visual import VisualType
from textual.widgets import Static


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
    widget.update(content, layout=layout)


def _same_shape(old: str, new: str) -> bool:
    """Whether two texts without markup take the same cells, line for line."""
    if "[" in old or "[" in new:
        return False
    old_lines, new_lines = old.split("\n"), new.split("\n")
    return len(old_lines) == len(new_lines) and all(
        cell_len(a) == cell_len(b) for a, b in zip(old_lines, new_lines, strict=True))
