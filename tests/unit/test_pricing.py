"""Prices: every built-in row of FORMATS.md §4 against a hand calculation, and each modifier."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from tokentop.core.pricing import PriceBook, PriceFileError, load_overrides, normalize_model

NOV = datetime(2026, 11, 20, 12, tzinfo=timezone.utc).timestamp()
# A small call: 1k input, 2k 5-minute writes, 3k 1-hour writes, 4k reads, 5k output (prompt 10k, no tier).
USAGE = (1000, 2000, 3000, 4000, 5000)

# model id as logged -> (input, 5m write, 1h write, read, output) USD per million: FORMATS.md §4, typed by hand.
ROWS = {
    "claude-3-haiku-20240307": (0.25, 0.30, 0.50, 0.03, 1.25),
    "claude-3-5-haiku-20241022": (0.80, 1.00, 1.60, 0.08, 4),
    "claude-haiku-4-5-20251001": (1, 1.25, 2, 0.10, 5),
    "claude-haiku-5-5": (0.10, 0.125, 0.20, 0.01, 0.50),
    "claude-3-5-sonnet-20241022": (3, 3.75, 6, 0.30, 15),
    "claude-3-7-sonnet-20250219": (3, 3.75, 6, 0.30, 15),
    "claude-sonnet-4-20250514": (3, 3.75, 6, 0.30, 15),
    "claude-sonnet-4-5-20250929": (3, 3.75, 6, 0.30, 15),
    "claude-sonnet-4-6": (3, 3.75, 6, 0.30, 15),
    "claude-sonnet-5": (2, 2.50, 4, 0.20, 10),
    "claude-sonnet-5-5": (2, 2.50, 4, 0.10, 10),
    "claude-3-opus-20240229": (15, 18.75, 30, 1.50, 75),
    "claude-opus-4-20250514": (15, 18.75, 30, 1.50, 75),
    "claude-opus-4-1-20250805": (15, 18.75, 30, 1.50, 75),
    "claude-opus-4-5-20251101": (5, 6.25, 10, 0.50, 25),
    "claude-opus-4-6": (5, 6.25, 10, 0.50, 25),
    "claude-opus-4-7": (5, 6.25, 10, 0.50, 25),
    "claude-opus-4-8": (5, 6.25, 10, 0.50, 25),
    "claude-opus-5": (5, 6.25, 10, 0.50, 25),
    "claude-opus-5-5": (4, 5, 8, 0.20, 20),
    "claude-fable-5": (10, 12.50, 20, 1, 50),
    "claude-mythos-5": (10, 12.50, 20, 1, 50),
    "claude-fable-5-1": (10, 12.50, 20, 0.25, 50),
    "claude-mythos-5-1": (10, 12.50, 20, 0.25, 50),
    "claude-fable-5-2": (8, 10, 16, 0.20, 40),
    "claude-mythos-5-2": (8, 10, 16, 0.20, 40),
}


def hand(rates: tuple[float, ...], usage: tuple[int, ...] = USAGE) -> float:
    return sum(r * n for r, n in zip(rates, usage, strict=True)) / 1e6


@pytest.mark.parametrize("model", sorted(ROWS))
def test_every_builtin_row_matches_a_hand_calculation(model: str) -> None:
    got = PriceBook().cost(model, NOV, *USAGE)
    assert got == pytest.approx(hand(ROWS[model]), rel=1e-12)


def test_one_hour_writes_are_not_priced_at_the_five_minute_rate() -> None:
    book = PriceBook()
    five = book.cost("claude-sonnet-4-5", NOV, 0, 100_000, 0, 0, 0)
    hour = book.cost("claude-sonnet-4-5", NOV, 0, 0, 100_000, 0, 0)
    assert (five, hour) == (pytest.approx(0.375), pytest.approx(0.6))


@pytest.mark.parametrize(("model", "tier"), [
    ("claude-sonnet-4-20250514", (6, 7.5, 12, 0.6, 22.5)),
    ("claude-sonnet-4-5-20250929", (6, 7.5, 12, 0.6, 22.5)),
])
def test_long_context_prices_the_whole_call_at_the_tier_rate(model: str, tier: tuple[float, ...]) -> None:
    big = (150_000, 20_000, 10_000, 20_001, 3_000)  # prompt = 200,001 > 200k
    assert PriceBook().cost(model, NOV, *big) == pytest.approx(hand(tier, big), rel=1e-12)
    at_limit = (150_000, 20_000, 10_000, 20_000, 3_000)  # exactly 200k: base rates
    assert PriceBook().cost(model, NOV, *at_limit) == pytest.approx(hand(ROWS[model], at_limit), rel=1e-12)


def test_opus_4_6_tier_before_ga_and_flat_after() -> None:
    big = (210_000, 0, 0, 0, 1_000)
    before = datetime(2026, 3, 12, 12, tzinfo=timezone.utc).timestamp()
    after = datetime(2026, 3, 13, 12, tzinfo=timezone.utc).timestamp()
    book = PriceBook()
    assert book.cost("claude-opus-4-6", before, *big) == pytest.approx(hand((10, 12.5, 20, 1, 37.5), big))
    assert book.cost("claude-opus-4-6", after, *big) == pytest.approx(hand(ROWS["claude-opus-4-6"], big))


def test_haiku_5_5_prompt_over_100k_pays_five_times() -> None:
    big = (100_001, 0, 0, 0, 1_000)
    assert PriceBook().cost("claude-haiku-5-5", NOV, *big) == pytest.approx(
        hand(tuple(5 * r for r in ROWS["claude-haiku-5-5"]), big))


def test_sonnet_5_5_read_price_changed_on_2026_10_07() -> None:
    book = PriceBook()
    before = datetime(2026, 10, 6, 23, tzinfo=timezone.utc).timestamp()
    after = datetime(2026, 10, 7, 1, tzinfo=timezone.utc).timestamp()
    assert book.cost("claude-sonnet-5-5", before, 0, 0, 0, 1_000_000, 0) == pytest.approx(0.20)
    assert book.cost("claude-sonnet-5-5", after, 0, 0, 0, 1_000_000, 0) == pytest.approx(0.10)


@pytest.mark.parametrize(("model", "fast_in", "fast_out"), [
    ("claude-opus-4-6", 30, 150), ("claude-opus-4-8", 10, 50), ("claude-opus-5", 10, 50),
    ("claude-opus-5-5", 8, 40), ("claude-fable-5-2", 16, 80),
])
def test_fast_mode_rates(model: str, fast_in: float, fast_out: float) -> None:
    book = PriceBook()
    assert book.cost(model, NOV, 1_000_000, 0, 0, 0, 0, speed="fast") == pytest.approx(fast_in)
    assert book.cost(model, NOV, 0, 0, 0, 0, 1_000_000, speed="fast") == pytest.approx(fast_out)


def test_us_geo_is_ten_percent_more_on_4_6_and_later_only() -> None:
    book = PriceBook()
    assert book.cost("claude-opus-4-6", NOV, 1_000_000, 0, 0, 0, 0, geo="us") == pytest.approx(5.5)
    assert book.cost("claude-opus-4-5", NOV, 1_000_000, 0, 0, 0, 0, geo="us") == pytest.approx(5.0)


def test_web_search_is_ten_dollars_per_thousand_and_batch_halves_tokens_only() -> None:
    book = PriceBook()
    assert book.cost("claude-sonnet-4-5", NOV, 0, 0, 0, 0, 0, web_search_requests=3) == pytest.approx(0.03)
    assert book.cost("claude-sonnet-4-5", NOV, 100_000, 0, 0, 0, 0, web_search_requests=1000,
                     batch=True) == pytest.approx(0.15 + 10)


@pytest.mark.parametrize("model", ["qwen2.5-7b-instruct", "<synthetic>", "claude-opus-4-10", "gpt-9"])
def test_unknown_models_are_unpriced_not_zero(model: str) -> None:
    assert PriceBook().cost(model, NOV, *USAGE) is None


def test_model_ids_normalize_without_prefix_matching() -> None:
    assert normalize_model("claude-opus-4-5-20251101") == "claude-opus-4-5"
    assert normalize_model("claude-sonnet-4-5[1m]") == "claude-sonnet-4-5"
    assert normalize_model("anthropic/claude-haiku-4-5") == "claude-haiku-4-5"
    assert normalize_model("us.anthropic.claude-sonnet-4-5-20250929-v1:0") == "claude-sonnet-4-5"
    # claude-opus-4-5 must not fall back to claude-opus-4 (3x too high)
    assert PriceBook().cost("claude-opus-4-5", NOV, 1_000_000, 0, 0, 0, 0) == pytest.approx(5)


def test_user_overrides_price_unknown_models_and_win(tmp_path: Path) -> None:
    f = tmp_path / "prices.toml"
    f.write_text('[models."qwen2.5-7b-instruct"]\ninput = 0.1\noutput = 0.2\n'
                 '[models."claude-sonnet-4-5"]\ninput = 1\noutput = 2\ncache_read = 0.5\n')
    book = PriceBook.from_toml(f)
    assert book.cost("qwen2.5-7b-instruct", NOV, 1_000_000, 0, 0, 0, 1_000_000) == pytest.approx(0.3)
    assert book.cost("claude-sonnet-4-5-20250929", NOV, 0, 1_000_000, 1_000_000, 1_000_000, 0) == \
        pytest.approx(1.25 + 2 + 0.5)


def test_bad_override_file_is_a_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "prices.toml"
    f.write_text('[models."x"]\ninput = "cheap"\noutput = 1\n')
    with pytest.raises(PriceFileError, match="input"):
        load_overrides(f)


def test_price_table_is_cached_on_disk_and_gives_the_same_prices(tmp_path: Path, monkeypatch) -> None:
    fresh = PriceBook(cache_dir=tmp_path)
    want = {m: fresh.cost(m, NOV, *USAGE) for m in ROWS}
    assert len(list(tmp_path.glob("genai-prices-*.json"))) == 1

    import tokentop.core.pricing as pricing

    def no_genai() -> None:
        raise AssertionError("genai-prices imported although the cache exists")

    monkeypatch.setattr(pricing, "_build_genai_table", no_genai)
    cached = PriceBook(cache_dir=tmp_path)
    assert {m: cached.cost(m, NOV, *USAGE) for m in ROWS} == want
