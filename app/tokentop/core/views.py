"""Dashboard view models for the TUI, built on `report.build_report` so every number agrees with `report --json`."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from typing import Any

from .aggregate import Cube, new_cell
from .filters import Filter
from .pricing import normalize_model
from .records import Call
from .report import build_report, matching_calls, passes, projection, quick_totals, totals_of

DATE_PRESETS = ("today", "7d", "30d", "week", "all")
FAMILIES = ("Opus", "Sonnet", "Haiku", "Claude", "Local", "Other")
DAY = 24 * 3600
#: Sessions the dashboard's table shows: those with the latest activity (older ones are reached by filtering).
SESSION_ROWS = 100


def today_in(tz: Any, now: float) -> date:
    """The calendar day of ``now`` in the display zone."""
    return datetime.fromtimestamp(now, tz).date()


def date_window(preset: str, offset: int, today: date) -> tuple[date | None, date | None]:
    """Inclusive (since, until) of a preset, shifted back ``-offset`` windows (``[``/``]`` keys)."""
    if preset == "today":
        d = today + timedelta(days=offset)
        return d, d
    if preset in ("7d", "30d"):
        n = 7 if preset == "7d" else 30
        until = today + timedelta(days=offset * n)
        return until - timedelta(days=n - 1), until
    if preset == "week":  # Monday 00:00 in the display zone
        monday = today - timedelta(days=today.weekday()) + timedelta(weeks=offset)
        return monday, monday + timedelta(days=6)
    return None, None


def dashboard_filter(tz: Any, preset: str, now: float, offset: int = 0, source: str = "all",
                     models: tuple[str, ...] | None = None, project: str | None = None,
                     mode: str | None = None) -> Filter:
    """The dashboard's filter: a date preset (shifted ``offset`` windows) around ``now``'s day, and the rest."""
    since, until = date_window(preset, offset, today_in(tz, now))
    return Filter(source=source, models=models, project=project, mode=mode, since=since, until=until, tz=tz)


def block_filter(flt: Filter, now: float) -> Filter:
    """What the current 5-hour block is made of: ``flt`` over the days of the last 24 hours (`active_block`)."""
    return flt.with_(since=today_in(flt.tz, now - DAY), until=None, session=None)


def block_key(flt: Filter, now: float) -> tuple[Filter, int]:
    """What `active_block` is computed again for: its calls' filter, and the minute (its countdown's unit)."""
    return block_filter(flt, now), int(now // 60)


def last_day_calls(cube: Cube, tz: Any, now: float) -> list[Call]:
    """Every call of the last 24 hours: what the current 5-hour block of any filter is made of (`active_block`)."""
    return list(matching_calls(cube, Filter(tz=tz, since=today_in(tz, now - DAY)), after=now - DAY))


def active_block(cube: Cube, flt: Filter, now: float, day: list[Call] | None = None) -> dict[str, Any] | None:
    """The current 5-hour block of the calls ``flt`` passes (its dates aside), from the last 24 hours of calls
    (a chain of blocks longer than that is not expected); None without one. ``day``: `last_day_calls` of a
    moment in the minute before ``now``, when at hand (the calls are tested, not read again)."""
    from .blocks import blocks_report  # (its dataclasses import inspect: not for a `report`)

    recent = block_filter(flt, now)
    if day is None:
        calls = list(matching_calls(cube, recent, after=now - DAY))
    else:
        test = passes(recent)
        calls = [c for c in day if c.ts >= now - DAY and test(c.source, c.model, c.project, c.session, c.mode)]
    return blocks_report(calls, now)["active"] if calls else None


def window_label(preset: str, since: date | None, until: date | None, today: date) -> str:
    """``today``, ``last 7d``, ``this week`` or the explicit dates when shifted."""
    if since is None and until is None:
        return "all time"
    if preset == "today":
        return "today" if since == today else since.isoformat() if since else ""
    if until == today or (preset == "week" and since and since <= today <= (until or today)):
        return {"7d": "last 7d", "30d": "last 30d", "week": "this week"}.get(preset, preset)
    return f"{since} → {until}"


_NAME = re.compile(
    r"^claude-(?:(?P<fam>opus|sonnet|haiku|fable|mythos)-(?P<v>[\d-]+)|(?P<v2>[\d-]+)-(?P<fam2>opus|sonnet|haiku))$")


def display_name(model: str) -> str:
    """``claude-sonnet-4-5-20250929`` -> ``Sonnet 4.5``; other models keep their id."""
    m = _NAME.match(normalize_model(model))
    if not m:
        return model
    fam = m.group("fam") or m.group("fam2")
    ver = (m.group("v") or m.group("v2")).strip("-").replace("-", ".")
    return f"{fam.capitalize()} {ver}"


def model_family(model: str, local: bool = False) -> str:
    """Opus / Sonnet / Haiku / Claude (other Claude models) / Local / Other."""
    if local:
        return "Local"
    n = normalize_model(model)
    for fam in ("opus", "sonnet", "haiku"):
        if fam in n:
            return fam.capitalize()
    return "Claude" if n.startswith("claude") else "Other"


def chips(cube: Cube, flt: Filter, unfiltered: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One chip per (normalized) model in the data under every filter but the model one, in family order.

    ``unfiltered``: the report for ``flt`` when it has no model filter already (its rows are reused).
    """
    # The same for every model filter: toggling chips reuses what the last key computed (one pass, not two).
    every_model = flt.with_(models=None)
    memo = cube.chips_memo
    if unfiltered is not None and flt.models is None:
        total, by_model = unfiltered["totals"]["cost_usd"], [(r["model"], r) for r in unfiltered["by_model"]]
    elif memo is not None and memo[0] == cube.version and memo[1] == every_model:
        total, by_model = memo[2]
    else:
        totals, rows = quick_totals(cube, every_model, group=2)
        total, by_model = totals["cost_usd"], [(r["key"], r) for r in rows]
    cube.chips_memo = (cube.version, every_model, (total, by_model))
    merged: dict[str, dict[str, Any]] = {}
    for model, row in by_model:
        key = normalize_model(model)
        chip = merged.setdefault(key, {"model": key, "name": display_name(model), "cost_usd": 0.0,
                                       "calls": 0, "local_calls": 0, "unpriced_calls": 0})
        for f in ("cost_usd", "calls", "local_calls", "unpriced_calls"):
            chip[f] += row[f]
    wanted = None if flt.models is None else {normalize_model(m) for m in flt.models}
    out = []
    for chip in merged.values():
        chip["family"] = model_family(chip["model"], local=chip["local_calls"] == chip["calls"] > 0)
        chip["share"] = chip["cost_usd"] / total if total > 0 else 0.0
        chip["selected"] = wanted is None or chip["model"] in wanted
        out.append(chip)
    out.sort(key=lambda c: (FAMILIES.index(c["family"]), -c["cost_usd"], -c["calls"], c["model"]))
    return out


