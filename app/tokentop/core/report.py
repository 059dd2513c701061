"""View models built from the cube and a Filter: the one truth for `report --json`, `watch --json` and the TUI."""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable
from datetime import date, datetime, timezone
from typing import Any

import msgspec

from .aggregate import CALLS, COST, CR, CW, IN, LAST, LOCAL_CALLS, OUT, UNPRICED, Cube, new_cell
from .filters import DayNamer, Filter, tz_name
from .pricing import normalize_model
from .records import LOCAL, Call

Row = dict[str, Any]


def totals_of(cell: list[float]) -> Row:
    """A cell's sums as the JSON totals fields."""
    calls = int(cell[CALLS])
    local = int(cell[LOCAL_CALLS])
    return {
        "cost_usd": cell[COST], "input_tokens": int(cell[IN]), "output_tokens": int(cell[OUT]),
        "cache_creation_tokens": int(cell[CW]), "cache_read_tokens": int(cell[CR]), "calls": calls,
        "cloud_calls": calls - local, "local_calls": local, "unpriced_calls": int(cell[UNPRICED]),
    }


def _acc_into(acc: list[float], cell: list[float]) -> None:
    acc[0] += cell[0]
    acc[1] += cell[1]
    acc[2] += cell[2]
    acc[3] += cell[3]
    acc[4] += cell[4]
    acc[5] += cell[5]
    acc[6] += cell[6]
    acc[7] += cell[7]
    if cell[8] > acc[8]:
        acc[8] = cell[8]


def _acc(groups: dict[Any, list[float]], key: Any, cell: list[float]) -> None:
    acc = groups.get(key)
    if acc is None:
        groups[key] = cell[:]
    else:
        _acc_into(acc, cell)


class _Predicate:
    """The filter's non-time tests, cached per (source, model, project, session, mode)."""

    def __init__(self, flt: Filter) -> None:
        self.flt = flt
        self.wanted = None if flt.models is None else frozenset(
            m for x in flt.models for m in (x, normalize_model(x)))
        self.project = flt.project.lower() if flt.project else None
        self.source = None if flt.source == "all" else flt.source
        self.cache: dict[tuple, bool] = {}

    def passes_all(self) -> bool:
        """Whether every row passes (no test but time)."""
        flt = self.flt
        return (self.source is None and self.wanted is None and self.project is None and flt.mode is None
                and flt.session is None)

    def __call__(self, src: str, model: str, proj: str, session: str, mode: str) -> bool:
        if self.flt.session is not None and session != self.flt.session:
            return False
        key = (src, model, proj, mode)  # sessions are many: the rest is cached without them
        passed = self.cache.get(key)
        if passed is None:
            flt = self.flt
            passed = self.cache[key] = (
                (self.source is None or src == self.source)
                and (self.wanted is None or model in self.wanted or normalize_model(model) in self.wanted)
                and (self.project is None or self.project in proj.lower())
                and (flt.mode is None or mode == flt.mode)
            )
        return passed


def passes(flt: Filter) -> Callable[[str, str, str, str, str], bool]:
    """The filter's test of a (source, model, project, session, mode), its dates aside."""
    return _Predicate(flt)


def matching_cells(cube: Cube, flt: Filter) -> Iterable[tuple[tuple, list[float]]]:
    """The cells (key, sums) that pass the filter; the cube must be in the filter's zone."""
    lo = flt.since.isoformat() if flt.since else None
    hi = flt.until.isoformat() if flt.until else None
    test = _Predicate(flt)
    if lo is None and hi is None and test.passes_all():
        yield from cube.cells.items()
        return
    for key, cell in cube.cells.items():
        day = key[0]
        if (lo is not None and day < lo) or (hi is not None and day > hi):
            continue
        if test(key[1], key[2], key[3], key[4], key[5]):
            yield key, cell


