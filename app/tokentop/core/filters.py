"""The Filter value object and time-zone helpers; applied per cube cell so every view agrees."""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from .records import CLAUDE_CODE, INTERNAL, MODES


class FilterError(ValueError):
    """A filter value the user gave is not valid; the message says which and why."""


def local_zone() -> ZoneInfo:
    """The system zone as a real IANA zone (DST-aware), not a fixed offset."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz:
        try:
            return ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    link = Path("/etc/localtime")
    try:
        target = os.readlink(link)
        if "zoneinfo/" in target:
            return ZoneInfo(target.split("zoneinfo/", 1)[1])
    except (OSError, ZoneInfoNotFoundError, ValueError):
        pass
    try:
        name = Path("/etc/timezone").read_text().strip()
        if name:
            return ZoneInfo(name)
    except (OSError, ZoneInfoNotFoundError, ValueError):
        pass
    try:
        with open(link, "rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError):
        return ZoneInfo("UTC")


def parse_tz(name: str | None) -> ZoneInfo:
    """``UTC``, ``local`` or an IANA name; raises FilterError for an unknown zone."""
    if not name or name == "local":
        return local_zone()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise FilterError(f"unknown time zone {name!r} (use UTC, local, or an IANA name like Europe/Vienna)") from e


def tz_name(tz: tzinfo) -> str:
    """The zone's IANA key when it has one."""
    return getattr(tz, "key", None) or str(tz)


def parse_date(value: str, what: str) -> date:
    """A ``YYYY-MM-DD`` date (``YYYYMMDD`` accepted too)."""
    v = value.strip()
    try:
        if len(v) == 8 and v.isdigit():
            return date(int(v[:4]), int(v[4:6]), int(v[6:]))
        return date.fromisoformat(v)
    except ValueError as e:
        raise FilterError(f"{what}: {value!r} is not a date (expected YYYY-MM-DD)") from e


SOURCE_CHOICES = ("all", CLAUDE_CODE, INTERNAL)


class Filter(msgspec.Struct, frozen=True):
    """What the user asked to see. ``models``: None = all, () = zero rows, a tuple = only those."""

    source: str = "all"
    models: tuple[str, ...] | None = None
    project: str | None = None
    mode: str | None = None
    since: date | None = None
    until: date | None = None
    session: str | None = None
    tz: tzinfo = msgspec.field(default_factory=lambda: ZoneInfo("UTC"))

    def __post_init__(self) -> None:
        if self.source not in SOURCE_CHOICES:
            raise FilterError(f"unknown source {self.source!r} (choose all, claude_code or internal)")
        if self.mode is not None and self.mode not in MODES:
            raise FilterError(f"unknown mode {self.mode!r} (choose cloud or local)")
        if self.since and self.until and self.since > self.until:
            raise FilterError(f"--since {self.since} is after --until {self.until}")

    @staticmethod
    def models_from_csv(csv: str | None) -> tuple[str, ...] | None:
        """The CLI's ``--models``: absent = all, ``''`` = none, ``a,b`` = those."""
        if csv is None:
            return None
        return tuple(m.strip() for m in csv.split(",") if m.strip())

    def with_(self, **changes: object) -> Filter:
        """A copy with some fields changed."""
        new = msgspec.structs.replace(self, **changes)
        new.__post_init__()  # replace() does not validate
        return new

    def as_json(self) -> dict[str, object]:
        """The filter as ``report --json`` states it."""
        return {
            "source": self.source,
            "models": list(self.models) if self.models is not None else None,
            "project": self.project,
            "mode": self.mode,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "session": self.session,
        }

    def day_bounds(self) -> tuple[float | None, float | None]:
        """Epoch seconds [start, end) of the inclusive date range in the filter's zone."""
        lo = hi = None
        if self.since:
            lo = datetime(self.since.year, self.since.month, self.since.day, tzinfo=self.tz).timestamp()
        if self.until:
            nxt = self.until + timedelta(days=1)
            hi = datetime(nxt.year, nxt.month, nxt.day, tzinfo=self.tz).timestamp()
        return lo, hi


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_TWO_DIGITS = [f"{i:02d}" for i in range(60)]


