"""Rate-limit observations (``<data_root>/runtime/rate_limits.json``) and headroom math.

Buckets refill continuously: ``reset`` is when a bucket is full again, so between observations
``rem(t) = min(limit, rem + (limit - rem) * (t - t_obs) / (reset - t_obs))``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

KINDS = ("requests", "input_tokens", "output_tokens", "tokens_combined")
KIND_LABELS = {"requests": "req", "input_tokens": "in", "output_tokens": "out", "tokens_combined": "tok"}
STALE_SECONDS = 300
FILE_NAME = "rate_limits.json"


def rate_limits_path(data_root: Path) -> Path:
    """Where the app writes its latest observations."""
    return Path(data_root) / "runtime" / FILE_NAME


def _ts(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        d = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    return d.timestamp()


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Bucket:
    """One limit of one model as last observed."""

    kind: str
    limit: float | None
    remaining: float | None
    reset: float | None  # epoch seconds when the bucket is full again

    def estimate(self, observed_at: float, now: float) -> float | None:
        """Remaining now, refilled linearly toward the limit until ``reset``."""
        if self.limit is None or self.remaining is None:
            return None
        if self.reset is None or now <= observed_at:
            return min(self.limit, self.remaining)
        if now >= self.reset:
            return self.limit
        frac = (now - observed_at) / (self.reset - observed_at)
        return min(self.limit, self.remaining + (self.limit - self.remaining) * frac)

    def headroom(self, observed_at: float, now: float) -> float | None:
        """Remaining / limit now (0..1); None when the limit is unknown or zero."""
        rem = self.estimate(observed_at, now)
        if rem is None or not self.limit:
            return None
        return max(0.0, min(1.0, rem / self.limit))


@dataclass(frozen=True)
class Observation:
    """The latest headers seen for one model."""

    model: str
    observed_at: float
    buckets: tuple[Bucket, ...]

    def stale(self, now: float) -> bool:
        """Older than five minutes."""
        return now - self.observed_at > STALE_SECONDS


@dataclass
class RateLimits:
    """Everything read from the file, or why nothing could be."""

    observations: list[Observation] = field(default_factory=list)
    status: str = ""  # empty when fine; else a one-line reason shown in the panel

    def tightest(self, now: float) -> tuple[str, str, float] | None:
        """(model, kind, headroom) of the most restrictive bucket over fresh observations."""
        best: tuple[str, str, float] | None = None
        for o in self.observations:
            if o.stale(now):
                continue
            for b in o.buckets:
                h = b.headroom(o.observed_at, now)
                if h is not None and (best is None or h < best[2]):
                    best = (o.model, b.kind, h)
        return best

    def as_json(self, now: float) -> dict[str, Any]:
        """The view model of the panel and of ``report --json``."""
        t = self.tightest(now)
        return {
            "status": self.status,
            "tightest": None if t is None else {"model": t[0], "kind": t[1], "headroom": round(t[2], 4)},
            "models": [
                {
                    "model": o.model,
                    "observed_at": datetime.fromtimestamp(o.observed_at, timezone.utc).isoformat(),
                    "stale": o.stale(now),
                    "buckets": [
                        {"kind": b.kind, "limit": b.limit, "remaining": b.estimate(o.observed_at, now),
                         "headroom": b.headroom(o.observed_at, now),
                         "resets_in_s": None if b.reset is None else max(0.0, b.reset - now)}
                        for b in o.buckets if b.limit is not None
                    ],
                }
                for o in self.observations
            ],
        }


def parse_rate_limits(data: Any) -> RateLimits:
    """Observations from the decoded JSON; bad parts are skipped with a status line, never an exception."""
    if not isinstance(data, dict):
        return RateLimits(status="rate_limits.json is not a JSON object")
    out: list[Observation] = []
    skipped = 0
    for model, obs in data.items():
        if not isinstance(obs, dict):
            skipped += 1
            continue
        at = _ts(obs.get("observed_at"))
        if at is None:
            skipped += 1
            continue
        buckets = []
        for kind in KINDS:
            b = obs.get(kind)
            if isinstance(b, dict):
                buckets.append(Bucket(kind, _num(b.get("limit")), _num(b.get("remaining")), _ts(b.get("reset"))))
        out.append(Observation(str(model), at, tuple(buckets)))
    out.sort(key=lambda o: o.model)
    return RateLimits(out, f"{skipped} malformed entr{'y' if skipped == 1 else 'ies'} skipped" if skipped else "")


def read_rate_limits(path: Path) -> RateLimits:
    """Read the file; a missing or malformed file gives an empty result with a clear status."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return RateLimits(status=f"no observations yet ({path} is written by tokentop log / record_response)")
    except OSError as e:
        return RateLimits(status=f"cannot read {path}: {e.strerror}")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return RateLimits(status=f"{path} is not valid JSON (being rewritten?)")
    return parse_rate_limits(data)


# --- Claude Code plan windows (measured by `tokentop statusline`, never guessed from a plan table) ------------

PLAN_FILE = "plan_limits.json"
PLAN_WINDOWS = ("five_hour", "seven_day")


def plan_limits_path(data_root: Path) -> Path:
    """Where `tokentop statusline` keeps the latest plan-window observation."""
    return Path(data_root) / "runtime" / PLAN_FILE


def parse_plan_window(value: Any, now: float) -> dict[str, Any] | None:
    """One ``rate_limits.<window>`` of the statusline JSON: used % (0-100, over 100 happens) and reset time."""
    if not isinstance(value, dict):
        return None
    used = _num(value.get("used_percentage"))
    resets = value.get("resets_at")
    reset_ts = float(resets) if isinstance(resets, int | float) else _ts(resets)
    if used is None:
        return None
    return {"used_percentage": used, "resets_at": reset_ts, "observed_at": now}


def read_plan_limits(path: Path, now: float) -> list[dict[str, Any]]:
    """The measured plan windows, with their age and the time left to reset."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return []
    out = []
    for name in PLAN_WINDOWS:
        w = data.get(name) if isinstance(data, dict) else None
        if isinstance(w, dict) and isinstance(w.get("used_percentage"), int | float):
            at = _num(w.get("observed_at")) or 0.0
            reset = _num(w.get("resets_at"))
            out.append({"window": name, "used_percentage": w["used_percentage"],
                        "resets_in_s": None if reset is None else max(0.0, reset - now),
                        "stale": now - at > STALE_SECONDS})
    return out
