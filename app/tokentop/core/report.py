"""View models built from the cube and a Filter: the one truth for `report --json`, `watch --json` and the TUI."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from .aggregate import BUCKET_SECONDS, CALLS, COST, CR, CW, IN, LAST, LOCAL_CALLS, OUT, UNPRICED, Cube
from .filters import DayNamer, Filter, tz_name
from .pricing import normalize_model

Row = dict[str, Any]


def empty_totals() -> Row:
    """Totals of nothing."""
    return {
        "cost_usd": 0.0, "input_tokens": 0, "output_tokens": 0, "cache_creation_tokens": 0,
        "cache_read_tokens": 0, "calls": 0, "cloud_calls": 0, "local_calls": 0, "unpriced_calls": 0,
    }


def _add(row: Row, cell: list[float]) -> None:
    row["cost_usd"] += cell[COST]
    row["input_tokens"] += cell[IN]
    row["output_tokens"] += cell[OUT]
    row["cache_creation_tokens"] += cell[CW]
    row["cache_read_tokens"] += cell[CR]
    row["calls"] += cell[CALLS]
    row["local_calls"] += cell[LOCAL_CALLS]
    row["cloud_calls"] += cell[CALLS] - cell[LOCAL_CALLS]
    row["unpriced_calls"] += cell[UNPRICED]


def _model_matches(model: str, wanted: frozenset[str]) -> bool:
    return model in wanted or normalize_model(model) in wanted


def matching_cells(cube: Cube, flt: Filter, cells: dict | None = None) -> Iterable[tuple[tuple, list[float]]]:
    """The cells (key, sums) that pass the filter; the predicate is cached per non-time part of the key."""
    cells = cube.cells if cells is None else cells
    lo, hi = flt.day_bounds()
    lo_b = None if lo is None else int(lo // BUCKET_SECONDS)
    hi_b = None if hi is None else int(hi // BUCKET_SECONDS)
    wanted = None if flt.models is None else frozenset(
        m for x in flt.models for m in (x, normalize_model(x)))
    project = flt.project.lower() if flt.project else None
    source = None if flt.source == "all" else flt.source
    ok: dict[tuple, bool] = {}
    for key, cell in cells.items():
        b = key[0]
        if (lo_b is not None and b < lo_b) or (hi_b is not None and b >= hi_b):
            continue
        rest = key[1:]
        passed = ok.get(rest)
        if passed is None:
            src, model, proj, session, mode = rest[:5]
            passed = (
                (source is None or src == source)
                and (wanted is None or _model_matches(model, wanted))
                and (project is None or project in proj.lower())
                and (flt.mode is None or mode == flt.mode)
                and (flt.session is None or session == flt.session)
            )
            ok[rest] = passed
        if passed:
            yield key, cell


def _rows(groups: dict[Any, Row], name: str, sort_by_cost: bool = True) -> list[Row]:
    items = [{name: k, **v} for k, v in groups.items()]
    if sort_by_cost:
        items.sort(key=lambda r: (-r["cost_usd"], -r["calls"], str(r[name])))
    else:
        items.sort(key=lambda r: r[name])
    return items


def build_report(
    cube: Cube,
    flt: Filter,
    *,
    warnings: dict[str, int] | None = None,
    now: float | None = None,
    active_window_minutes: float = 15,
    group_by_task: bool = False,
) -> dict[str, Any]:
    """The full view model (``report --json``'s shape) for one filter."""
    now = datetime.now(timezone.utc).timestamp() if now is None else now
    day_of = DayNamer(flt.tz, BUCKET_SECONDS)
    totals = empty_totals()
    by_day: dict[str, Row] = {}
    by_model: dict[str, Row] = {}
    by_project: dict[str, Row] = {}
    by_source: dict[str, Row] = {}
    sessions: dict[tuple[str, str], Row] = {}
    session_meta: dict[tuple[str, str], tuple[dict[str, float], set[str], float]] = {}
    for key, cell in matching_cells(cube, flt):
        b, src, model, proj, session, _mode = key
        _add(totals, cell)
        for groups, k in ((by_day, day_of(b)), (by_model, model), (by_project, proj), (by_source, src)):
            row = groups.get(k)
            if row is None:
                row = groups[k] = empty_totals()
            _add(row, cell)
        sk = (src, session)
        row = sessions.get(sk)
        if row is None:
            row = sessions[sk] = empty_totals()
            session_meta[sk] = ({}, set(), 0.0)
        _add(row, cell)
        projects, models, last = session_meta[sk]
        projects[proj] = projects.get(proj, 0) + cell[CALLS]
        models.add(model)
        if cell[LAST] > last:
            session_meta[sk] = (projects, models, cell[LAST])
    window = active_window_minutes * 60
    ordered = sorted(sessions.items(), key=lambda kv: (session_meta[kv[0]][2], kv[0][1]), reverse=True)
    session_rows = []
    for (src, session), row in ordered:
        projects, models, last = session_meta[(src, session)]
        session_rows.append({
            "session": session,
            "project": max(projects.items(), key=lambda kv: (kv[1], kv[0]))[0],
            "source": src,
            "models": sorted(models),
            "last_activity": datetime.fromtimestamp(last, flt.tz).isoformat(timespec="seconds"),
            "active": now - last <= window,
            **row,
        })
    out: dict[str, Any] = {
        "tz": tz_name(flt.tz),
        "filters": flt.as_json(),
        "totals": totals,
        "by_day": _rows(by_day, "day", sort_by_cost=False),
        "by_model": _rows(by_model, "model"),
        "by_project": _rows(by_project, "project"),
        "by_source": _rows(by_source, "source"),
        "sessions": session_rows,
        "warnings": dict(warnings or {}),
    }
    if group_by_task:
        out["by_task"] = by_task(cube, flt)
    return out


def by_task(cube: Cube, flt: Filter) -> list[Row]:
    """Totals per task: internal ``task_id``; Claude Code: the tools the message invoked, ``(text)`` if none."""
    groups: dict[str, Row] = {}
    for key, cell in matching_cells(cube, flt, cube.task_cells):
        row = groups.get(key[6])
        if row is None:
            row = groups[key[6]] = empty_totals()
        _add(row, cell)
    return _rows(groups, "task")