def matching_calls(cube: Cube, flt: Filter, after: float | None = None) -> Iterable[Call]:
    """Single calls that pass the filter (for task and recent-call views); only those from ``after`` (epoch
    seconds) on, when given (a ledger reads no others)."""
    lo, hi = flt.day_bounds()
    if after is not None:
        lo = after if lo is None else max(lo, after)
    test = _Predicate(flt)
    for c in cube.calls(lo, hi, flt.session):
        if test(c.source, c.model, c.project, c.session, c.mode):
            yield c


def _rows(groups: list[tuple[Any, list[float]]], name: str) -> list[Row]:
    return [{name: k, **totals_of(v)} for k, v in groups]


class Groups(msgspec.Struct, array_like=True):
    """A report's sums before they become rows: totals, groups (already in row order) and sessions.

    The unfiltered one is kept per cube version (`unfiltered_groups`) and in the ledger's snapshot, so a warm
    `report` with no filter renders it without a pass over the cells.
    """

    total: list[Any]
    by_day: list[tuple[str, list[Any]]]
    by_model: list[tuple[str, list[Any]]]
    by_project: list[tuple[str, list[Any]]]
    by_source: list[tuple[str, list[Any]]]
    #: (last activity, session, source, sums, main project, models, last activity as text), the latest first.
    sessions: list[tuple[float, str, str, list[Any], str, list[str], str]]


def _by_cost(groups: dict[str, list[float]]) -> list[tuple[str, list[float]]]:
    """Costliest first, then most calls, then by name."""
    items = [(-v[COST], -v[CALLS], k, v) for k, v in groups.items()]
    items.sort()
    return [(k, v) for _, _, k, v in items]


def group_cells(cells: Iterable[tuple[tuple, list[float]]], day_of: DayNamer,
                max_sessions: int | None = None) -> Groups:
    """Sum cells (key, sums) into a report's groups and sessions (``max_sessions``: only the latest ones)."""
    # Cells into (day, source, model, project) and into sessions; the first grouping into days and into
    # (source, model, project), the small last one into the model, project and source rows and the totals
    # (each cell is added once, not six times). A session's calls per model and project are counted in a second
    # pass, only for the sessions shown that have more than one.
    if not isinstance(cells, list):
        cells = list(cells)
    fine: dict[tuple[str, str, str, str], list[float]] = {}
    sessions: dict[tuple[str, str], _Session] = {}
    fine_get, session_get = fine.get, sessions.get
    for key, cell in cells:
        fk = key[:4]
        acc = fine_get(fk)
        if acc is None:
            fine[fk] = cell[:]
        else:
            _acc_into(acc, cell)
        sk = (key[1], key[4])
        ses = session_get(sk)
        if ses is None:
            sessions[sk] = [cell[:], key[2], key[3], None, None]
            continue
        _acc_into(ses[0], cell)
        if ses[3] is None and (key[2] != ses[1] or key[3] != ses[2]):  # a second model or project
            ses[3] = True
    return _finish(fine, sessions, lambda _kept: (((k[1], k[4]), k[2], k[3], c[CALLS]) for k, c in cells),
                   day_of, max_sessions)


class Plan(msgspec.Struct):
    """The cells of one cube version, numbered for filtered views: each row is (day, slice, sums, group, session)
    with its (source, model, project, mode) slice, (day, source, model, project) group and session as list
    indexes. A filter is then tested once per slice, and sums go into lists by number instead of hashing two
    tuples per cell: about 0.6x the time of `group_cells` on the 470 MB corpus, in the same order (the same
    floating-point sums)."""

    version: int
    rows: list[tuple[str, int, list[Any], int, int]]
    slices: list[tuple[str, str, str, str]]
    groups: list[tuple[str, str, str, str]]
    sessions: list[tuple[str, str]]
    session_ids: dict[tuple[str, str], int]
    session_rows: list[list[int]]  # per session, its rows


