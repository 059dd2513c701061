"""Recording calls: the log row format, prices, concurrent writers, SDK responses and rate-limit headers."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from tokentop import record, record_response
from tokentop.core.rate_limits import read_rate_limits
from tokentop.recorder import observation_from_headers

HEADERS = {
    "anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "31",
    "anthropic-ratelimit-requests-reset": "2026-11-20T18:00:40Z",
    "anthropic-ratelimit-input-tokens-limit": "50000", "anthropic-ratelimit-input-tokens-remaining": "42000",
    "anthropic-ratelimit-input-tokens-reset": "2026-11-20T18:00:30Z",
    "Anthropic-RateLimit-Output-Tokens-Limit": "8000", "anthropic-ratelimit-output-tokens-remaining": "7000",
    "anthropic-ratelimit-output-tokens-reset": "2026-11-20T18:00:20Z",
    "anthropic-ratelimit-tokens-limit": "58000", "anthropic-ratelimit-tokens-remaining": "49000",
    "anthropic-ratelimit-tokens-reset": "2026-11-20T18:00:20Z", "retry-after": "12",
}


def rows(data_root: Path) -> list[dict]:
    files = sorted(data_root.glob("agents/*/llm_costs.jsonl"))
    return [json.loads(x) for f in files for x in f.read_text().splitlines()]


def test_record_writes_the_app_log_format_and_prices_it(data_root: Path) -> None:
    row = record("claude-sonnet-4-5", 1000, 200, cache_creation_tokens=500, cache_write_1h_tokens=200,
                 session="20261120-abc", task="summarize:day", project="shop", data_root=data_root,
                 when=datetime(2026, 11, 20, 12, tzinfo=timezone.utc))
    [written] = rows(data_root)
    assert written == row
    assert set(row) == {"timestamp", "model", "task_id", "input_tokens", "output_tokens", "cache_read_tokens",
                        "cache_creation_tokens", "estimated_cost_usd", "cached", "execution_mode", "priced_with",
                        "caller", "backend", "project"}
    assert row["estimated_cost_usd"] == pytest.approx((1000 * 3 + 300 * 3.75 + 200 * 6 + 200 * 15) / 1e6)
    assert (data_root / "agents" / "20261120-abc" / "llm_costs.jsonl").exists()
    assert datetime.fromisoformat(row["timestamp"]).utcoffset() is not None


def test_local_and_unknown_models_are_zero_and_null_never_invented(data_root: Path) -> None:
    assert record("qwen2.5-7b", 10, 10, mode="local", data_root=data_root)["estimated_cost_usd"] == 0.0
    assert record("my-cloud-model", 10, 10, data_root=data_root)["estimated_cost_usd"] is None
    assert record("claude-haiku-4-5", 10, 10, cost_usd=0.5, data_root=data_root)["estimated_cost_usd"] == 0.5


@pytest.mark.parametrize("kw", [{"mode": "hybrid"}, {"cache_write_1h_tokens": 5}, {"output_tokens": 10**9 + 1},
                                {"cost_usd": -0.5}, {"cost_usd": float("nan")}, {"cost_usd": 2e6}, {"cost_usd": "1"}])
def test_bad_values_are_refused(data_root: Path, kw: dict) -> None:
    with pytest.raises(ValueError):
        record("m", 1, **{"output_tokens": 1, "data_root": data_root, **kw})
    with pytest.raises(ValueError):
        record("m", -1, 1, data_root=data_root)
    assert not list(data_root.rglob("llm_costs.jsonl"))  # nothing written


def test_the_largest_values_a_log_line_may_hold_are_recorded_and_read_back(data_root: Path, report) -> None:
    record("m", 10**9, 10**9, cost_usd=1e6, data_root=data_root)
    rep = report()
    assert rep["totals"]["input_tokens"] == 10**9 and rep["totals"]["cost_usd"] == 1e6
    assert rep["warnings"]["unparsable_lines"] == 0


def test_concurrent_log_writers_never_tear_lines(data_root: Path) -> None:
    script = ("import sys\nfrom tokentop import record\n"
              "for i in range(150):\n"
              "    record('claude-haiku-4-5', i, 7, session='shared', task='t' * 300 + str(i), cost_usd=0.001,"
              " data_root=sys.argv[1])\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(data_root)]) for _ in range(6)]
    assert all(p.wait(60) == 0 for p in procs)
    lines = (data_root / "agents" / "shared" / "llm_costs.jsonl").read_text().splitlines()
    assert len(lines) == 900
    assert all(json.loads(x)["output_tokens"] == 7 for x in lines)


def test_cli_log_appends_one_row(data_root: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "tokentop.cli", "log", "--data-root", str(data_root), "--model",
                        "claude-opus-4-5", "--input", "100", "--output", "10", "--cache-read", "1000", "--session",
                        "s", "--mode", "cloud", "--task", "t", "--project", "p"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    [row] = rows(data_root)
    assert row == json.loads(r.stdout)
    assert (row["project"], row["task_id"], row["cache_read_tokens"]) == ("p", "t", 1000)


def test_record_response_takes_an_sdk_like_object_and_its_headers(data_root: Path) -> None:
    class Usage:
        input_tokens = 12
        output_tokens = 345
        cache_read_input_tokens = 5000
        cache_creation_input_tokens = 800
        cache_creation = {"ephemeral_5m_input_tokens": 300, "ephemeral_1h_input_tokens": 500}

    class Response:
        model = "claude-sonnet-4-5-20250929"
        usage = Usage()

    row = record_response(Response(), headers=HEADERS, data_root=data_root, session="s")
    assert (row["input_tokens"], row["output_tokens"], row["cache_creation_tokens"]) == (12, 345, 800)
    assert row["estimated_cost_usd"] == pytest.approx((12 * 3 + 300 * 3.75 + 500 * 6 + 5000 * 0.3 + 345 * 15) / 1e6)
    rl = read_rate_limits(data_root / "runtime" / "rate_limits.json")
    [obs] = rl.observations
    assert obs.model == "claude-sonnet-4-5-20250929"
    kinds = {b.kind: (b.limit, b.remaining) for b in obs.buckets}
    assert kinds == {"requests": (50, 31), "input_tokens": (50000, 42000), "output_tokens": (8000, 7000),
                     "tokens_combined": (58000, 49000)}
    # a dict response works too, and a second model is added beside the first
    record_response({"model": "claude-haiku-4-5", "usage": {"input_tokens": 1, "output_tokens": 2}},
                    headers={"anthropic-ratelimit-requests-limit": "5", "anthropic-ratelimit-requests-remaining": "1"},
                    data_root=data_root)
    assert [o.model for o in read_rate_limits(data_root / "runtime" / "rate_limits.json").observations] == [
        "claude-haiku-4-5", "claude-sonnet-4-5-20250929"]


def test_headers_without_rate_limits_change_nothing() -> None:
    assert observation_from_headers({"content-type": "application/json"}) is None
    obs = observation_from_headers(HEADERS, now=0)
    assert obs is not None and obs["retry_after_s"] == "12"


def test_statusline_records_plan_windows_and_prints_one_line(claude_dir: Path, data_root: Path) -> None:
    now = datetime.now(timezone.utc).timestamp()
    payload = {"session_id": "x", "model": {"id": "claude-opus-4-5"},
               "rate_limits": {"five_hour": {"used_percentage": 42, "resets_at": now + 7800},
                               "seven_day": {"used_percentage": 101.5, "resets_at": "2099-01-01T00:00:00Z"}}}
    base = [sys.executable, "-m", "tokentop.cli", "statusline", "--claude-dir", str(claude_dir), "--data-root",
            str(data_root), "--no-ledger", "--tz", "UTC"]
    r = subprocess.run(base, input=json.dumps(payload), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("tokentop · today $0.00 · 5h 42% ⟳2h") and "7d 102%" in r.stdout
    assert len(r.stdout.splitlines()) == 1
    plan = json.loads((data_root / "runtime" / "plan_limits.json").read_text())
    assert plan["five_hour"]["used_percentage"] == 42
    # without rate_limits (before the first response, some builds): a line, and the last record is kept
    r = subprocess.run(base, input=json.dumps({"model": {"id": "x"}}), capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "tokentop · today $0.00\n"
    assert json.loads((data_root / "runtime" / "plan_limits.json").read_text()) == plan
