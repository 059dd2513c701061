"""The filter bar (top) and the status line (bottom): what is shown, and whether it can be trusted."""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer

from .base import Fitted


class FilterBar(Fitted):
    """``tokentop · all sources · last 7d · all projects · cloud+local · UTC`` (shorter where it does not fit)."""


class StatusLine(Fitted):
    """Files watched, calls counted, unparsable lines, last update; scan progress while it runs (shorter where it
    does not fit: the unparsable count and the time stay)."""


class KeysFooter(Footer):
    """Textual's footer, recomposed only when the keys it shows changed.

    The footer rebuilds its keys on every bindings signal, and at start-up three come with the same keys (focus
    set, screen stack, first idle), each one mounting and styling every key again (~50 ms before the first frame
    on a 2-core VM).
    """

    _shown: tuple[tuple[str, str, str, bool, str], ...] | None = None

    def bindings_changed(self, screen: Screen[object]) -> None:
        shown = tuple((b.key, b.action, b.description, enabled, tooltip)
                      for _node, b, enabled, tooltip in screen.active_bindings.values() if b.show)
        if shown == self._shown:
            return
        super().bindings_changed(screen)
        if screen.app.app_focus and self.is_attached and screen is self.screen:  # a recompose is on its way
            self._shown = shown