def plan_of(cube: Cube) -> Plan:
    """The cube's `Plan`, made once per version."""
    plan = cube.plan
    if plan is None or plan.version != cube.version:
        slice_ids: dict[tuple[str, str, str, str], int] = {}
        group_ids: dict[tuple[str, str, str, str], int] = {}
        session_ids: dict[tuple[str, str], int] = {}
        rows = []
        session_rows: list[list[int]] = []
        for key, cell in cube.cells.items():
            day, src, model, proj, session, mode = key
            sl = slice_ids.setdefault((src, model, proj, mode), len(slice_ids))
            g = group_ids.setdefault((day, src, model, proj), len(group_ids))
            s = session_ids.setdefault((src, session), len(session_ids))
            if s == len(session_rows):
                session_rows.append([])
            session_rows[s].append(len(rows))
            rows.append((day, sl, cell, g, s))
        plan = cube.plan = Plan(cube.version, rows, list(slice_ids), list(group_ids), list(session_ids), session_ids,
                                session_rows)
    return plan


def _plan_test(plan: Plan, flt: Filter) -> tuple[list[bool], str | None, str | None]:
    """``flt`` (no session filter) for a plan's rows: whether each slice passes, and the first and last day."""
    test = _Predicate(flt)
    return ([test(src, model, proj, "", mode) for src, model, proj, mode in plan.slices],
            flt.since.isoformat() if flt.since else None, flt.until.isoformat() if flt.until else None)


def _passing(rows: Iterable[tuple[str, int, list[Any], int, int]],
             test: tuple[list[bool], str | None, str | None]) -> Iterable[tuple[str, int, list[Any], int, int]]:
    """The plan rows that pass ``test`` (`_plan_test`)."""
    passes, lo, hi = test
    for row in rows:
        day = row[0]
        if passes[row[1]] and (lo is None or day >= lo) and (hi is None or day <= hi):
            yield row


def _group_planned(cube: Cube, flt: Filter, max_sessions: int | None) -> Groups:
    """`group_cells` of the cells ``flt`` passes (no session filter), through the cube's `Plan`."""
    plan = plan_of(cube)
    test = passes, lo, hi = _plan_test(plan, flt)
    fine: list[list[float] | None] = [None] * len(plan.groups)
    sessions: list[_Session | None] = [None] * len(plan.sessions)
    fine_order: list[int] = []
    session_order: list[int] = []
    slices = plan.slices
    rows = plan.rows
    # With only the latest sessions shown, the first pass notes each session's last activity under the filter;
    # then only the sessions kept are summed, from their own rows (in the same order, so the same sums).
    latest = max_sessions if max_sessions is not None and len(plan.sessions) > max_sessions else None
    lasts = [-math.inf] * len(plan.sessions)
    for day, sl, cell, g, s in rows:  # (`_passing` written out: a generator here costs a fifth more)
        if not passes[sl] or (lo is not None and day < lo) or (hi is not None and day > hi):
            continue
        acc = fine[g]
        if acc is None:
            fine[g] = cell[:]
            fine_order.append(g)
        else:
            _acc_into(acc, cell)
        if latest is None:
            _add_to_session(sessions, session_order, s, cell, slices[sl])
        elif cell[LAST] > lasts[s]:
            lasts[s] = cell[LAST]
    if latest is not None:
        names = plan.sessions
        kept = heapq.nlargest(latest, (s for s, last in enumerate(lasts) if last > -math.inf),
                              key=lambda s: (lasts[s], names[s][1], names[s][0]))
        for s in sorted(kept):
            for _day, sl, cell, _g, _s in _passing((rows[r] for r in plan.session_rows[s]), test):
                _add_to_session(sessions, session_order, s, cell, slices[sl])

    def contributions(kept: Iterable[tuple[str, str]]) -> Iterable[tuple[tuple[str, str], str, str, float]]:
        rows = plan.rows
        for sk in kept:  # only these sessions' rows
            session_rows = (rows[r] for r in plan.session_rows[plan.session_ids[sk]])
            for _day, sl, cell, _g, _s in _passing(session_rows, test):
                yield sk, slices[sl][1], slices[sl][2], cell[CALLS]

    return _finish({plan.groups[g]: fine[g] for g in fine_order},  # type: ignore[misc]
                   {plan.sessions[s]: sessions[s] for s in session_order},  # type: ignore[misc]
                   contributions, day_of=cube.day_of, max_sessions=max_sessions)


