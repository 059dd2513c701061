"""Number formatting shared by the CLI table and the TUI."""

from __future__ import annotations

import unicodedata


def money(cost: float, unpriced: int = 0, calls: int | None = None) -> str:
    """``$84.20``; from $100 on no cents and thousands separators (``$1,284``); "unpriced" is never $0."""
    if calls is not None and calls > 0 and unpriced == calls:
        return "unpriced"
    text = f"${cost:,.0f}" if abs(cost) >= 100 else f"${cost:,.2f}"
    if unpriced:
        text += f" + {unpriced:,} unpriced"
    return text


def count(n: float) -> str:
    """``4,812``."""
    return f"{int(n):,}"


def tokens(n: float) -> str:
    """Compact token counts: ``840``, ``12.4K``, ``3.4M``, ``1.2B``."""
    n = int(n)
    for div, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "K")):
        if abs(n) >= div:
            v = n / div
            return f"{v:.1f}{suffix}" if v < 100 else f"{v:.0f}{suffix}"
    return str(n)


def calls_split(cloud: int, local: int) -> str:
    """``cloud 4,790 · local 22``."""
    return f"cloud {cloud:,} · local {local:,}"


def duration(seconds: float) -> str:
    """``45s``, ``12m``, ``2h10m``, ``3d15h``."""
    s = max(0, int(seconds))
    if s >= 86400:
        return f"{s // 86400}d{(s % 86400) // 3600}h"
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m"
    return f"{s}s"


def _cell(ch: str) -> int:
    return 0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1


def cells(text: str) -> int:
    """Terminal cells ``text`` takes: East Asian wide and fullwidth characters two, combining marks none."""
    return len(text) if text.isascii() else sum(map(_cell, text))


def fit(text: str, width: int) -> str:
    """``text`` cut to at most ``width`` cells."""
    if text.isascii():
        return text[:width]
    used = 0
    for i, ch in enumerate(text):
        used += _cell(ch)
        if used > width:
            return text[:i]
    return text


def pad(text: str, width: int, right: bool = False) -> str:
    """``text`` padded with spaces to ``width`` cells, on the left when ``right`` (numbers)."""
    space = " " * max(0, width - cells(text))
    return space + text if right else text + space
