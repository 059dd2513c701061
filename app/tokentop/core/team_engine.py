"""The team view as an Engine: the cube folded from the team rollup, kept current by LISTEN/NOTIFY.

Machine and user are filters applied while folding (the cube's own key stays day, source, model, project,
session, mode), so every report and TUI view works unchanged; single calls (top tasks, recent, blocks) are read
from the team database for the selected machines and users.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import tzinfo
from pathlib import Path
from typing import Any

from .aggregate import CALLS, LAST, new_cell
from .engine import Engine, Sources
from .filters import Filter, tz_name
from .live import Batch
from .report import _acc_into, _Predicate, unfiltered_groups
from .team import CHANNEL, TeamError, TeamRollup, TeamStore, TeamView, connect


class TeamEngine(Engine):
    """Every machine's calls from the team database."""

    def __init__(self, store: TeamStore, tz: tzinfo | None = None, cache_dir: Path | None = None) -> None:
        """``cache_dir``: keep the team's day rows there between runs (see `TeamRollup`)."""
        super().__init__(Sources(), tz=tz)
        self.store = store
        self.rollup = TeamRollup(store, tz_name(self.cube.tz), cache_dir)
        self.machines: frozenset[str] | None = None
        self.users: frozenset[str] | None = None
        self.cube.call_source = lambda lo, hi, session: self.store.calls(lo, hi, self.machines, self.users, session)
        self.cube.newest_source = lambda lo, hi, limit, **test: self.store.newest_calls(
            lo, hi, limit, self.machines, self.users, **test)  # (source=, mode=, session=)
        self.cube.task_source = lambda lo, hi, session: (  # a drill-down's session: read its calls instead
            None if session is not None else self.store.task_sums(lo, hi, self.machines, self.users))
        # A date range's sums in a thread (the app's `tasks_ready`), of the machines and users shown when it began
        self.cube.task_reader = lambda lo, hi, _session: self.store.task_sums_later(lo, hi, self.machines,
                                                                                   self.users)
        self.cube.tasks_may_lag = True
        self.listening = False
        self.listen_error = ""

    # -- loading ------------------------------------------------------------------------------------------

    def start(self, workers: int | None = None, progress: Any = None) -> None:
        """Load the team's sums (per machine, user and cube cell)."""
        with self.lock:
            self.rollup.load()
            self._fold()
            if self.machines is None and self.users is None and self.rollup.cache is not None:
                view = self.rollup.view
                if view is not None:  # the cache's, and nothing changed since
                    self.cube.memo = (self.cube.version, view.groups)
                else:  # for the next start (and, most likely, this run's report)
                    self.rollup.view = TeamView(unfiltered_groups(self.cube),
                                                self._part_totals(Filter(tz=self.cube.tz), scoped=False),
                                                self.session_machines())
                    self.rollup.dirty = True
            self.rollup.save()
        if progress:
            progress(1, 1, 1, 1)

    def rescan(self, progress: Any = None) -> None:
        """Load everything again."""
        self.start(progress=progress)

    def set_scope(self, machines: frozenset[str] | None, users: frozenset[str] | None = None) -> None:
        """Show only these machines and users (None: all)."""
        with self.lock:
            self.machines, self.users = machines, users
            self.cube.tasks_memo.clear()  # sums by task of other machines and users: never shown again
            self.cube.tasks_reading.clear()  # (a read under way ends unkept)
            self._fold()

    def _wanted(self, part: tuple[str, str]) -> bool:
        return (self.machines is None or part[0] in self.machines) and (self.users is None or part[1] in self.users)

    def _fold(self) -> None:
        """The cube's cells: the selected parts' sums, added up when first needed."""
        self.cube.defer_cells(self._folded)
        self.cube.version += 1

    def _folded(self) -> dict[tuple[Any, ...], list[float]]:
        cells: dict[tuple[Any, ...], list[float]] = {}
        for part, rows in self.rollup.parts.items():
            if not self._wanted(part):
                continue
            if not cells:
                cells = {k: list(v) for k, v in rows.items()}
                continue
            for key, sums in rows.items():
                _add(cells, key, sums, 1)
        return cells

    def update(self, paths: Any = None) -> int:
        """Read the groups changed since the last read and fold them in; returns how many changed."""
        with self.lock:
            cells = self.cube.cells  # folded before the parts change
            changes = self.rollup.refresh()
            for part, key, old, new in changes:
                if self._wanted(part):
                    if old is not None:
                        _add(cells, key, old, -1)
                    _add(cells, key, new, 1)
                    if not cells[key][CALLS]:
                        del cells[key]
            if changes:
                self.cube.version += 1
        return len(changes)

    # -- views --------------------------------------------------------------------------------------------

    def files_watched(self) -> int:
        """Machines in the team (the status line's count)."""
        view = self.rollup.view
        return len({m for m, _ in (view.totals if view is not None else self.rollup.parts)})

    def _part_totals(self, flt: Filter, scoped: bool) -> dict[tuple[str, str], list[float]]:
        """Totals per (machine, user) under ``flt`` and, if ``scoped``, the machine/user selection (the chips
        are built without it, so a deselected machine or user keeps its chip)."""
        lo = flt.since.isoformat() if flt.since else None
        hi = flt.until.isoformat() if flt.until else None
        pred = _Predicate(flt)
        everything = lo is None and hi is None and pred.passes_all()
        if everything and self.rollup.view is not None:
            return {p: s for p, s in self.rollup.view.totals.items() if not scoped or self._wanted(p)}
        out: dict[tuple[str, str], list[float]] = {}
        for part, rows in self.rollup.parts.items():
            if scoped and not self._wanted(part):
                continue
            if everything and rows:  # column sums in C (zip, sum, max) instead of a loop over the cells
                cols = list(zip(*rows.values(), strict=True))
                out[part] = [*map(sum, cols[:LAST]), max(cols[LAST])]
                continue
            acc = new_cell()
            for key, sums in rows.items():
                if (lo is not None and key[0] < lo) or (hi is not None and key[0] > hi):
                    continue
                if pred(key[1], key[2], key[3], key[4], key[5]):
                    _acc_into(acc, sums)
            out[part] = acc
        return out

    def groups(self, parts: dict[tuple[str, str], list[float]], dim: int) -> list[dict[str, Any]]:
        """Totals per machine (``dim`` 0) or user (1) from per-(machine, user) totals (`_part_totals`)."""
        out: dict[str, list[float]] = {}
        for part, s in parts.items():
            _add(out, part[dim], s, 1)
        name = ("machine", "user")[dim]
        rows = [{name: k, "cost_usd": s[5], "calls": int(s[4]), "unpriced_calls": int(s[6]),
                 "input_tokens": int(s[0]), "output_tokens": int(s[1]), "cache_creation_tokens": int(s[2]),
                 "cache_read_tokens": int(s[3])} for k, s in out.items() if s[4]]
        rows.sort(key=lambda r: (-r["cost_usd"], -r["calls"], r[name]))
        return rows

    def session_machines(self) -> dict[str, str]:
        """session -> machine (the sessions table's machine column; a session lives on one machine)."""
        with self.lock:
            if self.rollup.view is not None:
                return self.rollup.view.machine_of
            return {key[4]: part[0] for part, rows in self.rollup.parts.items() for key in rows}

    def add_team_fields(self, rep: dict[str, Any], flt: Filter) -> dict[str, Any]:
        """`by_machine`, `by_user` and each session's machine, for `report --json --team` and the TUI."""
        with self.lock:
            parts = self._part_totals(flt, scoped=True)
        rep["by_machine"] = self.groups(parts, 0)
        rep["by_user"] = self.groups(parts, 1)
        rep["team"] = {"machines": self.files_watched(), "listening": self.listening,
                       "selected_machines": sorted(self.machines) if self.machines is not None else None,
                       "selected_users": sorted(self.users) if self.users is not None else None}
        if rep.get("sessions"):
            where = self.session_machines()
            for s in rep["sessions"]:
                s["machine"] = where.get(s["session"], "")
        return rep

    def report(self, flt: Filter, **kw: Any) -> dict[str, Any]:
        return self.add_team_fields(super().report(flt, **kw), flt)

    def dashboard(self, flt: Filter, **kw: Any) -> dict[str, Any]:
        v = self.add_team_fields(super().dashboard(flt, **kw), flt)
        with self.lock:
            parts = self._part_totals(flt, scoped=False)  # a deselected machine or user keeps its chip
        for dim, name, chosen in ((0, "machine", self.machines), (1, "user", self.users)):
            rows = self.groups(parts, dim)
            total = sum(r["cost_usd"] for r in rows)
            v[f"{name}_chips"] = [{"model": r[name], "name": r[name], "family": name.capitalize() + "s",
                                   "share": r["cost_usd"] / total if total > 0 else 0.0,
                                   "selected": chosen is None or r[name] in chosen,
                                   "cost_usd": r["cost_usd"], "calls": r["calls"]} for r in rows]
        return v

    # -- live -----------------------------------------------------------------------------------------------

    async def follow(self, applied: Callable[[Batch], None], stop: asyncio.Event) -> None:
        """LISTEN for pushes; after each NOTIFY (a burst is one update) fold the changed rows in."""
        await asyncio.to_thread(self.listen, lambda n: applied(Batch(n, 0, False, False)), stop)

    def listen(self, changed: Callable[[int], None], stop: asyncio.Event | threading.Event,
               ready: threading.Event | None = None) -> None:
        """Blocking LISTEN loop until ``stop``; reconnects after a server restart."""
        while not stop.is_set():
            try:
                conn = connect(self.store.url)
            except TeamError:
                self.listening = False
                _wait(stop, 2.0)
                continue
            try:
                conn.execute(f"LISTEN {CHANNEL}")
                self.listening = True
                if ready is not None:
                    ready.set()
                n = self.update()  # anything pushed while not listening
                if n:
                    changed(n)
                while not stop.is_set():
                    got = False
                    for _ in conn.notifies(timeout=0.5):
                        got = True
                        break
                    if got:
                        n = self.update()
                        if n:
                            changed(n)
            except Exception as e:  # noqa: BLE001 - server gone: reconnect (the status line says why)
                self.listen_error = str(e).split("\n")[0]
                self.listening = False
                _wait(stop, 1.0)
            finally:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001
                    pass


def _wait(stop: asyncio.Event | threading.Event, seconds: float) -> None:
    if isinstance(stop, threading.Event):
        stop.wait(seconds)
    else:
        import time

        time.sleep(seconds)


def _add(cells: dict[Any, list[float]], key: Any, sums: list[float], sign: int) -> None:
    cell = cells.get(key)
    if cell is None:
        if sign > 0:  # the common case (machines rarely share a cell): a copy
            cells[key] = list(sums)
            return
        cell = cells[key] = new_cell()
    elif sign > 0:
        _acc_into(cell, sums)
        return
    for i in range(LAST):
        cell[i] += sign * sums[i]
    if sums[LAST] > cell[LAST]:
        cell[LAST] = sums[LAST]