def _add_to_session(sessions: list[_Session | None], order: list[int], s: int, cell: list[float],
                    slice_: tuple[str, str, str, str]) -> None:
    ses = sessions[s]
    if ses is None:
        sessions[s] = [cell[:], slice_[1], slice_[2], None, None]
        order.append(s)
        return
    _acc_into(ses[0], cell)
    if ses[3] is None and (slice_[1] != ses[1] or slice_[2] != ses[2]):  # a second model or project
        ses[3] = True


def _finish(fine: dict[tuple[str, str, str, str], list[float]], sessions: dict[tuple[str, str], _Session],
            contributions: Callable[[Iterable[tuple[str, str]]], Iterable[tuple[tuple[str, str], str, str, float]]],
            day_of: DayNamer, max_sessions: int | None) -> Groups:
    """The groups from the (day, source, model, project) sums and the sessions' sums; ``contributions(sessions)``
    gives the cells' (session, model, project, calls) again (at least those of the sessions named), for the
    sessions kept that have several models or projects."""
    total: list[float] = new_cell()
    by_day: dict[str, list[float]] = {}
    by_model: dict[str, list[float]] = {}
    by_project: dict[str, list[float]] = {}
    by_source: dict[str, list[float]] = {}
    undated: dict[tuple[str, str, str], list[float]] = {}
    for (day, src, model, proj), cell in fine.items():
        _acc(by_day, day, cell)
        _acc(undated, (src, model, proj), cell)
    for (src, model, proj), cell in undated.items():
        _acc(by_model, model, cell)
        _acc(by_project, proj, cell)
        _acc(by_source, src, cell)
    for cell in by_source.values():
        _acc_into(total, cell)
    if max_sessions is not None and len(sessions) > max_sessions:  # the latest (as `_sessions` orders them)
        sessions = dict(heapq.nlargest(max_sessions, sessions.items(),
                                       key=lambda kv: (kv[1][0][LAST], kv[0][1], kv[0][0])))
    mixed = {sk: ses for sk, ses in sessions.items() if ses[3] is not None}
    for ses in mixed.values():
        ses[3], ses[4] = {}, {}
    if mixed:
        mixed_get = mixed.get
        for sk, model, proj, calls in contributions(mixed):
            ses = mixed_get(sk)
            if ses is not None:
                models, projects = ses[3], ses[4]
                models[model] = models.get(model, 0) + calls
                projects[proj] = projects.get(proj, 0) + calls
    return Groups(total, sorted(by_day.items()), _by_cost(by_model), _by_cost(by_project), _by_cost(by_source),
                  _sessions(sessions, day_of))


def unfiltered_groups(cube: Cube) -> Groups:
    """The groups of every cell, computed once per cube version."""
    memo = cube.memo
    if memo is None or memo[0] != cube.version:
        memo = cube.memo = (cube.version, group_cells(cube.cells.items(), cube.day_of))
    return memo[1]