class DayNamer:
    """Maps a quarter-hour bucket to its ``YYYY-MM-DD`` in one zone, cached (buckets repeat a lot)."""

    def __init__(self, tz: tzinfo, bucket_seconds: int) -> None:
        self.tz = tz
        self.bucket_seconds = bucket_seconds
        self._cache: dict[int, str] = {}
        self._zones: dict[int, tuple[int, str] | tuple[()]] = {}
        self._dates: dict[int, str] = {}

    def __call__(self, bucket: int) -> str:
        try:
            return self._cache[bucket]
        except KeyError:
            d = datetime.fromtimestamp(bucket * self.bucket_seconds, self.tz).date().isoformat()
            self._cache[bucket] = d
            return d

    def of_ts(self, ts: float) -> str:
        """Day of an exact timestamp."""
        return self(int(ts // self.bucket_seconds))

    def stamp(self, ts: float) -> str:
        """``datetime.fromtimestamp(ts, tz).isoformat(timespec="seconds")`` at a fraction of its cost (a report
        formats one per session): the offset is cached per UTC day, the date per local day."""
        if ts < 0:
            return datetime.fromtimestamp(ts, self.tz).isoformat(timespec="seconds")
        second = int(ts)
        if ts - second >= 0.9999995:  # what datetime's rounding to microseconds does
            second += 1
        utc_day = second // 86400
        zone = self._zones.get(utc_day)
        if zone is None:
            zone = self._zones[utc_day] = self._zone_of(utc_day)
        if not zone:  # the offset changes that day
            return datetime.fromtimestamp(ts, self.tz).isoformat(timespec="seconds")
        off, suffix = zone
        local = second + off
        day = self._dates.get(local // 86400)
        if day is None:
            day = self._dates[local // 86400] = date.fromordinal(_EPOCH_ORDINAL + local // 86400).isoformat()
        hour, rest = divmod(local % 86400, 3600)
        minute, sec = divmod(rest, 60)
        return f"{day}T{_TWO_DIGITS[hour]}:{_TWO_DIGITS[minute]}:{_TWO_DIGITS[sec]}{suffix}"

    def _zone_of(self, utc_day: int) -> tuple[int, str] | tuple[()]:
        """(offset seconds, its ISO text) of a UTC day with one offset all day; () for a day it changes."""
        start = datetime.fromtimestamp(utc_day * 86400, self.tz)
        off = start.utcoffset()
        if off is None:
            return 0, ""
        if off != datetime.fromtimestamp(utc_day * 86400 + 86399, self.tz).utcoffset() or off % timedelta(seconds=1):
            return ()
        return int(off.total_seconds()), start.isoformat(timespec="seconds")[19:]

    def offset(self, bucket: int) -> int:
        """The zone's UTC offset (seconds) at the bucket's start."""
        off = datetime.fromtimestamp(bucket * self.bucket_seconds, self.tz).utcoffset()
        return int(off.total_seconds()) if off is not None else 0

    def offsets(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """``(first bucket, UTC offset)`` of each stretch of buckets ``lo..hi`` with one offset: a bucket's day is
        then the UTC date of ``bucket * bucket_seconds + offset``, which a database can compute.
        Probed once a day, each change located by bisection (zones change offset at most a few times a year)."""
        out = [(lo, self.offset(lo))]
        step = max(1, 86400 // self.bucket_seconds)
        b = lo
        while b < hi:
            nb = min(b + step, hi)
            o = self.offset(nb)
            if o != out[-1][1]:
                a, z = b, nb  # offset(a) is the current one, offset(z) the new one
                while z - a > 1:
                    m = (a + z) // 2
                    if self.offset(m) == out[-1][1]:
                        a = m
                    else:
                        z = m
                out.append((z, self.offset(z)))
            b = nb
        return out


WINDOWS = ("today", "yesterday", "this-week", "last-week", "this-month", "last-7d", "last-30d", "all")


def window_dates(name: str, today: date) -> tuple[date | None, date | None]:
    """Inclusive (since, until) of a named window; weeks start Monday 00:00 in the display zone."""
    monday = today - timedelta(days=today.weekday())
    spans: dict[str, tuple[date | None, date | None]] = {
        "today": (today, today),
        "yesterday": (today - timedelta(days=1), today - timedelta(days=1)),
        "this-week": (monday, today),
        "last-week": (monday - timedelta(days=7), monday - timedelta(days=1)),
        "this-month": (today.replace(day=1), today),
        "last-7d": (today - timedelta(days=6), today),
        "last-30d": (today - timedelta(days=29), today),
        "all": (None, None),
    }
    if name not in spans:
        raise FilterError(f"unknown window {name!r} (choose {', '.join(WINDOWS)})")
    return spans[name]


def previous_window(since: date, until: date) -> tuple[date, date]:
    """The window of equal length just before ``[since, until]``."""
    length = until - since
    prev_until = since - timedelta(days=1)
    return prev_until - length, prev_until
