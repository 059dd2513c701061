"""A deterministic TokentopApp over the demo history at a fixed clock, for Pilot and snapshot tests."""

from __future__ import annotations

from pathlib import Path

from tokentop.core.engine import Engine, Sources
from tokentop.core.filters import parse_tz
from tokentop.core.pricing import PriceBook
from tokentop.demo import Demo
from tokentop.ui.app import TokentopApp

NOW = 1_795_000_000.0  # 2026-11-18 08:26:40 UTC


def make_engine(root: Path) -> Engine:
    demo = Demo(root, NOW)
    demo.write_history()
    return Engine(Sources([demo.claude_dir], demo.data_root, "work-buddy"), PriceBook(), parse_tz("UTC"))


def make_app(root: Path, live: bool = False) -> TokentopApp:
    return TokentopApp(make_engine(root), clock=lambda: NOW, live=live)


def text_of(app: TokentopApp, selector: str) -> str:
    """Plain text a widget shows."""
    return str(app.screen.query_one(selector).render())
