"""What the widgets share."""

from __future__ import annotations

from textual.visual import VisualType
from textual.widgets import Static


def set_content(widget: Static, content: VisualType, layout: bool = True) -> None:
    """`Static.update`, only when the content changed: an update lays the screen out and draws the widget again,
    and most redraws (a filter key) leave the status line, the panels and half the cards as they were.

    ``layout=False`` for a widget whose size its content cannot change (fixed by the stylesheet): then the
    screen is not laid out again for it.
    """
    if widget.content != content:
        widget.update(content, layout=layout)
