"""5-hour blocks: UTC hour floor, a new block after 5 h from the start or a 5 h gap, burn rate, projection."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from tokentop.core.blocks import blocks, blocks_report
from tokentop.core.records import CLAUDE_CODE, Call

H = 3600.0
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc).timestamp()


def call(ts: float, out: int = 100, cost: float | None = 1.0) -> Call:
    return Call(CLAUDE_CODE, ts, "claude-sonnet-4-5", "p", "s", "cloud", 0, out, 0, 0, cost, f"m{ts}")


def test_block_starts_at_the_utc_hour_floor_and_spans_five_hours() -> None:
    bs = blocks([call(T0 + 0.6 * H), call(T0 + 4.9 * H)])
    assert [(b.start, b.end, b.calls) for b in bs] == [(T0, T0 + 5 * H, 2)]


def test_a_call_more_than_five_hours_after_the_start_opens_a_new_block() -> None:
    bs = blocks([call(T0 + 0.5 * H), call(T0 + 3 * H), call(T0 + 5.2 * H)])
    assert [(b.start, b.calls, b.gap) for b in bs] == [(T0, 2, False), (T0 + 5 * H, 1, False)]


def test_a_gap_of_more_than_five_hours_adds_a_gap_block() -> None:
    bs = blocks([call(T0), call(T0 + 11 * H + 0.25 * H)])
    assert [(b.gap, b.start, b.end) for b in bs] == [
        (False, T0, T0 + 5 * H), (True, T0 + 5 * H, T0 + 11.25 * H), (False, T0 + 11 * H, T0 + 16 * H)]


def test_active_block_burn_rate_projection_and_share_of_the_largest() -> None:
    old = [call(T0 - 24 * H + i * 60, out=1000) for i in range(10)]  # a finished block of 10,000 tokens
    now = T0 + 2 * H
    current = [call(T0 + i * 0.5 * H, out=600, cost=0.5) for i in range(4)]  # 0, 30, 60, 90 minutes
    rep = blocks_report(old + current, now)
    a = rep["active"]
    assert a["calls"] == 4 and a["tokens"] == 2400 and a["cost_usd"] == 2.0
    assert a["tokens_per_minute"] == pytest.approx(2400 / 90)
    assert a["usd_per_hour"] == pytest.approx(2.0 / 1.5)
    assert a["minutes_left"] == pytest.approx(180)
    assert a["projected_cost_usd"] == pytest.approx(2.0 + 2.0 / 1.5 * 3)
    assert rep["max_tokens"] == 10_000 and a["percent_of_max"] == pytest.approx(24)


def test_no_active_block_after_five_idle_hours() -> None:
    assert blocks_report([call(T0)], T0 + 5.5 * H)["active"] is None
