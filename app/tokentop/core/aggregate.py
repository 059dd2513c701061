"""The incremental cube: token/cost/call sums per (day, source, model, project, session, mode).

Days are calendar days in the display zone the cube was built for (a report in another zone rebuilds a cube
from the calls). Claude Code calls are de-duplicated on their key: a later, larger snapshot of a message
subtracts the earlier contribution and adds the merged one. Finer views (today by hour, 5-hour blocks, recent
calls) read single calls, which the cube keeps too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from .claude_code import merge
from .filters import DayNamer
from .records import LOCAL, Call

#: Day names are looked up per quarter hour: every real UTC offset is a multiple of 15 minutes.
BUCKET_SECONDS = 900

# Cell layout (a list, for speed): the four token kinds, calls, cost of priced calls, unpriced calls,
# local calls, last activity (epoch seconds; only ever grows).
IN, OUT, CW, CR, CALLS, COST, UNPRICED, LOCAL_CALLS, LAST = range(9)
#: How many date ranges (with a session or not) `Cube.tasks_memo` keeps the sums by task of.
TASK_SCOPES = 8

CellKey = tuple[str, str, str, str, str, str]  # day, source, model, project, session, mode


def new_cell() -> list[float]:
    """An empty cell."""
    return [0, 0, 0, 0, 0, 0.0, 0, 0, 0.0]


class Cube:
    """Sums per cell, with add and replace; fed in any order or batching it ends with identical totals."""

    def __init__(self, pricer: Callable[[Call], float | None], tz: tzinfo | None = None) -> None:
        self.pricer = pricer
        self.tz = tz or ZoneInfo("UTC")
        self.day_of = DayNamer(self.tz, BUCKET_SECONDS)
        self._cells: dict[CellKey, list[float]] = {}
        self._pending: Callable[[], dict[CellKey, list[float]]] | None = None
        self.by_key: dict[str, Call] = {}
        #: Calls without a dedupe key (internal rows), for views that need single calls (tasks, recent).
        self.plain: list[Call] = []
        #: Where calls not held in memory live (a ledger after a warm start): key lookup and time-range reads.
        self.lookup: Callable[[str, str], Call | None] | None = None
        #: (``session``: only those of that session, or more: a source may leave the test to the caller.)
        self.call_source: Callable[[float | None, float | None, str | None], Iterable[Call]] | None = None
        #: There too: up to ``limit`` calls with ``lo <= ts < hi``, the newest first (`report.recent_calls`).
        self.newest_source: Callable[..., list[Call]] | None = None  # (lo, hi, limit, source=, mode=, session=)
        #: There too: the calls' sums by task, source, model, project and mode (`Ledger.task_sums`); of one
        #: session when given, exactly (`report.by_task`).
        self.task_source: Callable[[float | None, float | None, str | None], list[tuple[Any, ...]] | None] | None \
            = None
        self.version = 0  # bumped on every change; views cache on it
        #: A view computed for one version (`report.unfiltered_groups`): (version, value).
        self.memo: tuple[int, Any] | None = None
        #: The cells numbered for filtered views, for one version (`report.plan_of`).
        self.plan: Any = None
        #: The model chips' sums for one version and filter (`views.chips`): (version, filter, value).
        self.chips_memo: tuple[int, Any, Any] | None = None
        #: ``task_source``'s rows per (bounds, session), each for one version: the keys that change the source,
        #: model, project or mode filter test them again, without another read (`report.by_task`); calls that
        #: `apply` adds or replaces are folded in (`fold_task_sums`), so live changes need no read either. The
        #: `TASK_SCOPES` last date ranges are kept: the `d` key's windows, once each has been read.
        self.tasks_memo: dict[Any, tuple[int, list[tuple[Any, ...]] | None]] = {}
        #: Where ``task_source``'s rows can be read in another thread instead: ``(lo, hi, session) -> read``, the
        #: ledger as it stands at that call, read when ``read()`` is called (`Ledger.task_sums_later`).
        self.task_reader: Callable[[float | None, float | None, str | None], Callable[[], list[tuple[Any, ...]]]] \
            | None = None
        #: Reads of ``task_reader`` under way, per (bounds, session): what `apply` changed since each began.
        self.tasks_reading: dict[Any, TaskRead] = {}
        #: Whether such a read is kept although the cube changed otherwise while it ran, as sums of the version
        #: it began at (shown until they are read again; `task_sums_kept`): a team view's changes come from the
        #: database, not `apply`, and a busy team changes it more often than a read takes.
        self.tasks_may_lag = False

    @property
    def cells(self) -> dict[CellKey, list[float]]:
        """The sums per cell (read from where `defer_cells` said, on first use)."""
        if self._pending is not None:
            self._cells, self._pending = self._pending(), None
        return self._cells

    @cells.setter
    def cells(self, cells: dict[CellKey, list[float]]) -> None:
        self._cells, self._pending = cells, None

    def defer_cells(self, load: Callable[[], dict[CellKey, list[float]]]) -> None:
        """Take the cells from ``load()`` when first needed (a warm start whose views are all memoized never
        needs them)."""
        self._cells, self._pending = {}, load

    def __len__(self) -> int:
        return len(self.cells)

    def _bump(self, c: Call, sign: int) -> None:
        _bump_cell(self.cells, (self.day_of.of_ts(c.ts), c.source, c.model, c.project, c.session, c.mode),
                   c, sign)

    def absorb(self, cells: Iterable[list], calls: Iterable[Call], merged: list[Call] | None = None,
               again: set[str] | None = None) -> None:
        """Merge a partial cube built elsewhere (a scan worker) from ``calls`` (each key at most once).

        Args:
            cells: ``[*key, *sums]`` rows of the partial cube.
            calls: the calls behind it; keys it shares with this cube are merged (both contributions out,
                the merged one in).
            merged: gets those of ``calls`` that changed this cube, as they now stand in it (what a ledger stores),
                when given.
            again: gets the keys among them this cube knew before, when given.
        """
        width = len(new_cell())
        target = self.cells
        for row in cells:
            key = tuple(row[:-width])
            sums = row[-width:]
            cell = target.get(key)  # type: ignore[call-overload]
            if cell is None:
                target[key] = sums  # type: ignore[index]
            else:
                for i in range(LAST):
                    cell[i] += sums[i]
                if sums[LAST] > cell[LAST]:
                    cell[LAST] = sums[LAST]
        by_key = self.by_key
        keep = merged.append if merged is not None else _ignore
        seen = again.add if again is not None else _ignore
        for c in calls:
            k = c.key
            if k is None:
                self.plain.append(c)
                keep(c)
                continue
            prev = by_key.get(k)
            if prev is None:
                by_key[k] = c
                keep(c)
                continue
            m = merge(prev, c)
            self._bump(c, -1)  # the partial cube counted it
            if m is prev:  # the copy this cube has already stands (and so does the ledger's row)
                continue
            if m is not c:
                m.cost = self.pricer(m)
            self._bump(prev, -1)
            by_key[k] = m
            self._bump(m, 1)
            keep(m)
            seen(k)
        self.version += 1

    def rows(self) -> list[list]:
        """The cells as ``[*key, *sums]`` rows (for shipping a partial cube between processes)."""
        return [[*k, *v] for k, v in self.cells.items()]

    def in_zone(self, tz: tzinfo) -> Cube:
        """The same calls in a cube whose days are in another zone."""
        other = Cube(self.pricer, tz)
        other.apply(list(self.calls()))
        return other

    def calls(self, lo: float | None = None, hi: float | None = None, session: str | None = None) -> Iterable[Call]:
        """Every counted call (final snapshots of Claude Code messages, and internal rows), or ``lo <= ts < hi``.
        ``session``: the caller wants only that session's (a ledger reads only those; the rest may come too)."""
        if self.call_source is not None:
            yield from self.call_source(lo, hi, session)
            return
        for group in (self.by_key.values(), self.plain):
            for c in group:
                if (lo is None or c.ts >= lo) and (hi is None or c.ts < hi):
                    yield c

    def apply(self, calls: Iterable[Call], replaced: list[Call] | None = None) -> list[Call]:
        """Add priced calls; Claude Code copies of a known key replace its contribution when larger.

        Args:
            calls: priced calls.
            replaced: if given, receives the earlier version of every call that was replaced.

        Returns:
            The calls that changed the cube, as they now stand (merged where a key was known).
        """
        changed: list[Call] = []
        if replaced is None:
            replaced = []
        first_replaced = len(replaced)  # the caller's list may hold earlier batches' already
        by_key = self.by_key
        lookup = self.lookup
        for c in calls:
            k = c.key
            if k is None:
                self.plain.append(c)
                self._bump(c, 1)
                changed.append(c)
                continue
            prev = by_key.get(k)
            if prev is None and lookup is not None:
                prev = lookup(c.source, k)
            if prev is None:
                by_key[k] = c
                self._bump(c, 1)
                changed.append(c)
                continue
            m = merge(prev, c)
            if m is prev or m == prev:
                continue
            if m is not c:
                m.cost = self.pricer(m)
            self._bump(prev, -1)
            by_key[k] = m
            self._bump(m, 1)
            changed.append(m)
            replaced.append(prev)
        if changed:
            self.version += 1
            gone = replaced[first_replaced:]
            for scope, (version, rows) in self.tasks_memo.items():
                if version == self.version - 1 and rows is not None:
                    self.tasks_memo[scope] = (self.version, fold_task_sums(rows, scope, changed, gone))
            for reading in self.tasks_reading.values():
                if reading.version == self.version - 1:
                    reading.added += changed
                    reading.removed += gone
                    reading.version = self.version
        return changed

    # -- sums by task (a ledger's; see `tasks_memo`) -----------------------------------------------------

    def task_sums_current(self, scope: tuple[float | None, float | None, str | None]) -> bool:
        """Whether the sums by task of ``scope`` are kept for this version (a view of them reads nothing)."""
        kept = self.tasks_memo.get(scope)
        return kept is not None and kept[0] == self.version

    def keep_task_sums(self, scope: tuple[float | None, float | None, str | None],
                       rows: list[tuple[Any, ...]] | None, version: int | None = None) -> None:
        """Keep ``scope``'s sums by task for this version (or an earlier one they are of), as the latest used
        (`TASK_SCOPES` are kept)."""
        self.tasks_memo.pop(scope, None)
        self.tasks_memo[scope] = (self.version if version is None else version, rows)
        while len(self.tasks_memo) > TASK_SCOPES:
            del self.tasks_memo[next(iter(self.tasks_memo))]  # the least recently used

    def start_task_read(self, scope: tuple[float | None, float | None, str | None]
                        ) -> tuple[TaskRead, Callable[[], list[tuple[Any, ...]]]] | None:
        """Begin reading ``scope``'s sums by task from ``task_reader`` (the read itself is left to the caller, in
        another thread); what `apply` changes from now on is noted for `end_task_read`. None when a read of
        this scope is under way already (one at a time: when it ends, a view that still needs them asks again)."""
        assert self.task_reader is not None
        if scope in self.tasks_reading:
            return None
        read = self.task_reader(*scope)
        reading = self.tasks_reading[scope] = TaskRead(self.version)
        return reading, read

    def end_task_read(self, scope: tuple[float | None, float | None, str | None], reading: TaskRead,
                      rows: list[tuple[Any, ...]] | None) -> bool:
        """The rows a read `start_task_read` began returned (None: it failed): kept, with what `apply` changed
        since it began folded in. Returns whether they were kept: not when the cube changed otherwise meanwhile
        (a scan's batch, a rescan, a truncated file), unless ``tasks_may_lag``: then they are kept as sums of the
        version the read began at."""
        if self.tasks_reading.get(scope) is not reading:
            return False
        del self.tasks_reading[scope]
        if rows is None or (reading.version != self.version and not self.tasks_may_lag):
            return False
        self.keep_task_sums(scope, fold_task_sums(rows, scope, reading.added, reading.removed), reading.version)
        return True

    def task_sums_kept(self, scope: tuple[float | None, float | None, str | None]) -> list[tuple[Any, ...]] | None:
        """``scope``'s sums by task as last read, of whichever version (`tasks_may_lag`), or None."""
        kept = self.tasks_memo.get(scope)
        return None if kept is None else kept[1]

    def remove(self, calls: Iterable[Call]) -> None:
        """Take calls out (internal rows of a truncated file; never needed for deduped keys)."""
        drop: set[int] = set()
        for c in calls:
            if c.key is not None:
                if self.by_key.get(c.key) is c:
                    del self.by_key[c.key]
                    self._bump(c, -1)
            else:
                self._bump(c, -1)
                drop.add(id(c))
        if drop:
            self.plain = [c for c in self.plain if id(c) not in drop]
        self.version += 1

    def clear(self) -> None:
        """Forget everything (a full rescan follows)."""
        self.cells = {}
        self.by_key.clear()
        self.plain.clear()
        self.version += 1