def build_report(
    cube: Cube,
    flt: Filter,
    *,
    warnings: dict[str, int] | None = None,
    now: float | None = None,
    active_window_minutes: float = 15,
    group_by_task: bool = False,
    max_sessions: int | None = None,
) -> dict[str, Any]:
    """The full view model (``report --json``'s shape) for one filter; ``max_sessions``: only the latest
    sessions (a screen's worth; the totals count every one)."""
    now = datetime.now(timezone.utc).timestamp() if now is None else now
    if tz_name(cube.tz) != tz_name(flt.tz):
        cube = cube.in_zone(flt.tz)
    if flt.since is None and flt.until is None and _Predicate(flt).passes_all():
        g = unfiltered_groups(cube)
    elif flt.session is None and cube.plan is not None and cube.plan.version == cube.version:
        g = _group_planned(cube, flt, max_sessions)  # the same sums as below, faster (the TUI makes the plan)
    else:
        g = group_cells(matching_cells(cube, flt), cube.day_of, max_sessions)
    out: dict[str, Any] = {
        "tz": tz_name(flt.tz),
        "filters": flt.as_json(),
        "totals": totals_of(g.total),
        "by_day": _rows(g.by_day, "day"),
        "by_model": _rows(g.by_model, "model"),
        "by_project": _rows(g.by_project, "project"),
        "by_source": _rows(g.by_source, "source"),
        "sessions": _session_rows(g.sessions[:max_sessions], now, active_window_minutes * 60),
        "warnings": dict(warnings or {}),
    }
    if group_by_task:
        out["by_task"] = by_task(cube, flt)
    return out


#: A session's sums, its first model and project, and its calls per model and per project once it has two.
_Session = list


def _sessions(sessions: dict[tuple[str, str], _Session], day_of: DayNamer) -> list[tuple]:
    """The sessions, the latest first, each with its main project (most calls) and models (most calls first)."""
    summed = []
    for (src, session), (c, model, project, models, projects) in sessions.items():
        if models is not None:  # most calls first, then by name (sorts are stable); the project: most calls,
            model_list = sorted(models)  # then the last name
            model_list.sort(key=models.__getitem__, reverse=True)
            project = max(sorted(projects, reverse=True), key=projects.__getitem__)
        else:
            model_list = [model]
        summed.append((c[LAST], session, src, c, project, model_list))
    summed.sort(reverse=True)  # by last activity, then session (a (source, session) pair is unique: no tie)
    stamp = day_of.stamp
    return [(*s, stamp(s[0])) for s in summed]


def _session_rows(sessions: list[tuple], now: float, window: float) -> list[Row]:
    rows = []
    for last, session, src, c, project, models, stamp in sessions:
        calls = int(c[CALLS])
        local = int(c[LOCAL_CALLS])
        rows.append({  # totals_of's fields written into the one dict (5 % of a report on the large corpus)
            "session": session, "project": project, "source": src, "models": [*models],  # the memo keeps its own
            "last_activity": stamp, "active": now - last <= window,
            "cost_usd": c[COST], "input_tokens": int(c[IN]), "output_tokens": int(c[OUT]),
            "cache_creation_tokens": int(c[CW]), "cache_read_tokens": int(c[CR]), "calls": calls,
            "cloud_calls": calls - local, "local_calls": local, "unpriced_calls": int(c[UNPRICED]),
        })
    return rows


def quick_totals(cube: Cube, flt: Filter, group: int | None = None) -> tuple[Row, list[Row]]:
    """Totals, and optionally rows per one key part (2 = model), without the rest of the report."""
    if tz_name(cube.tz) != tz_name(flt.tz):
        cube = cube.in_zone(flt.tz)
    total = new_cell()
    groups: dict[str, list[float]] = {}
    plan = cube.plan
    if flt.session is None and plan is not None and plan.version == cube.version:  # as below, through the plan
        for part, cell in _planned_cells(plan, flt, group):
            _acc_into(total, cell)
            if group is not None:
                _acc(groups, part, cell)
    else:
        for key, cell in matching_cells(cube, flt):
            _acc_into(total, cell)
            if group is not None:
                _acc(groups, key[group], cell)
    return totals_of(total), _rows(_by_cost(groups), "key")


def cost_by_day(cube: Cube, flt: Filter) -> dict[str, float]:
    """The cost per day of the cells ``flt`` passes: all `projection` needs of them (a third of the work of
    `quick_totals` by day, on every redraw of a dated view)."""
    if tz_name(cube.tz) != tz_name(flt.tz):
        cube = cube.in_zone(flt.tz)
    plan = cube.plan
    if flt.session is None and plan is not None and plan.version == cube.version:
        cells: Iterable[tuple[str, list[Any]]] = (
            (row[0], row[2]) for row in _passing(plan.rows, _plan_test(plan, flt)))
    else:
        cells = ((key[0], cell) for key, cell in matching_cells(cube, flt))
    out: dict[str, float] = {}
    for day, cell in cells:
        out[day] = out.get(day, 0.0) + cell[COST]
    return out


