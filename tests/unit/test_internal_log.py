"""The app's llm_costs.jsonl: cost as logged, modes, legacy timestamps, NULL tokens, project."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.builders import internal_row, write_lines


def log(data_root: Path, session: str, rows: list[str], **kw) -> Path:
    return write_lines(data_root / "agents" / session / "llm_costs.jsonl", rows, **kw)


def test_every_row_is_a_call_with_cost_as_logged(data_root: Path, report) -> None:
    log(data_root, "20261120-aa", [
        internal_row(cost=0.5, input=100, output=10, cr=1000, cw=50),
        internal_row(cost=0.0, mode="local", model="qwen2.5-7b-instruct", cached=False),
        internal_row(cost=0.0, cached=True),
    ])
    rep = report()
    t = rep["totals"]
    assert (t["calls"], t["cloud_calls"], t["local_calls"]) == (3, 2, 1)
    assert t["cost_usd"] == 0.5
    assert t["unpriced_calls"] == 0
    assert (t["input_tokens"], t["cache_read_tokens"], t["cache_creation_tokens"]) == (2100, 1000, 50)
    assert rep["sessions"][0]["session"] == "20261120-aa"
    assert rep["sessions"][0]["source"] == "internal"


def test_legacy_timestamp_without_offset_is_utc(data_root: Path, report) -> None:
    log(data_root, "s", [internal_row(ts="2026-11-20T23:30:00"), internal_row(ts="2026-11-21T00:30:00+02:00")])
    days = {d["day"]: d["calls"] for d in report()["by_day"]}
    assert days == {"2026-11-20": 2}


def test_null_or_missing_tokens_count_as_zero_with_a_warning(data_root: Path, report) -> None:
    row = internal_row(input=5).replace('"output_tokens": 100', '"output_tokens": null')
    log(data_root, "s", [row, internal_row(input=7).replace(', "cache_read_tokens": 0', "")])
    rep = report()
    assert rep["totals"]["calls"] == 2
    assert rep["totals"]["output_tokens"] == 100
    assert rep["warnings"]["null_token_fields"] == 2


def test_project_field_wins_else_internal_project_else_data_root_name(data_root: Path, report) -> None:
    log(data_root, "s", [internal_row(project="mine"), internal_row()])
    assert {p["project"] for p in report()["by_project"]} == {"mine", "data"}
    assert {p["project"] for p in report("--internal-project", "work-buddy")["by_project"]} == {"mine", "work-buddy"}


def test_impossible_token_counts_and_costs_are_skipped_and_counted(data_root: Path, report) -> None:
    log(data_root, "s", [internal_row(input=7, cost=0.5), internal_row(input=2**70), internal_row(input=-1),
                         internal_row(cost=-0.5), internal_row(cost=1e300), internal_row(input=2.5)])
    rep = report()
    assert rep["totals"]["calls"] == 1 and rep["totals"]["input_tokens"] == 7 and rep["totals"]["cost_usd"] == 0.5
    assert rep["warnings"]["unparsable_lines"] == 5


def test_bad_rows_are_skipped_and_counted(data_root: Path, report) -> None:
    log(data_root, "s", [internal_row(), "{oops", '{"model": "x"}', internal_row()], final_newline=False)
    rep = report()
    # the last row has no newline yet: not a line; '{"model": "x"}' lacks a timestamp
    assert rep["totals"]["calls"] == 1
    assert rep["warnings"]["unparsable_lines"] == 2


def test_missing_cost_is_priced_by_us_or_unpriced(data_root: Path, report) -> None:
    log(data_root, "s", [
        internal_row(model="claude-sonnet-4-5", input=100_000, output=0, cost=None),
        internal_row(model="my-local-llm", cost=None),
    ])
    t = report()["totals"]
    assert t["cost_usd"] == pytest.approx(0.3)
    assert t["unpriced_calls"] == 1