def hourly_cost(cube: Cube, flt: Filter, day: date) -> list[float]:
    """Cost per hour of one day (display zone) under the filter, from single calls."""
    day_flt = flt.with_(since=day, until=day)
    hours = [0.0] * 24
    for c in matching_calls(cube, day_flt):
        if c.cost is not None:
            hours[datetime.fromtimestamp(c.ts, flt.tz).hour] += c.cost
    return hours


def daily_series(by_day: list[dict[str, Any]], since: date | None, until: date | None) -> list[tuple[str, float]]:
    """Cost per day over the window, zero-filled (an all-time window spans the data's first to last day)."""
    costs = {r["day"]: r["cost_usd"] for r in by_day}
    if not costs and (since is None or until is None):
        return []
    first = since or date.fromisoformat(min(costs))
    last = until or date.fromisoformat(max(costs))
    out = []
    d = first
    while d <= last and len(out) < 3660:
        out.append((d.isoformat(), costs.get(d.isoformat(), 0.0)))
        d += timedelta(days=1)
    return out


def dashboard(cube: Cube, flt: Filter, *, now: float | None = None, active_window_minutes: float = 15,
              warnings: dict[str, int] | None = None, max_sessions: int | None = None) -> dict[str, Any]:
    """Everything the main screen shows for one filter (``max_sessions``: the rows its table shows)."""
    now = datetime.now(timezone.utc).timestamp() if now is None else now
    rep = build_report(cube, flt, now=now, active_window_minutes=active_window_minutes, warnings=warnings,
                       max_sessions=max_sessions)
    today = today_in(flt.tz, now)
    if (flt.since is None or flt.since <= today) and (flt.until is None or today <= flt.until):
        row = next((r for r in reversed(rep["by_day"]) if r["day"] == today.isoformat()), None)  # no second pass
        rep["today"] = {k: v for k, v in row.items() if k != "day"} if row else totals_of(new_cell())
    else:
        rep["today"] = quick_totals(cube, flt.with_(since=today, until=today))[0]
    rep["chips"] = chips(cube, flt, rep)
    rep["daily"] = daily_series(rep["by_day"], flt.since, flt.until)
    rep["today_date"] = today.isoformat()
    rep["projection"] = projection(cube, flt, now, report=rep)
    return rep


__all__ = ["DATE_PRESETS", "SESSION_ROWS", "active_block", "block_filter", "block_key", "chips", "dashboard",
           "dashboard_filter", "date_window", "display_name", "hourly_cost", "last_day_calls", "model_family",
           "today_in", "window_label"]
