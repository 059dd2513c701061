"""The incremental cube: token/cost/call sums per (quarter-hour, source, model, project, session, mode).

Quarter hours make day buckets exact in every real time zone (all UTC offsets are multiples of 15 minutes),
while the cube stays far smaller than the call list. Claude Code calls are de-duplicated on their key: a later,
larger snapshot of a message subtracts the earlier contribution and adds the merged one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .claude_code import merge
from .records import LOCAL, Call

BUCKET_SECONDS = 900

# Cell layout (a list, for speed): the four token kinds, calls, cost of priced calls, unpriced calls,
# local calls, last activity (epoch seconds; only ever grows).
IN, OUT, CW, CR, CALLS, COST, UNPRICED, LOCAL_CALLS, LAST = range(9)

CellKey = tuple[int, str, str, str, str, str]  # bucket, source, model, project, session, mode
TaskKey = tuple[int, str, str, str, str, str, str]  # ... + task


def new_cell() -> list[float]:
    """An empty cell."""
    return [0, 0, 0, 0, 0, 0.0, 0, 0, 0.0]


class Cube:
    """Sums per cell, with add and replace; fed in any order or batching it ends with identical totals."""

    def __init__(self, pricer: Callable[[Call], float | None]) -> None:
        self.pricer = pricer
        self.cells: dict[CellKey, list[float]] = {}
        self.task_cells: dict[TaskKey, list[float]] = {}
        self.by_key: dict[str, Call] = {}
        self.version = 0  # bumped on every change; views cache on it

    def __len__(self) -> int:
        return len(self.cells)

    def _bump(self, c: Call, sign: int) -> None:
        b = int(c.ts // BUCKET_SECONDS)
        k = (b, c.source, c.model, c.project, c.session, c.mode)
        for cells, key in ((self.cells, k), (self.task_cells, (*k, c.task))):
            cell = cells.get(key)  # type: ignore[call-overload]
            if cell is None:
                cell = cells[key] = new_cell()  # type: ignore[index]
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
            if sign > 0 and c.ts > cell[LAST]:
                cell[LAST] = c.ts
            if sign < 0 and cell[CALLS] == 0:
                del cells[key]  # type: ignore[arg-type]

    def apply(self, calls: Iterable[Call]) -> int:
        """Add priced calls; Claude Code copies of a known key replace its contribution when larger.

        Returns:
            How many calls changed the cube.
        """
        changed = 0
        by_key = self.by_key
        for c in calls:
            k = c.key
            if k is None:
                self._bump(c, 1)
                changed += 1
                continue
            prev = by_key.get(k)
            if prev is None:
                by_key[k] = c
                self._bump(c, 1)
                changed += 1
                continue
            m = merge(prev, c)
            if m is prev or m == prev:
                continue
            if m is not c:
                m.cost = self.pricer(m)
            self._bump(prev, -1)
            by_key[k] = m
            self._bump(m, 1)
            changed += 1
        if changed:
            self.version += 1
        return changed

    def remove(self, calls: Iterable[Call]) -> None:
        """Take calls out (internal rows of a truncated file; never needed for deduped keys)."""
        for c in calls:
            if c.key is not None:
                if self.by_key.get(c.key) is c:
                    del self.by_key[c.key]
                    self._bump(c, -1)
            else:
                self._bump(c, -1)
        self.version += 1

    def clear(self) -> None:
        """Forget everything (a full rescan follows)."""
        self.cells.clear()
        self.task_cells.clear()
        self.by_key.clear()
        self.version += 1