class TaskRead:
    """A read of sums by task under way (`Cube.start_task_read`): the cube's version it has followed, and the
    calls `Cube.apply` added and replaced meanwhile."""

    __slots__ = ("version", "added", "removed")

    def __init__(self, version: int) -> None:
        self.version = version
        self.added: list[Call] = []
        self.removed: list[Call] = []


def fold_task_sums(rows: list[tuple[Any, ...]], scope: tuple[float | None, float | None, str | None],
                   added: Iterable[Call], removed: Iterable[Call]) -> list[tuple[Any, ...]]:
    """Sums by task, source, model, project and mode (`Ledger.task_sums`'s rows, of the calls with ``lo <= ts <
    hi``, of one session when given: ``scope``) with ``added`` counted and ``removed`` taken out."""
    lo, hi, session = scope
    # (task, source, model, project, mode) -> a cell: IN OUT CW CR CALLS COST UNPRICED, the rows' sums (and two
    # more the rows have not)
    acc: dict[tuple[Any, ...], list[float]] = {tuple(r[:5]): [*r[5:], 0, 0.0] for r in rows}
    for sign, calls in ((1, added), (-1, removed)):
        for c in calls:
            if (lo is None or c.ts >= lo) and (hi is None or c.ts < hi) and (session is None or c.session == session):
                _bump_cell(acc, (c.task, c.source, c.model, c.project, c.mode), c, sign)
    return [(*key, *sums[:LOCAL_CALLS]) for key, sums in acc.items() if sums[CALLS]]


def _ignore(_: object) -> None:
    pass


def _bump_cell(cells: dict, key: tuple, c: Call, sign: int) -> None:
    cell = cells.get(key)
    if cell is None:
        cell = cells[key] = new_cell()
    cell[IN] += sign * c.input_tokens
    cell[OUT] += sign * c.output_tokens
    cell[CW] += sign * c.cache_creation_tokens
    cell[CR] += sign * c.cache_read_tokens
    cell[CALLS] += sign
    if c.cost is None:
        cell[UNPRICED] += sign
    else:
        cell[COST] += sign * c.cost
    if c.mode == LOCAL:
        cell[LOCAL_CALLS] += sign
    if sign > 0:
        if c.ts > cell[LAST]:
            cell[LAST] = c.ts
    elif cell[CALLS] == 0:
        del cells[key]
