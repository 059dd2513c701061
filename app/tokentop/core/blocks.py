"""5-hour blocks (ccusage's algorithm, an estimate unlike measured plan windows): burn rate and projection.

Calls sorted by time; the first opens a block at its UTC hour floor. A new block opens when a call is more than
5 h after the block start or more than 5 h after the previous call (the latter also adds a gap block). A block is
active while now - last < 5 h and now < start + 5 h.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .records import Call

BLOCK = 5 * 3600


@dataclass
class Block:
    """One 5-hour block."""

    start: float
    end: float
    gap: bool = False
    calls: int = 0
    tokens: int = 0
    cost: float = 0.0
    unpriced: int = 0
    first: float = 0.0
    last: float = 0.0
    models: set[str] = field(default_factory=set)

    def active(self, now: float) -> bool:
        """Still running: the last call is under 5 h ago and the block's 5 h are not over."""
        return not self.gap and now - self.last < BLOCK and now < self.end

    def burn(self) -> tuple[float, float]:
        """(tokens per minute, USD per hour) from the first to the last call."""
        minutes = (self.last - self.first) / 60
        if minutes <= 0:
            return 0.0, 0.0
        return self.tokens / minutes, self.cost / minutes * 60

    def as_json(self, now: float) -> dict[str, Any]:
        """The block as ``report --blocks`` prints it."""
        iso = lambda t: datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")  # noqa: E731
        out: dict[str, Any] = {"start": iso(self.start), "end": iso(self.end), "gap": self.gap,
                               "calls": self.calls, "tokens": self.tokens, "cost_usd": self.cost,
                               "unpriced_calls": self.unpriced, "models": sorted(self.models),
                               "active": self.active(now)}
        if self.active(now):
            tpm, usd_h = self.burn()
            minutes_left = max(0.0, (self.end - now) / 60)
            out.update({"tokens_per_minute": tpm, "usd_per_hour": usd_h, "minutes_left": minutes_left,
                        "projected_tokens": self.tokens + tpm * minutes_left,
                        "projected_cost_usd": self.cost + usd_h / 60 * minutes_left})
        return out


def blocks(calls: Iterable[Call]) -> list[Block]:
    """The blocks of these calls, gap blocks included, oldest first."""
    out: list[Block] = []
    cur: Block | None = None
    prev = 0.0
    for c in sorted(calls, key=lambda c: c.ts):
        if cur is None or c.ts - cur.start > BLOCK or c.ts - prev > BLOCK:
            if cur is not None and c.ts - prev > BLOCK:
                out.append(Block(prev + BLOCK, c.ts, gap=True))
            start = c.ts - c.ts % 3600  # UTC hour floor
            cur = Block(start, start + BLOCK, first=c.ts)
            out.append(cur)
        cur.calls += 1
        cur.tokens += c.tokens()
        if c.cost is None:
            cur.unpriced += 1
        else:
            cur.cost += c.cost
        cur.last = c.ts
        cur.models.add(c.model)
        prev = c.ts
    return out


def blocks_report(calls: Iterable[Call], now: float) -> dict[str, Any]:
    """All blocks, the active one, and the largest finished block (the "max" a warning compares to)."""
    bs = blocks(calls)
    finished = [b for b in bs if not b.gap and not b.active(now)]
    peak = max(finished, key=lambda b: b.tokens, default=None)
    active = next((b for b in reversed(bs) if b.active(now)), None)
    out: dict[str, Any] = {"blocks": [b.as_json(now) for b in bs], "active": active.as_json(now) if active else None,
                           "max_tokens": peak.tokens if peak else None}
    if active and peak:
        out["active"]["percent_of_max"] = active.tokens / peak.tokens * 100 if peak.tokens else None
    return out
