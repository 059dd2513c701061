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
from typing import Any

from .aggregate import LAST, new_cell
from .engine import Engine, Sources
from .filters import Filter
from .live import Batch
from .report import _Predicate
from .team import CHANNEL, TeamError, TeamRollup, TeamStore, connect


class TeamEngine(Engine):
    """Every machine's calls from the team database."""

    def __init__(self, store: TeamStore, tz: tzinfo | None = None) -> None:
        super().__init__(Sources(), tz=tz)
        self.store = store
        self.rollup = TeamRollup(store)
        self.machines: frozenset[str] | None = None
        self.users: frozenset[str] | None = None
        self.cube.call_source = lambda lo, hi: self.store.calls(lo, hi, self.machines, self.users)
        self.listening = False

    # -- loading ------------------------------------------------------------------------------------------

    def start(self, workers: int | None = None, progress: Any = None) -> None:
        """Load the whole rollup."""
        with self.lock:
            self.rollup.refresh()
            self._fold()
        if progress:
            progress(1, 1, 1, 1)

    def rescan(self, progress: Any = None) -> None:
        """Load everything again."""
        with self.lock:
            self.rollup = TeamRollup(self.store)
        self.start(progress=progress)

    def set_scope(self, machines: frozenset[str] | None, users: frozenset[str] | None = None) -> None:
        """Show only these machines and users (None: all)."""
        with self.lock:
            self.machines, self.users = machines, users
            self._fold()

    def _wanted(self, key: tuple[Any, ...]) -> bool:
        return (self.machines is None or key[0] in self.machines) and (self.users is None or key[1] in self.users)

    def _fold(self) -> None:
        cells: dict[tuple[Any, ...], list[float]] = {}
        day_of = self.cube.day_of
        for key, sums in self.rollup.rows.items():
            if self._wanted(key):
                _add(cells, (day_of(key[2]), *key[3:]), sums, 1)
        self.cube.cells = cells
        self.cube.version += 1

    def update(self, paths: Any = None) -> int:
        """Read rollup rows changed since the last read and fold them in; returns how many changed."""
        with self.lock:
            changes = self.rollup.refresh()
            day_of = self.cube.day_of
            for key, old, new in changes:
                if self._wanted(key):
                    ck = (day_of(key[2]), *key[3:])
                    if old is not None:
                        _add(self.cube.cells, ck, old, -1)
                    _add(self.cube.cells, ck, new, 1)
            if changes:
                self.cube.version += 1
        return len(changes)

    # -- views --------------------------------------------------------------------------------------------

    def files_watched(self) -> int:
        """Machines in the team (the status line's count)."""
        return len({k[0] for k in self.rollup.rows})

    def groups(self, flt: Filter, dim: int, scoped: bool = True) -> list[dict[str, Any]]:
        """Totals per machine (``dim`` 0) or user (1) under ``flt`` and, if ``scoped``, the machine/user
        selection (the machine chips are built without it, so a deselected machine keeps its chip)."""
        pred = _Predicate(flt)
        lo = flt.since.isoformat() if flt.since else None
        hi = flt.until.isoformat() if flt.until else None
        day_of = self.cube.day_of
        out: dict[str, list[float]] = {}
        with self.lock:
            for key, sums in self.rollup.rows.items():
                if (scoped and not self._wanted(key)) or not pred(*key[3:]):
                    continue
                day = day_of(key[2])
                if (lo and day < lo) or (hi and day > hi):
                    continue
                _add(out, key[dim], sums, 1)
        name = ("machine", "user")[dim]
        rows = [{name: k, "cost_usd": s[5], "calls": int(s[4]), "unpriced_calls": int(s[6]),
                 "input_tokens": int(s[0]), "output_tokens": int(s[1]), "cache_creation_tokens": int(s[2]),
                 "cache_read_tokens": int(s[3])} for k, s in out.items() if s[4]]
        rows.sort(key=lambda r: (-r["cost_usd"], -r["calls"], r[name]))
        return rows

    def session_machines(self) -> dict[str, str]:
        """session -> machine (the sessions table's machine column; a session lives on one machine)."""
        with self.lock:
            return {k[6]: k[0] for k in self.rollup.rows}

    def add_team_fields(self, rep: dict[str, Any], flt: Filter) -> dict[str, Any]:
        """`by_machine`, `by_user` and each session's machine, for `report --json --team` and the TUI."""
        rep["by_machine"] = self.groups(flt, 0)
        rep["by_user"] = self.groups(flt, 1)
        rep["team"] = {"machines": self.files_watched(), "listening": self.listening,
                       "selected_machines": sorted(self.machines) if self.machines is not None else None,
                       "selected_users": sorted(self.users) if self.users is not None else None}
        where = self.session_machines()
        for s in rep.get("sessions", []):
            s["machine"] = where.get(s["session"], "")
        return rep

    def report(self, flt: Filter, **kw: Any) -> dict[str, Any]:
        return self.add_team_fields(super().report(flt, **kw), flt)

    def dashboard(self, flt: Filter, **kw: Any) -> dict[str, Any]:
        v = self.add_team_fields(super().dashboard(flt, **kw), flt)
        rows = self.groups(flt, 0, scoped=False)
        total = sum(r["cost_usd"] for r in rows)
        v["machine_chips"] = [{"model": r["machine"], "name": r["machine"], "family": "Machines",
                               "share": r["cost_usd"] / total if total > 0 else 0.0,
                               "selected": self.machines is None or r["machine"] in self.machines,
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
            except Exception:  # noqa: BLE001 - server gone: reconnect
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
        cell = cells[key] = new_cell()
    for i in range(LAST):
        cell[i] += sign * sums[i]
    if sums[LAST] > cell[LAST]:
        cell[LAST] = sums[LAST]
