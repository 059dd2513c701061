"""Budgets: a spending limit per scope (all, a project or a model) and period, with alert levels.

Periods are calendar periods in the display zone: a day, a week from Monday 00:00, a month. The projection for
the period's end adds the average daily spend of the lookback (default 7 days) for each day left.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from .aggregate import Cube
from .files import write_atomic
from .filters import Filter
from .report import quick_totals

PERIODS = ("daily", "weekly", "monthly")


@dataclass(frozen=True)
class Budget:
    """One budget."""

    scope: str  # "all", a project, or a model id
    period: str
    amount: float
    alert_at: float = 0.8
    hard_stop: bool = False

    def __post_init__(self) -> None:
        if self.period not in PERIODS:
            raise ValueError(f"period must be one of {', '.join(PERIODS)}, not {self.period!r}")
        if not self.amount > 0:
            raise ValueError(f"the amount must be above 0, not {self.amount}")
        if not 0 < self.alert_at <= 1:
            raise ValueError(f"--alert-at is a fraction between 0 and 1, not {self.alert_at}")


def period_bounds(period: str, today: date) -> tuple[date, date]:
    """Inclusive first and last day of the period containing ``today``."""
    if period == "daily":
        return today, today
    if period == "weekly":
        monday = today - timedelta(days=today.weekday())
        return monday, monday + timedelta(days=6)
    first = today.replace(day=1)
    nxt = (first + timedelta(days=32)).replace(day=1)
    return first, nxt - timedelta(days=1)


def level(fraction: float, alert_at: float) -> str:
    """green below alert_at, yellow from it, orange halfway to 95 %, red above 95 %."""
    if fraction > 0.95:
        return "red"
    if fraction >= (alert_at + 0.95) / 2:
        return "orange"
    if fraction >= alert_at:
        return "yellow"
    return "green"


def scope_filter(b: Budget, base: Filter, models: set[str]) -> Filter:
    """The filter a budget's scope means: all, a model (known model ids or claude-*), else a project."""
    flt = base.with_(source="all", models=None, project=None, mode=None, session=None)
    if b.scope == "all":
        return flt
    if b.scope in models or b.scope.startswith("claude-"):
        return flt.with_(models=(b.scope,))
    return flt.with_(project=b.scope)


def status(b: Budget, cube: Cube, base: Filter, today: date, models: set[str], lookback_days: int = 7
           ) -> dict[str, Any]:
    """Spent, percent, remaining and projected end-of-period spend of one budget."""
    flt = scope_filter(b, base, models)
    first, last = period_bounds(b.period, today)
    spent = quick_totals(cube, flt.with_(since=first, until=today))[0]["cost_usd"]
    recent = quick_totals(cube, flt.with_(since=today - timedelta(days=lookback_days - 1), until=today))[0]
    per_day = recent["cost_usd"] / lookback_days
    days_left = (last - today).days
    frac = spent / b.amount
    return {**asdict(b), "since": first.isoformat(), "until": last.isoformat(), "spent_usd": spent,
            "percent": frac * 100, "remaining_usd": b.amount - spent,
            "projected_usd": spent + per_day * days_left, "level": level(frac, b.alert_at),
            "exceeded": spent > b.amount}


class BudgetStore:
    """Budgets in ``budgets.json`` beside the settings (atomic replace)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> list[Budget]:
        """All budgets; a malformed file raises ValueError with the file's name."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as e:
            raise ValueError(f"cannot read budgets {self.path}: {e}") from e
        return [Budget(**b) for b in data.get("budgets", [])]

    def save(self, budgets: list[Budget]) -> None:
        """Write all budgets."""
        write_atomic(self.path, json.dumps({"budgets": [asdict(b) for b in budgets]}, indent=2))

    def set(self, budget: Budget) -> None:
        """Add a budget or replace the one with the same scope and period."""
        rest = [b for b in self.load() if (b.scope, b.period) != (budget.scope, budget.period)]
        self.save([*rest, budget])

    def remove(self, scope: str, period: str) -> bool:
        """Remove one budget; False when there was none."""
        budgets = self.load()
        rest = [b for b in budgets if (b.scope, b.period) != (scope, period)]
        self.save(rest)
        return len(rest) != len(budgets)


class TeamBudgetStore:
    """The team's budgets, kept in the team database (same interface as `BudgetStore`)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def load(self) -> list[Budget]:
        """All team budgets."""
        return [Budget(**b) for b in self.store.budgets()]

    def set(self, budget: Budget) -> None:
        """Add or replace the team budget of (scope, period)."""
        self.store.set_budget(asdict(budget))

    def remove(self, scope: str, period: str) -> bool:
        """Remove one team budget; False when there was none."""
        return bool(self.store.rm_budget(scope, period))
