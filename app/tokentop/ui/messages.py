"""Messages that cross from workers to the UI: one per applied batch."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message


@dataclass
class UsageChanged(Message):
    """The engine applied a batch (scan progress or live changes); widgets re-read their view model."""

    calls_read: int = 0
    rate_limits_changed: bool = False


@dataclass
class ScanProgress(Message):
    """Initial scan progress: files and bytes done of total."""

    files: int
    total_files: int
    done_bytes: int
    total_bytes: int
    elapsed: float
