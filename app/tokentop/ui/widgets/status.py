"""The filter bar (top) and the status line (bottom): what is shown, and whether it can be trusted."""

from __future__ import annotations

from textual.widgets import Static


class FilterBar(Static):
    """`` tokentop  all · last 7d · all projects · cloud+local · UTC   ● live 12:04:31``."""


class StatusLine(Static):
    """Files watched, calls counted, unparsable lines, last update; scan progress while it runs."""
