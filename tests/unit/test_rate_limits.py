"""Rate-limit headroom: parsing, token-bucket refill, staleness, most restrictive bucket, bad files."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from tokentop.core.rate_limits import read_rate_limits

T0 = datetime(2026, 11, 20, 18, 0, tzinfo=timezone.utc).timestamp()
SAMPLE = {
    "claude-sonnet-4-5": {
        "observed_at": "2026-11-20T18:00:00+00:00",
        "requests": {"limit": 50, "remaining": 31, "reset": "2026-11-20T18:00:40+00:00"},
        "input_tokens": {"limit": 50000, "remaining": 5000, "reset": "2026-11-20T18:00:30+00:00"},
        "output_tokens": {"limit": 8000, "remaining": 7100, "reset": "2026-11-20T18:00:20+00:00"},
        "tokens_combined": {"limit": None, "remaining": None, "reset": None},
    },
    "claude-haiku-4-5": {
        "observed_at": "2026-11-20T17:50:00+00:00",
        "requests": {"limit": 50, "remaining": 1, "reset": "2026-11-20T17:50:40+00:00"},
    },
}


def write(tmp_path: Path, data: object) -> Path:
    p = tmp_path / "rate_limits.json"
    p.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return p


def test_headroom_is_remaining_over_limit_and_tightest_skips_stale(tmp_path: Path) -> None:
    rl = read_rate_limits(write(tmp_path, SAMPLE))
    assert rl.status == ""
    # Haiku's 1/50 is tighter but stale (10 minutes old): the tightest fresh bucket is Sonnet's input at 10%.
    assert rl.tightest(T0) == ("claude-sonnet-4-5", "input_tokens", pytest.approx(0.1))
    view = rl.as_json(T0)
    haiku = next(m for m in view["models"] if m["model"] == "claude-haiku-4-5")
    assert haiku["stale"] is True
    sonnet = next(m for m in view["models"] if m["model"] == "claude-sonnet-4-5")
    assert [b["kind"] for b in sonnet["buckets"]] == ["requests", "input_tokens", "output_tokens"]  # null limit


def test_token_bucket_refills_linearly_until_reset(tmp_path: Path) -> None:
    rl = read_rate_limits(write(tmp_path, SAMPLE))
    sonnet = next(o for o in rl.observations if o.model == "claude-sonnet-4-5")
    inp = next(b for b in sonnet.buckets if b.kind == "input_tokens")
    assert inp.estimate(sonnet.observed_at, T0) == 5000
    assert inp.estimate(sonnet.observed_at, T0 + 15) == pytest.approx(5000 + 45000 * 0.5)
    assert inp.estimate(sonnet.observed_at, T0 + 30) == 50000
    assert inp.estimate(sonnet.observed_at, T0 + 3600) == 50000


@pytest.mark.parametrize(("content", "needle"), [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not a JSON object"),
])
def test_malformed_file_gives_a_status_not_a_crash(tmp_path: Path, content: str, needle: str) -> None:
    rl = read_rate_limits(write(tmp_path, content))
    assert rl.observations == []
    assert needle in rl.status


def test_missing_file_says_where_data_comes_from(tmp_path: Path) -> None:
    rl = read_rate_limits(tmp_path / "runtime" / "rate_limits.json")
    assert "no observations yet" in rl.status


def test_bad_entries_are_skipped_and_counted(tmp_path: Path) -> None:
    rl = read_rate_limits(write(tmp_path, {**SAMPLE, "x": "oops", "y": {"observed_at": "never"}}))
    assert len(rl.observations) == 2
    assert rl.status == "2 malformed entries skipped"