def _planned_cells(plan: Plan, flt: Filter, group: int | None) -> Iterable[tuple[str, list[Any]]]:
    """The cells ``flt`` passes (no session filter), in the cube's order, each with its key part ``group`` (an
    index into the cell key; None: the day)."""
    slices, sessions = plan.slices, plan.sessions
    for day, sl, cell, _g, s in _passing(plan.rows, _plan_test(plan, flt)):
        if group is None or group == 0:
            part = day
        elif group == 4:
            part = sessions[s][1]
        else:  # 1 source, 2 model, 3 project, 5 mode: parts of the slice
            part = slices[sl][(0, 0, 1, 2, 0, 3)[group]]
        yield part, cell


def by_task(cube: Cube, flt: Filter, kept: bool = False) -> list[Row]:
    """Totals per task: internal ``task_id``; Claude Code: the tools the message invoked, ``(text)`` if none.
    ``kept``: from the sums by task last read for the filter's dates, of whichever version (`Cube.task_sums_kept`;
    the caller made sure there are some), not read again."""
    groups: dict[str, list[float]] = {}
    summed = (None if cube.task_source is None else
              cube.task_sums_kept(task_scope(flt)) if kept else _task_sums(cube, task_scope(flt)))
    if summed is not None:  # from a ledger: its sums by task and what the filter tests (not every call)
        test = _Predicate(flt)
        for task, src, model, proj, mode, *sums in summed:
            if test(src, model, proj, flt.session, mode):
                acc = groups.get(task)
                if acc is None:
                    acc = groups[task] = new_cell()
                for i, v in enumerate(sums):  # IN, OUT, CW, CR, CALLS, COST, UNPRICED
                    acc[i] += v
                if mode == LOCAL:
                    acc[LOCAL_CALLS] += sums[CALLS]
        return _rows(_by_cost(groups), "task")
    for c in matching_calls(cube, flt):
        acc = groups.get(c.task)
        if acc is None:
            acc = groups[c.task] = new_cell()
        acc[IN] += c.input_tokens
        acc[OUT] += c.output_tokens
        acc[CW] += c.cache_creation_tokens
        acc[CR] += c.cache_read_tokens
        acc[CALLS] += 1
        if c.cost is None:
            acc[UNPRICED] += 1
        else:
            acc[COST] += c.cost
        if c.mode == LOCAL:
            acc[LOCAL_CALLS] += 1
    return _rows(_by_cost(groups), "task")


def task_scope(flt: Filter) -> tuple[float | None, float | None, str | None]:
    """What the ledger's sums by task for ``flt`` are read for (`Cube.tasks_memo`): its dates and session (the
    other filters are tested on the sums)."""
    return (*flt.day_bounds(), flt.session)


def _task_sums(cube: Cube, scope: tuple[float | None, float | None, str | None]) -> list[tuple[Any, ...]] | None:
    """``cube.task_source(*scope)``, read once per version and scope (see `Cube.tasks_memo`)."""
    kept = cube.tasks_memo.get(scope)
    if kept is None or kept[0] != cube.version:
        assert cube.task_source is not None
        kept = (cube.version, cube.task_source(*scope))
    cube.keep_task_sums(scope, kept[1])  # (again: the latest used)
    return kept[1]


def top_tasks(cube: Cube, flt: Filter, n: int = 15, kept: bool = False) -> list[Row]:
    """The ``n`` costliest tasks, with the average cost per call (``kept``: see `by_task`)."""
    rows = by_task(cube, flt, kept)[:n]
    for r in rows:
        priced = r["calls"] - r["unpriced_calls"]
        r["avg_cost_usd"] = r["cost_usd"] / priced if priced else None
    return rows


