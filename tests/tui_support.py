"""A deterministic TokentopApp over the demo history at a fixed clock, for Pilot and snapshot tests."""

from __future__ import annotations

from pathlib import Path

from tokentop.ui.app import TokentopApp
from tokentop.ui.screenshots import NOW, demo_app

__all__ = ["NOW", "make_app", "text_of"]


def make_app(root: Path, live: bool = False) -> TokentopApp:
    return demo_app(root, NOW, live=live)


def text_of(app: TokentopApp, selector: str) -> str:
    """Plain text a widget shows."""
    return str(app.screen.query_one(selector).render())
