"""tokentop's widgets, one per module."""

from __future__ import annotations

from .breakdown import BreakdownTable
from .budgets import BudgetPanel
from .cards import Cards
from .chips import ChipBar
from .rate_limits import RateLimitPanel
from .sessions import SessionsTable
from .spark import SparkRow
from .status import FilterBar, KeysFooter, StatusLine

__all__ = ["BreakdownTable", "BudgetPanel", "Cards", "ChipBar", "FilterBar", "KeysFooter", "RateLimitPanel",
           "SessionsTable", "SparkRow", "StatusLine"]
