"""Model prices: genai-prices' offline table behind a per-(model, day) cache, patched, with user overrides.

The hot path (`PriceBook.cost`) is a dict lookup plus arithmetic; genai-prices is imported lazily on the first
lookup of a model and never asked to update itself unless the user asks for it.
"""

from __future__ import annotations

import functools
import os
import re
from datetime import date
from pathlib import Path
from typing import Any

import msgspec

from .files import write_atomic

#: Version of tokentop's own patches; stored with re-priced calls.
PRICE_PATCH_VERSION = "tt1"

_DATE_SUFFIX = re.compile(r"-\d{8}$")
_BEDROCK_SUFFIX = re.compile(r"-v\d+(:\d+)?$")


@functools.lru_cache(maxsize=4096)  # filters test it per model for every redraw
def normalize_model(model: str) -> str:
    """Canonical id for price lookup: lower case, no provider prefix, no ``[1m]``, no ``-YYYYMMDD``."""
    m = model.strip().lower()
    for prefix in ("anthropic/", "anthropic.", "us.anthropic.", "eu.anthropic.", "apac.anthropic."):
        if m.startswith(prefix):
            m = m[len(prefix):]
    m = m.replace("[1m]", "")
    m = m.split("@", 1)[0]  # Vertex: claude-opus-4-5@20251101
    m = _BEDROCK_SUFFIX.sub("", m)
    m = _DATE_SUFFIX.sub("", m)
    return m


class Rates(msgspec.Struct, frozen=True):
    """USD per million tokens for one model at one date; ``tier`` applies to the whole call above the threshold."""

    input: float
    write_5m: float
    write_1h: float
    read: float
    output: float
    web_search_per_k: float = 10.0
    tier_threshold: int | None = None
    tier: tuple[float, float, float, float, float] | None = None  # input, 5m write, 1h write, read, output
    fast_multiplier: float | None = None
    geo_us_multiplier: float = 1.0
    source: str = "genai-prices"


# --- tokentop's patches over genai-prices (FORMATS.md §4 "Gaps") ---------------------------------------------

#: Fast mode (speed:"fast") multiplies every token class (cache rates scale from the fast input/output rates).
_FAST = {
    "claude-opus-4-6": 6.0,  # $30/$150 vs $5/$25
    "claude-opus-4-7": 6.0,
    "claude-opus-4-8": 2.0,  # $10/$50
    "claude-opus-5": 2.0,
    "claude-opus-5-5": 2.0,  # $8/$40 vs $4/$20
    "claude-fable-5-2": 2.0,  # $16/$80 vs $8/$40
    "claude-mythos-5-2": 2.0,
}
#: inference_geo:"us" costs 1.1x on Opus/Sonnet 4.6 and later.
_GEO_US = {
    "claude-opus-4-6", "claude-opus-4-7", "claude-opus-4-8", "claude-opus-5", "claude-opus-5-5",
    "claude-sonnet-4-6", "claude-sonnet-5", "claude-sonnet-5-5",
}
#: Rows genai-prices lacks entirely: (input, 5m write, 1h write, read, output).
_MISSING = {
    "claude-mythos-5": (10.0, 12.5, 20.0, 1.0, 50.0),
    "claude-mythos-5-1": (10.0, 12.5, 20.0, 0.25, 50.0),
}
_SONNET_4_TIER = (200_000, (6.0, 7.5, 12.0, 0.6, 22.5))
_SONNET_5_5_READ_CHANGE = date(2026, 10, 7)


def _patch(model: str, day: date, r: Rates) -> Rates:
    if model == "claude-sonnet-4" and r.tier is None:
        r = msgspec.structs.replace(r, tier_threshold=_SONNET_4_TIER[0], tier=_SONNET_4_TIER[1],
                                    source="genai-prices+tt")
    if model == "claude-sonnet-5-5" and day < _SONNET_5_5_READ_CHANGE:
        r = msgspec.structs.replace(r, read=0.20, source="genai-prices+tt")
    if model in _FAST:
        r = msgspec.structs.replace(r, fast_multiplier=_FAST[model])
    if model in _GEO_US:
        r = msgspec.structs.replace(r, geo_us_multiplier=1.1)
    return r


