"""The cube: any order, any batching, same totals; replace on a larger snapshot."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokentop.core.aggregate import Cube
from tokentop.core.claude_code import dedupe
from tokentop.core.filters import Filter
from tokentop.core.records import CLAUDE_CODE, INTERNAL, Call
from tokentop.core.report import build_report

INT_FIELDS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens", "calls",
              "cloud_calls", "local_calls", "unpriced_calls")


def price(c: Call) -> float | None:
    return None if c.model == "mystery" else (c.input_tokens + 2 * c.output_tokens + c.cache_read_tokens) / 1e6


calls = st.builds(
    lambda key, model, out, inp, cr, day, internal: Call(
        INTERNAL if internal else CLAUDE_CODE, 1_763_000_000 + day * 86400, model, "p", "s", "cloud",
        inp, out, 0, cr, None, None if internal else f"msg_{key}"),
    key=st.integers(0, 6), model=st.sampled_from(["claude-sonnet-4-5", "claude-haiku-4-5", "mystery"]),
    out=st.integers(0, 500), inp=st.integers(0, 50), cr=st.integers(0, 1000), day=st.integers(0, 3),
    internal=st.booleans(),
)


def priced(c: Call) -> Call:
    c = Call(*[getattr(c, f) for f in c.__struct_fields__])
    c.cost = price(c)
    return c


def totals(cube: Cube) -> dict:
    return build_report(cube, Filter(), now=0)


def feed(batches: list[list[Call]]) -> Cube:
    cube = Cube(price)
    for b in batches:
        keyed: dict[str, Call] = {}
        cube.apply([priced(c) for c in dedupe(b, keyed) + list(keyed.values())])
    return cube


@settings(max_examples=200, deadline=None)
@given(st.lists(calls, max_size=30), st.randoms(use_true_random=False), st.integers(1, 5))
def test_any_order_and_batching_gives_identical_totals(lines: list[Call], rnd, n_batches: int) -> None:
    one = totals(feed([lines]))
    shuffled = lines[:]
    rnd.shuffle(shuffled)
    cuts = sorted(rnd.randint(0, len(shuffled)) for _ in range(n_batches - 1))
    batches = [shuffled[a:b] for a, b in zip([0, *cuts], [*cuts, len(shuffled)], strict=True)]
    other = totals(feed(batches))
    for f in INT_FIELDS:
        assert one["totals"][f] == other["totals"][f]
    assert abs(one["totals"]["cost_usd"] - other["totals"]["cost_usd"]) < 1e-9
    assert [(d["day"], d["calls"], d["output_tokens"]) for d in one["by_day"]] == \
        [(d["day"], d["calls"], d["output_tokens"]) for d in other["by_day"]]
    # and equal to a direct count: one call per key (max output), one per internal row
    keys: dict[str, int] = {}
    for c in lines:
        if c.key:
            keys[c.key] = max(keys.get(c.key, 0), c.output_tokens)
    internal = [c for c in lines if c.key is None]
    assert one["totals"]["calls"] == len(keys) + len(internal)
    assert one["totals"]["output_tokens"] == sum(keys.values()) + sum(c.output_tokens for c in internal)


def test_a_larger_snapshot_replaces_the_earlier_contribution() -> None:
    cube = Cube(price)
    first = priced(Call(CLAUDE_CODE, 1_763_000_000, "claude-sonnet-4-5", "p", "s", "cloud", 3, 2, 0, 100, None,
                        "msg_1"))
    final = priced(Call(CLAUDE_CODE, 1_763_000_001, "claude-sonnet-4-5", "p", "s", "cloud", 3, 800, 0, 100, None,
                        "msg_1"))
    cube.apply([first])
    cube.apply([final])
    cube.apply([first])  # a stale copy arriving late changes nothing
    t = totals(cube)["totals"]
    assert (t["calls"], t["output_tokens"], t["cache_read_tokens"]) == (1, 800, 100)
    assert t["cost_usd"] == price(final)
    assert len(cube.cells) == 1


@pytest.mark.parametrize("zone", ["UTC", "Europe/Vienna", "America/St_Johns", "Asia/Kathmandu", "Australia/Lord_Howe"])
def test_day_index_from_offset_stretches_matches_the_calendar(zone: str) -> None:
    import sqlite3
    from datetime import datetime

    from tokentop.core.aggregate import BUCKET_SECONDS
    from tokentop.core.filters import DayNamer, parse_tz

    namer = DayNamer(parse_tz(zone), BUCKET_SECONDS)
    lo = int(datetime(2025, 1, 1).timestamp()) // BUCKET_SECONDS
    hi = lo + 2 * 366 * 96  # two years of quarter hours, every DST change in them
    segments = namer.offsets(lo, hi)
    assert segments[0][0] == lo and all(a[0] < b[0] for a, b in zip(segments, segments[1:], strict=False))
    if zone in ("Europe/Vienna", "Australia/Lord_Howe"):
        assert len(segments) == 5  # two changes a year
    db = sqlite3.connect(":memory:")  # what the ledger asks SQLite for a bucket's day
    for b in range(lo, hi + 1, 7):  # every 7th quarter hour: every hour of the day, both sides of each change
        off = next(o for start, o in reversed(segments) if start <= b)
        assert db.execute("SELECT date(? + ?, 'unixepoch')", (b * BUCKET_SECONDS, off)).fetchone()[0] == namer(b)


@settings(max_examples=300, deadline=None)
@given(ts=st.one_of(st.floats(-2e9, 4.1e9, allow_nan=False),
                    st.integers(0, 4_100_000_000).map(lambda s: s + 0.9999995),
                    st.integers(0, 4_100_000_000).map(float)),
       zone=st.sampled_from(["UTC", "Europe/Vienna", "America/St_Johns", "Asia/Kathmandu", "Australia/Lord_Howe",
                             "Pacific/Chatham", "America/Los_Angeles"]))
def test_session_timestamps_are_formatted_as_datetime_does(ts: float, zone: str) -> None:
    from datetime import datetime

    from tokentop.core.aggregate import BUCKET_SECONDS
    from tokentop.core.filters import DayNamer, parse_tz

    tz = parse_tz(zone)
    namer = DayNamer(tz, BUCKET_SECONDS)
    expected = datetime.fromtimestamp(ts, tz).isoformat(timespec="seconds")
    assert namer.stamp(ts) == expected
    assert namer.stamp(ts) == expected  # cached


def test_a_session_lists_models_by_calls_then_name_and_its_main_project() -> None:
    cube = Cube(price)
    day = 1_763_000_000
    spec = [("zeta", "p1", 2), ("alpha", "p2", 2), ("mid", "p3", 1), ("solo", "p4", 1)]
    n = 0
    for model, project, count in spec:
        for _ in range(count):
            n += 1
            session = "other" if model == "solo" else "s"
            cube.apply([priced(Call(CLAUDE_CODE, day + n * 86400, model, project, session, "cloud", 1, 1, 0, 0,
                                    None, f"msg_{n}"))])
    rows = {r["session"]: r for r in build_report(cube, Filter(), now=0)["sessions"]}
    assert rows["s"]["models"] == ["alpha", "zeta", "mid"]  # most calls first; a tie in name order
    assert rows["s"]["project"] == "p2"  # most calls; a tie goes to the last name
    assert rows["s"]["calls"] == 5 and rows["other"]["models"] == ["solo"] and rows["other"]["project"] == "p4"


def test_a_report_limited_to_the_latest_sessions_has_their_rows_and_every_total() -> None:
    import random

    rng = random.Random(3)
    cube = Cube(price)
    base = 1_763_000_000
    for n in range(400):  # 60 sessions over days, several models and projects each
        session = f"s{rng.randrange(60)}"
        cube.apply([priced(Call(CLAUDE_CODE, base + rng.randrange(30 * 86400), rng.choice(["a", "b", "c"]),
                                rng.choice(["p1", "p2"]), session, "cloud", 1, 1, 0, 0, None, f"msg_{n}"))])
    flt = Filter(project="p")  # a filtered report (the unfiltered one is memoized whole)
    full = build_report(cube, flt, now=0)
    top = build_report(cube, flt, now=0, max_sessions=10)
    assert len(full["sessions"]) == 60 and top["sessions"] == full["sessions"][:10]
    assert any(len(s["models"]) > 1 for s in top["sessions"])
    assert {k: v for k, v in top.items() if k != "sessions"} == {k: v for k, v in full.items() if k != "sessions"}
    assert build_report(cube, Filter(), now=0, max_sessions=10)["sessions"] == \
        build_report(cube, Filter(), now=0)["sessions"][:10]


def random_cube(seed: int, n: int = 600) -> Cube:
    import random

    rng = random.Random(seed)
    cube = Cube(price)
    base = 1_763_000_000
    for i in range(n):
        internal = rng.random() < 0.2
        cube.apply([priced(Call(
            INTERNAL if internal else CLAUDE_CODE, base + rng.randrange(20 * 86400) + rng.random(),
            rng.choice(["claude-sonnet-4-5", "claude-opus-4-5", "claude-haiku-4-5", "qwen-local", "mystery"]),
            rng.choice(["webshop", "payments", "docs"]), f"s{rng.randrange(40)}",
            "local" if rng.random() < 0.15 else "cloud", rng.randrange(50), rng.randrange(900), 0,
            rng.randrange(5000), None, None if internal else f"msg_{i}"))])
    return cube


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 3), source=st.sampled_from(["all", CLAUDE_CODE, INTERNAL]),
       models=st.one_of(st.none(), st.lists(st.sampled_from(
           ["claude-sonnet-4-5", "claude-opus-4-5", "qwen-local", "mystery"]), max_size=3).map(tuple)),
       project=st.sampled_from([None, "pay", "o"]), mode=st.sampled_from([None, "cloud", "local"]),
       since=st.one_of(st.none(), st.integers(0, 20)), span=st.integers(0, 20),
       max_sessions=st.sampled_from([None, 5]))
def test_a_filtered_report_through_the_plan_equals_summing_the_matching_cells(
        seed, source, models, project, mode, since, span, max_sessions) -> None:
    from datetime import date, timedelta

    import msgspec
    from tokentop.core.report import (
        _group_planned,
        cost_by_day,
        group_cells,
        matching_cells,
        plan_of,
        quick_totals,
    )

    cube = random_cube(seed)
    first = date(2025, 11, 13)
    flt = Filter(source=source, models=models, project=project, mode=mode,
                 since=None if since is None else first + timedelta(days=since),
                 until=None if since is None else first + timedelta(days=since + span))
    before = build_report(cube, flt, now=0, max_sessions=max_sessions)  # no plan yet: summed cell by cell
    direct = group_cells(matching_cells(cube, flt), cube.day_of, max_sessions)
    planned = _group_planned(cube, flt, max_sessions)
    assert msgspec.to_builtins(planned) == msgspec.to_builtins(direct)  # the same sums, bit for bit
    assert build_report(cube, flt, now=0, max_sessions=max_sessions) == before  # (a plan is there now)
    for group in (None, 0, 1, 2, 3, 4, 5):
        cube.plan = None
        direct_totals = quick_totals(cube, flt, group)
        plan_of(cube)
        assert quick_totals(cube, flt, group) == direct_totals
    by_day = {r["key"]: r["cost_usd"] for r in quick_totals(cube, flt, 0)[1]}  # what the projection sums
    assert cost_by_day(cube, flt) == by_day  # through the plan
    cube.plan = None
    assert cost_by_day(cube, flt) == by_day  # cell by cell


def test_the_plan_follows_the_cube() -> None:
    from tokentop.core.report import plan_of

    cube = random_cube(1, 50)
    flt = Filter(source=CLAUDE_CODE)
    assert plan_of(cube) is plan_of(cube)  # made once per version
    before = build_report(cube, flt, now=0)["totals"]
    cube.apply([priced(Call(CLAUDE_CODE, 1_763_000_000, "claude-opus-4-5", "docs", "new", "cloud", 5, 7, 0, 0,
                            None, "msg_new"))])
    after = build_report(cube, flt, now=0)["totals"]  # the plan is stale: not used
    assert after["calls"] == before["calls"] + 1 and after["output_tokens"] == before["output_tokens"] + 7
    plan_of(cube)
    assert build_report(cube, flt, now=0)["totals"] == after


def test_model_chips_are_the_same_from_a_memo_and_follow_the_filter_and_the_cube() -> None:
    from tokentop.core.views import chips

    cube = random_cube(1)
    shown = ("claude-opus-4-5", "mystery")

    def fresh(flt: Filter) -> list:
        cube.chips_memo = None
        return chips(cube, flt)

    def same(a: list, b: list) -> bool:  # the sums may come from the report's rows or straight from the cells:
        return len(a) == len(b) and all(  # the same numbers added in another order
            x.keys() == y.keys() and all(x[k] == pytest.approx(y[k], rel=1e-12) if isinstance(x[k], float)
                                         else x[k] == y[k] for k in x) for x, y in zip(a, b, strict=True))

    for flt in (Filter(), Filter(source=CLAUDE_CODE), Filter(mode="local")):
        want = fresh(flt.with_(models=shown))
        chips(cube, flt, build_report(cube, flt, now=0))  # what a redraw without a model filter leaves
        assert same(chips(cube, flt.with_(models=shown)), want)  # a chip toggled: the sums come from the memo
        assert sum(c["selected"] for c in want) == 2
    other = chips(cube, Filter(project="docs", models=shown))  # another filter: not the memo's
    assert same(other, fresh(Filter(project="docs", models=shown))) and not same(other, want)
    cube.apply([Call(CLAUDE_CODE, 1_763_000_000, "claude-opus-4-5", "docs", "s1", "cloud", 1, 10**6, 0, 0, 5.0,
                     "msg_new")])
    after = chips(cube, Filter(project="docs", models=shown))  # the cube changed: summed again
    assert same(after, fresh(Filter(project="docs", models=shown))) and not same(after, other)
