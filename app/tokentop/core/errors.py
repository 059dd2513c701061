"""Exceptions the command line turns into one-line messages (kept import-free: `main` imports this early)."""

from __future__ import annotations


class TeamError(Exception):
    """The team database cannot be used; a one-line message without secrets."""