def _aliases(genai_id: str) -> set[str]:
    """Normalized ids that name this genai-prices model exactly (no prefix matching)."""
    out = {genai_id, genai_id.removesuffix("-latest")}
    if genai_id.endswith("-0"):
        out.add(genai_id[:-2])
    return out


Periods = list[tuple[int, Rates]]  # (first UTC day as an ordinal, 0 = always), rates; in genai-prices' order


def _rates_of(mp: Any) -> Rates:
    from genai_prices.types import TieredPrices

    fields = ("input_mtok", "cache_write_mtok", "cache_write_1h_mtok", "cache_read_mtok", "output_mtok")
    base: list[float] = []
    tier: list[float] = []
    threshold: int | None = None
    for f in fields:
        v = getattr(mp, f, None)
        if isinstance(v, TieredPrices):
            base.append(float(v.base))
            tier.append(float(v.tiers[0].price))
            threshold = v.tiers[0].start
        else:
            base.append(float(v) if v is not None else 0.0)
            tier.append(base[-1])
    if base[2] == 0.0 and base[0]:
        base[2] = base[0] * 2  # no 1h figure published: Anthropic's 1h write is 2x input
    web = getattr(mp, "web_searches_kcount", None)
    return Rates(
        *base,  # type: ignore[arg-type]
        web_search_per_k=float(web) if web is not None else 10.0,
        tier_threshold=threshold,
        tier=tuple(tier) if threshold is not None else None,  # type: ignore[arg-type]
    )


def _build_genai_table() -> dict[str, Periods]:
    """Every anthropic model of genai-prices' bundled snapshot, by exact normalized alias, with dated periods."""
    from genai_prices import (
        data_snapshot,  # ~0.4 s to import: done once per genai-prices version, then cached
    )
    from genai_prices.types import ModelPrice, StartDateConstraint

    snapshot = data_snapshot.get_snapshot()
    provider = next(p for p in snapshot.providers if p.id == "anthropic")
    table: dict[str, Periods] = {}
    for m in provider.models:
        if isinstance(m.prices, ModelPrice):
            periods = [(0, _rates_of(m.prices))]
        else:
            periods = []
            for cp in m.prices:
                if cp.constraint is None:
                    periods.append((0, _rates_of(cp.prices)))
                elif isinstance(cp.constraint, StartDateConstraint):
                    periods.append((cp.constraint.start_date.toordinal(), _rates_of(cp.prices)))
        if periods:
            for alias in _aliases(m.id):
                table.setdefault(alias, periods)
    return table


_table_codec = (msgspec.json.Encoder(), msgspec.json.Decoder(dict[str, list[tuple[int, Rates]]]))


def _genai_fingerprint() -> str:
    """Identifies the installed genai-prices data without importing it (its data file's size and mtime)."""
    import importlib.util

    spec = importlib.util.find_spec("genai_prices")
    if spec is None or spec.origin is None:
        return "none"
    st = os.stat(os.path.join(os.path.dirname(spec.origin), "data.py"))
    return f"{st.st_size}-{st.st_mtime_ns}"


def load_genai_table(cache_dir: Path | None) -> dict[str, Periods]:
    """genai-prices' anthropic table, from a cache file keyed by the installed data when possible."""
    if cache_dir is None:
        return _build_genai_table()
    path = Path(cache_dir) / f"genai-prices-{_genai_fingerprint()}.json"
    try:
        return _table_codec[1].decode(path.read_bytes())
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        pass
    table = _build_genai_table()
    try:
        write_atomic(path, _table_codec[0].encode(table))
    except OSError:
        pass  # a read-only cache dir only costs the import next time
    return table


def _period_rates(periods: Periods, day: date) -> Rates:
    """genai-prices' rule: the last period that has started wins; none started means the first."""
    d = day.toordinal()
    for start, rates in reversed(periods):
        if start <= d:
            return rates
    return periods[0][1]