def recent_calls(cube: Cube, flt: Filter, n: int = 20, matching: int | None = None) -> list[Row]:
    """The last ``n`` calls, newest first (``matching``: see `newest_matching`)."""
    newest = newest_matching(cube, flt, n, matching)
    return [{"time": datetime.fromtimestamp(c.ts, flt.tz).isoformat(timespec="seconds"), "source": c.source,
             "model": c.model, "project": c.project, "session": c.session, "task": c.task,
             "input_tokens": c.input_tokens, "output_tokens": c.output_tokens,
             "cache_creation_tokens": c.cache_creation_tokens, "cache_read_tokens": c.cache_read_tokens,
             "cost_usd": c.cost} for c in newest]


def newest_matching(cube: Cube, flt: Filter, n: int, matching: int | None = None) -> list[Call]:
    """The ``n`` newest calls that pass the filter, newest first. From a ledger, read newest first until ``n`` pass
    (a few hundred rows through its time index, instead of every call of the range: 0.8 s for all of 470 MB), or
    every call that passes: ``matching`` says how many (the count the caller's view shows; else the cube's). A
    filter that passes nothing (every model off, a project without calls in the range) reads nothing: it read the
    whole range, 2-3 s on the 2 GB corpus."""
    source = cube.newest_source
    if source is None:
        return heapq.nlargest(n, matching_calls(cube, flt), key=lambda c: c.ts)
    if matching is None:
        matching = quick_totals(cube, flt)[0]["calls"]
    want = min(n, matching)
    if want <= 0:
        return []
    lo, hi = flt.day_bounds()
    test = _Predicate(flt)
    limit = max(8 * n, 256)
    while True:  # source, mode and session are tested by the ledger too: a rare one is found in one read
        rows = source(lo, hi, limit, source=test.source, mode=flt.mode, session=flt.session)
        picked = [c for c in rows if test(c.source, c.model, c.project, c.session, c.mode)]
        if len(picked) >= want or len(rows) < limit:
            return picked[:n]
        limit *= 8  # a narrow filter: read further back


def projection(cube: Cube, flt: Filter, now: float, lookback_days: int = 7,
               report: Row | None = None) -> dict[str, Any]:
    """Average spend per day over the lookback, projected to the end of today, this week and this month.

    ``flt``'s dates are ignored. One pass over the cells: the cost per day from the earliest day any of the sums
    needs; none when ``report`` (`build_report` for ``flt``) is given and ``flt`` has no dates (its days are all).
    """
    from datetime import timedelta

    undated = flt.since is None and flt.until is None
    by_day = report["by_day"] if report is not None and undated else None
    flt = flt if undated else flt.with_(since=None, until=None)

    today = datetime.fromtimestamp(now, flt.tz).date()
    first = today - timedelta(days=lookback_days - 1)
    week_start = today - timedelta(days=today.weekday())
    month_start = today.replace(day=1)
    if by_day is not None:
        per_day_cost = {r["day"]: r["cost_usd"] for r in by_day}
    else:
        per_day_cost = cost_by_day(cube, flt.with_(since=min(first, week_start, month_start), until=today))

    def spent(since: date) -> float:
        lo = since.isoformat()
        return sum(c for d, c in per_day_cost.items() if d >= lo)

    per_day = spent(first) / lookback_days
    week_end = today + timedelta(days=6 - today.weekday())
    month_end = (month_start + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    day_fraction_left = 1 - (now - datetime(today.year, today.month, today.day, tzinfo=flt.tz).timestamp()) / 86400
    left = max(0.0, day_fraction_left)
    return {
        "lookback_days": lookback_days, "per_day_usd": per_day,
        "today_usd": spent(today) + per_day * left,
        "week_usd": spent(week_start) + per_day * ((week_end - today).days + left),
        "month_usd": spent(month_start) + per_day * ((month_end - today).days + left),
    }