class PriceBook:
    """Prices calls; caches coefficients per (model, UTC day)."""

    def __init__(self, overrides: dict[str, Rates] | None = None, cache_dir: Path | None = None) -> None:
        self.overrides = {normalize_model(k): v for k, v in (overrides or {}).items()}
        self.cache_dir = cache_dir
        self._cache: dict[tuple[str, int], Rates | None] = {}
        self._genai: dict[str, Periods] | None = None

    @classmethod
    def from_toml(cls, path: Path | None, cache_dir: Path | None = None) -> PriceBook:
        """A price book with the user's overrides file applied (``[models."id"] input = 3.0 ...``)."""
        if path is None or not path.exists():
            return cls(cache_dir=cache_dir)
        return cls(load_overrides(path), cache_dir=cache_dir)

    def prepare(self) -> None:
        """Load genai-prices' table now (before forking scan workers, so they share it)."""
        if self._genai is None:
            self._genai = load_genai_table(self.cache_dir)

    def rates(self, model: str, ts: float) -> Rates | None:
        """Rates for ``model`` on the UTC day of ``ts``; ``None`` when unpriced."""
        day_index = int(ts // 86400)
        key = (model, day_index)
        try:
            return self._cache[key]
        except KeyError:
            pass
        norm = normalize_model(model)
        day = date.fromordinal(date(1970, 1, 1).toordinal() + day_index)
        r: Rates | None = self.overrides.get(norm)
        if r is None:
            if norm in _MISSING:
                r = Rates(*_MISSING[norm], source="tt")
            elif norm.startswith("claude-"):
                self.prepare()
                periods = self._genai.get(norm)  # type: ignore[union-attr]
                r = _period_rates(periods, day) if periods else None
            if r is not None:
                r = _patch(norm, day, r)
        self._cache[key] = r
        return r

    def cost(
        self,
        model: str,
        ts: float,
        input_tokens: int,
        write_5m: int,
        write_1h: int,
        read: int,
        output: int,
        *,
        web_search_requests: int = 0,
        speed: str = "",
        geo: str = "",
        batch: bool = False,
    ) -> float | None:
        """USD cost of one call, or ``None`` when the model has no price."""
        r = self.rates(model, ts)
        if r is None:
            return None
        i, w5, w1, rd, o = r.input, r.write_5m, r.write_1h, r.read, r.output
        if r.tier is not None and r.tier_threshold is not None:
            if input_tokens + write_5m + write_1h + read > r.tier_threshold:
                i, w5, w1, rd, o = r.tier
        tokens = (input_tokens * i + write_5m * w5 + write_1h * w1 + read * rd + output * o) / 1e6
        if batch:
            tokens *= 0.5
        if speed == "fast" and r.fast_multiplier:
            tokens *= r.fast_multiplier
        if geo == "us":
            tokens *= r.geo_us_multiplier
        return tokens + web_search_requests * r.web_search_per_k / 1000


_OVERRIDE_KEYS = {
    "input": "input", "output": "output", "cache_read": "read", "cache_write_5m": "write_5m",
    "cache_write": "write_5m", "cache_write_1h": "write_1h", "web_search_per_k": "web_search_per_k",
}


class PriceFileError(ValueError):
    """The user's price overrides file is malformed."""


def load_overrides(path: Path) -> dict[str, Rates]:
    """Read ``[models."<id>"]`` tables of USD-per-million rates from a TOML file."""
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise PriceFileError(f"cannot read price overrides {path}: {e}") from e
    out: dict[str, Rates] = {}
    for model, table in (data.get("models") or {}).items():
        if not isinstance(table, dict) or "input" not in table or "output" not in table:
            raise PriceFileError(f"{path}: [models.{model!r}] needs at least input and output")
        vals: dict[str, float] = {}
        for k, v in table.items():
            if k not in _OVERRIDE_KEYS or not isinstance(v, int | float):
                raise PriceFileError(f"{path}: [models.{model!r}] {k} = {v!r} is not a known numeric rate")
            vals[_OVERRIDE_KEYS[k]] = float(v)
        inp = vals["input"]
        out[model] = Rates(
            input=inp,
            output=vals["output"],
            write_5m=vals.get("write_5m", inp * 1.25),
            write_1h=vals.get("write_1h", inp * 2),
            read=vals.get("read", inp * 0.1),
            web_search_per_k=vals.get("web_search_per_k", 10.0),
            source="override",
        )
    return out
